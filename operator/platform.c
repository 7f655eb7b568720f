/*
 * platform.c - the Platform reconciler: the children a Platform wants, in
 * the order they are applied (platform_desired), the status it reports
 * (platform_observe), and the reconcile function over controller.h. The
 * children themselves are built in platform_workloads.c,
 * platform_backends.c and platform_network.c from the spec as
 * platform_spec.c reads it (see platform_int.h).
 */
#include "platform_int.h"

#include "resources.h"
#include "tenant.h"
#include "vigil/db.h"
#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/strmap.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The desired children                                                 */
/* ------------------------------------------------------------------ */

int platform_desired(const json_t *platform, const struct platform_env *env,
		     json_t **children, struct vg_err *err)
{
	struct pctx c;
	json_t *out = NULL;
	int rc;

	*children = NULL;
	rc = pctx_read(&c, platform, env, err);
	if (rc != VG_OK)
		goto out;
	out = json_array();
	if (!out)
		pctx_nomem(&c);
	/* the ConfigMap first: it sets the hash the pod templates carry;
	 * policies, accounts and volumes before the pods that need them */
	pctx_add(&c, out, configmap_new(&c));
	if (c.netpol)
		add_network_policies(&c, out);
	for (int i = 0; i < NCOMPONENTS && !c.sa_name; i++)
		pctx_add(&c, out, service_account_new(&c, i));
	if (c.redis.managed && c.redis.persistence)
		pctx_add(&c, out, redis_pvc_new(&c));
	pctx_add(&c, out, gateway_service_new(&c));
	pctx_add(&c, out,
		 service_new(&c, c.comp[BRAIN].name,
			     platform_components[BRAIN].app, "brain",
			     "ClusterIP", 0, "http", c.comp[BRAIN].port));
	if (c.db.managed) {
		pctx_add(&c, out,
			 service_new(&c, c.n_postgres, "postgres", "postgres",
				     "ClusterIP", 1, "postgres",
				     PLATFORM_POSTGRES_PORT));
		pctx_add(&c, out, postgres_statefulset_new(&c));
	}
	if (c.redis.managed) {
		pctx_add(&c, out,
			 service_new(&c, c.n_redis, "redis", "redis",
				     "ClusterIP", 0, "redis",
				     PLATFORM_REDIS_PORT));
		pctx_add(&c, out, redis_deployment_new(&c));
	}
	for (int i = 0; i < NCOMPONENTS; i++)
		pctx_add(&c, out, component_deployment_new(&c, i));
	for (int i = 0; i < NCOMPONENTS; i++)
		if (c.comp[i].min < c.comp[i].max)
			pctx_add(&c, out, hpa_new(&c, i));
	for (int i = 0; i < NCOMPONENTS; i++)
		pctx_add(&c, out, pdb_new(&c, i));
	rc = c.rc;
out:
	if (rc == VG_OK)
		*children = out;
	else
		json_decref(out);
	pctx_cleanup(&c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Status                                                               */
/* ------------------------------------------------------------------ */

enum wl_state { WL_MISSING, WL_ROLLING, WL_STUCK, WL_READY };

static int has_condition(const json_t *obj, const char *type,
			 const char *status, const char *reason)
{
	json_t *conds = vg_json_get_array(obj, "status.conditions"), *cond;
	size_t i;

	json_array_foreach(conds, i, cond) {
		if (strcmp(vg_json_get_str(cond, "type", ""), type) == 0 &&
		    strcmp(vg_json_get_str(cond, "status", ""), status) == 0 &&
		    (!reason ||
		     strcmp(vg_json_get_str(cond, "reason", ""), reason) == 0))
			return 1;
	}
	return 0;
}

/* Where a live Deployment or StatefulSet stands, and why, into `why`. */
static enum wl_state workload_state(const json_t *lv, char *why, size_t n)
{
	long long gen, obs, want, ready, updated, total;
	const char *cur, *upd;

	if (!lv) {
		snprintf(why, n, "not created yet");
		return WL_MISSING;
	}
	gen = vg_json_get_int(lv, "metadata.generation", 0);
	obs = vg_json_get_int(lv, "status.observedGeneration", 0);
	want = vg_json_get_int(lv, "spec.replicas", 1);
	ready = vg_json_get_int(lv, "status.readyReplicas", 0);
	updated = vg_json_get_int(lv, "status.updatedReplicas", 0);
	total = vg_json_get_int(lv, "status.replicas", 0);
	if (has_condition(lv, "Progressing", "False",
			  "ProgressDeadlineExceeded")) {
		snprintf(why, n, "rollout exceeded its progress deadline");
		return WL_STUCK;
	}
	if (obs < gen) {
		snprintf(why, n, "generation %lld not yet observed", gen);
		return WL_ROLLING;
	}
	if (updated < want) {
		snprintf(why, n, "%lld/%lld replicas updated", updated, want);
		return WL_ROLLING;
	}
	if (ready < want) {
		snprintf(why, n, "%lld/%lld replicas ready", ready, want);
		return WL_ROLLING;
	}
	if (total > want) {
		snprintf(why, n, "%lld old replicas terminating", total - want);
		return WL_ROLLING;
	}
	cur = vg_json_get_str(lv, "status.currentRevision", NULL);
	upd = vg_json_get_str(lv, "status.updateRevision", NULL);
	if (cur && upd && strcmp(cur, upd) != 0) {
		snprintf(why, n, "revision %s rolling out", upd);
		return WL_ROLLING;
	}
	snprintf(why, n, "%lld/%lld replicas ready", ready, want);
	return WL_READY;
}

/* status.<component> from its live Deployment (NULL: not created). */
static json_t *component_status_new(const json_t *dep)
{
	long long want = dep ? vg_json_get_int(dep, "spec.replicas", 1) : 0;
	long long ready = vg_json_get_int(dep, "status.readyReplicas", 0);
	long long updated = vg_json_get_int(dep, "status.updatedReplicas", 0);
	char summary[48];

	snprintf(summary, sizeof(summary), "%lld/%lld", ready, want);
	return json_pack(
		"{s:I, s:I, s:I, s:s, s:s*}", "desiredReplicas",
		(json_int_t)want, "readyReplicas", (json_int_t)ready,
		"updatedReplicas", (json_int_t)updated, "ready", summary,
		"image",
		vg_json_get_str(dep, "spec.template.spec.containers[0].image",
				NULL));
}

/* Append "; name: why" to a message, truncating quietly. */
static void msg_add(char *msg, size_t size, const char *name, const char *why)
{
	size_t len = strlen(msg);

	if (len + 1 < size)
		snprintf(msg + len, size - len, "%s%s: %s", len ? "; " : "",
			 name, why);
}

/* The endpoint from the gateway Service among the children. */
static void endpoint_of(const json_t *children, const char *gateway,
			const char *ns, char *out, size_t size)
{
	json_t *ch;
	size_t i;

	out[0] = '\0';
	json_array_foreach((json_t *)children, i, ch) {
		if (strcmp(vg_json_get_str(ch, "kind", ""), "Service") != 0 ||
		    strcmp(vg_json_get_str(ch, "metadata.name", ""), gateway) !=
			    0)
			continue;
		snprintf(out, size, "%s://%s.%s.svc:%lld",
			 vg_json_get_str(ch, "spec.ports[0].name", "http"),
			 gateway, ns,
			 vg_json_get_int(ch, "spec.ports[0].port", 0));
	}
}

int platform_observe(const json_t *platform, const json_t *children,
		     const json_t *live, const char *problem_reason,
		     const char *problem_msg, json_t **status,
		     struct platform_health *h, struct vg_err *err)
{
	const char *name = vg_json_get_str(platform, "metadata.name", NULL);
	const char *ns = vg_json_get_str(platform, "metadata.namespace", "");
	char key[NAME_LEN + 32], why[128], endpoint[HOST_LEN + 32];
	char gw[NAME_LEN];
	int total = 0, ready = 0, missing = 0, stuck = 0;
	char stuck_msg[sizeof(h->degraded_msg)] = "";
	json_t *st = NULL, *ch;
	const char *version;
	size_t i;

	memset(h, 0, sizeof(*h));
	*status = NULL;
	if (!name)
		return vg_err_set(err, VG_INVAL,
				  "metadata.name is missing or not a string");
	st = json_pack("{s:I}", "observedGeneration",
		       (json_int_t)vg_json_get_int(platform,
						   "metadata.generation", 0));
	if (!st)
		goto nomem;
	for (int c = 0; c < NCOMPONENTS; c++) {
		snprintf(key, sizeof(key), "Deployment/%s-%s", name,
			 platform_components[c].name);
		if (json_object_set_new(
			    st, platform_components[c].name,
			    component_status_new(json_object_get(live, key))))
			goto nomem;
	}
	json_array_foreach((json_t *)children, i, ch) {
		const char *kind = vg_json_get_str(ch, "kind", "");
		const char *cn = vg_json_get_str(ch, "metadata.name", "");

		if (strcmp(kind, "Deployment") != 0 &&
		    strcmp(kind, "StatefulSet") != 0)
			continue;
		snprintf(key, sizeof(key), "%s/%s", kind, cn);
		total++;
		switch (workload_state(json_object_get(live, key), why,
				       sizeof(why))) {
		case WL_READY:
			ready++;
			break;
		case WL_STUCK:
			stuck++;
			msg_add(stuck_msg, sizeof(stuck_msg), cn, why);
			msg_add(h->progressing_msg, sizeof(h->progressing_msg),
				cn, why);
			break;
		case WL_MISSING:
			missing++;
			msg_add(h->progressing_msg, sizeof(h->progressing_msg),
				cn, why);
			break;
		case WL_ROLLING:
			msg_add(h->progressing_msg, sizeof(h->progressing_msg),
				cn, why);
			break;
		}
	}

	h->degraded = problem_reason != NULL || stuck > 0;
	h->ready = !h->degraded && total > 0 && ready == total;
	h->progressing = !h->ready && total - ready - stuck > 0;
	if (problem_reason) {
		h->degraded_reason = problem_reason;
		snprintf(h->degraded_msg, sizeof(h->degraded_msg), "%s",
			 problem_msg ? problem_msg : "");
	} else if (stuck) {
		h->degraded_reason = "RolloutStuck";
		snprintf(h->degraded_msg, sizeof(h->degraded_msg), "%s",
			 stuck_msg);
	} else {
		h->degraded_reason = "AsExpected";
	}
	if (h->ready) {
		h->ready_reason = "AllComponentsReady";
		snprintf(h->ready_msg, sizeof(h->ready_msg),
			 "all %d workloads are rolled out and ready", total);
	} else if (h->degraded) {
		h->ready_reason = h->degraded_reason;
		snprintf(h->ready_msg, sizeof(h->ready_msg), "%s",
			 h->degraded_msg);
	} else {
		h->ready_reason = "ComponentsNotReady";
		snprintf(h->ready_msg, sizeof(h->ready_msg), "%s",
			 h->progressing_msg);
	}
	if (h->progressing)
		h->progressing_reason = "RolloutInProgress";
	else if (h->degraded)
		h->progressing_reason = h->degraded_reason;
	else
		h->progressing_reason = "RolloutComplete";
	if (!h->progressing && h->degraded)
		snprintf(h->progressing_msg, sizeof(h->progressing_msg), "%s",
			 h->degraded_msg);
	else if (!h->progressing)
		h->progressing_msg[0] = '\0';

	if (problem_reason && strcmp(problem_reason, "InvalidSpec") == 0)
		h->phase = "Failed";
	else if (h->degraded)
		h->phase = "Degraded";
	else if (h->ready)
		h->phase = "Ready";
	else if (total > 0 && missing == total)
		h->phase = "Pending";
	else
		h->phase = "Progressing";

	/* status.version: the version every component runs, so it moves
	 * only when a rollout has completed */
	version = h->ready ? vg_json_get_str(platform, "spec.version", NULL)
			   : vg_json_get_str(platform, "status.version", NULL);
	snprintf(gw, sizeof(gw), "%s-gateway", name);
	endpoint_of(children, gw, ns, endpoint, sizeof(endpoint));
	if (json_object_set_new(st, "phase", json_string(h->phase)) ||
	    (version &&
	     json_object_set_new(st, "version", json_string(version))) ||
	    (endpoint[0] &&
	     json_object_set_new(st, "endpoint", json_string(endpoint))))
		goto nomem;
	*status = st;
	return VG_OK;
nomem:
	json_decref(st);
	return vg_err_set(err, VG_NOMEM, "out of memory building the status");
}

/* ------------------------------------------------------------------ */
/* Reconcile                                                            */
/* ------------------------------------------------------------------ */

static const struct vg_kube_resource *const platform_owned[] = {
	&vg_kube_configmaps,	   &vg_kube_secrets,
	&vg_kube_services,	   &vg_kube_serviceaccounts,
	&vg_kube_deployments,	   &vg_kube_statefulsets,
	&vg_kube_hpas,		   &vg_kube_pdbs,
	&vg_kube_networkpolicies, &vg_kube_persistentvolumeclaims,
	NULL,
};

/*
 * Kinds whose children are deleted once no longer desired (redis switched
 * to external: its Deployment, Service, PVC and NetworkPolicy go). Not
 * Secrets: generated credentials outlive a switch to an external database
 * or Redis, so that switching back finds the password the retained data
 * volume was initialised with; they go with the Platform (owner
 * reference). The PostgreSQL data volume is the StatefulSet's, not the
 * Platform's, and is never deleted by the operator.
 */
static const struct vg_kube_resource *const prune_kinds[] = {
	&vg_kube_configmaps,	   &vg_kube_services,
	&vg_kube_serviceaccounts, &vg_kube_deployments,
	&vg_kube_statefulsets,	   &vg_kube_hpas,
	&vg_kube_pdbs,		   &vg_kube_networkpolicies,
	&vg_kube_persistentvolumeclaims,
};

json_t *platform_pick(struct manager *m, const char *ns)
{
	json_t *all = ctl_list_cached(m, &vigil_platforms), *p, *best = NULL;
	size_t i;

	json_array_foreach(all, i, p) {
		const char *pns = vg_json_get_str(p, "metadata.namespace", NULL);
		const char *ts =
			vg_json_get_str(p, "metadata.creationTimestamp", NULL);
		const char *bts;

		if (vg_json_get(p, "metadata.deletionTimestamp"))
			continue;
		if (ns && (!pns || strcmp(pns, ns) != 0))
			continue;
		/* the oldest: RFC 3339 timestamps sort as strings */
		bts = best ? vg_json_get_str(best, "metadata.creationTimestamp",
					     NULL)
			   : NULL;
		if (!best || (ts && bts && strcmp(ts, bts) < 0))
			best = p;
	}
	json_incref(best);
	json_decref(all);
	return best;
}

const struct controller_def platform_controller = {
	.name = "platform",
	.primary = &vigil_platforms,
	.owned = platform_owned,
	.reconcile = platform_reconcile,
};

/* Something the status reports as Degraded. */
struct problem {
	const char *reason; /* NULL: none */
	char msg[512];
};

__attribute__((format(printf, 3, 4))) static void
problem_set(struct problem *p, const char *reason, const char *f, ...)
{
	va_list ap;

	p->reason = reason;
	va_start(ap, f);
	vsnprintf(p->msg, sizeof(p->msg), f, ap);
	va_end(ap);
}

/* Create the generated Secrets that do not exist yet; never update them
 * (ctl_create_once() looks at the cache and reports what it created). */
static int create_secrets(struct rec *rc)
{
	json_t *secrets = NULL, *s;
	size_t i;
	int ret;

	ret = platform_secrets(rc->obj, &secrets, &rc->err);
	json_array_foreach(secrets, i, s) {
		ret = ctl_create_once(rc, &vg_kube_secrets, s);
		if (ret != VG_OK)
			break;
	}
	json_decref(secrets);
	return ret;
}

/*
 * Do the user-provided Secrets exist, with their keys? They are not the
 * operator's (not in its caches), so they are read from the API server.
 * A missing one fills `p`; only API failures are errors.
 */
static int check_required_secrets(struct rec *rc, struct problem *p)
{
	json_t *refs = NULL, *ref, *secret = NULL, *keys, *key;
	struct vg_err gerr;
	int ret, missing = 0;
	size_t i, k;

	ret = platform_required_secrets(rc->obj, &refs, &rc->err);
	json_array_foreach(refs, i, ref) {
		const char *name = vg_json_get_str(ref, "name", "");
		const char *field = vg_json_get_str(ref, "field", "");
		json_t *data;

		vg_err_clear(&gerr);
		ret = vg_kube_get(ctl_client(rc->m), &vg_kube_secrets, rc->ns,
				  name, NULL, &secret, &gerr);
		if (ret == VG_NOTFOUND) {
			if (!missing++)
				problem_set(p, "MissingSecret",
					    "Secret %s (%s) not found in "
					    "namespace %s",
					    name, field, rc->ns);
			ret = VG_OK;
			continue;
		}
		if (ret != VG_OK) {
			rc->err = gerr;
			break;
		}
		data = json_object_get(secret, "data");
		keys = json_object_get(ref, "keys");
		json_array_foreach(keys, k, key) {
			if (json_object_get(data, json_string_value(key)))
				continue;
			if (!missing++)
				problem_set(p, "MissingSecret",
					    "Secret %s (%s) has no key %s",
					    name, field,
					    json_string_value(key));
		}
		json_decref(secret);
		secret = NULL;
	}
	if (missing > 1) {
		size_t len = strlen(p->msg);

		snprintf(p->msg + len, sizeof(p->msg) - len,
			 " (and %d more missing)", missing - 1);
	}
	json_decref(secret);
	json_decref(refs);
	return ret;
}

/*
 * Grow the PostgreSQL data volume: a StatefulSet's claim templates are
 * immutable, so a larger spec.database.managed.storage is requested on
 * the claim itself (the storage class must allow expansion).
 */
static int grow_volume(struct rec *rc, const char *sts, const char *want)
{
	struct quantity qw, qh;
	char pvc[NAME_LEN + 16];
	json_t *live, *desired = NULL;
	const char *have;
	int ret = VG_OK;

	snprintf(pvc, sizeof(pvc), "data-%s-0", sts);
	live = ctl_get_cached(rc->m, &vg_kube_persistentvolumeclaims, rc->ns,
			      pvc);
	have = vg_json_get_str(live, "spec.resources.requests.storage", NULL);
	if (!have || quantity_parse(&qw, want, NULL) != VG_OK ||
	    quantity_parse(&qh, have, NULL) != VG_OK ||
	    quantity_cmp(&qw, &qh) <= 0)
		goto out;
	desired = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:{s:s}}}}",
			    "apiVersion", "v1", "kind", "PersistentVolumeClaim",
			    "metadata", "name", pvc, "namespace", rc->ns,
			    "spec", "resources", "requests", "storage", want);
	if (!desired) {
		ret = vg_err_set(&rc->err, VG_NOMEM, "out of memory");
		goto out;
	}
	ret = ctl_apply_unowned(rc, &vg_kube_persistentvolumeclaims, desired);
	if (ret == VG_OK)
		ctl_event(rc, "Normal", "VolumeExpanding",
			  "requested %s for PersistentVolumeClaim %s (was %s)",
			  want, pvc, have);
out:
	json_decref(live);
	json_decref(desired);
	return ret;
}

/*
 * Before a Deployment's intent drops spec.replicas for an HPA: let a
 * second field manager co-own the current count (see
 * platform_replicas_handover()), through the controller like every other
 * write (leader only, counted).
 */
static int handover_replicas(struct rec *rc, const json_t *desired)
{
	const char *name = vg_json_get_str(desired, "metadata.name", "");
	json_t *live = ctl_get_cached(rc->m, &vg_kube_deployments, rc->ns, name);
	json_t *hpa = live ? ctl_get_cached(rc->m, &vg_kube_hpas, rc->ns, name)
			   : NULL;
	json_t *body = platform_replicas_handover(desired, live, hpa);
	int ret = VG_OK;

	if (body) {
		ret = ctl_apply_as(rc, &vg_kube_deployments, body,
				   PLATFORM_HANDOVER_MANAGER);
		if (ret == VG_OK)
			vg_info("replica count handed over to the autoscaler",
				"platform", rc->key, "name", name);
	}
	json_decref(body);
	json_decref(hpa);
	json_decref(live);
	return ret;
}

/*
 * ctl_apply() every child; keep going after a failure so one invalid
 * object does not hold back the rest, and report the first error.
 */
static int apply_children(struct rec *rc, json_t *children)
{
	struct vg_err first_err;
	int first = VG_OK;
	json_t *obj;
	size_t i;

	vg_err_clear(&first_err);
	json_array_foreach(children, i, obj) {
		const char *kind = vg_json_get_str(obj, "kind", "");
		const char *name = vg_json_get_str(obj, "metadata.name", "");
		const struct vg_kube_resource *r = vg_kube_resource_find(
			vg_json_get_str(obj, "apiVersion", ""), kind);
		char want[QUANTITY_STR_MAX] = "";
		json_t *live = NULL;
		int ret;

		if (!r) {
			ret = vg_err_set(&rc->err, VG_INTERNAL,
					 "no resource descriptor for %s %s",
					 kind, name);
			goto next;
		}
		if (r == &vg_kube_statefulsets)
			live = ctl_get_cached(rc->m, r, rc->ns, name);
		if (live) {
			snprintf(want, sizeof(want), "%s",
				 vg_json_get_str(obj,
						 "spec.volumeClaimTemplates[0]"
						 ".spec.resources.requests."
						 "storage",
						 ""));
			platform_keep_immutable(obj, live);
		}
		ret = r == &vg_kube_deployments ? handover_replicas(rc, obj)
						 : VG_OK;
		/* ctl_apply() reports what it creates (an Event and a log) */
		if (ret == VG_OK)
			ret = ctl_apply(rc, r, obj);
		if (ret == VG_OK && want[0])
			ret = grow_volume(rc, name, want);
	next:
		if (ret != VG_OK) {
			vg_warn("applying a child failed", "kind", kind, "name",
				name, "platform", rc->key, "err", rc->err.msg);
			if (first == VG_OK) {
				first = ret;
				first_err = rc->err;
			}
		}
		json_decref(live);
	}
	if (first != VG_OK)
		rc->err = first_err;
	return first;
}

/* "<Kind>/<name>" -> cached object of every workload, for the status. */
static json_t *collect_live(struct rec *rc, const json_t *children)
{
	json_t *live = json_object(), *ch, *obj;
	char key[NAME_LEN + 32];
	size_t i;

	for (int c = 0; c < NCOMPONENTS && live; c++) {
		snprintf(key, sizeof(key), "%s-%s", rc->name,
			 platform_components[c].name);
		obj = ctl_get_cached(rc->m, &vg_kube_deployments, rc->ns, key);
		snprintf(key, sizeof(key), "Deployment/%s-%s", rc->name,
			 platform_components[c].name);
		if (obj)
			json_object_set_new(live, key, obj);
	}
	json_array_foreach((json_t *)children, i, ch) {
		const char *kind = vg_json_get_str(ch, "kind", "");
		const char *name = vg_json_get_str(ch, "metadata.name", "");
		const struct vg_kube_resource *r =
			strcmp(kind, "Deployment") == 0	   ? &vg_kube_deployments
			: strcmp(kind, "StatefulSet") == 0 ? &vg_kube_statefulsets
							   : NULL;

		snprintf(key, sizeof(key), "%s/%s", kind, name);
		if (!r || !live || json_object_get(live, key))
			continue;
		obj = ctl_get_cached(rc->m, r, rc->ns, name);
		if (obj)
			json_object_set_new(live, key, obj);
	}
	return live;
}

/*
 * vigil_app logs in with the password of <p>-db-app: set it on the role,
 * once per password and process (the role is the whole server's, so
 * every Platform on one server shares it). A database the operator
 * cannot reach yet is retried with the Platform's next look.
 */
static pthread_mutex_t app_pw_mu = PTHREAD_MUTEX_INITIALIZER;
/* Platform uid -> SHA-256 of the password last set for it: each Platform
 * sets its own once (two on one server would otherwise take turns) */
static struct vg_strmap app_pw_done = { 0 };
static int app_pw_init;

static int app_password_tx(struct vg_db_conn *c, void *arg,
			   struct vg_err *err)
{
	return vg_db_exec(c, arg, 0, NULL, NULL, err);
}

static int set_app_password(struct rec *rc, const struct platform_env *env)
{
	char name[300], *pw = NULL, sql[200];
	unsigned char md[32], *done;
	unsigned int mdlen = 0;
	struct tenant_db *db = NULL;
	const char *b64, *uid;
	json_t *secret;
	struct vg_err err;
	size_t n;
	int r = VG_OK;

	if (!env || !env->db)
		return VG_OK;
	snprintf(name, sizeof(name), "%s-db-app",
		 vg_json_get_str(rc->obj, "metadata.name", ""));
	secret = ctl_get_cached(rc->m, &vg_kube_secrets, rc->ns, name);
	b64 = vg_json_get_str(secret, "data.password", NULL);
	if (!b64) {
		json_decref(secret);
		return VG_OK; /* created just now: its event brings us back */
	}
	n = strlen(b64);
	pw = calloc(1, n + 1);
	if (!pw || EVP_DecodeBlock((unsigned char *)pw, (const unsigned char *)b64,
				   (int)n) < 0) {
		json_decref(secret);
		free(pw);
		return VG_NOMEM;
	}
	json_decref(secret);
	/* the Secret's password is ours (hex), or one a user put there:
	 * only characters that need no quoting reach the statement */
	n = strspn(pw, "0123456789abcdefghijklmnopqrstuvwxyz"
		       "ABCDEFGHIJKLMNOPQRSTUVWXYZ._~-");
	if (n < 16 || pw[n] || n > 100) {
		ctl_event(rc, "Warning", "InvalidSecret",
			  "Secret %s: password must be 16 to 100 letters, "
			  "digits or ._~-",
			  name);
		r = VG_INVAL;
		goto out;
	}
	EVP_Digest(pw, n, md, &mdlen, EVP_sha256(), NULL);
	uid = vg_json_get_str(rc->obj, "metadata.uid", "");
	pthread_mutex_lock(&app_pw_mu);
	if (!app_pw_init) {
		vg_strmap_init(&app_pw_done, free);
		app_pw_init = 1;
	}
	done = vg_strmap_get(&app_pw_done, uid);
	r = done && memcmp(md, done, sizeof(md)) == 0;
	pthread_mutex_unlock(&app_pw_mu);
	if (r) {
		r = VG_OK;
		goto out;
	}
	vg_err_clear(&err);
	snprintf(sql, sizeof(sql),
		 "ALTER ROLE " PLATFORM_APP_DB_USER " WITH LOGIN PASSWORD '%s'",
		 pw);
	r = tenant_db_open(rc, env->db, rc->obj, &db, &err);
	if (r == VG_OK)
		r = vg_db_tx(tenant_db_pool(db), NULL, 0, app_password_tx, sql,
			     &err);
	OPENSSL_cleanse(sql, sizeof(sql));
	if (db)
		tenant_db_put(db);
	if (r == VG_NOTFOUND) { /* no database known to the operator */
		r = VG_OK;
		goto out;
	}
	if (r != VG_OK) {
		vg_warn("cannot set vigil_app's password", "platform", rc->key,
			"err", err.msg);
		goto out;
	}
	done = malloc(sizeof(md));
	if (done) {
		memcpy(done, md, sizeof(md));
		pthread_mutex_lock(&app_pw_mu);
		if (vg_strmap_put(&app_pw_done, uid, done) != VG_OK)
			free(done);
		pthread_mutex_unlock(&app_pw_mu);
	}
	vg_info("vigil_app's password set", "platform", rc->key);
out:
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
	return r;
}

enum rec_result platform_reconcile(struct rec *rc)
{
	const struct platform_env *env = rc->ctx;
	json_t *children = NULL, *live = NULL, *status = NULL;
	struct problem problem = {0};
	struct platform_health h;
	struct vg_err err, apply_err;
	enum rec_result res = REC_DONE;
	int ret, apply_failed = 0, was_ready, app_pw_failed = 0;

	/* Deleted, or being deleted: the garbage collector removes the
	 * children through their owner references; no finalizer needed. */
	if (!rc->obj || ctl_is_deleting(rc))
		return REC_DONE;

	vg_err_clear(&err);
	vg_err_clear(&apply_err);
	ret = platform_desired(rc->obj, env, &children, &err);
	if (ret == VG_INVAL) {
		problem_set(&problem, "InvalidSpec", "%s", err.msg);
		ctl_event(rc, "Warning", "InvalidSpec", "%s", err.msg);
		goto status;
	}
	if (ret != VG_OK) {
		rc->err = err;
		res = REC_ERROR;
		goto out;
	}
	if (create_secrets(rc) != VG_OK ||
	    check_required_secrets(rc, &problem) != VG_OK) {
		res = REC_ERROR;
		goto out;
	}
	/* a database not reachable yet is looked at again with the next
	 * requeue; the rest of the platform goes on meanwhile */
	app_pw_failed = set_app_password(rc, env) != VG_OK;
	if (problem.reason) {
		ctl_event(rc, "Warning", problem.reason, "%s", problem.msg);
		vg_warn("platform degraded", "platform", rc->key, "reason",
			problem.reason, "err", problem.msg);
	}
	if (apply_children(rc, children) == VG_OK) {
		/* prune only after every apply succeeded: a child whose
		 * apply failed is not "applied" and must not be deleted */
		for (size_t k = 0;
		     k < sizeof(prune_kinds) / sizeof(prune_kinds[0]); k++)
			if (ctl_prune(rc, prune_kinds[k]) != VG_OK) {
				apply_failed = 1;
				break;
			}
	} else {
		apply_failed = 1;
	}
	if (apply_failed) {
		apply_err = rc->err;
		problem_set(&problem, "ApplyFailed", "%s", rc->err.msg);
		ctl_event(rc, "Warning", "ApplyFailed", "%s", rc->err.msg);
	}

status:
	live = collect_live(rc, children);
	ret = platform_observe(rc->obj, children, live, problem.reason,
			       problem.msg, &status, &h, &err);
	if (ret != VG_OK) {
		rc->err = err;
		res = REC_ERROR;
		goto out;
	}
	was_ready = has_condition(rc->obj, "Ready", "True", NULL);
	ctl_condition(rc, status, "Ready", h.ready, h.ready_reason,
		      h.ready_msg);
	ctl_condition(rc, status, "Progressing", h.progressing,
		      h.progressing_reason, h.progressing_msg);
	ctl_condition(rc, status, "Degraded", h.degraded, h.degraded_reason,
		      h.degraded_msg);
	if (ctl_update_status(rc, status) != VG_OK) {
		res = REC_ERROR;
		goto out;
	}
	if (h.ready && !was_ready)
		ctl_event(rc, "Normal", "Ready", "%s", h.ready_msg);
	if (apply_failed) {
		rc->err = apply_err;
		res = REC_ERROR;
	} else if (problem.reason && strcmp(problem.reason, "InvalidSpec") == 0) {
		/* nothing to retry until the spec changes (a new event) */
		res = REC_DONE;
	} else if (!h.ready || app_pw_failed) {
		/* a missing Secret or a rollout is not watched through the
		 * Platform: look again so the status catches up */
		rc->after = PLATFORM_REQUEUE_SECONDS;
		res = REC_REQUEUE_AFTER;
	}
out:
	json_decref(children);
	json_decref(live);
	json_decref(status);
	return res;
}
