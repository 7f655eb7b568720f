/* test_scanpolicy.c - the ScanPolicy controller's pure parts: when a run is
 * due (a controllable clock), Job names, and the agent Job it renders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "scanpolicy.h"
#include "vigil/json.h"

static int64_t utc(int y, int mo, int d, int h, int mi)
{
	return vg_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static void due(const char *expr, const char *zone, int64_t last, int64_t now,
		int64_t deadline, struct scanpolicy_due *out)
{
	struct vg_cron c;
	struct vg_tz *tz = NULL;
	struct vg_err err;

	assert_int_equal(vg_cron_parse(expr, &c, &err), VG_OK);
	assert_int_equal(vg_tz_load(zone, &tz, &err), VG_OK);
	scanpolicy_due(&c, tz, last, now, deadline, out);
	vg_tz_free(tz);
}

static void test_due(void **state)
{
	struct scanpolicy_due d;

	(void)state;
	/* three times passed since the last run: the latest is due */
	due("*/5 * * * *", "UTC", utc(2026, 11, 28, 10, 0),
	    utc(2026, 11, 28, 10, 17), -1, &d);
	assert_int_equal(d.when, utc(2026, 11, 28, 10, 15));
	assert_int_equal(d.missed, 3);
	assert_int_equal(d.next, utc(2026, 11, 28, 10, 20));
	assert_false(d.too_late);
	/* two minutes late, a one-minute deadline: skipped */
	due("*/5 * * * *", "UTC", utc(2026, 11, 28, 10, 0),
	    utc(2026, 11, 28, 10, 17), 60, &d);
	assert_true(d.too_late);
	due("*/5 * * * *", "UTC", utc(2026, 11, 28, 10, 0),
	    utc(2026, 11, 28, 10, 17), 300, &d);
	assert_false(d.too_late);
	/* nothing since the last run */
	due("*/5 * * * *", "UTC", utc(2026, 11, 28, 10, 15),
	    utc(2026, 11, 28, 10, 17), -1, &d);
	assert_int_equal(d.when, 0);
	assert_int_equal(d.missed, 0);
	assert_int_equal(d.next, utc(2026, 11, 28, 10, 20));
	/* exactly at a schedule time: due now */
	due("*/5 * * * *", "UTC", utc(2026, 11, 28, 10, 15),
	    utc(2026, 11, 28, 10, 20), -1, &d);
	assert_int_equal(d.when, utc(2026, 11, 28, 10, 20));
	assert_int_equal(d.missed, 1);
	/* a year down, every minute: only the latest, "too many" */
	due("* * * * *", "UTC", utc(2025, 11, 28, 10, 0),
	    utc(2026, 11, 28, 10, 17) + 30, -1, &d);
	assert_int_equal(d.when, utc(2026, 11, 28, 10, 17));
	assert_true(d.missed > SCANPOLICY_MAX_MISSED);
	/* a monthly schedule last run long ago */
	due("0 3 1 * *", "Europe/Berlin", utc(2020, 1, 1, 0, 0),
	    utc(2026, 11, 28, 10, 17), -1, &d);
	assert_int_equal(d.when, utc(2026, 11, 1, 2, 0)); /* 03:00 CET */
	assert_int_equal(d.next, utc(2026, 12, 1, 2, 0));
	/* a schedule that never fires */
	due("0 0 30 2 *", "UTC", utc(2026, 1, 1, 0, 0),
	    utc(2026, 11, 28, 10, 17), -1, &d);
	assert_int_equal(d.when, 0);
	assert_int_equal(d.next, 0);
}

static void test_job_names(void **state)
{
	char a[64], b[64], c[64];
	const char *longname = "a-very-long-scan-policy-name-that-goes-on-and-on-"
			       "and-on-beyond-any-label-limit";

	(void)state;
	assert_int_equal(scanpolicy_job_name("web", "schedule",
					     utc(2026, 11, 28, 10, 15), NULL, a,
					     sizeof(a)),
			 VG_OK);
	snprintf(b, sizeof(b), "web-%lld",
		 (long long)(utc(2026, 11, 28, 10, 15) / 60));
	assert_string_equal(a, b);
	assert_int_equal(scanpolicy_job_name("web", "once", 0, NULL, a,
					     sizeof(a)),
			 VG_OK);
	assert_string_equal(a, "web-once");
	scanpolicy_job_name("web", "manual", 0, "2026-11-28T10:00", a,
			    sizeof(a));
	scanpolicy_job_name("web", "manual", 0, "2026-11-28T10:01", b,
			    sizeof(b));
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, "web-m", 5), 0);
	scanpolicy_job_name("web", "manual", 0, "2026-11-28T10:00", c,
			    sizeof(c));
	assert_string_equal(a, c); /* the same request: the same Job */
	/* long names: shortened with a hash, within a label value */
	assert_int_equal(scanpolicy_job_name(longname, "schedule",
					     utc(2099, 12, 31, 23, 59), NULL,
					     a, sizeof(a)),
			 VG_OK);
	assert_true(strlen(a) <= 63);
	scanpolicy_job_name("a-very-long-scan-policy-name-that-goes-on-and-on-"
			    "and-on-beyond-any-label-limiT",
			    "schedule", utc(2099, 12, 31, 23, 59), NULL, b,
			    sizeof(b));
	assert_string_not_equal(a, b);
	assert_int_equal(scanpolicy_job_name("web", "once", 0, NULL, a, 5),
			 VG_TOOLARGE);
}

static json_t *policy(void)
{
	json_error_t je;
	json_t *p = json_loads(
		"{\"apiVersion\":\"vigil.dev/v1alpha1\",\"kind\":\"ScanPolicy\","
		"\"metadata\":{\"name\":\"web\",\"namespace\":\"tenant-acme\","
		"\"uid\":\"u-1\"},"
		"\"spec\":{\"targets\":[\"10.0.0.0/24\",\"app.acme.example\"],"
		"\"excludeTargets\":[\"10.0.0.1\"],\"ports\":\"22,80,443\","
		"\"scanners\":[\"tcp\",\"tls\"],\"parallelism\":8,"
		"\"rateLimit\":{\"packetsPerSecond\":1000,"
		"\"perTargetPerSecond\":20},\"connectTimeoutMilliseconds\":1500,"
		"\"timeoutSeconds\":900,\"backoffLimit\":1,\"allowLoopback\":true,"
		"\"resources\":{\"requests\":{\"cpu\":\"50m\",\"memory\":\"32Mi\"},"
		"\"limits\":{\"cpu\":\"1\",\"memory\":\"128Mi\"}}}}",
		0, &je);

	assert_non_null(p);
	return p;
}

static void test_job(void **state)
{
	json_t *p = policy(), *job = NULL, *allowed;
	struct scanpolicy_run run = {
		.job_name = "web-29403675",
		.trigger = "schedule",
		.scheduled = utc(2026, 11, 28, 10, 15),
		.tenant = "acme",
		.tenant_id = "5f0c0a4e-0000-4000-8000-000000000001",
		.max_pods = 5,
		.image = "ghcr.io/vigil-dev/vigil-agent:1.0.0",
		.gateway_url = "http://vigil-gateway.vigil-system.svc:8080",
		.token_secret = "vigil-agent-token",
	};
	struct vg_err err;
	char *args;
	const json_t *c, *env, *e;
	size_t i;
	int seen = 0;

	(void)state;
	allowed = json_pack("[s,s]", "10.0.0.0/16", "*.acme.example");
	run.allowed = allowed;
	assert_int_equal(scanpolicy_job(p, &run, &job, &err), VG_OK);
	assert_string_equal(vg_json_get_str(job, "metadata.name", ""),
			    "web-29403675");
	assert_string_equal(vg_json_get_str(job, "metadata.annotations."
						 "vigil\\.dev/scheduled-time",
					    ""),
			    "");
	assert_string_equal(
		json_string_value(json_object_get(
			vg_json_get(job, "metadata.annotations"),
			SCANPOLICY_SCHEDULED_ANNOTATION)),
		"2026-11-28T10:15:00Z");
	/* parallelism 8 capped by the tenant's 5 pods */
	assert_int_equal(vg_json_get_int(job, "spec.completions", 0), 5);
	assert_int_equal(vg_json_get_int(job, "spec.parallelism", 0), 5);
	assert_string_equal(vg_json_get_str(job, "spec.completionMode", ""),
			    "Indexed");
	assert_int_equal(vg_json_get_int(job, "spec.activeDeadlineSeconds", 0),
			 900);
	assert_int_equal(vg_json_get_int(job, "spec.backoffLimit", 9), 1);
	c = vg_json_get(job, "spec.template.spec.containers[0]");
	assert_non_null(c);
	assert_string_equal(vg_json_get_str(c, "command[0]", ""),
			    SCANPOLICY_AGENT_PATH);
	args = json_dumps(json_object_get(c, "args"), JSON_COMPACT);
	/* the rate is the run's: 1000/s over 5 shards */
	assert_string_equal(
		args, "[\"--targets\",\"10.0.0.0/24,app.acme.example\","
		      "\"--exclude\",\"10.0.0.1\","
		      "\"--allowed\",\"10.0.0.0/16,*.acme.example\","
		      "\"--scanners\",\"tcp,tls\",\"--ports\",\"22,80,443\","
		      "\"--rate\",\"200\",\"--per-target-rate\",\"20\","
		      "\"--connect-timeout-ms\",\"1500\",\"--shards\",\"5\","
		      "\"--spool-dir\",\"/var/spool/vigil\","
		      "\"--allow-loopback\"]");
	free(args);
	env = json_object_get(c, "env");
	json_array_foreach(env, i, e)
	{
		const char *n = vg_json_get_str(e, "name", "");

		if (strcmp(n, "VIGIL_AGENT_TOKEN") == 0) {
			/* the token never appears in the Job itself */
			assert_null(json_object_get(e, "value"));
			assert_string_equal(
				vg_json_get_str(e, "valueFrom.secretKeyRef.name",
						""),
				"vigil-agent-token");
			seen |= 1;
		} else if (strcmp(n, "VIGIL_TENANT_ID") == 0) {
			assert_string_equal(vg_json_get_str(e, "value", ""),
					    run.tenant_id);
			seen |= 2;
		} else if (strcmp(n, "VIGIL_POLICY_UID") == 0) {
			assert_string_equal(vg_json_get_str(e, "value", ""),
					    "u-1");
			seen |= 4;
		} else if (strcmp(n, "VIGIL_GATEWAY_URL") == 0) {
			seen |= 8;
		}
	}
	assert_int_equal(seen, 15);
	/* restricted pod security, no API token */
	assert_false(vg_json_get_bool(job,
				      "spec.template.spec."
				      "automountServiceAccountToken",
				      1));
	assert_true(vg_json_get_bool(job,
				     "spec.template.spec.securityContext."
				     "runAsNonRoot",
				     0));
	assert_string_equal(vg_json_get_str(c, "securityContext.capabilities."
					       "drop[0]",
					    ""),
			    "ALL");
	assert_false(vg_json_get_bool(c,
				      "securityContext.allowPrivilegeEscalation",
				      1));
	assert_string_equal(vg_json_get_str(c, "resources.limits.cpu", ""), "1");
	json_decref(job);

	/* not ready to run: no gateway, no tenant id, no targets */
	run.gateway_url = NULL;
	assert_int_equal(scanpolicy_job(p, &run, &job, &err), VG_INVAL);
	assert_null(job);
	run.gateway_url = "http://gw";
	run.tenant_id = "";
	assert_int_equal(scanpolicy_job(p, &run, &job, &err), VG_INVAL);
	run.tenant_id = "id";
	json_object_set_new(json_object_get(p, "spec"), "targets",
			    json_array());
	assert_int_equal(scanpolicy_job(p, &run, &job, &err), VG_INVAL);
	assert_non_null(strstr(err.msg, "spec.targets"));
	json_decref(p);
	json_decref(allowed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_job_names),
		cmocka_unit_test(test_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
