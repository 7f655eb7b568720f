/*
 * controller.h - the operator's controller runtime: shared informers, one
 * work queue per controller, worker threads, and the helpers reconcilers
 * use to converge children.
 *
 * A controller is a table entry (struct controller_def): the primary kind it
 * reconciles, the kinds it owns, and a reconcile function. The manager runs
 * one informer per kind (children filtered by the label
 * app.kubernetes.io/managed-by=vigil-operator), maps events of owned
 * objects to the key of their controlling owner, and calls reconcile with
 * the key, never for the same key on two workers at once.
 *
 * Reconcilers are level-triggered: from the cached primary object they
 * compute every desired child and call ctl_apply() for each; ctl_apply()
 * compares the intent with the cached live object and writes (server-side
 * apply, one field manager, force, owner reference) only when something
 * differs, so a reconcile that finds nothing to change writes nothing.
 * ctl_prune() then deletes owned children of the given kinds that were not
 * applied in this reconcile. Every write is refused once this replica is no
 * longer the leader.
 */
#ifndef VIGIL_OPERATOR_CONTROLLER_H
#define VIGIL_OPERATOR_CONTROLLER_H

#include <jansson.h>
#include <stdint.h>

#include "vigil/err.h"
#include "vigil/kube.h"

#define VIGIL_FIELD_MANAGER "vigil-operator"
#define VIGIL_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define VIGIL_MANAGED_BY "vigil-operator"

struct manager;
struct rec;

/* What a reconcile asks of the queue afterwards. */
enum rec_result {
	REC_DONE = 0,	     /* converged; forget the key's backoff */
	REC_REQUEUE_AFTER,   /* converged for now; look again after rc->after */
	REC_ERROR,	     /* failed: requeue with backoff (err says why) */
};

/*
 * A kind a controller follows without owning it (a Platform's emergency
 * stop, a Tenant's scope): on every change of such an object the map
 * function names the keys to reconcile, through ctl_enqueue(m,
 * controller, key). `obj` is the new state (the last one for a deletion),
 * `old` the previous one or NULL; both borrowed. It runs on the kind's
 * informer thread, so it may read other kinds' caches but must not block.
 */
struct ctl_watch {
	const struct vg_kube_resource *res;
	void (*map)(struct manager *m, const char *controller,
		    const json_t *obj, const json_t *old);
};

struct controller_def {
	const char *name; /* "platform": metrics label, logs */
	const struct vg_kube_resource *primary;
	/* kinds whose objects this controller owns (NULL-terminated) */
	const struct vg_kube_resource *const *owned;
	enum rec_result (*reconcile)(struct rec *rc);
	/* kinds it follows, mapped to its keys ({NULL}-terminated), or NULL */
	const struct ctl_watch *watches;
	/* Label selector of the primary informer, or NULL. */
	const char *selector;
	void *ctx; /* the controller's own state */
};

/*
 * One reconcile of one key. The reconciler reads `obj` (the cached primary
 * object, NULL when it no longer exists) and `ctx`; sets `after` for
 * REC_REQUEUE_AFTER; fills `err` for REC_ERROR.
 */
struct rec {
	struct manager *m;
	const struct controller_def *def;
	void *ctx;
	const char *key;  /* "ns/name" or "name" */
	const char *ns;	  /* "" for cluster-scoped */
	const char *name;
	json_t *obj;	  /* borrowed for the call; NULL if deleted */
	char id[40];	  /* reconcile id for logs */
	double after;	  /* seconds, for REC_REQUEUE_AFTER */
	struct vg_err err;

	/* private: children applied in this reconcile, for ctl_prune() */
	json_t *applied;
	uint64_t writes; /* write requests this reconcile made */
};

/* --- writes on behalf of a reconcile (all refused when not leader) ----- */

/*
 * Converge one child: set the owner reference (controller,
 * blockOwnerDeletion) to rc->obj unless `no_owner`, the managed-by label,
 * then server-side apply `desired` (borrowed) unless the cached live object
 * already contains every field of it. `desired` must carry apiVersion,
 * kind, metadata.name and (for namespaced kinds) metadata.namespace, in
 * the server's canonical form (e.g. quantities "500m", "1Gi") so an
 * unchanged intent compares equal. Returns VG_OK or the API error (in
 * rc->err).
 */
int ctl_apply(struct rec *rc, const struct vg_kube_resource *r,
	      json_t *desired);
int ctl_apply_unowned(struct rec *rc, const struct vg_kube_resource *r,
		      json_t *desired);

/*
 * Server-side apply `desired` (borrowed) as it is under another field
 * manager, `field_manager`, without force: for a second owner of fields
 * the operator's own manager holds (handing a field over, the
 * "transferring ownership" recipe of the server-side apply docs). Unlike
 * ctl_apply() it writes even when the cache already shows the values,
 * since co-owning them is the point; adds no label or owner reference;
 * and does not mark the object applied for ctl_prune(). A field another
 * manager holds at a different value is a conflict (VG_CONFLICT). Refused
 * unless leader and counted in rc->writes, like every write here.
 */
int ctl_apply_as(struct rec *rc, const struct vg_kube_resource *r,
		 json_t *desired, const char *field_manager);

/*
 * Create `obj` only if it does not exist (generated Secrets: created once,
 * never rotated behind the user's back). Owner reference and label as for
 * ctl_apply. VG_OK when it exists or was created.
 */
int ctl_create_once(struct rec *rc, const struct vg_kube_resource *r,
		    json_t *obj);

/* Delete every cached child of kind `r` controlled by rc->obj that this
 * reconcile did not apply. Returns VG_OK or the first error. */
int ctl_prune(struct rec *rc, const struct vg_kube_resource *r);

/* Delete one object if it exists (cached). VG_OK when gone. */
int ctl_delete(struct rec *rc, const struct vg_kube_resource *r,
	       const char *ns, const char *name);

/*
 * Server-side apply rc->obj's status (under the status subresource) when
 * `status` differs from the cached one; `status` borrowed. Conditions
 * keep their lastTransitionTime when their status did not change (see
 * ctl_condition()).
 */
int ctl_update_status(struct rec *rc, json_t *status);

/*
 * Set condition `type` in the conditions array of `status` (metav1.Condition:
 * type, status "True"/"False"/"Unknown", reason, message,
 * observedGeneration, lastTransitionTime), keeping lastTransitionTime from
 * rc->obj's current status when the condition's status is unchanged.
 */
void ctl_condition(struct rec *rc, json_t *status, const char *type,
		   int status_true, const char *reason, const char *message);

/* Add or remove a finalizer on rc->obj (server-side apply of
 * metadata.finalizers under its own field manager). */
int ctl_add_finalizer(struct rec *rc, const char *finalizer);
int ctl_remove_finalizer(struct rec *rc, const char *finalizer);
int ctl_has_finalizer(const struct rec *rc, const char *finalizer);
/* 1 when rc->obj has a deletionTimestamp. */
int ctl_is_deleting(const struct rec *rc);

/* A Kubernetes Event on rc->obj ("Normal"/"Warning"); repeated identical
 * events within 10 minutes update the count instead of piling up. */
void ctl_event(struct rec *rc, const char *type, const char *reason,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* --- reads ------------------------------------------------------------ */

/* The cached object of kind `r` (new reference) or NULL. The kind must be
 * one the manager watches (a primary or owned kind of some controller). */
json_t *ctl_get_cached(struct manager *m, const struct vg_kube_resource *r,
		       const char *ns, const char *name);
/* Every cached object of kind `r` (new array) or NULL if not watched. */
json_t *ctl_list_cached(struct manager *m, const struct vg_kube_resource *r);
/* The API client (borrowed), for reads the caches do not cover. */
struct vg_kube_client *ctl_client(struct manager *m);

/* Queue `key` of controller `name` (e.g. from another controller). */
int ctl_enqueue(struct manager *m, const char *controller, const char *key);

#endif
