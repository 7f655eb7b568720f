/*
 * api_users.c - a tenant's users and role bindings.
 *
 * Users are global (one person may work for several tenants); a tenant
 * sees and manages only the bindings to itself. Creating a user with a
 * password needs a new subject, so no tenant admin can set the password
 * of an account another tenant (or the platform) uses.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdlib.h>
#include <string.h>

static const char *const tenant_roles[] = {"admin", "analyst", "viewer", NULL};

const struct vg_json_field api_user_body[] = {
	{"subject", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 256,
         NULL, 0},
	{"email", VG_JSON_STRING, VG_JSON_TEXT | VG_JSON_NULLABLE, 0, 256, NULL,
         0},
	{"display_name", VG_JSON_STRING, VG_JSON_TEXT | VG_JSON_NULLABLE, 0,
         128, NULL, 0},
	{"password", VG_JSON_STRING, VG_JSON_NULLABLE, 8, 1024, NULL, 0},
	{"role", VG_JSON_STRING, VG_JSON_REQUIRED, 0, 0, tenant_roles, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

const struct vg_json_field api_binding_body[] = {
	{"user_id", VG_JSON_UUID, VG_JSON_NULLABLE, 0, 0, NULL, 0},
	{"subject", VG_JSON_STRING, VG_JSON_TEXT | VG_JSON_NULLABLE, 1, 256,
         NULL, 0},
	{"role", VG_JSON_STRING, VG_JSON_REQUIRED, 0, 0, tenant_roles, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

struct q_arg {
	struct gw_rctx *rc;
	const char *sql;
	const char *spec;
	int nparams;
	const char *const *params;
	json_t *out;
};

static int query_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct q_arg *a = arg;
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(c, a->sql, a->nparams, a->params, &r, err);

	json_decref(a->out);
	a->out = rc == VG_OK ? gw_rows_json(r, a->spec) : NULL;
	vg_db_res_free(r);
	if (rc == VG_OK && !a->out)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

static void list(struct gw_rctx *rc, const char *sql, const char *spec)
{
	struct q_arg a = {rc, sql, spec, 0, NULL, NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, VG_DB_TX_READ_ONLY, query_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, json_pack("{s:o}", "items", a.out));
}

void api_users_list(struct gw_rctx *rc)
{
	list(rc,
	     "SELECT u.id, u.subject, u.email, u.display_name, u.disabled,"
	     " b.role, b.id, b.created_at"
	     " FROM users u JOIN role_bindings b ON b.user_id = u.id"
	     " WHERE b.tenant_id = current_tenant() ORDER BY u.subject",
	     "id,subject,email,display_name,disabled:b,role,binding_id,"
	     "bound_at");
}

void api_bindings_list(struct gw_rctx *rc)
{
	list(rc,
	     "SELECT b.id, b.user_id, u.subject, b.role, b.created_at,"
	     " b.created_by FROM role_bindings b JOIN users u"
	     " ON u.id = b.user_id WHERE b.tenant_id = current_tenant()"
	     " ORDER BY b.created_at, b.id",
	     "id,user_id,subject,role,created_at,created_by");
}

/* ------------------------------------------------------------------ */
/* Create                                                               */
/* ------------------------------------------------------------------ */

struct bind_arg {
	struct gw_rctx *rc;
	const char *password_hash; /* create a user with it, or NULL */
	const char *user_id;       /* bind this user ... */
	const char *subject;       /* ... or the one with this subject */
	int create;                /* users endpoint: create when missing */
	char user[40];
	char binding[40];
	int created_user;
};

static int bind_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct bind_arg *a = arg;
	const json_t *b = a->rc->body;
	const char *role = vg_json_get_str(b, "role", "");
	char *v = NULL;
	json_t *details;
	int rc = VG_OK;

	a->created_user = 0;
	a->user[0] = '\0';
	if (a->user_id) {
		snprintf(a->user, sizeof(a->user), "%s", a->user_id);
	} else {
		const char *p[] = {a->subject};

		if (!a->password_hash)
			rc = vg_db_query_value(c,
			                       "SELECT user_id_by_subject($1)",
			                       1, p, &v, err);
		if (rc == VG_OK && v)
			snprintf(a->user, sizeof(a->user), "%s", v);
		free(v);
		v = NULL;
		if (rc == VG_OK && !a->user[0] && !a->create)
			return vg_err_set(err, VG_INVAL,
			                  "subject: no such user");
		if (rc == VG_OK && !a->user[0]) {
			const char *q[] = {
				a->subject, vg_json_get_str(b, "email", ""),
				vg_json_get_str(b, "display_name", ""),
				a->password_hash};

			rc = vg_db_query_value(
				c, "SELECT user_create($1, $2, $3, $4)", 4, q,
				&v, err);
			if (rc == VG_EXISTS)
				return vg_err_set(err, VG_EXISTS,
				                  "a user with this subject "
				                  "exists; bind it without a "
				                  "password");
			if (rc == VG_OK)
				snprintf(a->user, sizeof(a->user), "%s", v);
			free(v);
			v = NULL;
			a->created_user = rc == VG_OK;
		}
	}
	if (rc == VG_OK) {
		const char *p[] = {a->user, role, a->rc->who.actor};

		rc = vg_db_query_value(
			c,
			"INSERT INTO role_bindings (user_id, tenant_id, role,"
			" created_by) VALUES ($1, current_tenant(), $2, $3)"
			" RETURNING id",
			3, p, &v, err);
		if (rc == VG_EXISTS)
			return vg_err_set(err, VG_EXISTS,
			                  "the user already has a role in this "
			                  "tenant");
		if (rc == VG_CONFLICT)
			return vg_err_set(err, VG_INVAL,
			                  "user_id: no such user");
	}
	if (rc != VG_OK)
		return rc;
	snprintf(a->binding, sizeof(a->binding), "%s", v);
	free(v);
	details = json_pack("{s:s, s:s, s:b}", "user_id", a->user, "role", role,
	                    "created_user", a->created_user);
	rc = gw_audit(c, a->rc,
	              a->create ? "user.create" : "role_binding.create",
	              a->create ? "user" : "role_binding",
	              a->create ? a->user : a->binding, details, err);
	json_decref(details);
	return rc;
}

static void reply_bind_failure(struct gw_rctx *rc, int r, struct vg_err *err)
{
	/* the messages set in bind_tx say what to fix */
	if (r == VG_EXISTS || r == VG_INVAL)
		gw_reply_error(rc, r == VG_EXISTS ? 409 : 422,
		               r == VG_EXISTS ? "conflict"
		                              : "validation_failed",
		               "%s", err->msg);
	else
		gw_reply_failure(rc, r, err);
}

void api_users_create(struct gw_rctx *rc)
{
	struct bind_arg a = {.rc = rc, .create = 1};
	struct vg_err err = {0};
	const char *pw = vg_json_get_str(rc->body, "password", NULL);
	char hash[256];
	int r;

	a.subject = vg_json_get_str(rc->body, "subject", "");
	if (pw) {
		if (gw_password_hash(pw, hash, sizeof(hash)) != VG_OK) {
			gw_reply_error(rc, 500, "internal",
			               "could not hash the password");
			return;
		}
		a.password_hash = hash;
	}
	r = gw_tx(rc, 0, bind_tx, &a, &err);
	if (r != VG_OK) {
		reply_bind_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "user bound to tenant", "user_id", a.user,
	        "role", vg_json_get_str(rc->body, "role", ""), NULL);
	gw_reply_json(rc, 201,
	              json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", a.user,
	                        "subject", a.subject, "role",
	                        vg_json_get_str(rc->body, "role", ""),
	                        "binding_id", a.binding, "email",
	                        vg_json_get_str(rc->body, "email", ""),
	                        "created", a.created_user));
}

void api_bindings_create(struct gw_rctx *rc)
{
	struct bind_arg a = {.rc = rc};
	struct vg_err err = {0};
	int r;

	a.user_id = vg_json_get_str(rc->body, "user_id", NULL);
	a.subject = vg_json_get_str(rc->body, "subject", NULL);
	if (!a.user_id == !a.subject) {
		gw_reply_error(rc, 422, "validation_failed",
		               "give exactly one of user_id and subject");
		return;
	}
	r = gw_tx(rc, 0, bind_tx, &a, &err);
	if (r != VG_OK) {
		reply_bind_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_reply_json(rc, 201,
	              json_pack("{s:s, s:s, s:s}", "id", a.binding, "user_id",
	                        a.user, "role",
	                        vg_json_get_str(rc->body, "role", "")));
}

/* ------------------------------------------------------------------ */
/* Delete                                                               */
/* ------------------------------------------------------------------ */

struct del_arg {
	struct gw_rctx *rc;
	const char *sql;
	const char *action, *type;
};

static int del_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct del_arg *a = arg;
	const char *p[] = {a->rc->params[1]};
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(c, a->sql, 1, p, &r, err);

	if (rc == VG_OK && vg_db_res_affected(r) == 0)
		rc = vg_err_set(err, VG_NOTFOUND, "%s not found", a->type);
	vg_db_res_free(r);
	if (rc == VG_OK)
		rc = gw_audit(c, a->rc, a->action, a->type, p[0], NULL, err);
	return rc;
}

static void del(struct gw_rctx *rc, const char *sql, const char *action,
                const char *type)
{
	struct del_arg a = {rc, sql, action, type};
	struct vg_err err = {0};
	int r;

	if (!vg_db_is_uuid(rc->params[1])) {
		gw_reply_error(rc, 404, "not_found", "%s not found", type);
		return;
	}
	r = gw_tx(rc, 0, del_tx, &a, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_reply_no_content(rc, 204);
}

void api_users_delete(struct gw_rctx *rc)
{
	del(rc,
	    "DELETE FROM role_bindings WHERE user_id = $1"
	    " AND tenant_id = current_tenant()",
	    "user.remove", "user");
}

void api_bindings_delete(struct gw_rctx *rc)
{
	del(rc,
	    "DELETE FROM role_bindings WHERE id = $1"
	    " AND tenant_id = current_tenant()",
	    "role_binding.delete", "role binding");
}
