/*
 * api_dlq.c - the worker's dead letters for platform admins: list, replay
 * one, delete one, purge all (what `vigil-worker dlq` does, over the API).
 * Every change is in the platform's audit chain.
 */
#include "gateway.h"

#include "vigil/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_LIST_MAX 500

struct list_arg {
	json_t *items;
	int failed;
};

static json_t *task_json(const struct vg_task *t)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:O?, s:s}", "id", t->id,
	                 "type", t->type, "request_id", t->request_id,
	                 "tenant", t->tenant, "attempts", t->attempts,
	                 "payload", t->payload, "last_error", t->last_error);
}

static int add_dead(const struct vg_dead *d, void *arg)
{
	struct list_arg *a = arg;
	json_t *o = json_pack("{s:s, s:s, s:I}", "id", d->id, "error",
	                      d->error ? d->error : "", "dead_ms",
	                      (json_int_t)d->dead_ms);

	/* an entry that was no envelope is shown by its size only */
	if (o && json_object_set_new(o, d->task ? "task" : "raw_bytes",
	                             d->task ? task_json(d->task)
	                                     : json_integer(
	                                               (json_int_t)d->raw_len)))
		o = (json_decref(o), NULL);
	if (!o || json_array_append_new(a->items, o)) {
		a->failed = 1;
		return 1;
	}
	return 0;
}

/* A dead-letter id as Redis streams spell them: digits '-' digits. */
static int stream_id_ok(const char *s)
{
	size_t a = strspn(s, "0123456789");

	return a > 0 && a < 21 && s[a] == '-' &&
	       strspn(s + a + 1, "0123456789") == strlen(s + a + 1) &&
	       s[a + 1] && strlen(s + a + 1) < 21;
}

void api_dlq_list(struct gw_rctx *rc)
{
	struct list_arg a = {json_array(), 0};
	char type[VG_QUEUE_TYPE_MAX + 1] = "", lim[16] = "";
	struct vg_queue *q = NULL;
	struct vg_err err = {0};
	long limit = 100;
	char *end;
	int r;

	if (gw_query_param(rc, "type", type, sizeof(type)) < 0 ||
	    gw_query_param(rc, "limit", lim, sizeof(lim)) < 0)
		goto out;
	if (lim[0]) {
		limit = strtol(lim, &end, 10);
		if (*end || limit < 1 || limit > DLQ_LIST_MAX) {
			gw_reply_error(rc, 400, "bad_request",
			               "limit must be an integer in [1, 500]");
			goto out;
		}
	}
	if (!a.items) {
		gw_reply_error(rc, 500, "internal", "out of memory");
		goto out;
	}
	r = gw_taskq_acquire(rc->g->taskq, &q, &err);
	if (r == VG_OK)
		r = vg_queue_dlq_list(q, type[0] ? type : NULL, (size_t)limit,
		                      add_dead, &a, &err);
	gw_taskq_release(rc->g->taskq, q);
	if (r != VG_OK || a.failed) {
		gw_reply_failure(rc, r != VG_OK ? r : VG_NOMEM, &err);
		goto out;
	}
	gw_reply_json(rc, 200, json_pack("{s:O}", "items", a.items));
out:
	json_decref(a.items);
}

struct change {
	struct gw_rctx *rc;
	const char *action, *id;
	long long purged;
};

static int audit_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	const struct change *ch = arg;
	json_t *details = json_pack("{s:I}", "purged", (json_int_t)ch->purged);
	int r = gw_audit(c, ch->rc, ch->action, "dead_letter",
	                 ch->id ? ch->id : "", details, err);

	json_decref(details);
	return r;
}

/* One change to the dead letters, then its audit entry. */
static void change(struct gw_rctx *rc, const char *action, const char *id)
{
	struct change ch = {rc, action, id, 0};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};
	int r;

	if (id && !stream_id_ok(id)) {
		gw_reply_error(rc, 404, "not_found", "dead letter not found");
		return;
	}
	r = gw_taskq_acquire(rc->g->taskq, &q, &err);
	if (r == VG_OK) {
		if (strcmp(action, "dead_letter.replay") == 0)
			r = vg_queue_dlq_replay(q, id, &err);
		else if (id)
			r = vg_queue_dlq_delete(q, id, &err);
		else
			r = vg_queue_dlq_purge(q, &ch.purged, &err);
	}
	gw_taskq_release(rc->g->taskq, q);
	if (r == VG_NOTFOUND) {
		gw_reply_error(rc, 404, "not_found", "dead letter not found");
		return;
	}
	if (r == VG_INVAL) {
		gw_reply_error(rc, 409, "conflict",
		               "that dead letter holds no task to replay");
		return;
	}
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	r = gw_tx(rc, 0, audit_tx, &ch, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "dead letters changed", "action", action,
	        "id", id ? id : "", NULL);
	if (id)
		gw_reply_no_content(rc, 204);
	else
		gw_reply_json(rc, 200, json_pack("{s:I}", "purged",
		                                 (json_int_t)ch.purged));
}

void api_dlq_replay(struct gw_rctx *rc)
{
	change(rc, "dead_letter.replay", rc->params[0]);
}

void api_dlq_delete(struct gw_rctx *rc)
{
	change(rc, "dead_letter.delete", rc->params[0]);
}

void api_dlq_purge(struct gw_rctx *rc)
{
	change(rc, "dead_letter.purge", NULL);
}
