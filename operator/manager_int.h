/* manager_int.h - state shared by manager.c and controller.c. */
#ifndef VIGIL_OPERATOR_MANAGER_INT_H
#define VIGIL_OPERATOR_MANAGER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "informer.h"
#include "manager.h"
#include "vigil/strmap.h"
#include "workqueue.h"

#define MAX_KINDS 32
#define MAX_CONTROLLERS 8

struct watched_kind {
	struct manager *m;
	const struct vg_kube_resource *res;
	struct informer *inf;
	int primary_of; /* index of the controller it is primary of, or -1 */
};

struct ctl_instance {
	struct manager *m;
	const struct controller_def *def;
	struct workqueue *q;
	pthread_t *threads;
	int nthreads;
	struct vg_series *depth, *adds, *retries, *queue_latency;
	struct vg_series *errors, *duration, *active;
};

struct manager {
	struct manager_opts o;
	struct vg_metrics *metrics;
	struct watched_kind kinds[MAX_KINDS];
	int nkinds;
	struct ctl_instance ctls[MAX_CONTROLLERS];
	int nctls;
	int started, workers_running;

	struct vg_metric *reconcile_total;
	struct vg_series *watch_restarts_s, *relists_s;

	pthread_mutex_t events_mu; /* Event de-duplication */
	struct vg_strmap events;
	atomic_ulong reconcile_seq;
};

/* 1 if `a` and `b` name the same kind (group and plural). */
int same_resource(const struct vg_kube_resource *a,
		  const struct vg_kube_resource *b);
struct watched_kind *manager_kind(struct manager *m,
				  const struct vg_kube_resource *r);
int manager_is_leader(struct manager *m);

#endif
