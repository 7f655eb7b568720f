/* options.h - vigil-agent's configuration: the flags and environment
 * variables the operator renders into an agent pod (see README.md), from
 * one table. */
#ifndef AGENT_OPTIONS_H
#define AGENT_OPTIONS_H

#include <stdio.h>

#include "vigil/err.h"

struct options {
	/* what to scan */
	char *targets;
	char *exclude;
	char *ports;
	char *scanners;
	char *allowed;
	int allow_loopback;

	/* how fast */
	int rate;
	int per_target_rate;
	int connect_timeout_ms;
	int retries;
	int max_in_flight;
	int banner_timeout_ms;
	int service_timeout_ms;
	int workers;

	/* sharding */
	int shards;
	int shard;

	/* where results go */
	char *gateway;
	char *token; /* VIGIL_AGENT_TOKEN, environment only */
	char *token_file;
	char *tenant_id;
	char *job_name;
	char *policy_namespace;
	char *policy_name;
	char *policy_uid;
	char *trigger;
	char *spool_dir;
	int batch_size;
	char *output;
	int estop_interval_ms;
	int flush_timeout_ms;

	char *log_level;
	int show_version, show_help;
};

/* Defaults, then the environment, then argv[1..] flags. VG_INVAL with a
 * message naming the flag or variable. Positional arguments are refused. */
int options_parse(struct options *o, int argc, char **argv, struct vg_err *err);
/* Checks across settings (required ones, formats) and reads --token-file.
 * VG_INVAL with a message. */
int options_check(struct options *o, struct vg_err *err);
/* Frees every string; the token is wiped first. */
void options_cleanup(struct options *o);
void options_usage(const char *prog, FILE *fp);

#endif
