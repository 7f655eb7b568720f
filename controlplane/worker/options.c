/* options.c - vigil-worker's settings: one table of flag, environment
 * variable, type, default and range; the environment first, then flags. */
#include "options.h"

#include "vigil/buf.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* OPT_SECONDS: a duration kept in seconds (long long), for periods too
 * long for OPT_DURATION's int milliseconds; its min/max are seconds */
enum opt_type { OPT_STR, OPT_INT, OPT_DURATION, OPT_SECONDS, OPT_BOOL };

struct opt {
	const char *flag; /* without "--"; NULL: environment only */
	const char *env;  /* NULL: flag only */
	enum opt_type type;
	size_t offset;
	const char *def;
	long long min, max; /* numbers; durations in ms */
	const char *help;
};

#define OFF(f) offsetof(struct options, f)

static const struct opt opts[] = {
	{"redis-host", "VIGIL_REDIS_HOST", OPT_STR, OFF(redis_host),
         "127.0.0.1", 0, 0, "Redis host"},
	{"redis-port", "VIGIL_REDIS_PORT", OPT_INT, OFF(redis_port), "6379", 1,
         65535, "Redis port"},
	{NULL, "VIGIL_REDIS_PASSWORD", OPT_STR, OFF(redis_password), NULL, 0, 0,
         "Redis password (environment only)"},
	{"redis-db", "VIGIL_REDIS_DB", OPT_INT, OFF(redis_db), "0", 0, 1000,
         "Redis database number"},
	{"queue-prefix", "VIGIL_QUEUE_PREFIX", OPT_STR, OFF(queue_prefix),
         "vigil", 0, 0, "hash tag of the queue's Redis keys"},
	{"db-host", "VIGIL_DB_HOST", OPT_STR, OFF(db_host), "127.0.0.1", 0, 0,
         "PostgreSQL host"},
	{"db-port", "VIGIL_DB_PORT", OPT_INT, OFF(db_port), "5432", 1, 65535,
         "PostgreSQL port"},
	{"db-name", "VIGIL_DB_NAME", OPT_STR, OFF(db_name), "vigil", 0, 0,
         "PostgreSQL database"},
	{"db-user", "VIGIL_DB_USER", OPT_STR, OFF(db_user), "vigil_app", 0, 0,
         "PostgreSQL user"},
	{NULL, "VIGIL_DB_PASSWORD", OPT_STR, OFF(db_password), NULL, 0, 0,
         "PostgreSQL password (environment only)"},
	{"db-sslmode", "VIGIL_DB_SSLMODE", OPT_STR, OFF(db_sslmode), "prefer",
         0, 0, "libpq sslmode"},
	{"log-level", "VIGIL_LOG_LEVEL", OPT_STR, OFF(log_level), "info", 0, 0,
         "debug, info, warn or error"},
	{"health-port", "VIGIL_HEALTH_PORT", OPT_INT, OFF(health_port), "9090",
         0, 65535, "port of /healthz, /readyz and /metrics"},
	{"health-addr", NULL, OPT_STR, OFF(health_addr), NULL, 0, 0,
         "host:port of the health listener (overrides --health-port)"},
	{"concurrency", "VIGIL_WORKER_CONCURRENCY", OPT_INT, OFF(concurrency),
         "4", 1, 256, "tasks processed at once (threads)"},
	{"prefetch", "VIGIL_WORKER_PREFETCH", OPT_INT, OFF(prefetch), "16", 1,
         256, "tasks one thread claims at once"},
	{"visibility-timeout", "VIGIL_WORKER_VISIBILITY_TIMEOUT", OPT_DURATION,
         OFF(visibility_ms), "30s", 100, 3600000,
         "a task held this long without renewal goes to another worker"},
	{"shutdown-timeout", "VIGIL_WORKER_SHUTDOWN_TIMEOUT", OPT_DURATION,
         OFF(shutdown_ms), "25s", 0, 3600000,
         "on SIGTERM, how long tasks in flight may take to finish"},
	{"cold-storage-dir", "VIGIL_COLD_STORAGE_DIR", OPT_STR, OFF(cold_dir),
         "/var/lib/vigil/cold", 0, 0,
         "root directory of archived scan results"},
	{"archive-retention", "VIGIL_ARCHIVE_RETENTION", OPT_SECONDS,
         OFF(archive_retention_s), "90d", 1, 36500LL * 86400,
         "finished runs older than this are archived"},
	{"archive-interval", "VIGIL_ARCHIVE_INTERVAL", OPT_SECONDS,
         OFF(archive_interval_s), "1h", 0, 366LL * 86400,
         "one archive sweep per interval across all workers (0: none)"},
	{"archive-sweep-limit", "VIGIL_ARCHIVE_SWEEP_LIMIT", OPT_INT,
         OFF(archive_sweep_limit), "500", 1, 10000,
         "runs one archive sweep enqueues"},
	{"archive-zstd-level", "VIGIL_ARCHIVE_ZSTD_LEVEL", OPT_INT,
         OFF(archive_zstd_level), "3", 1, 19, "zstd level of archives"},
	{"version", NULL, OPT_BOOL, OFF(show_version), "false", 0, 0,
         "print the version and exit"},
	{"help", NULL, OPT_BOOL, OFF(show_help), "false", 0, 0,
         "print this help and exit"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const struct {
	const char *suffix;
	long long ms;
} units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
             {"h", 3600000}, {"d", 86400000}, {"", 1000}};

static int parse_duration(const char *v, long long *ms)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno || end == v || x < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].suffix) == 0) {
			*ms = (long long)(x * (double)units[i].ms + 0.5);
			return 0;
		}
	return -1;
}

static int set_value(struct options *o, const struct opt *d, const char *v,
                     const char *source, struct vg_err *err)
{
	char *base = (char *)o + d->offset, *end;
	long long x;

	switch (d->type) {
	case OPT_STR: {
		char **p = (char **)(void *)base;
		char *copy = strdup(v ? v : "");

		if (!copy)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		free(*p);
		*p = copy;
		return VG_OK;
	}
	case OPT_BOOL:
		if (!v || !strcasecmp(v, "true") || !strcmp(v, "1"))
			*(int *)(void *)base = 1;
		else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
			*(int *)(void *)base = 0;
		else
			return vg_err_set(err, VG_INVAL,
			                  "%s: want true or false, got \"%s\"",
			                  source, v);
		return VG_OK;
	case OPT_INT:
		errno = 0;
		x = v ? strtoll(v, &end, 10) : 0;
		if (!v || !*v || errno || *end || x < d->min || x > d->max)
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not an integer in "
			                  "[%lld, %lld]",
			                  source, v ? v : "", d->min, d->max);
		*(int *)(void *)base = (int)x;
		return VG_OK;
	case OPT_DURATION:
		if (!v || parse_duration(v, &x) < 0 || x < d->min || x > d->max)
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not a duration (such "
			                  "as 30s, 500ms, 2m) in [%lldms, "
			                  "%lldms]",
			                  source, v ? v : "", d->min, d->max);
		*(int *)(void *)base = (int)x;
		return VG_OK;
	case OPT_SECONDS:
		if (!v || parse_duration(v, &x) < 0 || x / 1000 < d->min ||
		    x / 1000 > d->max || (x && x < 1000))
			return vg_err_set(err, VG_INVAL,
			                  "%s: \"%s\" is not a duration (such "
			                  "as 90d, 12h, 30m) in [%llds, %llds]",
			                  source, v ? v : "", d->min, d->max);
		*(long long *)(void *)base = x / 1000;
		return VG_OK;
	}
	return VG_INVAL;
}

static const struct opt *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].flag && strlen(opts[i].flag) == len &&
		    strncmp(opts[i].flag, name, len) == 0)
			return &opts[i];
	return NULL;
}

int options_parse(struct options *o, int argc, char **argv, struct vg_err *err)
{
	char src[80];
	int rc, i;

	memset(o, 0, sizeof(*o));
	for (size_t k = 0; k < NOPTS; k++) {
		const char *v = opts[k].env ? getenv(opts[k].env) : NULL;

		if (opts[k].def &&
		    (rc = set_value(o, &opts[k], opts[k].def, "default", err)))
			return rc;
		if (v && *v &&
		    (rc = set_value(o, &opts[k], v, opts[k].env, err)))
			return rc;
	}
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i] + 2, *eq = strchr(a, '='), *val = NULL;
		const struct opt *d =
			find_flag(a, eq ? (size_t)(eq - a) : strlen(a));

		if (!d)
			return vg_err_set(err, VG_INVAL, "unknown flag %s",
			                  argv[i]);
		if (eq)
			val = eq + 1;
		else if (d->type != OPT_BOOL) {
			if (i + 1 >= argc)
				return vg_err_set(err, VG_INVAL,
				                  "flag --%s needs a value",
				                  d->flag);
			val = argv[++i];
		}
		snprintf(src, sizeof(src), "--%s", d->flag);
		if ((rc = set_value(o, d, val, src, err)))
			return rc;
	}
	o->args = argv + i;
	o->nargs = argc - i;
	return VG_OK;
}

void options_cleanup(struct options *o)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].type == OPT_STR) {
			char **p =
				(char **)(void *)((char *)o + opts[i].offset);

			if (*p)
				explicit_bzero(*p, strlen(*p));
			free(*p);
		}
	memset(o, 0, sizeof(*o));
}

void options_usage(const char *prog, FILE *fp)
{
	fprintf(fp,
	        "usage: %s [flags]                 process tasks\n"
	        "       %s [flags] dlq list [--type T] [--limit N]\n"
	        "       %s [flags] dlq replay (ID... | --all [--type T])\n"
	        "       %s [flags] dlq purge (ID... | --all [--type T])\n"
	        "       %s [flags] archive run TENANT_ID RUN_ID\n"
	        "       %s [flags] archive restore RUN_ID\n"
	        "       %s [flags] archive sweep\n\n"
	        "flags (and environment):\n",
	        prog, prog, prog, prog, prog, prog, prog);
	for (size_t i = 0; i < NOPTS; i++) {
		char name[40];

		snprintf(name, sizeof(name), "%s%s", opts[i].flag ? "--" : "",
		         opts[i].flag ? opts[i].flag : "");
		fprintf(fp, "  %-22s %-32s %s%s%s%s\n", name,
		        opts[i].env ? opts[i].env : "", opts[i].help,
		        opts[i].def ? " (default " : "",
		        opts[i].def ? opts[i].def : "", opts[i].def ? ")" : "");
	}
}

/* Append key='value' with libpq's quoting (\\ and \'). */
static int append_kv(struct vg_buf *b, const char *key, const char *v)
{
	int rc = vg_buf_appendf(b, "%s%s='", b->len ? " " : "", key);

	for (const char *p = v; !rc && *p; p++) {
		if (*p == '\\' || *p == '\'')
			rc = vg_buf_append_byte(b, '\\');
		if (!rc)
			rc = vg_buf_append_byte(b, *p);
	}
	return rc ? rc : vg_buf_append_byte(b, '\'');
}

char *options_conninfo(const struct options *o)
{
	struct vg_buf b;
	char port[16];
	int rc;

	snprintf(port, sizeof(port), "%d", o->db_port);
	vg_buf_init(&b, 0);
	rc = append_kv(&b, "host", o->db_host);
	if (!rc)
		rc = append_kv(&b, "port", port);
	if (!rc)
		rc = append_kv(&b, "dbname", o->db_name);
	if (!rc)
		rc = append_kv(&b, "user", o->db_user);
	if (!rc && o->db_password && *o->db_password)
		rc = append_kv(&b, "password", o->db_password);
	if (!rc && o->db_sslmode && *o->db_sslmode)
		rc = append_kv(&b, "sslmode", o->db_sslmode);
	if (!rc)
		rc = append_kv(&b, "application_name", "vigil-worker");
	if (rc) {
		vg_buf_cleanup(&b);
		return NULL;
	}
	return vg_buf_take(&b);
}

const char *options_health_addr(const struct options *o, char *buf, size_t n)
{
	if (o->health_addr && *o->health_addr)
		return o->health_addr;
	snprintf(buf, n, ":%d", o->health_port);
	return buf;
}
