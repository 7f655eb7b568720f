/* workqueue.c - de-duplicating, rate-limited work queue of object keys. */
#include "workqueue.h"

#include "vigil/err.h"
#include "vigil/ratelimit.h"
#include "vigil/strmap.h"
#include "vigil/timeutil.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct delayed {
	double due;
	char *key;
};

struct workqueue {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct workqueue_opts o;

	/* ready keys, FIFO ring */
	char **ring;
	size_t head, len, cap;

	struct vg_strmap dirty;	     /* queued or re-add pending -> double* added at */
	struct vg_strmap processing; /* taken by a worker */
	struct vg_strmap waiting;    /* delayed -> double* due */
	struct vg_strmap failures;   /* key -> (intptr_t) failures */

	struct delayed *heap;	     /* min-heap on due; stale entries skipped */
	size_t nheap, capheap;

	struct vg_ratelimit *bucket; /* global, shared by every key */
	uint64_t adds, retries;
	int shutdown;
};

struct workqueue *workqueue_new(const struct workqueue_opts *opts)
{
	struct workqueue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	if (opts)
		q->o = *opts;
	if (q->o.base_delay <= 0)
		q->o.base_delay = 0.005;
	if (q->o.max_delay <= 0)
		q->o.max_delay = 1000;
	if (q->o.qps <= 0)
		q->o.qps = 10;
	if (q->o.burst <= 0)
		q->o.burst = 100;
	if (!q->o.now)
		q->o.now = vg_mono_s;
	pthread_mutex_init(&q->mu, NULL);
	/* timed waits use CLOCK_MONOTONIC like the queue's clock */
	vg_cond_init_mono(&q->cond);
	vg_strmap_init(&q->dirty, free);
	vg_strmap_init(&q->processing, NULL);
	vg_strmap_init(&q->waiting, free);
	vg_strmap_init(&q->failures, NULL);
	q->bucket = vg_ratelimit_new(q->o.qps, q->o.burst, NULL);
	if (!q->bucket) {
		workqueue_free(q);
		return NULL;
	}
	return q;
}

void workqueue_free(struct workqueue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->len; i++)
		free(q->ring[(q->head + i) % q->cap]);
	free(q->ring);
	for (size_t i = 0; i < q->nheap; i++)
		free(q->heap[i].key);
	free(q->heap);
	vg_strmap_cleanup(&q->dirty);
	vg_strmap_cleanup(&q->processing);
	vg_strmap_cleanup(&q->waiting);
	vg_strmap_cleanup(&q->failures);
	vg_ratelimit_free(q->bucket);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static int ring_push(struct workqueue *q, char *key)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 64;
		char **n = malloc(ncap * sizeof(*n));

		if (!n)
			return VG_NOMEM;
		for (size_t i = 0; i < q->len; i++)
			n[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = n;
		q->cap = ncap;
		q->head = 0;
	}
	q->ring[(q->head + q->len) % q->cap] = key;
	q->len++;
	return VG_OK;
}

static char *ring_pop(struct workqueue *q)
{
	char *k = q->ring[q->head];

	q->head = (q->head + 1) % q->cap;
	q->len--;
	return k;
}

/* Queue `key` unless already queued; called with the lock held. */
static int add_locked(struct workqueue *q, const char *key)
{
	double *at;
	char *copy;

	if (q->shutdown || vg_strmap_has(&q->dirty, key))
		return VG_OK;
	at = malloc(sizeof(*at));
	if (!at)
		return VG_NOMEM;
	*at = q->o.now();
	if (vg_strmap_put(&q->dirty, key, at) != VG_OK) {
		free(at);
		return VG_NOMEM;
	}
	q->adds++;
	if (q->o.on_add)
		q->o.on_add(q->o.ctx);
	if (vg_strmap_has(&q->processing, key))
		return VG_OK; /* done() queues it again */
	copy = strdup(key);
	if (!copy || ring_push(q, copy) != VG_OK) {
		free(copy);
		vg_strmap_del(&q->dirty, key);
		return VG_NOMEM;
	}
	pthread_cond_signal(&q->cond);
	return VG_OK;
}

int workqueue_add(struct workqueue *q, const char *key)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	rc = add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static void heap_swap(struct delayed *a, struct delayed *b)
{
	struct delayed t = *a;

	*a = *b;
	*b = t;
}

static int heap_push(struct workqueue *q, double due, char *key)
{
	size_t i;

	if (q->nheap == q->capheap) {
		size_t ncap = q->capheap ? q->capheap * 2 : 32;
		struct delayed *n = realloc(q->heap, ncap * sizeof(*n));

		if (!n)
			return VG_NOMEM;
		q->heap = n;
		q->capheap = ncap;
	}
	i = q->nheap++;
	q->heap[i].due = due;
	q->heap[i].key = key;
	while (i > 0 && q->heap[(i - 1) / 2].due > q->heap[i].due) {
		heap_swap(&q->heap[(i - 1) / 2], &q->heap[i]);
		i = (i - 1) / 2;
	}
	return VG_OK;
}

static struct delayed heap_pop(struct workqueue *q)
{
	struct delayed top = q->heap[0];
	size_t i = 0;

	q->heap[0] = q->heap[--q->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < q->nheap && q->heap[l].due < q->heap[m].due)
			m = l;
		if (r < q->nheap && q->heap[r].due < q->heap[m].due)
			m = r;
		if (m == i)
			break;
		heap_swap(&q->heap[i], &q->heap[m]);
		i = m;
	}
	return top;
}

static int add_after_locked(struct workqueue *q, const char *key, double delay)
{
	double due, *cur;
	char *copy;

	if (q->shutdown)
		return VG_OK;
	if (delay <= 0)
		return add_locked(q, key);
	due = q->o.now() + delay;
	cur = vg_strmap_get(&q->waiting, key);
	if (cur && *cur <= due)
		return VG_OK; /* an earlier wake-up is already set */
	if (!cur) {
		cur = malloc(sizeof(*cur));
		if (!cur || vg_strmap_put(&q->waiting, key, cur) != VG_OK) {
			free(cur);
			return VG_NOMEM;
		}
	}
	*cur = due;
	copy = strdup(key);
	if (!copy || heap_push(q, due, copy) != VG_OK) {
		free(copy);
		vg_strmap_del(&q->waiting, key);
		return VG_NOMEM;
	}
	pthread_cond_broadcast(&q->cond); /* a sooner deadline for sleepers */
	return VG_OK;
}

int workqueue_add_after(struct workqueue *q, const char *key, double seconds)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	rc = add_after_locked(q, key, seconds);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int workqueue_add_rate_limited(struct workqueue *q, const char *key)
{
	intptr_t n;
	double backoff, global;
	int rc;

	pthread_mutex_lock(&q->mu);
	n = (intptr_t)vg_strmap_get(&q->failures, key);
	backoff = q->o.base_delay * pow(2.0, (double)(n < 1023 ? n : 1023));
	if (backoff > q->o.max_delay)
		backoff = q->o.max_delay;
	global = (double)vg_ratelimit_reserve(q->bucket) / 1e9;
	rc = vg_strmap_put(&q->failures, key, (void *)(n + 1));
	q->retries++;
	if (q->o.on_retry)
		q->o.on_retry(q->o.ctx);
	if (rc == VG_OK)
		rc = add_after_locked(q, key, backoff > global ? backoff : global);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void workqueue_forget(struct workqueue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	vg_strmap_del(&q->failures, key);
	pthread_mutex_unlock(&q->mu);
}

int workqueue_num_requeues(struct workqueue *q, const char *key)
{
	intptr_t n;

	pthread_mutex_lock(&q->mu);
	n = (intptr_t)vg_strmap_get(&q->failures, key);
	pthread_mutex_unlock(&q->mu);
	return (int)n;
}

/* Move delayed keys whose time has come to the ready queue. */
static void promote_due(struct workqueue *q)
{
	double now = q->o.now();

	while (q->nheap && q->heap[0].due <= now) {
		struct delayed d = heap_pop(q);
		double *cur = vg_strmap_get(&q->waiting, d.key);

		if (cur && *cur == d.due) { /* else superseded by a sooner one */
			vg_strmap_del(&q->waiting, d.key);
			add_locked(q, d.key);
		}
		free(d.key);
	}
}

char *workqueue_get(struct workqueue *q)
{
	char *key = NULL;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		promote_due(q);
		if (q->shutdown)
			break;
		if (q->len) {
			double *at;

			key = ring_pop(q);
			at = vg_strmap_take(&q->dirty, key);
			if (at && q->o.on_queue_latency)
				q->o.on_queue_latency(q->o.ctx,
						      q->o.now() - *at);
			free(at);
			if (vg_strmap_put(&q->processing, key, NULL) != VG_OK) {
				/* cannot track it: put it back and retry later */
				add_after_locked(q, key, 0.1);
				free(key);
				key = NULL;
				continue;
			}
			break;
		}
		if (q->nheap) {
			double wait = q->heap[0].due - q->o.now();
			struct timespec ts;

			vg_mono_deadline(&ts, wait < 0.001 ? 0.001 : wait);
			pthread_cond_timedwait(&q->cond, &q->mu, &ts);
		} else {
			pthread_cond_wait(&q->cond, &q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	return key;
}

void workqueue_done(struct workqueue *q, const char *key)
{
	char *copy;

	pthread_mutex_lock(&q->mu);
	vg_strmap_del(&q->processing, key);
	if (!q->shutdown && vg_strmap_has(&q->dirty, key)) {
		copy = strdup(key);
		if (copy && ring_push(q, copy) == VG_OK)
			pthread_cond_signal(&q->cond);
		else
			free(copy);
	}
	pthread_mutex_unlock(&q->mu);
}

void workqueue_shutdown(struct workqueue *q)
{
	pthread_mutex_lock(&q->mu);
	q->shutdown = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

int workqueue_is_shutdown(struct workqueue *q)
{
	int s;

	pthread_mutex_lock(&q->mu);
	s = q->shutdown;
	pthread_mutex_unlock(&q->mu);
	return s;
}

void workqueue_stats(struct workqueue *q, struct workqueue_stats *out)
{
	pthread_mutex_lock(&q->mu);
	out->depth = q->len;
	out->delayed = vg_strmap_len(&q->waiting);
	out->processing = vg_strmap_len(&q->processing);
	out->adds = q->adds;
	out->retries = q->retries;
	pthread_mutex_unlock(&q->mu);
}
