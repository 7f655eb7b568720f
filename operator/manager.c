/* manager.c - informers, queues and workers of the operator's controllers. */
#include "manager_int.h"

#include "vigil/err.h"
#include "vigil/log.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_PAGE_SIZE 100
/* Least time between two returns of free heap to the system. */
#define TRIM_INTERVAL_MS 10000

static atomic_ullong write_requests;
static atomic_llong last_trim_ms;

static const double latency_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25,	 0.5,  1,     2.5,  5,
					  10,	 30,   60 };
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

int same_resource(const struct vg_kube_resource *a,
		  const struct vg_kube_resource *b)
{
	const char *ga = a->group ? a->group : "", *gb = b->group ? b->group : "";

	return a == b ||
	       (strcmp(ga, gb) == 0 && strcmp(a->resource, b->resource) == 0);
}

struct watched_kind *manager_kind(struct manager *m,
				  const struct vg_kube_resource *r)
{
	for (int i = 0; i < m->nkinds; i++)
		if (same_resource(m->kinds[i].res, r))
			return &m->kinds[i];
	return NULL;
}

int manager_is_leader(struct manager *m)
{
	return !m->o.is_leader || m->o.is_leader(m->o.leader_ctx);
}

uint64_t manager_writes(struct manager *m)
{
	(void)m;
	return atomic_load(&write_requests);
}

void manager_observe_request(void *ctx, const struct vg_kube_request_info *info)
{
	struct vg_metrics *reg = ctx ? ctx : vg_metrics_default();
	static struct vg_metric *fam, *writes;
	char code[16];

	/* families are registered once; registration is idempotent */
	if (!fam) {
		fam = vg_metrics_counter(reg, "rest_client_requests_total",
					 "Number of HTTP requests, partitioned "
					 "by status code and method.",
					 VG_LABELS("code", "method"), NULL);
		writes = vg_metrics_counter(
			reg, "vigil_operator_write_requests_total",
			"API requests that change state (POST, PUT, PATCH, "
			"DELETE), leader election's Lease excepted.",
			NULL, NULL);
	}
	if (info->code)
		snprintf(code, sizeof(code), "%ld", info->code);
	else
		snprintf(code, sizeof(code), "<error>");
	vg_counter_inc(vg_metric_labels(fam, code, info->method));
	/* what the operator changes in the cluster: a follower trying to
	 * take an expired Lease is not a write of its reconcilers */
	if (strcmp(info->method, "GET") != 0 &&
	    strcmp(info->method, "HEAD") != 0 &&
	    !(info->path &&
	      strstr(info->path, "/apis/coordination.k8s.io/"))) {
		atomic_fetch_add(&write_requests, 1);
		vg_counter_inc(vg_metric_series(writes, NULL));
	}
}

/* Refresh the work queue gauges at every scrape. */
static void collect_queues(struct vg_metrics *reg, void *data)
{
	struct manager *m = data;

	(void)reg;
	for (int i = 0; i < m->nctls; i++) {
		struct workqueue_stats st;

		workqueue_stats(m->ctls[i].q, &st);
		vg_gauge_set(m->ctls[i].depth, (double)st.depth);
	}
}

static void on_add(void *ctx)
{
	struct ctl_instance *c = ctx;

	vg_counter_inc(c->adds);
}

static void on_retry(void *ctx)
{
	struct ctl_instance *c = ctx;

	vg_counter_inc(c->retries);
}

static void on_latency(void *ctx, double s)
{
	struct ctl_instance *c = ctx;

	vg_histogram_observe(c->queue_latency, s);
}

struct manager *manager_new(const struct manager_opts *opts)
{
	struct manager *m;

	/*
	 * One malloc arena for the process rather than glibc's up to eight
	 * per core: each informer and worker thread got its own, and their
	 * free space alone was more than the caches hold at 1,000 Tenants.
	 * The threads mostly wait on the network, and glibc's per-thread
	 * cache keeps small allocations off the arena's lock. Before any
	 * thread of ours exists.
	 */
	mallopt(M_ARENA_MAX, 1);
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->o = *opts;
	if (m->o.workers <= 0)
		m->o.workers = 2;
	m->metrics = opts->metrics ? opts->metrics : vg_metrics_default();
	m->reconcile_total = vg_metrics_counter(
		m->metrics, "controller_runtime_reconcile_total",
		"Total number of reconciliations per controller.",
		VG_LABELS("controller", "result"), NULL);
	m->watch_restarts_s = vg_metric_series(
		vg_metrics_counter(m->metrics,
				   "vigil_operator_watch_restarts_total",
				   "Watches reopened after the server ended "
				   "them or a failure.",
				   NULL, NULL),
		NULL);
	m->relists_s = vg_metric_series(
		vg_metrics_counter(m->metrics, "vigil_operator_relists_total",
				   "Lists repeated after a watch expired (410) "
				   "or failed.",
				   NULL, NULL),
		NULL);
	vg_metrics_add_collector(m->metrics, collect_queues, m);
	pthread_mutex_init(&m->events_mu, NULL);
	vg_strmap_init(&m->events, free);
	return m;
}

static struct watched_kind *add_kind(struct manager *m,
				     const struct vg_kube_resource *r)
{
	struct watched_kind *k = manager_kind(m, r);

	if (k)
		return k;
	if (m->nkinds == MAX_KINDS)
		return NULL;
	k = &m->kinds[m->nkinds++];
	k->m = m;
	k->res = r;
	k->primary_of = -1;
	return k;
}

int manager_add(struct manager *m, const struct controller_def *def)
{
	struct ctl_instance *c;
	struct watched_kind *k;
	struct workqueue_opts qo = { .qps = m->o.qps, .burst = m->o.burst };
	struct vg_metric *fam;

	if (m->started || m->nctls == MAX_CONTROLLERS)
		return VG_INVAL;
	c = &m->ctls[m->nctls];
	c->m = m;
	c->def = def;
	qo.on_add = on_add;
	qo.on_retry = on_retry;
	qo.on_queue_latency = on_latency;
	qo.ctx = c;
	c->q = workqueue_new(&qo);
	if (!c->q)
		return VG_NOMEM;
	k = add_kind(m, def->primary);
	if (!k)
		return VG_RANGE;
	k->primary_of = m->nctls;
	for (const struct vg_kube_resource *const *o = def->owned; o && *o; o++)
		if (!add_kind(m, *o))
			return VG_RANGE;
	for (const struct ctl_watch *w = def->watches; w && w->res; w++)
		if (!add_kind(m, w->res))
			return VG_RANGE;

	fam = vg_metrics_gauge(m->metrics, "workqueue_depth",
			       "Current depth of workqueue.",
			       VG_LABELS("name"), NULL);
	c->depth = vg_metric_labels(fam, def->name);
	fam = vg_metrics_counter(m->metrics, "workqueue_adds_total",
				 "Total number of adds handled by workqueue.",
				 VG_LABELS("name"), NULL);
	c->adds = vg_metric_labels(fam, def->name);
	fam = vg_metrics_counter(m->metrics, "workqueue_retries_total",
				 "Total number of retries handled by "
				 "workqueue.",
				 VG_LABELS("name"), NULL);
	c->retries = vg_metric_labels(fam, def->name);
	fam = vg_metrics_histogram(m->metrics,
				   "workqueue_queue_duration_seconds",
				   "How long in seconds an item stays in "
				   "workqueue before being requested.",
				   VG_LABELS("name"), latency_buckets,
				   NBUCKETS, NULL);
	c->queue_latency = vg_metric_labels(fam, def->name);
	fam = vg_metrics_counter(m->metrics,
				 "controller_runtime_reconcile_errors_total",
				 "Total number of reconciliation errors per "
				 "controller.",
				 VG_LABELS("controller"), NULL);
	c->errors = vg_metric_labels(fam, def->name);
	fam = vg_metrics_histogram(m->metrics,
				   "controller_runtime_reconcile_time_seconds",
				   "Length of time per reconciliation per "
				   "controller.",
				   VG_LABELS("controller"), latency_buckets,
				   NBUCKETS, NULL);
	c->duration = vg_metric_labels(fam, def->name);
	fam = vg_metrics_gauge(m->metrics,
			       "controller_runtime_active_workers",
			       "Number of currently used workers per "
			       "controller.",
			       VG_LABELS("controller"), NULL);
	c->active = vg_metric_labels(fam, def->name);
	/* zero series so dashboards see every result from the start */
	static const char *const results[] = { "success", "error", "requeue",
					       "requeue_after" };
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		vg_metric_labels(m->reconcile_total, def->name, results[i]);
	m->nctls++;
	return VG_OK;
}

/* Key of the controlling owner of `obj` when its kind is the primary of
 * controller `c`: "ns/name" or "name". */
static int owner_key(const struct ctl_instance *c, const json_t *obj,
		     char *out, size_t n)
{
	const json_t *refs = json_object_get(json_object_get(obj, "metadata"),
					     "ownerReferences");
	const char *ns = json_string_value(json_object_get(
		json_object_get(obj, "metadata"), "namespace"));
	size_t i;
	json_t *ref;
	int w;

	json_array_foreach(refs, i, ref)
	{
		const char *kind =
			json_string_value(json_object_get(ref, "kind"));
		const char *name =
			json_string_value(json_object_get(ref, "name"));

		if (!json_is_true(json_object_get(ref, "controller")) || !kind ||
		    !name || strcmp(kind, c->def->primary->kind) != 0)
			continue;
		if (c->def->primary->namespaced)
			w = snprintf(out, n, "%s/%s", ns ? ns : "", name);
		else
			w = snprintf(out, n, "%s", name);
		return w < 0 || (size_t)w >= n ? VG_INVAL : VG_OK;
	}
	return VG_NOTFOUND;
}

static void on_event(void *ctx, enum vg_watch_type t, json_t *obj,
		     json_t *old)
{
	struct watched_kind *k = ctx;
	struct manager *m = k->m;
	char key[512];

	(void)t;
	if (k->primary_of >= 0 &&
	    informer_key(obj, key, sizeof(key)) == VG_OK)
		workqueue_add(m->ctls[k->primary_of].q, key);
	for (int i = 0; i < m->nctls; i++) {
		struct ctl_instance *c = &m->ctls[i];

		for (const struct ctl_watch *w = c->def->watches; w && w->res;
		     w++)
			if (same_resource(w->res, k->res))
				w->map(m, c->def->name, obj, old);
		if (i == k->primary_of)
			continue;
		if (owner_key(c, obj, key, sizeof(key)) == VG_OK)
			workqueue_add(c->q, key);
		/* an owner reference removed by hand: the old owner repairs */
		if (old && owner_key(c, old, key, sizeof(key)) == VG_OK)
			workqueue_add(c->q, key);
	}
}

static void on_restart(void *ctx, int relist)
{
	struct watched_kind *k = ctx;

	vg_counter_inc(relist ? k->m->relists_s : k->m->watch_restarts_s);
}

int manager_start(struct manager *m)
{
	static const char selector[] = VIGIL_LABEL_MANAGED_BY
		"=" VIGIL_MANAGED_BY;

	for (int i = 0; i < m->nkinds; i++) {
		struct watched_kind *k = &m->kinds[i];
		struct informer_opts io = {
			.resource = k->res,
			.ns = k->res->namespaced ? m->o.ns : NULL,
			/* a page's tree is held while it is cached: keep
			 * the start-up peak small */
			.page_size = LIST_PAGE_SIZE,
			.on_event = on_event,
			.on_restart = on_restart,
			.ctx = k,
		};

		/* children are watched through their label only: the cache
		 * holds what the operator manages, not the whole cluster */
		if (k->primary_of >= 0)
			io.label_selector = m->ctls[k->primary_of].def->selector;
		else
			io.label_selector = selector;
		k->inf = informer_new(m->o.client, &io);
		if (!k->inf || informer_start(k->inf) != VG_OK)
			return VG_NOMEM;
	}
	m->started = 1;
	return VG_OK;
}

int manager_synced(struct manager *m)
{
	for (int i = 0; i < m->nkinds; i++)
		if (!m->kinds[i].inf || !informer_has_synced(m->kinds[i].inf))
			return 0;
	return m->started;
}

int manager_wait_synced(struct manager *m, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (manager_synced(m))
			return 1;
		struct timespec ts = { 0, 20000000L };
		nanosleep(&ts, NULL);
	}
	return manager_synced(m);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reconcile_one(struct ctl_instance *c, const char *key)
{
	struct manager *m = c->m;
	struct watched_kind *k = manager_kind(m, c->def->primary);
	struct rec rc = { 0 };
	char ns[256] = "", writes[24], secs[24];
	const char *slash = strchr(key, '/');
	const char *result;
	enum rec_result res;
	double t0 = mono(), dt;

	rc.m = m;
	rc.def = c->def;
	rc.ctx = c->def->ctx;
	rc.key = key;
	if (slash && (size_t)(slash - key) < sizeof(ns)) {
		memcpy(ns, key, (size_t)(slash - key));
		ns[slash - key] = '\0';
		rc.name = slash + 1;
	} else {
		rc.name = key;
	}
	rc.ns = ns;
	rc.obj = informer_get(k->inf, key);
	snprintf(rc.id, sizeof(rc.id), "%lx-%lx", (unsigned long)time(NULL),
		 atomic_fetch_add(&m->reconcile_seq, 1));
	rc.applied = json_object();

	vg_gauge_inc(c->active);
	res = c->def->reconcile(&rc);
	vg_gauge_dec(c->active);
	dt = mono() - t0;
	vg_histogram_observe(c->duration, dt);
	snprintf(writes, sizeof(writes), "%llu", (unsigned long long)rc.writes);
	snprintf(secs, sizeof(secs), "%.3f", dt);

	switch (res) {
	case REC_DONE:
		result = "success";
		workqueue_forget(c->q, key);
		break;
	case REC_REQUEUE_AFTER:
		result = "requeue_after";
		workqueue_forget(c->q, key);
		workqueue_add_after(c->q, key, rc.after > 0 ? rc.after : 1);
		break;
	case REC_ERROR:
	default:
		result = "error";
		vg_counter_inc(c->errors);
		workqueue_add_rate_limited(c->q, key);
		break;
	}
	vg_counter_inc(vg_metric_labels(m->reconcile_total, c->def->name,
					result));
	if (res == REC_ERROR)
		vg_warn("reconcile failed", "controller", c->def->name, "kind",
			c->def->primary->kind, "namespace", ns, "name",
			rc.name, "reconcile_id", rc.id, "err", rc.err.msg,
			"reason", rc.err.reason[0] ? rc.err.reason : NULL);
	else if (rc.writes)
		vg_info("reconciled", "controller", c->def->name, "kind",
			c->def->primary->kind, "namespace", ns, "name",
			rc.name, "reconcile_id", rc.id, "writes", writes,
			"seconds", secs);
	else
		vg_debug("reconciled, no change", "controller", c->def->name,
			 "kind", c->def->primary->kind, "namespace", ns,
			 "name", rc.name, "reconcile_id", rc.id);
	json_decref(rc.obj);
	json_decref(rc.applied);
}

/* When every queue has run dry, give the heap's free pages back (at most
 * every TRIM_INTERVAL_MS): bursts of reconciles and relists leave holes
 * that would otherwise stay resident while the operator idles. */
static void trim_when_idle(struct manager *m)
{
	long long now = (long long)(mono() * 1000), prev;

	prev = atomic_load(&last_trim_ms);
	if (now - prev < TRIM_INTERVAL_MS)
		return;
	for (int i = 0; i < m->nctls; i++) {
		struct workqueue_stats st;

		workqueue_stats(m->ctls[i].q, &st);
		if (st.depth || st.processing)
			return;
	}
	if (atomic_compare_exchange_strong(&last_trim_ms, &prev, now))
		malloc_trim(0);
}

static void *worker(void *arg)
{
	struct ctl_instance *c = arg;
	struct timespec tick = { 0, 20000000L };
	char *key;

	/* no reconcile before every cache holds its first list (as in
	 * controller-runtime): a child not listed yet would look missing and
	 * be written again, a restart would not be a no-op */
	while (!manager_synced(c->m) && !workqueue_is_shutdown(c->q))
		nanosleep(&tick, NULL);
	while ((key = workqueue_get(c->q)) != NULL) {
		reconcile_one(c, key);
		workqueue_done(c->q, key);
		free(key);
		trim_when_idle(c->m);
	}
	return NULL;
}

int manager_run_workers(struct manager *m)
{
	if (m->workers_running)
		return VG_OK;
	for (int i = 0; i < m->nctls; i++) {
		struct ctl_instance *c = &m->ctls[i];

		c->threads = calloc((size_t)m->o.workers, sizeof(pthread_t));
		if (!c->threads)
			return VG_NOMEM;
		for (int j = 0; j < m->o.workers; j++) {
			if (pthread_create(&c->threads[j], NULL, worker, c) != 0)
				return VG_INTERNAL;
			c->nthreads++;
		}
	}
	m->workers_running = 1;
	return VG_OK;
}

void manager_stop(struct manager *m)
{
	for (int i = 0; i < m->nctls; i++)
		workqueue_shutdown(m->ctls[i].q);
	for (int i = 0; i < m->nctls; i++) {
		struct ctl_instance *c = &m->ctls[i];

		for (int j = 0; j < c->nthreads; j++)
			pthread_join(c->threads[j], NULL);
		free(c->threads);
		c->threads = NULL;
		c->nthreads = 0;
	}
	m->workers_running = 0;
	for (int i = 0; i < m->nkinds; i++)
		if (m->kinds[i].inf)
			informer_stop(m->kinds[i].inf);
}

void manager_free(struct manager *m)
{
	if (!m)
		return;
	manager_stop(m);
	for (int i = 0; i < m->nkinds; i++)
		informer_free(m->kinds[i].inf);
	for (int i = 0; i < m->nctls; i++)
		workqueue_free(m->ctls[i].q);
	vg_strmap_cleanup(&m->events);
	pthread_mutex_destroy(&m->events_mu);
	free(m);
}
