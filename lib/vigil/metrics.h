/*
 * metrics.h - Prometheus metrics in the text exposition format 0.0.4.
 *
 * A registry holds metric families (counters, gauges, histograms), each
 * with fixed label names; a family holds one series per combination of
 * label values. Look a series up once and keep the pointer: updates are
 * lock-free C11 atomics, safe from any thread. Series and families live as
 * long as their registry.
 *
 *   struct vg_metric *reqs = vg_metrics_counter(reg, "http_requests_total",
 *           "HTTP requests served.", VG_LABELS("code", "method"), &err);
 *   vg_counter_inc(vg_metric_labels(reqs, "200", "GET"));
 *
 * Update functions accept NULL (a family whose registration failed) and do
 * nothing, so instrumentation never needs error paths.
 */
#ifndef VG_METRICS_H
#define VG_METRICS_H

#include <stddef.h>

#include "vigil/buf.h"
#include "vigil/err.h"

#define VG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A NULL-terminated label-name list for the registration functions. */
#define VG_LABELS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Most series one family keeps; further label combinations are dropped
 * into an unrendered series so a label fed from input cannot exhaust
 * memory. */
#define VG_METRICS_MAX_SERIES 10000

enum vg_metric_type {
	VG_METRIC_COUNTER,
	VG_METRIC_GAUGE,
	VG_METRIC_HISTOGRAM,
};

struct vg_metrics; /* a registry */
struct vg_metric;  /* a family */
struct vg_series;  /* one labelled time series */

/* A new, empty registry (NULL when out of memory); free with
 * vg_metrics_free, which also frees every family and series in it. */
struct vg_metrics *vg_metrics_new(void);
void vg_metrics_free(struct vg_metrics *reg);
/* The process-wide registry, created on first use; borrowed, never freed. */
struct vg_metrics *vg_metrics_default(void);

/*
 * Register a family; returns it (borrowed from the registry) or NULL with
 * `err` set. `labels` is NULL or a NULL-terminated list (VG_LABELS).
 * Registering the same name again with the same type, help and labels
 * returns the existing family; anything else under a taken name is
 * VG_EXISTS. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* and must not start with "__".
 */
struct vg_metric *vg_metrics_counter(struct vg_metrics *reg, const char *name,
				     const char *help,
				     const char *const *labels,
				     struct vg_err *err);
struct vg_metric *vg_metrics_gauge(struct vg_metrics *reg, const char *name,
				   const char *help, const char *const *labels,
				   struct vg_err *err);
/*
 * `buckets`: `nbuckets` strictly increasing upper bounds; +Inf is implied.
 * NULL selects the Prometheus defaults (.005 .01 .025 .05 .1 .25 .5 1 2.5
 * 5 10). The label name "le" is reserved.
 */
struct vg_metric *vg_metrics_histogram(struct vg_metrics *reg,
				       const char *name, const char *help,
				       const char *const *labels,
				       const double *buckets, size_t nbuckets,
				       struct vg_err *err);

/*
 * The series for label `values` (one per label name, in order; NULL for a
 * family without labels), created on first use; borrowed. Never NULL for
 * a non-NULL family: when the values are missing or the family is full or
 * memory is short, a discarded series is returned.
 */
struct vg_series *vg_metric_series(struct vg_metric *m,
				   const char *const *values);
/* Same, with the values as arguments: vg_metric_labels(m, "200", "GET"). */
struct vg_series *vg_metric_labels(struct vg_metric *m, ...);

/* Counters only go up: negative or NaN increments are ignored. */
void vg_counter_inc(struct vg_series *s);
void vg_counter_add(struct vg_series *s, double v);
/* For collectors mirroring a counter kept elsewhere (e.g. CPU time). */
void vg_counter_set(struct vg_series *s, double v);

void vg_gauge_set(struct vg_series *s, double v);
void vg_gauge_add(struct vg_series *s, double v);
void vg_gauge_inc(struct vg_series *s);
void vg_gauge_dec(struct vg_series *s);

void vg_histogram_observe(struct vg_series *s, double v);

/* Current value of a counter or gauge, the sum of a histogram; 0 for NULL. */
double vg_series_value(const struct vg_series *s);
/* Observations in a histogram (its _count); 0 for other types and NULL. */
unsigned long long vg_series_count(const struct vg_series *s);

/*
 * Call `fn(reg, data)` at the start of every render, to refresh values
 * kept elsewhere; `data` is borrowed and must outlive the registry.
 * Returns 0, VG_INVAL or VG_NOMEM.
 */
typedef void (*vg_metrics_collect_fn)(struct vg_metrics *reg, void *data);
int vg_metrics_add_collector(struct vg_metrics *reg, vg_metrics_collect_fn fn,
			     void *data);

/*
 * Register the standard process metrics, refreshed at each render:
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_start_time_seconds,
 * process_open_fds, process_max_fds (Linux /proc). Returns 0, VG_EXISTS
 * when already registered in `reg`, or another error.
 */
int vg_metrics_register_process(struct vg_metrics *reg, struct vg_err *err);

/*
 * Append the exposition text of every family with at least one series,
 * families sorted by name and series by label values. On failure (VG_NOMEM
 * or the buffer's limit) `out` is left as it was.
 */
int vg_metrics_render(struct vg_metrics *reg, struct vg_buf *out);

#endif
