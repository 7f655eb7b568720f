/*
 * cron.c - cron(5) expressions and their next firing time in a time zone.
 *
 * The search walks forward in local time, field by field (month, day,
 * hour, minute), jumping to the start of the next candidate unit; every
 * jump stops at the zone's next offset change, where the local time is
 * worked out afresh, so clock changes never make it skip a match.
 */
#include "vigil/cron.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_EXPR 256
#define HORIZON (8LL * 366 * 86400)

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* index = value - names_base */
	int names_base;
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr",
					   "may", "jun", "jul", "aug",
					   "sep", "oct", "nov", "dec", NULL };
static const char *const day_names[] = { "sun", "mon", "tue", "wed", "thu",
					 "fri", "sat", NULL };

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL, 0 },
	{ "hour", 0, 23, NULL, 0 },
	{ "day of month", 1, 31, NULL, 0 },
	{ "month", 1, 12, month_names, 1 },
	{ "day of week", 0, 7, day_names, 0 },
};

static const struct {
	const char *macro, *expr;
} macros[] = {
	{ "@yearly", "0 0 1 1 *" },   { "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" },  { "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* One value: a number or (for months and weekdays) a name. */
static const char *parse_value(const struct field *f, const char *p, int *v)
{
	int n = 0, digits = 0;

	if (f->names && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
		for (int i = 0; f->names[i]; i++)
			if (strncasecmp(p, f->names[i], 3) == 0) {
				*v = i + f->names_base;
				return p + 3;
			}
		return NULL;
	}
	while (*p >= '0' && *p <= '9' && digits < 3) {
		n = n * 10 + (*p++ - '0');
		digits++;
	}
	if (!digits || n < f->lo || n > f->hi)
		return NULL;
	*v = n;
	return p;
}

/* One field ("*", "1-5/2", "mon,wed", ...) into a bit set. */
static int parse_field(const struct field *f, const char *s, uint64_t *bits,
		       int *any, struct vg_err *err)
{
	const char *p = s;

	*bits = 0;
	*any = strcmp(s, "*") == 0 || strcmp(s, "?") == 0;
	for (;;) {
		int lo, hi, step = 1;

		if (*p == '*' || *p == '?') {
			lo = f->lo;
			hi = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			if (!(p = parse_value(f, p, &lo)))
				goto bad;
			hi = lo;
			if (*p == '-' && !(p = parse_value(f, p + 1, &hi)))
				goto bad;
			if (hi < lo)
				goto bad;
		}
		if (*p == '/') {
			const char *q = p + 1;

			step = 0;
			while (*q >= '0' && *q <= '9' && step < 100)
				step = step * 10 + (*q++ - '0');
			if (q == p + 1 || step < 1 || step > f->hi)
				goto bad;
			p = q;
			if (lo == hi) /* "5/15": from 5 to the end */
				hi = f->hi == 7 ? 6 : f->hi;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
		if (*p == '\0')
			return VG_OK;
		if (*p++ != ',')
			goto bad;
	}
bad:
	return vg_err_set(err, VG_INVAL, "invalid %s field \"%s\" in schedule",
			  f->name, s);
}

int vg_cron_parse(const char *expr, struct vg_cron *out, struct vg_err *err)
{
	char buf[MAX_EXPR], *tok[6], *p;
	uint64_t bits[5];
	int any[5], n = 0;

	memset(out, 0, sizeof(*out));
	if (!expr || strlen(expr) >= sizeof(buf))
		return vg_err_set(err, VG_INVAL, "schedule missing or too long");
	while (*expr == ' ' || *expr == '\t')
		expr++;
	if (*expr == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strcmp(expr, macros[i].macro) == 0)
				return vg_cron_parse(macros[i].expr, out, err);
		return vg_err_set(err, VG_INVAL, "unknown schedule macro %s",
				  expr);
	}
	memcpy(buf, expr, strlen(expr) + 1);
	for (p = buf; *p;) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (!*p)
			break;
		if (n == 6)
			break;
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	if (n != 5)
		return vg_err_set(err, VG_INVAL,
				  "schedule \"%s\" needs 5 fields (minute hour "
				  "day-of-month month day-of-week), has %s%d",
				  expr, n > 5 ? "more than " : "",
				  n > 5 ? 5 : n);
	for (int i = 0; i < 5; i++)
		if (parse_field(&fields[i], tok[i], &bits[i], &any[i], err) !=
		    VG_OK)
			return VG_INVAL;
	out->minutes = bits[0];
	out->hours = (uint32_t)bits[1];
	out->mdays = (uint32_t)bits[2];
	out->months = (uint16_t)bits[3];
	out->wdays = (uint8_t)bits[4];
	out->mday_any = (unsigned char)any[2];
	out->wday_any = (unsigned char)any[4];
	return VG_OK;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int day_matches(const struct vg_cron *c, int mday, int wday)
{
	int dm = (c->mdays >> mday) & 1, dw = (c->wdays >> wday) & 1;

	if (c->mday_any || c->wday_any)
		return dm && dw; /* "*" matches all: the other decides */
	return dm || dw;
}

/* The local time `l` (seconds) happened already, before instant `t`, under
 * a larger offset (the clock was turned back): a repeated local time. */
static int repeated(const struct vg_tz *tz, int64_t t, int64_t l)
{
	int32_t before = vg_tz_offset(tz, t - 3 * 3600, NULL);
	int64_t t2 = l - before;

	return before > vg_tz_offset(tz, t, NULL) && t2 < t &&
	       vg_tz_offset(tz, t2, NULL) == before;
}

int vg_cron_next(const struct vg_cron *c, const struct vg_tz *tz,
		 int64_t after, int64_t *out)
{
	int64_t t = floor_div(after, 60) * 60 + 60, end = after + HORIZON;

	while (t <= end) {
		int64_t next_change, l, day, y, jump;
		int32_t off = vg_tz_offset(tz, t, &next_change);
		int mo, d, hh, mi, wday;

		l = t + off;
		day = floor_div(l, 86400);
		vg_civil_from_days(day, &y, &mo, &d);
		hh = (int)(l - day * 86400) / 3600;
		mi = (int)(l - day * 86400) % 3600 / 60;
		wday = (int)((day % 7 + 7 + 4) % 7);
		if (!((c->months >> mo) & 1)) {
			jump = vg_days_from_civil(mo == 12 ? y + 1 : y,
						  mo == 12 ? 1 : mo + 1, 1) *
			       86400;
		} else if (!day_matches(c, d, wday)) {
			jump = (day + 1) * 86400;
		} else if (!((c->hours >> hh) & 1)) {
			jump = day * 86400 + (hh + 1) * 3600;
		} else if (!((c->minutes >> mi) & 1)) {
			jump = l - l % 60 + 60;
		} else if (repeated(tz, t, l)) {
			jump = l - l % 60 + 60;
		} else {
			*out = t;
			return VG_OK;
		}
		/* local jump -> instant, never past an offset change */
		t = jump - off < next_change ? jump - off : next_change;
		/* offset changes land on whole minutes in real zones; keep
		 * the search on minute boundaries whatever the data says */
		t = floor_div(t + 59, 60) * 60;
	}
	return VG_NOTFOUND;
}
