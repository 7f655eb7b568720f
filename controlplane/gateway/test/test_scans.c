/* test_scans.c - the scan endpoints against a real PostgreSQL and Redis:
 * scan runs (on-demand records, the emergency stop, cancel, filters and
 * keyset pages), findings (1,234 of them walked page by page, filters,
 * triage, the plan of the list's query), reports (list, summary, the
 * stored bytes with their media type, asking for one as a queued task),
 * with every role and another tenant's ids, and the vigil_scan_jobs
 * gauge. */
#include "harness.h"

#include "vigil/queue.h"

static char tid[37], other[37];
static char admin[80], analyst[80], viewer[80], agent[80];
static char other_admin[80];

static int setup(void **state)
{
	/* vigil_scan_jobs every second (30 by default) */
	setenv("VIGIL_SCAN_JOBS_REFRESH", "1", 1);
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
static json_t *walk(const char *path, const char *token, int limit, int *pages)
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
		json_array_foreach(items, i, it) json_array_append_new(
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
	json_array_foreach(ids, i, v) vg_buf_appendf(&got, "%s%s", i ? "," : "",
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
	h_expect(200, "GET", tpath(other, "/scan-runs"), other_admin, NULL, &r);
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
	expect_bad_request(tpath(tid, "/scan-runs?cursor=not-a-cursor"), admin);
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

/* ------------------------------------------------------------------ */
/* Findings                                                             */
/* ------------------------------------------------------------------ */

static char frun[2][37], other_run[37], other_finding[37];

/* A run of tenant `t` made in SQL; its id into `id`. */
static void sql_run(const char *t, const char *job, char *id)
{
	char q[256], *v;

	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.scan_runs (tenant_id, job_name, state)"
	         " VALUES ('%s', '%s', 'succeeded') RETURNING id",
	         t, job);
	v = h_sql(q);
	snprintf(id, 37, "%s", v);
	free(v);
}

static void test_findings_setup(void **state)
{
	char q[1024], *v;

	(void)state;
	sql_run(tid, "findings-a", frun[0]);
	sql_run(tid, "findings-b", frun[1]);
	sql_run(other, "findings-other", other_run);
	/* 1,234 findings over two runs; last_seen repeats, so pages end
	 * inside runs of equal (severity, last_seen) and the id decides */
	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.findings (tenant_id, run_id, batch_id,"
	         " host, port, scanner, severity, fingerprint, title,"
	         " first_seen, last_seen) SELECT '%s', CASE WHEN i %% 2 = 0"
	         " THEN '%s'::uuid ELSE '%s'::uuid END, 'b', '10.0.' ||"
	         " (i %% 7) || '.1', CASE WHEN i %% 11 = 0 THEN NULL ELSE"
	         " i %% 50 END, CASE WHEN i %% 3 = 0 THEN 'tls' ELSE 'tcp'"
	         " END, (ARRAY['info','low','medium','high','critical'])"
	         "[1 + i %% 5]::vigil.severity, 'fp-' || i, 'finding ' || i,"
	         " '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'::timestamptz"
	         " + (i %% 13) * interval '1 minute'"
	         " FROM generate_series(1, 1234) i",
	         tid, frun[0], frun[1]);
	free(h_sql(q));
	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.findings (tenant_id, run_id, batch_id,"
	         " host, scanner, severity, fingerprint) VALUES ('%s', '%s',"
	         " 'b', '10.0.0.1', 'tcp', 'critical', 'other-fp')"
	         " RETURNING id",
	         other, other_run);
	v = h_sql(q);
	snprintf(other_finding, sizeof(other_finding), "%s", v);
	free(v);
}

static void test_findings_pages(void **state)
{
	json_t *ids;
	int pages;
	char q[512];

	(void)state;
	ids = walk(tpath(tid, "/findings"), viewer, 100, &pages);
	assert_int_equal(json_array_size(ids), 1234);
	assert_int_equal(pages, 13);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY severity DESC,"
	         " last_seen DESC, id DESC) FROM vigil.findings WHERE"
	         " tenant_id = '%s'",
	         tid);
	/* every finding once, in order (string equality of the lists) */
	expect_order(ids, q);
	json_decref(ids);
	/* a page of one, and of the most */
	ids = walk(tpath(tid, "/findings?severity=critical&host=10.0.3.1"),
	           analyst, 1, &pages);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY severity DESC,"
	         " last_seen DESC, id DESC) FROM vigil.findings WHERE"
	         " tenant_id = '%s' AND severity = 'critical' AND host ="
	         " '10.0.3.1'",
	         tid);
	expect_order(ids, q);
	assert_int_equal((size_t)pages, json_array_size(ids));
	json_decref(ids);
	ids = walk(tpath(tid, "/findings"), viewer, 500, &pages);
	assert_int_equal(pages, 3);
	json_decref(ids);
}

static void test_findings_filters(void **state)
{
	static const struct {
		const char *query, *where;
	} cases[] = {
		{"severity=high,critical", "severity IN ('high', 'critical')"},
		{"severity=info", "severity = 'info'"},
		{"host=10.0.5.1", "host = '10.0.5.1'"},
		{"port=7", "port = 7"},
		{"scanner=tls&severity=low", "scanner = 'tls' AND severity = "
	                                     "'low'"},
		{"state=open", "state = 'open'"},
		{"state=resolved", "state = 'resolved'"},
	};
	json_t *ids;
	int pages;
	char url[256], q[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(url, sizeof(url), "/findings?%s", cases[i].query);
		ids = walk(tpath(tid, url), admin, 97, &pages);
		snprintf(q, sizeof(q),
		         "SELECT coalesce(string_agg(id::text, ',' ORDER BY"
		         " severity DESC, last_seen DESC, id DESC), '') FROM"
		         " vigil.findings WHERE tenant_id = '%s' AND %s",
		         tid, cases[i].where);
		expect_order(ids, q);
		json_decref(ids);
	}
	snprintf(url, sizeof(url), "/findings?run_id=%s&severity=medium",
	         frun[1]);
	ids = walk(tpath(tid, url), admin, 50, &pages);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY severity DESC,"
	         " last_seen DESC, id DESC) FROM vigil.findings WHERE"
	         " tenant_id = '%s' AND run_id = '%s' AND severity ="
	         " 'medium'",
	         tid, frun[1]);
	expect_order(ids, q);
	json_decref(ids);

	/* a row: every field */
	{
		struct h_resp r;

		h_expect(200, "GET",
		         tpath(tid, "/findings?limit=1&host=10.0.0.1&port=7"),
		         viewer, NULL, &r);
		assert_string_equal(
			vg_json_get_str(r.json, "items[0].host", ""),
			"10.0.0.1");
		assert_int_equal(vg_json_get_int(r.json, "items[0].port", -1),
		                 7);
		assert_string_equal(
			vg_json_get_str(r.json, "items[0].protocol", ""),
			"tcp");
		assert_true(json_is_object(
			vg_json_get(r.json, "items[0].evidence")));
		assert_string_equal(
			vg_json_get_str(r.json, "items[0].state", ""), "open");
		h_resp_free(&r);
		/* a host-level finding's port is null */
		h_expect(200, "GET", tpath(tid, "/findings?limit=500"), viewer,
		         NULL, &r);
		{
			size_t i, nulls = 0;
			const json_t *it;

			json_array_foreach(vg_json_get_array(r.json, "items"),
			                   i, it) nulls +=
				json_is_null(json_object_get(it, "port"));
			assert_true(nulls > 0);
		}
		h_resp_free(&r);
	}

	/* malformed filters and cursors */
	expect_bad_request(tpath(tid, "/findings?severity=urgent"), viewer);
	expect_bad_request(tpath(tid, "/findings?severity=high,"), viewer);
	expect_bad_request(tpath(tid, "/findings?severity="), viewer);
	expect_bad_request(tpath(tid, "/findings?port=65536"), viewer);
	expect_bad_request(tpath(tid, "/findings?port=-1"), viewer);
	expect_bad_request(tpath(tid, "/findings?run_id=run-1"), viewer);
	expect_bad_request(tpath(tid, "/findings?state=closed"), viewer);
	expect_bad_request(tpath(tid, "/findings?limit=1000"), viewer);
	expect_bad_request(tpath(tid, "/findings?cursor=@@@"), viewer);
	{
		/* a scan-runs cursor is no findings cursor */
		struct h_resp r;
		char url2[512];

		h_expect(200, "GET", tpath(tid, "/scan-runs?limit=1"), viewer,
		         NULL, &r);
		snprintf(url2, sizeof(url2), "/findings?cursor=%s",
		         vg_json_get_str(r.json, "next_cursor", ""));
		h_resp_free(&r);
		expect_bad_request(tpath(tid, url2), viewer);
	}
	{
		const char *parts[] = {"severe", "2026-01-02T00:00:00Z",
		                       "00000000-0000-4000-8000-000000000001"};
		char *c = gw_cursor_encode(parts, 3);
		char url2[512];

		snprintf(url2, sizeof(url2), "/findings?cursor=%s", c);
		expect_bad_request(tpath(tid, url2), viewer);
		free(c);
	}
}

static void test_findings_access(void **state)
{
	struct h_resp r;
	char p[256];

	(void)state;
	h_expect(403, "GET", tpath(tid, "/findings"), agent, NULL, &r);
	h_resp_free(&r);
	h_expect(401, "GET", tpath(tid, "/findings"), NULL, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(tid, "/findings"), other_admin, NULL, &r);
	h_resp_free(&r);
	/* the other tenant sees its one finding only */
	h_expect(200, "GET", tpath(other, "/findings"), other_admin, NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 1);
	assert_string_equal(vg_json_get_str(r.json, "items[0].id", ""),
	                    other_finding);
	h_resp_free(&r);
	/* its finding through this tenant's path: not found, not changed */
	snprintf(p, sizeof(p), "/findings/%s", other_finding);
	h_expect(404, "PATCH", tpath(tid, p), admin, "{\"state\":\"accepted\"}",
	         &r);
	h_resp_free(&r);
	h_expect(404, "PATCH", tpath(tid, p), BOOTSTRAP_KEY,
	         "{\"state\":\"accepted\"}", &r);
	h_resp_free(&r);
	{
		char q[256], *v;

		snprintf(q, sizeof(q),
		         "SELECT state FROM vigil.findings WHERE id = '%s'",
		         other_finding);
		v = h_sql(q);
		assert_string_equal(v, "open");
		free(v);
	}
}

/* The list (binary rows) renders every field as the database holds it,
 * timestamps in RFC 3339 UTC, and the same way as a single finding
 * (text rows, the triage reply). */
static void test_findings_fields(void **state)
{
	struct h_resp r, one;
	char p[256], q[2048], *v;
	const json_t *it;
	size_t i;

	(void)state;
	h_expect(200, "GET",
	         tpath(tid, "/findings?limit=7&severity=high&state=open"),
	         analyst, NULL, &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "items")), 7);
	json_array_foreach(json_object_get(r.json, "items"), i, it)
	{
		const char *fs = vg_json_get_str(it, "first_seen", ""),
			   *ls = vg_json_get_str(it, "last_seen", "");
		const json_t *port = json_object_get(it, "port");
		char *ev = json_dumps(json_object_get(it, "evidence"),
		                      JSON_COMPACT);
		char pv[24] = "NULL";

		assert_true(vg_json_is_timestamp(fs));
		assert_true(vg_json_is_timestamp(ls));
		assert_non_null(strchr(fs, 'T'));
		assert_int_equal(fs[strlen(fs) - 1], 'Z');
		assert_true(json_is_integer(port) || json_is_null(port));
		if (json_is_integer(port))
			snprintf(pv, sizeof(pv), "%lld",
			         (long long)json_integer_value(port));
		snprintf(q, sizeof(q),
		         "SELECT count(*) FROM vigil.findings WHERE id = '%s'"
		         " AND run_id = '%s' AND batch_id = '%s' AND host ="
		         " '%s' AND port IS NOT DISTINCT FROM %s AND protocol"
		         " = '%s' AND scanner = '%s' AND severity = '%s' AND fingerprint"
		         " = '%s' AND title = '%s' AND evidence = '%s'::jsonb"
		         " AND state = '%s' AND first_seen = '%s' AND"
		         " last_seen = '%s'",
		         vg_json_get_str(it, "id", ""),
		         vg_json_get_str(it, "run_id", ""),
		         vg_json_get_str(it, "batch_id", ""),
		         vg_json_get_str(it, "host", ""), pv,
		         vg_json_get_str(it, "protocol", ""),
		         vg_json_get_str(it, "scanner", ""),
		         vg_json_get_str(it, "severity", ""),
		         vg_json_get_str(it, "fingerprint", ""),
		         vg_json_get_str(it, "title", ""), ev,
		         vg_json_get_str(it, "state", ""), fs, ls);
		free(ev);
		v = h_sql(q);
		if (!v || strcmp(v, "1") != 0)
			fail_msg("finding %zu differs from its row: %s", i, q);
		free(v);
	}
	/* one finding as the triage reply shows it: the same fields */
	it = json_array_get(json_object_get(r.json, "items"), 0);
	snprintf(p, sizeof(p), "/findings/%s", vg_json_get_str(it, "id", ""));
	h_expect(200, "PATCH", tpath(tid, p), analyst,
	         "{\"state\":\"open\"}", &one);
	assert_true(json_equal(one.json, (json_t *)it));
	h_resp_free(&one);
	h_resp_free(&r);

	/* edges of the binary timestamp: before 2000 (negative, with a
	 * fraction) and infinity, which sorts first */
	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.findings (tenant_id, run_id, batch_id,"
	         " host, scanner, severity, fingerprint, title, state,"
	         " first_seen, last_seen) SELECT tenant_id, run_id, 'b-edge',"
	         " '10.9.9.9', 'tcp', 'info', 'fp-edge', 'edge', 'accepted',"
	         " '1999-12-31 23:59:59.5+00', 'infinity' FROM vigil.findings"
	         " WHERE tenant_id = '%s' LIMIT 1 RETURNING id",
	         tid);
	v = h_sql(q);
	assert_non_null(v);
	h_expect(200, "GET",
	         tpath(tid, "/findings?limit=1&severity=info&state=accepted"),
	         analyst, NULL, &r);
	it = json_array_get(json_object_get(r.json, "items"), 0);
	assert_string_equal(vg_json_get_str(it, "id", ""), v);
	assert_string_equal(vg_json_get_str(it, "first_seen", ""),
	                    "1999-12-31T23:59:59.5Z");
	assert_string_equal(vg_json_get_str(it, "last_seen", ""), "infinity");
	snprintf(p, sizeof(p), "/findings/%s", v);
	h_expect(200, "PATCH", tpath(tid, p), analyst,
	         "{\"state\":\"accepted\"}", &one);
	assert_true(json_equal(one.json, (json_t *)it));
	h_resp_free(&one);
	h_resp_free(&r);
	snprintf(q, sizeof(q), "DELETE FROM vigil.findings WHERE id = '%s'", v);
	free(h_sql(q));
	free(v);
}

static void test_findings_triage(void **state)
{
	struct h_resp r;
	char id[37], p[256], q[512], *v;

	(void)state;
	h_expect(200, "GET", tpath(tid, "/findings?limit=1&severity=critical"),
	         viewer, NULL, &r);
	snprintf(id, sizeof(id), "%s",
	         vg_json_get_str(r.json, "items[0].id", ""));
	h_resp_free(&r);
	snprintf(p, sizeof(p), "/findings/%s", id);
	h_expect(403, "PATCH", tpath(tid, p), viewer,
	         "{\"state\":\"resolved\"}", &r);
	h_resp_free(&r);
	h_expect(403, "PATCH", tpath(tid, p), agent, "{\"state\":\"resolved\"}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "PATCH", tpath(tid, p), analyst, "{\"state\":\"fixed\"}",
	         &r);
	h_resp_free(&r);
	h_expect(422, "PATCH", tpath(tid, p), analyst,
	         "{\"state\":\"resolved\",\"note\":\"x\"}", &r);
	h_resp_free(&r);
	h_expect(200, "PATCH", tpath(tid, p), analyst,
	         "{\"state\":\"false_positive\"}", &r);
	assert_string_equal(vg_json_get_str(r.json, "id", ""), id);
	assert_string_equal(vg_json_get_str(r.json, "state", ""),
	                    "false_positive");
	h_resp_free(&r);
	h_expect(200, "PATCH", tpath(tid, p), admin, "{\"state\":\"resolved\"}",
	         &r);
	h_resp_free(&r);
	h_expect(404, "PATCH",
	         tpath(tid, "/findings/00000000-0000-4000-8000-00000000beef"),
	         admin, "{\"state\":\"resolved\"}", &r);
	h_resp_free(&r);
	h_expect(404, "PATCH", tpath(tid, "/findings/nope"), admin,
	         "{\"state\":\"resolved\"}", &r);
	h_resp_free(&r);
	/* both changes audited with what they changed */
	snprintf(q, sizeof(q),
	         "SELECT string_agg(details->>'from' || '>' ||"
	         " (details->>'to'), ' ' ORDER BY seq) FROM vigil.audit_log"
	         " WHERE tenant_id = '%s' AND action = 'finding.triage' AND"
	         " object_id = '%s'",
	         tid, id);
	v = h_sql(q);
	assert_string_equal(v, "open>false_positive false_positive>resolved");
	free(v);
	/* and the filter sees it */
	h_expect(200, "GET", tpath(tid, "/findings?state=resolved"), viewer,
	         NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 1);
	h_resp_free(&r);
}

/* The list's query, as the gateway's role runs it under row-level
 * security: a backwards scan of findings_tenant_rank bounded by the
 * cursor, no sort. */
static void test_findings_plan(void **state)
{
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_pool *pool = NULL;
	struct vg_db_conn *c = NULL;
	struct vg_db_res *res = NULL;
	struct vg_err err = {0};
	struct vg_buf plan;
	char *ci = gw_config_conninfo(&H.cfg, 1);

	(void)state;
	free(h_sql("ANALYZE vigil.findings"));
	o.conninfo = ci;
	vg_buf_init(&plan, 0);
	assert_int_equal(vg_db_pool_new(&o, &pool, &err), VG_OK);
	assert_int_equal(vg_db_acquire(pool, &c, &err), VG_OK);
	assert_int_equal(vg_db_begin(c, tid, VG_DB_TX_READ_ONLY, &err), VG_OK);
	if (vg_db_exec(c,
	               "EXPLAIN SELECT id FROM findings WHERE tenant_id ="
	               " current_tenant() AND (severity_rank, last_seen, id)"
	               " < (3::smallint, '2026-01-02T00:05:00Z'::"
	               "timestamptz, '00000000-0000-4000-8000-000000000001'"
	               "::uuid) ORDER BY severity_rank DESC, last_seen DESC,"
	               " id DESC LIMIT 101",
	               0, NULL, &res, &err) != VG_OK)
		fail_msg("explain: %s", err.msg);
	for (int i = 0; i < vg_db_res_rows(res); i++)
		vg_buf_appendf(&plan, "%s\n", vg_db_res_get(res, i, 0));
	/* the cursor bounds the scan (Index Cond), not a filter */
	if (!strstr(vg_buf_str(&plan), "Scan Backward using "
	                               "findings_tenant_rank") ||
	    !strstr(vg_buf_str(&plan), "Index Cond: ((tenant_id = ") ||
	    !strstr(vg_buf_str(&plan), "AND (ROW(severity_rank, last_seen,"
	                               " id) < ROW(") ||
	    strstr(vg_buf_str(&plan), "Sort") ||
	    strstr(vg_buf_str(&plan), "Filter: (ROW"))
		fail_msg("plan:\n%s", vg_buf_str(&plan));
	vg_db_res_free(res);
	vg_db_rollback(c);
	vg_db_release(c);
	vg_db_pool_free(pool);
	vg_buf_cleanup(&plan);
	free(ci);
}

/* The unfiltered list's statements run from their generic plan, which
 * walks the rank index in order: no planning per request. */
static void test_findings_generic_plans(void **state)
{
	static const unsigned masks[] = {0, GW_FINDINGS_CURSOR};
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_pool *pool = NULL;
	struct vg_db_conn *c = NULL;
	struct vg_db_res *res = NULL;
	struct vg_err err = {0};
	char *ci = gw_config_conninfo(&H.cfg, 1), q[256], *v = NULL;

	(void)state;
	o.conninfo = ci;
	assert_int_equal(vg_db_pool_new(&o, &pool, &err), VG_OK);
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		const struct vg_db_stmt *st = gw_findings_stmt(masks[m]);
		const char *first[] = {"51"},
			   *next[] = {"3", "2026-01-02T00:05:00Z",
		                      "00000000-0000-4000-8000-000000000001",
		                      "51"};

		assert_non_null(st);
		assert_int_equal(st->nparams, m ? 4 : 1);
		assert_true(st->generic);
		for (int i = 0; i < 8; i++) {
			struct vg_db_step s = {.st = st,
			                       .params = m ? next : first,
			                       .binary = 1};

			if (vg_db_read(pool, tid, &s, 1, &err) != VG_OK)
				fail_msg("%s: %s", st->name, err.msg);
			assert_true(vg_db_res_binary(s.res));
			vg_db_res_free(s.res);
		}
		assert_int_equal(vg_db_acquire(pool, &c, &err), VG_OK);
		snprintf(q, sizeof(q),
		         "SELECT generic_plans >= 8 AND custom_plans = 0 FROM"
		         " pg_prepared_statements WHERE name = '%s'",
		         st->name);
		assert_int_equal(vg_db_query_value(c, q, 0, NULL, &v, &err),
		                 VG_OK);
		if (strcmp(v, "t") != 0)
			fail_msg("%s is planned on every run", st->name);
		free(v);
		/* and that generic plan reads the rank index in order */
		assert_int_equal(vg_db_begin(c, tid, VG_DB_TX_READ_ONLY, &err),
		                 VG_OK);
		assert_int_equal(vg_db_exec(c,
		                            "SET LOCAL plan_cache_mode ="
		                            " force_generic_plan",
		                            0, NULL, NULL, &err),
		                 VG_OK);
		snprintf(q, sizeof(q), "EXPLAIN EXECUTE %s(%s)", st->name,
		         m ? "'3', '2026-01-02T00:05:00Z', "
		             "'00000000-0000-4000-8000-000000000001', '51'"
		           : "'51'");
		if (vg_db_exec(c, q, 0, NULL, &res, &err) != VG_OK)
			fail_msg("explain: %s", err.msg);
		{
			struct vg_buf plan;

			vg_buf_init(&plan, 0);
			for (int i = 0; i < vg_db_res_rows(res); i++)
				vg_buf_appendf(&plan, "%s\n",
				               vg_db_res_get(res, i, 0));
			if (!strstr(vg_buf_str(&plan), "Index Scan Backward "
			                               "using findings_tenant_rank") ||
			    strstr(vg_buf_str(&plan), "Sort"))
				fail_msg("%s plan:\n%s", st->name,
				         vg_buf_str(&plan));
			vg_buf_cleanup(&plan);
		}
		vg_db_res_free(res);
		vg_db_rollback(c);
		vg_db_release(c);
	}
	vg_db_pool_free(pool);
	free(ci);
}

/* ------------------------------------------------------------------ */
/* Reports                                                              */
/* ------------------------------------------------------------------ */

static char rrun[4][37], rep_html[37], rep_json[37], rep_pdf[37],
	rep_pending[37], rep_failed[37], other_rep[37];

/* A report row made in SQL (as the worker and the brain write them). */
static void sql_report(const char *t, const char *run, const char *cols,
                       const char *vals, char *id)
{
	char q[1024], *v;

	snprintf(q, sizeof(q),
	         "INSERT INTO vigil.reports (tenant_id, run_id, kind, %s)"
	         " VALUES ('%s', '%s', 'run', %s) RETURNING id",
	         cols, t, run, vals);
	v = h_sql(q);
	snprintf(id, 37, "%s", v);
	free(v);
}

static void test_reports_setup(void **state)
{
	char orun[37];

	(void)state;
	for (int i = 0; i < 4; i++) {
		char job[32];

		snprintf(job, sizeof(job), "reports-%d", i);
		sql_run(tid, job, rrun[i]);
	}
	sql_run(other, "reports-other", orun);
	sql_report(tid, rrun[0],
	           "format, state, summary, content, content_type",
	           "'json', 'ready', '{\"total\":3,\"critical\":1}',"
	           " convert_to('<!doctype html><h1>Run</h1>', 'UTF8'),"
	           " 'text/html; charset=utf-8'",
	           rep_html);
	sql_report(tid, rrun[1], "format, state, summary",
	           "'json', 'ready', '{\"total\":0}'", rep_json);
	sql_report(tid, rrun[2], "format, state, content",
	           "'pdf', 'ready', '\\x255044460a00ff01'::bytea", rep_pdf);
	sql_report(tid, rrun[3], "format, state", "'json', 'pending'",
	           rep_pending);
	{
		/* a second report kind for the same run: the list shows all */
		char q[512], *v;

		snprintf(q, sizeof(q),
		         "INSERT INTO vigil.reports (tenant_id, run_id, kind,"
		         " state, error) VALUES ('%s', '%s', 'diff', 'failed',"
		         " 'no previous run') RETURNING id",
		         tid, rrun[0]);
		v = h_sql(q);
		snprintf(rep_failed, sizeof(rep_failed), "%s", v);
		free(v);
	}
	sql_report(other, orun, "format, state, content",
	           "'html', 'ready', convert_to('<p>other</p>', 'UTF8')",
	           other_rep);
}

static void test_reports_list_and_get(void **state)
{
	struct h_resp r;
	json_t *ids;
	int pages;
	char q[512], p[256];

	(void)state;
	ids = walk(tpath(tid, "/reports"), viewer, 2, &pages);
	assert_int_equal(json_array_size(ids), 5);
	assert_int_equal(pages, 3);
	snprintf(q, sizeof(q),
	         "SELECT string_agg(id::text, ',' ORDER BY created_at DESC,"
	         " id DESC) FROM vigil.reports WHERE tenant_id = '%s'",
	         tid);
	expect_order(ids, q);
	json_decref(ids);
	snprintf(p, sizeof(p), "/reports?run_id=%s", rrun[0]);
	ids = walk(tpath(tid, p), viewer, 50, &pages);
	assert_int_equal(json_array_size(ids), 2);
	json_decref(ids);
	ids = walk(tpath(tid, "/reports?state=ready"), viewer, 50, &pages);
	assert_int_equal(json_array_size(ids), 3);
	json_decref(ids);
	h_expect(200, "GET", tpath(tid, "/reports?state=pending"), analyst,
	         NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "items[0].id", ""),
	                    rep_pending);
	/* no summaries in the list */
	assert_null(vg_json_get(r.json, "items[0].summary"));
	h_resp_free(&r);
	expect_bad_request(tpath(tid, "/reports?state=done"), viewer);
	expect_bad_request(tpath(tid, "/reports?run_id=1"), viewer);
	expect_bad_request(tpath(tid, "/reports?cursor=AAAA"), viewer);

	/* one report: status and summary */
	snprintf(p, sizeof(p), "/reports/%s", rep_html);
	h_expect(200, "GET", tpath(tid, p), viewer, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "ready");
	assert_string_equal(vg_json_get_str(r.json, "run_id", ""), rrun[0]);
	assert_int_equal(vg_json_get_int(r.json, "summary.critical", 0), 1);
	assert_int_equal(vg_json_get_int(r.json, "size", 0), 27);
	assert_string_equal(vg_json_get_str(r.json, "content_type", ""),
	                    "text/html; charset=utf-8");
	h_resp_free(&r);
	snprintf(p, sizeof(p), "/reports/%s", rep_failed);
	h_expect(200, "GET", tpath(tid, p), viewer, NULL, &r);
	assert_string_equal(vg_json_get_str(r.json, "error", ""),
	                    "no previous run");
	assert_true(json_is_null(json_object_get(r.json, "size")));
	h_resp_free(&r);
	/* roles and tenants */
	h_expect(403, "GET", tpath(tid, p), agent, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(tid, p), other_admin, NULL, &r);
	h_resp_free(&r);
	snprintf(p, sizeof(p), "/reports/%s", other_rep);
	h_expect(404, "GET", tpath(tid, p), admin, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "GET", tpath(other, p), other_admin, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(tid, "/reports/x"), admin, NULL, &r);
	h_resp_free(&r);
}

static void expect_content(const char *id, const char *type, const char *bytes,
                           size_t len, const char *ext)
{
	struct h_resp r;
	char p[256], v[256], want[128];

	snprintf(p, sizeof(p), "/reports/%s/content", id);
	h_expect(200, "GET", tpath(tid, p), viewer, NULL, &r);
	assert_true(h_header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, type);
	assert_int_equal(r.body.len, len);
	assert_memory_equal(r.body.data, bytes, len);
	assert_true(h_header(&r, "Content-Disposition", v, sizeof(v)));
	snprintf(want, sizeof(want), "attachment; filename=\"report-%s.%s\"",
	         id, ext);
	assert_string_equal(v, want);
	assert_true(h_header(&r, "Content-Security-Policy", v, sizeof(v)));
	assert_non_null(strstr(v, "sandbox"));
	h_resp_free(&r);
}

static void test_reports_content(void **state)
{
	struct h_resp r;
	char p[256];

	(void)state;
	expect_content(rep_html, "text/html; charset=utf-8",
	               "<!doctype html><h1>Run</h1>", 27, "html");
	/* a JSON report without rendered content: its summary */
	expect_content(rep_json, "application/json", "{\"total\": 0}", 12,
	               "json");
	/* bytes, NUL included, with the format's media type */
	expect_content(rep_pdf, "application/pdf", "%PDF\n\0\xff\x01", 8,
	               "pdf");
	/* not ready */
	snprintf(p, sizeof(p), "/reports/%s/content", rep_pending);
	h_expect(409, "GET", tpath(tid, p), viewer, NULL, &r);
	assert_string_equal(h_err_code(&r), "conflict");
	h_resp_free(&r);
	snprintf(p, sizeof(p), "/reports/%s/content", rep_failed);
	h_expect(409, "GET", tpath(tid, p), viewer, NULL, &r);
	h_resp_free(&r);
	/* another tenant's */
	snprintf(p, sizeof(p), "/reports/%s/content", other_rep);
	h_expect(404, "GET", tpath(tid, p), admin, NULL, &r);
	h_resp_free(&r);
	h_expect(404, "GET", tpath(tid, p), BOOTSTRAP_KEY, NULL, &r);
	h_resp_free(&r);
	h_expect(200, "GET", tpath(other, p), BOOTSTRAP_KEY, NULL, &r);
	assert_string_equal(vg_buf_str(&r.body), "<p>other</p>");
	h_resp_free(&r);
	snprintf(p, sizeof(p), "/reports/%s/content", rep_html);
	h_expect(403, "GET", tpath(tid, p), agent, NULL, &r);
	h_resp_free(&r);
}

static const struct vg_queue_type qtypes[] = {
	{"ingest", 8, 1000, 300000},
	{"finalize", 12, 5000, 600000},
	{"report", 8, 2000, 300000},
};

/* The next task in the stream, claimed as a worker would (and acked). */
static struct vg_task *claim(void)
{
	struct vg_queue_opts o = {.host = "127.0.0.1",
	                          .port = H.redis.port,
	                          .consumer = "test-scans",
	                          .types = qtypes,
	                          .ntypes = 3};
	struct vg_queue *q = NULL;
	struct vg_task *t[1] = {NULL};
	struct vg_err err = {0};
	int n = 0;

	if (vg_queue_new(&o, &q, &err) != VG_OK ||
	    vg_queue_claim(q, t, 1, 2000, &n, &err) != VG_OK)
		fail_msg("claim: %s", err.msg);
	if (n != 1)
		fail_msg("no task in the stream");
	if (vg_queue_ack(q, t[0], &err) != VG_OK)
		fail_msg("ack: %s", err.msg);
	vg_queue_free(q);
	return t[0];
}

static long long audit_count(const char *action)
{
	char q[256], *v;
	long long n;

	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM vigil.audit_log WHERE tenant_id = '%s'"
	         " AND action = '%s'",
	         tid, action);
	v = h_sql(q);
	n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

static void test_reports_request(void **state)
{
	struct h_resp r;
	struct vg_task *t;
	char body[128], q[256], retry[16], running[37];

	(void)state;
	/* a finished run without a report: the worker's report task */
	snprintf(body, sizeof(body), "{\"run_id\":\"%s\"}", frun[1]);
	h_req_ex(H.port, "POST", tpath(tid, "/reports"), viewer, body,
	         strlen(body), NULL, "X-Request-ID: report-req-1", &r);
	if (r.status != 202)
		fail_msg("report: %ld %s", r.status, vg_buf_str(&r.body));
	assert_string_equal(vg_json_get_str(r.json, "run_id", ""), frun[1]);
	assert_true(json_is_null(json_object_get(r.json, "report_id")));
	t = claim();
	assert_string_equal(t->id, vg_json_get_str(r.json, "task_id", ""));
	assert_string_equal(t->type, "report");
	assert_string_equal(t->tenant, tid);
	assert_string_equal(t->request_id, "report-req-1");
	assert_string_equal(vg_json_get_str(t->payload, "tenant_id", ""), tid);
	assert_string_equal(vg_json_get_str(t->payload, "run_id", ""), frun[1]);
	assert_int_equal(json_object_size(t->payload), 2);
	vg_task_free(t);
	h_resp_free(&r);
	assert_int_equal(audit_count("report.request"), 1);
	/* a run whose report exists: named in the reply */
	snprintf(body, sizeof(body), "{\"run_id\":\"%s\"}", rrun[0]);
	h_expect(202, "POST", tpath(tid, "/reports"), analyst, body, &r);
	assert_string_equal(vg_json_get_str(r.json, "report_id", ""), rep_html);
	h_resp_free(&r);
	vg_task_free(claim());

	/* a run still running */
	sql_run(tid, "reports-running", running);
	snprintf(q, sizeof(q),
	         "UPDATE vigil.scan_runs SET state = 'running' WHERE id ="
	         " '%s'",
	         running);
	free(h_sql(q));
	snprintf(body, sizeof(body), "{\"run_id\":\"%s\"}", running);
	h_expect(409, "POST", tpath(tid, "/reports"), admin, body, &r);
	h_resp_free(&r);
	/* no such run here; another tenant's run */
	h_expect(404, "POST", tpath(tid, "/reports"), admin,
	         "{\"run_id\":\"00000000-0000-4000-8000-00000000beef\"}", &r);
	h_resp_free(&r);
	snprintf(body, sizeof(body), "{\"run_id\":\"%s\"}", other_run);
	h_expect(404, "POST", tpath(tid, "/reports"), admin, body, &r);
	h_resp_free(&r);
	h_expect(422, "POST", tpath(tid, "/reports"), admin,
	         "{\"run_id\":\"r1\"}", &r);
	h_resp_free(&r);
	h_expect(422, "POST", tpath(tid, "/reports"), admin, "{}", &r);
	h_resp_free(&r);
	snprintf(body, sizeof(body), "{\"run_id\":\"%s\"}", frun[0]);
	h_expect(403, "POST", tpath(tid, "/reports"), agent, body, &r);
	h_resp_free(&r);
	h_expect(404, "POST", tpath(other, "/reports"), admin, body, &r);
	h_resp_free(&r);
	assert_int_equal(audit_count("report.request"), 2);

	/* the queue refusing writes: 503, nothing audited, nothing queued */
	free(h_redis("CONFIG SET maxmemory-policy noeviction"));
	free(h_redis("CONFIG SET maxmemory 1"));
	h_expect(503, "POST", tpath(tid, "/reports"), admin, body, &r);
	free(h_redis("CONFIG SET maxmemory 0"));
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	h_resp_free(&r);
	assert_int_equal(audit_count("report.request"), 2);
	{
		char *v = h_redis("XLEN {vigil}:tasks");

		assert_string_equal(v, "0");
		free(v);
	}
}

static void test_scan_jobs_gauge(void **state)
{
	double canceled = -1, failed = -1, running = -1;

	(void)state;
	/* refreshed by the health thread every VIGIL_SCAN_JOBS_REFRESH;
	 * running: the run test_reports_request left running */
	for (int i = 0; i < 100; i++) {
		canceled = metric("vigil_scan_jobs{state=\"canceled\"}");
		failed = metric("vigil_scan_jobs{state=\"failed\"}");
		running = metric("vigil_scan_jobs{state=\"running\"}");
		if (canceled == 1 && failed == 50 && running == 1)
			break;
		usleep(100 * 1000);
	}
	if (canceled != 1 || failed != 50 || running != 1)
		fail_msg("vigil_scan_jobs: canceled %g, failed %g, running %g;"
		         " want 1, 50, 1",
		         canceled, failed, running);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_create_and_get),
		cmocka_unit_test(test_runs_emergency_stop),
		cmocka_unit_test(test_runs_cancel),
		cmocka_unit_test(test_runs_list),
		cmocka_unit_test(test_findings_setup),
		cmocka_unit_test(test_findings_pages),
		cmocka_unit_test(test_findings_filters),
		cmocka_unit_test(test_findings_access),
		cmocka_unit_test(test_findings_fields),
		cmocka_unit_test(test_findings_triage),
		cmocka_unit_test(test_findings_plan),
		cmocka_unit_test(test_findings_generic_plans),
		cmocka_unit_test(test_reports_setup),
		cmocka_unit_test(test_reports_list_and_get),
		cmocka_unit_test(test_reports_content),
		cmocka_unit_test(test_reports_request),
		cmocka_unit_test(test_scan_jobs_gauge),
	};

	return cmocka_run_group_tests(tests, setup, h_teardown_all);
}
