/* test_worker.c - the worker core and its task types in this process,
 * against a real PostgreSQL and Redis: the ingest -> finalize -> report
 * chain, idempotent redelivery, retries into the dead letters, malformed
 * payloads, replay and purge, and a Redis crash with tasks queued and in
 * flight. */
#include "harness.h"

#include "tasks.h"
#include "worker.h"

#include "vigil/metrics.h"

static struct vg_db_pool *app; /* vigil_app: what the worker logs in as */
static char tenant[37];

/* Short backoffs so retries happen within a test. */
static struct task_def fast_defs[8];
static size_t nfast;

static int setup(void **state)
{
	const struct task_def *d;

	(void)state;
	if (start_services() != 0)
		return -1;
	app = pool_as("vigil_app", 8);
	make_tenant("acme", tenant);
	d = task_defs(&nfast);
	for (size_t i = 0; i < nfast; i++) {
		fast_defs[i] = d[i];
		fast_defs[i].policy.max_attempts = 3;
		fast_defs[i].policy.backoff_base_ms = 20;
		fast_defs[i].policy.backoff_max_ms = 50;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vg_db_pool_free(app);
	stop_services();
	return 0;
}

static struct worker *start(const char *prefix, int concurrency,
                            struct vg_metrics *reg)
{
	struct worker_config c = {
		.queue = {.port = redis.port,
	                  .prefix = prefix,
	                  .visibility_timeout_ms = 2000},
		.db = app,
		.defs = fast_defs,
		.ndefs = nfast,
		.concurrency = concurrency,
		.prefetch = 8,
		.block_ms = 200,
		.metrics = reg,
	};
	struct worker *w = NULL;
	struct vg_err err = {0};

	if (worker_new(&c, &w, &err) != VG_OK || worker_start(w, &err) != VG_OK)
		fail_msg("worker: %s", err.msg);
	return w;
}

static void stop(struct worker *w)
{
	worker_stop(w);
	assert_int_equal(worker_wait(w, 10000), VG_OK);
	worker_free(w);
}

static double metric(struct vg_metrics *reg, const char *name, const char *type)
{
	struct vg_buf b;
	char key[160];
	const char *p;
	double v = 0;

	vg_buf_init(&b, 0);
	vg_metrics_render(reg, &b);
	snprintf(key, sizeof(key), "%s{type=\"%s\"} ", name, type);
	p = strstr(vg_buf_str(&b), key);
	if (p)
		v = strtod(p + strlen(key), NULL);
	vg_buf_cleanup(&b);
	return v;
}

struct dead_seen {
	int n;
	char id[64], error[512], type[64];
	int attempts;
};

static int collect(const struct vg_dead *d, void *arg)
{
	struct dead_seen *s = arg;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", d->id);
	snprintf(s->error, sizeof(s->error), "%s", d->error);
	snprintf(s->type, sizeof(s->type), "%s", d->task ? d->task->type : "");
	s->attempts = d->task ? d->task->attempts : -1;
	return 0;
}

static struct dead_seen dead_letters(struct vg_queue *q)
{
	struct dead_seen s = {0};
	struct vg_err err = {0};

	assert_int_equal(vg_queue_dlq_list(q, NULL, 0, collect, &s, &err),
	                 VG_OK);
	return s;
}

/* enqueue -> processed -> acked, and the run's whole chain: the last
 * shard's batch finalizes the run, which records its report. */
static void test_ingest_finalize_report(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct worker *w = start("w-chain", 2, reg);
	struct vg_queue *q = open_q("w-chain");
	char run[37];
	const char *p[] = {run};
	json_t *b1, *b2;

	make_run(tenant, 2, run);
	b1 = ingest_payload(tenant, run, "shard0-b1", 5, 1);
	/* the same fingerprint twice in one batch is one finding */
	b2 = ingest_payload(tenant, run, "shard1-b1", 3, 1);
	json_array_append(json_object_get(b2, "findings"),
	                  json_array_get(json_object_get(b2, "findings"), 0));
	json_object_set_new(b2, "shard", json_integer(1));
	enqueue(q, "ingest", b1, tenant);
	enqueue(q, "ingest", b2, tenant);

	wait_count("SELECT count(*) FROM vigil.reports WHERE run_id = $1", 1, p,
	           1, 10000);
	wait_drained(q, 5000);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 8);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.ingest_batches "
	                        "WHERE run_id = $1",
	                        1, p),
	                 2);
	char *state_ = su_str("SELECT state || ' ' || shards_done || ' ' || "
	                      "(finding_counts->>'total') || ' ' || "
	                      "(finding_counts->>'critical') "
	                      "FROM vigil.scan_runs WHERE id = $1",
	                      1, p);
	assert_string_equal(state_, "succeeded 2 8 1");
	free(state_);
	/* handed to the brain: pending, with the request that finished
	 * the run, not yet queued by the brain's sweep */
	char *rep = su_str("SELECT state || ' ' || kind || ' ' || "
	                   "(summary->>'total') || ' ' || request_id || ' ' "
	                   "|| (queued_at IS NULL) FROM vigil.reports "
	                   "WHERE run_id = $1",
	                   1, p);
	assert_string_equal(rep, "pending run 8 req-test true");
	free(rep);
	assert_int_equal((int)metric(reg, "vigil_worker_tasks_processed_total",
	                             "ingest"),
	                 2);
	assert_int_equal((int)metric(reg, "vigil_worker_tasks_processed_total",
	                             "finalize"),
	                 1);
	assert_int_equal((int)metric(reg, "vigil_worker_tasks_processed_total",
	                             "report"),
	                 1);
	struct vg_queue_stats s = qstats(q);
	assert_int_equal(s.dead, 0);
	stop(w);
	json_decref(b1);
	json_decref(b2);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* A batch delivered again, before or after its first run committed, adds
 * nothing; so do finalize and report delivered again. */
static void test_redelivery_is_idempotent(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("w-idem");
	char run[37];
	const char *p[] = {run};
	json_t *b;
	struct worker *w;

	make_run(tenant, 1, run);
	b = ingest_payload(tenant, run, "b-1", 4, 1);
	/* three deliveries of the same batch (another task id each) */
	for (int i = 0; i < 3; i++)
		enqueue(q, "ingest", b, tenant);
	w = start("w-idem", 3, reg);
	wait_count("SELECT count(*) FROM vigil.reports WHERE run_id = $1", 1, p,
	           1, 10000);
	wait_drained(q, 5000);
	/* and later once more */
	enqueue(q, "ingest", b, tenant);
	wait_drained(q, 5000);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 4);
	assert_int_equal(su_num("SELECT shards_done FROM vigil.scan_runs "
	                        "WHERE id = $1",
	                        1, p),
	                 1);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);
	assert_int_equal((int)metric(reg, "vigil_worker_tasks_processed_total",
	                             "ingest"),
	                 4);
	stop(w);
	json_decref(b);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* A task that keeps failing (its run does not exist) is retried with
 * backoff and dead-lettered after its type's max attempts with the last
 * error; replayed once the run exists, it succeeds; purge empties the
 * dead letters. */
static void test_poison_dead_letters_then_replay(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct worker *w = start("w-poison", 1, reg);
	struct vg_queue *q = open_q("w-poison");
	struct vg_err err = {0};
	char run[37] = "00000000-0000-4000-8000-000000000001";
	const char *p[] = {run};
	json_t *b = ingest_payload(tenant, run, "b-poison", 2, 0);
	struct dead_seen d;
	long long t0 = mono_ms();

	enqueue(q, "ingest", b, tenant);
	while (qstats(q).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	d = dead_letters(q);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.attempts, 3);
	assert_string_equal(d.type, "ingest");
	assert_non_null(strstr(d.error, "VG_CONFLICT")); /* foreign key */
	assert_int_equal(
		(int)metric(reg, "vigil_worker_tasks_failed_total", "ingest"),
		3);
	assert_int_equal(
		(int)metric(reg, "vigil_worker_tasks_retried_total", "ingest"),
		2);
	assert_int_equal((int)metric(reg,
	                             "vigil_worker_tasks_dead_lettered_total",
	                             "ingest"),
	                 1);

	/* the run appears (as if created late): replay succeeds */
	const char *ins[] = {run, tenant};
	su_exec("INSERT INTO vigil.scan_runs (id, tenant_id) VALUES ($1, $2)",
	        2, ins);
	assert_int_equal(vg_queue_dlq_replay(q, d.id, &err), VG_OK);
	wait_count("SELECT count(*) FROM vigil.findings WHERE run_id = $1", 1,
	           p, 2, 10000);
	wait_drained(q, 5000);
	assert_int_equal(qstats(q).dead, 0);

	/* purge */
	json_t *again = ingest_payload(tenant,
	                               "00000000-0000-4000-8000-"
	                               "000000000002",
	                               "b-x", 1, 0);
	enqueue(q, "ingest", again, tenant);
	t0 = mono_ms();
	while (qstats(q).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	long long n = 0;
	assert_int_equal(vg_queue_dlq_purge(q, &n, &err), VG_OK);
	assert_int_equal(n, 1);
	assert_int_equal(qstats(q).dead, 0);
	stop(w);
	json_decref(again);
	json_decref(b);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* Malformed payloads and envelopes go to the dead letters at once, with
 * an error that says what is wrong; the worker keeps going. */
static void test_malformed_payloads(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct worker *w = start("w-bad", 1, reg);
	struct vg_queue *q = open_q("w-bad");
	char run[37];
	json_t *bad, *good;
	struct dead_seen d;
	long long t0;

	make_run(tenant, 1, run);
	bad = ingest_payload(tenant, run, "b-bad", 2, 0);
	json_object_del(bad, "batch_id");
	enqueue(q, "ingest", bad, tenant);
	t0 = mono_ms();
	while (qstats(q).dead < 1 && mono_ms() - t0 < 5000)
		sleep_ms(20);
	d = dead_letters(q);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.attempts, 1); /* no retries */
	assert_string_equal(d.error,
	                    "VG_INVAL: payload: \"batch_id\" is missing");

	/* a bad severity deep inside */
	json_decref(bad);
	bad = ingest_payload(tenant, run, "b-sev", 3, 0);
	json_object_set_new(json_array_get(json_object_get(bad, "findings"), 2),
	                    "severity", json_string("urgent"));
	enqueue(q, "ingest", bad, tenant);
	/* another tenant's id in the payload: refused, not retried */
	json_decref(bad);
	bad = ingest_payload("00000000-0000-4000-8000-0000000000aa", run,
	                     "b-tenant", 1, 0);
	enqueue(q, "ingest", bad, tenant);
	/* bytes that are no envelope at all */
	{
		redisContext *c = redisConnect("127.0.0.1", redis.port);
		redisReply *r = redisCommand(c, "XADD {w-bad}:tasks * e %s",
		                             "\x01garbage");

		freeReplyObject(r);
		redisFree(c);
	}
	t0 = mono_ms();
	while (qstats(q).dead < 4 && mono_ms() - t0 < 5000)
		sleep_ms(20);
	assert_int_equal(qstats(q).dead, 4);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings f "
	                        "JOIN vigil.scan_runs r ON r.id = f.run_id "
	                        "WHERE r.id = $1",
	                        1, (const char *[]){run}),
	                 0);
	/* the worker is still alive and processing */
	good = ingest_payload(tenant, run, "b-good", 2, 0);
	enqueue(q, "ingest", good, tenant);
	wait_drained(q, 5000);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, (const char *[]){run}),
	                 2);
	stop(w);
	json_decref(bad);
	json_decref(good);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* Redis crashes (SIGKILL) with tasks queued and in flight, and restarts
 * from its append-only file: every batch is ingested exactly once. */
static void test_redis_crash_loses_nothing(void **state)
{
	(void)state;
	enum { N = 30, PER = 3 };
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("w-crash");
	struct run_lock lock;
	struct worker *w;
	char run[37];
	const char *p[] = {run};

	make_run(tenant, 1, run);
	for (int i = 0; i < N; i++) {
		char batch[32];
		json_t *b;

		snprintf(batch, sizeof(batch), "b-%d", i);
		b = ingest_payload(tenant, run, batch, PER, 0);
		enqueue(q, "ingest", b, tenant);
		json_decref(b);
	}
	lock_run(&lock, run);
	w = start("w-crash", 2, reg);
	wait_lock_waiters(2, 10000); /* two tasks in flight, blocked */
	assert_true(qstats(q).pending >= 2);

	assert_int_equal(vg_ts_kill9(&redis), 0);
	sleep_ms(300);
	assert_int_equal(vg_ts_restart(&redis), 0);
	unlock_run(&lock);

	wait_count("SELECT count(*) FROM vigil.ingest_batches "
	           "WHERE run_id = $1",
	           1, p, N, 30000);
	wait_drained(q, 15000);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 N * PER);
	assert_int_equal(qstats(q).dead, 0);
	stop(w);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* SIGTERM's path in this process: a task in flight finishes, tasks
 * claimed but not started go back, nothing is lost or duplicated. */
static void test_stop_drains(void **state)
{
	(void)state;
	enum { N = 20 };
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("w-drain");
	struct run_lock lock;
	struct worker *w, *w2;
	char run[37];
	const char *p[] = {run};

	make_run(tenant, 1, run);
	for (int i = 0; i < N; i++) {
		char batch[32];
		json_t *b;

		snprintf(batch, sizeof(batch), "d-%d", i);
		b = ingest_payload(tenant, run, batch, 2, 0);
		enqueue(q, "ingest", b, tenant);
		json_decref(b);
	}
	lock_run(&lock, run);
	w = start("w-drain", 1, reg); /* claims a batch of 8 */
	wait_lock_waiters(1, 10000);
	worker_stop(w);
	sleep_ms(200);
	unlock_run(&lock);
	assert_int_equal(worker_wait(w, 10000), VG_OK);
	assert_int_equal(worker_in_flight(w), 0);
	worker_free(w);
	/* the one in flight finished; the rest of its batch went back */
	assert_int_equal(su_num("SELECT count(*) FROM vigil.ingest_batches "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);
	struct vg_queue_stats s = qstats(q);
	assert_int_equal(s.pending, 0);
	assert_int_equal(s.ready, N - 1);

	w2 = start("w-drain", 2, reg);
	wait_drained(q, 10000);
	stop(w2);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 2 * N);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ingest_finalize_report),
		cmocka_unit_test(test_redelivery_is_idempotent),
		cmocka_unit_test(test_poison_dead_letters_then_replay),
		cmocka_unit_test(test_malformed_payloads),
		cmocka_unit_test(test_stop_drains),
		cmocka_unit_test(test_redis_crash_loses_nothing),
	};

	vg_log_init("worker-test");
	return cmocka_run_group_tests_name("worker", tests, setup, teardown);
}
