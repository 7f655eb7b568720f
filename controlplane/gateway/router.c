/*
 * router.c - the route table and the pipeline every API request takes:
 *
 *   match (404, 405) -> authenticate (401, 429, 503) -> tenant scope and
 *   permission (404 for a tenant the caller has no role in, 403) ->
 *   emergency stop (503) -> content type (415) -> body (400, 413, 422) ->
 *   handler
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * method, path, permission, tenant scope, body fields, handler, flags,
 * success status (0: the method's usual one), the body's objects and
 * arrays. {tid} is always the tenant; {id} names an object inside it.
 */
static const struct gw_route routes[] = {
	{"GET", "/healthz", PERM_PUBLIC, SCOPE_PLATFORM, NULL, api_healthz,
         ROUTE_INLINE, 0, NULL},
	{"GET", "/readyz", PERM_PUBLIC, SCOPE_PLATFORM, NULL, api_readyz,
         ROUTE_INLINE, 0, NULL},
	{"GET", "/v1/openapi.json", PERM_PUBLIC, SCOPE_PLATFORM, NULL,
         api_openapi, ROUTE_INLINE, 0, NULL},

	{"POST", "/v1/auth/login", PERM_PUBLIC, SCOPE_PLATFORM, api_login_body,
         api_login, 0, 0, NULL},
	{"POST", "/v1/auth/logout", PERM_AUTHENTICATED, SCOPE_PLATFORM, NULL,
         api_logout, 0, 204, NULL},
	{"GET", "/v1/whoami", PERM_AUTHENTICATED, SCOPE_PLATFORM, NULL,
         api_whoami, 0, 0, NULL},

	{"GET", "/v1/tenants", PERM_TENANTS_LIST, SCOPE_PLATFORM, NULL,
         api_tenants_list, 0, 0, NULL},
	{"POST", "/v1/tenants", PERM_TENANTS_CREATE, SCOPE_PLATFORM,
         api_tenant_body, api_tenants_create, 0, 0, NULL},
	{"GET", "/v1/tenants/{tid}", PERM_TENANTS_GET, SCOPE_PATH_TENANT, NULL,
         api_tenants_get, 0, 0, NULL},

	{"GET", "/v1/tenants/{tid}/users", PERM_USERS_LIST, SCOPE_PATH_TENANT,
         NULL, api_users_list, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/users", PERM_USERS_MANAGE,
         SCOPE_PATH_TENANT, api_user_body, api_users_create, 0, 0, NULL},
	{"DELETE", "/v1/tenants/{tid}/users/{id}", PERM_USERS_MANAGE,
         SCOPE_PATH_TENANT, NULL, api_users_delete, 0, 0, NULL},

	{"GET", "/v1/tenants/{tid}/role-bindings", PERM_BINDINGS_LIST,
         SCOPE_PATH_TENANT, NULL, api_bindings_list, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/role-bindings", PERM_BINDINGS_MANAGE,
         SCOPE_PATH_TENANT, api_binding_body, api_bindings_create, 0, 0, NULL},
	{"DELETE", "/v1/tenants/{tid}/role-bindings/{id}", PERM_BINDINGS_MANAGE,
         SCOPE_PATH_TENANT, NULL, api_bindings_delete, 0, 0, NULL},

	{"GET", "/v1/tenants/{tid}/api-keys", PERM_APIKEYS_LIST,
         SCOPE_PATH_TENANT, NULL, api_keys_list, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/api-keys", PERM_APIKEYS_MANAGE,
         SCOPE_PATH_TENANT, api_key_body, api_keys_create, 0, 0, NULL},
	{"DELETE", "/v1/tenants/{tid}/api-keys/{id}", PERM_APIKEYS_MANAGE,
         SCOPE_PATH_TENANT, NULL, api_keys_revoke, 0, 0, NULL},

	{"GET", "/v1/emergency-stop", PERM_ESTOP_READ, SCOPE_PLATFORM, NULL,
         api_estop_get, 0, 0, NULL},
	{"PUT", "/v1/emergency-stop", PERM_ESTOP_WRITE, SCOPE_PLATFORM,
         api_estop_body, api_estop_put, 0, 0, NULL},

	{"GET", "/v1/audit", PERM_AUDIT_READ, SCOPE_QUERY_TENANT, NULL,
         api_audit_list, 0, 0, NULL},
	{"GET", "/v1/audit/verify", PERM_AUDIT_VERIFY, SCOPE_QUERY_TENANT, NULL,
         api_audit_verify, 0, 0, NULL},

	/* the worker's dead letters (platform admins) */
	{"GET", "/v1/admin/dead-letters", PERM_DLQ_READ, SCOPE_PLATFORM, NULL,
         api_dlq_list, 0, 0, NULL},
	{"POST", "/v1/admin/dead-letters/{id}/replay", PERM_DLQ_MANAGE,
         SCOPE_PLATFORM, NULL, api_dlq_replay, 0, 204, NULL},
	{"DELETE", "/v1/admin/dead-letters/{id}", PERM_DLQ_MANAGE,
         SCOPE_PLATFORM, NULL, api_dlq_delete, 0, 0, NULL},
	{"DELETE", "/v1/admin/dead-letters", PERM_DLQ_MANAGE, SCOPE_PLATFORM,
         NULL, api_dlq_purge, 0, 200, NULL},

	{"POST", "/v1/tenants/{tid}/ingest", PERM_INGEST_WRITE,
         SCOPE_PATH_TENANT, api_ingest_body, api_ingest, 0, 202,
         api_ingest_members},

	{"GET", "/v1/tenants/{tid}/scan-runs", PERM_SCANS_READ,
         SCOPE_PATH_TENANT, NULL, api_runs_list, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/scan-runs", PERM_SCANS_CREATE,
         SCOPE_PATH_TENANT, api_run_body, api_runs_create, ROUTE_STOPPABLE, 0,
         NULL},
	{"GET", "/v1/tenants/{tid}/scan-runs/{id}", PERM_SCANS_READ,
         SCOPE_PATH_TENANT, NULL, api_runs_get, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/scan-runs/{id}/cancel", PERM_SCANS_CREATE,
         SCOPE_PATH_TENANT, NULL, api_runs_cancel, 0, 200, NULL},

	{"GET", "/v1/tenants/{tid}/findings", PERM_FINDINGS_READ,
         SCOPE_PATH_TENANT, NULL, api_findings_list, 0, 0, NULL},
	{"PATCH", "/v1/tenants/{tid}/findings/{id}", PERM_FINDINGS_TRIAGE,
         SCOPE_PATH_TENANT, api_triage_body, api_findings_triage, 0, 0, NULL},

	/* asking for a report is reading the run's results: reports:read */
	{"GET", "/v1/tenants/{tid}/reports", PERM_REPORTS_READ,
         SCOPE_PATH_TENANT, NULL, api_reports_list, 0, 0, NULL},
	{"POST", "/v1/tenants/{tid}/reports", PERM_REPORTS_READ,
         SCOPE_PATH_TENANT, api_report_body, api_reports_create, 0, 202, NULL},
	{"GET", "/v1/tenants/{tid}/reports/{id}", PERM_REPORTS_READ,
         SCOPE_PATH_TENANT, NULL, api_reports_get, 0, 0, NULL},
	{"GET", "/v1/tenants/{tid}/reports/{id}/content", PERM_REPORTS_READ,
         SCOPE_PATH_TENANT, NULL, api_reports_content, 0, 0, NULL},

	/* a WebSocket of the tenant's live events (101 Switching Protocols) */
	{"GET", "/v1/events", PERM_EVENTS_SUBSCRIBE, SCOPE_CALLER_TENANT, NULL,
         api_events, 0, 101, NULL},
	{NULL, NULL, PERM_PUBLIC, SCOPE_PLATFORM, NULL, NULL, 0, 0, NULL},
};

const struct gw_route *gw_routes(size_t *n)
{
	if (n)
		*n = sizeof(routes) / sizeof(routes[0]) - 1;
	return routes;
}

/* ------------------------------------------------------------------ */
/* Matching                                                             */
/* ------------------------------------------------------------------ */

/* 1 when `path` fits `pattern`; captures {params} into `params`. */
static int match(const char *pattern, const char *path, char params[][72],
                 int *nparams)
{
	const char *p = pattern, *s = path;
	int np = 0;

	while (*p && *s) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			size_t n = strcspn(s, "/");

			if (!pe || n == 0 || n >= 72 || np >= GW_MAX_PARAMS)
				return 0;
			memcpy(params[np], s, n);
			params[np++][n] = '\0';
			p = pe + 1;
			s += n;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p || *s)
		return 0;
	if (nparams)
		*nparams = np;
	return 1;
}

static const char *match_method(const char *m)
{
	return strcmp(m, "HEAD") == 0 ? "GET" : m;
}

/* The route for the request, or NULL with *path_known when another
 * method would match. */
static const struct gw_route *find_route(const struct srv_req *req,
                                         char params[][72], int *path_known)
{
	const char *m = match_method(req->method);
	char scratch[GW_MAX_PARAMS][72];

	*path_known = 0;
	for (const struct gw_route *r = routes; r->method; r++) {
		if (!match(r->pattern, req->path, scratch, NULL))
			continue;
		if (strcmp(r->method, m) == 0) {
			memcpy(params, scratch, sizeof(scratch));
			return r;
		}
		*path_known = 1;
	}
	return NULL;
}

static void allow_header(const struct srv_req *req, struct srv_resp *resp)
{
	char allow[128] = "";
	char scratch[GW_MAX_PARAMS][72];
	size_t len = 0;

	for (const struct gw_route *r = routes; r->method; r++) {
		if (!match(r->pattern, req->path, scratch, NULL))
			continue;
		len += (size_t)snprintf(allow + len, sizeof(allow) - len,
		                        "%s%s", len ? ", " : "", r->method);
		if (strcmp(r->method, "GET") == 0)
			len += (size_t)snprintf(allow + len,
			                        sizeof(allow) - len, ", HEAD");
		if (len >= sizeof(allow))
			break;
	}
	srv_resp_header(resp, "Allow", allow);
}

int gw_is_inline(const struct srv_req *req, void *ud)
{
	char params[GW_MAX_PARAMS][72];
	int known;
	const struct gw_route *r = find_route(req, params, &known);

	(void)ud;
	/* unknown paths are answered at once too */
	return !r || (r->flags & ROUTE_INLINE);
}

/* ------------------------------------------------------------------ */
/* Replies and logs                                                     */
/* ------------------------------------------------------------------ */

void gw_reply_json(struct gw_rctx *rc, int status, json_t *doc)
{
	struct srv_resp *resp = rc->resp;

	vg_buf_reset(&resp->body);
	if (!doc || vg_json_dumps(doc, JSON_COMPACT, &resp->body) != VG_OK) {
		json_decref(doc);
		gw_reply_error(rc, 500, "internal", "could not encode reply");
		return;
	}
	json_decref(doc);
	resp->status = status;
	resp->content_type = "application/json";
}

void gw_reply_no_content(struct gw_rctx *rc, int status)
{
	vg_buf_reset(&rc->resp->body);
	rc->resp->status = status;
}

void gw_reply_error(struct gw_rctx *rc, int status, const char *code,
                    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv_resp_error(rc->resp, status, code, msg, rc->req->request_id);
}

static int is_sqlstate(const char *r)
{
	return strlen(r) == 5 &&
	       strspn(r, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5;
}

void gw_reply_failure(struct gw_rctx *rc, int code, const struct vg_err *err)
{
	static const struct {
		int code;
		int status;
		const char *name;
		const char *generic;
	} map[] = {
		{VG_NOTFOUND, 404, "not_found", "not found"},
		{VG_EXISTS, 409, "conflict", "already exists"},
		{VG_CONFLICT, 409, "conflict", "conflicts with existing data"},
		{VG_INVAL, 422, "validation_failed", "invalid value"},
		{VG_PARSE, 400, "invalid_json", "malformed JSON"},
		{VG_TOOLARGE, 413, "payload_too_large", "too large"},
		{VG_FORBIDDEN, 403, "forbidden", "forbidden"},
		{VG_UNAUTHORIZED, 401, "unauthenticated", "unauthenticated"},
		{VG_IO, 503, "unavailable", "a backing service is unavailable"},
		{VG_TIMEOUT, 503, "unavailable",
	         "a backing service did not answer in time"},
		{VG_AGAIN, 503, "unavailable", "busy; retry"},
	};
	const char *msg = err && err->msg[0] ? err->msg : NULL;
	int from_db = err && is_sqlstate(err->reason);

	if (vg_db_unavailable(err))
		code = VG_IO;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].code != code)
			continue;
		if (map[i].status == 503) {
			srv_resp_header(rc->resp, "Retry-After", "1");
			gw_rlog(rc, VG_LOG_WARN, "backing service unavailable",
			        "err", msg ? msg : "", NULL);
			msg = NULL;
		}
		/* server messages name tables and constraints: keep them
		 * in the log, not in the reply */
		if (from_db || !msg)
			msg = map[i].generic;
		gw_reply_error(rc, map[i].status, map[i].name, "%s", msg);
		return;
	}
	gw_rlog(rc, VG_LOG_ERROR, "request failed", "err",
	        err ? err->msg : vg_strerror(code), NULL);
	gw_reply_error(rc, 500, "internal", "internal error");
}

void gw_rlog(const struct gw_rctx *rc, enum vg_log_level level, const char *msg,
             ...)
{
	struct vg_log_field f[16];
	int n = 0;
	va_list ap;
	const char *k;

	if (!vg_log_enabled(level))
		return;
	f[n++] = (struct vg_log_field){"request_id", rc->req->request_id};
	if (rc->tenant)
		f[n++] = (struct vg_log_field){"tenant", rc->tenant};
	if (rc->who.kind != PRINC_NONE)
		f[n++] = (struct vg_log_field){"actor", rc->who.actor};
	va_start(ap, msg);
	while (n < 16 && (k = va_arg(ap, const char *))) {
		f[n].key = k;
		f[n++].val = va_arg(ap, const char *);
	}
	va_end(ap);
	vg_log_fields(level, msg, f, n);
}

/* ------------------------------------------------------------------ */
/* Transactions                                                         */
/* ------------------------------------------------------------------ */

static const struct vg_db_stmt st_tenant_live = {
	.name = "gw_tenant_live",
	.sql = "SELECT 1 FROM tenants WHERE id = current_tenant()"
	       " AND state = 'active'",
	.nparams = 0,
};

struct tx_wrap {
	vg_db_tx_fn fn;
	void *arg;
};

static int tenant_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct tx_wrap *w = arg;
	struct vg_db_res *res = NULL;
	int rc = vg_db_exec_stmt(c, &st_tenant_live, NULL, &res, err);

	if (rc == VG_OK && vg_db_res_rows(res) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "tenant not found");
	vg_db_res_free(res);
	return rc == VG_OK ? w->fn(c, w->arg, err) : rc;
}

int gw_tx(struct gw_rctx *rc, unsigned flags, vg_db_tx_fn fn, void *arg,
          struct vg_err *err)
{
	struct tx_wrap w = {fn, arg};

	if (!rc->tenant)
		return vg_db_tx(rc->g->db, NULL, flags, fn, arg, err);
	return vg_db_tx(rc->g->db, rc->tenant, flags, tenant_tx, &w, err);
}

int gw_read(struct gw_rctx *rc, struct vg_db_step *steps, int n,
            struct vg_err *err)
{
	struct vg_db_step all[GW_READ_STEPS + 1] = {{.st = &st_tenant_live}};
	int first = rc->tenant ? 1 : 0, r;

	if (n < 1 || n > GW_READ_STEPS)
		return vg_err_set(err, VG_INVAL, "a read of %d statements", n);
	memcpy(all + first, steps, (size_t)n * sizeof(*steps));
	r = vg_db_read(rc->g->db, rc->tenant, all, n + first, err);
	if (r == VG_OK && first && vg_db_res_rows(all[0].res) != 1)
		r = vg_err_set(err, VG_NOTFOUND, "tenant not found");
	vg_db_res_free(first ? all[0].res : NULL);
	for (int i = 0; i < n; i++) {
		steps[i].res = all[first + i].res;
		if (r != VG_OK) {
			vg_db_res_free(steps[i].res);
			steps[i].res = NULL;
		}
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* The pipeline                                                         */
/* ------------------------------------------------------------------ */

/* The role the caller holds in rc->tenant, or ROLE_NONE. */
static enum gw_role tenant_role(const struct gw_rctx *rc)
{
	if (rc->who.platform_admin)
		return ROLE_PLATFORM_ADMIN;
	for (size_t i = 0; i < rc->who.nb; i++)
		if (strcmp(rc->who.b[i].tenant_id, rc->tenant) == 0)
			return rc->who.b[i].role;
	return ROLE_NONE;
}

/* 0 to go on; otherwise replied. */
static int authorize(struct gw_rctx *rc)
{
	enum gw_perm perm = rc->route->perm;

	rc->role = ROLE_NONE;
	if (rc->tenant) {
		rc->role = tenant_role(rc);
		if (rc->role == ROLE_NONE) {
			gw_reply_error(rc, 404, "not_found",
			               "tenant not found");
			return -1;
		}
		if (perm == PERM_AUTHENTICATED ||
		    gw_rbac_allowed(perm, rc->role))
			return 0;
	} else {
		if (rc->who.platform_admin)
			rc->role = ROLE_PLATFORM_ADMIN;
		if (perm == PERM_AUTHENTICATED)
			return 0;
		if (rc->role == ROLE_PLATFORM_ADMIN &&
		    gw_rbac_allowed(perm, rc->role))
			return 0;
		/* a platform-wide route a tenant role may use; the platform's
		 * own records (SCOPE_QUERY_TENANT without a tenant) are for
		 * platform admins only */
		for (size_t i = 0;
		     rc->route->scope == SCOPE_PLATFORM && i < rc->who.nb;
		     i++) {
			if (gw_rbac_allowed(perm, rc->who.b[i].role)) {
				rc->role = rc->who.b[i].role;
				return 0;
			}
		}
	}
	gw_reply_error(rc, 403, "forbidden", "the %s role may not %s",
	               gw_role_name(rc->role), gw_perm_name(perm));
	return -1;
}

static int scope(struct gw_rctx *rc, int nparams)
{
	char t[72];
	int r;

	switch (rc->route->scope) {
	case SCOPE_PLATFORM:
		return 0;
	case SCOPE_PATH_TENANT:
		if (nparams < 1 || !vg_db_is_uuid(rc->params[0])) {
			gw_reply_error(rc, 404, "not_found",
			               "tenant not found");
			return -1;
		}
		snprintf(rc->tenant_buf, sizeof(rc->tenant_buf), "%s",
		         rc->params[0]);
		rc->tenant = rc->tenant_buf;
		return 0;
	case SCOPE_QUERY_TENANT:
		r = vg_http_query_get(rc->req->query, strlen(rc->req->query),
		                      "tenant", t, sizeof(t));
		if (r == VG_NOTFOUND)
			return 0;
		if (r != VG_OK || !vg_db_is_uuid(t)) {
			gw_reply_error(rc, 400, "bad_request",
			               "tenant: want a tenant id");
			return -1;
		}
		snprintf(rc->tenant_buf, sizeof(rc->tenant_buf), "%s", t);
		rc->tenant = rc->tenant_buf;
		return 0;
	case SCOPE_CALLER_TENANT:
		r = vg_http_query_get(rc->req->query, strlen(rc->req->query),
		                      "tenant", t, sizeof(t));
		if (r == VG_OK && vg_db_is_uuid(t)) {
			snprintf(rc->tenant_buf, sizeof(rc->tenant_buf), "%s",
			         t);
		} else if (r != VG_NOTFOUND) {
			gw_reply_error(rc, 400, "bad_request",
			               "tenant: want a tenant id");
			return -1;
		} else if (rc->who.nb == 1 && !rc->who.platform_admin) {
			snprintf(rc->tenant_buf, sizeof(rc->tenant_buf), "%s",
			         rc->who.b[0].tenant_id);
		} else if (rc->who.nb > 1 || rc->who.platform_admin) {
			gw_reply_error(rc, 400, "bad_request",
			               "tenant: required when the caller may "
			               "act in several tenants");
			return -1;
		} else {
			return 0; /* no role anywhere: 403 */
		}
		rc->tenant = rc->tenant_buf;
		return 0;
	}
	return 0;
}

static int json_content_type(const struct srv_req *req)
{
	char ct[128];
	size_t n;

	if (!srv_req_header(req, "content-type", ct, sizeof(ct)))
		return 0;
	n = strcspn(ct, "; \t");
	if (n != 16 || strncasecmp(ct, "application/json", 16) != 0)
		return 0;
	/* the only charset JSON has */
	for (char *p = ct + n; *p; p++)
		*p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
	return !strstr(ct + n, "charset") || strstr(ct + n, "charset=utf-8");
}

static int read_body(struct gw_rctx *rc)
{
	struct vg_err err = {0};
	int r;

	if (!rc->route->body)
		return 0;
	if (rc->req->body_len > 0 && !json_content_type(rc->req)) {
		gw_reply_error(rc, 415, "unsupported_media_type",
		               "send Content-Type: application/json");
		return -1;
	}
	if (rc->route->members) {
		r = rc->req->body_len
		            ? vg_json_loadb(rc->req->body, rc->req->body_len,
		                            (size_t)rc->g->cfg->max_body,
		                            &rc->body, &err)
		            : vg_err_set(&err, VG_INVAL, "body: is required");
		if (r == VG_OK)
			r = gw_body_check(rc->body, rc->route->body,
			                  rc->route->members, &err);
	} else {
		r = vg_json_validate_body(rc->req->body, rc->req->body_len,
		                          (size_t)rc->g->cfg->max_body,
		                          rc->route->body, &rc->body, &err);
	}
	if (r == VG_OK)
		return 0;
	if (r == VG_PARSE)
		gw_reply_error(rc, 400, "invalid_json", "%s", err.msg);
	else if (r == VG_INVAL)
		gw_reply_error(rc, 422, "validation_failed", "%s", err.msg);
	else
		gw_reply_failure(rc, r, &err);
	return -1;
}

void gw_handle(struct srv_req *req, struct srv_resp *resp, void *ud)
{
	struct gw_rctx *rc = calloc(1, sizeof(*rc));
	int known, nparams = 0;

	if (!rc) {
		srv_resp_error(resp, 503, "unavailable", "out of memory",
		               req->request_id);
		return;
	}
	rc->g = ud;
	rc->req = req;
	rc->resp = resp;
	gw_client_addr(rc->g, req, rc->client, sizeof(rc->client));
	rc->role = ROLE_NONE;
	rc->route = find_route(req, rc->params, &known);
	if (!rc->route) {
		resp->route = "unmatched";
		if (known) {
			allow_header(req, resp);
			gw_reply_error(rc, 405, "method_not_allowed",
			               "%s is not allowed here", req->method);
		} else {
			gw_reply_error(rc, 404, "not_found",
			               "no such endpoint");
		}
		goto out;
	}
	resp->route = rc->route->pattern;
	if (!(rc->route->flags & ROUTE_INLINE) &&
	    !atomic_load(&rc->g->schema_ok)) {
		srv_resp_header(resp, "Retry-After", "1");
		gw_reply_error(rc, 503, "unavailable",
		               "database schema not ready");
		goto out;
	}
	for (const char *p = rc->route->pattern; (p = strchr(p, '{')); p++)
		nparams++;
	if (rc->route->perm != PERM_PUBLIC && gw_authenticate(rc))
		goto out;
	if (scope(rc, nparams) ||
	    (rc->route->perm != PERM_PUBLIC && authorize(rc)))
		goto out;
	if ((rc->route->flags & ROUTE_STOPPABLE) &&
	    atomic_load(&rc->g->estop)) {
		gw_reply_error(rc, 503, "emergency_stop",
		               "the emergency stop is engaged");
		goto out;
	}
	if (read_body(rc))
		goto out;
	rc->route->fn(rc);
out:
	json_decref(rc->body);
	free(rc);
}

void gw_request_done(const struct srv_req *req, const struct srv_resp *resp,
                     double seconds, void *ud)
{
	static const char *const methods[] = {
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
	struct gw *g = ud;
	const char *method = "other";
	const char *route = resp->route ? resp->route : "unmatched";
	char code[8];

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(req->method, methods[i]) == 0)
			method = methods[i];
	snprintf(code, sizeof(code), "%d", resp->status);
	vg_counter_inc(vg_metric_labels(g->m.requests, method, route, code));
	vg_histogram_observe(vg_metric_labels(g->m.duration, route), seconds);
	if (g->cfg->access_log) {
		char ms[32];

		snprintf(ms, sizeof(ms), "%.3f", seconds * 1000);
		vg_info("request", "request_id", req->request_id, "method",
		        req->method, "path", req->path ? req->path : "",
		        "route", route, "status", code, "duration_ms", ms,
		        "peer", req->peer);
	}
}

/* ------------------------------------------------------------------ */
/* Rows                                                                 */
/* ------------------------------------------------------------------ */

/* The next "name[:type]" of a column spec; 0 at its end. */
static int next_col(const char **spec, char *name, size_t size, char *type)
{
	const char *s = *spec, *e, *colon;
	size_t n;

	if (!*s)
		return 0;
	e = s + strcspn(s, ",");
	colon = memchr(s, ':', (size_t)(e - s));
	n = (size_t)((colon ? colon : e) - s);
	if (n >= size)
		n = size - 1;
	memcpy(name, s, n);
	name[n] = '\0';
	*type = colon && colon + 1 < e ? colon[1] : 's';
	*spec = *e ? e + 1 : e;
	return 1;
}

/* Type OIDs (pg_type.dat) the renderers decode from binary results; any
 * other type is taken as text, which is what an enum's binary form is. */
#define OID_BOOL        16
#define OID_INT8        20
#define OID_INT2        21
#define OID_INT4        23
#define OID_TIMESTAMPTZ 1184
#define OID_UUID        2950
#define OID_JSONB       3802
#define PG_EPOCH        946684800 /* 2000-01-01 in Unix seconds */

static uint64_t be_int(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Microseconds since 2000-01-01 UTC as RFC 3339 in UTC, the fraction as
 * PostgreSQL prints it (trailing zeros dropped); the length, 0 if `n` is
 * too small. */
static size_t ts_text(int64_t us, char *out, size_t n)
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	time_t t;
	struct tm tm;
	size_t len;

	if (us == INT64_MAX || us == INT64_MIN) {
		len = (size_t)snprintf(out, n, "%sinfinity",
		                       us == INT64_MIN ? "-" : "");
		return len < n ? len : 0;
	}
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	t = (time_t)(secs + PG_EPOCH);
	if (!gmtime_r(&t, &tm) ||
	    !(len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm)))
		return 0;
	if (frac) {
		char f[8];
		int d = 6;

		snprintf(f, sizeof(f), "%06lld", (long long)frac);
		while (d > 1 && f[d - 1] == '0')
			d--;
		if (len + 1 + (size_t)d >= n)
			return 0;
		len += (size_t)snprintf(out + len, n - len, ".%.*s", d, f);
	}
	if (len + 2 > n)
		return 0;
	out[len++] = 'Z';
	out[len] = '\0';
	return len;
}

#define COL_TMP 64

/*
 * A value as text, its length in *len; NULL for SQL NULL. Binary results
 * are decoded; timestamptz is RFC 3339 UTC in both forms (text results
 * come as "2026-11-28 19:00:52.5+00", the pool's sessions being in UTC).
 * Values built here go to `tmp` (COL_TMP bytes); others are borrowed.
 */
static const char *col_text(const struct vg_db_res *r, int row, int col,
                            char *tmp, size_t *len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *v =
		(const unsigned char *)vg_db_res_get(r, row, col);
	unsigned type = vg_db_res_type(r, col);
	int n = vg_db_res_len(r, row, col);
	long long i64;

	*len = 0;
	if (!v)
		return NULL;
	if (!vg_db_res_binary(r)) {
		*len = (size_t)n;
		if (type == OID_TIMESTAMPTZ && n >= 22 && n < COL_TMP &&
		    v[10] == ' ' &&
		    strcmp((const char *)v + n - 3, "+00") == 0) {
			memcpy(tmp, v, (size_t)n - 3);
			tmp[10] = 'T';
			tmp[n - 3] = 'Z';
			tmp[n - 2] = '\0';
			*len = (size_t)n - 2;
			return tmp;
		}
		return (const char *)v;
	}
	switch (type) {
	case OID_BOOL:
		*len = 1;
		return n == 1 && v[0] ? "t" : "f";
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		if (n == 2)
			i64 = (int16_t)be_int(v, 2);
		else if (n == 4)
			i64 = (int32_t)be_int(v, 4);
		else if (n == 8)
			i64 = (int64_t)be_int(v, 8);
		else
			return NULL;
		*len = (size_t)snprintf(tmp, COL_TMP, "%lld", i64);
		return tmp;
	case OID_UUID:
		if (n != 16)
			return NULL;
		for (int i = 0, o = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				tmp[o++] = '-';
			tmp[o++] = hex[v[i] >> 4];
			tmp[o++] = hex[v[i] & 15];
			tmp[o] = '\0';
		}
		*len = 36;
		return tmp;
	case OID_TIMESTAMPTZ:
		if (n != 8)
			return NULL;
		*len = ts_text((int64_t)be_int(v, 8), tmp, COL_TMP);
		return *len ? tmp : NULL;
	case OID_JSONB: /* a version byte (1), then the text */
		if (n < 1 || v[0] != 1)
			return NULL;
		*len = (size_t)n - 1;
		return (const char *)v + 1;
	default: /* text, varchar, enums: the characters */
		*len = (size_t)n;
		return (const char *)v;
	}
}

json_t *gw_row_json(const struct vg_db_res *r, int row, const char *spec)
{
	json_t *o = json_object();
	char name[64], t, tmp[COL_TMP];

	for (int i = 0; o && next_col(&spec, name, sizeof(name), &t); i++) {
		size_t n;
		const char *v = col_text(r, row, i, tmp, &n);
		json_t *jv;

		if (!v)
			jv = json_null();
		else if (t == 'b')
			jv = json_boolean(v[0] == 't');
		else if (t == 'i')
			jv = json_integer(strtoll(v, NULL, 10));
		else if (t == 'j')
			jv = json_loadb(v, n, JSON_DECODE_ANY, NULL);
		else
			jv = json_stringn(v, n);
		if (!jv || json_object_set_new(o, name, jv)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int gw_col_text(const struct vg_db_res *r, int row, int col, char *out,
                size_t size)
{
	char tmp[COL_TMP];
	size_t n;
	const char *v = col_text(r, row, col, tmp, &n);

	if (!v || n >= size)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/* an integer as PostgreSQL prints one: [-]digits */
static int int_text(const char *v, size_t n)
{
	size_t i = n && v[0] == '-' ? 1 : 0;

	if (i == n || n > 20)
		return 0;
	for (; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return 0;
	return 1;
}

int gw_row_render(struct vg_buf *out, const struct vg_db_res *r, int row,
                  const char *spec)
{
	char name[64], t, tmp[COL_TMP];
	int rc = vg_buf_append_byte(out, '{');

	for (int i = 0; !rc && next_col(&spec, name, sizeof(name), &t); i++) {
		size_t n;
		const char *v = col_text(r, row, i, tmp, &n);

		if (i)
			rc = vg_buf_append_byte(out, ',');
		if (!rc)
			rc = vg_json_escape(out, name, strlen(name));
		if (!rc)
			rc = vg_buf_append_byte(out, ':');
		if (rc)
			break;
		if (!v)
			rc = vg_buf_append(out, "null", 4);
		else if (t == 'b')
			rc = vg_buf_append_str(out, v[0] == 't' ? "true"
			                                        : "false");
		else if (t == 'i' && int_text(v, n))
			rc = vg_buf_append(out, v, n);
		else if (t == 'i')
			rc = vg_buf_appendf(out, "%lld", strtoll(v, NULL, 10));
		else if (t == 'j')
			rc = vg_buf_append(out, v, n);
		else
			rc = vg_json_escape(out, v, n);
	}
	return rc ? rc : vg_buf_append_byte(out, '}');
}

json_t *gw_rows_json(const struct vg_db_res *r, const char *spec)
{
	json_t *a = json_array();
	int rows = vg_db_res_rows(r);

	for (int i = 0; a && i < rows; i++) {
		json_t *o = gw_row_json(r, i, spec);

		if (!o || json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
