/* informer.c - list+watch cache of one kind, with relist and backoff. */
#include "informer.h"

#include "vigil/err.h"
#include "vigil/log.h"
#include "vigil/strmap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_INITIAL_S 0.8
#define BACKOFF_MAX_S 30.0

struct informer {
	struct vg_kube_client *client;
	struct informer_opts o;
	char *ns, *selector; /* owned copies of the option strings */

	pthread_rwlock_t cache_mu;
	struct vg_strmap cache; /* key -> json_t* */

	pthread_mutex_t mu; /* guards watch, running; with cond for sleeps */
	pthread_cond_t cond;
	struct vg_kube_watch *watch; /* the running watch, or NULL */
	pthread_t thread;
	int running;
	atomic_int stop;
	atomic_int synced;

	char *rv; /* resourceVersion to resume from, or NULL */
	_Atomic uint64_t lists, watch_restarts, events;
	unsigned int seed;
};

static void decref(void *p)
{
	json_decref(p);
}

int informer_key(const json_t *obj, char *out, size_t n)
{
	const json_t *md = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	int w;

	if (!name || !*name)
		return VG_INVAL;
	if (ns && *ns)
		w = snprintf(out, n, "%s/%s", ns, name);
	else
		w = snprintf(out, n, "%s", name);
	return w < 0 || (size_t)w >= n ? VG_INVAL : VG_OK;
}

static const char *obj_rv(const json_t *obj)
{
	return json_string_value(
		json_object_get(json_object_get(obj, "metadata"),
				"resourceVersion"));
}

struct informer *informer_new(struct vg_kube_client *client,
			      const struct informer_opts *opts)
{
	struct informer *inf = calloc(1, sizeof(*inf));

	if (!inf)
		return NULL;
	inf->client = client;
	inf->o = *opts;
	inf->ns = opts->ns ? strdup(opts->ns) : NULL;
	inf->selector = opts->label_selector ? strdup(opts->label_selector)
					     : NULL;
	if ((opts->ns && !inf->ns) ||
	    (opts->label_selector && !inf->selector)) {
		free(inf->ns);
		free(inf->selector);
		free(inf);
		return NULL;
	}
	inf->o.ns = inf->ns;
	inf->o.label_selector = inf->selector;
	if (inf->o.page_size <= 0)
		inf->o.page_size = 500;
	pthread_rwlock_init(&inf->cache_mu, NULL);
	pthread_mutex_init(&inf->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inf->cond, &ca);
	pthread_condattr_destroy(&ca);
	vg_strmap_init(&inf->cache, decref);
	inf->seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)inf;
	return inf;
}

static void emit(struct informer *inf, enum vg_watch_type t, json_t *obj,
		 json_t *old)
{
	if (inf->o.on_event)
		inf->o.on_event(inf->o.ctx, t, obj, old);
}

/* Items of a list come without apiVersion/kind: give them back so cached
 * objects look like what a GET returns. managedFields are dropped: nothing
 * reads them from the cache, and they are often half of an object. */
static void stamp_type(const struct informer *inf, json_t *obj)
{
	char av[128];

	json_object_del(json_object_get(obj, "metadata"), "managedFields");
	if (!json_object_get(obj, "kind"))
		json_object_set_new(obj, "kind",
				    json_string(inf->o.resource->kind));
	if (!json_object_get(obj, "apiVersion") &&
	    vg_kube_resource_api_version(inf->o.resource, av, sizeof(av)) ==
		    VG_OK)
		json_object_set_new(obj, "apiVersion", json_string(av));
}

struct pending {
	enum vg_watch_type type;
	json_t *obj, *old;
};

/* Replace the cache with a list snapshot, then report the differences. */
static int replace_cache(struct informer *inf, json_t *items)
{
	struct vg_strmap fresh;
	struct pending *ev = NULL;
	size_t nev = 0, cap, i, pos = 0;
	const char *key;
	void *val;
	json_t *item;
	char k[512];
	int rc = VG_OK;

	cap = json_array_size(items) + vg_strmap_len(&inf->cache) + 1;
	ev = calloc(cap, sizeof(*ev));
	if (!ev)
		return VG_NOMEM;
	vg_strmap_init(&fresh, decref);
	pthread_rwlock_wrlock(&inf->cache_mu);
	json_array_foreach(items, i, item)
	{
		json_t *old;

		if (informer_key(item, k, sizeof(k)) != VG_OK)
			continue;
		stamp_type(inf, item);
		if (vg_strmap_put(&fresh, k, json_incref(item)) != VG_OK) {
			json_decref(item);
			rc = VG_NOMEM;
			break;
		}
		old = vg_strmap_get(&inf->cache, k);
		if (!old) {
			ev[nev++] = (struct pending){ VG_WATCH_ADDED,
						      json_incref(item), NULL };
		} else if (!obj_rv(old) || !obj_rv(item) ||
			   strcmp(obj_rv(old), obj_rv(item)) != 0) {
			ev[nev++] = (struct pending){ VG_WATCH_MODIFIED,
						      json_incref(item),
						      json_incref(old) };
		}
	}
	if (rc == VG_OK) {
		while (vg_strmap_next(&inf->cache, &pos, &key, &val))
			if (!vg_strmap_has(&fresh, key))
				ev[nev++] = (struct pending){
					VG_WATCH_DELETED, json_incref(val), NULL
				};
		vg_strmap_cleanup(&inf->cache);
		inf->cache = fresh;
	} else {
		vg_strmap_cleanup(&fresh);
	}
	pthread_rwlock_unlock(&inf->cache_mu);
	for (i = 0; i < nev; i++) {
		if (rc == VG_OK)
			emit(inf, ev[i].type, ev[i].obj, ev[i].old);
		json_decref(ev[i].obj);
		json_decref(ev[i].old);
	}
	free(ev);
	return rc;
}

static int do_list(struct informer *inf, struct vg_err *err)
{
	struct vg_kube_list_opts lo = { .label_selector = inf->o.label_selector,
					.limit = inf->o.page_size };
	json_t *list = NULL;
	const char *rv;
	int rc;

	rc = vg_kube_list_all(inf->client, inf->o.resource,
			      inf->o.ns ? inf->o.ns : VG_KUBE_ALL_NAMESPACES,
			      &lo, &list, err);
	if (rc != VG_OK)
		return rc;
	rv = obj_rv(list);
	rc = replace_cache(inf, json_object_get(list, "items"));
	if (rc == VG_OK) {
		free(inf->rv);
		inf->rv = rv ? strdup(rv) : NULL;
		atomic_fetch_add(&inf->lists, 1);
		atomic_store(&inf->synced, 1);
	}
	json_decref(list);
	return rc;
}

static int on_watch_event(void *ctx, const struct vg_watch_event *ev)
{
	struct informer *inf = ctx;
	json_t *obj = ev->object, *old = NULL;
	char k[512];

	if (ev->type == VG_WATCH_BOOKMARK || ev->type == VG_WATCH_ERROR)
		return 0; /* the parser tracks bookmarks; errors end the run */
	if (informer_key(obj, k, sizeof(k)) != VG_OK)
		return 0;
	stamp_type(inf, obj);
	pthread_rwlock_wrlock(&inf->cache_mu);
	if (ev->type == VG_WATCH_DELETED) {
		old = vg_strmap_take(&inf->cache, k);
	} else {
		old = vg_strmap_take(&inf->cache, k);
		if (vg_strmap_put(&inf->cache, k, json_incref(obj)) != VG_OK) {
			json_decref(obj);
			pthread_rwlock_unlock(&inf->cache_mu);
			json_decref(old);
			return VG_NOMEM;
		}
	}
	pthread_rwlock_unlock(&inf->cache_mu);
	atomic_fetch_add(&inf->events, 1);
	if (ev->type == VG_WATCH_DELETED)
		emit(inf, VG_WATCH_DELETED, obj, old);
	else
		emit(inf, old ? VG_WATCH_MODIFIED : VG_WATCH_ADDED, obj, old);
	json_decref(old);
	return 0;
}

/* Sleep `s` seconds unless stopped first; returns 1 if stopped. */
static int sleep_or_stop(struct informer *inf, double s)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)s;
	ts.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&inf->mu);
	while (!atomic_load(&inf->stop))
		if (pthread_cond_timedwait(&inf->cond, &inf->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&inf->mu);
	return atomic_load(&inf->stop);
}

/* One watch from inf->rv until it ends; returns the watch's result. */
static int do_watch(struct informer *inf, struct vg_err *err)
{
	struct vg_kube_watch_opts wo = {
		.resource_version = inf->rv,
		.label_selector = inf->o.label_selector,
		.timeout_seconds = inf->o.watch_timeout_s
					   ? inf->o.watch_timeout_s
					   : 300 + rand_r(&inf->seed) % 300,
		.cancel = &inf->stop,
	};
	struct vg_kube_watch *w = NULL;
	const char *last;
	int rc;

	rc = vg_kube_watch_new(inf->client, inf->o.resource,
			       inf->o.ns ? inf->o.ns : VG_KUBE_ALL_NAMESPACES,
			       &wo, on_watch_event, inf, &w, err);
	if (rc != VG_OK)
		return rc;
	pthread_mutex_lock(&inf->mu);
	inf->watch = atomic_load(&inf->stop) ? NULL : w;
	pthread_mutex_unlock(&inf->mu);
	rc = atomic_load(&inf->stop) ? VG_CANCELED : vg_kube_watch_run(w, err);
	pthread_mutex_lock(&inf->mu);
	inf->watch = NULL;
	pthread_mutex_unlock(&inf->mu);
	last = vg_kube_watch_resource_version(w);
	if (last && (!inf->rv || strcmp(last, inf->rv) != 0)) {
		char *copy = strdup(last);

		if (copy) {
			free(inf->rv);
			inf->rv = copy;
		}
	}
	vg_kube_watch_free(w);
	return rc;
}

static void *run(void *arg)
{
	struct informer *inf = arg;
	const char *kind = inf->o.resource->kind;
	double backoff = BACKOFF_INITIAL_S;
	int need_list = 1, first_watch = 1;
	struct vg_err err;

	while (!atomic_load(&inf->stop)) {
		int rc;

		vg_err_clear(&err);
		if (need_list) {
			rc = do_list(inf, &err);
			if (rc == VG_OK) {
				need_list = 0;
				if (atomic_load(&inf->lists) > 1 &&
				    inf->o.on_restart)
					inf->o.on_restart(inf->o.ctx, 1);
				continue;
			}
		} else {
			if (!first_watch && inf->o.on_restart)
				inf->o.on_restart(inf->o.ctx, 0);
			if (!first_watch)
				atomic_fetch_add(&inf->watch_restarts, 1);
			first_watch = 0;
			uint64_t before = atomic_load(&inf->events);
			rc = do_watch(inf, &err);
			if (rc == VG_OK) { /* server ended it: resume */
				backoff = BACKOFF_INITIAL_S;
				continue;
			}
			if (rc == VG_CANCELED)
				break;
			if (rc == VG_GONE) {
				vg_info("watch expired, relisting", "kind",
					kind, "err", err.msg);
				need_list = 1;
				continue;
			}
			if (atomic_load(&inf->events) > before)
				backoff = BACKOFF_INITIAL_S;
		}
		if (atomic_load(&inf->stop))
			break;
		{
			double jitter = 1.0 + (double)(rand_r(&inf->seed) %
						       1000) / 5000.0;
			char secs[32];

			snprintf(secs, sizeof(secs), "%.2f", backoff * jitter);
			vg_warn(need_list ? "list failed" : "watch failed",
				"kind", kind, "err", err.msg, "retry_in",
				secs);
			if (sleep_or_stop(inf, backoff * jitter))
				break;
			backoff *= 2;
			if (backoff > BACKOFF_MAX_S)
				backoff = BACKOFF_MAX_S;
		}
	}
	return NULL;
}

int informer_start(struct informer *inf)
{
	int rc = VG_OK;

	pthread_mutex_lock(&inf->mu);
	if (!inf->running) {
		atomic_store(&inf->stop, 0);
		if (pthread_create(&inf->thread, NULL, run, inf) == 0)
			inf->running = 1;
		else
			rc = VG_INTERNAL;
	}
	pthread_mutex_unlock(&inf->mu);
	return rc;
}

void informer_stop(struct informer *inf)
{
	int was_running;

	pthread_mutex_lock(&inf->mu);
	atomic_store(&inf->stop, 1);
	if (inf->watch)
		vg_kube_watch_cancel(inf->watch);
	pthread_cond_broadcast(&inf->cond);
	was_running = inf->running;
	inf->running = 0;
	pthread_mutex_unlock(&inf->mu);
	if (was_running)
		pthread_join(inf->thread, NULL);
}

void informer_free(struct informer *inf)
{
	if (!inf)
		return;
	informer_stop(inf);
	vg_strmap_cleanup(&inf->cache);
	pthread_rwlock_destroy(&inf->cache_mu);
	pthread_cond_destroy(&inf->cond);
	pthread_mutex_destroy(&inf->mu);
	free(inf->rv);
	free(inf->ns);
	free(inf->selector);
	free(inf);
}

int informer_has_synced(struct informer *inf)
{
	return atomic_load(&inf->synced);
}

int informer_wait_synced(struct informer *inf, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (atomic_load(&inf->synced))
			return 1;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return atomic_load(&inf->synced);
}

json_t *informer_get(struct informer *inf, const char *key)
{
	json_t *obj;

	pthread_rwlock_rdlock(&inf->cache_mu);
	obj = json_incref(vg_strmap_get(&inf->cache, key));
	pthread_rwlock_unlock(&inf->cache_mu);
	return obj;
}

json_t *informer_list(struct informer *inf)
{
	json_t *arr = json_array();
	size_t pos = 0;
	void *val;

	if (!arr)
		return NULL;
	pthread_rwlock_rdlock(&inf->cache_mu);
	while (vg_strmap_next(&inf->cache, &pos, NULL, &val))
		json_array_append(arr, val);
	pthread_rwlock_unlock(&inf->cache_mu);
	return arr;
}

void informer_stats(struct informer *inf, struct informer_stats *out)
{
	uint64_t lists = atomic_load(&inf->lists);

	out->lists = lists;
	out->relists = lists ? lists - 1 : 0;
	out->watch_restarts = atomic_load(&inf->watch_restarts);
	out->events = atomic_load(&inf->events);
	pthread_rwlock_rdlock(&inf->cache_mu);
	out->objects = vg_strmap_len(&inf->cache);
	pthread_rwlock_unlock(&inf->cache_mu);
}
