/*
 * platform_spec.c - the Platform read once into a struct pctx: every value
 * with its default (DESIGN.md's deployment sheet, the CRD's schema
 * defaults) and checked, so that a Platform the builders cannot turn into
 * children fails here with VG_INVAL and the offending field (the
 * reconciler reports it as InvalidSpec).
 */
#include "platform_int.h"

#include "vigil/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct component_def platform_components[NCOMPONENTS] = {
	[GATEWAY] = {"gateway", "vigil-gateway", 3, 20,
		     {"100m", "500m", "256Mi", "1Gi"}, 8080, 1, 1},
	/* the brain takes report work from its own queue on Redis */
	[BRAIN] = {"brain", "vigil-brain", 2, 10,
		   {"250m", "1000m", "512Mi", "2Gi"}, 8081, 1, 0},
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

void pctx_cleanup(struct pctx *c)
{
	for (int i = 0; i < NCOMPONENTS; i++)
		json_decref(c->comp[i].resources);
	json_decref(c->db.resources);
	json_decref(c->redis.resources);
}

void pctx_fail(struct pctx *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->rc != VG_OK)
		return;
	c->rc = code;
	va_start(ap, fmt);
	vg_err_setv(c->err, code, fmt, ap);
	va_end(ap);
}

void pctx_nomem(struct pctx *c)
{
	pctx_fail(c, VG_NOMEM,
		  "out of memory building the platform's children");
}

const char *pctx_fmt(struct pctx *c, char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, size, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		pctx_fail(c, VG_INVAL, "value too long: \"%.60s...\"", buf);
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

const char *pctx_get_str(struct pctx *c, const char *def, const char *f, ...)
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
		pctx_fail(c, VG_INVAL, "%s must be a string", path);
		return def;
	}
	return json_string_value(v);
}

const char *pctx_get_enum(struct pctx *c, const char *const *allowed,
			  const char *def, const char *f, ...)
{
	char path[PATH_LEN];
	const char *s;
	va_list ap;

	va_start(ap, f);
	vsnprintf(path, sizeof(path), f, ap);
	va_end(ap);
	s = pctx_get_str(c, def, "%s", path);
	for (const char *const *a = allowed; *a; a++)
		if (strcmp(*a, s) == 0)
			return s;
	pctx_fail(c, VG_INVAL, "%s: \"%s\" is not one of the allowed values",
		  path, s);
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
		pctx_fail(c, VG_INVAL, "%s must be an integer", path);
		return def;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		pctx_fail(c, VG_INVAL,
			  "%s must be between %lld and %lld, not %lld", path,
			  min, max, n);
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
		pctx_fail(c, VG_INVAL, "%s must be true or false", path);
		return def;
	}
	return json_is_true(v);
}

const json_t *pctx_get_container(struct pctx *c, int want_array, const char *f,
				 ...)
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
		pctx_fail(c, VG_INVAL, "%s must be %s", path,
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
		pctx_fail(c, VG_INVAL, "%s: %s", path, qerr.msg);
		out[0] = '\0';
	}
}

/* NULL when empty too: the server drops empty maps. */
json_t *pctx_get_string_map(struct pctx *c, const char *path)
{
	const json_t *m = pctx_get_container(c, 0, "%s", path), *v;
	const char *k;

	if (!m || json_object_size(m) == 0)
		return NULL;
	json_object_foreach((json_t *)m, k, v) {
		if (!json_is_string(v)) {
			pctx_fail(c, VG_INVAL, "%s.%s must be a string", path,
				  k);
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
			pctx_fail(
				c, VG_INVAL,
				"%s.requests.%s (%s) exceeds %s.limits.%s (%s)",
				base, slot[k][1], q[k], base, slot[k][1],
				q[k + 1]);
	}
	res = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "cpu",
			q[0], "memory", q[2], "limits", "cpu", q[1], "memory",
			q[3]);
	if (!res)
		pctx_nomem(c);
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

static void read_component(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];
	struct comp *cm = &c->comp[i];
	char repo_def[IMAGE_LEN], base[PATH_LEN];
	const char *repo, *tag, *digest;

	cm->def = d;
	pctx_fmt(c, cm->name, sizeof(cm->name), "%s-%s", c->name, d->name);
	pctx_fmt(c, repo_def, sizeof(repo_def), "%s/vigil-%s", c->registry,
		 d->name);
	repo = pctx_get_str(c, repo_def, "spec.%s.image.repository", d->name);
	tag = pctx_get_str(c, c->version, "spec.%s.image.tag", d->name);
	digest = pctx_get_str(c, NULL, "spec.%s.image.digest", d->name);
	if (digest)
		pctx_fmt(c, cm->image, sizeof(cm->image), "%s@%s", repo,
			 digest);
	else
		pctx_fmt(c, cm->image, sizeof(cm->image), "%s:%s", repo, tag);
	cm->pull_policy = pctx_get_enum(c, pull_policies, "IfNotPresent",
					"spec.%s.image.pullPolicy", d->name);
	cm->min = get_int(c, d->min_replicas, 1, 1000, "spec.%s.replicas.min",
			  d->name);
	cm->max = get_int(c, d->max_replicas, 1, 1000, "spec.%s.replicas.max",
			  d->name);
	if (cm->min > cm->max)
		pctx_fail(c, VG_INVAL,
			  "spec.%s.replicas: min (%lld) is greater than max "
			  "(%lld)",
			  d->name, cm->min, cm->max);
	cm->cpu_target = get_int(c, 70, 1, 100,
				 "spec.%s.autoscaling.targetCPUUtilization",
				 d->name);
	cm->mem_target = get_int(c, 80, 1, 100,
				 "spec.%s.autoscaling.targetMemoryUtilization",
				 d->name);
	cm->strategy = pctx_get_enum(c, strategies, "RollingUpdate",
				     "spec.%s.rolloutStrategy", d->name);
	cm->port = d->default_port
			   ? get_int(c, d->default_port, 1, 65535, "spec.%s.port",
				     d->name)
			   : 0;
	if (cm->port == PLATFORM_HEALTH_PORT)
		pctx_fail(c, VG_INVAL,
			  "spec.%s.port: %d is the health and metrics port",
			  d->name, PLATFORM_HEALTH_PORT);
	cm->scheme = i == GATEWAY && c->gw_tls_secret ? "https" : "http";
	cm->resources = read_resources(
		c, &d->res,
		pctx_fmt(c, base, sizeof(base), "spec.%s.resources", d->name));
}

static void read_database(struct pctx *c)
{
	struct db *db = &c->db;
	const json_t *m = pctx_get_container(c, 0, "spec.database.managed");
	const json_t *x = pctx_get_container(c, 0, "spec.database.external");
	const char *version, *image;

	if (!m == !x) {
		pctx_fail(c, VG_INVAL,
			  "spec.database: set exactly one of managed and "
			  "external");
		return;
	}
	db->managed = m != NULL;
	if (db->managed) {
		pctx_fmt(c, db->host, sizeof(db->host), "%s.%s.svc",
			 c->n_postgres, c->ns);
		db->port = PLATFORM_POSTGRES_PORT;
		db->dbname = MANAGED_DB_NAME;
		/* the official image serves no TLS; traffic stays in the
		 * namespace behind the NetworkPolicy */
		db->sslmode = "disable";
		db->secret = c->n_db_secret;
		db->user_key = "username";
		db->pass_key = "password";
		version = pctx_get_enum(c, pg_versions, "16",
					"spec.database.managed.version");
		image = pctx_get_str(c, NULL, "spec.database.managed.image");
		if (image)
			pctx_fmt(c, db->image, sizeof(db->image), "%s", image);
		else
			pctx_fmt(c, db->image, sizeof(db->image), "%s:%s",
				 c->env->postgres_repository
					 ? c->env->postgres_repository
					 : PLATFORM_DEFAULT_POSTGRES_REPOSITORY,
				 version);
		get_quantity(c, db->storage, "20Gi",
			     "spec.database.managed.storage");
		db->storage_class = pctx_get_str(
			c, NULL, "spec.database.managed.storageClassName");
		db->resources = read_resources(c, &postgres_defaults,
					       "spec.database.managed.resources");
		return;
	}
	pctx_fmt(c, db->host, sizeof(db->host), "%s",
		 pctx_get_str(c, "", "spec.database.external.host"));
	if (!db->host[0])
		pctx_fail(c, VG_INVAL,
			  "spec.database.external.host is required");
	db->port = get_int(c, 5432, 1, 65535, "spec.database.external.port");
	db->dbname =
		pctx_get_str(c, "vigil", "spec.database.external.database");
	db->sslmode = pctx_get_enum(c, ssl_modes, "require",
				    "spec.database.external.sslMode");
	db->secret = pctx_get_str(
		c, NULL, "spec.database.external.credentialsSecret.name");
	if (!db->secret || !db->secret[0])
		pctx_fail(c, VG_INVAL,
			  "spec.database.external.credentialsSecret."
			  "name is required");
	db->user_key = pctx_get_str(
		c, "username",
		"spec.database.external.credentialsSecret.usernameKey");
	db->pass_key = pctx_get_str(
		c, "password",
		"spec.database.external.credentialsSecret.passwordKey");
	db->ca_secret =
		pctx_get_str(c, NULL, "spec.database.external.caSecret.name");
	db->ca_key = pctx_get_str(c, "ca.crt",
				  "spec.database.external.caSecret.key");
	if (db->ca_secret)
		pctx_fmt(c, db->ca_file, sizeof(db->ca_file), "%s/%s",
			 DB_CA_DIR, db->ca_key);
}

static void read_redis(struct pctx *c)
{
	struct redis *r = &c->redis;
	const json_t *m = pctx_get_container(c, 0, "spec.redis.managed");
	const json_t *x = pctx_get_container(c, 0, "spec.redis.external");

	if (!m == !x) {
		pctx_fail(
			c, VG_INVAL,
			"spec.redis: set exactly one of managed and external");
		return;
	}
	r->managed = m != NULL;
	if (r->managed) {
		pctx_fmt(c, r->host, sizeof(r->host), "%s.%s.svc", c->n_redis,
			 c->ns);
		r->port = PLATFORM_REDIS_PORT;
		r->db = 0;
		r->secret = c->n_redis_secret;
		r->pass_key = "password";
		r->image = pctx_get_str(c,
					c->env->redis_image
						? c->env->redis_image
						: PLATFORM_DEFAULT_REDIS_IMAGE,
					"spec.redis.managed.image");
		r->persistence =
			get_bool(c, 1, "spec.redis.managed.persistence");
		get_quantity(c, r->storage, "8Gi",
			     "spec.redis.managed.storage");
		r->storage_class = pctx_get_str(
			c, NULL, "spec.redis.managed.storageClassName");
		r->resources = read_resources(c, &redis_defaults,
					      "spec.redis.managed.resources");
		return;
	}
	pctx_fmt(c, r->host, sizeof(r->host), "%s",
		 pctx_get_str(c, "", "spec.redis.external.host"));
	if (!r->host[0])
		pctx_fail(c, VG_INVAL, "spec.redis.external.host is required");
	r->port = get_int(c, 6379, 1, 65535, "spec.redis.external.port");
	r->db = get_int(c, 0, 0, 15, "spec.redis.external.database");
	r->secret = pctx_get_str(c, NULL,
				 "spec.redis.external.credentialsSecret.name");
	r->user_key = pctx_get_str(
		c, NULL, "spec.redis.external.credentialsSecret.usernameKey");
	r->pass_key = pctx_get_str(
		c, "password",
		"spec.redis.external.credentialsSecret.passwordKey");
	r->tls = get_bool(c, 0, "spec.redis.external.tls.enabled");
	r->server_name =
		pctx_get_str(c, NULL, "spec.redis.external.tls.serverName");
	r->ca_secret =
		pctx_get_str(c, NULL, "spec.redis.external.tls.caSecret.name");
	r->ca_key = pctx_get_str(c, "ca.crt",
				 "spec.redis.external.tls.caSecret.key");
	if (r->ca_secret)
		pctx_fmt(c, r->ca_file, sizeof(r->ca_file), "%s/%s",
			 REDIS_CA_DIR, r->ca_key);
}

int pctx_read(struct pctx *c, const json_t *obj, const struct platform_env *env,
	      struct vg_err *err)
{
	static const struct platform_env defaults;
	const json_t *name, *ns;

	memset(c, 0, sizeof(*c));
	c->obj = obj;
	c->env = env ? env : &defaults;
	c->err = err;
	if (!json_is_object(obj)) {
		pctx_fail(c, VG_INVAL, "a Platform must be a JSON object");
		return c->rc;
	}
	name = at(c, "metadata.name");
	ns = at(c, "metadata.namespace");
	if (!json_is_string(name) || !json_string_length(name)) {
		pctx_fail(c, VG_INVAL,
			  "metadata.name is missing or not a string");
		return c->rc;
	}
	if (!json_is_string(ns) || !json_string_length(ns)) {
		pctx_fail(c, VG_INVAL,
			  "metadata.namespace is missing or not a string");
		return c->rc;
	}
	c->name = json_string_value(name);
	c->ns = json_string_value(ns);
	if (!name_ok(c->name)) {
		pctx_fail(
			c, VG_INVAL,
			"metadata.name \"%.64s\" cannot prefix the children's "
			"names: use at most %d lower-case letters, digits and "
			"'-', starting with a letter",
			c->name, PLATFORM_NAME_MAX);
		return c->rc;
	}
	if (!pctx_get_container(c, 0, "spec")) {
		pctx_fail(c, VG_INVAL, "spec is missing");
		return c->rc;
	}
	c->version = pctx_get_str(c, NULL, "spec.version");
	if (!c->version || !c->version[0])
		pctx_fail(c, VG_INVAL, "spec.version is required");
	c->registry =
		pctx_get_str(c, "ghcr.io/vigil-dev", "spec.imageRegistry");
	c->log_level = pctx_get_enum(c, log_levels, "info", "spec.logLevel");
	c->sa_name = pctx_get_str(c, NULL, "spec.serviceAccountName");
	c->emergency_stop = get_bool(c, 0, "spec.emergencyStop");
	c->netpol = get_bool(c, 1, "spec.networkPolicy.enabled");
	c->gw_tls_secret = pctx_get_str(c, NULL, "spec.gateway.tls.secretName");
	if (c->rc != VG_OK)
		return c->rc;

	pctx_fmt(c, c->n_config, NAME_LEN, "%s-config", c->name);
	pctx_fmt(c, c->n_session, NAME_LEN, "%s-session-key", c->name);
	pctx_fmt(c, c->n_brain_token, NAME_LEN, "%s-brain-token", c->name);
	pctx_fmt(c, c->n_db_app, NAME_LEN, "%s-db-app", c->name);
	pctx_fmt(c, c->n_db_secret, NAME_LEN, "%s-db-credentials", c->name);
	pctx_fmt(c, c->n_redis_secret, NAME_LEN, "%s-redis-credentials",
		 c->name);
	pctx_fmt(c, c->n_postgres, NAME_LEN, "%s-postgres", c->name);
	pctx_fmt(c, c->n_redis, NAME_LEN, "%s-redis", c->name);
	pctx_fmt(c, c->n_redis_pvc, NAME_LEN, "%s-redis-data", c->name);
	for (int i = 0; i < NCOMPONENTS; i++)
		read_component(c, i);
	pctx_fmt(c, c->gateway_url, sizeof(c->gateway_url),
		 "%s://%s.%s.svc:%lld", c->comp[GATEWAY].scheme,
		 c->comp[GATEWAY].name, c->ns, c->comp[GATEWAY].port);
	pctx_fmt(c, c->brain_url, sizeof(c->brain_url), "http://%s.%s.svc:%lld",
		 c->comp[BRAIN].name, c->ns, c->comp[BRAIN].port);
	read_database(c);
	read_redis(c);
	return c->rc;
}
