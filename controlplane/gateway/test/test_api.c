/* test_api.c - every endpoint's happy path and error paths against a real
 * PostgreSQL and Redis, the gateway running in-process on 127.0.0.1:0:
 * tenants, users, role bindings, API keys (expiry, revocation), login
 * sessions (sliding expiry, logout), failed-authentication limits, the
 * emergency stop (across a restart), the audit log (verification and a
 * tampered row), malformed input, request ids and /metrics. */
#include "harness.h"

static double metric(const char *name);

/* ------------------------------------------------------------------ */
/* Probes, identity                                                     */
/* ------------------------------------------------------------------ */

static void test_probes_and_whoami(void **state)
{
	struct h_resp r;

	(void)state;
	h_expect(200, "GET", "/healthz", NULL, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "status", ""), "ok");
	h_resp_free(&r);
	h_expect(200, "GET", "/readyz", NULL, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "HEAD", "/healthz", NULL, NULL, &r);
	assert_int_equal(r.body.len, 0);
	h_resp_free(&r);
	h_expect(200, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "kind", ""), "bootstrap");
	assert_true(vg_json_get_bool(r.json, "platform_admin", 0));
	h_resp_free(&r);
	h_expect(401, "GET", "/v1/whoami", NULL, NULL, &r);
	assert_string_equal(h_err_code(&r), "unauthenticated");
	assert_int_equal(
		strlen(vg_json_get_str(r.json, "error.request_id", "")), 32);
	h_resp_free(&r);
	h_expect(401, "GET", "/v1/whoami", "not-a-key", NULL, &r);
	h_resp_free(&r);
	h_clear_auth_failures();
}

static void test_not_found_and_method(void **state)
{
	struct h_resp r;
	char allow[128];

	(void)state;
	h_expect(404, "GET", "/v1/nothing", BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(h_err_code(&r), "not_found");
	h_resp_free(&r);
	h_expect(405, "DELETE", "/v1/tenants", BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(h_err_code(&r), "method_not_allowed");
	assert_true(h_header(&r, "Allow", allow, sizeof(allow)));
	assert_non_null(strstr(allow, "GET"));
	assert_non_null(strstr(allow, "POST"));
	h_resp_free(&r);
	/* a tenant id that is not a UUID is simply not found */
	h_expect(404, "GET", "/v1/tenants/xyz/users", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Tenants                                                              */
/* ------------------------------------------------------------------ */

static void test_tenants(void **state)
{
	struct h_resp r;
	char id[37], path[128];
	const char *body =
		"{\"k8s_uid\":\"11111111-2222-4333-8444-555555555555\","
		"\"name\":\"acme\",\"display_name\":\"Acme\"}";

	(void)state;
	h_expect(201, "POST", "/v1/tenants", BOOTSTRAP_KEY, body, &r);
	snprintf(id, sizeof(id), "%s", vg_json_get_str(r.json, "id", ""));
	assert_true(vg_db_is_uuid(id));
	assert_string_equal(vg_json_get_str(r.json, "name", ""), "acme");
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "active");
	h_resp_free(&r);
	/* the same resource again: an update, same id */
	h_expect(200, "POST", "/v1/tenants", BOOTSTRAP_KEY,
	         "{\"k8s_uid\":\"11111111-2222-4333-8444-555555555555\","
	         "\"name\":\"acme\",\"display_name\":\"Acme Corp\"}",
	         &r);
	assert_string_equal(vg_json_get_str(r.json, "id", ""), id);
	assert_string_equal(vg_json_get_str(r.json, "display_name", ""),
	                    "Acme Corp");
	h_resp_free(&r);
	/* another resource under a live tenant's name */
	h_expect(409, "POST", "/v1/tenants", BOOTSTRAP_KEY,
	         "{\"k8s_uid\":\"11111111-2222-4333-8444-666666666666\","
	         "\"name\":\"acme\"}",
	         &r);
	assert_string_equal(h_err_code(&r), "conflict");
	h_resp_free(&r);
	h_expect(422, "POST", "/v1/tenants", BOOTSTRAP_KEY,
	         "{\"k8s_uid\":\"11111111-2222-4333-8444-777777777777\","
	         "\"name\":\"Not_A_Label\"}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "POST", "/v1/tenants", BOOTSTRAP_KEY,
	         "{\"k8s_uid\":\"nope\",\"name\":\"x\"}", &r);
	h_resp_free(&r);

	h_expect(200, "GET", "/v1/tenants", BOOTSTRAP_KEY, NULL, &r);
	assert_true(json_array_size(vg_json_get_array(r.json, "items")) >= 1);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s", id);
	h_expect(200, "GET", path, BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "name", ""), "acme");
	h_resp_free(&r);
	h_expect(404, "GET", "/v1/tenants/00000000-0000-4000-8000-00000000dead",
	         BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Users, role bindings, login sessions                                 */
/* ------------------------------------------------------------------ */

/* Log in; the session token into `tok` (96 bytes); returns the status. */
static long login(const char *subject, const char *password, char *tok)
{
	struct h_resp r;
	char body[512];
	long st;

	snprintf(body, sizeof(body), "{\"subject\":\"%s\",\"password\":\"%s\"}",
	         subject, password);
	st = h_req("POST", "/v1/auth/login", NULL, body, &r);
	if (tok)
		snprintf(tok, 96, "%s", vg_json_get_str(r.json, "token", ""));
	h_resp_free(&r);
	return st;
}

static void test_users_and_sessions(void **state)
{
	struct h_resp r;
	char tid[37], path[160], tok[96], uid[37], bid[37];

	(void)state;
	h_tenant("users", tid);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(201, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"alice\",\"email\":\"alice@example.com\","
	         "\"password\":\"correct horse battery\",\"role\":\"analyst\"}",
	         &r);
	snprintf(uid, sizeof(uid), "%s", vg_json_get_str(r.json, "id", ""));
	assert_true(vg_json_get_bool(r.json, "created", 0));
	h_resp_free(&r);
	/* no second account under the same subject, password or not */
	h_expect(409, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"alice\",\"password\":\"another password\","
	         "\"role\":\"admin\"}",
	         &r);
	h_resp_free(&r);
	h_expect(409, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"alice\",\"role\":\"admin\"}", &r);
	h_resp_free(&r);
	h_expect(422, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"bob\",\"password\":\"short\",\"role\":"
	         "\"admin\"}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"bob\",\"role\":\"platform-admin\"}", &r);
	h_resp_free(&r);
	h_expect(200, "GET", path, BOOTSTRAP_KEY, NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 1);
	assert_string_equal(vg_json_get_str(r.json, "items[0].role", ""),
	                    "analyst");
	assert_null(strstr(vg_buf_str(&r.body), "argon2"));
	h_resp_free(&r);

	/* sign in */
	assert_int_equal(login("alice", "wrong password", NULL), 401);
	assert_int_equal(login("nobody", "wrong password", NULL), 401);
	{
		double before = metric("vigil_active_sessions");
		double fails =
			metric("vigil_auth_attempts_total{result=\"failure\"}");

		assert_true(fails >= 2);
		assert_int_equal(login("alice", "correct horse battery", tok),
		                 201);
		assert_true(metric("vigil_active_sessions") == before + 1);
	}
	assert_int_equal(strncmp(tok, "vgs_", 4), 0);
	h_clear_auth_failures();
	h_expect(200, "GET", "/v1/whoami", tok, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "kind", ""), "session");
	assert_string_equal(vg_json_get_str(r.json, "subject", ""), "alice");
	assert_string_equal(
		vg_json_get_str(r.json, "bindings[0].tenant_id", ""), tid);
	assert_string_equal(vg_json_get_str(r.json, "bindings[0].role", ""),
	                    "analyst");
	h_resp_free(&r);
	/* an analyst reads the tenant but does not manage its users */
	snprintf(path, sizeof(path), "/v1/tenants/%s", tid);
	h_expect(200, "GET", path, tok, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(403, "GET", path, tok, NULL, &r);
	assert_string_equal(h_err_code(&r), "forbidden");
	h_resp_free(&r);
	/* Redis holds no token, only its HMAC */
	{
		char *k = h_redis("EXISTS vigil:sessions");

		assert_string_equal(k, "1");
		free(k);
	}

	/* role bindings: promote alice by re-binding */
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings", tid);
	h_expect(200, "GET", path, BOOTSTRAP_KEY, NULL, &r);
	snprintf(bid, sizeof(bid), "%s",
	         vg_json_get_str(r.json, "items[0].id", ""));
	h_resp_free(&r);
	h_expect(409, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"alice\",\"role\":\"admin\"}", &r);
	h_resp_free(&r);
	h_expect(422, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"ghost\",\"role\":\"admin\"}", &r);
	h_resp_free(&r);
	h_expect(422, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"alice\",\"user_id\":"
	         "\"00000000-0000-4000-8000-000000000001\",\"role\":\"admin\"}",
	         &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings/%s", tid,
	         bid);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	/* unbound: the session is valid but holds no role in the tenant */
	snprintf(path, sizeof(path), "/v1/tenants/%s", tid);
	h_expect(404, "GET", path, tok, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings", tid);
	{
		char body[160];

		snprintf(body, sizeof(body),
		         "{\"user_id\":\"%s\",\"role\":\"admin\"}", uid);
		h_expect(201, "POST", path, BOOTSTRAP_KEY, body, &r);
		h_resp_free(&r);
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(200, "GET", path, tok, NULL, &r);
	h_resp_free(&r);

	/* sliding expiry: the TTL is 4 s, renewed on each use, so the
	 * session outlives it while used every 1.5 s */
	for (int i = 0; i < 4; i++) {
		usleep(1500 * 1000);
		h_expect(200, "GET", "/v1/whoami", tok, NULL, &r);
		h_resp_free(&r);
	}
	usleep(4500 * 1000);
	h_expect(401, "GET", "/v1/whoami", tok, NULL, &r);
	h_resp_free(&r);

	/* logout ends the session at once */
	assert_int_equal(login("alice", "correct horse battery", tok), 201);
	{
		double before = metric("vigil_active_sessions");

		h_expect(204, "POST", "/v1/auth/logout", tok, NULL, &r);
		h_resp_free(&r);
		assert_true(metric("vigil_active_sessions") < before);
	}
	h_expect(401, "GET", "/v1/whoami", tok, NULL, &r);
	h_resp_free(&r);
	h_expect(400, "POST", "/v1/auth/logout", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);

	/* removing the user from the tenant */
	snprintf(path, sizeof(path), "/v1/tenants/%s/users/%s", tid, uid);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_clear_auth_failures();
}

static void test_auth_rate_limit(void **state)
{
	struct h_resp r;
	char retry[32], tid[37], path[128];

	(void)state;
	h_clear_auth_failures();
	h_tenant("limits", tid);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(201, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"carol\",\"password\":\"carol's password\","
	         "\"role\":\"viewer\"}",
	         &r);
	h_resp_free(&r);
	/* per user: five wrong passwords, then even the right one waits */
	for (int i = 0; i < 5; i++)
		assert_int_equal(login("carol", "guess", NULL), 401);
	h_expect(429, "POST", "/v1/auth/login", NULL,
	         "{\"subject\":\"carol\",\"password\":\"carol's password\"}",
	         &r);
	assert_string_equal(h_err_code(&r), "rate_limited");
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	assert_true(strtol(retry, NULL, 10) > 0);
	assert_true(strtol(retry, NULL, 10) <= 60);
	h_resp_free(&r);
	/* per address: bad bearer tokens too (the address has failures
	 * from above already) */
	h_expect(429, "GET", "/v1/whoami", "vgk_00000000_guess", NULL, &r);
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	h_resp_free(&r);
	h_clear_auth_failures();
	assert_int_equal(login("carol", "carol's password", NULL), 201);
	/* a bad token counts against the address */
	for (int i = 0; i < 5; i++) {
		h_expect(401, "GET", "/v1/whoami", "vgk_00000000_guess", NULL,
		         &r);
		h_resp_free(&r);
	}
	h_expect(429, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_clear_auth_failures();
	h_expect(200, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
}

/* Behind a trusted proxy (127.0.0.1 here) the limit and the audit log
 * see the client named by X-Forwarded-For. */
static void test_forwarded_client(void **state)
{
	struct h_resp r;
	char tid[37], path[128];

	(void)state;
	h_clear_auth_failures();
	for (int i = 0; i < 5; i++) {
		h_req_ex(H.port, "GET", "/v1/whoami", "vgk_00000000_guess",
		         NULL, 0, NULL, "X-Forwarded-For: 203.0.113.9", &r);
		assert_int_equal(r.status, 401);
		h_resp_free(&r);
	}
	h_req_ex(H.port, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, 0, NULL,
	         "X-Forwarded-For: 198.51.100.1, 203.0.113.9", &r);
	assert_int_equal(r.status, 429);
	h_resp_free(&r);
	/* other clients behind the same proxy are not locked out */
	h_req_ex(H.port, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, 0, NULL,
	         "X-Forwarded-For: 203.0.113.10", &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
	h_expect(200, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);

	h_tenant("forwarded", tid);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	{
		const char *body =
			"{\"subject\":\"frank\",\"role\":\"viewer\"}";

		h_req_ex(H.port, "POST", path, BOOTSTRAP_KEY, body,
		         strlen(body), NULL, "X-Forwarded-For: 198.51.100.4",
		         &r);
	}
	assert_int_equal(r.status, 201);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/audit?tenant=%s", tid);
	h_expect(200, "GET", path, BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "items[0].source_ip", ""),
	                    "198.51.100.4");
	h_resp_free(&r);
	h_clear_auth_failures();
}

/* ------------------------------------------------------------------ */
/* API keys                                                             */
/* ------------------------------------------------------------------ */

static void utc_in(int seconds, char *out, size_t size)
{
	time_t t = time(NULL) + seconds;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void test_api_keys(void **state)
{
	struct h_resp r;
	char tid[37], key[80], kid[37], agent[80], soon[80], when[40];
	char path[160];
	char *hash;

	(void)state;
	h_tenant("keys", tid);
	h_key(tid, "admin", NULL, key, kid);
	assert_int_equal(strncmp(key, "vgk_", 4), 0);
	h_expect(200, "GET", "/v1/whoami", key, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "kind", ""), "api_key");
	assert_string_equal(vg_json_get_str(r.json, "bindings[0].role", ""),
	                    "admin");
	h_resp_free(&r);
	/* the list never shows the key, the hash is not even selectable */
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys", tid);
	h_expect(200, "GET", path, key, NULL, &r);
	assert_null(strstr(vg_buf_str(&r.body), key + 13));
	assert_null(strstr(vg_buf_str(&r.body), "hash"));
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 1);
	h_resp_free(&r);
	hash = h_sql("SELECT count(*) FROM vigil.api_keys WHERE hash ="
	             " sha256(convert_to(prefix, 'UTF8'))");
	assert_string_equal(hash, "0");
	free(hash);

	/* an agent token: the emergency stop is all it may read here */
	h_key(tid, "agent", NULL, agent, NULL);
	h_expect(200, "GET", "/v1/emergency-stop", agent, NULL, &r);
	h_resp_free(&r);
	h_expect(403, "GET", path, agent, NULL, &r);
	h_resp_free(&r);

	/* expiry */
	h_expect(422, "POST", path, key,
	         "{\"name\":\"old\",\"role\":\"viewer\","
	         "\"expires_at\":\"2001-01-01T00:00:00Z\"}",
	         &r);
	h_resp_free(&r);
	/* whole seconds: the key lives 4 to 5 s */
	utc_in(5, when, sizeof(when));
	h_key(tid, "viewer", when, soon, NULL);
	h_expect(200, "GET", "/v1/whoami", soon, NULL, &r);
	h_resp_free(&r);
	sleep(6);
	h_expect(401, "GET", "/v1/whoami", soon, NULL, &r);
	h_resp_free(&r);

	/* revocation; the key's hash stays to refuse it */
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys/%s", tid, kid);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(401, "GET", "/v1/whoami", key, NULL, &r);
	h_resp_free(&r);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path),
	         "/v1/tenants/%s/api-keys/00000000-0000-4000-8000-000000000000",
	         tid);
	h_expect(404, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	/* a tampered key with a valid prefix */
	key[20] = key[20] == 'A' ? 'B' : 'A';
	h_expect(401, "GET", "/v1/whoami", key, NULL, &r);
	h_resp_free(&r);
	h_clear_auth_failures();
}

/* A verified key is remembered (VIGIL_AUTH_CACHE_TTL_MS, 5 s here):
 * a change made behind the gateway's back shows within that time, while
 * a revocation through any replica reaches every replica at once. */
static void test_api_keys_cached(void **state)
{
	struct gw_config cfg2;
	struct gw_app *app2 = NULL;
	struct vg_err err = {0};
	struct h_resp r;
	char name[] = "test", *argv[] = {name, NULL};
	char tid[40], k1[80], k1id[40], k2[80], k2id[40], sql[256], path[160];
	char *v;
	int port2, t;

	(void)state;
	assert_int_equal(gw_config_load(&cfg2, 1, argv, &err), VG_OK);
	assert_int_equal(cfg2.auth_cache_ttl_ms, 5000);
	if (gw_app_start(&cfg2, &app2, &err) != VG_OK)
		fail_msg("second replica: %s", err.msg);
	port2 = gw_app_port(app2);
	for (t = 0; t < 300; t++) {
		char why[128];

		if (gw_eventsub_connected(gw_app_gw(app2)) &&
		    gw_ready(gw_app_gw(app2), why, sizeof(why)))
			break;
		usleep(100 * 1000);
	}
	assert_true(t < 300);
	h_tenant("cached", tid);
	h_key(tid, "viewer", NULL, k1, k1id);
	h_key(tid, "viewer", NULL, k2, k2id);
	assert_int_equal(h_req_ex(port2, "GET", "/v1/whoami", k1, NULL, 0, NULL,
	                          NULL, &r),
	                 200);
	h_resp_free(&r);
	assert_int_equal(h_req_ex(port2, "GET", "/v1/whoami", k2, NULL, 0, NULL,
	                          NULL, &r),
	                 200);
	h_resp_free(&r);

	/* revoked in the database directly: still known for the TTL,
	 * refused after it */
	snprintf(sql, sizeof(sql),
	         "UPDATE vigil.api_keys SET revoked_at = now() WHERE id = '%s'"
	         " RETURNING 1",
	         k1id);
	v = h_sql(sql);
	assert_string_equal(v, "1");
	free(v);
	assert_int_equal(h_req_ex(port2, "GET", "/v1/whoami", k1, NULL, 0, NULL,
	                          NULL, &r),
	                 200);
	h_resp_free(&r);
	for (t = 0; t < 80; t++) {
		long st = h_req_ex(port2, "GET", "/v1/whoami", k1, NULL, 0,
		                   NULL, NULL, &r);

		h_resp_free(&r);
		if (st == 401)
			break;
		assert_int_equal(st, 200);
		usleep(100 * 1000);
	}
	assert_true(t >= 20 && t < 80); /* refused after 2 to 8 s */

	/* revoked through replica 1: replica 2 refuses it within 1 s */
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys/%s", tid, k2id);
	h_expect(204, "DELETE", path, BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	for (t = 0; t < 10; t++) {
		long st = h_req_ex(port2, "GET", "/v1/whoami", k2, NULL, 0,
		                   NULL, NULL, &r);

		h_resp_free(&r);
		if (st == 401)
			break;
		usleep(100 * 1000);
	}
	assert_true(t < 10);
	gw_app_stop(app2);
	gw_config_cleanup(&cfg2);
	h_clear_auth_failures();
}

/* ------------------------------------------------------------------ */
/* Cross-tenant                                                         */
/* ------------------------------------------------------------------ */

static void test_cross_tenant(void **state)
{
	struct h_resp r;
	char a[37], b[37], akey[80], bkey[80], bkid[37], path[200];
	char buid[37], bbid[37];
	static const char *const reads[] = {"", "/users", "/role-bindings",
	                                    "/api-keys"};

	(void)state;
	h_tenant("alpha", a);
	h_tenant("bravo", b);
	h_key(a, "admin", NULL, akey, NULL);
	h_key(b, "admin", NULL, bkey, bkid);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", b);
	h_expect(201, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"bravo-user\",\"role\":\"viewer\"}", &r);
	snprintf(buid, sizeof(buid), "%s", vg_json_get_str(r.json, "id", ""));
	snprintf(bbid, sizeof(bbid), "%s",
	         vg_json_get_str(r.json, "binding_id", ""));
	h_resp_free(&r);

	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		snprintf(path, sizeof(path), "/v1/tenants/%s%s", b, reads[i]);
		h_expect(404, "GET", path, akey, NULL, &r);
		assert_null(strstr(vg_buf_str(&r.body), "bravo"));
		assert_null(strstr(vg_buf_str(&r.body), bkid));
		h_resp_free(&r);
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", b);
	h_expect(404, "POST", path, akey,
	         "{\"subject\":\"intruder\",\"role\":\"admin\"}", &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings", b);
	h_expect(404, "POST", path, akey,
	         "{\"subject\":\"bravo-user\",\"role\":\"admin\"}", &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys", b);
	h_expect(404, "POST", path, akey, "{\"name\":\"x\",\"role\":\"admin\"}",
	         &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys/%s", b, bkid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users/%s", b, buid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings/%s", b,
	         bbid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/audit?tenant=%s", b);
	h_expect(404, "GET", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/audit/verify?tenant=%s", b);
	h_expect(404, "GET", path, akey, NULL, &r);
	h_resp_free(&r);
	/* B's objects through A's own path: row-level security hides them */
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys/%s", a, bkid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users/%s", a, buid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/role-bindings/%s", a,
	         bbid);
	h_expect(404, "DELETE", path, akey, NULL, &r);
	h_resp_free(&r);
	/* nothing of B changed */
	h_expect(200, "GET", "/v1/whoami", bkey, NULL, &r);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", b);
	h_expect(200, "GET", path, bkey, NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 1);
	h_resp_free(&r);
	/* and the platform's records are platform admins' only */
	h_expect(403, "GET", "/v1/audit", akey, NULL, &r);
	h_resp_free(&r);
	h_expect(403, "GET", "/v1/tenants", akey, NULL, &r);
	h_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Emergency stop                                                       */
/* ------------------------------------------------------------------ */

static double metric(const char *name)
{
	struct h_resp r;
	const char *p;
	char pat[160];
	double v = -1;

	h_req_ex(H.hport, "GET", "/metrics", NULL, NULL, 0, NULL, NULL, &r);
	snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(vg_buf_str(&r.body), pat);
	if (p)
		v = strtod(p + strlen(pat), NULL);
	h_resp_free(&r);
	return v;
}

static void test_emergency_stop(void **state)
{
	struct h_resp r;
	char tid[37], admin[80], agent[80];
	double audits = metric("vigil_audit_log_entries_total");

	(void)state;
	h_tenant("estop", tid);
	h_key(tid, "admin", NULL, admin, NULL);
	h_key(tid, "agent", NULL, agent, NULL);
	h_expect(200, "GET", "/v1/emergency-stop", agent, NULL, &r);
	assert_false(vg_json_get_bool(r.json, "engaged", 1));
	h_resp_free(&r);
	h_expect(403, "PUT", "/v1/emergency-stop", admin, "{\"engaged\":true}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":\"yes\"}", &r);
	h_resp_free(&r);
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":true,\"reason\":\"incident 42\"}", &r);
	assert_true(vg_json_get_bool(r.json, "engaged", 0));
	assert_string_equal(vg_json_get_str(r.json, "changed_by", ""),
	                    "apikey:bootstrap");
	h_resp_free(&r);
	assert_true(metric("vigil_emergency_stop") == 1);
	assert_true(metric("vigil_audit_log_entries_total") >= audits + 1);

	/* survives a restart of the gateway: the state is in PostgreSQL */
	h_gateway_stop();
	h_gateway_start();
	h_expect(200, "GET", "/v1/emergency-stop", agent, NULL, &r);
	assert_true(vg_json_get_bool(r.json, "engaged", 0));
	assert_string_equal(vg_json_get_str(r.json, "reason", ""),
	                    "incident 42");
	h_resp_free(&r);
	assert_true(metric("vigil_emergency_stop") == 1);
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":false}", &r);
	h_resp_free(&r);
	assert_true(metric("vigil_emergency_stop") == 0);
}

/* ------------------------------------------------------------------ */
/* Audit                                                                */
/* ------------------------------------------------------------------ */

static void test_audit(void **state)
{
	struct h_resp r;
	char tid[37], key[80], path[200], sql[300];
	json_t *items;

	(void)state;
	h_tenant("audited", tid);
	h_key(tid, "admin", NULL, key, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(201, "POST", path, key,
	         "{\"subject\":\"dave\",\"role\":\"viewer\"}", &r);
	h_resp_free(&r);

	snprintf(path, sizeof(path), "/v1/audit?tenant=%s", tid);
	h_expect(200, "GET", path, key, NULL, &r);
	items = vg_json_get_array(r.json, "items");
	/* the key's creation (by the bootstrap key) and the user's */
	assert_int_equal(json_array_size(items), 2);
	assert_string_equal(vg_json_get_str(r.json, "items[0].action", ""),
	                    "api_key.create");
	assert_string_equal(vg_json_get_str(r.json, "items[1].action", ""),
	                    "user.create");
	assert_string_equal(vg_json_get_str(r.json, "items[1].source_ip", ""),
	                    "127.0.0.1");
	assert_int_equal(
		strlen(vg_json_get_str(r.json, "items[1].request_id", "")), 32);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/audit?tenant=%s&limit=1", tid);
	h_expect(200, "GET", path, key, NULL, &r);
	assert_int_equal(vg_json_get_int(r.json, "next_after", 0), 1);
	h_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/audit?tenant=%s&limit=0", tid);
	h_expect(400, "GET", path, key, NULL, &r);
	h_resp_free(&r);
	h_expect(400, "GET", "/v1/audit?tenant=nope", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);

	/* the platform's chain: tenants, the emergency stop, logins */
	h_expect(200, "GET", "/v1/audit?limit=500", BOOTSTRAP_KEY, NULL, &r);
	assert_true(json_array_size(vg_json_get_array(r.json, "items")) >= 1);
	assert_string_equal(vg_json_get_str(r.json, "items[0].action", ""),
	                    "tenant.upsert");
	h_resp_free(&r);
	h_expect(200, "GET", "/v1/audit/verify", BOOTSTRAP_KEY, NULL, &r);
	assert_true(vg_json_get_bool(r.json, "intact", 0));
	h_resp_free(&r);

	snprintf(path, sizeof(path), "/v1/audit/verify?tenant=%s", tid);
	h_expect(200, "GET", path, key, NULL, &r);
	assert_true(vg_json_get_bool(r.json, "intact", 0));
	assert_int_equal(vg_json_get_int(r.json, "entries", 0), 2);
	assert_true(json_is_null(vg_json_get(r.json, "first_broken_seq")));
	h_resp_free(&r);

	/* the owner rewrites history behind the triggers' back */
	snprintf(sql, sizeof(sql),
	         "SET session_replication_role = replica;"
	         " UPDATE vigil.audit_log SET actor = 'mallory'"
	         " WHERE tenant_id = '%s' AND seq = 2;"
	         " RESET session_replication_role;",
	         tid);
	h_script(sql);
	h_expect(200, "GET", path, key, NULL, &r);
	assert_false(vg_json_get_bool(r.json, "intact", 1));
	assert_int_equal(vg_json_get_int(r.json, "first_broken_seq", 0), 2);
	h_resp_free(&r);
	/* the app role cannot do that */
	{
		char *v = h_sql("SELECT has_table_privilege('vigil_app',"
		                " 'vigil.audit_log', 'UPDATE')");

		assert_string_equal(v, "f");
		free(v);
	}
}

/* ------------------------------------------------------------------ */
/* Malformed input                                                      */
/* ------------------------------------------------------------------ */

static void test_malformed_bodies(void **state)
{
	static const struct {
		const char *body;
		const char *ctype;
		long status;
		const char *code;
	} cases[] = {
		{"{\"name\":", NULL, 400, "invalid_json"},
		{"{\"name\":\"x\",\"role\":\"viewer\",\"color\":1}", NULL, 422,
	         "validation_failed"},
		{"{\"name\":5,\"role\":\"viewer\"}", NULL, 422,
	         "validation_failed"},
		{"{\"name\":\"x\",\"role\":\"root\"}", NULL, 422,
	         "validation_failed"},
		{"{\"name\":\"\xc3\x28\",\"role\":\"viewer\"}", NULL, 400,
	         "invalid_json"},
		{"{\"name\":\"x\",\"role\":\"viewer\",\"scopes\":"
	         "[123456789012345678901234567890]}",
	         NULL, 400, "invalid_json"},
		{"{\"name\":\"x\",\"role\":\"viewer\",\"expires_at\":1e999}",
	         NULL, 400, "invalid_json"},
		{"{\"name\":\"x\",\"role\":\"viewer\",\"name\":\"y\"}", NULL,
	         400, "invalid_json"},
		{"[1,2]", NULL, 422, "validation_failed"},
		{"null", NULL, 422, "validation_failed"},
		{"{}", NULL, 422, "validation_failed"},
		{"{\"name\":\"x\",\"role\":\"viewer\"}", "text/plain", 415,
	         "unsupported_media_type"},
		{"{\"name\":\"x\",\"role\":\"viewer\"}",
	         "application/json; charset=latin1", 415,
	         "unsupported_media_type"},
		{"{\"name\":\"x\",\"role\":\"viewer\"}",
	         "application/json; charset=UTF-8", 201, NULL},
	};
	struct h_resp r;
	char tid[37], key[80], path[160];

	(void)state;
	h_tenant("malformed", tid);
	h_key(tid, "admin", NULL, key, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/api-keys", tid);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long st = h_req_ex(H.port, "POST", path, key, cases[i].body,
		                   strlen(cases[i].body), cases[i].ctype, NULL,
		                   &r);

		if (st != cases[i].status)
			fail_msg("case %zu: %ld, want %ld: %s", i, st,
			         cases[i].status, vg_buf_str(&r.body));
		if (cases[i].code)
			assert_string_equal(h_err_code(&r), cases[i].code);
		h_resp_free(&r);
	}
	/* over the body limit (64 KiB here) */
	{
		size_t n = 70000;
		char *big = malloc(n + 1);

		memset(big, ' ', n);
		big[n] = '\0';
		big[0] = '{';
		big[n - 1] = '}';
		h_req_ex(H.port, "POST", path, key, big, n, NULL, NULL, &r);
		assert_int_equal(r.status, 413);
		assert_string_equal(h_err_code(&r), "payload_too_large");
		h_resp_free(&r);
		free(big);
	}
}

static void test_malformed_requests(void **state)
{
	static const struct {
		const char *raw;
		const char *status;
	} cases[] = {
		{"GARBAGE\x01\r\n\r\n", " 400 "},
		{"GET /healthz HTTP/1.1\r\n\r\n", " 400 "},
		{"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", " 505 "},
		{"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	         " 411 "},
		{"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1"
	         "\r\nContent-Length: 2\r\n\r\n{}",
	         " 400 "},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out =
			h_raw(H.port, cases[i].raw, strlen(cases[i].raw), 3000);

		if (!strstr(out, cases[i].status) ||
		    !strstr(out, "{\"error\":{\"code\":"))
			fail_msg("case %zu: %s", i, out);
		free(out);
	}
	/* a head over 8 KiB */
	{
		char big[10000];
		char *out;
		int n = snprintf(big, sizeof(big),
		                 "GET /healthz HTTP/1.1\r\nHost: x\r\nX: ");

		memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
		big[sizeof(big) - 1] = '\0';
		out = h_raw(H.port, big, strlen(big), 3000);
		assert_non_null(strstr(out, " 431 "));
		free(out);
	}
}

static void test_request_id(void **state)
{
	struct h_resp r;
	char id[80];

	(void)state;
	h_req_ex(H.port, "GET", "/v1/whoami", NULL, NULL, 0, NULL,
	         "X-Request-ID: trace-abc.123:x", &r);
	assert_true(h_header(&r, "X-Request-ID", id, sizeof(id)));
	assert_string_equal(id, "trace-abc.123:x");
	assert_string_equal(vg_json_get_str(r.json, "error.request_id", ""),
	                    "trace-abc.123:x");
	h_resp_free(&r);
	/* unsafe or overlong ids are replaced by a generated one */
	h_req_ex(H.port, "GET", "/healthz", NULL, NULL, 0, NULL,
	         "X-Request-ID: bad id\"<script>", &r);
	assert_true(h_header(&r, "X-Request-ID", id, sizeof(id)));
	assert_int_equal(strlen(id), 32);
	assert_int_equal(strspn(id, "0123456789abcdef"), 32);
	h_resp_free(&r);
	h_req_ex(H.port, "GET", "/healthz", NULL, NULL, 0, NULL,
	         "X-Request-ID: "
	         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	         "aaaa",
	         &r);
	assert_true(h_header(&r, "X-Request-ID", id, sizeof(id)));
	assert_int_equal(strlen(id), 32);
	h_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Metrics                                                              */
/* ------------------------------------------------------------------ */

static void test_metrics(void **state)
{
	static const char *const names[] = {
		"http_requests_total{",
		"http_request_duration_seconds_bucket{",
		"vigil_auth_attempts_total{result=\"success\"}",
		"vigil_auth_attempts_total{result=\"failure\"}",
		"vigil_auth_attempts_total{result=\"rate_limited\"}",
		"vigil_active_sessions ",
		"vigil_emergency_stop ",
		"vigil_audit_log_entries_total ",
		"vigil_ingest_batches_total ",
		"process_resident_memory_bytes ",
	};
	struct h_resp r;
	FILE *p;
	int rc;

	(void)state;
	h_expect(200, "GET", "/v1/whoami", BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_req_ex(H.hport, "GET", "/metrics", NULL, NULL, 0, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(vg_buf_str(&r.body), names[i]))
			fail_msg("no %s in /metrics", names[i]);
	assert_non_null(strstr(vg_buf_str(&r.body),
	                       "http_requests_total{method=\"GET\","
	                       "route=\"/v1/whoami\",code=\"200\"}"));
	/* the exposition passes promtool's checks */
	p = popen("promtool check metrics >/dev/null 2>&1", "w");
	assert_non_null(p);
	fwrite(r.body.data, 1, r.body.len, p);
	rc = pclose(p);
	if (rc != 0)
		fail_msg("promtool check metrics failed (%d):\n%s", rc,
		         vg_buf_str(&r.body));
	h_resp_free(&r);
	/* the probe port's readiness */
	h_req_ex(H.hport, "GET", "/readyz", NULL, NULL, 0, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	h_resp_free(&r);
}

/* The OpenAPI document describes exactly the route table. */
static void test_openapi(void **state)
{
	struct h_resp r;
	size_t n;
	const struct gw_route *routes = gw_routes(&n);
	json_t *paths, *item;
	const char *path;
	size_t ops = 0;

	(void)state;
	h_expect(200, "GET", "/v1/openapi.json", NULL, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "openapi", ""), "3.0.3");
	paths = vg_json_get_object(r.json, "paths");
	assert_non_null(paths);
	for (size_t i = 0; i < n; i++) {
		char m[16], p[200];
		json_t *op;
		size_t k;

		for (k = 0; routes[i].method[k]; k++)
			m[k] = (char)(routes[i].method[k] - 'A' + 'a');
		m[k] = '\0';
		op = json_object_get(json_object_get(paths, routes[i].pattern),
		                     m);
		if (!op)
			fail_msg("no %s %s in the document", m,
			         routes[i].pattern);
		assert_string_equal(
			vg_json_get_str(op, "x-vigil-permission", ""),
			gw_perm_name(routes[i].perm));
		snprintf(p, sizeof(p),
		         "requestBody.content[\"application/json\"].schema");
		if (routes[i].body || routes[i].members) {
			json_t *schema = vg_json_get(op, p);
			size_t fields = 0;

			assert_non_null(schema);
			assert_true(json_is_false(json_object_get(
				schema, "additionalProperties")));
			for (const struct vg_json_field *f = routes[i].body;
			     f && f->name; f++, fields++)
				assert_non_null(json_object_get(
					json_object_get(schema, "properties"),
					f->name));
			for (const struct gw_member *o = routes[i].members;
			     o && o->name; o++, fields++)
				assert_non_null(json_object_get(
					json_object_get(schema, "properties"),
					o->name));
			assert_int_equal(json_object_size(json_object_get(
						 schema, "properties")),
			                 fields);
		} else {
			assert_null(vg_json_get(op, "requestBody"));
		}
	}
	json_object_foreach(paths, path, item) ops += json_object_size(item);
	assert_int_equal(ops, n);
	assert_string_equal(
		vg_json_get_str(r.json,
	                        "paths[\"/v1/tenants/{tid}/api-keys\"].post."
	                        "requestBody.content[\"application/json\"]."
	                        "schema.properties.role.enum[3]",
	                        ""),
		"agent");
	/* objects inside a body: the findings of an ingest batch */
	assert_string_equal(
		vg_json_get_str(r.json,
	                        "paths[\"/v1/tenants/{tid}/ingest\"].post."
	                        "requestBody.content[\"application/json\"]."
	                        "schema.properties.findings.items.properties."
	                        "severity.enum[4]",
	                        ""),
		"critical");
	assert_int_equal(
		vg_json_get_int(r.json,
	                        "paths[\"/v1/tenants/{tid}/ingest\"].post."
	                        "requestBody.content[\"application/json\"]."
	                        "schema.properties.findings.maxItems",
	                        0),
		10000);
	assert_non_null(vg_json_get(r.json,
	                            "paths[\"/v1/tenants/{tid}/ingest\"]"
	                            ".post.responses[\"202\"]"));
	/* the document committed to the repository is the one served */
	{
		json_error_t jerr;
		json_t *file = json_load_file(
			"controlplane/gateway/openapi.json", 0, &jerr);

		if (!file)
			fail_msg("controlplane/gateway/openapi.json: %s (run "
			         "the tests from the repository root)",
			         jerr.text);
		if (!json_equal(file, r.json))
			fail_msg("controlplane/gateway/openapi.json differs "
			         "from GET /v1/openapi.json: run "
			         "build/bin/vigil-gateway --openapi > "
			         "controlplane/gateway/openapi.json");
		json_decref(file);
	}
	h_resp_free(&r);
}

/* Without its own login the request path is the owner's login switched
 * to vigil_app for the whole session: no BYPASSRLS, owns nothing. */
static void test_request_path_role(void **state)
{
	struct gw_config c = H.cfg;
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_pool *p = NULL;
	struct vg_db_conn *conn = NULL;
	struct vg_err err = {0};
	char *ci, *v = NULL;

	(void)state;
	c.db_app_user = NULL;
	ci = gw_config_conninfo(&c, 1);
	o.conninfo = ci;
	assert_int_equal(vg_db_pool_new(&o, &p, &err), VG_OK);
	assert_int_equal(vg_db_acquire(p, &conn, &err), VG_OK);
	assert_int_equal(vg_db_query_value(conn,
	                                   "SELECT current_user || ' ' ||"
	                                   " (SELECT rolbypassrls::text FROM"
	                                   " pg_roles WHERE rolname ="
	                                   " current_user)",
	                                   0, NULL, &v, &err),
	                 VG_OK);
	assert_string_equal(v, "vigil_app false");
	free(v);
	vg_db_release(conn);
	vg_db_pool_free(p);
	free(ci);
	/* and the gateway's own pool */
	v = h_sql("SELECT count(*) FROM pg_stat_activity WHERE"
	          " application_name = 'vigil-gateway' AND usename <> "
	          "'vigil_app'");
	assert_string_equal(v, "0");
	free(v);
}

/* Three replicas start together on an empty database: one migrates under
 * the advisory lock, the others wait and find nothing to do; all become
 * ready. */
static void test_replicas_migrate_once(void **state)
{
	struct gw_config cfg[3];
	struct gw_app *app[3] = {NULL, NULL, NULL};
	struct vg_err err = {0};
	char name[] = "test";
	char *argv[] = {name, NULL};
	char *v;
	int ready = 0;

	(void)state;
	{
		struct vg_db_opts o = {.max_conns = 1};
		struct vg_db_pool *p = NULL;
		struct vg_db_conn *c = NULL;
		char ci[256];

		o.conninfo = vg_ts_pg_conninfo(&H.pg, "postgres", "postgres",
		                               ci, sizeof(ci));
		assert_int_equal(vg_db_pool_new(&o, &p, &err), VG_OK);
		assert_int_equal(vg_db_acquire(p, &c, &err), VG_OK);
		assert_int_equal(vg_db_exec(c, "CREATE DATABASE replicas", 0,
		                            NULL, NULL, &err),
		                 VG_OK);
		vg_db_release(c);
		vg_db_pool_free(p);
	}
	setenv("VIGIL_DB_NAME", "replicas", 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(gw_config_load(&cfg[i], 1, argv, &err), VG_OK);
	setenv("VIGIL_DB_NAME", "vigil", 1);
	for (int i = 0; i < 3; i++)
		if (gw_app_start(&cfg[i], &app[i], &err) != VG_OK)
			fail_msg("replica %d: %s", i, err.msg);
	for (int t = 0; t < 300 && ready < 3; t++) {
		char why[128];

		ready = 0;
		for (int i = 0; i < 3; i++)
			ready += gw_ready(gw_app_gw(app[i]), why, sizeof(why));
		usleep(100 * 1000);
	}
	assert_int_equal(ready, 3);
	for (int i = 0; i < 3; i++) {
		gw_app_stop(app[i]);
		gw_config_cleanup(&cfg[i]);
	}
	{
		struct vg_db_opts o = {.max_conns = 1};
		struct vg_db_pool *p = NULL;
		struct vg_db_conn *c = NULL;
		char ci[256];

		o.conninfo = vg_ts_pg_conninfo(&H.pg, "postgres", "replicas",
		                               ci, sizeof(ci));
		assert_int_equal(vg_db_pool_new(&o, &p, &err), VG_OK);
		assert_int_equal(vg_db_acquire(p, &c, &err), VG_OK);
		assert_int_equal(
			vg_db_query_value(
				c,
				"SELECT count(*) || ' ' || max(version)"
				" FROM public.schema_migrations",
				0, NULL, &v, &err),
			VG_OK);
		vg_db_release(c);
		vg_db_pool_free(p);
	}
	{
		size_t n;
		char want[32];

		vg_db_migrations(&n);
		snprintf(want, sizeof(want), "%zu %d", n,
		         vg_db_migrations(&n)[n - 1].version);
		assert_string_equal(v, want);
	}
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probes_and_whoami),
		cmocka_unit_test(test_not_found_and_method),
		cmocka_unit_test(test_tenants),
		cmocka_unit_test(test_users_and_sessions),
		cmocka_unit_test(test_auth_rate_limit),
		cmocka_unit_test(test_forwarded_client),
		cmocka_unit_test(test_api_keys),
		cmocka_unit_test(test_api_keys_cached),
		cmocka_unit_test(test_cross_tenant),
		cmocka_unit_test(test_emergency_stop),
		cmocka_unit_test(test_audit),
		cmocka_unit_test(test_malformed_bodies),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_openapi),
		cmocka_unit_test(test_request_path_role),
		cmocka_unit_test(test_replicas_migrate_once),
	};

	return cmocka_run_group_tests(tests, h_setup_all, h_teardown_all);
}
