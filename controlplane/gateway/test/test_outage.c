/* test_outage.c - PostgreSQL and Redis go away under the running gateway:
 * /readyz turns 503 and requests answer 503 (with Retry-After) instead of
 * hanging or crashing; once the servers are back the gateway recovers by
 * itself, without a restart. */
#include "harness.h"

static char tid[37], key[80], path[128];

static void expect_unavailable(const char *method, const char *p,
                               const char *token, const char *body)
{
	struct h_resp r;
	char retry[16];

	h_expect(503, method, p, token, body, &r);
	assert_string_equal(h_err_code(&r), "unavailable");
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	h_resp_free(&r);
}

static void expect_ok(void)
{
	struct h_resp r;

	h_expect(200, "GET", path, key, NULL, &r);
	h_resp_free(&r);
}

static void test_setup_tenant(void **state)
{
	struct h_resp r;

	(void)state;
	h_tenant("outage", tid);
	h_key(tid, "admin", NULL, key, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/users", tid);
	h_expect(201, "POST", path, key,
	         "{\"subject\":\"erin\",\"password\":\"erin's password\","
	         "\"role\":\"viewer\"}",
	         &r);
	h_resp_free(&r);
	expect_ok();
}

static void test_postgres_crash(void **state)
{
	struct h_resp r;

	(void)state;
	/* the test server runs with synchronous_commit=off: make what was
	 * committed durable before the crash */
	free(h_sql("CHECKPOINT"));
	assert_int_equal(vg_ts_kill9(&H.pg), 0);
	h_wait_ready(0, 10000);
	expect_unavailable("GET", path, key, NULL);
	expect_unavailable("GET", "/v1/tenants", BOOTSTRAP_KEY, NULL);
	expect_unavailable("POST", "/v1/auth/login", NULL,
	                   "{\"subject\":\"erin\",\"password\":\"erin's "
	                   "password\"}");
	/* liveness is not readiness */
	h_expect(200, "GET", "/healthz", NULL, NULL, &r);
	h_resp_free(&r);
	assert_int_equal(vg_ts_restart(&H.pg), 0);
	h_wait_ready(1, 30000);
	expect_ok();
}

static void test_postgres_restart(void **state)
{
	(void)state;
	assert_int_equal(vg_ts_stop(&H.pg), 0);
	h_wait_ready(0, 10000);
	expect_unavailable("GET", path, key, NULL);
	assert_int_equal(vg_ts_restart(&H.pg), 0);
	h_wait_ready(1, 30000);
	expect_ok();
}

static void test_redis_restart(void **state)
{
	struct h_resp r;

	(void)state;
	assert_int_equal(vg_ts_stop(&H.redis), 0);
	h_wait_ready(0, 10000);
	/* authentication needs the failure counters in Redis */
	expect_unavailable("GET", path, key, NULL);
	expect_unavailable("POST", "/v1/auth/login", NULL,
	                   "{\"subject\":\"erin\",\"password\":\"erin's "
	                   "password\"}");
	assert_int_equal(vg_ts_restart(&H.redis), 0);
	h_wait_ready(1, 30000);
	expect_ok();
	h_expect(201, "POST", "/v1/auth/login", NULL,
	         "{\"subject\":\"erin\",\"password\":\"erin's password\"}", &r);
	h_resp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_tenant),
		cmocka_unit_test(test_postgres_crash),
		cmocka_unit_test(test_postgres_restart),
		cmocka_unit_test(test_redis_restart),
	};

	return cmocka_run_group_tests(tests, h_setup_all, h_teardown_all);
}
