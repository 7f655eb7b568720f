/* timeutil.c - monotonic clocks, deadlines and RFC 3339 timestamps. */
#include "vigil/timeutil.h"

#include <stdio.h>

double vg_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t vg_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vg_mono_deadline(struct timespec *ts, double seconds)
{
	time_t whole;

	if (seconds < 0)
		seconds = 0;
	whole = (time_t)seconds;
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += whole;
	ts->tv_nsec += (long)((seconds - (double)whole) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int vg_cond_init_mono(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int rc;

	rc = pthread_condattr_init(&ca);
	if (rc)
		return rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

size_t vg_time_rfc3339(char *out, size_t n, int digits)
{
	struct timespec ts;
	struct tm tm;
	size_t len;
	int w;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
	if (len == 0)
		return 0;
	if (digits == 3)
		w = snprintf(out + len, n - len, ".%03dZ",
			     (int)(ts.tv_nsec / 1000000));
	else if (digits == 6)
		w = snprintf(out + len, n - len, ".%06dZ",
			     (int)(ts.tv_nsec / 1000));
	else
		w = snprintf(out + len, n - len, "Z");
	if (w < 0 || (size_t)w >= n - len)
		return 0;
	return len + (size_t)w;
}

size_t vg_time_fmt(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || n < 21)
		return 0;
	return strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

int vg_time_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t days, yy;

	if (!s || digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) ||
	    *s++ != '-' || digits(&s, 2, &d) || (*s != 'T' && *s != 't') ||
	    !*s++ || digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) ||
	    *s++ != ':' || digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		if (s[1] < '0' || s[1] > '9')
			return -1;
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	/* days from the civil date (proleptic Gregorian) */
	yy = y - (mo <= 2);
	days = 365 * yy + yy / 4 - yy / 100 + yy / 400 +
	       (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1 - 719468;
	*out = days * 86400 + h * 3600 + mi * 60 + sec -
	       sign * (oh * 3600 + om * 60);
	return 0;
}
