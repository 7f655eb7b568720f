/*
 * api_tenants.c - /v1/tenants: platform admins list, read and create or
 * update tenants (the operator does the same straight in the database);
 * tenant members read their own tenant.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdlib.h>
#include <string.h>

#define TENANT_COLS                                                      \
	"id, k8s_uid, name, display_name, namespace, state, created_at," \
	" updated_at, archived_at"

static const char tenant_spec[] = "id,k8s_uid,name,display_name,namespace,"
				  "state,created_at,updated_at,archived_at";

const struct vg_json_field api_tenant_body[] = {
	{"k8s_uid", VG_JSON_UUID, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{"name", VG_JSON_STRING, VG_JSON_REQUIRED, 1, 63, NULL, 0},
	{"display_name", VG_JSON_STRING, VG_JSON_TEXT | VG_JSON_NULLABLE, 0,
         128, NULL, 0},
	{"namespace", VG_JSON_STRING, VG_JSON_NULLABLE, 0, 63, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

/* RFC 1123 label, as Kubernetes names a Tenant */
static int dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

struct list_arg {
	json_t *out;
};

static int list_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct list_arg *a = arg;
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(c, "SELECT " TENANT_COLS " FROM tenant_list()", 0,
	                    NULL, &r, err);

	json_decref(a->out);
	a->out = rc == VG_OK ? gw_rows_json(r, tenant_spec) : NULL;
	vg_db_res_free(r);
	if (rc == VG_OK && !a->out)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

void api_tenants_list(struct gw_rctx *rc)
{
	struct list_arg a = {NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, VG_DB_TX_READ_ONLY, list_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, json_pack("{s:o}", "items", a.out));
}

static int get_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct list_arg *a = arg;
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(c,
	                    "SELECT " TENANT_COLS
	                    " FROM tenants WHERE id = current_tenant()",
	                    0, NULL, &r, err);

	json_decref(a->out);
	a->out = NULL;
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "tenant not found");
	else if (rc == VG_OK && !(a->out = gw_row_json(r, 0, tenant_spec)))
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	vg_db_res_free(r);
	return rc;
}

void api_tenants_get(struct gw_rctx *rc)
{
	struct list_arg a = {NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, VG_DB_TX_READ_ONLY, get_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, a.out);
}

struct upsert_arg {
	struct gw_rctx *rc;
	json_t *out;
	int created;
};

static int upsert_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct upsert_arg *a = arg;
	const json_t *b = a->rc->body;
	const char *p[4] = {
		vg_json_get_str(b, "k8s_uid", ""),
		vg_json_get_str(b, "name", ""),
		vg_json_get_str(b, "display_name", ""),
		vg_json_get_str(b, "namespace", ""),
	};
	struct vg_db_res *r = NULL;
	char *id = NULL;
	const char *q[1];
	json_t *details;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	rc = vg_db_query_value(c, "SELECT tenant_upsert($1, $2, $3, $4)", 4, p,
	                       &id, err);
	if (rc != VG_OK)
		return rc;
	q[0] = id;
	/* read the row back through row-level security, as its tenant; a
	 * row created by this transaction has created_at = now() */
	rc = vg_db_exec(c, "SELECT set_config('vigil.tenant_id', $1, true)", 1,
	                q, NULL, err);
	if (rc == VG_OK)
		rc = vg_db_exec(c,
		                "SELECT " TENANT_COLS ", created_at = now()"
		                " FROM tenants WHERE id = $1",
		                1, q, &r, err);
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_INTERNAL, "upserted tenant not found");
	if (rc == VG_OK) {
		a->out = gw_row_json(r, 0, tenant_spec);
		a->created = vg_db_res_get(r, 0, 9)[0] == 't';
	}
	vg_db_res_free(r);
	/* the entry goes to the platform's chain: the request has no
	 * tenant; reset the tenant so audit_append_platform runs as such */
	if (rc == VG_OK)
		rc = vg_db_exec(
			c, "SELECT set_config('vigil.tenant_id', '', true)", 0,
			NULL, NULL, err);
	details = json_pack("{s:s, s:s, s:b}", "name", p[1], "k8s_uid", p[0],
	                    "created", a->created);
	if (rc == VG_OK)
		rc = gw_audit(c, a->rc, "tenant.upsert", "tenant", id, details,
		              err);
	json_decref(details);
	free(id);
	if (rc == VG_OK && !a->out)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

void api_tenants_create(struct gw_rctx *rc)
{
	struct upsert_arg a = {rc, NULL, 0};
	struct vg_err err = {0};
	const char *name = vg_json_get_str(rc->body, "name", "");
	const char *ns = vg_json_get_str(rc->body, "namespace", "");
	int r;

	if (!dns_label(name)) {
		gw_reply_error(rc, 422, "validation_failed",
		               "name: lower-case letters, digits and '-', "
		               "starting and ending with a letter or digit");
		return;
	}
	if (*ns && !dns_label(ns)) {
		gw_reply_error(rc, 422, "validation_failed",
		               "namespace: not a valid namespace name");
		return;
	}
	r = gw_tx(rc, 0, upsert_tx, &a, &err);
	if (r == VG_EXISTS) {
		gw_reply_error(rc, 409, "conflict",
		               "another tenant is called \"%s\"", name);
		return;
	}
	if (r != VG_OK) {
		json_decref(a.out);
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO,
	        a.created ? "tenant created" : "tenant updated", "name", name,
	        NULL);
	gw_reply_json(rc, a.created ? 201 : 200, a.out);
}
