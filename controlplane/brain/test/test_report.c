/* test_report.c - report generation against a real PostgreSQL migrated by
 * lib's migrator: the stored report's numbers against COUNT(*) queries
 * and set operations on the findings, the diff across three runs of a
 * policy (ignoring other policies, other tenants and failed runs), the
 * trend, idempotency, and runs that are unknown or not finished. */
#include "harness.h"

#include "report_db.h"

static struct vg_db_pool *app; /* vigil_app: what the brain logs in as */
static char tenant[37], other_tenant[37];

static int setup(void **state)
{
	(void)state;
	if (start_services() != 0)
		return -1;
	app = pool_as("vigil_app", 4);
	make_tenant("acme", tenant);
	make_tenant("globex", other_tenant);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vg_db_pool_free(app);
	stop_services();
	return 0;
}

static void generate(const char *run, int force, struct report_outcome *o)
{
	struct report_params p = {.tenant = tenant,
	                          .run = run,
	                          .request_id = "req-report",
	                          .force = force};
	struct vg_err err = {0};

	if (report_generate(app, &p, o, &err) != VG_OK)
		fail_msg("generate %s: %s", run, err.msg);
}

/* A value of the run's report summary, by jsonb path ("{counts,total}"). */
static char *summary(const char *run, const char *path)
{
	const char *p[] = {run, path};

	return su_str("SELECT summary #>> $2::text[] FROM vigil.reports "
	              "WHERE run_id = $1 AND kind = 'run'",
	              2, p);
}

static void assert_summary(const char *run, const char *path, const char *want)
{
	char *got = summary(run, path);

	if (strcmp(got, want) != 0)
		fail_msg("summary %s: \"%s\", want \"%s\"", path, got, want);
	free(got);
}

/* The fingerprints of a classification list, sorted. */
static char *listed(const char *run, const char *cls)
{
	const char *p[] = {run, cls};

	return su_str("SELECT coalesce(string_agg(x->>'fingerprint', ' ' "
	              "ORDER BY x->>'fingerprint'), '') FROM vigil.reports r, "
	              "jsonb_array_elements(r.summary->'classification'->$2) x "
	              "WHERE r.run_id = $1 AND r.kind = 'run'",
	              2, p);
}

/* The same set from the findings: `op` of two runs' fingerprints. */
static char *set_of(const char *a, const char *op, const char *b)
{
	char sql[512];
	const char *p[] = {a, b};

	snprintf(sql, sizeof(sql),
	         "SELECT coalesce(string_agg(fingerprint, ' ' ORDER BY "
	         "fingerprint), '') FROM (SELECT fingerprint FROM "
	         "vigil.findings WHERE run_id = $1 %s SELECT fingerprint FROM "
	         "vigil.findings WHERE run_id = $2) s",
	         op);
	return su_str(sql, 2, p);
}

static void assert_same(char *got, char *want, const char *what)
{
	if (strcmp(got, want) != 0)
		fail_msg("%s: report \"%s\", database \"%s\"", what, got, want);
	free(got);
	free(want);
}

/* Run 1 {A,B,C,D}, run 2 {A,B,E}, a failed run {A}, run 3 {A,C,E,F};
 * another policy's and another tenant's runs around them. */
static void test_report_matches_database(void **state)
{
	(void)state;
	char r1[37], r2[37], rf[37], r3[37], other[37], foreign[37];
	const char *p3[] = {r3};
	struct report_outcome o;

	make_run(tenant, "uid-weekly", "tenant-acme", "weekly", 20,
	         "A:10.0.0.1:22:high:20;B:10.0.0.1:80:low:20;"
	         "C:8.8.8.8:3389:critical:20;D:10.0.0.9:443:info:20",
	         r1);
	make_run(tenant, "uid-weekly", "tenant-acme", "weekly", 10,
	         "A:10.0.0.1:22:high:10;B:10.0.0.1:80:low:10;"
	         "E:8.8.8.8:443:medium:10",
	         r2);
	make_run(tenant, "uid-weekly", "tenant-acme", "weekly", 5,
	         "A:10.0.0.1:22:high:5", rf);
	su_exec("UPDATE vigil.scan_runs SET state = 'failed' WHERE id = $1", 1,
	        (const char *[]){rf});
	make_run(tenant, "uid-other", "tenant-acme", "daily", 4,
	         "C:8.8.8.8:3389:critical:4;F:example.com:-:info:4;"
	         "G:10.0.0.7:21:low:4",
	         other);
	make_run(other_tenant, "uid-weekly", "tenant-acme", "weekly", 3,
	         "B:10.0.0.1:80:low:3;F:example.com:-:info:3", foreign);
	make_run(tenant, "uid-weekly", "tenant-acme", "weekly", 1,
	         "A:10.0.0.1:22:high:1;C:8.8.8.8:3389:critical:1;"
	         "E:8.8.8.8:443:medium:1;F:example.com:-:info:1",
	         r3);
	worker_hands_off(tenant, r3, "req-finalize");

	generate(r3, 0, &o);
	assert_false(o.skipped);
	assert_false(o.inserted); /* the worker's pending row, completed */
	assert_int_equal(o.findings, 4);

	/* the row */
	{
		char *row = su_str("SELECT state || ' ' || format || ' ' || "
		                   "content_type || ' ' || request_id || ' ' || "
		                   "(completed_at IS NOT NULL) || ' ' || "
		                   "content_encoding || ' ' || "
		                   "octet_length(content) FROM vigil.reports "
		                   "WHERE run_id = $1",
		                   1, p3);
		char want[128], *html;
		size_t zlen = 0;

		/* the content: one zstd frame of the rendered HTML */
		html = stored_html(r3, &zlen);
		assert_int_equal(strlen(html), o.html_bytes);
		assert_int_equal(zlen, o.content_bytes);
		assert_true(zlen < o.html_bytes / 2);
		assert_memory_equal(html, "<!DOCTYPE html>", 15);
		assert_non_null(strstr(html, "<svg"));
		assert_non_null(strstr(html, "</html>"));
		snprintf(want, sizeof(want),
		         "ready json text/html; charset=utf-8 req-finalize "
		         "true zstd %zu",
		         zlen);
		assert_string_equal(row, want);
		free(html);
		free(row);
	}
	/* counts = COUNT(*) on the run's findings */
	{
		char *want = su_str("SELECT count(*) FROM vigil.findings "
		                    "WHERE run_id = $1",
		                    1, p3);

		assert_summary(r3, "{counts,total}", want);
		free(want);
	}
	for (int s = 0; s < SEV_N; s++) {
		const char *sev = severity_name((enum severity)s);
		const char *p[] = {r3, sev};
		char path[64], *want;

		want = su_str("SELECT count(*) FROM vigil.findings "
		              "WHERE run_id = $1 AND severity = $2::text::"
		              "vigil.severity",
		              2, p);
		snprintf(path, sizeof(path), "{counts,by_severity,%s}", sev);
		assert_summary(r3, path, want);
		free(want);
	}
	/* the diff: exact sets, and the same sets as set operations on the
	 * findings of run 3, its previous finished run 2, and run 1 */
	assert_summary(r3, "{run,previous_run_id}", r2);
	assert_same(listed(r3, "new"), strdup("F"), "new");
	assert_same(listed(r3, "persisting"), strdup("A E"), "persisting");
	assert_same(listed(r3, "resolved"), strdup("B"), "resolved");
	assert_same(listed(r3, "regressed"), strdup("C"), "regressed");
	assert_same(listed(r3, "persisting"), set_of(r3, "INTERSECT", r2),
	            "persisting");
	assert_same(listed(r3, "resolved"), set_of(r2, "EXCEPT", r3),
	            "resolved");
	{
		const char *p[] = {r3, r2, r1};
		char *regressed = su_str(
			"SELECT coalesce(string_agg(fingerprint, ' ' ORDER BY "
			"fingerprint), '') FROM ((SELECT fingerprint FROM "
			"vigil.findings WHERE run_id = $1 EXCEPT SELECT "
			"fingerprint FROM vigil.findings WHERE run_id = $2) "
			"INTERSECT SELECT fingerprint FROM vigil.findings "
			"WHERE run_id = $3) s",
			3, p);

		assert_same(listed(r3, "regressed"), regressed, "regressed");
	}
	assert_summary(r3, "{counts,by_class,new}", "1");
	assert_summary(r3, "{counts,by_class,persisting}", "2");
	assert_summary(r3, "{counts,by_class,resolved}", "1");
	assert_summary(r3, "{counts,by_class,regressed}", "1");
	/* A was first seen 20 days ago, in run 1 */
	assert_summary(r3, "{classification,persisting,0,fingerprint}", "A");
	assert_summary(r3, "{classification,persisting,0,age_days}", "20");
	/* C: 10 x 1.5 x 1.25 x (1 + 0.5 x 20/90) = 20.83 */
	assert_summary(r3, "{classification,regressed,0,risk}", "20.83");
	assert_summary(r3, "{top_hosts,0,host}", "8.8.8.8");
	/* the trend: runs 1, 2, 3 (not the failed run); run 2's diff
	 * counted from the findings, as its report was never made */
	assert_summary(r3, "{trend,0,run_id}", r1);
	assert_summary(r3, "{trend,0,new}", "");
	assert_summary(r3, "{trend,1,run_id}", r2);
	assert_summary(r3, "{trend,1,total}", "3");
	{
		char *n = set_of(r2, "EXCEPT", r1), *res = set_of(r1, "EXCEPT", r2);

		assert_string_equal(n, "E");
		assert_string_equal(res, "C D");
		free(n);
		free(res);
	}
	assert_summary(r3, "{trend,1,new}", "1");
	assert_summary(r3, "{trend,1,resolved}", "2");
	assert_summary(r3, "{trend,2,run_id}", r3);
	assert_summary(r3, "{trend,2,new}", "2");
	assert_summary(r3, "{trend,2,resolved}", "1");
	assert_summary(r3, "{trend,2,by_severity,critical}", "1");
	assert_summary(r3, "{tenant,name}", "acme");
	assert_summary(r3, "{run,policy,name}", "weekly");

	/* run 1's report: the policy's first run, everything new */
	generate(r1, 0, &o);
	assert_true(o.inserted); /* no pending row before */
	assert_summary(r1, "{counts,by_class,new}", "4");
	assert_summary(r1, "{run,previous_run_id}", "");
	/* run 2's report now exists: run 3's trend takes its numbers */
	generate(r2, 0, &o);
	assert_summary(r2, "{counts,by_class,new}", "1");
	assert_summary(r2, "{counts,by_class,resolved}", "2");
	generate(r3, 1, &o);
	assert_summary(r3, "{trend,1,new}", "1");
	assert_summary(r3, "{trend,1,resolved}", "2");
}

/* Twice (and once more, forced) makes one report, in the worker's row. */
static void test_idempotent(void **state)
{
	(void)state;
	char r1[37], r2[37], *id;
	const char *p[] = {r2};
	struct report_outcome o;

	make_run(tenant, "uid-idem", "tenant-acme", "idem", 2,
	         "A:10.0.0.1:22:high:2", r1);
	make_run(tenant, "uid-idem", "tenant-acme", "idem", 1,
	         "A:10.0.0.1:22:high:1;B:10.0.0.2:23:low:1", r2);
	worker_hands_off(tenant, r2, "req-1");
	id = su_str("SELECT id FROM vigil.reports WHERE run_id = $1", 1, p);

	generate(r2, 0, &o);
	assert_false(o.skipped);
	assert_string_equal(o.report_id, id);
	generate(r2, 0, &o);
	assert_true(o.skipped);
	generate(r2, 1, &o);
	assert_false(o.skipped);
	assert_false(o.inserted);
	assert_string_equal(o.report_id, id);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);
	assert_summary(r2, "{counts,by_class,new}", "1");
	/* the worker's task delivered again after the report: no change */
	worker_hands_off(tenant, r2, "req-2");
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1 AND state = 'ready' "
	                        "AND request_id = 'req-1'",
	                        1, p),
	                 1);
	free(id);
}

static void test_unknown_and_unfinished_runs(void **state)
{
	(void)state;
	struct report_params p = {.tenant = tenant};
	struct report_outcome o;
	struct vg_err err = {0};
	char run[37], foreign[37];

	p.run = "00000000-0000-4000-8000-00000000abcd";
	assert_int_equal(report_generate(app, &p, &o, &err), VG_NOTFOUND);
	assert_non_null(strstr(err.msg, "not found"));
	/* another tenant's run is invisible (row-level security) */
	make_run(other_tenant, "", "x", "y", 1, "A:10.0.0.1:22:high:1",
	         foreign);
	p.run = foreign;
	assert_int_equal(report_generate(app, &p, &o, &err), VG_NOTFOUND);
	/* a run still running is retried later */
	make_run(tenant, "", "x", "y", 1, "A:10.0.0.1:22:high:1", run);
	su_exec("UPDATE vigil.scan_runs SET state = 'running' WHERE id = $1",
	        1, (const char *[]){run});
	p.run = run;
	assert_int_equal(report_generate(app, &p, &o, &err), VG_AGAIN);
	assert_non_null(strstr(err.msg, "still running"));
	p.run = "not-a-uuid";
	assert_int_equal(report_generate(app, &p, &o, &err), VG_INVAL);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, (const char *[]){run}),
	                 0);
}

/* Policies without a uid are matched by namespace and name. */
static void test_policy_without_uid(void **state)
{
	(void)state;
	char r1[37], r2[37], r3[37];
	struct report_outcome o;

	make_run(tenant, "", "ns-a", "nightly", 3, "A:10.0.0.1:22:high:3", r1);
	make_run(tenant, "", "ns-b", "nightly", 2, "B:10.0.0.1:22:high:2", r2);
	make_run(tenant, "", "ns-a", "nightly", 1, "B:10.0.0.1:22:high:1", r3);
	generate(r3, 0, &o);
	assert_summary(r3, "{run,previous_run_id}", r1);
	assert_same(listed(r3, "new"), strdup("B"), "new");
	assert_same(listed(r3, "resolved"), strdup("A"), "resolved");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_matches_database),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_unknown_and_unfinished_runs),
		cmocka_unit_test(test_policy_without_uid),
	};

	vg_log_init("brain-test");
	return cmocka_run_group_tests_name("brain reports", tests, setup,
	                                   teardown);
}
