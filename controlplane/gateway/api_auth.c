/*
 * api_auth.c - sign-in with a password, sign-out, whoami, and the probes
 * served on the API port.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

const struct vg_json_field api_login_body[] = {
	{"subject", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 256,
         NULL, 0},
	{"password", VG_JSON_STRING, VG_JSON_REQUIRED, 1, 1024, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const struct vg_db_stmt st_password = {
	.name = "gw_user_password",
	.sql = "SELECT user_id, password_hash, disabled"
	       " FROM user_password_get($1)",
	.nparams = 1,
};

struct audit_arg {
	struct gw_rctx *rc;
	const char *action;
	const char *object_id;
};

static int audit_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct audit_arg *a = arg;

	return gw_audit(c, a->rc, a->action, "session", a->object_id, NULL,
	                err);
}

void api_login(struct gw_rctx *rc)
{
	struct gw *g = rc->g;
	const char *subject = vg_json_get_str(rc->body, "subject", "");
	const char *password = vg_json_get_str(rc->body, "password", "");
	const char *p[] = {subject};
	struct vg_db_conn *c = NULL;
	struct vg_db_res *res = NULL;
	struct vg_err err = {0};
	char user_id[40] = "", token[96];
	int r, ok;

	if (gw_auth_limit_check(rc, subject))
		return;
	r = vg_db_acquire(g->db, &c, &err);
	if (r == VG_OK)
		r = vg_db_exec_stmt(c, &st_password, p, &res, &err);
	vg_db_release(c);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	if (vg_db_res_rows(res) == 1) {
		snprintf(user_id, sizeof(user_id), "%s",
		         vg_db_res_get(res, 0, 0));
		ok = gw_password_verify(vg_db_res_get(res, 0, 1), password) &&
		     vg_db_res_get(res, 0, 2)[0] == 'f';
	} else {
		/* the same work for an unknown user as for a known one */
		gw_password_verify(gw_password_dummy(), password);
		ok = 0;
	}
	vg_db_res_free(res);
	if (!ok) {
		gw_auth_limit_fail(rc, subject);
		gw_auth_count(g, "failure");
		gw_rlog(rc, VG_LOG_INFO, "login failed", "subject", subject,
		        "client", rc->client, NULL);
		gw_reply_error(rc, 401, "unauthenticated",
		               "wrong subject or password");
		return;
	}
	gw_auth_limit_reset_user(rc, subject);
	r = gw_session_create(g, user_id, subject, token, sizeof(token), &err);
	if (r == VG_OK) {
		struct audit_arg a = {rc, "auth.login", user_id};

		snprintf(rc->who.actor, sizeof(rc->who.actor), "user:%s",
		         subject);
		r = gw_tx(rc, 0, audit_tx, &a, &err);
		if (r == VG_OK)
			gw_audit_committed(g, 1);
	}
	if (r != VG_OK) {
		OPENSSL_cleanse(token, sizeof(token));
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_auth_count(g, "success");
	gw_rlog(rc, VG_LOG_INFO, "login", "subject", subject, NULL);
	gw_reply_json(rc, 201,
	              json_pack("{s:s, s:s, s:i, s:{s:s, s:s}}", "token", token,
	                        "token_type", "Bearer", "expires_in",
	                        g->cfg->session_ttl_s, "user", "id", user_id,
	                        "subject", subject));
	OPENSSL_cleanse(token, sizeof(token));
}

void api_logout(struct gw_rctx *rc)
{
	struct audit_arg a = {rc, "auth.logout", rc->who.id};
	struct vg_err err = {0};
	int r;

	if (rc->who.kind != PRINC_SESSION) {
		gw_reply_error(rc, 400, "bad_request",
		               "only a login session can log out; revoke API "
		               "keys instead");
		return;
	}
	r = gw_session_delete(rc->g, rc->who.session_id, &err);
	if (r == VG_OK)
		r = gw_tx(rc, 0, audit_tx, &a, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	vg_gauge_dec(rc->g->m.sessions);
	gw_reply_no_content(rc, 204);
}

void api_whoami(struct gw_rctx *rc)
{
	static const char *const kinds[] = {
		[PRINC_NONE] = "none",
		[PRINC_BOOTSTRAP] = "bootstrap",
		[PRINC_API_KEY] = "api_key",
		[PRINC_SESSION] = "session",
	};
	const struct gw_principal *w = &rc->who;
	json_t *b = json_array();

	for (size_t i = 0; b && i < w->nb; i++)
		json_array_append_new(
			b, json_pack("{s:s, s:s, s:s}", "tenant_id",
		                     w->b[i].tenant_id, "tenant_name",
		                     w->b[i].tenant_name, "role",
		                     gw_role_name(w->b[i].role)));
	gw_reply_json(rc, 200,
	              json_pack("{s:s, s:s, s:s, s:b, s:o}", "kind",
	                        kinds[w->kind], "id", w->id, "subject",
	                        w->subject, "platform_admin", w->platform_admin,
	                        "bindings", b));
}

void api_healthz(struct gw_rctx *rc)
{
	gw_reply_json(rc, 200, json_pack("{s:s}", "status", "ok"));
}

void api_readyz(struct gw_rctx *rc)
{
	char reason[128];

	if (gw_ready(rc->g, reason, sizeof(reason))) {
		gw_reply_json(rc, 200, json_pack("{s:s}", "status", "ready"));
		return;
	}
	srv_resp_header(rc->resp, "Retry-After", "1");
	gw_reply_error(rc, 503, "unavailable", "%s", reason);
}
