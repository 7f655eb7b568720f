/* test_options.c - the flag/environment table of vigil-agent and the
 * checks across settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const env_names[] = {
	"VIGIL_TARGETS",	 "VIGIL_EXCLUDE",	 "VIGIL_PORTS",
	"VIGIL_SCANNERS",	 "VIGIL_ALLOWED_TARGETS", "VIGIL_ALLOW_LOOPBACK",
	"VIGIL_RATE",		 "VIGIL_PER_TARGET_RATE", "VIGIL_SHARDS",
	"JOB_COMPLETION_INDEX", "VIGIL_GATEWAY_URL",	 "VIGIL_AGENT_TOKEN",
	"VIGIL_TENANT_ID",	 "VIGIL_JOB_NAME",	 "VIGIL_RUN_TRIGGER",
	"VIGIL_SPOOL_DIR",	 "VIGIL_OUTPUT",	 "VIGIL_BATCH_SIZE",
};

static int clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	return 0;
}

static int parse(struct options *o, const char *const *args, int n,
		 struct vg_err *err)
{
	char *argv[32];

	argv[0] = (char *)"vigil-agent";
	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	return options_parse(o, n + 1, argv, err);
}

static void test_defaults(void **state)
{
	struct options o;
	struct vg_err err = {0};

	(void)state;
	assert_int_equal(parse(&o, NULL, 0, &err), VG_OK);
	assert_string_equal(o.ports, "1-1024");
	assert_string_equal(o.scanners, "tcp");
	assert_int_equal(o.rate, 1000);
	assert_int_equal(o.per_target_rate, 50);
	assert_int_equal(o.connect_timeout_ms, 2000);
	assert_int_equal(o.max_in_flight, 10000);
	assert_int_equal(o.shards, 1);
	assert_int_equal(o.shard, 0);
	assert_int_equal(o.batch_size, 500);
	assert_int_equal(o.estop_interval_ms, 1000);
	assert_string_equal(o.spool_dir, "/tmp/vigil-spool");
	assert_string_equal(o.trigger, "schedule");
	assert_int_equal(o.allow_loopback, 0);
	assert_null(o.allowed);
	options_cleanup(&o);
}

static void test_env_then_flags(void **state)
{
	struct options o;
	struct vg_err err = {0};
	const char *args[] = {"--rate", "5000", "--allow-loopback",
			      "--ports=22,443", "--targets", "10.0.0.0/24"};

	(void)state;
	setenv("VIGIL_RATE", "200", 1);
	setenv("VIGIL_PORTS", "80", 1);
	setenv("VIGIL_ALLOWED_TARGETS", "10.0.0.0/8", 1);
	setenv("VIGIL_SHARDS", "4", 1);
	setenv("JOB_COMPLETION_INDEX", "3", 1);
	setenv("VIGIL_ALLOW_LOOPBACK", "false", 1);
	assert_int_equal(parse(&o, args, 6, &err), VG_OK);
	assert_int_equal(o.rate, 5000); /* the flag wins */
	assert_string_equal(o.ports, "22,443");
	assert_string_equal(o.allowed, "10.0.0.0/8");
	assert_int_equal(o.shards, 4);
	assert_int_equal(o.shard, 3);
	assert_int_equal(o.allow_loopback, 1);
	options_cleanup(&o);
	clear_env(NULL);
}

static void test_bad_flags(void **state)
{
	static const struct {
		const char *args[3];
		int n;
		const char *msg;
	} cases[] = {
		{{"--rate", "0"}, 2, "--rate: \"0\" is not an integer in [1,"},
		{{"--rate", "fast"}, 2, "--rate: \"fast\""},
		{{"--ports"}, 1, "flag --ports needs a value"},
		{{"--bogus"}, 1, "unknown flag --bogus"},
		{{"--bogus=1"}, 1, "unknown flag --bogus"},
		{{"10.0.0.1"}, 1, "unexpected argument \"10.0.0.1\""},
		{{"--allow-loopback=maybe"}, 1, "want true or false"},
		{{"--max-in-flight", "-5"}, 2, "--max-in-flight"},
	};
	struct options o;
	struct vg_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		int rc = parse(&o, cases[i].args, cases[i].n, &err);

		if (rc != VG_INVAL || !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc,
				 err.msg, cases[i].msg);
		options_cleanup(&o);
	}
	setenv("VIGIL_PER_TARGET_RATE", "x", 1);
	assert_int_equal(parse(&o, NULL, 0, &err), VG_INVAL);
	assert_non_null(strstr(err.msg, "VIGIL_PER_TARGET_RATE"));
	options_cleanup(&o);
	clear_env(NULL);
}

static void test_check(void **state)
{
	static const struct {
		const char *args[12];
		int n;
		const char *msg; /* NULL: valid */
	} cases[] = {
		{{"--targets", "10.0.0.1", "--output", "-"}, 4,
		 "--allowed (VIGIL_ALLOWED_TARGETS) is required"},
		{{"--allowed", "10.0.0.0/8", "--output", "-"}, 4,
		 "--targets (VIGIL_TARGETS) is required"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1"}, 4,
		 "--output is required"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1", "--output",
		  "-"},
		 6, NULL},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1", "--output",
		  "-", "--shards", "2", "--shard", "2"},
		 10, "shard index 2"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1", "--output",
		  "-", "--trigger", "cron"},
		 8, "\"cron\" is not schedule"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1",
		  "--gateway", "ftp://x"},
		 6, "not an http"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1",
		  "--gateway", "http://gw:8080", "--tenant-id", "acme"},
		 8, "must be a UUID"},
		{{"--allowed", "10.0.0.0/8", "--targets", "10.0.0.1",
		  "--gateway", "http://gw:8080", "--tenant-id",
		  "0b4c2f8e-7d1a-4c3e-9f5b-2a6d8e1c4b7f"},
		 8, "VIGIL_AGENT_TOKEN or --token-file"},
	};
	struct options o;
	struct vg_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		memset(&err, 0, sizeof(err));
		assert_int_equal(parse(&o, cases[i].args, cases[i].n, &err),
				 VG_OK);
		rc = options_check(&o, &err);
		if (cases[i].msg == NULL && rc != VG_OK)
			fail_msg("case %zu: %s", i, err.msg);
		if (cases[i].msg &&
		    (rc != VG_INVAL || !strstr(err.msg, cases[i].msg)))
			fail_msg("case %zu: rc %d \"%s\", want \"%s\"", i, rc,
				 err.msg, cases[i].msg);
		options_cleanup(&o);
	}
}

static void test_token_and_job(void **state)
{
	char path[] = "/tmp/vigil-agent-token-XXXXXX";
	const char *args[] = {"--allowed",   "10.0.0.0/8",
			      "--targets",   "10.0.0.1",
			      "--gateway",   "http://gw:8080/",
			      "--tenant-id", "0b4c2f8e-7d1a-4c3e-9f5b-2a6d8e1c4b7f",
			      "--token-file", path};
	struct options o;
	struct vg_err err = {0};
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret-token\n", 13), 13);
	close(fd);
	assert_int_equal(parse(&o, args, 10, &err), VG_OK);
	/* no job name yet */
	assert_int_equal(options_check(&o, &err), VG_INVAL);
	assert_non_null(strstr(err.msg, "VIGIL_JOB_NAME"));
	/* the token never appears in a message */
	assert_null(strstr(err.msg, "s3cret"));
	assert_string_equal(o.token, "s3cret-token");
	options_cleanup(&o);

	setenv("VIGIL_JOB_NAME", "Bad/Name", 1);
	assert_int_equal(parse(&o, args, 10, &err), VG_OK);
	assert_int_equal(options_check(&o, &err), VG_INVAL);
	options_cleanup(&o);
	setenv("VIGIL_JOB_NAME", "web-scan-29012345", 1);
	assert_int_equal(parse(&o, args, 10, &err), VG_OK);
	assert_int_equal(options_check(&o, &err), VG_OK);
	options_cleanup(&o);
	unlink(path);
	clear_env(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clear_env),
		cmocka_unit_test_setup(test_env_then_flags, clear_env),
		cmocka_unit_test_setup(test_bad_flags, clear_env),
		cmocka_unit_test_setup(test_check, clear_env),
		cmocka_unit_test_setup(test_token_and_job, clear_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
