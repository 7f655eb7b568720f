/*
 * platform_workloads.c - what gateway, brain and worker run as: the
 * ConfigMap they read (and the hash of it their pod templates carry),
 * their Deployments, ServiceAccounts, HorizontalPodAutoscalers,
 * PodDisruptionBudgets and the gateway's Service; and the hand-over of
 * the replica count to an autoscaler.
 */
#include "platform_int.h"

#include "vigil/json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const service_types[] = {"ClusterIP", "NodePort",
					    "LoadBalancer", NULL};

/* ------------------------------------------------------------------ */
/* ConfigMap: the configuration contract of gateway, brain and worker   */
/* ------------------------------------------------------------------ */

/* host:port, with brackets around an IPv6 address. */
static void host_port(char *out, size_t size, const char *host, long long port)
{
	int v6 = strchr(host, ':') != NULL;

	snprintf(out, size, "%s%s%s:%lld", v6 ? "[" : "", host, v6 ? "]" : "",
		 port);
}

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
json_t *configmap_new(struct pctx *c)
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
		pctx_nomem(c);
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
		pctx_fail(
			c, VG_INVAL,
			"spec.%s.extraEnv[%zu].name must be a non-empty string",
			comp, i);
		return NULL;
	}
	if ((value && !json_is_string(value)) ||
	    (from && !json_is_object(from))) {
		pctx_fail(c, VG_INVAL,
			  "spec.%s.extraEnv[%zu] (%s): value must be a string "
			  "and "
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
		pctx_fail(
			c, VG_INVAL,
			"spec.%s.extraEnv[%zu] (%s): valueFrom needs exactly "
			"one "
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
	const json_t *extra =
		pctx_get_container(c, 1, "spec.%s.extraEnv", comp);
	json_t *item, *have;
	size_t i, j;

	json_array_foreach((json_t *)extra, i, item) {
		json_t *e = extra_env_new(c, comp, i, item);
		const char *name;
		int replaced = 0;

		if (!e) {
			if (c->rc == VG_OK)
				pctx_nomem(c);
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
			pctx_append(c, env, e);
	}
}

static json_t *component_env_new(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];
	const struct redis *r = &c->redis;
	json_t *env = json_array();

	pctx_append(c, env, env_value_new("VIGIL_COMPONENT", d->name));
	pctx_append(
		c, env,
		env_value_new("VIGIL_CONFIG_FILE", CONFIG_DIR "/" CONFIG_KEY));
	pctx_append(c, env, env_field_new("POD_NAME", "metadata.name"));
	pctx_append(c, env,
		    env_field_new("POD_NAMESPACE", "metadata.namespace"));
	if (i == GATEWAY) {
		/* the gateway migrates the schema as the database's owner and
		 * serves requests as vigil_app */
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_USER", c->db.secret,
					   c->db.user_key));
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_PASSWORD", c->db.secret,
					   c->db.pass_key));
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_APP_USER", c->n_db_app,
					   "username"));
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_APP_PASSWORD",
					   c->n_db_app, "password"));
	} else {
		/* worker and brain only ever work as vigil_app */
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_USER", c->n_db_app,
					   "username"));
		pctx_append(c, env,
			    env_secret_new("VIGIL_DB_PASSWORD", c->n_db_app,
					   "password"));
	}
	if (d->redis && r->secret) {
		if (r->user_key)
			pctx_append(c, env,
				    env_secret_new("VIGIL_REDIS_USER",
						   r->secret, r->user_key));
		pctx_append(c, env,
			    env_secret_new("VIGIL_REDIS_PASSWORD", r->secret,
					   r->pass_key));
	}
	if (d->session_key)
		pctx_append(c, env,
			    env_secret_new("VIGIL_SESSION_KEY", c->n_session,
					   "key"));
	pctx_append(c, env,
		    env_secret_new("VIGIL_BRAIN_TOKEN", c->n_brain_token,
				   "token"));
	if (i == GATEWAY && c->gw_tls_secret) {
		pctx_append(c, env,
			    env_value_new("VIGIL_TLS_CERT_FILE",
					  TLS_DIR "/tls.crt"));
		pctx_append(c, env,
			    env_value_new("VIGIL_TLS_KEY_FILE",
					  TLS_DIR "/tls.key"));
	}
	merge_extra_env(c, env, d->name);
	return env;
}

/* Volumes and their mounts: configuration file, /tmp, certificates. */
static void component_volumes(struct pctx *c, int i, json_t *volumes,
			      json_t *mounts)
{
	const struct component_def *d = &platform_components[i];

	pctx_append(c, mounts, mount_new("config", CONFIG_DIR, 1));
	pctx_append(c, volumes,
		    json_pack("{s:s, s:{s:s, s:[{s:s, s:s}]}}", "name",
			      "config", "configMap", "name", c->n_config,
			      "items", "key", CONFIG_KEY, "path", CONFIG_KEY));
	pctx_append(c, mounts, mount_new("tmp", "/tmp", 0));
	pctx_append(c, volumes, empty_dir_new("tmp", NULL, "64Mi"));
	if (i == GATEWAY && c->gw_tls_secret) {
		pctx_append(c, mounts, mount_new("tls", TLS_DIR, 1));
		pctx_append(c, volumes,
			    secret_volume_new("tls", c->gw_tls_secret));
	}
	if (c->db.ca_secret) {
		pctx_append(c, mounts, mount_new("db-ca", DB_CA_DIR, 1));
		pctx_append(c, volumes,
			    secret_volume_new("db-ca", c->db.ca_secret));
	}
	if (d->redis && c->redis.ca_secret) {
		pctx_append(c, mounts, mount_new("redis-ca", REDIS_CA_DIR, 1));
		pctx_append(c, volumes,
			    secret_volume_new("redis-ca", c->redis.ca_secret));
	}
}

json_t *component_deployment_new(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];
	const struct comp *cm = &c->comp[i];
	json_t *sel = selector_new(c, d->app, d->name);
	json_t *ports = json_array(), *volumes = json_array();
	json_t *mounts = json_array(), *container, *pod, *spec, *strategy;
	char path[PATH_LEN];
	int blue_green = strcmp(cm->strategy, "BlueGreen") == 0;

	if (cm->port)
		pctx_append(c, ports, container_port_new(cm->scheme, cm->port));
	pctx_append(c, ports,
		    container_port_new("metrics", PLATFORM_HEALTH_PORT));
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
	pctx_fmt(c, path, sizeof(path), "spec.%s.nodeSelector", d->name);
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
		pctx_get_string_map(c, path), "priorityClassName",
		pctx_get_str(c, NULL, "spec.%s.priorityClassName", d->name));
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

json_t *service_account_new(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];
	json_t *sa = object_new(c, "v1", "ServiceAccount", c->comp[i].name,
				labels_new(c, d->app, d->name));

	if (sa && json_object_set_new(sa, "automountServiceAccountToken",
				      json_false())) {
		json_decref(sa);
		sa = NULL;
	}
	return sa;
}

json_t *hpa_new(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];
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
json_t *pdb_new(struct pctx *c, int i)
{
	const struct component_def *d = &platform_components[i];

	return object_with(c, "policy/v1", "PodDisruptionBudget",
			   c->comp[i].name, labels_new(c, d->app, d->name),
			   "spec",
			   json_pack("{s:i, s:{s:o}}", "maxUnavailable", 1,
				     "selector", "matchLabels",
				     selector_new(c, d->app, d->name)));
}

json_t *gateway_service_new(struct pctx *c)
{
	const struct comp *cm = &c->comp[GATEWAY];
	const char *type = pctx_get_enum(c, service_types, "ClusterIP",
					 "spec.gateway.service.type");
	json_t *svc = service_new(c, cm->name, platform_components[GATEWAY].app,
				  "gateway", type, 0, cm->scheme, cm->port);
	json_t *ann =
		pctx_get_string_map(c, "spec.gateway.service.annotations");
	const json_t *ranges = pctx_get_container(
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
			pctx_fail(c, VG_INVAL,
				  "spec.gateway.service."
				  "loadBalancerSourceRanges[%zu]"
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
/* Replica count handed over to an autoscaler                           */
/* ------------------------------------------------------------------ */

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
