/*
 * platform_backends.c - PostgreSQL and Redis: the StatefulSet, Deployment,
 * volume and Services of managed ones; the Secrets the operator generates
 * for them (and the session key), and the user-provided Secrets that
 * external ones (and the gateway's TLS) need.
 */
#include "platform_int.h"

#include "vigil/json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

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
json_t *postgres_statefulset_new(struct pctx *c)
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
json_t *redis_deployment_new(struct pctx *c)
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

json_t *redis_pvc_new(struct pctx *c)
{
	return object_with(
		c, "v1", "PersistentVolumeClaim", c->n_redis_pvc,
		labels_new(c, "redis", "redis"), "spec",
		json_pack("{s:[s], s:{s:{s:s}}, s:s*}", "accessModes",
			  "ReadWriteOnce", "resources", "requests", "storage",
			  c->redis.storage, "storageClassName",
			  c->redis.storage_class));
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
	char brain[2 * 32 + 1], app_pw[2 * 24 + 1];
	int rc;

	*secrets = NULL;
	rc = pctx_read(&c, platform, NULL, err);
	if (rc != VG_OK)
		goto out;
	if (random_hex(session, 32) != VG_OK ||
	    random_hex(brain, 32) != VG_OK ||
	    random_hex(app_pw, 24) != VG_OK ||
	    random_hex(db_pw, 24) != VG_OK ||
	    random_hex(redis_pw, 24) != VG_OK) {
		rc = vg_err_set(err, VG_INTERNAL,
				"no random bytes for the generated secrets "
				"(RAND_bytes failed)");
		goto out;
	}
	out = json_array();
	if (!out)
		pctx_nomem(&c);
	pctx_add(&c, out,
		 secret_new(&c, c.n_session, "vigil", "platform",
			    json_pack("{s:o}", "key", b64_new(session))));
	if (c.db.managed)
		pctx_add(&c, out,
			 secret_new(&c, c.n_db_secret, "postgres", "postgres",
				    json_pack("{s:o, s:o}", "username",
					      b64_new(MANAGED_DB_USER),
					      "password", b64_new(db_pw))));
	if (c.redis.managed)
		pctx_add(&c, out,
			 secret_new(&c, c.n_redis_secret, "redis", "redis",
				    json_pack("{s:o}", "password",
					      b64_new(redis_pw))));
	/* the services' own login, vigil_app: row-level security applies
	 * to it (the database owner's login would bypass it); the operator
	 * sets this password on the role */
	pctx_add(&c, out,
		 secret_new(&c, c.n_db_app, "postgres", "postgres",
			    json_pack("{s:o, s:o}", "username",
				      b64_new(PLATFORM_APP_DB_USER), "password",
				      b64_new(app_pw))));
	/* the brain's API: gateway and worker present it, the brain checks */
	pctx_add(&c, out,
		 secret_new(&c, c.n_brain_token, "vigil", "platform",
			    json_pack("{s:o}", "token", b64_new(brain))));
	rc = c.rc;
out:
	OPENSSL_cleanse(session, sizeof(session));
	OPENSSL_cleanse(brain, sizeof(brain));
	OPENSSL_cleanse(app_pw, sizeof(app_pw));
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
	pctx_add(c, refs,
		 json_pack("{s:s, s:s, s:o}", "name", name, "field", field,
			   "keys", keys));
}

int platform_required_secrets(const json_t *platform, json_t **refs,
			      struct vg_err *err)
{
	struct pctx c;
	json_t *out = NULL;
	int rc;

	*refs = NULL;
	rc = pctx_read(&c, platform, NULL, err);
	if (rc != VG_OK)
		goto out;
	out = json_array();
	if (!out)
		pctx_nomem(&c);
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
