/* tasks.h - vigil-worker's task types: one table of name, retry policy
 * and handler. */
#ifndef WORKER_TASKS_H
#define WORKER_TASKS_H

#include <stddef.h>

#include "vigil/db.h"
#include "vigil/queue.h"

/* What a handler may use; all borrowed for the call. */
struct task_ctx {
	struct vg_db_pool *db;
	struct vg_queue *q; /* the calling thread's handle, for follow-ups */
	const struct vg_task *task;
	/* a line for the log when the task did something worth saying
	 * ("batch already ingested"); "" otherwise */
	char note[128];
};

/*
 * Run the task. VG_OK acknowledges it. An error retries it with backoff
 * unless task_error_is_permanent(code) (malformed payload, forbidden by
 * row-level security ...): then it is dead-lettered at once. Handlers are
 * idempotent: a task may be delivered more than once.
 */
typedef int (*task_fn)(struct task_ctx *ctx, struct vg_err *err);

struct task_def {
	struct vg_queue_type policy; /* name, max attempts, backoff */
	task_fn run;
};

/* The task types, borrowed, static. */
const struct task_def *task_defs(size_t *n);
const struct task_def *task_def_find(const struct task_def *defs, size_t n,
                                     const char *name);
/* 1 when retrying cannot help. */
int task_error_is_permanent(int code);

#endif
