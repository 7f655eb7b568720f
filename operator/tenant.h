/*
 * tenant.h - the Tenant reconciler.
 *
 * A Tenant (vigil.dev/v1alpha1, cluster-scoped) is one customer or business
 * unit. From it the operator derives, in the tenant's namespace
 * (spec.namespace, default tenant-<name>):
 *
 *   Namespace          labelled vigil.dev/tenant=<name>, Pod Security
 *                      "baseline" enforced ("restricted" warned)
 *   ResourceQuota      vigil-quota: pods = quota.maxAgentPods, requests
 *                      and limits of cpu/memory = quota.agentCPU/Memory
 *   LimitRange         vigil-limits: per container default = the total
 *                      divided by maxAgentPods (each pod its fair share),
 *                      max = the total
 *   NetworkPolicy      vigil-tenant: no ingress; egress only to DNS
 *                      (kube-dns), the platform's gateway pods, and the
 *                      IPs and CIDRs of spec.allowedTargets. Host names
 *                      cannot be expressed in a NetworkPolicy: the agent
 *                      enforces them (and every target) itself. IPv4
 *                      blocks exclude the cloud metadata address
 *                      169.254.169.254 unless they are exactly it.
 *   Role               vigil-tenant-admin: ScanPolicies (all verbs), read
 *                      Jobs, Pods, their logs and Events
 *   RoleBinding        vigil-tenant-admins: the Role to spec.admins users
 *                      and groups (none when there are no admins)
 *   Secret             vigil-agent-token: a random token, created once
 *
 * and the tenant's row in the platform database (vigil.tenant_upsert, keyed
 * by metadata.uid), guarded by the finalizer vigil.dev/tenant-archive: it
 * is added before the row is written, and on deletion the row is archived
 * (vigil.tenant_archive) before the finalizer is removed.
 *
 * The database: env->database_url (the operator's --database-url flag or
 * $VIGIL_DATABASE_URL) when set, else the Platform's spec.database (the
 * only Platform, or the one in env->platform_namespace, or the oldest),
 * with the user and password from its credentials Secret. The operator
 * connects as the database owner, brings the schema up to date
 * (vg_db_migrate) once per connection target, then calls the platform
 * functions. When the database cannot be reached the Tenant is Degraded
 * (reason DatabaseUnavailable), an Event says why, and the key is retried
 * with the work queue's backoff.
 *
 * The computation is pure (tenant_desired(), tenant_agent_secret(),
 * tenant_platform_db(), tenant_conninfo()) so tests check it without a
 * cluster.
 */
#ifndef VIGIL_OPERATOR_TENANT_H
#define VIGIL_OPERATOR_TENANT_H

#include <jansson.h>
#include <stddef.h>

#include "controller.h"
#include "vigil/db.h"
#include "vigil/err.h"

#define TENANT_FINALIZER "vigil.dev/tenant-archive"
#define TENANT_LABEL "vigil.dev/tenant"
#define TENANT_NAMESPACE_PREFIX "tenant-"
#define TENANT_QUOTA_NAME "vigil-quota"
#define TENANT_LIMITS_NAME "vigil-limits"
#define TENANT_NETPOL_NAME "vigil-tenant"
#define TENANT_ROLE_NAME "vigil-tenant-admin"
#define TENANT_BINDING_NAME "vigil-tenant-admins"
#define TENANT_AGENT_SECRET "vigil-agent-token"
#define TENANT_AGENT_SECRET_KEY "token"
/* "vgk_" 8 hex "_" 43 base64url: an API key of the gateway */
#define TENANT_AGENT_TOKEN_LEN 56
/* Gateway pods are selected by these labels with the Platform's name as
 * app.kubernetes.io/instance. */
#define TENANT_GATEWAY_COMPONENT "gateway"
#define TENANT_DEFAULT_GATEWAY_PORT 8080
/* How often a Tenant is looked at again while no database is known. */
#define TENANT_REQUEUE_SECONDS 30.0

/* Operator configuration; the controller's ctx (NULL: all defaults). */
struct tenant_env {
	/* libpq conninfo or URI of the platform database; NULL: from the
	 * Platform (and $VIGIL_DATABASE_URL when that is unset too). */
	const char *database_url;
	/* With several Platforms, use the one in this namespace. */
	const char *platform_namespace;
};

/* Where the platform's gateway runs, for the tenant's NetworkPolicy. */
struct tenant_platform {
	const char *ns;	  /* Platform's namespace; NULL: no Platform known */
	const char *name; /* Platform's name */
	int gateway_port; /* 0: TENANT_DEFAULT_GATEWAY_PORT */
};

/* The tenant's namespace: spec.namespace or tenant-<name>. VG_INVAL
 * without a name, VG_TOOLARGE beyond 63 characters. */
int tenant_namespace(const json_t *tenant, char *out, size_t size,
		     struct vg_err *err);

/*
 * Every child the operator server-side applies for `tenant` (new array of
 * complete objects, without owner references, quantities in canonical
 * form), in apply order: Namespace first. `pf` NULL or pf->ns NULL leaves
 * out the egress rule to the gateway. VG_INVAL (field named in err->msg)
 * for a Tenant that cannot be turned into children.
 */
int tenant_desired(const json_t *tenant, const struct tenant_platform *pf,
		   json_t **children, struct vg_err *err);

/* The agent credentials Secret with a fresh random token (new). */
int tenant_agent_secret(const json_t *tenant, json_t **secret,
			struct vg_err *err);

/* --- the database ------------------------------------------------------ */

/* How to reach the database a Platform describes. */
struct tenant_dbref {
	char ns[64];
	char host[256];
	int port;
	char dbname[64];
	char sslmode[16];
	char secret[254]; /* credentials Secret in ns */
	char user_key[254], pass_key[254];
	char ca_secret[254]; /* "" without one */
	char ca_key[254];
};

/* Read spec.database of `platform` (managed or external). VG_INVAL when
 * it says neither. */
int tenant_platform_db(const json_t *platform, struct tenant_dbref *ref,
		       struct vg_err *err);

/* A libpq conninfo (new string) for `ref` with these credentials;
 * `ca_file` NULL without a CA. Values are quoted for libpq. */
int tenant_conninfo(const struct tenant_dbref *ref, const char *user,
		    const char *password, const char *ca_file, char **out,
		    struct vg_err *err);

/*
 * The process-wide pool for `conninfo` (borrowed; kept until another
 * conninfo is asked for or tenant_db_shutdown()), the schema brought up to
 * date on first use. Release with tenant_db_put().
 */
struct tenant_db;
int tenant_db_get(const char *conninfo, struct tenant_db **out,
		  struct vg_err *err);
void tenant_db_put(struct tenant_db *db);
struct vg_db_pool *tenant_db_pool(struct tenant_db *db);
void tenant_db_shutdown(void);

/* Create or update the row of `tenant`; its id into `id`. */
int tenant_db_upsert(struct vg_db_pool *p, const json_t *tenant,
		     char id[37], struct vg_err *err);
/* Register agent token `token` (an API key) for the tenant with database
 * id `id`, revoking the agent tokens the operator registered before. */
int tenant_db_register_agent_key(struct vg_db_pool *p, const char *id,
				 const char *token, struct vg_err *err);
/* Archive the row of the Tenant with metadata.uid `uid`; `id` receives
 * its id ("" when it never had a row). Idempotent. */
int tenant_db_archive(struct vg_db_pool *p, const char *uid, char id[37],
		      struct vg_err *err);

/* The platform database of `platform` (or env->database_url), for other
 * controllers; put back with tenant_db_put(). VG_NOTFOUND when none is
 * configured. Reads credentials Secrets from the API server. */
struct rec;
int tenant_db_open(struct rec *rc, const struct tenant_env *env,
		   const json_t *platform, struct tenant_db **db,
		   struct vg_err *err);
/* What the database knows of the run of Job `job` (new object: state,
 * findings {critical..info,total}, openPorts); VG_NOTFOUND without one. */
int tenant_db_run_summary(struct vg_db_pool *p, const char *tenant_id,
			  const char *job, json_t **out, struct vg_err *err);

/* Condition reason for a database failure: DatabaseUnavailable (cannot
 * connect or connection lost), DatabaseConflict, DatabaseError. */
const char *tenant_db_reason(const struct vg_err *err);

/* --- the controller ---------------------------------------------------- */

enum rec_result tenant_reconcile(struct rec *rc);

/* Primary vigil_tenants; owns namespaces, resourcequotas, limitranges,
 * networkpolicies, roles, rolebindings, secrets. ctx: a struct
 * tenant_env or NULL. */
extern const struct controller_def tenant_controller;

#endif
