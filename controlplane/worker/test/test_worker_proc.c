/* test_worker_proc.c - the vigil-worker program itself, as processes
 * configured through the operator's environment contract: killed with
 * SIGKILL in the middle of a task (redelivered after the visibility
 * timeout, effects once), SIGTERM with tasks in flight (they finish, exit
 * 0), /metrics and JSON logs, and `vigil-worker dlq list|replay|purge`. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char bin[PATH_MAX];
static char tenant[37];
static char logdir[256];

/* build/<variant>/test/controlplane/worker/test_x -> .../bin/vigil-worker */
static int find_bin(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *d;

	if (n < 0)
		return -1;
	exe[n] = '\0';
	d = dirname(exe); /* .../test/controlplane/worker */
	for (int i = 0; i < 3; i++)
		d = dirname(d);
	snprintf(bin, sizeof(bin), "%s/bin/vigil-worker", d);
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "%s is missing: build the program first\n",
		        bin);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (find_bin() != 0 || start_services() != 0)
		return -1;
	snprintf(logdir, sizeof(logdir), "%s", "/tmp/vigil-worker-proc-XXXXXX");
	if (!mkdtemp(logdir))
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

static void set_env(const char *prefix)
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
	setenv("VIGIL_QUEUE_PREFIX", prefix, 1);
}

/* Start vigil-worker with `args` (NULL-terminated); stderr to `log`. */
static pid_t spawn(const char *prefix, const char *log, const char *const *args)
{
	const char *argv[16] = {bin, "--health-addr", "127.0.0.1:0",
	                        "--visibility-timeout", "2s"};
	int n = 5;
	pid_t pid;

	for (int i = 0; args && args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		set_env(prefix);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Exit status, or -1 when it did not exit within `ms` (then killed). */
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

/* The health port from the "starting" log line. */
static int health_port(const char *log)
{
	long long t0 = mono_ms();

	while (mono_ms() - t0 < 10000) {
		char *s = slurp(log),
		     *p = s ? strstr(s, "\"health_port\":\"") : NULL;
		int port = p ? (int)strtol(p + 15, NULL, 10) : 0;

		free(s);
		if (port > 0)
			return port;
		sleep_ms(50);
	}
	fail_msg("no health port in %s", log);
	return -1;
}

static char *http_get(int port, const char *path)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char req[256], *buf = calloc(1, 1 << 20);
	size_t got = 0;
	ssize_t r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || !buf ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect to the health port %d", port);
	snprintf(req, sizeof(req),
	         "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	         path);
	if (write(fd, req, strlen(req)) < 0)
		fail_msg("write");
	while ((r = read(fd, buf + got, (1 << 20) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	return buf;
}

static void log_path(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s.log", logdir, name);
}

/* SIGKILL in the middle of a task: the task is delivered to the next
 * worker after the visibility timeout and its effects happen once. */
static void test_kill9_mid_task(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("p-kill");
	struct run_lock lock;
	char run[37], la[PATH_MAX], lb[PATH_MAX];
	const char *p[] = {run};
	const char *one[] = {"--concurrency", "1", NULL};
	json_t *b;
	pid_t a, bpid;
	long long t_claim, t_done;

	make_run(tenant, 1, run);
	b = ingest_payload(tenant, run, "k-1", 5, 0);
	enqueue(q, "ingest", b, tenant);
	json_decref(b);
	lock_run(&lock, run);
	log_path(la, "kill-a");
	a = spawn("p-kill", la, one);
	wait_lock_waiters(1, 10000);
	t_claim = mono_ms();
	kill(a, SIGKILL);
	assert_int_equal(wait_exit(a, 5000), 128 + SIGKILL);
	unlock_run(&lock); /* a's transaction dies with its connection */
	assert_int_equal(qstats(q).pending, 1);

	log_path(lb, "kill-b");
	bpid = spawn("p-kill", lb, one);
	wait_count("SELECT count(*) FROM vigil.ingest_batches "
	           "WHERE run_id = $1",
	           1, p, 1, 15000);
	t_done = mono_ms();
	wait_drained(q, 5000);
	/* not before the visibility timeout (2 s; the claim happened a
	 * little before the blocked query was seen) */
	assert_true(t_done - t_claim >= 1500);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 5);
	assert_int_equal(qstats(q).dead, 0);

	/* its metrics and its logs, which carry the request id */
	char *m = http_get(health_port(lb), "/metrics");
	assert_non_null(strstr(m, "vigil_worker_tasks_processed_total{type="
	                          "\"ingest\"} 1"));
	assert_non_null(strstr(m, "vigil_queue_depth{state=\"ready\"} 0"));
	assert_non_null(strstr(m, "vigil_worker_task_duration_seconds_count{"
	                          "type=\"ingest\"} 1"));
	free(m);
	m = http_get(health_port(lb), "/readyz");
	assert_non_null(strstr(m, "200 OK"));
	free(m);
	kill(bpid, SIGTERM);
	assert_int_equal(wait_exit(bpid, 15000), 0);
	char *log = slurp(lb);
	assert_non_null(strstr(log, "\"msg\":\"task done\""));
	assert_non_null(strstr(log, "\"request_id\":\"req-test\""));
	assert_null(strstr(log, "password"));
	free(log);
	vg_queue_free(q);
}

/* SIGTERM with tasks in flight: they finish, the process exits 0, the
 * tasks it had not started stay queued; nothing lost or duplicated. */
static void test_sigterm_drains(void **state)
{
	(void)state;
	enum { N = 10 };
	struct vg_queue *q = open_q("p-term");
	struct run_lock lock;
	char run[37], l1[PATH_MAX], l2[PATH_MAX];
	const char *p[] = {run};
	const char *two[] = {"--concurrency", "2", "--prefetch", "1", NULL};
	pid_t w1, w2;

	make_run(tenant, 1, run);
	for (int i = 0; i < N; i++) {
		char batch[16];
		json_t *b;

		snprintf(batch, sizeof(batch), "t-%d", i);
		b = ingest_payload(tenant, run, batch, 3, 0);
		enqueue(q, "ingest", b, tenant);
		json_decref(b);
	}
	lock_run(&lock, run);
	log_path(l1, "term-1");
	w1 = spawn("p-term", l1, two);
	wait_lock_waiters(2, 10000);
	kill(w1, SIGTERM);
	sleep_ms(500);
	assert_int_equal(waitpid(w1, NULL, WNOHANG), 0); /* still draining */
	unlock_run(&lock);
	assert_int_equal(wait_exit(w1, 15000), 0);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.ingest_batches "
	                        "WHERE run_id = $1",
	                        1, p),
	                 2);
	struct vg_queue_stats s = qstats(q);
	assert_int_equal(s.pending, 0);
	assert_int_equal(s.ready, N - 2);

	log_path(l2, "term-2");
	w2 = spawn("p-term", l2, two);
	wait_drained(q, 15000);
	kill(w2, SIGTERM);
	assert_int_equal(wait_exit(w2, 15000), 0);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.ingest_batches "
	                        "WHERE run_id = $1",
	                        1, p),
	                 N);
	assert_int_equal(su_num("SELECT count(*) FROM vigil.findings "
	                        "WHERE run_id = $1",
	                        1, p),
	                 3 * N);
	char *log = slurp(l1);
	assert_non_null(strstr(log, "\"msg\":\"draining\""));
	assert_non_null(strstr(log, "\"msg\":\"stopped\""));
	free(log);
	vg_queue_free(q);
}

/* Run `vigil-worker <args>` to completion; its stdout into `out`. */
static int run_cli(const char *prefix, const char *args, char *out, size_t n)
{
	char cmd[PATH_MAX + 512];
	FILE *f;
	size_t got;
	int status;

	set_env(prefix);
	snprintf(cmd, sizeof(cmd), "%s %s 2>/dev/null", bin, args);
	f = popen(cmd, "r");
	if (!f)
		fail_msg("popen");
	got = fread(out, 1, n - 1, f);
	out[got] = '\0';
	status = pclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_dlq_cli(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("p-dlq");
	char run[37], l1[PATH_MAX], out[8192], args[256], id[64];
	const char *one[] = {"--concurrency", "1", NULL};
	json_t *b;
	pid_t w;
	long long t0;

	make_run(tenant, 1, run);
	b = ingest_payload(tenant, run, "d-1", 1, 0);
	json_object_del(b, "findings");
	enqueue(q, "ingest", b, tenant);
	json_decref(b);
	log_path(l1, "dlq");
	w = spawn("p-dlq", l1, one);
	t0 = mono_ms();
	while (qstats(q).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	kill(w, SIGTERM);
	assert_int_equal(wait_exit(w, 15000), 0);

	/* list: one JSON line per dead letter */
	assert_int_equal(run_cli("p-dlq", "dlq list", out, sizeof(out)), 0);
	{
		json_t *j = NULL;
		struct vg_err err = {0};

		assert_int_equal(vg_json_loadb(out, strlen(out), 0, &j, &err),
		                 VG_OK);
		assert_string_equal(vg_json_get_str(j, "type", ""), "ingest");
		assert_string_equal(vg_json_get_str(j, "request_id", ""),
		                    "req-test");
		assert_int_equal(vg_json_get_int(j, "attempts", -1), 1);
		assert_non_null(strstr(vg_json_get_str(j, "error", ""),
		                       "\"findings\" must be an array"));
		assert_true(vg_json_get_int(j, "dead_at", 0) > 0);
		assert_true(vg_json_get_int(j, "first_attempt_at", 0) > 0);
		assert_string_equal(vg_json_get_str(j, "payload.batch_id", ""),
		                    "d-1");
		snprintf(id, sizeof(id), "%s", vg_json_get_str(j, "id", ""));
		json_decref(j);
	}
	assert_int_equal(
		run_cli("p-dlq", "dlq list --type report", out, sizeof(out)),
		0);
	assert_string_equal(out, "");

	/* replay puts it back on the queue once */
	snprintf(args, sizeof(args), "dlq replay %s", id);
	assert_int_equal(run_cli("p-dlq", args, out, sizeof(out)), 0);
	assert_string_equal(out, "replayed 1 dead letter(s)\n");
	assert_int_equal(qstats(q).ready, 1);
	assert_int_equal(qstats(q).dead, 0);
	assert_int_equal(run_cli("p-dlq", args, out, sizeof(out)), 1);

	/* processed again, dead again; then purged by id, then --all */
	w = spawn("p-dlq", l1, one);
	t0 = mono_ms();
	while (qstats(q).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	kill(w, SIGTERM);
	assert_int_equal(wait_exit(w, 15000), 0);
	assert_int_equal(run_cli("p-dlq", "dlq replay --all --type ingest", out,
	                         sizeof(out)),
	                 0);
	assert_string_equal(out, "replayed 1 dead letter(s)\n");
	w = spawn("p-dlq", l1, one);
	t0 = mono_ms();
	while (qstats(q).dead < 1 && mono_ms() - t0 < 10000)
		sleep_ms(20);
	kill(w, SIGTERM);
	assert_int_equal(wait_exit(w, 15000), 0);
	assert_int_equal(run_cli("p-dlq", "dlq purge --all", out, sizeof(out)),
	                 0);
	assert_string_equal(out, "purged 1 dead letter(s)\n");
	assert_int_equal(qstats(q).dead, 0);
	assert_int_equal(run_cli("p-dlq", "dlq purge 1-1", out, sizeof(out)),
	                 1);
	assert_int_equal(run_cli("p-dlq", "dlq frobnicate", out, sizeof(out)),
	                 2);
	assert_int_equal(run_cli("p-dlq", "dlq purge", out, sizeof(out)), 2);
	assert_int_equal(run_cli("p-dlq", "--version", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "vigil-worker "));
	vg_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_mid_task),
		cmocka_unit_test(test_sigterm_drains),
		cmocka_unit_test(test_dlq_cli),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("vigil-worker process", tests, setup,
	                                   teardown);
}
