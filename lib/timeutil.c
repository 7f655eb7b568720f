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
