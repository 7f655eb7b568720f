/*
 * manager.h - lifecycle of the operator's controllers.
 *
 *   m = manager_new(&opts);
 *   manager_add(m, &platform_controller);     ... once per controller
 *   manager_start(m);          informers: caches fill, events queue keys
 *   manager_wait_synced(m, ms) readiness
 *   manager_run_workers(m);    on becoming leader: reconcile
 *   manager_stop(m);           on shutdown or lost leadership
 *   manager_free(m);
 */
#ifndef VIGIL_OPERATOR_MANAGER_H
#define VIGIL_OPERATOR_MANAGER_H

#include <stdint.h>

#include "controller.h"
#include "vigil/kube.h"
#include "vigil/metrics.h"

struct manager_opts {
	struct vg_kube_client *client; /* borrowed */
	const char *ns;		/* watch only this namespace; NULL: all */
	int workers;		/* per controller; 0: 2 */
	struct vg_metrics *metrics; /* NULL: the default registry */
	/* Writes are refused unless this says we lead; NULL: always. */
	int (*is_leader)(void *ctx);
	void *leader_ctx;
	const char *identity;	/* reporting instance of Events */
	double qps;		/* work queue global bucket; 0: 10 */
	int burst;		/* 0: 100 */
};

struct manager *manager_new(const struct manager_opts *opts);
/* Register a controller (the table entry is borrowed). Before start. */
int manager_add(struct manager *m, const struct controller_def *def);
/* Start one informer per watched kind. */
int manager_start(struct manager *m);
/* 1 when every informer has loaded its first list. */
int manager_synced(struct manager *m);
int manager_wait_synced(struct manager *m, int timeout_ms);
/* Start the worker threads (idempotent). */
int manager_run_workers(struct manager *m);
/* Stop workers and informers; in-flight reconciles finish first. */
void manager_stop(struct manager *m);
void manager_free(struct manager *m);

/* Requests that changed something (POST, PUT, PATCH, DELETE) so far. */
uint64_t manager_writes(struct manager *m);

/* Request observer to pass to vg_kube_client_new (ctx: a struct vg_metrics
 * or NULL for the default registry): counts rest_client_requests_total
 * {code,method} and vigil_operator_write_requests_total. */
void manager_observe_request(void *ctx,
			     const struct vg_kube_request_info *info);

#endif
