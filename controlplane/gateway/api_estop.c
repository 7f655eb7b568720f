/*
 * api_estop.c - /v1/emergency-stop: everyone authenticated (agents too)
 * reads it; platform admins engage and release it. The state lives in
 * PostgreSQL, so it survives restarts and every replica agrees.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdlib.h>
#include <string.h>

const struct vg_json_field api_estop_body[] = {
	{"engaged", VG_JSON_BOOL, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{"reason", VG_JSON_STRING, VG_JSON_TEXT | VG_JSON_NULLABLE, 0, 512,
         NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const char estop_spec[] = "engaged:b,reason,changed_by,changed_at";

static const struct vg_db_stmt st_estop = {
	.name = "gw_estop",
	.sql = "SELECT engaged, reason, changed_by, changed_at"
	       " FROM emergency_stop",
	.nparams = 0,
};

static void set_state(struct gw *g, int engaged)
{
	atomic_store(&g->estop, engaged);
	vg_gauge_set(g->m.estop, engaged);
}

static int read_row(struct gw *g, json_t **out, struct vg_err *err)
{
	struct vg_db_conn *c = NULL;
	struct vg_db_res *r = NULL;
	int rc = vg_db_acquire(g->db, &c, err);

	if (rc == VG_OK)
		rc = vg_db_exec_stmt(c, &st_estop, NULL, &r, err);
	vg_db_release(c);
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_INTERNAL, "emergency_stop has no row");
	if (rc == VG_OK) {
		set_state(g, vg_db_res_get(r, 0, 0)[0] == 't');
		if (out && !(*out = gw_row_json(r, 0, estop_spec)))
			rc = vg_err_set(err, VG_NOMEM, "out of memory");
	}
	vg_db_res_free(r);
	return rc;
}

int gw_estop_read(struct gw *g, int *engaged, struct vg_err *err)
{
	int rc = read_row(g, NULL, err);

	if (rc == VG_OK && engaged)
		*engaged = atomic_load(&g->estop);
	return rc;
}

void api_estop_get(struct gw_rctx *rc)
{
	struct vg_err err = {0};
	json_t *out = NULL;
	int r = read_row(rc->g, &out, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, out);
}

struct put_arg {
	struct gw_rctx *rc;
	json_t *out;
};

static int put_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct put_arg *a = arg;
	int engaged = vg_json_get_bool(a->rc->body, "engaged", 0);
	const char *p[] = {engaged ? "true" : "false",
	                   vg_json_get_str(a->rc->body, "reason", ""),
	                   a->rc->who.actor};
	struct vg_db_res *r = NULL;
	json_t *details;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	rc = vg_db_exec(c,
	                "UPDATE emergency_stop SET engaged = $1::boolean,"
	                " reason = $2, changed_by = $3, changed_at = now()"
	                " RETURNING engaged, reason, changed_by, changed_at",
	                3, p, &r, err);
	if (rc == VG_OK && !(a->out = gw_row_json(r, 0, estop_spec)))
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	vg_db_res_free(r);
	if (rc != VG_OK)
		return rc;
	details = json_pack("{s:b, s:s}", "engaged", engaged, "reason", p[1]);
	rc = gw_audit(c, a->rc,
	              engaged ? "emergency_stop.engage"
	                      : "emergency_stop.release",
	              "emergency_stop", "platform", details, err);
	json_decref(details);
	return rc;
}

void api_estop_put(struct gw_rctx *rc)
{
	struct put_arg a = {rc, NULL};
	struct vg_err err = {0};
	int engaged = vg_json_get_bool(rc->body, "engaged", 0);
	int r = gw_tx(rc, 0, put_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	set_state(rc->g, engaged);
	gw_rlog(rc, VG_LOG_WARN,
	        engaged ? "emergency stop engaged" : "emergency stop released",
	        "reason", vg_json_get_str(rc->body, "reason", ""), NULL);
	gw_reply_json(rc, 200, a.out);
}

static int engage_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	int *changed = arg;
	struct vg_db_res *r = NULL;
	int rc =
		vg_db_exec(c,
	                   "UPDATE emergency_stop SET engaged = true,"
	                   " reason = 'VIGIL_EMERGENCY_STOP',"
	                   " changed_by = 'platform-config', changed_at = now()"
	                   " WHERE NOT engaged",
	                   0, NULL, &r, err);

	*changed = rc == VG_OK && vg_db_res_affected(r) == 1;
	vg_db_res_free(r);
	if (rc == VG_OK && *changed)
		rc = vg_db_exec(
			c,
			"SELECT audit_append_platform('platform-config',"
			" 'emergency_stop.engage', 'emergency_stop',"
			" 'platform', '', '{\"source\":"
			" \"VIGIL_EMERGENCY_STOP\"}'::jsonb)",
			0, NULL, NULL, err);
	return rc;
}

int gw_estop_engage_from_config(struct gw *g, struct vg_err *err)
{
	int changed = 0;
	int rc = vg_db_tx(g->db, NULL, 0, engage_tx, &changed, err);

	if (rc == VG_OK) {
		set_state(g, 1);
		if (changed) {
			gw_audit_committed(g, 1);
			vg_warn("emergency stop engaged by configuration");
		}
	}
	return rc;
}
