/*
 * queue.h - the reliable task queue on Redis shared by the gateway (which
 * enqueues) and the worker (which consumes).
 *
 * Data model (keys share one hash tag so every script runs on one Redis
 * Cluster slot; "vigil" is the default prefix):
 *
 *   {vigil}:tasks    stream of ready tasks, one field "e" = the envelope;
 *                    consumer group "workers". An entry stays in the
 *                    stream (and in the group's pending list while a
 *                    worker holds it) until the task succeeded or was
 *                    moved to the delayed set or the dead letters.
 *   {vigil}:delayed  sorted set: envelope -> due time (Redis clock, ms).
 *                    A script moves due members to the stream atomically.
 *   {vigil}:wake     list with at most one element, pushed when a delayed
 *                    task becomes the earliest due; schedulers block on it
 *                    (BLPOP with the time to the next due task).
 *   {vigil}:dlq      stream of dead letters: "e" (the envelope with the
 *                    last error, attempt count and attempt times) or "raw"
 *                    (bytes that were no envelope), "error", "dead_at".
 *
 * Guarantees: a task is delivered at least once. It leaves the stream only
 * when acknowledged, retried (into the delayed set, in the same script) or
 * dead-lettered. A task held by a consumer that stops renewing it (crash,
 * lost network) is claimed again by another after the visibility timeout.
 * The attempt number counts failures and lost deliveries; past the task
 * type's max attempts the task is dead-lettered. Handlers must therefore
 * be idempotent. With appendfsync always, an acknowledged enqueue survives
 * a Redis crash.
 *
 * A struct vg_queue is one Redis connection and is not thread-safe: give
 * each thread its own. Every call reconnects when the connection was lost
 * and fails with VG_IO while Redis cannot be reached.
 */
#ifndef VG_QUEUE_H
#define VG_QUEUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/err.h"

/* Largest envelope accepted (enqueue) or parsed (claim, decode). */
#define VG_QUEUE_MAX_TASK ((size_t)16 << 20)
/* Task ids: 32 lower-case hex digits. */
#define VG_QUEUE_ID_LEN 32
/* Longest type name: [a-z][a-z0-9_.-]* */
#define VG_QUEUE_TYPE_MAX       64
#define VG_QUEUE_REQUEST_ID_MAX 128
#define VG_QUEUE_TENANT_MAX     64
#define VG_QUEUE_ERROR_MAX      1024

/* Retry policy of one task type. */
struct vg_queue_type {
	const char *name;
	int max_attempts;    /* >= 1; then the task is dead-lettered */
	int backoff_base_ms; /* delay before the 2nd attempt (before jitter) */
	int backoff_max_ms;  /* cap of the exponential growth */
};

/* Delay before attempt `attempt` + 1 after attempt `attempt` (>= 1)
 * failed: d = min(max, base * 2^(attempt-1)), then "equal jitter": d/2 +
 * (rnd mod (d/2 + 1)), so retries spread out yet never come sooner than
 * half the nominal delay. */
long long vg_queue_backoff_ms(const struct vg_queue_type *t, int attempt,
                              uint32_t rnd);

/* ------------------------------------------------------------------ */
/* Tasks and their envelope                                             */
/* ------------------------------------------------------------------ */

/*
 * A task as delivered. Strings are borrowed from the task and live until
 * vg_task_free(). The envelope is a JSON object:
 *
 *   {"v":1,"id":"<32 hex>","type":"ingest","tenant":"<uuid>",
 *    "request_id":"...","attempts":0,"enqueued_at":<ms>,
 *    "first_attempt_at":<ms>,"last_attempt_at":<ms>,"last_error":"...",
 *    "payload":{...}}
 *
 * "attempts" counts the attempts made before this delivery; unknown keys
 * are ignored so newer producers can add some.
 */
struct vg_task {
	const char *id;
	const char *type;
	const char *tenant;     /* "" when none */
	const char *request_id; /* "" when none */
	const json_t *payload;  /* borrowed */
	int attempts;           /* attempts before this delivery */
	int attempt;            /* this delivery's number, 1-based (claim) */
	long long enqueued_ms;
	long long first_attempt_ms; /* 0 before the first attempt */
	long long last_attempt_ms;
	const char *last_error; /* "" when none */

	/* set by vg_queue_claim */
	char msgid[48];     /* stream entry id */
	char consumer[128]; /* who holds it */
	int deliveries;     /* of this stream entry */

	json_t *root_; /* the parsed envelope (owned) */
};

/*
 * Parse an envelope of `len` bytes into a new task (free with
 * vg_task_free). VG_PARSE with a message naming the problem for anything
 * that is no valid version-1 envelope, VG_TOOLARGE past
 * VG_QUEUE_MAX_TASK. Input from Redis is outside input: this is the
 * fuzzed parser.
 */
int vg_task_decode(const char *data, size_t len, struct vg_task **out,
                   struct vg_err *err);
/* Append the envelope of `t` (canonical key order) to `out`. */
struct vg_buf;
int vg_task_encode(const struct vg_task *t, struct vg_buf *out);
/* NULL allowed. */
void vg_task_free(struct vg_task *t);

/* ------------------------------------------------------------------ */
/* Connection                                                           */
/* ------------------------------------------------------------------ */

struct vg_queue_opts {
	const char *host;     /* default "127.0.0.1" */
	int port;             /* default 6379 */
	const char *password; /* NULL: no AUTH */
	int db;               /* SELECT; default 0 */
	const char *prefix;   /* key hash tag; default "vigil" */
	const char *group;    /* default "workers" */
	/* Consumer name (copied); NULL: "<hostname>-<pid>-<n>". */
	const char *consumer;
	int visibility_timeout_ms; /* default 30000 */
	int connect_timeout_ms;    /* default 2000 */
	int command_timeout_ms;    /* default 5000 */
	/* Retry policies by type name (borrowed; must outlive the queue).
	 * A consumer dead-letters tasks of types missing here at claim. A
	 * producer may leave it empty. */
	const struct vg_queue_type *types;
	size_t ntypes;
	/* Called (on the claiming thread) for each task dead-lettered by
	 * vg_queue_claim itself: malformed envelope, unknown type, lost by
	 * workers too often. `type` is "" when the envelope was unreadable. */
	void (*on_dead)(void *ctx, const char *type, const char *request_id,
	                const char *error);
	void *on_dead_ctx;
};

struct vg_queue;

/* A new queue handle. It connects on first use, so it can be created
 * while Redis is down; VG_INVAL / VG_NOMEM only. */
int vg_queue_new(const struct vg_queue_opts *opts, struct vg_queue **out,
                 struct vg_err *err);
void vg_queue_free(struct vg_queue *q);
/* This handle's consumer name; borrowed. */
const char *vg_queue_consumer(const struct vg_queue *q);
/* The policy of `type`, or NULL; borrowed. */
const struct vg_queue_type *vg_queue_type_find(const struct vg_queue *q,
                                               const char *type);
/* Round trip to Redis (readiness checks). */
int vg_queue_ping(struct vg_queue *q, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Producer                                                             */
/* ------------------------------------------------------------------ */

struct vg_queue_msg {
	const char *type;       /* required, [a-z][a-z0-9_.-]{0,63} */
	const json_t *payload;  /* required, borrowed */
	const char *request_id; /* NULL or "": none */
	const char *tenant;     /* NULL or "": none */
	long long delay_ms;     /* > 0: delayed by that much */
	/* out: the new task's id */
	char id[VG_QUEUE_ID_LEN + 1];
};

/* Enqueue one task (one round trip). */
int vg_queue_enqueue(struct vg_queue *q, struct vg_queue_msg *m,
                     struct vg_err *err);
/* The same, due `delay_ms` from now (Redis's clock). */
int vg_queue_enqueue_after(struct vg_queue *q, struct vg_queue_msg *m,
                           long long delay_ms, struct vg_err *err);
/* Enqueue `n` tasks in one pipelined round trip. On failure some of them
 * may have been enqueued (their ids are set). */
int vg_queue_enqueue_many(struct vg_queue *q, struct vg_queue_msg *m, size_t n,
                          struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Consumer                                                             */
/* ------------------------------------------------------------------ */

/*
 * Take up to `max` tasks into `tasks` (new, each freed by the caller after
 * it was acked, failed or released); *n is how many. Blocks up to
 * `block_ms` when none is ready (0: do not block). Pending acks of
 * vg_queue_ack_later() are sent in the same round trip first. Every
 * visibility_timeout/2 it first claims tasks whose holder has not renewed
 * them for the visibility timeout (XAUTOCLAIM). Tasks it cannot hand out
 * (malformed, unknown type, over their max attempts) go to the dead
 * letters. *n may be 0 after a timeout.
 */
int vg_queue_claim(struct vg_queue *q, struct vg_task **tasks, int max,
                   int block_ms, int *n, struct vg_err *err);

/* Success: remove the task (one round trip). */
int vg_queue_ack(struct vg_queue *q, const struct vg_task *t,
                 struct vg_err *err);
/* Success, acknowledged with the next claim or vg_queue_flush (batched).
 * VG_NOMEM is the only failure. */
int vg_queue_ack_later(struct vg_queue *q, const struct vg_task *t);
/* Send the pending acks. On VG_IO they stay pending for the next call. */
int vg_queue_flush(struct vg_queue *q, struct vg_err *err);
/* Acks not yet sent. */
size_t vg_queue_pending_acks(const struct vg_queue *q);

enum vg_queue_outcome {
	VG_QUEUE_RETRIED = 1, /* back in the delayed set */
	VG_QUEUE_DEAD = 2,    /* in the dead letters */
	VG_QUEUE_LOST = 3,    /* no longer ours (claimed by another) */
};

/*
 * The attempt failed with `error` (copied into the envelope, truncated to
 * VG_QUEUE_ERROR_MAX). Retried after vg_queue_backoff_ms unless
 * `permanent` or the type's max attempts are used up: then dead-lettered.
 * One atomic script, which does nothing when another consumer holds the
 * task now (VG_QUEUE_LOST). *outcome (NULL allowed) says which happened;
 * *delay_ms (NULL allowed) the retry delay.
 */
int vg_queue_fail(struct vg_queue *q, const struct vg_task *t, int permanent,
                  const char *error, int *outcome, long long *delay_ms,
                  struct vg_err *err);

/* Hand tasks back unprocessed (shutdown): each goes back to the end of
 * the stream at once, its attempt not counted. */
int vg_queue_release(struct vg_queue *q, struct vg_task *const *tasks, size_t n,
                     struct vg_err *err);

/* Renew the visibility of tasks still being processed (held by any
 * consumer named in them) so they are not claimed by another; tasks no
 * longer held by their consumer are skipped. */
int vg_queue_touch(struct vg_queue *q, const struct vg_task *const *tasks,
                   size_t n, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Delayed tasks                                                        */
/* ------------------------------------------------------------------ */

/*
 * Move up to `max` due delayed tasks to the stream (atomically);
 * *moved (NULL allowed) how many; *next_ms (NULL allowed) the time until
 * the next is due, -1 when none is delayed.
 */
int vg_queue_promote(struct vg_queue *q, int max, int *moved,
                     long long *next_ms, struct vg_err *err);
/*
 * Promote due tasks; when there were none, sleep until the next one is
 * due, a producer signals an earlier one, or `max_wait_ms` passed (BLPOP
 * on the wake list: no polling). The scheduler loop of a worker is this
 * call.
 */
int vg_queue_schedule(struct vg_queue *q, int max_wait_ms, int *moved,
                      struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Dead letters and statistics                                          */
/* ------------------------------------------------------------------ */

/* One dead letter as listed; borrowed for the callback. */
struct vg_dead {
	const char *id;             /* dead-letter stream id */
	const struct vg_task *task; /* NULL when the entry was no envelope */
	const char *raw;            /* the bytes then ("" otherwise) */
	size_t raw_len;
	const char *error;
	long long dead_ms;
};

/* Call `fn` for each dead letter, oldest first, of `type` (NULL: all),
 * at most `limit` (0: all). `fn` returning non-zero stops the walk. */
int vg_queue_dlq_list(struct vg_queue *q, const char *type, size_t limit,
                      int (*fn)(const struct vg_dead *d, void *arg), void *arg,
                      struct vg_err *err);
/* Put dead letter `id` back on the stream with its attempts reset (its
 * last error kept); VG_NOTFOUND when there is none, VG_INVAL for an entry
 * that holds no envelope. Atomic: replayed at most once. */
int vg_queue_dlq_replay(struct vg_queue *q, const char *id, struct vg_err *err);
/* Delete dead letter `id`; VG_NOTFOUND when there is none. */
int vg_queue_dlq_delete(struct vg_queue *q, const char *id, struct vg_err *err);
/* Delete every dead letter; *n (NULL allowed) how many there were. */
int vg_queue_dlq_purge(struct vg_queue *q, long long *n, struct vg_err *err);

struct vg_queue_stats {
	long long ready;   /* in the stream, not held by a consumer */
	long long pending; /* held by consumers (in flight) */
	long long delayed;
	long long dead;
};
/* One pipelined round trip. */
int vg_queue_stats(struct vg_queue *q, struct vg_queue_stats *out,
                   struct vg_err *err);

#endif
