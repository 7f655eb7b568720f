/* test_ingest.c - POST /v1/tenants/{tid}/ingest against a real PostgreSQL
 * and Redis: the run recorded once per Job, the task in the Redis stream
 * read back as the worker claims it (payload, tenant, request id), the
 * same batch twice, every validation error (422 naming the finding and
 * field, 413), roles and tenants (401, 403, 404), a canceled run (409),
 * the emergency stop (still accepted), Redis refusing writes or gone
 * (503 with Retry-After) and vigil_ingest_batches_total; last, the real
 * vigil-worker process takes the gateway's tasks into findings rows. */
#include "harness.h"

#include "vigil/queue.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

static char tid[37], other[37];
static char agent[80], other_agent[80], admin[80], viewer[80];
static char path[128], other_path[128];

static const struct vg_queue_type types[] = {
	{"ingest", 8, 1000, 300000},
	{"finalize", 12, 5000, 600000},
	{"report", 8, 2000, 300000},
};

static struct vg_queue *consumer(void)
{
	struct vg_queue_opts o = {.host = "127.0.0.1",
	                          .port = H.redis.port,
	                          .consumer = "test-ingest",
	                          .types = types,
	                          .ntypes = 3};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};

	if (vg_queue_new(&o, &q, &err) != VG_OK)
		fail_msg("queue: %s", err.msg);
	return q;
}

/* Claim the next task as a worker would, or fail; acknowledged at once
 * so the stream is empty for the next test. */
static struct vg_task *claim(void)
{
	struct vg_queue *q = consumer();
	struct vg_task *t[1] = {NULL};
	struct vg_err err = {0};
	int n = 0;

	if (vg_queue_claim(q, t, 1, 2000, &n, &err) != VG_OK)
		fail_msg("claim: %s", err.msg);
	if (n != 1)
		fail_msg("no task in the stream");
	if (vg_queue_ack(q, t[0], &err) != VG_OK)
		fail_msg("ack: %s", err.msg);
	vg_queue_free(q);
	return t[0];
}

static long long stream_len(void)
{
	char *v = h_redis("XLEN {vigil}:tasks");
	long long n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

static double ingest_metric(void)
{
	struct h_resp r;
	const char *p;
	double v = -1;

	h_req_ex(H.hport, "GET", "/metrics", NULL, NULL, 0, NULL, NULL, &r);
	p = strstr(vg_buf_str(&r.body), "\nvigil_ingest_batches_total ");
	if (p)
		v = strtod(p + strlen("\nvigil_ingest_batches_total "), NULL);
	h_resp_free(&r);
	return v;
}

static const char finding_fmt[] =
	"{\"host\":\"10.0.0.%d\",\"port\":%d,\"protocol\":\"tcp\","
	"\"scanner\":\"tcp\",\"severity\":\"%s\",\"fingerprint\":\"fp-%d\","
	"\"title\":\"open port\",\"evidence\":{\"banner\":\"SSH-2.0\"}}";

/* A batch of `n` valid findings for `job`. */
static char *batch(const char *job, const char *batch_id, int shard, int shards,
                   int final, int n)
{
	static const char *const sev[] = {"info", "low", "medium", "high",
	                                  "critical"};
	struct vg_buf b;

	vg_buf_init(&b, 0);
	vg_buf_appendf(&b,
	               "{\"job_name\":\"%s\",\"policy\":{\"namespace\":"
	               "\"tenant-ingest\",\"name\":\"web\",\"uid\":"
	               "\"8c1d7a52-0000-4000-8000-000000000001\"},"
	               "\"trigger\":\"manual\",\"shards\":%d,\"shard\":%d,"
	               "\"batch_id\":\"%s\",\"final\":%s,\"findings\":[",
	               job, shards, shard, batch_id, final ? "true" : "false");
	for (int i = 0; i < n; i++) {
		if (i)
			vg_buf_append_byte(&b, ',');
		vg_buf_appendf(&b, finding_fmt, i % 250, 22 + i, sev[i % 5], i);
	}
	vg_buf_append_str(&b, "],\"stats\":{\"hosts\":3,\"ms\":1200}}");
	return vg_buf_take(&b);
}

static int setup(void **state)
{
	if (h_setup_all(state))
		return -1;
	h_tenant("ingest", tid);
	h_tenant("ingest-other", other);
	h_key(tid, "agent", NULL, agent, NULL);
	h_key(tid, "admin", NULL, admin, NULL);
	h_key(tid, "viewer", NULL, viewer, NULL);
	h_key(other, "agent", NULL, other_agent, NULL);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ingest", tid);
	snprintf(other_path, sizeof(other_path), "/v1/tenants/%s/ingest",
	         other);
	return 0;
}

/* ------------------------------------------------------------------ */

static void test_ingest_queues_task(void **state)
{
	struct h_resp r;
	struct vg_task *t;
	const json_t *p;
	char *body = batch("web-28871234", "b-0-1", 1, 3, 0, 3), *v;
	char q[256], run[37];
	double before = ingest_metric();

	(void)state;
	assert_int_equal(stream_len() <= 0, 1);
	h_req_ex(H.port, "POST", path, agent, body, strlen(body), NULL,
	         "X-Request-ID: ingest-req-1", &r);
	if (r.status != 202)
		fail_msg("ingest: %ld %s", r.status, vg_buf_str(&r.body));
	snprintf(run, sizeof(run), "%s", vg_json_get_str(r.json, "run_id", ""));
	assert_true(vg_db_is_uuid(run));
	assert_string_equal(vg_json_get_str(r.json, "batch_id", ""), "b-0-1");
	assert_int_equal(strlen(vg_json_get_str(r.json, "task_id", "")), 32);

	/* the task, as the worker claims it */
	t = claim();
	assert_string_equal(t->id, vg_json_get_str(r.json, "task_id", ""));
	assert_string_equal(t->type, "ingest");
	assert_string_equal(t->tenant, tid);
	assert_string_equal(t->request_id, "ingest-req-1");
	p = t->payload;
	assert_string_equal(vg_json_get_str(p, "tenant_id", ""), tid);
	assert_string_equal(vg_json_get_str(p, "run_id", ""), run);
	assert_string_equal(vg_json_get_str(p, "batch_id", ""), "b-0-1");
	assert_int_equal(vg_json_get_int(p, "shard", -1), 1);
	assert_true(json_is_false(json_object_get(p, "final")));
	assert_int_equal(json_array_size(json_object_get(p, "findings")), 3);
	assert_string_equal(vg_json_get_str(p, "findings[2].severity", ""),
	                    "medium");
	assert_string_equal(
		vg_json_get_str(p, "findings[0].evidence.banner", ""),
		"SSH-2.0");
	/* exactly the keys the worker reads */
	assert_int_equal(json_object_size(p), 6);
	vg_task_free(t);
	h_resp_free(&r);
	assert_true(ingest_metric() == before + 1);

	/* the run, recorded from the first batch */
	snprintf(q, sizeof(q),
	         "SELECT concat_ws(' ', policy_namespace, policy_name,"
	         " policy_uid, trigger, state, shards) FROM vigil.scan_runs"
	         " WHERE id = '%s' AND tenant_id = '%s'"
	         " AND job_name = 'web-28871234'",
	         run, tid);
	v = h_sql(q);
	assert_non_null(v);
	assert_string_equal(v, "tenant-ingest web "
	                       "8c1d7a52-0000-4000-8000-000000000001 manual "
	                       "pending 3");
	free(v);
	free(body);
}

/* The same batch twice, and other batches of the Job: one run. */
static void test_ingest_idempotent(void **state)
{
	struct h_resp r;
	char *b1 = batch("job-idem", "b-1", 0, 2, 0, 2);
	char *b2 = batch("job-idem", "b-2", 1, 2, 1, 0);
	char run[37], *v;

	(void)state;
	h_expect(202, "POST", path, agent, b1, &r);
	snprintf(run, sizeof(run), "%s", vg_json_get_str(r.json, "run_id", ""));
	h_resp_free(&r);
	h_expect(202, "POST", path, agent, b1, &r);
	assert_string_equal(vg_json_get_str(r.json, "run_id", ""), run);
	h_resp_free(&r);
	h_expect(202, "POST", path, agent, b2, &r);
	assert_string_equal(vg_json_get_str(r.json, "run_id", ""), run);
	h_resp_free(&r);
	v = h_sql("SELECT count(*) FROM vigil.scan_runs"
	          " WHERE job_name = 'job-idem'");
	assert_string_equal(v, "1");
	free(v);
	/* three tasks: the worker skips the second by its batch key */
	for (int i = 0; i < 3; i++) {
		struct vg_task *t = claim();

		assert_string_equal(vg_json_get_str(t->payload, "run_id", ""),
		                    run);
		assert_string_equal(vg_json_get_str(t->payload, "batch_id", ""),
		                    i < 2 ? "b-1" : "b-2");
		vg_task_free(t);
	}
	/* an empty final batch, optional members absent */
	h_expect(202, "POST", path, agent,
	         "{\"job_name\":\"job-min\",\"shards\":1,\"shard\":0,"
	         "\"batch_id\":\"only\",\"final\":true,\"findings\":["
	         "{\"host\":\"db\",\"port\":null,\"scanner\":\"tls\","
	         "\"severity\":\"high\",\"fingerprint\":\"x\"}]}",
	         &r);
	h_resp_free(&r);
	vg_task_free(claim());
	v = h_sql("SELECT trigger || ' ' || policy_name || '.' FROM"
	          " vigil.scan_runs WHERE job_name = 'job-min'");
	assert_string_equal(v, "schedule .");
	free(v);
	free(b1);
	free(b2);
}

/* 422 with the path of the bad member; nothing queued. */
static void expect_invalid(const char *body, const char *where)
{
	struct h_resp r;
	long long before = stream_len();

	h_expect(422, "POST", path, agent, body, &r);
	assert_string_equal(h_err_code(&r), "validation_failed");
	if (!strstr(vg_json_get_str(r.json, "error.message", ""), where))
		fail_msg("message \"%s\" does not name %s",
		         vg_json_get_str(r.json, "error.message", ""), where);
	h_resp_free(&r);
	assert_int_equal(stream_len(), before);
}

#define HEAD                                                               \
	"{\"job_name\":\"j\",\"shards\":2,\"shard\":0,\"batch_id\":\"b\"," \
	"\"final\":false,"
#define OK_F                                                                 \
	"{\"host\":\"h\",\"port\":1,\"scanner\":\"s\",\"severity\":\"low\"," \
	"\"fingerprint\":\"f\"}"

static void test_ingest_validation(void **state)
{
	struct vg_buf b;
	struct h_resp r;
	char *s;

	(void)state;
	expect_invalid(HEAD "\"findings\":[" OK_F ",{\"host\":\"h\",\"port\":1,"
	                    "\"scanner\":\"s\",\"severity\":\"urgent\","
	                    "\"fingerprint\":\"f\"}]}",
	               "findings[1].severity");
	expect_invalid(HEAD "\"findings\":[" OK_F "," OK_F
	                    ",{\"host\":\"h\",\"scanner\":\"s\","
	                    "\"severity\":\"low\"}]}",
	               "findings[2].fingerprint");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"port\":65536,"
	                    "\"scanner\":\"s\",\"severity\":\"low\","
	                    "\"fingerprint\":\"f\"}]}",
	               "findings[0].port");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"port\":\"22\","
	                    "\"scanner\":\"s\",\"severity\":\"low\","
	                    "\"fingerprint\":\"f\"}]}",
	               "findings[0].port");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"protocol\":"
	                    "\"sctp\",\"scanner\":\"s\",\"severity\":\"low\","
	                    "\"fingerprint\":\"f\"}]}",
	               "findings[0].protocol");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"\",\"scanner\":\"s\","
	                    "\"severity\":\"low\",\"fingerprint\":\"f\"}]}",
	               "findings[0].host");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"scanner\":\"s\","
	                    "\"severity\":\"low\",\"fingerprint\":\"f\","
	                    "\"title\":null}]}",
	               "findings[0].title");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"scanner\":\"s\","
	                    "\"severity\":\"low\",\"fingerprint\":\"f\","
	                    "\"evidence\":[1]}]}",
	               "findings[0].evidence");
	expect_invalid(HEAD "\"findings\":[{\"host\":\"h\",\"scanner\":\"s\","
	                    "\"severity\":\"low\",\"fingerprint\":\"f\","
	                    "\"cvss\":9.8}]}",
	               "findings[0].cvss");
	expect_invalid(HEAD "\"findings\":[" OK_F ",7]}", "findings[1]");
	expect_invalid(HEAD "\"findings\":{}}", "findings");
	expect_invalid(HEAD "\"findings\":[],\"policy\":{\"name\":1}}",
	               "policy.name");
	expect_invalid(HEAD "\"findings\":[],\"policy\":{\"kind\":\"x\"}}",
	               "policy.kind");
	expect_invalid(HEAD "\"findings\":[],\"stats\":[]}", "stats");
	expect_invalid(HEAD "\"findings\":[],\"extra\":1}", "extra");
	expect_invalid(HEAD "\"findings\":[],\"trigger\":\"cron\"}", "trigger");
	expect_invalid("{\"job_name\":\"j\",\"shards\":2,\"shard\":2,"
	               "\"batch_id\":\"b\",\"final\":false,\"findings\":[]}",
	               "shard");
	expect_invalid("{\"job_name\":\"j\",\"shards\":0,\"shard\":0,"
	               "\"batch_id\":\"b\",\"final\":false,\"findings\":[]}",
	               "shards");
	expect_invalid("{\"job_name\":\"j\",\"shards\":1,\"shard\":0,"
	               "\"final\":false,\"findings\":[]}",
	               "batch_id");
	expect_invalid("{\"job_name\":\"j\",\"shards\":1,\"shard\":0,"
	               "\"batch_id\":\"b\",\"final\":false}",
	               "findings");
	expect_invalid("", "body");

	/* more findings than a task may carry (still under the body limit) */
	vg_buf_init(&b, 0);
	vg_buf_append_str(&b, HEAD "\"findings\":[");
	for (int i = 0; i < 10001; i++)
		vg_buf_append_str(&b, i ? ",{}" : "{}");
	vg_buf_append_str(&b, "]}");
	expect_invalid(vg_buf_str(&b), "findings: too many items");
	vg_buf_cleanup(&b);

	/* over VIGIL_GATEWAY_MAX_BODY (64 KiB here) */
	s = batch("big", "big", 0, 1, 1, 600);
	assert_true(strlen(s) > 65536);
	h_expect(413, "POST", path, agent, s, &r);
	h_resp_free(&r);
	free(s);

	/* malformed JSON */
	h_expect(400, "POST", path, agent, HEAD "\"findings\":[", &r);
	h_resp_free(&r);
	assert_int_equal(stream_len(), 0);
}

static void test_ingest_access(void **state)
{
	struct h_resp r;
	char *b = batch("job-access", "b", 0, 1, 1, 1), *v;

	(void)state;
	h_expect(401, "POST", path, NULL, b, &r);
	h_resp_free(&r);
	h_expect(403, "POST", path, admin, b, &r);
	h_resp_free(&r);
	h_expect(403, "POST", path, viewer, b, &r);
	h_resp_free(&r);
	h_expect(403, "POST", path, BOOTSTRAP_KEY, b, &r);
	h_resp_free(&r);
	/* an agent of one tenant posting into another */
	h_expect(404, "POST", other_path, agent, b, &r);
	h_resp_free(&r);
	h_expect(404, "POST", path, other_agent, b, &r);
	h_resp_free(&r);
	v = h_sql("SELECT count(*) FROM vigil.scan_runs"
	          " WHERE job_name = 'job-access'");
	assert_string_equal(v, "0");
	free(v);
	assert_int_equal(stream_len(), 0);
	/* the same Job name in two tenants: two runs */
	h_expect(202, "POST", path, agent, b, &r);
	h_resp_free(&r);
	h_expect(202, "POST", other_path, other_agent, b, &r);
	h_resp_free(&r);
	vg_task_free(claim());
	vg_task_free(claim());
	v = h_sql("SELECT count(DISTINCT tenant_id) FROM vigil.scan_runs"
	          " WHERE job_name = 'job-access'");
	assert_string_equal(v, "2");
	free(v);
	free(b);
}

static void test_ingest_finished_run(void **state)
{
	struct h_resp r;
	char *b = batch("job-cancel", "b1", 0, 2, 0, 1);
	char *b2 = batch("job-cancel", "b2", 1, 2, 1, 1);
	char q[256];

	(void)state;
	h_expect(202, "POST", path, agent, b, &r);
	snprintf(q, sizeof(q),
	         "UPDATE vigil.scan_runs SET state = 'canceled' WHERE id ="
	         " '%s'",
	         vg_json_get_str(r.json, "run_id", ""));
	h_resp_free(&r);
	vg_task_free(claim());
	free(h_sql(q));
	h_expect(409, "POST", path, agent, b2, &r);
	assert_string_equal(h_err_code(&r), "conflict");
	assert_non_null(strstr(vg_json_get_str(r.json, "error.message", ""),
	                       "canceled"));
	h_resp_free(&r);
	assert_int_equal(stream_len(), 0);
	free(b);
	free(b2);
}

/* Agents flush their results while the stop is engaged. */
static void test_ingest_during_emergency_stop(void **state)
{
	struct h_resp r;
	char *b = batch("job-estop", "b", 0, 1, 1, 2);

	(void)state;
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":true,\"reason\":\"ingest test\"}", &r);
	h_resp_free(&r);
	h_expect(202, "POST", path, agent, b, &r);
	h_resp_free(&r);
	vg_task_free(claim());
	h_expect(200, "PUT", "/v1/emergency-stop", BOOTSTRAP_KEY,
	         "{\"engaged\":false}", &r);
	h_resp_free(&r);
	free(b);
}

static void test_ingest_queue_unavailable(void **state)
{
	struct h_resp r;
	char retry[16];
	char *b = batch("job-redis", "b", 0, 1, 1, 2), *v;

	(void)state;
	/* Redis answers but refuses writes: reads for authentication work,
	 * the enqueue does not */
	free(h_redis("CONFIG SET maxmemory-policy noeviction"));
	free(h_redis("CONFIG SET maxmemory 1"));
	h_expect(503, "POST", path, agent, b, &r);
	free(h_redis("CONFIG SET maxmemory 0"));
	assert_string_equal(h_err_code(&r), "unavailable");
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	h_resp_free(&r);
	assert_int_equal(stream_len(), 0);
	/* the agent retries: the same run, now queued */
	h_expect(202, "POST", path, agent, b, &r);
	h_resp_free(&r);
	vg_task_free(claim());
	v = h_sql("SELECT count(*) FROM vigil.scan_runs"
	          " WHERE job_name = 'job-redis'");
	assert_string_equal(v, "1");
	free(v);

	/* Redis gone, then back: 503, then accepted again */
	assert_int_equal(vg_ts_stop(&H.redis), 0);
	h_expect(503, "POST", path, agent, b, &r);
	assert_true(h_header(&r, "Retry-After", retry, sizeof(retry)));
	h_resp_free(&r);
	assert_int_equal(vg_ts_restart(&H.redis), 0);
	h_wait_ready(1, 30000);
	h_expect(202, "POST", path, agent, b, &r);
	h_resp_free(&r);
	vg_task_free(claim());
	free(b);
}

/* The worker program against the same PostgreSQL and Redis: batches
 * posted to the gateway become findings, the run finishes, its report
 * is recorded. Skipped when build/.../bin/vigil-worker was not built. */
static void test_ingest_through_worker(void **state)
{
	char self[PATH_MAX], bin[PATH_MAX + 32], rport[16], pport[16];
	char *b0 = batch("job-worker", "w-0-1", 0, 2, 1, 3);
	char *b1 = batch("job-worker", "w-1-1", 1, 2, 1, 2);
	char run[37], q[512], *v = NULL;
	struct h_resp r;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int status, done = 0;
	pid_t pid;

	(void)state;
	assert_true(n > 0);
	self[n] = '\0';
	snprintf(bin, sizeof(bin), "%s/../../../bin/vigil-worker",
	         dirname(self));
	if (access(bin, X_OK) != 0) {
		free(b0);
		free(b1);
		/* make builds every program before the tests */
		fail_msg("%s is not built (make programs)", bin);
	}
	snprintf(rport, sizeof(rport), "%d", H.redis.port);
	snprintf(pport, sizeof(pport), "%d", H.pg.port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--redis-host", "127.0.0.1", "--redis-port",
		      rport, "--db-host", "127.0.0.1", "--db-port", pport,
		      "--db-user", "vigil_app", "--db-sslmode", "disable",
		      "--health-addr", "127.0.0.1:0", "--log-level", "error",
		      (char *)NULL);
		_exit(127);
	}
	h_expect(202, "POST", path, agent, b0, &r);
	snprintf(run, sizeof(run), "%s", vg_json_get_str(r.json, "run_id", ""));
	h_resp_free(&r);
	/* the same batch again: skipped by the worker */
	h_expect(202, "POST", path, agent, b0, &r);
	h_resp_free(&r);
	h_expect(202, "POST", path, agent, b1, &r);
	h_resp_free(&r);
	/* state, counted total, findings, batches, reports */
	snprintf(q, sizeof(q),
	         "SELECT s.state || ' ' || (s.finding_counts->>'total') || ' '"
	         " || (SELECT count(*) FROM vigil.findings f WHERE f.run_id ="
	         " s.id) || ' ' || (SELECT count(*) FROM"
	         " vigil.ingest_batches i WHERE i.run_id = s.id) || ' ' ||"
	         " (SELECT count(*) FROM vigil.reports p WHERE p.run_id ="
	         " s.id) FROM vigil.scan_runs s WHERE s.id = '%s'",
	         run);
	for (int i = 0; i < 300 && !done; i++) {
		free(v);
		v = h_sql(q);
		done = v && strcmp(v, "succeeded 3 3 2 1") == 0;
		if (!done)
			usleep(100 * 1000);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	if (!done)
		fail_msg("run %s: \"%s\", want \"succeeded 3 3 2 1\"", run,
		         v ? v : "");
	free(v);
	/* shard 1 saw fp-0 and fp-1 again: one finding each per run, so 3
	 * findings from 5; and the API shows them */
	snprintf(q, sizeof(q), "/v1/tenants/%s/findings?run_id=%s", tid, run);
	h_expect(200, "GET", q, viewer, NULL, &r);
	assert_int_equal(json_array_size(vg_json_get_array(r.json, "items")),
	                 3);
	assert_string_equal(vg_json_get_str(r.json, "items[0].severity", ""),
	                    "medium");
	assert_string_equal(
		vg_json_get_str(r.json, "items[0].evidence.banner", ""),
		"SSH-2.0");
	h_resp_free(&r);
	free(b0);
	free(b1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ingest_queues_task),
		cmocka_unit_test(test_ingest_idempotent),
		cmocka_unit_test(test_ingest_validation),
		cmocka_unit_test(test_ingest_access),
		cmocka_unit_test(test_ingest_finished_run),
		cmocka_unit_test(test_ingest_during_emergency_stop),
		cmocka_unit_test(test_ingest_queue_unavailable),
		cmocka_unit_test(test_ingest_through_worker),
	};

	return cmocka_run_group_tests(tests, setup, h_teardown_all);
}
