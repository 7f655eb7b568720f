/*
 * tz.c - time zones from TZif files (RFC 8536) and POSIX TZ rules, without
 * the process-wide TZ state of localtime(3).
 *
 * A zone is its transitions (Unix time -> offset) plus, for instants after
 * the last one, the footer's POSIX rule ("CET-1CEST,M3.5.0,M10.5.0/3"):
 * standard and daylight offsets and the yearly dates on which they switch.
 */
#include "vigil/cron.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZIF_MAX_SIZE (256 * 1024)
#define MAX_TRANSITIONS 4096

/* A yearly switch date: Jn (1-365, Feb 29 never counted), n (0-365), or
 * Mm.w.d (day d of week w of month m; w 5 = the last). */
struct rule_date {
	char kind; /* 'J', 'N', 'M' */
	int n, m, w, d;
	int32_t time; /* seconds after local midnight (may be < 0 or > 24 h) */
};

struct posix_rule {
	int32_t std_off, dst_off; /* east positive */
	int has_dst;
	struct rule_date start, end;
};

struct vg_tz {
	size_t n;	/* transitions */
	int64_t *at;	/* sorted */
	int32_t *off;	/* offset from at[i] on */
	int32_t first_off;	/* before at[0] */
	int has_rule;
	struct posix_rule rule;
};

/* --- civil dates ---------------------------------------------------------- */

int64_t vg_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void vg_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* --- POSIX TZ rules ---------------------------------------------------------- */

/* A zone abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static const char *parse_name(const char *p)
{
	const char *s = p;

	if (*p == '<') {
		for (p++; *p && *p != '>'; p++)
			if (!((*p >= 'A' && *p <= 'Z') ||
			      (*p >= 'a' && *p <= 'z') ||
			      (*p >= '0' && *p <= '9') || *p == '+' ||
			      *p == '-'))
				return NULL;
		return *p == '>' && p - s >= 4 ? p + 1 : NULL;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	return p - s >= 3 ? p : NULL;
}

static const char *parse_num(const char *p, int lo, int hi, int *out)
{
	int v = 0, n = 0;

	while (*p >= '0' && *p <= '9' && n < 4) {
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (!n || v < lo || v > hi)
		return NULL;
	*out = v;
	return p;
}

/* [+-]hh[:mm[:ss]] with hours up to `max_h`, in seconds. */
static const char *parse_hms(const char *p, int max_h, int32_t *out)
{
	int sign = 1, h, mi = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!(p = parse_num(p, 0, max_h, &h)))
		return NULL;
	if (*p == ':') {
		if (!(p = parse_num(p + 1, 0, 59, &mi)))
			return NULL;
		if (*p == ':' && !(p = parse_num(p + 1, 0, 59, &s)))
			return NULL;
	}
	*out = sign * (h * 3600 + mi * 60 + s);
	return p;
}

static const char *parse_date(const char *p, struct rule_date *r)
{
	r->time = 7200; /* 02:00 unless given */
	if (*p == 'J') {
		r->kind = 'J';
		p = parse_num(p + 1, 1, 365, &r->n);
	} else if (*p == 'M') {
		r->kind = 'M';
		if (!(p = parse_num(p + 1, 1, 12, &r->m)) || *p != '.' ||
		    !(p = parse_num(p + 1, 1, 5, &r->w)) || *p != '.')
			return NULL;
		p = parse_num(p + 1, 0, 6, &r->d);
	} else {
		r->kind = 'N';
		p = parse_num(p, 0, 365, &r->n);
	}
	if (p && *p == '/')
		p = parse_hms(p + 1, 167, &r->time);
	return p;
}

static int parse_rule(const char *s, struct posix_rule *r)
{
	const char *p = parse_name(s);
	int32_t off;

	memset(r, 0, sizeof(*r));
	if (!p || !(p = parse_hms(p, 24, &off)))
		return VG_INVAL;
	r->std_off = -off; /* POSIX offsets are west positive */
	if (!*p)
		return VG_OK;
	if (!(p = parse_name(p)))
		return VG_INVAL;
	r->has_dst = 1;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = parse_hms(p, 24, &off)))
			return VG_INVAL;
		r->dst_off = -off;
	}
	if (!*p) { /* no dates: the US rules POSIX names as default */
		r->start = (struct rule_date){ 'M', 0, 3, 2, 0, 7200 };
		r->end = (struct rule_date){ 'M', 0, 11, 1, 0, 7200 };
		return VG_OK;
	}
	if (*p != ',' || !(p = parse_date(p + 1, &r->start)) || *p != ',' ||
	    !(p = parse_date(p + 1, &r->end)) || *p)
		return VG_INVAL;
	return VG_OK;
}

/* Local midnight of the rule date in year `y`, as days since the epoch. */
static int64_t rule_day(const struct rule_date *r, int64_t y)
{
	int64_t jan1 = vg_days_from_civil(y, 1, 1), first;
	int wd, day;

	switch (r->kind) {
	case 'J': /* 1-365, February 29 not counted */
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	case 'N':
		return jan1 + r->n;
	default:
		first = vg_days_from_civil(y, r->m, 1);
		wd = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01: Thursday */
		day = 1 + (r->d - wd + 7) % 7 + (r->w - 1) * 7;
		while (day > month_days(y, r->m))
			day -= 7;
		return first + day - 1;
	}
}

/* The switches to daylight time (*on) and back (*off) in year `y`. */
static void rule_year(const struct posix_rule *r, int64_t y, int64_t *on,
		      int64_t *off)
{
	/* each switch happens at a local time of the offset it ends */
	*on = rule_day(&r->start, y) * 86400 + r->start.time - r->std_off;
	*off = rule_day(&r->end, y) * 86400 + r->end.time - r->dst_off;
}

static int32_t rule_offset(const struct posix_rule *r, int64_t t,
			   int64_t *next)
{
	int64_t y, on, off, best = INT64_MAX;
	int m, d, dst = 0;

	if (!r->has_dst) {
		*next = INT64_MAX;
		return r->std_off;
	}
	vg_civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		rule_year(r, yy, &on, &off);
		if (on > t && on < best)
			best = on;
		if (off > t && off < best)
			best = off;
	}
	rule_year(r, y, &on, &off);
	if (on < off)
		dst = t >= on && t < off;
	else /* southern hemisphere: daylight time spans the new year */
		dst = !(t >= off && t < on);
	*next = best;
	return dst ? r->dst_off : r->std_off;
}

/* --- TZif ---------------------------------------------------------------- */

struct reader {
	const unsigned char *p;
	size_t left;
};

static int take(struct reader *r, size_t n, const unsigned char **out)
{
	if (r->left < n)
		return VG_INVAL;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return VG_OK;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static int read_header(struct reader *r, int *version, struct tzif_counts *c)
{
	const unsigned char *h;

	if (take(r, 44, &h) || memcmp(h, "TZif", 4) != 0)
		return VG_INVAL;
	*version = h[4] ? h[4] - '0' : 1;
	c->isut = be32(h + 20);
	c->isstd = be32(h + 24);
	c->leap = be32(h + 28);
	c->time = be32(h + 32);
	c->type = be32(h + 36);
	c->chars = be32(h + 40);
	if (*version < 1 || *version > 9 || c->type == 0 || c->type > 256 ||
	    c->time > MAX_TRANSITIONS || (c->isut && c->isut != c->type) ||
	    (c->isstd && c->isstd != c->type) || c->leap > 1000 ||
	    c->chars > 4096)
		return VG_INVAL;
	return VG_OK;
}

static size_t block_size(const struct tzif_counts *c, size_t tsize)
{
	return c->time * tsize + c->time + c->type * 6 + c->chars +
	       c->leap * (tsize + 4) + c->isstd + c->isut;
}

int vg_tz_parse(const unsigned char *data, size_t len, struct vg_tz **out,
		struct vg_err *err)
{
	struct reader r = { data, len };
	struct tzif_counts c;
	const unsigned char *times, *idx, *types, *skip;
	struct vg_tz *tz = NULL;
	size_t tsize = 4;
	int version, rc;

	*out = NULL;
	if (read_header(&r, &version, &c) != VG_OK)
		return vg_err_set(err, VG_INVAL, "not a TZif file");
	if (version >= 2) { /* skip the 32-bit block for the 64-bit one */
		if (take(&r, block_size(&c, 4), &skip) ||
		    read_header(&r, &version, &c) != VG_OK)
			return vg_err_set(err, VG_INVAL,
					  "truncated TZif file");
		tsize = 8;
	}
	if (take(&r, c.time * tsize, &times) || take(&r, c.time, &idx) ||
	    take(&r, c.type * 6, &types) ||
	    take(&r, c.chars + c.leap * (tsize + 4) + c.isstd + c.isut, &skip))
		return vg_err_set(err, VG_INVAL, "truncated TZif file");
	tz = calloc(1, sizeof(*tz));
	if (!tz || (c.time && (!(tz->at = calloc(c.time, sizeof(int64_t))) ||
			       !(tz->off = calloc(c.time, sizeof(int32_t)))))) {
		vg_tz_free(tz);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	tz->n = c.time;
	/* before the first transition: the first standard-time type */
	tz->first_off = (int32_t)be32(types);
	for (uint32_t i = 0; i < c.type; i++)
		if (!types[i * 6 + 4]) {
			tz->first_off = (int32_t)be32(types + i * 6);
			break;
		}
	for (size_t i = 0; i < c.time; i++) {
		tz->at[i] = tsize == 8 ? be64(times + i * 8)
				       : (int32_t)be32(times + i * 4);
		if (idx[i] >= c.type || (i && tz->at[i] <= tz->at[i - 1])) {
			vg_tz_free(tz);
			return vg_err_set(err, VG_INVAL,
					  "corrupt TZif transitions");
		}
		tz->off[i] = (int32_t)be32(types + idx[i] * 6);
		if (tz->off[i] < -25 * 3600 || tz->off[i] > 26 * 3600) {
			vg_tz_free(tz);
			return vg_err_set(err, VG_INVAL,
					  "TZif offset out of range");
		}
	}
	if (version >= 2 && r.left >= 2 && r.p[0] == '\n') {
		char rule[128];
		const unsigned char *nl = memchr(r.p + 1, '\n', r.left - 1);
		size_t n = nl ? (size_t)(nl - r.p - 1) : 0;

		if (nl && n > 0 && n < sizeof(rule)) {
			memcpy(rule, r.p + 1, n);
			rule[n] = '\0';
			rc = parse_rule(rule, &tz->rule);
			if (rc != VG_OK) {
				vg_tz_free(tz);
				return vg_err_set(err, VG_INVAL,
						  "bad TZ rule in TZif "
						  "footer: %s",
						  rule);
			}
			tz->has_rule = 1;
		}
	}
	*out = tz;
	return VG_OK;
}

int vg_tz_parse_rule(const char *rule, struct vg_tz **out,
		     struct vg_err *err)
{
	struct vg_tz *tz;

	*out = NULL;
	tz = calloc(1, sizeof(*tz));
	if (!tz)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	if (parse_rule(rule, &tz->rule) != VG_OK) {
		free(tz);
		return vg_err_set(err, VG_INVAL, "bad TZ rule: %s", rule);
	}
	tz->has_rule = 1;
	tz->first_off = tz->rule.std_off;
	*out = tz;
	return VG_OK;
}

/* Zone names as the tz database spells them: no "..", no leading "/". */
static int zone_name_ok(const char *name)
{
	const char *p;

	if (!*name || *name == '/' || *name == '.' || strlen(name) > 128 ||
	    strstr(name, ".."))
		return 0;
	for (p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '/' || *p == '_' ||
		      *p == '+' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

int vg_tz_load(const char *name, struct vg_tz **out, struct vg_err *err)
{
	const char *dir = getenv("TZDIR");
	unsigned char *buf = NULL;
	char path[PATH_MAX];
	struct stat st;
	ssize_t got;
	size_t len = 0;
	int fd, rc, n;

	*out = NULL;
	if (!name || !*name || strcmp(name, "UTC") == 0 ||
	    strcmp(name, "Etc/UTC") == 0)
		return vg_tz_parse_rule("UTC0", out, err);
	if (!zone_name_ok(name))
		return vg_err_set(err, VG_INVAL, "invalid time zone name %s",
				  name);
	n = snprintf(path, sizeof(path), "%s/%s",
		     dir && *dir ? dir : "/usr/share/zoneinfo", name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return vg_err_set(err, VG_INVAL, "time zone name too long");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vg_err_set(err, errno == ENOENT ? VG_NOTFOUND : VG_IO,
				  "unknown time zone %s", name);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > TZIF_MAX_SIZE || st.st_size < 44) {
		close(fd);
		return vg_err_set(err, VG_INVAL,
				  "time zone %s: not a TZif file", name);
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	while (len < (size_t)st.st_size &&
	       (got = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)got;
	close(fd);
	rc = vg_tz_parse(buf, len, out, err);
	free(buf);
	if (rc != VG_OK)
		vg_err_set(err, rc, "time zone %s: %s", name, err ? err->msg : "");
	return rc;
}

void vg_tz_free(struct vg_tz *tz)
{
	if (!tz)
		return;
	free(tz->at);
	free(tz->off);
	free(tz);
}

int32_t vg_tz_offset(const struct vg_tz *tz, int64_t t, int64_t *next)
{
	int64_t nx;
	size_t lo = 0, hi;
	int32_t off;

	if (!next)
		next = &nx;
	if (!tz) {
		*next = INT64_MAX;
		return 0;
	}
	if (tz->n == 0 || t >= tz->at[tz->n - 1]) {
		if (tz->has_rule)
			return rule_offset(&tz->rule, t, next);
		*next = INT64_MAX;
		return tz->n ? tz->off[tz->n - 1] : tz->first_off;
	}
	if (t < tz->at[0]) {
		*next = tz->at[0];
		return tz->first_off;
	}
	/* the last transition at or before t */
	hi = tz->n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (tz->at[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	off = tz->off[lo];
	*next = tz->at[lo + 1];
	return off;
}
