/* options.c - vigil-worker's settings: one table of flag, environment
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
	{"queue-prefix", "VIGIL_QUEUE_PREFIX", VG_OPT_STR, OFF(queue_prefix),
         "vigil", 0, 0, "hash tag of the queue's Redis keys"},
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
	{"concurrency", "VIGIL_WORKER_CONCURRENCY", VG_OPT_INT, OFF(concurrency),
         "4", 1, 256, "tasks processed at once (threads)"},
	{"prefetch", "VIGIL_WORKER_PREFETCH", VG_OPT_INT, OFF(prefetch), "16", 1,
         256, "tasks one thread claims at once"},
	{"visibility-timeout", "VIGIL_WORKER_VISIBILITY_TIMEOUT", VG_OPT_DURATION,
         OFF(visibility_ms), "30s", 100, 3600000,
         "a task held this long without renewal goes to another worker"},
	{"shutdown-timeout", "VIGIL_WORKER_SHUTDOWN_TIMEOUT", VG_OPT_DURATION,
         OFF(shutdown_ms), "25s", 0, 3600000,
         "on SIGTERM, how long tasks in flight may take to finish"},
	{"cold-storage-dir", "VIGIL_COLD_STORAGE_DIR", VG_OPT_STR, OFF(cold_dir),
         "/var/lib/vigil/cold", 0, 0,
         "root directory of archived scan results"},
	{"archive-retention", "VIGIL_ARCHIVE_RETENTION", VG_OPT_SECONDS,
         OFF(archive_retention_s), "90d", 1, 36500LL * 86400,
         "finished runs older than this are archived"},
	{"archive-interval", "VIGIL_ARCHIVE_INTERVAL", VG_OPT_SECONDS,
         OFF(archive_interval_s), "1h", 0, 366LL * 86400,
         "one archive sweep per interval across all workers (0: none)"},
	{"archive-sweep-limit", "VIGIL_ARCHIVE_SWEEP_LIMIT", VG_OPT_INT,
         OFF(archive_sweep_limit), "500", 1, 10000,
         "runs one archive sweep enqueues"},
	{"archive-zstd-level", "VIGIL_ARCHIVE_ZSTD_LEVEL", VG_OPT_INT,
         OFF(archive_zstd_level), "3", 1, 19, "zstd level of archives"},
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
	        "usage: %s [flags]                 process tasks\n"
	        "       %s [flags] dlq list [--type T] [--limit N]\n"
	        "       %s [flags] dlq replay (ID... | --all [--type T])\n"
	        "       %s [flags] dlq purge (ID... | --all [--type T])\n"
	        "       %s [flags] archive run TENANT_ID RUN_ID\n"
	        "       %s [flags] archive restore RUN_ID\n"
	        "       %s [flags] archive sweep\n\n"
	        "flags (and environment):\n",
	        prog, prog, prog, prog, prog, prog, prog);
	vg_opts_usage(opts, NOPTS, fp);
}

char *options_conninfo(const struct options *o)
{
	return vg_db_conninfo(o->db_host, o->db_port, o->db_name, o->db_user,
			      o->db_password, o->db_sslmode);
}

const char *options_health_addr(const struct options *o, char *buf, size_t n)
{
	if (o->health_addr && *o->health_addr)
		return o->health_addr;
	snprintf(buf, n, ":%d", o->health_port);
	return buf;
}
