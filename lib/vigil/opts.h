/*
 * opts.h - a program's settings as one table: flag, environment variable,
 * type, default, range and help (redis's standardConfig, git's option
 * tables). Defaults first, then the environment (what the operator's
 * ConfigMap renders), then flags, each checked against the same range.
 *
 *   static const struct vg_opt opts[] = {
 *       {"db-port", "VIGIL_DB_PORT", VG_OPT_INT, offsetof(struct o, port),
 *        "5432", 1, 65535, "PostgreSQL port"},
 *       ...
 *   };
 *   rc = vg_opts_parse(opts, n, &o, argc, argv, &first, &err);
 *
 * Flags are "--name value", "--name=value", or "--name" for booleans;
 * parsing stops at the first argument not starting with "--" (its index
 * in *first: subcommands and their arguments). String values are copies
 * the caller frees with vg_opts_cleanup(), which also wipes them (tokens
 * and passwords pass through here).
 */
#ifndef VG_OPTS_H
#define VG_OPTS_H

#include <stddef.h>
#include <stdio.h>

#include "vigil/err.h"

enum vg_opt_type {
	VG_OPT_STR,      /* char * */
	VG_OPT_INT,      /* int, in [min, max] */
	VG_OPT_DURATION, /* int milliseconds from "500ms", "30s", "2m", "1h",
	                    "1d" (a bare number is seconds), in [min, max] ms */
	VG_OPT_SECONDS,  /* long long seconds from a duration ("90d", "12h"),
	                    for periods too long for VG_OPT_DURATION; in
	                    [min, max] seconds, never under one second */
	VG_OPT_BOOL,     /* int: true/false/1/0 */
	VG_OPT_DOUBLE,   /* double, in [min, max] */
};

struct vg_opt {
	const char *flag; /* without "--"; NULL: environment only */
	const char *env;  /* NULL: flag only */
	enum vg_opt_type type;
	size_t offset;   /* of the field in the settings struct */
	const char *def; /* NULL: none */
	double min, max; /* numbers and durations (ms) */
	const char *help;
};

/*
 * Fill `dst` from the defaults, the environment and argv[1..]. VG_INVAL
 * with the flag or variable and the value named in err for anything
 * malformed or out of range, an unknown flag, or a flag without its
 * value. *first (may be NULL) gets the index of the first argument that
 * is not a flag (argc when there is none).
 */
int vg_opts_parse(const struct vg_opt *opts, size_t n, void *dst, int argc,
                  char **argv, int *first, struct vg_err *err);

/* Set one entry from text, as the parser does (`source` names it in
 * errors). */
int vg_opts_set(const struct vg_opt *o, void *dst, const char *value,
                const char *source, struct vg_err *err);

/* Free (and wipe) the strings the parser set. */
void vg_opts_cleanup(const struct vg_opt *opts, size_t n, void *dst);

/* One line per entry: flag, environment variable, help, default. */
void vg_opts_usage(const struct vg_opt *opts, size_t n, FILE *fp);

/* Parse a duration as VG_OPT_DURATION does: 0, or -1 when malformed. */
int vg_opts_duration(const char *v, long long *ms);

#endif
