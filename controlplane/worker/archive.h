/* archive.h - scan results older than the retention period, compressed
 * with zstd into cold storage and restorable: the worker's "archive" task,
 * its periodic sweep and `vigil-worker archive ...`.
 *
 * One object per run, <cold>/<tenant>/<yyyy>/<run>.jsonl.zst: JSON Lines
 * (a header naming the run, one line per ingest batch and per finding with
 * every stored column, a trailer with the counts) in one zstd frame with
 * its content checksum. The index row in archived_runs (key, SHA-256,
 * sizes, counts) and the deletion of the run's rows commit together, after
 * the object was fsynced, renamed into place and read back. */
#ifndef WORKER_ARCHIVE_H
#define WORKER_ARCHIVE_H

#include <stdio.h>

#include "tasks.h"
#include "vigil/db.h"
#include "vigil/metrics.h"
#include "vigil/queue.h"

#define ARCHIVE_FORMAT_VERSION 1

struct archive_config {
	const char *cold_dir;       /* borrowed; default /var/lib/vigil/cold */
	long long retention_s;      /* default 90 days */
	int sweep_limit;            /* runs one sweep enqueues; default 500 */
	int zstd_level;             /* default 3 */
	struct vg_metrics *metrics; /* NULL: the default registry */
};

/* Set what the "archive" task uses (copied; cold_dir stays borrowed),
 * before workers start. Without a call the defaults apply. */
void archive_configure(const struct archive_config *c);

/* What archiving or restoring one run did. */
struct archive_result {
	char object_key[128]; /* relative to cold_dir */
	char sha256[65];      /* of the object, hex */
	long long raw_bytes, compressed_bytes;
	long long findings, batches;
	/* static reason when there was nothing to do ("archived before",
	 * "run within retention", ...), NULL when the run was moved */
	const char *skipped;
};

/*
 * Archive run `run` of `tenant` when it finished longer than the retention
 * ago and is not archived: write the object, then in one transaction
 * insert the index row and delete the run's findings and ingest batches.
 * Safe to repeat and to crash anywhere: before the commit the object is
 * simply written again. VG_NOTFOUND for an unknown run.
 */
int archive_run(struct vg_db_pool *db, const char *tenant, const char *run,
                struct archive_result *res, struct vg_err *err);

/*
 * Bring an archived run back: check the object's size and SHA-256 against
 * the index, insert its rows again under the tenant's row-level security
 * (ids, fingerprints and times as they were), drop the index row, then
 * remove the object. `tenant` NULL: looked up from the index. A corrupt or
 * foreign object is refused (VG_PARSE) with nothing inserted; VG_NOTFOUND
 * when the run is not archived (and was never restored).
 */
int archive_restore(struct vg_db_pool *db, const char *tenant, const char *run,
                    struct archive_result *res, struct vg_err *err);

/*
 * The "archive" task. Payload:
 *   {}                                  sweep every tenant
 *   {"tenant_id": T}                    sweep one tenant
 *   {"tenant_id": T, "run_id": R}       archive one run
 *   {"tenant_id": T, "run_id": R, "action": "restore"}
 * A sweep enqueues one archive task per run due (at most sweep_limit);
 * the run tasks do the work, each retried on its own.
 */
int archive_task(struct task_ctx *ctx, struct vg_err *err);

/* Enqueues a sweep at most once per `interval_s` across every worker
 * sharing the database (archive_sweep_claim), checking a few times per
 * interval. */
struct archive_ticker;
int archive_ticker_start(struct vg_db_pool *db, const struct vg_queue_opts *qo,
                         long long interval_s, struct archive_ticker **out,
                         struct vg_err *err);
/* Stop and free; NULL allowed. */
void archive_ticker_stop(struct archive_ticker *t);

/* `vigil-worker archive (run TENANT RUN | restore RUN | sweep)`. Returns
 * the exit status: 0, 1 (failed) or 2 (usage). */
int archive_main(struct vg_db_pool *db, struct vg_queue *q, int argc,
                 char **argv, FILE *out, FILE *errf);

#endif
