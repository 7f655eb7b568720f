/* report_db.h - a run report from the database to the database: load the
 * run, its policy's earlier runs and their findings (streamed through a
 * cursor into the analysis), render JSON and HTML, and store both in the
 * run's one report row (the HTML zstd-compressed, content_encoding
 * 'zstd'). */
#ifndef BRAIN_REPORT_DB_H
#define BRAIN_REPORT_DB_H

#include <stddef.h>

#include "analysis.h"
#include "vigil/db.h"
#include "vigil/strmap.h"

struct report_params {
	const char *tenant, *run; /* UUIDs */
	const char *request_id;   /* NULL or "": none */
	int force;                /* regenerate a ready report */
	/* host -> "low" | "medium" | "high" | "critical"; NULL: all medium */
	const struct vg_strmap *criticality;
	int trend_runs;   /* runs in the trend, this one included; 0: 10 */
	size_t list_max;  /* findings per class in the JSON; 0: 1000 */
	size_t html_rows; /* findings per class in the HTML; 0: 100 */
	size_t top_hosts; /* 0: 10 */
	double now;       /* Unix seconds ages are measured at; 0: now */
};

struct report_outcome {
	char report_id[37];
	int skipped;  /* ready before (and not forced): nothing done */
	int inserted; /* a new row (else the pending row was completed) */
	long findings;
	long by_class[CLASS_N];
	size_t json_bytes, html_bytes;
	size_t content_bytes; /* the HTML as stored: one zstd frame */
	double load_s, render_s, store_s;
};

/*
 * Generate and store the report of `p->run`. VG_NOTFOUND when the run is
 * not the tenant's, VG_AGAIN while the run is not finished, VG_INVAL for
 * malformed ids; database errors as vg_db returns them. Idempotent: the
 * run has one report row whatever happens twice.
 */
int report_generate(struct vg_db_pool *db, const struct report_params *p,
                    struct report_outcome *out, struct vg_err *err);

/* Record that the run's report cannot be generated (`error`, truncated
 * to 1,000 bytes), unless it is ready. */
int report_mark_failed(struct vg_db_pool *db, const char *tenant,
                       const char *run, const char *request_id,
                       const char *error, struct vg_err *err);

/* One report due for generation, as the sweep claims it. */
struct report_request {
	char tenant[37], run[37];
	char request_id[129];
};
/*
 * Claim up to `max` pending reports not queued in the last
 * `requeue_after_s` seconds (vigil.report_requests_claim, across tenants),
 * into `out`; *n how many.
 */
int report_requests_claim(struct vg_db_pool *db, int max, int requeue_after_s,
                          struct report_request *out, int *n,
                          struct vg_err *err);
/* Un-claim a request whose task could not be queued, so the next sweep
 * takes it again at once. */
int report_request_unclaim(struct vg_db_pool *db, const char *tenant,
                           const char *run, struct vg_err *err);

#endif
