/*
 * test_platform.c - the Platform's desired children, generated Secrets,
 * required Secrets and status, computed without a cluster. The replica
 * handover is exercised against the real API server in e2e/test_operator.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vigil/json.h"
#include "vigil/kube.h"
#include "vigil/yaml.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

	if (!v)
		fail_msg("bad test JSON: %s: %s", je.text, text);
	return v;
}

/* The smallest Platform the schema accepts: both backends managed. */
static json_t *platform_new(void)
{
	return parse("{\"apiVersion\": \"vigil.dev/v1alpha1\","
		     " \"kind\": \"Platform\","
		     " \"metadata\": {\"name\": \"acme\", \"namespace\": \"sec\","
		     "  \"generation\": 4, \"uid\": \"u-1\"},"
		     " \"spec\": {\"version\": \"1.2.3\","
		     "  \"database\": {\"managed\": {}},"
		     "  \"redis\": {\"managed\": {}}}}");
}

static void set(json_t *obj, const char *path, const char *json)
{
	if (vg_json_set_new(obj, path, parse(json)) != VG_OK)
		fail_msg("cannot set %s", path);
}

static json_t *desired(const json_t *p)
{
	struct vg_err err;
	json_t *children = NULL;

	vg_err_clear(&err);
	if (platform_desired(p, NULL, &children, &err) != VG_OK)
		fail_msg("platform_desired: %s", err.msg);
	assert_true(json_is_array(children));
	return children;
}

/* The child of `kind` named `name` (borrowed), or NULL. */
static json_t *find(const json_t *children, const char *kind, const char *name)
{
	json_t *ch;
	size_t i;

	json_array_foreach((json_t *)children, i, ch) {
		if (strcmp(vg_json_get_str(ch, "kind", ""), kind) == 0 &&
		    strcmp(vg_json_get_str(ch, "metadata.name", ""), name) == 0)
			return ch;
	}
	return NULL;
}

static json_t *must(const json_t *children, const char *kind,
		    const char *name)
{
	json_t *ch = find(children, kind, name);

	if (!ch)
		fail_msg("no %s %s among the children", kind, name);
	return ch;
}

static size_t count_kind(const json_t *children, const char *kind)
{
	size_t i, n = 0;
	json_t *ch;

	json_array_foreach((json_t *)children, i, ch)
		n += strcmp(vg_json_get_str(ch, "kind", ""), kind) == 0;
	return n;
}

static void str_at(const json_t *obj, const char *path, const char *want)
{
	const char *got = vg_json_get_str(obj, path, NULL);

	if (!got || strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", path,
			 got ? got : "(absent)", want);
}

static void int_at(const json_t *obj, const char *path, long long want)
{
	json_t *v = vg_json_get(obj, path);

	if (!json_is_integer(v) || json_integer_value(v) != want)
		fail_msg("%s: got %lld (%s), want %lld", path,
			 json_is_integer(v) ? (long long)json_integer_value(v)
					    : -1LL,
			 v ? "present" : "absent", want);
}

static void absent_at(const json_t *obj, const char *path)
{
	if (vg_json_get(obj, path))
		fail_msg("%s is present, want absent", path);
}

/* The env entry `name` of the first container of a workload. */
static json_t *env_of(const json_t *workload, const char *name)
{
	json_t *env = vg_json_get_array(
		workload, "spec.template.spec.containers[0].env");
	json_t *e;
	size_t i;

	json_array_foreach(env, i, e)
		if (strcmp(vg_json_get_str(e, "name", ""), name) == 0)
			return e;
	return NULL;
}

static void expect_invalid(json_t *p, const char *needle)
{
	struct vg_err err;
	json_t *children = (json_t *)0x1;

	vg_err_clear(&err);
	assert_int_equal(platform_desired(p, NULL, &children, &err), VG_INVAL);
	assert_null(children);
	assert_int_equal(err.code, VG_INVAL);
	if (!strstr(err.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg,
			 needle);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Defaults                                                             */
/* ------------------------------------------------------------------ */

struct table_row {
	const char *kind, *name;
	long long min, max;
	const char *cpu_req, *cpu_lim, *mem_req, *mem_lim;
};

/* DESIGN.md's deployment sheet, in the API server's canonical form. */
static const struct table_row sheet[] = {
	{"Deployment", "acme-gateway", 3, 20, "100m", "500m", "256Mi", "1Gi"},
	{"Deployment", "acme-brain", 2, 10, "250m", "1", "512Mi", "2Gi"},
	{"Deployment", "acme-worker", 3, 20, "250m", "1", "512Mi", "2Gi"},
	{"StatefulSet", "acme-postgres", 1, 1, "250m", "1", "512Mi", "2Gi"},
	{"Deployment", "acme-redis", 1, 1, "100m", "500m", "256Mi", "512Mi"},
};

static void test_defaults_follow_the_deployment_sheet(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p);

	for (size_t i = 0; i < sizeof(sheet) / sizeof(sheet[0]); i++) {
		const struct table_row *r = &sheet[i];
		json_t *w = must(ch, r->kind, r->name);
		json_t *res = vg_json_get(
			w, "spec.template.spec.containers[0].resources");

		str_at(res, "requests.cpu", r->cpu_req);
		str_at(res, "limits.cpu", r->cpu_lim);
		str_at(res, "requests.memory", r->mem_req);
		str_at(res, "limits.memory", r->mem_lim);
		if (r->min == r->max) {
			int_at(w, "spec.replicas", r->min);
			assert_null(find(ch, "HorizontalPodAutoscaler",
					 r->name));
			continue;
		}
		json_t *hpa = must(ch, "HorizontalPodAutoscaler", r->name);

		str_at(hpa, "apiVersion", "autoscaling/v2");
		int_at(hpa, "spec.minReplicas", r->min);
		int_at(hpa, "spec.maxReplicas", r->max);
		str_at(hpa, "spec.scaleTargetRef.kind", "Deployment");
		str_at(hpa, "spec.scaleTargetRef.name", r->name);
		str_at(hpa, "spec.metrics[0].resource.name", "cpu");
		str_at(hpa, "spec.metrics[0].resource.target.type",
		       "Utilization");
		int_at(hpa, "spec.metrics[0].resource.target.averageUtilization",
		       70);
		str_at(hpa, "spec.metrics[1].resource.name", "memory");
		int_at(hpa, "spec.metrics[1].resource.target.averageUtilization",
		       80);
	}
	str_at(must(ch, "Deployment", "acme-gateway"),
	       "spec.template.spec.containers[0].image",
	       "ghcr.io/vigil-dev/vigil-gateway:1.2.3");
	str_at(must(ch, "Deployment", "acme-worker"),
	       "spec.template.spec.containers[0].imagePullPolicy",
	       "IfNotPresent");
	str_at(must(ch, "StatefulSet", "acme-postgres"),
	       "spec.template.spec.containers[0].image", "postgres:16");
	str_at(must(ch, "StatefulSet", "acme-postgres"),
	       "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
	       "20Gi");
	absent_at(must(ch, "StatefulSet", "acme-postgres"),
		  "spec.volumeClaimTemplates[0].spec.storageClassName");
	str_at(must(ch, "Deployment", "acme-redis"),
	       "spec.template.spec.containers[0].image",
	       PLATFORM_DEFAULT_REDIS_IMAGE);
	str_at(must(ch, "PersistentVolumeClaim", "acme-redis-data"),
	       "spec.resources.requests.storage", "8Gi");
	int_at(must(ch, "Service", "acme-gateway"), "spec.ports[0].port", 8080);
	int_at(must(ch, "Service", "acme-brain"), "spec.ports[0].port", 8081);
	assert_null(find(ch, "Service", "acme-worker"));
	json_decref(ch);
	json_decref(p);
}

/* Apply the schema's defaults to `obj` as the API server does:
 * absent properties with a default get it, then recurse. */
static void apply_schema_defaults(json_t *obj, const json_t *schema)
{
	json_t *props = json_object_get(schema, "properties"), *sub, *items;
	const char *key;
	size_t i;

	if (json_is_object(obj)) {
		json_object_foreach(props, key, sub) {
			json_t *def = json_object_get(sub, "default");

			if (def && !json_object_get(obj, key))
				json_object_set_new(obj, key,
						    json_deep_copy(def));
			if (json_object_get(obj, key))
				apply_schema_defaults(json_object_get(obj, key),
						      sub);
		}
	}
	items = json_object_get(schema, "items");
	if (json_is_array(obj) && items)
		json_array_foreach(obj, i, sub)
			apply_schema_defaults(sub, items);
}

static json_t *crd_schema(void)
{
	/* __FILE__ is operator/test/test_platform.c from the top of the tree */
	char path[512];
	const char *f = __FILE__, *cut = strstr(f, "operator/test/");
	struct vg_err err;
	json_t *crd = NULL, *schema;

	snprintf(path, sizeof(path), "%.*scrds/vigil.dev_platforms.yaml",
		 (int)(cut ? cut - f : 0), f);
	if (vg_yaml_load_file(path, &crd, &err) != VG_OK)
		return NULL;
	schema = vg_json_get(crd, "spec.versions[0].schema.openAPIV3Schema");
	json_incref(schema);
	json_decref(crd);
	return schema;
}

/* The C defaults are the CRD's: a Platform as the API server returns it
 * (schema defaults filled in) gives the very same children. */
static void test_c_defaults_equal_schema_defaults(void **state)
{
	(void)state;
	json_t *schema = crd_schema();
	const char *ext[] = {
		NULL,
		"{\"external\": {\"host\": \"db.example.com\","
		" \"credentialsSecret\": {\"name\": \"dbc\"},"
		" \"caSecret\": {\"name\": \"dbca\"}}}",
	};
	const char *rext[] = {
		NULL,
		"{\"external\": {\"host\": \"10.0.0.7\","
		" \"credentialsSecret\": {\"name\": \"rc\"},"
		" \"tls\": {\"caSecret\": {\"name\": \"rca\"}}}}",
	};

	if (!schema)
		fail_msg("crds/vigil.dev_platforms.yaml not readable from the "
			 "top of the tree");
	for (int k = 0; k < 2; k++) {
		json_t *bare = platform_new(), *defaulted, *a, *b;

		if (ext[k]) {
			set(bare, "spec.database", ext[k]);
			set(bare, "spec.redis", rext[k]);
		}
		defaulted = json_deep_copy(bare);
		apply_schema_defaults(defaulted, schema);
		/* the schema did fill something in */
		assert_non_null(vg_json_get(defaulted, "spec.gateway.replicas.min"));
		a = desired(bare);
		b = desired(defaulted);
		if (!vg_json_equal(a, b)) {
			char *da = json_dumps(a, JSON_SORT_KEYS);
			char *db = json_dumps(b, JSON_SORT_KEYS);
			size_t n = 0;

			while (da[n] && da[n] == db[n])
				n++;
			fail_msg("children differ at byte %zu: ...%.120s vs "
				 "...%.120s",
				 n, da + (n > 40 ? n - 40 : 0),
				 db + (n > 40 ? n - 40 : 0));
		}
		json_decref(a);
		json_decref(b);
		json_decref(bare);
		json_decref(defaulted);
	}
	json_decref(schema);
}

/* ------------------------------------------------------------------ */
/* Replicas and autoscaling                                             */
/* ------------------------------------------------------------------ */

static void test_hpa_managed_deployments_carry_no_replicas(void **state)
{
	(void)state;
	static const char *const names[] = {"acme-gateway", "acme-brain",
					    "acme-worker"};
	json_t *p = platform_new(), *ch = desired(p);

	for (int i = 0; i < 3; i++) {
		json_t *d = must(ch, "Deployment", names[i]);

		assert_non_null(must(ch, "HorizontalPodAutoscaler", names[i]));
		if (json_object_get(json_object_get(d, "spec"), "replicas"))
			fail_msg("%s: spec.replicas present although an HPA "
				 "manages it",
				 names[i]);
	}
	json_decref(ch);

	/* min == max: a fixed count, no autoscaler */
	set(p, "spec.gateway.replicas", "{\"min\": 2, \"max\": 2}");
	ch = desired(p);
	int_at(must(ch, "Deployment", "acme-gateway"), "spec.replicas", 2);
	assert_null(find(ch, "HorizontalPodAutoscaler", "acme-gateway"));
	assert_non_null(find(ch, "HorizontalPodAutoscaler", "acme-brain"));
	assert_int_equal(count_kind(ch, "HorizontalPodAutoscaler"), 2);
	json_decref(ch);

	set(p, "spec.worker.replicas", "{\"min\": 5, \"max\": 50}");
	set(p, "spec.worker.autoscaling", "{\"targetCPUUtilization\": 55}");
	ch = desired(p);
	int_at(must(ch, "HorizontalPodAutoscaler", "acme-worker"),
	       "spec.minReplicas", 5);
	int_at(must(ch, "HorizontalPodAutoscaler", "acme-worker"),
	       "spec.maxReplicas", 50);
	int_at(must(ch, "HorizontalPodAutoscaler", "acme-worker"),
	       "spec.metrics[0].resource.target.averageUtilization", 55);
	int_at(must(ch, "HorizontalPodAutoscaler", "acme-worker"),
	       "spec.metrics[1].resource.target.averageUtilization", 80);
	json_decref(ch);
	json_decref(p);
}

/* Fixed count -> autoscaler: the current count is handed over first. */
static void test_replicas_handover(void **state)
{
	(void)state;
	json_t *p = platform_new(), *fixed, *scaled, *live, *hpa, *body;

	set(p, "spec.brain.replicas", "{\"min\": 6, \"max\": 6}");
	fixed = desired(p);
	set(p, "spec.brain.replicas", "{\"min\": 2, \"max\": 10}");
	scaled = desired(p);
	live = json_deep_copy(must(fixed, "Deployment", "acme-brain"));
	hpa = json_deep_copy(must(scaled, "HorizontalPodAutoscaler",
				  "acme-brain"));
	body = platform_replicas_handover(
		must(scaled, "Deployment", "acme-brain"), live, NULL);
	assert_non_null(body);
	str_at(body, "apiVersion", "apps/v1");
	str_at(body, "kind", "Deployment");
	str_at(body, "metadata.name", "acme-brain");
	str_at(body, "metadata.namespace", "sec");
	int_at(body, "spec.replicas", 6);
	absent_at(body, "spec.template");
	json_decref(body);
	/* the HPA exists: it owns the count, nothing to hand over */
	assert_null(platform_replicas_handover(
		must(scaled, "Deployment", "acme-brain"), live, hpa));
	/* a fixed count in the intent, or nothing live yet */
	assert_null(platform_replicas_handover(
		must(fixed, "Deployment", "acme-brain"), live, NULL));
	assert_null(platform_replicas_handover(
		must(scaled, "Deployment", "acme-brain"), NULL, NULL));
	json_decref(hpa);
	json_decref(live);
	json_decref(fixed);
	json_decref(scaled);
	json_decref(p);
}

static void test_pdbs(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *pdb;

	assert_int_equal(count_kind(ch, "PodDisruptionBudget"), 3);
	pdb = must(ch, "PodDisruptionBudget", "acme-brain");
	str_at(pdb, "apiVersion", "policy/v1");
	int_at(pdb, "spec.maxUnavailable", 1);
	absent_at(pdb, "spec.minAvailable");
	assert_true(vg_json_is_subset(
		vg_json_get(pdb, "spec.selector.matchLabels"),
		vg_json_get(must(ch, "Deployment", "acme-brain"),
			    "spec.template.metadata.labels")));
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Pod security                                                         */
/* ------------------------------------------------------------------ */

static void check_restricted(const json_t *w, long long uid)
{
	const char *name = vg_json_get_str(w, "metadata.name", "?");
	json_t *pod = vg_json_get(w, "spec.template.spec");
	json_t *containers = vg_json_get_array(pod, "containers"), *c;
	size_t i;

	if (!json_is_false(json_object_get(pod,
					   "automountServiceAccountToken")))
		fail_msg("%s: automountServiceAccountToken is not false", name);
	assert_true(json_is_true(vg_json_get(pod,
					     "securityContext.runAsNonRoot")));
	str_at(pod, "securityContext.seccompProfile.type", "RuntimeDefault");
	int_at(pod, "securityContext.fsGroup", uid);
	assert_null(vg_json_get(pod, "initContainers"));
	assert_true(json_array_size(containers) >= 1);
	json_array_foreach(containers, i, c) {
		json_t *sc = json_object_get(c, "securityContext");
		json_t *drop = vg_json_get(sc, "capabilities.drop");

		if (!json_is_false(json_object_get(sc,
						   "allowPrivilegeEscalation")))
			fail_msg("%s/%zu: allowPrivilegeEscalation", name, i);
		if (!json_is_true(json_object_get(sc,
						  "readOnlyRootFilesystem")))
			fail_msg("%s/%zu: readOnlyRootFilesystem", name, i);
		if (!json_is_true(json_object_get(sc, "runAsNonRoot")))
			fail_msg("%s/%zu: runAsNonRoot", name, i);
		int_at(sc, "runAsUser", uid);
		str_at(sc, "seccompProfile.type", "RuntimeDefault");
		if (json_array_size(drop) != 1 ||
		    strcmp(json_string_value(json_array_get(drop, 0)), "ALL"))
			fail_msg("%s/%zu: capabilities.drop is not [ALL]",
				 name, i);
		absent_at(sc, "capabilities.add");
		absent_at(sc, "privileged");
	}
}

static void test_every_pod_is_restricted(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *w;
	size_t i, n = 0;

	json_array_foreach(ch, i, w) {
		const char *kind = vg_json_get_str(w, "kind", "");
		const char *name = vg_json_get_str(w, "metadata.name", "");

		if (strcmp(kind, "Deployment") && strcmp(kind, "StatefulSet"))
			continue;
		n++;
		check_restricted(w, strcmp(name, "acme-postgres") == 0 ||
						    strcmp(name, "acme-redis") == 0
					    ? 999
					    : 65532);
	}
	assert_int_equal(n, 5);
	json_decref(ch);
	json_decref(p);
}

static void test_component_pods(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *gw, *wk, *e;

	gw = must(ch, "Deployment", "acme-gateway");
	wk = must(ch, "Deployment", "acme-worker");
	str_at(gw, "spec.template.spec.serviceAccountName", "acme-gateway");
	str_at(wk, "spec.template.spec.serviceAccountName", "acme-worker");
	str_at(gw, "spec.template.spec.containers[0].livenessProbe.httpGet.path",
	       "/healthz");
	str_at(gw,
	       "spec.template.spec.containers[0].readinessProbe.httpGet.path",
	       "/readyz");
	str_at(gw, "spec.template.spec.containers[0].startupProbe.httpGet.port",
	       "metrics");
	str_at(gw, "spec.template.spec.containers[0].ports[0].name", "http");
	int_at(gw, "spec.template.spec.containers[0].ports[0].containerPort",
	       8080);
	str_at(gw, "spec.template.spec.containers[0].ports[0].protocol", "TCP");
	int_at(gw, "spec.template.spec.containers[0].ports[1].containerPort",
	       PLATFORM_HEALTH_PORT);
	/* the worker has no API port, only health/metrics */
	str_at(wk, "spec.template.spec.containers[0].ports[0].name", "metrics");
	absent_at(wk, "spec.template.spec.containers[0].ports[1]");
	str_at(gw, "spec.template.spec.containers[0].envFrom[0].configMapRef.name",
	       "acme-config");
	str_at(gw, "spec.template.spec.volumes[0].configMap.name",
	       "acme-config");
	str_at(gw, "spec.template.spec.volumes[1].name", "tmp");
	str_at(gw, "spec.template.spec.volumes[1].emptyDir.sizeLimit", "64Mi");
	str_at(gw, "spec.template.spec.containers[0].volumeMounts[1].mountPath",
	       "/tmp");
	absent_at(gw, "spec.template.spec.containers[0].volumeMounts[1].readOnly");
	str_at(gw, "spec.strategy.type", "RollingUpdate");
	int_at(gw, "spec.strategy.rollingUpdate.maxUnavailable", 0);
	str_at(gw, "spec.strategy.rollingUpdate.maxSurge", "25%");
	assert_true(vg_json_is_subset(
		vg_json_get(gw, "spec.selector.matchLabels"),
		vg_json_get(gw, "spec.template.metadata.labels")));
	e = env_of(gw, "VIGIL_SESSION_KEY");
	str_at(e, "valueFrom.secretKeyRef.name", "acme-session-key");
	assert_null(env_of(must(ch, "Deployment", "acme-brain"),
			   "VIGIL_SESSION_KEY"));
	/* the brain takes its work from Redis too */
	str_at(env_of(must(ch, "Deployment", "acme-brain"),
		      "VIGIL_REDIS_PASSWORD"),
	       "valueFrom.secretKeyRef.name", "acme-redis-credentials");
	/* the brain's API token for the three of them */
	str_at(env_of(must(ch, "Deployment", "acme-brain"), "VIGIL_BRAIN_TOKEN"),
	       "valueFrom.secretKeyRef.name", "acme-brain-token");
	str_at(env_of(gw, "VIGIL_BRAIN_TOKEN"), "valueFrom.secretKeyRef.key",
	       "token");
	assert_non_null(env_of(wk, "VIGIL_BRAIN_TOKEN"));
	/* the gateway migrates as the owner and serves as vigil_app; the
	 * worker and the brain never hold the owner's login */
	str_at(env_of(gw, "VIGIL_DB_APP_PASSWORD"), "valueFrom.secretKeyRef.name",
	       "acme-db-app");
	str_at(env_of(wk, "VIGIL_DB_USER"), "valueFrom.secretKeyRef.name",
	       "acme-db-app");
	str_at(env_of(must(ch, "Deployment", "acme-brain"), "VIGIL_DB_PASSWORD"),
	       "valueFrom.secretKeyRef.name", "acme-db-app");
	assert_null(env_of(wk, "VIGIL_DB_APP_PASSWORD"));
	str_at(env_of(wk, "VIGIL_REDIS_PASSWORD"), "valueFrom.secretKeyRef.name",
	       "acme-redis-credentials");
	str_at(env_of(wk, "VIGIL_COMPONENT"), "value", "worker");
	str_at(env_of(wk, "POD_NAMESPACE"), "valueFrom.fieldRef.fieldPath",
	       "metadata.namespace");
	assert_int_equal(count_kind(ch, "ServiceAccount"), 3);
	assert_true(json_is_false(vg_json_get(
		must(ch, "ServiceAccount", "acme-brain"),
		"automountServiceAccountToken")));
	json_decref(ch);

	/* rollout strategy: BlueGreen surges a whole second set for now */
	set(p, "spec.brain.rolloutStrategy", "\"BlueGreen\"");
	set(p, "spec.serviceAccountName", "\"vigil-runner\"");
	ch = desired(p);
	str_at(must(ch, "Deployment", "acme-brain"),
	       "spec.strategy.rollingUpdate.maxSurge", "100%");
	int_at(must(ch, "Deployment", "acme-brain"),
	       "spec.strategy.rollingUpdate.maxUnavailable", 0);
	str_at(must(ch, "Deployment", "acme-gateway"),
	       "spec.strategy.rollingUpdate.maxSurge", "25%");
	assert_int_equal(count_kind(ch, "ServiceAccount"), 0);
	str_at(must(ch, "Deployment", "acme-worker"),
	       "spec.template.spec.serviceAccountName", "vigil-runner");
	json_decref(ch);
	json_decref(p);
}

static void test_images(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch;
	const char *digest = "sha256:"
			     "0123456789abcdef0123456789abcdef"
			     "0123456789abcdef0123456789abcdef";
	char want[256], body[256];

	set(p, "spec.imageRegistry", "\"registry.example.com:5000/sec\"");
	set(p, "spec.brain.image", "{\"tag\": \"1.2.3-hotfix\"}");
	snprintf(body, sizeof(body),
		 "{\"repository\": \"mirror.example.com/w\", \"tag\": \"x\","
		 " \"digest\": \"%s\", \"pullPolicy\": \"Always\"}",
		 digest);
	set(p, "spec.worker.image", body);
	set(p, "spec.database.managed", "{\"version\": \"17\"}");
	set(p, "spec.redis.managed", "{\"image\": \"mirror/redis:7\"}");
	set(p, "spec.imagePullSecrets", "[{\"name\": \"pull\"}]");
	ch = desired(p);
	str_at(must(ch, "Deployment", "acme-gateway"),
	       "spec.template.spec.containers[0].image",
	       "registry.example.com:5000/sec/vigil-gateway:1.2.3");
	str_at(must(ch, "Deployment", "acme-brain"),
	       "spec.template.spec.containers[0].image",
	       "registry.example.com:5000/sec/vigil-brain:1.2.3-hotfix");
	snprintf(want, sizeof(want), "mirror.example.com/w@%s", digest);
	str_at(must(ch, "Deployment", "acme-worker"),
	       "spec.template.spec.containers[0].image", want);
	str_at(must(ch, "Deployment", "acme-worker"),
	       "spec.template.spec.containers[0].imagePullPolicy", "Always");
	str_at(must(ch, "StatefulSet", "acme-postgres"),
	       "spec.template.spec.containers[0].image", "postgres:17");
	str_at(must(ch, "Deployment", "acme-redis"),
	       "spec.template.spec.containers[0].image", "mirror/redis:7");
	str_at(must(ch, "Deployment", "acme-redis"),
	       "spec.template.spec.imagePullSecrets[0].name", "pull");
	str_at(must(ch, "Deployment", "acme-gateway"),
	       "spec.template.spec.imagePullSecrets[0].name", "pull");
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Managed and external backends                                        */
/* ------------------------------------------------------------------ */

static void test_managed_backends(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *sts, *svc, *redis;

	sts = must(ch, "StatefulSet", "acme-postgres");
	str_at(sts, "spec.serviceName", "acme-postgres");
	int_at(sts, "spec.replicas", 1);
	str_at(sts,
	       "spec.template.spec.containers[0].readinessProbe.exec.command[0]",
	       "pg_isready");
	str_at(env_of(sts, "POSTGRES_PASSWORD"), "valueFrom.secretKeyRef.name",
	       "acme-db-credentials");
	str_at(env_of(sts, "POSTGRES_PASSWORD"), "valueFrom.secretKeyRef.key",
	       "password");
	str_at(env_of(sts, "PGDATA"), "value",
	       "/var/lib/postgresql/data/pgdata");
	svc = must(ch, "Service", "acme-postgres");
	str_at(svc, "spec.clusterIP", "None");
	str_at(svc, "spec.ports[0].name", "postgres");
	int_at(svc, "spec.ports[0].port", 5432);

	redis = must(ch, "Deployment", "acme-redis");
	int_at(redis, "spec.replicas", 1);
	str_at(redis, "spec.strategy.type", "Recreate");
	absent_at(redis, "spec.strategy.rollingUpdate");
	str_at(redis, "spec.template.spec.containers[0].args[2]",
	       "--appendonly");
	str_at(redis, "spec.template.spec.containers[0].args[3]", "yes");
	str_at(redis, "spec.template.spec.containers[0].args[1]",
	       "$(REDIS_PASSWORD)");
	str_at(env_of(redis, "REDIS_PASSWORD"), "valueFrom.secretKeyRef.name",
	       "acme-redis-credentials");
	str_at(redis,
	       "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
	       "acme-redis-data");
	int_at(must(ch, "Service", "acme-redis"), "spec.ports[0].port", 6379);

	str_at(must(ch, "ConfigMap", "acme-config"), "data.VIGIL_DB_HOST",
	       "acme-postgres.sec.svc");
	str_at(must(ch, "ConfigMap", "acme-config"), "data.VIGIL_REDIS_ADDR",
	       "acme-redis.sec.svc:6379");
	str_at(must(ch, "ConfigMap", "acme-config"), "data.VIGIL_DB_SSLMODE",
	       "disable");
	json_decref(ch);

	/* persistence off: no claim, an emptyDir as big as the volume */
	set(p, "spec.redis.managed",
	    "{\"persistence\": false, \"storage\": \"2Gi\","
	    " \"storageClassName\": \"fast\"}");
	set(p, "spec.database.managed",
	    "{\"storage\": \"51200Mi\", \"storageClassName\": \"ssd\"}");
	ch = desired(p);
	assert_null(find(ch, "PersistentVolumeClaim", "acme-redis-data"));
	redis = must(ch, "Deployment", "acme-redis");
	str_at(redis, "spec.template.spec.volumes[0].emptyDir.sizeLimit",
	       "2Gi");
	str_at(redis, "spec.template.spec.containers[0].args[3]", "no");
	sts = must(ch, "StatefulSet", "acme-postgres");
	str_at(sts,
	       "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
	       "50Gi");
	str_at(sts, "spec.volumeClaimTemplates[0].spec.storageClassName",
	       "ssd");
	json_decref(ch);
	json_decref(p);
}

static void test_external_backends(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch, *cm, *gw, *brain;
	struct vg_err err;
	json_t *secrets = NULL, *refs = NULL;

	set(p, "spec.database",
	    "{\"external\": {\"host\": \"pg.example.com\", \"port\": 6432,"
	    " \"database\": \"scans\", \"sslMode\": \"verify-full\","
	    " \"credentialsSecret\": {\"name\": \"pg-login\","
	    "  \"usernameKey\": \"user\"},"
	    " \"caSecret\": {\"name\": \"pg-ca\", \"key\": \"root.pem\"}}}");
	set(p, "spec.redis",
	    "{\"external\": {\"host\": \"fd00::7\", \"database\": 3,"
	    " \"credentialsSecret\": {\"name\": \"redis-login\","
	    "  \"usernameKey\": \"acl-user\"},"
	    " \"tls\": {\"enabled\": true, \"serverName\": \"redis.internal\"}}}");
	ch = desired(p);
	assert_int_equal(count_kind(ch, "StatefulSet"), 0);
	assert_null(find(ch, "Service", "acme-postgres"));
	assert_null(find(ch, "Deployment", "acme-redis"));
	assert_null(find(ch, "Service", "acme-redis"));
	assert_int_equal(count_kind(ch, "PersistentVolumeClaim"), 0);
	assert_null(find(ch, "NetworkPolicy", "acme-postgres"));
	assert_null(find(ch, "NetworkPolicy", "acme-redis"));
	assert_int_equal(count_kind(ch, "Deployment"), 3);

	cm = must(ch, "ConfigMap", "acme-config");
	str_at(cm, "data.VIGIL_DB_HOST", "pg.example.com");
	str_at(cm, "data.VIGIL_DB_PORT", "6432");
	str_at(cm, "data.VIGIL_DB_NAME", "scans");
	str_at(cm, "data.VIGIL_DB_SSLMODE", "verify-full");
	str_at(cm, "data.VIGIL_DB_SSLROOTCERT", "/etc/vigil/db-ca/root.pem");
	str_at(cm, "data.VIGIL_REDIS_ADDR", "[fd00::7]:6379");
	str_at(cm, "data.VIGIL_REDIS_DB", "3");
	str_at(cm, "data.VIGIL_REDIS_TLS", "true");
	str_at(cm, "data.VIGIL_REDIS_TLS_SERVER_NAME", "redis.internal");
	absent_at(cm, "data.VIGIL_REDIS_TLS_CA_FILE");

	gw = must(ch, "Deployment", "acme-gateway");
	str_at(env_of(gw, "VIGIL_DB_USER"), "valueFrom.secretKeyRef.name",
	       "pg-login");
	str_at(env_of(gw, "VIGIL_DB_USER"), "valueFrom.secretKeyRef.key",
	       "user");
	str_at(env_of(gw, "VIGIL_DB_PASSWORD"), "valueFrom.secretKeyRef.key",
	       "password");
	str_at(env_of(gw, "VIGIL_REDIS_USER"), "valueFrom.secretKeyRef.key",
	       "acl-user");
	str_at(env_of(gw, "VIGIL_REDIS_PASSWORD"), "valueFrom.secretKeyRef.name",
	       "redis-login");
	brain = must(ch, "Deployment", "acme-brain");
	/* the CA is mounted where VIGIL_DB_SSLROOTCERT points */
	str_at(brain, "spec.template.spec.volumes[2].secret.secretName",
	       "pg-ca");
	str_at(brain,
	       "spec.template.spec.containers[0].volumeMounts[2].mountPath",
	       "/etc/vigil/db-ca");
	json_decref(ch);

	/* only the session key, vigil_app's login and the brain's token
	 * are generated */
	vg_err_clear(&err);
	assert_int_equal(platform_secrets(p, &secrets, &err), VG_OK);
	assert_int_equal(json_array_size(secrets), 3);
	str_at(json_array_get(secrets, 0), "metadata.name", "acme-session-key");
	str_at(json_array_get(secrets, 1), "metadata.name", "acme-db-app");
	str_at(json_array_get(secrets, 2), "metadata.name", "acme-brain-token");
	json_decref(secrets);

	assert_int_equal(platform_required_secrets(p, &refs, &err), VG_OK);
	assert_int_equal(json_array_size(refs), 3);
	str_at(json_array_get(refs, 0), "name", "pg-login");
	str_at(json_array_get(refs, 0), "field",
	       "spec.database.external.credentialsSecret");
	str_at(json_array_get(refs, 0), "keys[0]", "user");
	str_at(json_array_get(refs, 0), "keys[1]", "password");
	str_at(json_array_get(refs, 1), "name", "pg-ca");
	str_at(json_array_get(refs, 1), "keys[0]", "root.pem");
	str_at(json_array_get(refs, 2), "name", "redis-login");
	str_at(json_array_get(refs, 2), "keys[0]", "password");
	str_at(json_array_get(refs, 2), "keys[1]", "acl-user");
	json_decref(refs);

	/* Redis without authentication: no password variable at all */
	set(p, "spec.redis", "{\"external\": {\"host\": \"redis\"}}");
	ch = desired(p);
	assert_null(env_of(must(ch, "Deployment", "acme-gateway"),
			   "VIGIL_REDIS_PASSWORD"));
	str_at(must(ch, "ConfigMap", "acme-config"), "data.VIGIL_REDIS_PORT",
	       "6379");
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Secrets                                                              */
/* ------------------------------------------------------------------ */

static char *b64_decode(const char *s)
{
	size_t n = strlen(s);
	unsigned char *out = calloc(1, n + 1);
	int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);

	assert_true(len >= 0);
	/* EVP_DecodeBlock counts padding bytes as zeros */
	while (n > 0 && s[n - 1] == '=') {
		n--;
		len--;
	}
	out[len] = '\0';
	return (char *)out;
}

static int is_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return 0;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return 0;
	return 1;
}

static void test_generated_secrets(void **state)
{
	(void)state;
	json_t *p = platform_new(), *a = NULL, *b = NULL, *s;
	char *pw1, *pw2, *key, *user;

	assert_int_equal(platform_secrets(p, &a, NULL), VG_OK);
	assert_int_equal(platform_secrets(p, &b, NULL), VG_OK);
	assert_int_equal(json_array_size(a), 5);
	s = json_array_get(a, 0);
	str_at(s, "metadata.name", "acme-session-key");
	str_at(s, "type", "Opaque");
	str_at(s, "metadata.labels[\"app.kubernetes.io/instance\"]", "acme");
	absent_at(s, "metadata.ownerReferences");
	key = b64_decode(vg_json_get_str(s, "data.key", ""));
	assert_true(is_hex(key, 64));
	s = json_array_get(a, 1);
	str_at(s, "metadata.name", "acme-db-credentials");
	user = b64_decode(vg_json_get_str(s, "data.username", ""));
	assert_string_equal(user, "vigil");
	pw1 = b64_decode(vg_json_get_str(s, "data.password", ""));
	pw2 = b64_decode(vg_json_get_str(json_array_get(b, 1),
					 "data.password", ""));
	assert_true(is_hex(pw1, 48));
	/* fresh randomness each time (created once, so only one is used) */
	assert_string_not_equal(pw1, pw2);
	str_at(json_array_get(a, 2), "metadata.name", "acme-redis-credentials");
	/* vigil_app's login for the services */
	s = json_array_get(a, 3);
	str_at(s, "metadata.name", "acme-db-app");
	free(user);
	user = b64_decode(vg_json_get_str(s, "data.username", ""));
	assert_string_equal(user, "vigil_app");
	free(key);
	key = b64_decode(vg_json_get_str(s, "data.password", ""));
	assert_true(is_hex(key, 48));
	/* the brain's API token: 256 random bits, fresh each time */
	s = json_array_get(a, 4);
	str_at(s, "metadata.name", "acme-brain-token");
	free(key);
	key = b64_decode(vg_json_get_str(s, "data.token", ""));
	assert_true(is_hex(key, 64));
	assert_string_not_equal(vg_json_get_str(s, "data.token", ""),
				vg_json_get_str(json_array_get(b, 4),
						"data.token", ""));
	free(pw1);
	free(pw2);
	free(key);
	free(user);
	json_decref(a);
	json_decref(b);
	json_decref(p);
}

/* No secret value reaches a ConfigMap; every credential in a pod comes
 * from a secretKeyRef. */
static void test_no_secret_in_configmap(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *secrets = NULL, *s, *w;
	json_t *data = vg_json_get(must(ch, "ConfigMap", "acme-config"), "data");
	const char *k, *v, *sk;
	json_t *sv, *dv, *e;
	size_t i, j;

	assert_int_equal(platform_secrets(p, &secrets, NULL), VG_OK);
	assert_true(json_object_size(data) > 10);
	json_array_foreach(secrets, i, s) {
		json_object_foreach(json_object_get(s, "data"), sk, sv) {
			char *plain = b64_decode(json_string_value(sv));

			json_object_foreach(data, k, dv) {
				v = json_string_value(dv);
				if (strlen(plain) >= 16 && strstr(v, plain))
					fail_msg("secret %s leaked into "
						 "ConfigMap key %s",
						 sk, k);
			}
			free(plain);
		}
	}
	json_object_foreach(data, k, dv) {
		if (strstr(k, "PASSWORD") || strstr(k, "SESSION") ||
		    strstr(k, "KEY"))
			fail_msg("ConfigMap key %s looks like a credential", k);
	}
	/* nothing in the configuration document names a password either */
	assert_null(strstr(vg_json_get_str(data, "[\"config.json\"]", ""),
			   "assword"));
	json_array_foreach(ch, i, w) {
		json_array_foreach(vg_json_get_array(
					   w, "spec.template.spec.containers[0].env"),
				   j, e) {
			const char *n = vg_json_get_str(e, "name", "");

			if ((strstr(n, "PASSWORD") || strstr(n, "SESSION") ||
			     strstr(n, "_USER")) &&
			    !vg_json_get(e, "valueFrom.secretKeyRef"))
				fail_msg("%s of %s is not from a Secret", n,
					 vg_json_get_str(w, "metadata.name",
							 ""));
		}
	}
	json_decref(secrets);
	json_decref(ch);
	json_decref(p);
}

static void test_required_secrets(void **state)
{
	(void)state;
	json_t *p = platform_new(), *refs = NULL;

	/* all managed: nothing the user must provide */
	assert_int_equal(platform_required_secrets(p, &refs, NULL), VG_OK);
	assert_int_equal(json_array_size(refs), 0);
	json_decref(refs);
	set(p, "spec.gateway.tls", "{\"secretName\": \"gw-cert\"}");
	set(p, "spec.redis",
	    "{\"external\": {\"host\": \"r\", \"tls\": {\"enabled\": true,"
	    " \"caSecret\": {\"name\": \"r-ca\"}}}}");
	assert_int_equal(platform_required_secrets(p, &refs, NULL), VG_OK);
	assert_int_equal(json_array_size(refs), 2);
	str_at(json_array_get(refs, 0), "name", "r-ca");
	str_at(json_array_get(refs, 0), "keys[0]", "ca.crt");
	str_at(json_array_get(refs, 0), "field",
	       "spec.redis.external.tls.caSecret");
	str_at(json_array_get(refs, 1), "name", "gw-cert");
	str_at(json_array_get(refs, 1), "keys[0]", "tls.crt");
	str_at(json_array_get(refs, 1), "keys[1]", "tls.key");
	json_decref(refs);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* ConfigMap, extraEnv, gateway exposure                                 */
/* ------------------------------------------------------------------ */

static void test_configmap_and_hash(void **state)
{
	(void)state;
	json_t *p = platform_new(), *a = desired(p), *b, *c, *doc = NULL;
	json_t *cm = must(a, "ConfigMap", "acme-config");
	const char *file = vg_json_get_str(cm, "data[\"config.json\"]", NULL);
	const char *h1, *h2, *h3;

	assert_non_null(file);
	assert_int_equal(vg_json_loadb(file, strlen(file), 0, &doc, NULL),
			 VG_OK);
	/* the file and the env-style keys say the same */
	str_at(doc, "database.host", "acme-postgres.sec.svc");
	int_at(doc, "database.port", 5432);
	str_at(doc, "gateway.url", "http://acme-gateway.sec.svc:8080");
	str_at(cm, "data.VIGIL_GATEWAY_URL", "http://acme-gateway.sec.svc:8080");
	str_at(cm, "data.VIGIL_BRAIN_URL", "http://acme-brain.sec.svc:8081");
	str_at(doc, "logLevel", "info");
	str_at(cm, "data.VIGIL_LOG_LEVEL", "info");
	assert_true(json_is_false(json_object_get(doc, "emergencyStop")));
	str_at(cm, "data.VIGIL_EMERGENCY_STOP", "false");
	str_at(cm, "data.VIGIL_HEALTH_PORT", "9090");
	str_at(cm, "data.VIGIL_PLATFORM", "acme");
	str_at(cm, "data.VIGIL_NAMESPACE", "sec");
	str_at(cm, "data.VIGIL_VERSION", "1.2.3");
	json_decref(doc);

	/* emergency stop: the ConfigMap changes, the pods' hash does not */
	set(p, "spec.emergencyStop", "true");
	b = desired(p);
	str_at(must(b, "ConfigMap", "acme-config"),
	       "data.VIGIL_EMERGENCY_STOP", "true");
	h1 = vg_json_get_str(must(a, "Deployment", "acme-gateway"),
			     "spec.template.metadata.annotations[\"" PLATFORM_CONFIG_HASH_ANNOTATION "\"]",
			     "");
	h2 = vg_json_get_str(must(b, "Deployment", "acme-gateway"),
			     "spec.template.metadata.annotations[\"" PLATFORM_CONFIG_HASH_ANNOTATION "\"]",
			     "");
	assert_int_equal(strlen(h1), 64);
	assert_string_equal(h1, h2);

	/* any other configuration change rolls the pods */
	set(p, "spec.logLevel", "\"debug\"");
	c = desired(p);
	h3 = vg_json_get_str(must(c, "Deployment", "acme-worker"),
			     "spec.template.metadata.annotations[\"" PLATFORM_CONFIG_HASH_ANNOTATION "\"]",
			     "");
	assert_string_not_equal(h1, h3);
	str_at(must(c, "ConfigMap", "acme-config"), "data.VIGIL_LOG_LEVEL",
	       "debug");
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(p);
}

static void test_extra_env(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch, *w, *env;

	set(p, "spec.worker.extraEnv",
	    "[{\"name\": \"VIGIL_COMPONENT\", \"value\": \"worker-x\"},"
	    " {\"name\": \"TOKEN\", \"valueFrom\": {\"secretKeyRef\":"
	    "   {\"name\": \"tok\", \"key\": \"t\"}}},"
	    " {\"name\": \"FLAG\", \"valueFrom\": {\"configMapKeyRef\":"
	    "   {\"name\": \"flags\", \"key\": \"f\"}}},"
	    " {\"name\": \"EMPTY\", \"value\": \"\"}]");
	ch = desired(p);
	w = must(ch, "Deployment", "acme-worker");
	env = vg_json_get_array(w, "spec.template.spec.containers[0].env");
	/* replaced in place, not duplicated */
	str_at(json_array_get(env, 0), "name", "VIGIL_COMPONENT");
	str_at(json_array_get(env, 0), "value", "worker-x");
	str_at(env_of(w, "TOKEN"), "valueFrom.secretKeyRef.name", "tok");
	str_at(env_of(w, "FLAG"), "valueFrom.configMapKeyRef.key", "f");
	/* "value": "" would be dropped by the server: not written */
	assert_non_null(env_of(w, "EMPTY"));
	absent_at(env_of(w, "EMPTY"), "value");
	str_at(json_array_get(env, json_array_size(env) - 1), "name", "EMPTY");
	assert_null(env_of(must(ch, "Deployment", "acme-gateway"), "TOKEN"));
	json_decref(ch);
	json_decref(p);
}

static void test_gateway_tls_and_service(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch, *gw, *svc;

	set(p, "spec.gateway.tls", "{\"secretName\": \"gw-cert\"}");
	set(p, "spec.gateway.port", "8443");
	set(p, "spec.gateway.service",
	    "{\"type\": \"LoadBalancer\","
	    " \"annotations\": {\"lb.example.com/internal\": \"true\"},"
	    " \"loadBalancerSourceRanges\": [\"203.0.113.0/24\"]}");
	set(p, "spec.gateway.nodeSelector", "{\"pool\": \"edge\"}");
	set(p, "spec.gateway.priorityClassName", "\"critical\"");
	ch = desired(p);
	gw = must(ch, "Deployment", "acme-gateway");
	str_at(gw, "spec.template.spec.containers[0].ports[0].name", "https");
	int_at(gw, "spec.template.spec.containers[0].ports[0].containerPort",
	       8443);
	str_at(env_of(gw, "VIGIL_TLS_CERT_FILE"), "value",
	       "/etc/vigil/tls/tls.crt");
	str_at(gw, "spec.template.spec.volumes[2].secret.secretName", "gw-cert");
	str_at(gw, "spec.template.spec.nodeSelector.pool", "edge");
	str_at(gw, "spec.template.spec.priorityClassName", "critical");
	absent_at(must(ch, "Deployment", "acme-brain"),
		  "spec.template.spec.nodeSelector");
	svc = must(ch, "Service", "acme-gateway");
	str_at(svc, "spec.type", "LoadBalancer");
	str_at(svc, "spec.ports[0].name", "https");
	str_at(svc, "spec.ports[0].targetPort", "https");
	int_at(svc, "spec.ports[0].port", 8443);
	str_at(svc, "spec.ports[0].protocol", "TCP");
	str_at(svc, "spec.loadBalancerSourceRanges[0]", "203.0.113.0/24");
	str_at(svc, "metadata.annotations[\"lb.example.com/internal\"]",
	       "true");
	str_at(must(ch, "ConfigMap", "acme-config"), "data.VIGIL_GATEWAY_URL",
	       "https://acme-gateway.sec.svc:8443");
	int_at(must(ch, "NetworkPolicy", "acme-gateway"),
	       "spec.ingress[0].ports[0].port", 8443);
	json_decref(ch);

	/* ClusterIP: no source ranges, no empty annotations map */
	set(p, "spec.gateway.service", "{\"annotations\": {}}");
	ch = desired(p);
	svc = must(ch, "Service", "acme-gateway");
	str_at(svc, "spec.type", "ClusterIP");
	absent_at(svc, "spec.loadBalancerSourceRanges");
	absent_at(svc, "metadata.annotations");
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* NetworkPolicies                                                      */
/* ------------------------------------------------------------------ */

/* Does `peer` select the pods of `workload`? */
static int selects(const json_t *peer, const json_t *workload)
{
	return vg_json_is_subset(vg_json_get(peer, "podSelector.matchLabels"),
				 vg_json_get(workload,
					     "spec.template.metadata.labels"));
}

static void test_network_policies(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *np, *from;
	json_t *gw = must(ch, "Deployment", "acme-gateway");
	json_t *brain = must(ch, "Deployment", "acme-brain");
	json_t *worker = must(ch, "Deployment", "acme-worker");
	json_t *pg = must(ch, "StatefulSet", "acme-postgres");
	json_t *redis = must(ch, "Deployment", "acme-redis");
	json_t *all[] = {gw, brain, worker, pg, redis};

	assert_int_equal(count_kind(ch, "NetworkPolicy"), 5);
	np = must(ch, "NetworkPolicy", "acme-default-deny");
	str_at(np, "apiVersion", "networking.k8s.io/v1");
	str_at(np, "spec.policyTypes[0]", "Ingress");
	absent_at(np, "spec.policyTypes[1]");
	absent_at(np, "spec.ingress");
	for (size_t i = 0; i < 5; i++)
		assert_true(vg_json_is_subset(
			vg_json_get(np, "spec.podSelector.matchLabels"),
			vg_json_get(all[i], "spec.template.metadata.labels")));

	np = must(ch, "NetworkPolicy", "acme-gateway");
	assert_true(vg_json_is_subset(
		vg_json_get(np, "spec.podSelector.matchLabels"),
		vg_json_get(gw, "spec.template.metadata.labels")));
	assert_false(vg_json_is_subset(
		vg_json_get(np, "spec.podSelector.matchLabels"),
		vg_json_get(brain, "spec.template.metadata.labels")));
	absent_at(np, "spec.ingress[0].from");
	int_at(np, "spec.ingress[0].ports[0].port", 8080);
	str_at(np, "spec.ingress[0].ports[0].protocol", "TCP");
	absent_at(np, "spec.ingress[1]");

	np = must(ch, "NetworkPolicy", "acme-brain");
	from = vg_json_get(np, "spec.ingress[0].from");
	assert_int_equal(json_array_size(from), 2);
	assert_true(selects(json_array_get(from, 0), gw));
	assert_true(selects(json_array_get(from, 1), worker));
	assert_false(selects(json_array_get(from, 0), redis));
	assert_false(selects(json_array_get(from, 1), brain));
	int_at(np, "spec.ingress[0].ports[0].port", 8081);

	np = must(ch, "NetworkPolicy", "acme-postgres");
	assert_true(vg_json_is_subset(
		vg_json_get(np, "spec.podSelector.matchLabels"),
		vg_json_get(pg, "spec.template.metadata.labels")));
	from = vg_json_get(np, "spec.ingress[0].from");
	assert_int_equal(json_array_size(from), 5);
	assert_true(selects(json_array_get(from, 0), gw));
	assert_true(selects(json_array_get(from, 1), worker));
	assert_true(selects(json_array_get(from, 2), brain));
	str_at(json_array_get(from, 3),
	       "podSelector.matchLabels[\"vigil.dev/role\"]", "backup");
	/* the operator (tenant rows, agent tokens, run results), from
	 * whichever namespace it is installed in */
	str_at(json_array_get(from, 4),
	       "podSelector.matchLabels[\"app.kubernetes.io/name\"]",
	       "vigil-operator");
	str_at(json_array_get(from, 4),
	       "namespaceSelector.matchExpressions[0].operator", "Exists");
	int_at(np, "spec.ingress[0].ports[0].port", 5432);

	np = must(ch, "NetworkPolicy", "acme-redis");
	from = vg_json_get(np, "spec.ingress[0].from");
	assert_int_equal(json_array_size(from), 3);
	assert_true(selects(json_array_get(from, 0), gw));
	assert_true(selects(json_array_get(from, 1), worker));
	assert_true(selects(json_array_get(from, 2), brain));
	assert_false(selects(json_array_get(from, 0), brain));
	assert_false(selects(json_array_get(from, 2), gw));
	int_at(np, "spec.ingress[0].ports[0].port", 6379);
	json_decref(ch);

	set(p, "spec.networkPolicy", "{\"enabled\": false}");
	ch = desired(p);
	assert_int_equal(count_kind(ch, "NetworkPolicy"), 0);
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Canonical form                                                       */
/* ------------------------------------------------------------------ */

static const char *const required_labels[] = {
	"app.kubernetes.io/name",      "app.kubernetes.io/instance",
	"app.kubernetes.io/component", "app.kubernetes.io/part-of",
	"app.kubernetes.io/managed-by",
};

static int has_empty_container(const json_t *v)
{
	json_t *x;
	const char *k;
	size_t i;

	if (json_is_object(v)) {
		/* emptyDir {} is kept by the server; ours carry a sizeLimit */
		if (json_object_size(v) == 0)
			return 1;
		json_object_foreach((json_t *)v, k, x)
			if (has_empty_container(x))
				return 1;
	} else if (json_is_array(v)) {
		if (json_array_size(v) == 0)
			return 1;
		json_array_foreach((json_t *)v, i, x)
			if (has_empty_container(x))
				return 1;
	}
	return 0;
}

static void test_children_metadata_and_canonical_form(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *again = desired(p), *c;
	size_t i;

	assert_int_equal(json_array_size(ch), 25);
	/* deterministic: a reconcile that changes nothing writes nothing */
	assert_true(vg_json_equal(ch, again));
	json_array_foreach(ch, i, c) {
		const char *name = vg_json_get_str(c, "metadata.name", "");

		assert_non_null(vg_json_get_str(c, "apiVersion", NULL));
		assert_non_null(vg_json_get_str(c, "kind", NULL));
		str_at(c, "metadata.namespace", "sec");
		if (strncmp(name, "acme-", 5) != 0)
			fail_msg("child %s is not prefixed with the platform",
				 name);
		for (size_t l = 0;
		     l < sizeof(required_labels) / sizeof(required_labels[0]);
		     l++)
			if (!json_is_string(json_object_get(
				    vg_json_get(c, "metadata.labels"),
				    required_labels[l])))
				fail_msg("%s: label %s missing", name,
					 required_labels[l]);
		str_at(json_object_get(c, "metadata"),
		       "labels[\"app.kubernetes.io/part-of\"]", "vigil");
		str_at(json_object_get(c, "metadata"),
		       "labels[\"app.kubernetes.io/managed-by\"]",
		       "vigil-operator");
		str_at(json_object_get(c, "metadata"),
		       "labels[\"app.kubernetes.io/instance\"]", "acme");
		/* ctl_apply() adds the owner; the server owns the rest */
		absent_at(c, "metadata.ownerReferences");
		absent_at(c, "metadata.uid");
		absent_at(c, "metadata.resourceVersion");
		absent_at(c, "metadata.creationTimestamp");
		absent_at(c, "status");
		if (has_empty_container(c))
			fail_msg("%s holds an empty object or list, which the "
				 "server drops",
				 name);
	}
	json_decref(again);
	json_decref(ch);
	json_decref(p);
}

static void test_quantities_are_canonical(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch, *res;

	set(p, "spec.brain.resources",
	    "{\"requests\": {\"cpu\": \"0.5\", \"memory\": \"1024Mi\"},"
	    " \"limits\": {\"cpu\": 2, \"memory\": \"1.5Gi\"}}");
	set(p, "spec.redis.managed", "{\"storage\": \"10240Mi\"}");
	ch = desired(p);
	res = vg_json_get(must(ch, "Deployment", "acme-brain"),
			  "spec.template.spec.containers[0].resources");
	str_at(res, "requests.cpu", "500m");
	str_at(res, "requests.memory", "1Gi");
	str_at(res, "limits.cpu", "2");
	str_at(res, "limits.memory", "1536Mi");
	str_at(must(ch, "PersistentVolumeClaim", "acme-redis-data"),
	       "spec.resources.requests.storage", "10Gi");
	json_decref(ch);
	json_decref(p);
}

static void test_keep_immutable(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch, *sts, *live;

	set(p, "spec.database.managed", "{\"storage\": \"30Gi\"}");
	ch = desired(p);
	sts = must(ch, "StatefulSet", "acme-postgres");
	live = json_deep_copy(sts);
	set(live, "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
	    "\"20Gi\"");
	set(live, "status", "{\"readyReplicas\": 1}");
	platform_keep_immutable(sts, live);
	str_at(sts,
	       "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
	       "20Gi");
	assert_true(vg_json_is_subset(sts, live));
	/* nothing live: unchanged */
	platform_keep_immutable(sts, NULL);
	str_at(sts,
	       "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
	       "20Gi");
	json_decref(live);
	json_decref(ch);
	json_decref(p);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                            */
/* ------------------------------------------------------------------ */

static void test_bad_input(void **state)
{
	(void)state;
	json_t *p;

	expect_invalid(json_string("platform"), "JSON object");
	p = platform_new();
	json_object_del(json_object_get(p, "metadata"), "name");
	expect_invalid(p, "metadata.name");
	p = platform_new();
	set(p, "metadata.name", "42");
	expect_invalid(p, "metadata.name");
	p = platform_new();
	set(p, "metadata.name", "\"a-platform-name-that-is-far-too-long-for-children\"");
	expect_invalid(p, "at most 40");
	p = platform_new();
	set(p, "metadata.name", "\"my.platform\"");
	expect_invalid(p, "metadata.name");
	p = platform_new();
	json_object_del(json_object_get(p, "metadata"), "namespace");
	expect_invalid(p, "metadata.namespace");
	p = platform_new();
	json_object_del(p, "spec");
	expect_invalid(p, "spec is missing");
	p = platform_new();
	set(p, "spec", "[]");
	expect_invalid(p, "spec");
	p = platform_new();
	json_object_del(json_object_get(p, "spec"), "version");
	expect_invalid(p, "spec.version");
	p = platform_new();
	set(p, "spec.database",
	    "{\"managed\": {}, \"external\": {\"host\": \"h\","
	    " \"credentialsSecret\": {\"name\": \"s\"}}}");
	expect_invalid(p, "spec.database");
	p = platform_new();
	set(p, "spec.redis", "{}");
	expect_invalid(p, "spec.redis");
	p = platform_new();
	set(p, "spec.database", "{\"external\": {\"host\": \"h\"}}");
	expect_invalid(p, "credentialsSecret");
	p = platform_new();
	set(p, "spec.gateway.replicas.min", "\"three\"");
	expect_invalid(p, "spec.gateway.replicas.min must be an integer");
	p = platform_new();
	set(p, "spec.worker.replicas", "{\"min\": 9, \"max\": 4}");
	expect_invalid(p, "spec.worker.replicas: min (9) is greater than max (4)");
	p = platform_new();
	set(p, "spec.brain.replicas.max", "5000");
	expect_invalid(p, "spec.brain.replicas.max must be between 1 and 1000");
	p = platform_new();
	set(p, "spec.gateway.resources.requests.cpu", "\"lots\"");
	expect_invalid(p, "spec.gateway.resources.requests.cpu");
	p = platform_new();
	set(p, "spec.gateway.resources.requests.memory", "[1]");
	expect_invalid(p, "string or an integer");
	p = platform_new();
	set(p, "spec.worker.resources.requests.cpu", "\"2\"");
	expect_invalid(p, "requests.cpu (2) exceeds");
	p = platform_new();
	set(p, "spec.emergencyStop", "\"yes\"");
	expect_invalid(p, "spec.emergencyStop must be true or false");
	p = platform_new();
	set(p, "spec.logLevel", "\"loud\"");
	expect_invalid(p, "spec.logLevel");
	p = platform_new();
	set(p, "spec.gateway.port", "9090");
	expect_invalid(p, "health");
	p = platform_new();
	set(p, "spec.gateway.extraEnv",
	    "[{\"name\": \"X\", \"valueFrom\": {\"secretKeyRef\":"
	    " {\"name\": \"a\", \"key\": \"b\"}, \"configMapKeyRef\":"
	    " {\"name\": \"c\", \"key\": \"d\"}}}]");
	expect_invalid(p, "spec.gateway.extraEnv[0]");
	p = platform_new();
	set(p, "spec.brain.extraEnv", "[{\"value\": \"no name\"}]");
	expect_invalid(p, "spec.brain.extraEnv[0].name");
	p = platform_new();
	set(p, "spec.imagePullSecrets", "[{}]");
	expect_invalid(p, "spec.imagePullSecrets[0].name");
	p = platform_new();
	set(p, "spec.gateway.service.annotations", "{\"a\": 1}");
	expect_invalid(p, "spec.gateway.service.annotations.a");
	p = platform_new();
	set(p, "spec.database.managed.storage", "\"20 Gi\"");
	expect_invalid(p, "spec.database.managed.storage");

	/* the other entry points refuse the same way */
	{
		json_t *out = (json_t *)0x1;
		struct vg_err err;

		p = platform_new();
		json_object_del(json_object_get(p, "metadata"), "name");
		vg_err_clear(&err);
		assert_int_equal(platform_secrets(p, &out, &err), VG_INVAL);
		assert_null(out);
		assert_non_null(strstr(err.msg, "metadata.name"));
		out = (json_t *)0x1;
		assert_int_equal(platform_required_secrets(p, &out, &err),
				 VG_INVAL);
		assert_null(out);
		assert_int_equal(platform_desired(NULL, NULL, &out, &err),
				 VG_INVAL);
		json_decref(p);
	}
}

/* ------------------------------------------------------------------ */
/* Status                                                               */
/* ------------------------------------------------------------------ */

/* A live Deployment/StatefulSet as the API server reports it. */
static json_t *live_workload(const json_t *desired_obj, long long want,
			     long long ready, long long updated, int stuck)
{
	json_t *l = json_deep_copy(desired_obj);
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"observedGeneration\": 1, \"replicas\": %lld,"
		 " \"readyReplicas\": %lld, \"updatedReplicas\": %lld%s}",
		 want, ready, updated,
		 stuck ? ", \"conditions\": [{\"type\": \"Progressing\","
			 " \"status\": \"False\","
			 " \"reason\": \"ProgressDeadlineExceeded\"}]"
		       : "");
	set(l, "status", buf);
	set(l, "metadata.generation", "1");
	snprintf(buf, sizeof(buf), "%lld", want);
	set(l, "spec.replicas", buf);
	return l;
}

static json_t *live_all(const json_t *children, long long ready_gateway,
			int stuck_worker)
{
	json_t *live = json_object(), *c;
	char key[128];
	size_t i;

	json_array_foreach((json_t *)children, i, c) {
		const char *kind = vg_json_get_str(c, "kind", "");
		const char *name = vg_json_get_str(c, "metadata.name", "");
		long long want = strcmp(name, "acme-gateway") == 0 ? 3 : 1;
		long long ready = strcmp(name, "acme-gateway") == 0
					  ? ready_gateway
					  : want;

		if (strcmp(kind, "Deployment") && strcmp(kind, "StatefulSet"))
			continue;
		snprintf(key, sizeof(key), "%s/%s", kind, name);
		json_object_set_new(
			live, key,
			live_workload(c, want, ready, want,
				      stuck_worker &&
					      strcmp(name, "acme-worker") == 0));
	}
	return live;
}

static void test_status_ready(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *live, *st = NULL;
	struct platform_health h;

	live = live_all(ch, 3, 0);
	assert_int_equal(platform_observe(p, ch, live, NULL, NULL, &st, &h,
					  NULL),
			 VG_OK);
	assert_true(h.ready);
	assert_false(h.progressing);
	assert_false(h.degraded);
	assert_string_equal(h.phase, "Ready");
	assert_string_equal(h.ready_reason, "AllComponentsReady");
	assert_string_equal(h.progressing_reason, "RolloutComplete");
	assert_string_equal(h.degraded_reason, "AsExpected");
	assert_non_null(strstr(h.ready_msg, "all 5 workloads"));
	int_at(st, "observedGeneration", 4);
	str_at(st, "phase", "Ready");
	str_at(st, "version", "1.2.3");
	str_at(st, "endpoint", "http://acme-gateway.sec.svc:8080");
	int_at(st, "gateway.desiredReplicas", 3);
	int_at(st, "gateway.readyReplicas", 3);
	str_at(st, "gateway.ready", "3/3");
	str_at(st, "gateway.image", "ghcr.io/vigil-dev/vigil-gateway:1.2.3");
	str_at(st, "brain.ready", "1/1");
	absent_at(st, "conditions");
	json_decref(st);
	json_decref(live);
	json_decref(ch);
	json_decref(p);
}

static void test_status_progressing_and_degraded(void **state)
{
	(void)state;
	json_t *p = platform_new(), *ch = desired(p), *live, *st = NULL;
	struct platform_health h;

	/* 1 of 3 gateways ready: progressing, version not yet moved */
	set(p, "status", "{\"version\": \"1.2.2\"}");
	live = live_all(ch, 1, 0);
	assert_int_equal(platform_observe(p, ch, live, NULL, NULL, &st, &h,
					  NULL),
			 VG_OK);
	assert_false(h.ready);
	assert_true(h.progressing);
	assert_false(h.degraded);
	assert_string_equal(h.phase, "Progressing");
	assert_string_equal(h.ready_reason, "ComponentsNotReady");
	assert_string_equal(h.progressing_reason, "RolloutInProgress");
	assert_non_null(strstr(h.progressing_msg, "acme-gateway: 1/3 replicas ready"));
	str_at(st, "gateway.ready", "1/3");
	str_at(st, "version", "1.2.2");
	json_decref(st);
	json_decref(live);

	/* nothing exists yet */
	live = json_object();
	assert_int_equal(platform_observe(p, ch, live, NULL, NULL, &st, &h,
					  NULL),
			 VG_OK);
	assert_string_equal(h.phase, "Pending");
	assert_true(h.progressing);
	str_at(st, "worker.ready", "0/0");
	absent_at(st, "worker.image");
	assert_non_null(strstr(h.progressing_msg, "not created yet"));
	json_decref(st);
	json_decref(live);

	/* everything ready but a Secret is missing: degraded, not ready */
	live = live_all(ch, 3, 0);
	assert_int_equal(platform_observe(p, ch, live, "MissingSecret",
					  "Secret pg-login not found", &st, &h,
					  NULL),
			 VG_OK);
	assert_false(h.ready);
	assert_true(h.degraded);
	assert_false(h.progressing);
	assert_string_equal(h.phase, "Degraded");
	assert_string_equal(h.ready_reason, "MissingSecret");
	assert_string_equal(h.degraded_reason, "MissingSecret");
	assert_string_equal(h.degraded_msg, "Secret pg-login not found");
	json_decref(st);
	json_decref(live);

	/* a rollout past its deadline */
	live = live_all(ch, 3, 1);
	assert_int_equal(platform_observe(p, ch, live, NULL, NULL, &st, &h,
					  NULL),
			 VG_OK);
	assert_true(h.degraded);
	assert_false(h.ready);
	assert_string_equal(h.degraded_reason, "RolloutStuck");
	assert_non_null(strstr(h.degraded_msg, "acme-worker"));
	json_decref(st);
	json_decref(live);

	/* invalid spec: no children, the failure is the status */
	live = json_object();
	assert_int_equal(platform_observe(p, NULL, live, "InvalidSpec",
					  "spec.version is required", &st, &h,
					  NULL),
			 VG_OK);
	assert_string_equal(h.phase, "Failed");
	assert_string_equal(h.ready_reason, "InvalidSpec");
	assert_string_equal(h.progressing_reason, "InvalidSpec");
	absent_at(st, "endpoint");
	json_decref(st);
	json_decref(live);
	json_decref(ch);
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_follow_the_deployment_sheet),
		cmocka_unit_test(test_c_defaults_equal_schema_defaults),
		cmocka_unit_test(test_hpa_managed_deployments_carry_no_replicas),
		cmocka_unit_test(test_replicas_handover),
		cmocka_unit_test(test_pdbs),
		cmocka_unit_test(test_every_pod_is_restricted),
		cmocka_unit_test(test_component_pods),
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_managed_backends),
		cmocka_unit_test(test_external_backends),
		cmocka_unit_test(test_generated_secrets),
		cmocka_unit_test(test_no_secret_in_configmap),
		cmocka_unit_test(test_required_secrets),
		cmocka_unit_test(test_configmap_and_hash),
		cmocka_unit_test(test_extra_env),
		cmocka_unit_test(test_gateway_tls_and_service),
		cmocka_unit_test(test_network_policies),
		cmocka_unit_test(test_children_metadata_and_canonical_form),
		cmocka_unit_test(test_quantities_are_canonical),
		cmocka_unit_test(test_keep_immutable),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_status_ready),
		cmocka_unit_test(test_status_progressing_and_degraded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
