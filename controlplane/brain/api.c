/* api.c - the brain's HTTP API (api.h, README.md "The API").
 *
 * POST /v1/reports runs in two steps. A transaction of the body's tenant
 * (row-level security: another tenant's run is not there, 404) reads the
 * run and its report; a ready report is the answer. Otherwise the run's
 * one report row is made pending (queued now, so the sweep leaves it
 * alone) and a "report" task goes on the brain's queue, where the report
 * threads generate it with their retries and dead letters. The request
 * then watches the row until it is ready (200), failed (422) or the
 * deadline passes (202: the report is still coming). */
#include "api.h"

#include "vigil/json.h"
#include "vigil/json_validate.h"
#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TOKEN_MIN   16
#define POLL_MIN_MS 20
#define POLL_MAX_MS 250
#define MAX_BODY    (16 * 1024)

struct api {
	struct api_config cfg;
	unsigned char token_md[EVP_MAX_MD_SIZE];
	unsigned int token_md_len;
	atomic_int stopping;
	struct vg_metric *requests;
};

static const struct vg_json_field report_body[] = {
	{"tenant_id", VG_JSON_UUID, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{"run_id", VG_JSON_UUID, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

/* The run, and its report when there is one. */
static const struct vg_db_stmt st_lookup = {
	.name = "brain_api_lookup",
	.nparams = 1,
	.sql = "SELECT s.state, r.id, r.state, "
	       "(r.summary - 'classification')::text, r.error "
	       "FROM scan_runs s LEFT JOIN reports r ON r.tenant_id = "
	       "s.tenant_id AND r.run_id = s.id AND r.kind = 'run' "
	       "WHERE s.id = $1",
};

/* The run's report row, pending and queued now (a failed one asked for
 * again included); a ready one is left as it is (no row returned). */
static const struct vg_db_stmt st_request = {
	.name = "brain_api_request",
	.nparams = 3,
	.sql = "INSERT INTO reports AS r (tenant_id, run_id, kind, format, "
	       "state, request_id, queued_at) "
	       "VALUES ($1, $2, 'run', 'json', 'pending', $3, now()) "
	       "ON CONFLICT (tenant_id, run_id) WHERE kind = 'run' DO UPDATE "
	       "SET state = 'pending', error = '', queued_at = now(), "
	       "request_id = CASE WHEN r.request_id = '' "
	       "THEN EXCLUDED.request_id ELSE r.request_id END "
	       "WHERE r.state <> 'ready' "
	       "RETURNING r.id",
};

static const struct vg_db_stmt st_poll = {
	.name = "brain_api_poll",
	.nparams = 1,
	.sql = "SELECT state, id, (summary - 'classification')::text, error "
	       "FROM reports WHERE run_id = $1 AND kind = 'run'",
};

/* ------------------------------------------------------------------ */
/* The report request                                                   */
/* ------------------------------------------------------------------ */

struct ask {
	const char *tenant, *run, *request_id;
	/* out */
	int found, queued;
	char run_state[16], state[16], report_id[37];
	char *summary, *error; /* new */
};

static void ask_reset(struct ask *k)
{
	free(k->summary);
	free(k->error);
	k->summary = k->error = NULL;
	k->found = k->queued = 0;
	k->run_state[0] = k->state[0] = k->report_id[0] = '\0';
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static int request_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct ask *k = arg;
	const char *lp[] = {k->run};
	const char *rp[] = {k->tenant, k->run, k->request_id};
	struct vg_db_res *r = NULL;
	int rc;

	ask_reset(k);
	if ((rc = vg_db_exec_stmt(c, &st_lookup, lp, &r, err)) != VG_OK)
		return rc;
	if (vg_db_res_rows(r) == 1) {
		k->found = 1;
		copy(k->run_state, sizeof(k->run_state),
		     vg_db_res_get(r, 0, 0));
		copy(k->report_id, sizeof(k->report_id),
		     vg_db_res_get(r, 0, 1));
		copy(k->state, sizeof(k->state), vg_db_res_get(r, 0, 2));
		k->summary = dup_or_null(vg_db_res_get(r, 0, 3));
		k->error = dup_or_null(vg_db_res_get(r, 0, 4));
	}
	vg_db_res_free(r);
	r = NULL;
	if (!k->found || strcmp(k->run_state, "pending") == 0 ||
	    strcmp(k->run_state, "running") == 0 ||
	    strcmp(k->state, "ready") == 0)
		return VG_OK;
	if ((rc = vg_db_exec_stmt(c, &st_request, rp, &r, err)) != VG_OK)
		return rc;
	if (vg_db_res_rows(r) == 1) {
		k->queued = 1;
		copy(k->report_id, sizeof(k->report_id),
		     vg_db_res_get(r, 0, 0));
		copy(k->state, sizeof(k->state), "pending");
	}
	vg_db_res_free(r);
	return VG_OK;
}

static int poll_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct ask *k = arg;
	const char *p[] = {k->run};
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec_stmt(c, &st_poll, p, &r, err);

	if (rc != VG_OK)
		return rc;
	if (vg_db_res_rows(r) == 1) {
		free(k->summary);
		free(k->error);
		copy(k->state, sizeof(k->state), vg_db_res_get(r, 0, 0));
		copy(k->report_id, sizeof(k->report_id),
		     vg_db_res_get(r, 0, 1));
		k->summary = dup_or_null(vg_db_res_get(r, 0, 2));
		k->error = dup_or_null(vg_db_res_get(r, 0, 3));
	}
	vg_db_res_free(r);
	return VG_OK;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Watch the row until it is no longer pending, the deadline passes or
 * the API stops. */
static int wait_report(struct api *a, struct ask *k, struct vg_err *err)
{
	int64_t deadline = vg_mono_ms() + a->cfg.deadline_ms;
	int step = POLL_MIN_MS, rc = VG_OK;

	while (strcmp(k->state, "pending") == 0 && !atomic_load(&a->stopping)) {
		int64_t left = deadline - vg_mono_ms();

		if (left <= 0)
			break;
		sleep_ms(left < step ? (int)left : step);
		step = step * 2 > POLL_MAX_MS ? POLL_MAX_MS : step * 2;
		rc = vg_db_tx(a->cfg.db, k->tenant, VG_DB_TX_READ_ONLY, poll_tx,
		              k, err);
		if (rc != VG_OK)
			break;
	}
	return rc;
}

static void reply_report(struct server_resp *resp, int status,
                         const struct ask *k)
{
	struct vg_buf *b = &resp->body;

	resp->status = status;
	resp->content_type = "application/json";
	vg_buf_reset(b);
	vg_buf_append_str(b, "{\"report_id\":");
	vg_json_escape(b, k->report_id, strlen(k->report_id));
	vg_buf_append_str(b, ",\"tenant_id\":");
	vg_json_escape(b, k->tenant, strlen(k->tenant));
	vg_buf_append_str(b, ",\"run_id\":");
	vg_json_escape(b, k->run, strlen(k->run));
	vg_buf_append_str(b, ",\"state\":");
	vg_json_escape(b, k->state, strlen(k->state));
	if (status == 200) {
		/* jsonb's text: JSON as it is */
		vg_buf_append_str(b, ",\"summary\":");
		vg_buf_append_str(b, k->summary ? k->summary : "null");
	}
	vg_buf_append_byte(b, '}');
}

static void reply_failure(const struct server_req *req,
                          struct server_resp *resp, const struct ask *k,
                          const struct vg_err *err)
{
	if (vg_db_unavailable(err) || err->code == VG_IO ||
	    err->code == VG_TIMEOUT || err->code == VG_AGAIN) {
		vg_warn("database unavailable", "request_id", req->request_id,
		        "tenant", k->tenant, "run_id", k->run, "err", err->msg);
		server_header(resp, "Retry-After", "1");
		server_error(resp, req, 503, "unavailable",
		             "the database is unavailable; retry");
		return;
	}
	vg_error("report request failed", "request_id", req->request_id,
	         "tenant", k->tenant, "run_id", k->run, "err", err->msg);
	server_error(resp, req, 500, "internal", "internal error");
}

static int is_json(const struct server_req *req)
{
	size_t len = 0;
	const char *v = vg_http_head_get(req->head, "content-type", &len);
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	return v && len >= n && strncasecmp(v, want, n) == 0 &&
	       (len == n || v[n] == ';' || v[n] == ' ');
}

static void reports_create(struct api *a, const struct server_req *req,
                           struct server_resp *resp)
{
	struct ask k = {.request_id = req->request_id};
	struct vg_err err = {0};
	json_t *body = NULL;
	char task_id[64] = "";
	int rc;

	if (!is_json(req)) {
		server_error(resp, req, 415, "unsupported_media_type",
		             "send application/json");
		return;
	}
	rc = vg_json_validate_body(req->body, req->body_len, MAX_BODY,
	                           report_body, &body, &err);
	if (rc != VG_OK) {
		if (rc == VG_TOOLARGE)
			server_error(resp, req, 413, "payload_too_large",
			             "the body is over %d bytes", MAX_BODY);
		else if (rc == VG_INVAL)
			server_error(resp, req, 422, "validation_failed", "%s",
			             err.msg);
		else
			server_error(resp, req, 400, "invalid_json", "%s",
			             err.msg[0] ? err.msg : "malformed JSON");
		return;
	}
	k.tenant = json_string_value(json_object_get(body, "tenant_id"));
	k.run = json_string_value(json_object_get(body, "run_id"));
	rc = vg_db_tx(a->cfg.db, k.tenant, 0, request_tx, &k, &err);
	if (rc != VG_OK) {
		reply_failure(req, resp, &k, &err);
		goto out;
	}
	if (!k.found) {
		server_error(resp, req, 404, "not_found",
		             "scan run %s not found", k.run);
		goto out;
	}
	if (strcmp(k.run_state, "pending") == 0 ||
	    strcmp(k.run_state, "running") == 0) {
		server_error(resp, req, 409, "conflict",
		             "the scan run is %s: its report is made when it "
		             "finishes",
		             k.run_state);
		goto out;
	}
	if (k.queued) {
		struct vg_err qerr = {0}, uerr = {0};

		if (brain_enqueue_report(a->cfg.brain, k.tenant, k.run,
		                         req->request_id, task_id,
		                         sizeof(task_id), &qerr) != VG_OK) {
			/* pending for the sweep to queue it again at once */
			vg_warn("cannot queue a requested report", "request_id",
			        req->request_id, "tenant", k.tenant, "run_id",
			        k.run, "err", qerr.msg);
			report_request_unclaim(a->cfg.db, k.tenant, k.run,
			                       &uerr);
			reply_report(resp, 202, &k);
			goto out;
		}
		vg_info("report requested", "request_id", req->request_id,
		        "tenant", k.tenant, "run_id", k.run, "report_id",
		        k.report_id, "task_id", task_id);
		if (wait_report(a, &k, &err) != VG_OK) {
			reply_failure(req, resp, &k, &err);
			goto out;
		}
	}
	if (strcmp(k.state, "ready") == 0) {
		reply_report(resp, 200, &k);
	} else if (strcmp(k.state, "failed") == 0) {
		server_error(resp, req, 422, "report_failed",
		             "the report cannot be generated: %s",
		             k.error ? k.error : "");
	} else {
		reply_report(resp, 202, &k);
	}
out:
	ask_reset(&k);
	json_decref(body);
}

/* ------------------------------------------------------------------ */
/* Routes                                                               */
/* ------------------------------------------------------------------ */

static void healthz(struct api *a, const struct server_req *req,
                    struct server_resp *resp)
{
	(void)a;
	(void)req;
	resp->content_type = "text/plain; charset=utf-8";
	vg_buf_append_str(&resp->body, "ok\n");
}

static void readyz(struct api *a, const struct server_req *req,
                   struct server_resp *resp)
{
	(void)req;
	resp->content_type = "text/plain; charset=utf-8";
	if (a->cfg.brain && brain_ready(a->cfg.brain) &&
	    !atomic_load(&a->stopping)) {
		vg_buf_append_str(&resp->body, "ok\n");
		return;
	}
	resp->status = 503;
	vg_buf_append_str(&resp->body,
	                  "not taking report tasks (starting, draining or "
	                  "redis unreachable)\n");
}

static const struct {
	const char *method, *path;
	void (*fn)(struct api *a, const struct server_req *req,
	           struct server_resp *resp);
	int auth; /* the bearer token is required */
} routes[] = {
	{"GET", "/healthz", healthz, 0},
	{"GET", "/readyz", readyz, 0},
	{"POST", "/v1/reports", reports_create, 1},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* 1 when the request carries "Authorization: Bearer <the token>". Both
 * sides are hashed first, so the comparison takes the same time whatever
 * the length of what was sent. */
static int authorized(const struct api *a, const struct server_req *req)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t len = 0;
	const char *v = vg_http_head_get(req->head, "authorization", &len);

	if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
		return 0;
	v += 7;
	len -= 7;
	while (len && *v == ' ') {
		v++;
		len--;
	}
	if (!EVP_Digest(v, len, md, &n, EVP_sha256(), NULL) ||
	    n != a->token_md_len)
		return 0;
	return CRYPTO_memcmp(md, a->token_md, n) == 0;
}

void api_handle(const struct server_req *req, struct server_resp *resp,
                void *data)
{
	struct api *a = data;
	char status[8];
	const char *allow = NULL;

	for (size_t i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].path, req->path) != 0)
			continue;
		if (strcmp(routes[i].method, req->method) != 0) {
			allow = routes[i].method;
			continue;
		}
		if (routes[i].auth && !authorized(a, req)) {
			server_header(resp, "WWW-Authenticate", "Bearer");
			server_error(resp, req, 401, "unauthenticated",
			             "a valid bearer token is required");
		} else {
			routes[i].fn(a, req, resp);
		}
		goto out;
	}
	if (allow) {
		server_header(resp, "Allow", allow);
		server_error(resp, req, 405, "method_not_allowed",
		             "%s is not allowed here", req->method);
	} else {
		server_error(resp, req, 404, "not_found", "no such endpoint");
	}
out:
	snprintf(status, sizeof(status), "%d", resp->status);
	vg_counter_inc(vg_metric_labels(a->requests, status));
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

int api_new(const struct api_config *cfg, struct api **out, struct vg_err *err)
{
	struct api *a;

	*out = NULL;
	if (!cfg->token || strlen(cfg->token) < TOKEN_MIN)
		return vg_err_set(err, VG_INVAL,
		                  "the API token must be at least %d bytes",
		                  TOKEN_MIN);
	if (!cfg->db || !cfg->brain)
		return vg_err_set(err, VG_INVAL,
		                  "the API needs a database and the brain");
	a = calloc(1, sizeof(*a));
	if (!a)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	a->cfg = *cfg;
	a->cfg.token = NULL; /* only its hash is kept */
	if (!EVP_Digest(cfg->token, strlen(cfg->token), a->token_md,
	                &a->token_md_len, EVP_sha256(), NULL)) {
		free(a);
		return vg_err_set(err, VG_INTERNAL, "sha256");
	}
	a->requests = vg_metrics_counter(
		cfg->metrics ? cfg->metrics : vg_metrics_default(),
		"vigil_brain_api_requests_total",
		"Requests to the brain's API, by status code.",
		VG_LABELS("code"), NULL);
	*out = a;
	return VG_OK;
}

void api_stop(struct api *a)
{
	if (a)
		atomic_store(&a->stopping, 1);
}

void api_free(struct api *a)
{
	if (!a)
		return;
	OPENSSL_cleanse(a->token_md, sizeof(a->token_md));
	free(a);
}
