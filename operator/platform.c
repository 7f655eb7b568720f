/*
 * platform.c - the Platform reconciler: from a Platform, the children the
 * operator applies (platform_desired), the Secrets it generates once, the
 * status it reports, and the reconcile function over controller.h.
 *
 * Everything the builders emit is in the form the API server stores, so
 * vg_json_is_subset(desired, live) holds for an unchanged intent:
 * quantities canonical, no empty maps or lists the server would drop, no
 * zero/false values of omitempty fields (readOnly: false, value: ""),
 * ports as integers, protocol: TCP spelled out.
 */
#include "platform.h"

#include "quantity.h"
#include "resources.h"
#include "vigil/json.h"
#include "vigil/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

static const struct component_def components[NCOMPONENTS] = {
	[GATEWAY] = {"gateway", "vigil-gateway", 3, 20,
		     {"100m", "500m", "256Mi", "1Gi"}, 8080, 1, 1},
	[BRAIN] = {"brain", "vigil-brain", 2, 10,
		   {"250m", "1000m", "512Mi", "2Gi"}, 8081, 0, 0},
	[WORKER] = {"worker", "vigil-worker", 3, 20,
		    {"250m", "1000m", "512Mi", "2Gi"}, 0, 1, 0},
};

static const struct resource_defaults postgres_defaults = {"250m", "1000m",
							   "512Mi", "2Gi"};
static const struct resource_defaults redis_defaults = {"100m", "500m",
							"256Mi", "512Mi"};

static const char *const pull_policies[] = {"Always", "IfNotPresent", "Never",
					    NULL};
static const char *const strategies[] = {"RollingUpdate", "BlueGreen", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error",
					 NULL};
static const char *const pg_versions[] = {"15", "16", "17", NULL};
static const char *const ssl_modes[] = {"disable",   "allow",	  "prefer",
					"require",   "verify-ca", "verify-full",
					NULL};
static const char *const service_types[] = {"ClusterIP", "NodePort",
					    "LoadBalancer", NULL};

/* ------------------------------------------------------------------ */
/* The Platform, read once                                              */
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
	char n_redis_secret[NAME_LEN], n_postgres[NAME_LEN], n_redis[NAME_LEN];
	char n_redis_pvc[NAME_LEN];
	char gateway_url[HOST_LEN + 32], brain_url[HOST_LEN + 32];
	char config_hash[2 * 32 + 1];
	struct comp comp[NCOMPONENTS];
	struct db db;
	struct redis redis;
};

static void pctx_cleanup(struct pctx *c)
{
	for (int i = 0; i < NCOMPONENTS; i++)
		json_decref(c->comp[i].resources);
	json_decref(c->db.resources);
	json_decref(c->redis.resources);
}

__attribute__((format(printf, 3, 4))) static void fail(struct pctx *c,
							int code,
							const char *fmt, ...)
{
	va_list ap;

	if (c->rc != VG_OK)
		return;
	c->rc = code;
	va_start(ap, fmt);
	vg_err_setv(c->err, code, fmt, ap);
	va_end(ap);
}

static void nomem(struct pctx *c)
{
	fail(c, VG_NOMEM, "out of memory building the platform's children");
}

/* Format a child name or path into `buf`; too long is an invalid spec. */
__attribute__((format(printf, 4, 5))) static const char *
fmt(struct pctx *c, char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, size, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fail(c, VG_INVAL, "value too long: \"%.60s...\"", buf);
		buf[0] = '\0';
	}
	return buf;
}

/* The value at the spec path (JSON null counts as absent), borrowed. */
static const json_t *at(const struct pctx *c, const char *path)
{
	const json_t *v = vg_json_get(c->obj, path);

	return json_is_null(v) ? NULL : v;
}

__attribute__((format(printf, 3, 4))) static const char *
get_str(struct pctx *c, const char *def, const char *f, ...)
{
	char path[PATH_LEN];
	const json_t *v;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	v = at(c, path);
	if (!v)
		return def;
	if (!json_is_string(v)) {
		fail(c, VG_INVAL, "%s must be a string", path);
		return def;
	}
	return json_string_value(v);
}

/* A string that must be one of `allowed` (NULL-terminated). */
__attribute__((format(printf, 4, 5))) static const char *
get_enum(struct pctx *c, const char *const *allowed, const char *def,
	 const char *f, ...)
{
	char path[PATH_LEN];
	const char *s;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	s = get_str(c, def, "%s", path);
	for (const char *const *a = allowed; *a; a++)
		if (strcmp(*a, s) == 0)
			return s;
	fail(c, VG_INVAL, "%s: \"%s\" is not one of the allowed values", path,
	     s);
	return def;
}

__attribute__((format(printf, 5, 6))) static long long
get_int(struct pctx *c, long long def, long long min, long long max,
	const char *f, ...)
{
	char path[PATH_LEN];
	const json_t *v;
	long long n;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	v = at(c, path);
	if (!v)
		return def;
	if (!json_is_integer(v)) {
		fail(c, VG_INVAL, "%s must be an integer", path);
		return def;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		fail(c, VG_INVAL, "%s must be between %lld and %lld, not %lld",
		     path, min, max, n);
		return def;
	}
	return n;
}

__attribute__((format(printf, 3, 4))) static int
get_bool(struct pctx *c, int def, const char *f, ...)
{
	char path[PATH_LEN];
	const json_t *v;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	v = at(c, path);
	if (!v)
		return def;
	if (!json_is_boolean(v)) {
		fail(c, VG_INVAL, "%s must be true or false", path);
		return def;
	}
	return json_is_true(v);
}

/* An object or array (`want_array`) at the path, borrowed, or NULL. */
__attribute__((format(printf, 3, 4))) static const json_t *
get_container(struct pctx *c, int want_array, const char *f, ...)
{
	char path[PATH_LEN];
	const json_t *v;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	v = at(c, path);
	if (!v)
		return NULL;
	if (want_array ? !json_is_array(v) : !json_is_object(v)) {
		fail(c, VG_INVAL, "%s must be %s", path,
		     want_array ? "a list" : "an object");
		return NULL;
	}
	return v;
}

/* A quantity (string or integer) in canonical form into `out`. */
__attribute__((format(printf, 4, 5))) static void
get_quantity(struct pctx *c, char *out, const char *def, const char *f, ...)
{
	char path[PATH_LEN];
	struct vg_err qerr;
	const json_t *v;
	va_list ap;
	int rc;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	v = at(c, path);
	vg_err_clear(&qerr);
	rc = v ? quantity_canonical_json(v, out, QUANTITY_STR_MAX, &qerr)
	       : quantity_canonical(def, out, QUANTITY_STR_MAX, &qerr);
	if (rc != VG_OK) {
		fail(c, VG_INVAL, "%s: %s", path, qerr.msg);
		out[0] = '\0';
	}
}

/* A map of strings (labels, annotations, nodeSelector), copied; NULL when
 * absent or empty (the server drops empty maps). */
static json_t *get_string_map(struct pctx *c, const char *path)
{
	const json_t *m = get_container(c, 0, "%s", path), *v;
	const char *k;

	if (!m || json_object_size(m) == 0)
		return NULL;
	json_object_foreach((json_t *)m, k, v) {
		if (!json_is_string(v)) {
			fail(c, VG_INVAL, "%s.%s must be a string", path, k);
			return NULL;
		}
	}
	return json_deep_copy(m);
}

/*
 * requests/limits of cpu and memory, canonical, each request no more than
 * its limit (the schema says so too; checked here as well so a request
 * above a limit is a clear InvalidSpec rather than an API error).
 */
static json_t *read_resources(struct pctx *c, const struct resource_defaults *d,
			      const char *base)
{
	static const char *const slot[4][2] = {{"requests", "cpu"},
					       {"limits", "cpu"},
					       {"requests", "memory"},
					       {"limits", "memory"}};
	const char *defs[4] = {d->cpu_req, d->cpu_lim, d->mem_req, d->mem_lim};
	char q[4][QUANTITY_STR_MAX];
	struct quantity req, lim;
	json_t *res;

	for (int k = 0; k < 4; k++)
		get_quantity(c, q[k], defs[k], "%s.%s.%s", base, slot[k][0],
			     slot[k][1]);
	if (c->rc != VG_OK)
		return NULL;
	for (int k = 0; k < 4; k += 2) {
		if (quantity_parse(&req, q[k], NULL) != VG_OK ||
		    quantity_parse(&lim, q[k + 1], NULL) != VG_OK)
			continue;
		if (quantity_cmp(&req, &lim) > 0)
			fail(c, VG_INVAL,
			     "%s.requests.%s (%s) exceeds %s.limits.%s (%s)",
			     base, slot[k][1], q[k], base, slot[k][1], q[k + 1]);
	}
	res = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "cpu",
			q[0], "memory", q[2], "limits", "cpu", q[1], "memory",
			q[3]);
	if (!res)
		nomem(c);
	return res;
}

/* RFC 1035 label, as Service names need: the children's names build on it. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PLATFORM_NAME_MAX || s[0] < 'a' || s[0] > 'z' ||
	    s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* host:port, with brackets around an IPv6 address. */
static void host_port(char *out, size_t size, const char *host, long long port)
{
	int v6 = strchr(host, ':') != NULL;

	snprintf(out, size, "%s%s%s:%lld", v6 ? "[" : "", host, v6 ? "]" : "",
		 port);
}

static void read_component(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];
	struct comp *cm = &c->comp[i];
	char repo_def[IMAGE_LEN], base[PATH_LEN];
	const char *repo, *tag, *digest;

	cm->def = d;
	fmt(c, cm->name, sizeof(cm->name), "%s-%s", c->name, d->name);
	fmt(c, repo_def, sizeof(repo_def), "%s/vigil-%s", c->registry, d->name);
	repo = get_str(c, repo_def, "spec.%s.image.repository", d->name);
	tag = get_str(c, c->version, "spec.%s.image.tag", d->name);
	digest = get_str(c, NULL, "spec.%s.image.digest", d->name);
	if (digest)
		fmt(c, cm->image, sizeof(cm->image), "%s@%s", repo, digest);
	else
		fmt(c, cm->image, sizeof(cm->image), "%s:%s", repo, tag);
	cm->pull_policy = get_enum(c, pull_policies, "IfNotPresent",
				   "spec.%s.image.pullPolicy", d->name);
	cm->min = get_int(c, d->min_replicas, 1, 1000, "spec.%s.replicas.min",
			  d->name);
	cm->max = get_int(c, d->max_replicas, 1, 1000, "spec.%s.replicas.max",
			  d->name);
	if (cm->min > cm->max)
		fail(c, VG_INVAL,
		     "spec.%s.replicas: min (%lld) is greater than max (%lld)",
		     d->name, cm->min, cm->max);
	cm->cpu_target = get_int(c, 70, 1, 100,
				 "spec.%s.autoscaling.targetCPUUtilization",
				 d->name);
	cm->mem_target = get_int(c, 80, 1, 100,
				 "spec.%s.autoscaling.targetMemoryUtilization",
				 d->name);
	cm->strategy = get_enum(c, strategies, "RollingUpdate",
				"spec.%s.rolloutStrategy", d->name);
	cm->port = d->default_port
			   ? get_int(c, d->default_port, 1, 65535, "spec.%s.port",
				     d->name)
			   : 0;
	if (cm->port == PLATFORM_HEALTH_PORT)
		fail(c, VG_INVAL,
		     "spec.%s.port: %d is the health and metrics port", d->name,
		     PLATFORM_HEALTH_PORT);
	cm->scheme = i == GATEWAY && c->gw_tls_secret ? "https" : "http";
	cm->resources = read_resources(c, &d->res,
				       fmt(c, base, sizeof(base),
					   "spec.%s.resources", d->name));
}

static void read_database(struct pctx *c)
{
	struct db *db = &c->db;
	const json_t *m = get_container(c, 0, "spec.database.managed");
	const json_t *x = get_container(c, 0, "spec.database.external");
	const char *version, *image;

	if (!m == !x) {
		fail(c, VG_INVAL,
		     "spec.database: set exactly one of managed and external");
		return;
	}
	db->managed = m != NULL;
	if (db->managed) {
		fmt(c, db->host, sizeof(db->host), "%s.%s.svc", c->n_postgres,
		    c->ns);
		db->port = PLATFORM_POSTGRES_PORT;
		db->dbname = MANAGED_DB_NAME;
		/* the official image serves no TLS; traffic stays in the
		 * namespace behind the NetworkPolicy */
		db->sslmode = "disable";
		db->secret = c->n_db_secret;
		db->user_key = "username";
		db->pass_key = "password";
		version = get_enum(c, pg_versions, "16",
				   "spec.database.managed.version");
		image = get_str(c, NULL, "spec.database.managed.image");
		if (image)
			fmt(c, db->image, sizeof(db->image), "%s", image);
		else
			fmt(c, db->image, sizeof(db->image), "%s:%s",
			    c->env->postgres_repository
				    ? c->env->postgres_repository
				    : PLATFORM_DEFAULT_POSTGRES_REPOSITORY,
			    version);
		get_quantity(c, db->storage, "20Gi",
			     "spec.database.managed.storage");
		db->storage_class = get_str(
			c, NULL, "spec.database.managed.storageClassName");
		db->resources = read_resources(c, &postgres_defaults,
					       "spec.database.managed.resources");
		return;
	}
	fmt(c, db->host, sizeof(db->host), "%s",
	    get_str(c, "", "spec.database.external.host"));
	if (!db->host[0])
		fail(c, VG_INVAL, "spec.database.external.host is required");
	db->port = get_int(c, 5432, 1, 65535, "spec.database.external.port");
	db->dbname = get_str(c, "vigil", "spec.database.external.database");
	db->sslmode = get_enum(c, ssl_modes, "require",
			       "spec.database.external.sslMode");
	db->secret = get_str(c, NULL,
			     "spec.database.external.credentialsSecret.name");
	if (!db->secret || !db->secret[0])
		fail(c, VG_INVAL, "spec.database.external.credentialsSecret."
				  "name is required");
	db->user_key = get_str(
		c, "username",
		"spec.database.external.credentialsSecret.usernameKey");
	db->pass_key = get_str(
		c, "password",
		"spec.database.external.credentialsSecret.passwordKey");
	db->ca_secret = get_str(c, NULL, "spec.database.external.caSecret.name");
	db->ca_key = get_str(c, "ca.crt", "spec.database.external.caSecret.key");
	if (db->ca_secret)
		fmt(c, db->ca_file, sizeof(db->ca_file), "%s/%s", DB_CA_DIR,
		    db->ca_key);
}

static void read_redis(struct pctx *c)
{
	struct redis *r = &c->redis;
	const json_t *m = get_container(c, 0, "spec.redis.managed");
	const json_t *x = get_container(c, 0, "spec.redis.external");

	if (!m == !x) {
		fail(c, VG_INVAL,
		     "spec.redis: set exactly one of managed and external");
		return;
	}
	r->managed = m != NULL;
	if (r->managed) {
		fmt(c, r->host, sizeof(r->host), "%s.%s.svc", c->n_redis,
		    c->ns);
		r->port = PLATFORM_REDIS_PORT;
		r->db = 0;
		r->secret = c->n_redis_secret;
		r->pass_key = "password";
		r->image = get_str(c,
				   c->env->redis_image
					   ? c->env->redis_image
					   : PLATFORM_DEFAULT_REDIS_IMAGE,
				   "spec.redis.managed.image");
		r->persistence =
			get_bool(c, 1, "spec.redis.managed.persistence");
		get_quantity(c, r->storage, "8Gi",
			     "spec.redis.managed.storage");
		r->storage_class =
			get_str(c, NULL, "spec.redis.managed.storageClassName");
		r->resources = read_resources(c, &redis_defaults,
					      "spec.redis.managed.resources");
		return;
	}
	fmt(c, r->host, sizeof(r->host), "%s",
	    get_str(c, "", "spec.redis.external.host"));
	if (!r->host[0])
		fail(c, VG_INVAL, "spec.redis.external.host is required");
	r->port = get_int(c, 6379, 1, 65535, "spec.redis.external.port");
	r->db = get_int(c, 0, 0, 15, "spec.redis.external.database");
	r->secret = get_str(c, NULL,
			    "spec.redis.external.credentialsSecret.name");
	r->user_key = get_str(
		c, NULL, "spec.redis.external.credentialsSecret.usernameKey");
	r->pass_key = get_str(
		c, "password",
		"spec.redis.external.credentialsSecret.passwordKey");
	r->tls = get_bool(c, 0, "spec.redis.external.tls.enabled");
	r->server_name =
		get_str(c, NULL, "spec.redis.external.tls.serverName");
	r->ca_secret =
		get_str(c, NULL, "spec.redis.external.tls.caSecret.name");
	r->ca_key = get_str(c, "ca.crt", "spec.redis.external.tls.caSecret.key");
	if (r->ca_secret)
		fmt(c, r->ca_file, sizeof(r->ca_file), "%s/%s", REDIS_CA_DIR,
		    r->ca_key);
}

/* Read and check the whole Platform; VG_OK or c->rc with c->err set. */
static int read_platform(struct pctx *c, const json_t *obj,
			 const struct platform_env *env, struct vg_err *err)
{
	static const struct platform_env defaults;
	const json_t *name, *ns;

	memset(c, 0, sizeof(*c));
	c->obj = obj;
	c->env = env ? env : &defaults;
	c->err = err;
	if (!json_is_object(obj)) {
		fail(c, VG_INVAL, "a Platform must be a JSON object");
		return c->rc;
	}
	name = at(c, "metadata.name");
	ns = at(c, "metadata.namespace");
	if (!json_is_string(name) || !json_string_length(name)) {
		fail(c, VG_INVAL, "metadata.name is missing or not a string");
		return c->rc;
	}
	if (!json_is_string(ns) || !json_string_length(ns)) {
		fail(c, VG_INVAL,
		     "metadata.namespace is missing or not a string");
		return c->rc;
	}
	c->name = json_string_value(name);
	c->ns = json_string_value(ns);
	if (!name_ok(c->name)) {
		fail(c, VG_INVAL,
		     "metadata.name \"%.64s\" cannot prefix the children's "
		     "names: use at most %d lower-case letters, digits and "
		     "'-', starting with a letter",
		     c->name, PLATFORM_NAME_MAX);
		return c->rc;
	}
	if (!get_container(c, 0, "spec")) {
		fail(c, VG_INVAL, "spec is missing");
		return c->rc;
	}
	c->version = get_str(c, NULL, "spec.version");
	if (!c->version || !c->version[0])
		fail(c, VG_INVAL, "spec.version is required");
	c->registry = get_str(c, "ghcr.io/vigil-dev", "spec.imageRegistry");
	c->log_level = get_enum(c, log_levels, "info", "spec.logLevel");
	c->sa_name = get_str(c, NULL, "spec.serviceAccountName");
	c->emergency_stop = get_bool(c, 0, "spec.emergencyStop");
	c->netpol = get_bool(c, 1, "spec.networkPolicy.enabled");
	c->gw_tls_secret = get_str(c, NULL, "spec.gateway.tls.secretName");
	if (c->rc != VG_OK)
		return c->rc;

	fmt(c, c->n_config, NAME_LEN, "%s-config", c->name);
	fmt(c, c->n_session, NAME_LEN, "%s-session-key", c->name);
	fmt(c, c->n_db_secret, NAME_LEN, "%s-db-credentials", c->name);
	fmt(c, c->n_redis_secret, NAME_LEN, "%s-redis-credentials", c->name);
	fmt(c, c->n_postgres, NAME_LEN, "%s-postgres", c->name);
	fmt(c, c->n_redis, NAME_LEN, "%s-redis", c->name);
	fmt(c, c->n_redis_pvc, NAME_LEN, "%s-redis-data", c->name);
	for (int i = 0; i < NCOMPONENTS; i++)
		read_component(c, i);
	fmt(c, c->gateway_url, sizeof(c->gateway_url), "%s://%s.%s.svc:%lld",
	    c->comp[GATEWAY].scheme, c->comp[GATEWAY].name, c->ns,
	    c->comp[GATEWAY].port);
	fmt(c, c->brain_url, sizeof(c->brain_url), "http://%s.%s.svc:%lld",
	    c->comp[BRAIN].name, c->ns, c->comp[BRAIN].port);
	read_database(c);
	read_redis(c);
	return c->rc;
}

/* ------------------------------------------------------------------ */
/* Building blocks                                                      */
/* ------------------------------------------------------------------ */

static void append(struct pctx *c, json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, v))
		nomem(c);
}

/* Append a finished child; after a failure children are dropped. */
static void add(struct pctx *c, json_t *children, json_t *obj)
{
	if (c->rc != VG_OK) {
		json_decref(obj);
		return;
	}
	append(c, children, obj);
}

static json_t *labels_new(const struct pctx *c, const char *app,
			  const char *component)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", LABEL_NAME, app,
			 LABEL_INSTANCE, c->name, LABEL_COMPONENT, component,
			 LABEL_PART_OF, "vigil", VIGIL_LABEL_MANAGED_BY,
			 VIGIL_MANAGED_BY);
}

/* The immutable selector of a workload: a subset of its labels. */
static json_t *selector_new(const struct pctx *c, const char *app,
			    const char *component)
{
	return json_pack("{s:s, s:s, s:s}", LABEL_NAME, app, LABEL_INSTANCE,
			 c->name, LABEL_COMPONENT, component);
}

/* {apiVersion, kind, metadata {name, namespace, labels}}; labels stolen. */
static json_t *object_new(const struct pctx *c, const char *api_version,
			  const char *kind, const char *name, json_t *labels)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "apiVersion",
			 api_version, "kind", kind, "metadata", "name", name,
			 "namespace", c->ns, "labels", labels);
}

/* object_new() plus `key`: `body` (stolen). */
static json_t *object_with(const struct pctx *c, const char *api_version,
			   const char *kind, const char *name, json_t *labels,
			   const char *key, json_t *body)
{
	json_t *obj = object_new(c, api_version, kind, name, labels);

	if (!obj || json_object_set_new(obj, key, body)) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static json_t *pod_security_new(long long uid)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:{s:s}}", "runAsNonRoot", 1,
			 "runAsUser", (json_int_t)uid, "runAsGroup",
			 (json_int_t)uid, "fsGroup", (json_int_t)uid,
			 "seccompProfile", "type", "RuntimeDefault");
}

/* The restricted Pod Security Standard, on every container. */
static json_t *container_security_new(long long uid)
{
	return json_pack("{s:b, s:b, s:b, s:I, s:I, s:{s:[s]}, s:{s:s}}",
			 "allowPrivilegeEscalation", 0,
			 "readOnlyRootFilesystem", 1, "runAsNonRoot", 1,
			 "runAsUser", (json_int_t)uid, "runAsGroup",
			 (json_int_t)uid, "capabilities", "drop", "ALL",
			 "seccompProfile", "type", "RuntimeDefault");
}

static json_t *http_probe_new(const char *path, int period, int failures)
{
	return json_pack("{s:{s:s, s:s}, s:i, s:i, s:i}", "httpGet", "path",
			 path, "port", "metrics", "periodSeconds", period,
			 "timeoutSeconds", 3, "failureThreshold", failures);
}

/* `command` stolen. */
static json_t *exec_probe_new(json_t *command, int period, int failures)
{
	return json_pack("{s:{s:o}, s:i, s:i, s:i}", "exec", "command",
			 command, "periodSeconds", period, "timeoutSeconds", 5,
			 "failureThreshold", failures);
}

static json_t *env_value_new(const char *name, const char *value)
{
	return json_pack("{s:s, s:s}", "name", name, "value", value);
}

static json_t *env_secret_new(const char *name, const char *secret,
			      const char *key)
{
	return json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", name, "valueFrom",
			 "secretKeyRef", "name", secret, "key", key);
}

static json_t *env_field_new(const char *name, const char *path)
{
	return json_pack("{s:s, s:{s:{s:s}}}", "name", name, "valueFrom",
			 "fieldRef", "fieldPath", path);
}

/* readOnly is omitempty: false is left out, never written. */
static json_t *mount_new(const char *name, const char *path, int read_only)
{
	return read_only ? json_pack("{s:s, s:s, s:b}", "name", name,
				     "mountPath", path, "readOnly", 1)
			 : json_pack("{s:s, s:s}", "name", name, "mountPath",
				     path);
}

static json_t *secret_volume_new(const char *name, const char *secret)
{
	return json_pack("{s:s, s:{s:s, s:i}}", "name", name, "secret",
			 "secretName", secret, "defaultMode", SECRET_FILE_MODE);
}

static json_t *empty_dir_new(const char *name, const char *medium,
			     const char *size)
{
	return json_pack("{s:s, s:{s:s*, s:s}}", "name", name, "emptyDir",
			 "medium", medium, "sizeLimit", size);
}

static json_t *container_port_new(const char *name, long long port)
{
	return json_pack("{s:s, s:I, s:s}", "name", name, "containerPort",
			 (json_int_t)port, "protocol", "TCP");
}

/* spec.imagePullSecrets as [{name}], or NULL when there are none. */
static json_t *pull_secrets_new(struct pctx *c)
{
	const json_t *list = get_container(c, 1, "spec.imagePullSecrets");
	json_t *out, *item;
	size_t i;

	if (!list || json_array_size(list) == 0)
		return NULL;
	out = json_array();
	json_array_foreach((json_t *)list, i, item) {
		const char *n = json_string_value(json_object_get(item, "name"));

		if (!n || !n[0]) {
			fail(c, VG_INVAL,
			     "spec.imagePullSecrets[%zu].name must be a "
			     "non-empty string",
			     i);
			break;
		}
		append(c, out, json_pack("{s:s}", "name", n));
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* ConfigMap: the configuration contract of gateway, brain and worker   */
/* ------------------------------------------------------------------ */

/*
 * Every env-style key of <p>-config and where its value sits in the
 * config.json file key; both come from one document so they cannot
 * disagree. Keys whose value is absent (no CA file ...) are left out.
 */
static const struct {
	const char *env;
	const char *path;
} config_env[] = {
	{"VIGIL_PLATFORM", "platform"},
	{"VIGIL_NAMESPACE", "namespace"},
	{"VIGIL_VERSION", "version"},
	{"VIGIL_LOG_LEVEL", "logLevel"},
	{"VIGIL_EMERGENCY_STOP", "emergencyStop"},
	{"VIGIL_HEALTH_PORT", "healthPort"},
	{"VIGIL_GATEWAY_URL", "gateway.url"},
	{"VIGIL_GATEWAY_PORT", "gateway.port"},
	{"VIGIL_GATEWAY_TLS", "gateway.tls"},
	{"VIGIL_BRAIN_URL", "brain.url"},
	{"VIGIL_BRAIN_PORT", "brain.port"},
	{"VIGIL_DB_HOST", "database.host"},
	{"VIGIL_DB_PORT", "database.port"},
	{"VIGIL_DB_NAME", "database.name"},
	{"VIGIL_DB_SSLMODE", "database.sslMode"},
	{"VIGIL_DB_SSLROOTCERT", "database.sslRootCert"},
	{"VIGIL_REDIS_HOST", "redis.host"},
	{"VIGIL_REDIS_PORT", "redis.port"},
	{"VIGIL_REDIS_ADDR", "redis.addr"},
	{"VIGIL_REDIS_DB", "redis.db"},
	{"VIGIL_REDIS_TLS", "redis.tls"},
	{"VIGIL_REDIS_TLS_SERVER_NAME", "redis.serverName"},
	{"VIGIL_REDIS_TLS_CA_FILE", "redis.caFile"},
};

static int sha256_hex(const char *data, size_t len, char *out, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) ||
	    size < 2 * (size_t)n + 1)
		return VG_INTERNAL;
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return VG_OK;
}

/* The configuration document, without emergencyStop (see below). */
static json_t *config_doc_new(struct pctx *c)
{
	const struct db *db = &c->db;
	const struct redis *r = &c->redis;
	char addr[HOST_LEN + 16];

	host_port(addr, sizeof(addr), r->host, r->port);
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:i,"
		" s:{s:s, s:I, s:b}, s:{s:s, s:I},"
		" s:{s:b, s:s, s:I, s:s, s:s, s:s*},"
		" s:{s:b, s:s, s:I, s:s, s:I, s:b, s:s*, s:s*}}",
		"platform", c->name, "namespace", c->ns, "version", c->version,
		"logLevel", c->log_level, "healthPort", PLATFORM_HEALTH_PORT,
		"gateway", "url", c->gateway_url, "port",
		(json_int_t)c->comp[GATEWAY].port, "tls",
		c->gw_tls_secret != NULL, "brain", "url", c->brain_url, "port",
		(json_int_t)c->comp[BRAIN].port, "database", "managed",
		db->managed, "host", db->host, "port", (json_int_t)db->port,
		"name", db->dbname, "sslMode", db->sslmode, "sslRootCert",
		db->ca_file[0] ? db->ca_file : NULL, "redis", "managed",
		r->managed, "host", r->host, "port", (json_int_t)r->port,
		"addr", addr, "db", (json_int_t)r->db, "tls", r->tls,
		"serverName", r->server_name, "caFile",
		r->ca_file[0] ? r->ca_file : NULL);
}

/*
 * <p>-config, and c->config_hash: the hash of everything in it except
 * emergencyStop. The hash goes into the pod templates so configuration
 * changes roll the pods; the emergency stop must not restart the
 * platform, so services re-read it from the mounted config.json.
 */
static json_t *configmap_new(struct pctx *c)
{
	json_t *doc = config_doc_new(c), *data = json_object(), *cm = NULL;
	char *dump = NULL, num[32];

	if (!doc || !data)
		goto out;
	dump = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
	if (!dump || sha256_hex(dump, strlen(dump), c->config_hash,
				sizeof(c->config_hash)) != VG_OK)
		goto out;
	free(dump);
	dump = NULL;
	if (json_object_set_new(doc, "emergencyStop",
				json_boolean(c->emergency_stop)))
		goto out;
	for (size_t i = 0; i < sizeof(config_env) / sizeof(config_env[0]);
	     i++) {
		const json_t *v = vg_json_get(doc, config_env[i].path);
		const char *s = num;

		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
		else if (json_is_boolean(v))
			s = json_is_true(v) ? "true" : "false";
		else
			continue;
		if (json_object_set_new(data, config_env[i].env,
					json_string(s)))
			goto out;
	}
	dump = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2));
	if (!dump || json_object_set_new(data, CONFIG_KEY, json_string(dump)))
		goto out;
	cm = object_with(c, "v1", "ConfigMap", c->n_config,
			 labels_new(c, "vigil", "platform"), "data",
			 json_incref(data));
out:
	if (!cm)
		nomem(c);
	free(dump);
	json_decref(doc);
	json_decref(data);
	return cm;
}

/* ------------------------------------------------------------------ */
/* gateway, brain, worker                                               */
/* ------------------------------------------------------------------ */

static json_t *extra_env_new(struct pctx *c, const char *comp, size_t i,
			     const json_t *item)
{
	const char *name = json_string_value(json_object_get(item, "name"));
	const json_t *value = json_object_get(item, "value");
	const json_t *from = json_object_get(item, "valueFrom");
	const json_t *skr, *cmr, *ref;
	const char *rn, *rk;

	if (!name || !name[0]) {
		fail(c, VG_INVAL,
		     "spec.%s.extraEnv[%zu].name must be a non-empty string",
		     comp, i);
		return NULL;
	}
	if ((value && !json_is_string(value)) ||
	    (from && !json_is_object(from))) {
		fail(c, VG_INVAL,
		     "spec.%s.extraEnv[%zu] (%s): value must be a string and "
		     "valueFrom an object",
		     comp, i, name);
		return NULL;
	}
	if (!from) {
		/* an empty value is omitted by the server: leave it out */
		if (value && json_string_length(value))
			return env_value_new(name, json_string_value(value));
		return json_pack("{s:s}", "name", name);
	}
	skr = json_object_get(from, "secretKeyRef");
	cmr = json_object_get(from, "configMapKeyRef");
	ref = skr ? skr : cmr;
	rn = json_string_value(json_object_get(ref, "name"));
	rk = json_string_value(json_object_get(ref, "key"));
	if (!skr == !cmr || (value && json_string_length(value)) || !rn ||
	    !rk || !rn[0] || !rk[0]) {
		fail(c, VG_INVAL,
		     "spec.%s.extraEnv[%zu] (%s): valueFrom needs exactly one "
		     "of secretKeyRef and configMapKeyRef with a name and a "
		     "key, and no value",
		     comp, i, name);
		return NULL;
	}
	return json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", name, "valueFrom",
			 skr ? "secretKeyRef" : "configMapKeyRef", "name", rn,
			 "key", rk);
}

/* extraEnv comes after the operator's variables; one of the same name
 * replaces the operator's entry (env is a map keyed by name in
 * server-side apply, so duplicates are not allowed). */
static void merge_extra_env(struct pctx *c, json_t *env, const char *comp)
{
	const json_t *extra = get_container(c, 1, "spec.%s.extraEnv", comp);
	json_t *item, *have;
	size_t i, j;

	json_array_foreach((json_t *)extra, i, item) {
		json_t *e = extra_env_new(c, comp, i, item);
		const char *name;
		int replaced = 0;

		if (!e) {
			if (c->rc == VG_OK)
				nomem(c);
			return;
		}
		name = json_string_value(json_object_get(e, "name"));
		json_array_foreach(env, j, have) {
			const char *hn =
				json_string_value(json_object_get(have, "name"));

			if (hn && strcmp(hn, name) == 0) {
				json_array_set_new(env, j, e);
				replaced = 1;
				break;
			}
		}
		if (!replaced)
			append(c, env, e);
	}
}

static json_t *component_env_new(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];
	const struct redis *r = &c->redis;
	json_t *env = json_array();

	append(c, env, env_value_new("VIGIL_COMPONENT", d->name));
	append(c, env, env_value_new("VIGIL_CONFIG_FILE",
				     CONFIG_DIR "/" CONFIG_KEY));
	append(c, env, env_field_new("POD_NAME", "metadata.name"));
	append(c, env, env_field_new("POD_NAMESPACE", "metadata.namespace"));
	append(c, env, env_secret_new("VIGIL_DB_USER", c->db.secret,
				      c->db.user_key));
	append(c, env, env_secret_new("VIGIL_DB_PASSWORD", c->db.secret,
				      c->db.pass_key));
	if (d->redis && r->secret) {
		if (r->user_key)
			append(c, env, env_secret_new("VIGIL_REDIS_USER",
						      r->secret, r->user_key));
		append(c, env, env_secret_new("VIGIL_REDIS_PASSWORD", r->secret,
					      r->pass_key));
	}
	if (d->session_key)
		append(c, env,
		       env_secret_new("VIGIL_SESSION_KEY", c->n_session, "key"));
	if (i == GATEWAY && c->gw_tls_secret) {
		append(c, env, env_value_new("VIGIL_TLS_CERT_FILE",
					     TLS_DIR "/tls.crt"));
		append(c, env, env_value_new("VIGIL_TLS_KEY_FILE",
					     TLS_DIR "/tls.key"));
	}
	merge_extra_env(c, env, d->name);
	return env;
}

/* Volumes and their mounts: configuration file, /tmp, certificates. */
static void component_volumes(struct pctx *c, int i, json_t *volumes,
			      json_t *mounts)
{
	const struct component_def *d = &components[i];

	append(c, mounts, mount_new("config", CONFIG_DIR, 1));
	append(c, volumes,
	       json_pack("{s:s, s:{s:s, s:[{s:s, s:s}]}}", "name", "config",
			 "configMap", "name", c->n_config, "items", "key",
			 CONFIG_KEY, "path", CONFIG_KEY));
	append(c, mounts, mount_new("tmp", "/tmp", 0));
	append(c, volumes, empty_dir_new("tmp", NULL, "64Mi"));
	if (i == GATEWAY && c->gw_tls_secret) {
		append(c, mounts, mount_new("tls", TLS_DIR, 1));
		append(c, volumes, secret_volume_new("tls", c->gw_tls_secret));
	}
	if (c->db.ca_secret) {
		append(c, mounts, mount_new("db-ca", DB_CA_DIR, 1));
		append(c, volumes, secret_volume_new("db-ca", c->db.ca_secret));
	}
	if (d->redis && c->redis.ca_secret) {
		append(c, mounts, mount_new("redis-ca", REDIS_CA_DIR, 1));
		append(c, volumes,
		       secret_volume_new("redis-ca", c->redis.ca_secret));
	}
}

static json_t *component_deployment_new(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];
	const struct comp *cm = &c->comp[i];
	json_t *sel = selector_new(c, d->app, d->name);
	json_t *ports = json_array(), *volumes = json_array();
	json_t *mounts = json_array(), *container, *pod, *spec, *strategy;
	char path[PATH_LEN];
	int blue_green = strcmp(cm->strategy, "BlueGreen") == 0;

	if (cm->port)
		append(c, ports, container_port_new(cm->scheme, cm->port));
	append(c, ports, container_port_new("metrics", PLATFORM_HEALTH_PORT));
	component_volumes(c, i, volumes, mounts);
	container = json_pack(
		"{s:s, s:s, s:s, s:o, s:[{s:{s:s}}], s:o, s:O, s:o, s:o, s:o,"
		" s:o, s:o}",
		"name", d->name, "image", cm->image, "imagePullPolicy",
		cm->pull_policy, "ports", ports, "envFrom", "configMapRef",
		"name", c->n_config, "env", component_env_new(c, i),
		"resources", cm->resources, "securityContext",
		container_security_new(NONROOT_UID), "livenessProbe",
		http_probe_new("/healthz", 10, 3), "readinessProbe",
		http_probe_new("/readyz", 5, 3), "startupProbe",
		http_probe_new("/healthz", 5, 30), "volumeMounts", mounts);
	fmt(c, path, sizeof(path), "spec.%s.nodeSelector", d->name);
	pod = json_pack(
		"{s:s, s:b, s:o, s:[o], s:o,"
		" s:[{s:i, s:s, s:s, s:{s:O}}], s:o*, s:o*, s:s*}",
		"serviceAccountName", c->sa_name ? c->sa_name : cm->name,
		"automountServiceAccountToken", 0, "securityContext",
		pod_security_new(NONROOT_UID), "containers", container,
		"volumes", volumes, "topologySpreadConstraints", "maxSkew", 1,
		"topologyKey", "kubernetes.io/hostname", "whenUnsatisfiable",
		"ScheduleAnyway", "labelSelector", "matchLabels", sel,
		"imagePullSecrets", pull_secrets_new(c), "nodeSelector",
		get_string_map(c, path), "priorityClassName",
		get_str(c, NULL, "spec.%s.priorityClassName", d->name));
	/*
	 * BlueGreen is reconciled later (two pod sets, switch of the
	 * Service); until then it is a rolling update that starts a whole
	 * second set of pods before old ones go (maxSurge 100%) and never
	 * drops below the desired count (maxUnavailable 0), as close to
	 * blue-green as one Deployment gets.
	 */
	strategy = json_pack("{s:s, s:{s:s, s:i}}", "type", "RollingUpdate",
			     "rollingUpdate", "maxSurge",
			     blue_green ? "100%" : "25%", "maxUnavailable", 0);
	spec = json_pack("{s:{s:O}, s:o, s:{s:{s:o, s:{s:s}}, s:o}}",
			 "selector", "matchLabels", sel, "strategy", strategy,
			 "template", "metadata", "labels",
			 labels_new(c, d->app, d->name), "annotations",
			 PLATFORM_CONFIG_HASH_ANNOTATION, c->config_hash,
			 "spec", pod);
	json_decref(sel);
	/* With an autoscaler the replica count is its business: leaving
	 * spec.replicas out of the intent means the operator never owns
	 * the field and never resets what the HPA chose. */
	if (spec && cm->min == cm->max &&
	    json_object_set_new(spec, "replicas", json_integer(cm->min))) {
		json_decref(spec);
		spec = NULL;
	}
	return object_with(c, "apps/v1", "Deployment", cm->name,
			   labels_new(c, d->app, d->name), "spec", spec);
}

static json_t *service_account_new(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];
	json_t *sa = object_new(c, "v1", "ServiceAccount", c->comp[i].name,
				labels_new(c, d->app, d->name));

	if (sa && json_object_set_new(sa, "automountServiceAccountToken",
				      json_false())) {
		json_decref(sa);
		sa = NULL;
	}
	return sa;
}

static json_t *hpa_new(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];
	const struct comp *cm = &c->comp[i];

	return object_with(
		c, "autoscaling/v2", "HorizontalPodAutoscaler", cm->name,
		labels_new(c, d->app, d->name), "spec",
		json_pack("{s:{s:s, s:s, s:s}, s:I, s:I,"
			  " s:[{s:s, s:{s:s, s:{s:s, s:I}}},"
			  "    {s:s, s:{s:s, s:{s:s, s:I}}}]}",
			  "scaleTargetRef", "apiVersion", "apps/v1", "kind",
			  "Deployment", "name", cm->name, "minReplicas",
			  (json_int_t)cm->min, "maxReplicas",
			  (json_int_t)cm->max, "metrics", "type", "Resource",
			  "resource", "name", "cpu", "target", "type",
			  "Utilization", "averageUtilization",
			  (json_int_t)cm->cpu_target, "type", "Resource",
			  "resource", "name", "memory", "target", "type",
			  "Utilization", "averageUtilization",
			  (json_int_t)cm->mem_target));
}

/*
 * maxUnavailable 1 rather than minAvailable 1: with 3-20 replicas a
 * minAvailable of 1 would let a drain take all but one pod at once, and
 * with a single replica (min = max = 1) it would block every drain;
 * maxUnavailable 1 keeps n-1 serving whatever count the HPA chose.
 */
static json_t *pdb_new(struct pctx *c, int i)
{
	const struct component_def *d = &components[i];

	return object_with(c, "policy/v1", "PodDisruptionBudget",
			   c->comp[i].name, labels_new(c, d->app, d->name),
			   "spec",
			   json_pack("{s:i, s:{s:o}}", "maxUnavailable", 1,
				     "selector", "matchLabels",
				     selector_new(c, d->app, d->name)));
}

/* A Service with one named TCP port (targetPort the container port's
 * name); `headless` for the StatefulSet's governing Service. */
static json_t *service_new(struct pctx *c, const char *name, const char *app,
			   const char *component, const char *type,
			   int headless, const char *port_name, long long port)
{
	json_t *spec = json_pack(
		"{s:s, s:o, s:[{s:s, s:I, s:s, s:s}]}", "type", type,
		"selector", selector_new(c, app, component), "ports", "name",
		port_name, "port", (json_int_t)port, "targetPort", port_name,
		"protocol", "TCP");

	if (spec && headless &&
	    json_object_set_new(spec, "clusterIP", json_string("None"))) {
		json_decref(spec);
		spec = NULL;
	}
	return object_with(c, "v1", "Service", name,
			   labels_new(c, app, component), "spec", spec);
}

static json_t *gateway_service_new(struct pctx *c)
{
	const struct comp *cm = &c->comp[GATEWAY];
	const char *type = get_enum(c, service_types, "ClusterIP",
				    "spec.gateway.service.type");
	json_t *svc = service_new(c, cm->name, components[GATEWAY].app,
				  "gateway", type, 0, cm->scheme, cm->port);
	json_t *ann = get_string_map(c, "spec.gateway.service.annotations");
	const json_t *ranges = get_container(
		c, 1, "spec.gateway.service.loadBalancerSourceRanges");
	json_t *item;
	size_t i;

	if (!svc)
		goto fail;
	if (ann && json_object_set_new(json_object_get(svc, "metadata"),
				       "annotations", json_incref(ann)))
		goto fail;
	json_array_foreach((json_t *)ranges, i, item) {
		if (!json_is_string(item)) {
			fail(c, VG_INVAL,
			     "spec.gateway.service.loadBalancerSourceRanges[%zu]"
			     " must be a string",
			     i);
			break;
		}
	}
	/* only meaningful (and only kept) for a LoadBalancer */
	if (strcmp(type, "LoadBalancer") == 0 && json_array_size(ranges) &&
	    json_object_set_new(json_object_get(svc, "spec"),
				"loadBalancerSourceRanges",
				json_deep_copy(ranges)))
		goto fail;
	json_decref(ann);
	return svc;
fail:
	json_decref(ann);
	json_decref(svc);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* PostgreSQL and Redis                                                 */
/* ------------------------------------------------------------------ */

static json_t *pg_isready_new(void)
{
	return json_pack("[s, s, s, s, s, s, s, s, s]", "pg_isready", "-h",
			 "127.0.0.1", "-p", "5432", "-U", MANAGED_DB_USER, "-d",
			 MANAGED_DB_NAME);
}

/*
 * The official image runs as its postgres user (999) under the restricted
 * profile: the data directory is a subdirectory of the volume (the
 * volume's root may hold lost+found), and the socket directory, /tmp and
 * /dev/shm are writable emptyDirs beside the read-only root filesystem.
 */
static json_t *postgres_statefulset_new(struct pctx *c)
{
	const struct db *db = &c->db;
	json_t *container, *pod, *vct, *spec;

	container = json_pack(
		"{s:s, s:s, s:s, s:[{s:s, s:i, s:s}],"
		" s:[o, o, {s:s, s:s}, {s:s, s:s}], s:O, s:o, s:o, s:o, s:o,"
		" s:[o, o, o, o]}",
		"name", "postgres", "image", db->image, "imagePullPolicy",
		"IfNotPresent", "ports", "name", "postgres", "containerPort",
		PLATFORM_POSTGRES_PORT, "protocol", "TCP", "env",
		env_secret_new("POSTGRES_USER", db->secret, db->user_key),
		env_secret_new("POSTGRES_PASSWORD", db->secret, db->pass_key),
		"name", "POSTGRES_DB", "value", MANAGED_DB_NAME, "name",
		"PGDATA", "value", PGDATA_MOUNT "/pgdata", "resources",
		db->resources, "securityContext",
		container_security_new(POSTGRES_UID), "readinessProbe",
		exec_probe_new(pg_isready_new(), 5, 3), "livenessProbe",
		exec_probe_new(pg_isready_new(), 10, 6), "startupProbe",
		exec_probe_new(pg_isready_new(), 5, 60), "volumeMounts",
		mount_new("data", PGDATA_MOUNT, 0),
		mount_new("run", "/var/run/postgresql", 0),
		mount_new("tmp", "/tmp", 0), mount_new("shm", "/dev/shm", 0));
	pod = json_pack("{s:b, s:i, s:o, s:[o], s:[o, o, o], s:o*}",
			"automountServiceAccountToken", 0,
			"terminationGracePeriodSeconds", 60, "securityContext",
			pod_security_new(POSTGRES_UID), "containers", container,
			"volumes", empty_dir_new("run", NULL, "16Mi"),
			empty_dir_new("tmp", NULL, "256Mi"),
			empty_dir_new("shm", "Memory", "256Mi"),
			"imagePullSecrets", pull_secrets_new(c));
	/* labels on the claim template put the claim in the operator's
	 * cache, so the volume can be grown later */
	vct = json_pack("{s:{s:s, s:o}, s:{s:[s], s:{s:{s:s}}, s:s*}}",
			"metadata", "name", "data", "labels",
			labels_new(c, "postgres", "postgres"), "spec",
			"accessModes", "ReadWriteOnce", "resources",
			"requests", "storage", db->storage,
			"storageClassName", db->storage_class);
	spec = json_pack("{s:i, s:s, s:{s:o}, s:{s:{s:o}, s:o}, s:[o]}",
			 "replicas", 1, "serviceName", c->n_postgres,
			 "selector", "matchLabels",
			 selector_new(c, "postgres", "postgres"), "template",
			 "metadata", "labels",
			 labels_new(c, "postgres", "postgres"), "spec", pod,
			 "volumeClaimTemplates", vct);
	return object_with(c, "apps/v1", "StatefulSet", c->n_postgres,
			   labels_new(c, "postgres", "postgres"), "spec",
			   spec);
}

/*
 * Single-replica Redis with append-only persistence. Recreate, because a
 * ReadWriteOnce volume cannot be attached to the old and the new pod at
 * once. The password reaches redis-server as $(REDIS_PASSWORD), expanded
 * by the kubelet; redis rewrites its process title, so it does not stay
 * visible in the argument list.
 */
static json_t *redis_deployment_new(struct pctx *c)
{
	const struct redis *r = &c->redis;
	json_t *args, *data, *container, *pod, *spec;

	args = r->persistence
		       ? json_pack("[s, s, s, s, s, s, s, s]", "--requirepass",
				   "$(REDIS_PASSWORD)", "--appendonly", "yes",
				   "--dir", "/data", "--port", "6379")
		       : json_pack("[s, s, s, s, s, s, s, s, s, s]",
				   "--requirepass", "$(REDIS_PASSWORD)",
				   "--appendonly", "no", "--save", "", "--dir",
				   "/data", "--port", "6379");
	data = r->persistence
		       ? json_pack("{s:s, s:{s:s}}", "name", "data",
				   "persistentVolumeClaim", "claimName",
				   c->n_redis_pvc)
		       : empty_dir_new("data", NULL, r->storage);
	container = json_pack(
		"{s:s, s:s, s:s, s:o, s:[o, o], s:[{s:s, s:i, s:s}], s:O, s:o,"
		" s:o, s:{s:{s:s}, s:i, s:i, s:i}, s:[o, o]}",
		"name", "redis", "image", r->image, "imagePullPolicy",
		"IfNotPresent", "args", args, "env",
		env_secret_new("REDIS_PASSWORD", r->secret, r->pass_key),
		env_secret_new("REDISCLI_AUTH", r->secret, r->pass_key), "ports",
		"name", "redis", "containerPort", PLATFORM_REDIS_PORT,
		"protocol", "TCP", "resources", r->resources,
		"securityContext", container_security_new(REDIS_UID),
		"readinessProbe",
		exec_probe_new(json_pack("[s, s, s]", "sh", "-c",
					 "redis-cli -p 6379 ping | grep -q PONG"),
			       5, 3),
		"livenessProbe", "tcpSocket", "port", "redis", "periodSeconds",
		10, "timeoutSeconds", 3, "failureThreshold", 6, "volumeMounts",
		mount_new("data", "/data", 0), mount_new("tmp", "/tmp", 0));
	pod = json_pack("{s:b, s:o, s:[o], s:[o, o], s:o*}",
			"automountServiceAccountToken", 0, "securityContext",
			pod_security_new(REDIS_UID), "containers", container,
			"volumes", data, empty_dir_new("tmp", NULL, "64Mi"),
			"imagePullSecrets", pull_secrets_new(c));
	spec = json_pack("{s:i, s:{s:s}, s:{s:o}, s:{s:{s:o}, s:o}}",
			 "replicas", 1, "strategy", "type", "Recreate",
			 "selector", "matchLabels",
			 selector_new(c, "redis", "redis"), "template",
			 "metadata", "labels", labels_new(c, "redis", "redis"),
			 "spec", pod);
	return object_with(c, "apps/v1", "Deployment", c->n_redis,
			   labels_new(c, "redis", "redis"), "spec", spec);
}

static json_t *redis_pvc_new(struct pctx *c)
{
	return object_with(
		c, "v1", "PersistentVolumeClaim", c->n_redis_pvc,
		labels_new(c, "redis", "redis"), "spec",
		json_pack("{s:[s], s:{s:{s:s}}, s:s*}", "accessModes",
			  "ReadWriteOnce", "resources", "requests", "storage",
			  c->redis.storage, "storageClassName",
			  c->redis.storage_class));
}

/* ------------------------------------------------------------------ */
/* NetworkPolicies                                                      */
/* ------------------------------------------------------------------ */

static json_t *peer_new(struct pctx *c, int i)
{
	return json_pack("{s:{s:o}}", "podSelector", "matchLabels",
			 selector_new(c, components[i].app, components[i].name));
}

/* One ingress rule on a TCP port; `from` (stolen) NULL: any source. */
static json_t *ingress_new(json_t *from, long long port)
{
	return json_pack("[{s:o*, s:[{s:s, s:I}]}]", "from", from, "ports",
			 "protocol", "TCP", "port", (json_int_t)port);
}

/* Ingress-only policy; `match` and `ingress` stolen, ingress NULL: deny. */
static json_t *netpol_new(struct pctx *c, const char *suffix, const char *app,
			  const char *component, json_t *match,
			  json_t *ingress)
{
	char name[NAME_LEN];

	fmt(c, name, sizeof(name), "%s-%s", c->name, suffix);
	return object_with(c, "networking.k8s.io/v1", "NetworkPolicy", name,
			   labels_new(c, app, component), "spec",
			   json_pack("{s:{s:o}, s:[s], s:o*}", "podSelector",
				     "matchLabels", match, "policyTypes",
				     "Ingress", "ingress", ingress));
}

/*
 * Ingress only: every pod of the platform denies what is not allowed
 * below. No egress policy: external databases and Redis live at
 * addresses a NetworkPolicy cannot name (host names), and DNS would need
 * its own allowance; egress stays open.
 */
static void add_network_policies(struct pctx *c, json_t *children)
{
	const struct comp *gw = &c->comp[GATEWAY], *br = &c->comp[BRAIN];

	add(c, children,
	    netpol_new(c, "default-deny", "vigil", "platform",
		       json_pack("{s:s, s:s}", LABEL_INSTANCE, c->name,
				 LABEL_PART_OF, "vigil"),
		       NULL));
	add(c, children,
	    netpol_new(c, "gateway", gw->def->app, "gateway",
		       selector_new(c, gw->def->app, "gateway"),
		       ingress_new(NULL, gw->port)));
	add(c, children,
	    netpol_new(c, "brain", br->def->app, "brain",
		       selector_new(c, br->def->app, "brain"),
		       ingress_new(json_pack("[o, o]", peer_new(c, GATEWAY),
					     peer_new(c, WORKER)),
				   br->port)));
	if (c->db.managed)
		add(c, children,
		    netpol_new(
			    c, "postgres", "postgres", "postgres",
			    selector_new(c, "postgres", "postgres"),
			    ingress_new(json_pack("[o, o, o, {s:{s:{s:s}}}]",
						  peer_new(c, GATEWAY),
						  peer_new(c, WORKER),
						  peer_new(c, BRAIN),
						  "podSelector", "matchLabels",
						  LABEL_ROLE, "backup"),
					PLATFORM_POSTGRES_PORT)));
	if (c->redis.managed)
		add(c, children,
		    netpol_new(c, "redis", "redis", "redis",
			       selector_new(c, "redis", "redis"),
			       ingress_new(json_pack("[o, o]",
						     peer_new(c, GATEWAY),
						     peer_new(c, WORKER)),
					   PLATFORM_REDIS_PORT)));
}

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
	rc = read_platform(&c, platform, env, err);
	if (rc != VG_OK)
		goto out;
	out = json_array();
	if (!out)
		nomem(&c);
	/* the ConfigMap first: it sets the hash the pod templates carry;
	 * policies, accounts and volumes before the pods that need them */
	add(&c, out, configmap_new(&c));
	if (c.netpol)
		add_network_policies(&c, out);
	for (int i = 0; i < NCOMPONENTS && !c.sa_name; i++)
		add(&c, out, service_account_new(&c, i));
	if (c.redis.managed && c.redis.persistence)
		add(&c, out, redis_pvc_new(&c));
	add(&c, out, gateway_service_new(&c));
	add(&c, out,
	    service_new(&c, c.comp[BRAIN].name, components[BRAIN].app, "brain",
			"ClusterIP", 0, "http", c.comp[BRAIN].port));
	if (c.db.managed) {
		add(&c, out,
		    service_new(&c, c.n_postgres, "postgres", "postgres",
				"ClusterIP", 1, "postgres",
				PLATFORM_POSTGRES_PORT));
		add(&c, out, postgres_statefulset_new(&c));
	}
	if (c.redis.managed) {
		add(&c, out,
		    service_new(&c, c.n_redis, "redis", "redis", "ClusterIP", 0,
				"redis", PLATFORM_REDIS_PORT));
		add(&c, out, redis_deployment_new(&c));
	}
	for (int i = 0; i < NCOMPONENTS; i++)
		add(&c, out, component_deployment_new(&c, i));
	for (int i = 0; i < NCOMPONENTS; i++)
		if (c.comp[i].min < c.comp[i].max)
			add(&c, out, hpa_new(&c, i));
	for (int i = 0; i < NCOMPONENTS; i++)
		add(&c, out, pdb_new(&c, i));
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
/* Generated and required Secrets                                       */
/* ------------------------------------------------------------------ */

/* `nbytes` random bytes as lower-case hex into `out` (2 * nbytes + 1). */
static int random_hex(char *out, size_t nbytes)
{
	unsigned char raw[64];

	if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1)
		return VG_INTERNAL;
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	return VG_OK;
}

/* A Secret's data value: base64 of `s`. */
static json_t *b64_new(const char *s)
{
	unsigned char enc[256];
	size_t n = strlen(s);
	json_t *v;

	if (4 * ((n + 2) / 3) + 1 > sizeof(enc))
		return NULL;
	EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
	v = json_string((const char *)enc);
	OPENSSL_cleanse(enc, sizeof(enc));
	return v;
}

static json_t *secret_new(struct pctx *c, const char *name, const char *app,
			  const char *component, json_t *data)
{
	json_t *s = object_with(c, "v1", "Secret", name,
				labels_new(c, app, component), "data", data);

	if (s && json_object_set_new(s, "type", json_string("Opaque"))) {
		json_decref(s);
		s = NULL;
	}
	return s;
}

int platform_secrets(const json_t *platform, json_t **secrets,
		     struct vg_err *err)
{
	struct pctx c;
	json_t *out = NULL;
	char session[2 * 32 + 1], db_pw[2 * 24 + 1], redis_pw[2 * 24 + 1];
	int rc;

	*secrets = NULL;
	rc = read_platform(&c, platform, NULL, err);
	if (rc != VG_OK)
		goto out;
	if (random_hex(session, 32) != VG_OK ||
	    random_hex(db_pw, 24) != VG_OK ||
	    random_hex(redis_pw, 24) != VG_OK) {
		rc = vg_err_set(err, VG_INTERNAL,
				"no random bytes for the generated secrets "
				"(RAND_bytes failed)");
		goto out;
	}
	out = json_array();
	if (!out)
		nomem(&c);
	add(&c, out,
	    secret_new(&c, c.n_session, "vigil", "platform",
		       json_pack("{s:o}", "key", b64_new(session))));
	if (c.db.managed)
		add(&c, out,
		    secret_new(&c, c.n_db_secret, "postgres", "postgres",
			       json_pack("{s:o, s:o}", "username",
					 b64_new(MANAGED_DB_USER), "password",
					 b64_new(db_pw))));
	if (c.redis.managed)
		add(&c, out,
		    secret_new(&c, c.n_redis_secret, "redis", "redis",
			       json_pack("{s:o}", "password",
					 b64_new(redis_pw))));
	rc = c.rc;
out:
	OPENSSL_cleanse(session, sizeof(session));
	OPENSSL_cleanse(db_pw, sizeof(db_pw));
	OPENSSL_cleanse(redis_pw, sizeof(redis_pw));
	if (rc == VG_OK)
		*secrets = out;
	else
		json_decref(out);
	pctx_cleanup(&c);
	return rc;
}

/* {"name", "field", "keys": [k1, k2]}; k2 may be NULL. */
static void add_ref(struct pctx *c, json_t *refs, const char *name,
		    const char *field, const char *k1, const char *k2)
{
	json_t *keys = json_pack("[s]", k1);

	if (keys && k2 && json_array_append_new(keys, json_string(k2))) {
		json_decref(keys);
		keys = NULL;
	}
	add(c, refs,
	    json_pack("{s:s, s:s, s:o}", "name", name, "field", field, "keys",
		      keys));
}

int platform_required_secrets(const json_t *platform, json_t **refs,
			      struct vg_err *err)
{
	struct pctx c;
	json_t *out = NULL;
	int rc;

	*refs = NULL;
	rc = read_platform(&c, platform, NULL, err);
	if (rc != VG_OK)
		goto out;
	out = json_array();
	if (!out)
		nomem(&c);
	if (!c.db.managed) {
		add_ref(&c, out, c.db.secret,
			"spec.database.external.credentialsSecret",
			c.db.user_key, c.db.pass_key);
		if (c.db.ca_secret)
			add_ref(&c, out, c.db.ca_secret,
				"spec.database.external.caSecret", c.db.ca_key,
				NULL);
	}
	if (!c.redis.managed && c.redis.secret)
		add_ref(&c, out, c.redis.secret,
			"spec.redis.external.credentialsSecret",
			c.redis.pass_key, c.redis.user_key);
	if (!c.redis.managed && c.redis.ca_secret)
		add_ref(&c, out, c.redis.ca_secret,
			"spec.redis.external.tls.caSecret", c.redis.ca_key,
			NULL);
	if (c.gw_tls_secret)
		add_ref(&c, out, c.gw_tls_secret, "spec.gateway.tls.secretName",
			"tls.crt", "tls.key");
	rc = c.rc;
out:
	if (rc == VG_OK)
		*refs = out;
	else
		json_decref(out);
	pctx_cleanup(&c);
	return rc;
}

void platform_keep_immutable(json_t *desired, const json_t *live)
{
	json_t *dv = vg_json_get_array(desired, "spec.volumeClaimTemplates");
	json_t *lv = vg_json_get_array(live, "spec.volumeClaimTemplates");
	json_t *d, *l;
	size_t i, j;

	json_array_foreach(dv, i, d) {
		const char *name = vg_json_get_str(d, "metadata.name", NULL);

		json_array_foreach(lv, j, l) {
			json_t *size = vg_json_get(
				l, "spec.resources.requests.storage");

			if (!name ||
			    strcmp(name, vg_json_get_str(l, "metadata.name",
							 "")) != 0 ||
			    !json_is_string(size))
				continue;
			vg_json_set_new(d, "spec.resources.requests.storage",
					json_copy(size));
		}
	}
}

json_t *platform_replicas_handover(const json_t *desired, const json_t *live,
				   const json_t *live_hpa)
{
	json_t *replicas = vg_json_get(live, "spec.replicas");

	if (!desired || !live || live_hpa || !json_is_integer(replicas) ||
	    strcmp(vg_json_get_str(desired, "kind", ""), "Deployment") != 0 ||
	    vg_json_get(desired, "spec.replicas"))
		return NULL;
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:O}}", "apiVersion",
			 "apps/v1", "kind", "Deployment", "metadata", "name",
			 vg_json_get_str(desired, "metadata.name", ""),
			 "namespace",
			 vg_json_get_str(desired, "metadata.namespace", ""),
			 "spec", "replicas", replicas);
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
			 components[c].name);
		if (json_object_set_new(
			    st, components[c].name,
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
 * platform_replicas_handover()). Not a change of value, so harmless even
 * from a replica that is just losing the lease.
 */
static int handover_replicas(struct rec *rc, const json_t *desired)
{
	const char *name = vg_json_get_str(desired, "metadata.name", "");
	json_t *live = ctl_get_cached(rc->m, &vg_kube_deployments, rc->ns, name);
	json_t *hpa = live ? ctl_get_cached(rc->m, &vg_kube_hpas, rc->ns, name)
			   : NULL;
	json_t *body = platform_replicas_handover(desired, live, hpa);
	struct vg_kube_patch_opts po = {
		.field_manager = PLATFORM_HANDOVER_MANAGER,
	};
	int ret = VG_OK;

	if (body) {
		ret = vg_kube_apply(ctl_client(rc->m), &vg_kube_deployments,
				    rc->ns, body, &po, NULL, &rc->err);
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
			 components[c].name);
		obj = ctl_get_cached(rc->m, &vg_kube_deployments, rc->ns, key);
		snprintf(key, sizeof(key), "Deployment/%s-%s", rc->name,
			 components[c].name);
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

enum rec_result platform_reconcile(struct rec *rc)
{
	const struct platform_env *env = rc->ctx;
	json_t *children = NULL, *live = NULL, *status = NULL;
	struct problem problem = {0};
	struct platform_health h;
	struct vg_err err, apply_err;
	enum rec_result res = REC_DONE;
	int ret, apply_failed = 0, was_ready;

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
	} else if (!h.ready) {
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
