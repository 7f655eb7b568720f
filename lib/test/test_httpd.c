/* test_httpd.c - the probe listener over real sockets: libcurl for
 * well-formed traffic, raw sockets for malformed and slow clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vigil/httpd.h"

struct fixture {
	struct vg_httpd *h;
	struct vg_metrics *reg;
	CURL *curl;
};

struct reply {
	long status;
	char ctype[128];
	struct vg_buf body;
	struct vg_buf headers;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void echo(const struct vg_http_request *req,
		 struct vg_http_response *resp, void *data)
{
	(void)data;
	resp->status = 201;
	resp->content_type = "application/octet-stream";
	vg_buf_appendf(&resp->body, "%s %s ?%s [", req->method, req->path,
		       req->query);
	vg_buf_append(&resp->body, req->body, req->body_len);
	vg_buf_appendf(&resp->body, "] x-test=%s",
		       vg_http_request_header(req, "x-TEST") ?
			       vg_http_request_header(req, "x-TEST") :
			       "(none)");
}

static int start(struct fixture *f, const struct vg_httpd_config *cfg)
{
	struct vg_httpd_config c = { .addr = "127.0.0.1:0" };
	struct vg_err err = { 0 };

	if (cfg)
		c = *cfg;
	f->reg = vg_metrics_new();
	if (!f->reg)
		return -1;
	c.metrics = f->reg;
	if (vg_httpd_new(&c, &f->h, &err)) {
		fprintf(stderr, "httpd: %s\n", err.msg);
		return -1;
	}
	if (vg_httpd_route(f->h, "POST", "/echo", echo, NULL))
		return -1;
	if (vg_httpd_start(f->h, &err)) {
		fprintf(stderr, "httpd: %s\n", err.msg);
		return -1;
	}
	f->curl = curl_easy_init();
	return f->curl ? 0 : -1;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	return f ? start(f, NULL) : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vg_httpd_free(f->h);
	vg_metrics_free(f->reg);
	curl_easy_cleanup(f->curl);
	free(f);
	return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	return vg_buf_append(userdata, p, size * n) ? 0 : size * n;
}

/* Perform a request on the fixture's handle (reusing its connection). */
static void request(struct fixture *f, const char *method, const char *path,
		    const char *body, struct reply *r)
{
	char url[256];
	char *ct = NULL;
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	vg_buf_init(&r->body, 0);
	vg_buf_init(&r->headers, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
		 vg_httpd_port(f->h), path);
	curl_easy_reset(f->curl);
	curl_easy_setopt(f->curl, CURLOPT_URL, url);
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, &r->headers);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(f->curl, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(f->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(f->curl, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(body));
	}
	cc = curl_easy_perform(f->curl);
	if (cc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(f->curl, CURLINFO_CONTENT_TYPE, &ct);
	if (ct)
		snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
}

static void reply_cleanup(struct reply *r)
{
	vg_buf_cleanup(&r->body);
	vg_buf_cleanup(&r->headers);
}

static int raw_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void raw_send(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* Read until the peer closes (or the 5 s receive timeout); returns 1 when
 * the peer closed. */
static int raw_read_all(int fd, struct vg_buf *out)
{
	char tmp[4096];

	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);

		if (n == 0)
			return 1;
		if (n < 0)
			return errno == ECONNRESET;
		assert_int_equal(vg_buf_append(out, tmp, (size_t)n), VG_OK);
	}
}

/* Send `req` on a fresh connection; the server must answer with
 * `status_line` and close. */
static void expect_raw(struct fixture *f, const char *req, size_t len,
		       const char *status_line)
{
	int fd = raw_connect(vg_httpd_port(f->h));
	struct vg_buf got;

	vg_buf_init(&got, 0);
	raw_send(fd, req, len);
	if (!raw_read_all(fd, &got))
		fail_msg("connection not closed after %s", status_line);
	if (strncmp(vg_buf_str(&got), status_line, strlen(status_line)) != 0)
		fail_msg("sent %.40s...: got \"%.60s\", want \"%s\"", req,
			 vg_buf_str(&got), status_line);
	assert_non_null(strstr(vg_buf_str(&got), "Connection: close\r\n"));
	vg_buf_cleanup(&got);
	close(fd);
}

static void test_healthz(void **state)
{
	struct fixture *f = *state;
	struct reply r;

	assert_true(vg_httpd_port(f->h) > 0);
	request(f, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(vg_buf_str(&r.body), "ok");
	assert_string_equal(r.ctype, "text/plain; charset=utf-8");
	reply_cleanup(&r);

	request(f, "HEAD", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 0);
	assert_non_null(strstr(vg_buf_str(&r.headers), "Content-Length: 2\r\n"));
	reply_cleanup(&r);
}

static void test_readiness_flips(void **state)
{
	struct fixture *f = *state;
	struct reply r;

	request(f, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(vg_buf_str(&r.body), "not ready: starting");
	reply_cleanup(&r);

	vg_httpd_set_ready(f->h, 1, NULL);
	request(f, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(vg_buf_str(&r.body), "ok");
	reply_cleanup(&r);

	vg_httpd_set_ready(f->h, 0, "informers not synced");
	request(f, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(vg_buf_str(&r.body),
			    "not ready: informers not synced");
	reply_cleanup(&r);
}

static int leader_ready(void *data, struct vg_buf *reason)
{
	int *flag = data;

	if (*flag)
		return 1;
	vg_buf_append_str(reason, "cache cold");
	return 0;
}

static void test_ready_callback(void **state)
{
	struct fixture f = { 0 };
	struct vg_httpd_config cfg = { .addr = "127.0.0.1:0" };
	struct vg_err err = { 0 };
	struct reply r;
	int flag = 0;

	(void)state;
	f.reg = vg_metrics_new();
	assert_non_null(f.reg);
	cfg.metrics = f.reg;
	assert_int_equal(vg_httpd_new(&cfg, &f.h, &err), VG_OK);
	vg_httpd_set_ready_fn(f.h, leader_ready, &flag);
	assert_int_equal(vg_httpd_start(f.h, &err), VG_OK);
	assert_int_equal(vg_httpd_start(f.h, &err), VG_INVAL);
	f.curl = curl_easy_init();
	assert_non_null(f.curl);

	request(&f, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(vg_buf_str(&r.body), "not ready: cache cold");
	reply_cleanup(&r);
	flag = 1;
	request(&f, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_cleanup(&r);

	vg_httpd_free(f.h);
	vg_metrics_free(f.reg);
	curl_easy_cleanup(f.curl);
}

static void test_metrics_endpoint(void **state)
{
	struct fixture *f = *state;
	struct vg_metric *c;
	struct reply r;

	c = vg_metrics_counter(f->reg, "test_probe_total", "Probes.",
			       VG_LABELS("path"), NULL);
	assert_non_null(c);
	vg_counter_add(vg_metric_labels(c, "/healthz"), 41);
	vg_counter_inc(vg_metric_labels(c, "/healthz"));
	request(f, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, VG_METRICS_CONTENT_TYPE);
	assert_string_equal(vg_buf_str(&r.body),
			    "# HELP test_probe_total Probes.\n"
			    "# TYPE test_probe_total counter\n"
			    "test_probe_total{path=\"/healthz\"} 42\n");
	reply_cleanup(&r);
}

static void test_routes_and_methods(void **state)
{
	struct fixture *f = *state;
	struct reply r;

	request(f, "POST", "/echo?a=1&b", "payload", &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.ctype, "application/octet-stream");
	assert_string_equal(vg_buf_str(&r.body),
			    "POST /echo ?a=1&b [payload] x-test=(none)");
	reply_cleanup(&r);

	request(f, "GET", "/nope", NULL, &r);
	assert_int_equal(r.status, 404);
	reply_cleanup(&r);

	request(f, "GET", "/echo", NULL, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(vg_buf_str(&r.headers), "Allow: POST\r\n"));
	reply_cleanup(&r);

	request(f, "DELETE", "/healthz", NULL, &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(vg_buf_str(&r.headers),
			       "Allow: GET, HEAD\r\n"));
	reply_cleanup(&r);

	/* routes are fixed once serving */
	assert_int_equal(vg_httpd_route(f->h, "GET", "/late", echo, NULL),
			 VG_INVAL);
}

static void test_keep_alive(void **state)
{
	struct fixture *f = *state;
	struct reply r;
	long connects = -1;

	request(f, "GET", "/healthz", NULL, &r);
	reply_cleanup(&r);
	for (int i = 0; i < 5; i++) {
		request(f, "GET", i % 2 ? "/healthz" : "/missing", NULL, &r);
		assert_int_equal(r.status, i % 2 ? 200 : 404);
		curl_easy_getinfo(f->curl, CURLINFO_NUM_CONNECTS, &connects);
		assert_int_equal(connects, 0); /* reused the connection */
		assert_non_null(strstr(vg_buf_str(&r.headers),
				       "Connection: keep-alive\r\n"));
		reply_cleanup(&r);
	}
}

static void test_pipelining_and_close(void **state)
{
	static const char two[] =
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n"
		"Content-Length: 3\r\nConnection: close\r\n\r\nabc";
	struct fixture *f = *state;
	int fd = raw_connect(vg_httpd_port(f->h));
	struct vg_buf got;
	const char *second;

	vg_buf_init(&got, 0);
	raw_send(fd, two, sizeof(two) - 1);
	assert_int_equal(raw_read_all(fd, &got), 1);
	assert_int_equal(strncmp(vg_buf_str(&got), "HTTP/1.1 200 OK\r\n", 17),
			 0);
	second = strstr(vg_buf_str(&got) + 1, "HTTP/1.1 201 Created\r\n");
	assert_non_null(second);
	assert_non_null(strstr(second, "Connection: close\r\n"));
	assert_non_null(strstr(second, "\r\n\r\nPOST /echo ? [abc] x-test=yes"));
	vg_buf_cleanup(&got);
	close(fd);

	/* HTTP/1.0 closes by default; a half-closed client still gets its
	 * answer */
	fd = raw_connect(vg_httpd_port(f->h));
	vg_buf_init(&got, 0);
	raw_send(fd, "GET /healthz HTTP/1.0\r\n\r\n", 25);
	shutdown(fd, SHUT_WR);
	assert_int_equal(raw_read_all(fd, &got), 1);
	assert_int_equal(strncmp(vg_buf_str(&got), "HTTP/1.1 200 OK\r\n", 17),
			 0);
	assert_non_null(strstr(vg_buf_str(&got), "\r\n\r\nok"));
	vg_buf_cleanup(&got);
	close(fd);
}

static void test_malformed_requests(void **state)
{
	static const char junk[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
				     0x00, 0x01, (char)0xfc, 0x03, 0x03 };
	static const struct {
		const char *req;
		const char *status;
	} cases[] = {
		{ "hello there\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /healthz HTTP/1.1\n\n", "HTTP/1.1 400 " },
		{ "GET /healthz\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 " }, /* no Host */
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
		  "Content-Length: 2\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
		  "\r\n",
		  "HTTP/1.1 413 " },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n",
		  "HTTP/1.1 501 " },
		{ "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 " },
		{ "GET / HTTX/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 " },
	};
	struct fixture *f = *state;

	expect_raw(f, junk, sizeof(junk), "HTTP/1.1 400 Bad Request\r\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_raw(f, cases[i].req, strlen(cases[i].req),
			   cases[i].status);
}

static void test_oversized_header(void **state)
{
	struct fixture *f = *state;
	struct vg_buf req;

	vg_buf_init(&req, 0);
	assert_int_equal(vg_buf_append_str(&req, "GET /healthz HTTP/1.1\r\n"
						 "Host: x\r\nX-Big: "),
			 VG_OK);
	for (int i = 0; i < 9000; i++)
		assert_int_equal(vg_buf_append_byte(&req, 'a'), VG_OK);
	assert_int_equal(vg_buf_append_str(&req, "\r\n\r\n"), VG_OK);
	expect_raw(f, req.data, req.len,
		   "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	vg_buf_cleanup(&req);

	/* just under the limit is fine */
	vg_buf_init(&req, 0);
	assert_int_equal(vg_buf_append_str(&req, "GET /healthz HTTP/1.1\r\n"
						 "Host: x\r\n"
						 "Connection: close\r\n"
						 "X-Big: "),
			 VG_OK);
	while (req.len < VG_HTTPD_MAX_HEADER - 4)
		assert_int_equal(vg_buf_append_byte(&req, 'b'), VG_OK);
	assert_int_equal(vg_buf_append_str(&req, "\r\n\r\n"), VG_OK);
	assert_int_equal(req.len, VG_HTTPD_MAX_HEADER);
	expect_raw(f, req.data, req.len, "HTTP/1.1 200 OK\r\n");
	vg_buf_cleanup(&req);
}

static void test_slow_client_does_not_block(void **state)
{
	struct fixture f = { 0 };
	struct vg_httpd_config cfg = { .addr = "127.0.0.1:0",
				       .request_timeout_ms = 700 };
	struct vg_buf got;
	struct reply r;
	int64_t t0, took;
	int slow;

	(void)state;
	assert_int_equal(start(&f, &cfg), 0);
	slow = raw_connect(vg_httpd_port(f.h));
	raw_send(slow, "GET /healthz HTTP/1.1\r\nHo", 25);

	t0 = now_ms();
	for (int i = 0; i < 10; i++) {
		request(&f, "GET", "/healthz", NULL, &r);
		assert_int_equal(r.status, 200);
		reply_cleanup(&r);
	}
	took = now_ms() - t0;
	if (took > 500)
		fail_msg("10 requests took %lld ms beside a stalled client",
			 (long long)took);

	/* the stalled request times out with 408 and is closed */
	vg_buf_init(&got, 0);
	assert_int_equal(raw_read_all(slow, &got), 1);
	assert_int_equal(strncmp(vg_buf_str(&got),
				 "HTTP/1.1 408 Request Timeout\r\n", 30),
			 0);
	took = now_ms() - t0;
	assert_true(took >= 600 && took < 3000);
	vg_buf_cleanup(&got);
	close(slow);

	/* an idle keep-alive connection is closed quietly */
	slow = raw_connect(vg_httpd_port(f.h));
	vg_buf_init(&got, 0);
	assert_int_equal(raw_read_all(slow, &got), 1);
	assert_int_equal(got.len, 0);
	vg_buf_cleanup(&got);
	close(slow);

	vg_httpd_free(f.h);
	vg_metrics_free(f.reg);
	curl_easy_cleanup(f.curl);
}

static void test_max_connections(void **state)
{
	struct fixture f = { 0 };
	struct vg_httpd_config cfg = { .addr = "127.0.0.1:0",
				       .max_conns = 2 };
	struct vg_buf got;
	struct reply r;
	int a, b, c;

	(void)state;
	assert_int_equal(start(&f, &cfg), 0);
	a = raw_connect(vg_httpd_port(f.h));
	b = raw_connect(vg_httpd_port(f.h));
	usleep(100 * 1000); /* let the listener accept both */
	c = raw_connect(vg_httpd_port(f.h));
	vg_buf_init(&got, 0);
	assert_int_equal(raw_read_all(c, &got), 1);
	assert_int_equal(strncmp(vg_buf_str(&got),
				 "HTTP/1.1 503 Service Unavailable\r\n", 34),
			 0);
	vg_buf_cleanup(&got);
	close(c);

	/* a freed slot is usable again */
	close(a);
	usleep(100 * 1000);
	request(&f, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	reply_cleanup(&r);
	close(b);

	vg_httpd_free(f.h);
	vg_metrics_free(f.reg);
	curl_easy_cleanup(f.curl);
}

static void test_stop_with_clients_connected(void **state)
{
	struct fixture f = { 0 };
	struct vg_buf got;
	int fds[3];
	int64_t t0;

	(void)state;
	assert_int_equal(start(&f, NULL), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = raw_connect(vg_httpd_port(f.h));
	raw_send(fds[1], "GET /healthz HTTP/1.1\r\n", 23);
	raw_send(fds[2], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	vg_buf_init(&got, 0);
	/* the complete request is answered and the connection kept */
	while (!strstr(vg_buf_str(&got), "\r\n\r\nok")) {
		char tmp[512];
		ssize_t n = recv(fds[2], tmp, sizeof(tmp), 0);

		assert_true(n > 0);
		assert_int_equal(vg_buf_append(&got, tmp, (size_t)n), VG_OK);
	}
	vg_buf_cleanup(&got);

	t0 = now_ms();
	vg_httpd_stop(f.h);
	assert_true(now_ms() - t0 < 1000);
	for (int i = 0; i < 3; i++) {
		vg_buf_init(&got, 0);
		assert_int_equal(raw_read_all(fds[i], &got), 1);
		vg_buf_cleanup(&got);
		close(fds[i]);
	}
	vg_httpd_stop(f.h); /* again: harmless */
	vg_httpd_free(f.h);
	vg_metrics_free(f.reg);
	curl_easy_cleanup(f.curl);
}

static void test_config_errors(void **state)
{
	static const char *const bad[] = { "nonsense", "127.0.0.1",
					   "127.0.0.1:99999", "1.2.3.4:x",
					   "::1:80", "[::1]80", "" };
	struct vg_httpd_config cfg = { 0 };
	struct vg_httpd *h = NULL, *h2 = NULL;
	struct vg_err err = { 0 };
	char addr[64];

	(void)state;
	assert_int_equal(vg_httpd_new(&cfg, &h, &err), VG_CONFIG);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.addr = bad[i];
		if (vg_httpd_new(&cfg, &h, &err) != VG_CONFIG)
			fail_msg("address \"%s\" accepted", bad[i]);
		assert_null(h);
	}
	/* a port in use */
	cfg.addr = "127.0.0.1:0";
	assert_int_equal(vg_httpd_new(&cfg, &h, &err), VG_OK);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vg_httpd_port(h));
	cfg.addr = addr;
	assert_int_equal(vg_httpd_new(&cfg, &h2, &err), VG_IO);
	assert_non_null(strstr(err.msg, "Address already in use"));
	assert_int_equal(vg_httpd_route(h, "G ET", "/x", echo, NULL),
			 VG_INVAL);
	assert_int_equal(vg_httpd_route(h, "GET", "x", echo, NULL), VG_INVAL);
	vg_httpd_free(h); /* never started */

	/* IPv6 loopback when the host has it */
	cfg.addr = "[::1]:0";
	if (vg_httpd_new(&cfg, &h, &err) == VG_OK) {
		assert_true(vg_httpd_port(h) > 0);
		vg_httpd_free(h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readiness_flips, setup,
						teardown),
		cmocka_unit_test(test_ready_callback),
		cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_routes_and_methods, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pipelining_and_close,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_oversized_header, setup,
						teardown),
		cmocka_unit_test(test_slow_client_does_not_block),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_stop_with_clients_connected),
		cmocka_unit_test(test_config_errors),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
