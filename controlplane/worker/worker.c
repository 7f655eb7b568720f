/* worker.c - worker threads claiming batches of tasks, a scheduler thread
 * (delayed tasks, lease renewal of held tasks), metrics and the drain. */
#include "worker.h"

#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PREFETCH    256
#define MAX_CONCURRENCY 256
/* acks wait at most this long for a batch's next claim to carry them */
#define ACK_DELAY_MS      5
#define SCHED_MAX_WAIT_MS 2000
#define RETRY_MIN_MS      100
#define RETRY_MAX_MS      5000

static const double duration_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25,   0.5,   1,      2.5,   5,    10,    30,   60};

/* Metric series of one task type, looked up once. */
struct type_series {
	struct vg_series *processed, *failed, *retried, *dead, *duration;
};

struct slot {
	pthread_t th;
	struct worker *w;
	struct vg_queue *q;
	/* the claimed batch; [from, n) is held, under w->mu */
	struct vg_task *batch[MAX_PREFETCH];
	int from, n;
};

struct worker {
	struct worker_config cfg;
	const struct task_def *defs;
	size_t ndefs;
	struct vg_queue_type *types;
	struct type_series *series;
	struct slot *slots;
	int nslots;

	pthread_t sched;
	struct vg_queue *sched_q;
	int sched_started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int alive; /* worker threads still running */
	int started;
	atomic_int stopping;
	atomic_int sched_stop;
	atomic_int in_flight;
	atomic_llong last_ok_ms;

	struct vg_metric *m_processed, *m_failed, *m_retried, *m_dead;
	struct vg_metric *m_duration, *m_depth;
	struct vg_series *s_in_flight;
};

/* Sleep `ms`, returning early once `flag` is set. */
static void nap(int ms, atomic_int *flag)
{
	while (ms > 0 && !atomic_load(flag)) {
		int step = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)step * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* ------------------------------------------------------------------ */
/* Metrics                                                              */
/* ------------------------------------------------------------------ */

/* Queue depth at scrape time, from a handle of its own. */
static struct {
	pthread_mutex_t mu;
	struct vg_queue *q;
	int registered;
} depth = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void collect_depth(struct vg_metrics *reg, void *data)
{
	struct vg_metric *m = data;
	struct vg_queue_stats st;

	(void)reg;
	pthread_mutex_lock(&depth.mu);
	if (depth.q && vg_queue_stats(depth.q, &st, NULL) == VG_OK) {
		vg_gauge_set(vg_metric_labels(m, "ready"), (double)st.ready);
		vg_gauge_set(vg_metric_labels(m, "pending"),
		             (double)st.pending);
		vg_gauge_set(vg_metric_labels(m, "delayed"),
		             (double)st.delayed);
		vg_gauge_set(vg_metric_labels(m, "dead"), (double)st.dead);
	}
	pthread_mutex_unlock(&depth.mu);
}

static void register_metrics(struct worker *w, struct vg_metrics *reg)
{
	const char *const *type = VG_LABELS("type");

	w->m_processed = vg_metrics_counter(
		reg, "vigil_worker_tasks_processed_total",
		"Tasks that succeeded, by type.", type, NULL);
	w->m_failed = vg_metrics_counter(reg, "vigil_worker_tasks_failed_total",
	                                 "Task attempts that failed, by type.",
	                                 type, NULL);
	w->m_retried = vg_metrics_counter(
		reg, "vigil_worker_tasks_retried_total",
		"Failed tasks scheduled for another attempt, by type.", type,
		NULL);
	w->m_dead = vg_metrics_counter(
		reg, "vigil_worker_tasks_dead_lettered_total",
		"Tasks moved to the dead-letter queue, by type.", type, NULL);
	w->m_duration = vg_metrics_histogram(
		reg, "vigil_worker_task_duration_seconds",
		"Time to run a task's handler, by type.", type,
		duration_buckets,
		sizeof(duration_buckets) / sizeof(duration_buckets[0]), NULL);
	w->s_in_flight = vg_metric_series(
		vg_metrics_gauge(reg, "vigil_worker_tasks_in_flight",
	                         "Tasks claimed by this worker and not "
	                         "finished.",
	                         NULL, NULL),
		NULL);
	w->m_depth = vg_metrics_gauge(reg, "vigil_queue_depth",
	                              "Tasks in the queue by state: ready, "
	                              "pending (held by workers), delayed, "
	                              "dead.",
	                              VG_LABELS("state"), NULL);
	for (size_t i = 0; i < w->ndefs; i++) {
		const char *n = w->defs[i].policy.name;

		w->series[i] = (struct type_series){
			vg_metric_labels(w->m_processed, n),
			vg_metric_labels(w->m_failed, n),
			vg_metric_labels(w->m_retried, n),
			vg_metric_labels(w->m_dead, n),
			vg_metric_labels(w->m_duration, n),
		};
	}
	pthread_mutex_lock(&depth.mu);
	if (!depth.registered && w->m_depth &&
	    vg_metrics_add_collector(reg, collect_depth, w->m_depth) == VG_OK)
		depth.registered = 1;
	pthread_mutex_unlock(&depth.mu);
}

static void add_in_flight(struct worker *w, int d)
{
	int now = atomic_fetch_add(&w->in_flight, d) + d;

	vg_gauge_set(w->s_in_flight, now);
}

/* Dead-lettered by the queue at claim (malformed, unknown type, lost too
 * often). */
static void on_dead(void *ctx, const char *type, const char *request_id,
                    const char *error)
{
	struct worker *w = ctx;

	vg_counter_inc(
		vg_metric_labels(w->m_dead, type[0] ? type : "(malformed)"));
	vg_error("task dead-lettered", "type", type, "request_id", request_id,
	         "err", error);
}

/* ------------------------------------------------------------------ */
/* Worker threads                                                       */
/* ------------------------------------------------------------------ */

static const struct task_def *find_def(struct worker *w, const char *type,
                                       size_t *idx)
{
	for (size_t i = 0; i < w->ndefs; i++)
		if (strcmp(w->defs[i].policy.name, type) == 0) {
			*idx = i;
			return &w->defs[i];
		}
	return NULL;
}

static void log_task(enum vg_log_level lvl, const char *msg,
                     const struct vg_task *t, const char *k1, const char *v1,
                     const char *k2, const char *v2)
{
	char attempt[16];
	struct vg_log_field f[8];
	int n = 0;

	if (!vg_log_enabled(lvl))
		return;
	snprintf(attempt, sizeof(attempt), "%d", t->attempt);
	f[n++] = (struct vg_log_field){"request_id", t->request_id};
	f[n++] = (struct vg_log_field){"task_id", t->id};
	f[n++] = (struct vg_log_field){"type", t->type};
	f[n++] = (struct vg_log_field){"tenant", t->tenant};
	f[n++] = (struct vg_log_field){"attempt", attempt};
	if (k1)
		f[n++] = (struct vg_log_field){k1, v1};
	if (k2)
		f[n++] = (struct vg_log_field){k2, v2};
	vg_log_fields(lvl, msg, f, n);
}

static void handle_failure(struct slot *s, const struct vg_task *t,
                           struct type_series *ts, int rc,
                           const struct vg_err *herr)
{
	char msg[VG_QUEUE_ERROR_MAX], delay_s[24];
	struct vg_err err = {0};
	int outcome = 0;
	long long delay = 0;
	int permanent = task_error_is_permanent(rc);

	snprintf(msg, sizeof(msg), "%s: %s", vg_errname(rc),
	         herr->msg[0] ? herr->msg : vg_strerror(rc));
	vg_counter_inc(ts->failed);
	if (vg_queue_fail(s->q, t, permanent, msg, &outcome, &delay, &err) !=
	    VG_OK) {
		/* still held by us in Redis: delivered again after the
		 * visibility timeout */
		log_task(VG_LOG_ERROR, "cannot record task failure", t, "err",
		         msg, "redis_err", err.msg);
		return;
	}
	switch (outcome) {
	case VG_QUEUE_RETRIED:
		vg_counter_inc(ts->retried);
		snprintf(delay_s, sizeof(delay_s), "%lld", delay);
		log_task(VG_LOG_WARN, "task failed, retrying", t, "err", msg,
		         "retry_in_ms", delay_s);
		break;
	case VG_QUEUE_DEAD:
		vg_counter_inc(ts->dead);
		log_task(VG_LOG_ERROR, "task dead-lettered", t, "err", msg,
		         "permanent", permanent ? "true" : "false");
		break;
	default:
		log_task(VG_LOG_WARN,
		         "task failed; another worker holds it now", t, "err",
		         msg, NULL, NULL);
	}
}

static void process(struct slot *s, struct vg_task *t)
{
	struct worker *w = s->w;
	struct task_ctx ctx = {.db = w->cfg.db, .q = s->q, .task = t};
	struct vg_err err = {0};
	const struct task_def *def;
	size_t idx = 0;
	double t0;
	int rc;

	def = find_def(w, t->type, &idx);
	if (!def) { /* the queue dead-letters unknown types: not reached */
		vg_queue_fail(s->q, t, 1, "unknown task type", NULL, NULL,
		              &err);
		return;
	}
	t0 = vg_mono_s();
	rc = def->run(&ctx, &err);
	vg_histogram_observe(w->series[idx].duration, vg_mono_s() - t0);
	if (rc != VG_OK) {
		handle_failure(s, t, &w->series[idx], rc, &err);
		return;
	}
	vg_counter_inc(w->series[idx].processed);
	if (vg_queue_ack_later(s->q, t) != VG_OK &&
	    vg_queue_ack(s->q, t, &err) != VG_OK)
		log_task(VG_LOG_WARN, "cannot acknowledge task", t, "err",
		         err.msg, NULL, NULL);
	if (ctx.note[0])
		log_task(VG_LOG_INFO, "task done", t, "note", ctx.note, NULL,
		         NULL);
	else
		log_task(VG_LOG_DEBUG, "task done", t, NULL, NULL, NULL, NULL);
}

static void set_held(struct slot *s, int from, int n)
{
	pthread_mutex_lock(&s->w->mu);
	s->from = from;
	s->n = n;
	pthread_mutex_unlock(&s->w->mu);
}

/* Send buffered acks, retrying while Redis is away (bounded). */
static void flush_acks(struct slot *s, int attempts)
{
	struct vg_err err = {0};

	for (int i = 0; i < attempts && vg_queue_pending_acks(s->q); i++) {
		if (vg_queue_flush(s->q, &err) == VG_OK)
			return;
		if (i == 0)
			vg_warn("cannot acknowledge tasks yet", "err", err.msg);
		struct timespec ts = {0, 200000000L};
		nanosleep(&ts, NULL);
	}
	if (vg_queue_pending_acks(s->q))
		vg_error("giving up acknowledging tasks; they will be "
		         "delivered again (handlers are idempotent)",
		         "err", err.msg);
}

static void *run_slot(void *arg)
{
	struct slot *s = arg;
	struct worker *w = s->w;
	int backoff = RETRY_MIN_MS;
	long long first_ack = 0, last_warn = 0;

	while (!atomic_load(&w->stopping)) {
		struct vg_err err = {0};
		int n = 0, i;

		if (vg_queue_claim(s->q, s->batch, w->cfg.prefetch,
		                   w->cfg.block_ms, &n, &err) != VG_OK) {
			if (vg_mono_ms() - last_warn > 5000) {
				vg_warn("cannot claim tasks", "err", err.msg);
				last_warn = vg_mono_ms();
			}
			nap(backoff, &w->stopping);
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
			                                     : backoff * 2;
			continue;
		}
		backoff = RETRY_MIN_MS;
		atomic_store(&w->last_ok_ms, vg_mono_ms());
		first_ack = 0;
		if (n == 0)
			continue;
		add_in_flight(w, n);
		set_held(s, 0, n);
		for (i = 0; i < n && !atomic_load(&w->stopping); i++) {
			process(s, s->batch[i]);
			set_held(s, i + 1, n);
			add_in_flight(w, -1);
			vg_task_free(s->batch[i]);
			if (!vg_queue_pending_acks(s->q))
				continue;
			if (!first_ack)
				first_ack = vg_mono_ms();
			else if (vg_mono_ms() - first_ack >= ACK_DELAY_MS) {
				vg_queue_flush(s->q, &err);
				first_ack = 0;
			}
		}
		if (i < n) {
			/* stopping: hand the rest back unstarted */
			if (vg_queue_release(s->q, s->batch + i,
			                     (size_t)(n - i), &err) != VG_OK)
				vg_warn("cannot release tasks; they will be "
				        "delivered again after the visibility "
				        "timeout",
				        "err", err.msg);
			set_held(s, n, n);
			add_in_flight(w, -(n - i));
			for (; i < n; i++)
				vg_task_free(s->batch[i]);
		}
		set_held(s, 0, 0);
	}
	flush_acks(s, 25);
	pthread_mutex_lock(&w->mu);
	w->alive--;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Scheduler                                                            */
/* ------------------------------------------------------------------ */

/* Renew every held task so no other worker claims it meanwhile. */
static void touch_held(struct worker *w)
{
	const struct vg_task **held = NULL;
	struct vg_err err = {0};
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < w->nslots; i++)
		cap += (size_t)(w->slots[i].n - w->slots[i].from);
	if (cap)
		held = malloc(cap * sizeof(*held));
	for (int i = 0; held && i < w->nslots; i++)
		for (int j = w->slots[i].from; j < w->slots[i].n; j++)
			held[n++] = w->slots[i].batch[j];
	/* under the lock: the tasks stay alive until the call returns */
	if (n && vg_queue_touch(w->sched_q, held, n, &err) != VG_OK)
		vg_warn("cannot renew held tasks", "err", err.msg);
	pthread_mutex_unlock(&w->mu);
	free(held);
}

static void *run_scheduler(void *arg)
{
	struct worker *w = arg;
	int vis = w->cfg.queue.visibility_timeout_ms;
	int every = vis / 3 > 0 ? vis / 3 : 1;
	long long next_touch = vg_mono_ms() + every, last_warn = 0;
	int backoff = RETRY_MIN_MS;

	while (!atomic_load(&w->sched_stop)) {
		struct vg_err err = {0};
		long long until = next_touch - vg_mono_ms();
		int wait = until < SCHED_MAX_WAIT_MS ? (int)until
		                                     : SCHED_MAX_WAIT_MS;
		int moved = 0;

		if (wait > 0 && vg_queue_schedule(w->sched_q, wait, &moved,
		                                  &err) != VG_OK) {
			if (vg_mono_ms() - last_warn > 5000) {
				vg_warn("cannot move delayed tasks", "err",
				        err.msg);
				last_warn = vg_mono_ms();
			}
			nap(backoff, &w->sched_stop);
			backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
			                                     : backoff * 2;
		} else {
			backoff = RETRY_MIN_MS;
		}
		if (moved > 0) {
			char m[16];

			snprintf(m, sizeof(m), "%d", moved);
			vg_debug("delayed tasks due", "count", m);
		}
		if (vg_mono_ms() >= next_touch) {
			touch_held(w);
			next_touch = vg_mono_ms() + every;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

int worker_new(const struct worker_config *cfg, struct worker **out,
               struct vg_err *err)
{
	struct worker *w = NULL;
	struct vg_queue_opts qo;
	int rc = VG_NOMEM;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	w->cfg = *cfg;
	w->defs = cfg->defs ? cfg->defs : task_defs(&w->ndefs);
	if (cfg->defs)
		w->ndefs = cfg->ndefs;
	if (w->cfg.concurrency <= 0)
		w->cfg.concurrency = 4;
	if (w->cfg.prefetch <= 0)
		w->cfg.prefetch = 16;
	if (w->cfg.block_ms <= 0)
		w->cfg.block_ms = 1000;
	if (!w->cfg.queue.visibility_timeout_ms)
		w->cfg.queue.visibility_timeout_ms = 30000;
	if (w->cfg.concurrency > MAX_CONCURRENCY ||
	    w->cfg.prefetch > MAX_PREFETCH || w->ndefs == 0) {
		free(w);
		return vg_err_set(err, VG_INVAL,
		                  "concurrency must be 1..%d and prefetch "
		                  "1..%d",
		                  MAX_CONCURRENCY, MAX_PREFETCH);
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->types = calloc(w->ndefs, sizeof(*w->types));
	w->series = calloc(w->ndefs, sizeof(*w->series));
	w->slots = calloc((size_t)w->cfg.concurrency, sizeof(*w->slots));
	if (!w->types || !w->series || !w->slots)
		goto fail;
	for (size_t i = 0; i < w->ndefs; i++)
		w->types[i] = w->defs[i].policy;
	qo = w->cfg.queue;
	qo.types = w->types;
	qo.ntypes = w->ndefs;
	qo.on_dead = on_dead;
	qo.on_dead_ctx = w;
	qo.consumer = NULL; /* each handle names itself: host-pid-n */
	w->cfg.queue = qo;
	w->nslots = w->cfg.concurrency;
	for (int i = 0; i < w->nslots; i++) {
		w->slots[i].w = w;
		if ((rc = vg_queue_new(&qo, &w->slots[i].q, err)) != VG_OK)
			goto fail;
	}
	if ((rc = vg_queue_new(&qo, &w->sched_q, err)) != VG_OK)
		goto fail;
	register_metrics(w, cfg->metrics ? cfg->metrics : vg_metrics_default());
	*out = w;
	return VG_OK;
fail:
	worker_free(w);
	return rc == VG_NOMEM ? vg_err_set(err, VG_NOMEM, "out of memory") : rc;
}

int worker_start(struct worker *w, struct vg_err *err)
{
	struct vg_queue *stats_q = NULL;

	if (vg_queue_new(&w->cfg.queue, &stats_q, err) != VG_OK)
		return err ? err->code : VG_NOMEM;
	pthread_mutex_lock(&depth.mu);
	vg_queue_free(depth.q);
	depth.q = stats_q;
	pthread_mutex_unlock(&depth.mu);

	atomic_store(&w->last_ok_ms, vg_mono_ms());
	if (pthread_create(&w->sched, NULL, run_scheduler, w) != 0)
		return vg_err_sys(err, VG_INTERNAL, "scheduler thread");
	w->sched_started = 1;
	for (int i = 0; i < w->nslots; i++) {
		if (pthread_create(&w->slots[i].th, NULL, run_slot,
		                   &w->slots[i]) != 0) {
			worker_stop(w);
			return vg_err_sys(err, VG_INTERNAL, "worker thread");
		}
		pthread_mutex_lock(&w->mu);
		w->alive++;
		pthread_mutex_unlock(&w->mu);
	}
	w->started = 1;
	return VG_OK;
}

void worker_stop(struct worker *w)
{
	atomic_store(&w->stopping, 1);
}

int worker_wait(struct worker *w, int timeout_ms)
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
	pthread_mutex_lock(&w->mu);
	while (w->alive > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
	rc = w->alive > 0 ? VG_TIMEOUT : VG_OK;
	pthread_mutex_unlock(&w->mu);
	if (rc != VG_OK)
		return rc;
	for (int i = 0; i < w->nslots && w->started; i++)
		pthread_join(w->slots[i].th, NULL);
	w->started = 0;
	if (w->sched_started) {
		atomic_store(&w->sched_stop, 1);
		pthread_join(w->sched, NULL);
		w->sched_started = 0;
	}
	return VG_OK;
}

int worker_ready(struct worker *w)
{
	long long quiet = vg_mono_ms() - atomic_load(&w->last_ok_ms);

	return w->started && !atomic_load(&w->stopping) &&
	       quiet < 3LL * w->cfg.block_ms + 10000;
}

int worker_in_flight(struct worker *w)
{
	return atomic_load(&w->in_flight);
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&depth.mu);
	vg_queue_free(depth.q);
	depth.q = NULL;
	pthread_mutex_unlock(&depth.mu);
	for (int i = 0; w->slots && i < w->nslots; i++)
		vg_queue_free(w->slots[i].q);
	vg_queue_free(w->sched_q);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->slots);
	free(w->series);
	free(w->types);
	free(w);
}
