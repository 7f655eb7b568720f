/*
 * cron.h - cron schedules in a time zone, for the operator's ScanPolicy
 * and BackupSchedule controllers.
 *
 * Expressions have the five fields of cron(5) (minute hour day-of-month
 * month day-of-week) with lists, ranges, steps, month and weekday names,
 * "?" as "*", 7 as Sunday, and the macros @yearly @annually @monthly
 * @weekly @daily @midnight @hourly. As in Vixie cron, when both day fields
 * are restricted a day matches if either does.
 *
 * Time zones are read from the system's TZif files (tzfile(5), versions 1
 * to 4, with the POSIX TZ rule of the footer for instants after the last
 * transition): no process-wide TZ variable is touched, so any thread may
 * compute schedules in any zone. A local time that a clock change skips
 * does not occur (no run); one that a clock change repeats runs once, at
 * its first occurrence.
 */
#ifndef VG_CRON_H
#define VG_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/err.h"

/* --- time zones -------------------------------------------------------- */

struct vg_tz;

/*
 * The zone `name` ("UTC", "Europe/Berlin", ...) from $TZDIR or
 * /usr/share/zoneinfo (new; vg_tz_free). NULL or "" is UTC. VG_INVAL for a
 * name that is no zone name (".." or an absolute path included),
 * VG_NOTFOUND when no such zone is installed, VG_INVAL for a corrupt file.
 */
int vg_tz_load(const char *name, struct vg_tz **out, struct vg_err *err);
/* A zone from the bytes of a TZif file (new). */
int vg_tz_parse(const unsigned char *data, size_t len, struct vg_tz **out,
		struct vg_err *err);
/* A zone from a POSIX TZ rule alone ("CET-1CEST,M3.5.0,M10.5.0/3"). */
int vg_tz_parse_rule(const char *rule, struct vg_tz **out,
		     struct vg_err *err);
void vg_tz_free(struct vg_tz *tz);

/*
 * The zone's offset from UTC in seconds (east positive) at Unix time `t`;
 * *next (may be NULL) gets the first instant after `t` at which the offset
 * may change, or INT64_MAX. A NULL zone is UTC.
 */
int32_t vg_tz_offset(const struct vg_tz *tz, int64_t t, int64_t *next);

/* --- schedules --------------------------------------------------------- */

struct vg_cron {
	uint64_t minutes; /* bit m: minute m matches (0-59) */
	uint32_t hours;	  /* bit h (0-23) */
	uint32_t mdays;	  /* bit d (1-31) */
	uint16_t months;  /* bit m (1-12) */
	uint8_t wdays;	  /* bit d (0-6, Sunday 0) */
	unsigned char mday_any, wday_any; /* the field was "*" (or "?") */
};

/* Parse `expr`; VG_INVAL with the offending field named in err. */
int vg_cron_parse(const char *expr, struct vg_cron *out, struct vg_err *err);

/*
 * The first instant strictly after `after` (Unix seconds) at which the
 * schedule fires in zone `tz` (NULL: UTC), whole minutes. VG_NOTFOUND when
 * it never fires within eight years ("0 0 30 2 *").
 */
int vg_cron_next(const struct vg_cron *c, const struct vg_tz *tz,
		 int64_t after, int64_t *out);

/* --- civil time (proleptic Gregorian, UTC) ----------------------------- */

/* Days since 1970-01-01 of year-month-day (month 1-12). */
int64_t vg_days_from_civil(int64_t y, int m, int d);
/* The date of day `z` since 1970-01-01. */
void vg_civil_from_days(int64_t z, int64_t *y, int *m, int *d);

#endif
