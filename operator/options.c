/* options.c - vigil-operator's flags: one table, environment then argv. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum opt_type { OPT_STR, OPT_BOOL, OPT_INT, OPT_DOUBLE };

struct opt {
	const char *name; /* flag name without "--" */
	enum opt_type type;
	size_t offset;
	const char *def;
	double min, max; /* numbers only */
	const char *help;
};

#define OFF(f) offsetof(struct options, f)

static const struct opt opts[] = {
	{ "kubeconfig", OPT_STR, OFF(kubeconfig), NULL, 0, 0,
	  "kubeconfig file (default: in-cluster, else $KUBECONFIG)" },
	{ "namespace", OPT_STR, OFF(ns), NULL, 0, 0,
	  "watch only this namespace (default: all)" },
	{ "leader-elect", OPT_BOOL, OFF(leader_elect), "false", 0, 0,
	  "elect a leader on a Lease; only the leader writes" },
	{ "leader-election-namespace", OPT_STR, OFF(leader_ns),
	  "vigil-system", 0, 0, "namespace of the leader election Lease" },
	{ "leader-election-id", OPT_STR, OFF(leader_id), "vigil-operator",
	  0, 0, "name of the leader election Lease" },
	{ "metrics-addr", OPT_STR, OFF(metrics_addr), "127.0.0.1:8080", 0, 0,
	  "address of /metrics (\"0\" disables)" },
	{ "health-addr", OPT_STR, OFF(health_addr), "127.0.0.1:8081", 0, 0,
	  "address of /healthz and /readyz" },
	{ "qps", OPT_DOUBLE, OFF(qps), "20", 0.1, 10000,
	  "API requests per second (client-side limit)" },
	{ "burst", OPT_INT, OFF(burst), "40", 1, 100000,
	  "API request burst" },
	{ "workers", OPT_INT, OFF(workers), "2", 1, 64,
	  "concurrent reconciles per controller" },
	{ "database-url", OPT_STR, OFF(database_url), NULL, 0, 0,
	  "platform database for tenant rows (default: from the Platform)" },
	{ "agent-image", OPT_STR, OFF(agent_image), NULL, 0, 0,
	  "scanner agent image (default: <imageRegistry>/vigil-agent:<version> "
	  "of the Platform)" },
	{ "agent-gateway-url", OPT_STR, OFF(agent_gateway_url), NULL, 0, 0,
	  "gateway URL agents post results to (default: the Platform's "
	  "status.endpoint)" },
	{ "log-level", OPT_STR, OFF(log_level), "info", 0, 0,
	  "debug, info, warn or error" },
	{ "version", OPT_BOOL, OFF(show_version), "false", 0, 0,
	  "print the version and exit" },
	{ "help", OPT_BOOL, OFF(show_help), "false", 0, 0,
	  "print this help and exit" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int set_value(struct options *o, const struct opt *d, const char *v,
		     const char *source, struct vg_err *err)
{
	char *base = (char *)o + d->offset, *end;

	switch (d->type) {
	case OPT_STR: {
		char **p = (char **)(void *)base;
		char *copy = v ? strdup(v) : NULL;

		if (v && !copy)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		free(*p);
		*p = copy;
		return VG_OK;
	}
	case OPT_BOOL: {
		int *p = (int *)(void *)base;

		if (!v || !strcasecmp(v, "true") || !strcmp(v, "1"))
			*p = 1;
		else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
			*p = 0;
		else
			return vg_err_set(err, VG_INVAL,
					  "%s %s: want true or false, got "
					  "\"%s\"",
					  source, d->name, v);
		return VG_OK;
	}
	case OPT_INT:
	case OPT_DOUBLE: {
		double x;

		if (!v || !*v)
			return vg_err_set(err, VG_INVAL, "%s %s: missing value",
					  source, d->name);
		errno = 0;
		x = strtod(v, &end);
		if (errno || *end || x < d->min || x > d->max ||
		    (d->type == OPT_INT && x != (double)(long)x))
			return vg_err_set(err, VG_INVAL,
					  "%s %s: \"%s\" is not a%s number "
					  "in [%g, %g]",
					  source, d->name, v,
					  d->type == OPT_INT ? "n integer" : "",
					  d->min, d->max);
		if (d->type == OPT_INT)
			*(int *)(void *)base = (int)x;
		else
			*(double *)(void *)base = x;
		return VG_OK;
	}
	}
	return VG_INVAL;
}

static const struct opt *find(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

int options_parse(struct options *o, int argc, char **argv,
		  struct vg_err *err)
{
	char env[64];
	int rc;

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < NOPTS; i++) {
		const char *v;
		size_t j = 0;

		if (opts[i].def &&
		    (rc = set_value(o, &opts[i], opts[i].def, "default", err)))
			return rc;
		/* --leader-elect -> VIGIL_LEADER_ELECT */
		j = (size_t)snprintf(env, sizeof(env), "VIGIL_");
		for (const char *p = opts[i].name; *p && j + 1 < sizeof(env);
		     p++)
			env[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
		env[j] = '\0';
		v = getenv(env);
		if (v && *v && (rc = set_value(o, &opts[i], v, env, err)))
			return rc;
	}

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		const struct opt *d;

		if (strncmp(a, "--", 2) != 0)
			return vg_err_set(err, VG_INVAL,
					  "unexpected argument \"%s\"", a);
		a += 2;
		eq = strchr(a, '=');
		d = find(a, eq ? (size_t)(eq - a) : strlen(a));
		if (!d)
			return vg_err_set(err, VG_INVAL, "unknown flag --%s",
					  a);
		if (eq)
			val = eq + 1;
		else if (d->type != OPT_BOOL) {
			if (i + 1 >= argc)
				return vg_err_set(err, VG_INVAL,
						  "flag --%s needs a value",
						  d->name);
			val = argv[++i];
		}
		if ((rc = set_value(o, d, val, "flag", err)))
			return rc;
	}
	return VG_OK;
}

void options_cleanup(struct options *o)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].type == OPT_STR)
			free(*(char **)(void *)((char *)o + opts[i].offset));
	memset(o, 0, sizeof(*o));
}

void options_usage(const char *prog, void *fp)
{
	fprintf(fp, "usage: %s [flags]\n\nflags (environment: VIGIL_<FLAG>):\n",
		prog);
	for (size_t i = 0; i < NOPTS; i++)
		fprintf(fp, "  --%-28s %s%s%s%s\n", opts[i].name, opts[i].help,
			opts[i].def ? " (default " : "",
			opts[i].def ? opts[i].def : "", opts[i].def ? ")" : "");
}
