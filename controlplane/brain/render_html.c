/* render_html.c - the run report as one self-contained HTML page: inline
 * CSS, two inline SVG charts drawn here (findings by severity, and the
 * policy's trend), no script and no external asset. Every string that
 * comes from a tenant, a policy or a scanned host is escaped, and a
 * Content-Security-Policy forbids scripts should one slip through. */
#include "report.h"

#include <stdio.h>
#include <string.h>

static const char *const sev_colour[SEV_N] = {"#6b7280", "#2563eb", "#d97706",
                                              "#ea580c", "#b91c1c"};

int html_escape(struct vg_buf *out, const char *s)
{
	int rc = 0;

	for (const char *p = s ? s : ""; !rc && *p; p++) {
		const char *e = NULL;
		unsigned char c = (unsigned char)*p;

		switch (c) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		default:
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				continue;
		}
		rc = e ? vg_buf_append_str(out, e) : vg_buf_append_byte(out, *p);
	}
	return rc;
}

/* The smallest of 1, 2, 5 x 10^k at or above `v` (axis maximum). */
static long nice_max(long v)
{
	long m = 1;

	if (v < 1)
		return 1;
	for (;;) {
		if (m >= v)
			return m;
		if (2 * m >= v)
			return 2 * m;
		if (5 * m >= v)
			return 5 * m;
		m *= 10;
	}
}

/* ------------------------------------------------------------------ */
/* Charts                                                               */
/* ------------------------------------------------------------------ */

#define BAR_W 480
#define BAR_H 240
#define PAD_L 48
#define PAD_B 32
#define PAD_T 16

int svg_severity_bars(struct vg_buf *out, const long counts[SEV_N])
{
	long max = 0;
	int rc, plot_h = BAR_H - PAD_B - PAD_T, slot = (BAR_W - PAD_L) / SEV_N;

	for (int s = 0; s < SEV_N; s++)
		if (counts[s] > max)
			max = counts[s];
	max = nice_max(max);
	rc = vg_buf_appendf(out,
	                    "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	                    "class=\"chart\" width=\"%d\" height=\"%d\" "
	                    "viewBox=\"0 0 %d %d\" role=\"img\" "
	                    "aria-label=\"findings by severity\">"
	                    "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
	                    "stroke=\"#9ca3af\"/>"
	                    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%ld"
	                    "</text><text x=\"%d\" y=\"%d\" "
	                    "text-anchor=\"end\">0</text>",
	                    BAR_W, BAR_H, BAR_W, BAR_H, PAD_L, BAR_H - PAD_B,
	                    BAR_W, BAR_H - PAD_B, PAD_L - 6, PAD_T + 4, max,
	                    PAD_L - 6, BAR_H - PAD_B);
	/* highest severity leftmost */
	for (int i = 0; !rc && i < SEV_N; i++) {
		int s = SEV_N - 1 - i;
		int h = (int)((double)counts[s] * plot_h / (double)max + 0.5);
		int x = PAD_L + i * slot + slot / 6;
		int w = slot * 2 / 3;

		rc = vg_buf_appendf(
			out,
			"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
			"fill=\"%s\"><title>%s: %ld</title></rect>"
			"<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%ld"
			"</text><text x=\"%d\" y=\"%d\" "
			"text-anchor=\"middle\">%s</text>",
			x, BAR_H - PAD_B - h, w, h, sev_colour[s],
			severity_name((enum severity)s), counts[s], x + w / 2,
			BAR_H - PAD_B - h - 4, counts[s], x + w / 2,
			BAR_H - PAD_B + 18, severity_name((enum severity)s));
	}
	return rc ? rc : vg_buf_append_str(out, "</svg>");
}

#define LINE_W 640
#define LINE_H 260

struct series {
	const char *name, *colour;
	int sev; /* -1: total */
};

static long point_value(const struct trend_point *p, int sev)
{
	return sev < 0 ? p->total : p->counts[sev];
}

int svg_trend_lines(struct vg_buf *out, const struct trend_point *p, size_t n)
{
	static const struct series series[] = {
		{"total", "#111827", -1},
		{"critical", "#b91c1c", SEV_CRITICAL},
		{"high", "#ea580c", SEV_HIGH},
	};
	int plot_w = LINE_W - PAD_L - 16, plot_h = LINE_H - PAD_B - PAD_T - 24;
	long max = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (p[i].total > max)
			max = p[i].total;
	max = nice_max(max);
	rc = vg_buf_appendf(out,
	                    "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	                    "class=\"chart\" width=\"%d\" height=\"%d\" "
	                    "viewBox=\"0 0 %d %d\" role=\"img\" "
	                    "aria-label=\"findings per run\">"
	                    "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
	                    "stroke=\"#9ca3af\"/>"
	                    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%ld"
	                    "</text><text x=\"%d\" y=\"%d\" "
	                    "text-anchor=\"end\">0</text>",
	                    LINE_W, LINE_H, LINE_W, LINE_H, PAD_L,
	                    LINE_H - PAD_B, LINE_W - 16, LINE_H - PAD_B,
	                    PAD_L - 6, PAD_T + 28, max, PAD_L - 6,
	                    LINE_H - PAD_B);
	for (size_t k = 0; !rc && k < sizeof(series) / sizeof(series[0]); k++) {
		rc = vg_buf_appendf(out,
		                    "<rect x=\"%d\" y=\"4\" width=\"10\" "
		                    "height=\"10\" fill=\"%s\"/><text x=\"%d\" "
		                    "y=\"13\">%s</text>",
		                    PAD_L + (int)k * 90, series[k].colour,
		                    PAD_L + (int)k * 90 + 14, series[k].name);
		if (rc || n == 0)
			continue;
		rc = vg_buf_appendf(out,
		                    "<polyline fill=\"none\" stroke=\"%s\" "
		                    "stroke-width=\"2\" points=\"",
		                    series[k].colour);
		for (size_t i = 0; !rc && i < n; i++) {
			double x = PAD_L + (n > 1 ? (double)plot_w * (double)i /
			                                    (double)(n - 1)
			                          : plot_w / 2.0);
			double y = LINE_H - PAD_B -
			           (double)point_value(&p[i], series[k].sev) *
			                   plot_h / (double)max;

			rc = vg_buf_appendf(out, "%s%.1f,%.1f", i ? " " : "", x,
			                    y);
		}
		if (!rc)
			rc = vg_buf_append_str(out, "\"/>");
		for (size_t i = 0; !rc && i < n; i++) {
			double x = PAD_L + (n > 1 ? (double)plot_w * (double)i /
			                                    (double)(n - 1)
			                          : plot_w / 2.0);
			long v = point_value(&p[i], series[k].sev);
			double y = LINE_H - PAD_B - (double)v * plot_h / (double)max;

			rc = vg_buf_appendf(out,
			                    "<circle cx=\"%.1f\" cy=\"%.1f\" "
			                    "r=\"3\" fill=\"%s\"><title>%s: %ld"
			                    "</title></circle>",
			                    x, y, series[k].colour, series[k].name,
			                    v);
		}
	}
	/* x labels: the run's date */
	for (size_t i = 0; !rc && i < n; i++) {
		double x = PAD_L + (n > 1 ? (double)plot_w * (double)i /
		                                    (double)(n - 1)
		                          : plot_w / 2.0);

		/* the outer labels inside the chart */
		const char *anchor = n < 2         ? "middle"
		                     : i == 0      ? "start"
		                     : i == n - 1 ? "end"
		                                   : "middle";

		rc = vg_buf_appendf(out,
		                    "<text x=\"%.1f\" y=\"%d\" "
		                    "text-anchor=\"%s\">",
		                    x, LINE_H - PAD_B + 18, anchor);
		if (!rc)
			rc = vg_buf_appendf(out, "%.10s", p[i].created_at);
		if (!rc)
			rc = vg_buf_append_str(out, "</text>");
	}
	return rc ? rc : vg_buf_append_str(out, "</svg>");
}

/* ------------------------------------------------------------------ */
/* Page                                                                 */
/* ------------------------------------------------------------------ */

static const char style[] =
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
	"margin:0;color:#111827;background:#f9fafb}"
	"main{max-width:1100px;margin:0 auto;padding:24px}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}"
	".meta{color:#4b5563;margin:0}"
	".cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}"
	".card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;"
	"padding:10px 16px;min-width:110px}"
	".card b{display:block;font-size:22px}"
	".chart{background:#fff;border:1px solid #e5e7eb;border-radius:8px;"
	"font-size:11px;fill:#374151}"
	"table{border-collapse:collapse;width:100%;background:#fff}"
	"th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;"
	"vertical-align:top}"
	"th{background:#f3f4f6}td.num{text-align:right}"
	".sev{font-weight:600;text-transform:uppercase;font-size:11px}"
	".sev-critical{color:#b91c1c}.sev-high{color:#ea580c}"
	".sev-medium{color:#d97706}.sev-low{color:#2563eb}"
	".sev-info{color:#6b7280}.more{color:#6b7280}"
	"footer{color:#6b7280;margin-top:32px;font-size:12px}";

static int card(struct vg_buf *b, const char *label, const char *value)
{
	return vg_buf_appendf(b, "<div class=\"card\"><b>%s</b>%s</div>", value,
	                      label);
}

static int findings_table(struct vg_buf *b, const struct report_doc *d,
                          enum finding_class c, size_t max)
{
	const struct analysis *a = d->a;
	size_t n = a->class_len[c] < max ? a->class_len[c] : max;
	int rc;

	rc = vg_buf_appendf(b, "<section><h2>%c%s (%zu)</h2>",
	                    class_name(c)[0] - 'a' + 'A', class_name(c) + 1,
	                    a->class_len[c]);
	if (!rc && n == 0)
		rc = vg_buf_append_str(b, "<p class=\"more\">none</p>");
	if (!rc && n)
		rc = vg_buf_append_str(b,
		                       "<table><thead><tr><th>Severity</th>"
		                       "<th>Host</th><th>Port</th><th>Title</th>"
		                       "<th>Scanner</th><th>Age (days)</th>"
		                       "<th>Risk</th></tr></thead><tbody>");
	for (size_t i = 0; !rc && i < n; i++) {
		const struct item *it = a->items[a->class_start[c] + i];
		const char *sev = severity_name(it->severity);

		rc = vg_buf_appendf(b,
		                    "<tr><td class=\"sev sev-%s\">%s</td><td>",
		                    sev, sev);
		if (!rc)
			rc = html_escape(b, it->host);
		if (!rc)
			rc = it->port >= 0
			             ? vg_buf_appendf(b, "</td><td class=\"num\">"
			                                 "%d/",
			                              it->port)
			             : vg_buf_append_str(b, "</td><td class=\"num"
			                                    "\">");
		if (!rc && it->port >= 0)
			rc = html_escape(b, it->protocol);
		if (!rc)
			rc = vg_buf_append_str(b, "</td><td>");
		if (!rc)
			rc = html_escape(b, *it->title ? it->title
			                               : it->fingerprint);
		if (!rc)
			rc = vg_buf_append_str(b, "</td><td>");
		if (!rc)
			rc = html_escape(b, it->scanner);
		if (!rc)
			rc = vg_buf_appendf(b,
			                    "</td><td class=\"num\">%.0f</td>"
			                    "<td class=\"num\">%.2f</td></tr>",
			                    it->age_days, it->risk);
	}
	if (!rc && n)
		rc = vg_buf_append_str(b, "</tbody></table>");
	if (!rc && n < a->class_len[c])
		rc = vg_buf_appendf(b,
		                    "<p class=\"more\">and %zu more, in the "
		                    "JSON report</p>",
		                    a->class_len[c] - n);
	return rc ? rc : vg_buf_append_str(b, "</section>");
}

static int hosts_table(struct vg_buf *b, const struct analysis *a, size_t max)
{
	int rc = vg_buf_append_str(b, "<section><h2>Riskiest hosts</h2>");

	if (!rc && a->nhosts == 0)
		return vg_buf_append_str(b, "<p class=\"more\">none</p></section>");
	if (!rc)
		rc = vg_buf_append_str(b,
		                       "<table><thead><tr><th>Host</th>"
		                       "<th>Risk</th><th>Findings</th>"
		                       "<th>Worst</th><th>Exposure</th>"
		                       "<th>Criticality</th></tr></thead><tbody>");
	for (size_t i = 0; !rc && i < a->nhosts && i < max; i++) {
		const struct host_rank *h = &a->hosts[i];
		const char *sev = severity_name(h->max_severity);

		rc = vg_buf_append_str(b, "<tr><td>");
		if (!rc)
			rc = html_escape(b, h->host);
		if (!rc)
			rc = vg_buf_appendf(
				b,
				"</td><td class=\"num\">%.2f</td><td "
				"class=\"num\">%ld</td><td class=\"sev sev-%s\">"
				"%s</td><td>%s</td><td>%s</td></tr>",
				h->risk, h->findings, sev, sev,
				h->internal ? "internal" : "internet",
				criticality_name(h->criticality));
	}
	return rc ? rc : vg_buf_append_str(b, "</tbody></table></section>");
}

static int header(struct vg_buf *b, const struct report_doc *d)
{
	int rc = vg_buf_append_str(
		b, "<!DOCTYPE html><html lang=\"en\"><head>"
		   "<meta charset=\"utf-8\">"
		   "<meta http-equiv=\"Content-Security-Policy\" "
		   "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
		   "<meta name=\"viewport\" content=\"width=device-width\">"
		   "<title>vigil scan report: ");

	if (!rc)
		rc = html_escape(b, d->policy_namespace);
	if (!rc)
		rc = vg_buf_append_byte(b, '/');
	if (!rc)
		rc = html_escape(b, d->policy_name);
	if (!rc)
		rc = vg_buf_appendf(b, "</title><style>%s</style></head><body>"
		                       "<main><header><h1>Scan report: ",
		                    style);
	if (!rc)
		rc = html_escape(b, d->policy_namespace);
	if (!rc)
		rc = vg_buf_append_byte(b, '/');
	if (!rc)
		rc = html_escape(b, d->policy_name);
	if (!rc)
		rc = vg_buf_append_str(b, "</h1><p class=\"meta\">Tenant ");
	if (!rc)
		rc = html_escape(b, *d->tenant_name ? d->tenant_name
		                                    : d->tenant_id);
	if (!rc)
		rc = vg_buf_append_str(b, " &middot; run ");
	if (!rc)
		rc = html_escape(b, d->run_id);
	if (!rc)
		rc = vg_buf_append_str(b, " &middot; ");
	if (!rc)
		rc = html_escape(b, d->run_state);
	if (!rc && *d->finished_at)
		rc = vg_buf_append_str(b, " ");
	if (!rc)
		rc = html_escape(b, d->finished_at);
	if (!rc)
		rc = vg_buf_append_str(b, "</p><p class=\"meta\">");
	if (!rc)
		rc = *d->previous_run_id
		             ? vg_buf_append_str(b, "Compared with run ")
		             : vg_buf_append_str(b,
		                                 "First run of the policy: every "
		                                 "finding is new");
	if (!rc)
		rc = html_escape(b, d->previous_run_id);
	return rc ? rc : vg_buf_append_str(b, "</p></header>");
}

int report_render_html(const struct report_doc *d, struct vg_buf *out)
{
	static const enum finding_class order[] = {
		CLASS_REGRESSED, CLASS_NEW, CLASS_RESOLVED, CLASS_PERSISTING};
	const struct analysis *a = d->a;
	char v[32];
	int rc = header(out, d);

	if (!rc)
		rc = vg_buf_append_str(out, "<section class=\"cards\">");
	snprintf(v, sizeof(v), "%ld", a->total);
	if (!rc)
		rc = card(out, "findings", v);
	for (size_t i = 0; !rc && i < sizeof(order) / sizeof(order[0]); i++) {
		snprintf(v, sizeof(v), "%ld", a->by_class[order[i]]);
		rc = card(out, class_name(order[i]), v);
	}
	snprintf(v, sizeof(v), "%.2f", a->risk_total);
	if (!rc)
		rc = card(out, "total risk", v);
	if (!rc)
		rc = vg_buf_append_str(out, "</section><section><h2>Findings by "
		                            "severity</h2>");
	if (!rc)
		rc = svg_severity_bars(out, a->counts);
	if (!rc)
		rc = vg_buf_append_str(out, "</section><section><h2>Trend</h2>");
	if (!rc)
		rc = svg_trend_lines(out, d->trend, d->ntrend);
	if (!rc)
		rc = vg_buf_append_str(out, "</section>");
	if (!rc)
		rc = hosts_table(out, a, d->top_hosts ? d->top_hosts : 10);
	for (size_t i = 0; !rc && i < sizeof(order) / sizeof(order[0]); i++)
		rc = findings_table(out, d, order[i],
		                    d->html_rows ? d->html_rows : 100);
	if (!rc)
		rc = vg_buf_append_str(out, "<footer>Generated by vigil-brain at ");
	if (!rc)
		rc = html_escape(out, d->generated_at);
	return rc ? rc
	          : vg_buf_append_str(out, "</footer></main></body></html>\n");
}
