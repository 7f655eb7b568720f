/*
 * server.c - event loops, connections and the handler pool.
 *
 * A connection belongs to one loop for its whole life. Its states:
 *
 *   READ   waiting for (the rest of) a request; parsed as bytes arrive,
 *          answered at once when its handler is inline (so pipelined
 *          requests are answered in one write)
 *   BUSY   its request is with a handler thread; the loop reads nothing
 *          (the request points into the input buffer)
 *   WS     a WebSocket after a 101 (srv_resp_upgrade): frames from the
 *          client are parsed as they arrive (ws.c); messages published
 *          to its topic are appended to its output
 *
 * Queued output is written in either state; a connection to close is
 * closed once its output is written.
 *
 * A handler thread that finishes puts the connection on its loop's done
 * list and wakes the loop through an eventfd; only the loop serialises the
 * response and touches the socket. A published message goes the same way:
 * encoded once, put on the inbox of every loop that has WebSockets, and
 * appended by each loop to its connections of the topic.
 */
#include "server.h"

#include "ws.h"

#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_MS       200
#define MAX_EVENTS     128
#define SLACK_IN       4096 /* room for the start of a pipelined request */
#define OUT_HIGH_WATER (256u << 10)
#define WS_LINGER_MS   2000 /* wait for the client's end after a close */
#define WS_READ_CHUNK  2048
#define WS_KEEP_OUT    (64u << 10) /* output capacity kept when idle */

enum conn_state { C_READ, C_BUSY, C_WS };

/* A published message, shared by the loops it was posted to. */
struct ws_msg {
	atomic_int refs;
	uint64_t hash;
	char topic[SRV_TOPIC_MAX + 1];
	size_t len;
	unsigned char data[]; /* the whole frame */
};

struct loop;

struct conn {
	int fd;
	SSL *ssl; /* TLS, or NULL */
	struct loop *lp;
	enum conn_state state;
	struct vg_buf in;
	size_t in_off; /* bytes of `in` already answered */
	struct vg_buf out;
	size_t out_off;
	int64_t deadline;  /* ms; 0: none */
	int started;       /* bytes of the current request arrived */
	int continue_sent; /* "100 Continue" written for this request */
	int close_after;   /* close once `out` is written */
	int read_pending;  /* stopped reading before EAGAIN */
	int peer_gone;     /* hang-up seen */
	size_t req_len;    /* head + body of the request in BUSY */
	struct vg_http_head head;
	struct srv_req req;
	struct srv_resp resp;
	char peer[64];
	struct conn *prev, *next; /* the loop's connections */
	struct conn *qnext;       /* the work queue or a done list */
	/* WebSocket (C_WS) */
	char topic[SRV_TOPIC_MAX + 1];
	uint64_t topic_hash;
	char ws_rid[SRV_REQUEST_ID_MAX + 1];
	int ws_closing; /* our close frame is queued */
	int ws_code;    /* the close code sent or received */
	const char *ws_why;
	int ws_frag;   /* inside a fragmented data message */
	int lingering; /* written our close; waiting for the peer's end */
	int ws_dirty;  /* on the fan-out's list */
	int64_t ws_heard, ws_next_ping;
	double ws_since;
	unsigned long long ws_sent;
	struct conn *dnext;
};

struct loop {
	struct srv *s;
	int epfd;
	int evfd;
	pthread_t th;
	int started;
	struct conn *conns;
	int nconns;
	pthread_mutex_t mu; /* guards done and the inbox */
	struct conn *done;
	/* published messages for this loop: `inbox` fills while the loop
	 * hands out `spare`; both hold ws_backlog */
	struct ws_msg **inbox, **spare;
	int inbox_n;
	atomic_int nws; /* WebSockets on this loop */
	char date[64];
	time_t date_at;
};

struct srv {
	struct srv_config cfg;
	struct srv_ops ops;
	void *ud;
	int listen_fd;
	int reserve_fd; /* given back when descriptors run out */
	int port;
	struct loop *loops;
	int nloops;
	pthread_t *workers;
	int nworkers;
	int started;
	atomic_int stopping;
	atomic_int nconns;
	pthread_mutex_t qmu;
	pthread_cond_t qcond;
	struct conn *qhead, *qtail;
	int qstop;
	atomic_ullong ws_sent, ws_dropped_slow, ws_dropped_backlog;
};

/* ------------------------------------------------------------------ */
/* Responses                                                            */
/* ------------------------------------------------------------------ */

int srv_request_id_valid(const char *id, size_t len)
{
	if (len == 0 || len > SRV_REQUEST_ID_MAX)
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

static void request_id(struct conn *c)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t len = 0;
	const char *v = vg_http_head_get(&c->head, "x-request-id", &len);

	if (v && srv_request_id_valid(v, len)) {
		memcpy(c->req.request_id, v, len);
		c->req.request_id[len] = '\0';
		return;
	}
	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* never without an id: fall back on time and address */
		uint64_t t = (uint64_t)vg_mono_ms() ^ (uintptr_t)c;

		memcpy(r, &t, sizeof(t));
		memcpy(r + 8, &t, sizeof(t));
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		c->req.request_id[2 * i] = hex[r[i] >> 4];
		c->req.request_id[2 * i + 1] = hex[r[i] & 15];
	}
	c->req.request_id[32] = '\0';
}

void srv_resp_error(struct srv_resp *resp, int status, const char *code,
                    const char *message, const char *request_id)
{
	struct vg_buf *b = &resp->body;

	resp->status = status;
	resp->content_type = "application/json";
	vg_buf_reset(b);
	vg_buf_append_str(b, "{\"error\":{\"code\":");
	vg_json_escape(b, code, strlen(code));
	vg_buf_append_str(b, ",\"message\":");
	vg_json_escape(b, message, strlen(message));
	vg_buf_append_str(b, ",\"request_id\":");
	vg_json_escape(b, request_id, strlen(request_id));
	vg_buf_append_str(b, "}}");
}

void srv_resp_header(struct srv_resp *resp, const char *name, const char *value)
{
	/* values come from the program, but never let one split a header */
	if (strpbrk(value, "\r\n"))
		return;
	vg_buf_appendf(&resp->headers, "%s: %s\r\n", name, value);
}

void srv_resp_upgrade(struct srv_resp *resp, const char *topic,
                      const char *accept)
{
	size_t n = strlen(topic);

	if (n == 0 || n > SRV_TOPIC_MAX)
		return;
	resp->status = 101;
	vg_buf_reset(&resp->body);
	memcpy(resp->ws_topic, topic, n + 1);
	srv_resp_header(resp, "Upgrade", "websocket");
	srv_resp_header(resp, "Connection", "Upgrade");
	srv_resp_header(resp, "Sec-WebSocket-Accept", accept);
}

int srv_req_header(const struct srv_req *req, const char *name, char *out,
                   size_t size)
{
	size_t len = 0;
	const char *v = vg_http_head_get(req->head, name, &len);

	if (!v || len >= size || memchr(v, '\0', len))
		return 0;
	memcpy(out, v, len);
	out[len] = '\0';
	return 1;
}

static const char *status_code_name(int status)
{
	switch (status) {
	case 408:
		return "request_timeout";
	case 411:
		return "length_required";
	case 413:
		return "payload_too_large";
	case 431:
		return "header_too_large";
	case 501:
		return "not_implemented";
	case 503:
		return "unavailable";
	case 505:
		return "http_version_not_supported";
	default:
		return "bad_request";
	}
}

static void update_date(struct loop *lp)
{
	time_t t = time(NULL);
	struct tm tm;

	if (t == lp->date_at)
		return;
	lp->date_at = t;
	gmtime_r(&t, &tm);
	strftime(lp->date, sizeof(lp->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Serialise c->resp into c->out. */
static void queue_response(struct conn *c)
{
	struct srv_resp *r = &c->resp;
	int head = strcmp(c->req.method, "HEAD") == 0;
	int bodyless = r->status == 204 || r->status == 304 || r->status < 200;
	int rc;

	update_date(c->lp);
	rc = vg_buf_appendf(&c->out,
	                    "HTTP/1.1 %d %s\r\nDate: %s\r\nX-Request-ID: %s\r\n"
	                    "Cache-Control: no-store\r\n"
	                    "X-Content-Type-Options: nosniff\r\n",
	                    r->status, vg_http_reason(r->status), c->lp->date,
	                    c->req.request_id);
	if (!bodyless)
		rc = rc ? rc
		        : vg_buf_appendf(&c->out,
		                         "Content-Type: %s\r\nContent-Length: "
		                         "%zu\r\n",
		                         r->content_type ? r->content_type
		                                         : "application/json",
		                         r->body.len);
	if (c->close_after)
		rc = rc ? rc
		        : vg_buf_append_str(&c->out, "Connection: close\r\n");
	else if (c->head.minor == 0)
		rc = rc ? rc
		        : vg_buf_append_str(&c->out,
		                            "Connection: keep-alive\r\n");
	rc = rc ? rc
	        : vg_buf_append(&c->out, r->headers.data ? r->headers.data : "",
	                        r->headers.len);
	rc = rc ? rc : vg_buf_append_str(&c->out, "\r\n");
	if (!head && !bodyless && r->body.len)
		rc = rc ? rc
		        : vg_buf_append(&c->out, r->body.data, r->body.len);
	if (rc)
		c->close_after = 2; /* out of memory: drop the connection */
}

static void req_reset(struct conn *c)
{
	free(c->req.path);
	free(c->req.query);
	memset(&c->req, 0, sizeof(c->req));
	vg_buf_cleanup(&c->resp.body);
	vg_buf_cleanup(&c->resp.headers);
	memset(&c->resp, 0, sizeof(c->resp));
	c->resp.status = 200;
	c->req.head = &c->head;
	snprintf(c->req.peer, sizeof(c->req.peer), "%s", c->peer);
}

/* The response of the current request is ready: queue it, report it, and
 * drop the request's bytes from the input. */
static void ws_start(struct conn *c);

static void finish_request(struct conn *c, size_t consumed)
{
	struct srv *s = c->lp->s;
	int upgrade;

	if (atomic_load(&s->stopping))
		c->close_after = 1;
	if (c->resp.status == 101 && (c->close_after || !c->resp.ws_topic[0])) {
		/* no new WebSocket on a server that is stopping */
		c->resp.ws_topic[0] = '\0';
		vg_buf_reset(&c->resp.headers);
		srv_resp_header(&c->resp, "Retry-After", "1");
		srv_resp_error(&c->resp, 503, "unavailable",
		               "the server is shutting down",
		               c->req.request_id);
	}
	upgrade = c->resp.status == 101;
	if (upgrade) {
		memcpy(c->topic, c->resp.ws_topic, sizeof(c->topic));
		memcpy(c->ws_rid, c->req.request_id, sizeof(c->ws_rid));
	}
	queue_response(c);
	if (s->ops.done)
		s->ops.done(&c->req, &c->resp, vg_mono_s() - c->req.started,
		            s->ud);
	/* consumed lazily: a memmove per pipelined request would make a
	 * buffer full of tiny requests quadratic */
	c->in_off += consumed;
	if (c->in_off >= c->in.len) {
		vg_buf_reset(&c->in);
		c->in_off = 0;
	}
	req_reset(c);
	c->started = 0;
	c->continue_sent = 0;
	c->state = C_READ;
	if (upgrade)
		ws_start(c);
}

static void reply_error(struct conn *c, int status, const char *msg)
{
	if (!c->req.request_id[0])
		request_id(c);
	if (!c->req.method[0])
		snprintf(c->req.method, sizeof(c->req.method), "-");
	if (!c->req.started)
		c->req.started = vg_mono_s();
	srv_resp_error(&c->resp, status, status_code_name(status), msg,
	               c->req.request_id);
	c->close_after = 1;
	finish_request(c, c->in.len - c->in_off);
}

/* ------------------------------------------------------------------ */
/* Work queue                                                           */
/* ------------------------------------------------------------------ */

static void enqueue(struct srv *s, struct conn *c)
{
	pthread_mutex_lock(&s->qmu);
	c->qnext = NULL;
	if (s->qtail)
		s->qtail->qnext = c;
	else
		s->qhead = c;
	s->qtail = c;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qmu);
}

static void *worker_main(void *arg)
{
	struct srv *s = arg;

	for (;;) {
		struct conn *c;
		struct loop *lp;
		uint64_t one = 1;
		int wake;

		pthread_mutex_lock(&s->qmu);
		while (!s->qhead && !s->qstop)
			pthread_cond_wait(&s->qcond, &s->qmu);
		c = s->qhead;
		if (!c) {
			pthread_mutex_unlock(&s->qmu);
			return NULL;
		}
		s->qhead = c->qnext;
		if (!s->qhead)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->qmu);

		s->ops.handle(&c->req, &c->resp, s->ud);

		lp = c->lp;
		pthread_mutex_lock(&lp->mu);
		/* a list that was not empty has its wake-up on the way: the
		 * loop takes the whole list after reading the eventfd */
		wake = !lp->done;
		c->qnext = lp->done;
		lp->done = c;
		pthread_mutex_unlock(&lp->mu);
		if (wake && write(lp->evfd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			vg_warn("server: eventfd write failed", "err",
			        strerror(errno));
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */
/* ------------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
	struct loop *lp = c->lp;

	if (c->state == C_WS) {
		struct srv_ws_info info = {
			.topic = c->topic,
			.request_id = c->ws_rid,
			.peer = c->peer,
			.code = c->ws_code,
			.why = c->ws_why,
			.seconds = vg_mono_s() - c->ws_since,
			.sent = c->ws_sent,
		};

		atomic_fetch_sub(&lp->nws, 1);
		if (lp->s->ops.ws_close)
			lp->s->ops.ws_close(&info, lp->s->ud);
	}
	epoll_ctl(lp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl) {
		/* close_notify, best effort: the socket is non-blocking */
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lp->nconns--;
	atomic_fetch_sub(&lp->s->nconns, 1);
	req_reset(c);
	vg_buf_cleanup(&c->in);
	vg_buf_cleanup(&c->out);
	free(c);
}

/* ------------------------------------------------------------------ */
/* WebSockets                                                           */
/* ------------------------------------------------------------------ */

static uint64_t topic_hash(const char *t)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *t; t++)
		h = (h ^ (unsigned char)*t) * 1099511628211ull;
	return h;
}

static void ws_start(struct conn *c)
{
	struct srv *s = c->lp->s;
	int64_t now = vg_mono_ms();
	struct srv_ws_info info = {.topic = c->topic,
	                           .request_id = c->ws_rid,
	                           .peer = c->peer,
	                           .why = "open"};

	c->state = C_WS;
	c->topic_hash = topic_hash(c->topic);
	c->ws_code = WS_CLOSE_ABNORMAL;
	c->ws_why = "gone";
	c->ws_heard = now;
	c->ws_next_ping = now + s->cfg.ws_ping_ms;
	c->ws_since = vg_mono_s();
	c->deadline = 0;
	atomic_fetch_add(&c->lp->nws, 1);
	if (s->ops.ws_open)
		s->ops.ws_open(&info, s->ud);
}

/* Drop what the peer has already been sent when that is most of the
 * buffer, so a client that keeps up only partly cannot grow it. */
static void out_compact(struct conn *c)
{
	if (c->out_off == 0 || c->out_off < c->out.len / 2)
		return;
	memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
	c->out.len -= c->out_off;
	c->out_off = 0;
}

static void ws_control(struct conn *c, int op, const unsigned char *p, size_t n)
{
	unsigned char h[WS_HEADER_MAX];
	size_t hl = ws_header(h, op, n);

	out_compact(c);
	if (vg_buf_append(&c->out, h, hl) || vg_buf_append(&c->out, p, n))
		c->close_after = 2;
}

static void ws_queue_close(struct conn *c, int code, const char *reason,
                           const char *why)
{
	unsigned char f[WS_CONTROL_MAX + 2];

	if (c->ws_closing)
		return;
	c->ws_closing = 1;
	c->ws_code = code;
	c->ws_why = why;
	out_compact(c);
	if (vg_buf_append(&c->out, f, ws_close_frame(f, code, reason)))
		c->close_after = 2;
	else if (!c->close_after)
		c->close_after = 1;
}

static int close_code_valid(int code)
{
	return (code >= 1000 && code <= 1003) ||
	       (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/* Frames from the client: control frames answered, data ignored. */
static void ws_process(struct conn *c, int64_t now)
{
	struct srv *s = c->lp->s;

	while (!c->ws_closing) {
		size_t avail = c->in.len - c->in_off;
		unsigned char *p, *pl;
		struct ws_frame f;
		int r;

		if (avail < 2)
			return;
		p = (unsigned char *)c->in.data + c->in_off;
		r = ws_parse(p, avail, s->cfg.ws_max_frame, &f);
		if (r == 0)
			return;
		if (r != 1) {
			ws_queue_close(c, r,
			               r == WS_CLOSE_TOO_BIG ? "frame too large"
			                                     : "protocol error",
			               r == WS_CLOSE_TOO_BIG ? "too_big"
			                                     : "protocol");
			break;
		}
		if (avail - f.head < f.len)
			return; /* the rest of the payload */
		pl = p + f.head;
		ws_unmask(pl, (size_t)f.len, f.mask, 0);
		c->ws_heard = now;
		switch (f.opcode) {
		case WS_OP_PING:
			ws_control(c, WS_OP_PONG, pl, (size_t)f.len);
			break;
		case WS_OP_PONG:
			break;
		case WS_OP_CLOSE: {
			int code = f.len >= 2 ? pl[0] << 8 | pl[1]
			                      : WS_CLOSE_NO_STATUS;

			if (f.len == 1 ||
			    (f.len >= 2 && !close_code_valid(code))) {
				ws_queue_close(c, WS_CLOSE_PROTOCOL,
				               "bad close frame", "protocol");
				break;
			}
			/* echo the code, as RFC 6455 5.5.1 asks */
			ws_queue_close(c,
			               code == WS_CLOSE_NO_STATUS
			                       ? WS_CLOSE_NORMAL
			                       : code,
			               "", "client");
			c->ws_code = code;
			break;
		}
		case WS_OP_CONT:
			if (!c->ws_frag) {
				ws_queue_close(c, WS_CLOSE_PROTOCOL,
				               "continuation without a message",
				               "protocol");
				break;
			}
			c->ws_frag = !f.fin;
			break;
		default: /* text, binary: nothing is read from clients */
			if (c->ws_frag) {
				ws_queue_close(c, WS_CLOSE_PROTOCOL,
				               "message inside a message",
				               "protocol");
				break;
			}
			c->ws_frag = !f.fin;
			break;
		}
		c->in_off += f.head + (size_t)f.len;
	}
	/* closing: whatever else comes is discarded */
	c->in_off = c->in.len;
}

/* An idle WebSocket holds no input buffer. */
static void ws_trim_input(struct conn *c)
{
	if (c->in_off == c->in.len) {
		vg_buf_cleanup(&c->in);
		vg_buf_init(&c->in, 0);
		c->in_off = 0;
	}
}

static int serve(struct conn *c, int64_t now);

static void msg_unref(struct ws_msg *m)
{
	if (atomic_fetch_sub(&m->refs, 1) == 1)
		free(m);
}

/* Published messages for this loop's WebSockets. */
static void ws_fanout(struct loop *lp, struct ws_msg **msgs, int n, int64_t now)
{
	struct srv *s = lp->s;
	struct conn *dirty = NULL, *c;
	unsigned long long sent = 0, slow = 0;

	for (int i = 0; i < n; i++) {
		struct ws_msg *m = msgs[i];

		for (c = lp->conns; c; c = c->next) {
			if (c->state != C_WS || c->ws_closing ||
			    c->topic_hash != m->hash ||
			    strcmp(c->topic, m->topic) != 0)
				continue;
			if (c->out.len - c->out_off + m->len >
			    s->cfg.ws_max_queue) {
				slow++;
				ws_queue_close(c, WS_CLOSE_POLICY,
				               "too slow: events were dropped",
				               "slow_consumer");
			} else {
				out_compact(c);
				if (vg_buf_append(&c->out, m->data, m->len)) {
					c->close_after = 2;
				} else {
					c->ws_sent++;
					sent++;
				}
			}
			if (!c->ws_dirty) {
				c->ws_dirty = 1;
				c->dnext = dirty;
				dirty = c;
			}
		}
		msg_unref(m);
	}
	atomic_fetch_add(&s->ws_sent, sent);
	atomic_fetch_add(&s->ws_dropped_slow, slow);
	if (s->ops.ws_sent && (sent || slow))
		s->ops.ws_sent(sent, slow, s->ud);
	while ((c = dirty)) {
		dirty = c->dnext;
		c->ws_dirty = 0;
		if (serve(c, now))
			conn_close(c);
	}
}

/* Pings, dead clients, shutdown; 1 when the connection was closed. */
static int ws_sweep(struct conn *c, int64_t now, int stopping)
{
	struct srv *s = c->lp->s;

	if (c->deadline && now >= c->deadline) {
		if (!c->ws_closing)
			c->ws_why = "timeout";
		conn_close(c); /* output stalled, or lingered enough */
		return 1;
	}
	if (c->ws_closing)
		return 0;
	if (stopping) {
		ws_queue_close(c, WS_CLOSE_GOING_AWAY, "server shutting down",
		               "shutdown");
	} else if (now - c->ws_heard > 2 * (int64_t)s->cfg.ws_ping_ms) {
		c->ws_why = "timeout";
		conn_close(c);
		return 1;
	} else if (now >= c->ws_next_ping) {
		ws_control(c, WS_OP_PING, NULL, 0);
		c->ws_next_ping = now + s->cfg.ws_ping_ms;
	} else {
		return 0;
	}
	if (serve(c, now)) {
		conn_close(c);
		return 1;
	}
	return 0;
}

int srv_ws_publish(struct srv *s, const char *topic, const char *text,
                   size_t len)
{
	size_t tl = strlen(topic);
	struct ws_msg *m;
	int targets = 0, dropped = 0;

	if (!s->started || tl == 0 || tl > SRV_TOPIC_MAX)
		return -1;
	for (int i = 0; i < s->nloops; i++)
		targets += atomic_load(&s->loops[i].nws) > 0;
	if (!targets)
		return 0;
	m = malloc(sizeof(*m) + WS_HEADER_MAX + len);
	if (!m)
		return -1;
	m->len = ws_header(m->data, WS_OP_TEXT, len);
	memcpy(m->data + m->len, text, len);
	m->len += len;
	memcpy(m->topic, topic, tl + 1);
	m->hash = topic_hash(topic);
	atomic_init(&m->refs, targets);
	for (int i = 0; i < s->nloops && targets; i++) {
		struct loop *lp = &s->loops[i];
		uint64_t one = 1;
		int full;

		if (atomic_load(&lp->nws) == 0)
			continue;
		targets--;
		pthread_mutex_lock(&lp->mu);
		full = lp->inbox_n >= s->cfg.ws_backlog;
		if (!full)
			lp->inbox[lp->inbox_n++] = m;
		pthread_mutex_unlock(&lp->mu);
		if (full) {
			atomic_fetch_add(&s->ws_dropped_backlog, 1);
			dropped++;
			msg_unref(m);
			continue;
		}
		if (write(lp->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			vg_warn("server: eventfd write failed", "err",
			        strerror(errno));
	}
	/* loops whose last WebSocket closed meanwhile */
	while (targets--)
		msg_unref(m);
	return dropped;
}

void srv_ws_stats(struct srv *s, struct srv_ws_stats *out)
{
	out->sent = atomic_load(&s->ws_sent);
	out->dropped_slow = atomic_load(&s->ws_dropped_slow);
	out->dropped_backlog = atomic_load(&s->ws_dropped_backlog);
}

/* Build c->req from the parsed head; 0, or an HTTP status to refuse. */
static int prepare_request(struct conn *c, size_t head_len, size_t body_len)
{
	struct vg_http_head *h = &c->head;

	if (h->method_len >= sizeof(c->req.method))
		return 501;
	memcpy(c->req.method, h->method, h->method_len);
	c->req.method[h->method_len] = '\0';
	c->req.path = strndup(h->path, h->path_len);
	c->req.query = strndup(h->query, h->query_len);
	if (!c->req.path || !c->req.query)
		return 503;
	c->req.body = c->in.data + c->in_off + head_len;
	c->req.body_len = body_len;
	return 0;
}

/* Parse and answer what is buffered while the connection is in READ. */
static void process(struct conn *c, int64_t now)
{
	struct srv *s = c->lp->s;

	if (c->state == C_WS) {
		ws_process(c, now);
		ws_trim_input(c);
		return;
	}
	while (c->state == C_READ && !c->close_after) {
		size_t need, avail = c->in.len - c->in_off;
		int rc, refuse;

		if (avail == 0) {
			c->deadline = now + s->cfg.idle_timeout_ms;
			return;
		}
		/* responses the peer has not read yet: answer more later */
		if (c->out.len > OUT_HIGH_WATER)
			return;
		if (!c->started) {
			c->started = 1;
			c->deadline = now + s->cfg.request_timeout_ms;
			c->req.started = vg_mono_s();
		}
		rc = vg_http_parse(c->in.data + c->in_off, avail,
		                   s->cfg.max_header, &c->head);
		if (rc == VG_AGAIN)
			return;
		if (rc != VG_OK) {
			reply_error(c, c->head.status, c->head.error);
			return;
		}
		request_id(c);
		if (c->head.content_length > (long long)s->cfg.max_body) {
			size_t ml = c->head.method_len < sizeof(c->req.method)
			                    ? c->head.method_len
			                    : sizeof(c->req.method) - 1;

			memcpy(c->req.method, c->head.method, ml);
			c->req.method[ml] = '\0';
			reply_error(c, 413, "request body too large");
			return;
		}
		need = c->head.head_len +
		       (size_t)(c->head.content_length > 0
		                        ? c->head.content_length
		                        : 0);
		if (avail < need) {
			if (c->head.expect_continue && !c->continue_sent) {
				vg_buf_append_str(
					&c->out,
					"HTTP/1.1 100 Continue\r\n\r\n");
				c->continue_sent = 1;
			}
			return;
		}
		if (!c->head.keep_alive || atomic_load(&s->stopping))
			c->close_after = 1;
		refuse = prepare_request(c, c->head.head_len,
		                         need - c->head.head_len);
		if (refuse) {
			reply_error(c, refuse,
			            refuse == 501 ? "method not implemented"
			                          : "out of memory");
			return;
		}
		if (s->ops.is_inline && s->ops.is_inline(&c->req, s->ud)) {
			s->ops.handle(&c->req, &c->resp, s->ud);
			/* and on to what else is pipelined before writing */
			finish_request(c, need);
			continue;
		}
		c->req_len = need;
		c->state = C_BUSY;
		c->deadline = 0;
		enqueue(s, c);
		return;
	}
}

/* read(2), or SSL_read on a TLS connection: > 0 bytes, 0 at the end of
 * the stream, -1 with errno (EAGAIN: the transport waits for the socket). */
static ssize_t io_read(struct conn *c, void *buf, size_t n)
{
	int r, e;

	if (!c->ssl)
		return read(c->fd, buf, n);
	ERR_clear_error();
	r = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		/* a handshake message to send first: retry when writable */
		if (e == SSL_ERROR_WANT_WRITE)
			c->read_pending = 1;
		errno = EAGAIN;
		return -1;
	}
	errno = EPROTO;
	return -1;
}

static ssize_t io_write(struct conn *c, const void *buf, size_t n)
{
	int r, e;

	if (!c->ssl)
		return send(c->fd, buf, n, MSG_NOSIGNAL);
	ERR_clear_error();
	r = SSL_write(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	errno = EPROTO;
	return -1;
}

static int conn_read(struct conn *c)
{
	size_t max_in =
		c->state == C_WS
			? c->lp->s->cfg.ws_max_frame + WS_HEADER_MAX + SLACK_IN
			: c->lp->s->cfg.max_header + c->lp->s->cfg.max_body +
				  SLACK_IN;

	c->read_pending = 0;
	if (c->in_off) {
		/* drop answered requests before reading more */
		memmove(c->in.data, c->in.data + c->in_off,
		        c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in.data[c->in.len] = '\0';
		c->in_off = 0;
	}
	for (;;) {
		ssize_t n;
		size_t room;

		if (c->in.len >= max_in) {
			c->read_pending = 1;
			return 0;
		}
		/* a WebSocket reads little (control frames): a small
		 * buffer each, not a request's */
		room = c->state == C_WS ? WS_READ_CHUNK : 16384;
		if (max_in - c->in.len < room)
			room = max_in - c->in.len;
		if (vg_buf_reserve(&c->in, room))
			return -1;
		n = io_read(c, c->in.data + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->in.data[c->in.len] = '\0';
			/* a short read drained the socket (saves an EAGAIN
			 * read); TLS reads return a record at a time */
			if ((size_t)n < room && !c->ssl)
				return 0;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return -1;
	}
}

/* Write what is queued; -1 on error. */
static int conn_write(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = io_write(c, c->out.data + c->out_off,
		                     c->out.len - c->out_off);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return -1;
	}
	vg_buf_reset(&c->out);
	c->out_off = 0;
	/* a WebSocket lives long: give back what a burst made it take */
	if (c->state == C_WS && c->out.cap > WS_KEEP_OUT) {
		vg_buf_cleanup(&c->out);
		vg_buf_init(&c->out, 0);
	}
	return 0;
}

/* Drive a connection after an event: write what is queued, read what
 * was left unread, answer what is buffered. 0 to keep it, -1 to close. */
static int serve(struct conn *c, int64_t now)
{
	for (;;) {
		size_t queued;

		if (c->out.len) {
			if (conn_write(c))
				return -1;
			if (c->out.len) {
				/* the peer is not reading: bound the wait */
				if (c->state != C_WS || !c->deadline)
					c->deadline =
						now +
						c->lp->s->cfg
							.request_timeout_ms;
				return 0;
			}
			if (c->state == C_WS && !c->lingering)
				c->deadline = 0;
		}
		if (c->close_after && c->state == C_READ)
			return -1;
		if (c->close_after && c->state == C_WS) {
			/* our close frame is out: half-close and read until
			 * the client closes too, so that what it still sends
			 * does not turn our close into a reset */
			if (c->ssl || c->peer_gone || c->close_after == 2)
				return -1;
			if (!c->lingering) {
				shutdown(c->fd, SHUT_WR);
				c->lingering = 1;
				c->deadline = now + WS_LINGER_MS;
			}
		}
		if (c->state == C_BUSY)
			return 0;
		if (c->read_pending && conn_read(c))
			c->peer_gone = 1;
		queued = c->out.len;
		process(c, now);
		if (c->out.len > queued)
			continue;
		if (c->peer_gone)
			return -1;
		return 0;
	}
}

static void on_conn_event(struct conn *c, uint32_t ev, int64_t now)
{
	if (ev & (EPOLLERR | EPOLLHUP))
		c->peer_gone = 1;
	if (c->state == C_BUSY) {
		if (ev & EPOLLIN)
			c->read_pending = 1;
		if (c->out.len && serve(c, now) && c->state != C_BUSY)
			conn_close(c);
		return;
	}
	if ((ev & (EPOLLIN | EPOLLRDHUP)) && conn_read(c))
		c->peer_gone = 1;
	if (serve(c, now))
		conn_close(c);
}

static void refuse_conn(int fd)
{
	static const char body[] =
		"{\"error\":{\"code\":\"unavailable\",\"message\":"
		"\"too many connections\",\"request_id\":\"\"}}";
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
	                 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
	                 "application/json\r\nContent-Length: %zu\r\n"
	                 "Retry-After: 1\r\nConnection: close\r\n\r\n%s",
	                 sizeof(body) - 1, body);

	if (n > 0 &&
	    send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the peer learns from the close */
	}
	close(fd);
}

/* Out of descriptors: the pending connection would wake every loop again
 * and again. Give back the reserve descriptor, take the connection and
 * close it, and take the reserve again (nginx and libev do the same). */
static void shed_connection(struct srv *s)
{
	int fd;

	if (s->reserve_fd < 0)
		return;
	close(s->reserve_fd);
	fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_all(struct loop *lp, int64_t now)
{
	struct srv *s = lp->s;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct epoll_event ev = {0};
		struct conn *c;
		int one = 1;
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				pthread_mutex_lock(&s->qmu);
				shed_connection(s);
				pthread_mutex_unlock(&s->qmu);
				vg_warn("server: out of file descriptors; "
				        "connection refused");
			}
			return;
		}
		if (atomic_fetch_add(&s->nconns, 1) >= s->cfg.max_conns ||
		    !(c = calloc(1, sizeof(*c)))) {
			atomic_fetch_sub(&s->nconns, 1);
			if (s->cfg.tls_ctx)
				close(fd); /* no plain text on a TLS port */
			else
				refuse_conn(fd);
			continue;
		}
		if (s->cfg.tls_ctx) {
			c->ssl = SSL_new(s->cfg.tls_ctx);
			if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
				SSL_free(c->ssl);
				free(c);
				atomic_fetch_sub(&s->nconns, 1);
				close(fd);
				continue;
			}
			SSL_set_accept_state(c->ssl);
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->lp = lp;
		c->state = C_READ;
		c->deadline = now + s->cfg.idle_timeout_ms;
		vg_buf_init(&c->in, 0);
		vg_buf_init(&c->out, 0);
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET,
			          &((struct sockaddr_in *)&ss)->sin_addr,
			          c->peer, sizeof(c->peer));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6,
			          &((struct sockaddr_in6 *)&ss)->sin6_addr,
			          c->peer, sizeof(c->peer));
		req_reset(c);
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = c;
		if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			atomic_fetch_sub(&s->nconns, 1);
			close(fd);
			free(c);
			continue;
		}
		c->next = lp->conns;
		if (lp->conns)
			lp->conns->prev = c;
		lp->conns = c;
		lp->nconns++;
	}
}

/* Responses handler threads finished. */
static void drain_done(struct loop *lp, int64_t now)
{
	struct conn *c;
	struct ws_msg **msgs;
	int nmsgs;
	uint64_t v;

	if (read(lp->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vg_warn("server: eventfd read failed", "err", strerror(errno));
	pthread_mutex_lock(&lp->mu);
	c = lp->done;
	lp->done = NULL;
	msgs = lp->inbox;
	nmsgs = lp->inbox_n;
	lp->inbox = lp->spare;
	lp->spare = msgs;
	lp->inbox_n = 0;
	pthread_mutex_unlock(&lp->mu);
	if (nmsgs)
		ws_fanout(lp, msgs, nmsgs, now);
	while (c) {
		struct conn *next = c->qnext;

		finish_request(c, c->req_len);
		if (serve(c, now))
			conn_close(c);
		c = next;
	}
}

static void sweep(struct loop *lp, int64_t now)
{
	struct conn *c = lp->conns, *next;
	int stopping = atomic_load(&lp->s->stopping);

	for (; c; c = next) {
		next = c->next;
		if (c->state == C_BUSY)
			continue;
		if (c->state == C_WS) {
			ws_sweep(c, now, stopping);
			continue;
		}
		if (stopping && c->state == C_READ && c->in.len == c->in_off) {
			conn_close(c); /* idle keep-alive connection */
			continue;
		}
		if (!c->deadline || now < c->deadline)
			continue;
		if (c->state == C_READ && c->started && !c->close_after &&
		    !c->out.len) {
			reply_error(c, 408, "request not received in time");
			if (serve(c, now))
				conn_close(c);
			continue;
		}
		conn_close(c);
	}
}

static void *loop_main(void *arg)
{
	struct loop *lp = arg;
	struct srv *s = lp->s;
	struct epoll_event evs[MAX_EVENTS];
	int64_t last_sweep = vg_mono_ms(), drain_until = 0;
	int listening = 1;

	for (;;) {
		int n = epoll_wait(lp->epfd, evs, MAX_EVENTS, SWEEP_MS);
		int64_t now = vg_mono_ms();

		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &s->listen_fd)
				accept_all(lp, now);
			else if (p == &lp->evfd)
				drain_done(lp, now);
			else
				on_conn_event(p, evs[i].events, now);
		}
		if (atomic_load(&s->stopping)) {
			if (listening) {
				epoll_ctl(lp->epfd, EPOLL_CTL_DEL, s->listen_fd,
				          NULL);
				listening = 0;
				drain_until = now + s->cfg.drain_timeout_ms;
				last_sweep = 0;
			}
		}
		if (now - last_sweep >= SWEEP_MS) {
			sweep(lp, now);
			last_sweep = now;
		}
		if (!listening) {
			int busy = 0;

			for (struct conn *c = lp->conns; c; c = c->next)
				busy += c->state == C_BUSY;
			if (lp->nconns == 0)
				break;
			if (now >= drain_until && !busy) {
				while (lp->conns)
					conn_close(lp->conns);
				break;
			}
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                               */
/* ------------------------------------------------------------------ */

static int split_addr(const char *addr, char *host, size_t hsize, char *port,
                      size_t psize)
{
	const char *colon, *h = addr;
	size_t hlen;

	if (addr[0] == '[') {
		const char *close_br = strchr(addr, ']');

		if (!close_br || close_br[1] != ':')
			return -1;
		h = addr + 1;
		hlen = (size_t)(close_br - h);
		colon = close_br + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -1;
		hlen = (size_t)(colon - addr);
	}
	if (hlen >= hsize || !colon[1] || strlen(colon + 1) >= psize)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return strtol(port, NULL, 10) > 65535 ? -1 : 0;
}

static int bind_listen(struct srv *s, struct vg_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[8];
	int gai, fd = -1;

	if (split_addr(s->cfg.addr, host, sizeof(host), port, sizeof(port)))
		return vg_err_set(err, VG_CONFIG, "bad listen address \"%s\"",
		                  s->cfg.addr);
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai)
		return vg_err_set(err, VG_CONFIG, "resolve %s: %s", s->cfg.addr,
		                  gai_strerror(gai));
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 1024) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return vg_err_sys(err, VG_IO, "listen on %s", s->cfg.addr);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		close(fd);
		return vg_err_sys(err, VG_IO, "getsockname");
	}
	s->listen_fd = fd;
	s->port = ss.ss_family == AF_INET6
	                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return VG_OK;
}

int srv_new(const struct srv_config *cfg, const struct srv_ops *ops, void *ud,
            struct srv **out, struct vg_err *err)
{
	struct srv *s;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	*out = NULL;
	if (!cfg->addr || !ops->handle)
		return vg_err_set(err, VG_INVAL,
		                  "server: address and handler "
		                  "are required");
	s = calloc(1, sizeof(*s));
	if (!s)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	s->cfg = *cfg;
	s->ops = *ops;
	s->ud = ud;
	s->listen_fd = -1;
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->cfg.loops <= 0)
		s->cfg.loops = ncpu > 0 ? (int)ncpu : 1;
	if (s->cfg.workers <= 0)
		s->cfg.workers = 16;
	if (s->cfg.max_conns <= 0)
		s->cfg.max_conns = 4096;
	if (!s->cfg.max_header)
		s->cfg.max_header = 16 << 10;
	if (!s->cfg.max_body)
		s->cfg.max_body = 1 << 20;
	if (s->cfg.request_timeout_ms <= 0)
		s->cfg.request_timeout_ms = 10000;
	if (s->cfg.idle_timeout_ms <= 0)
		s->cfg.idle_timeout_ms = 60000;
	if (s->cfg.drain_timeout_ms <= 0)
		s->cfg.drain_timeout_ms = 20000;
	if (!s->cfg.ws_max_frame)
		s->cfg.ws_max_frame = 64 << 10;
	if (s->cfg.ws_max_frame > s->cfg.max_body)
		s->cfg.ws_max_frame = s->cfg.max_body;
	if (!s->cfg.ws_max_queue)
		s->cfg.ws_max_queue = 256 << 10;
	if (s->cfg.ws_ping_ms <= 0)
		s->cfg.ws_ping_ms = 30000;
	if (s->cfg.ws_backlog <= 0)
		s->cfg.ws_backlog = 8192;
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcond, NULL);
	if ((rc = bind_listen(s, err)) != VG_OK) {
		srv_free(s);
		return rc;
	}
	*out = s;
	return VG_OK;
}

int srv_port(const struct srv *s)
{
	return s->port;
}

static int loop_init(struct srv *s, struct loop *lp, struct vg_err *err)
{
	struct epoll_event ev = {0};

	lp->s = s;
	lp->evfd = -1;
	pthread_mutex_init(&lp->mu, NULL);
	lp->inbox = calloc((size_t)s->cfg.ws_backlog, sizeof(*lp->inbox));
	lp->spare = calloc((size_t)s->cfg.ws_backlog, sizeof(*lp->spare));
	if (!lp->inbox || !lp->spare)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp->epfd < 0)
		return vg_err_sys(err, VG_IO, "epoll_create1");
	lp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lp->evfd < 0)
		return vg_err_sys(err, VG_IO, "eventfd");
	ev.events = EPOLLIN;
	ev.data.ptr = &lp->evfd;
	if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->evfd, &ev))
		return vg_err_sys(err, VG_IO, "epoll_ctl");
	/* every loop waits on the one listening socket; EPOLLEXCLUSIVE
	 * wakes one of them per connection instead of all */
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.ptr = &s->listen_fd;
	if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev))
		return vg_err_sys(err, VG_IO, "epoll_ctl");
	return VG_OK;
}

int srv_start(struct srv *s, struct vg_err *err)
{
	int rc;

	if (s->started)
		return vg_err_set(err, VG_INVAL, "server already started");
	s->loops = calloc((size_t)s->cfg.loops, sizeof(*s->loops));
	s->workers = calloc((size_t)s->cfg.workers, sizeof(*s->workers));
	if (!s->loops || !s->workers)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	s->started = 1;
	for (int i = 0; i < s->cfg.workers; i++) {
		if (pthread_create(&s->workers[i], NULL, worker_main, s))
			return vg_err_sys(err, VG_IO, "pthread_create");
		s->nworkers++;
	}
	for (int i = 0; i < s->cfg.loops; i++) {
		if ((rc = loop_init(s, &s->loops[i], err)) != VG_OK) {
			s->nloops = i + 1;
			return rc;
		}
		s->nloops = i + 1;
		if (pthread_create(&s->loops[i].th, NULL, loop_main,
		                   &s->loops[i]))
			return vg_err_sys(err, VG_IO, "pthread_create");
		s->loops[i].started = 1;
	}
	return VG_OK;
}

void srv_shutdown(struct srv *s)
{
	if (!s || !s->started)
		return;
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->nloops; i++) {
		if (s->loops[i].started) {
			uint64_t one = 1;

			if (write(s->loops[i].evfd, &one, sizeof(one)) < 0) {
				/* the loop wakes on its sweep anyway */
			}
			pthread_join(s->loops[i].th, NULL);
			s->loops[i].started = 0;
		}
	}
	pthread_mutex_lock(&s->qmu);
	s->qstop = 1;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qmu);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	s->nworkers = 0;
	s->started = 0;
}

void srv_free(struct srv *s)
{
	if (!s)
		return;
	srv_shutdown(s);
	for (int i = 0; i < s->nloops; i++) {
		struct loop *lp = &s->loops[i];

		while (lp->conns)
			conn_close(lp->conns);
		for (int j = 0; j < lp->inbox_n; j++)
			msg_unref(lp->inbox[j]);
		free(lp->inbox);
		free(lp->spare);
		if (lp->epfd >= 0)
			close(lp->epfd);
		if (lp->evfd >= 0)
			close(lp->evfd);
		pthread_mutex_destroy(&lp->mu);
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	free(s->loops);
	free(s->workers);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcond);
	free(s);
}
