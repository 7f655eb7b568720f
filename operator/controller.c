/* controller.c - what reconcilers use to converge children: apply only
 * when the intent differs, prune, status, conditions, finalizers, Events. */
#include "manager_int.h"

#include "vigil/err.h"
#include "vigil/json.h"
#include "vigil/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FINALIZER_MANAGER VIGIL_FIELD_MANAGER
#define EVENT_DEDUP_SECONDS 600
#define EVENT_DEDUP_MAX 4096

static const char *md_str(const json_t *obj, const char *field)
{
	return json_string_value(
		json_object_get(json_object_get(obj, "metadata"), field));
}

static int refuse_unless_leader(struct rec *rc)
{
	if (manager_is_leader(rc->m))
		return VG_OK;
	return vg_err_set(&rc->err, VG_FORBIDDEN,
			  "not the leader: writes are refused");
}

json_t *ctl_get_cached(struct manager *m, const struct vg_kube_resource *r,
		       const char *ns, const char *name)
{
	struct watched_kind *k = manager_kind(m, r);
	char key[512];
	int w;

	if (!k || !k->inf)
		return NULL;
	if (r->namespaced)
		w = snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
	else
		w = snprintf(key, sizeof(key), "%s", name);
	if (w < 0 || (size_t)w >= sizeof(key))
		return NULL;
	return informer_get(k->inf, key);
}

json_t *ctl_list_cached(struct manager *m, const struct vg_kube_resource *r)
{
	struct watched_kind *k = manager_kind(m, r);

	return k && k->inf ? informer_list(k->inf) : NULL;
}

struct vg_kube_client *ctl_client(struct manager *m)
{
	return m->o.client;
}

int ctl_enqueue(struct manager *m, const char *controller, const char *key)
{
	for (int i = 0; i < m->nctls; i++)
		if (strcmp(m->ctls[i].def->name, controller) == 0)
			return workqueue_add(m->ctls[i].q, key);
	return VG_NOTFOUND;
}

/* Label and owner reference every child carries. */
static int stamp_child(struct rec *rc, json_t *obj, int owned)
{
	json_t *md = json_object_get(obj, "metadata");
	json_t *labels, *ref;
	char av[128];

	if (!json_is_object(md) || !md_str(obj, "name"))
		return vg_err_set(&rc->err, VG_INVAL,
				  "child object without metadata.name");
	labels = json_object_get(md, "labels");
	if (!labels) {
		labels = json_object();
		json_object_set_new(md, "labels", labels);
	}
	json_object_set_new(labels, VIGIL_LABEL_MANAGED_BY,
			    json_string(VIGIL_MANAGED_BY));
	if (!owned)
		return VG_OK;
	if (!rc->obj || !md_str(rc->obj, "uid"))
		return vg_err_set(&rc->err, VG_INVAL, "owner has no uid");
	vg_kube_resource_api_version(rc->def->primary, av, sizeof(av));
	ref = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b}", "apiVersion", av, "kind",
			rc->def->primary->kind, "name", md_str(rc->obj, "name"),
			"uid", md_str(rc->obj, "uid"), "controller", 1,
			"blockOwnerDeletion", 1);
	if (!ref)
		return vg_err_set(&rc->err, VG_NOMEM, "owner reference");
	json_object_set_new(md, "ownerReferences", json_pack("[o]", ref));
	return VG_OK;
}

static void remember_applied(struct rec *rc, const struct vg_kube_resource *r,
			     const char *ns, const char *name)
{
	char key[600];

	snprintf(key, sizeof(key), "%s/%s/%s/%s", r->group ? r->group : "",
		 r->resource, ns ? ns : "", name);
	json_object_set_new(rc->applied, key, json_true());
}

/* Every server-side apply a reconcile makes: refused unless leader,
 * counted in rc->writes. */
static int server_side_apply(struct rec *rc, const struct vg_kube_resource *r,
			     const char *ns, json_t *body,
			     const struct vg_kube_patch_opts *po)
{
	int rc_ = refuse_unless_leader(rc);

	if (rc_ != VG_OK)
		return rc_;
	rc_ = vg_kube_apply(rc->m->o.client, r, ns, body, po, NULL, &rc->err);
	rc->writes++;
	return rc_;
}

static int apply(struct rec *rc, const struct vg_kube_resource *r,
		 json_t *desired, int owned)
{
	struct vg_kube_patch_opts po = { .field_manager = VIGIL_FIELD_MANAGER,
					 .force = true };
	const char *name, *ns;
	json_t *live;
	int rc_;

	rc_ = stamp_child(rc, desired, owned);
	if (rc_ != VG_OK)
		return rc_;
	name = md_str(desired, "name");
	ns = r->namespaced ? md_str(desired, "namespace") : NULL;
	remember_applied(rc, r, ns, name);
	live = ctl_get_cached(rc->m, r, ns, name);
	if (live && vg_json_is_subset(desired, live)) {
		json_decref(live);
		return VG_OK; /* converged: write nothing */
	}
	rc_ = server_side_apply(rc, r, ns, desired, &po);
	if (rc_ == VG_INVAL && live) {
		/*
		 * Apply merges list-maps by key, so a hand edit that changed
		 * a key (a Service port 8080 -> 9999 under another manager)
		 * survives next to ours and the merge is invalid (duplicate
		 * port name). Put our lists back wholesale with a merge
		 * patch, then apply again so the fields are ours to manage.
		 */
		struct vg_kube_patch_opts mp = { .type = VG_KUBE_PATCH_MERGE,
						 .field_manager =
							 VIGIL_FIELD_MANAGER };

		vg_warn("apply rejected, restoring with a merge patch",
			"controller", rc->def->name, "reconcile_id", rc->id,
			"kind", r->kind, "namespace", ns, "name", name, "err",
			rc->err.msg);
		vg_err_clear(&rc->err);
		rc_ = vg_kube_patch(rc->m->o.client, r, ns, name, desired, &mp,
				    NULL, &rc->err);
		rc->writes++;
		if (rc_ == VG_OK) {
			rc_ = vg_kube_apply(rc->m->o.client, r, ns, desired,
					    &po, NULL, &rc->err);
			rc->writes++;
		}
	}
	if (rc_ == VG_OK)
		vg_info(live ? "updated" : "created", "controller",
			rc->def->name, "reconcile_id", rc->id, "kind", r->kind,
			"namespace", ns, "name", name);
	if (rc_ == VG_OK && !live)
		ctl_event(rc, "Normal", "Created", "created %s %s", r->kind,
			  name);
	json_decref(live);
	return rc_;
}

int ctl_apply(struct rec *rc, const struct vg_kube_resource *r,
	      json_t *desired)
{
	return apply(rc, r, desired, 1);
}

int ctl_apply_unowned(struct rec *rc, const struct vg_kube_resource *r,
		      json_t *desired)
{
	return apply(rc, r, desired, 0);
}

int ctl_apply_as(struct rec *rc, const struct vg_kube_resource *r,
		 json_t *desired, const char *field_manager)
{
	struct vg_kube_patch_opts po = { .field_manager = field_manager };
	const char *name = md_str(desired, "name");
	const char *ns = r->namespaced ? md_str(desired, "namespace") : NULL;
	int rc_;

	if (!name || !field_manager || !*field_manager)
		return vg_err_set(&rc->err, VG_INVAL,
				  "apply as another manager needs "
				  "metadata.name and a field manager");
	rc_ = server_side_apply(rc, r, ns, desired, &po);
	if (rc_ == VG_OK)
		vg_info("applied", "controller", rc->def->name, "reconcile_id",
			rc->id, "kind", r->kind, "namespace", ns, "name", name,
			"field_manager", field_manager);
	return rc_;
}

int ctl_create_once(struct rec *rc, const struct vg_kube_resource *r,
		    json_t *obj)
{
	const char *name, *ns;
	json_t *live;
	int rc_;

	rc_ = stamp_child(rc, obj, 1);
	if (rc_ != VG_OK)
		return rc_;
	name = md_str(obj, "name");
	ns = r->namespaced ? md_str(obj, "namespace") : NULL;
	remember_applied(rc, r, ns, name);
	live = ctl_get_cached(rc->m, r, ns, name);
	if (live) {
		json_decref(live);
		return VG_OK;
	}
	rc_ = refuse_unless_leader(rc);
	if (rc_ != VG_OK)
		return rc_;
	rc_ = vg_kube_create(rc->m->o.client, r, ns, obj, NULL, NULL,
			     &rc->err);
	rc->writes++;
	if (rc_ == VG_EXISTS) /* the cache had not seen it yet */
		return VG_OK;
	if (rc_ == VG_OK)
		ctl_event(rc, "Normal", "Created", "created %s %s", r->kind,
			  name);
	return rc_;
}

int ctl_delete(struct rec *rc, const struct vg_kube_resource *r,
	       const char *ns, const char *name)
{
	struct vg_kube_delete_opts dopts = { .propagation_policy =
						     "Background" };
	json_t *live = ctl_get_cached(rc->m, r, ns, name);
	int rc_;

	if (!live)
		return VG_OK;
	dopts.uid = md_str(live, "uid");
	rc_ = refuse_unless_leader(rc);
	if (rc_ == VG_OK) {
		rc_ = vg_kube_delete(rc->m->o.client, r, ns, name, &dopts,
				     NULL, &rc->err);
		rc->writes++;
	}
	if (rc_ == VG_NOTFOUND)
		rc_ = VG_OK;
	if (rc_ == VG_OK)
		vg_info("deleted", "controller", rc->def->name,
			"reconcile_id", rc->id, "kind", r->kind, "namespace",
			ns, "name", name);
	json_decref(live);
	return rc_;
}

/* 1 when `obj` is controlled by rc->obj. */
static int controlled_by(const json_t *obj, const json_t *owner)
{
	const json_t *refs = json_object_get(json_object_get(obj, "metadata"),
					     "ownerReferences");
	const char *uid = md_str(owner, "uid");
	size_t i;
	json_t *ref;

	if (!uid)
		return 0;
	json_array_foreach(refs, i, ref)
	{
		const char *u = json_string_value(json_object_get(ref, "uid"));

		if (json_is_true(json_object_get(ref, "controller")) && u &&
		    strcmp(u, uid) == 0)
			return 1;
	}
	return 0;
}

int ctl_prune(struct rec *rc, const struct vg_kube_resource *r)
{
	struct watched_kind *k = manager_kind(rc->m, r);
	json_t *all, *obj;
	int first = VG_OK;
	size_t i;

	if (!k || !k->inf || !rc->obj)
		return VG_OK;
	/* only rc->obj's children are decoded from the cache */
	all = informer_list_controlled_by(k->inf, md_str(rc->obj, "uid"));
	json_array_foreach(all, i, obj)
	{
		const char *name = md_str(obj, "name");
		const char *ns = md_str(obj, "namespace");
		char key[600];

		if (!name || !controlled_by(obj, rc->obj))
			continue;
		snprintf(key, sizeof(key), "%s/%s/%s/%s",
			 r->group ? r->group : "", r->resource, ns ? ns : "",
			 name);
		if (json_object_get(rc->applied, key))
			continue;
		int rc_ = ctl_delete(rc, r, ns, name);
		if (rc_ == VG_OK)
			ctl_event(rc, "Normal", "Pruned",
				  "deleted %s %s, no longer desired", r->kind,
				  name);
		else if (first == VG_OK)
			first = rc_;
	}
	json_decref(all);
	return first;
}

static void rfc3339_now(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *find_condition(const json_t *conds, const char *type)
{
	size_t i;
	json_t *c;

	json_array_foreach(conds, i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));

		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

void ctl_condition(struct rec *rc, json_t *status, const char *type,
		   int status_true, const char *reason, const char *message)
{
	const char *st = status_true ? "True" : "False";
	json_t *conds = json_object_get(status, "conditions");
	json_t *prev = rc->obj ? find_condition(vg_json_get(rc->obj,
							     "status.conditions"),
						type)
			       : NULL;
	const char *prev_st = json_string_value(json_object_get(prev, "status"));
	const char *prev_t = json_string_value(
		json_object_get(prev, "lastTransitionTime"));
	json_t *c, *old;
	char now[32];
	json_int_t gen = (json_int_t)vg_json_get_int(rc->obj,
						     "metadata.generation", 0);

	if (!conds) {
		conds = json_array();
		json_object_set_new(status, "conditions", conds);
	}
	rfc3339_now(now, sizeof(now));
	c = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "type", type, "status", st,
		      "observedGeneration", gen, "lastTransitionTime",
		      prev_st && prev_t && strcmp(prev_st, st) == 0 ? prev_t
								    : now,
		      "reason", reason, "message", message ? message : "");
	if (!c)
		return;
	old = find_condition(conds, type);
	if (old)
		json_object_update(old, c);
	else
		json_array_append(conds, c);
	json_decref(c);
}

int ctl_update_status(struct rec *rc, json_t *status)
{
	struct vg_kube_patch_opts po = { .field_manager = VIGIL_FIELD_MANAGER,
					 .force = true,
					 .subresource = "status" };
	json_t *live = rc->obj ? json_object_get(rc->obj, "status") : NULL;
	json_t *body;
	char av[128];
	int rc_;

	if (!rc->obj)
		return VG_OK;
	if (live && vg_json_equal(status, live))
		return VG_OK;
	vg_kube_resource_api_version(rc->def->primary, av, sizeof(av));
	body = json_pack("{s:s,s:s,s:{s:s},s:O}", "apiVersion", av, "kind",
			 rc->def->primary->kind, "metadata", "name",
			 md_str(rc->obj, "name"), "status", status);
	if (!body)
		return vg_err_set(&rc->err, VG_NOMEM, "status body");
	if (rc->def->primary->namespaced)
		json_object_set_new(json_object_get(body, "metadata"),
				    "namespace",
				    json_string(md_str(rc->obj, "namespace")));
	rc_ = server_side_apply(rc, rc->def->primary,
			       md_str(rc->obj, "namespace"), body, &po);
	vg_debug("status applied", "controller", rc->def->name,
		 "reconcile_id", rc->id, "name", md_str(rc->obj, "name"));
	json_decref(body);
	return rc_;
}

int ctl_has_finalizer(const struct rec *rc, const char *finalizer)
{
	const json_t *fins = json_object_get(
		json_object_get(rc->obj, "metadata"), "finalizers");
	size_t i;
	json_t *f;

	json_array_foreach(fins, i, f)
	{
		const char *s = json_string_value(f);

		if (s && strcmp(s, finalizer) == 0)
			return 1;
	}
	return 0;
}

int ctl_is_deleting(const struct rec *rc)
{
	return rc->obj && md_str(rc->obj, "deletionTimestamp") != NULL;
}

/* Merge patch of metadata.finalizers, conditional on the resourceVersion we
 * read so a concurrent change is never overwritten. */
static int set_finalizers(struct rec *rc, json_t *fins)
{
	struct vg_kube_patch_opts po = { .type = VG_KUBE_PATCH_MERGE };
	json_t *patch;
	int rc_ = refuse_unless_leader(rc);

	if (rc_ != VG_OK) {
		json_decref(fins);
		return rc_;
	}
	patch = json_pack("{s:{s:o,s:s}}", "metadata", "finalizers", fins,
			  "resourceVersion", md_str(rc->obj, "resourceVersion"));
	if (!patch)
		return vg_err_set(&rc->err, VG_NOMEM, "finalizer patch");
	rc_ = vg_kube_patch(rc->m->o.client, rc->def->primary,
			    md_str(rc->obj, "namespace"),
			    md_str(rc->obj, "name"), patch, &po, NULL,
			    &rc->err);
	rc->writes++;
	json_decref(patch);
	return rc_;
}

int ctl_add_finalizer(struct rec *rc, const char *finalizer)
{
	json_t *fins;

	if (!rc->obj || ctl_has_finalizer(rc, finalizer))
		return VG_OK;
	fins = json_deep_copy(json_object_get(
		json_object_get(rc->obj, "metadata"), "finalizers"));
	if (!fins)
		fins = json_array();
	json_array_append_new(fins, json_string(finalizer));
	return set_finalizers(rc, fins);
}

int ctl_remove_finalizer(struct rec *rc, const char *finalizer)
{
	json_t *fins = json_array(), *f;
	size_t i;

	if (!rc->obj || !ctl_has_finalizer(rc, finalizer)) {
		json_decref(fins);
		return VG_OK;
	}
	json_array_foreach(json_object_get(json_object_get(rc->obj, "metadata"),
					   "finalizers"),
			   i, f)
	{
		const char *s = json_string_value(f);

		if (s && strcmp(s, finalizer) != 0)
			json_array_append(fins, f);
	}
	return set_finalizers(rc, fins);
}

/* An Event this process created, by uid|hash of type, reason and message.
 * Sized to its name: thousands are kept (EVENT_DEDUP_MAX), one per new
 * child. */
struct event_seen {
	long count;
	time_t last;
	char name[]; /* of the Event object */
};

/* FNV-1a over type, reason and message: the dedup key carries 16 hex
 * digits instead of the message (up to 1 KB each, thousands of them). A
 * collision would need two messages about one object to hash alike. */
static uint64_t event_hash(const char *type, const char *reason,
			   const char *msg)
{
	const char *parts[] = { type, reason, msg };
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		for (const char *p = parts[i]; *p; p++) {
			h ^= (unsigned char)*p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff; /* "a|bc" and "ab|c" differ */
		h *= 1099511628211ULL;
	}
	return h;
}

void ctl_event(struct rec *rc, const char *type, const char *reason,
	       const char *fmt, ...)
{
	struct manager *m = rc->m;
	struct vg_err err = { 0 };
	struct event_seen *seen;
	char msg[1024], key[128], now[32], av[128], ename[320];
	const char *uid, *ns;
	time_t t = time(NULL);
	va_list ap;
	json_t *ev;

	if (!rc->obj || !manager_is_leader(m))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uid = md_str(rc->obj, "uid");
	ns = md_str(rc->obj, "namespace");
	if (!ns || !*ns)
		ns = "default"; /* cluster-scoped objects: as kubectl expects */
	rfc3339_now(now, sizeof(now));
	snprintf(key, sizeof(key), "%.64s|%016llx", uid ? uid : "",
		 (unsigned long long)event_hash(type, reason, msg));

	pthread_mutex_lock(&m->events_mu);
	seen = vg_strmap_get(&m->events, key);
	if (seen && t - seen->last < EVENT_DEDUP_SECONDS) {
		json_t *patch;

		seen->count++;
		seen->last = t;
		patch = json_pack("{s:I,s:s}", "count", (json_int_t)seen->count,
				  "lastTimestamp", now);
		snprintf(ename, sizeof(ename), "%s", seen->name);
		pthread_mutex_unlock(&m->events_mu);
		vg_kube_patch(m->o.client, &vg_kube_events, ns, ename, patch,
			      NULL, NULL, &err);
		rc->writes++;
		json_decref(patch);
		return;
	}
	if (vg_strmap_len(&m->events) >= EVENT_DEDUP_MAX) {
		vg_strmap_cleanup(&m->events);
		vg_strmap_init(&m->events, free);
	}
	snprintf(ename, sizeof(ename), "%s.%lx%lx", md_str(rc->obj, "name"),
		 (unsigned long)t,
		 (unsigned long)atomic_fetch_add(&m->reconcile_seq, 1));
	seen = malloc(sizeof(*seen) + strlen(ename) + 1);
	if (seen) {
		seen->count = 1;
		seen->last = t;
		memcpy(seen->name, ename, strlen(ename) + 1);
		if (vg_strmap_put(&m->events, key, seen) != VG_OK)
			free(seen);
	}
	pthread_mutex_unlock(&m->events_mu);

	vg_kube_resource_api_version(rc->def->primary, av, sizeof(av));
	ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s?,s:s?,s:s?},"
		       "s:s,s:s,s:s,s:{s:s},s:s,s:s,s:i,s:s,s:s?}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name",
		       ename, "namespace", ns, "involvedObject", "apiVersion",
		       av, "kind", rc->def->primary->kind, "name",
		       md_str(rc->obj, "name"), "namespace",
		       md_str(rc->obj, "namespace"), "uid", uid,
		       "resourceVersion", md_str(rc->obj, "resourceVersion"),
		       "reason", reason, "message", msg, "type", type, "source",
		       "component", VIGIL_FIELD_MANAGER, "firstTimestamp", now,
		       "lastTimestamp", now, "count", 1, "reportingComponent",
		       VIGIL_FIELD_MANAGER, "reportingInstance", m->o.identity);
	if (ev) {
		vg_kube_create(m->o.client, &vg_kube_events, ns, ev, NULL, NULL,
			       &err);
		rc->writes++;
		vg_debug("event", "controller", rc->def->name, "reconcile_id",
			 rc->id, "reason", reason, "message", msg);
	}
	json_decref(ev);
	if (strcmp(type, "Warning") == 0)
		vg_warn(msg, "controller", rc->def->name, "reconcile_id", rc->id,
			"reason", reason, "name", md_str(rc->obj, "name"));
}
