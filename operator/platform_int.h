/*
 * platform_int.h - what the files of the Platform reconciler share; not
 * for use outside operator/platform*.c (the public interface is
 * platform.h).
 *
 *   platform_spec.c       the Platform read once, with defaults and
 *                         validation (struct pctx; errors are VG_INVAL,
 *                         reported as InvalidSpec)
 *   platform_objects.c    building blocks of every child: object skeleton,
 *                         labels, selectors, pod and container pieces
 *   platform_workloads.c  ConfigMap and config hash; gateway, brain and
 *                         worker Deployments, ServiceAccounts, HPAs,
 *                         PDBs, Services; the replica handover
 *   platform_backends.c   managed PostgreSQL and Redis; generated and
 *                         user-provided (external) Secrets
 *   platform_network.c    NetworkPolicies
 *   platform.c            the desired children in apply order, status,
 *                         and the reconcile function over controller.h
 */
#ifndef VIGIL_OPERATOR_PLATFORM_INT_H
#define VIGIL_OPERATOR_PLATFORM_INT_H

#include <jansson.h>
#include <stddef.h>

#include "platform.h"
#include "quantity.h"
#include "vigil/err.h"

#define LABEL_NAME "app.kubernetes.io/name"
#define LABEL_INSTANCE "app.kubernetes.io/instance"
#define LABEL_COMPONENT "app.kubernetes.io/component"
#define LABEL_PART_OF "app.kubernetes.io/part-of"
/* Pods of BackupSchedule jobs carry it; they may reach PostgreSQL. */
#define LABEL_ROLE "vigil.dev/role"

#define NONROOT_UID 65532  /* the distroless "nonroot" user */
#define POSTGRES_UID 999   /* "postgres" in the official image */
#define REDIS_UID 999	   /* "redis" in the official image */
#define SECRET_FILE_MODE 0440 /* owner and fsGroup may read */

#define CONFIG_DIR "/etc/vigil/config"
#define CONFIG_KEY "config.json"
#define TLS_DIR "/etc/vigil/tls"
#define DB_CA_DIR "/etc/vigil/db-ca"
#define REDIS_CA_DIR "/etc/vigil/redis-ca"
#define PGDATA_MOUNT "/var/lib/postgresql/data"
#define MANAGED_DB_USER "vigil"
#define MANAGED_DB_NAME "vigil"

#define NAME_LEN 96
#define HOST_LEN 192
#define PATH_LEN 192
#define IMAGE_LEN 640

/* ------------------------------------------------------------------ */
/* Defaults (DESIGN.md's deployment sheet, crds/vigil.dev_platforms)    */
/* ------------------------------------------------------------------ */

struct resource_defaults {
	const char *cpu_req, *cpu_lim, *mem_req, *mem_lim;
};

struct component_def {
	const char *name; /* "gateway": spec key, child suffix, container */
	const char *app;  /* app.kubernetes.io/name */
	long long min_replicas, max_replicas;
	struct resource_defaults res;
	long long default_port; /* API port; 0: none (worker) */
	int redis;		/* needs Redis (env, CA, NetworkPolicy) */
	int session_key;	/* gets VIGIL_SESSION_KEY */
};

enum { GATEWAY, BRAIN, WORKER, NCOMPONENTS };

/* gateway, brain and worker, indexed by the enum above. */
extern const struct component_def platform_components[NCOMPONENTS];

/* ------------------------------------------------------------------ */
/* The Platform, read once (platform_spec.c)                            */
/* ------------------------------------------------------------------ */

struct comp {
	const struct component_def *def;
	char name[NAME_LEN]; /* <p>-gateway */
	char image[IMAGE_LEN];
	const char *pull_policy, *strategy, *scheme;
	long long min, max, cpu_target, mem_target, port;
	json_t *resources;
};

struct db {
	int managed;
	char host[HOST_LEN];
	long long port;
	const char *dbname, *sslmode;
	const char *secret, *user_key, *pass_key;
	const char *ca_secret, *ca_key; /* external only, may be NULL */
	char ca_file[PATH_LEN];
	char image[IMAGE_LEN];
	char storage[QUANTITY_STR_MAX];
	const char *storage_class;
	json_t *resources;
};

struct redis {
	int managed;
	char host[HOST_LEN];
	long long port, db;
	const char *secret, *user_key, *pass_key; /* secret NULL: no auth */
	int tls;
	const char *server_name, *ca_secret, *ca_key;
	char ca_file[PATH_LEN];
	const char *image;
	int persistence;
	char storage[QUANTITY_STR_MAX];
	const char *storage_class;
	json_t *resources;
};

struct pctx {
	const json_t *obj;
	const struct platform_env *env;
	struct vg_err *err;
	int rc; /* first error; the builders stop adding after it */

	const char *name, *ns, *version, *registry, *log_level, *sa_name;
	const char *gw_tls_secret;
	int emergency_stop, netpol;
	char n_config[NAME_LEN], n_session[NAME_LEN], n_db_secret[NAME_LEN];
	char n_brain_token[NAME_LEN], n_db_app[NAME_LEN];
	char n_redis_secret[NAME_LEN], n_postgres[NAME_LEN], n_redis[NAME_LEN];
	char n_redis_pvc[NAME_LEN];
	char gateway_url[HOST_LEN + 32], brain_url[HOST_LEN + 32];
	char config_hash[2 * 32 + 1];
	struct comp comp[NCOMPONENTS];
	struct db db;
	struct redis redis;
};

/* Read and check the whole Platform (`env` NULL: defaults); VG_OK or
 * c->rc with `err` set. pctx_cleanup() afterwards in either case. */
int pctx_read(struct pctx *c, const json_t *obj,
	      const struct platform_env *env, struct vg_err *err);
void pctx_cleanup(struct pctx *c);

/* Record the first error (c->rc, c->err); later ones are ignored. */
__attribute__((format(printf, 3, 4))) void pctx_fail(struct pctx *c, int code,
						     const char *fmt, ...);
void pctx_nomem(struct pctx *c);

/* Format a child name or path into `buf`; too long is an invalid spec. */
__attribute__((format(printf, 4, 5))) const char *
pctx_fmt(struct pctx *c, char *buf, size_t size, const char *f, ...);

/*
 * Values at a spec path given printf-style (JSON null counts as absent),
 * borrowed; a value of the wrong type fails the read and yields the
 * default. pctx_get_enum(): one of `allowed` (NULL-terminated).
 * pctx_get_container(): an object, or an array when `want_array`, or NULL.
 * pctx_get_string_map(): a map of strings (labels, annotations,
 * nodeSelector) copied (new), NULL when absent or empty.
 */
__attribute__((format(printf, 3, 4))) const char *
pctx_get_str(struct pctx *c, const char *def, const char *f, ...);
__attribute__((format(printf, 4, 5))) const char *
pctx_get_enum(struct pctx *c, const char *const *allowed, const char *def,
	      const char *f, ...);
__attribute__((format(printf, 3, 4))) const json_t *
pctx_get_container(struct pctx *c, int want_array, const char *f, ...);
json_t *pctx_get_string_map(struct pctx *c, const char *path);

/* ------------------------------------------------------------------ */
/* Building blocks (platform_objects.c); every json_t * returned is new */
/* ------------------------------------------------------------------ */

/* Append `v` (stolen) to `arr`; pctx_add(): a finished child, dropped
 * once the build has failed. */
void pctx_append(struct pctx *c, json_t *arr, json_t *v);
void pctx_add(struct pctx *c, json_t *children, json_t *obj);

json_t *labels_new(const struct pctx *c, const char *app,
		   const char *component);
/* The immutable selector of a workload: a subset of its labels. */
json_t *selector_new(const struct pctx *c, const char *app,
		     const char *component);
/* {apiVersion, kind, metadata {name, namespace, labels}}; labels stolen. */
json_t *object_new(const struct pctx *c, const char *api_version,
		   const char *kind, const char *name, json_t *labels);
/* object_new() plus `key`: `body` (stolen). */
json_t *object_with(const struct pctx *c, const char *api_version,
		    const char *kind, const char *name, json_t *labels,
		    const char *key, json_t *body);

json_t *pod_security_new(long long uid);
/* The restricted Pod Security Standard, on every container. */
json_t *container_security_new(long long uid);
json_t *http_probe_new(const char *path, int period, int failures);
/* `command` stolen. */
json_t *exec_probe_new(json_t *command, int period, int failures);
json_t *env_value_new(const char *name, const char *value);
json_t *env_secret_new(const char *name, const char *secret, const char *key);
json_t *env_field_new(const char *name, const char *path);
json_t *mount_new(const char *name, const char *path, int read_only);
json_t *secret_volume_new(const char *name, const char *secret);
json_t *empty_dir_new(const char *name, const char *medium, const char *size);
json_t *container_port_new(const char *name, long long port);
/* spec.imagePullSecrets as [{name}], or NULL when there are none. */
json_t *pull_secrets_new(struct pctx *c);
/* A Service with one named TCP port (targetPort the container port's
 * name); `headless` for the StatefulSet's governing Service. */
json_t *service_new(struct pctx *c, const char *name, const char *app,
		    const char *component, const char *type, int headless,
		    const char *port_name, long long port);

/* ------------------------------------------------------------------ */
/* The children, one builder each (new object; NULL after a failure)    */
/* ------------------------------------------------------------------ */

/* platform_workloads.c. configmap_new() also sets c->config_hash, which
 * component_deployment_new() puts into the pod template: call it first. */
json_t *configmap_new(struct pctx *c);
json_t *component_deployment_new(struct pctx *c, int i);
json_t *service_account_new(struct pctx *c, int i);
json_t *hpa_new(struct pctx *c, int i);
json_t *pdb_new(struct pctx *c, int i);
json_t *gateway_service_new(struct pctx *c);

/* platform_backends.c */
json_t *postgres_statefulset_new(struct pctx *c);
json_t *redis_deployment_new(struct pctx *c);
json_t *redis_pvc_new(struct pctx *c);

/* platform_network.c: every NetworkPolicy, appended to `children`. */
void add_network_policies(struct pctx *c, json_t *children);

#endif
