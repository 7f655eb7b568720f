/*
 * gateway.h - the gateway's shared state and the interfaces between its
 * parts: configuration (config.c), Redis (redis.c), permissions (rbac.c),
 * authentication and sessions (auth.c, session.c), the route table and
 * request pipeline (router.c), audit entries (audit.c), metrics
 * (gwmetrics.c) and the handlers (api_*.c).
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server.h"
#include "vigil/db.h"
#include "vigil/err.h"
#include "vigil/json_validate.h"
#include "vigil/log.h"
#include "vigil/metrics.h"

/* ------------------------------------------------------------------ */
/* Configuration (config.c)                                             */
/* ------------------------------------------------------------------ */

struct gw_config {
	char *platform, *namespace_, *log_level;
	int emergency_stop;
	int health_port, gateway_port, gateway_tls;
	char *listen, *health_listen;
	char *db_host, *db_name, *db_sslmode, *db_sslrootcert;
	int db_port;
	char *db_user, *db_password;         /* migrations (the owner) */
	char *db_app_user, *db_app_password; /* the request path */
	int db_pool_max, db_statement_timeout_ms, migrate;
	char *redis_host, *redis_addr, *redis_user, *redis_password;
	int redis_port, redis_db, redis_tls, redis_pool_max;
	char *session_key;
	char *tls_cert_file, *tls_key_file;
	char *config_file;
	char *bootstrap_key, *bootstrap_key_file;
	int loops, workers, max_conns;
	long max_header, max_body;
	int request_timeout_ms, idle_timeout_ms, drain_timeout_ms;
	int session_ttl_s, session_max_s;
	int auth_fail_limit, auth_fail_window_s;
	int auth_cache_ttl_ms;
	int access_log;
	char *trusted_proxies;
	char *queue_prefix;
	long events_max_queue;
	int events_ping_ms;
	int scan_jobs_refresh_s;
	int show_version, show_help, show_openapi;
};

/* Defaults, then the JSON config file, then the environment, then
 * command-line flags. Returns VG_OK or VG_CONFIG with `err` saying which
 * setting is wrong. */
int gw_config_load(struct gw_config *c, int argc, char **argv,
                   struct vg_err *err);
void gw_config_cleanup(struct gw_config *c);
void gw_config_usage(void);
/* libpq conninfo strings (new); NULL when out of memory. */
char *gw_config_conninfo(const struct gw_config *c, int app);

/* ------------------------------------------------------------------ */
/* Redis (redis.c)                                                      */
/* ------------------------------------------------------------------ */

struct redisReply;
struct gw_redis;

int gw_redis_new(const struct gw_config *c, struct gw_redis **out,
                 struct vg_err *err);
void gw_redis_free(struct gw_redis *r);
/*
 * Run one command given as NUL-terminated strings ending with NULL. *out
 * (NULL allowed to discard) is a new reply for freeReplyObject. VG_IO when
 * Redis cannot be reached (answer 503), VG_REDIS for an error reply.
 */
int gw_redis_cmd(struct gw_redis *r, struct redisReply **out,
                 struct vg_err *err, const char *arg0, ...);

/* ------------------------------------------------------------------ */
/* Roles and permissions (rbac.c)                                       */
/* ------------------------------------------------------------------ */

enum gw_role {
	ROLE_ADMIN,
	ROLE_ANALYST,
	ROLE_VIEWER,
	ROLE_AGENT,
	ROLE_PLATFORM_ADMIN,
	ROLE_COUNT,
	ROLE_NONE = -1,
};

enum gw_perm {
	PERM_PUBLIC,        /* no credentials needed */
	PERM_AUTHENTICATED, /* any valid credentials, no role needed */
	PERM_TENANTS_LIST,
	PERM_TENANTS_CREATE,
	PERM_TENANTS_GET,
	PERM_USERS_LIST,
	PERM_USERS_MANAGE,
	PERM_BINDINGS_LIST,
	PERM_BINDINGS_MANAGE,
	PERM_APIKEYS_LIST,
	PERM_APIKEYS_MANAGE,
	PERM_ESTOP_READ,
	PERM_ESTOP_WRITE,
	PERM_AUDIT_READ,
	PERM_AUDIT_VERIFY,
	/* the routes of the next milestones */
	PERM_SCANS_READ,
	PERM_SCANS_CREATE,
	PERM_INGEST_WRITE,
	PERM_FINDINGS_READ,
	PERM_FINDINGS_TRIAGE,
	PERM_REPORTS_READ,
	PERM_EVENTS_SUBSCRIBE,
	PERM_DLQ_READ,
	PERM_DLQ_MANAGE,
	PERM_COUNT,
};

/* 1 when `role` holds `perm` in the permission table. */
int gw_rbac_allowed(enum gw_perm perm, enum gw_role role);
const char *gw_perm_name(enum gw_perm perm);
const char *gw_role_name(enum gw_role role);
/* ROLE_NONE for an unknown name. */
enum gw_role gw_role_parse(const char *name);

/* ------------------------------------------------------------------ */
/* The gateway                                                          */
/* ------------------------------------------------------------------ */

struct gw_metrics {
	struct vg_metric *requests;   /* http_requests_total */
	struct vg_metric *duration;   /* http_request_duration_seconds */
	struct vg_metric *auth;       /* vigil_auth_attempts_total */
	struct vg_series *sessions;   /* vigil_active_sessions */
	struct vg_series *estop;      /* vigil_emergency_stop */
	struct vg_series *audit;      /* vigil_audit_log_entries_total */
	struct vg_metric *scan_jobs;  /* vigil_scan_jobs{state} */
	struct vg_series *ingest;     /* vigil_ingest_batches_total */
	struct vg_series *ev_conns;   /* vigil_events_connections */
	struct vg_series *ev_sent;    /* vigil_events_sent_total */
	struct vg_metric *ev_dropped; /* vigil_events_dropped_total{reason} */
};

/* An address range (clientaddr.c). */
struct gw_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

#define GW_MAX_PROXIES 32

/* Parse a list of addresses and CIDRs separated by commas or spaces. */
int gw_proxies_parse(const char *list, struct gw_cidr *out, size_t max,
                     size_t *n, struct vg_err *err);

/* The background checker's thread (health.c). */
struct gw_health {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop, running;
};

struct gw_taskq;
struct gw_eventsub;
struct gw_authcache;

struct gw {
	struct gw_config *cfg;
	struct gw_health health;
	struct vg_db_pool *db; /* as vigil_app */
	struct gw_redis *redis;
	struct gw_taskq *taskq;       /* the worker's task queue */
	struct srv *srv;              /* the API server (WebSocket fan-out) */
	struct gw_eventsub *eventsub; /* Redis pub/sub -> WebSockets */
	struct gw_authcache *authcache; /* verified keys, clear addresses */
	struct vg_metrics *reg;
	struct gw_metrics m;
	unsigned char bootstrap_hash[32];
	int has_bootstrap;
	unsigned char session_key[32];
	struct gw_cidr proxies[GW_MAX_PROXIES]; /* VIGIL_TRUSTED_PROXIES */
	size_t nproxies;
	atomic_int db_ok, redis_ok; /* from the health checker */
	atomic_int schema_ok;       /* migrations done (or found done) */
	atomic_int draining;        /* shutting down: not ready */
	atomic_int estop;           /* last known emergency stop */
};

/* ------------------------------------------------------------------ */
/* The running gateway (app.c)                                          */
/* ------------------------------------------------------------------ */

struct gw_app;

/*
 * Start serving with `cfg` (borrowed; must outlive the app): the API and
 * probe listeners, the pools, the health checker. Migrations run in the
 * background until they succeed (several replicas at once are safe); the
 * API answers 503 and /readyz is not ready until then.
 */
int gw_app_start(struct gw_config *cfg, struct gw_app **out,
                 struct vg_err *err);
int gw_app_port(const struct gw_app *a);
int gw_app_health_port(const struct gw_app *a);
struct gw *gw_app_gw(struct gw_app *a);
/* Graceful stop: not ready, stop accepting, finish requests in flight,
 * free everything. NULL allowed. */
void gw_app_stop(struct gw_app *a);

/* Try the migrations once (health.c calls it until it works). */
int gw_migrate(struct gw *g, struct vg_err *err);

/* Build metrics; returns VG_OK or an error. */
int gw_metrics_init(struct gw *g, struct vg_metrics *reg, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* A request on its way through the pipeline (router.c)                 */
/* ------------------------------------------------------------------ */

enum gw_principal_kind {
	PRINC_NONE,
	PRINC_BOOTSTRAP,
	PRINC_API_KEY,
	PRINC_SESSION,
};

struct gw_binding {
	char tenant_id[40];
	char tenant_name[64];
	enum gw_role role;
};

#define GW_MAX_BINDINGS 64

struct gw_principal {
	enum gw_principal_kind kind;
	char id[40];     /* API key id or user id */
	char actor[300]; /* audit actor: "user:<subject>", "apikey:<prefix>" */
	char subject[260]; /* user subject, API key prefix, "bootstrap" */
	int platform_admin;
	struct gw_binding b[GW_MAX_BINDINGS];
	size_t nb;
	char session_id[65]; /* sessions: the Redis key id */
};

#define GW_MAX_PARAMS 3

struct gw_route;

struct gw_rctx {
	struct gw *g;
	struct srv_req *req;
	struct srv_resp *resp;
	const struct gw_route *route;
	struct gw_principal who;
	const char *tenant; /* tenant of a tenant-scoped request, or NULL */
	char tenant_buf[72];
	enum gw_role role;              /* role the request runs with */
	char params[GW_MAX_PARAMS][72]; /* {tid} is params[0] when present */
	char client[64]; /* client address, behind trusted proxies */
	json_t *body;    /* the validated body, or NULL */
};

typedef void (*gw_handler)(struct gw_rctx *rc);

enum gw_scope {
	SCOPE_PLATFORM,      /* no tenant */
	SCOPE_PATH_TENANT,   /* {tid}, the first path parameter */
	SCOPE_QUERY_TENANT,  /* ?tenant=<id>, else the platform */
	SCOPE_CALLER_TENANT, /* ?tenant=<id>, else the caller's only tenant */
};

enum {
	ROUTE_INLINE = 1 << 0,    /* never blocks: run on the event loop */
	ROUTE_STOPPABLE = 1 << 1, /* refused (503) while the emergency stop
	                             is engaged: starting scans */
};

/*
 * Body members the flat field tables of vg_json_validate cannot describe:
 * an object, or an array of objects, each object checked against its own
 * field table and members (body.c). A list ends with a NULL name.
 */
enum gw_member_kind {
	GW_MEMBER_OBJECT,
	GW_MEMBER_ARRAY, /* of objects */
};

struct gw_member {
	const char *name;
	enum gw_member_kind kind;
	unsigned flags;   /* VG_JSON_REQUIRED, VG_JSON_NULLABLE */
	size_t max_items; /* arrays; 0: no bound */
	/* each object's scalar members; NULL: any object at all */
	const struct vg_json_field *fields;
	const struct gw_member *members; /* its own nested members, or NULL */
};

/*
 * Check `obj` against `fields` (scalars, by vg_json_validate) and
 * `members` (NULL: none); members in neither are refused. VG_INVAL with
 * a message naming the path ("findings[3].severity: ...") and the path in
 * err->reason.
 */
int gw_body_check(const json_t *obj, const struct vg_json_field *fields,
                  const struct gw_member *members, struct vg_err *err);

struct gw_route {
	const char *method;
	const char *pattern; /* also the metrics label */
	enum gw_perm perm;
	enum gw_scope scope;
	const struct vg_json_field *body; /* NULL: no body accepted */
	gw_handler fn;
	unsigned flags;
	int ok_status; /* success status when not the method's usual one
	                  (POST 201, DELETE 204, others 200); for OpenAPI */
	const struct gw_member *members; /* the body's objects and arrays */
};

/* The route table; borrowed, static, ends with a NULL method. */
const struct gw_route *gw_routes(size_t *n);

/* The client's address: the peer, or from X-Forwarded-For when the peer
 * is a trusted proxy (clientaddr.c). */
void gw_client_addr(const struct gw *g, const struct srv_req *req, char *out,
                    size_t size);

/* Server callbacks: route, authenticate, authorise, validate, handle. */
void gw_handle(struct srv_req *req, struct srv_resp *resp, void *ud);
int gw_is_inline(const struct srv_req *req, void *ud);
void gw_request_done(const struct srv_req *req, const struct srv_resp *resp,
                     double seconds, void *ud);

/* Replies. gw_reply_json steals `doc`. */
void gw_reply_json(struct gw_rctx *rc, int status, json_t *doc);
void gw_reply_error(struct gw_rctx *rc, int status, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Map a failure (db, redis, validation) to its status and reply. */
void gw_reply_failure(struct gw_rctx *rc, int code, const struct vg_err *err);
void gw_reply_no_content(struct gw_rctx *rc, int status);

/* Log with the request's id (and tenant) added; key/value pairs end with
 * NULL. */
void gw_rlog(const struct gw_rctx *rc, enum vg_log_level level, const char *msg,
             ...);

/* Run `fn` in a transaction of the request's tenant (rc->tenant, NULL for
 * none); with a tenant, first check that it exists (VG_NOTFOUND). */
int gw_tx(struct gw_rctx *rc, unsigned flags, vg_db_tx_fn fn, void *arg,
          struct vg_err *err);

/* The hot reads: prepared statements run as vg_db_read() does, in one
 * round trip, for the request's tenant, with the same check that it
 * exists first. At most GW_READ_STEPS steps. */
#define GW_READ_STEPS 4
int gw_read(struct gw_rctx *rc, struct vg_db_step *steps, int n,
            struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Authentication (auth.c) and sessions (session.c)                     */
/* ------------------------------------------------------------------ */

/*
 * Establish rc->who from the Authorization header. Returns 0, or replies
 * (401, 429, 503) itself and returns -1.
 */
int gw_authenticate(struct gw_rctx *rc);

/* Failed-authentication limits per client address and per user. */
/* 0 when allowed; -1 when limited (replied 429 with Retry-After) or when
 * Redis failed (replied 503). `user` may be NULL. */
int gw_auth_limit_check(struct gw_rctx *rc, const char *user);
void gw_auth_limit_fail(struct gw_rctx *rc, const char *user);
void gw_auth_limit_reset_user(struct gw_rctx *rc, const char *user);
void gw_auth_count(struct gw *g, const char *result);

/* The short-lived memory of verified API keys and of client addresses
 * Redis found not rate limited (authcache.c has the rules). `md` is the
 * SHA-256 of the bearer token; `expires_ms` the key's expiry (Unix ms, 0
 * none). ttl_ms 0: remembers nothing. */
int gw_authcache_new(int ttl_ms, struct gw_authcache **out);
void gw_authcache_free(struct gw_authcache *c);
int gw_authcache_get(struct gw_authcache *c, const unsigned char md[32],
                     struct gw_principal *who);
void gw_authcache_put(struct gw_authcache *c, const unsigned char md[32],
                      const struct gw_principal *who, int64_t expires_ms);
void gw_authcache_drop_key(struct gw_authcache *c, const char *key_id);
void gw_authcache_clear(struct gw_authcache *c);
int gw_authcache_addr_clear(struct gw_authcache *c, const char *addr);
void gw_authcache_addr_note(struct gw_authcache *c, const char *addr,
                            int clear);
/* Revoke `key_id` in every replica's memory: this one's at once, the
 * others' through Redis pub/sub. */
void gw_authcache_revoked(struct gw *g, const char *key_id);

/* A new API key "vgk_<8 hex>_<43 base64url>" and its 12-character
 * public prefix. */
int gw_api_key_new(char *key, size_t size, char *prefix, size_t psize);
/* Random token "<prefix><43 base64url chars>" (256 bits) into `out`. */
int gw_random_token(const char *prefix, char *out, size_t size);
/* Lower-case hex of SHA-256(data) / HMAC-SHA-256(key, data). */
void gw_sha256(const void *data, size_t len, unsigned char out[32]);
void gw_hex(const unsigned char *in, size_t n, char *out);

int gw_session_create(struct gw *g, const char *user_id, const char *subject,
                      char *token, size_t token_size, struct vg_err *err);
/* VG_NOTFOUND for an unknown or expired token; fills user id, subject and
 * session id; slides the idle expiry. */
int gw_session_lookup(struct gw *g, const char *token, char *user_id,
                      size_t uid_size, char *subject, size_t subj_size,
                      char *session_id, struct vg_err *err);
int gw_session_delete(struct gw *g, const char *session_id, struct vg_err *err);
/* Sessions alive now across every replica. */
int gw_session_count(struct gw *g, long long *n, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Audit (audit.c)                                                      */
/* ------------------------------------------------------------------ */

/* Append an entry to the chain of the transaction's tenant, or (no
 * tenant) to the platform's. `details` is borrowed (NULL: {}). */
int gw_audit(struct vg_db_conn *c, const struct gw_rctx *rc, const char *action,
             const char *object_type, const char *object_id,
             const json_t *details, struct vg_err *err);
/* Count entries appended by a committed transaction. */
void gw_audit_committed(struct gw *g, int n);

/* ------------------------------------------------------------------ */
/* Handlers (api_*.c)                                                   */
/* ------------------------------------------------------------------ */

void api_dlq_list(struct gw_rctx *rc);
void api_dlq_replay(struct gw_rctx *rc);
void api_dlq_delete(struct gw_rctx *rc);
void api_dlq_purge(struct gw_rctx *rc);
void api_healthz(struct gw_rctx *rc);
void api_openapi(struct gw_rctx *rc);
void api_readyz(struct gw_rctx *rc);
void api_login(struct gw_rctx *rc);
void api_logout(struct gw_rctx *rc);
void api_whoami(struct gw_rctx *rc);
void api_tenants_list(struct gw_rctx *rc);
void api_tenants_create(struct gw_rctx *rc);
void api_tenants_get(struct gw_rctx *rc);
void api_users_list(struct gw_rctx *rc);
void api_users_create(struct gw_rctx *rc);
void api_users_delete(struct gw_rctx *rc);
void api_bindings_list(struct gw_rctx *rc);
void api_bindings_create(struct gw_rctx *rc);
void api_bindings_delete(struct gw_rctx *rc);
void api_keys_list(struct gw_rctx *rc);
void api_keys_create(struct gw_rctx *rc);
void api_keys_revoke(struct gw_rctx *rc);
void api_estop_get(struct gw_rctx *rc);
void api_estop_put(struct gw_rctx *rc);
void api_audit_list(struct gw_rctx *rc);
void api_audit_verify(struct gw_rctx *rc);
void api_ingest(struct gw_rctx *rc);
void api_runs_list(struct gw_rctx *rc);
void api_runs_get(struct gw_rctx *rc);
void api_runs_create(struct gw_rctx *rc);
void api_runs_cancel(struct gw_rctx *rc);
void api_findings_list(struct gw_rctx *rc);
void api_findings_triage(struct gw_rctx *rc);
void api_reports_list(struct gw_rctx *rc);
void api_reports_get(struct gw_rctx *rc);
void api_reports_content(struct gw_rctx *rc);
void api_reports_create(struct gw_rctx *rc);
void api_events(struct gw_rctx *rc);

extern const struct vg_json_field api_login_body[];
extern const struct vg_json_field api_tenant_body[];
extern const struct vg_json_field api_user_body[];
extern const struct vg_json_field api_binding_body[];
extern const struct vg_json_field api_key_body[];
extern const struct vg_json_field api_estop_body[];
extern const struct vg_json_field api_ingest_body[];
extern const struct gw_member api_ingest_members[];
extern const struct vg_json_field api_run_body[];
extern const struct vg_json_field api_triage_body[];
extern const struct vg_json_field api_report_body[];

/* Scan run states, NULL-terminated (api_runs.c); 1 for one of them. */
extern const char *const gw_run_states[];
int gw_run_state_valid(const char *s);

/* The OpenAPI document (new), as GET /v1/openapi.json serves it. */
json_t *gw_openapi_document(void);
/* The document as committed in controlplane/gateway/openapi.json:
 * sorted keys, two-space indent, a final newline. */
int gw_openapi_print(FILE *out);

/* ------------------------------------------------------------------ */
/* The worker's task queue (taskq.c)                                    */
/* ------------------------------------------------------------------ */

#define GW_TASK_ID_LEN 32 /* VG_QUEUE_ID_LEN */

/* A small locked pool of vg_queue handles (one is not thread-safe),
 * connecting lazily: it can be created while Redis is down. */
int gw_taskq_new(const struct gw_config *c, struct gw_taskq **out,
                 struct vg_err *err);
void gw_taskq_free(struct gw_taskq *q);
/* A handle of the pool, waiting while all are in use; give it back with
 * gw_taskq_release (NULL is ignored). */
struct vg_queue;
int gw_taskq_acquire(struct gw_taskq *q, struct vg_queue **out,
                     struct vg_err *err);
void gw_taskq_release(struct gw_taskq *q, struct vg_queue *h);
/* Enqueue one task of `type` with `payload` (borrowed) for the request's
 * tenant, carrying its request id; the task id into `id` (33 bytes).
 * VG_IO for any failure of Redis (answer 503), VG_TOOLARGE past the
 * queue's task size. */
int gw_taskq_enqueue(struct gw_rctx *rc, const char *type,
                     const json_t *payload, char *id, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Live events (eventsub.c, api_events.c)                               */
/* ------------------------------------------------------------------ */

/* The subscriber thread: one Redis connection in PSUBSCRIBE on every
 * tenant's events channel (lib/vigil/events.h), reconnecting with
 * backoff, handing each message to the WebSockets of its tenant. Start
 * after the server, stop before it. */
int gw_eventsub_start(struct gw *g, struct vg_err *err);
void gw_eventsub_stop(struct gw *g);
/* 1 while subscribed. */
int gw_eventsub_connected(struct gw *g);
/* Publish `ev` (stolen) on its tenant's channel through the Redis pool;
 * failures are logged and counted, never returned. */
void gw_event_publish(struct gw_rctx *rc, json_t *ev);
/* Server callbacks: the connections gauge and the close log. */
void gw_ws_open(const struct srv_ws_info *ws, void *ud);
void gw_ws_close(const struct srv_ws_info *ws, void *ud);
void gw_ws_sent(unsigned long long sent, unsigned long long slow, void *ud);

/* ------------------------------------------------------------------ */
/* Lists: limit and opaque cursors (page.c)                             */
/* ------------------------------------------------------------------ */

#define GW_LIMIT_DEFAULT 50
#define GW_LIMIT_MAX     500
#define GW_CURSOR_PARTS  3

/* The position after the last row of a page: its sort key, as strings. */
struct gw_cursor {
	int n;
	char part[GW_CURSOR_PARTS][48];
};

/* ?limit= (1..GW_LIMIT_MAX, default GW_LIMIT_DEFAULT) and ?cursor= (its
 * parts checked by `kinds`: one letter per part, 'i' an integer, 'u' a
 * UUID, 't' an RFC 3339 time, 's' a severity); c->n is 0 without a
 * cursor. 0, or replied 400 and -1. */
int gw_page_params(struct gw_rctx *rc, const char *kinds, int *limit,
                   struct gw_cursor *c);
/* A query parameter into `out`: 1 present, 0 absent; -1 replied 400. */
int gw_query_param(struct gw_rctx *rc, const char *name, char *out,
                   size_t size);
/* The opaque cursor (new) of the sort key in `parts` (n strings). */
char *gw_cursor_encode(const char *const *parts, int n);
/* Reply {"items": [...], "next_cursor": "..." or null}: the first `limit`
 * rows of `r` (which asked for limit + 1) as `spec` says; each row ends
 * with the `nkey` columns of its sort key, the cursor's parts. */
void gw_reply_page(struct gw_rctx *rc, const struct vg_db_res *r,
                   const char *spec, int limit, int nkey);

/* Hash a password with argon2id (encoded form into `out`). */
int gw_password_hash(const char *password, char *out, size_t size);
/* 1 when `password` matches the encoded hash. */
int gw_password_verify(const char *encoded, const char *password);
/* An encoded hash of a random password (static), to spend the same time
 * on an unknown user as on a wrong password. */
const char *gw_password_dummy(void);

/* Read the emergency stop (also updates the gauge). */
int gw_estop_read(struct gw *g, int *engaged, struct vg_err *err);
/* Engage from configuration (VIGIL_EMERGENCY_STOP=true) at start-up. */
int gw_estop_engage_from_config(struct gw *g, struct vg_err *err);

/* A result row (text or binary) as a new JSON object. `spec` names the
 * columns in order, "id,name,disabled:b,seq:i,details:j" (type s string
 * by default, b boolean, i integer, j JSON text); SQL NULL becomes null,
 * timestamps are RFC 3339 UTC. */
json_t *gw_row_json(const struct vg_db_res *r, int row, const char *spec);
/* Every row, as a new array. */
json_t *gw_rows_json(const struct vg_db_res *r, const char *spec);
/* The findings list's prepared statement for a set of filters: bit f of
 * `mask` for filter f (severity, host, port, run_id, state, scanner, in
 * that order, each one parameter), GW_FINDINGS_CURSOR for a next page
 * (three parameters: rank, last_seen, id); the limit comes last. NULL on
 * ENOMEM. */
#define GW_FINDINGS_FILTERS 6
#define GW_FINDINGS_CURSOR  (1u << GW_FINDINGS_FILTERS)
const struct vg_db_stmt *gw_findings_stmt(unsigned mask);

/* A value as the JSON renderers give it (binary results decoded,
 * timestamps RFC 3339 UTC) into `out`; -1 for SQL NULL or too long. */
int gw_col_text(const struct vg_db_res *r, int row, int col, char *out,
                size_t size);
/* The same object written straight into `out` as JSON text (the list
 * pages' path: no tree per row). j columns are json/jsonb, whose text
 * PostgreSQL guarantees to be JSON, and are copied as they are. Returns 0
 * or a vg_buf error. */
int gw_row_render(struct vg_buf *out, const struct vg_db_res *r, int row,
                  const char *spec);

/* Start and stop the background checker of PostgreSQL and Redis (feeds
 * /readyz) and of the emergency-stop and session gauges (health.c). */
int gw_health_start(struct gw *g, struct vg_err *err);
void gw_health_stop(struct gw *g);
/* Readiness now: 1, or 0 with the reason in `reason`. */
int gw_ready(struct gw *g, char *reason, size_t size);

#endif
