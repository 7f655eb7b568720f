/*
 * informer.h - a cached, continuously updated view of one kind.
 *
 * Like client-go's reflector + store: list (paged), then watch from the
 * list's resourceVersion with bookmarks; resume the watch from the last
 * seen resourceVersion when the server ends it; relist when that version
 * is too old (410 Gone / Expired); reconnect with jittered exponential
 * backoff (0.8 s doubling to 30 s) after failures. A relist reconciles the
 * cache with the snapshot: objects that vanished meanwhile are reported as
 * deleted, so handlers never miss a deletion.
 *
 * The informer runs its own thread. Handlers run on that thread, outside
 * the cache lock, so they may read the cache.
 *
 * The cache holds each object compressed (see informer.c); informer_get()
 * and informer_list() decode a tree of the caller's own, so changing it
 * never changes the cache. Dropped from cached objects: managedFields and
 * the kubectl.kubernetes.io/last-applied-configuration annotation.
 */
#ifndef VIGIL_OPERATOR_INFORMER_H
#define VIGIL_OPERATOR_INFORMER_H

#include <jansson.h>
#include <stdint.h>

#include "vigil/kube.h"

struct informer;

/*
 * A change seen by the informer. `obj` is the new state (for DELETED the
 * last known state), `old` the cached state before (NULL for ADDED).
 * Both borrowed for the call.
 */
typedef void (*informer_event_fn)(void *ctx, enum vg_watch_type type,
				  json_t *obj, json_t *old);

struct informer_opts {
	const struct vg_kube_resource *resource; /* borrowed */
	const char *ns;		    /* NULL: every namespace */
	const char *label_selector; /* NULL: everything */
	long page_size;		    /* list page; 0: 500 */
	long watch_timeout_s;	    /* server-side watch end; 0: 300..600 random */
	informer_event_fn on_event; /* may be NULL */
	void *ctx;
	/* Called on watch restarts and relists (for metrics); NULL allowed. */
	void (*on_restart)(void *ctx, int relist);
};

struct informer_stats {
	uint64_t lists;		/* successful lists (the first included) */
	uint64_t relists;	/* lists after the first (410 or recovery) */
	uint64_t watch_restarts; /* watches opened after the first */
	uint64_t events;	/* watch events applied */
	size_t objects;		/* objects in the cache */
};

/* New informer on `client` (borrowed; must outlive it). NULL on ENOMEM. */
struct informer *informer_new(struct vg_kube_client *client,
			      const struct informer_opts *opts);
/* Start the thread. 0 or VG_NOMEM / VG_INTERNAL. */
int informer_start(struct informer *inf);
/* Stop the thread (cancelling a running watch at once) and join it. */
void informer_stop(struct informer *inf);
/* Stop if running, free the cache. NULL allowed. */
void informer_free(struct informer *inf);

/* 1 once the first list has been loaded into the cache. */
int informer_has_synced(struct informer *inf);
/* Block until synced or `timeout_ms` passes; 1 when synced. */
int informer_wait_synced(struct informer *inf, int timeout_ms);

/* The cached object "namespace/name" (or "name" for cluster-scoped kinds)
 * as a new reference, or NULL. */
json_t *informer_get(struct informer *inf, const char *key);
/* Every cached object as a new JSON array (new references). */
json_t *informer_list(struct informer *inf);
/* The cached objects whose controlling owner reference (controller: true)
 * has uid `uid`, as a new JSON array; without scanning the others' JSON. */
json_t *informer_list_controlled_by(struct informer *inf, const char *uid);

void informer_stats(struct informer *inf, struct informer_stats *out);

/* Cache key of an object: "ns/name" or "name"; into `out`. 0 or VG_INVAL. */
int informer_key(const json_t *obj, char *out, size_t n);

#endif
