/* test_scans.c - the scan endpoints against a real PostgreSQL and Redis:
 * scan runs (on-demand records, the emergency stop, cancel, filters and
 * keyset pages), with every role and another tenant's ids, and the
 * vigil_scan_jobs gauge. */
#include "harness.h"

static char tid[37], other[37];
static char admin[80], analyst[80], viewer[80], agent[80];
static char other_admin[80];

static int setup(void **state)
{
	if (h_setup_all(state))
		return -1;
	h_tenant("scans", tid);
	h_tenant("scans-other", other);
	h_key(tid, "admin", NULL, admin, NULL);
	h_key(tid, "analyst", NULL, analyst, NULL);
	h_key(tid, "viewer", NULL, viewer, NULL);
	h_key(tid, "agent", NULL, agent, NULL);
	h_key(other, "admin", NULL, other_admin, NULL);
	return 0;
}

/* "/v1/tenants/<t><suffix>" */
static const char *tpath(const char *t, const char *suffix)
{
	static char buf[4][1024];
	static int i;

	i = (i + 1) % 4;
	if (snprintf(buf[i], sizeof(buf[i]), "/v1/tenants/%s%s", t, suffix) >=
	    (int)sizeof(buf[i]))
		fail_msg("path too long");
	return buf[i];
}

/* The value of series `name` (the whole series, labels included) on
 * /metrics, or -1. */
static double metric(const char *name)
{
	struct h_resp r;
	char key[256];
	const char *p;
	double v = -1;

	snprintf(key, sizeof(key), "\n%s ", name);
	h_req_ex(H.hport, "GET", "/metrics", NULL, NULL, 0, NULL, NULL, &r);
	p = strstr(vg_buf_str(&r.body), key);
	if (p)
		v = strtod(p + strlen(key), NULL);
	h_resp_free(&r);
	return v;
}

/* GET every page of `path` (a query string already in it or not) with
 * `limit`; the ids in order (new array). */
static json_t *walk(const char *path, const char *token, int limit,
                    int *pages)
{
	json_t *ids = json_array();
	char cursor[512] = "";

	*pages = 0;
	for (;;) {
		struct h_resp r;
		char url[1024];
		const json_t *items, *it;
		size_t i;

		snprintf(url, sizeof(url), "%s%slimit=%d%s%s", path,
		         strchr(path, '?') ? "&" : "?", limit,
		         cursor[0] ? "&cursor=" : "", cursor);
		h_expect(200, "GET", url, token, NULL, &r);
		items = vg_json_get_array(r.json, "items");
		assert_non_null(items);
		assert_true(json_array_size(items) <= (size_t)limit);
		json_array_foreach(items, i, it)
			json_array_append_new(
				ids, json_string(vg_json_get_str(it, "id", "")));
		(*pages)++;
		if (json_is_null(json_object_get(r.json, "next_cursor"))) {
			h_resp_free(&r);
			break;
		}
		assert_int_equal(json_array_size(items), (size_t)limit);
		snprintf(cursor, sizeof(cursor), "%s",
		         vg_json_get_str(r.json, "next_cursor", ""));
		assert_true(cursor[0] != '\0');
		h_resp_free(&r);
		if (*pages > 1000)
			fail_msg("%s: no end of pages", path);
	}
	return ids;
}

/* The same ids, one per line, as PostgreSQL orders them. */
static void expect_order(const json_t *ids, const char *sql)
{
	char *want = h_sql(sql);
	struct vg_buf got;
	size_t i;
	const json_t *v;

	vg_buf_init(&got, 0);
	json_array_foreach(ids, i, v)
		vg_buf_appendf(&got, "%s%s", i ? "," : "",
		               json_string_value(v));
	if (strcmp(want ? want : "", vg_buf_str(&got)) != 0)
		fail_msg("order differs:\n got %.300s\nwant %.300s",
		         vg_buf_str(&got), want ? want : "");
	vg_buf_cleanup(&got);
	free(want);
}

static void expect_bad_request(const char *path, const char *token)
{
	struct h_resp r;

	h_expect(400, "GET", path, token, NULL, &r);
	assert_string_equal(h_err_code(&r), "bad_request");
	h_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Scan runs                                                            */
/* ------------------------------------------------------------------ */

static char run_id[37];

static void test_runs_create_and_get(void **state)
{
	struct h_resp r;
	char p[256];

	(void)state;
	h_expect(201, "POST", tpath(tid, "/scan-runs"), analyst,
	         "{\"policy_namespace\":\"tenant-scans\","
	         "\"policy_name\":\"web\"}",
	         &r);
	snprintf(run_id, sizeof(run_id), "%s",
	         vg_json_get_str(r.json, "id", ""));
	assert_true(vg_db_is_uuid(run_id));
	assert_string_equal(vg_json_get_str(r.json, "trigger", ""), "manual");
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "pending");
	assert_int_equal(vg_json_get_int(r.json, "shards", 0), 1);
	assert_int_equal(vg_json_get_int(r.json, "shards_done", -1), 0);
	assert_string_equal(vg_json_get_str(r.json, "policy_name", ""), "web");
	h_resp_free(&r);
	h_expect(201, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"tenant-scans\","
	         "\"policy_name\":\"db\",\"shards\":4}",
	         &r);
	assert_int_equal(vg_json_get_int(r.json, "shards", 0), 4);
	h_resp_free(&r);

	/* the body's table */
	h_expect(422, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\"}", &r);
	h_resp_free(&r);
	h_expect(422, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\","
	         "\"shards\":0}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\","
	         "\"state\":\"running\"}",
	         &r);
	h_resp_free(&r);
	/* roles */
	h_expect(403, "POST", tpath(tid, "/scan-runs"), viewer,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\"}", &r);
	h_resp_free(&r);
	h_expect(403, "POST", tpath(tid, "/scan-runs"), agent,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\"}", &r);
	h_resp_free(&r);
	h_expect(401, "POST", tpath(tid, "/scan-runs"), NULL,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\"}", &r);
	h_resp_free(&r);

	/* one run */
	snprintf(p, sizeof(p), "/scan-runs/%s", run_id);
	h_expect(200, "GET", tpath(tid, p), viewer, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "id", ""), run_id);
	assert_true(json_is_object(json_object_get(r.json, "finding_counts")));
	h_resp_free(&r);
	h_expect(403, "GET", tpath(tid, p), agent, NULL, &r);
	h_resp_free(&r);
	/* another tenant's key, and another tenant's path for this id */
	h_expect(404, "GET", tpath(tid, p), other_admin, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(other, p), other_admin, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(other, p), BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET",
	         tpath(tid, "/scan-runs/00000000-0000-4000-8000-00000000beef"),
	         admin, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(tid, "/scan-runs/not-a-uuid"), admin, NULL,
	         &r);
	h_resp_free(&r);
}

static void test_runs_emergency_stop(void **state)
{
	struct h_resp r;

	(void)state;
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":true,\"reason\":\"scan test\"}", &r);
	h_resp_free(&r);
	h_expect(503, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"p\"}", &r);
	assert_string_equal(h_err_code(&r), "emergency_stop");
	h_resp_free(&r);
	/* reading and cancelling still work */
	h_expect(200, "GET", tpath(tid, "/scan-runs"), admin, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":false}", &r);
	h_resp_free(&r);
	h_expect(201, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"after-stop\"}",
	         &r);
	h_resp_free(&r);
}

static void test_runs_cancel(void **state)
{
	struct h_resp r;
	char p[256], q[256], *v;

	(void)state;
	snprintf(p, sizeof(p), "/scan-runs/%s/cancel", run_id);
	h_expect(403, "POST", tpath(tid, p), viewer, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "POST", tpath(other, p), other_admin, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "POST", tpath(tid, p), analyst, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "canceled");
	assert_true(json_is_string(json_object_get(r.json, "finished_at")));
	h_resp_free(&r);
	h_expect(409, "POST", tpath(tid, p), analyst, NULL, &r);
	assert_string_equal(h_err_code(&r), "conflict");
	h_resp_free(&r);
	h_expect(404, "POST",
	         tpath(tid, "/scan-runs/00000000-0000-4000-8000-00000000beef/"
	                    "cancel"),
	         analyst, NULL, &r);
	h_resp_free(&r);
	/* audited, in the tenant's chain */
	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM vigil.audit_log WHERE tenant_id = '%s'"
	         " AND action IN ('scan_run.cancel', 'scan_run.create')"
	         " AND object_id = '%s'",
	         tid, run_id);
	v = h_sql(q);
	assert_string_equal(v, "2");
	free(v);
	/* a finished run is not canceled */
	h_expect(201, "POST", tpath(tid, "/scan-runs"), admin,
	         "{\"policy_namespace\":\"n\",\"policy_name\":\"done\"}", &r);
	snprintf(q, sizeof(q),
	         "UPDATE vigil.scan_runs SET state = 'succeeded' WHERE id ="
	         " '%s'",
	         vg_json_get_str(r.json, "id", ""));
	snprintf(p, sizeof(p), "/scan-runs/%s/cancel",
	         vg_json_get_str(r.json, "id", ""));
	h_resp_free(&r);
	free(h_sql(q));
	h_expect(409, "POST", tpath(tid, p), admin, NULL, &r);
	h_resp_free(&r);
}

static void test_runs_list(void **state)
{
	json_t *ids;
	int pages;
	struct h_resp r;
	char q[512];

	(void)state;
	/* 250 runs of one transaction share created_at: the id orders
	 * them */
	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.scan_runs (tenant_id, policy_namespace,"
	         " policy_name, job_name, state) SELECT '%s', 'ns',"
	         " 'bulk', 'bulk-' || i, CASE WHEN i %% 5 = 0 THEN 'failed'"
	         " ELSE 'succeeded' END FROM generate_series(1, 250) i",
	         tid);
	free(h_sql(q));
	ids = walk(tpath(tid, "/scan-runs"), viewer, 100, &pages);
	assert_int_equal(pages, 3);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY created_at DESC,"
	         " id DESC) FROM vigil.scan_runs WHERE tenant_id = '%s'",
	         tid);
	expect_order(ids, q);
	json_decref(ids);

	/* filters, with pages */
	ids = walk(tpath(tid, "/scan-runs?state=failed&policy_name=bulk"),
	           admin, 7, &pages);
	assert_int_equal(json_array_size(ids), 50);
	assert_int_equal(pages, 8);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY created_at DESC,"
	         " id DESC) FROM vigil.scan_runs WHERE tenant_id = '%s' AND"
	         " state = 'failed' AND policy_name = 'bulk'",
	         tid);
	expect_order(ids, q);
	json_decref(ids);
	ids = walk(tpath(tid, "/scan-runs?policy_namespace=tenant-scans"),
	           admin, 50, &pages);
	assert_int_equal(json_array_size(ids), 2);
	json_decref(ids);

	/* the default page, and another tenant's list is its own */
	h_expect(200, "GET", tpath(tid, "/scan-runs"), admin, NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 50);
	assert_true(json_is_string(json_object_get(r.json, "next_cursor")));
	h_resp_free(&r);
	h_expect(200, "GET", tpath(other, "/scan-runs"), other_admin, NULL,
	         &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 0);
	assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
	h_resp_free(&r);
	h_expect(404, "GET", tpath(other, "/scan-runs"), admin, NULL, &r);
	h_resp_free(&r);
	h_expect(403, "GET", tpath(tid, "/scan-runs"), agent, NULL, &r);
	h_resp_free(&r);

	/* malformed parameters */
	expect_bad_request(tpath(tid, "/scan-runs?limit=0"), admin);
	expect_bad_request(tpath(tid, "/scan-runs?limit=501"), admin);
	expect_bad_request(tpath(tid, "/scan-runs?limit=ten"), admin);
	expect_bad_request(tpath(tid, "/scan-runs?state=done"), admin);
	expect_bad_request(tpath(tid, "/scan-runs?cursor=%%%%"), admin);
	expect_bad_request(tpath(tid, "/scan-runs?cursor=not-a-cursor"),
	                   admin);
	/* base64url of "1,2": the wrong kind of key */
	expect_bad_request(tpath(tid, "/scan-runs?cursor=MSwy"), admin);
	/* base64url of "2026-13-40T00:00:00Z,<uuid>": no such date */
	{
		const char *parts[] = {"2026-02-30T00:00:00Z",
		                       "00000000-0000-4000-8000-000000000001"};
		char *c = gw_cursor_encode(parts, 2);
		char p[512];

		snprintf(p, sizeof(p), "/scan-runs?cursor=%s", c);
		expect_bad_request(tpath(tid, p), admin);
		free(c);
	}
}

static void test_scan_jobs_gauge(void **state)
{
	double canceled = -1, failed = -1;

	(void)state;
	/* refreshed by the health thread every few seconds */
	for (int i = 0; i < 100; i++) {
		canceled = metric("vigil_scan_jobs{state=\"canceled\"}");
		failed = metric("vigil_scan_jobs{state=\"failed\"}");
		if (canceled == 1 && failed == 50)
			break;
		usleep(100 * 1000);
	}
	assert_true(canceled == 1);
	assert_true(failed == 50);
	assert_true(metric("vigil_scan_jobs{state=\"running\"}") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_create_and_get),
		cmocka_unit_test(test_runs_emergency_stop),
		cmocka_unit_test(test_runs_cancel),
		cmocka_unit_test(test_runs_list),
		cmocka_unit_test(test_scan_jobs_gauge),
	};

	return cmocka_run_group_tests(tests, setup, h_teardown_all);
}
