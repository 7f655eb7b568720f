/*
 * api_reports.c - a tenant's reports: the list, one report (status and
 * summary), its content for download, and asking for a run's report.
 *
 * Reports are made elsewhere: the worker records a finished run's report
 * as pending (its "report" task), the brain generates it and stores the
 * JSON summary and the rendered content (HTML) in the same row. Asking
 * for one here queues that "report" task; it is idempotent (one run
 * report per run), so asking twice, or for a run whose report exists,
 * changes nothing. Asking is reading the run's results: reports:read.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zstd.h>

const struct vg_json_field api_report_body[] = {
	{"run_id", VG_JSON_UUID, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

#define REPORT_COLS                                      \
	"id, run_id, kind, format, state, content_type," \
	" octet_length(content), error, request_id, created_at, completed_at"
#define REPORT_KEY                                 \
	", to_char(created_at AT TIME ZONE 'UTC'," \
	" 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), id"
#define REPORT_FILTER                                  \
	" WHERE tenant_id = current_tenant()"          \
	" AND ($1::uuid IS NULL OR run_id = $1::uuid)" \
	" AND ($2::text IS NULL OR state = $2)"
#define REPORT_ORDER " ORDER BY created_at DESC, id DESC LIMIT $3::integer"

/* the list leaves summaries out: they are whole JSON reports */
static const char report_list_spec[] =
	"id,run_id,kind,format,state,content_type,size:i,error,request_id,"
	"created_at,completed_at";
static const char report_spec[] =
	"id,run_id,kind,format,state,content_type,size:i,error,request_id,"
	"created_at,completed_at,summary:j";

static const struct vg_db_stmt st_reports_first = {
	.name = "gw_reports_first",
	.sql = "SELECT " REPORT_COLS REPORT_KEY
	       " FROM reports" REPORT_FILTER REPORT_ORDER,
	.nparams = 3,
};

static const struct vg_db_stmt st_reports_next = {
	.name = "gw_reports_next",
	.sql = "SELECT " REPORT_COLS REPORT_KEY " FROM reports" REPORT_FILTER
	       " AND (created_at, id) < ($4::timestamptz, "
	       "$5::uuid)" REPORT_ORDER,
	.nparams = 5,
};

static const struct vg_db_stmt st_report_get = {
	.name = "gw_report_get",
	.sql = "SELECT " REPORT_COLS ", summary FROM reports WHERE id = $1",
	.nparams = 1,
};

static const struct vg_db_stmt st_report_content = {
	.name = "gw_report_content_enc",
	.sql = "SELECT state, format, content_type, content, summary,"
	       " content_encoding FROM reports WHERE id = $1",
	.nparams = 1,
};

/* Content decoded for a client that cannot take it compressed: at most
 * this much, so a small stored frame cannot make a huge reply. */
#define CONTENT_DECODED_MAX ((size_t)64 << 20)

static const char *const report_states[] = {"pending", "ready", "failed", NULL};

/* The reply's media type: the one stored with the content, or the
 * format's; only types from this table (the header value is static). */
static const struct {
	const char *format;       /* reports.format, or NULL */
	const char *content_type; /* as stored and as sent */
} media[] = {
	{"json", "application/json"},
	{"html", "text/html; charset=utf-8"},
	{"markdown", "text/markdown; charset=utf-8"},
	{"csv", "text/csv; charset=utf-8"},
	{"pdf", "application/pdf"},
	{NULL, "text/html"},
	{NULL, "application/json; charset=utf-8"},
};

static const char *media_type(const char *stored, const char *format)
{
	size_t n = sizeof(media) / sizeof(media[0]);

	for (size_t i = 0; stored && *stored && i < n; i++)
		if (strcasecmp(stored, media[i].content_type) == 0)
			return media[i].content_type;
	if (stored && *stored)
		return "application/octet-stream";
	for (size_t i = 0; format && i < n; i++)
		if (media[i].format && strcmp(media[i].format, format) == 0)
			return media[i].content_type;
	return "application/octet-stream";
}

static const char *extension(const char *type)
{
	static const struct {
		const char *prefix, *ext;
	} ext[] = {{"application/json", "json"},
	           {"text/html", "html"},
	           {"text/markdown", "md"},
	           {"text/csv", "csv"},
	           {"application/pdf", "pdf"}};

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (strncmp(type, ext[i].prefix, strlen(ext[i].prefix)) == 0)
			return ext[i].ext;
	return "bin";
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A bytea in PostgreSQL's hex output ("\x48656c6c6f") into `out`. */
static int bytea_decode(const char *s, struct vg_buf *out)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '\\' || s[1] != 'x' || n % 2)
		return VG_PARSE;
	if (vg_buf_reserve(out, (n - 2) / 2 + 1) != VG_OK)
		return VG_NOMEM;
	for (size_t i = 2; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return VG_PARSE;
		vg_buf_append_byte(out, (char)(hi << 4 | lo));
	}
	return VG_OK;
}

/* 1 when an Accept-Encoding value lists zstd with a q-value above 0. */
static int accepts_zstd(const char *v)
{
	while (v && *v) {
		const char *end = strchr(v, ','), *semi, *q;
		size_t n = end ? (size_t)(end - v) : strlen(v), name;

		while (n && (*v == ' ' || *v == '\t')) {
			v++;
			n--;
		}
		semi = memchr(v, ';', n);
		name = semi ? (size_t)(semi - v) : n;
		while (name && (v[name - 1] == ' ' || v[name - 1] == '\t'))
			name--;
		if (name == 4 && strncasecmp(v, "zstd", 4) == 0) {
			q = semi ? strstr(semi, "q=") : NULL;
			if (!q || q >= v + n)
				return 1;
			/* q=0, 0.0, 0.00, 0.000: not acceptable */
			for (q += 2; *q == '0' || *q == '.'; q++)
				;
			return q < v + n && *q >= '1' && *q <= '9';
		}
		v = end ? end + 1 : NULL;
	}
	return 0;
}

/* One or more zstd frames in `z` decoded into `out`: VG_PARSE for bytes
 * that are no complete frame, VG_TOOLARGE past CONTENT_DECODED_MAX. */
static int zstd_decode(const struct vg_buf *z, struct vg_buf *out)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer in = {z->data, z->len, 0};
	int rc = VG_OK;

	if (!d)
		return VG_NOMEM;
	for (;;) {
		size_t chunk = ZSTD_DStreamOutSize(), left;
		ZSTD_outBuffer o;

		if (out->len + chunk > CONTENT_DECODED_MAX)
			chunk = CONTENT_DECODED_MAX - out->len;
		if (chunk == 0) {
			rc = VG_TOOLARGE;
			break;
		}
		if (vg_buf_reserve(out, chunk) != VG_OK) {
			rc = VG_NOMEM;
			break;
		}
		o = (ZSTD_outBuffer){out->data + out->len, chunk, 0};
		left = ZSTD_decompressStream(d, &o, &in);
		if (ZSTD_isError(left)) {
			rc = VG_PARSE;
			break;
		}
		out->len += o.pos;
		out->data[out->len] = '\0';
		if (in.pos == in.size && left == 0)
			break; /* every frame decoded and flushed */
		if (in.pos == in.size && o.pos < o.size) {
			rc = VG_PARSE; /* the last frame is cut short */
			break;
		}
	}
	ZSTD_freeDCtx(d);
	return rc;
}

/* ------------------------------------------------------------------ */
/* List, get, content                                                   */
/* ------------------------------------------------------------------ */

struct query_arg {
	const char *p[5];
	const struct vg_db_stmt *st;
	struct vg_db_res *res;
};

static int query_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct query_arg *a = arg;

	vg_db_res_free(a->res);
	a->res = NULL;
	return vg_db_exec_stmt(c, a->st, a->p, &a->res, err);
}

void api_reports_list(struct gw_rctx *rc)
{
	char run[64], state[32], limit_s[16];
	struct query_arg a = {.st = &st_reports_first};
	struct gw_cursor cur;
	struct vg_err err = {0};
	int limit, hr, hs, r, known = 0;

	if (gw_page_params(rc, "tu", &limit, &cur) ||
	    (hr = gw_query_param(rc, "run_id", run, sizeof(run))) < 0 ||
	    (hs = gw_query_param(rc, "state", state, sizeof(state))) < 0)
		return;
	if (hr && !vg_db_is_uuid(run)) {
		gw_reply_error(rc, 400, "bad_request", "run_id: want a UUID");
		return;
	}
	for (size_t i = 0; hs && report_states[i]; i++)
		known |= strcmp(report_states[i], state) == 0;
	if (hs && !known) {
		gw_reply_error(rc, 400, "bad_request",
		               "state: want pending, ready or failed");
		return;
	}
	snprintf(limit_s, sizeof(limit_s), "%d", limit + 1);
	a.p[0] = hr ? run : NULL;
	a.p[1] = hs ? state : NULL;
	a.p[2] = limit_s;
	if (cur.n) {
		a.st = &st_reports_next;
		a.p[3] = cur.part[0];
		a.p[4] = cur.part[1];
	}
	r = gw_tx(rc, VG_DB_TX_READ_ONLY, query_tx, &a, &err);
	if (r == VG_INVAL && cur.n)
		gw_reply_error(rc, 400, "bad_request",
		               "cursor: not a cursor of this list");
	else if (r != VG_OK)
		gw_reply_failure(rc, r, &err);
	else
		gw_reply_page(rc, a.res, report_list_spec, limit, 2);
	vg_db_res_free(a.res);
}

/* The report of rc->params[1] with `st` into a->res; replied on failure
 * (404 for an id of no report of this tenant). */
static int one(struct gw_rctx *rc, const struct vg_db_stmt *st,
               struct query_arg *a)
{
	struct vg_err err = {0};
	int r;

	a->st = st;
	a->p[0] = rc->params[1];
	if (!vg_db_is_uuid(rc->params[1])) {
		gw_reply_error(rc, 404, "not_found", "report not found");
		return -1;
	}
	r = gw_tx(rc, VG_DB_TX_READ_ONLY, query_tx, a, &err);
	if (r == VG_OK && vg_db_res_rows(a->res) != 1)
		r = vg_err_set(&err, VG_NOTFOUND, "report not found");
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return -1;
	}
	return 0;
}

void api_reports_get(struct gw_rctx *rc)
{
	struct query_arg a = {0};
	json_t *out;

	if (one(rc, &st_report_get, &a) == 0) {
		out = gw_row_json(a.res, 0, report_spec);
		if (out)
			gw_reply_json(rc, 200, out);
		else
			gw_reply_error(rc, 503, "unavailable", "out of memory");
	}
	vg_db_res_free(a.res);
}

/*
 * The stored content into the reply body. zstd content goes out as it is
 * to a client that accepts zstd (*zstd_sent: Content-Encoding: zstd),
 * decoded for any other; identity content as it is.
 */
static int content_body(struct gw_rctx *rc, const char *content,
                        const char *encoding, int *zstd_sent)
{
	char accept[512];
	struct vg_buf z;
	int r;

	*zstd_sent = 0;
	if (strcmp(encoding, "zstd") != 0)
		return bytea_decode(content, &rc->resp->body);
	if (srv_req_header(rc->req, "Accept-Encoding", accept,
	                   sizeof(accept)) &&
	    accepts_zstd(accept)) {
		*zstd_sent = 1;
		return bytea_decode(content, &rc->resp->body);
	}
	vg_buf_init(&z, 0);
	r = bytea_decode(content, &z);
	if (r == VG_OK)
		r = zstd_decode(&z, &rc->resp->body);
	vg_buf_cleanup(&z);
	return r;
}

void api_reports_content(struct gw_rctx *rc)
{
	struct query_arg a = {0};
	const char *state, *format, *stored, *content, *summary, *type;
	const char *encoding;
	char disp[128];
	int r, zstd_sent = 0;

	if (one(rc, &st_report_content, &a) != 0)
		goto out;
	state = vg_db_res_get(a.res, 0, 0);
	format = vg_db_res_get(a.res, 0, 1);
	stored = vg_db_res_get(a.res, 0, 2);
	content = vg_db_res_get(a.res, 0, 3);
	summary = vg_db_res_get(a.res, 0, 4);
	encoding = vg_db_res_get(a.res, 0, 5);
	if (strcmp(state, "ready") != 0) {
		gw_reply_error(rc, 409, "conflict",
		               "the report is %s, not ready", state);
		goto out;
	}
	vg_buf_reset(&rc->resp->body);
	/* the reply depends on Accept-Encoding whatever this row holds */
	srv_resp_header(rc->resp, "Vary", "Accept-Encoding");
	if (content) {
		type = media_type(stored, format);
		r = content_body(rc, content, encoding, &zstd_sent);
	} else if (strcmp(format, "json") == 0 && summary) {
		/* a JSON report without rendered content is its summary */
		type = "application/json";
		r = vg_buf_append_str(&rc->resp->body, summary);
	} else {
		gw_reply_error(rc, 409, "conflict",
		               "the report has no content");
		goto out;
	}
	if (r == VG_TOOLARGE) {
		gw_rlog(rc, VG_LOG_ERROR, "report content too large to decode",
		        "report_id", rc->params[1], NULL);
		vg_buf_reset(&rc->resp->body);
		gw_reply_error(rc, 500, "content_too_large",
		               "the report's content is over 64 MiB decoded; "
		               "ask for it with Accept-Encoding: zstd");
		goto out;
	}
	if (r != VG_OK) {
		gw_rlog(rc, VG_LOG_ERROR, "report content unreadable",
		        "report_id", rc->params[1], "encoding", encoding, NULL);
		vg_buf_reset(&rc->resp->body);
		gw_reply_error(rc, 500, "internal", "internal error");
		goto out;
	}
	rc->resp->status = 200;
	rc->resp->content_type = type;
	if (zstd_sent)
		srv_resp_header(rc->resp, "Content-Encoding", "zstd");
	snprintf(disp, sizeof(disp), "attachment; filename=\"report-%s.%s\"",
	         rc->params[1], extension(type));
	srv_resp_header(rc->resp, "Content-Disposition", disp);
	/* rendered reports are documents, never scripts on the API's origin */
	srv_resp_header(rc->resp, "Content-Security-Policy",
	                "default-src 'none'; img-src data:; style-src "
	                "'unsafe-inline'; sandbox");
out:
	vg_db_res_free(a.res);
}

/* ------------------------------------------------------------------ */
/* Ask for a run's report                                               */
/* ------------------------------------------------------------------ */

struct create_arg {
	struct gw_rctx *rc;
	char task_id[GW_TASK_ID_LEN + 1];
	char report_id[40];
};

/*
 * The run must be finished; the request is audited, and the task is
 * queued last inside the transaction, so a queue failure rolls the audit
 * entry back. Should the commit fail after the enqueue, the task finds
 * the run and records its report: no harm, the task is idempotent. A
 * retried transaction does not queue twice.
 */
static int create_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct create_arg *a = arg;
	const char *run = vg_json_get_str(a->rc->body, "run_id", "");
	const char *p[] = {run};
	struct vg_db_res *r = NULL;
	char state[16];
	json_t *payload;
	int rc;

	rc = vg_db_exec(c,
	                "SELECT s.state, (SELECT id FROM reports WHERE run_id ="
	                " s.id AND kind = 'run') FROM scan_runs s WHERE s.id ="
	                " $1",
	                1, p, &r, err);
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "scan run not found");
	if (rc == VG_OK) {
		snprintf(state, sizeof(state), "%s", vg_db_res_get(r, 0, 0));
		snprintf(a->report_id, sizeof(a->report_id), "%s",
		         vg_db_res_get(r, 0, 1) ? vg_db_res_get(r, 0, 1) : "");
	}
	vg_db_res_free(r);
	if (rc != VG_OK)
		return rc;
	if (strcmp(state, "pending") == 0 || strcmp(state, "running") == 0)
		return vg_err_set(err, VG_CONFLICT,
		                  "the scan run is %s: its report is made when "
		                  "it finishes",
		                  state);
	if ((rc = gw_audit(c, a->rc, "report.request", "scan_run", run, NULL,
	                   err)) != VG_OK)
		return rc;
	if (a->task_id[0])
		return VG_OK;
	payload = json_pack("{s:s, s:s}", "tenant_id", a->rc->tenant, "run_id",
	                    run);
	if (!payload)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = gw_taskq_enqueue(a->rc, "report", payload, a->task_id, err);
	json_decref(payload);
	return rc;
}

void api_reports_create(struct gw_rctx *rc)
{
	struct create_arg a = {.rc = rc};
	struct vg_err err = {0};
	int r = gw_tx(rc, 0, create_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "report requested", "run_id",
	        vg_json_get_str(rc->body, "run_id", ""), "task_id", a.task_id,
	        NULL);
	gw_reply_json(rc, 202,
	              json_pack("{s:s, s:s, s:o}", "run_id",
	                        vg_json_get_str(rc->body, "run_id", ""),
	                        "task_id", a.task_id, "report_id",
	                        a.report_id[0] ? json_string(a.report_id)
	                                       : json_null()));
}
