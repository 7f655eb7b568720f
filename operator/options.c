/* options.c - vigil-operator's flags: one table, environment then argv. */
#include "options.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "vigil/opts.h"

#define OFF(f) offsetof(struct options, f)

static const struct vg_opt opts[] = {
	{"kubeconfig", "VIGIL_KUBECONFIG", VG_OPT_STR, OFF(kubeconfig), NULL, 0,
         0, "kubeconfig file (default: in-cluster, else $KUBECONFIG)"},
	{"namespace", "VIGIL_NAMESPACE", VG_OPT_STR, OFF(ns), NULL, 0, 0,
         "watch only this namespace (default: all)"},
	{"leader-elect", "VIGIL_LEADER_ELECT", VG_OPT_BOOL, OFF(leader_elect),
         "false", 0, 0, "elect a leader on a Lease; only the leader writes"},
	{"leader-election-namespace", "VIGIL_LEADER_ELECTION_NAMESPACE",
         VG_OPT_STR, OFF(leader_ns), "vigil-system", 0, 0,
         "namespace of the leader election Lease"},
	{"leader-election-id", "VIGIL_LEADER_ELECTION_ID", VG_OPT_STR,
         OFF(leader_id), "vigil-operator", 0, 0,
         "name of the leader election Lease"},
	{"metrics-addr", "VIGIL_METRICS_ADDR", VG_OPT_STR, OFF(metrics_addr),
         "127.0.0.1:8080", 0, 0, "address of /metrics (\"0\" disables)"},
	{"health-addr", "VIGIL_HEALTH_ADDR", VG_OPT_STR, OFF(health_addr),
         "127.0.0.1:8081", 0, 0, "address of /healthz and /readyz"},
	{"qps", "VIGIL_QPS", VG_OPT_DOUBLE, OFF(qps), "20", 0.1, 10000,
         "API requests per second (client-side limit)"},
	{"burst", "VIGIL_BURST", VG_OPT_INT, OFF(burst), "40", 1, 100000,
         "API request burst"},
	{"workers", "VIGIL_WORKERS", VG_OPT_INT, OFF(workers), "2", 1, 64,
         "concurrent reconciles per controller"},
	{"database-url", "VIGIL_DATABASE_URL", VG_OPT_STR, OFF(database_url),
         NULL, 0, 0,
         "platform database for tenant rows (default: from the Platform)"},
	{"agent-image", "VIGIL_AGENT_IMAGE", VG_OPT_STR, OFF(agent_image), NULL,
         0, 0,
         "scanner agent image (default: <imageRegistry>/vigil-agent:<version> "
         "of the Platform)"},
	{"agent-gateway-url", "VIGIL_AGENT_GATEWAY_URL", VG_OPT_STR,
         OFF(agent_gateway_url), NULL, 0, 0,
         "gateway URL agents post results to (default: the Platform's "
         "status.endpoint)"},
	{"log-level", "VIGIL_LOG_LEVEL", VG_OPT_STR, OFF(log_level), "info", 0,
         0, "debug, info, warn or error"},
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
	if (rc == VG_OK && first < argc)
		rc = vg_err_set(err, VG_INVAL, "unexpected argument \"%s\"",
		                argv[first]);
	return rc;
}

void options_cleanup(struct options *o)
{
	vg_opts_cleanup(opts, NOPTS, o);
	memset(o, 0, sizeof(*o));
}

void options_usage(const char *prog, void *fp)
{
	fprintf(fp, "usage: %s [flags]\n\nflags (and environment):\n", prog);
	vg_opts_usage(opts, NOPTS, fp);
}
