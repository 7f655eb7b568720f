/* report_db.c - load, analyse, render and store one run report.
 *
 * Two transactions of the run's tenant (row-level security): a read-only
 * one that loads everything, and a short one that upserts the report row.
 * Rendering happens between them, holding no connection. The findings of
 * the run, of the previous run and (aggregated per fingerprint) of earlier
 * runs arrive through a cursor, 20,000 rows a fetch (the next one asked
 * for before the last is added), so memory holds the deduplicated
 * findings and never a whole result set; protocol, scanner and title are
 * read afterwards for the findings the report lists. */
#include "report_db.h"

#include "report.h"
#include "vigil/buf.h"
#include "vigil/timeutil.h"

#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

/* about 7 x smaller than the HTML at a few ms per report (README.md) */
#define REPORT_ZSTD_LEVEL 9

#define FETCH_ROWS     "20000"
#define DEFAULT_TREND  10
#define MAX_TREND      100
#define MAX_ERROR_TEXT 1000

#define TS_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

static const struct vg_db_stmt sel_run = {
	.name = "brain_sel_run",
	.nparams = 1,
	.sql = "SELECT r.state, r.policy_namespace, r.policy_name, "
	       "r.policy_uid, r.created_at::text, "
	       "coalesce(to_char(r.created_at AT TIME ZONE 'UTC', " TS_FMT
	       "), ''), "
	       "coalesce(to_char(r.finished_at AT TIME ZONE 'UTC', " TS_FMT
	       "), ''), "
	       "coalesce(t.name, ''), coalesce(rep.state, '') "
	       "FROM scan_runs r "
	       "LEFT JOIN tenants t ON t.id = r.tenant_id "
	       "LEFT JOIN reports rep ON rep.tenant_id = r.tenant_id "
	       "AND rep.run_id = r.id AND rep.kind = 'run' "
	       "WHERE r.id = $1",
};

/* The policy's finished runs before this one, newest first, with their
 * counts (from finalize, else counted) and, when their report is ready,
 * what it found new and resolved. */
#define COUNT_OF(sev)                                                       \
	"CASE WHEN r.finding_counts ? 'total' THEN "                        \
	"(r.finding_counts->>'" sev "')::bigint ELSE (SELECT count(*) "     \
	"FROM findings f WHERE f.tenant_id = r.tenant_id AND f.run_id = "   \
	"r.id AND f.severity = '" sev "') END"

static const struct vg_db_stmt sel_earlier = {
	.name = "brain_sel_earlier",
	.nparams = 6,
	.sql = "SELECT r.id, "
	       "to_char(r.created_at AT TIME ZONE 'UTC', " TS_FMT "), " COUNT_OF(
		       "info") ", " COUNT_OF("low") ", " COUNT_OF(
		       "medium") ", " COUNT_OF("high") ", " COUNT_OF("critical") ", "
	       "(rep.summary #>> '{counts,by_class,new}')::bigint + "
	       "(rep.summary #>> '{counts,by_class,regressed}')::bigint, "
	       "(rep.summary #>> '{counts,by_class,resolved}')::bigint "
	       "FROM scan_runs r "
	       "LEFT JOIN reports rep ON rep.tenant_id = r.tenant_id "
	       "AND rep.run_id = r.id AND rep.kind = 'run' "
	       "AND rep.state = 'ready' "
	       "WHERE r.tenant_id = $1 AND r.policy_uid = $2 "
	       "AND ($2 <> '' OR (r.policy_namespace = $3 "
	       "AND r.policy_name = $4)) "
	       "AND r.state = 'succeeded' AND r.id <> $5 "
	       "AND (r.created_at, r.id) < ($6::timestamptz, $5::uuid) "
	       "ORDER BY r.created_at DESC, r.id DESC",
};

/* Findings absent from the run before, and of the run before absent from
 * this one: the trend of runs whose report is not there to say. */
static const struct vg_db_stmt sel_pair_diff = {
	.name = "brain_sel_pair_diff",
	.nparams = 3,
	.sql = "SELECT (SELECT count(*) FROM findings c "
	       "WHERE c.tenant_id = $1 AND c.run_id = $2 AND NOT EXISTS "
	       "(SELECT 1 FROM findings p WHERE p.tenant_id = $1 "
	       "AND p.run_id = $3 AND p.fingerprint = c.fingerprint)), "
	       "(SELECT count(*) FROM findings p "
	       "WHERE p.tenant_id = $1 AND p.run_id = $3 AND NOT EXISTS "
	       "(SELECT 1 FROM findings c WHERE c.tenant_id = $1 "
	       "AND c.run_id = $2 AND c.fingerprint = p.fingerprint))",
};

/* role 1: this run, 2: the previous run (one scan for both), what the
 * analysis needs of every finding; 4: earlier runs, fingerprints and
 * first sightings only, grouped when several runs can repeat one. Times
 * as whole seconds: date_part is a double, extract() a slow numeric.
 * Titles and the like are fetched later for the listed findings only. */
#define FINDINGS_CUR_PREV                                                 \
	"DECLARE brain_findings NO SCROLL CURSOR FOR "                    \
	"SELECT CASE WHEN run_id = $2 THEN 1 ELSE 2 END, fingerprint, "   \
	"host, port, severity, "                                          \
	"floor(date_part('epoch', first_seen))::int8 "                    \
	"FROM findings WHERE tenant_id = $1 AND run_id IN ($2, $3) "      \
	"UNION ALL "

static const char declare_findings_grouped[] =
	FINDINGS_CUR_PREV
	"SELECT 4, fingerprint, NULL, NULL, NULL, "
	"floor(date_part('epoch', min(first_seen)))::int8 "
	"FROM findings WHERE tenant_id = $1 AND run_id = ANY ($4::uuid[]) "
	"GROUP BY fingerprint";

/* one earlier run: its rows are one per fingerprint already */
static const char declare_findings_one[] =
	FINDINGS_CUR_PREV
	"SELECT 4, fingerprint, NULL, NULL, NULL, "
	"floor(date_part('epoch', first_seen))::int8 "
	"FROM findings WHERE tenant_id = $1 AND run_id = ANY ($4::uuid[])";

static const struct vg_db_stmt sel_details = {
	.name = "brain_sel_details",
	.nparams = 3,
	/* one index probe per listed finding (LIMIT 1 keeps the planner
	 * from scanning the whole run for a few thousand of them) */
	.sql = "SELECT u.fp, f.protocol, f.scanner, f.title "
	       "FROM unnest($3::text[]) AS u(fp) CROSS JOIN LATERAL "
	       "(SELECT protocol, scanner, title FROM findings "
	       "WHERE tenant_id = $1 AND run_id = $2 AND fingerprint = u.fp "
	       "LIMIT 1) f",
};

static const struct vg_db_stmt upsert_report = {
	.name = "brain_upsert_report",
	.nparams = 5,
	.sql = "INSERT INTO reports AS r (tenant_id, run_id, kind, format, "
	       "state, summary, content, content_type, request_id, "
	       "content_encoding, completed_at, error) "
	       "VALUES ($1, $2, 'run', 'json', 'ready', $3::jsonb, "
	       "decode($4, 'hex'), 'text/html; charset=utf-8', $5, 'zstd', "
	       "now(), '') "
	       "ON CONFLICT (tenant_id, run_id) WHERE kind = 'run' DO UPDATE "
	       "SET state = 'ready', format = 'json', "
	       "summary = EXCLUDED.summary, content = EXCLUDED.content, "
	       "content_type = EXCLUDED.content_type, "
	       "content_encoding = EXCLUDED.content_encoding, "
	       "completed_at = now(), error = '', "
	       "request_id = CASE WHEN r.request_id = '' "
	       "THEN EXCLUDED.request_id ELSE r.request_id END "
	       "RETURNING r.id, r.xmax = 0",
};

static const struct vg_db_stmt mark_failed = {
	.name = "brain_mark_failed",
	.nparams = 4,
	.sql = "INSERT INTO reports AS r (tenant_id, run_id, kind, format, "
	       "state, error, request_id, completed_at) "
	       "SELECT $1, id, 'run', 'json', 'failed', $3, $4, now() "
	       "FROM scan_runs WHERE id = $2 "
	       "ON CONFLICT (tenant_id, run_id) WHERE kind = 'run' DO UPDATE "
	       "SET state = 'failed', error = EXCLUDED.error, "
	       "completed_at = now() WHERE r.state <> 'ready'",
};

static const struct vg_db_stmt unclaim = {
	.name = "brain_unclaim",
	.nparams = 1,
	.sql = "UPDATE reports SET queued_at = NULL "
	       "WHERE run_id = $1 AND kind = 'run' AND state = 'pending'",
};

/* ------------------------------------------------------------------ */
/* Loading                                                              */
/* ------------------------------------------------------------------ */

struct load {
	const struct report_params *p;
	const struct analysis_opts *ao;
	/* out */
	struct analysis *a;
	/* the run's row, and its columns borrowed from it */
	struct vg_db_res *run_row;
	const char *state, *ns, *name, *uid, *created_raw, *created;
	const char *finished, *tenant_name;
	char prev[37];
	int skip, unfinished;
	struct trend_point *trend; /* oldest first, this run last */
	size_t ntrend;
	struct vg_buf earlier; /* "{id,id,...}" */
	int nearlier;
};

static void load_reset(struct load *l)
{
	analysis_free(l->a);
	l->a = NULL;
	vg_db_res_free(l->run_row);
	l->run_row = NULL;
	free(l->trend);
	l->trend = NULL;
	l->ntrend = 0;
	l->prev[0] = '\0';
	l->skip = l->unfinished = 0;
	vg_buf_reset(&l->earlier);
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static long num(const char *s)
{
	return s ? strtol(s, NULL, 10) : -1;
}

static int load_run(struct vg_db_conn *c, struct load *l, struct vg_err *err)
{
	const char *params[] = {l->p->run};
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec_stmt(c, &sel_run, params, &r, err);

	if (rc != VG_OK)
		return rc;
	if (vg_db_res_rows(r) != 1) {
		vg_db_res_free(r);
		return vg_err_set(err, VG_NOTFOUND, "run %s not found",
		                  l->p->run);
	}
	/* NOT NULL columns, or coalesced */
	l->run_row = r;
	l->state = vg_db_res_get(r, 0, 0);
	l->ns = vg_db_res_get(r, 0, 1);
	l->name = vg_db_res_get(r, 0, 2);
	l->uid = vg_db_res_get(r, 0, 3);
	l->created_raw = vg_db_res_get(r, 0, 4);
	l->created = vg_db_res_get(r, 0, 5);
	l->finished = vg_db_res_get(r, 0, 6);
	l->tenant_name = vg_db_res_get(r, 0, 7);
	l->skip = !l->p->force &&
	          strcmp(vg_db_res_get(r, 0, 8), "ready") == 0;
	l->unfinished = strcmp(l->state, "pending") == 0 ||
	                strcmp(l->state, "running") == 0;
	return VG_OK;
}

static void point_from_row(struct trend_point *t, const struct vg_db_res *r,
                           int row)
{
	copy(t->run_id, sizeof(t->run_id), vg_db_res_get(r, row, 0));
	copy(t->created_at, sizeof(t->created_at), vg_db_res_get(r, row, 1));
	t->total = 0;
	for (int s = 0; s < SEV_N; s++) {
		t->counts[s] = num(vg_db_res_get(r, row, 2 + s));
		if (t->counts[s] < 0)
			t->counts[s] = 0;
		t->total += t->counts[s];
	}
	t->appeared = vg_db_res_get(r, row, 7) ? num(vg_db_res_get(r, row, 7))
	                                       : -2; /* to count */
	t->resolved = vg_db_res_get(r, row, 8) ? num(vg_db_res_get(r, row, 8))
	                                       : -2;
}

/* The policy's earlier runs: the previous one, the rest for history, and
 * the trend's points with what their reports say. */
static int load_earlier(struct vg_db_conn *c, struct load *l,
                        struct vg_err *err)
{
	const char *params[] = {l->p->tenant, l->uid,        l->ns,
	                        l->name,      l->p->run,     l->created_raw};
	int want = l->p->trend_runs > 0 ? l->p->trend_runs : DEFAULT_TREND;
	struct vg_db_res *r = NULL;
	int rows, rc, npts;

	if (want > MAX_TREND)
		want = MAX_TREND;
	if ((rc = vg_db_exec_stmt(c, &sel_earlier, params, &r, err)) != VG_OK)
		return rc;
	rows = vg_db_res_rows(r);
	l->nearlier = rows > 1 ? rows - 1 : 0;
	if (rows > 0)
		copy(l->prev, sizeof(l->prev), vg_db_res_get(r, 0, 0));
	rc = vg_buf_append_byte(&l->earlier, '{');
	for (int i = 1; !rc && i < rows; i++)
		rc = vg_buf_appendf(&l->earlier, "%s%s", i > 1 ? "," : "",
		                    vg_db_res_get(r, i, 0));
	if (!rc)
		rc = vg_buf_append_byte(&l->earlier, '}');
	npts = rows < want - 1 ? rows : want - 1;
	l->trend = calloc((size_t)npts + 1, sizeof(*l->trend));
	if (rc || !l->trend) {
		vg_db_res_free(r);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	/* rows are newest first; the trend oldest first */
	for (int i = 0; i < npts; i++) {
		struct trend_point *t = &l->trend[npts - 1 - i];

		point_from_row(t, r, i);
		if (i + 1 >= rows)
			t->appeared = t->resolved = -1; /* the first run */
		else if (t->appeared == -2 || t->resolved == -2) {
			const char *pp[] = {l->p->tenant, t->run_id,
			                    vg_db_res_get(r, i + 1, 0)};
			struct vg_db_res *d = NULL;

			rc = vg_db_exec_stmt(c, &sel_pair_diff, pp, &d, err);
			if (rc != VG_OK)
				break;
			t->appeared = num(vg_db_res_get(d, 0, 0));
			t->resolved = num(vg_db_res_get(d, 0, 1));
			vg_db_res_free(d);
		}
	}
	l->ntrend = (size_t)npts + 1;
	vg_db_res_free(r);
	return rc;
}

static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int add_rows(struct load *l, const PGresult *r, struct vg_err *err)
{
	for (int i = 0; i < PQntuples(r); i++) {
		const char *port = val(r, i, 3), *seen = val(r, i, 5);
		struct finding_row f = {
			.fingerprint = val(r, i, 1),
			.host = val(r, i, 2),
			.port = port ? (int)strtol(port, NULL, 10) : -1,
			.first_seen = seen ? (double)strtoll(seen, NULL, 10) : 0,
		};
		int role = (int)strtol(PQgetvalue(r, i, 0), NULL, 10), rc;

		if (role == RUN_EARLIER)
			f.severity = SEV_INFO; /* history: only its dates */
		else if (severity_parse(val(r, i, 4), &f.severity) != VG_OK)
			return vg_err_set(err, VG_INTERNAL,
			                  "unknown severity \"%s\"",
			                  PQgetvalue(r, i, 4));
		if ((rc = analysis_add(l->a, (enum run_role)role, &f, err)))
			return rc;
	}
	return VG_OK;
}

/* The next FETCH's result (NULL with `err` set on failure). */
static PGresult *fetch_result(PGconn *pg, struct vg_err *err)
{
	PGresult *r = NULL, *t;

	while ((t = PQgetResult(pg))) {
		if (r)
			PQclear(t);
		else
			r = t;
	}
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	if (PQstatus(pg) == CONNECTION_BAD)
		vg_err_set(err, VG_IO, "fetch findings: connection lost");
	else
		vg_err_set(err, VG_DB, "fetch findings: %s",
		           r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
	PQclear(r);
	return NULL;
}

/* Read the cursor to its end, asking for the next batch before adding
 * the one at hand: the server produces rows while the analysis takes
 * them in. */
static int fetch_all(struct vg_db_conn *c, struct load *l, struct vg_err *err)
{
	static const char fetch[] = "FETCH " FETCH_ROWS " FROM brain_findings";
	PGconn *pg = vg_db_conn_pg(c);
	int rc = VG_OK;

	if (!PQsendQuery(pg, fetch))
		return vg_err_set(err, VG_IO, "fetch findings: %s",
		                  PQerrorMessage(pg));
	for (;;) {
		PGresult *r = fetch_result(pg, err);
		int n;

		if (!r)
			return err ? err->code : VG_DB;
		n = PQntuples(r);
		if (n > 0 && !PQsendQuery(pg, fetch))
			rc = vg_err_set(err, VG_IO, "fetch findings: %s",
			                PQerrorMessage(pg));
		if (rc == VG_OK)
			rc = add_rows(l, r, err);
		PQclear(r);
		if (rc != VG_OK || n == 0) {
			PGresult *t;

			while ((t = PQgetResult(pg))) /* the batch asked for */
				PQclear(t);
			return rc;
		}
	}
}

static int load_findings(struct vg_db_conn *c, struct load *l,
                         struct vg_err *err)
{
	const char *params[] = {l->p->tenant, l->p->run,
	                        l->prev[0] ? l->prev : NULL,
	                        vg_buf_str(&l->earlier)};
	int rc;

	if ((rc = analysis_new(&l->a, err)) != VG_OK)
		return rc;
	/* the planner takes cursors for "first rows fast" (nested loops);
	 * this one is read to the end */
	if ((rc = vg_db_exec_script(c,
	                            "SET LOCAL cursor_tuple_fraction = 1; "
	                            "SET LOCAL work_mem = '64MB'",
	                            err)) != VG_OK ||
	    (rc = vg_db_exec(c,
	                     l->nearlier > 1 ? declare_findings_grouped
	                                     : declare_findings_one,
	                     4, params, NULL, err)) != VG_OK)
		return rc;
	return fetch_all(c, l, err);
}

/* Append `s` to a text[] literal: quoted, \\ and " escaped. */
static int array_elem(struct vg_buf *b, const char *s)
{
	int rc = vg_buf_append_str(b, b->len > 1 ? ",\"" : "\"");

	for (; !rc && *s; s++) {
		if (*s == '"' || *s == '\\')
			rc = vg_buf_append_byte(b, '\\');
		if (!rc)
			rc = vg_buf_append_byte(b, *s);
	}
	return rc ? rc : vg_buf_append_byte(b, '"');
}

/* Protocol, scanner and title of the findings the report lists: from
 * this run, or for resolved ones from the previous run. */
static int load_details(struct vg_db_conn *c, struct load *l,
                        struct vg_err *err)
{
	size_t want = l->p->list_max ? l->p->list_max : 1000;
	struct vg_buf cur, prev;
	int rc = VG_OK;

	if (l->p->html_rows > want)
		want = l->p->html_rows;
	vg_buf_init(&cur, 0);
	vg_buf_init(&prev, 0);
	if (vg_buf_append_byte(&cur, '{') || vg_buf_append_byte(&prev, '{'))
		rc = VG_NOMEM;
	for (int k = 0; !rc && k < CLASS_N; k++)
		for (size_t i = 0; !rc && i < l->a->class_len[k] && i < want;
		     i++) {
			const struct item *it =
				l->a->items[l->a->class_start[k] + i];

			rc = array_elem(it->roles & RUN_CURRENT ? &cur : &prev,
			                it->fingerprint);
		}
	if (!rc && (vg_buf_append_byte(&cur, '}') ||
	            vg_buf_append_byte(&prev, '}')))
		rc = VG_NOMEM;
	if (rc) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	for (int pass = 0; pass < 2 && rc == VG_OK; pass++) {
		const char *run = pass ? l->prev : l->p->run;
		struct vg_buf *fps = pass ? &prev : &cur;
		const char *params[] = {l->p->tenant, run, vg_buf_str(fps)};
		struct vg_db_res *r = NULL;

		if (fps->len <= 2)
			continue;
		rc = vg_db_exec_stmt(c, &sel_details, params, &r, err);
		for (int i = 0; rc == VG_OK && i < vg_db_res_rows(r); i++) {
			struct item *it =
				analysis_find(l->a, vg_db_res_get(r, i, 0));

			if (it && analysis_set_details(
					  l->a, it, vg_db_res_get(r, i, 1),
					  vg_db_res_get(r, i, 2),
					  vg_db_res_get(r, i, 3)) != VG_OK)
				rc = vg_err_set(err, VG_NOMEM, "out of memory");
		}
		vg_db_res_free(r);
	}
out:
	vg_buf_cleanup(&cur);
	vg_buf_cleanup(&prev);
	return rc;
}

static int load_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct load *l = arg;
	int rc;

	load_reset(l);
	if ((rc = load_run(c, l, err)) != VG_OK || l->skip || l->unfinished)
		return rc;
	if ((rc = load_earlier(c, l, err)) != VG_OK ||
	    (rc = load_findings(c, l, err)) != VG_OK ||
	    (rc = analysis_finish(l->a, l->ao, err)) != VG_OK)
		return rc;
	return load_details(c, l, err);
}

/* ------------------------------------------------------------------ */
/* Storing                                                              */
/* ------------------------------------------------------------------ */

/* The HTML as one zstd frame (its size in the header, so a reader can
 * bound it before decoding), hex-coded for decode($4, 'hex'). */
static int compress_hex(const struct vg_buf *html, struct vg_buf *hex,
                        size_t *zlen, struct vg_err *err)
{
	static const char digits[] = "0123456789abcdef";
	size_t cap = ZSTD_compressBound(html->len), n;
	unsigned char *z = malloc(cap ? cap : 1);
	int rc = VG_OK;

	if (!z)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	n = ZSTD_compress(z, cap, html->data, html->len, REPORT_ZSTD_LEVEL);
	if (ZSTD_isError(n)) {
		rc = vg_err_set(err, VG_INTERNAL, "zstd: %s",
		                ZSTD_getErrorName(n));
		goto out;
	}
	if (vg_buf_reserve(hex, 2 * n + 1) != VG_OK) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		vg_buf_append_byte(hex, digits[z[i] >> 4]);
		vg_buf_append_byte(hex, digits[z[i] & 15]);
	}
	*zlen = n;
out:
	free(z);
	return rc;
}

struct store {
	const char *tenant, *run, *request_id, *json, *html;
	char id[37];
	int inserted;
};

static int store_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct store *s = arg;
	const char *params[] = {s->tenant, s->run, s->json, s->html,
	                        s->request_id};
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec_stmt(c, &upsert_report, params, &r, err);

	if (rc != VG_OK)
		return rc;
	copy(s->id, sizeof(s->id), vg_db_res_get(r, 0, 0));
	s->inserted = vg_db_res_get(r, 0, 1) &&
	              strcmp(vg_db_res_get(r, 0, 1), "t") == 0;
	vg_db_res_free(r);
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Generation                                                           */
/* ------------------------------------------------------------------ */

int report_generate(struct vg_db_pool *db, const struct report_params *p,
                    struct report_outcome *out, struct vg_err *err)
{
	struct analysis_opts ao = {.now = p->now, .criticality = p->criticality};
	struct load l = {.p = p, .ao = &ao};
	struct vg_buf json, html, hex;
	struct report_doc d;
	char generated[40];
	double t0 = vg_mono_s(), t1;
	int rc;

	memset(out, 0, sizeof(*out));
	vg_buf_init(&l.earlier, 0);
	vg_buf_init(&json, 0);
	vg_buf_init(&html, 0);
	vg_buf_init(&hex, 0);
	if (!p->tenant || !p->run || !vg_db_is_uuid(p->tenant) ||
	    !vg_db_is_uuid(p->run)) {
		rc = vg_err_set(err, VG_INVAL,
		                "tenant and run must be UUIDs");
		goto out;
	}
	if (ao.now <= 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ao.now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	rc = vg_db_tx(db, p->tenant, VG_DB_TX_READ_ONLY, load_tx, &l, err);
	if (rc != VG_OK)
		goto out;
	if (l.unfinished) {
		rc = vg_err_set(err, VG_AGAIN, "run %s is still %s", p->run,
		                l.state);
		goto out;
	}
	if (l.skip) {
		out->skipped = 1;
		goto out;
	}
	out->load_s = vg_mono_s() - t0;
	t1 = vg_mono_s();
	/* this run, last in the trend */
	{
		struct trend_point *t = &l.trend[l.ntrend - 1];

		copy(t->run_id, sizeof(t->run_id), p->run);
		copy(t->created_at, sizeof(t->created_at), l.created);
		memcpy(t->counts, l.a->counts, sizeof(t->counts));
		t->total = l.a->total;
		t->appeared = l.prev[0] ? l.a->by_class[CLASS_NEW] +
		                                  l.a->by_class[CLASS_REGRESSED]
		                        : -1;
		t->resolved = l.prev[0] ? l.a->by_class[CLASS_RESOLVED] : -1;
	}
	format_time(ao.now, generated, sizeof(generated));
	d = (struct report_doc){
		.tenant_id = p->tenant,
		.tenant_name = l.tenant_name,
		.run_id = p->run,
		.run_state = l.state,
		.created_at = l.created,
		.finished_at = l.finished,
		.policy_namespace = l.ns,
		.policy_name = l.name,
		.policy_uid = l.uid,
		.previous_run_id = l.prev,
		.generated_at = generated,
		.a = l.a,
		.trend = l.trend,
		.ntrend = l.ntrend,
		.list_max = p->list_max,
		.html_rows = p->html_rows,
		.top_hosts = p->top_hosts,
	};
	if (report_render_json(&d, &json) != VG_OK ||
	    report_render_html(&d, &html) != VG_OK) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory rendering");
		goto out;
	}
	if ((rc = compress_hex(&html, &hex, &out->content_bytes, err)) !=
	    VG_OK)
		goto out;
	out->render_s = vg_mono_s() - t1;
	t1 = vg_mono_s();
	{
		struct store s = {.tenant = p->tenant,
		                  .run = p->run,
		                  .request_id = p->request_id ? p->request_id
		                                              : "",
		                  .json = vg_buf_str(&json),
		                  .html = vg_buf_str(&hex)};

		rc = vg_db_tx(db, p->tenant, 0, store_tx, &s, err);
		if (rc != VG_OK)
			goto out;
		copy(out->report_id, sizeof(out->report_id), s.id);
		out->inserted = s.inserted;
	}
	out->store_s = vg_mono_s() - t1;
	out->findings = l.a->total;
	memcpy(out->by_class, l.a->by_class, sizeof(out->by_class));
	out->json_bytes = json.len;
	out->html_bytes = html.len;
out:
	load_reset(&l);
	vg_buf_cleanup(&l.earlier);
	vg_buf_cleanup(&json);
	vg_buf_cleanup(&html);
	vg_buf_cleanup(&hex);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Failures and the sweep                                               */
/* ------------------------------------------------------------------ */

struct failed {
	const char *tenant, *run, *request_id;
	char error[MAX_ERROR_TEXT + 1];
};

static int failed_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct failed *f = arg;
	const char *params[] = {f->tenant, f->run, f->error, f->request_id};

	return vg_db_exec_stmt(c, &mark_failed, params, NULL, err);
}

int report_mark_failed(struct vg_db_pool *db, const char *tenant,
                       const char *run, const char *request_id,
                       const char *error, struct vg_err *err)
{
	struct failed f = {.tenant = tenant,
	                   .run = run,
	                   .request_id = request_id ? request_id : ""};

	if (!tenant || !run || !vg_db_is_uuid(tenant) || !vg_db_is_uuid(run))
		return vg_err_set(err, VG_INVAL,
		                  "tenant and run must be UUIDs");
	copy(f.error, sizeof(f.error), error);
	return vg_db_tx(db, tenant, 0, failed_tx, &f, err);
}

struct claim {
	int max, requeue_s;
	struct report_request *out;
	int n;
};

static int claim_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct claim *cl = arg;
	char lim[16], req[16];
	const char *params[] = {lim, req};
	struct vg_db_res *r = NULL;
	int rc;

	snprintf(lim, sizeof(lim), "%d", cl->max);
	snprintf(req, sizeof(req), "%d", cl->requeue_s);
	cl->n = 0;
	rc = vg_db_exec(c,
	                "SELECT tenant_id, run_id, request_id "
	                "FROM vigil.report_requests_claim($1::integer, "
	                "$2::integer)",
	                2, params, &r, err);
	if (rc != VG_OK)
		return rc;
	for (int i = 0; i < vg_db_res_rows(r) && cl->n < cl->max; i++) {
		struct report_request *q = &cl->out[cl->n++];

		copy(q->tenant, sizeof(q->tenant), vg_db_res_get(r, i, 0));
		copy(q->run, sizeof(q->run), vg_db_res_get(r, i, 1));
		copy(q->request_id, sizeof(q->request_id),
		     vg_db_res_get(r, i, 2));
	}
	vg_db_res_free(r);
	return VG_OK;
}

int report_requests_claim(struct vg_db_pool *db, int max, int requeue_after_s,
                          struct report_request *out, int *n,
                          struct vg_err *err)
{
	struct claim cl = {.max = max, .requeue_s = requeue_after_s, .out = out};
	int rc = vg_db_tx(db, NULL, 0, claim_tx, &cl, err);

	*n = rc == VG_OK ? cl.n : 0;
	return rc;
}

static int unclaim_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	const char *params[] = {arg};

	return vg_db_exec_stmt(c, &unclaim, params, NULL, err);
}

int report_request_unclaim(struct vg_db_pool *db, const char *tenant,
                           const char *run, struct vg_err *err)
{
	return vg_db_tx(db, tenant, 0, unclaim_tx, (void *)run, err);
}
