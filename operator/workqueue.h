/*
 * workqueue.h - the operator's rate-limited work queue of object keys.
 *
 * The semantics of client-go's workqueue, which every controller author
 * knows:
 *  - a key added several times before a worker takes it is queued once;
 *  - a key is never handed to two workers at once: a key added while it is
 *    being processed is queued again when the worker calls done();
 *  - add_after() delays a key (the earliest of several delays wins);
 *  - add_rate_limited() delays by the key's exponential backoff (base
 *    doubling per failure up to max) or the global token bucket, whichever
 *    is longer; forget() resets the key's backoff after a success.
 * All functions are thread-safe.
 */
#ifndef VIGIL_OPERATOR_WORKQUEUE_H
#define VIGIL_OPERATOR_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct workqueue;

struct workqueue_opts {
	double base_delay;	/* first retry delay, s (default 0.005) */
	double max_delay;	/* backoff cap, s (default 1000) */
	double qps;		/* global bucket refill, per s (default 10) */
	int burst;		/* global bucket size (default 100) */
	/* Monotonic clock in seconds; NULL for CLOCK_MONOTONIC (tests inject). */
	double (*now)(void);
	/* Called with the time a key waited in the queue before a worker took
	 * it, and with each add (NULL allowed). */
	void (*on_queue_latency)(void *ctx, double seconds);
	void (*on_add)(void *ctx);
	void (*on_retry)(void *ctx);
	void *ctx;
};

struct workqueue_stats {
	size_t depth;	     /* queued, ready for a worker */
	size_t delayed;	     /* waiting for their time */
	size_t processing;   /* taken by workers, not done */
	uint64_t adds;	     /* add calls that queued or delayed a key */
	uint64_t retries;    /* add_rate_limited calls */
};

/* New queue; NULL on allocation failure. `opts` NULL for defaults. */
struct workqueue *workqueue_new(const struct workqueue_opts *opts);
/* Free the queue and every key in it (after shutdown and workers joined). */
void workqueue_free(struct workqueue *q);

int workqueue_add(struct workqueue *q, const char *key);
int workqueue_add_after(struct workqueue *q, const char *key, double seconds);
int workqueue_add_rate_limited(struct workqueue *q, const char *key);
void workqueue_forget(struct workqueue *q, const char *key);
/* Failures recorded for `key` since the last forget(). */
int workqueue_num_requeues(struct workqueue *q, const char *key);

/*
 * Block until a key is ready and take it; returns a new string the caller
 * passes to workqueue_done() and then frees, or NULL once the queue is shut
 * down.
 */
char *workqueue_get(struct workqueue *q);
void workqueue_done(struct workqueue *q, const char *key);

/* Wake every worker; get() returns NULL from now on. */
void workqueue_shutdown(struct workqueue *q);
int workqueue_is_shutdown(struct workqueue *q);

void workqueue_stats(struct workqueue *q, struct workqueue_stats *out);

#endif
