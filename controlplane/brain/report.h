/* report.h - a run report as data, and its two renderings: JSON for
 * machines and one self-contained HTML page (inline CSS, inline SVG
 * charts) for people. Rendering reads only this struct. */
#ifndef BRAIN_REPORT_H
#define BRAIN_REPORT_H

#include <stddef.h>

#include "analysis.h"
#include "vigil/buf.h"

/* One run of the policy, for the trend. */
struct trend_point {
	char run_id[37];
	char created_at[40]; /* RFC 3339 */
	long counts[SEV_N];
	long total;
	/* findings absent from the run before (new and regressed), and
	 * findings of the run before absent from it; -1: no run before */
	long appeared, resolved;
};

struct report_doc {
	/* every string borrowed; "" when unknown */
	const char *tenant_id, *tenant_name;
	const char *run_id, *run_state, *created_at, *finished_at;
	const char *policy_namespace, *policy_name, *policy_uid;
	const char *previous_run_id; /* "" for a policy's first run */
	const char *generated_at;
	const struct analysis *a; /* finished */
	const struct trend_point *trend; /* oldest first, this run last */
	size_t ntrend;
	size_t list_max;  /* findings per class in the JSON; 0: 1000 */
	size_t html_rows; /* findings per class in the HTML; 0: 100 */
	size_t top_hosts; /* hosts listed; 0: 10 */
};

/* Append the JSON report (one object, compact) to `out`. */
int report_render_json(const struct report_doc *d, struct vg_buf *out);
/* Append the HTML report to `out`. */
int report_render_html(const struct report_doc *d, struct vg_buf *out);

/* Append `s` with &, <, >, " and ' as entities and control characters
 * other than tab and newline dropped. */
int html_escape(struct vg_buf *out, const char *s);

/* The charts, each one <svg> element. counts[SEV_N] of one run; points
 * oldest first. */
int svg_severity_bars(struct vg_buf *out, const long counts[SEV_N]);
int svg_trend_lines(struct vg_buf *out, const struct trend_point *p, size_t n);

/* Unix seconds as RFC 3339 UTC into `out` (at least 21 bytes). */
void format_time(double t, char *out, size_t n);

#endif
