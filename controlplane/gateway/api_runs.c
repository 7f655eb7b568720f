/*
 * api_runs.c - a tenant's scan runs: the list (filters, keyset pages),
 * one run, an on-demand run record, and cancelling a run.
 *
 * Runs of ScanPolicy Jobs are recorded by ingest (api_ingest.c) from the
 * agents' first batch; an on-demand run starts here as a pending record
 * with trigger "manual". Starting one is refused while the emergency stop
 * is engaged (ROUTE_STOPPABLE in router.c).
 */
#include "gateway.h"

#include "vigil/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const gw_run_states[] = {"pending", "running",  "succeeded",
                                     "failed",  "canceled", NULL};

const struct vg_json_field api_run_body[] = {
	{"policy_namespace", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1,
         63, NULL, 0},
	{"policy_name", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 253,
         NULL, 0},
	{"shards", VG_JSON_INT, VG_JSON_NULLABLE, 1, 100000, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

#define RUN_COLS                                                            \
	"id, policy_namespace, policy_name, policy_uid, job_name, trigger," \
	" state, shards, shards_done, finding_counts, error, created_at,"   \
	" started_at, finished_at"
/* the sort key of a row: the list's cursor */
#define RUN_KEY ", created_at, id"
#define RUN_FILTER                                    \
	" WHERE tenant_id = current_tenant()"         \
	" AND ($1::text IS NULL OR state = $1)"       \
	" AND ($2::text IS NULL OR policy_name = $2)" \
	" AND ($3::text IS NULL OR policy_namespace = $3)"
#define RUN_ORDER " ORDER BY created_at DESC, id DESC LIMIT $4::integer"

static const char run_spec[] =
	"id,policy_namespace,policy_name,policy_uid,job_name,trigger,state,"
	"shards:i,shards_done:i,finding_counts:j,error,created_at,started_at,"
	"finished_at";

static const struct vg_db_stmt st_runs_first = {
	.name = "gw_runs_first",
	.sql = "SELECT " RUN_COLS RUN_KEY
	       " FROM scan_runs" RUN_FILTER RUN_ORDER,
	.nparams = 4,
};

static const struct vg_db_stmt st_runs_next = {
	.name = "gw_runs_next",
	.sql = "SELECT " RUN_COLS RUN_KEY " FROM scan_runs" RUN_FILTER
	       " AND (created_at, id) < ($5::timestamptz, $6::uuid)" RUN_ORDER,
	.nparams = 6,
};

static const struct vg_db_stmt st_run_get = {
	.name = "gw_run_get",
	.sql = "SELECT " RUN_COLS " FROM scan_runs WHERE id = $1",
	.nparams = 1,
};

int gw_run_state_valid(const char *s)
{
	for (size_t i = 0; gw_run_states[i]; i++)
		if (strcmp(gw_run_states[i], s) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* List and get                                                         */
/* ------------------------------------------------------------------ */

void api_runs_list(struct gw_rctx *rc)
{
	char state[32], policy[256], ns[128], limit_s[16];
	const char *p[6];
	struct vg_db_step step = {
		.st = &st_runs_first, .params = p, .binary = 1};
	struct gw_cursor cur;
	struct vg_err err = {0};
	int limit, hs, hp, hn, r;

	if (gw_page_params(rc, "tu", &limit, &cur) ||
	    (hs = gw_query_param(rc, "state", state, sizeof(state))) < 0 ||
	    (hp = gw_query_param(rc, "policy_name", policy, sizeof(policy))) <
	            0 ||
	    (hn = gw_query_param(rc, "policy_namespace", ns, sizeof(ns))) < 0)
		return;
	if (hs && !gw_run_state_valid(state)) {
		gw_reply_error(rc, 400, "bad_request",
		               "state: want pending, running, succeeded, "
		               "failed or canceled");
		return;
	}
	snprintf(limit_s, sizeof(limit_s), "%d", limit + 1);
	p[0] = hs ? state : NULL;
	p[1] = hp ? policy : NULL;
	p[2] = hn ? ns : NULL;
	p[3] = limit_s;
	if (cur.n) {
		step.st = &st_runs_next;
		p[4] = cur.part[0];
		p[5] = cur.part[1];
	}
	r = gw_read(rc, &step, 1, &err);
	if (r == VG_INVAL && cur.n)
		gw_reply_error(rc, 400, "bad_request",
		               "cursor: not a cursor of this list");
	else if (r != VG_OK)
		gw_reply_failure(rc, r, &err);
	else
		gw_reply_page(rc, step.res, run_spec, limit, 2);
	vg_db_res_free(step.res);
}

void api_runs_get(struct gw_rctx *rc)
{
	const char *p[] = {rc->params[1]};
	struct vg_db_step step = {.st = &st_run_get, .params = p, .binary = 1};
	struct vg_err err = {0};
	json_t *out = NULL;
	int r;

	if (!vg_db_is_uuid(p[0])) {
		gw_reply_error(rc, 404, "not_found", "scan run not found");
		return;
	}
	r = gw_read(rc, &step, 1, &err);
	if (r == VG_OK && vg_db_res_rows(step.res) != 1)
		r = vg_err_set(&err, VG_NOTFOUND, "scan run not found");
	if (r == VG_OK && !(out = gw_row_json(step.res, 0, run_spec)))
		r = vg_err_set(&err, VG_NOMEM, "out of memory");
	vg_db_res_free(step.res);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, out);
}

/* ------------------------------------------------------------------ */
/* Create and cancel                                                    */
/* ------------------------------------------------------------------ */

struct change_arg {
	struct gw_rctx *rc;
	json_t *out;
};

static int create_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct change_arg *a = arg;
	const json_t *b = a->rc->body;
	char shards[24];
	const char *p[] = {vg_json_get_str(b, "policy_namespace", ""),
	                   vg_json_get_str(b, "policy_name", ""), shards};
	struct vg_db_res *r = NULL;
	json_t *details;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	snprintf(shards, sizeof(shards), "%lld",
	         vg_json_get_int(b, "shards", 1));
	rc = vg_db_exec(c,
	                "INSERT INTO scan_runs (tenant_id, policy_namespace,"
	                " policy_name, trigger, state, shards) VALUES"
	                " (current_tenant(), $1, $2, 'manual', 'pending',"
	                " $3::integer) RETURNING " RUN_COLS,
	                3, p, &r, err);
	if (rc == VG_OK && !(a->out = gw_row_json(r, 0, run_spec)))
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	vg_db_res_free(r);
	if (rc != VG_OK)
		return rc;
	details = json_pack("{s:s, s:s, s:I}", "policy_namespace", p[0],
	                    "policy_name", p[1], "shards",
	                    (json_int_t)vg_json_get_int(b, "shards", 1));
	rc = gw_audit(c, a->rc, "scan_run.create", "scan_run",
	              vg_json_get_str(a->out, "id", ""), details, err);
	json_decref(details);
	return rc;
}

void api_runs_create(struct gw_rctx *rc)
{
	struct change_arg a = {rc, NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, 0, create_tx, &a, &err);

	if (r != VG_OK) {
		json_decref(a.out);
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "scan run requested", "run_id",
	        vg_json_get_str(a.out, "id", ""), "policy",
	        vg_json_get_str(a.out, "policy_name", ""), NULL);
	gw_reply_json(rc, 201, a.out);
}

static int cancel_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct change_arg *a = arg;
	const char *p[] = {a->rc->params[1]};
	struct vg_db_res *r = NULL;
	char state[16];
	json_t *details;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	rc = vg_db_exec(c,
	                "SELECT state FROM scan_runs WHERE id = $1"
	                " FOR UPDATE",
	                1, p, &r, err);
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "scan run not found");
	if (rc == VG_OK)
		snprintf(state, sizeof(state), "%s", vg_db_res_get(r, 0, 0));
	vg_db_res_free(r);
	r = NULL;
	if (rc != VG_OK)
		return rc;
	if (strcmp(state, "pending") != 0 && strcmp(state, "running") != 0)
		return vg_err_set(err, VG_CONFLICT,
		                  "the scan run is %s: only pending and "
		                  "running runs can be canceled",
		                  state);
	rc = vg_db_exec(
		c,
		"UPDATE scan_runs SET state = 'canceled',"
		" finished_at = now() WHERE id = $1 RETURNING " RUN_COLS,
		1, p, &r, err);
	if (rc == VG_OK && !(a->out = gw_row_json(r, 0, run_spec)))
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	vg_db_res_free(r);
	if (rc != VG_OK)
		return rc;
	details = json_pack("{s:s}", "from", state);
	rc = gw_audit(c, a->rc, "scan_run.cancel", "scan_run", p[0], details,
	              err);
	json_decref(details);
	return rc;
}

void api_runs_cancel(struct gw_rctx *rc)
{
	struct change_arg a = {rc, NULL};
	struct vg_err err = {0};
	int r;

	if (!vg_db_is_uuid(rc->params[1])) {
		gw_reply_error(rc, 404, "not_found", "scan run not found");
		return;
	}
	r = gw_tx(rc, 0, cancel_tx, &a, &err);
	if (r != VG_OK) {
		json_decref(a.out);
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "scan run canceled", "run_id", rc->params[1],
	        NULL);
	gw_reply_json(rc, 200, a.out);
}
