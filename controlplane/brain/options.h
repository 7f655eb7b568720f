/* options.h - vigil-brain's configuration: the operator's environment
 * contract (VIGIL_REDIS_*, VIGIL_DB_*, VIGIL_LOG_LEVEL, VIGIL_HEALTH_PORT,
 * VIGIL_BRAIN_PORT, VIGIL_BRAIN_*) and flags, from one table. */
#ifndef BRAIN_OPTIONS_H
#define BRAIN_OPTIONS_H

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

	int api_port;
	char *api_addr;  /* overrides api_port */
	char *api_token; /* NULL: no API */
	int api_deadline_ms;
	int api_threads;

	int concurrency;
	int visibility_ms;
	int shutdown_ms;
	int sweep_ms;
	int requeue_after_ms;
	int trend_runs;
	int list_max;
	char *asset_criticality; /* "host=level,..." */

	int show_version, show_help;

	/* the words after the flags ("generate", ...); borrowed */
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
/* The API listener's address; writes into `buf`. */
const char *options_api_addr(const struct options *o, char *buf, size_t n);
/* The health listener's address; writes into `buf`. */
const char *options_health_addr(const struct options *o, char *buf, size_t n);

#endif
