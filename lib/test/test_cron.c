/* test_cron.c - cron expressions, time zones (TZif and POSIX rules, checked
 * against the C library's localtime), next firing times across clock
 * changes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigil/cron.h"

/* Unix time of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	return vg_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static void fmt(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%MZ", &tm);
}

/* next(expr, zone, after) printed as UTC, or "never". */
static void next_str(const char *expr, const char *zone, int64_t after,
		     char *out, size_t n)
{
	struct vg_cron c;
	struct vg_tz *tz = NULL;
	struct vg_err err;
	int64_t t;

	assert_int_equal(vg_cron_parse(expr, &c, &err), VG_OK);
	assert_int_equal(vg_tz_load(zone, &tz, &err), VG_OK);
	if (vg_cron_next(&c, tz, after, &t) == VG_OK)
		fmt(t, out, n);
	else
		snprintf(out, n, "never");
	vg_tz_free(tz);
}

#define assert_next(expr, zone, after, want)                                  \
	do {                                                                  \
		char got_[32];                                                \
		next_str(expr, zone, after, got_, sizeof(got_));              \
		assert_string_equal(got_, want);                              \
	} while (0)

static void test_civil_round_trip(void **state)
{
	(void)state;
	for (int64_t z = -800000; z <= 800000; z += 97) {
		int64_t y;
		int m, d;

		vg_civil_from_days(z, &y, &m, &d);
		assert_int_equal(vg_days_from_civil(y, m, d), z);
	}
	assert_int_equal(vg_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(vg_days_from_civil(2000, 3, 1), 11017);
}

static void test_parse(void **state)
{
	struct vg_cron c;
	struct vg_err err;

	(void)state;
	assert_int_equal(vg_cron_parse("*/15 9-17 * * mon-fri", &c, &err),
			 VG_OK);
	assert_true(c.minutes == (1ULL << 0 | 1ULL << 15 | 1ULL << 30 |
				  1ULL << 45));
	assert_int_equal(c.hours, 0x3fe00);
	assert_int_equal(c.wdays, 0x3e);
	assert_true(c.mday_any && !c.wday_any);
	assert_int_equal(vg_cron_parse("0 0 * * 7", &c, &err), VG_OK);
	assert_int_equal(c.wdays, 1); /* 7 is Sunday */
	assert_int_equal(vg_cron_parse("0 0 1 JAN,jul ?", &c, &err), VG_OK);
	assert_int_equal(c.months, 1 << 1 | 1 << 7);
	assert_true(c.wday_any);
	assert_int_equal(vg_cron_parse("5/20 * * * *", &c, &err), VG_OK);
	assert_true(c.minutes == (1ULL << 5 | 1ULL << 25 | 1ULL << 45));
	assert_int_equal(vg_cron_parse("@hourly", &c, &err), VG_OK);
	assert_true(c.minutes == 1 && c.hours == 0xffffff);

	static const char *const bad[] = {
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *",
		"* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * * 8",
		"5-1 * * * *", "*/0 * * * *", "*/61 * * * *", "a * * * *",
		"1,,2 * * * *", "1- * * * *", "* * * foo *", "@often",
		"1,2, * * * *", "-1 * * * *",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vg_err_clear(&err);
		if (vg_cron_parse(bad[i], &c, &err) != VG_INVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	vg_cron_parse("* 25 * * *", &c, &err);
	assert_non_null(strstr(err.msg, "hour"));
}

static void test_next_utc(void **state)
{
	int64_t t = utc(2026, 11, 28, 12, 7);

	(void)state;
	assert_next("*/15 * * * *", "UTC", t, "2026-11-28T12:15Z");
	assert_next("*/15 * * * *", "UTC", utc(2026, 11, 28, 12, 15),
		    "2026-11-28T12:30Z");
	assert_next("0 0 * * *", "UTC", t, "2026-11-29T00:00Z");
	assert_next("0 0 1 1 *", "", t, "2027-01-01T00:00Z");
	assert_next("0 0 29 2 *", "UTC", t, "2028-02-29T00:00Z");
	assert_next("0 0 30 2 *", "UTC", t, "never");
	/* both day fields restricted: either matches (Friday or the 13th) */
	assert_next("0 8 13 * fri", "UTC", t, "2026-12-04T08:00Z");
	assert_next("0 8 13 * fri", "UTC", utc(2026, 12, 11, 9, 0),
		    "2026-12-13T08:00Z");
	/* one restricted: that one decides */
	assert_next("0 8 * * fri", "UTC", t, "2026-12-04T08:00Z");
	assert_next("59 23 31 12 *", "UTC", t, "2026-12-31T23:59Z");
	/* seconds inside a minute: the next whole minute after */
	assert_next("* * * * *", "UTC", t + 59, "2026-11-28T12:08Z");
}

static void test_next_across_clock_changes(void **state)
{
	(void)state;
	/* Berlin 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC) */
	assert_next("30 1 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0),
		    "2026-03-29T00:30Z");
	/* 02:30 does not exist that day */
	assert_next("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0),
		    "2026-03-30T00:30Z");
	assert_next("30 3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0),
		    "2026-03-29T01:30Z");
	/* 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30
	 * happens twice and runs once, at the first */
	assert_next("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0),
		    "2026-10-25T00:30Z");
	assert_next("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30),
		    "2026-10-26T01:30Z");
	/* hourly: 03:00 CEST is 02:00 CET again, already run: next 03:00 CET */
	assert_next("0 * * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 0),
		    "2026-10-25T02:00Z");
	/* the southern hemisphere: Sydney leaves daylight time 2027-04-04
	 * 03:00 AEDT -> 02:00 AEST (16:00 UTC the day before) */
	assert_next("0 9 * * *", "Australia/Sydney", utc(2027, 4, 3, 0, 0),
		    "2027-04-03T23:00Z");
	assert_next("0 9 * * *", "Australia/Sydney", utc(2027, 4, 2, 0, 0),
		    "2027-04-02T22:00Z");
	/* half-hour zones */
	assert_next("0 9 * * *", "Asia/Kolkata", utc(2026, 11, 28, 0, 0),
		    "2026-11-28T03:30Z");
	/* far beyond the file's transitions: the footer rule decides */
	assert_next("0 12 1 7 *", "America/New_York", utc(2060, 1, 1, 0, 0),
		    "2060-07-01T16:00Z");
	assert_next("0 12 1 1 *", "America/New_York", utc(2060, 6, 1, 0, 0),
		    "2061-01-01T17:00Z");
}

/* Our offsets against glibc's localtime_r for the same zone, over many
 * instants, including decades past the last transition in the files. */
static void test_offsets_match_libc(void **state)
{
	static const char *const zones[] = {
		"Europe/Berlin",    "America/New_York", "Australia/Sydney",
		"Asia/Kolkata",	    "America/Sao_Paulo", "Pacific/Chatham",
		"Australia/Lord_Howe", "Europe/London",	 "America/Santiago",
		"Africa/Casablanca", "Asia/Tokyo",	 "Pacific/Apia",
	};
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	long checked = 0;

	(void)state;
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		struct vg_tz *tz = NULL;
		struct vg_err err;

		assert_int_equal(vg_tz_load(zones[z], &tz, &err), VG_OK);
		setenv("TZ", zones[z], 1);
		tzset();
		for (int64_t t = utc(1975, 1, 1, 0, 0);
		     t < utc(2070, 1, 1, 0, 0); t += 86400 * 3 + 3571) {
			time_t tt = (time_t)t;
			struct tm tm;
			int32_t off;

			localtime_r(&tt, &tm);
			off = vg_tz_offset(tz, t, NULL);
			if (off != tm.tm_gmtoff)
				fail_msg("%s at %lld: %d, libc %ld", zones[z],
					 (long long)t, off, tm.tm_gmtoff);
			checked++;
		}
		vg_tz_free(tz);
	}
	if (saved) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
	assert_true(checked > 100000);
}

static void test_next_change(void **state)
{
	struct vg_tz *tz = NULL;
	struct vg_err err;
	int64_t next;

	(void)state;
	assert_int_equal(vg_tz_load("Europe/Berlin", &tz, &err), VG_OK);
	assert_int_equal(vg_tz_offset(tz, utc(2026, 3, 1, 0, 0), &next), 3600);
	assert_int_equal(next, utc(2026, 3, 29, 1, 0));
	assert_int_equal(vg_tz_offset(tz, next, NULL), 7200);
	assert_int_equal(vg_tz_offset(tz, utc(2080, 8, 1, 0, 0), &next), 7200);
	assert_int_equal(next, utc(2080, 10, 27, 1, 0));
	vg_tz_free(tz);
	assert_int_equal(vg_tz_offset(NULL, 12345, &next), 0);
	assert_true(next == INT64_MAX);
}

static void test_rules(void **state)
{
	struct vg_tz *tz = NULL;
	struct vg_err err;

	(void)state;
	assert_int_equal(vg_tz_parse_rule("<+0530>-5:30", &tz, &err), VG_OK);
	assert_int_equal(vg_tz_offset(tz, 0, NULL), 19800);
	vg_tz_free(tz);
	/* default dates: the US rules */
	assert_int_equal(vg_tz_parse_rule("EST5EDT", &tz, &err), VG_OK);
	assert_int_equal(vg_tz_offset(tz, utc(2030, 7, 1, 0, 0), NULL), -14400);
	assert_int_equal(vg_tz_offset(tz, utc(2030, 1, 1, 0, 0), NULL), -18000);
	vg_tz_free(tz);
	/* Julian dates and a time past midnight */
	assert_int_equal(vg_tz_parse_rule("XST3XDT,J60/25,J300", &tz, &err),
			 VG_OK);
	assert_int_equal(vg_tz_offset(tz, utc(2031, 3, 2, 3, 0), NULL), -10800);
	assert_int_equal(vg_tz_offset(tz, utc(2031, 3, 2, 5, 0), NULL), -7200);
	vg_tz_free(tz);
	static const char *const bad[] = { "", "X", "UTC", "ABC+", "ABC1DEF,",
					   "ABC1DEF,M13.1.0,M1.1.0",
					   "ABC1DEF,M3.6.0,M10.1.0",
					   "<AB>1", "ABC1DEF,J0,J10",
					   "ABC99" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vg_tz_parse_rule(bad[i], &tz, &err) != VG_INVAL)
			fail_msg("accepted rule \"%s\"", bad[i]);
}

static void test_load_errors(void **state)
{
	struct vg_tz *tz = NULL;
	struct vg_err err;
	static const unsigned char junk[] = "TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0"
					    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
					    "\0\0\0\0\0\0\0\0\0";

	(void)state;
	assert_int_equal(vg_tz_load("../../etc/passwd", &tz, &err), VG_INVAL);
	assert_null(tz);
	assert_int_equal(vg_tz_load("/etc/localtime", &tz, &err), VG_INVAL);
	assert_int_equal(vg_tz_load("No/Such_Zone", &tz, &err), VG_NOTFOUND);
	assert_non_null(strstr(err.msg, "No/Such_Zone"));
	assert_int_equal(vg_tz_load("Europe", &tz, &err), VG_INVAL);
	assert_int_equal(vg_tz_parse(junk, sizeof(junk), &tz, &err), VG_INVAL);
	assert_int_equal(vg_tz_parse(junk, 10, &tz, &err), VG_INVAL);
	assert_null(tz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_civil_round_trip),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_next_across_clock_changes),
		cmocka_unit_test(test_offsets_match_libc),
		cmocka_unit_test(test_next_change),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
