/* worker.h - the worker core: threads that claim and run tasks, one
 * scheduler thread for delayed tasks and lease renewal, metrics, and a
 * graceful drain. */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include <stddef.h>

#include "tasks.h"
#include "vigil/db.h"
#include "vigil/metrics.h"
#include "vigil/queue.h"

struct worker_config {
	/* Redis connection, prefix, visibility timeout; its types are
	 * filled from `defs`. */
	struct vg_queue_opts queue;
	struct vg_db_pool *db;       /* borrowed; NULL for tasks without */
	const struct task_def *defs; /* NULL: task_defs() */
	size_t ndefs;
	int concurrency; /* worker threads; default 4 */
	int prefetch;    /* tasks claimed at once per thread; default 16 */
	int block_ms;    /* longest blocking claim; default 1000 */
	struct vg_metrics *metrics; /* NULL: the default registry */
};

struct worker;

/* A new worker, not yet running. */
int worker_new(const struct worker_config *cfg, struct worker **out,
               struct vg_err *err);
/* Start the threads. */
int worker_start(struct worker *w, struct vg_err *err);
/* Stop taking tasks; tasks claimed but not started go back to the queue,
 * tasks being processed finish. Returns at once. */
void worker_stop(struct worker *w);
/* Wait until every thread finished (after worker_stop) or `timeout_ms`
 * passed: VG_OK, or VG_TIMEOUT with tasks still running (they are
 * delivered again after the visibility timeout). */
int worker_wait(struct worker *w, int timeout_ms);
/* 1 while running and Redis answered lately. */
int worker_ready(struct worker *w);
/* Tasks held right now (claimed and not finished). */
int worker_in_flight(struct worker *w);
/* Free a worker whose threads have all finished (or never started). */
void worker_free(struct worker *w);

#endif
