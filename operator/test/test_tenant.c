/* test_tenant.c - the Tenant's desired children (pure) and the tenant's
 * row in a real PostgreSQL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tenant.h"
#include "testsupport/services.h"
#include "vigil/db.h"
#include "vigil/json.h"

/* config/samples/tenant-acme.yaml as the API server returns it */
static const char acme_json[] =
	"{\"apiVersion\":\"vigil.dev/v1alpha1\",\"kind\":\"Tenant\","
	"\"metadata\":{\"name\":\"acme\",\"uid\":"
	"\"6f1c1d2e-8a7b-4c3d-9e0f-112233445566\",\"generation\":1},"
	"\"spec\":{\"displayName\":\"ACME Corp.\","
	"\"allowedTargets\":[\"192.0.2.0/24\",\"198.51.100.16/28\","
	"\"2001:db8:100::/48\",\"www.acme.example\",\"*.dmz.acme.example\"],"
	"\"quota\":{\"maxConcurrentScans\":3,\"maxAgentPods\":12,"
	"\"agentCPU\":\"6\",\"agentMemory\":\"6Gi\"},"
	"\"admins\":{\"users\":[\"alice@acme.example\"],"
	"\"groups\":[\"acme:secops\"]},\"suspend\":false}}";

static const struct tenant_platform platform = {
	.ns = "vigil-system", .name = "vigil", .gateway_port = 8443
};

static json_t *load(const char *s)
{
	json_t *v = NULL;
	struct vg_err err = { 0 };

	if (vg_json_loadb(s, strlen(s), 0, &v, &err) != VG_OK)
		fail_msg("bad JSON in test: %s", err.msg);
	return v;
}

static json_t *acme(void)
{
	return load(acme_json);
}

/* Children of `t`; fails the test on error. */
static json_t *desired(const json_t *t, const struct tenant_platform *pf)
{
	json_t *c = NULL;
	struct vg_err err = { 0 };

	if (tenant_desired(t, pf, &c, &err) != VG_OK)
		fail_msg("tenant_desired: %s", err.msg);
	return c;
}

static json_t *child(const json_t *children, const char *kind)
{
	size_t i;
	json_t *o;

	json_array_foreach(children, i, o)
	{
		if (strcmp(vg_json_get_str(o, "kind", ""), kind) == 0)
			return o;
	}
	return NULL;
}

/* Compare the value at `path` of `obj` with the JSON text `want`. */
static void assert_json_at(const json_t *obj, const char *path,
			   const char *want)
{
	json_t *w = load(want);
	json_t *got = vg_json_get(obj, path);

	if (!vg_json_equal(w, got)) {
		char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS)
			      : NULL;

		fail_msg("%s: want %s, got %s", path, want, g ? g : "(none)");
	}
	json_decref(w);
}

static void set(json_t *t, const char *path, const char *value_json)
{
	assert_int_equal(vg_json_set_new(t, path, load(value_json)), VG_OK);
}

/* --- namespace ---------------------------------------------------------- */

static void test_namespace_default_and_override(void **state)
{
	(void)state;
	json_t *t = acme(), *c;
	struct vg_err err = { 0 };
	char ns[64];

	assert_int_equal(tenant_namespace(t, ns, sizeof(ns), &err), VG_OK);
	assert_string_equal(ns, "tenant-acme");
	c = desired(t, &platform);
	assert_json_at(child(c, "Namespace"), "metadata.name", "\"tenant-acme\"");
	assert_json_at(child(c, "ResourceQuota"), "metadata.namespace",
		       "\"tenant-acme\"");
	json_decref(c);

	set(t, "spec.namespace", "\"acme-scans\"");
	c = desired(t, &platform);
	assert_json_at(child(c, "Namespace"), "metadata.name", "\"acme-scans\"");
	for (size_t i = 1; i < json_array_size(c); i++)
		assert_json_at(json_array_get(c, i), "metadata.namespace",
			       "\"acme-scans\"");
	json_decref(c);

	/* 57 characters: tenant-<name> would not be a DNS label */
	json_object_del(json_object_get(t, "spec"), "namespace");
	set(t, "metadata.name",
	    "\"abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-xy\"");
	assert_int_equal(tenant_desired(t, &platform, &c, &err), VG_TOOLARGE);
	assert_non_null(strstr(err.msg, "spec.namespace"));
	set(t, "metadata.name", "\"Not_A_Label\"");
	assert_int_equal(tenant_desired(t, &platform, &c, &err), VG_INVAL);
	json_decref(t);
}

static void test_children_in_apply_order_with_labels(void **state)
{
	(void)state;
	static const char *const kinds[] = { "Namespace",     "ResourceQuota",
					     "LimitRange",    "NetworkPolicy",
					     "Role",	      "RoleBinding" };
	json_t *t = acme(), *c = desired(t, &platform), *o;
	size_t i;

	assert_int_equal(json_array_size(c), 6);
	json_array_foreach(c, i, o)
	{
		assert_string_equal(vg_json_get_str(o, "kind", ""), kinds[i]);
		assert_json_at(o, "metadata.labels[\"vigil.dev/tenant\"]",
			       "\"acme\"");
		assert_json_at(o,
			       "metadata.labels[\"app.kubernetes.io/managed-by\"]",
			       "\"vigil-operator\"");
		assert_json_at(o, "metadata.labels[\"app.kubernetes.io/part-of\"]",
			       "\"vigil\"");
		/* owner references are ctl_apply's to add */
		assert_null(vg_json_get(o, "metadata.ownerReferences"));
	}
	assert_json_at(child(c, "Namespace"),
		       "metadata.labels[\"pod-security.kubernetes.io/enforce\"]",
		       "\"baseline\"");
	json_decref(c);
	json_decref(t);
}

/* --- quota -------------------------------------------------------------- */

static void test_quota_to_resourcequota_and_limitrange(void **state)
{
	(void)state;
	json_t *t = acme(), *c = desired(t, &platform);

	assert_json_at(child(c, "ResourceQuota"), "metadata.name",
		       "\"vigil-quota\"");
	assert_json_at(child(c, "ResourceQuota"), "spec.hard",
		       "{\"pods\":\"12\",\"requests.cpu\":\"6\","
		       "\"limits.cpu\":\"6\",\"requests.memory\":\"6Gi\","
		       "\"limits.memory\":\"6Gi\"}");
	/* each of the 12 pods gets a twelfth: 500m and 512Mi */
	assert_json_at(child(c, "LimitRange"), "spec.limits",
		       "[{\"type\":\"Container\","
		       "\"default\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"},"
		       "\"defaultRequest\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"},"
		       "\"max\":{\"cpu\":\"6\",\"memory\":\"6Gi\"}}]");
	json_decref(c);
	json_decref(t);
}

static void test_quota_defaults_and_canonical_form(void **state)
{
	(void)state;
	static const struct {
		const char *quota; /* spec.quota */
		const char *hard;  /* the ResourceQuota's spec.hard */
		const char *dflt;  /* the LimitRange's default */
	} cases[] = {
		/* the schema's defaults: 10 pods, 4 CPUs, 4Gi */
		{ "{}",
		  "{\"pods\":\"10\",\"requests.cpu\":\"4\",\"limits.cpu\":\"4\","
		  "\"requests.memory\":\"4Gi\",\"limits.memory\":\"4Gi\"}",
		  "{\"cpu\":\"400m\",\"memory\":\"409Mi\"}" },
		/* written the long way: stored as the API server prints */
		{ "{\"maxAgentPods\":4,\"agentCPU\":\"4000m\","
		  "\"agentMemory\":\"2048Mi\"}",
		  "{\"pods\":\"4\",\"requests.cpu\":\"4\",\"limits.cpu\":\"4\","
		  "\"requests.memory\":\"2Gi\",\"limits.memory\":\"2Gi\"}",
		  "{\"cpu\":\"1\",\"memory\":\"512Mi\"}" },
		/* an integer CPU count, decimal memory units */
		{ "{\"maxAgentPods\":12,\"agentCPU\":3,\"agentMemory\":\"6G\"}",
		  "{\"pods\":\"12\",\"requests.cpu\":\"3\",\"limits.cpu\":\"3\","
		  "\"requests.memory\":\"6G\",\"limits.memory\":\"6G\"}",
		  "{\"cpu\":\"250m\",\"memory\":\"500M\"}" },
		{ "{\"maxAgentPods\":3,\"agentCPU\":\"0.5\",\"agentMemory\":"
		  "\"1.5Gi\"}",
		  "{\"pods\":\"3\",\"requests.cpu\":\"500m\","
		  "\"limits.cpu\":\"500m\",\"requests.memory\":\"1536Mi\","
		  "\"limits.memory\":\"1536Mi\"}",
		  "{\"cpu\":\"166m\",\"memory\":\"512Mi\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *t = acme(), *c;

		json_object_set_new(json_object_get(t, "spec"), "quota",
				    load(cases[i].quota));
		c = desired(t, &platform);
		assert_json_at(child(c, "ResourceQuota"), "spec.hard",
			       cases[i].hard);
		assert_json_at(child(c, "LimitRange"), "spec.limits[0].default",
			       cases[i].dflt);
		assert_json_at(child(c, "LimitRange"),
			       "spec.limits[0].defaultRequest", cases[i].dflt);
		json_decref(c);
		json_decref(t);
	}
}

static void test_quota_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{\"maxAgentPods\":2,\"maxConcurrentScans\":3}",
		"{\"maxAgentPods\":0}",
		"{\"maxAgentPods\":\"12\"}",
		"{\"agentCPU\":\"lots\"}",
		"{\"agentMemory\":\"-1Gi\"}",
		"{\"agentMemory\":true}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *t = acme(), *c = NULL;
		struct vg_err err = { 0 };

		json_object_set_new(json_object_get(t, "spec"), "quota",
				    load(bad[i]));
		if (tenant_desired(t, &platform, &c, &err) != VG_INVAL)
			fail_msg("quota %s was accepted", bad[i]);
		assert_null(c);
		assert_non_null(strstr(err.msg, "spec.quota."));
		json_decref(t);
	}
}

/* --- network policy ----------------------------------------------------- */

static void test_networkpolicy_from_allowed_targets(void **state)
{
	(void)state;
	json_t *t = acme(), *c, *np;

	set(t, "spec.allowedTargets",
	    "[\"192.0.2.0/24\",\"198.51.100.16/28\",\"2001:db8:100::/48\","
	    "\"www.acme.example\",\"*.dmz.acme.example\",\"203.0.113.7\","
	    "\"2001:db8::1\",\"10.0.0.0/8\",\"169.254.0.0/16\","
	    "\"169.254.169.254\"]");
	c = desired(t, &platform);
	np = child(c, "NetworkPolicy");
	assert_json_at(np, "metadata.name", "\"vigil-tenant\"");
	assert_json_at(np, "metadata.namespace", "\"tenant-acme\"");
	/* every pod of the namespace; nothing comes in */
	assert_json_at(np, "spec.podSelector", "{}");
	assert_json_at(np, "spec.policyTypes", "[\"Ingress\",\"Egress\"]");
	assert_null(vg_json_get(np, "spec.ingress"));
	assert_int_equal(json_array_size(vg_json_get(np, "spec.egress")), 3);
	assert_json_at(np, "spec.egress[0]",
		       "{\"to\":[{\"namespaceSelector\":{\"matchLabels\":"
		       "{\"kubernetes.io/metadata.name\":\"kube-system\"}},"
		       "\"podSelector\":{\"matchLabels\":{\"k8s-app\":"
		       "\"kube-dns\"}}}],\"ports\":[{\"protocol\":\"UDP\","
		       "\"port\":53},{\"protocol\":\"TCP\",\"port\":53}]}");
	assert_json_at(np, "spec.egress[1]",
		       "{\"to\":[{\"namespaceSelector\":{\"matchLabels\":"
		       "{\"kubernetes.io/metadata.name\":\"vigil-system\"}},"
		       "\"podSelector\":{\"matchLabels\":{"
		       "\"app.kubernetes.io/component\":\"gateway\","
		       "\"app.kubernetes.io/instance\":\"vigil\"}}}],"
		       "\"ports\":[{\"protocol\":\"TCP\",\"port\":8443}]}");
	/* addresses and networks, IPv6 included, host names left out; the
	 * metadata address is cut out of IPv4 blocks that contain it */
	assert_json_at(np, "spec.egress[2]",
		       "{\"to\":["
		       "{\"ipBlock\":{\"cidr\":\"192.0.2.0/24\"}},"
		       "{\"ipBlock\":{\"cidr\":\"198.51.100.16/28\"}},"
		       "{\"ipBlock\":{\"cidr\":\"2001:db8:100::/48\"}},"
		       "{\"ipBlock\":{\"cidr\":\"203.0.113.7/32\"}},"
		       "{\"ipBlock\":{\"cidr\":\"2001:db8::1/128\"}},"
		       "{\"ipBlock\":{\"cidr\":\"10.0.0.0/8\"}},"
		       "{\"ipBlock\":{\"cidr\":\"169.254.0.0/16\","
		       "\"except\":[\"169.254.169.254/32\"]}},"
		       "{\"ipBlock\":{\"cidr\":\"169.254.169.254/32\"}}]}");
	json_decref(c);
	json_decref(t);
}

static void test_networkpolicy_never_allows_everything(void **state)
{
	(void)state;
	static const char *const scopes[] = {
		"[\"www.acme.example\",\"*.dmz.acme.example\"]", "[]", "null"
	};

	for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
		json_t *t = acme(), *c, *np, *rule;
		size_t j;

		set(t, "spec.allowedTargets", scopes[i]);
		/* without a known Platform: DNS only */
		c = desired(t, NULL);
		np = child(c, "NetworkPolicy");
		assert_int_equal(json_array_size(vg_json_get(np, "spec.egress")),
				 1);
		json_array_foreach(vg_json_get(np, "spec.egress"), j, rule)
		{
			/* a rule without peers would open all egress */
			assert_true(json_array_size(json_object_get(rule, "to")) >
				    0);
		}
		json_decref(c);
		json_decref(t);
	}
}

/* --- RBAC --------------------------------------------------------------- */

static void test_rbac_for_admin_users_and_groups(void **state)
{
	(void)state;
	json_t *t = acme(), *c = desired(t, &platform), *role, *rb;

	role = child(c, "Role");
	assert_json_at(role, "metadata.name", "\"vigil-tenant-admin\"");
	assert_json_at(role, "rules[0]",
		       "{\"apiGroups\":[\"vigil.dev\"],\"resources\":"
		       "[\"scanpolicies\"],\"verbs\":[\"get\",\"list\","
		       "\"watch\",\"create\",\"update\",\"patch\",\"delete\","
		       "\"deletecollection\"]}");
	assert_json_at(role, "rules[2]",
		       "{\"apiGroups\":[\"batch\"],\"resources\":[\"jobs\"],"
		       "\"verbs\":[\"get\",\"list\",\"watch\"]}");
	assert_json_at(role, "rules[3]",
		       "{\"apiGroups\":[\"\"],\"resources\":[\"pods\","
		       "\"pods/log\"],\"verbs\":[\"get\",\"list\",\"watch\"]}");
	rb = child(c, "RoleBinding");
	assert_json_at(rb, "roleRef",
		       "{\"apiGroup\":\"rbac.authorization.k8s.io\","
		       "\"kind\":\"Role\",\"name\":\"vigil-tenant-admin\"}");
	assert_json_at(rb, "subjects",
		       "[{\"kind\":\"User\",\"apiGroup\":"
		       "\"rbac.authorization.k8s.io\",\"name\":"
		       "\"alice@acme.example\"},{\"kind\":\"Group\","
		       "\"apiGroup\":\"rbac.authorization.k8s.io\",\"name\":"
		       "\"acme:secops\"}]");
	json_decref(c);

	/* only groups */
	set(t, "spec.admins", "{\"groups\":[\"a\",\"b\"]}");
	c = desired(t, &platform);
	assert_json_at(child(c, "RoleBinding"), "subjects[1]",
		       "{\"kind\":\"Group\",\"apiGroup\":"
		       "\"rbac.authorization.k8s.io\",\"name\":\"b\"}");
	json_decref(c);

	/* nobody: no binding (pruned if it existed) */
	json_object_del(json_object_get(t, "spec"), "admins");
	c = desired(t, &platform);
	assert_null(child(c, "RoleBinding"));
	assert_non_null(child(c, "Role"));
	json_decref(c);
	json_decref(t);
}

static void test_agent_secret_random_token(void **state)
{
	(void)state;
	json_t *t = acme(), *s1 = NULL, *s2 = NULL;
	struct vg_err err = { 0 };
	const char *tok1, *tok2;

	assert_int_equal(tenant_agent_secret(t, &s1, &err), VG_OK);
	assert_int_equal(tenant_agent_secret(t, &s2, &err), VG_OK);
	assert_json_at(s1, "metadata.name", "\"vigil-agent-token\"");
	assert_json_at(s1, "metadata.namespace", "\"tenant-acme\"");
	assert_json_at(s1, "type", "\"Opaque\"");
	tok1 = vg_json_get_str(s1, "stringData.token", "");
	tok2 = vg_json_get_str(s2, "stringData.token", "");
	/* an API key of the gateway: vgk_<8 hex>_<43 base64url> */
	assert_int_equal(strlen(tok1), TENANT_AGENT_TOKEN_LEN);
	assert_int_equal(strncmp(tok1, "vgk_", 4), 0);
	assert_int_equal(strspn(tok1 + 4, "0123456789abcdef"), 8);
	assert_int_equal(tok1[12], '_');
	assert_int_equal(strspn(tok1 + 13, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh"
					   "ijklmnopqrstuvwxyz0123456789-_"),
			 43);
	assert_string_not_equal(tok1, tok2);
	json_decref(s1);
	json_decref(s2);
	json_decref(t);
}

/* --- where the database is ---------------------------------------------- */

static void test_platform_database_and_conninfo(void **state)
{
	(void)state;
	json_t *ext = load(
		"{\"metadata\":{\"name\":\"vigil\",\"namespace\":"
		"\"vigil-system\"},\"spec\":{\"database\":{\"external\":"
		"{\"host\":\"db.example.com\",\"port\":6432,\"database\":"
		"\"scans\",\"sslMode\":\"verify-full\",\"credentialsSecret\":"
		"{\"name\":\"pg\",\"usernameKey\":\"u\"},\"caSecret\":"
		"{\"name\":\"pg-ca\"}}}}}");
	json_t *man = load("{\"metadata\":{\"name\":\"vigil\",\"namespace\":"
			   "\"vigil-system\"},\"spec\":{\"database\":"
			   "{\"managed\":{}}}}");
	struct tenant_dbref ref;
	struct vg_err err = { 0 };
	PQconninfoOption *opts, *o;
	char *ci = NULL, *perr = NULL;
	int seen = 0;

	assert_int_equal(tenant_platform_db(ext, &ref, &err), VG_OK);
	assert_string_equal(ref.host, "db.example.com");
	assert_int_equal(ref.port, 6432);
	assert_string_equal(ref.dbname, "scans");
	assert_string_equal(ref.sslmode, "verify-full");
	assert_string_equal(ref.secret, "pg");
	assert_string_equal(ref.user_key, "u");
	assert_string_equal(ref.pass_key, "password");
	assert_string_equal(ref.ca_secret, "pg-ca");
	assert_string_equal(ref.ca_key, "ca.crt");

	/* quotes and backslashes in a password survive libpq's parser */
	assert_int_equal(tenant_conninfo(&ref, "vigil", "p'a\\ss word",
					 "/tmp/ca.crt", &ci, &err),
			 VG_OK);
	opts = PQconninfoParse(ci, &perr);
	assert_non_null(opts);
	for (o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "password") == 0) {
			assert_string_equal(o->val, "p'a\\ss word");
			seen++;
		} else if (strcmp(o->keyword, "sslrootcert") == 0) {
			assert_string_equal(o->val, "/tmp/ca.crt");
			seen++;
		} else if (strcmp(o->keyword, "port") == 0) {
			assert_string_equal(o->val, "6432");
			seen++;
		} else if (strcmp(o->keyword, "gssencmode") == 0) {
			/* password over TLS as sslMode says, no Kerberos */
			assert_string_equal(o->val, "disable");
			seen++;
		} else if (strcmp(o->keyword, "sslmode") == 0) {
			assert_string_equal(o->val, "verify-full");
			seen++;
		}
	}
	assert_int_equal(seen, 5);
	PQconninfoFree(opts);
	free(ci);

	assert_int_equal(tenant_platform_db(man, &ref, &err), VG_OK);
	assert_string_equal(ref.host, "vigil-postgres.vigil-system.svc");
	assert_int_equal(ref.port, 5432);
	assert_string_equal(ref.secret, "vigil-db-credentials");
	assert_string_equal(ref.sslmode, "disable");

	json_object_set_new(vg_json_get(man, "spec.database"), "external",
			    json_object());
	assert_int_equal(tenant_platform_db(man, &ref, &err), VG_INVAL);
	json_decref(ext);
	json_decref(man);
}

/* --- the row, in a real PostgreSQL -------------------------------------- */

static struct vg_ts_service pg;

static void admin_sql(const char *db, const char *sql, char *val, size_t n)
{
	char ci[256];
	PGconn *c = PQconnectdb(
		vg_ts_pg_conninfo(&pg, "postgres", db, ci, sizeof(ci)));
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	if (val)
		snprintf(val, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
}

static void test_db_upsert_is_idempotent_and_archives(void **state)
{
	(void)state;
	struct tenant_db *db = NULL;
	struct vg_err err = { 0 };
	json_t *t = acme();
	char ci[256], id1[37], id2[37], id3[37], v[128];

	assert_int_equal(vg_ts_pg_start(&pg), 0);
	admin_sql("postgres", "CREATE DATABASE vigil", NULL, 0);
	vg_ts_pg_conninfo(&pg, "postgres", "vigil", ci, sizeof(ci));
	/* first use brings the schema up to date */
	if (tenant_db_get(ci, &db, &err) != VG_OK)
		fail_msg("tenant_db_get: %s", err.msg);

	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), t, id1, &err),
			 VG_OK);
	assert_true(vg_db_is_uuid(id1));
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), t, id2, &err),
			 VG_OK);
	assert_string_equal(id1, id2);
	admin_sql("vigil", "SELECT count(*) FROM vigil.tenants", v, sizeof(v));
	assert_string_equal(v, "1");
	admin_sql("vigil",
		  "SELECT name || '|' || display_name || '|' || namespace || "
		  "'|' || state || '|' || k8s_uid FROM vigil.tenants",
		  v, sizeof(v));
	assert_string_equal(v, "acme|ACME Corp.|tenant-acme|active|"
			       "6f1c1d2e-8a7b-4c3d-9e0f-112233445566");

	/* a changed display name updates the same row */
	set(t, "spec.displayName", "\"ACME Corporation\"");
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), t, id2, &err),
			 VG_OK);
	assert_string_equal(id1, id2);
	admin_sql("vigil", "SELECT display_name FROM vigil.tenants", v,
		  sizeof(v));
	assert_string_equal(v, "ACME Corporation");

	/* another live Tenant may not take the name */
	json_t *twin = acme();
	set(twin, "metadata.uid", "\"00000000-0000-4000-8000-000000000099\"");
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), twin, id3, &err),
			 VG_EXISTS);
	assert_string_equal(tenant_db_reason(&err), "DatabaseConflict");

	/* deletion archives, twice is the same */
	assert_int_equal(tenant_db_archive(tenant_db_pool(db),
					   "6f1c1d2e-8a7b-4c3d-9e0f-112233445566",
					   id3, &err),
			 VG_OK);
	assert_string_equal(id3, id1);
	assert_int_equal(tenant_db_archive(tenant_db_pool(db),
					   "6f1c1d2e-8a7b-4c3d-9e0f-112233445566",
					   id3, &err),
			 VG_OK);
	assert_string_equal(id3, id1);
	admin_sql("vigil",
		  "SELECT state || '|' || (archived_at IS NOT NULL) FROM "
		  "vigil.tenants",
		  v, sizeof(v));
	assert_string_equal(v, "archived|true");
	/* ... and the name is free again for a new Tenant */
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), twin, id3, &err),
			 VG_OK);
	assert_string_not_equal(id3, id1);
	/* a Tenant that never had a row */
	assert_int_equal(tenant_db_archive(tenant_db_pool(db),
					   "00000000-0000-4000-8000-0000000000ff",
					   id3, &err),
			 VG_OK);
	assert_string_equal(id3, "");
	assert_int_equal(tenant_db_archive(tenant_db_pool(db), "nope", id3,
					   &err),
			 VG_INVAL);

	/* the agent token becomes an agent API key (prefix and SHA-256 of
	 * the whole key), registered once; a new token revokes the old */
	{
		json_t *s1 = NULL, *s2 = NULL;
		const char *tok1, *tok2;
		char q[512];

		assert_int_equal(tenant_agent_secret(t, &s1, &err), VG_OK);
		assert_int_equal(tenant_agent_secret(t, &s2, &err), VG_OK);
		tok1 = vg_json_get_str(s1, "stringData.token", "");
		tok2 = vg_json_get_str(s2, "stringData.token", "");
		for (int k = 0; k < 2; k++)
			if (tenant_db_register_agent_key(tenant_db_pool(db), id1,
							 tok1, &err) != VG_OK)
				fail_msg("register: %s", err.msg);
		snprintf(q, sizeof(q),
			 "SELECT count(*) || '|' || min(role) || '|' || "
			 "bool_and(hash = sha256('%s'::bytea)) || '|' || "
			 "bool_and(revoked_at IS NULL) FROM vigil.api_keys "
			 "WHERE tenant_id = '%s' AND prefix = '%.12s'",
			 tok1, id1, tok1);
		admin_sql("vigil", q, v, sizeof(v));
		assert_string_equal(v, "1|agent|true|true");
		assert_int_equal(tenant_db_register_agent_key(tenant_db_pool(db),
							      id1, tok2, &err),
				 VG_OK);
		snprintf(q, sizeof(q),
			 "SELECT string_agg((prefix = '%.12s')::text || ':' || "
			 "(revoked_at IS NULL)::text, ',' ORDER BY prefix = "
			 "'%.12s') FROM vigil.api_keys WHERE tenant_id = '%s'",
			 tok1, tok1, id1);
		admin_sql("vigil", q, v, sizeof(v));
		assert_string_equal(v, "false:true,true:false");
		/* another tenant cannot claim the key */
		assert_int_not_equal(tenant_db_register_agent_key(
					     tenant_db_pool(db), id3, tok2, &err),
				     VG_OK);
		assert_int_equal(tenant_db_register_agent_key(tenant_db_pool(db),
							      id1, "vgk_short",
							      &err),
				 VG_INVAL);
		json_decref(s1);
		json_decref(s2);
	}

	/* the same conninfo shares the pool */
	struct tenant_db *again = NULL;
	assert_int_equal(tenant_db_get(ci, &again, &err), VG_OK);
	assert_ptr_equal(again, db);
	tenant_db_put(again);
	tenant_db_put(db);
	json_decref(twin);
	json_decref(t);
}

static void test_db_outage_is_reported_not_fatal(void **state)
{
	(void)state;
	struct tenant_db *db = NULL;
	struct vg_err err = { 0 };
	json_t *t = acme();
	char ci[256], id[37];
	struct timespec t0, t1;

	vg_ts_pg_conninfo(&pg, "postgres", "vigil", ci, sizeof(ci));
	assert_int_equal(tenant_db_get(ci, &db, &err), VG_OK);
	assert_int_equal(vg_ts_stop(&pg), 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), t, id, &err),
			 VG_IO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(tenant_db_reason(&err), "DatabaseUnavailable");
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	tenant_db_put(db);

	/* a new target that is down: the handle fails the same way */
	assert_int_equal(tenant_db_get(ci, &db, &err), VG_OK); /* migrated */
	tenant_db_put(db);
	tenant_db_shutdown();
	assert_int_equal(tenant_db_get(ci, &db, &err), VG_IO);
	assert_string_equal(tenant_db_reason(&err), "DatabaseUnavailable");

	/* back: the same call succeeds, the row is still there */
	assert_int_equal(vg_ts_restart(&pg), 0);
	assert_int_equal(tenant_db_get(ci, &db, &err), VG_OK);
	assert_int_equal(tenant_db_upsert(tenant_db_pool(db), t, id, &err),
			 VG_OK);
	tenant_db_put(db);
	tenant_db_shutdown();
	json_decref(t);
	vg_ts_cleanup(&pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_namespace_default_and_override),
		cmocka_unit_test(test_children_in_apply_order_with_labels),
		cmocka_unit_test(test_quota_to_resourcequota_and_limitrange),
		cmocka_unit_test(test_quota_defaults_and_canonical_form),
		cmocka_unit_test(test_quota_invalid),
		cmocka_unit_test(test_networkpolicy_from_allowed_targets),
		cmocka_unit_test(test_networkpolicy_never_allows_everything),
		cmocka_unit_test(test_rbac_for_admin_users_and_groups),
		cmocka_unit_test(test_agent_secret_random_token),
		cmocka_unit_test(test_platform_database_and_conninfo),
		cmocka_unit_test(test_db_upsert_is_idempotent_and_archives),
		cmocka_unit_test(test_db_outage_is_reported_not_fatal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
