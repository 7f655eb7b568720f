/* server.c - the brain's API listener (server.h).
 *
 * Every thread waits in poll(2) on the listening socket (non-blocking,
 * so the threads a connection wakes up race for it harmlessly) and on a
 * pipe that server_stop closes. The thread that accepts a connection
 * reads one request, calls the handler, writes the reply and closes the
 * connection; a slow or silent client holds one thread for at most the
 * I/O timeout. */
#include "server.h"

#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vigil/json.h"

#define DEFAULT_THREADS  8
#define DEFAULT_TIMEOUT  10000
#define DEFAULT_MAX_BODY (16 * 1024)
#define MAX_HEAD         8192
#define MAX_THREADS      256

struct server {
	struct server_config cfg;
	int fd, port;
	int wake[2]; /* closing wake[1] wakes every thread */
	pthread_t *threads;
	int nthreads;
	atomic_int stopping;
};

/* ------------------------------------------------------------------ */
/* Responses                                                            */
/* ------------------------------------------------------------------ */

void server_header(struct server_resp *resp, const char *name,
                   const char *value)
{
	vg_buf_appendf(&resp->headers, "%s: %s\r\n", name, value);
}

void server_error(struct server_resp *resp, const struct server_req *req,
                  int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp->status = status;
	resp->content_type = "application/json";
	vg_buf_reset(&resp->body);
	vg_buf_append_str(&resp->body, "{\"error\":{\"code\":");
	vg_json_escape(&resp->body, code, strlen(code));
	vg_buf_append_str(&resp->body, ",\"message\":");
	vg_json_escape(&resp->body, msg, strlen(msg));
	vg_buf_append_str(&resp->body, ",\"request_id\":");
	vg_json_escape(&resp->body, req->request_id, strlen(req->request_id));
	vg_buf_append_str(&resp->body, "}}");
}

/* ------------------------------------------------------------------ */
/* One connection                                                       */
/* ------------------------------------------------------------------ */

/* Wait until `fd` is ready for `events`, the stop pipe aside; 0 when
 * ready, -1 on timeout or error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - vg_mono_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n;

		if (left <= 0)
			return -1;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLOUT, deadline) != 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

static int request_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > SERVER_REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

static void request_id(struct server_req *req, const struct vg_http_head *h)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16] = {0};
	size_t len = 0;
	const char *v = h ? vg_http_head_get(h, "x-request-id", &len) : NULL;

	if (v && request_id_valid(v, len)) {
		memcpy(req->request_id, v, len);
		req->request_id[len] = '\0';
		return;
	}
	if (RAND_bytes(r, sizeof(r)) != 1) {
		int64_t t = vg_mono_ms();

		memcpy(r, &t, sizeof(t));
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		req->request_id[2 * i] = hex[r[i] >> 4];
		req->request_id[2 * i + 1] = hex[r[i] & 15];
	}
	req->request_id[32] = '\0';
}

static void reply(int fd, const struct server_req *req,
                  struct server_resp *resp, int64_t deadline)
{
	struct vg_buf out;

	vg_buf_init(&out, 0);
	if (vg_buf_appendf(&out,
	                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	                   "Content-Length: %zu\r\nX-Request-ID: %s\r\n"
	                   "Cache-Control: no-store\r\nConnection: close\r\n"
	                   "%s\r\n",
	                   resp->status, vg_http_reason(resp->status),
	                   resp->content_type, resp->body.len, req->request_id,
	                   vg_buf_str(&resp->headers)) == VG_OK &&
	    vg_buf_append(&out, resp->body.data, resp->body.len) == VG_OK)
		send_all(fd, out.data, out.len, deadline);
	vg_buf_cleanup(&out);
}

static void access_log(const struct server_req *req, int status, double t0)
{
	char st[8], ms[24];

	snprintf(st, sizeof(st), "%d", status);
	snprintf(ms, sizeof(ms), "%.1f", (vg_mono_s() - t0) * 1000);
	vg_log(status >= 500 ? VG_LOG_WARN : VG_LOG_INFO, "request",
	       "request_id", req->request_id, "method", req->method, "path",
	       req->path, "status", st, "duration_ms", ms, (const char *)NULL);
}

/* Read one request from `fd` into `buf` (`cap` bytes), answer it. */
static void serve(struct server *s, int fd, char *buf, size_t cap)
{
	struct server_req req = {.method = "", .path = ""};
	struct server_resp resp = {.status = 200,
	                           .content_type = "application/json"};
	struct vg_http_head h;
	int64_t deadline = vg_mono_ms() + s->cfg.io_timeout_ms;
	double t0 = vg_mono_s();
	size_t len = 0, need;
	int rc = VG_AGAIN;

	vg_buf_init(&resp.body, 0);
	vg_buf_init(&resp.headers, 0);
	while (rc == VG_AGAIN) {
		ssize_t n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);

		if (n > 0) {
			len += (size_t)n;
			rc = vg_http_parse(buf, len, MAX_HEAD, &h);
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLIN, deadline) != 0)
				goto out; /* silent client: no reply */
		} else {
			goto out; /* closed before a whole head */
		}
	}
	request_id(&req, rc == VG_OK ? &h : NULL);
	if (rc != VG_OK) {
		server_error(&resp, &req, h.status ? h.status : 400,
		             "bad_request", "%s",
		             h.error ? h.error : "malformed request");
		goto reply;
	}
	snprintf(req.method, sizeof(req.method), "%.*s", (int)h.method_len,
	         h.method);
	if (h.path_len >= sizeof(req.path)) {
		server_error(&resp, &req, 414, "uri_too_long",
		             "the path is longer than %zu bytes",
		             sizeof(req.path) - 1);
		goto reply;
	}
	snprintf(req.path, sizeof(req.path), "%.*s", (int)h.path_len, h.path);
	if (h.content_length > (long long)s->cfg.max_body) {
		server_error(&resp, &req, 413, "payload_too_large",
		             "the body is over %zu bytes", s->cfg.max_body);
		goto reply;
	}
	need = h.head_len +
	       (h.content_length > 0 ? (size_t)h.content_length : 0);
	if (h.expect_continue && len < need &&
	    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, deadline) != 0)
		goto out;
	while (len < need) {
		ssize_t n = recv(fd, buf + len, need - len, MSG_DONTWAIT);

		if (n > 0) {
			len += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLIN, deadline) != 0)
				goto out;
		} else {
			goto out;
		}
	}
	req.head = &h;
	req.body = buf + h.head_len;
	req.body_len = need - h.head_len;
	s->cfg.handle(&req, &resp, s->cfg.data);
reply:
	/* the handler may have taken long: a fresh deadline to write */
	reply(fd, &req, &resp, vg_mono_ms() + s->cfg.io_timeout_ms);
	access_log(&req, resp.status, t0);
out:
	vg_buf_cleanup(&resp.body);
	vg_buf_cleanup(&resp.headers);
}

static void *run(void *arg)
{
	struct server *s = arg;
	size_t cap = MAX_HEAD + s->cfg.max_body;
	char *buf = malloc(cap);

	while (buf && !atomic_load(&s->stopping)) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
		                      {.fd = s->wake[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents || atomic_load(&s->stopping))
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue; /* another thread took it, or a reset */
		serve(s, fd, buf, cap);
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */
/* ------------------------------------------------------------------ */

static int bind_addr(struct server *s, const char *addr, struct vg_err *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char host[256] = "", port[16];
	const char *colon = strrchr(addr, ':');
	size_t hl;
	int rc, one = 1;

	if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(port))
		return vg_err_set(err, VG_CONFIG,
		                  "listen address \"%s\": want host:port",
		                  addr);
	snprintf(port, sizeof(port), "%s", colon + 1);
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return vg_err_set(err, VG_CONFIG, "listen address too long");
	memcpy(host, addr, hl);
	host[hl] = '\0';
	rc = getaddrinfo(hl ? host : NULL, port, &hints, &ai);
	if (rc != 0)
		return vg_err_set(err, VG_CONFIG, "listen address \"%s\": %s",
		                  host, gai_strerror(rc));
	s->fd = socket(ai->ai_family,
	               SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0 ||
	    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s->fd, ai->ai_addr, ai->ai_addrlen) || listen(s->fd, 128)) {
		rc = vg_err_sys(err, VG_IO, "listen on port %s", port);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0) {
			char h[64], p[16];

			if (getnameinfo((struct sockaddr *)&ss, sl, h,
			                sizeof(h), p, sizeof(p),
			                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
				s->port = (int)strtol(p, NULL, 10);
		}
	}
	return VG_OK;
}

int server_new(const struct server_config *cfg, struct server **out,
               struct vg_err *err)
{
	struct server *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	s->cfg = *cfg;
	s->fd = s->wake[0] = s->wake[1] = -1;
	if (s->cfg.threads <= 0)
		s->cfg.threads = DEFAULT_THREADS;
	if (s->cfg.io_timeout_ms <= 0)
		s->cfg.io_timeout_ms = DEFAULT_TIMEOUT;
	if (s->cfg.max_body == 0)
		s->cfg.max_body = DEFAULT_MAX_BODY;
	if (!cfg->addr || !cfg->handle || s->cfg.threads > MAX_THREADS) {
		free(s);
		return vg_err_set(err, VG_INVAL,
		                  "an address, a handler and 1..%d threads",
		                  MAX_THREADS);
	}
	s->threads = calloc((size_t)s->cfg.threads, sizeof(*s->threads));
	if (!s->threads) {
		free(s);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (pipe2(s->wake, O_CLOEXEC) != 0) {
		rc = vg_err_sys(err, VG_IO, "pipe");
		goto fail;
	}
	if ((rc = bind_addr(s, cfg->addr, err)) != VG_OK)
		goto fail;
	*out = s;
	return VG_OK;
fail:
	server_free(s);
	return rc;
}

int server_port(const struct server *s)
{
	return s->port;
}

int server_start(struct server *s, struct vg_err *err)
{
	for (int i = 0; i < s->cfg.threads; i++) {
		if (pthread_create(&s->threads[i], NULL, run, s) != 0) {
			server_stop(s);
			return vg_err_sys(err, VG_INTERNAL, "server thread");
		}
		s->nthreads++;
	}
	return VG_OK;
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, 1);
	if (s->wake[1] >= 0) {
		close(s->wake[1]);
		s->wake[1] = -1;
	}
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	s->nthreads = 0;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
}

void server_free(struct server *s)
{
	if (!s)
		return;
	server_stop(s);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	free(s->threads);
	free(s);
}
