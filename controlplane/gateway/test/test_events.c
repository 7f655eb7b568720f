/*
 * test_events.c - GET /v1/events against real PostgreSQL and Redis: the
 * WebSocket handshake and its refusals, tenant isolation, events from a
 * real ingest and from the real vigil-worker, the protocol (ping, close
 * handshake, unmasked and oversized frames, a slow consumer) and a Redis
 * restart under the gateway. The client is a small RFC 6455 client on a
 * raw socket, so every byte the server sends is checked.
 */
#include "harness.h"

#include "vigil/events.h"
#include "vigil/timeutil.h"
#include "ws.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

/* the example of RFC 6455 section 1.3 */
#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct wsc {
	int fd;
	struct vg_buf in; /* received, not yet returned */
	char head[4096];  /* the handshake's response head */
	int status;
};

static void sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

static int tcp_connect(int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)H.port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		fail_msg("connect: %s", strerror(errno));
	return fd;
}

/* Read more into c->in; 0 on timeout, -1 at the end of the stream. */
static int wsc_fill(struct wsc *c, int timeout_ms)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	char buf[16384];
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	n = read(c->fd, buf, sizeof(buf));
	if (n <= 0)
		return -1;
	vg_buf_append(&c->in, buf, (size_t)n);
	return 1;
}

/* Send a handshake with `headers` (complete lines) and read the response
 * head; the status. With rcvbuf, the socket's receive buffer is that
 * small (a slow client). */
static int wsc_open_ex(struct wsc *c, const char *path, const char *token,
                       const char *headers, int rcvbuf)
{
	char req[2048];
	int n;

	memset(c, 0, sizeof(*c));
	vg_buf_init(&c->in, 0);
	c->fd = tcp_connect(rcvbuf);
	n = snprintf(req, sizeof(req),
	             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s\r\n", path,
	             token ? "Authorization: Bearer " : "", token ? token : "",
	             token ? "\r\n" : "", headers);
	if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		fail_msg("send handshake");
	for (int t = 0; t < 100; t++) {
		const char *end =
			c->in.len ? strstr(vg_buf_str(&c->in), "\r\n\r\n")
				  : NULL;

		if (end) {
			size_t hl = (size_t)(end - c->in.data) + 4;

			snprintf(c->head, sizeof(c->head), "%.*s", (int)hl,
			         c->in.data);
			memmove(c->in.data, c->in.data + hl, c->in.len - hl);
			c->in.len -= hl;
			c->status = (int)strtol(c->head + 9, NULL, 10);
			return c->status;
		}
		if (wsc_fill(c, 100) < 0)
			break;
	}
	fail_msg("no handshake response: %s", vg_buf_str(&c->in));
	return -1;
}

static const char std_headers[] = "Upgrade: websocket\r\n"
				  "Connection: Upgrade\r\n"
				  "Sec-WebSocket-Key: " RFC_KEY "\r\n"
				  "Sec-WebSocket-Version: 13\r\n";

static void wsc_open(struct wsc *c, const char *token)
{
	int st = wsc_open_ex(c, "/v1/events", token, std_headers, 0);

	if (st != 101)
		fail_msg("handshake: %d: %s", st, c->head);
}

static void wsc_close(struct wsc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	vg_buf_cleanup(&c->in);
}

/* The value of a header of the response head, or "". */
static const char *head_value(const struct wsc *c, const char *name, char *out,
                              size_t size)
{
	const char *p = c->head;
	size_t nl = strlen(name);

	out[0] = '\0';
	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1 + strspn(p + nl + 1, " ");

			snprintf(out, size, "%.*s", (int)strcspn(v, "\r"), v);
			break;
		}
	}
	return out;
}

/* Send a frame; masked unless `unmasked`. */
static void wsc_send(struct wsc *c, int op, const void *payload, size_t len,
                     int unmasked)
{
	unsigned char h[WS_HEADER_MAX], mask[4] = {0x12, 0x34, 0x56, 0x78};
	size_t hl = ws_header(h, op, len);
	struct vg_buf b;

	vg_buf_init(&b, 0);
	if (!unmasked)
		h[1] |= 0x80;
	vg_buf_append(&b, h, hl);
	if (!unmasked)
		vg_buf_append(&b, mask, 4);
	vg_buf_append(&b, payload, len);
	if (!unmasked)
		ws_unmask((unsigned char *)b.data + hl + 4, len, mask, 0);
	if (send(c->fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
		fail_msg("send frame: %s", strerror(errno));
	vg_buf_cleanup(&b);
}

/* The next server frame: its opcode and payload (new, NUL-terminated),
 * or -1 when none came within `timeout_ms` / the stream ended. Server
 * frames must be final and unmasked. */
static int wsc_recv(struct wsc *c, int timeout_ms, char **payload, size_t *len)
{
	for (int waited = 0;;) {
		const unsigned char *p = (const unsigned char *)c->in.data;
		size_t hl = 2;
		uint64_t n;

		if (c->in.len >= 2) {
			assert_int_equal(p[0] & 0x80, 0x80); /* FIN */
			assert_int_equal(p[1] & 0x80, 0);    /* unmasked */
			n = p[1] & 0x7f;
			if (n == 126 && c->in.len >= 4) {
				n = (uint64_t)p[2] << 8 | p[3];
				hl = 4;
			} else if (n == 127 && c->in.len >= 10) {
				n = 0;
				for (int i = 0; i < 8; i++)
					n = n << 8 | p[2 + i];
				hl = 10;
			} else if (n >= 126) {
				n = UINT64_MAX;
			}
			if (n != UINT64_MAX && c->in.len >= hl + n) {
				int op = p[0] & 0x0f;

				*payload = malloc((size_t)n + 1);
				memcpy(*payload, p + hl, (size_t)n);
				(*payload)[n] = '\0';
				if (len)
					*len = (size_t)n;
				memmove(c->in.data, c->in.data + hl + n,
				        c->in.len - hl - (size_t)n);
				c->in.len -= hl + (size_t)n;
				return op;
			}
		}
		if (waited >= timeout_ms)
			return -1;
		if (wsc_fill(c, 50) < 0)
			return -1;
		waited += 50;
	}
}

/* The next text frame as JSON (new), skipping pings; NULL when none. */
static json_t *wsc_event(struct wsc *c, int timeout_ms)
{
	for (;;) {
		char *p = NULL;
		int op = wsc_recv(c, timeout_ms, &p, NULL);
		json_t *j;

		if (op == WS_OP_PING) {
			free(p);
			continue;
		}
		if (op != WS_OP_TEXT) {
			free(p);
			return NULL;
		}
		j = json_loads(p, 0, NULL);
		if (!j)
			fail_msg("not JSON: %s", p);
		free(p);
		return j;
	}
}

/* The next event of `type`, skipping others; fails after timeout. */
static json_t *wsc_expect(struct wsc *c, const char *type, int timeout_ms)
{
	int64_t end = vg_mono_ms() + timeout_ms;

	while (vg_mono_ms() < end) {
		json_t *e = wsc_event(c, (int)(end - vg_mono_ms()));

		if (!e)
			break;
		if (strcmp(vg_json_get_str(e, "type", ""), type) == 0)
			return e;
		json_decref(e);
	}
	fail_msg("no %s event within %d ms", type, timeout_ms);
	return NULL;
}

/* The close frame's code, after any other frames; -1 without one. */
static int wsc_close_code(struct wsc *c, int timeout_ms)
{
	for (;;) {
		char *p = NULL;
		size_t n = 0;
		int op = wsc_recv(c, timeout_ms, &p, &n), code;

		if (op < 0)
			return -1;
		if (op != WS_OP_CLOSE) {
			free(p);
			continue;
		}
		code = n >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1])
		              : 1005;
		free(p);
		return code;
	}
}

/* 1 when the server closed the stream within `timeout_ms`. */
static int wsc_eof(struct wsc *c, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		int r = wsc_fill(c, 50);

		if (r < 0)
			return 1;
		if (r > 0)
			vg_buf_reset(&c->in);
	}
	return 0;
}

/* Publish an event as the worker does (lib/events.c). */
static void publish(const char *tenant, const char *type, const char *run,
                    const char *claimed_tenant)
{
	struct vg_events_opts o = {.host = "127.0.0.1", .port = H.redis.port};
	struct vg_events *e = NULL;
	struct vg_err err = {0};
	json_t *ev = vg_event_new(type, tenant, run, "test");
	char ch[VG_EVENTS_CHANNEL_MAX];

	assert_int_equal(vg_events_new(&o, &e, &err), VG_OK);
	if (!claimed_tenant) {
		if (vg_events_publish(e, ev, NULL, &err) != VG_OK)
			fail_msg("publish: %s", err.msg);
	} else {
		/* a publisher that names another tenant inside the event
		 * than its channel's */
		struct timeval tv = {2, 0};
		redisContext *rc =
			redisConnectWithTimeout("127.0.0.1", H.redis.port, tv);
		char *body;

		json_object_set_new(ev, "tenant_id",
		                    json_string(claimed_tenant));
		body = json_dumps(ev, JSON_COMPACT);
		vg_events_channel("vigil", tenant, ch, sizeof(ch));
		freeReplyObject(redisCommand(rc, "PUBLISH %s %s", ch, body));
		free(body);
		redisFree(rc);
	}
	json_decref(ev);
	vg_events_free(e);
}

/* Wait until the gateway is subscribed (after start or a restart). */
static void wait_subscribed(void)
{
	for (int t = 0; t < 15000; t += 50) {
		if (gw_eventsub_connected(gw_app_gw(H.app)))
			return;
		sleep_ms(50);
	}
	fail_msg("the gateway never subscribed to the events");
}

/* A value of /metrics, -1 when absent. */
static double metric(const char *series)
{
	struct h_resp r;
	const char *p;
	double v = -1;

	h_req_ex(H.hport, "GET", "/metrics", NULL, NULL, 0, NULL, NULL, &r);
	for (p = vg_buf_str(&r.body); p && (p = strstr(p, series));
	     p += strlen(series)) {
		if ((p == r.body.data || p[-1] == '\n') &&
		    p[strlen(series)] == ' ') {
			v = strtod(p + strlen(series) + 1, NULL);
			break;
		}
	}
	h_resp_free(&r);
	return v;
}

static char tenant_a[37], tenant_b[37];
static char viewer_a[80], viewer_b[80], agent_a[80];

/* ------------------------------------------------------------------ */

static void test_accept_key(void **state)
{
	char out[WS_ACCEPT_LEN + 1];

	(void)state;
	assert_int_equal(ws_accept(RFC_KEY, out), 0);
	assert_string_equal(out, RFC_ACCEPT);
	assert_true(ws_key_valid(RFC_KEY));
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=!"));
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZ*=="));
	assert_false(ws_key_valid(""));
}

static void test_handshake(void **state)
{
	struct wsc c;
	char v[128], path[128];
	struct h_resp r;

	(void)state;
	wsc_open(&c, viewer_a);
	assert_string_equal(
		head_value(&c, "Sec-WebSocket-Accept", v, sizeof(v)),
		RFC_ACCEPT);
	assert_string_equal(head_value(&c, "Upgrade", v, sizeof(v)),
	                    "websocket");
	assert_string_equal(head_value(&c, "Connection", v, sizeof(v)),
	                    "Upgrade");
	assert_true(head_value(&c, "X-Request-ID", v, sizeof(v))[0]);
	assert_null(strstr(c.head, "Content-Length"));
	wsc_close(&c);

	/* the tenant named in the query, for a caller of one tenant */
	snprintf(path, sizeof(path), "/v1/events?tenant=%s", tenant_a);
	assert_int_equal(wsc_open_ex(&c, path, viewer_a, std_headers, 0), 101);
	wsc_close(&c);

	/* no WebSocket asked for: 426 naming the upgrade */
	assert_int_equal(h_req("GET", "/v1/events", viewer_a, NULL, &r), 426);
	assert_true(h_header(&r, "Upgrade", v, sizeof(v)));
	assert_string_equal(v, "websocket");
	assert_string_equal(h_err_code(&r), "upgrade_required");
	h_resp_free(&r);
	/* another version */
	assert_int_equal(wsc_open_ex(&c, "/v1/events", viewer_a,
	                             "Upgrade: websocket\r\n"
	                             "Connection: Upgrade\r\n"
	                             "Sec-WebSocket-Key: " RFC_KEY "\r\n"
	                             "Sec-WebSocket-Version: 8\r\n",
	                             0),
	                 426);
	assert_string_equal(
		head_value(&c, "Sec-WebSocket-Version", v, sizeof(v)), "13");
	wsc_close(&c);
	/* no key, a bad key */
	assert_int_equal(wsc_open_ex(&c, "/v1/events", viewer_a,
	                             "Upgrade: websocket\r\n"
	                             "Connection: Upgrade\r\n"
	                             "Sec-WebSocket-Version: 13\r\n",
	                             0),
	                 400);
	wsc_close(&c);
	assert_int_equal(wsc_open_ex(&c, "/v1/events", viewer_a,
	                             "Upgrade: websocket\r\n"
	                             "Connection: Upgrade\r\n"
	                             "Sec-WebSocket-Key: c2hvcnQ=\r\n"
	                             "Sec-WebSocket-Version: 13\r\n",
	                             0),
	                 400);
	wsc_close(&c);
	/* Connection without upgrade */
	assert_int_equal(wsc_open_ex(&c, "/v1/events", viewer_a,
	                             "Upgrade: websocket\r\n"
	                             "Connection: keep-alive\r\n"
	                             "Sec-WebSocket-Key: " RFC_KEY "\r\n"
	                             "Sec-WebSocket-Version: 13\r\n",
	                             0),
	                 400);
	wsc_close(&c);
	/* no credentials; an agent token (no events:subscribe) */
	assert_int_equal(wsc_open_ex(&c, "/v1/events", NULL, std_headers, 0),
	                 401);
	wsc_close(&c);
	assert_int_equal(wsc_open_ex(&c, "/v1/events", "vgk_00000000_nope",
	                             std_headers, 0),
	                 401);
	wsc_close(&c);
	assert_int_equal(wsc_open_ex(&c, "/v1/events", agent_a, std_headers, 0),
	                 403);
	wsc_close(&c);
	/* another tenant's events: as if it did not exist */
	snprintf(path, sizeof(path), "/v1/events?tenant=%s", tenant_b);
	assert_int_equal(wsc_open_ex(&c, path, viewer_a, std_headers, 0), 404);
	wsc_close(&c);
	/* the platform admin names the tenant */
	assert_int_equal(
		wsc_open_ex(&c, "/v1/events", BOOTSTRAP_KEY, std_headers, 0),
		400);
	wsc_close(&c);
	assert_int_equal(wsc_open_ex(&c, path, BOOTSTRAP_KEY, std_headers, 0),
	                 101);
	wsc_close(&c);
}

static void test_tenant_isolation(void **state)
{
	struct wsc a, b, admin_b;
	char path[128];
	json_t *e;

	(void)state;
	wait_subscribed();
	wsc_open(&a, viewer_a);
	wsc_open(&b, viewer_b);
	snprintf(path, sizeof(path), "/v1/events?tenant=%s", tenant_b);
	assert_int_equal(
		wsc_open_ex(&admin_b, path, BOOTSTRAP_KEY, std_headers, 0),
		101);
	sleep_ms(100);

	publish(tenant_a, "run.progress", "run-a", NULL);
	e = wsc_expect(&a, "run.progress", 3000);
	assert_string_equal(vg_json_get_str(e, "tenant_id", ""), tenant_a);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), "run-a");
	json_decref(e);
	/* an event on A's channel claiming to be B's reaches no one */
	publish(tenant_a, "run.progress", "forged", tenant_b);

	publish(tenant_b, "run.finalized", "run-b", NULL);
	/* B's first event is its own: A's never came */
	e = wsc_event(&b, 3000);
	assert_non_null(e);
	assert_string_equal(vg_json_get_str(e, "type", ""), "run.finalized");
	assert_string_equal(vg_json_get_str(e, "tenant_id", ""), tenant_b);
	json_decref(e);
	e = wsc_event(&admin_b, 3000);
	assert_non_null(e);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), "run-b");
	json_decref(e);
	/* and A got nothing more: not B's, not the forged one */
	e = wsc_event(&a, 500);
	if (e)
		fail_msg("tenant A received %s",
		         vg_json_get_str(e, "run_id", "?"));
	assert_true(metric("vigil_events_dropped_total{reason=\"invalid\"}") >=
	            1);
	assert_true(metric("vigil_events_connections") >= 3);
	assert_true(metric("vigil_events_sent_total") >= 3);
	wsc_close(&a);
	wsc_close(&b);
	wsc_close(&admin_b);
}

/* Many clients (on both event loops) and many events: every client gets
 * every event of its tenant, once, in order. */
static void test_fanout_order(void **state)
{
	enum { NCLIENTS = 12, NEVENTS = 400 };
	struct wsc c[NCLIENTS];
	struct vg_events_opts o = {.host = "127.0.0.1", .port = H.redis.port};
	struct vg_events *e = NULL;
	struct vg_err err = {0};

	(void)state;
	wait_subscribed();
	for (int i = 0; i < NCLIENTS; i++)
		wsc_open(&c[i], i % 3 == 2 ? viewer_b : viewer_a);
	sleep_ms(100);
	assert_int_equal(vg_events_new(&o, &e, &err), VG_OK);
	for (int k = 0; k < NEVENTS; k++) {
		json_t *ev = vg_event_new("run.progress",
		                          k % 2 ? tenant_b : tenant_a, "order",
		                          NULL);

		json_object_set_new(ev, "seq", json_integer(k));
		assert_int_equal(vg_events_publish(e, ev, NULL, &err), VG_OK);
		json_decref(ev);
	}
	for (int i = 0; i < NCLIENTS; i++) {
		const char *mine = i % 3 == 2 ? tenant_b : tenant_a;

		for (int k = i % 3 == 2 ? 1 : 0; k < NEVENTS; k += 2) {
			json_t *ev = wsc_event(&c[i], 5000);

			if (!ev)
				fail_msg("client %d: event %d missing", i, k);
			assert_string_equal(
				vg_json_get_str(ev, "tenant_id", ""), mine);
			assert_int_equal(vg_json_get_int(ev, "seq", -1), k);
			json_decref(ev);
		}
		wsc_close(&c[i]);
	}
	vg_events_free(e);
}

static char *ingest_body(const char *job, const char *batch, int shard,
                         int shards, int final)
{
	char *s = NULL;

	if (asprintf(&s,
	             "{\"job_name\":\"%s\",\"shards\":%d,\"shard\":%d,"
	             "\"batch_id\":\"%s\",\"final\":%s,\"findings\":["
	             "{\"host\":\"10.0.0.%d\",\"port\":22,\"scanner\":"
	             "\"banner\",\"severity\":\"high\",\"fingerprint\":"
	             "\"b:%s\"}]}",
	             job, shards, shard, batch, final ? "true" : "false",
	             shard + 1, batch) < 0)
		fail_msg("asprintf");
	return s;
}

/* A real ingest, then the real worker and brain: ingest.accepted from
 * the gateway, run.progress and run.finalized from vigil-worker,
 * report.ready from vigil-brain. */
static void test_end_to_end(void **state)
{
	struct wsc a;
	struct h_resp r;
	char path[128], bin[PATH_MAX + 32], brain[PATH_MAX + 32], port[16];
	char *body;
	char run[40];
	json_t *e;
	pid_t pid, bpid;
	int st;

	(void)state;
	wait_subscribed();
	wsc_open(&a, viewer_a);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ingest", tenant_a);
	body = ingest_body("job-events", "e-0", 0, 2, 1);
	h_expect(202, "POST", path, agent_a, body, &r);
	free(body);
	e = wsc_expect(&a, "ingest.accepted", 3000);
	snprintf(run, sizeof(run), "%s", vg_json_get_str(r.json, "run_id", ""));
	assert_string_equal(vg_json_get_str(e, "run_id", ""), run);
	assert_string_equal(vg_json_get_str(e, "batch_id", ""), "e-0");
	assert_int_equal(vg_json_get_int(e, "findings", -1), 1);
	assert_int_equal(vg_json_get_int(e, "shard", -1), 0);
	assert_true(vg_json_get_bool(e, "final", 0));
	assert_string_equal(vg_json_get_str(e, "task_id", ""),
	                    vg_json_get_str(r.json, "task_id", "?"));
	assert_true(vg_json_get_str(e, "request_id", "")[0]);
	json_decref(e);
	body = ingest_body("job-events", "e-1", 1, 2, 1);
	h_resp_free(&r);
	h_expect(202, "POST", path, agent_a, body, &r);
	free(body);
	json_decref(wsc_expect(&a, "ingest.accepted", 3000));

	{
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		const char *dir;

		assert_true(n > 0);
		self[n] = '\0';
		dir = dirname(self);
		snprintf(bin, sizeof(bin), "%s/../../../bin/vigil-worker", dir);
		snprintf(brain, sizeof(brain), "%s/../../../bin/vigil-brain",
		         dir);
	}
	if (access(bin, X_OK) != 0 || access(brain, X_OK) != 0)
		fail_msg("%s or %s is not built (make programs)", bin, brain);
	snprintf(port, sizeof(port), "%d", H.redis.port);
	pid = fork();
	if (pid == 0) {
		char dbport[16];
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		snprintf(dbport, sizeof(dbport), "%d", H.pg.port);
		execl(bin, bin, "--redis-host", "127.0.0.1", "--redis-port",
		      port, "--db-host", "127.0.0.1", "--db-port", dbport,
		      "--db-user", "vigil_app", "--db-sslmode", "disable",
		      "--health-addr", "127.0.0.1:0", "--log-level", "error",
		      (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	e = wsc_expect(&a, "run.progress", 20000);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), run);
	assert_int_equal(vg_json_get_int(e, "shards", -1), 2);
	json_decref(e);
	e = wsc_expect(&a, "run.finalized", 30000);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), run);
	assert_int_equal(vg_json_get_int(e, "finding_counts.total", -1), 2);
	assert_int_equal(vg_json_get_int(e, "finding_counts.high", -1), 2);
	json_decref(e);
	/* the brain completes the report the worker recorded */
	bpid = fork();
	if (bpid == 0) {
		char dbport[16];
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		snprintf(dbport, sizeof(dbport), "%d", H.pg.port);
		setenv("VIGIL_DB_HOST", "127.0.0.1", 1);
		setenv("VIGIL_DB_PORT", dbport, 1);
		setenv("VIGIL_DB_NAME", "vigil", 1);
		setenv("VIGIL_DB_USER", "vigil_app", 1);
		setenv("VIGIL_DB_SSLMODE", "disable", 1);
		setenv("VIGIL_BRAIN_QUEUE_PREFIX", "vigil-brain", 1);
		setenv("VIGIL_BRAIN_SWEEP_INTERVAL", "100ms", 1);
		setenv("VIGIL_LOG_LEVEL", "error", 1);
		execl(brain, brain, "--health-addr", "127.0.0.1:0",
		      (char *)NULL);
		_exit(127);
	}
	assert_true(bpid > 0);
	e = wsc_expect(&a, "report.ready", 30000);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), run);
	assert_true(vg_json_get_str(e, "report_id", "")[0]);
	json_decref(e);
	kill(bpid, SIGTERM);
	waitpid(bpid, &st, 0);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	h_resp_free(&r);
	wsc_close(&a);
}

static void test_ping_and_close(void **state)
{
	struct wsc c;
	char *p = NULL;
	size_t n = 0;
	unsigned char bye[2] = {0x03, 0xe8}; /* 1000 */

	(void)state;
	wsc_open(&c, viewer_a);
	wsc_send(&c, WS_OP_PING, "hello", 5, 0);
	assert_int_equal(wsc_recv(&c, 2000, &p, &n), WS_OP_PONG);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
	free(p);
	/* data from clients is read and ignored; a fragmented message
	 * too */
	wsc_send(&c, WS_OP_TEXT, "{}", 2, 0);
	wsc_send(&c, WS_OP_PING, "", 0, 0);
	assert_int_equal(wsc_recv(&c, 2000, &p, &n), WS_OP_PONG);
	free(p);
	/* the close handshake: our code echoed, then the end */
	wsc_send(&c, WS_OP_CLOSE, bye, 2, 0);
	assert_int_equal(wsc_close_code(&c, 2000), 1000);
	assert_true(wsc_eof(&c, 3000));
	wsc_close(&c);
}

static void test_bad_frames(void **state)
{
	struct wsc c;
	unsigned char big[10];
	unsigned char mask[4] = {1, 2, 3, 4};

	(void)state;
	/* an unmasked frame from a client */
	wsc_open(&c, viewer_a);
	wsc_send(&c, WS_OP_TEXT, "hi", 2, 1);
	assert_int_equal(wsc_close_code(&c, 2000), 1002);
	assert_true(wsc_eof(&c, 3000));
	wsc_close(&c);
	/* a frame over the limit (64 KiB): refused from its header */
	wsc_open(&c, viewer_a);
	big[0] = 0x80 | WS_OP_BINARY;
	big[1] = 0x80 | 127;
	memset(big + 2, 0, 8);
	big[7] = 0x10; /* 1 MiB */
	assert_int_equal(send(c.fd, big, sizeof(big), MSG_NOSIGNAL), 10);
	assert_int_equal(send(c.fd, mask, 4, MSG_NOSIGNAL), 4);
	assert_int_equal(wsc_close_code(&c, 2000), 1009);
	assert_true(wsc_eof(&c, 3000));
	wsc_close(&c);
	/* a control frame with a long payload; an unknown opcode */
	wsc_open(&c, viewer_a);
	{
		char ping[126];

		memset(ping, 'x', sizeof(ping));
		wsc_send(&c, WS_OP_PING, ping, sizeof(ping), 0);
	}
	assert_int_equal(wsc_close_code(&c, 2000), 1002);
	wsc_close(&c);
	wsc_open(&c, viewer_a);
	wsc_send(&c, 0x3, "", 0, 0);
	assert_int_equal(wsc_close_code(&c, 2000), 1002);
	wsc_close(&c);
}

/* A client that does not read: closed once 64 KiB wait for it, and the
 * gateway never holds more for it than that. */
static void test_slow_consumer(void **state)
{
	struct wsc slow, fast;
	double before =
		metric("vigil_events_dropped_total{reason=\"slow_consumer\"}");
	char pad[1024];
	int got = 0, code = -1, total = 3000;
	struct vg_events_opts o = {.host = "127.0.0.1", .port = H.redis.port};
	struct vg_events *e = NULL;
	struct vg_err err = {0};

	(void)state;
	wait_subscribed();
	assert_int_equal(
		wsc_open_ex(&slow, "/v1/events", viewer_a, std_headers, 4096),
		101);
	wsc_open(&fast, viewer_b);
	sleep_ms(100);
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	assert_int_equal(vg_events_new(&o, &e, &err), VG_OK);
	/* 3 MB of events: more than the kernel's buffers and the queue */
	for (int i = 0; i < total; i++) {
		json_t *ev =
			vg_event_new("run.progress", tenant_a, "slow", NULL);

		json_object_set_new(ev, "pad", json_string(pad));
		json_object_set_new(ev, "seq", json_integer(i));
		assert_int_equal(vg_events_publish(e, ev, NULL, &err), VG_OK);
		json_decref(ev);
	}
	/* B's client is not held up by A's slow one */
	publish(tenant_b, "run.progress", "fast", NULL);
	json_decref(wsc_expect(&fast, "run.progress", 3000));
	for (int t = 0; t < 5000; t += 100) {
		if (metric("vigil_events_dropped_total{reason=\"slow_consumer\""
		           "}") > before)
			break;
		sleep_ms(100);
	}
	assert_true(metric("vigil_events_dropped_total{reason="
	                   "\"slow_consumer\"}") > before);
	/* now read: some events, then the end (with 1008 when the close
	 * frame got out before the write deadline) */
	for (;;) {
		char *p = NULL;
		int op = wsc_recv(&slow, 3000, &p, NULL);

		free(p);
		if (op == WS_OP_TEXT)
			got++;
		else if (op == WS_OP_CLOSE)
			code = 1008;
		else if (op < 0)
			break;
	}
	if (code != -1)
		assert_int_equal(code, 1008);
	assert_true(got < total);
	assert_true(got > 0);
	vg_events_free(e);
	wsc_close(&slow);
	wsc_close(&fast);
}

/* Redis restarts under the gateway: the WebSocket stays open, the
 * subscriber subscribes again, and events flow again. */
static void test_redis_restart(void **state)
{
	struct wsc a;
	json_t *e = NULL;

	(void)state;
	wait_subscribed();
	wsc_open(&a, viewer_a);
	assert_int_equal(vg_ts_stop(&H.redis), 0);
	for (int t = 0; t < 5000 && gw_eventsub_connected(gw_app_gw(H.app));
	     t += 50)
		sleep_ms(50);
	assert_false(gw_eventsub_connected(gw_app_gw(H.app)));
	assert_int_equal(vg_ts_restart(&H.redis), 0);
	assert_int_equal(vg_ts_wait_ready(&H.redis, 10000), 0);
	wait_subscribed();
	/* the subscription is in place once connected says so */
	publish(tenant_a, "report.ready", "after-restart", NULL);
	e = wsc_expect(&a, "report.ready", 5000);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), "after-restart");
	json_decref(e);
	wsc_close(&a);
}

/* The gateway stops: its WebSockets are told 1001. */
static void test_shutdown_going_away(void **state)
{
	struct wsc a;

	(void)state;
	/* the Redis pool's connections from before the restart fail once
	 * each (503) before new ones are made */
	for (int i = 0; i < 40; i++) {
		int st =
			wsc_open_ex(&a, "/v1/events", viewer_a, std_headers, 0);

		if (st == 101)
			break;
		assert_int_equal(st, 503);
		wsc_close(&a);
	}
	assert_int_equal(a.status, 101);
	sleep_ms(100);
	h_gateway_stop();
	assert_int_equal(wsc_close_code(&a, 3000), 1001);
	wsc_close(&a);
	h_gateway_start();
}

static int setup(void **state)
{
	if (h_setup_all(state))
		return -1;
	h_tenant("ev-a", tenant_a);
	h_tenant("ev-b", tenant_b);
	h_key(tenant_a, "viewer", NULL, viewer_a, NULL);
	h_key(tenant_b, "viewer", NULL, viewer_b, NULL);
	h_key(tenant_a, "agent", NULL, agent_a, NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_tenant_isolation),
		cmocka_unit_test(test_fanout_order),
		cmocka_unit_test(test_end_to_end),
		cmocka_unit_test(test_ping_and_close),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_slow_consumer),
		cmocka_unit_test(test_redis_restart),
		cmocka_unit_test(test_shutdown_going_away),
	};
	setenv("VIGIL_EVENTS_MAX_QUEUE", "65536", 1);
	return cmocka_run_group_tests(tests, setup, h_teardown_all);
}
