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
#include <zstd.h>

#define BACKOFF_INITIAL_S 0.8
#define BACKOFF_MAX_S 30.0
#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

/*
 * The cache keeps every object as its compact JSON, zstd-compressed against
 * a dictionary: the start of the first object the informer stored. Objects
 * of one kind, labelled and shaped by one controller, share most of their
 * text, so 700-1,500 bytes of JSON become 100-200; the jansson tree of the
 * same object takes 5-10 KB, which at 1,000 Tenants (8,000 cached objects)
 * was most of the operator's memory. Readers get a tree of their own,
 * decoded in tens of microseconds.
 */
#define DICT_MAX 8192
#define ZSTD_LEVEL 1

struct entry {
	uint32_t len;	  /* bytes of data */
	uint32_t raw_len; /* bytes of the compact JSON */
	int packed;	  /* data is zstd against the informer's dictionary */
	/* data, then resourceVersion '\0', then the uid of the controlling
	 * owner reference ('\0'; empty when there is none) */
	char data[];
};

/* One compression and one decompression context for the process (each
 * tens of KB): informers are many, their use of them brief. */
static pthread_mutex_t zc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t zd_mu = PTHREAD_MUTEX_INITIALIZER;
static ZSTD_CCtx *zc;
static ZSTD_DCtx *zd;

/* One list page in memory at a time, process-wide: at start-up every
 * informer lists at once, and a page's tree is ~10 KB per object. */
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;

struct informer {
	struct vg_kube_client *client;
	struct informer_opts o;
	char *ns, *selector; /* owned copies of the option strings */

	pthread_rwlock_t cache_mu;
	struct vg_strmap cache; /* key -> struct entry* */
	/* set once, by the informer's thread, before the first entry that
	 * uses it is published under cache_mu */
	char *dict;
	size_t dict_len;

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

static const char *entry_rv(const struct entry *e)
{
	return e->data + e->len;
}

static const char *entry_owner(const struct entry *e)
{
	const char *rv = entry_rv(e);

	return rv + strlen(rv) + 1;
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
	vg_strmap_init(&inf->cache, free);
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
 * objects look like what a GET returns. Dropped, since nothing reads them
 * from the cache and they are often half of an object: managedFields, and
 * the copy of the whole object kubectl apply keeps in an annotation. */
static void stamp_type(const struct informer *inf, json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");
	char av[128];

	json_object_del(md, "managedFields");
	json_object_del(json_object_get(md, "annotations"), LAST_APPLIED);
	if (!json_object_get(obj, "kind"))
		json_object_set_new(obj, "kind",
				    json_string(inf->o.resource->kind));
	if (!json_object_get(obj, "apiVersion") &&
	    vg_kube_resource_api_version(inf->o.resource, av, sizeof(av)) ==
		    VG_OK)
		json_object_set_new(obj, "apiVersion", json_string(av));
}

/* uid of the owner reference with controller: true, or "". */
static const char *controller_uid(const json_t *obj)
{
	const json_t *refs = json_object_get(json_object_get(obj, "metadata"),
					     "ownerReferences");
	size_t i;
	json_t *ref;

	json_array_foreach(refs, i, ref)
	{
		const char *uid = json_string_value(json_object_get(ref, "uid"));

		if (json_is_true(json_object_get(ref, "controller")) && uid)
			return uid;
	}
	return "";
}

/* `obj` as a new cache entry; NULL when out of memory. Called on the
 * informer's thread only. */
static struct entry *encode(struct informer *inf, const json_t *obj)
{
	const char *rv = obj_rv(obj), *owner = controller_uid(obj);
	char *json = json_dumps(obj, JSON_COMPACT), *packed = NULL;
	size_t n, len, rvn, ownn, cap;
	const char *data;
	struct entry *e = NULL;

	if (!rv)
		rv = "";
	if (!json)
		return NULL;
	n = strlen(json);
	data = json;
	len = n;
	if (n > UINT32_MAX)
		goto out;
	if (!inf->dict) {
		inf->dict_len = n < DICT_MAX ? n : DICT_MAX;
		inf->dict = malloc(inf->dict_len);
		if (!inf->dict)
			goto out;
		memcpy(inf->dict, json, inf->dict_len);
	}
	cap = ZSTD_compressBound(n);
	packed = malloc(cap);
	if (packed) {
		size_t c;

		pthread_mutex_lock(&zc_mu);
		if (!zc)
			zc = ZSTD_createCCtx();
		c = zc ? ZSTD_compress_usingDict(zc, packed, cap, json, n,
						 inf->dict, inf->dict_len,
						 ZSTD_LEVEL)
		       : (size_t)-1;
		pthread_mutex_unlock(&zc_mu);
		if (!ZSTD_isError(c) && c < n) {
			data = packed;
			len = c;
		}
	}
	rvn = strlen(rv) + 1;
	ownn = strlen(owner) + 1;
	e = malloc(sizeof(*e) + len + rvn + ownn);
	if (!e)
		goto out;
	e->len = (uint32_t)len;
	e->raw_len = (uint32_t)n;
	e->packed = data == packed;
	memcpy(e->data, data, len);
	memcpy(e->data + len, rv, rvn);
	memcpy(e->data + len + rvn, owner, ownn);
out:
	free(packed);
	free(json);
	return e;
}

/* The object `e` holds, as a new tree; NULL when out of memory. Entries
 * never change once stored, so any thread may decode them while it holds
 * the cache lock (or owns the entry). */
static json_t *decode(const struct informer *inf, const struct entry *e)
{
	char small[4096], *buf = small;
	json_error_t jerr;
	json_t *obj = NULL;
	size_t n;

	if (!e->packed)
		return json_loadb(e->data, e->len, 0, &jerr);
	if (e->raw_len > sizeof(small) && !(buf = malloc(e->raw_len)))
		return NULL;
	pthread_mutex_lock(&zd_mu);
	if (!zd)
		zd = ZSTD_createDCtx();
	n = zd ? ZSTD_decompress_usingDict(zd, buf, e->raw_len, e->data,
					   e->len, inf->dict, inf->dict_len)
	       : (size_t)-1;
	pthread_mutex_unlock(&zd_mu);
	if (!ZSTD_isError(n) && n == e->raw_len)
		obj = json_loadb(buf, n, 0, &jerr);
	else
		vg_error("cannot decode a cached object", "kind",
			 inf->o.resource->kind, "err",
			 ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
	if (buf != small)
		free(buf);
	return obj;
}

struct pending {
	enum vg_watch_type type;
	const struct entry *cur; /* in the cache; NULL for DELETED */
	struct entry *old;	 /* owned; NULL for ADDED */
};

/* Replace the cache with a list snapshot (`fresh`, taken), then report
 * the differences. */
static int replace_cache(struct informer *inf, struct vg_strmap *fresh)
{
	struct pending *ev = NULL;
	size_t nev = 0, cap, i, pos = 0;
	const char *key;
	void *val;

	cap = vg_strmap_len(fresh) + vg_strmap_len(&inf->cache) + 1;
	ev = calloc(cap, sizeof(*ev));
	if (!ev) {
		vg_strmap_cleanup(fresh);
		return VG_NOMEM;
	}
	pthread_rwlock_wrlock(&inf->cache_mu);
	while (vg_strmap_next(fresh, &pos, &key, &val)) {
		struct entry *cur = val, *old = vg_strmap_take(&inf->cache, key);

		if (!old)
			ev[nev++] = (struct pending){ VG_WATCH_ADDED, cur, NULL };
		else if (!*entry_rv(old) || !*entry_rv(cur) ||
			 strcmp(entry_rv(old), entry_rv(cur)) != 0)
			ev[nev++] = (struct pending){ VG_WATCH_MODIFIED, cur,
						      old };
		else
			free(old);
	}
	/* what is left vanished meanwhile: the pending events own it now */
	pos = 0;
	while (vg_strmap_next(&inf->cache, &pos, NULL, &val))
		ev[nev++] = (struct pending){ VG_WATCH_DELETED, NULL, val };
	inf->cache.free_val = NULL;
	vg_strmap_cleanup(&inf->cache);
	inf->cache = *fresh;
	pthread_rwlock_unlock(&inf->cache_mu);
	/* only this thread changes the cache: ev[].cur stay valid */
	for (i = 0; i < nev; i++) {
		json_t *obj = decode(inf, ev[i].cur ? ev[i].cur : ev[i].old);
		json_t *old = ev[i].cur && ev[i].old ? decode(inf, ev[i].old)
						     : NULL;

		if (obj)
			emit(inf, ev[i].type, obj, old);
		json_decref(obj);
		json_decref(old);
		free(ev[i].old);
	}
	free(ev);
	return VG_OK;
}

/* Add the items of one list page to `fresh`. */
static int add_page(struct informer *inf, json_t *items,
		    struct vg_strmap *fresh)
{
	size_t i;
	json_t *item;
	char k[512];

	json_array_foreach(items, i, item)
	{
		struct entry *e;

		if (informer_key(item, k, sizeof(k)) != VG_OK)
			continue;
		stamp_type(inf, item);
		e = encode(inf, item);
		if (!e || vg_strmap_put(fresh, k, e) != VG_OK) {
			free(e);
			return VG_NOMEM;
		}
	}
	return VG_OK;
}

/* List page by page (inf->o.page_size each) into the cache. When the
 * continue token expires mid-way (410), list again in one request, as
 * client-go does. */
static int do_list(struct informer *inf, struct vg_err *err)
{
	struct vg_kube_list_opts lo = { .label_selector = inf->o.label_selector,
					.limit = inf->o.page_size };
	struct vg_strmap fresh;
	char *cont = NULL, *rv = NULL;
	json_t *page = NULL;
	int rc;

	vg_strmap_init(&fresh, free);
	do {
		const char *next, *prv;

		lo.continue_token = cont;
		pthread_mutex_lock(&list_mu);
		if (atomic_load(&inf->stop)) { /* waited for another's list */
			pthread_mutex_unlock(&list_mu);
			rc = vg_err_set(err, VG_CANCELED, "stopped");
			break;
		}
		rc = vg_kube_list(inf->client, inf->o.resource,
				  inf->o.ns ? inf->o.ns
					    : VG_KUBE_ALL_NAMESPACES,
				  &lo, &page, err);
		if (rc == VG_GONE && cont) {
			vg_debug("continue token expired, listing in one "
				 "request",
				 "kind", inf->o.resource->kind);
			vg_err_clear(err);
			vg_strmap_cleanup(&fresh);
			vg_strmap_init(&fresh, free);
			lo.limit = 0;
			lo.continue_token = NULL;
			rc = vg_kube_list(inf->client, inf->o.resource,
					  inf->o.ns ? inf->o.ns
						    : VG_KUBE_ALL_NAMESPACES,
					  &lo, &page, err);
		}
		free(cont);
		cont = NULL;
		if (rc == VG_OK)
			rc = add_page(inf, json_object_get(page, "items"),
				      &fresh);
		pthread_mutex_unlock(&list_mu);
		if (rc != VG_OK)
			break;
		next = json_string_value(json_object_get(
			json_object_get(page, "metadata"), "continue"));
		prv = obj_rv(page);
		if (prv) {
			free(rv);
			rv = strdup(prv);
		}
		if (next && *next && !(cont = strdup(next)))
			rc = vg_err_set(err, VG_NOMEM, "continue token");
		json_decref(page);
		page = NULL;
	} while (rc == VG_OK && cont);
	json_decref(page);
	free(cont);
	if (rc == VG_OK)
		rc = replace_cache(inf, &fresh);
	else
		vg_strmap_cleanup(&fresh);
	if (rc == VG_OK) {
		free(inf->rv);
		inf->rv = rv;
		rv = NULL;
		atomic_fetch_add(&inf->lists, 1);
		atomic_store(&inf->synced, 1);
	}
	free(rv);
	return rc;
}

static int on_watch_event(void *ctx, const struct vg_watch_event *ev)
{
	struct informer *inf = ctx;
	json_t *obj = ev->object, *old = NULL;
	struct entry *e = NULL, *prev;
	char k[512];

	if (ev->type == VG_WATCH_BOOKMARK || ev->type == VG_WATCH_ERROR)
		return 0; /* the parser tracks bookmarks; errors end the run */
	if (informer_key(obj, k, sizeof(k)) != VG_OK)
		return 0;
	stamp_type(inf, obj);
	if (ev->type != VG_WATCH_DELETED && !(e = encode(inf, obj)))
		return VG_NOMEM;
	pthread_rwlock_wrlock(&inf->cache_mu);
	prev = vg_strmap_take(&inf->cache, k);
	if (e && vg_strmap_put(&inf->cache, k, e) != VG_OK) {
		pthread_rwlock_unlock(&inf->cache_mu);
		free(e);
		free(prev);
		return VG_NOMEM;
	}
	pthread_rwlock_unlock(&inf->cache_mu);
	if (prev) {
		old = decode(inf, prev);
		free(prev);
	}
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
	free(inf->dict);
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
	const struct entry *e;
	json_t *obj = NULL;

	pthread_rwlock_rdlock(&inf->cache_mu);
	e = vg_strmap_get(&inf->cache, key);
	if (e)
		obj = decode(inf, e);
	pthread_rwlock_unlock(&inf->cache_mu);
	return obj;
}

/* Every cached object, or those whose controlling owner has uid `owner`,
 * as a new array. */
static json_t *list(struct informer *inf, const char *owner)
{
	json_t *arr = json_array();
	size_t pos = 0;
	void *val;

	if (!arr)
		return NULL;
	pthread_rwlock_rdlock(&inf->cache_mu);
	while (vg_strmap_next(&inf->cache, &pos, NULL, &val)) {
		const struct entry *e = val;

		if (owner && strcmp(entry_owner(e), owner) != 0)
			continue;
		json_array_append_new(arr, decode(inf, e));
	}
	pthread_rwlock_unlock(&inf->cache_mu);
	return arr;
}

json_t *informer_list(struct informer *inf)
{
	return list(inf, NULL);
}

json_t *informer_list_controlled_by(struct informer *inf, const char *uid)
{
	return uid && *uid ? list(inf, uid) : json_array();
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
