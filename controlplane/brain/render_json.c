/* render_json.c - the machine-readable run report. Written straight into
 * a buffer (no tree): a report of 100,000 findings is rendered in
 * milliseconds. Shape (README.md):
 *
 *   {"version":1,"generated_at":...,"tenant":{...},"run":{...},
 *    "counts":{"total":..,"by_severity":{..},"by_class":{..}},
 *    "risk":{"total":..,"max":..},
 *    "classification":{"new":[..],"persisting":[..],"resolved":[..],
 *                      "regressed":[..],"list_max":..,"truncated":..},
 *    "top_hosts":[..],"trend":[..]}
 */
#include "report.h"

#include "vigil/json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void format_time(double t, char *out, size_t n)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&s, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, n, "%s", "");
}

/* "key": "value" with a leading comma unless first. */
static int kv_str(struct vg_buf *b, int first, const char *k, const char *v)
{
	int rc = vg_buf_appendf(b, "%s\"%s\":", first ? "" : ",", k);

	return rc ? rc : vg_json_escape(b, v ? v : "", v ? strlen(v) : 0);
}

static int kv_opt_str(struct vg_buf *b, const char *k, const char *v)
{
	if (!v || !*v)
		return vg_buf_appendf(b, ",\"%s\":null", k);
	return kv_str(b, 0, k, v);
}

static int severity_object(struct vg_buf *b, const long counts[SEV_N])
{
	int rc = vg_buf_append_byte(b, '{');

	/* highest first, as people read them */
	for (int s = SEV_N - 1; !rc && s >= 0; s--)
		rc = vg_buf_appendf(b, "%s\"%s\":%ld", s == SEV_N - 1 ? "" : ",",
		                    severity_name((enum severity)s), counts[s]);
	return rc ? rc : vg_buf_append_byte(b, '}');
}

static int item_json(struct vg_buf *b, const struct item *it)
{
	char seen[32];
	int rc;

	format_time(it->first_seen, seen, sizeof(seen));
	rc = kv_str(b, 1, "fingerprint", it->fingerprint);
	if (!rc)
		rc = kv_str(b, 0, "host", it->host);
	if (!rc)
		rc = it->port >= 0 ? vg_buf_appendf(b, ",\"port\":%d", it->port)
		                   : vg_buf_append_str(b, ",\"port\":null");
	if (!rc)
		rc = kv_str(b, 0, "protocol", it->protocol);
	if (!rc)
		rc = kv_str(b, 0, "scanner", it->scanner);
	if (!rc)
		rc = kv_str(b, 0, "severity", severity_name(it->severity));
	if (!rc)
		rc = kv_str(b, 0, "title", it->title);
	if (!rc)
		rc = kv_str(b, 0, "first_seen", seen);
	if (!rc)
		rc = vg_buf_appendf(b, ",\"age_days\":%.0f,\"risk\":%.2f",
		                    it->age_days, it->risk);
	return rc;
}

static int classification(struct vg_buf *b, const struct report_doc *d,
                          size_t max)
{
	const struct analysis *a = d->a;
	int rc = vg_buf_append_str(b, "\"classification\":{"), truncated = 0;

	for (int c = 0; !rc && c < CLASS_N; c++) {
		size_t n = a->class_len[c] < max ? a->class_len[c] : max;

		truncated |= n < a->class_len[c];
		rc = vg_buf_appendf(b, "\"%s\":[", class_name((enum finding_class)c));
		for (size_t i = 0; !rc && i < n; i++) {
			rc = vg_buf_append_str(b, i ? ",{" : "{");
			if (!rc)
				rc = item_json(b, a->items[a->class_start[c] + i]);
			if (!rc)
				rc = vg_buf_append_byte(b, '}');
		}
		if (!rc)
			rc = vg_buf_append_str(b, "],");
	}
	return rc ? rc
	          : vg_buf_appendf(b, "\"list_max\":%zu,\"truncated\":%s}", max,
	                           truncated ? "true" : "false");
}

static int hosts_json(struct vg_buf *b, const struct analysis *a, size_t max)
{
	int rc = vg_buf_append_str(b, "\"top_hosts\":[");

	for (size_t i = 0; !rc && i < a->nhosts && i < max; i++) {
		const struct host_rank *h = &a->hosts[i];

		rc = vg_buf_append_str(b, i ? ",{" : "{");
		if (!rc)
			rc = kv_str(b, 1, "host", h->host);
		if (!rc)
			rc = vg_buf_appendf(
				b,
				",\"risk\":%.2f,\"max_risk\":%.2f,\"findings\":%ld,"
				"\"max_severity\":\"%s\",\"internet_facing\":%s,"
				"\"criticality\":\"%s\"}",
				h->risk, h->max_risk, h->findings,
				severity_name(h->max_severity),
				h->internal ? "false" : "true",
				criticality_name(h->criticality));
	}
	return rc ? rc : vg_buf_append_byte(b, ']');
}

static int trend_json(struct vg_buf *b, const struct report_doc *d)
{
	int rc = vg_buf_append_str(b, "\"trend\":[");

	for (size_t i = 0; !rc && i < d->ntrend; i++) {
		const struct trend_point *p = &d->trend[i];

		rc = vg_buf_append_str(b, i ? ",{" : "{");
		if (!rc)
			rc = kv_str(b, 1, "run_id", p->run_id);
		if (!rc)
			rc = kv_str(b, 0, "created_at", p->created_at);
		if (!rc)
			rc = vg_buf_append_str(b, ",\"by_severity\":");
		if (!rc)
			rc = severity_object(b, p->counts);
		if (!rc)
			rc = vg_buf_appendf(b, ",\"total\":%ld", p->total);
		if (!rc)
			rc = p->appeared < 0
			             ? vg_buf_append_str(b, ",\"new\":null,"
			                                    "\"resolved\":null}")
			             : vg_buf_appendf(b,
			                              ",\"new\":%ld,\"resolved\":"
			                              "%ld}",
			                              p->appeared, p->resolved);
	}
	return rc ? rc : vg_buf_append_byte(b, ']');
}

int report_render_json(const struct report_doc *d, struct vg_buf *out)
{
	const struct analysis *a = d->a;
	double max = a->nhosts ? a->hosts[0].max_risk : 0;
	int rc;

	for (size_t i = 0; i < a->nhosts; i++)
		if (a->hosts[i].max_risk > max)
			max = a->hosts[i].max_risk;
	rc = vg_buf_append_str(out, "{\"version\":1");
	if (!rc)
		rc = kv_str(out, 0, "generated_at", d->generated_at);
	if (!rc)
		rc = vg_buf_append_str(out, ",\"tenant\":{");
	if (!rc)
		rc = kv_str(out, 1, "id", d->tenant_id);
	if (!rc)
		rc = kv_str(out, 0, "name", d->tenant_name);
	if (!rc)
		rc = vg_buf_append_str(out, "},\"run\":{");
	if (!rc)
		rc = kv_str(out, 1, "id", d->run_id);
	if (!rc)
		rc = kv_str(out, 0, "state", d->run_state);
	if (!rc)
		rc = kv_opt_str(out, "created_at", d->created_at);
	if (!rc)
		rc = kv_opt_str(out, "finished_at", d->finished_at);
	if (!rc)
		rc = kv_opt_str(out, "previous_run_id", d->previous_run_id);
	if (!rc)
		rc = vg_buf_append_str(out, ",\"policy\":{");
	if (!rc)
		rc = kv_str(out, 1, "namespace", d->policy_namespace);
	if (!rc)
		rc = kv_str(out, 0, "name", d->policy_name);
	if (!rc)
		rc = kv_str(out, 0, "uid", d->policy_uid);
	if (!rc)
		rc = vg_buf_appendf(out,
		                    "}},\"counts\":{\"total\":%ld,"
		                    "\"by_severity\":",
		                    a->total);
	if (!rc)
		rc = severity_object(out, a->counts);
	if (!rc)
		rc = vg_buf_appendf(out,
		                    ",\"by_class\":{\"new\":%ld,\"persisting\":%ld,"
		                    "\"resolved\":%ld,\"regressed\":%ld}},"
		                    "\"risk\":{\"total\":%.2f,\"max\":%.2f},",
		                    a->by_class[CLASS_NEW],
		                    a->by_class[CLASS_PERSISTING],
		                    a->by_class[CLASS_RESOLVED],
		                    a->by_class[CLASS_REGRESSED], a->risk_total, max);
	if (!rc)
		rc = classification(out, d, d->list_max ? d->list_max : 1000);
	if (!rc)
		rc = vg_buf_append_byte(out, ',');
	if (!rc)
		rc = hosts_json(out, a, d->top_hosts ? d->top_hosts : 10);
	if (!rc)
		rc = vg_buf_append_byte(out, ',');
	if (!rc)
		rc = trend_json(out, d);
	return rc ? rc : vg_buf_append_byte(out, '}');
}
