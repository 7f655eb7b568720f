/* test_process.c - the vigil-gateway program itself: --version, --help,
 * --openapi (the committed controlplane/gateway/openapi.json), a bad
 * configuration, JSON log lines carrying request ids, and SIGTERM:
 * stop accepting, finish the request in flight, exit 0. */
#include "harness.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

static char bin[PATH_MAX];

/* build/test/controlplane/gateway/test_process -> build/bin/vigil-gateway */
static void find_binary(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0);
	self[n] = '\0';
	snprintf(bin, sizeof(bin), "%s/../../../bin/vigil-gateway",
	         dirname(self));
	if (access(bin, X_OK))
		fail_msg("no program at %s (build it first)", bin);
}

struct child {
	pid_t pid;
	int err_fd; /* its stderr */
	struct vg_buf log;
};

static void spawn(struct child *c, const char *arg)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(p[1], 2);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(bin, bin, arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	c->err_fd = p[0];
	vg_buf_init(&c->log, 0);
}

/* Read the child's output until `needle` shows up or it closes. */
static int read_until(struct child *c, const char *needle, int timeout_ms)
{
	struct pollfd p = {.fd = c->err_fd, .events = POLLIN};

	for (int t = 0; t < timeout_ms; t += 50) {
		char buf[4096];
		ssize_t n;

		if (needle && strstr(vg_buf_str(&c->log), needle))
			return 1;
		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(c->err_fd, buf, sizeof(buf));
		if (n <= 0)
			return needle ? strstr(vg_buf_str(&c->log), needle) !=
			                        NULL
			              : 1;
		vg_buf_append(&c->log, buf, (size_t)n);
	}
	return needle && strstr(vg_buf_str(&c->log), needle);
}

static int wait_exit(struct child *c, int timeout_ms)
{
	int status = 0;

	for (int t = 0; t < timeout_ms; t += 50) {
		if (waitpid(c->pid, &status, WNOHANG) == c->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
			                         : 128 + WTERMSIG(status);
		usleep(50 * 1000);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	return -1;
}

static void child_done(struct child *c)
{
	close(c->err_fd);
	vg_buf_cleanup(&c->log);
}

static void test_version_help_badconfig(void **state)
{
	struct child c;

	(void)state;
	find_binary();
	spawn(&c, "--version");
	read_until(&c, NULL, 5000);
	assert_int_equal(wait_exit(&c, 5000), 0);
	assert_int_equal(strncmp(vg_buf_str(&c.log), "vigil-gateway ", 14), 0);
	child_done(&c);

	spawn(&c, "--help");
	read_until(&c, NULL, 5000);
	assert_int_equal(wait_exit(&c, 5000), 0);
	assert_non_null(strstr(vg_buf_str(&c.log), "VIGIL_GATEWAY_MAX_BODY"));
	child_done(&c);

	/* --openapi prints exactly the committed document */
	spawn(&c, "--openapi");
	read_until(&c, NULL, 5000);
	assert_int_equal(wait_exit(&c, 5000), 0);
	{
		FILE *f = fopen("controlplane/gateway/openapi.json", "rb");
		struct vg_buf want;
		char buf[4096];
		size_t n;

		if (!f)
			fail_msg("controlplane/gateway/openapi.json: run the "
			         "tests from the repository root");
		vg_buf_init(&want, 0);
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			vg_buf_append(&want, buf, n);
		fclose(f);
		if (strcmp(vg_buf_str(&want), vg_buf_str(&c.log)) != 0)
			fail_msg("openapi.json is not what the gateway serves: "
			         "%s --openapi > controlplane/gateway/"
			         "openapi.json",
			         bin);
		vg_buf_cleanup(&want);
	}
	child_done(&c);

	setenv("VIGIL_GATEWAY_MAX_BODY", "lots", 1);
	spawn(&c, "--gateway-listen=127.0.0.1:0");
	read_until(&c, NULL, 5000);
	assert_int_equal(wait_exit(&c, 5000), 2);
	assert_non_null(strstr(vg_buf_str(&c.log), "\"level\":\"error\""));
	assert_non_null(strstr(vg_buf_str(&c.log), "VIGIL_GATEWAY_MAX_BODY"));
	child_done(&c);
	setenv("VIGIL_GATEWAY_MAX_BODY", "65536", 1);
}

static void test_sigterm_finishes_in_flight(void **state)
{
	struct child c;
	const char *p;
	int port, fd, closed = 0;
	struct vg_buf got;

	(void)state;
	setenv("VIGIL_ACCESS_LOG", "true", 1);
	setenv("VIGIL_LOG_LEVEL", "info", 1);
	spawn(&c, "--gateway-listen=127.0.0.1:0");
	if (!read_until(&c, "\"msg\":\"gateway serving\"", 20000))
		fail_msg("no start-up line: %s", vg_buf_str(&c.log));
	p = strstr(vg_buf_str(&c.log), "\"port\":\"");
	assert_non_null(p);
	port = (int)strtol(p + 8, NULL, 10);
	assert_true(port > 0);
	/* ready once its migrations found nothing to do */
	if (!read_until(&c, "\"msg\":\"database schema up to date\"", 20000))
		fail_msg("not migrated: %s", vg_buf_str(&c.log));

	{
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)port)};

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(
			connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	/* half a request is in flight when SIGTERM arrives */
	assert_true(send(fd,
	                 "GET /healthz HTTP/1.1\r\nX-Request-ID: drain-1\r\n",
	                 46, MSG_NOSIGNAL) > 0);
	usleep(100 * 1000);
	kill(c.pid, SIGTERM);
	if (!read_until(&c, "\"msg\":\"signal received\"", 20000))
		fail_msg("SIGTERM not seen: %s", vg_buf_str(&c.log));
	assert_true(send(fd, "Host: x\r\n\r\n", 11, MSG_NOSIGNAL) > 0);
	vg_buf_init(&got, 0);
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		char buf[2048];
		ssize_t n;

		if (poll(&pf, 1, 5000) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			closed = 1;
			break;
		}
		vg_buf_append(&got, buf, (size_t)n);
	}
	close(fd);
	/* the request in flight is answered in full, then the server closes
	 * the connection (announcing it with Connection: close when the
	 * drain began before the answer was written: timing decides) */
	assert_non_null(strstr(vg_buf_str(&got), "HTTP/1.1 200 OK"));
	assert_non_null(strstr(vg_buf_str(&got), "\r\n\r\n"));
	assert_true(closed);
	vg_buf_cleanup(&got);
	read_until(&c, NULL, 10000);
	assert_int_equal(wait_exit(&c, 10000), 0);
	/* every line is a JSON record; the request's carries its id */
	{
		const char *l = vg_buf_str(&c.log);
		int lines = 0;

		while (*l) {
			const char *e = strchr(l, '\n');
			size_t n = e ? (size_t)(e - l) : strlen(l);
			json_t *j = json_loadb(l, n, 0, NULL);

			if (!j)
				fail_msg("not JSON: %.*s", (int)n, l);
			json_decref(j);
			lines++;
			l += e ? n + 1 : n;
		}
		assert_true(lines > 3);
	}
	assert_non_null(
		strstr(vg_buf_str(&c.log),
	               "\"msg\":\"request\",\"request_id\":\"drain-1\""));
	assert_non_null(
		strstr(vg_buf_str(&c.log), "\"msg\":\"gateway stopped\""));
	child_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_help_badconfig),
		cmocka_unit_test(test_sigterm_finishes_in_flight),
	};

	return cmocka_run_group_tests(tests, h_setup_all, h_teardown_all);
}
