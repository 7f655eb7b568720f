/*
 * platform.h - the Platform reconciler.
 *
 * A Platform (vigil.dev/v1alpha1) describes one vigil installation. From it
 * the operator derives every child object in the Platform's namespace,
 * named "<platform>-<part>":
 *
 *   always            ConfigMap <p>-config, Secrets <p>-session-key,
 *                     <p>-brain-token and <p>-db-app (vigil_app's login)
 *   gateway/brain/    Deployment, ServiceAccount (unless
 *   worker            spec.serviceAccountName), PodDisruptionBudget,
 *                     HorizontalPodAutoscaler (unless replicas.min ==
 *                     replicas.max); Service for gateway and brain
 *   database managed  StatefulSet + headless Service <p>-postgres,
 *                     Secret <p>-db-credentials
 *   redis managed     Deployment + Service <p>-redis, Secret
 *                     <p>-redis-credentials, PVC <p>-redis-data (persistence)
 *   networkPolicy     <p>-default-deny, <p>-gateway, <p>-brain and, when
 *                     managed, <p>-postgres and <p>-redis
 *
 * The computation is pure (platform_desired(), platform_secrets(),
 * platform_required_secrets(), platform_observe()) so tests check it
 * without a cluster; platform_reconcile() wires it to the controller
 * runtime (controller.h).
 */
#ifndef VIGIL_OPERATOR_PLATFORM_H
#define VIGIL_OPERATOR_PLATFORM_H

#include <jansson.h>

#include "controller.h"
#include "vigil/err.h"

/* Longest Platform name: "<p>-postgres-0" and the StatefulSet's
 * controller-revision-hash label value must stay within 63 characters. */
#define PLATFORM_NAME_MAX 40
/* Where every component serves /healthz, /readyz and /metrics (plain
 * HTTP, also when the gateway serves its API over TLS). */
#define PLATFORM_HEALTH_PORT 9090
#define PLATFORM_POSTGRES_PORT 5432
#define PLATFORM_REDIS_PORT 6379
#define PLATFORM_DEFAULT_REDIS_IMAGE "redis:7.4"
#define PLATFORM_DEFAULT_POSTGRES_REPOSITORY "postgres"
/* How often an unready or degraded Platform is looked at again. */
#define PLATFORM_REQUEUE_SECONDS 30.0
/* the database role the services work as (lib/db/migrations/0001) */
#define PLATFORM_APP_DB_USER "vigil_app"

/* Pod template annotation: hash of the configuration the pods read, so a
 * configuration change rolls them (emergencyStop excluded: it is re-read
 * from the mounted file without a restart). */
#define PLATFORM_CONFIG_HASH_ANNOTATION "vigil.dev/config-hash"

/* What the operator decides that the Platform does not say. */
struct tenant_env;

struct platform_env {
	const char *redis_image;	 /* NULL: PLATFORM_DEFAULT_REDIS_IMAGE */
	const char *postgres_repository; /* NULL: "postgres" (tag = version) */
	/* Where the platform database is, to set vigil_app's password from
	 * <p>-db-app; NULL: not set by the operator. */
	const struct tenant_env *db;
};

/*
 * Every child the operator server-side applies for `platform` (the object
 * as the API server returns it; defaults the schema would apply are applied
 * here too when absent): *children is a new JSON array of complete objects
 * (apiVersion, kind, metadata.name/namespace/labels, ...), without owner
 * references (ctl_apply() adds them), in the API server's canonical form.
 * Generated Secrets are not among them (platform_secrets()).
 *
 * VG_INVAL with the offending field in err->msg when the Platform cannot
 * be turned into children (no metadata.name, wrong types, neither or both
 * of managed/external, replicas.min > max, bad quantities ...).
 */
int platform_desired(const json_t *platform, const struct platform_env *env,
		     json_t **children, struct vg_err *err);

/*
 * The Secrets the operator generates for `platform`, with fresh random
 * values (new array): <p>-session-key and <p>-brain-token always,
 * <p>-db-credentials with a
 * managed database, <p>-redis-credentials with a managed Redis. They are
 * created once (ctl_create_once()) and never rewritten.
 */
int platform_secrets(const json_t *platform, json_t **secrets,
		     struct vg_err *err);

/*
 * The user-provided Secrets the platform's pods need (new array of
 * {"name", "field", "keys": [...]}, `field` being the spec path that
 * names the Secret): external database and Redis credentials and CA
 * certificates, the gateway's TLS certificate.
 */
int platform_required_secrets(const json_t *platform, json_t **refs,
			      struct vg_err *err);

/*
 * Before applying a desired StatefulSet: keep what the API server does not
 * let change (the size in volumeClaimTemplates) as it is in `live`. The
 * data volume grows through its PersistentVolumeClaim instead.
 */
void platform_keep_immutable(json_t *desired, const json_t *live);

/* Field manager that keeps spec.replicas while it passes to an HPA. */
#define PLATFORM_HANDOVER_MANAGER "vigil-operator-handover"

/*
 * Switching a component from a fixed count (replicas.min == max) to an
 * autoscaler removes spec.replicas from the intent; server-side apply
 * would then reset the field, which nobody else owns yet, to its default
 * of 1 until the HPA scales back up. When `desired` (a Deployment without
 * spec.replicas) meets a `live` one and no HPA exists yet (`live_hpa`
 * NULL), this returns the object (new) that PLATFORM_HANDOVER_MANAGER
 * applies first, co-owning the current count so it survives until the HPA
 * takes over (the "transferring ownership" recipe of the SSA docs).
 * NULL when nothing needs handing over.
 */
json_t *platform_replicas_handover(const json_t *desired, const json_t *live,
				   const json_t *live_hpa);

/* The platform's health as seen from its live workloads. */
struct platform_health {
	int ready;	 /* every workload rolled out and ready, no problem */
	int progressing; /* some workload is being created or rolled out */
	int degraded;	 /* a problem (missing Secret, failed apply ...) */
	const char *phase; /* Pending, Progressing, Ready, Degraded, Failed */
	const char *ready_reason, *progressing_reason, *degraded_reason;
	char ready_msg[512], progressing_msg[512], degraded_msg[512];
};

/*
 * Compute the status of `platform`: `children` is what platform_desired()
 * returned (NULL when the spec was invalid), `live` a JSON object mapping
 * "<Kind>/<name>" to the cached live object of each workload (missing
 * keys: not created yet). `problem_reason`/`problem_msg` (or NULL) name a
 * problem the reconcile found (MissingSecret, ApplyFailed, InvalidSpec).
 * *status (new) holds observedGeneration, phase, endpoint, version and the
 * per-component {desiredReplicas, readyReplicas, updatedReplicas, ready,
 * image}; conditions are left to the caller (ctl_condition()) from *h.
 */
int platform_observe(const json_t *platform, const json_t *children,
		     const json_t *live, const char *problem_reason,
		     const char *problem_msg, json_t **status,
		     struct platform_health *h, struct vg_err *err);

/* The reconcile function of platform_controller. */
enum rec_result platform_reconcile(struct rec *rc);

/* Controller table entry: primary vigil_platforms, the kinds it owns.
 * ctx may point to a struct platform_env (NULL: defaults). */
extern const struct controller_def platform_controller;

/*
 * The Platform tenants and scan policies use (new reference), or NULL: the
 * oldest one not being deleted, in namespace `ns` when it is not NULL.
 */
json_t *platform_pick(struct manager *m, const char *ns);

#endif
