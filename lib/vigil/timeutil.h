/*
 * timeutil.h - the clocks and time formats every program uses.
 *
 * Durations and deadlines run on CLOCK_MONOTONIC (never jumps with the wall
 * clock); timestamps written to the API server, logs and the database are
 * RFC 3339 in UTC.
 */
#ifndef VG_TIMEUTIL_H
#define VG_TIMEUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Monotonic time in seconds / milliseconds from an arbitrary origin. */
double vg_mono_s(void);
int64_t vg_mono_ms(void);

/* The CLOCK_MONOTONIC instant `seconds` from now, for
 * pthread_cond_timedwait on a condition made by vg_cond_init_mono(). */
void vg_mono_deadline(struct timespec *ts, double seconds);

/* Initialise `cond` to time its waits on CLOCK_MONOTONIC. 0 or an errno. */
int vg_cond_init_mono(pthread_cond_t *cond);

/*
 * The current UTC time as RFC 3339 ("2026-11-28T12:00:00Z", with `digits`
 * 3 ".123Z", with 6 ".123456Z" as metav1.MicroTime) into `out`. Returns
 * the length, or 0 when `n` is too small.
 */
size_t vg_time_rfc3339(char *out, size_t n, int digits);

/* Unix time `t` as RFC 3339 UTC with whole seconds; the length, or 0. */
size_t vg_time_fmt(int64_t t, char *out, size_t n);

/* An RFC 3339 timestamp ("2026-11-28T12:00:00Z", fractions and numeric
 * offsets allowed) as Unix seconds. 0, or -1 when malformed. */
int vg_time_parse(const char *s, int64_t *out);

#endif
