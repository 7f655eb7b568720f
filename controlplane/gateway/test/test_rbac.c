/* test_rbac.c - the RBAC matrix: the permission table checked against an
 * independent table of what each role may do, then every route x every
 * role (and no credentials) against the running gateway, and every
 * tenant role against another tenant's routes. */
#include "harness.h"

/*
 * What each role may do, written down independently of rbac.c: letters
 * A admin, N analyst, V viewer, G agent, P platform-admin; "*" any
 * authenticated caller; "" public.
 */
static const struct {
	const char *route; /* "METHOD pattern" */
	const char *roles;
} expected[] = {
	{"GET /healthz", ""},
	{"GET /readyz", ""},
	{"GET /v1/openapi.json", ""},
	{"POST /v1/auth/login", ""},
	{"POST /v1/auth/logout", "*"},
	{"GET /v1/whoami", "*"},
	{"GET /v1/tenants", "P"},
	{"POST /v1/tenants", "P"},
	{"GET /v1/tenants/{tid}", "ANVP"},
	{"GET /v1/tenants/{tid}/users", "AP"},
	{"POST /v1/tenants/{tid}/users", "AP"},
	{"DELETE /v1/tenants/{tid}/users/{id}", "AP"},
	{"GET /v1/tenants/{tid}/role-bindings", "AP"},
	{"POST /v1/tenants/{tid}/role-bindings", "AP"},
	{"DELETE /v1/tenants/{tid}/role-bindings/{id}", "AP"},
	{"GET /v1/tenants/{tid}/api-keys", "AP"},
	{"POST /v1/tenants/{tid}/api-keys", "AP"},
	{"DELETE /v1/tenants/{tid}/api-keys/{id}", "AP"},
	{"GET /v1/emergency-stop", "ANVGP"},
	{"PUT /v1/emergency-stop", "P"},
	{"GET /v1/audit", "AP"},
	{"GET /v1/audit/verify", "AP"},
	{"POST /v1/tenants/{tid}/ingest", "G"},
	{"GET /v1/tenants/{tid}/scan-runs", "ANVP"},
	{"POST /v1/tenants/{tid}/scan-runs", "ANP"},
	{"GET /v1/tenants/{tid}/scan-runs/{id}", "ANVP"},
	{"POST /v1/tenants/{tid}/scan-runs/{id}/cancel", "ANP"},
	{"GET /v1/tenants/{tid}/findings", "ANVP"},
	{"PATCH /v1/tenants/{tid}/findings/{id}", "ANP"},
	{"GET /v1/tenants/{tid}/reports", "ANVP"},
	{"POST /v1/tenants/{tid}/reports", "ANVP"},
	{"GET /v1/tenants/{tid}/reports/{id}", "ANVP"},
	{"GET /v1/tenants/{tid}/reports/{id}/content", "ANVP"},
	{"GET /v1/events", "ANVP"},
	{"GET /v1/admin/dead-letters", "P"},
	{"POST /v1/admin/dead-letters/{id}/replay", "P"},
	{"DELETE /v1/admin/dead-letters/{id}", "P"},
	{"DELETE /v1/admin/dead-letters", "P"},
};

static const char role_letter[ROLE_COUNT] = {
	[ROLE_ADMIN] = 'A', [ROLE_ANALYST] = 'N',        [ROLE_VIEWER] = 'V',
	[ROLE_AGENT] = 'G', [ROLE_PLATFORM_ADMIN] = 'P',
};

static const char *expected_roles(const struct gw_route *r)
{
	char key[160];

	snprintf(key, sizeof(key), "%s %s", r->method, r->pattern);
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		if (strcmp(expected[i].route, key) == 0)
			return expected[i].roles;
	return NULL;
}

/* 1 when the independent table lets `role` use route `r`. */
static int expected_allowed(const struct gw_route *r, enum gw_role role)
{
	const char *e = expected_roles(r);

	return e && (strcmp(e, "*") == 0 || strchr(e, role_letter[role]));
}

/* 1 when the gateway's table does (PERM_AUTHENTICATED: any role). */
static int table_allowed(const struct gw_route *r, enum gw_role role)
{
	return r->perm == PERM_AUTHENTICATED || gw_rbac_allowed(r->perm, role);
}

static void test_table_matches_expected(void **state)
{
	size_t n;
	const struct gw_route *routes = gw_routes(&n);

	(void)state;
	assert_int_equal(n, sizeof(expected) / sizeof(expected[0]));
	for (size_t i = 0; i < n; i++) {
		const struct gw_route *r = &routes[i];
		const char *e = expected_roles(r);

		if (!e)
			fail_msg("route %s %s is not in the expected table",
			         r->method, r->pattern);
		if ((r->perm == PERM_PUBLIC) != (*e == '\0'))
			fail_msg("%s %s: public is %d, expected %d", r->method,
			         r->pattern, r->perm == PERM_PUBLIC,
			         *e == '\0');
		if (r->perm == PERM_PUBLIC)
			continue;
		for (int role = 0; role < ROLE_COUNT; role++)
			if (table_allowed(r, role) != expected_allowed(r, role))
				fail_msg("%s %s as %s: table says %d, expected "
				         "%d",
				         r->method, r->pattern,
				         gw_role_name(role),
				         table_allowed(r, role),
				         expected_allowed(r, role));
	}
	/* role names round-trip; unknown names are no role */
	for (int role = 0; role < ROLE_COUNT; role++)
		assert_int_equal(gw_role_parse(gw_role_name(role)), role);
	assert_int_equal(gw_role_parse("root"), ROLE_NONE);
	assert_false(gw_rbac_allowed(PERM_COUNT, ROLE_ADMIN));
	assert_false(gw_rbac_allowed(PERM_TENANTS_LIST, ROLE_NONE));
}

/* ------------------------------------------------------------------ */
/* Live                                                                 */
/* ------------------------------------------------------------------ */

static char tid[37], other[37];
static char keys[ROLE_COUNT][80];
static char other_keys[ROLE_COUNT][80];
static unsigned uniq;

static const char *token_of(int role)
{
	if (role == ROLE_PLATFORM_ADMIN)
		return BOOTSTRAP_KEY;
	return keys[role];
}

/* Path of `pattern` for tenant `t`; {id} is an id nothing has. */
static void fill(const char *pattern, const char *t, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = pattern; *p && o + 40 < size;) {
		if (strncmp(p, "{tid}", 5) == 0) {
			o += (size_t)snprintf(out + o, size - o, "%s", t);
			p += 5;
		} else if (strncmp(p, "{id}", 4) == 0) {
			o += (size_t)snprintf(
				out + o, size - o, "%s",
				"00000000-0000-4000-8000-0000000000ff");
			p += 4;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	/* the audit and events routes name their tenant in the query */
	if (strncmp(pattern, "/v1/audit", 9) == 0 ||
	    strcmp(pattern, "/v1/events") == 0)
		snprintf(out + o, size - o, "?tenant=%s", t);
}

/* A valid body for each route that takes one (new objects each time). */
static void body_for(const struct gw_route *r, char *out, size_t size)
{
	uniq++;
	out[0] = '\0';
	if (!r->body)
		return;
	if (strcmp(r->pattern, "/v1/tenants") == 0)
		snprintf(out, size,
		         "{\"k8s_uid\":\"00000000-0000-4000-9000-%012x\","
		         "\"name\":\"rbac-%u\"}",
		         uniq, uniq);
	else if (strstr(r->pattern, "/users"))
		snprintf(out, size,
		         "{\"subject\":\"rbac-user-%u\","
		         "\"role\":\"viewer\"}",
		         uniq);
	else if (strstr(r->pattern, "/role-bindings"))
		snprintf(out, size,
		         "{\"subject\":\"rbac-nobody\",\"role\":\"viewer\"}");
	else if (strstr(r->pattern, "/api-keys"))
		snprintf(out, size, "{\"name\":\"rbac\",\"role\":\"viewer\"}");
	else if (strstr(r->pattern, "/emergency-stop"))
		snprintf(out, size, "{\"engaged\":false}");
	else if (strstr(r->pattern, "/ingest"))
		snprintf(out, size,
		         "{\"job_name\":\"rbac-%u\",\"shards\":1,"
		         "\"shard\":0,\"batch_id\":\"b\",\"final\":true,"
		         "\"findings\":[]}",
		         uniq);
	else if (strstr(r->pattern, "/scan-runs"))
		snprintf(out, size,
		         "{\"policy_namespace\":\"ns\","
		         "\"policy_name\":\"rbac-%u\"}",
		         uniq);
	else if (strstr(r->pattern, "/findings"))
		snprintf(out, size, "{\"state\":\"resolved\"}");
	else if (strstr(r->pattern, "/reports"))
		snprintf(out, size,
		         "{\"run_id\":\"00000000-0000-4000-8000-"
		         "0000000000ff\"}");
	else if (strstr(r->pattern, "/auth/login"))
		snprintf(out, size,
		         "{\"subject\":\"rbac-login\","
		         "\"password\":\"rbac-login-password\"}");
	else
		fail_msg("no test body for %s %s", r->method, r->pattern);
}

static void setup_principals(void)
{
	struct h_resp r;
	char path[128];

	h_tenant("rbac", tid);
	h_tenant("rbac-other", other);
	for (int role = 0; role < ROLE_PLATFORM_ADMIN; role++) {
		h_key(tid, gw_role_name(role), NULL, keys[role], NULL);
		h_key(other, gw_role_name(role), NULL, other_keys[role], NULL);
	}
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(201, "POST", path, BOOTSTRAP_KEY,
	         "{\"subject\":\"rbac-login\",\"password\":"
	         "\"rbac-login-password\",\"role\":\"viewer\"}",
	         &r);
	h_resp_free(&r);
}

static void test_matrix_live(void **state)
{
	size_t n;
	const struct gw_route *routes = gw_routes(&n);
	int checked = 0;

	(void)state;
	setup_principals();
	for (size_t i = 0; i < n; i++) {
		const struct gw_route *rt = &routes[i];
		char path[256], body[512];

		fill(rt->pattern, tid, path, sizeof(path));
		/* no credentials */
		{
			struct h_resp r;
			long st;

			body_for(rt, body, sizeof(body));
			st = h_req(rt->method, path, NULL,
			           rt->body ? body : NULL, &r);
			if (rt->perm == PERM_PUBLIC ? (st == 401 || st == 403)
			                            : st != 401)
				fail_msg("anonymous %s %s: %ld", rt->method,
				         path, st);
			h_resp_free(&r);
		}
		if (rt->perm == PERM_PUBLIC)
			continue;
		for (int role = 0; role < ROLE_COUNT; role++) {
			struct h_resp r;
			int allowed = expected_allowed(rt, role);
			long st;

			body_for(rt, body, sizeof(body));
			st = h_req(rt->method, path, token_of(role),
			           rt->body ? body : NULL, &r);
			if (allowed ? (st == 401 || st == 403) : st != 403)
				fail_msg("%s %s as %s: %ld (%s), allowed %d",
				         rt->method, path, gw_role_name(role),
				         st, vg_buf_str(&r.body), allowed);
			if (!allowed)
				assert_string_equal(h_err_code(&r),
				                    "forbidden");
			h_resp_free(&r);
			checked++;
		}
	}
	assert_true(checked >= 18 * ROLE_COUNT);
}

/* Tenant roles on another tenant's routes: always 404, never a hint. */
static void test_cross_tenant_every_role(void **state)
{
	size_t n;
	const struct gw_route *routes = gw_routes(&n);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const struct gw_route *rt = &routes[i];
		char path[256], body[512];

		if (rt->scope == SCOPE_PLATFORM)
			continue;
		fill(rt->pattern, other, path, sizeof(path));
		for (int role = 0; role < ROLE_PLATFORM_ADMIN; role++) {
			struct h_resp r;
			long st;

			body_for(rt, body, sizeof(body));
			st = h_req(rt->method, path, keys[role],
			           rt->body ? body : NULL, &r);
			if (st != 404)
				fail_msg("%s %s as %s of another tenant: %ld",
				         rt->method, path, gw_role_name(role),
				         st);
			assert_null(strstr(vg_buf_str(&r.body), "rbac-other"));
			h_resp_free(&r);
		}
	}
	/* the platform's audit chain is not a tenant admin's */
	{
		struct h_resp r;

		h_expect(403, "GET", "/v1/audit", keys[ROLE_ADMIN], NULL, &r);
		h_resp_free(&r);
		h_expect(403, "GET", "/v1/audit/verify", other_keys[ROLE_ADMIN],
		         NULL, &r);
		h_resp_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_expected),
		cmocka_unit_test(test_matrix_live),
		cmocka_unit_test(test_cross_tenant_every_role),
	};

	return cmocka_run_group_tests(tests, h_setup_all, h_teardown_all);
}
