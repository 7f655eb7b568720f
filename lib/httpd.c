/*
 * httpd.c - the probe and metrics listener: one thread, poll(2),
 * non-blocking sockets, one state machine per connection.
 *
 * A connection reads until it holds a complete request head (and body),
 * answers it into its output buffer, writes that out, then looks at the
 * next pipelined request. Bytes that cannot start a valid request are
 * rejected as soon as they arrive, so garbage gets its 400 at once instead
 * of waiting for a header terminator that never comes. Each connection has
 * one deadline, re-armed when a request starts and after each response.
 */
#include "vigil/httpd.h"

#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNS 64
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_BODY_OUT (16u << 20)
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

struct route {
	char *method;
	char *path;
	vg_httpd_handler fn;
	void *data;
};

struct conn {
	int fd;
	struct vg_buf in;
	struct vg_buf out;
	size_t out_off;
	int64_t deadline;
	int close_after; /* close once `out` is written */
	int timed_out;	 /* a 408 is on its way; the next expiry closes */
	int peer_closed; /* read end-of-file: answer what is buffered, close */
};

struct vg_httpd {
	int listen_fd;
	int wake[2]; /* pipe: stop request */
	int port;
	int max_conns;
	int timeout_ms;
	size_t max_header;
	struct vg_metrics *metrics;

	struct route *routes;
	size_t nroutes, routes_cap;

	struct conn **conns;
	size_t nconns;

	pthread_t thread;
	int started;
	int stopped;

	_Atomic int ready;
	pthread_mutex_t ready_lock; /* ready_reason */
	char ready_reason[256];
	vg_httpd_ready_fn ready_fn;
	void *ready_data;
};

static const struct {
	int status;
	const char *reason;
} status_reasons[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 204, "No Content" },
	{ 301, "Moved Permanently" },
	{ 302, "Found" },
	{ 304, "Not Modified" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 409, "Conflict" },
	{ 413, "Content Too Large" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
	{ 505, "HTTP Version Not Supported" },
};

static const char *reason_phrase(int status)
{
	for (size_t i = 0;
	     i < sizeof(status_reasons) / sizeof(status_reasons[0]); i++)
		if (status_reasons[i].status == status)
			return status_reasons[i].reason;
	return status < 400 ? "OK" : "Error";
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* --- responses ------------------------------------------------------------ */

/* Queue a complete response on `c`. `allow` is NULL or an Allow value. */
static void queue_response(struct conn *c, int status, const char *ctype,
			   const char *body, size_t body_len, int head_only,
			   int close_after, const char *allow)
{
	int rc;

	rc = vg_buf_appendf(&c->out,
			    "HTTP/1.1 %d %s\r\n"
			    "Content-Type: %s\r\n"
			    "Content-Length: %zu\r\n"
			    "X-Content-Type-Options: nosniff\r\n"
			    "Cache-Control: no-store\r\n"
			    "%s%s%s"
			    "Connection: %s\r\n\r\n",
			    status, reason_phrase(status), ctype, body_len,
			    allow ? "Allow: " : "", allow ? allow : "",
			    allow ? "\r\n" : "",
			    close_after ? "close" : "keep-alive");
	if (!rc && !head_only && body_len)
		rc = vg_buf_append(&c->out, body, body_len);
	if (rc) {
		/* cannot even answer: drop the connection */
		vg_buf_reset(&c->out);
		c->close_after = 1;
		return;
	}
	if (close_after)
		c->close_after = 1;
}

static void queue_error(struct conn *c, int status, const char *msg)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%s\n", msg);

	if (n < 0 || (size_t)n >= sizeof(body))
		n = 0;
	queue_response(c, status, "text/plain; charset=utf-8", body,
		       (size_t)n, 0, 1, NULL);
}

/* --- built-in handlers ---------------------------------------------------- */

static void healthz(const struct vg_http_request *req,
		    struct vg_http_response *resp, void *data)
{
	(void)req;
	(void)data;
	vg_buf_append_str(&resp->body, "ok");
}

static void readyz(const struct vg_http_request *req,
		   struct vg_http_response *resp, void *data)
{
	struct vg_httpd *h = data;
	struct vg_buf reason;
	int ready;

	(void)req;
	vg_buf_init(&reason, 1024);
	if (h->ready_fn) {
		ready = h->ready_fn(h->ready_data, &reason);
	} else {
		ready = atomic_load(&h->ready);
		pthread_mutex_lock(&h->ready_lock);
		vg_buf_append_str(&reason, h->ready_reason);
		pthread_mutex_unlock(&h->ready_lock);
	}
	if (ready) {
		vg_buf_append_str(&resp->body, "ok");
	} else {
		resp->status = 503;
		vg_buf_appendf(&resp->body, "not ready: %s",
			       reason.len ? vg_buf_str(&reason) : "unknown");
	}
	vg_buf_cleanup(&reason);
}

static void metrics(const struct vg_http_request *req,
		    struct vg_http_response *resp, void *data)
{
	struct vg_httpd *h = data;

	(void)req;
	if (vg_metrics_render(h->metrics, &resp->body)) {
		vg_buf_reset(&resp->body);
		resp->status = 500;
		vg_buf_append_str(&resp->body, "cannot render metrics");
		return;
	}
	resp->content_type = VG_METRICS_CONTENT_TYPE;
}

/* --- requests ------------------------------------------------------------- */

enum head_state { HEAD_MORE, HEAD_DONE, HEAD_BAD, HEAD_TOOLARGE };

/*
 * Look for the end of the request head in `p[0..len)`, rejecting bytes
 * that can never be part of a valid one: a non-token byte in the method,
 * a bare CR or LF, control characters.
 */
static enum head_state scan_head(const char *p, size_t len, size_t max,
				 size_t *head_len)
{
	size_t i, lim = len < max ? len : max;
	int in_method = 1;

	for (i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)p[i];

		if (in_method) {
			if (c == ' ' && i > 0)
				in_method = 0;
			else if (!is_tchar(c))
				return HEAD_BAD;
			continue;
		}
		if (c == '\n') {
			if (p[i - 1] != '\r')
				return HEAD_BAD;
			if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r') {
				*head_len = i + 1;
				return HEAD_DONE;
			}
		} else if (c == '\r') {
			if (i + 1 < len && p[i + 1] != '\n')
				return HEAD_BAD;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return HEAD_BAD;
		}
	}
	return len >= max ? HEAD_TOOLARGE : HEAD_MORE;
}

struct parsed {
	char *head; /* NUL-separated copy of the head */
	struct vg_http_request req;
	struct vg_http_header headers[VG_HTTPD_MAX_HEADERS];
	size_t content_length;
	int keep_alive;
	int status; /* error to answer, 0 when valid */
	const char *error;
};

static int set_error(struct parsed *ps, int status, const char *msg)
{
	ps->status = status;
	ps->error = msg;
	return -1;
}

/* Whether a comma-separated header value lists `token`. */
static int has_token(const char *value, const char *token)
{
	size_t n = strlen(token);

	while (*value) {
		while (*value == ' ' || *value == '\t' || *value == ',')
			value++;
		if (strncasecmp(value, token, n) == 0 &&
		    (value[n] == '\0' || value[n] == ',' || value[n] == ' ' ||
		     value[n] == '\t'))
			return 1;
		while (*value && *value != ',')
			value++;
	}
	return 0;
}

static int parse_request_line(struct parsed *ps, char *line)
{
	char *sp1 = strchr(line, ' '), *sp2, *target, *version, *q;

	if (!sp1)
		return set_error(ps, 400, "malformed request line");
	*sp1 = '\0';
	target = sp1 + 1;
	sp2 = strchr(target, ' ');
	if (!sp2)
		return set_error(ps, 400, "malformed request line");
	*sp2 = '\0';
	version = sp2 + 1;
	if (strlen(line) > 16)
		return set_error(ps, 400, "method too long");
	if (target[0] != '/')
		return set_error(ps, 400, "request target must be a path");
	for (const char *t = target; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return set_error(ps, 400, "invalid request target");
	if (strncmp(version, "HTTP/", 5) != 0 || strlen(version) != 8 ||
	    version[5] < '0' || version[5] > '9' || version[6] != '.' ||
	    version[7] < '0' || version[7] > '9')
		return set_error(ps, 400, "malformed HTTP version");
	if (version[5] != '1')
		return set_error(ps, 505, "only HTTP/1.x is supported");
	ps->req.method = line;
	ps->req.minor_version = version[7] - '0';
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	ps->req.path = target;
	ps->req.query = q ? q : "";
	ps->keep_alive = ps->req.minor_version >= 1;
	return 0;
}

static int parse_header_line(struct parsed *ps, char *line)
{
	char *colon = strchr(line, ':'), *v, *end;
	struct vg_http_header *hd;

	if (!colon || colon == line)
		return set_error(ps, 400, "malformed header");
	for (char *p = line; p < colon; p++)
		if (!is_tchar((unsigned char)*p))
			return set_error(ps, 400, "malformed header name");
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (ps->req.nheaders == VG_HTTPD_MAX_HEADERS)
		return set_error(ps, 431, "too many headers");
	hd = &ps->headers[ps->req.nheaders++];
	hd->name = line;
	hd->value = v;
	return 0;
}

/* Framing and connection headers. */
static int check_headers(struct parsed *ps)
{
	int have_length = 0, have_host = 0;

	for (size_t i = 0; i < ps->req.nheaders; i++) {
		const char *name = ps->headers[i].name;
		const char *v = ps->headers[i].value;

		if (strcasecmp(name, "Host") == 0) {
			if (have_host++)
				return set_error(ps, 400, "repeated Host");
		} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
			return set_error(ps, 501,
					 "transfer codings are not supported");
		} else if (strcasecmp(name, "Content-Length") == 0) {
			char *end;
			unsigned long long n;

			if (*v < '0' || *v > '9')
				return set_error(ps, 400,
						 "invalid Content-Length");
			errno = 0;
			n = strtoull(v, &end, 10);
			if (errno || *end)
				return set_error(ps, 400,
						 "invalid Content-Length");
			if (have_length && n != ps->content_length)
				return set_error(ps, 400,
						 "conflicting Content-Length");
			if (n > VG_HTTPD_MAX_BODY)
				return set_error(ps, 413, "body too large");
			have_length = 1;
			ps->content_length = (size_t)n;
		} else if (strcasecmp(name, "Connection") == 0) {
			if (has_token(v, "close"))
				ps->keep_alive = 0;
			else if (has_token(v, "keep-alive"))
				ps->keep_alive = 1;
		}
	}
	if (ps->req.minor_version >= 1 && !have_host)
		return set_error(ps, 400, "missing Host header");
	return 0;
}

/* Parse the head `p[0..len)` (ends in CRLF CRLF) into `ps`. */
static int parse_head(struct parsed *ps, const char *p, size_t len)
{
	char *line, *eol;
	int first = 1;

	ps->head = malloc(len + 1);
	if (!ps->head)
		return set_error(ps, 500, "out of memory");
	memcpy(ps->head, p, len);
	ps->head[len] = '\0';
	ps->req.headers = ps->headers;
	for (line = ps->head; (eol = strstr(line, "\r\n")) != NULL;
	     line = eol + 2) {
		*eol = '\0';
		if (!*line)
			break;
		if (first) {
			if (parse_request_line(ps, line))
				return -1;
			first = 0;
			continue;
		}
		if (*line == ' ' || *line == '\t')
			return set_error(ps, 400, "folded headers");
		if (parse_header_line(ps, line))
			return -1;
	}
	return check_headers(ps);
}

static const struct route *find_route(const struct vg_httpd *h,
				      const char *method, const char *path,
				      int *path_known)
{
	const struct route *found = NULL;

	*path_known = 0;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *r = &h->routes[i];

		if (strcmp(r->path, path) != 0)
			continue;
		*path_known = 1;
		if (strcmp(r->method, method) == 0)
			found = r; /* the latest registration wins */
	}
	return found;
}

/* "GET, HEAD, POST" for `path`. */
static void allowed_methods(const struct vg_httpd *h, const char *path,
			    struct vg_buf *out)
{
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *r = &h->routes[i];
		int dup = 0;

		if (strcmp(r->path, path) != 0)
			continue;
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->routes[j].path, path) == 0 &&
			    strcmp(h->routes[j].method, r->method) == 0)
				dup = 1;
		if (dup)
			continue;
		if (out->len)
			vg_buf_append_str(out, ", ");
		vg_buf_append_str(out, r->method);
		if (strcmp(r->method, "GET") == 0)
			vg_buf_append_str(out, ", HEAD");
	}
}

static void dispatch(struct vg_httpd *h, struct conn *c, struct parsed *ps)
{
	const struct vg_http_request *req = &ps->req;
	int head_only = strcmp(req->method, "HEAD") == 0;
	int path_known;
	const struct route *r;
	struct vg_http_response resp;
	int close_after = !ps->keep_alive;

	r = find_route(h, head_only ? "GET" : req->method, req->path,
		       &path_known);
	if (!r && head_only)
		r = find_route(h, "HEAD", req->path, &path_known);
	if (!r) {
		struct vg_buf allow;

		if (!path_known) {
			queue_response(c, 404, "text/plain; charset=utf-8",
				       "not found\n", 10, head_only,
				       close_after, NULL);
			return;
		}
		vg_buf_init(&allow, 256);
		allowed_methods(h, req->path, &allow);
		queue_response(c, 405, "text/plain; charset=utf-8",
			       "method not allowed\n", 19, head_only,
			       close_after, vg_buf_str(&allow));
		vg_buf_cleanup(&allow);
		return;
	}
	resp.status = 200;
	resp.content_type = "text/plain; charset=utf-8";
	vg_buf_init(&resp.body, MAX_BODY_OUT);
	r->fn(req, &resp, r->data);
	if (resp.status < 100 || resp.status > 599)
		resp.status = 500;
	queue_response(c, resp.status,
		       resp.content_type ? resp.content_type :
					   "application/octet-stream",
		       resp.body.data, resp.body.len, head_only, close_after,
		       NULL);
	vg_buf_cleanup(&resp.body);
}

/*
 * Answer the next complete request buffered on `c`, if any. Returns 1 when
 * a response was queued.
 */
static int process_input(struct vg_httpd *h, struct conn *c, int64_t now)
{
	struct parsed ps;
	size_t head_len = 0;
	enum head_state st;

	if (c->out.len || c->timed_out)
		return 0;
	/* tolerate empty lines between requests (RFC 9112 2.2) */
	while (c->in.len >= 2 && c->in.data[0] == '\r' &&
	       c->in.data[1] == '\n')
		vg_buf_consume(&c->in, 2);
	if (!c->in.len || (c->in.len == 1 && c->in.data[0] == '\r'))
		return 0;
	st = scan_head(c->in.data, c->in.len, h->max_header, &head_len);
	if (st == HEAD_MORE)
		return 0;
	if (st == HEAD_BAD) {
		queue_error(c, 400, "bad request");
		return 1;
	}
	if (st == HEAD_TOOLARGE) {
		queue_error(c, 431, "request header fields too large");
		return 1;
	}
	memset(&ps, 0, sizeof(ps));
	if (parse_head(&ps, c->in.data, head_len)) {
		queue_error(c, ps.status, ps.error);
		free(ps.head);
		return 1;
	}
	if (c->in.len - head_len < ps.content_length) {
		free(ps.head);
		return 0; /* body still arriving */
	}
	ps.req.body = c->in.data + head_len;
	ps.req.body_len = ps.content_length;
	dispatch(h, c, &ps);
	free(ps.head);
	vg_buf_consume(&c->in, head_len + ps.content_length);
	c->deadline = now + h->timeout_ms;
	return 1;
}

/* --- connections ---------------------------------------------------------- */

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	vg_buf_cleanup(&c->in);
	vg_buf_cleanup(&c->out);
	free(c);
}

static struct conn *conn_new(int fd, int64_t deadline, size_t max_in)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->deadline = deadline;
	vg_buf_init(&c->in, max_in);
	vg_buf_init(&c->out, 0);
	return c;
}

/* Returns -1 when the connection is finished. */
static int conn_write(struct vg_httpd *h, struct conn *c, int64_t now)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off,
				 c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	vg_buf_reset(&c->out);
	c->out_off = 0;
	if (c->close_after)
		return -1;
	c->deadline = now + h->timeout_ms;
	return 0;
}

/* Returns -1 when the connection is finished. */
static int conn_read(struct vg_httpd *h, struct conn *c, int64_t now)
{
	for (;;) {
		size_t room;
		ssize_t n;
		int was_idle = c->in.len == 0;

		if (c->in.max <= c->in.len)
			return 0; /* full: wait for the answer to drain it */
		room = c->in.max - c->in.len;
		if (room > 16384)
			room = 16384;
		if (vg_buf_reserve(&c->in, room))
			return -1;
		n = recv(c->fd, c->in.data + c->in.len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1; /* reset */
		if (n == 0) {
			c->peer_closed = 1;
			return c->in.len ? 0 : -1;
		}
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		if (was_idle)
			c->deadline = now + h->timeout_ms;
		if ((size_t)n < room)
			return 0;
	}
}

/* Answer buffered requests while responses go out at once. Returns -1
 * when the connection is finished. */
static int serve(struct vg_httpd *h, struct conn *c, int64_t now)
{
	while (process_input(h, c, now)) {
		if (conn_write(h, c, now))
			return -1;
		if (c->out.len)
			return 0; /* the socket is full: wait for POLLOUT */
	}
	/* after end-of-file nothing more can arrive */
	return c->peer_closed && !c->out.len ? -1 : 0;
}

/* --- accepting ------------------------------------------------------------ */

static void refuse(int fd)
{
	static const char busy[] =
		"HTTP/1.1 503 Service Unavailable\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 14\r\nConnection: close\r\n\r\n"
		"too many conns";
	ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);

	(void)n; /* best effort: the socket is new and its buffer empty */
	close(fd);
}

/* Returns nonzero when accept should pause (out of descriptors). */
static int accept_all(struct vg_httpd *h, int64_t now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int one = 1, fd;
		struct conn *c;

		fd = accept4(h->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				vg_warn("httpd accept failed", "err",
					strerror(errno));
				return 1;
			}
			return 0; /* EAGAIN and the rest */
		}
		if (h->nconns >= (size_t)h->max_conns) {
			refuse(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = conn_new(fd, now + h->timeout_ms,
			     h->max_header + VG_HTTPD_MAX_BODY);
		if (!c) {
			close(fd);
			continue;
		}
		h->conns[h->nconns++] = c;
	}
	return 0;
}

/* --- the loop ------------------------------------------------------------- */

static void expire(struct vg_httpd *h, struct conn *c, int64_t now,
		   int *dead)
{
	if (now < c->deadline)
		return;
	if (c->timed_out || c->out.len || !c->in.len) {
		*dead = 1; /* idle keep-alive, stalled writer, or 408 unsent */
		return;
	}
	c->timed_out = 1;
	queue_error(c, 408, "request timeout");
	c->deadline = now + 1000;
	if (conn_write(h, c, now))
		*dead = 1;
}

static void *loop(void *arg)
{
	struct vg_httpd *h = arg;
	struct pollfd *pfd = NULL;
	int64_t accept_resume = 0;

	pfd = calloc((size_t)h->max_conns + 2, sizeof(*pfd));
	if (!pfd) {
		vg_error("httpd stopped: out of memory");
		return NULL;
	}
	for (;;) {
		int64_t now = vg_mono_ms(), next = now + 1000;
		int listening = now >= accept_resume;
		size_t i;
		int n;

		pfd[0] = (struct pollfd){ .fd = h->wake[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = listening ? h->listen_fd : -1,
					  .events = POLLIN };
		for (i = 0; i < h->nconns; i++) {
			struct conn *c = h->conns[i];

			pfd[i + 2].fd = c->fd;
			/* a connection that may not read yet waits for its
			 * deadline only, or poll would report it forever */
			if (c->out.len)
				pfd[i + 2].events = POLLOUT;
			else if (c->timed_out || c->in.len >= c->in.max)
				pfd[i + 2].events = 0;
			else
				pfd[i + 2].events = POLLIN;
			pfd[i + 2].revents = 0;
			if (c->deadline < next)
				next = c->deadline;
		}
		if (!listening && accept_resume < next)
			next = accept_resume;
		n = poll(pfd, h->nconns + 2, next > now ? (int)(next - now) : 0);
		if (n < 0 && errno != EINTR) {
			vg_error("httpd poll failed", "err", strerror(errno));
			break;
		}
		if (n > 0 && pfd[0].revents)
			break;
		now = vg_mono_ms();
		for (i = 0; i < h->nconns; i++) {
			struct conn *c = h->conns[i];
			short re = n > 0 ? pfd[i + 2].revents : 0;
			int dead = 0;

			if (re & (POLLIN | POLLHUP | POLLERR)) {
				if (c->out.len)
					dead = conn_write(h, c, now) != 0;
				else
					dead = conn_read(h, c, now) != 0;
			} else if (re & POLLOUT) {
				dead = conn_write(h, c, now) != 0;
			}
			if (!dead && re)
				dead = serve(h, c, now) != 0;
			if (!dead)
				expire(h, c, now, &dead);
			if (dead) {
				conn_free(c);
				h->conns[i] = NULL;
			}
		}
		/* compact, keeping arrival order for fairness */
		{
			size_t k = 0;

			for (i = 0; i < h->nconns; i++)
				if (h->conns[i])
					h->conns[k++] = h->conns[i];
			h->nconns = k;
		}
		if (n > 0 && listening && pfd[1].revents &&
		    accept_all(h, now))
			accept_resume = now + ACCEPT_PAUSE_MS;
	}
	free(pfd);
	return NULL;
}

/* --- setup ---------------------------------------------------------------- */

/* Split "host:port", "[v6]:port" or ":port". */
static int split_addr(const char *addr, char *host, size_t host_size,
		      char *port, size_t port_size)
{
	const char *colon, *h = addr;
	size_t hlen;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return VG_CONFIG;
		h = addr + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return VG_CONFIG;
		hlen = (size_t)(colon - addr);
	}
	if (hlen >= host_size || strlen(colon + 1) >= port_size ||
	    !colon[1])
		return VG_CONFIG;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return VG_CONFIG;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return strtol(port, NULL, 10) > 65535 ? VG_CONFIG : VG_OK;
}

static int listen_on(const struct addrinfo *ai, int *out)
{
	int one = 1, zero = 0;
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	*out = fd;
	return 0;
}

static int bind_addr(struct vg_httpd *h, const char *addr, struct vg_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[8];
	int rc, gai;

	if (split_addr(addr, host, sizeof(host), port, sizeof(port)))
		return vg_err_set(err, VG_CONFIG,
				  "httpd: bad listen address \"%s\"", addr);
	if (!host[0])
		hints.ai_family = AF_INET6; /* dual stack; IPv4 fallback below */
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai && !host[0]) {
		hints.ai_family = AF_INET;
		gai = getaddrinfo(NULL, port, &hints, &res);
	}
	if (gai)
		return vg_err_set(err, VG_CONFIG, "httpd: resolve %s: %s",
				  addr, gai_strerror(gai));
	rc = -1;
	for (ai = res; ai && rc; ai = ai->ai_next)
		rc = listen_on(ai, &h->listen_fd);
	if (rc && !host[0]) {
		struct addrinfo *v4 = NULL;

		hints.ai_family = AF_INET;
		if (!getaddrinfo(NULL, port, &hints, &v4)) {
			for (ai = v4; ai && rc; ai = ai->ai_next)
				rc = listen_on(ai, &h->listen_fd);
			freeaddrinfo(v4);
		}
	}
	freeaddrinfo(res);
	if (rc)
		return vg_err_sys(err, VG_IO, "httpd: listen on %s", addr);
	if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl))
		return vg_err_sys(err, VG_IO, "httpd: getsockname");
	h->port = ss.ss_family == AF_INET6 ?
			  ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
			  ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return VG_OK;
}

int vg_httpd_new(const struct vg_httpd_config *cfg, struct vg_httpd **out,
		 struct vg_err *err)
{
	struct vg_httpd *h = NULL;
	int rc;

	*out = NULL;
	if (!cfg || !cfg->addr)
		return vg_err_set(err, VG_CONFIG, "httpd: no listen address");
	if (cfg->max_conns < 0 || cfg->request_timeout_ms < 0 ||
	    (cfg->max_header && cfg->max_header < 64))
		return vg_err_set(err, VG_CONFIG, "httpd: invalid limits");
	h = calloc(1, sizeof(*h));
	if (!h)
		return vg_err_set(err, VG_NOMEM, "httpd: out of memory");
	h->listen_fd = -1;
	h->wake[0] = h->wake[1] = -1;
	h->max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS;
	h->timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms :
						  DEFAULT_TIMEOUT_MS;
	h->max_header = cfg->max_header ? cfg->max_header :
					  VG_HTTPD_MAX_HEADER;
	h->metrics = cfg->metrics ? cfg->metrics : vg_metrics_default();
	snprintf(h->ready_reason, sizeof(h->ready_reason), "starting");
	if (pthread_mutex_init(&h->ready_lock, NULL)) {
		free(h);
		return vg_err_set(err, VG_NOMEM, "httpd: mutex");
	}
	h->conns = calloc((size_t)h->max_conns, sizeof(*h->conns));
	if (!h->conns) {
		rc = vg_err_set(err, VG_NOMEM, "httpd: out of memory");
		goto fail;
	}
	if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK)) {
		rc = vg_err_sys(err, VG_IO, "httpd: pipe");
		goto fail;
	}
	rc = bind_addr(h, cfg->addr, err);
	if (rc)
		goto fail;
	if (vg_httpd_route(h, "GET", "/healthz", healthz, h) ||
	    vg_httpd_route(h, "GET", "/readyz", readyz, h) ||
	    vg_httpd_route(h, "GET", "/metrics", metrics, h)) {
		rc = vg_err_set(err, VG_NOMEM, "httpd: out of memory");
		goto fail;
	}
	*out = h;
	return VG_OK;
fail:
	vg_httpd_free(h);
	return rc;
}

int vg_httpd_route(struct vg_httpd *h, const char *method, const char *path,
		   vg_httpd_handler fn, void *data)
{
	struct route *r;

	if (!h || !method || !path || !fn || path[0] != '/' || h->started)
		return VG_INVAL;
	for (const char *m = method; *m; m++)
		if (!is_tchar((unsigned char)*m))
			return VG_INVAL;
	if (!*method)
		return VG_INVAL;
	if (h->nroutes == h->routes_cap) {
		size_t cap = h->routes_cap ? h->routes_cap * 2 : 8;

		r = realloc(h->routes, cap * sizeof(*r));
		if (!r)
			return VG_NOMEM;
		h->routes = r;
		h->routes_cap = cap;
	}
	r = &h->routes[h->nroutes];
	r->method = strdup(method);
	r->path = strdup(path);
	if (!r->method || !r->path) {
		free(r->method);
		free(r->path);
		return VG_NOMEM;
	}
	r->fn = fn;
	r->data = data;
	h->nroutes++;
	return VG_OK;
}

int vg_httpd_start(struct vg_httpd *h, struct vg_err *err)
{
	int rc;

	if (!h || h->started || h->stopped)
		return vg_err_set(err, VG_INVAL, "httpd: already started");
	rc = pthread_create(&h->thread, NULL, loop, h);
	if (rc) {
		errno = rc;
		return vg_err_sys(err, VG_IO, "httpd: thread");
	}
	h->started = 1;
	return VG_OK;
}

int vg_httpd_port(const struct vg_httpd *h)
{
	return h ? h->port : 0;
}

void vg_httpd_set_ready(struct vg_httpd *h, int ready, const char *reason)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->ready_lock);
	snprintf(h->ready_reason, sizeof(h->ready_reason), "%s",
		 reason ? reason : "");
	pthread_mutex_unlock(&h->ready_lock);
	atomic_store(&h->ready, ready ? 1 : 0);
}

void vg_httpd_set_ready_fn(struct vg_httpd *h, vg_httpd_ready_fn fn,
			   void *data)
{
	if (!h || h->started)
		return;
	h->ready_fn = fn;
	h->ready_data = data;
}

void vg_httpd_stop(struct vg_httpd *h)
{
	if (!h || h->stopped)
		return;
	h->stopped = 1;
	if (h->started) {
		ssize_t n;

		do
			n = write(h->wake[1], "x", 1);
		while (n < 0 && errno == EINTR);
		pthread_join(h->thread, NULL);
	}
	for (size_t i = 0; i < h->nconns; i++)
		conn_free(h->conns[i]);
	h->nconns = 0;
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	h->listen_fd = -1;
}

void vg_httpd_free(struct vg_httpd *h)
{
	if (!h)
		return;
	vg_httpd_stop(h);
	for (int i = 0; i < 2; i++)
		if (h->wake[i] >= 0)
			close(h->wake[i]);
	for (size_t i = 0; i < h->nroutes; i++) {
		free(h->routes[i].method);
		free(h->routes[i].path);
	}
	free(h->routes);
	free(h->conns);
	pthread_mutex_destroy(&h->ready_lock);
	free(h);
}

const char *vg_http_request_header(const struct vg_http_request *req,
				   const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}
