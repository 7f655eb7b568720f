/* test_api.c - the brain's report API in this process, on 127.0.0.1:0,
 * against a real PostgreSQL and Redis: POST /v1/reports generates a
 * finished run's report through the brain's queue and answers 200 with
 * its id and summary (the request id in the row, the reply and the log),
 * answers a ready one at once, 202 when the deadline passes first, 422
 * when the report failed (and makes it when asked again); a run of
 * another tenant is 404 and gets no row; unfinished runs 409;
 * malformed, invalid, oversized and mistyped bodies 400, 422, 413 and
 * 415; no token or a wrong one 401; probes on the API port. */
#include "harness.h"

#include "api.h"
#include "brain.h"
#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN "brain-api-test-token-0123456789"

static struct vg_db_pool *app;
static char tenant[37], other_tenant[37];
static char logfile[] = "/tmp/vigil-brain-api-XXXXXX";
static int logfd = -1;

/* one brain with two listeners: deadline 15 s, and 0 (never waits) */
static struct brain *brain;
static struct api *api, *api_now;
static struct server *srv, *srv_now;
static struct vg_metrics *reg;

static struct server *listen_with(struct api **a, int deadline_ms)
{
	struct api_config ac = {.db = app,
	                        .brain = brain,
	                        .token = TOKEN,
	                        .deadline_ms = deadline_ms,
	                        .metrics = reg};
	struct server_config sc = {.addr = "127.0.0.1:0",
	                           .threads = 4,
	                           .io_timeout_ms = 3000,
	                           .handle = api_handle};
	struct server *s = NULL;
	struct vg_err err = {0};

	if (api_new(&ac, a, &err) != VG_OK)
		fail_msg("api: %s", err.msg);
	sc.data = *a;
	if (server_new(&sc, &s, &err) != VG_OK ||
	    server_start(s, &err) != VG_OK)
		fail_msg("server: %s", err.msg);
	return s;
}

static int setup(void **state)
{
	struct brain_config c = {.concurrency = 2,
	                         .block_ms = 200,
	                         .sweep_ms = -1, /* the API queues alone */
	                         .max_attempts = 2,
	                         .backoff_base_ms = 20,
	                         .backoff_max_ms = 50};
	struct vg_err err = {0};

	(void)state;
	if (start_services() != 0)
		return -1;
	app = pool_as("vigil_app", 8);
	make_tenant("acme", tenant);
	make_tenant("globex", other_tenant);
	logfd = mkstemp(logfile);
	if (logfd < 0)
		return -1;
	vg_log_set_fd(logfd);
	reg = vg_metrics_new();
	c.queue = (struct vg_queue_opts){.port = redis.port,
	                                 .prefix = "api-test",
	                                 .visibility_timeout_ms = 5000};
	c.db = app;
	c.metrics = reg;
	if (brain_new(&c, &brain, &err) != VG_OK ||
	    brain_start(brain, &err) != VG_OK) {
		fprintf(stderr, "brain: %s\n", err.msg);
		return -1;
	}
	srv = listen_with(&api, 15000);
	srv_now = listen_with(&api_now, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	server_free(srv);
	server_free(srv_now);
	api_free(api);
	api_free(api_now);
	brain_stop(brain);
	brain_wait(brain, 10000);
	brain_free(brain);
	vg_metrics_free(reg);
	vg_log_set_fd(2);
	close(logfd);
	unlink(logfile);
	vg_db_pool_free(app);
	stop_services();
	return 0;
}

/* ------------------------------------------------------------------ */
/* A small HTTP client                                                  */
/* ------------------------------------------------------------------ */

struct reply {
	int status;
	char *raw;        /* whole response, new */
	const char *body; /* in raw */
	json_t *json;     /* parsed body or NULL */
};

static void reply_free(struct reply *r)
{
	json_decref(r->json);
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* Send `head` (request line and headers, without the blank line) and
 * `body` to `port`; read to the end. */
static void request(int port, const char *head, const char *body,
                    size_t body_len, struct reply *r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	struct vg_buf out, in;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];
	ssize_t n;

	memset(r, 0, sizeof(*r));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect to %d", port);
	vg_buf_init(&out, 0);
	vg_buf_init(&in, 0);
	vg_buf_appendf(&out, "%s\r\nHost: brain\r\nConnection: close\r\n",
	               head);
	if (body)
		vg_buf_appendf(&out, "Content-Length: %zu\r\n", body_len);
	vg_buf_append_str(&out, "\r\n");
	if (body)
		vg_buf_append(&out, body, body_len);
	if (send(fd, out.data, out.len, MSG_NOSIGNAL) < 0) {
		/* a server that answered early and closed: read it */
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		vg_buf_append(&in, buf, (size_t)n);
	close(fd);
	vg_buf_cleanup(&out);
	r->raw = vg_buf_take(&in);
	assert_non_null(r->raw);
	if (sscanf(r->raw, "HTTP/1.1 %d", &r->status) != 1)
		fail_msg("no status line: %s", r->raw);
	r->body = strstr(r->raw, "\r\n\r\n");
	r->body = r->body ? r->body + 4 : "";
	r->json = json_loads(r->body, 0, NULL);
}

/* POST /v1/reports with `body` as JSON, the token, and `extra` header
 * lines ("" for none). */
static int post(int port, const char *token, const char *extra,
                const char *body, struct reply *r)
{
	char head[1024];

	snprintf(head, sizeof(head),
	         "POST /v1/reports HTTP/1.1\r\nContent-Type: "
	         "application/json%s%s%s%s",
	         token ? "\r\nAuthorization: Bearer " : "", token ? token : "",
	         *extra ? "\r\n" : "", extra);
	request(port, head, body, strlen(body), r);
	return r->status;
}

static char *ask_body(const char *t, const char *run)
{
	static char b[256];

	snprintf(b, sizeof(b), "{\"tenant_id\":\"%s\",\"run_id\":\"%s\"}", t,
	         run);
	return b;
}

static void expect_error(const struct reply *r, int status, const char *code)
{
	if (r->status != status)
		fail_msg("status %d, want %d: %s", r->status, status, r->raw);
	assert_string_equal(vg_json_get_str(r->json, "error.code", ""), code);
	assert_true(*vg_json_get_str(r->json, "error.message", ""));
	assert_true(*vg_json_get_str(r->json, "error.request_id", ""));
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

static int count_in_log(const char *needle)
{
	char *s = log_text();
	int n = 0;

	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	free(s);
	return n;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void test_generates_and_answers(void **state)
{
	char run[37], *s;
	const char *p[] = {NULL};
	struct reply r;
	long long t0;

	(void)state;
	make_run(tenant, "uid-api", "tenant-acme", "nightly", 1,
	         "A:10.0.0.1:22:high:1;B:8.8.8.8:3389:critical:1;"
	         "C:10.0.0.2:443:low:1",
	         run);
	p[0] = run;
	t0 = mono_ms();
	post(server_port(srv), TOKEN, "X-Request-ID: req-api-1",
	     ask_body(tenant, run), &r);
	if (r.status != 200)
		fail_msg("status %d: %s", r.status, r.raw);
	assert_non_null(strstr(r.raw, "\r\nX-Request-ID: req-api-1\r\n"));
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "ready");
	assert_string_equal(vg_json_get_str(r.json, "run_id", ""), run);
	assert_string_equal(vg_json_get_str(r.json, "tenant_id", ""), tenant);
	assert_int_equal(vg_json_get_int(r.json, "summary.counts.total", -1),
	                 3);
	assert_int_equal(vg_json_get_int(r.json,
	                                 "summary.counts.by_severity.critical",
	                                 -1),
	                 1);
	assert_string_equal(vg_json_get_str(r.json, "summary.run.id", ""), run);
	/* the finding lists stay in the stored report */
	assert_null(vg_json_get(r.json, "summary.classification"));
	s = su_str("SELECT id || ' ' || state || ' ' || request_id || ' ' || "
	           "content_encoding FROM vigil.reports WHERE run_id = $1",
	           1, p);
	{
		char want[128];

		snprintf(want, sizeof(want), "%s ready req-api-1 zstd",
		         vg_json_get_str(r.json, "report_id", ""));
		assert_string_equal(s, want);
	}
	free(s);
	reply_free(&r);
	print_message("report in %lld ms\n", mono_ms() - t0);
	/* the request id on the brain's lines about it */
	s = log_text();
	{
		const char *l = strstr(s, "\"msg\":\"report generated\"");

		assert_non_null(l);
		assert_non_null(strstr(l, "\"request_id\":\"req-api-1\""));
		assert_non_null(strstr(s, "\"msg\":\"report requested\","
		                          "\"request_id\":\"req-api-1\""));
	}
	free(s);

	/* ready: answered from the row, nothing queued */
	{
		int before = count_in_log("\"msg\":\"report requested\"");

		post(server_port(srv), TOKEN, "", ask_body(tenant, run), &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(
			vg_json_get_int(r.json, "summary.counts.total", -1), 3);
		assert_int_equal(count_in_log("\"msg\":\"report requested\""),
		                 before);
		assert_int_equal(before, 1);
		reply_free(&r);
	}
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, p),
	                 1);
}

static void test_queued_when_the_deadline_passes(void **state)
{
	char run[37], id[64];
	const char *p[] = {run};
	struct reply r;

	(void)state;
	make_run(tenant, "uid-api-now", "tenant-acme", "hourly", 1,
	         "A:10.0.0.1:22:high:1", run);
	post(server_port(srv_now), TOKEN, "", ask_body(tenant, run), &r);
	if (r.status != 202)
		fail_msg("status %d: %s", r.status, r.raw);
	assert_string_equal(vg_json_get_str(r.json, "state", ""), "pending");
	assert_null(vg_json_get(r.json, "summary"));
	snprintf(id, sizeof(id), "%s",
	         vg_json_get_str(r.json, "report_id", ""));
	assert_true(vg_db_is_uuid(id));
	reply_free(&r);
	/* the task was queued: the report comes */
	wait_str("SELECT state FROM vigil.reports WHERE run_id = $1", 1, p,
	         "ready", 15000);
	post(server_port(srv_now), TOKEN, "", ask_body(tenant, run), &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(vg_json_get_str(r.json, "report_id", ""), id);
	reply_free(&r);
}

/* A report that cannot be stored is retried, dead-lettered and its row
 * marked failed: 422 with the error. Asked for again once the cause is
 * gone, it is made. */
static void test_failed_report(void **state)
{
	char run[37], sql[512];
	struct reply r;

	(void)state;
	make_run(tenant, "uid-api-fail", "tenant-acme", "failing", 1,
	         "A:10.0.0.1:22:high:1", run);
	snprintf(sql, sizeof(sql),
	         "CREATE FUNCTION vigil.test_refuse() RETURNS trigger "
	         "LANGUAGE plpgsql AS $$ BEGIN IF NEW.state = 'ready' AND "
	         "NEW.run_id = '%s' THEN RAISE EXCEPTION 'refused by the "
	         "test'; END IF; RETURN NEW; END $$",
	         run);
	su_exec(sql, 0, NULL);
	su_exec("CREATE TRIGGER test_refuse BEFORE INSERT OR UPDATE ON "
	        "vigil.reports FOR EACH ROW EXECUTE FUNCTION "
	        "vigil.test_refuse()",
	        0, NULL);
	post(server_port(srv), TOKEN, "", ask_body(tenant, run), &r);
	expect_error(&r, 422, "report_failed");
	assert_non_null(strstr(vg_json_get_str(r.json, "error.message", ""),
	                       "refused by the test"));
	reply_free(&r);
	su_exec("DROP TRIGGER test_refuse ON vigil.reports", 0, NULL);
	su_exec("DROP FUNCTION vigil.test_refuse()", 0, NULL);
	post(server_port(srv), TOKEN, "", ask_body(tenant, run), &r);
	if (r.status != 200)
		fail_msg("status %d: %s", r.status, r.raw);
	assert_int_equal(vg_json_get_int(r.json, "summary.counts.total", -1),
	                 1);
	reply_free(&r);
}

static void test_tenant_isolation(void **state)
{
	char theirs[37];
	const char *p[] = {theirs};
	struct reply r;

	(void)state;
	make_run(other_tenant, "uid-globex", "tenant-globex", "weekly", 1,
	         "A:10.0.0.1:22:high:1", theirs);
	/* another tenant's run, asked for with this tenant's id */
	post(server_port(srv), TOKEN, "", ask_body(tenant, theirs), &r);
	expect_error(&r, 404, "not_found");
	reply_free(&r);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1",
	                        1, p),
	                 0);
	/* a tenant that does not exist sees nothing either */
	post(server_port(srv), TOKEN, "",
	     ask_body("00000000-0000-4000-8000-000000000bad", theirs), &r);
	expect_error(&r, 404, "not_found");
	reply_free(&r);
	/* a run that does not exist */
	post(server_port(srv), TOKEN, "",
	     ask_body(tenant, "00000000-0000-4000-8000-000000000404"), &r);
	expect_error(&r, 404, "not_found");
	reply_free(&r);
	/* its own tenant gets it */
	post(server_port(srv), TOKEN, "", ask_body(other_tenant, theirs), &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
}

static void test_unfinished_run(void **state)
{
	char *run;
	const char *p[] = {tenant};
	struct reply r;

	(void)state;
	run = su_str("INSERT INTO vigil.scan_runs (tenant_id, state) "
	             "VALUES ($1, 'running') RETURNING id",
	             1, p);
	post(server_port(srv), TOKEN, "", ask_body(tenant, run), &r);
	expect_error(&r, 409, "conflict");
	assert_non_null(strstr(vg_json_get_str(r.json, "error.message", ""),
	                       "running"));
	reply_free(&r);
	free(run);
}

static void test_bad_requests(void **state)
{
	static const char run[] = "00000000-0000-4000-8000-000000000001";
	char big[20000];
	struct reply r;
	int port = server_port(srv);

	(void)state;
	post(port, TOKEN, "X-Request-ID: req-bad", "{\"tenant_id\":", &r);
	expect_error(&r, 400, "invalid_json");
	assert_string_equal(vg_json_get_str(r.json, "error.request_id", ""),
	                    "req-bad");
	reply_free(&r);
	post(port, TOKEN, "", "{\"tenant_id\":\"x\",\"run_id\":\"y\"}", &r);
	expect_error(&r, 422, "validation_failed");
	assert_non_null(strstr(vg_json_get_str(r.json, "error.message", ""),
	                       "tenant_id"));
	reply_free(&r);
	snprintf(big, sizeof(big), "{\"tenant_id\":\"%s\"}", tenant);
	post(port, TOKEN, "", big, &r);
	expect_error(&r, 422, "validation_failed");
	assert_non_null(
		strstr(vg_json_get_str(r.json, "error.message", ""), "run_id"));
	reply_free(&r);
	snprintf(big, sizeof(big),
	         "{\"tenant_id\":\"%s\",\"run_id\":\"%s\",\"force\":1}", tenant,
	         run);
	post(port, TOKEN, "", big, &r);
	expect_error(&r, 422, "validation_failed");
	reply_free(&r);
	post(port, TOKEN, "", "[]", &r);
	expect_error(&r, 422, "validation_failed");
	reply_free(&r);
	/* over 16 KiB */
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	post(port, TOKEN, "", big, &r);
	expect_error(&r, 413, "payload_too_large");
	reply_free(&r);
	/* not JSON */
	{
		char head[512];

		snprintf(head, sizeof(head),
		         "POST /v1/reports HTTP/1.1\r\nContent-Type: "
		         "text/plain\r\nAuthorization: Bearer %s",
		         TOKEN);
		request(port, head, "{}", 2, &r);
		expect_error(&r, 415, "unsupported_media_type");
		reply_free(&r);
	}
	request(port, "GET /v1/reports HTTP/1.1", NULL, 0, &r);
	expect_error(&r, 405, "method_not_allowed");
	assert_non_null(strstr(r.raw, "\r\nAllow: POST\r\n"));
	reply_free(&r);
	request(port, "GET /v1/nothing HTTP/1.1", NULL, 0, &r);
	expect_error(&r, 404, "not_found");
	reply_free(&r);
	request(port, "BREW /v1/reports HTTP/1.7", NULL, 0, &r);
	assert_true(r.status >= 400 && r.status < 600);
	reply_free(&r);
}

static void test_authentication(void **state)
{
	static const char *const wrong[] = {
		NULL, "brain-api-test-token-012345678",
		"brain-api-test-token-0123456789x", "x",
		"BRAIN-API-TEST-TOKEN-0123456789"};
	char body[256], head[512];
	struct reply r;

	(void)state;
	snprintf(body, sizeof(body), "%s", ask_body(tenant, tenant));
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		post(server_port(srv), wrong[i], "", body, &r);
		expect_error(&r, 401, "unauthenticated");
		assert_non_null(strstr(r.raw, "WWW-Authenticate: Bearer"));
		reply_free(&r);
	}
	/* another scheme with the right secret */
	snprintf(head, sizeof(head),
	         "POST /v1/reports HTTP/1.1\r\nContent-Type: "
	         "application/json\r\nAuthorization: Basic %s",
	         TOKEN);
	request(server_port(srv), head, body, strlen(body), &r);
	expect_error(&r, 401, "unauthenticated");
	reply_free(&r);
	/* the scheme is case-insensitive; the run is unknown: 404 */
	snprintf(head, sizeof(head),
	         "POST /v1/reports HTTP/1.1\r\nContent-Type: "
	         "application/json\r\nAuthorization: bearer %s",
	         TOKEN);
	request(server_port(srv), head, body, strlen(body), &r);
	expect_error(&r, 404, "not_found");
	reply_free(&r);
	/* tokens under 16 bytes are refused at start */
	{
		struct api_config ac = {
			.db = app, .brain = brain, .token = "short"};
		struct api *a = NULL;
		struct vg_err err = {0};

		assert_int_equal(api_new(&ac, &a, &err), VG_INVAL);
		assert_null(a);
		ac.token = NULL;
		assert_int_equal(api_new(&ac, &a, &err), VG_INVAL);
	}
}

static void test_probes_and_metrics(void **state)
{
	struct reply r;
	struct vg_buf b;

	(void)state;
	request(server_port(srv), "GET /healthz HTTP/1.1", NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	reply_free(&r);
	request(server_port(srv), "GET /readyz HTTP/1.1", NULL, 0, &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	vg_buf_init(&b, 0);
	vg_metrics_render(reg, &b);
	assert_non_null(strstr(vg_buf_str(&b),
	                       "vigil_brain_api_requests_total{code=\"401\"} "
	                       "6\n"));
	assert_non_null(strstr(vg_buf_str(&b),
	                       "vigil_brain_report_duration_seconds_count"));
	vg_buf_cleanup(&b);
	/* stopping: requests no longer wait, and the API is not ready */
	api_stop(api_now);
	request(server_port(srv_now), "GET /readyz HTTP/1.1", NULL, 0, &r);
	assert_int_equal(r.status, 503);
	reply_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generates_and_answers),
		cmocka_unit_test(test_queued_when_the_deadline_passes),
		cmocka_unit_test(test_failed_report),
		cmocka_unit_test(test_tenant_isolation),
		cmocka_unit_test(test_unfinished_run),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_authentication),
		cmocka_unit_test(test_probes_and_metrics),
	};

	signal(SIGPIPE, SIG_IGN);
	vg_log_init("brain-api-test");
	return cmocka_run_group_tests_name("brain report API", tests, setup,
	                                   teardown);
}
