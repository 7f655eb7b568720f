/* test_opts.c - settings tables: defaults, environment, flags, ranges,
 * errors that name the setting, usage, cleanup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vigil/opts.h"

struct settings {
	char *host, *token;
	int port, verbose, timeout_ms;
	double qps;
};

#define OFF(f) offsetof(struct settings, f)

static const struct vg_opt opts[] = {
	{"host", "T_HOST", VG_OPT_STR, OFF(host), "127.0.0.1", 0, 0, "host"},
	{NULL, "T_TOKEN", VG_OPT_STR, OFF(token), NULL, 0, 0, "token"},
	{"port", "T_PORT", VG_OPT_INT, OFF(port), "5432", 1, 65535, "port"},
	{"verbose", NULL, VG_OPT_BOOL, OFF(verbose), "false", 0, 0, "more"},
	{"timeout", "T_TIMEOUT", VG_OPT_DURATION, OFF(timeout_ms), "30s", 0,
         3600000, "timeout"},
	{"qps", "T_QPS", VG_OPT_DOUBLE, OFF(qps), "20", 0, 10000, "rate"},
};

#define N (sizeof(opts) / sizeof(opts[0]))

static int parse(struct settings *s, int *first, struct vg_err *err, ...)
{
	static char prog[] = "prog";
	char *argv[16] = {prog};
	int argc = 1;
	va_list ap;

	va_start(ap, err);
	for (char *a; argc < 15 && (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	memset(s, 0, sizeof(*s));
	return vg_opts_parse(opts, N, s, argc, argv, first, err);
}

static void test_defaults_env_flags(void **state)
{
	struct settings s;
	struct vg_err err;
	int first;

	(void)state;
	unsetenv("T_HOST");
	setenv("T_PORT", "6000", 1);
	setenv("T_TOKEN", "secret", 1);
	assert_int_equal(parse(&s, &first, &err, NULL), VG_OK);
	assert_string_equal(s.host, "127.0.0.1");
	assert_string_equal(s.token, "secret");
	assert_int_equal(s.port, 6000);
	assert_int_equal(s.timeout_ms, 30000);
	assert_true(s.qps == 20.0);
	assert_int_equal(first, 1);
	vg_opts_cleanup(opts, N, &s);
	assert_null(s.host);
	assert_null(s.token);
	/* flags win over the environment; the first non-flag stops them */
	assert_int_equal(parse(&s, &first, &err, "--port", "7000",
	                       "--timeout=500ms", "--verbose", "--qps", "2.5",
	                       "dlq", "--port", "1", NULL),
	                 VG_OK);
	assert_int_equal(s.port, 7000);
	assert_int_equal(s.timeout_ms, 500);
	assert_int_equal(s.verbose, 1);
	assert_true(s.qps == 2.5);
	assert_int_equal(first, 7);
	vg_opts_cleanup(opts, N, &s);
	unsetenv("T_PORT");
	unsetenv("T_TOKEN");
}

static void test_errors_name_the_setting(void **state)
{
	static const struct {
		const char *args[3];
		const char *env, *env_value, *want;
	} bad[] = {
		{{"--port", "0"}, NULL, NULL, "--port"},
		{{"--port", "65536"}, NULL, NULL, "[1, 65535]"},
		{{"--port", "12x"}, NULL, NULL, "12x"},
		{{"--port", NULL}, NULL, NULL, "needs a value"},
		{{"--nope", NULL}, NULL, NULL, "unknown flag --nope"},
		{{"--nope=1", NULL}, NULL, NULL, "unknown flag --nope"},
		{{"--verbose=maybe", NULL}, NULL, NULL, "true or false"},
		{{"--timeout", "2 days"}, NULL, NULL, "duration"},
		{{"--timeout", "2h"}, NULL, NULL, "3600000ms"},
		{{"--qps", "-1"}, NULL, NULL, "--qps"},
		{{NULL, NULL}, "T_PORT", "http", "T_PORT"},
	};
	struct settings s;
	struct vg_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].env)
			setenv(bad[i].env, bad[i].env_value, 1);
		vg_err_clear(&err);
		assert_int_equal(parse(&s, NULL, &err, (char *)bad[i].args[0],
		                       (char *)bad[i].args[1], NULL),
		                 VG_INVAL);
		if (!strstr(err.msg, bad[i].want))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg,
			         bad[i].want);
		vg_opts_cleanup(opts, N, &s);
		if (bad[i].env)
			unsetenv(bad[i].env);
	}
}

static void test_durations(void **state)
{
	long long ms;

	(void)state;
	assert_int_equal(vg_opts_duration("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(vg_opts_duration("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(vg_opts_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(vg_opts_duration("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(vg_opts_duration("5d", &ms), 0);
	assert_int_equal(ms, 5LL * 86400000);
	assert_int_equal(vg_opts_duration("5w", &ms), -1);
	assert_int_equal(vg_opts_duration("-1s", &ms), -1);
	assert_int_equal(vg_opts_duration("", &ms), -1);
	assert_int_equal(vg_opts_duration(NULL, &ms), -1);
}

static void test_seconds(void **state)
{
	struct {
		long long s;
	} d = {0};
	static const struct vg_opt o = {"retention", NULL, VG_OPT_SECONDS,  0,
	                                NULL,        1,    36500.0 * 86400, ""};
	struct vg_err err;

	(void)state;
	assert_int_equal(vg_opts_set(&o, &d, "90d", "--retention", &err),
	                 VG_OK);
	assert_true(d.s == 90LL * 86400);
	assert_int_equal(vg_opts_set(&o, &d, "1h", "--retention", &err), VG_OK);
	assert_true(d.s == 3600);
	assert_int_equal(vg_opts_set(&o, &d, "500ms", "--retention", &err),
	                 VG_INVAL);
	assert_int_equal(vg_opts_set(&o, &d, "0", "--retention", &err),
	                 VG_INVAL);
	assert_non_null(strstr(err.msg, "[1s, "));
	assert_int_equal(vg_opts_set(&o, &d, "40000d", "--retention", &err),
	                 VG_INVAL);
}

static void test_usage(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(fp);
	vg_opts_usage(opts, N, fp);
	fclose(fp);
	assert_non_null(strstr(buf, "--port"));
	assert_non_null(strstr(buf, "T_PORT"));
	assert_non_null(strstr(buf, "(default 5432)"));
	assert_non_null(strstr(buf, "T_TOKEN"));
	/* one line per entry */
	size_t lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, N);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_env_flags),
		cmocka_unit_test(test_errors_name_the_setting),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_seconds),
		cmocka_unit_test(test_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
