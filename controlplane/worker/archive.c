/* archive.c - the "archive" task: a finished run's findings and ingest
 * batches, older than the retention, streamed as JSON Lines through zstd
 * into cold storage and out of PostgreSQL; their restore; the periodic
 * sweep; `vigil-worker archive ...`. */
#include "archive.h"

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define FETCH_ROWS     1000
#define INSERT_ROWS    1000
#define INSERT_BYTES   ((size_t)8 << 20)
#define MAX_LINE       ((size_t)64 << 20)
#define TX_ATTEMPTS    3
#define DEFAULT_COLD   "/var/lib/vigil/cold"
#define DEFAULT_RETAIN (90LL * 86400)

static struct {
	struct archive_config c;
	struct vg_series *runs, *restores, *raw, *compressed;
} cfg = {.c = {.cold_dir = DEFAULT_COLD,
               .retention_s = DEFAULT_RETAIN,
               .sweep_limit = 500,
               .zstd_level = 3}};

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void register_metrics(struct vg_metrics *reg)
{
	struct vg_metric *bytes;

	cfg.runs = vg_metric_series(
		vg_metrics_counter(reg, "vigil_archive_runs_total",
	                           "Scan runs moved to cold storage.", NULL,
	                           NULL),
		NULL);
	cfg.restores = vg_metric_series(
		vg_metrics_counter(reg, "vigil_archive_restores_total",
	                           "Archived scan runs restored.", NULL, NULL),
		NULL);
	bytes = vg_metrics_counter(reg, "vigil_archive_bytes_total",
	                           "Bytes archived: raw (JSON Lines) and "
	                           "compressed (the objects written).",
	                           VG_LABELS("kind"), NULL);
	cfg.raw = vg_metric_labels(bytes, "raw");
	cfg.compressed = vg_metric_labels(bytes, "compressed");
}

static void default_metrics(void)
{
	if (!cfg.runs)
		register_metrics(vg_metrics_default());
}

void archive_configure(const struct archive_config *c)
{
	cfg.c.cold_dir =
		c->cold_dir && *c->cold_dir ? c->cold_dir : DEFAULT_COLD;
	cfg.c.retention_s =
		c->retention_s > 0 ? c->retention_s : DEFAULT_RETAIN;
	cfg.c.sweep_limit = c->sweep_limit > 0 ? c->sweep_limit : 500;
	cfg.c.zstd_level = c->zstd_level ? c->zstd_level : 3;
	cfg.c.metrics = c->metrics;
	register_metrics(c->metrics ? c->metrics : vg_metrics_default());
}

/* ------------------------------------------------------------------ */
/* Files                                                                */
/* ------------------------------------------------------------------ */

static int hex_of(const unsigned char *md, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* mkdir -p of `path`'s directory part below `root` (which must exist). */
static int make_dirs(const char *root, const char *rel, struct vg_err *err)
{
	char p[4096];
	size_t rl = strlen(root);

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", root, rel) >= sizeof(p))
		return vg_err_set(err, VG_TOOLARGE, "path too long");
	for (char *s = p + rl + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0750) != 0 && errno != EEXIST)
			return vg_err_sys(err, VG_IO, "mkdir %s: %s", p,
			                  strerror(errno));
		*s = '/';
	}
	return VG_OK;
}

static int fsync_dir(const char *path, struct vg_err *err)
{
	char d[4096];
	char *slash;
	int fd, rc = VG_OK;

	snprintf(d, sizeof(d), "%s", path);
	slash = strrchr(d, '/');
	if (slash)
		*slash = '\0';
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = vg_err_sys(err, VG_IO, "fsync %s: %s", d, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* SHA-256 (hex) and size of a file. */
static int file_sha256(const char *path, char hex[65], long long *size,
                       struct vg_err *err)
{
	unsigned char buf[1 << 16], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	int fd, rc = VG_OK;
	ssize_t n;

	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vg_err_sys(err, errno == ENOENT ? VG_NOTFOUND : VG_IO,
		                  "archive object %s: %s", path,
		                  strerror(errno));
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		rc = vg_err_set(err, VG_NOMEM, "sha256: out of memory");
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = vg_err_sys(err, VG_IO, "read %s: %s", path,
			                strerror(errno));
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		*size += n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	hex_of(md, mdlen, hex);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The compressed writer                                                */
/* ------------------------------------------------------------------ */

struct sink {
	int fd;
	const char *path;
	ZSTD_CCtx *z;
	EVP_MD_CTX *md;
	void *out;
	size_t outcap;
	long long raw, compressed;
};

static int sink_open(struct sink *s, const char *path, struct vg_err *err)
{
	memset(s, 0, sizeof(*s));
	s->path = path;
	s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (s->fd < 0)
		return vg_err_sys(err, VG_IO, "create %s: %s", path,
		                  strerror(errno));
	s->outcap = ZSTD_CStreamOutSize();
	s->out = malloc(s->outcap);
	s->z = ZSTD_createCCtx();
	s->md = EVP_MD_CTX_new();
	if (!s->out || !s->z || !s->md ||
	    !EVP_DigestInit_ex(s->md, EVP_sha256(), NULL))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	if (ZSTD_isError(ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel,
	                                        cfg.c.zstd_level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->z, ZSTD_c_checksumFlag, 1)))
		return vg_err_set(err, VG_CONFIG, "zstd level %d refused",
		                  cfg.c.zstd_level);
	return VG_OK;
}

/* Compress `n` bytes (`end`: and finish the frame). */
static int sink_write(struct sink *s, const void *p, size_t n, int end,
                      struct vg_err *err)
{
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
	size_t left;

	s->raw += (long long)n;
	do {
		ZSTD_outBuffer o = {s->out, s->outcap, 0};

		left = ZSTD_compressStream2(s->z, &o, &in, mode);
		if (ZSTD_isError(left))
			return vg_err_set(err, VG_INTERNAL, "zstd: %s",
			                  ZSTD_getErrorName(left));
		if (o.pos && write_all(s->fd, s->out, o.pos) != 0)
			return vg_err_sys(err, VG_IO, "write %s: %s", s->path,
			                  strerror(errno));
		EVP_DigestUpdate(s->md, s->out, o.pos);
		s->compressed += (long long)o.pos;
	} while (end ? left != 0 : in.pos < in.size);
	return VG_OK;
}

/* Finish: the hash, fsync, close. */
static int sink_close(struct sink *s, char hex[65], struct vg_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int rc = VG_OK;

	if (hex) {
		EVP_DigestFinal_ex(s->md, md, &mdlen);
		hex_of(md, mdlen, hex);
	}
	if (s->fd >= 0 && hex && fsync(s->fd) != 0)
		rc = vg_err_sys(err, VG_IO, "fsync %s: %s", s->path,
		                strerror(errno));
	if (s->fd >= 0 && close(s->fd) != 0 && rc == VG_OK && hex)
		rc = vg_err_sys(err, VG_IO, "close %s: %s", s->path,
		                strerror(errno));
	s->fd = -1;
	ZSTD_freeCCtx(s->z);
	EVP_MD_CTX_free(s->md);
	free(s->out);
	s->z = NULL;
	s->md = NULL;
	s->out = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Archive one run                                                      */
/* ------------------------------------------------------------------ */

/* The run, locked against another archiver or restorer of it. */
static const char lock_run_sql[] =
	"SELECT state IN ('succeeded', 'failed', 'canceled'), "
	"coalesce(finished_at, created_at) < now() - make_interval(secs => "
	"$2::bigint), "
	"restored_at IS NOT NULL AND restored_at >= now() - "
	"make_interval(secs => $2::bigint), "
	"archived_at IS NOT NULL, "
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY') "
	"FROM scan_runs WHERE id = $1 FOR NO KEY UPDATE";

static const char header_sql[] =
	"SELECT row_to_json(h)::text FROM (SELECT 'vigil-archive' AS format, "
	"1 AS version, r.tenant_id, r.id AS run_id, r.policy_namespace, "
	"r.policy_name, r.policy_uid, r.job_name, r.state, r.created_at, "
	"r.finished_at, r.finding_counts FROM scan_runs r WHERE r.id = $1) h";

/* Every stored column but generated ones, in a stable order. */
static const char *const row_queries[] = {
	"DECLARE archive_rows NO SCROLL CURSOR FOR "
	"SELECT row_to_json(l)::text FROM (SELECT 'ingest_batches' AS "
	"\"table\", x AS \"row\" FROM (SELECT b.tenant_id, b.run_id, "
	"b.batch_id, b.shard, b.findings, b.received_at "
	"FROM ingest_batches b WHERE b.run_id = $1 ORDER BY b.batch_id) x) l",
	"DECLARE archive_rows NO SCROLL CURSOR FOR "
	"SELECT row_to_json(l)::text FROM (SELECT 'findings' AS \"table\", "
	"x AS \"row\" FROM (SELECT f.id, f.tenant_id, f.run_id, f.batch_id, "
	"f.host, f.port, f.protocol, f.scanner, f.severity, f.fingerprint, "
	"f.title, f.evidence, f.state, f.first_seen, f.last_seen "
	"FROM findings f WHERE f.run_id = $1 ORDER BY f.id) x) l",
};

static const char ins_index_sql[] =
	"INSERT INTO archived_runs (tenant_id, run_id, object_key, sha256, "
	"raw_bytes, compressed_bytes, finding_count, batch_count, "
	"format_version) VALUES ($1, $2, $3, decode($4, 'hex'), $5, $6, $7, "
	"$8, $9)";

/* BEGIN at `iso`, in the tenant, times in UTC (the object's bytes do
 * not depend on the session). */
static int begin_tx(struct vg_db_conn *c, const char *tenant, const char *iso,
                    struct vg_err *err)
{
	char sql[256];

	if (!vg_db_is_uuid(tenant))
		return vg_err_set(err, VG_INVAL, "tenant id is not a UUID");
	snprintf(sql, sizeof(sql),
	         "BEGIN ISOLATION LEVEL %s; SELECT "
	         "pg_catalog.set_config('vigil.tenant_id', '%s', true); "
	         "SET LOCAL TimeZone = 'UTC'",
	         iso, tenant);
	return vg_db_exec_script(c, sql, err);
}

struct writer {
	const char *tenant, *run;
	char path[4096], tmp[4096];
	struct vg_buf chunk;
};

/* Stream the run into the object at w->tmp; fills res. */
static int write_object(struct vg_db_conn *c, struct writer *w,
                        struct archive_result *res, struct vg_err *err)
{
	const char *params[] = {w->run};
	struct vg_db_res *r = NULL;
	struct sink s = {.fd = -1};
	long long counts[2] = {0, 0};
	char *header = NULL;
	int rc;

	if ((rc = vg_db_query_value(c, header_sql, 1, params, &header, err)))
		goto out;
	if ((rc = sink_open(&s, w->tmp, err)) ||
	    (rc = sink_write(&s, header, strlen(header), 0, err)) ||
	    (rc = sink_write(&s, "\n", 1, 0, err)))
		goto out;
	for (size_t q = 0; q < 2; q++) {
		if ((rc = vg_db_exec(c, row_queries[q], 1, params, NULL, err)))
			goto out;
		for (;;) {
			int n;

			if ((rc = vg_db_exec(c, "FETCH 1000 FROM archive_rows",
			                     0, NULL, &r, err)))
				goto out;
			n = vg_db_res_rows(r);
			vg_buf_reset(&w->chunk);
			for (int i = 0; i < n && !rc; i++) {
				rc = vg_buf_append_str(&w->chunk,
				                       vg_db_res_get(r, i, 0));
				if (!rc)
					rc = vg_buf_append_byte(&w->chunk,
					                        '\n');
			}
			vg_db_res_free(r);
			r = NULL;
			if (rc) {
				rc = vg_err_set(err, rc, "out of memory");
				goto out;
			}
			counts[q] += n;
			if (n && (rc = sink_write(&s, w->chunk.data,
			                          w->chunk.len, 0, err)))
				goto out;
			if (n < FETCH_ROWS)
				break;
		}
		if ((rc = vg_db_exec(c, "CLOSE archive_rows", 0, NULL, NULL,
		                     err)))
			goto out;
	}
	vg_buf_reset(&w->chunk);
	if ((rc = vg_buf_appendf(&w->chunk,
	                         "{\"end\":true,\"ingest_batches\":%lld,"
	                         "\"findings\":%lld}\n",
	                         counts[0], counts[1])) ||
	    (rc = sink_write(&s, w->chunk.data, w->chunk.len, 1, err)))
		goto out;
	res->batches = counts[0];
	res->findings = counts[1];
	res->raw_bytes = s.raw;
	res->compressed_bytes = s.compressed;
	rc = sink_close(&s, res->sha256, err);
out:
	if (s.fd >= 0 || s.z)
		sink_close(&s, NULL, NULL);
	vg_db_res_free(r);
	free(header);
	return rc;
}

/* Put the written object in place and check what reached the disk. */
static int publish_object(struct writer *w, const struct archive_result *res,
                          struct vg_err *err)
{
	char hex[65];
	long long size;
	int rc;

	if (rename(w->tmp, w->path) != 0)
		return vg_err_sys(err, VG_IO, "rename %s: %s", w->tmp,
		                  strerror(errno));
	if ((rc = fsync_dir(w->path, err)) ||
	    (rc = file_sha256(w->path, hex, &size, err)))
		return rc;
	if (strcmp(hex, res->sha256) != 0 || size != res->compressed_bytes)
		return vg_err_set(err, VG_IO,
		                  "archive object %s reads back as %lld bytes "
		                  "with sha256 %s, %lld bytes with %s written",
		                  w->path, size, hex, res->compressed_bytes,
		                  res->sha256);
	return VG_OK;
}

static int archive_once(struct vg_db_conn *c, struct writer *w,
                        struct archive_result *res, struct vg_err *err)
{
	char retention[24], raw[24], comp[24], nf[24], nb[24], ver[8];
	const char *lock_p[] = {w->run, retention};
	const char *idx_p[] = {w->tenant,   w->run, res->object_key,
	                       res->sha256, raw,    comp,
	                       nf,          nb,     ver};
	const char *purge_p[] = {w->run};
	struct vg_db_res *r = NULL;
	int rc;

	snprintf(retention, sizeof(retention), "%lld", cfg.c.retention_s);
	if ((rc = begin_tx(c, w->tenant, "REPEATABLE READ", err)) ||
	    (rc = vg_db_exec(c, lock_run_sql, 2, lock_p, &r, err)))
		goto out;
	if (vg_db_res_rows(r) != 1) {
		rc = vg_err_set(err, VG_NOTFOUND, "run %s not found", w->run);
		goto out;
	}
	if (strcmp(vg_db_res_get(r, 0, 3), "t") == 0)
		res->skipped = "archived before";
	else if (strcmp(vg_db_res_get(r, 0, 0), "t") != 0)
		res->skipped = "run not finished";
	else if (strcmp(vg_db_res_get(r, 0, 1), "t") != 0 ||
	         strcmp(vg_db_res_get(r, 0, 2), "t") == 0)
		res->skipped = "run within retention";
	if (res->skipped)
		goto out;
	snprintf(res->object_key, sizeof(res->object_key), "%s/%s/%s.jsonl.zst",
	         w->tenant, vg_db_res_get(r, 0, 4), w->run);
	snprintf(w->path, sizeof(w->path), "%s/%s", cfg.c.cold_dir,
	         res->object_key);
	snprintf(w->tmp, sizeof(w->tmp), "%s/%s/%s/.%s.jsonl.zst.tmp",
	         cfg.c.cold_dir, w->tenant, vg_db_res_get(r, 0, 4), w->run);
	vg_db_res_free(r);
	r = NULL;
	if ((rc = make_dirs(cfg.c.cold_dir, res->object_key, err)) ||
	    (rc = write_object(c, w, res, err)) ||
	    (rc = publish_object(w, res, err)))
		goto out;
	snprintf(raw, sizeof(raw), "%lld", res->raw_bytes);
	snprintf(comp, sizeof(comp), "%lld", res->compressed_bytes);
	snprintf(nf, sizeof(nf), "%lld", res->findings);
	snprintf(nb, sizeof(nb), "%lld", res->batches);
	snprintf(ver, sizeof(ver), "%d", ARCHIVE_FORMAT_VERSION);
	if ((rc = vg_db_exec(c, ins_index_sql, 9, idx_p, NULL, err)) ||
	    (rc = vg_db_exec(c, "SELECT * FROM archive_purge($1)", 1, purge_p,
	                     NULL, err)))
		goto out;
	rc = vg_db_commit(c, err);
out:
	vg_db_res_free(r);
	if (rc != VG_OK || res->skipped)
		vg_db_rollback(c);
	if (rc != VG_OK && w->tmp[0])
		unlink(w->tmp); /* a half-written object, if any */
	return rc;
}

int archive_run(struct vg_db_pool *db, const char *tenant, const char *run,
                struct archive_result *res, struct vg_err *err)
{
	struct writer w = {.tenant = tenant, .run = run};
	struct vg_db_conn *c = NULL;
	int rc, attempt = 0;

	memset(res, 0, sizeof(*res));
	pthread_once(&metrics_once, default_metrics);
	if (!vg_db_is_uuid(tenant) || !vg_db_is_uuid(run))
		return vg_err_set(err, VG_INVAL,
		                  "tenant and run ids must be UUIDs");
	vg_buf_init(&w.chunk, 0);
	do {
		memset(res, 0, sizeof(*res));
		if ((rc = vg_db_acquire(db, &c, err)) != VG_OK)
			break;
		/* a run locked by another archiver (RR: a serialization
		 * failure) or changed meanwhile: write it again */
		rc = archive_once(c, &w, res, err);
		vg_db_release(c);
	} while (rc == VG_AGAIN && ++attempt < TX_ATTEMPTS);
	vg_buf_cleanup(&w.chunk);
	if (rc == VG_OK && !res->skipped) {
		vg_counter_inc(cfg.runs);
		vg_counter_add(cfg.raw, (double)res->raw_bytes);
		vg_counter_add(cfg.compressed, (double)res->compressed_bytes);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Restore                                                              */
/* ------------------------------------------------------------------ */

static const char sel_index_sql[] =
	"SELECT object_key, encode(sha256, 'hex'), compressed_bytes, "
	"finding_count, batch_count, format_version FROM archived_runs "
	"WHERE run_id = $1";

static const char *const ins_sql[] = {
	"INSERT INTO ingest_batches (tenant_id, run_id, batch_id, shard, "
	"findings, received_at) SELECT r.tenant_id, r.run_id, r.batch_id, "
	"r.shard, r.findings, r.received_at FROM json_array_elements($1::json) "
	"e CROSS JOIN LATERAL json_populate_record(NULL::ingest_batches, "
	"e->'row') r WHERE r.tenant_id = $2 AND r.run_id = $3",
	"INSERT INTO findings (id, tenant_id, run_id, batch_id, host, port, "
	"protocol, scanner, severity, fingerprint, title, evidence, state, "
	"first_seen, last_seen) SELECT r.id, r.tenant_id, r.run_id, "
	"r.batch_id, r.host, r.port, r.protocol, r.scanner, r.severity, "
	"r.fingerprint, r.title, r.evidence, r.state, r.first_seen, "
	"r.last_seen FROM json_array_elements($1::json) e CROSS JOIN LATERAL "
	"json_populate_record(NULL::findings, e->'row') r "
	"WHERE r.tenant_id = $2 AND r.run_id = $3",
};

static const char *const line_prefix[] = {
	"{\"table\":\"ingest_batches\",\"row\":",
	"{\"table\":\"findings\",\"row\":",
};

struct restorer {
	struct vg_db_conn *c;
	const char *tenant, *run, *path;
	long long lineno;
	int header_seen, end_seen;
	long long end_counts[2];
	struct vg_buf rows[2]; /* "[line,line" of each table */
	long long pending[2], inserted[2];
	long long raw; /* decompressed bytes */
};

static int flush_rows(struct restorer *rs, int t, struct vg_err *err)
{
	const char *params[] = {NULL, rs->tenant, rs->run};
	struct vg_db_res *r = NULL;
	long long got;
	int rc;

	if (!rs->pending[t])
		return VG_OK;
	if ((rc = vg_buf_append_byte(&rs->rows[t], ']')))
		return vg_err_set(err, rc, "out of memory");
	params[0] = vg_buf_str(&rs->rows[t]);
	if ((rc = vg_db_exec(rs->c, ins_sql[t], 3, params, &r, err)))
		return vg_err_set(err, rc, "archive object %s: %s", rs->path,
		                  err ? err->msg : "");
	got = vg_db_res_affected(r);
	vg_db_res_free(r);
	if (got != rs->pending[t])
		return vg_err_set(err, VG_PARSE,
		                  "archive object %s holds rows of another "
		                  "tenant or run",
		                  rs->path);
	rs->inserted[t] += got;
	rs->pending[t] = 0;
	vg_buf_reset(&rs->rows[t]);
	return VG_OK;
}

static int check_header(struct restorer *rs, const char *line, size_t len,
                        struct vg_err *err)
{
	json_t *h = NULL;
	int rc = vg_json_loadb(line, len, 0, &h, err);

	if (rc == VG_OK &&
	    (strcmp(vg_json_get_str(h, "format", ""), "vigil-archive") != 0 ||
	     vg_json_get_int(h, "version", 0) != ARCHIVE_FORMAT_VERSION ||
	     strcmp(vg_json_get_str(h, "tenant_id", ""), rs->tenant) != 0 ||
	     strcmp(vg_json_get_str(h, "run_id", ""), rs->run) != 0))
		rc = vg_err_set(err, VG_PARSE,
		                "archive object %s: the header names no "
		                "version-%d archive of run %s",
		                rs->path, ARCHIVE_FORMAT_VERSION, rs->run);
	json_decref(h);
	return rc;
}

static int restore_line(struct restorer *rs, const char *line, size_t len,
                        struct vg_err *err)
{
	json_t *e = NULL;
	int rc;

	rs->lineno++;
	if (!rs->header_seen) {
		rs->header_seen = 1;
		return check_header(rs, line, len, err);
	}
	if (rs->end_seen)
		return vg_err_set(err, VG_PARSE,
		                  "archive object %s: data after the end",
		                  rs->path);
	for (int t = 0; t < 2; t++) {
		size_t pl = strlen(line_prefix[t]);
		struct vg_buf *b = &rs->rows[t];

		if (len <= pl || strncmp(line, line_prefix[t], pl) != 0)
			continue;
		rc = vg_buf_append_byte(b, b->len ? ',' : '[');
		if (!rc)
			rc = vg_buf_append(b, line, len);
		if (rc)
			return vg_err_set(err, rc, "out of memory");
		if (++rs->pending[t] >= INSERT_ROWS || b->len >= INSERT_BYTES)
			return flush_rows(rs, t, err);
		return VG_OK;
	}
	if ((rc = vg_json_loadb(line, len, 0, &e, err)) == VG_OK &&
	    !json_is_true(json_object_get(e, "end")))
		rc = vg_err_set(err, VG_PARSE,
		                "archive object %s: line %lld is no row",
		                rs->path, rs->lineno);
	if (rc == VG_OK) {
		rs->end_seen = 1;
		rs->end_counts[0] = vg_json_get_int(e, "ingest_batches", -1);
		rs->end_counts[1] = vg_json_get_int(e, "findings", -1);
	}
	json_decref(e);
	return rc;
}

/* Decompress the object, handing each line to restore_line. */
static int restore_stream(struct restorer *rs, struct vg_err *err)
{
	size_t inlen = ZSTD_DStreamInSize(), outlen = ZSTD_DStreamOutSize();
	void *in = malloc(inlen), *out = malloc(outlen);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	struct vg_buf pending;
	size_t last = 1;
	int fd = -1, rc = VG_OK;
	ssize_t n;

	vg_buf_init(&pending, MAX_LINE);
	if (!in || !out || !z) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	fd = open(rs->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = vg_err_sys(err, VG_IO, "open %s: %s", rs->path,
		                strerror(errno));
		goto out;
	}
	while (rc == VG_OK && (n = read(fd, in, inlen)) != 0) {
		ZSTD_inBuffer ib = {in, 0, 0};

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = vg_err_sys(err, VG_IO, "read %s: %s", rs->path,
			                strerror(errno));
			break;
		}
		ib.size = (size_t)n;
		while (rc == VG_OK && ib.pos < ib.size) {
			ZSTD_outBuffer ob = {out, outlen, 0};
			char *nl;
			size_t from = 0;

			last = ZSTD_decompressStream(z, &ob, &ib);
			if (ZSTD_isError(last)) {
				rc = vg_err_set(err, VG_PARSE,
				                "archive object %s: zstd: %s",
				                rs->path,
				                ZSTD_getErrorName(last));
				break;
			}
			rs->raw += (long long)ob.pos;
			if (vg_buf_append(&pending, out, ob.pos)) {
				rc = vg_err_set(err, VG_PARSE,
				                "archive object %s: a line "
				                "longer than %zu bytes",
				                rs->path, MAX_LINE);
				break;
			}
			while (rc == VG_OK &&
			       (nl = memchr(pending.data + from, '\n',
			                    pending.len - from)) != NULL) {
				*nl = '\0';
				rc = restore_line(rs, pending.data + from,
				                  (size_t)(nl - pending.data) -
				                          from,
				                  err);
				from = (size_t)(nl - pending.data) + 1;
			}
			vg_buf_consume(&pending, from);
		}
	}
	if (rc == VG_OK && (last != 0 || pending.len || !rs->end_seen))
		rc = vg_err_set(err, VG_PARSE, "archive object %s is truncated",
		                rs->path);
out:
	if (fd >= 0)
		close(fd);
	vg_buf_cleanup(&pending);
	ZSTD_freeDCtx(z);
	free(in);
	free(out);
	return rc;
}

struct index_row {
	char key[128], sha[65];
	long long size, findings, batches;
	int version;
};

static int restore_once(struct vg_db_conn *c, const char *tenant,
                        const char *run, struct archive_result *res,
                        struct vg_err *err)
{
	char retention[24], path[4096], hex[65];
	const char *lock_p[] = {run, retention};
	const char *run_p[] = {run};
	struct restorer rs = {.c = c, .tenant = tenant, .run = run};
	struct vg_db_res *r = NULL;
	struct index_row ix = {0};
	long long size;
	int rc, t;

	vg_buf_init(&rs.rows[0], 0);
	vg_buf_init(&rs.rows[1], 0);
	snprintf(retention, sizeof(retention), "%lld", cfg.c.retention_s);
	if ((rc = begin_tx(c, tenant, "READ COMMITTED", err)) ||
	    (rc = vg_db_exec(c, lock_run_sql, 2, lock_p, &r, err)))
		goto out;
	if (vg_db_res_rows(r) != 1) {
		rc = vg_err_set(err, VG_NOTFOUND, "run %s not found", run);
		goto out;
	}
	vg_db_res_free(r);
	r = NULL;
	if ((rc = vg_db_exec(c, sel_index_sql, 1, run_p, &r, err)))
		goto out;
	if (vg_db_res_rows(r) != 1) {
		char *restored = NULL;

		rc = vg_db_query_value(c,
		                       "SELECT restored_at FROM scan_runs "
		                       "WHERE id = $1",
		                       1, run_p, &restored, err);
		if (rc == VG_OK && restored)
			res->skipped = "restored before";
		else if (rc == VG_OK)
			rc = vg_err_set(err, VG_NOTFOUND,
			                "run %s is not archived", run);
		free(restored);
		goto out;
	}
	snprintf(ix.key, sizeof(ix.key), "%s", vg_db_res_get(r, 0, 0));
	snprintf(ix.sha, sizeof(ix.sha), "%s", vg_db_res_get(r, 0, 1));
	ix.size = strtoll(vg_db_res_get(r, 0, 2), NULL, 10);
	ix.findings = strtoll(vg_db_res_get(r, 0, 3), NULL, 10);
	ix.batches = strtoll(vg_db_res_get(r, 0, 4), NULL, 10);
	ix.version = (int)strtol(vg_db_res_get(r, 0, 5), NULL, 10);
	if (ix.version != ARCHIVE_FORMAT_VERSION) {
		rc = vg_err_set(err, VG_UNSUPPORTED,
		                "run %s: archive format %d is not known here",
		                run, ix.version);
		goto out;
	}
	snprintf(res->object_key, sizeof(res->object_key), "%s", ix.key);
	snprintf(path, sizeof(path), "%s/%s", cfg.c.cold_dir, ix.key);
	rs.path = path;
	/* the whole object is checked before any row goes in */
	if ((rc = file_sha256(path, hex, &size, err)))
		goto out;
	if (size != ix.size || strcmp(hex, ix.sha) != 0) {
		rc = vg_err_set(err, VG_PARSE,
		                "archive object %s is corrupt: %lld bytes with "
		                "sha256 %s, the index says %lld bytes with %s",
		                path, size, hex, ix.size, ix.sha);
		goto out;
	}
	snprintf(res->sha256, sizeof(res->sha256), "%s", hex);
	res->compressed_bytes = size;
	if ((rc = restore_stream(&rs, err)))
		goto out;
	for (t = 0; t < 2; t++)
		if ((rc = flush_rows(&rs, t, err)))
			goto out;
	if (rs.inserted[0] != ix.batches || rs.inserted[1] != ix.findings ||
	    rs.end_counts[0] != ix.batches || rs.end_counts[1] != ix.findings) {
		rc = vg_err_set(err, VG_PARSE,
		                "archive object %s: %lld batches and %lld "
		                "findings, the index says %lld and %lld",
		                path, rs.inserted[0], rs.inserted[1],
		                ix.batches, ix.findings);
		goto out;
	}
	vg_db_res_free(r);
	r = NULL;
	if ((rc = vg_db_exec(c, "SELECT archive_unindex($1)", 1, run_p, NULL,
	                     err)) ||
	    (rc = vg_db_commit(c, err)))
		goto out;
	res->batches = rs.inserted[0];
	res->findings = rs.inserted[1];
	res->raw_bytes = rs.raw;
out:
	vg_db_res_free(r);
	if (rc != VG_OK || res->skipped)
		vg_db_rollback(c);
	vg_buf_cleanup(&rs.rows[0]);
	vg_buf_cleanup(&rs.rows[1]);
	return rc;
}

int archive_restore(struct vg_db_pool *db, const char *tenant, const char *run,
                    struct archive_result *res, struct vg_err *err)
{
	struct vg_db_conn *c = NULL;
	char *found = NULL, path[4096];
	const char *run_p[] = {run};
	int rc;

	memset(res, 0, sizeof(*res));
	pthread_once(&metrics_once, default_metrics);
	if (!vg_db_is_uuid(run) || (tenant && !vg_db_is_uuid(tenant)))
		return vg_err_set(err, VG_INVAL,
		                  "tenant and run ids must be UUIDs");
	if ((rc = vg_db_acquire(db, &c, err)) != VG_OK)
		return rc;
	if (!tenant) {
		rc = vg_db_query_value(c, "SELECT archived_run_tenant($1)", 1,
		                       run_p, &found, err);
		if (rc == VG_OK && !found)
			rc = vg_err_set(err, VG_NOTFOUND,
			                "run %s is not archived", run);
		tenant = found;
	}
	if (rc == VG_OK)
		rc = restore_once(c, tenant, run, res, err);
	vg_db_release(c);
	if (rc == VG_OK && !res->skipped) {
		/* committed: the rows are back, the object is a spare copy */
		snprintf(path, sizeof(path), "%s/%s", cfg.c.cold_dir,
		         res->object_key);
		if (unlink(path) != 0)
			vg_warn("cannot remove restored archive object", "path",
			        path, "err", strerror(errno));
		vg_counter_inc(cfg.restores);
	}
	free(found);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The task                                                             */
/* ------------------------------------------------------------------ */

/* Enqueue one archive task per run due, of `tenant` or (NULL) all. */
static int sweep(struct task_ctx *ctx, const char *tenant, struct vg_err *err)
{
	char retention[24], limit[16];
	const char *params[] = {tenant, retention, limit};
	struct vg_queue_msg *m = NULL;
	json_t **payloads = NULL;
	struct vg_db_conn *c = NULL;
	struct vg_db_res *r = NULL;
	int n = 0, rc;

	snprintf(retention, sizeof(retention), "%lld", cfg.c.retention_s);
	snprintf(limit, sizeof(limit), "%d", cfg.c.sweep_limit);
	if ((rc = vg_db_acquire(ctx->db, &c, err)) ||
	    (rc = vg_db_exec(c,
	                     "SELECT tenant_id, run_id FROM "
	                     "archive_candidates($1, $2, $3)",
	                     3, params, &r, err)))
		goto out;
	n = vg_db_res_rows(r);
	if (n == 0)
		goto out;
	m = calloc((size_t)n, sizeof(*m));
	payloads = calloc((size_t)n, sizeof(*payloads));
	if (!m || !payloads) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		payloads[i] = json_pack("{s:s,s:s}", "tenant_id",
		                        vg_db_res_get(r, i, 0), "run_id",
		                        vg_db_res_get(r, i, 1));
		if (!payloads[i]) {
			rc = vg_err_set(err, VG_NOMEM, "out of memory");
			goto out;
		}
		m[i] = (struct vg_queue_msg){
			.type = "archive",
			.payload = payloads[i],
			.request_id = ctx->task->request_id,
			.tenant = vg_db_res_get(r, i, 0),
		};
	}
	rc = vg_queue_enqueue_many(ctx->q, m, (size_t)n, err);
out:
	if (rc == VG_OK)
		snprintf(ctx->note, sizeof(ctx->note),
		         "%d runs due for archiving", n);
	for (int i = 0; payloads && i < n; i++)
		json_decref(payloads[i]);
	free(payloads);
	free(m);
	vg_db_res_free(r);
	vg_db_release(c);
	return rc;
}

static int payload_uuid(const json_t *p, const char *key, const char **out,
                        struct vg_err *err)
{
	json_t *v = json_object_get(p, key);

	*out = NULL;
	if (!v)
		return VG_OK;
	if (!json_is_string(v) || !vg_db_is_uuid(json_string_value(v)))
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"%s\" must be a UUID", key);
	*out = json_string_value(v);
	return VG_OK;
}

int archive_task(struct task_ctx *ctx, struct vg_err *err)
{
	const json_t *p = ctx->task->payload;
	const char *tenant, *run, *action = "archive", *key;
	struct archive_result res;
	json_t *v;
	int rc;

	if (!json_is_object(p))
		return vg_err_set(err, VG_INVAL, "payload: not an object");
	json_object_foreach((json_t *)p, key, v)
	{
		if (strcmp(key, "tenant_id") != 0 &&
		    strcmp(key, "run_id") != 0 && strcmp(key, "action") != 0)
			return vg_err_set(err, VG_INVAL,
			                  "payload: unknown key \"%s\"", key);
	}
	if ((rc = payload_uuid(p, "tenant_id", &tenant, err)) ||
	    (rc = payload_uuid(p, "run_id", &run, err)))
		return rc;
	v = json_object_get(p, "action");
	if (v && (!json_is_string(v) ||
	          (strcmp(json_string_value(v), "archive") != 0 &&
	           strcmp(json_string_value(v), "restore") != 0)))
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"action\" must be \"archive\" or "
		                  "\"restore\"");
	if (v)
		action = json_string_value(v);
	if (run && !tenant)
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"run_id\" needs \"tenant_id\"");
	if (!run && strcmp(action, "restore") == 0)
		return vg_err_set(err, VG_INVAL,
		                  "payload: restore needs \"run_id\"");
	if (ctx->task->tenant[0] &&
	    (!tenant || strcmp(ctx->task->tenant, tenant) != 0))
		return vg_err_set(
			err, VG_FORBIDDEN,
			"payload: tenant_id is not the task's tenant");
	if (!run)
		return sweep(ctx, tenant, err);
	if (strcmp(action, "restore") == 0)
		rc = archive_restore(ctx->db, tenant, run, &res, err);
	else
		rc = archive_run(ctx->db, tenant, run, &res, err);
	if (rc != VG_OK)
		return rc;
	if (res.skipped)
		snprintf(ctx->note, sizeof(ctx->note), "%s", res.skipped);
	else
		snprintf(ctx->note, sizeof(ctx->note),
		         "%s %lld findings, %lld batches (%lld bytes, %lld "
		         "compressed)",
		         action[0] == 'r' ? "restored" : "archived",
		         res.findings, res.batches, res.raw_bytes,
		         res.compressed_bytes);
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* The periodic sweep                                                   */
/* ------------------------------------------------------------------ */

struct archive_ticker {
	struct vg_db_pool *db;
	struct vg_queue *q;
	long long interval_s;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

static int claim_sweep(struct archive_ticker *t, struct vg_err *err)
{
	char iv[24];
	const char *params[] = {iv};
	struct vg_db_conn *c = NULL;
	char *v = NULL;
	int rc;

	snprintf(iv, sizeof(iv), "%lld", t->interval_s);
	if ((rc = vg_db_acquire(t->db, &c, err)) == VG_OK)
		rc = vg_db_query_value(c, "SELECT archive_sweep_claim($1)", 1,
		                       params, &v, err);
	vg_db_release(c);
	if (rc == VG_OK)
		rc = v && strcmp(v, "t") == 0 ? 1 : 0;
	free(v);
	return rc;
}

static void tick(struct archive_ticker *t)
{
	struct vg_err err = {0};
	json_t *p = NULL;
	int rc = claim_sweep(t, &err);

	if (rc == 1) {
		struct vg_queue_msg m = {.type = "archive"};

		p = json_object();
		m.payload = p;
		rc = p ? vg_queue_enqueue(t->q, &m, &err) : VG_NOMEM;
		if (rc == VG_OK)
			vg_info("archive sweep enqueued", "task_id", m.id);
	}
	if (rc < 0)
		/* this interval's sweep is skipped; the next one covers it */
		vg_warn("cannot start an archive sweep", "err", err.msg);
	json_decref(p);
}

static void *run_ticker(void *arg)
{
	struct archive_ticker *t = arg;
	long long every_ms = t->interval_s * 100; /* ten checks per interval */

	if (every_ms > 60000)
		every_ms = 60000;
	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		struct timespec until;

		pthread_mutex_unlock(&t->mu);
		tick(t);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += every_ms / 1000;
		until.tv_nsec += (every_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&t->mu);
		while (!t->stop &&
		       pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int archive_ticker_start(struct vg_db_pool *db, const struct vg_queue_opts *qo,
                         long long interval_s, struct archive_ticker **out,
                         struct vg_err *err)
{
	struct archive_ticker *t = calloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	if (!t)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	if (interval_s < 1) {
		free(t);
		return vg_err_set(err, VG_INVAL,
		                  "archive interval must be at least 1s");
	}
	t->db = db;
	t->interval_s = interval_s;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if ((rc = vg_queue_new(qo, &t->q, err)) != VG_OK)
		goto fail;
	if (pthread_create(&t->th, NULL, run_ticker, t) != 0) {
		rc = vg_err_sys(err, VG_INTERNAL, "archive ticker thread");
		goto fail;
	}
	*out = t;
	return VG_OK;
fail:
	vg_queue_free(t->q);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
	return rc;
}

void archive_ticker_stop(struct archive_ticker *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->th, NULL);
	vg_queue_free(t->q);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

/* ------------------------------------------------------------------ */
/* vigil-worker archive ...                                             */
/* ------------------------------------------------------------------ */

static void print_result(FILE *out, const char *action, const char *run,
                         const struct archive_result *r)
{
	json_t *j = json_pack("{s:s,s:s,s:s?,s:s,s:s,s:I,s:I,s:I,s:I}",
	                      "run_id", run, "action", action, "skipped",
	                      r->skipped, "object_key", r->object_key, "sha256",
	                      r->sha256, "findings", (json_int_t)r->findings,
	                      "batches", (json_int_t)r->batches, "raw_bytes",
	                      (json_int_t)r->raw_bytes, "compressed_bytes",
	                      (json_int_t)r->compressed_bytes);
	struct vg_buf b;

	vg_buf_init(&b, 0);
	if (j && vg_json_dumps(j, JSON_COMPACT, &b) == VG_OK)
		fprintf(out, "%s\n", vg_buf_str(&b));
	vg_buf_cleanup(&b);
	json_decref(j);
}

static int cli_run(struct vg_db_pool *db, struct vg_queue *q, char **argv,
                   FILE *out, struct vg_err *err)
{
	struct archive_result r;
	int rc = archive_run(db, argv[0], argv[1], &r, err);

	(void)q;
	if (rc == VG_OK)
		print_result(out, "archive", argv[1], &r);
	return rc;
}

static int cli_restore(struct vg_db_pool *db, struct vg_queue *q, char **argv,
                       FILE *out, struct vg_err *err)
{
	struct archive_result r;
	int rc = archive_restore(db, NULL, argv[0], &r, err);

	(void)q;
	if (rc == VG_OK)
		print_result(out, "restore", argv[0], &r);
	return rc;
}

static int cli_sweep(struct vg_db_pool *db, struct vg_queue *q, char **argv,
                     FILE *out, struct vg_err *err)
{
	struct vg_queue_msg m = {.type = "archive"};
	json_t *p = json_object();
	int rc;

	(void)db;
	(void)argv;
	m.payload = p;
	rc = p ? vg_queue_enqueue(q, &m, err)
	       : vg_err_set(err, VG_NOMEM, "out of memory");
	if (rc == VG_OK)
		fprintf(out, "{\"task_id\":\"%s\"}\n", m.id);
	json_decref(p);
	return rc;
}

static const struct {
	const char *name;
	int nargs;
	int (*run)(struct vg_db_pool *db, struct vg_queue *q, char **argv,
	           FILE *out, struct vg_err *err);
	const char *usage;
} cli[] = {
	{"run", 2, cli_run,
         "archive run TENANT_ID RUN_ID   archive one run now"},
	{"restore", 1, cli_restore,
         "archive restore RUN_ID          bring an archived run back"},
	{"sweep", 0, cli_sweep,
         "archive sweep                   enqueue a sweep of every tenant"},
};

int archive_main(struct vg_db_pool *db, struct vg_queue *q, int argc,
                 char **argv, FILE *out, FILE *errf)
{
	struct vg_err err = {0};

	for (size_t i = 0; argc > 0 && i < sizeof(cli) / sizeof(cli[0]); i++) {
		if (strcmp(argv[0], cli[i].name) != 0)
			continue;
		if (argc - 1 != cli[i].nargs)
			break;
		if (cli[i].run(db, q, argv + 1, out, &err) != VG_OK) {
			fprintf(errf, "archive %s: %s\n", cli[i].name, err.msg);
			return 1;
		}
		return 0;
	}
	fprintf(errf, "usage:\n");
	for (size_t i = 0; i < sizeof(cli) / sizeof(cli[0]); i++)
		fprintf(errf, "  vigil-worker %s\n", cli[i].usage);
	return 2;
}
