/* vigil-operator: reconciles vigil.dev Platforms, Tenants and their
 * children. Configuration, wiring, the signal loop; the work is in the
 * controllers. */
#include "leader.h"
#include "manager.h"
#include "options.h"
#include "platform.h"
#include "scanpolicy.h"
#include "tenant.h"

#include "vigil/httpd.h"
#include "vigil/log.h"
#include "vigil/metrics.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "dev"
#endif


struct app {
	struct manager *mgr;
	struct leader *leader;
	struct vg_series *is_master;
	atomic_int lost;
};

static void started_leading(void *ctx)
{
	struct app *a = ctx;

	vg_gauge_set(a->is_master, 1);
	manager_run_workers(a->mgr);
}

static void stopped_leading(void *ctx)
{
	struct app *a = ctx;

	vg_gauge_set(a->is_master, 0);
	atomic_store(&a->lost, 1);
}

static int is_leader(void *ctx)
{
	struct app *a = ctx;

	return !a->leader || leader_is_leader(a->leader);
}

static int ready(void *data, struct vg_buf *reason)
{
	struct app *a = data;

	if (manager_synced(a->mgr))
		return 1;
	vg_buf_append_str(reason, "caches not synced");
	return 0;
}

/* Block until SIGTERM/SIGINT or lost leadership; 1 when leadership was
 * lost. Signals are blocked in every thread, so they arrive here. */
static int wait_for_end(struct app *a, const sigset_t *sigs)
{
	struct timespec tick = { 0, 200000000L };

	for (;;) {
		int sig = sigtimedwait(sigs, NULL, &tick);

		if (sig == SIGTERM || sig == SIGINT) {
			vg_info("shutting down", "signal",
				sig == SIGTERM ? "SIGTERM" : "SIGINT");
			return 0;
		}
		if (atomic_load(&a->lost))
			return 1;
	}
}

static struct vg_httpd *serve(const char *addr, struct app *a,
			      struct vg_err *err)
{
	struct vg_httpd_config hc = { .addr = addr };
	struct vg_httpd *h = NULL;

	if (vg_httpd_new(&hc, &h, err) != VG_OK)
		return NULL;
	vg_httpd_set_ready_fn(h, ready, a);
	if (vg_httpd_start(h, err) != VG_OK) {
		vg_httpd_free(h);
		return NULL;
	}
	return h;
}

/*
 * libgnutls comes along with libcurl's and libpq's dependencies (librtmp,
 * libldap) and, unless GNUTLS_NO_IMPLICIT_INIT=1 is in the environment when
 * it is loaded, initialises itself in a constructor: 0.6 MB of resident
 * pages for a library the operator never calls (its TLS is OpenSSL's).
 * Those that do use it (LDAP over TLS, RTMPS) call gnutls_global_init()
 * themselves. The variable has to be there before the loader runs, so the
 * process executes itself once with it set; when that fails it carries on
 * as it is.
 */
static void skip_gnutls_init(char **argv)
{
	if (getenv("GNUTLS_NO_IMPLICIT_INIT"))
		return;
	if (setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1) != 0)
		return;
	execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
	struct options o;
	struct vg_err err = { 0 };
	struct vg_kube_config cfg;
	struct vg_kube_client *client = NULL;
	struct vg_httpd *health = NULL, *metrics = NULL;
	struct app a = { 0 };
	enum vg_log_level lvl;
	sigset_t sigs;
	int rc = 1;

	skip_gnutls_init(argv);
	vg_kube_config_init(&cfg);
	if (options_parse(&o, argc, argv, &err) != VG_OK) {
		fprintf(stderr, "vigil-operator: %s\n", err.msg);
		options_usage(argv[0], stderr);
		options_cleanup(&o);
		return 2;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help)
			options_usage(argv[0], stdout);
		else
			printf("vigil-operator %s\n", VIGIL_VERSION);
		options_cleanup(&o);
		return 0;
	}
	vg_log_init("operator");
	if (vg_log_parse_level(o.log_level, &lvl) == VG_OK)
		vg_log_set_level(lvl);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct vg_metrics *reg = vg_metrics_default();
	vg_metrics_register_process(reg, NULL);
	a.is_master = vg_metric_labels(
		vg_metrics_gauge(reg, "leader_election_master_status",
				 "Gauge of if the reporting system is master "
				 "of the relevant lease, 0 indicates backup, 1 "
				 "indicates master.",
				 VG_LABELS("name"), NULL),
		o.leader_id);

	if (vg_kube_config_load_default(&cfg, o.kubeconfig, NULL, &err) !=
	    VG_OK)
		goto fail;
	struct vg_kube_client_opts co = { .qps = o.qps, .burst = o.burst,
					  .observer = manager_observe_request,
					  .observer_ctx = reg };
	if (vg_kube_client_new(&cfg, &co, &client, &err) != VG_OK)
		goto fail;
	if (o.leader_elect) {
		struct leader_opts lo = { .ns = o.leader_ns,
					  .name = o.leader_id,
					  .on_started = started_leading,
					  .on_stopped = stopped_leading,
					  .ctx = &a };

		a.leader = leader_new(client, &lo);
		if (!a.leader) {
			vg_err_set(&err, VG_NOMEM, "leader election");
			goto fail;
		}
	}
	struct manager_opts mo = { .client = client, .ns = o.ns,
				   .workers = o.workers, .metrics = reg,
				   .is_leader = is_leader, .leader_ctx = &a,
				   .identity = a.leader ? leader_identity(a.leader)
						      : "vigil-operator" };
	a.mgr = manager_new(&mo);
	if (!a.mgr) {
		vg_err_set(&err, VG_NOMEM, "manager");
		goto fail;
	}
	struct tenant_env tenv = { .database_url = o.database_url };
	struct controller_def tenant_def = tenant_controller;
	tenant_def.ctx = &tenv;
	struct scanpolicy_env spenv = { .agent_image = o.agent_image,
					.gateway_url = o.agent_gateway_url,
					.db = &tenv };
	struct controller_def scanpolicy_def = scanpolicy_controller;
	scanpolicy_def.ctx = &spenv;
	struct platform_env penv = { .db = &tenv };
	struct controller_def platform_def = platform_controller;
	platform_def.ctx = &penv;
	const struct controller_def *const controllers[] = {
		&platform_def,
		&tenant_def,
		&scanpolicy_def,
	};
	for (size_t i = 0; i < sizeof(controllers) / sizeof(controllers[0]);
	     i++) {
		if (manager_add(a.mgr, controllers[i]) != VG_OK) {
			vg_err_set(&err, VG_INTERNAL, "adding controller %s",
				   controllers[i]->name);
			goto fail;
		}
	}

	health = serve(o.health_addr, &a, &err);
	if (!health)
		goto fail;
	if (strcmp(o.metrics_addr, "0") != 0 &&
	    strcmp(o.metrics_addr, o.health_addr) != 0) {
		metrics = serve(o.metrics_addr, &a, &err);
		if (!metrics)
			goto fail;
	}
	vg_info("starting", "version", VIGIL_VERSION, "server",
		vg_kube_client_server(client), "namespace",
		o.ns ? o.ns : "(all)", "leader_elect",
		o.leader_elect ? "true" : "false");
	if (manager_start(a.mgr) != VG_OK) {
		vg_err_set(&err, VG_NOMEM, "starting informers");
		goto fail;
	}
	if (a.leader)
		leader_start(a.leader);
	else
		started_leading(&a);

	rc = wait_for_end(&a, &sigs);
	if (rc)
		vg_error("leader election lost: exiting so a fresh process "
			 "campaigns again",
			 "lease", o.leader_id);
	manager_stop(a.mgr);
	if (a.leader)
		leader_stop(a.leader); /* releases the Lease when held */
	goto out;
fail:
	vg_error("cannot start", "err", err.msg);
	rc = 1;
out:
	vg_httpd_free(health);
	vg_httpd_free(metrics);
	manager_free(a.mgr);
	tenant_db_shutdown();
	leader_free(a.leader);
	vg_kube_client_free(client);
	vg_kube_config_cleanup(&cfg);
	options_cleanup(&o);
	return rc;
}
