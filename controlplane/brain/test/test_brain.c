/* test_brain.c - the brain's core in this process against a real
 * PostgreSQL and Redis: the worker's pending report row becomes a task of
 * the brain's own queue and a ready report, with the request id in the
 * logs; malformed tasks go to the dead letters with a clear error while
 * the brain keeps going; a report that keeps failing is dead-lettered and
 * its row marked failed; the sweep's claims. */
#include "harness.h"

#include "brain.h"

#include <fcntl.h>
#include <hiredis.h>
#include <unistd.h>

static struct vg_db_pool *app;
static char tenant[37];
static char logfile[] = "/tmp/vigil-brain-test-XXXXXX";
static int logfd = -1;

static int setup(void **state)
{
	(void)state;
	if (start_services() != 0)
		return -1;
	app = pool_as("vigil_app", 8);
	make_tenant("acme", tenant);
	logfd = mkstemp(logfile);
	if (logfd < 0)
		return -1;
	vg_log_set_fd(logfd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vg_log_set_fd(2);
	close(logfd);
	unlink(logfile);
	vg_db_pool_free(app);
	stop_services();
	return 0;
}

static struct brain *start(const char *prefix, struct vg_metrics *reg,
                           int sweep_ms)
{
	struct brain_config c = {
		.queue = {.port = redis.port,
	                  .prefix = prefix,
	                  .visibility_timeout_ms = 5000},
		.db = app,
		.concurrency = 2,
		.block_ms = 200,
		.sweep_ms = sweep_ms,
		.max_attempts = 2,
		.backoff_base_ms = 20,
		.backoff_max_ms = 50,
		.metrics = reg,
	};
	struct brain *b = NULL;
	struct vg_err err = {0};

	if (brain_new(&c, &b, &err) != VG_OK || brain_start(b, &err) != VG_OK)
		fail_msg("brain: %s", err.msg);
	return b;
}

static void stop(struct brain *b)
{
	brain_stop(b);
	assert_int_equal(brain_wait(b, 10000), VG_OK);
	brain_free(b);
}

static double metric(struct vg_metrics *reg, const char *name)
{
	struct vg_buf b;
	char key[160];
	const char *p;
	double v = -1;

	vg_buf_init(&b, 0);
	vg_metrics_render(reg, &b);
	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(vg_buf_str(&b), key);
	if (p)
		v = strtod(p + strlen(key), NULL);
	vg_buf_cleanup(&b);
	return v;
}

/* Wait until a metric reads `want` (dead letters of the queue's claim
 * are counted just after they are buried); fail after `ms`. */
static void wait_metric(struct vg_metrics *reg, const char *name, double want,
                        int ms)
{
	long long t0 = mono_ms();
	double v = metric(reg, name);

	while (v != want && mono_ms() - t0 < ms) {
		sleep_ms(20);
		v = metric(reg, name);
	}
	if (v != want)
		fail_msg("%s %g, want %g", name, v, want);
}

static char *log_text(void)
{
	FILE *f = fopen(logfile, "rb");
	char *s = calloc(1, 1 << 20);

	if (f && s)
		s[fread(s, 1, (1 << 20) - 1, f)] = '\0';
	if (f)
		fclose(f);
	return s;
}

struct dead_seen {
	int n;
	char errors[8][512];
};

static int collect(const struct vg_dead *d, void *arg)
{
	struct dead_seen *s = arg;

	if (s->n < 8)
		snprintf(s->errors[s->n], sizeof(s->errors[0]), "%s", d->error);
	s->n++;
	return 0;
}

static void wait_dead(struct vg_queue *q, long long want, int ms)
{
	long long t0 = mono_ms();

	while (qstats(q).dead < want && mono_ms() - t0 < ms)
		sleep_ms(20);
	assert_int_equal(qstats(q).dead, want);
}

static void enqueue(struct vg_queue *q, const char *type, json_t *payload,
                    const char *request_id)
{
	struct vg_queue_msg m = {.type = type,
	                         .payload = payload,
	                         .request_id = request_id,
	                         .tenant = tenant};
	struct vg_err err = {0};

	if (vg_queue_enqueue(q, &m, &err) != VG_OK)
		fail_msg("enqueue: %s", err.msg);
	json_decref(payload);
}

/* The worker's pending row -> the sweep -> a task -> a ready report. */
static void test_handoff_to_ready_report(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("b-handoff", "brain");
	char r1[37], r2[37], *logs;
	const char *p[] = {r2};
	struct brain *b;

	make_run(tenant, "uid-h", "ns", "h", 2, "A:10.0.0.1:22:high:2", r1);
	make_run(tenant, "uid-h", "ns", "h", 1,
	         "A:10.0.0.1:22:high:1;B:10.0.0.2:80:low:1", r2);
	worker_hands_off(tenant, r2, "req-handoff-42");
	b = start("b-handoff", reg, 50);
	wait_str("SELECT state FROM vigil.reports WHERE run_id = $1", 1, p,
	         "ready", 10000);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);
	wait_str("SELECT (summary #>> '{counts,by_class,new}') || ' ' || "
	         "(queued_at IS NOT NULL) FROM vigil.reports "
	         "WHERE run_id = $1",
	         1, p, "1 true", 1000);
	/* settle: the queue is empty and nothing is queued again */
	sleep_ms(300);
	assert_int_equal(qstats(q).ready + qstats(q).pending, 0);
	assert_int_equal(qstats(q).dead, 0);
	assert_true(metric(reg, "vigil_brain_reports_generated_total") == 1);
	assert_true(metric(reg, "vigil_brain_report_requests_queued_total") ==
	            1);
	assert_true(metric(reg, "vigil_brain_report_duration_seconds_count") ==
	            1);
	stop(b);
	/* the request id that finished the run is on the brain's lines */
	logs = log_text();
	{
		const char *l = strstr(logs, "\"msg\":\"report generated\"");

		assert_non_null(l);
		assert_non_null(strstr(l, "\"request_id\":\"req-handoff-42\""));
		assert_non_null(strstr(l, r2));
	}
	free(logs);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* Malformed tasks: dead letters at once with the reason, no crash, and
 * the brain still generates the next good report. */
static void test_malformed_tasks_dead_letter(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("b-bad", "brain");
	struct brain *b = start("b-bad", reg, -1);
	struct dead_seen d = {0};
	struct vg_err err = {0};
	char run[37];
	const char *p[] = {run};
	static const char *const want[] = {
		"VG_INVAL: payload: \"run_id\" is missing",
		"VG_INVAL: payload: \"run_id\" must be a UUID",
		"VG_INVAL: payload: not an object",
		"VG_FORBIDDEN: payload: tenant_id is not the task's tenant",
		"VG_INVAL: payload: \"force\" must be a boolean",
		"VG_INVAL: payload: asset_criticality of \"10.0.0.1\" must be "
		"low, medium, high or critical",
		"VG_NOTFOUND: run 00000000-0000-4000-8000-00000000beef not "
		"found",
	};

	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s}", "tenant_id", tenant), "req-bad-1");
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s}", "tenant_id", tenant, "run_id",
	                  "'; DROP TABLE reports; --"),
	        "req-bad-2");
	enqueue(q, BRAIN_TASK_REPORT, json_pack("[i]", 1), "req-bad-3");
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s}", "tenant_id",
	                  "00000000-0000-4000-8000-0000000000aa", "run_id",
	                  "00000000-0000-4000-8000-0000000000bb"),
	        "req-bad-4");
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s,s:s}", "tenant_id", tenant, "run_id",
	                  "00000000-0000-4000-8000-0000000000bb", "force",
	                  "yes"),
	        "req-bad-5");
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s,s:{s:s}}", "tenant_id", tenant, "run_id",
	                  "00000000-0000-4000-8000-0000000000bb",
	                  "asset_criticality", "10.0.0.1", "urgent"),
	        "req-bad-6");
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s}", "tenant_id", tenant, "run_id",
	                  "00000000-0000-4000-8000-00000000beef"),
	        "req-bad-7");
	wait_dead(q, 7, 10000);
	assert_int_equal(vg_queue_dlq_list(q, NULL, 0, collect, &d, &err),
	                 VG_OK);
	assert_int_equal(d.n, 7);
	/* two threads: any order */
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int found = 0;

		for (int k = 0; k < d.n; k++)
			found |= strcmp(d.errors[k], want[i]) == 0;
		if (!found)
			fail_msg("no dead letter \"%s\"", want[i]);
	}
	/* an unknown type and bytes that are no envelope */
	enqueue(q, "summarize", json_pack("{}"), "req-bad-8");
	{
		redisContext *c = redisConnect("127.0.0.1", redis.port);
		redisReply *r = redisCommand(c, "XADD {b-bad}:tasks * e %s",
		                             "\x01garbage");

		freeReplyObject(r);
		redisFree(c);
	}
	wait_dead(q, 9, 10000);
	wait_metric(reg, "vigil_brain_reports_dead_lettered_total", 9, 2000);
	/* still working */
	make_run(tenant, "uid-bad", "ns", "bad", 1, "A:10.0.0.1:22:high:1",
	         run);
	enqueue(q, BRAIN_TASK_REPORT,
	        json_pack("{s:s,s:s,s:{s:s}}", "tenant_id", tenant, "run_id",
	                  run, "asset_criticality", "10.0.0.1", "critical"),
	        "req-good");
	wait_str("SELECT state FROM vigil.reports WHERE run_id = $1", 1, p,
	         "ready", 10000);
	/* high (8) x ssh (1.25) x 1 day (1 + 0.5/90) x critical asset (2)
	 * = 20.11: the payload's criticality label was applied */
	wait_str("SELECT summary #>> '{top_hosts,0,risk}' FROM vigil.reports "
	         "WHERE run_id = $1",
	         1, p, "20.11", 1000);
	assert_int_equal(qstats(q).dead, 9);
	stop(b);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* A report that keeps failing (its run never finishes) is retried, then
 * dead-lettered, and the worker's row says why. */
static void test_failing_report_marked_failed(void **state)
{
	(void)state;
	struct vg_metrics *reg = vg_metrics_new();
	struct vg_queue *q = open_q("b-fail", "brain");
	char run[37];
	const char *p[] = {run};
	struct brain *b;

	make_run(tenant, "uid-f", "ns", "f", 1, "A:10.0.0.1:22:high:1", run);
	worker_hands_off(tenant, run, "req-fail");
	su_exec("UPDATE vigil.scan_runs SET state = 'running' WHERE id = $1",
	        1, p);
	b = start("b-fail", reg, 50);
	char want[160];

	wait_dead(q, 1, 10000);
	snprintf(want, sizeof(want),
	         "failed: VG_AGAIN: run %s is still running", run);
	wait_str("SELECT state || ': ' || error FROM vigil.reports "
	         "WHERE run_id = $1",
	         1, p, want, 5000);
	wait_metric(reg, "vigil_brain_reports_failed_total", 2, 2000);
	wait_metric(reg, "vigil_brain_reports_dead_lettered_total", 1, 2000);
	stop(b);
	vg_queue_free(q);
	vg_metrics_free(reg);
}

/* The sweep's claim: once, then again only after the requeue time. */
static void test_claims(void **state)
{
	(void)state;
	struct report_request req[4];
	struct vg_err err = {0};
	char run[37];
	int n = -1;

	make_run(tenant, "uid-c", "ns", "c", 1, "A:10.0.0.1:22:high:1", run);
	worker_hands_off(tenant, run, "req-claim");
	assert_int_equal(report_requests_claim(app, 4, 1, req, &n, &err),
	                 VG_OK);
	assert_int_equal(n, 1);
	assert_string_equal(req[0].tenant, tenant);
	assert_string_equal(req[0].run, run);
	assert_string_equal(req[0].request_id, "req-claim");
	assert_int_equal(report_requests_claim(app, 4, 1, req, &n, &err),
	                 VG_OK);
	assert_int_equal(n, 0);
	sleep_ms(1100);
	assert_int_equal(report_requests_claim(app, 4, 1, req, &n, &err),
	                 VG_OK);
	assert_int_equal(n, 1);
	assert_int_equal(report_request_unclaim(app, tenant, run, &err), VG_OK);
	assert_int_equal(report_requests_claim(app, 4, 600, req, &n, &err),
	                 VG_OK);
	assert_int_equal(n, 1);
	/* a ready report is never claimed */
	su_exec("UPDATE vigil.reports SET state = 'ready', queued_at = NULL "
	        "WHERE run_id = $1",
	        1, (const char *[]){run});
	assert_int_equal(report_requests_claim(app, 4, 1, req, &n, &err),
	                 VG_OK);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handoff_to_ready_report),
		cmocka_unit_test(test_malformed_tasks_dead_letter),
		cmocka_unit_test(test_failing_report_marked_failed),
		cmocka_unit_test(test_claims),
	};

	vg_log_init("brain-test");
	return cmocka_run_group_tests_name("brain", tests, setup, teardown);
}
