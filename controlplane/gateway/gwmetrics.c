/*
 * gwmetrics.c - the gateway's metric families.
 */
#include "gateway.h"

/* request latency: from a cached read (0.5 ms) to a password check or a
 * slow database (seconds) */
static const double duration_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,  0.1,    0.25,  0.5,
                                          1,      2.5,   5,      10};

int gw_metrics_init(struct gw *g, struct vg_metrics *reg, struct vg_err *err)
{
	struct gw_metrics *m = &g->m;
	struct vg_metric *f;

	g->reg = reg;
	m->requests = vg_metrics_counter(
		reg, "http_requests_total",
		"HTTP requests answered by the API, by method, route and "
		"status code.",
		VG_LABELS("method", "route", "code"), err);
	m->duration = vg_metrics_histogram(
		reg, "http_request_duration_seconds",
		"Time from the first byte of a request to its response, by "
		"route.",
		VG_LABELS("route"), duration_buckets,
		sizeof(duration_buckets) / sizeof(duration_buckets[0]), err);
	m->auth = vg_metrics_counter(
		reg, "vigil_auth_attempts_total",
		"Authentication attempts (logins and bearer credentials) by "
		"result: success, failure, rate_limited.",
		VG_LABELS("result"), err);
	if (!m->requests || !m->duration || !m->auth)
		return err ? err->code : VG_INTERNAL;
	f = vg_metrics_gauge(reg, "vigil_active_sessions",
	                     "Login sessions alive across every gateway "
	                     "replica.",
	                     NULL, err);
	m->sessions = f ? vg_metric_series(f, NULL) : NULL;
	f = vg_metrics_gauge(reg, "vigil_emergency_stop",
	                     "1 while the platform's emergency stop is "
	                     "engaged.",
	                     NULL, err);
	m->estop = f ? vg_metric_series(f, NULL) : NULL;
	f = vg_metrics_counter(reg, "vigil_audit_log_entries_total",
	                       "Audit log entries this gateway appended.", NULL,
	                       err);
	m->audit = f ? vg_metric_series(f, NULL) : NULL;
	f = vg_metrics_counter(reg, "vigil_ingest_batches_total",
	                       "Result batches from agents this gateway "
	                       "accepted and queued for the workers.",
	                       NULL, err);
	m->ingest = f ? vg_metric_series(f, NULL) : NULL;
	m->scan_jobs = vg_metrics_gauge(
		reg, "vigil_scan_jobs",
		"Scan runs of every tenant by state: pending, running, "
		"succeeded, failed, canceled.",
		VG_LABELS("state"), err);
	if (!m->sessions || !m->estop || !m->audit || !m->ingest ||
	    !m->scan_jobs)
		return err ? err->code : VG_INTERNAL;
	f = vg_metrics_gauge(reg, "vigil_events_connections",
	                     "Open /v1/events WebSockets on this gateway.",
	                     NULL, err);
	m->ev_conns = f ? vg_metric_series(f, NULL) : NULL;
	f = vg_metrics_counter(reg, "vigil_events_sent_total",
	                       "Live events queued for /v1/events clients "
	                       "(one per client).",
	                       NULL, err);
	m->ev_sent = f ? vg_metric_series(f, NULL) : NULL;
	m->ev_dropped = vg_metrics_counter(
		reg, "vigil_events_dropped_total",
		"Live events not delivered, by reason: slow_consumer (a "
		"client let too much wait and was closed), backlog (a loop "
		"had no room), invalid (a malformed message, or one whose "
		"tenant is not its channel's), publish_failed (this "
		"gateway's own), nomem.",
		VG_LABELS("reason"), err);
	if (!m->ev_conns || !m->ev_sent || !m->ev_dropped)
		return err ? err->code : VG_INTERNAL;
	vg_metric_labels(m->ev_dropped, "slow_consumer");
	vg_metric_labels(m->ev_dropped, "backlog");
	vg_metric_labels(m->ev_dropped, "invalid");
	vg_metric_labels(m->ev_dropped, "publish_failed");
	for (size_t i = 0; gw_run_states[i]; i++)
		vg_metric_labels(m->scan_jobs, gw_run_states[i]);
	/* every result exists from the start, so rates work at once */
	vg_metric_labels(m->auth, "success");
	vg_metric_labels(m->auth, "failure");
	vg_metric_labels(m->auth, "rate_limited");
	return VG_OK;
}
