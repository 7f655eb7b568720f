/* options.c - vigil-brain's settings: one table of flag, environment
 * variable, type, default and range; the environment first, then flags. */
#include "options.h"

#include "vigil/db.h"
#include "vigil/opts.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(struct options, f)

static const struct vg_opt opts[] = {
	{"redis-host", "VIGIL_REDIS_HOST", VG_OPT_STR, OFF(redis_host),
         "127.0.0.1", 0, 0, "Redis host"},
	{"redis-port", "VIGIL_REDIS_PORT", VG_OPT_INT, OFF(redis_port), "6379", 1,
         65535, "Redis port"},
	{NULL, "VIGIL_REDIS_PASSWORD", VG_OPT_STR, OFF(redis_password), NULL, 0, 0,
         "Redis password (environment only)"},
	{"redis-db", "VIGIL_REDIS_DB", VG_OPT_INT, OFF(redis_db), "0", 0, 1000,
         "Redis database number"},
	{"queue-prefix", "VIGIL_BRAIN_QUEUE_PREFIX", VG_OPT_STR, OFF(queue_prefix),
         "vigil-brain", 0, 0,
         "hash tag of the brain's queue keys (never the worker's)"},
	{"db-host", "VIGIL_DB_HOST", VG_OPT_STR, OFF(db_host), "127.0.0.1", 0, 0,
         "PostgreSQL host"},
	{"db-port", "VIGIL_DB_PORT", VG_OPT_INT, OFF(db_port), "5432", 1, 65535,
         "PostgreSQL port"},
	{"db-name", "VIGIL_DB_NAME", VG_OPT_STR, OFF(db_name), "vigil", 0, 0,
         "PostgreSQL database"},
	{"db-user", "VIGIL_DB_USER", VG_OPT_STR, OFF(db_user), "vigil_app", 0, 0,
         "PostgreSQL user"},
	{NULL, "VIGIL_DB_PASSWORD", VG_OPT_STR, OFF(db_password), NULL, 0, 0,
         "PostgreSQL password (environment only)"},
	{"db-sslmode", "VIGIL_DB_SSLMODE", VG_OPT_STR, OFF(db_sslmode), "prefer",
         0, 0, "libpq sslmode"},
	{"log-level", "VIGIL_LOG_LEVEL", VG_OPT_STR, OFF(log_level), "info", 0, 0,
         "debug, info, warn or error"},
	{"health-port", "VIGIL_HEALTH_PORT", VG_OPT_INT, OFF(health_port), "9090",
         0, 65535, "port of /healthz, /readyz and /metrics"},
	{"health-addr", NULL, VG_OPT_STR, OFF(health_addr), NULL, 0, 0,
         "host:port of the health listener (overrides --health-port)"},
	{"port", "VIGIL_BRAIN_PORT", VG_OPT_INT, OFF(api_port), "8081", 0, 65535,
         "port of the report API (POST /v1/reports)"},
	{"listen", "VIGIL_BRAIN_LISTEN", VG_OPT_STR, OFF(api_addr), NULL, 0, 0,
         "host:port of the report API (overrides --port)"},
	{NULL, "VIGIL_BRAIN_TOKEN", VG_OPT_STR, OFF(api_token), NULL, 0, 0,
         "bearer token of the report API's callers, 16 bytes or more "
         "(environment only; without it the API is off)"},
	{"api-deadline", "VIGIL_BRAIN_API_DEADLINE", VG_OPT_DURATION,
         OFF(api_deadline_ms), "10s", 0, 120000,
         "how long a report request waits for its report before 202"},
	{"api-threads", "VIGIL_BRAIN_API_THREADS", VG_OPT_INT, OFF(api_threads),
         "8", 1, 256, "report API requests served at once"},
	{"concurrency", "VIGIL_BRAIN_CONCURRENCY", VG_OPT_INT, OFF(concurrency),
         "2", 1, 64, "reports generated at once (threads)"},
	{"visibility-timeout", "VIGIL_BRAIN_VISIBILITY_TIMEOUT", VG_OPT_DURATION,
         OFF(visibility_ms), "60s", 1000, 3600000,
         "a report task held this long without renewal goes to another "
         "brain"},
	{"shutdown-timeout", "VIGIL_BRAIN_SHUTDOWN_TIMEOUT", VG_OPT_DURATION,
         OFF(shutdown_ms), "25s", 0, 3600000,
         "on SIGTERM, how long reports in flight may take to finish"},
	{"sweep-interval", "VIGIL_BRAIN_SWEEP_INTERVAL", VG_OPT_DURATION,
         OFF(sweep_ms), "1s", 50, 600000,
         "how often pending reports are looked for"},
	{"requeue-after", "VIGIL_BRAIN_REQUEUE_AFTER", VG_OPT_DURATION,
         OFF(requeue_after_ms), "10m", 1000, 86400000,
         "queue a report again when still pending this long after"},
	{"trend-runs", "VIGIL_BRAIN_TREND_RUNS", VG_OPT_INT, OFF(trend_runs), "10",
         1, 100, "runs of the policy in a report's trend"},
	{"list-max", "VIGIL_BRAIN_LIST_MAX", VG_OPT_INT, OFF(list_max), "1000", 1,
         1000000, "findings per class listed in the JSON report"},
	{"asset-criticality", "VIGIL_BRAIN_ASSET_CRITICALITY", VG_OPT_STR,
         OFF(asset_criticality), NULL, 0, 0,
         "host=low|medium|high|critical,... (other hosts: medium)"},
	{"version", NULL, VG_OPT_BOOL, OFF(show_version), "false", 0, 0,
         "print the version and exit"},
	{"help", NULL, VG_OPT_BOOL, OFF(show_help), "false", 0, 0,
         "print this help and exit"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int options_parse(struct options *o, int argc, char **argv, struct vg_err *err)
{
	int first = argc, rc;

	memset(o, 0, sizeof(*o));
	rc = vg_opts_parse(opts, NOPTS, o, argc, argv, &first, err);
	o->args = argv + first;
	o->nargs = argc - first;
	return rc;
}

void options_cleanup(struct options *o)
{
	vg_opts_cleanup(opts, NOPTS, o);
	memset(o, 0, sizeof(*o));
}

void options_usage(const char *prog, FILE *fp)
{
	fprintf(fp,
	        "usage: %s [flags]                     generate reports\n"
	        "       %s [flags] generate TENANT RUN  one report, now\n\n"
	        "flags (and environment):\n",
	        prog, prog);
	vg_opts_usage(opts, NOPTS, fp);
}

char *options_conninfo(const struct options *o)
{
	return vg_db_conninfo(o->db_host, o->db_port, o->db_name, o->db_user,
			      o->db_password, o->db_sslmode);
}

const char *options_api_addr(const struct options *o, char *buf, size_t n)
{
	if (o->api_addr && *o->api_addr)
		return o->api_addr;
	snprintf(buf, n, ":%d", o->api_port);
	return buf;
}

const char *options_health_addr(const struct options *o, char *buf, size_t n)
{
	if (o->health_addr && *o->health_addr)
		return o->health_addr;
	snprintf(buf, n, ":%d", o->health_port);
	return buf;
}
