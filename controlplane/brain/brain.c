/* brain.c - report threads on the brain's queue, the scheduler (delayed
 * retries, lease renewal), the sweep of pending report rows, metrics. */
#include "brain.h"

#include "vigil/events.h"
#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONCURRENCY   64
#define SWEEP_BATCH       100
#define SCHED_MAX_WAIT_MS 2000
#define RETRY_MIN_MS      100
#define RETRY_MAX_MS      5000

static const double duration_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1,    2.5,   5,    10,  30,   60};

struct slot {
	pthread_t th;
	struct brain *b;
	struct vg_queue *q;
	struct vg_task *held; /* under b->mu */
};

struct brain {
	struct brain_config cfg;
	struct vg_queue_type type;
	struct slot *slots;
	int nslots;
	struct vg_queue *sched_q, *sweep_q;
	struct vg_queue *api_q; /* under api_mu: the API's requests */
	pthread_mutex_t api_mu;
	pthread_t sched, sweep;
	int sched_started, sweep_started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int alive, started;
	atomic_int stopping, sched_stop;
	atomic_llong last_ok_ms;

	struct vg_series *s_generated, *s_skipped, *s_failed, *s_dead,
		*s_duration, *s_queued;
};

static void nap(int ms, atomic_int *flag)
{
	while (ms > 0 && !atomic_load(flag)) {
		int step = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)step * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static void register_metrics(struct brain *b, struct vg_metrics *reg)
{
	b->s_generated = vg_metric_series(
		vg_metrics_counter(reg, "vigil_brain_reports_generated_total",
	                           "Run reports generated and stored.", NULL,
	                           NULL),
		NULL);
	b->s_skipped = vg_metric_series(
		vg_metrics_counter(reg, "vigil_brain_reports_skipped_total",
	                           "Report tasks for reports ready before "
	                           "(delivered again).",
	                           NULL, NULL),
		NULL);
	b->s_failed = vg_metric_series(
		vg_metrics_counter(reg, "vigil_brain_reports_failed_total",
	                           "Report attempts that failed (retried or "
	                           "dead-lettered).",
	                           NULL, NULL),
		NULL);
	b->s_dead = vg_metric_series(
		vg_metrics_counter(reg,
	                           "vigil_brain_reports_dead_lettered_total",
	                           "Report tasks moved to the dead letters.",
	                           NULL, NULL),
		NULL);
	b->s_duration = vg_metric_series(
		vg_metrics_histogram(
			reg, "vigil_brain_report_duration_seconds",
			"Time to load, analyse, render and store one report.",
			NULL, duration_buckets,
			sizeof(duration_buckets) / sizeof(duration_buckets[0]),
			NULL),
		NULL);
	b->s_queued = vg_metric_series(
		vg_metrics_counter(reg, "vigil_brain_report_requests_queued_total",
	                           "Pending reports the sweep turned into "
	                           "tasks.",
	                           NULL, NULL),
		NULL);
}

/* ------------------------------------------------------------------ */
/* Payload                                                              */
/* ------------------------------------------------------------------ */

int brain_parse_criticality(const char *s, struct vg_strmap *m,
                            struct vg_err *err)
{
	const char *p = s ? s : "";

	while (*p) {
		const char *end = strchr(p, ','), *eq;
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char host[256], level[16];
		enum criticality c;

		eq = memchr(p, '=', n);
		if (n == 0) {
			p += end ? 1 : 0;
			continue;
		}
		if (!eq || eq == p || (size_t)(eq - p) >= sizeof(host) ||
		    n - (size_t)(eq - p) - 1 >= sizeof(level))
			return vg_err_set(err, VG_INVAL,
			                  "asset criticality: \"%.*s\" is not "
			                  "host=level",
			                  (int)(n > 64 ? 64 : n), p);
		memcpy(host, p, (size_t)(eq - p));
		host[eq - p] = '\0';
		memcpy(level, eq + 1, n - (size_t)(eq - p) - 1);
		level[n - (size_t)(eq - p) - 1] = '\0';
		if (criticality_parse(level, &c) != VG_OK)
			return vg_err_set(err, VG_INVAL,
			                  "asset criticality of %s: \"%s\" is not "
			                  "low, medium, high or critical",
			                  host, level);
		if (vg_strmap_put(m, host, (void *)criticality_name(c)) != VG_OK)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		p += n + (end ? 1 : 0);
	}
	return VG_OK;
}

static int payload_uuid(const json_t *p, const char *key, const char **out,
                        struct vg_err *err)
{
	json_t *v = json_object_get(p, key);

	if (!json_is_string(v))
		return vg_err_set(err, VG_INVAL, "payload: \"%s\" %s", key,
		                  v ? "is not a string" : "is missing");
	if (!vg_db_is_uuid(json_string_value(v)))
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"%s\" must be a UUID", key);
	*out = json_string_value(v);
	return VG_OK;
}

int brain_parse_payload(const struct vg_task *t, const struct vg_strmap *base,
                        struct report_params *p, struct vg_strmap *crit,
                        struct vg_err *err)
{
	const json_t *pl = t->payload, *force, *labels;
	const char *host;
	json_t *v;
	int rc;

	if (!json_is_object(pl))
		return vg_err_set(err, VG_INVAL, "payload: not an object");
	if ((rc = payload_uuid(pl, "tenant_id", &p->tenant, err)) ||
	    (rc = payload_uuid(pl, "run_id", &p->run, err)))
		return rc;
	if (t->tenant[0] && strcmp(t->tenant, p->tenant) != 0)
		return vg_err_set(err, VG_FORBIDDEN,
		                  "payload: tenant_id is not the task's "
		                  "tenant");
	force = json_object_get(pl, "force");
	if (force && !json_is_boolean(force))
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"force\" must be a boolean");
	p->force = json_is_true(force);
	p->request_id = t->request_id;
	if (base) {
		const char *k;
		void *val;

		for (size_t pos = 0; vg_strmap_next(base, &pos, &k, &val);)
			if (vg_strmap_put(crit, k, val) != VG_OK)
				return vg_err_set(err, VG_NOMEM,
				                  "out of memory");
	}
	labels = json_object_get(pl, "asset_criticality");
	if (labels && !json_is_object(labels))
		return vg_err_set(err, VG_INVAL,
		                  "payload: \"asset_criticality\" must be an "
		                  "object of host: level");
	json_object_foreach((json_t *)labels, host, v)
	{
		enum criticality c;

		if (!json_is_string(v) ||
		    criticality_parse(json_string_value(v), &c) != VG_OK)
			return vg_err_set(err, VG_INVAL,
			                  "payload: asset_criticality of \"%.64s\""
			                  " must be low, medium, high or "
			                  "critical",
			                  host);
		if (vg_strmap_put(crit, host, (void *)criticality_name(c)) !=
		    VG_OK)
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	p->criticality = crit;
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Report threads                                                       */
/* ------------------------------------------------------------------ */

static int is_permanent(int code)
{
	static const int permanent[] = {VG_PARSE,    VG_INVAL,       VG_FORBIDDEN,
	                                VG_NOTFOUND, VG_UNSUPPORTED, VG_RANGE,
	                                VG_TOOLARGE};

	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (permanent[i] == code)
			return 1;
	return 0;
}

static void log_task(enum vg_log_level lvl, const char *msg,
                     const struct vg_task *t, const struct vg_log_field *more,
                     int nmore)
{
	struct vg_log_field f[16];
	char attempt[16];
	int n = 0;

	if (!vg_log_enabled(lvl))
		return;
	snprintf(attempt, sizeof(attempt), "%d", t->attempt);
	f[n++] = (struct vg_log_field){"request_id", t->request_id};
	f[n++] = (struct vg_log_field){"task_id", t->id};
	f[n++] = (struct vg_log_field){"tenant", t->tenant};
	f[n++] = (struct vg_log_field){"attempt", attempt};
	for (int i = 0; i < nmore && n < 16; i++)
		f[n++] = more[i];
	vg_log_fields(lvl, msg, f, n);
}

static void failed(struct slot *s, const struct vg_task *t,
                   const struct report_params *p, int rc,
                   const struct vg_err *herr)
{
	struct brain *b = s->b;
	char msg[VG_QUEUE_ERROR_MAX], delay_s[24];
	struct vg_err err = {0};
	int outcome = 0, permanent = is_permanent(rc);
	long long delay = 0;

	snprintf(msg, sizeof(msg), "%s: %s", vg_errname(rc),
	         herr->msg[0] ? herr->msg : vg_strerror(rc));
	vg_counter_inc(b->s_failed);
	if (vg_queue_fail(s->q, t, permanent, msg, &outcome, &delay, &err) !=
	    VG_OK) {
		log_task(VG_LOG_ERROR, "cannot record report failure", t,
		         (struct vg_log_field[]){{"err", msg},
		                                 {"redis_err", err.msg}},
		         2);
		return;
	}
	if (outcome == VG_QUEUE_RETRIED) {
		snprintf(delay_s, sizeof(delay_s), "%lld", delay);
		log_task(VG_LOG_WARN, "report failed, retrying", t,
		         (struct vg_log_field[]){{"err", msg},
		                                 {"retry_in_ms", delay_s}},
		         2);
		return;
	}
	if (outcome != VG_QUEUE_DEAD) {
		log_task(VG_LOG_WARN, "report failed; another brain holds it now",
		         t, (struct vg_log_field[]){{"err", msg}}, 1);
		return;
	}
	vg_counter_inc(b->s_dead);
	log_task(VG_LOG_ERROR, "report task dead-lettered", t,
	         (struct vg_log_field[]){{"err", msg},
	                                 {"permanent",
	                                  permanent ? "true" : "false"}},
	         2);
	/* the pending row says why no report comes */
	if (p->tenant && p->run &&
	    report_mark_failed(b->cfg.db, p->tenant, p->run, t->request_id, msg,
	                       &err) != VG_OK)
		log_task(VG_LOG_WARN, "cannot mark the report failed", t,
		         (struct vg_log_field[]){{"err", err.msg}}, 1);
}

static void process(struct slot *s, struct vg_task *t)
{
	struct brain *b = s->b;
	struct report_params p = {.trend_runs = b->cfg.trend_runs,
	                          .list_max = b->cfg.list_max};
	struct report_outcome o;
	struct vg_strmap crit;
	struct vg_err err = {0};
	double t0 = vg_mono_s();
	int rc;

	vg_strmap_init(&crit, NULL);
	rc = brain_parse_payload(t, b->cfg.criticality, &p, &crit, &err);
	if (rc != VG_OK)
		p.tenant = p.run = NULL; /* no row to mark failed */
	else
		rc = report_generate(b->cfg.db, &p, &o, &err);
	if (rc != VG_OK) {
		failed(s, t, &p, rc, &err);
		goto out;
	}
	if (vg_queue_ack(s->q, t, &err) != VG_OK)
		log_task(VG_LOG_WARN,
		         "cannot acknowledge report task; it will be delivered "
		         "again (generation is idempotent)",
		         t, (struct vg_log_field[]){{"err", err.msg}}, 1);
	if (o.skipped) {
		vg_counter_inc(b->s_skipped);
		log_task(VG_LOG_INFO, "report generated before", t,
		         (struct vg_log_field[]){{"run_id", p.run}}, 1);
		goto out;
	}
	{
		double secs = vg_mono_s() - t0;
		char ms[24], n[24], nw[24], rs[24], rg[24], load[24];

		vg_counter_inc(b->s_generated);
		vg_histogram_observe(b->s_duration, secs);
		snprintf(ms, sizeof(ms), "%.1f", secs * 1000);
		snprintf(load, sizeof(load), "%.1f", o.load_s * 1000);
		snprintf(n, sizeof(n), "%ld", o.findings);
		snprintf(nw, sizeof(nw), "%ld", o.by_class[CLASS_NEW]);
		snprintf(rs, sizeof(rs), "%ld", o.by_class[CLASS_RESOLVED]);
		snprintf(rg, sizeof(rg), "%ld", o.by_class[CLASS_REGRESSED]);
		log_task(VG_LOG_INFO, "report generated", t,
		         (struct vg_log_field[]){{"run_id", p.run},
		                                 {"report_id", o.report_id},
		                                 {"findings", n},
		                                 {"new", nw},
		                                 {"resolved", rs},
		                                 {"regressed", rg},
		                                 {"duration_ms", ms},
		                                 {"load_ms", load}},
		         8);
	}
	{
		/* live event for the tenant's WebSocket clients (lost events
		 * are counted, never retried) */
		json_t *ev = vg_event_new("report.ready", p.tenant, p.run,
		                          t->request_id);
		struct vg_err eerr = {0};

		json_object_set_new(ev, "report_id", json_string(o.report_id));
		json_object_set_new(ev, "findings", json_integer(o.findings));
		if (vg_events_emit(ev, &eerr) != VG_OK)
			vg_debug("event not published", "type", "report.ready",
			         "run_id", p.run, "err", eerr.msg);
	}
out:
	vg_strmap_cleanup(&crit);
}

static void set_held(struct slot *s, struct vg_task *t)
{
	pthread_mutex_lock(&s->b->mu);
	s->held = t;
	pthread_mutex_unlock(&s->b->mu);
}

static void *run_slot(void *arg)
{
	struct slot *s = arg;
	struct brain *b = s->b;
	int backoff = RETRY_MIN_MS;
	long long last_warn = 0;

	while (!atomic_load(&b->stopping)) {
		struct vg_err err = {0};
		struct vg_task *t = NULL;
		int n = 0;

		/* one at a time: a report is seconds of work at most, and a
		 * task claimed but not started would wait behind it */
		if (vg_queue_claim(s->q, &t, 1, b->cfg.block_ms, &n, &err) !=
		    VG_OK) {
			if (vg_mono_ms() - last_warn > 5000) {
				vg_warn("cannot claim report tasks", "err",
				        err.msg);
				last_warn = vg_mono_ms();
			}
			nap(backoff, &b->stopping);
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
			                                     : backoff * 2;
			continue;
		}
		backoff = RETRY_MIN_MS;
		atomic_store(&b->last_ok_ms, vg_mono_ms());
		if (n == 0)
			continue;
		set_held(s, t);
		process(s, t);
		set_held(s, NULL);
		vg_task_free(t);
	}
	pthread_mutex_lock(&b->mu);
	b->alive--;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Scheduler and sweep                                                  */
/* ------------------------------------------------------------------ */

static void touch_held(struct brain *b)
{
	const struct vg_task *held[MAX_CONCURRENCY];
	struct vg_err err = {0};
	size_t n = 0;

	pthread_mutex_lock(&b->mu);
	for (int i = 0; i < b->nslots; i++)
		if (b->slots[i].held)
			held[n++] = b->slots[i].held;
	/* under the lock: the tasks stay alive until the call returns */
	if (n && vg_queue_touch(b->sched_q, held, n, &err) != VG_OK)
		vg_warn("cannot renew held report tasks", "err", err.msg);
	pthread_mutex_unlock(&b->mu);
}

static void *run_scheduler(void *arg)
{
	struct brain *b = arg;
	int every = b->cfg.queue.visibility_timeout_ms / 3;
	long long next_touch, last_warn = 0;
	int backoff = RETRY_MIN_MS;

	if (every < 1)
		every = 1;
	next_touch = vg_mono_ms() + every;
	while (!atomic_load(&b->sched_stop)) {
		struct vg_err err = {0};
		long long until = next_touch - vg_mono_ms();
		int wait = until < SCHED_MAX_WAIT_MS ? (int)until
		                                     : SCHED_MAX_WAIT_MS;

		if (wait > 0 &&
		    vg_queue_schedule(b->sched_q, wait, NULL, &err) != VG_OK) {
			if (vg_mono_ms() - last_warn > 5000) {
				vg_warn("cannot move delayed report tasks",
				        "err", err.msg);
				last_warn = vg_mono_ms();
			}
			nap(backoff, &b->sched_stop);
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
			                                     : backoff * 2;
		} else {
			backoff = RETRY_MIN_MS;
		}
		if (vg_mono_ms() >= next_touch) {
			touch_held(b);
			next_touch = vg_mono_ms() + every;
		}
	}
	return NULL;
}

/* Claim pending report rows and queue one task each; *n how many. */
static int sweep_once(struct brain *b, int *n, struct vg_err *err)
{
	struct report_request req[SWEEP_BATCH];
	int got = 0, rc;

	*n = 0;
	rc = report_requests_claim(b->cfg.db, SWEEP_BATCH,
	                           b->cfg.requeue_after_s, req, &got, err);
	if (rc != VG_OK)
		return rc;
	for (int i = 0; i < got; i++) {
		json_t *p = json_pack("{s:s,s:s}", "tenant_id", req[i].tenant,
		                      "run_id", req[i].run);
		struct vg_queue_msg m = {.type = BRAIN_TASK_REPORT,
		                         .payload = p,
		                         .request_id = req[i].request_id,
		                         .tenant = req[i].tenant};
		struct vg_err qerr = {0}, uerr = {0};

		rc = p ? vg_queue_enqueue(b->sweep_q, &m, &qerr) : VG_NOMEM;
		json_decref(p);
		if (rc != VG_OK) {
			/* the next sweep takes it again */
			report_request_unclaim(b->cfg.db, req[i].tenant,
			                       req[i].run, &uerr);
			if (!qerr.msg[0])
				vg_err_set(&qerr, rc, "out of memory");
			*err = qerr;
			continue;
		}
		(*n)++;
		vg_counter_inc(b->s_queued);
		vg_info("report task queued", "request_id", req[i].request_id,
		        "tenant", req[i].tenant, "run_id", req[i].run,
		        "task_id", m.id);
	}
	return *n == got ? VG_OK : err->code;
}

int brain_enqueue_report(struct brain *b, const char *tenant, const char *run,
                         const char *request_id, char *task_id, size_t n,
                         struct vg_err *err)
{
	json_t *p = json_pack("{s:s,s:s}", "tenant_id", tenant, "run_id", run);
	struct vg_queue_msg m = {.type = BRAIN_TASK_REPORT,
	                         .payload = p,
	                         .request_id = request_id,
	                         .tenant = tenant};
	int rc;

	if (!p)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	pthread_mutex_lock(&b->api_mu);
	rc = vg_queue_enqueue(b->api_q, &m, err);
	pthread_mutex_unlock(&b->api_mu);
	json_decref(p);
	if (rc == VG_OK)
		snprintf(task_id, n, "%s", m.id);
	return rc;
}

static void *run_sweep(void *arg)
{
	struct brain *b = arg;
	long long last_warn = 0;

	while (!atomic_load(&b->stopping)) {
		struct vg_err err = {0};
		int n = 0;

		if (sweep_once(b, &n, &err) != VG_OK &&
		    vg_mono_ms() - last_warn > 5000) {
			vg_warn("cannot queue pending reports", "err", err.msg);
			last_warn = vg_mono_ms();
		}
		if (n < SWEEP_BATCH)
			nap(b->cfg.sweep_ms, &b->stopping);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

/* Dead-lettered by the queue at claim: no envelope, unknown type, lost by
 * brains too often. */
static void on_dead(void *ctx, const char *type, const char *request_id,
                    const char *error)
{
	struct brain *b = ctx;

	vg_counter_inc(b->s_dead);
	vg_error("report task dead-lettered", "type", type, "request_id",
	         request_id, "err", error);
}

int brain_new(const struct brain_config *cfg, struct brain **out,
              struct vg_err *err)
{
	struct brain *b = calloc(1, sizeof(*b));
	struct vg_queue_opts qo;
	int rc = VG_NOMEM;

	*out = NULL;
	if (!b)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	b->cfg = *cfg;
	if (b->cfg.concurrency <= 0)
		b->cfg.concurrency = 2;
	if (b->cfg.block_ms <= 0)
		b->cfg.block_ms = 1000;
	if (b->cfg.sweep_ms == 0)
		b->cfg.sweep_ms = 1000;
	if (b->cfg.requeue_after_s <= 0)
		b->cfg.requeue_after_s = 600;
	if (!b->cfg.queue.visibility_timeout_ms)
		b->cfg.queue.visibility_timeout_ms = 60000;
	b->type = (struct vg_queue_type){
		BRAIN_TASK_REPORT,
		b->cfg.max_attempts > 0 ? b->cfg.max_attempts : 8,
		b->cfg.backoff_base_ms > 0 ? b->cfg.backoff_base_ms : 2000,
		b->cfg.backoff_max_ms > 0 ? b->cfg.backoff_max_ms : 300000};
	if (b->type.backoff_max_ms < b->type.backoff_base_ms)
		b->type.backoff_max_ms = b->type.backoff_base_ms;
	if (b->cfg.concurrency > MAX_CONCURRENCY || !b->cfg.db) {
		free(b);
		return vg_err_set(err, VG_INVAL,
		                  "concurrency must be 1..%d, and a database "
		                  "is needed",
		                  MAX_CONCURRENCY);
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->api_mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	register_metrics(b, cfg->metrics ? cfg->metrics : vg_metrics_default());
	b->slots = calloc((size_t)b->cfg.concurrency, sizeof(*b->slots));
	if (!b->slots)
		goto fail;
	qo = b->cfg.queue;
	qo.group = "brain";
	qo.types = &b->type;
	qo.ntypes = 1;
	qo.consumer = NULL;
	qo.on_dead = on_dead;
	qo.on_dead_ctx = b;
	b->cfg.queue = qo;
	b->nslots = b->cfg.concurrency;
	for (int i = 0; i < b->nslots; i++) {
		b->slots[i].b = b;
		if ((rc = vg_queue_new(&qo, &b->slots[i].q, err)) != VG_OK)
			goto fail;
	}
	if ((rc = vg_queue_new(&qo, &b->sched_q, err)) != VG_OK ||
	    (rc = vg_queue_new(&qo, &b->sweep_q, err)) != VG_OK ||
	    (rc = vg_queue_new(&qo, &b->api_q, err)) != VG_OK)
		goto fail;
	*out = b;
	return VG_OK;
fail:
	brain_free(b);
	return rc == VG_NOMEM ? vg_err_set(err, VG_NOMEM, "out of memory") : rc;
}

int brain_start(struct brain *b, struct vg_err *err)
{
	atomic_store(&b->last_ok_ms, vg_mono_ms());
	if (pthread_create(&b->sched, NULL, run_scheduler, b) != 0)
		return vg_err_sys(err, VG_INTERNAL, "scheduler thread");
	b->sched_started = 1;
	if (b->cfg.sweep_ms > 0) {
		if (pthread_create(&b->sweep, NULL, run_sweep, b) != 0)
			return vg_err_sys(err, VG_INTERNAL, "sweep thread");
		b->sweep_started = 1;
	}
	for (int i = 0; i < b->nslots; i++) {
		if (pthread_create(&b->slots[i].th, NULL, run_slot,
		                   &b->slots[i]) != 0) {
			brain_stop(b);
			return vg_err_sys(err, VG_INTERNAL, "report thread");
		}
		pthread_mutex_lock(&b->mu);
		b->alive++;
		pthread_mutex_unlock(&b->mu);
	}
	b->started = 1;
	return VG_OK;
}

void brain_stop(struct brain *b)
{
	atomic_store(&b->stopping, 1);
}

int brain_wait(struct brain *b, int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (b->alive > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&b->cv, &b->mu, &until);
	rc = b->alive > 0 ? VG_TIMEOUT : VG_OK;
	pthread_mutex_unlock(&b->mu);
	if (rc != VG_OK)
		return rc;
	for (int i = 0; i < b->nslots && b->started; i++)
		pthread_join(b->slots[i].th, NULL);
	b->started = 0;
	if (b->sweep_started) {
		pthread_join(b->sweep, NULL);
		b->sweep_started = 0;
	}
	if (b->sched_started) {
		atomic_store(&b->sched_stop, 1);
		pthread_join(b->sched, NULL);
		b->sched_started = 0;
	}
	return VG_OK;
}

int brain_ready(struct brain *b)
{
	long long quiet = vg_mono_ms() - atomic_load(&b->last_ok_ms);

	return b->started && !atomic_load(&b->stopping) &&
	       quiet < 3LL * b->cfg.block_ms + 10000;
}

void brain_free(struct brain *b)
{
	if (!b)
		return;
	for (int i = 0; b->slots && i < b->nslots; i++)
		vg_queue_free(b->slots[i].q);
	vg_queue_free(b->sched_q);
	vg_queue_free(b->sweep_q);
	vg_queue_free(b->api_q);
	pthread_mutex_destroy(&b->mu);
	pthread_mutex_destroy(&b->api_mu);
	pthread_cond_destroy(&b->cv);
	free(b->slots);
	free(b);
}
