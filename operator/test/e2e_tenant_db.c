/* e2e_tenant_db.c - the Tenant controller against the real API server and a
 * real PostgreSQL: children created and converged without further writes,
 * the database row written, an outage reported and recovered from, and a
 * deletion that archives the row before the Tenant goes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "resources.h"
#include "tenant.h"
#include "testsupport/services.h"
#include "vigil/json.h"
#include "vigil/kube.h"
#include "vigil/yaml.h"

static struct vg_kube_client *client;
static struct vg_ts_service pg;
static struct manager *mgr;
static char conninfo[256], name[64], ns[80];
static struct tenant_env env;

static void admin_sql(const char *sql, char *val, size_t n)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQexec(c, sql);

	if (val)
		snprintf(val, n, "%s",
			 PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r)
				 ? PQgetvalue(r, 0, 0)
				 : "");
	PQclear(r);
	PQfinish(c);
}

static int install_crd(void)
{
	struct vg_err err = { 0 };
	json_t *crd = NULL;
	int rc;

	if (vg_yaml_load_file("crds/vigil.dev_tenants.yaml", &crd, &err) !=
	    VG_OK) {
		fprintf(stderr, "CRD: %s\n", err.msg);
		return -1;
	}
	rc = vg_kube_create(client, &vg_kube_crds, NULL, crd, NULL, NULL, &err);
	json_decref(crd);
	if (rc != VG_OK && rc != VG_EXISTS) {
		fprintf(stderr, "create CRD: %s\n", err.msg);
		return -1;
	}
	for (int i = 0; i < 100; i++) { /* Established, then served */
		json_t *list = NULL;

		if (vg_kube_list(client, &vigil_tenants, NULL, NULL, &list,
				 &err) == VG_OK) {
			json_decref(list);
			return 0;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "Tenant CRD not served: %s\n", err.msg);
	return -1;
}

static int setup(void **state)
{
	(void)state;
	struct vg_kube_config cfg;
	struct vg_err err = { 0 };
	struct manager_opts mo = { .workers = 2 };
	char ci[256];

	vg_kube_config_init(&cfg);
	if (vg_kube_config_load_file(&cfg, NULL, NULL, &err) != VG_OK ||
	    vg_kube_client_new(&cfg, NULL, &client, &err) != VG_OK) {
		fprintf(stderr, "kubeconfig: %s (is KUBECONFIG set?)\n",
			err.msg);
		vg_kube_config_cleanup(&cfg);
		return -1;
	}
	vg_kube_config_cleanup(&cfg);
	if (install_crd() != 0 || vg_ts_pg_start(&pg) != 0)
		return -1;
	vg_ts_pg_conninfo(&pg, "postgres", "postgres", ci, sizeof(ci));
	snprintf(conninfo, sizeof(conninfo), "%s", ci);
	admin_sql("CREATE DATABASE vigil", NULL, 0);
	vg_ts_pg_conninfo(&pg, "postgres", "vigil", conninfo, sizeof(conninfo));
	env.database_url = conninfo;

	snprintf(name, sizeof(name), "e2e-%ld", (long)getpid());
	snprintf(ns, sizeof(ns), "tenant-%s", name);
	mo.client = client;
	mgr = manager_new(&mo);
	struct controller_def *def = calloc(1, sizeof(*def));
	*def = tenant_controller;
	def->ctx = &env;
	if (!mgr || manager_add(mgr, def) != 0 || manager_start(mgr) != 0 ||
	    manager_wait_synced(mgr, 30000) != 1 ||
	    manager_run_workers(mgr) != 0) {
		fprintf(stderr, "manager did not start\n");
		return -1;
	}
	*state = def;
	return 0;
}

static int teardown(void **state)
{
	struct vg_err err = { 0 };

	vg_kube_delete(client, &vg_kube_namespaces, NULL, ns, NULL, NULL,
		       &err);
	manager_stop(mgr);
	manager_free(mgr);
	free(*state);
	tenant_db_shutdown();
	vg_kube_client_free(client);
	vg_ts_cleanup(&pg);
	return 0;
}

static json_t *get(const struct vg_kube_resource *r, const char *in_ns,
		   const char *obj)
{
	struct vg_err err = { 0 };
	json_t *o = NULL;

	vg_kube_get(client, r, in_ns, obj, NULL, &o, &err);
	return o;
}

static const char *cond(const json_t *t, const char *type, const char *field)
{
	size_t i;
	json_t *c;

	json_array_foreach(vg_json_get(t, "status.conditions"), i, c)
	{
		if (strcmp(vg_json_get_str(c, "type", ""), type) == 0)
			return vg_json_get_str(c, field, NULL);
	}
	return NULL;
}

/* Poll until the Tenant's condition `type` has `reason` (30 s). */
static json_t *wait_reason(const char *type, const char *reason)
{
	for (int i = 0; i < 300; i++) {
		json_t *t = get(&vigil_tenants, NULL, name);
		const char *r = cond(t, type, "reason");

		if (r && strcmp(r, reason) == 0 &&
		    vg_json_get_int(t, "status.observedGeneration", -1) ==
			    vg_json_get_int(t, "metadata.generation", -2))
			return t;
		json_decref(t);
		usleep(100 * 1000);
	}
	json_t *t = get(&vigil_tenants, NULL, name);
	char *s = t ? json_dumps(vg_json_get(t, "status"), JSON_COMPACT) : NULL;
	fail_msg("%s never became %s; status %s", type, reason,
		 s ? s : "(none)");
	return NULL;
}

static void patch_spec(const char *spec_json)
{
	struct vg_kube_patch_opts po = { .type = VG_KUBE_PATCH_MERGE };
	struct vg_err err = { 0 };
	json_t *p = NULL;
	char body[512];

	snprintf(body, sizeof(body), "{\"spec\":%s}", spec_json);
	assert_int_equal(vg_json_loadb(body, strlen(body), 0, &p, &err), VG_OK);
	if (vg_kube_patch(client, &vigil_tenants, NULL, name, p, &po, NULL,
			  &err) != VG_OK)
		fail_msg("patch: %s", err.msg);
	json_decref(p);
}

static void test_tenant_lifecycle(void **state)
{
	(void)state;
	static const struct {
		const struct vg_kube_resource *r;
		const char *name;
	} children[] = {
		{ &vg_kube_resourcequotas, TENANT_QUOTA_NAME },
		{ &vg_kube_limitranges, TENANT_LIMITS_NAME },
		{ &vg_kube_networkpolicies, TENANT_NETPOL_NAME },
		{ &vg_kube_roles, TENANT_ROLE_NAME },
		{ &vg_kube_rolebindings, TENANT_BINDING_NAME },
		{ &vg_kube_secrets, TENANT_AGENT_SECRET },
	};
	struct vg_err err = { 0 };
	char body[1024], sql[256], v[128], id[40];
	json_t *t, *o;
	uint64_t w0, w1;

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"vigil.dev/v1alpha1\",\"kind\":\"Tenant\","
		 "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"displayName\":"
		 "\"E2E\",\"allowedTargets\":[\"192.0.2.0/24\","
		 "\"2001:db8::/48\",\"scan.example.com\"],\"quota\":"
		 "{\"maxAgentPods\":4,\"agentCPU\":\"2\",\"agentMemory\":"
		 "\"2Gi\"},\"admins\":{\"users\":[\"alice\"],\"groups\":"
		 "[\"secops\"]}}}",
		 name);
	assert_int_equal(vg_json_loadb(body, strlen(body), 0, &o, &err), VG_OK);
	if (vg_kube_create(client, &vigil_tenants, NULL, o, NULL, NULL, &err) !=
	    VG_OK)
		fail_msg("create Tenant: %s", err.msg);
	json_decref(o);

	/* converged: Ready, the row written, the children there */
	t = wait_reason("Ready", "Reconciled");
	assert_string_equal(cond(t, "Ready", "status"), "True");
	assert_string_equal(cond(t, "Degraded", "status"), "False");
	assert_string_equal(vg_json_get_str(t, "status.namespace", ""), ns);
	assert_string_equal(vg_json_get_str(t, "metadata.finalizers[0]", ""),
			    TENANT_FINALIZER);
	snprintf(id, sizeof(id), "%s",
		 vg_json_get_str(t, "status.databaseID", ""));
	assert_true(vg_db_is_uuid(id));
	snprintf(sql, sizeof(sql),
		 "SELECT name || '|' || state || '|' || k8s_uid FROM "
		 "vigil.tenants WHERE id = '%s'",
		 id);
	admin_sql(sql, v, sizeof(v));
	snprintf(body, sizeof(body), "%s|active|%s", name,
		 vg_json_get_str(t, "metadata.uid", ""));
	assert_string_equal(v, body);
	json_decref(t);

	o = get(&vg_kube_namespaces, NULL, ns);
	assert_non_null(o);
	assert_string_equal(
		vg_json_get_str(o, "metadata.labels[\"vigil.dev/tenant\"]", ""),
		name);
	json_decref(o);
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
		o = get(children[i].r, ns, children[i].name);
		if (!o)
			fail_msg("%s %s missing", children[i].r->kind,
				 children[i].name);
		json_decref(o);
	}
	o = get(&vg_kube_resourcequotas, ns, TENANT_QUOTA_NAME);
	assert_string_equal(vg_json_get_str(o, "spec.hard[\"limits.memory\"]", ""),
			    "2Gi");
	json_decref(o);

	/* a converged tenant is left alone: no write in 3 s */
	sleep(1);
	w0 = manager_writes(mgr);
	sleep(3);
	w1 = manager_writes(mgr);
	assert_int_equal(w1, w0);

	/* admins removed: the binding goes */
	patch_spec("{\"admins\":null}");
	json_decref(wait_reason("Ready", "Reconciled"));
	for (int i = 0; i < 100; i++) {
		o = get(&vg_kube_rolebindings, ns, TENANT_BINDING_NAME);
		if (!o)
			break;
		json_decref(o);
		usleep(100 * 1000);
	}
	assert_null(o);

	/* the database goes away: Degraded, bounded writes, then recovery */
	assert_int_equal(vg_ts_stop(&pg), 0);
	patch_spec("{\"displayName\":\"E2E renamed\"}");
	t = wait_reason("Degraded", "DatabaseUnavailable");
	assert_string_equal(cond(t, "Ready", "status"), "False");
	assert_string_equal(vg_json_get_str(t, "status.databaseID", ""), id);
	json_decref(t);
	w0 = manager_writes(mgr);
	sleep(3);
	w1 = manager_writes(mgr);
	/* backoff, not a hot loop: a few Event count updates at most */
	assert_true(w1 - w0 < 10);
	assert_int_equal(vg_ts_restart(&pg), 0);
	t = wait_reason("Ready", "Reconciled");
	json_decref(t);
	snprintf(sql, sizeof(sql),
		 "SELECT display_name FROM vigil.tenants WHERE id = '%s'", id);
	admin_sql(sql, v, sizeof(v));
	assert_string_equal(v, "E2E renamed");

	/* deletion: archived, then the finalizer lets the Tenant go */
	assert_int_equal(vg_kube_delete(client, &vigil_tenants, NULL, name,
					NULL, NULL, &err),
			 VG_OK);
	for (int i = 0; i < 300; i++) {
		t = get(&vigil_tenants, NULL, name);
		if (!t)
			break;
		json_decref(t);
		usleep(100 * 1000);
	}
	assert_null(t);
	snprintf(sql, sizeof(sql),
		 "SELECT state || '|' || (archived_at IS NOT NULL) FROM "
		 "vigil.tenants WHERE id = '%s'",
		 id);
	admin_sql(sql, v, sizeof(v));
	assert_string_equal(v, "archived|true");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tenant_lifecycle),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
