/* test_server.c - the HTTP/1.1 server on its own, with toy handlers:
 * keep-alive, pipelining in order across inline and pooled handlers,
 * limits (431, 413, 408, idle, connections), 100-continue, HEAD,
 * HTTP/1.0, JSON errors with request ids, and a graceful shutdown that
 * finishes the request in flight. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "vigil/log.h"

static int done_calls;

/* /slow sleeps on a handler thread; /inline... run on the loop; every
 * handler answers the query string, so tests can tell responses apart. */
static void handle(struct srv_req *req, struct srv_resp *resp, void *ud)
{
	(void)ud;
	if (strcmp(req->path, "/slow") == 0)
		usleep(200 * 1000);
	if (strcmp(req->path, "/echo") == 0) {
		vg_buf_append(&resp->body, req->body, req->body_len);
		return;
	}
	resp->content_type = "text/plain";
	vg_buf_appendf(&resp->body, "[%s]", req->query);
}

static int is_inline(const struct srv_req *req, void *ud)
{
	(void)ud;
	return strncmp(req->path, "/inline", 7) == 0;
}

static void done(const struct srv_req *req, const struct srv_resp *resp,
                 double seconds, void *ud)
{
	(void)req;
	(void)resp;
	(void)seconds;
	(void)ud;
	__atomic_add_fetch(&done_calls, 1, __ATOMIC_SEQ_CST);
}

static struct srv *start(int max_conns)
{
	struct srv_config c = {
		.addr = "127.0.0.1:0",
		.loops = 2,
		.workers = 4,
		.max_conns = max_conns,
		.max_header = 1024,
		.max_body = 100,
		.request_timeout_ms = 1000,
		.idle_timeout_ms = 1500,
		.drain_timeout_ms = 3000,
	};
	struct srv_ops ops = {
		.handle = handle, .is_inline = is_inline, .done = done};
	struct srv *s = NULL;
	struct vg_err err = {0};

	if (srv_new(&c, &ops, NULL, &s, &err) || srv_start(s, &err))
		fail_msg("server: %s", err.msg);
	return s;
}

static int dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

static void put(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
		fail_msg("send: %s", strerror(errno));
}

/* Read until the peer closes or nothing comes for `quiet_ms`; new
 * string. *closed tells which. */
static char *slurp(int fd, int quiet_ms, int *closed)
{
	struct vg_buf b;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	vg_buf_init(&b, 0);
	*closed = 0;
	for (;;) {
		char buf[4096];
		ssize_t n;

		if (poll(&p, 1, quiet_ms) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			*closed = 1;
			break;
		}
		vg_buf_append(&b, buf, (size_t)n);
	}
	return vg_buf_take(&b);
}

/* Read one complete response (head, and Content-Length bytes of body
 * unless `head_only`); new string. */
static char *response(int fd, int head_only)
{
	struct vg_buf b;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	vg_buf_init(&b, 0);
	for (;;) {
		const char *end = strstr(vg_buf_str(&b), "\r\n\r\n");
		char buf[4096];
		ssize_t n;

		if (end) {
			const char *cl =
				strstr(vg_buf_str(&b), "Content-Length: ");
			size_t body =
				cl && !head_only
					? (size_t)strtol(cl + 16, NULL, 10)
					: 0;

			if (b.len >= (size_t)(end + 4 - b.data) + body)
				break;
		}
		if (poll(&p, 1, 10000) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		vg_buf_append(&b, buf, (size_t)n);
	}
	return vg_buf_take(&b);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_keep_alive(void **state)
{
	struct srv *s = start(0);
	int fd = dial(srv_port(s));
	char *out;

	(void)state;
	for (int i = 0; i < 3; i++) {
		put(fd, i % 2 ? "GET /slow?k HTTP/1.1\r\nHost: x\r\n\r\n"
		              : "GET /inline?k HTTP/1.1\r\nHost: x\r\n\r\n");
		out = response(fd, 0);
		assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
		assert_non_null(strstr(out, "\r\n\r\n[k]"));
		assert_null(strstr(out, "Connection: close"));
		free(out);
	}
	close(fd);
	srv_free(s);
}

static void test_pipelining_in_order(void **state)
{
	struct srv *s = start(0);
	int fd = dial(srv_port(s)), closed;
	char *out, *a, *b, *c, *d;

	(void)state;
	put(fd,
	    "GET /slow?1 HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /inline?2 HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /slow?3 HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /inline?4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	out = slurp(fd, 5000, &closed);
	assert_true(closed);
	assert_int_equal(count(out, "HTTP/1.1 200 OK"), 4);
	a = strstr(out, "[1]");
	b = strstr(out, "[2]");
	c = strstr(out, "[3]");
	d = strstr(out, "[4]");
	assert_true(a && b && c && d);
	assert_true(a < b && b < c && c < d);
	free(out);
	close(fd);
	srv_free(s);
}

/* Thousands of pipelined requests in one burst: answered in order, in
 * linear time, with the peer reading slowly at first. */
static void test_pipelining_burst(void **state)
{
	struct srv *s = start(0);
	int fd = dial(srv_port(s)), closed;
	struct vg_buf req;
	const int n = 3000;
	char *out, *last;
	size_t off = 0;

	(void)state;
	vg_buf_init(&req, 0);
	for (int i = 0; i < n; i++)
		vg_buf_appendf(&req,
		               "GET /inline?%d HTTP/1.1\r\nHost: x\r\n%s\r\n",
		               i, i == n - 1 ? "Connection: close\r\n" : "");
	/* the server answers while we are still sending */
	while (off < req.len) {
		ssize_t w =
			send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);

		assert_true(w > 0);
		off += (size_t)w;
	}
	usleep(200 * 1000);
	out = slurp(fd, 5000, &closed);
	assert_true(closed);
	assert_int_equal(count(out, "HTTP/1.1 200 OK"), n);
	last = strstr(out, "[2999]");
	assert_non_null(last);
	assert_true(strstr(out, "[0]") < strstr(out, "[1]"));
	assert_true(strstr(out, "[1498]") < strstr(out, "[1499]"));
	free(out);
	vg_buf_cleanup(&req);
	close(fd);
	srv_free(s);
}

static void test_limits(void **state)
{
	struct srv *s = start(0);
	char big[2048];
	int fd, closed, n;
	char *out;

	(void)state;
	/* head over 1 KiB */
	fd = dial(srv_port(s));
	n = snprintf(big, sizeof(big),
	             "GET /inline HTTP/1.1\r\nHost: x\r\nX: ");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\0';
	put(fd, big);
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "HTTP/1.1 431 "));
	assert_non_null(strstr(out, "\"code\":\"header_too_large\""));
	assert_true(closed);
	free(out);
	close(fd);

	/* body over 100 bytes: refused from the head alone */
	fd = dial(srv_port(s));
	put(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n"
	        "X-Request-ID: big-body\r\n\r\n");
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "HTTP/1.1 413 "));
	assert_non_null(strstr(out, "\"request_id\":\"big-body\""));
	assert_non_null(strstr(out, "X-Request-ID: big-body\r\n"));
	assert_true(closed);
	free(out);
	close(fd);

	/* a request that never completes: 408 after 400 ms */
	fd = dial(srv_port(s));
	put(fd, "GET /inline HTTP/1.1\r\nHost: x\r\n");
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "HTTP/1.1 408 "));
	assert_non_null(strstr(out, "application/json"));
	assert_true(closed);
	free(out);
	close(fd);

	/* an idle keep-alive connection is closed silently */
	fd = dial(srv_port(s));
	out = slurp(fd, 5000, &closed);
	assert_true(closed);
	assert_string_equal(out, "");
	free(out);
	close(fd);

	/* garbage is answered at once */
	fd = dial(srv_port(s));
	put(fd, "\x16\x03\x01\x00\xa5\x01");
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "HTTP/1.1 400 "));
	assert_true(closed);
	free(out);
	close(fd);
	srv_free(s);
}

static void test_max_conns(void **state)
{
	struct srv *s = start(2);
	int a = dial(srv_port(s)), b = dial(srv_port(s)), c, closed;
	char *out;

	(void)state;
	usleep(100 * 1000);
	c = dial(srv_port(s));
	out = slurp(c, 2000, &closed);
	assert_non_null(strstr(out, " 503 "));
	assert_true(closed);
	{
		const char *body = strstr(out, "\r\n\r\n");
		const char *cl = strstr(out, "Content-Length: ");

		assert_non_null(body);
		assert_non_null(cl);
		assert_int_equal(strtol(cl + 16, NULL, 10), strlen(body + 4));
		assert_int_equal(strncmp(body + 4, "{\"error\":", 9), 0);
	}
	free(out);
	close(c);
	put(a, "GET /inline?a HTTP/1.1\r\nHost: x\r\n\r\n");
	out = response(a, 0);
	assert_non_null(strstr(out, "[a]"));
	free(out);
	close(a);
	close(b);
	srv_free(s);
}

static void test_continue_head_http10(void **state)
{
	struct srv *s = start(0);
	int fd = dial(srv_port(s)), closed;
	char *out;

	(void)state;
	put(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	        "Expect: 100-continue\r\n\r\n");
	out = response(fd, 1);
	assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
	free(out);
	put(fd, "hello");
	out = response(fd, 0);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "Content-Length: 5\r\n"));
	assert_non_null(strstr(out, "\r\n\r\nhello"));
	free(out);

	put(fd, "HEAD /inline?h HTTP/1.1\r\nHost: x\r\n\r\n");
	out = response(fd, 1);
	assert_non_null(strstr(out, "Content-Length: 3\r\n"));
	assert_null(strstr(out, "[h]"));
	free(out);
	close(fd);

	fd = dial(srv_port(s));
	put(fd, "GET /inline?old HTTP/1.0\r\n\r\n");
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "Connection: close"));
	assert_non_null(strstr(out, "[old]"));
	assert_true(closed);
	free(out);
	close(fd);

	fd = dial(srv_port(s));
	put(fd, "GET /inline?ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	out = response(fd, 0);
	assert_non_null(strstr(out, "Connection: keep-alive"));
	free(out);
	/* still open: a second request is answered */
	put(fd, "GET /inline?ka2 HTTP/1.0\r\n\r\n");
	out = slurp(fd, 5000, &closed);
	assert_non_null(strstr(out, "[ka2]"));
	free(out);
	close(fd);
	srv_free(s);
}

struct stopper {
	struct srv *s;
};

static void *stop_thread(void *arg)
{
	struct stopper *st = arg;

	srv_shutdown(st->s);
	return NULL;
}

static void test_graceful_shutdown(void **state)
{
	struct srv *s = start(0);
	int busy = dial(srv_port(s)), idle = dial(srv_port(s));
	int partial = dial(srv_port(s)), closed;
	struct stopper st = {s};
	pthread_t th;
	char *out;

	(void)state;
	put(idle, "GET /inline?i HTTP/1.1\r\nHost: x\r\n\r\n");
	free(response(idle, 0));
	put(partial, "GET /inline?p HTTP/1.1\r\n");
	put(busy, "GET /slow?b HTTP/1.1\r\nHost: x\r\n\r\n");
	usleep(50 * 1000);
	pthread_create(&th, NULL, stop_thread, &st);
	/* the request in flight is answered, and the connection closed */
	out = slurp(busy, 5000, &closed);
	assert_non_null(strstr(out, "[b]"));
	assert_non_null(strstr(out, "Connection: close"));
	assert_true(closed);
	free(out);
	/* the idle one is closed without a word */
	out = slurp(idle, 5000, &closed);
	assert_true(closed);
	assert_string_equal(out, "");
	free(out);
	/* the half-sent one may still finish */
	put(partial, "Host: x\r\n\r\n");
	out = slurp(partial, 5000, &closed);
	assert_non_null(strstr(out, "[p]"));
	assert_true(closed);
	free(out);
	pthread_join(th, NULL);
	/* no longer accepting */
	{
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port =
		                                 htons((uint16_t)srv_port(s))};
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char *o;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		/* the socket is still bound until srv_free: the connection
		 * may be queued, but nobody answers it */
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			put(fd, "GET /inline HTTP/1.1\r\nHost: x\r\n\r\n");
			o = slurp(fd, 300, &closed);
			assert_string_equal(o, "");
			free(o);
		}
		close(fd);
	}
	close(busy);
	close(idle);
	close(partial);
	srv_free(s);
	assert_true(done_calls > 0);
}

static void test_helpers(void **state)
{
	struct srv_resp r = {0};

	(void)state;
	assert_true(srv_request_id_valid("abc-DEF_1.2:3", 13));
	assert_false(srv_request_id_valid("a b", 3));
	assert_false(srv_request_id_valid("", 0));
	vg_buf_init(&r.body, 0);
	vg_buf_init(&r.headers, 0);
	srv_resp_error(&r, 404, "not_found", "no \"such\" thing", "id-1");
	assert_string_equal(
		vg_buf_str(&r.body),
		"{\"error\":{\"code\":\"not_found\",\"message\":"
		"\"no \\\"such\\\" thing\",\"request_id\":\"id-1\"}}");
	srv_resp_header(&r, "Retry-After", "1\r\nSet-Cookie: x");
	assert_int_equal(r.headers.len, 0);
	srv_resp_header(&r, "Retry-After", "1");
	assert_string_equal(vg_buf_str(&r.headers), "Retry-After: 1\r\n");
	vg_buf_cleanup(&r.body);
	vg_buf_cleanup(&r.headers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_pipelining_in_order),
		cmocka_unit_test(test_pipelining_burst),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_continue_head_http10),
		cmocka_unit_test(test_graceful_shutdown),
		cmocka_unit_test(test_helpers),
	};

	signal(SIGPIPE, SIG_IGN);
	vg_log_set_level(VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
