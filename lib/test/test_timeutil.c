/* test_timeutil.c - monotonic clocks, deadlines, RFC 3339 formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "vigil/timeutil.h"

static void test_monotonic_advances(void **state)
{
	(void)state;
	double s0 = vg_mono_s();
	int64_t m0 = vg_mono_ms();

	usleep(20000);
	assert_true(vg_mono_s() - s0 >= 0.019);
	assert_true(vg_mono_ms() - m0 >= 19);
}

static void test_deadline_wait(void **state)
{
	(void)state;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond;
	struct timespec ts;
	double t0;

	assert_int_equal(vg_cond_init_mono(&cond), 0);
	vg_mono_deadline(&ts, 0.05);
	assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	t0 = vg_mono_s();
	pthread_mutex_lock(&mu);
	while (pthread_cond_timedwait(&cond, &mu, &ts) == 0)
		;
	pthread_mutex_unlock(&mu);
	assert_true(vg_mono_s() - t0 >= 0.045);
	assert_true(vg_mono_s() - t0 < 2.0);
	pthread_cond_destroy(&cond);
}

static int all_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

static void test_rfc3339(void **state)
{
	(void)state;
	char buf[40];

	assert_int_equal(vg_time_rfc3339(buf, sizeof(buf), 0), 20);
	assert_int_equal(buf[4], '-');
	assert_int_equal(buf[10], 'T');
	assert_int_equal(buf[19], 'Z');
	assert_true(all_digits(buf, 4) && all_digits(buf + 11, 2));
	assert_int_equal(vg_time_rfc3339(buf, sizeof(buf), 3), 24);
	assert_int_equal(buf[19], '.');
	assert_true(all_digits(buf + 20, 3));
	assert_int_equal(buf[23], 'Z');
	assert_int_equal(vg_time_rfc3339(buf, sizeof(buf), 6), 27);
	assert_true(all_digits(buf + 20, 6));
	assert_int_equal(vg_time_rfc3339(buf, 10, 6), 0); /* too small */
}

static void test_parse_and_format(void **state)
{
	int64_t t;
	char buf[32];

	(void)state;
	assert_int_equal(vg_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(vg_time_parse("2026-11-28T12:34:56Z", &t), 0);
	assert_int_equal(t, 1795869296);
	assert_int_equal(vg_time_parse("2026-11-28T12:34:56.789Z", &t), 0);
	assert_int_equal(t, 1795869296);
	assert_int_equal(vg_time_parse("2026-11-28T14:34:56+02:00", &t), 0);
	assert_int_equal(t, 1795869296);
	assert_int_equal(vg_time_parse("2024-02-29T00:00:00-00:30", &t), 0);
	assert_int_equal(t, 1709166600);
	assert_int_equal(vg_time_fmt(1795869296, buf, sizeof(buf)), 20);
	assert_string_equal(buf, "2026-11-28T12:34:56Z");
	assert_int_equal(vg_time_fmt(0, buf, 10), 0);
	static const char *const bad[] = {
		"", "2026-11-28", "2026-11-28T12:34:56", "2026-13-01T00:00:00Z",
		"2026-11-28T24:00:00Z", "2026-11-28T12:34:56.Z",
		"2026-11-28T12:34:56Zjunk", "2026/11/28T12:34:56Z",
		"2026-11-28T12:34:56+2:00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vg_time_parse(bad[i], &t) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(vg_time_parse(NULL, &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monotonic_advances),
		cmocka_unit_test(test_deadline_wait),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_parse_and_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
