/* test_options.c - flags, environment, defaults and bad values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "options.h"

static int parse(struct options *o, struct vg_err *err, int argc, ...)
{
	static char prog[] = "vigil-operator";
	char *argv[16] = { prog };
	va_list ap;

	va_start(ap, argc);
	for (int i = 1; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return options_parse(o, argc, argv, err);
}

static void test_defaults(void **state)
{
	(void)state;
	struct options o;
	struct vg_err err = { 0 };

	unsetenv("VIGIL_WORKERS");
	assert_int_equal(parse(&o, &err, 1), 0);
	assert_null(o.ns);
	assert_int_equal(o.leader_elect, 0);
	assert_string_equal(o.leader_ns, "vigil-system");
	assert_string_equal(o.metrics_addr, "127.0.0.1:8080");
	assert_string_equal(o.health_addr, "127.0.0.1:8081");
	assert_int_equal(o.workers, 2);
	assert_true(o.qps > 19.9 && o.qps < 20.1);
	options_cleanup(&o);
}

static void test_flags_override_env(void **state)
{
	(void)state;
	struct options o;
	struct vg_err err = { 0 };

	setenv("VIGIL_WORKERS", "4", 1);
	setenv("VIGIL_LEADER_ELECT", "true", 1);
	assert_int_equal(parse(&o, &err, 6, "--workers=8", "--namespace",
			       "team-a", "--qps", "5.5"),
			 0);
	assert_int_equal(o.workers, 8);
	assert_int_equal(o.leader_elect, 1);
	assert_string_equal(o.ns, "team-a");
	assert_true(o.qps > 5.4 && o.qps < 5.6);
	options_cleanup(&o);
	unsetenv("VIGIL_WORKERS");
	unsetenv("VIGIL_LEADER_ELECT");
}

static void test_bad_values(void **state)
{
	(void)state;
	struct options o;
	struct vg_err err = { 0 };

	assert_int_equal(parse(&o, &err, 2, "--workers=0"), VG_INVAL);
	assert_non_null(strstr(err.msg, "workers"));
	options_cleanup(&o);
	assert_int_equal(parse(&o, &err, 2, "--workers=2.5"), VG_INVAL);
	options_cleanup(&o);
	assert_int_equal(parse(&o, &err, 2, "--qps=abc"), VG_INVAL);
	options_cleanup(&o);
	assert_int_equal(parse(&o, &err, 2, "--leader-elect=maybe"), VG_INVAL);
	options_cleanup(&o);
	assert_int_equal(parse(&o, &err, 2, "--frobnicate"), VG_INVAL);
	assert_non_null(strstr(err.msg, "unknown flag --frobnicate"));
	options_cleanup(&o);
	assert_int_equal(parse(&o, &err, 2, "--namespace"), VG_INVAL);
	assert_non_null(strstr(err.msg, "needs a value"));
	options_cleanup(&o);
	setenv("VIGIL_BURST", "-1", 1);
	assert_int_equal(parse(&o, &err, 1), VG_INVAL);
	assert_non_null(strstr(err.msg, "VIGIL_BURST"));
	options_cleanup(&o);
	unsetenv("VIGIL_BURST");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_flags_override_env),
		cmocka_unit_test(test_bad_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
