/*
 * api_ingest.c - POST /v1/tenants/{tid}/ingest: result batches from the
 * scanner agents, with an agent token of the tenant.
 *
 * The gateway checks a batch as fully as the worker will (so a bad batch
 * is refused here with 422, not dead-lettered later), records the run of
 * the agent's Job, and queues an "ingest" task; the worker writes the
 * findings. The reply is 202: accepted, not yet written. Posting the same
 * batch again is harmless: it is queued again, and the worker skips it by
 * its (tenant, run, batch_id) key in ingest_batches.
 *
 * Agents still flush their results while the emergency stop is engaged,
 * so this route is not stoppable. Ingest is too frequent for the audit
 * log; the request id travels with the task instead.
 */
#include "gateway.h"

#include "vigil/events.h"
#include "vigil/json.h"

#include <stdio.h>
#include <string.h>

/* the worker's limit (controlplane/worker/tasks.c) */
#define MAX_FINDINGS 10000
#define MAX_SHARDS   100000

static const char *const triggers[] = {"schedule", "manual", "once", NULL};
static const char *const severities[] = {"info", "low",      "medium",
                                         "high", "critical", NULL};
static const char *const protocols[] = {"tcp", "udp", NULL};

const struct vg_json_field api_ingest_body[] = {
	{"job_name", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 253,
         NULL, 0},
	{"trigger", VG_JSON_STRING, VG_JSON_NULLABLE, 0, 0, triggers, 0},
	{"shards", VG_JSON_INT, VG_JSON_REQUIRED, 1, MAX_SHARDS, NULL, 0},
	{"shard", VG_JSON_INT, VG_JSON_REQUIRED, 0, MAX_SHARDS - 1, NULL, 0},
	{"batch_id", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 128,
         NULL, 0},
	{"final", VG_JSON_BOOL, VG_JSON_REQUIRED, 0, 0, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const struct vg_json_field policy_fields[] = {
	{"namespace", VG_JSON_STRING, VG_JSON_TEXT, 0, 253, NULL, 0},
	{"name", VG_JSON_STRING, VG_JSON_TEXT, 0, 253, NULL, 0},
	{"uid", VG_JSON_STRING, VG_JSON_TEXT, 0, 128, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

/* As the worker's check_finding and the findings table check them: no
 * null for strings (the worker refuses it), null port for a host-level
 * finding. Titles may quote banners, control characters included. */
static const struct vg_json_field finding_fields[] = {
	{"host", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 253, NULL,
         0},
	{"port", VG_JSON_INT, VG_JSON_NULLABLE, 0, 65535, NULL, 0},
	{"protocol", VG_JSON_STRING, 0, 0, 0, protocols, 0},
	{"scanner", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 64,
         NULL, 0},
	{"severity", VG_JSON_STRING, VG_JSON_REQUIRED, 0, 0, severities, 0},
	{"fingerprint", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 128,
         NULL, 0},
	{"title", VG_JSON_STRING, 0, 0, 1024, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const struct gw_member finding_members[] = {
	{"evidence", GW_MEMBER_OBJECT, VG_JSON_NULLABLE, 0, NULL, NULL},
	{NULL, GW_MEMBER_OBJECT, 0, 0, NULL, NULL},
};

const struct gw_member api_ingest_members[] = {
	{"policy", GW_MEMBER_OBJECT, VG_JSON_NULLABLE, 0, policy_fields, NULL},
	{"findings", GW_MEMBER_ARRAY, VG_JSON_REQUIRED, MAX_FINDINGS,
         finding_fields, finding_members},
	{"stats", GW_MEMBER_OBJECT, VG_JSON_NULLABLE, 0, NULL, NULL},
	{NULL, GW_MEMBER_OBJECT, 0, 0, NULL, NULL},
};

/* The run of a Job: found by the unique index scan_runs_tenant_job. */
static const struct vg_db_stmt st_run_by_job = {
	.name = "gw_run_by_job",
	.sql = "SELECT id, state FROM scan_runs"
	       " WHERE tenant_id = current_tenant() AND job_name = $1",
	.nparams = 1,
};

/* Two agents' first batches may race: the loser inserts nothing and
 * reads the winner's row. */
static const struct vg_db_stmt st_run_insert = {
	.name = "gw_run_insert",
	.sql = "INSERT INTO scan_runs (tenant_id, job_name, policy_namespace,"
	       " policy_name, policy_uid, trigger, shards)"
	       " VALUES (current_tenant(), $1, $2, $3, $4, $5, $6::integer)"
	       " ON CONFLICT (tenant_id, job_name) WHERE job_name <> ''"
	       " DO NOTHING RETURNING id, state",
	.nparams = 6,
};

struct ingest_arg {
	struct gw_rctx *rc;
	char run_id[40];
	char state[16];
	int created;
};

static int take_row(struct ingest_arg *a, struct vg_db_res *r)
{
	if (vg_db_res_rows(r) != 1)
		return 0;
	snprintf(a->run_id, sizeof(a->run_id), "%s", vg_db_res_get(r, 0, 0));
	snprintf(a->state, sizeof(a->state), "%s", vg_db_res_get(r, 0, 1));
	return 1;
}

static int ingest_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct ingest_arg *a = arg;
	const json_t *b = a->rc->body;
	const char *job[] = {vg_json_get_str(b, "job_name", "")};
	char shards[24];
	const char *ins[] = {job[0],
	                     vg_json_get_str(b, "policy.namespace", ""),
	                     vg_json_get_str(b, "policy.name", ""),
	                     vg_json_get_str(b, "policy.uid", ""),
	                     vg_json_get_str(b, "trigger", "schedule"),
	                     shards};
	struct vg_db_res *r = NULL;
	int rc, found;

	a->created = 0;
	snprintf(shards, sizeof(shards), "%lld",
	         vg_json_get_int(b, "shards", 1));
	if ((rc = vg_db_exec_stmt(c, &st_run_by_job, job, &r, err)) != VG_OK)
		return rc;
	found = take_row(a, r);
	vg_db_res_free(r);
	r = NULL;
	if (!found) {
		rc = vg_db_exec_stmt(c, &st_run_insert, ins, &r, err);
		if (rc != VG_OK)
			return rc;
		found = a->created = take_row(a, r);
		vg_db_res_free(r);
		r = NULL;
	}
	if (!found) {
		rc = vg_db_exec_stmt(c, &st_run_by_job, job, &r, err);
		found = rc == VG_OK && take_row(a, r);
		vg_db_res_free(r);
		if (rc != VG_OK)
			return rc;
		if (!found)
			return vg_err_set(err, VG_AGAIN, "run of %s vanished",
			                  job[0]);
	}
	if (strcmp(a->state, "canceled") == 0 ||
	    strcmp(a->state, "failed") == 0)
		return vg_err_set(
			err, VG_CONFLICT,
			"scan run %s of job %s is %s: no more results "
			"are accepted",
			a->run_id, job[0], a->state);
	return VG_OK;
}

void api_ingest(struct gw_rctx *rc)
{
	struct ingest_arg a = {.rc = rc};
	struct vg_err err = {0};
	const json_t *b = rc->body;
	long long shards = vg_json_get_int(b, "shards", 1);
	long long shard = vg_json_get_int(b, "shard", 0);
	json_t *payload, *reply;
	char task_id[GW_TASK_ID_LEN + 1];
	int r;

	if (shard >= shards) {
		gw_reply_error(rc, 422, "validation_failed",
		               "shard: must be less than shards (%lld)",
		               shards);
		return;
	}
	r = gw_tx(rc, 0, ingest_tx, &a, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	if (a.created)
		gw_rlog(rc, VG_LOG_INFO, "scan run recorded", "run_id",
		        a.run_id, "job_name",
		        vg_json_get_str(b, "job_name", ""), NULL);
	/*
	 * Enqueued after the commit: when Redis fails now the agent gets
	 * 503 and posts the batch again, and the run upsert above finds the
	 * run it recorded this time. Nothing else was written.
	 */
	payload = json_pack("{s:s, s:s, s:s, s:I, s:b, s:O}", "tenant_id",
	                    rc->tenant, "run_id", a.run_id, "batch_id",
	                    vg_json_get_str(b, "batch_id", ""), "shard",
	                    (json_int_t)shard, "final",
	                    vg_json_get_bool(b, "final", 0), "findings",
	                    json_object_get(b, "findings"));
	if (!payload) {
		gw_reply_error(rc, 503, "unavailable", "out of memory");
		return;
	}
	r = gw_taskq_enqueue(rc, "ingest", payload, task_id, &err);
	json_decref(payload);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	vg_counter_inc(rc->g->m.ingest);
	{
		json_t *ev = vg_event_new("ingest.accepted", rc->tenant,
		                          a.run_id, rc->req->request_id);

		json_object_set_new(
			ev, "batch_id",
			json_string(vg_json_get_str(b, "batch_id", "")));
		json_object_set_new(ev, "shard", json_integer(shard));
		json_object_set_new(
			ev, "final",
			json_boolean(vg_json_get_bool(b, "final", 0)));
		json_object_set_new(ev, "findings",
		                    json_integer((json_int_t)json_array_size(
					    json_object_get(b, "findings"))));
		json_object_set_new(ev, "task_id", json_string(task_id));
		gw_event_publish(rc, ev);
	}
	reply = json_pack("{s:s, s:s, s:s}", "run_id", a.run_id, "batch_id",
	                  vg_json_get_str(b, "batch_id", ""), "task_id",
	                  task_id);
	gw_reply_json(rc, 202, reply);
}
