/* tasks.c - the worker's task types: ingest a result batch into findings,
 * finalize a scan run, record its pending report, and a no-op for
 * benchmarks and smoke tests. Every handler is idempotent. */
#include "tasks.h"
#include "archive.h"

#include "vigil/buf.h"
#include "vigil/events.h"
#include "vigil/json.h"
#include "vigil/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FINDINGS 10000

/* ------------------------------------------------------------------ */
/* Payload validation                                                   */
/* ------------------------------------------------------------------ */

static int payload_str(const json_t *p, const char *key, size_t min, size_t max,
                       const char **out, struct vg_err *err)
{
	json_t *v = json_object_get(p, key);
	size_t n;

	if (!json_is_string(v))
		return vg_err_set(err, VG_INVAL, "payload: \"%s\" %s", key,
		                  v ? "is not a string" : "is missing");
	n = json_string_length(v);
	if (n < min || n > max)
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"%s\" must be %zu to %zu bytes",
		                  key, min, max);
	*out = json_string_value(v);
	return VG_OK;
}

/* tenant_id and run_id of a payload; the tenant must be the task's. */
static int payload_run(const struct vg_task *t, const char **tenant,
                       const char **run, struct vg_err *err)
{
	const json_t *p = t->payload;
	int rc;

	if (!json_is_object(p))
		return vg_err_set(err, VG_INVAL, "payload: not an object");
	if ((rc = payload_str(p, "tenant_id", 36, 36, tenant, err)) ||
	    (rc = payload_str(p, "run_id", 36, 36, run, err)))
		return rc;
	if (!vg_db_is_uuid(*tenant) || !vg_db_is_uuid(*run))
		return vg_err_set(err, VG_INVAL,
		                  "payload: tenant_id and run_id must be "
		                  "UUIDs");
	if (t->tenant[0] && strcmp(t->tenant, *tenant) != 0)
		return vg_err_set(err, VG_FORBIDDEN,
		                  "payload: tenant_id is not the task's "
		                  "tenant");
	return VG_OK;
}

static const char *const severities[] = {"info", "low", "medium", "high",
                                         "critical"};

/* One finding, as the findings table will check it, with messages that
 * say which finding and field is wrong. */
static int check_finding(const json_t *f, size_t i, struct vg_err *err)
{
	static const struct {
		const char *key;
		size_t min, max;
		int required;
	} fields[] = {
		{"host", 1, 253, 1},   {"fingerprint", 1, 128, 1},
		{"scanner", 1, 64, 1}, {"severity", 1, 16, 1},
		{"title", 0, 1024, 0}, {"protocol", 3, 3, 0},
	};
	const json_t *port, *evidence;
	const char *sev, *proto;
	size_t k;

	if (!json_is_object(f))
		return vg_err_set(err, VG_INVAL,
		                  "payload: findings[%zu] is not an object", i);
	for (k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
		const json_t *v = json_object_get(f, fields[k].key);
		size_t n;

		if (!v && !fields[k].required)
			continue;
		if (!json_is_string(v))
			return vg_err_set(err, VG_INVAL,
			                  "payload: findings[%zu].%s %s", i,
			                  fields[k].key,
			                  v ? "is not a string" : "is missing");
		n = json_string_length(v);
		if (n < fields[k].min || n > fields[k].max)
			return vg_err_set(err, VG_INVAL,
			                  "payload: findings[%zu].%s must be "
			                  "%zu to %zu bytes",
			                  i, fields[k].key, fields[k].min,
			                  fields[k].max);
	}
	sev = json_string_value(json_object_get(f, "severity"));
	for (k = 0; k < sizeof(severities) / sizeof(severities[0]); k++)
		if (strcmp(sev, severities[k]) == 0)
			break;
	if (k == sizeof(severities) / sizeof(severities[0]))
		return vg_err_set(err, VG_INVAL,
		                  "payload: findings[%zu].severity \"%s\" is "
		                  "not one of info, low, medium, high, "
		                  "critical",
		                  i, sev);
	proto = json_string_value(json_object_get(f, "protocol"));
	if (proto && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
		return vg_err_set(err, VG_INVAL,
		                  "payload: findings[%zu].protocol must be tcp "
		                  "or udp",
		                  i);
	port = json_object_get(f, "port");
	if (port && !json_is_null(port) &&
	    (!json_is_integer(port) || json_integer_value(port) < 0 ||
	     json_integer_value(port) > 65535))
		return vg_err_set(err, VG_INVAL,
		                  "payload: findings[%zu].port must be an "
		                  "integer in [0, 65535]",
		                  i);
	evidence = json_object_get(f, "evidence");
	if (evidence && !json_is_object(evidence) && !json_is_null(evidence))
		return vg_err_set(err, VG_INVAL,
		                  "payload: findings[%zu].evidence is not an "
		                  "object",
		                  i);
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Follow-up tasks                                                      */
/* ------------------------------------------------------------------ */

/* Enqueue `type` for the run, carrying the request id that created this
 * task. Done after the transaction committed; when it fails the task is
 * retried, and the retry finds the database work done and enqueues again
 * (the follow-ups are idempotent too). */
static int follow_up(struct task_ctx *ctx, const char *type, const char *tenant,
                     const char *run, struct vg_err *err)
{
	json_t *p = json_pack("{s:s,s:s}", "tenant_id", tenant, "run_id", run);
	struct vg_queue_msg m = {.type = type,
	                         .payload = p,
	                         .request_id = ctx->task->request_id,
	                         .tenant = tenant};
	int rc;

	if (!p)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = vg_queue_enqueue(ctx->q, &m, err);
	json_decref(p);
	if (rc == VG_OK)
		vg_info("task enqueued", "type", type, "task_id", m.id,
		        "request_id", ctx->task->request_id, "tenant", tenant,
		        "run_id", run);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ingest                                                               */
/* ------------------------------------------------------------------ */

static const struct vg_db_stmt ins_batch = {
	.name = "worker_ins_batch",
	.nparams = 5,
	.sql = "INSERT INTO ingest_batches "
	       "(tenant_id, run_id, batch_id, shard, findings) "
	       "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
};

/* One statement for the whole batch; a fingerprint twice in a batch is
 * one row, and one already seen in this run is refreshed. */
static const struct vg_db_stmt ins_findings = {
	.name = "worker_ins_findings",
	.nparams = 4,
	.sql = "INSERT INTO findings (tenant_id, run_id, batch_id, host, "
	       "port, protocol, scanner, severity, fingerprint, title, "
	       "evidence) "
	       "SELECT DISTINCT ON (f.fingerprint) $1::uuid, $2::uuid, $3, "
	       "f.host, f.port, coalesce(f.protocol, 'tcp'), f.scanner, "
	       "f.severity::severity, f.fingerprint, coalesce(f.title, ''), "
	       "coalesce(f.evidence, '{}') "
	       "FROM jsonb_to_recordset($4::jsonb) AS f(host text, port "
	       "integer, protocol text, scanner text, severity text, "
	       "fingerprint text, title text, evidence jsonb) "
	       "ORDER BY f.fingerprint "
	       "ON CONFLICT (tenant_id, run_id, fingerprint) DO UPDATE "
	       "SET last_seen = now(), evidence = EXCLUDED.evidence",
};

static const struct vg_db_stmt upd_run_progress = {
	.name = "worker_upd_run_progress",
	.nparams = 2,
	.sql = "UPDATE scan_runs SET "
	       "state = CASE WHEN state = 'pending' THEN 'running' "
	       "ELSE state END, "
	       "started_at = coalesce(started_at, now()), "
	       "shards_done = least(shards, shards_done + $2::integer) "
	       "WHERE id = $1 RETURNING shards_done, shards, state",
};

static const struct vg_db_stmt sel_run = {
	.name = "worker_sel_run",
	.nparams = 1,
	.sql = "SELECT shards_done, shards, state FROM scan_runs "
	       "WHERE id = $1",
};

struct ingest {
	const char *tenant, *run, *batch;
	char shard[16], count[16];
	int final;
	struct vg_buf findings; /* the array as JSON */
	/* out */
	int duplicate;
	int complete; /* every shard reported, run not finished */
	long long shards_done, shards;
};

static int run_complete(const struct vg_db_res *r)
{
	const char *done = vg_db_res_get(r, 0, 0);
	const char *shards = vg_db_res_get(r, 0, 1);
	const char *state = vg_db_res_get(r, 0, 2);

	return done && shards && state && strcmp(done, shards) == 0 &&
	       (strcmp(state, "pending") == 0 || strcmp(state, "running") == 0);
}

static int ingest_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct ingest *in = arg;
	const char *batch[] = {in->tenant, in->run, in->batch,
	                       in->shard[0] ? in->shard : NULL, in->count};
	const char *findings[] = {in->tenant, in->run, in->batch,
	                          vg_buf_str(&in->findings)};
	const char *progress[] = {in->run, in->final ? "1" : "0"};
	const char *run[] = {in->run};
	struct vg_db_res *r = NULL;
	int rc;

	in->duplicate = in->complete = 0;
	if ((rc = vg_db_exec_stmt(c, &ins_batch, batch, &r, err)) != VG_OK)
		return rc;
	in->duplicate = vg_db_res_affected(r) == 0;
	vg_db_res_free(r);
	r = NULL;
	if (in->duplicate) {
		/* delivered again: the findings are in; only look whether
		 * the run still waits for its finalize task */
		rc = vg_db_exec_stmt(c, &sel_run, run, &r, err);
	} else {
		if (in->findings.len > 2 &&
		    (rc = vg_db_exec_stmt(c, &ins_findings, findings, NULL,
		                          err)) != VG_OK)
			return rc;
		rc = vg_db_exec_stmt(c, &upd_run_progress, progress, &r, err);
	}
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "run %s not found", in->run);
	if (rc == VG_OK) {
		in->complete = run_complete(r);
		in->shards_done = strtoll(vg_db_res_get(r, 0, 0), NULL, 10);
		in->shards = strtoll(vg_db_res_get(r, 0, 1), NULL, 10);
	}
	vg_db_res_free(r);
	return rc;
}

static int task_ingest(struct task_ctx *ctx, struct vg_err *err)
{
	const json_t *p = ctx->task->payload;
	struct ingest in = {0};
	json_t *findings, *shard, *final;
	int rc;

	vg_buf_init(&in.findings, 0);
	if ((rc = payload_run(ctx->task, &in.tenant, &in.run, err)) ||
	    (rc = payload_str(p, "batch_id", 1, 128, &in.batch, err)))
		goto out;
	findings = json_object_get(p, "findings");
	if (!json_is_array(findings) ||
	    json_array_size(findings) > MAX_FINDINGS) {
		rc = vg_err_set(err, VG_INVAL,
		                "payload: \"findings\" must be an array of at "
		                "most %d findings",
		                MAX_FINDINGS);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(findings); i++)
		if ((rc = check_finding(json_array_get(findings, i), i, err)))
			goto out;
	shard = json_object_get(p, "shard");
	if (shard && !json_is_null(shard)) {
		if (!json_is_integer(shard) || json_integer_value(shard) < 0 ||
		    json_integer_value(shard) > 100000) {
			rc = vg_err_set(err, VG_INVAL,
			                "payload: \"shard\" must be an "
			                "integer in [0, 100000]");
			goto out;
		}
		snprintf(in.shard, sizeof(in.shard), "%lld",
		         (long long)json_integer_value(shard));
	}
	final = json_object_get(p, "final");
	if (final && !json_is_boolean(final)) {
		rc = vg_err_set(err, VG_INVAL,
		                "payload: \"final\" must be a boolean");
		goto out;
	}
	in.final = json_is_true(final);
	snprintf(in.count, sizeof(in.count), "%zu", json_array_size(findings));
	if ((rc = vg_json_dumps(findings, JSON_COMPACT, &in.findings))) {
		rc = vg_err_set(err, rc, "out of memory");
		goto out;
	}
	rc = vg_db_tx(ctx->db, in.tenant, 0, ingest_tx, &in, err);
	if (rc != VG_OK)
		goto out;
	if (in.duplicate) {
		snprintf(ctx->note, sizeof(ctx->note),
		         "batch already ingested");
	} else {
		/* live event for the tenant's WebSocket clients; a lost event
		 * never fails the batch */
		json_t *ev = vg_event_new("run.progress", in.tenant, in.run,
		                          ctx->task->request_id);
		struct vg_err eerr = {0};

		json_object_set_new(ev, "batch_id", json_string(in.batch));
		json_object_set_new(ev, "shards_done",
		                    json_integer(in.shards_done));
		json_object_set_new(ev, "shards", json_integer(in.shards));
		if (vg_events_emit(ev, &eerr) != VG_OK)
			vg_debug("event not published", "type", "run.progress",
			         "run_id", in.run, "err", eerr.msg);
	}
	if (in.complete)
		rc = follow_up(ctx, "finalize", in.tenant, in.run, err);
out:
	vg_buf_cleanup(&in.findings);
	return rc;
}

/* ------------------------------------------------------------------ */
/* finalize                                                             */
/* ------------------------------------------------------------------ */

static const struct vg_db_stmt lock_run = {
	.name = "worker_lock_run",
	.nparams = 1,
	.sql = "SELECT shards_done, shards, state FROM scan_runs "
	       "WHERE id = $1 FOR UPDATE",
};

static const struct vg_db_stmt finish_run = {
	.name = "worker_finish_run",
	.nparams = 1,
	.sql = "UPDATE scan_runs r SET state = 'succeeded', "
	       "finished_at = now(), finding_counts = c.counts "
	       "FROM (SELECT jsonb_build_object("
	       "'critical', count(*) FILTER (WHERE severity = 'critical'), "
	       "'high', count(*) FILTER (WHERE severity = 'high'), "
	       "'medium', count(*) FILTER (WHERE severity = 'medium'), "
	       "'low', count(*) FILTER (WHERE severity = 'low'), "
	       "'info', count(*) FILTER (WHERE severity = 'info'), "
	       "'total', count(*)) AS counts "
	       "FROM findings WHERE run_id = $1) c "
	       "WHERE r.id = $1 RETURNING r.finding_counts::text",
};

struct finalize {
	const char *run;
	int finished; /* by this task (else: earlier) */
	char counts[256];
	char waiting[96];
};

static int finalize_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct finalize *f = arg;
	const char *params[] = {f->run};
	struct vg_db_res *r = NULL;
	const char *state;
	int rc;

	f->finished = 0;
	f->waiting[0] = '\0';
	if ((rc = vg_db_exec_stmt(c, &lock_run, params, &r, err)) != VG_OK)
		return rc;
	if (vg_db_res_rows(r) != 1) {
		vg_db_res_free(r);
		return vg_err_set(err, VG_NOTFOUND, "run %s not found", f->run);
	}
	state = vg_db_res_get(r, 0, 2);
	if (strcmp(state, "pending") != 0 && strcmp(state, "running") != 0) {
		vg_db_res_free(r);
		return VG_OK; /* finalized before: only the report is due */
	}
	if (strcmp(vg_db_res_get(r, 0, 0), vg_db_res_get(r, 0, 1)) != 0) {
		snprintf(f->waiting, sizeof(f->waiting),
		         "%s of %s shards reported", vg_db_res_get(r, 0, 0),
		         vg_db_res_get(r, 0, 1));
		vg_db_res_free(r);
		return VG_OK;
	}
	vg_db_res_free(r);
	r = NULL;
	if ((rc = vg_db_exec_stmt(c, &finish_run, params, &r, err)) != VG_OK)
		return rc;
	snprintf(f->counts, sizeof(f->counts), "%s",
	         vg_db_res_get(r, 0, 0) ? vg_db_res_get(r, 0, 0) : "{}");
	f->finished = 1;
	vg_db_res_free(r);
	return VG_OK;
}

static int task_finalize(struct task_ctx *ctx, struct vg_err *err)
{
	struct finalize f = {0};
	const char *tenant;
	int rc;

	if ((rc = payload_run(ctx->task, &tenant, &f.run, err)))
		return rc;
	rc = vg_db_tx(ctx->db, tenant, 0, finalize_tx, &f, err);
	if (rc != VG_OK)
		return rc;
	if (f.waiting[0])
		/* retried with backoff until the last shard reports */
		return vg_err_set(err, VG_AGAIN, "run not complete: %s",
		                  f.waiting);
	if (f.finished) {
		json_t *ev = vg_event_new("run.finalized", tenant, f.run,
		                          ctx->task->request_id);
		struct vg_err eerr = {0};

		vg_info("scan run finalized", "request_id",
		        ctx->task->request_id, "tenant", tenant, "run_id",
		        f.run, "counts", f.counts);
		json_object_set_new(ev, "state", json_string("succeeded"));
		json_object_set_new(ev, "finding_counts",
		                    json_loads(f.counts, 0, NULL));
		if (vg_events_emit(ev, &eerr) != VG_OK)
			vg_debug("event not published", "type", "run.finalized",
			         "run_id", f.run, "err", eerr.msg);
	} else {
		snprintf(ctx->note, sizeof(ctx->note), "run finalized before");
	}
	return follow_up(ctx, "report", tenant, f.run, err);
}

/* ------------------------------------------------------------------ */
/* report                                                               */
/* ------------------------------------------------------------------ */

/* The handoff to vigil-brain: the run's report row, pending, with the
 * run's counts as its summary and the request id that finished the run.
 * The brain's sweep claims pending rows and queues its own task for each
 * (its own Redis stream, retries and dead letters); the brain then
 * completes the same row (controlplane/brain/README.md). One row per run,
 * so this task delivered twice records one report. */
static const struct vg_db_stmt ins_report = {
	.name = "worker_ins_report",
	.nparams = 3,
	.sql = "INSERT INTO reports (tenant_id, run_id, kind, format, state, "
	       "summary, request_id) "
	       "SELECT $1, id, 'run', 'json', 'pending', finding_counts, $3 "
	       "FROM scan_runs WHERE id = $2 "
	       "ON CONFLICT (tenant_id, run_id) WHERE kind = 'run' "
	       "DO NOTHING",
};

struct report {
	const char *tenant, *run, *request_id;
	long long inserted;
};

static int report_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct report *rp = arg;
	const char *params[] = {rp->tenant, rp->run, rp->request_id};
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec_stmt(c, &ins_report, params, &r, err);

	rp->inserted = rc == VG_OK ? vg_db_res_affected(r) : 0;
	vg_db_res_free(r);
	return rc;
}

static int task_report(struct task_ctx *ctx, struct vg_err *err)
{
	struct report rp = {.request_id = ctx->task->request_id};
	int rc;

	if ((rc = payload_run(ctx->task, &rp.tenant, &rp.run, err)))
		return rc;
	rc = vg_db_tx(ctx->db, rp.tenant, 0, report_tx, &rp, err);
	if (rc == VG_OK && !rp.inserted)
		snprintf(ctx->note, sizeof(ctx->note),
		         "report recorded before");
	else if (rc == VG_OK)
		snprintf(ctx->note, sizeof(ctx->note),
		         "report handed to the brain");
	return rc;
}

/* ------------------------------------------------------------------ */
/* noop                                                                 */
/* ------------------------------------------------------------------ */

static int task_noop(struct task_ctx *ctx, struct vg_err *err)
{
	(void)ctx;
	(void)err;
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* The table                                                            */
/* ------------------------------------------------------------------ */

static const struct task_def defs[] = {
	/* name, max attempts, backoff base, backoff cap; handler */
	{{"ingest", 8, 1000, 300000}, task_ingest},
	/* waits for late shards: up to ~1 h in all */
	{{"finalize", 12, 5000, 600000}, task_finalize},
	{{"report", 8, 2000, 300000}, task_report},
	{{"noop", 3, 100, 1000}, task_noop},
	{{"archive", 6, 10000, 600000}, archive_task},
};

const struct task_def *task_defs(size_t *n)
{
	*n = sizeof(defs) / sizeof(defs[0]);
	return defs;
}

const struct task_def *task_def_find(const struct task_def *d, size_t n,
                                     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].policy.name, name) == 0)
			return &d[i];
	return NULL;
}

int task_error_is_permanent(int code)
{
	static const int permanent[] = {
		VG_PARSE,    VG_INVAL,       VG_FORBIDDEN, VG_NOTFOUND,
		VG_TOOLARGE, VG_UNSUPPORTED, VG_RANGE};

	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (permanent[i] == code)
			return 1;
	return 0;
}
