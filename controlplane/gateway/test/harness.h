/*
 * harness.h - what the gateway's integration tests share: real PostgreSQL
 * and Redis (lib/testsupport), the gateway started in-process on
 * 127.0.0.1:0, and an HTTP client (libcurl) that returns status, headers
 * and the parsed JSON body. Included by each test file.
 */
#ifndef GW_TEST_HARNESS_H
#define GW_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "testsupport/services.h"
#include "vigil/db.h"
#include "vigil/json.h"

#define H_UNUSED      __attribute__((unused))
#define BOOTSTRAP_KEY "test-bootstrap-admin-key-0123456789abcdef"

struct h_env {
	int tls;          /* the API port speaks TLS */
	char cafile[320]; /* its certificate, to trust */
	struct vg_ts_service pg, redis;
	struct gw_config cfg;
	struct gw_app *app;
	int port, hport;
};

static struct h_env H;

H_UNUSED static void h_setenv_int(const char *name, int v)
{
	char s[32];

	snprintf(s, sizeof(s), "%d", v);
	setenv(name, s, 1);
}

/* A superuser pool on the test database (the "DB owner"). */
H_UNUSED static struct vg_db_pool *h_owner_pool(void)
{
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_pool *p = NULL;
	struct vg_err err = {0};
	char ci[256];

	o.conninfo =
		vg_ts_pg_conninfo(&H.pg, "postgres", "vigil", ci, sizeof(ci));
	if (vg_db_pool_new(&o, &p, &err) != VG_OK)
		fail_msg("owner pool: %s", err.msg);
	return p;
}

/* Run SQL as the superuser; the first column of the first row (new) or
 * NULL. */
H_UNUSED static char *h_sql(const char *sql)
{
	struct vg_db_pool *p = h_owner_pool();
	struct vg_db_conn *c = NULL;
	struct vg_db_res *r = NULL;
	struct vg_err err = {0};
	char *v = NULL;

	if (vg_db_acquire(p, &c, &err) != VG_OK ||
	    vg_db_exec(c, sql, 0, NULL, &r, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	if (vg_db_res_rows(r) > 0 && vg_db_res_get(r, 0, 0))
		v = strdup(vg_db_res_get(r, 0, 0));
	vg_db_res_free(r);
	vg_db_release(c);
	vg_db_pool_free(p);
	return v;
}

H_UNUSED /* Run a script (several statements) as the superuser. */
	H_UNUSED static void
	h_script(const char *sql)
{
	struct vg_db_pool *p = h_owner_pool();
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};

	if (vg_db_acquire(p, &c, &err) != VG_OK ||
	    vg_db_exec_script(c, sql, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	vg_db_release(c);
	vg_db_pool_free(p);
}

/* A Redis command on the test server; the reply as a new string, or
 * NULL. */
H_UNUSED static char *h_redis(const char *cmd)
{
	struct timeval tv = {2, 0};
	redisContext *c =
		redisConnectWithTimeout("127.0.0.1", H.redis.port, tv);
	redisReply *r;
	char *out = NULL;

	if (!c || c->err)
		fail_msg("redis connect");
	r = redisCommand(c, cmd);
	if (r && r->type == REDIS_REPLY_STRING)
		out = strdup(r->str);
	else if (r && r->type == REDIS_REPLY_INTEGER) {
		char n[32];

		snprintf(n, sizeof(n), "%lld", r->integer);
		out = strdup(n);
	}
	freeReplyObject(r);
	redisFree(c);
	return out;
}

/* Forget failed authentications (tests share one client address). */
H_UNUSED static void h_clear_auth_failures(void)
{
	struct timeval tv = {2, 0};
	redisContext *c =
		redisConnectWithTimeout("127.0.0.1", H.redis.port, tv);
	redisReply *keys;

	if (!c || c->err)
		fail_msg("redis connect");
	keys = redisCommand(c, "KEYS vigil:authfail:*");
	for (size_t i = 0; keys && i < keys->elements; i++)
		freeReplyObject(
			redisCommand(c, "DEL %s", keys->element[i]->str));
	freeReplyObject(keys);
	redisFree(c);
}

static void h_create_db(void)
{
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_pool *p = NULL;
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	char ci[256];

	o.conninfo = vg_ts_pg_conninfo(&H.pg, "postgres", "postgres", ci,
	                               sizeof(ci));
	if (vg_db_pool_new(&o, &p, &err) != VG_OK ||
	    vg_db_acquire(p, &c, &err) != VG_OK ||
	    vg_db_exec(c, "CREATE DATABASE vigil", 0, NULL, NULL, &err) !=
	            VG_OK)
		fail_msg("create database: %s", err.msg);
	vg_db_release(c);
	vg_db_pool_free(p);
}

/* The gateway's environment: everything on loopback, short limits. */
H_UNUSED static void h_env_setup(void)
{
	setenv("VIGIL_DB_HOST", "127.0.0.1", 1);
	h_setenv_int("VIGIL_DB_PORT", H.pg.port);
	setenv("VIGIL_DB_NAME", "vigil", 1);
	setenv("VIGIL_DB_SSLMODE", "disable", 1);
	setenv("VIGIL_DB_USER", "postgres", 1);
	setenv("VIGIL_DB_APP_USER", "vigil_app", 1);
	setenv("VIGIL_REDIS_HOST", "127.0.0.1", 1);
	h_setenv_int("VIGIL_REDIS_PORT", H.redis.port);
	setenv("VIGIL_GATEWAY_LISTEN", "127.0.0.1:0", 1);
	setenv("VIGIL_HEALTH_LISTEN", "127.0.0.1:0", 1);
	setenv("VIGIL_BOOTSTRAP_ADMIN_KEY", BOOTSTRAP_KEY, 1);
	setenv("VIGIL_SESSION_KEY", "test-session-key", 1);
	setenv("VIGIL_ACCESS_LOG", "false", 1);
	setenv("VIGIL_SESSION_TTL", "4", 1);
	setenv("VIGIL_TRUSTED_PROXIES", "127.0.0.1/32", 1);
	setenv("VIGIL_AUTH_FAIL_LIMIT", "5", 1);
	setenv("VIGIL_AUTH_FAIL_WINDOW", "60", 1);
	setenv("VIGIL_GATEWAY_LOOPS", "2", 1);
	setenv("VIGIL_GATEWAY_WORKERS", "8", 1);
	setenv("VIGIL_GATEWAY_MAX_BODY", "65536", 1);
	setenv("VIGIL_GATEWAY_MAX_HEADER", "8192", 1);
	setenv("VIGIL_GATEWAY_REQUEST_TIMEOUT_MS", "1500", 1);
	setenv("VIGIL_LOG_LEVEL", getenv("GW_TEST_LOG") ? "debug" : "error", 1);
}

H_UNUSED static int h_ready_status(void);

/* Wait until /readyz says `want` (1 ready, 0 not) or fail. */
H_UNUSED static void h_wait_ready(int want, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 100) {
		if ((h_ready_status() == 200) == want)
			return;
		usleep(100 * 1000);
	}
	fail_msg("gateway readiness did not become %d", want);
}

H_UNUSED static void h_gateway_start(void)
{
	struct vg_err err = {0};
	char name[] = "test";
	char *argv[] = {name, NULL};

	if (gw_config_load(&H.cfg, 1, argv, &err) != VG_OK)
		fail_msg("config: %s", err.msg);
	vg_log_init("gateway-test");
	if (gw_app_start(&H.cfg, &H.app, &err) != VG_OK)
		fail_msg("gateway: %s", err.msg);
	H.port = gw_app_port(H.app);
	H.hport = gw_app_health_port(H.app);
	h_wait_ready(1, 30000);
}

H_UNUSED static void h_gateway_stop(void)
{
	gw_app_stop(H.app);
	H.app = NULL;
	gw_config_cleanup(&H.cfg);
}

H_UNUSED static int h_setup_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (vg_ts_pg_start(&H.pg) || vg_ts_redis_start(&H.redis, 0))
		return -1;
	h_create_db();
	h_env_setup();
	h_gateway_start();
	return 0;
}

H_UNUSED static int h_teardown_all(void **state)
{
	(void)state;
	h_gateway_stop();
	vg_ts_cleanup(&H.redis);
	vg_ts_cleanup(&H.pg);
	curl_global_cleanup();
	return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */
/* ------------------------------------------------------------------ */

struct h_resp {
	long status;
	json_t *json; /* parsed body, or NULL */
	struct vg_buf body;
	struct vg_buf headers;
};

H_UNUSED static size_t h_write(char *p, size_t sz, size_t n, void *ud)
{
	vg_buf_append(ud, p, sz * n);
	return sz * n;
}

H_UNUSED static void h_resp_free(struct h_resp *r)
{
	json_decref(r->json);
	vg_buf_cleanup(&r->body);
	vg_buf_cleanup(&r->headers);
	memset(r, 0, sizeof(*r));
}

/* Value of response header `name` (copied into `out`), 1 when present. */
H_UNUSED static int h_header(const struct h_resp *r, const char *name,
                             char *out, size_t size)
{
	const char *p = vg_buf_str(&r->headers);
	size_t nl = strlen(name);

	while (p && *p) {
		const char *e = strstr(p, "\r\n");
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			snprintf(out, size, "%.*s",
			         (int)(len - (size_t)(v - p)), v);
			return 1;
		}
		p = e ? e + 2 : NULL;
	}
	return 0;
}

/* A request with an optional bearer token, body and content type (NULL:
 * application/json when there is a body), extra header lines. Returns the
 * status. */
H_UNUSED static long h_req_ex(int port, const char *method, const char *path,
                              const char *token, const char *body,
                              size_t body_len, const char *ctype,
                              const char *extra, struct h_resp *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[1024], line[1024];
	CURLcode cc;

	memset(out, 0, sizeof(*out));
	vg_buf_init(&out->body, 0);
	vg_buf_init(&out->headers, 0);
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
	         H.tls && port == H.port ? "https" : "http", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (H.tls)
		curl_easy_setopt(c, CURLOPT_CAINFO, H.cafile);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		hl = curl_slist_append(hl, line);
	}
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
		snprintf(line, sizeof(line), "Content-Type: %s",
		         ctype ? ctype : "application/json");
		hl = curl_slist_append(hl, line);
	}
	if (extra)
		hl = curl_slist_append(hl, extra);
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_write);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	else
		out->status = -1;
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	if (out->body.len)
		out->json = json_loadb(out->body.data, out->body.len, 0, NULL);
	return out->status;
}

H_UNUSED static long h_req(const char *method, const char *path,
                           const char *token, const char *body,
                           struct h_resp *out)
{
	return h_req_ex(H.port, method, path, token, body,
	                body ? strlen(body) : 0, NULL, NULL, out);
}

/* Like h_req, and fail the test unless the status is `want`; the reply
 * is returned for inspection (caller frees). */
#define h_expect(want_, method_, path_, token_, body_, out_)                \
	do {                                                                \
		long got_ = h_req(method_, path_, token_, body_, out_);     \
		if (got_ != (want_))                                        \
			fail_msg("%s %s: status %ld, want %d: %s", method_, \
			         path_, got_, (int)(want_),                 \
			         vg_buf_str(&(out_)->body));                \
	} while (0)

H_UNUSED static int h_ready_status(void)
{
	struct h_resp r;
	long st = h_req_ex(H.port, "GET", "/readyz", NULL, NULL, 0, NULL, NULL,
	                   &r);

	h_resp_free(&r);
	return (int)st;
}

/* The error code of a JSON error reply, or "". */
H_UNUSED static const char *h_err_code(const struct h_resp *r)
{
	return vg_json_get_str(r->json, "error.code", "");
}

/* Send raw bytes on a new connection and read until the peer closes or
 * `timeout_ms` passes; the reply (new). */
H_UNUSED static char *h_raw(int port, const char *data, size_t len,
                            int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	struct vg_buf b;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	vg_buf_init(&b, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fail_msg("connect: %s", strerror(errno));
	if (len && send(fd, data, len, MSG_NOSIGNAL) < 0) {
		/* a server that already closed: read what it said */
	}
	for (;;) {
		char buf[4096];
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		vg_buf_append(&b, buf, (size_t)n);
	}
	close(fd);
	return vg_buf_take(&b);
}

/* ------------------------------------------------------------------ */
/* Fixtures through the API                                             */
/* ------------------------------------------------------------------ */

static unsigned h_seq;

/* A new tenant; its id into `id` (37 bytes). */
H_UNUSED static void h_tenant(const char *name, char *id)
{
	struct h_resp r;
	char body[256];

	snprintf(body, sizeof(body),
	         "{\"k8s_uid\":\"00000000-0000-4000-8000-%012x\","
	         "\"name\":\"%s\",\"namespace\":\"tenant-%s\"}",
	         ++h_seq + 0x100000u, name, name);
	h_expect(201, "POST", "/v1/tenants", BOOTSTRAP_KEY, body, &r);
	snprintf(id, 37, "%s", vg_json_get_str(r.json, "id", ""));
	h_resp_free(&r);
}

/* A new API key of `role` in tenant `tid`; the key into `key` (80). */
H_UNUSED static void h_key(const char *tid, const char *role,
                           const char *expires, char *key, char *key_id)
{
	struct h_resp r;
	char path[128], body[256];

	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys", tid);
	if (expires)
		snprintf(body, sizeof(body),
		         "{\"name\":\"k-%s\",\"role\":\"%s\","
		         "\"expires_at\":\"%s\"}",
		         role, role, expires);
	else
		snprintf(body, sizeof(body),
		         "{\"name\":\"k-%s\",\"role\":\"%s\"}", role, role);
	h_expect(201, "POST", path, BOOTSTRAP_KEY, body, &r);
	snprintf(key, 80, "%s", vg_json_get_str(r.json, "key", ""));
	if (key_id)
		snprintf(key_id, 37, "%s", vg_json_get_str(r.json, "id", ""));
	h_resp_free(&r);
}

#endif
