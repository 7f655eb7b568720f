/* options.h - vigil-operator's command-line flags and environment. */
#ifndef VIGIL_OPERATOR_OPTIONS_H
#define VIGIL_OPERATOR_OPTIONS_H

#include "vigil/err.h"

struct options {
	char *kubeconfig;	/* NULL: in-cluster, or $KUBECONFIG */
	char *ns;		/* watch namespace; NULL: all */
	int leader_elect;
	char *leader_ns;	/* Lease namespace */
	char *leader_id;	/* Lease name */
	char *metrics_addr;	/* "127.0.0.1:8080"; "0" disables */
	char *health_addr;	/* "127.0.0.1:8081" */
	double qps;
	int burst;
	int workers;
	char *agent_image;	/* scanner agent image, or NULL */
	char *agent_gateway_url; /* gateway URL for agents, or NULL */
	char *database_url;	/* platform database for Tenant rows, or NULL */
	char *log_level;
	int show_version;
	int show_help;
};

/*
 * Fill `o` from defaults, then the environment (VIGIL_<FLAG>, e.g.
 * VIGIL_LEADER_ELECT=true), then argv (--flag=value or --flag value).
 * Returns 0, or VG_INVAL with a message naming the bad flag or value.
 */
int options_parse(struct options *o, int argc, char **argv,
		  struct vg_err *err);
void options_cleanup(struct options *o);
/* Usage text to `fp`. */
void options_usage(const char *prog, void *fp);

#endif
