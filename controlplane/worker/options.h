/* options.h - vigil-worker's configuration: the operator's environment
 * contract (VIGIL_REDIS_*, VIGIL_DB_*, VIGIL_LOG_LEVEL, VIGIL_HEALTH_PORT),
 * the archive's settings (VIGIL_ARCHIVE_*, VIGIL_COLD_STORAGE_DIR) and
 * flags, from one table. */
#ifndef WORKER_OPTIONS_H
#define WORKER_OPTIONS_H

#include <stdio.h>

#include "vigil/err.h"

struct options {
	char *redis_host;
	int redis_port;
	char *redis_password;
	int redis_db;
	char *queue_prefix;

	char *db_host;
	int db_port;
	char *db_name;
	char *db_user;
	char *db_password;
	char *db_sslmode;

	char *log_level;
	int health_port;
	char *health_addr; /* overrides health_port ("127.0.0.1:0") */

	int concurrency;
	int prefetch;
	int visibility_ms;
	int shutdown_ms;

	char *cold_dir;                /* archive objects' root */
	long long archive_retention_s; /* archived once finished this long */
	long long archive_interval_s;  /* between sweeps; 0: none */
	int archive_sweep_limit;
	int archive_zstd_level;

	int show_version, show_help;

	/* the words after the flags ("dlq", "list", ...); borrowed */
	char **args;
	int nargs;
};

/* Defaults, then the environment, then argv[1..] flags up to the first
 * word that is no flag (a subcommand). VG_INVAL with a message. */
int options_parse(struct options *o, int argc, char **argv, struct vg_err *err);
void options_cleanup(struct options *o);
void options_usage(const char *prog, FILE *fp);

/* libpq conninfo from the VIGIL_DB_* settings (values quoted); new. */
char *options_conninfo(const struct options *o);
/* The health listener's address; writes into `buf`. */
const char *options_health_addr(const struct options *o, char *buf, size_t n);

#endif
