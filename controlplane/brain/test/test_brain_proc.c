/* test_brain_proc.c - the programs themselves, configured through the
 * operator's environment contract, against a real PostgreSQL and Redis:
 * vigil-worker ingests and finalizes a run and hands its report over,
 * vigil-brain generates it (request id in its JSON logs), serves
 * /healthz, /readyz and /metrics, and exits 0 on SIGTERM; the brain
 * refuses the worker's queue prefix; `vigil-brain generate`; the report
 * API turned on by VIGIL_BRAIN_TOKEN. */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char brain_bin[PATH_MAX], worker_bin[PATH_MAX];
static char tenant[37];
static char logdir[] = "/tmp/vigil-brain-proc-XXXXXX";

/* build/<variant>/test/controlplane/brain/test_x -> .../bin/<name> */
static int find_bins(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *d;

	if (n < 0)
		return -1;
	exe[n] = '\0';
	d = dirname(exe);
	for (int i = 0; i < 3; i++)
		d = dirname(d);
	snprintf(brain_bin, sizeof(brain_bin), "%s/bin/vigil-brain", d);
	snprintf(worker_bin, sizeof(worker_bin), "%s/bin/vigil-worker", d);
	if (access(brain_bin, X_OK) != 0 || access(worker_bin, X_OK) != 0) {
		fprintf(stderr, "%s or %s is missing: build the programs\n",
		        brain_bin, worker_bin);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (find_bins() != 0 || start_services() != 0 || !mkdtemp(logdir))
		return -1;
	make_tenant("proc", tenant);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	stop_services();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", logdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", logdir);
	return 0;
}

static void set_env(const char *worker_prefix, const char *brain_prefix)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", redis.port);
	setenv("VIGIL_REDIS_HOST", "127.0.0.1", 1);
	setenv("VIGIL_REDIS_PORT", port, 1);
	snprintf(port, sizeof(port), "%d", pg.port);
	setenv("VIGIL_DB_HOST", "127.0.0.1", 1);
	setenv("VIGIL_DB_PORT", port, 1);
	setenv("VIGIL_DB_NAME", "vigil", 1);
	setenv("VIGIL_DB_USER", "vigil_app", 1);
	setenv("VIGIL_DB_SSLMODE", "disable", 1);
	setenv("VIGIL_LOG_LEVEL", "debug", 1);
	setenv("VIGIL_QUEUE_PREFIX", worker_prefix, 1);
	setenv("VIGIL_BRAIN_QUEUE_PREFIX", brain_prefix, 1);
	setenv("VIGIL_BRAIN_SWEEP_INTERVAL", "100ms", 1);
}

/* Start `bin` with `args` (NULL-terminated); stderr to `log`. */
static pid_t spawn(const char *bin, const char *log, const char *const *args,
                   const char *worker_prefix, const char *brain_prefix)
{
	const char *argv[16] = {bin};
	int n = 1;
	pid_t pid;

	for (int i = 0; args && args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		set_env(worker_prefix, brain_prefix);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid, int ms)
{
	long long t0 = mono_ms();
	int status;

	while (mono_ms() - t0 < ms) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
			                         : 128 + WTERMSIG(status);
		sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s = calloc(1, 1 << 20);

	if (f && s)
		s[fread(s, 1, (1 << 20) - 1, f)] = '\0';
	if (f)
		fclose(f);
	return s;
}

/* The port named `key` on the brain's "starting" line. */
static int logged_port(const char *log, const char *key)
{
	long long t0 = mono_ms();
	char needle[64];

	snprintf(needle, sizeof(needle), "\"%s\":\"", key);
	while (mono_ms() - t0 < 10000) {
		char *s = slurp(log), *p = s ? strstr(s, needle) : NULL;
		int port = p ? (int)strtol(p + strlen(needle), NULL, 10) : 0;

		free(s);
		if (port > 0)
			return port;
		sleep_ms(50);
	}
	fail_msg("no %s in %s", key, log);
	return -1;
}

static int health_port(const char *log)
{
	return logged_port(log, "health_port");
}

/* One request on a new connection (Connection: close); the whole
 * response, new. `headers`: extra lines, each ending in CRLF. */
static char *http_request(int port, const char *method, const char *path,
                          const char *headers, const char *body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char req[2048], *buf = calloc(1, 1 << 20);
	size_t got = 0;
	ssize_t r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || !buf ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect to port %d", port);
	snprintf(req, sizeof(req),
	         "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
	         "Content-Length: %zu\r\n\r\n%s",
	         method, path, headers ? headers : "", body ? strlen(body) : 0,
	         body ? body : "");
	if (write(fd, req, strlen(req)) < 0)
		fail_msg("write");
	while ((r = read(fd, buf + got, (1 << 20) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	return buf;
}

static char *http_get(int port, const char *path)
{
	return http_request(port, "GET", path, NULL, NULL);
}

/* A run of `shards` shards of a policy, pending as the operator creates
 * it; its id into `id`. */
static void pending_run(const char *policy, char *id)
{
	const char *p[] = {tenant, policy};
	char *v = su_str("INSERT INTO vigil.scan_runs (tenant_id, policy_uid, "
	                 "policy_namespace, policy_name) VALUES ($1, $2, "
	                 "'tenant-proc', $2) RETURNING id",
	                 2, p);

	snprintf(id, 37, "%s", v);
	free(v);
}

static json_t *ingest_payload(const char *run, const char *batch, int n)
{
	static const char *const sev[] = {"info", "low", "medium", "high",
	                                  "critical"};
	json_t *f = json_array();

	for (int i = 0; i < n; i++) {
		char fp[64];

		snprintf(fp, sizeof(fp), "fp-%d", i);
		json_array_append_new(
			f, json_pack("{s:s,s:i,s:s,s:s,s:s,s:s}", "host",
		                     i % 2 ? "203.0.113.7" : "10.0.0.1", "port",
		                     i % 3 ? 443 : 22, "severity", sev[i % 5],
		                     "fingerprint", fp, "scanner", "tls",
		                     "title", "<script>x</script>"));
	}
	return json_pack("{s:s,s:s,s:s,s:i,s:b,s:o}", "tenant_id", tenant,
	                 "run_id", run, "batch_id", batch, "shard", 0, "final",
	                 1, "findings", f);
}

/* The worker's chain ends in the brain: ingest -> finalize -> report
 * (worker) -> sweep -> report task -> ready report (brain). */
static void test_worker_to_brain(void **state)
{
	(void)state;
	struct vg_queue *wq = open_q("p-chain", "workers");
	char run[37], lw[PATH_MAX], lb[PATH_MAX], *s;
	const char *p[] = {run};
	const char *health[] = {"--health-addr", "127.0.0.1:0", NULL};
	pid_t w, b;
	int port;

	snprintf(lw, sizeof(lw), "%s/worker.log", logdir);
	snprintf(lb, sizeof(lb), "%s/brain.log", logdir);
	pending_run("chain", run);
	w = spawn(worker_bin, lw, health, "p-chain", "p-chain-brain");
	b = spawn(brain_bin, lb, health, "p-chain", "p-chain-brain");
	port = health_port(lb);
	{
		json_t *pl = ingest_payload(run, "b-1", 10);
		struct vg_queue_msg m = {.type = "ingest",
		                         .payload = pl,
		                         .request_id = "req-proc-7",
		                         .tenant = tenant};
		struct vg_err err = {0};

		if (vg_queue_enqueue(wq, &m, &err) != VG_OK)
			fail_msg("enqueue: %s", err.msg);
		json_decref(pl);
	}
	wait_str("SELECT state FROM vigil.reports WHERE run_id = $1", 1, p,
	         "ready", 20000);
	s = su_str("SELECT (summary #>> '{counts,total}') || ' ' || "
	           "(summary #>> '{counts,by_class,new}') || ' ' || "
	           "request_id || ' ' || content_type || ' ' || "
	           "content_encoding FROM vigil.reports WHERE run_id = $1",
	           1, p);
	assert_string_equal(s, "10 10 req-proc-7 text/html; charset=utf-8 "
	                       "zstd");
	free(s);
	s = stored_html(run, NULL);
	assert_non_null(strstr(s, "&lt;script&gt;x"));
	assert_null(strstr(s, "<script"));
	free(s);

	/* probes and metrics */
	s = http_get(port, "/healthz");
	assert_non_null(strstr(s, "200 OK"));
	free(s);
	s = http_get(port, "/readyz");
	assert_non_null(strstr(s, "200 OK"));
	free(s);
	s = http_get(port, "/metrics");
	assert_non_null(strstr(s, "vigil_brain_reports_generated_total 1\n"));
	assert_non_null(strstr(s, "vigil_brain_report_duration_seconds_count 1"
	                          "\n"));
	assert_non_null(strstr(s, "vigil_brain_report_requests_queued_total 1"
	                          "\n"));
	free(s);

	kill(b, SIGTERM);
	kill(w, SIGTERM);
	assert_int_equal(wait_exit(b, 15000), 0);
	assert_int_equal(wait_exit(w, 15000), 0);
	/* JSON lines; the request id of the ingest that finished the run
	 * on the brain's line about the report */
	s = slurp(lb);
	{
		const char *l = strstr(s, "\"msg\":\"report generated\"");
		const char *eol = l ? strchr(l, '\n') : NULL;
		char line[2048];

		assert_non_null(eol);
		while (l > s && l[-1] != '\n')
			l--;
		snprintf(line, sizeof(line), "%.*s", (int)(eol - l), l);
		assert_non_null(strstr(line, "\"request_id\":\"req-proc-7\""));
		assert_non_null(strstr(line, run));
		assert_non_null(strstr(line, "\"component\":\"brain\""));
	}
	assert_non_null(strstr(s, "\"msg\":\"draining\""));
	assert_non_null(strstr(s, "\"msg\":\"stopped\""));
	free(s);
	vg_queue_free(wq);
}

/* The brain never takes the worker's queue. */
static void test_refuses_worker_prefix(void **state)
{
	(void)state;
	const char *health[] = {"--health-addr", "127.0.0.1:0", NULL};
	char log[PATH_MAX], *s;
	pid_t b;

	snprintf(log, sizeof(log), "%s/prefix.log", logdir);
	b = spawn(brain_bin, log, health, "p-same", "p-same");
	assert_int_equal(wait_exit(b, 15000), 1);
	s = slurp(log);
	assert_non_null(strstr(s, "queue prefix \\\"p-same\\\" is the "
	                          "worker's"));
	free(s);
	b = spawn(brain_bin, log, health, "p-other", "vigil");
	assert_int_equal(wait_exit(b, 15000), 1);
	free(slurp(log));
}

static void test_generate_command(void **state)
{
	(void)state;
	char run[37], log[PATH_MAX], *s;
	const char *args[] = {"generate", tenant, run, NULL};
	const char *bad[] = {"generate", tenant, NULL};
	pid_t b;

	snprintf(log, sizeof(log), "%s/generate.log", logdir);
	make_run(tenant, "uid-gen", "ns", "gen", 1,
	         "A:10.0.0.1:22:high:1;B:8.8.8.8:3389:critical:1", run);
	b = spawn(brain_bin, log, args, "p-gen", "p-gen-brain");
	assert_int_equal(wait_exit(b, 15000), 0);
	s = slurp(log);
	assert_non_null(strstr(s, "\"findings\":2,\"new\":2"));
	free(s);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.reports "
	                        "WHERE run_id = $1 AND state = 'ready'",
	                        1, (const char *[]){run}),
	                 1);
	b = spawn(brain_bin, log, bad, "p-gen", "p-gen-brain");
	assert_int_equal(wait_exit(b, 15000), 2);
}

/* The brain's dead letters with the queue's tool, vigil-worker's dlq
 * subcommands pointed at the brain's prefix: a report task for a run not
 * recorded yet is dead-lettered; once the run is there, replayed, the
 * report is made. */
static void test_dead_letters_with_worker_dlq(void **state)
{
	(void)state;
	static const char run[] = "00000000-0000-4000-8000-00000000d1a0";
	struct vg_queue *bq = open_q("p-dlq-brain", "brain");
	const char *health[] = {"--health-addr", "127.0.0.1:0", NULL};
	const char *list[] = {"dlq", "list", "--type", "report", NULL};
	const char *replay[] = {"dlq", "replay", "--all", NULL};
	char lb[PATH_MAX], lc[PATH_MAX], *s;
	const char *p[] = {run};
	long long t0;
	pid_t b, cli;

	snprintf(lb, sizeof(lb), "%s/dlq-brain.log", logdir);
	snprintf(lc, sizeof(lc), "%s/dlq-cli.log", logdir);
	b = spawn(brain_bin, lb, health, "p-dlq", "p-dlq-brain");
	{
		json_t *pl = json_pack("{s:s,s:s}", "tenant_id", tenant,
		                       "run_id", run);
		struct vg_queue_msg m = {.type = "report",
		                         .payload = pl,
		                         .request_id = "req-dlq",
		                         .tenant = tenant};
		struct vg_err err = {0};

		if (vg_queue_enqueue(bq, &m, &err) != VG_OK)
			fail_msg("enqueue: %s", err.msg);
		json_decref(pl);
	}
	t0 = mono_ms();
	while (qstats(bq).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	assert_int_equal(qstats(bq).dead, 1);

	cli = spawn(worker_bin, lc, list, "p-dlq-brain", "unused");
	assert_int_equal(wait_exit(cli, 15000), 0);
	s = slurp(lc);
	assert_non_null(strstr(s, "\"type\":\"report\""));
	assert_non_null(strstr(s, "\"request_id\":\"req-dlq\""));
	assert_non_null(strstr(s, "VG_NOTFOUND: run "
	                          "00000000-0000-4000-8000-00000000d1a0 not "
	                          "found"));
	free(s);

	/* the run is recorded late; replayed, the report is made */
	su_exec("INSERT INTO vigil.scan_runs (id, tenant_id, state, "
	        "finished_at) VALUES ($1, $2, 'succeeded', now())",
	        2, (const char *[]){run, tenant});
	cli = spawn(worker_bin, lc, replay, "p-dlq-brain", "unused");
	assert_int_equal(wait_exit(cli, 15000), 0);
	wait_str("SELECT state || ' ' || (summary #>> '{counts,total}') "
	         "FROM vigil.reports WHERE run_id = $1",
	         1, p, "ready 0", 10000);
	assert_int_equal(qstats(bq).dead, 0);
	kill(b, SIGTERM);
	assert_int_equal(wait_exit(b, 15000), 0);
	vg_queue_free(bq);
}

/* The report API of the program: VIGIL_BRAIN_TOKEN turns it on, on
 * --listen; a request's X-Request-ID is on the brain's log lines about
 * it; probes answer on the API port too. Without the token it is off. */
static void test_report_api(void **state)
{
	(void)state;
	const char *args[] = {"--health-addr", "127.0.0.1:0", "--listen",
	                      "127.0.0.1:0", NULL};
	char run[37], log[PATH_MAX], body[256], *s;
	pid_t b;
	int port;

	snprintf(log, sizeof(log), "%s/api.log", logdir);
	make_run(tenant, "uid-api", "ns", "api", 1,
	         "A:10.0.0.1:22:high:1;B:8.8.8.8:3389:critical:1", run);
	setenv("VIGIL_BRAIN_TOKEN", "proc-test-token-0123456789", 1);
	b = spawn(brain_bin, log, args, "p-api", "p-api-brain");
	unsetenv("VIGIL_BRAIN_TOKEN");
	port = logged_port(log, "api_port");
	snprintf(body, sizeof(body), "{\"tenant_id\":\"%s\",\"run_id\":\"%s\"}",
	         tenant, run);
	s = http_request(port, "POST", "/v1/reports",
	                 "Content-Type: application/json\r\n"
	                 "X-Request-ID: req-proc-api\r\n"
	                 "Authorization: Bearer proc-test-token-0123456789\r\n",
	                 body);
	assert_non_null(strstr(s, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(s, "\"state\":\"ready\""));
	assert_non_null(strstr(s, "\"total\": 2"));
	free(s);
	s = http_request(port, "POST", "/v1/reports",
	                 "Content-Type: application/json\r\n"
	                 "Authorization: Bearer wrong-token-0123456789\r\n",
	                 body);
	assert_non_null(strstr(s, "HTTP/1.1 401 Unauthorized\r\n"));
	free(s);
	s = http_get(port, "/readyz");
	assert_non_null(strstr(s, "200 OK"));
	free(s);
	kill(b, SIGTERM);
	assert_int_equal(wait_exit(b, 15000), 0);
	s = slurp(log);
	{
		const char *l = strstr(s, "\"msg\":\"report generated\"");
		const char *eol = l ? strchr(l, '\n') : NULL;
		char line[2048];

		assert_non_null(eol);
		snprintf(line, sizeof(line), "%.*s", (int)(eol - l), l);
		assert_non_null(
			strstr(line, "\"request_id\":\"req-proc-api\""));
	}
	assert_non_null(strstr(s, "\"msg\":\"request\",\"request_id\":"
	                          "\"req-proc-api\""));
	/* the token is never logged */
	assert_null(strstr(s, "proc-test-token"));
	free(s);

	/* no token: no API */
	snprintf(log, sizeof(log), "%s/api-off.log", logdir);
	b = spawn(brain_bin, log, args, "p-api", "p-api-brain");
	assert_int_equal(logged_port(log, "health_port") > 0, 1);
	s = slurp(log);
	assert_non_null(strstr(s, "\"api_port\":\"off\""));
	assert_non_null(strstr(s, "report api off"));
	free(s);
	kill(b, SIGTERM);
	assert_int_equal(wait_exit(b, 15000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_to_brain),
		cmocka_unit_test(test_dead_letters_with_worker_dlq),
		cmocka_unit_test(test_refuses_worker_prefix),
		cmocka_unit_test(test_generate_command),
		cmocka_unit_test(test_report_api),
	};

	signal(SIGPIPE, SIG_IGN);
	vg_log_init("brain-proc-test");
	return cmocka_run_group_tests_name("vigil-brain process", tests, setup,
	                                   teardown);
}
