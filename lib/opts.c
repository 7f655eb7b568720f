/* opts.c - settings tables: defaults, environment, flags (see opts.h). */
#include "vigil/opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *suffix;
	long long ms;
} units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
             {"h", 3600000}, {"d", 86400000}, {"", 1000}};

int vg_opts_duration(const char *v, long long *ms)
{
	char *end;
	double x;

	if (!v)
		return -1;
	errno = 0;
	x = strtod(v, &end);
	if (errno || end == v || x < 0 || x > 1e12)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].suffix) == 0) {
			*ms = (long long)(x * (double)units[i].ms + 0.5);
			return 0;
		}
	return -1;
}

static void wipe_free(char **p)
{
	if (*p)
		explicit_bzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

int vg_opts_set(const struct vg_opt *o, void *dst, const char *v,
                const char *source, struct vg_err *err)
{
	char *base = (char *)dst + o->offset, *end;
	long long x;
	double d;

	switch (o->type) {
	case VG_OPT_STR: {
		char **p = (char **)(void *)base;
		char *copy = strdup(v ? v : "");

		if (!copy)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		wipe_free(p);
		*p = copy;
		return VG_OK;
	}
	case VG_OPT_BOOL:
		if (!v || !strcasecmp(v, "true") || !strcmp(v, "1"))
			*(int *)(void *)base = 1;
		else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
			*(int *)(void *)base = 0;
		else
			return vg_err_set(err, VG_INVAL,
			                  "%s: want true or false, got \"%s\"",
			                  source, v);
		return VG_OK;
	case VG_OPT_INT:
		errno = 0;
		x = v ? strtoll(v, &end, 10) : 0;
		if (!v || !*v || errno || *end || (double)x < o->min ||
		    (double)x > o->max)
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not an integer in "
			                  "[%.0f, %.0f]",
			                  source, v ? v : "", o->min, o->max);
		*(int *)(void *)base = (int)x;
		return VG_OK;
	case VG_OPT_DURATION:
		if (vg_opts_duration(v, &x) < 0 || (double)x < o->min ||
		    (double)x > o->max)
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not a duration (such "
			                  "as 30s, 500ms, 2m) in [%.0fms, "
			                  "%.0fms]",
			                  source, v ? v : "", o->min, o->max);
		*(int *)(void *)base = (int)x;
		return VG_OK;
	case VG_OPT_SECONDS:
		if (vg_opts_duration(v, &x) < 0 ||
		    (double)(x / 1000) < o->min ||
		    (double)(x / 1000) > o->max || (x && x < 1000))
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not a duration (such "
			                  "as 90d, 12h, 30m) in [%.0fs, %.0fs]",
			                  source, v ? v : "", o->min, o->max);
		*(long long *)(void *)base = x / 1000;
		return VG_OK;
	case VG_OPT_DOUBLE:
		errno = 0;
		d = v ? strtod(v, &end) : 0;
		if (!v || !*v || errno || *end || d != d || d < o->min ||
		    d > o->max)
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not a number in "
			                  "[%g, %g]",
			                  source, v ? v : "", o->min, o->max);
		*(double *)(void *)base = d;
		return VG_OK;
	}
	return vg_err_set(err, VG_INVAL, "%s: unknown setting type", source);
}

static const struct vg_opt *find_flag(const struct vg_opt *opts, size_t n,
                                      const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (opts[i].flag && strlen(opts[i].flag) == len &&
		    strncmp(opts[i].flag, name, len) == 0)
			return &opts[i];
	return NULL;
}

int vg_opts_parse(const struct vg_opt *opts, size_t n, void *dst, int argc,
                  char **argv, int *first, struct vg_err *err)
{
	char src[80];
	int rc, i;

	for (size_t k = 0; k < n; k++) {
		const char *v = opts[k].env ? getenv(opts[k].env) : NULL;

		if (opts[k].def && (rc = vg_opts_set(&opts[k], dst, opts[k].def,
		                                     "default", err)))
			return rc;
		if (v && *v &&
		    (rc = vg_opts_set(&opts[k], dst, v, opts[k].env, err)))
			return rc;
	}
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i] + 2, *eq = strchr(a, '='), *val = NULL;
		const struct vg_opt *d = find_flag(
			opts, n, a, eq ? (size_t)(eq - a) : strlen(a));

		if (!d)
			return vg_err_set(err, VG_INVAL, "unknown flag %.*s",
			                  eq ? (int)(eq - argv[i])
			                     : (int)strlen(argv[i]),
			                  argv[i]);
		if (eq)
			val = eq + 1;
		else if (d->type != VG_OPT_BOOL) {
			if (i + 1 >= argc)
				return vg_err_set(err, VG_INVAL,
				                  "flag --%s needs a value",
				                  d->flag);
			val = argv[++i];
		}
		snprintf(src, sizeof(src), "--%s", d->flag);
		if ((rc = vg_opts_set(d, dst, val, src, err)))
			return rc;
	}
	if (first)
		*first = i;
	return VG_OK;
}

void vg_opts_cleanup(const struct vg_opt *opts, size_t n, void *dst)
{
	for (size_t i = 0; i < n; i++)
		if (opts[i].type == VG_OPT_STR)
			wipe_free((char **)(void *)((char *)dst +
			                            opts[i].offset));
}

void vg_opts_usage(const struct vg_opt *opts, size_t n, FILE *fp)
{
	size_t wf = 0, we = 0;

	for (size_t i = 0; i < n; i++) {
		size_t f = opts[i].flag ? strlen(opts[i].flag) + 2 : 0;
		size_t e = opts[i].env ? strlen(opts[i].env) : 0;

		wf = f > wf ? f : wf;
		we = e > we ? e : we;
	}
	for (size_t i = 0; i < n; i++) {
		const char *d =
			opts[i].def && *opts[i].def ? opts[i].def : NULL;

		fprintf(fp, "  %s%-*s  %-*s  %s%s%s%s\n",
		        opts[i].flag ? "--" : "  ", (int)wf - 2,
		        opts[i].flag ? opts[i].flag : "", (int)we,
		        opts[i].env ? opts[i].env : "", opts[i].help,
		        d ? " (default " : "", d ? d : "", d ? ")" : "");
	}
}
