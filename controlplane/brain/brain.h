/* brain.h - vigil-brain's core: threads that take "report" tasks from the
 * brain's own Redis queue and generate the reports, a scheduler thread
 * (delayed retries, lease renewal), and the sweep that turns the pending
 * report rows the worker records into tasks (README.md, "Handoff"). */
#ifndef BRAIN_BRAIN_H
#define BRAIN_BRAIN_H

#include <jansson.h>
#include <stddef.h>

#include "report_db.h"
#include "vigil/db.h"
#include "vigil/metrics.h"
#include "vigil/queue.h"
#include "vigil/strmap.h"

/* The brain's one task type. */
#define BRAIN_TASK_REPORT "report"

struct brain_config {
	/* Redis connection, the brain's prefix (never the worker's) and
	 * visibility timeout; group and types are set by the brain. */
	struct vg_queue_opts queue;
	struct vg_db_pool *db; /* borrowed */
	int concurrency;       /* reports generated at once; default 2 */
	int block_ms;          /* longest blocking claim; default 1000 */
	/* sweep for pending reports every sweep_ms (default 1000; < 0: no
	 * sweep); re-queue a still pending one after requeue_after_s
	 * (default 600) */
	int sweep_ms;
	int requeue_after_s;
	/* retry policy of "report" tasks; zero: 8 attempts, 2 s .. 5 min */
	int max_attempts, backoff_base_ms, backoff_max_ms;
	/* host -> criticality name (borrowed, read-only while running) */
	const struct vg_strmap *criticality;
	int trend_runs;  /* 0: 10 */
	size_t list_max; /* 0: 1000 */
	struct vg_metrics *metrics; /* NULL: the default registry */
};

struct brain;

int brain_new(const struct brain_config *cfg, struct brain **out,
              struct vg_err *err);
int brain_start(struct brain *b, struct vg_err *err);
/* Stop taking tasks; reports being generated finish. Returns at once. */
void brain_stop(struct brain *b);
/* Wait for the threads (after brain_stop): VG_OK or VG_TIMEOUT. */
int brain_wait(struct brain *b, int timeout_ms);
/* 1 while running and Redis answered lately. */
int brain_ready(struct brain *b);
void brain_free(struct brain *b);

/*
 * Queue a "report" task for the run (as the sweep does for pending rows);
 * the task's id into `task_id` (`n` bytes). Thread-safe.
 */
int brain_enqueue_report(struct brain *b, const char *tenant, const char *run,
                         const char *request_id, char *task_id, size_t n,
                         struct vg_err *err);

/*
 * The report task's payload, checked: {"tenant_id": uuid, "run_id": uuid,
 * "force": bool?, "asset_criticality": {host: level}?}. The tenant must
 * be the task's. Fills `p` (strings borrowed from the task) and adds the
 * payload's criticality labels over `base` into `crit` (initialised by
 * the caller). VG_INVAL / VG_FORBIDDEN with a message naming the field.
 */
int brain_parse_payload(const struct vg_task *t, const struct vg_strmap *base,
                        struct report_params *p, struct vg_strmap *crit,
                        struct vg_err *err);

/*
 * Parse "host=level,host=level" (a flag or environment value) into `m`
 * (values are static level names). VG_INVAL naming the bad entry.
 */
int brain_parse_criticality(const char *s, struct vg_strmap *m,
                            struct vg_err *err);

#endif
