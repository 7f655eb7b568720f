/*
 * taskq.c - the gateway's end of the worker's task queue (lib/queue.c):
 * a small locked pool of vg_queue handles, since one handle is one Redis
 * connection and not thread-safe. Handles connect on first use and
 * reconnect by themselves, so the gateway starts while Redis is down and
 * answers 503 until it is back.
 */
#include "gateway.h"

#include "vigil/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* short: an agent waiting on a dead Redis should get its 503 quickly */
#define CONNECT_TIMEOUT_MS 1000
#define COMMAND_TIMEOUT_MS 3000

_Static_assert(GW_TASK_ID_LEN == VG_QUEUE_ID_LEN, "task id length");

struct gw_taskq {
	struct vg_queue_opts opts;
	char *host, *password, *prefix;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct vg_queue **idle;
	int nidle, open, max;
};

int gw_taskq_new(const struct gw_config *c, struct gw_taskq **out,
                 struct vg_err *err)
{
	struct gw_taskq *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (!q)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	q->max = c->redis_pool_max > 0 ? c->redis_pool_max : 8;
	q->idle = calloc((size_t)q->max, sizeof(*q->idle));
	q->host = strdup(c->redis_host ? c->redis_host : "localhost");
	q->password = c->redis_password ? strdup(c->redis_password) : NULL;
	q->prefix = strdup(c->queue_prefix ? c->queue_prefix : "vigil");
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cond, NULL);
	if (!q->idle || !q->host || !q->prefix ||
	    (c->redis_password && !q->password)) {
		gw_taskq_free(q);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	q->opts = (struct vg_queue_opts){
		.host = q->host,
		.port = c->redis_port,
		.password = q->password,
		.db = c->redis_db,
		.prefix = q->prefix,
		.connect_timeout_ms = CONNECT_TIMEOUT_MS,
		.command_timeout_ms = COMMAND_TIMEOUT_MS,
	};
	*out = q;
	return VG_OK;
}

void gw_taskq_free(struct gw_taskq *q)
{
	if (!q)
		return;
	for (int i = 0; i < q->nidle; i++)
		vg_queue_free(q->idle[i]);
	free(q->idle);
	free(q->host);
	if (q->password)
		memset(q->password, 0, strlen(q->password));
	free(q->password);
	free(q->prefix);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cond);
	free(q);
}

int gw_taskq_acquire(struct gw_taskq *q, struct vg_queue **out,
                     struct vg_err *err)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	while (q->nidle == 0 && q->open >= q->max)
		pthread_cond_wait(&q->cond, &q->mu);
	if (q->nidle > 0) {
		*out = q->idle[--q->nidle];
		pthread_mutex_unlock(&q->mu);
		return VG_OK;
	}
	q->open++;
	pthread_mutex_unlock(&q->mu);
	if ((rc = vg_queue_new(&q->opts, out, err)) != VG_OK) {
		pthread_mutex_lock(&q->mu);
		q->open--;
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->mu);
	}
	return rc;
}

void gw_taskq_release(struct gw_taskq *q, struct vg_queue *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&q->mu);
	q->idle[q->nidle++] = h;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

int gw_taskq_enqueue(struct gw_rctx *rc, const char *type,
                     const json_t *payload, char *id, struct vg_err *err)
{
	struct gw_taskq *q = rc->g->taskq;
	struct vg_queue_msg m = {.type = type,
	                         .payload = payload,
	                         .request_id = rc->req->request_id,
	                         .tenant = rc->tenant};
	struct vg_queue *h = NULL;
	int r;

	if ((r = gw_taskq_acquire(q, &h, err)) != VG_OK)
		return r;
	r = vg_queue_enqueue(h, &m, err);
	/* an idle handle learns only now that Redis restarted since its
	 * last use; it drops the dead connection, and connects again on
	 * this second try. A duplicate (sent, reply lost) is harmless: the
	 * worker's tasks are idempotent. */
	if (r == VG_IO || r == VG_CLOSED)
		r = vg_queue_enqueue(h, &m, err);
	gw_taskq_release(q, h);
	if (r == VG_OK) {
		memcpy(id, m.id, sizeof(m.id));
		gw_rlog(rc, VG_LOG_DEBUG, "task enqueued", "type", type,
		        "task_id", m.id, NULL);
	} else if (r == VG_IO || r == VG_TIMEOUT || r == VG_CLOSED ||
	           r == VG_REDIS || r == VG_UNAUTHORIZED) {
		/* whatever Redis said (down, refused our password, out of
		 * memory), for the client it is a backing service to retry */
		char msg[VG_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
		r = vg_err_set(err, VG_IO, "task queue: %s", msg);
	}
	return r;
}
