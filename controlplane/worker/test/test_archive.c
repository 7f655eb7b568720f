/* test_archive.c - the "archive" task against a real PostgreSQL and Redis:
 * old runs' findings move to zstd objects in cold storage (checked with the
 * zstd program and row by row), recent runs and other tenants stay, the
 * index is tenant-private, restore brings identical rows back, a crash
 * between the object and the commit converges, a corrupt object is refused
 * with nothing inserted, malformed payloads are dead-lettered, and the
 * periodic sweep starts once per interval however many workers run. */
#include "harness.h"

#include "archive.h"
#include "tasks.h"
#include "worker.h"

#include "vigil/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct vg_db_pool *app; /* vigil_app: what the worker logs in as */
static struct vg_metrics *reg;
static char ta[37], tb[37]; /* tenants */
static char cold[64];

static struct task_def fast_defs[8];
static size_t nfast;

static int setup(void **state)
{
	const struct task_def *d;
	struct archive_config ac = {.retention_s = 90LL * 86400};

	(void)state;
	if (start_services() != 0)
		return -1;
	snprintf(cold, sizeof(cold), "%s", "/tmp/vigil-cold-XXXXXX");
	if (!mkdtemp(cold))
		return -1;
	reg = vg_metrics_new();
	ac.cold_dir = cold;
	ac.metrics = reg;
	archive_configure(&ac);
	app = pool_as("vigil_app", 8);
	make_tenant("alpha", ta);
	make_tenant("beta", tb);
	d = task_defs(&nfast);
	for (size_t i = 0; i < nfast; i++) {
		fast_defs[i] = d[i];
		fast_defs[i].policy.max_attempts = 3;
		fast_defs[i].policy.backoff_base_ms = 20;
		fast_defs[i].policy.backoff_max_ms = 50;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	vg_db_pool_free(app);
	vg_metrics_free(reg);
	stop_services();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cold);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", cold);
	return 0;
}

static struct worker *start(const char *prefix)
{
	struct worker_config c = {
		.queue = {.port = redis.port,
	                  .prefix = prefix,
	                  .visibility_timeout_ms = 5000},
		.db = app,
		.defs = fast_defs,
		.ndefs = nfast,
		.concurrency = 2,
		.prefetch = 4,
		.block_ms = 200,
		.metrics = reg,
	};
	struct worker *w = NULL;
	struct vg_err err = {0};

	if (worker_new(&c, &w, &err) != VG_OK || worker_start(w, &err) != VG_OK)
		fail_msg("worker: %s", err.msg);
	return w;
}

static void stop(struct worker *w)
{
	worker_stop(w);
	assert_int_equal(worker_wait(w, 20000), VG_OK);
	worker_free(w);
}

/* ------------------------------------------------------------------ */
/* Data                                                                 */
/* ------------------------------------------------------------------ */

/* A run `days` old in `state`; finished an hour after its creation. */
static void old_run(const char *tenant, int days, const char *state, char *id)
{
	char d[16];
	const char *p[] = {tenant, state, d};
	char *v;

	snprintf(d, sizeof(d), "%d", days);
	v = su_str("INSERT INTO vigil.scan_runs (tenant_id, state, "
	           "created_at, started_at, finished_at, shards_done, "
	           "finding_counts) VALUES ($1, $2, "
	           "now() - make_interval(days => $3::int), "
	           "now() - make_interval(days => $3::int), "
	           "CASE WHEN $2 IN ('succeeded', 'failed', 'canceled') "
	           "THEN now() - make_interval(days => $3::int) + "
	           "interval '1 hour' END, 1, '{\"total\": 1}') RETURNING id",
	           3, p);
	snprintf(id, 37, "%s", v);
	free(v);
	/* its report stays when the findings go */
	su_exec("INSERT INTO vigil.reports (tenant_id, run_id, kind, state) "
	        "VALUES ($1, $2, 'run', 'ready')",
	        2, (const char *[]){tenant, id});
}

/* `n` findings in 3 batches, with what is easy to lose on the way: NULL
 * ports, quotes, newlines and non-ASCII text, numbers jsonb keeps exactly
 * (1.50, 30 digits), microsecond times. */
static void add_findings(const char *tenant, const char *run, int n)
{
	char c[16];
	const char *p[] = {tenant, run, c};

	snprintf(c, sizeof(c), "%d", n);
	su_exec("INSERT INTO vigil.ingest_batches (tenant_id, run_id, "
	        "batch_id, shard, findings, received_at) SELECT $1, $2, "
	        "'b-' || g, CASE WHEN g > 0 THEN g END, 100 * g, now() - "
	        "interval '100 days' + g * interval '1.000007 second' "
	        "FROM generate_series(0, 2) g",
	        2, p);
	su_exec("INSERT INTO vigil.findings (tenant_id, run_id, batch_id, "
	        "host, port, protocol, scanner, severity, fingerprint, title, "
	        "evidence, state, first_seen, last_seen) "
	        "SELECT $1, $2, 'b-' || (g % 3), '10.0.' || (g / 250) || '.' "
	        "|| (g % 250), CASE WHEN g % 7 <> 0 THEN 1 + g % 65535 END, "
	        "CASE WHEN g % 5 = 0 THEN 'udp' ELSE 'tcp' END, 'tls', "
	        "(ARRAY['info', 'low', 'medium', 'high', "
	        "'critical'])[1 + g % 5]::vigil.severity, 'fp-' || g, "
	        "'title \"' || g || E'\"\\n\\tü€', jsonb_build_object('n', g, "
	        "'ratio', 1.50, 'big', "
	        "123456789012345678901234567890::numeric, "
	        "'text', E'line\\nbreak \\\\ \"q\"', 'arr', "
	        "jsonb_build_array(1, 'two', NULL, true)), "
	        "(ARRAY['open', 'resolved', 'accepted', "
	        "'false_positive'])[1 + g % 4], now() - interval '100 days' - "
	        "g * interval '1.000001 second', now() - interval '99 days' - "
	        "g * interval '1 microsecond' "
	        "FROM generate_series(1, $3::int) g",
	        3, p);
}

#define FINDING_COLS                                                         \
	"id, tenant_id, run_id, batch_id, host, coalesce(port::text, "       \
	"'NULL'), "                                                          \
	"protocol, scanner, severity, fingerprint, title, evidence, state, " \
	"first_seen, last_seen"
#define BATCH_COLS                                                     \
	"tenant_id, run_id, batch_id, coalesce(shard::text, 'NULL'), " \
	"findings, received_at"

/* Every column of a run's rows, as one comparable string (new). */
static char *rows_sig(const char *run)
{
	const char *p[] = {run};

	return su_str("SELECT (SELECT count(*) || ':' || coalesce(md5("
	              "string_agg(concat_ws('|', " FINDING_COLS "), E'\\n' "
	              "ORDER BY id)), '') FROM vigil.findings WHERE run_id = "
	              "$1) || '/' || (SELECT count(*) || ':' || coalesce(md5("
	              "string_agg(concat_ws('|', " BATCH_COLS "), E'\\n' "
	              "ORDER BY batch_id)), '') FROM vigil.ingest_batches "
	              "WHERE run_id = $1)",
	              1, p);
}

/* The same of the rows in an object's lines (a JSON array of them). */
static char *lines_sig(const char *lines)
{
	const char *p[] = {lines};

	return su_str("SELECT (SELECT count(*) || ':' || coalesce(md5("
	              "string_agg(concat_ws('|', " FINDING_COLS "), E'\\n' "
	              "ORDER BY id)), '') FROM json_array_elements($1::json) "
	              "e, json_populate_record(NULL::vigil.findings, e->'row') "
	              "f WHERE e->>'table' = 'findings') || '/' || (SELECT "
	              "count(*) || ':' || coalesce(md5(string_agg(concat_ws("
	              "'|', " BATCH_COLS "), E'\\n' ORDER BY batch_id)), '') "
	              "FROM json_array_elements($1::json) e, "
	              "json_populate_record(NULL::vigil.ingest_batches, "
	              "e->'row') b WHERE e->>'table' = 'ingest_batches')",
	              1, p);
}

static long long count_of(const char *table, const char *run)
{
	char sql[128];
	const char *p[] = {run};

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM vigil.%s WHERE run_id = $1", table);
	return su_num(sql, 1, p);
}

static void object_path(const char *tenant, const char *run, char *out,
                        size_t n)
{
	const char *p[] = {run};
	char *year = su_str("SELECT to_char(created_at AT TIME ZONE 'UTC', "
	                    "'YYYY') FROM vigil.scan_runs WHERE id = $1",
	                    1, p);

	snprintf(out, n, "%s/%s/%s/%s.jsonl.zst", cold, tenant, year, run);
	free(year);
}

/* Decompress with the zstd program; the lines, new. */
static char *unzstd(const char *path)
{
	char cmd[512], buf[65536];
	struct vg_buf b;
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "zstd -q -d -c -- '%s'", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	vg_buf_init(&b, 0);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		assert_int_equal(vg_buf_append(&b, buf, n), VG_OK);
	assert_int_equal(pclose(f), 0);
	return vg_buf_take(&b);
}

/* Lines (all but the last newline-terminated) as a JSON array text. */
static char *as_array(const char *lines, int *nlines)
{
	struct vg_buf b;

	vg_buf_init(&b, 0);
	vg_buf_append_byte(&b, '[');
	*nlines = 0;
	for (const char *s = lines; *s;) {
		const char *nl = strchr(s, '\n');

		assert_non_null(nl);
		if (*nlines)
			vg_buf_append_byte(&b, ',');
		vg_buf_append(&b, s, (size_t)(nl - s));
		(*nlines)++;
		s = nl + 1;
	}
	vg_buf_append_byte(&b, ']');
	return vg_buf_take(&b);
}

static void file_sha256(const char *path, char hex[65], long long *size)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	*size = 0;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		EVP_DigestUpdate(c, buf, n);
		*size += (long long)n;
	}
	EVP_DigestFinal_ex(c, md, &len);
	for (unsigned i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	EVP_MD_CTX_free(c);
	fclose(f);
}

/* The object of an archived run checked against the index row and the
 * signature of the rows it replaced. */
static void check_object(const char *tenant, const char *run,
                         const char *sig_before, long long nfindings)
{
	char path[512], hex[65], *lines, *arr, *sig, *v;
	const char *p[] = {run};
	long long size;
	int nlines;
	json_t *first, *last;

	object_path(tenant, run, path, sizeof(path));
	file_sha256(path, hex, &size);
	v = su_str("SELECT encode(sha256, 'hex') || ' ' || compressed_bytes "
	           "|| ' ' || finding_count || ' ' || batch_count || ' ' || "
	           "format_version || ' ' || object_key FROM "
	           "vigil.archived_runs WHERE run_id = $1",
	           1, p);
	{
		char want[512];

		snprintf(want, sizeof(want), "%s %lld %lld 3 1 %s", hex, size,
		         nfindings, path + strlen(cold) + 1);
		assert_string_equal(v, want);
	}
	free(v);
	lines = unzstd(path);
	arr = as_array(lines, &nlines);
	assert_int_equal(nlines, nfindings + 3 + 2);
	sig = lines_sig(arr);
	assert_string_equal(sig, sig_before);
	/* header and trailer (the rows hold numbers jansson cannot) */
	{
		const char *end = strrchr(lines, '\n'), *lastl = end;

		while (lastl > lines && lastl[-1] != '\n')
			lastl--;
		first = json_loadb(lines, (size_t)(strchr(lines, '\n') - lines),
		                   0, NULL);
		last = json_loadb(lastl, (size_t)(end - lastl), 0, NULL);
		assert_non_null(first);
		assert_non_null(last);
		assert_string_equal(
			json_string_value(json_object_get(first, "format")),
			"vigil-archive");
		assert_string_equal(
			json_string_value(json_object_get(first, "run_id")),
			run);
		assert_true(json_is_true(json_object_get(last, "end")));
		assert_int_equal(
			json_integer_value(json_object_get(last, "findings")),
			nfindings);
		json_decref(first);
		json_decref(last);
	}
	free(sig);
	free(arr);
	free(lines);
}

/* The value of the sample line starting with `key`, -1 without one. */
static double metric(const char *key)
{
	struct vg_buf b;
	const char *p;
	double v = -1;

	vg_buf_init(&b, 0);
	vg_metrics_render(reg, &b);
	for (p = vg_buf_str(&b); p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, key, strlen(key)) == 0) {
			v = strtod(p + strlen(key), NULL);
			break;
		}
	vg_buf_cleanup(&b);
	return v;
}

/* Index rows vigil_app sees in a transaction of `tenant` (NULL: none). */
static long long index_rows_seen(const char *tenant, const char *run)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	const char *p[] = {run};
	char *v = NULL;
	long long n;

	if (vg_db_acquire(app, &c, &err) != VG_OK ||
	    vg_db_begin(c, tenant, 0, &err) != VG_OK ||
	    vg_db_query_value(c,
	                      run ? "SELECT count(*) FROM vigil.archived_runs "
	                            "WHERE run_id = $1"
	                          : "SELECT count(*) FROM vigil.archived_runs",
	                      run ? 1 : 0, run ? p : NULL, &v, &err) != VG_OK)
		fail_msg("index rows: %s", err.msg);
	vg_db_rollback(c);
	vg_db_release(c);
	n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

static void enqueue_archive(struct vg_queue *q, const char *tenant,
                            const char *run, const char *action)
{
	json_t *p = json_object();

	if (tenant)
		json_object_set_new(p, "tenant_id", json_string(tenant));
	if (run)
		json_object_set_new(p, "run_id", json_string(run));
	if (action)
		json_object_set_new(p, "action", json_string(action));
	enqueue(q, "archive", p, tenant);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* A tenant's sweep archives its old finished runs only; a full sweep then
 * the other tenant's; restore brings every row back as it was. */
static void test_archive_sweep_and_restore(void **state)
{
	(void)state;
	struct worker *w = start("a-sweep");
	struct vg_queue *q = open_q("a-sweep");
	char r_old[37], r_recent[37], r_running[37], b_old[37], b_recent[37];
	char r_ing[37], path[512], *sig_old, *sig_recent, *sig_running, *sig_b;
	char *sig_ing, *s;
	const char *p_old[] = {r_old}, *p_ing[] = {r_ing};
	json_t *p;
	struct archive_result res;
	struct vg_err err = {0};
	struct stat st1, st2;

	old_run(ta, 100, "succeeded", r_old);
	add_findings(ta, r_old, 2500); /* several fetches and inserts */
	old_run(ta, 10, "succeeded", r_recent);
	add_findings(ta, r_recent, 5);
	old_run(ta, 100, "running", r_running);
	add_findings(ta, r_running, 4);
	old_run(tb, 120, "failed", b_old);
	add_findings(tb, b_old, 7);
	old_run(tb, 1, "succeeded", b_recent);
	add_findings(tb, b_recent, 3);
	/* one run through the worker's own ingest and finalize, then aged */
	make_run(ta, 1, r_ing);
	p = ingest_payload(ta, r_ing, "ing-b1", 20, 1);
	enqueue(q, "ingest", p, ta);
	json_decref(p);
	wait_count("SELECT count(*) FROM vigil.scan_runs WHERE id = $1 AND "
	           "state = 'succeeded'",
	           1, p_ing, 1, 30000);
	wait_drained(q, 30000);
	su_exec("UPDATE vigil.scan_runs SET created_at = created_at - "
	        "interval '91 days', finished_at = finished_at - "
	        "interval '91 days' WHERE id = $1",
	        1, p_ing);
	sig_ing = rows_sig(r_ing);
	sig_old = rows_sig(r_old);
	sig_recent = rows_sig(r_recent);
	sig_running = rows_sig(r_running);
	sig_b = rows_sig(b_old);

	enqueue_archive(q, ta, NULL, NULL);
	wait_drained(q, 30000);

	assert_int_equal(count_of("findings", r_old), 0);
	assert_int_equal(count_of("ingest_batches", r_old), 0);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.scan_runs WHERE "
	                        "id = $1 AND archived_at IS NOT NULL",
	                        1, p_old),
	                 1);
	/* the run and its report stay */
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports WHERE "
	                        "run_id = $1",
	                        1, p_old),
	                 1);
	check_object(ta, r_old, sig_old, 2500);
	assert_int_equal(count_of("findings", r_ing), 0);
	/* untouched: recent, still running, the other tenant */
	s = rows_sig(r_recent);
	assert_string_equal(s, sig_recent);
	free(s);
	s = rows_sig(r_running);
	assert_string_equal(s, sig_running);
	free(s);
	s = rows_sig(b_old);
	assert_string_equal(s, sig_b);
	free(s);
	object_path(ta, r_recent, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
	object_path(tb, b_old, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(
		su_num("SELECT count(*) FROM vigil.archived_runs", 0, NULL), 2);

	/* row-level security on the index */
	assert_int_equal(index_rows_seen(ta, NULL), 2);
	assert_int_equal(index_rows_seen(tb, NULL), 0);
	assert_int_equal(index_rows_seen(tb, r_old), 0);
	assert_int_equal(index_rows_seen(NULL, NULL), 0);

	assert_true(metric("vigil_archive_runs_total ") == 2);
	assert_true(metric("vigil_archive_bytes_total{kind=\"raw\"} ") ==
	            (double)su_num("SELECT sum(raw_bytes) FROM "
	                           "vigil.archived_runs",
	                           0, NULL));
	assert_true(metric("vigil_archive_bytes_total{kind=\"compressed\"} ") ==
	            (double)su_num("SELECT sum(compressed_bytes) FROM "
	                           "vigil.archived_runs",
	                           0, NULL));

	/* every tenant: beta's old run goes, alpha's archived one is left
	 * alone */
	object_path(ta, r_old, path, sizeof(path));
	assert_int_equal(stat(path, &st1), 0);
	enqueue_archive(q, NULL, NULL, NULL);
	wait_drained(q, 30000);
	check_object(tb, b_old, sig_b, 7);
	assert_int_equal(count_of("findings", b_old), 0);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(index_rows_seen(tb, NULL), 1);
	assert_int_equal(index_rows_seen(tb, r_old), 0);
	assert_int_equal(index_rows_seen(ta, b_old), 0);
	assert_int_equal(count_of("findings", r_recent), 5);
	assert_int_equal(count_of("findings", b_recent), 3);

	/* restore: identical rows, index row gone, object removed */
	enqueue_archive(q, ta, r_old, "restore");
	enqueue_archive(q, ta, r_ing, "restore");
	wait_drained(q, 30000);
	s = rows_sig(r_old);
	assert_string_equal(s, sig_old);
	free(s);
	s = rows_sig(r_ing);
	assert_string_equal(s, sig_ing);
	free(s);
	assert_int_equal(index_rows_seen(ta, NULL), 0);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.scan_runs WHERE "
	                        "id = $1 AND archived_at IS NULL AND "
	                        "restored_at IS NOT NULL",
	                        1, p_old),
	                 1);
	assert_int_equal(access(path, F_OK), -1);
	assert_true(metric("vigil_archive_restores_total ") == 2);
	/* a restored run stays for another retention period; restoring
	 * again has nothing to do */
	assert_int_equal(archive_run(app, ta, r_old, &res, &err), VG_OK);
	assert_string_equal(res.skipped, "run within retention");
	assert_int_equal(archive_restore(app, ta, r_old, &res, &err), VG_OK);
	assert_string_equal(res.skipped, "restored before");
	/* beta's, through the lookup of its tenant (the CLI's way) */
	assert_int_equal(archive_restore(app, NULL, b_old, &res, &err), VG_OK);
	assert_null(res.skipped);
	assert_int_equal(res.findings, 7);
	s = rows_sig(b_old);
	assert_string_equal(s, sig_b);
	free(s);
	assert_int_equal(
		su_num("SELECT count(*) FROM vigil.archived_runs", 0, NULL), 0);
	free(sig_ing);
	free(sig_old);
	free(sig_recent);
	free(sig_running);
	free(sig_b);
	vg_queue_free(q);
	stop(w);
}

static pid_t archive_in_child(const char *tenant, const char *run)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct vg_db_pool *p = pool_as("vigil_app", 1);
		struct archive_result res;
		struct vg_err err = {0};

		archive_run(p, tenant, run, &res, &err);
		_exit(0);
	}
	return pid;
}

/* Entries of `dir` that are temporaries (".<run>.jsonl.zst.tmp"). */
static int temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".tmp"))
			n++;
	closedir(d);
	return n;
}

/* The archiver killed after its object is in place, before its
 * transaction commits: the rows are still there, and the next attempt
 * (a redelivery) writes the object again and commits; one object, one
 * index row. An attempt after the commit has nothing to do. */
static void test_crash_between_object_and_commit(void **state)
{
	(void)state;
	char run[37], path[512], dir[512], tmp[600], *sig, *s;
	const char *idx[] = {ta, run};
	struct run_lock blocker = {0};
	struct archive_result res;
	struct vg_err err = {0};
	struct stat st1, st2;
	long long t0;
	pid_t child;
	int status, fd;

	old_run(ta, 200, "succeeded", run);
	add_findings(ta, run, 50);
	sig = rows_sig(run);
	object_path(ta, run, path, sizeof(path));
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';

	/* killed while another transaction holds the run: it waited
	 * before writing anything */
	lock_run(&blocker, run);
	child = archive_in_child(ta, run);
	wait_lock_waiters(1, 20000);
	assert_int_equal(kill(child, SIGKILL), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	unlock_run(&blocker);
	assert_int_equal(access(path, F_OK), -1);

	/* an uncommitted index row of the same run holds the archiver at
	 * its INSERT, after the object was renamed into place */
	blocker.p = pool_as("postgres", 1);
	if (vg_db_acquire(blocker.p, &blocker.c, &err) != VG_OK ||
	    vg_db_begin(blocker.c, NULL, 0, &err) != VG_OK ||
	    vg_db_exec(blocker.c,
	               "INSERT INTO vigil.archived_runs (tenant_id, run_id, "
	               "object_key, sha256, raw_bytes, compressed_bytes, "
	               "finding_count, batch_count, format_version) VALUES "
	               "($1::uuid, $2::uuid, $1::text || '/2000/' || "
	               "$2::text || '.jsonl.zst', "
	               "sha256(''), 0, 0, 0, 0, 1)",
	               2, idx, NULL, &err) != VG_OK)
		fail_msg("blocker: %s", err.msg);
	child = archive_in_child(ta, run);
	t0 = mono_ms();
	while (access(path, F_OK) != 0) {
		if (mono_ms() - t0 > 20000)
			fail_msg("the archiver never wrote %s", path);
		sleep_ms(20);
	}
	wait_lock_waiters(1, 20000);
	assert_int_equal(kill(child, SIGKILL), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	unlock_run(&blocker);

	/* killed before the commit: everything is still in the database */
	assert_int_equal(access(path, F_OK), 0);
	s = rows_sig(run);
	assert_string_equal(s, sig);
	free(s);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.archived_runs "
	                        "WHERE run_id = $1",
	                        1, idx + 1),
	                 0);

	/* and a crash in the middle of writing leaves a partial temporary */
	snprintf(tmp, sizeof(tmp), "%s/.%s.jsonl.zst.tmp", dir, run);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage", 7), 7);
	close(fd);

	/* the redelivery converges */
	assert_int_equal(archive_run(app, ta, run, &res, &err), VG_OK);
	assert_null(res.skipped);
	assert_int_equal(res.findings, 50);
	check_object(ta, run, sig, 50);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.archived_runs "
	                        "WHERE run_id = $1",
	                        1, idx + 1),
	                 1);
	assert_int_equal(count_of("findings", run), 0);

	/* after the commit: nothing to do, the object untouched */
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(archive_run(app, ta, run, &res, &err), VG_OK);
	assert_string_equal(res.skipped, "archived before");
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.archived_runs "
	                        "WHERE run_id = $1",
	                        1, idx + 1),
	                 1);

	/* restore it so later tests start from the same state */
	assert_int_equal(archive_restore(app, ta, run, &res, &err), VG_OK);
	s = rows_sig(run);
	assert_string_equal(s, sig);
	free(s);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(temporaries(dir), 0);
	free(sig);
}

struct dead_seen {
	int n;
	char errors[8][512];
};

static int collect(const struct vg_dead *d, void *arg)
{
	struct dead_seen *s = arg;

	if (s->n < 8)
		snprintf(s->errors[s->n], sizeof(s->errors[0]), "%s", d->error);
	s->n++;
	return 0;
}

static struct dead_seen dead_letters(struct vg_queue *q)
{
	struct dead_seen s = {0};
	struct vg_err err = {0};

	assert_int_equal(vg_queue_dlq_list(q, NULL, 0, collect, &s, &err),
	                 VG_OK);
	return s;
}

static void flip_byte(const char *path, long long at)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

/* One byte flipped in the object: restore refuses it with a clear error
 * and inserts nothing; the task is dead-lettered. The byte put back, the
 * restore succeeds. */
static void test_corrupt_object_refused(void **state)
{
	(void)state;
	char run[37], path[512], *sig, *s;
	const char *p[] = {run};
	struct archive_result res;
	struct vg_err err = {0};
	struct stat st;
	struct worker *w;
	struct vg_queue *q;
	struct dead_seen dead;

	old_run(ta, 150, "canceled", run);
	add_findings(ta, run, 300);
	sig = rows_sig(run);
	assert_int_equal(archive_run(app, ta, run, &res, &err), VG_OK);
	assert_null(res.skipped);
	object_path(ta, run, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	flip_byte(path, st.st_size / 2);

	assert_int_equal(archive_restore(app, ta, run, &res, &err), VG_PARSE);
	assert_non_null(strstr(err.msg, "is corrupt"));
	assert_non_null(strstr(err.msg, "sha256"));
	assert_int_equal(count_of("findings", run), 0);
	assert_int_equal(count_of("ingest_batches", run), 0);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.archived_runs "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);

	w = start("a-corrupt");
	q = open_q("a-corrupt");
	enqueue_archive(q, ta, run, "restore");
	wait_drained(q, 30000);
	dead = dead_letters(q);
	assert_int_equal(dead.n, 1);
	assert_non_null(strstr(dead.errors[0], "VG_PARSE"));
	assert_non_null(strstr(dead.errors[0], "is corrupt"));
	assert_int_equal(count_of("findings", run), 0);
	vg_queue_free(q);
	stop(w);

	flip_byte(path, st.st_size / 2);
	assert_int_equal(archive_restore(app, ta, run, &res, &err), VG_OK);
	s = rows_sig(run);
	assert_string_equal(s, sig);
	free(s);
	free(sig);
}

/* Payloads that can never succeed go to the dead letters at once, each
 * with a message that says what is wrong. */
static void test_malformed_payloads(void **state)
{
	(void)state;
	struct worker *w = start("a-bad");
	struct vg_queue *q = open_q("a-bad");
	char run[37];
	static const char *const want[] = {
		"not an object",
		"\"tenant_id\" must be a UUID",
		"\"run_id\" needs \"tenant_id\"",
		"\"action\" must be \"archive\" or \"restore\"",
		"unknown key \"days\"",
		"restore needs \"run_id\"",
		"is not archived",
	};
	struct dead_seen dead;
	json_t *p;

	old_run(ta, 5, "succeeded", run);
	p = json_pack("[i]", 1);
	enqueue(q, "archive", p, NULL);
	json_decref(p);
	p = json_pack("{s:s}", "tenant_id", "nope");
	enqueue(q, "archive", p, NULL);
	json_decref(p);
	enqueue_archive(q, NULL, run, NULL);
	enqueue_archive(q, ta, run, "explode");
	p = json_pack("{s:s,s:i}", "tenant_id", ta, "days", 3);
	enqueue(q, "archive", p, ta);
	json_decref(p);
	enqueue_archive(q, ta, NULL, "restore");
	enqueue_archive(q, ta, run, "restore");
	wait_drained(q, 30000);
	dead = dead_letters(q);
	assert_int_equal(dead.n, 7);
	for (int i = 0; i < 7; i++) {
		int found = 0;

		for (int j = 0; j < 7; j++)
			found |= strstr(dead.errors[j], want[i]) != NULL;
		if (!found)
			fail_msg("no dead letter says %s", want[i]);
	}
	vg_queue_free(q);
	stop(w);
}

/* Two workers' tickers with a 1 s interval for 2.5 s: at most one sweep
 * per interval between them (each checks ten times per interval). */
static void test_sweep_once_per_interval(void **state)
{
	(void)state;
	struct vg_queue_opts qo = {.port = redis.port, .prefix = "a-tick"};
	struct archive_ticker *t1 = NULL, *t2 = NULL;
	struct vg_queue *q = open_q("a-tick");
	struct vg_err err = {0};
	struct vg_queue_stats s;

	su_exec("UPDATE vigil.archive_sweeps SET last_at = NULL", 0, NULL);
	assert_int_equal(archive_ticker_start(app, &qo, 1, &t1, &err), VG_OK);
	assert_int_equal(archive_ticker_start(app, &qo, 1, &t2, &err), VG_OK);
	sleep_ms(2500);
	archive_ticker_stop(t1);
	archive_ticker_stop(t2);
	s = qstats(q);
	if (s.ready < 1 || s.ready > 3)
		fail_msg("%lld sweeps in 2.5 s with a 1 s interval", s.ready);
	vg_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_archive_sweep_and_restore),
		cmocka_unit_test(test_crash_between_object_and_commit),
		cmocka_unit_test(test_corrupt_object_refused),
		cmocka_unit_test(test_malformed_payloads),
		cmocka_unit_test(test_sweep_once_per_interval),
	};

	vg_log_set_level(VG_LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
