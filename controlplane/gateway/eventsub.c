/*
 * eventsub.c - live events from Redis pub/sub to the WebSockets of
 * GET /v1/events, and the gateway's own publishing.
 *
 * One thread holds one Redis connection in PSUBSCRIBE on
 * "{<prefix>}:events:*". Each message goes to the WebSockets whose topic
 * is the tenant its channel names (srv_ws_publish), after checking that
 * the event's own tenant_id says the same: an event is never handed to
 * another tenant's clients, whatever a publisher got wrong. When Redis
 * goes away the thread connects again with capped, jittered backoff;
 * events published meanwhile are lost (pub/sub keeps nothing), which the
 * protocol allows: events announce changes, the REST API has the state.
 *
 * The same connection also SUBSCRIBEs to "{<prefix>}:auth:revoked": API
 * keys revoked on any replica, dropped from this one's authcache. Each
 * (re)subscription empties the authcache, since revocations published
 * while the subscription was away are lost.
 */
#include "gateway.h"

#include "vigil/events.h"
#include "vigil/json.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 1000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define PING_EVERY_MS      15000 /* a silent Redis is checked ... */
#define SILENCE_MAX_MS     45000 /* ... and left after this long */

struct gw_eventsub {
	struct gw *g;
	pthread_t th;
	int running;
	int stop_fd;
	atomic_int stop;
	atomic_int connected;
	char pattern[VG_EVENTS_CHANNEL_MAX];
	char revoked[VG_EVENTS_CHANNEL_MAX];
};

static int revoked_channel(const struct gw_config *cfg, char *out, size_t n)
{
	int len = snprintf(out, n, "{%s}:auth:revoked", cfg->queue_prefix);

	return len > 0 && (size_t)len < n ? 0 : -1;
}

static void count_dropped(struct gw *g, const char *reason)
{
	vg_counter_inc(vg_metric_labels(g->m.ev_dropped, reason));
}

/* Sleep `ms` unless asked to stop; 1 when stopping. */
static int pause_ms(struct gw_eventsub *es, int ms)
{
	struct pollfd p = {.fd = es->stop_fd, .events = POLLIN};

	if (atomic_load(&es->stop))
		return 1;
	if (poll(&p, 1, ms) < 0 && errno != EINTR)
		usleep((useconds_t)ms * 1000);
	return atomic_load(&es->stop);
}

static int reply_ok(redisContext *c, redisReply *r)
{
	int ok = r && r->type != REDIS_REPLY_ERROR && !c->err;

	freeReplyObject(r);
	return ok;
}

static redisContext *subscribe(struct gw_eventsub *es, char *why, size_t size)
{
	const struct gw_config *cfg = es->g->cfg;
	struct timeval tv = {CONNECT_TIMEOUT_MS / 1000,
	                     (CONNECT_TIMEOUT_MS % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(
		cfg->redis_host ? cfg->redis_host : "localhost",
		cfg->redis_port, tv);
	redisReply *r;

	if (!c || c->err) {
		snprintf(why, size, "connect: %s",
		         c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (cfg->redis_password &&
	    !reply_ok(c, cfg->redis_user ? redisCommand(c, "AUTH %s %s",
	                                                cfg->redis_user,
	                                                cfg->redis_password)
	                                 : redisCommand(c, "AUTH %s",
	                                                cfg->redis_password))) {
		snprintf(why, size, "AUTH refused");
		redisFree(c);
		return NULL;
	}
	if (cfg->redis_db &&
	    !reply_ok(c, redisCommand(c, "SELECT %d", cfg->redis_db))) {
		snprintf(why, size, "SELECT failed");
		redisFree(c);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		const char *cmd = i ? "SUBSCRIBE" : "PSUBSCRIBE";

		r = redisCommand(c, "%s %s", cmd, i ? es->revoked : es->pattern);
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			snprintf(why, size, "%s: %s", cmd,
			         r && r->type == REDIS_REPLY_ERROR ? r->str
			                                           : c->errstr);
			freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

/* ["message", channel, key id]: a key revoked on some replica. */
static void on_revoked(struct gw_eventsub *es, const redisReply *r)
{
	const redisReply *ch = r->element[1], *pl = r->element[2];

	if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING ||
	    strcmp(ch->str, es->revoked) != 0 || !vg_db_is_uuid(pl->str)) {
		count_dropped(es->g, "invalid");
		return;
	}
	gw_authcache_drop_key(es->g->authcache, pl->str);
}

/* A reply in subscribed mode: ["pmessage", pattern, channel, payload],
 * or the answer to our PING. */
static void on_reply(struct gw_eventsub *es, const redisReply *r)
{
	struct gw *g = es->g;
	const redisReply *ch, *pl;
	const char *tenant;
	json_t *ev;
	int same, dropped;

	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "message") == 0) {
		on_revoked(es, r);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "pmessage") != 0)
		return; /* pong */
	ch = r->element[2];
	pl = r->element[3];
	if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING ||
	    !(tenant = vg_events_channel_tenant(g->cfg->queue_prefix,
	                                        ch->str))) {
		count_dropped(g, "invalid");
		return;
	}
	if (pl->len > VG_EVENTS_MAX) {
		count_dropped(g, "invalid");
		vg_warn("event too large; dropped", "tenant", tenant);
		return;
	}
	ev = json_loadb(pl->str, pl->len, 0, NULL);
	same = json_is_object(ev) &&
	       strcmp(vg_json_get_str(ev, "tenant_id", ""), tenant) == 0 &&
	       json_is_string(json_object_get(ev, "type"));
	json_decref(ev);
	if (!same) {
		count_dropped(g, "invalid");
		vg_warn("event not for its channel's tenant, or malformed; "
		        "dropped",
		        "tenant", tenant);
		return;
	}
	dropped = srv_ws_publish(g->srv, tenant, pl->str, pl->len);
	if (dropped < 0)
		count_dropped(g, "nomem");
	else if (dropped > 0)
		vg_counter_add(vg_metric_labels(g->m.ev_dropped, "backlog"),
		               dropped);
}

/* Read until Redis goes away or we stop; 1 when stopping. */
static int serve_subscription(struct gw_eventsub *es, redisContext *c)
{
	int64_t heard = vg_mono_ms(), pinged = heard;

	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
		                      {.fd = es->stop_fd, .events = POLLIN}};
		int64_t now;
		void *r = NULL;

		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			return 0;
		if (atomic_load(&es->stop))
			return 1;
		now = vg_mono_ms();
		if (p[0].revents) {
			if (redisBufferRead(c) != REDIS_OK)
				return 0;
			heard = now;
			while (redisGetReplyFromReader(c, &r) == REDIS_OK &&
			       r) {
				on_reply(es, r);
				freeReplyObject(r);
				r = NULL;
			}
			if (c->err)
				return 0;
		}
		if (now - heard > SILENCE_MAX_MS)
			return 0;
		if (now - pinged >= PING_EVERY_MS) {
			int done = 0;

			pinged = now;
			if (redisAppendCommand(c, "PING") != REDIS_OK)
				return 0;
			while (!done)
				if (redisBufferWrite(c, &done) != REDIS_OK)
					return 0;
		}
	}
}

static void *run(void *arg)
{
	struct gw_eventsub *es = arg;
	int backoff = BACKOFF_MIN_MS, failures = 0;

	while (!atomic_load(&es->stop)) {
		char why[256] = "";
		redisContext *c = subscribe(es, why, sizeof(why));
		unsigned int rnd = 0;

		if (!c) {
			/* the first failure and then every 30th: Redis down
			 * for long is said often enough by /readyz */
			if (failures++ % 30 == 0)
				vg_warn("events subscriber cannot subscribe; "
				        "retrying",
				        "err", why);
			if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
				rnd = (unsigned int)vg_mono_ms();
			if (pause_ms(es, backoff / 2 +
			                         (int)(rnd %
			                               (unsigned)(backoff / 2 +
			                                          1))))
				break;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
			                                       : backoff * 2;
			continue;
		}
		/* revocations published while away are lost */
		gw_authcache_clear(es->g->authcache);
		atomic_store(&es->connected, 1);
		vg_info("events subscriber subscribed", "pattern", es->pattern);
		backoff = BACKOFF_MIN_MS;
		failures = 0;
		if (serve_subscription(es, c)) {
			redisFree(c);
			break;
		}
		atomic_store(&es->connected, 0);
		vg_warn("events subscriber lost redis; subscribing again",
		        "err", c->err ? c->errstr : "silent or closed");
		redisFree(c);
	}
	atomic_store(&es->connected, 0);
	return NULL;
}

int gw_eventsub_start(struct gw *g, struct vg_err *err)
{
	struct gw_eventsub *es = calloc(1, sizeof(*es));

	if (!es)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	es->g = g;
	es->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (es->stop_fd < 0) {
		free(es);
		return vg_err_sys(err, VG_IO, "eventfd");
	}
	if (vg_events_pattern(g->cfg->queue_prefix, es->pattern,
	                      sizeof(es->pattern)) != VG_OK ||
	    revoked_channel(g->cfg, es->revoked, sizeof(es->revoked))) {
		close(es->stop_fd);
		free(es);
		return vg_err_set(
			err, VG_CONFIG,
			"VIGIL_QUEUE_PREFIX \"%s\" cannot name events "
			"channels",
			g->cfg->queue_prefix);
	}
	g->eventsub = es;
	if (pthread_create(&es->th, NULL, run, es)) {
		gw_eventsub_stop(g);
		return vg_err_sys(err, VG_IO, "pthread_create");
	}
	es->running = 1;
	return VG_OK;
}

void gw_eventsub_stop(struct gw *g)
{
	struct gw_eventsub *es = g->eventsub;
	uint64_t one = 1;

	if (!es)
		return;
	atomic_store(&es->stop, 1);
	if (write(es->stop_fd, &one, sizeof(one)) < 0) {
		/* the thread sees the flag within a second anyway */
	}
	if (es->running)
		pthread_join(es->th, NULL);
	close(es->stop_fd);
	free(es);
	g->eventsub = NULL;
}

int gw_eventsub_connected(struct gw *g)
{
	return g->eventsub && atomic_load(&g->eventsub->connected);
}

/* ------------------------------------------------------------------ */
/* Publishing from a request                                            */
/* ------------------------------------------------------------------ */

void gw_event_publish(struct gw_rctx *rc, json_t *ev)
{
	char channel[VG_EVENTS_CHANNEL_MAX];
	struct vg_buf body;
	struct vg_err err = {0};
	int r;

	vg_buf_init(&body, 0);
	r = ev && rc->tenant &&
	                    vg_events_channel(rc->g->cfg->queue_prefix,
	                                      rc->tenant, channel,
	                                      sizeof(channel)) == VG_OK &&
	                    vg_json_dumps(ev, JSON_COMPACT, &body) == VG_OK
	            ? gw_redis_cmd(rc->g->redis, NULL, &err, "PUBLISH", channel,
	                           vg_buf_str(&body), NULL)
	            : VG_NOMEM;
	if (r != VG_OK) {
		count_dropped(rc->g, "publish_failed");
		gw_rlog(rc, VG_LOG_DEBUG, "event not published", "type",
		        vg_json_get_str(ev, "type", ""), "err", err.msg, NULL);
	}
	vg_buf_cleanup(&body);
	json_decref(ev);
}

/* ------------------------------------------------------------------ */
/* Server callbacks                                                     */
/* ------------------------------------------------------------------ */

void gw_ws_open(const struct srv_ws_info *ws, void *ud)
{
	struct gw *g = ud;

	(void)ws;
	vg_gauge_inc(g->m.ev_conns);
}

void gw_ws_sent(unsigned long long sent, unsigned long long slow, void *ud)
{
	struct gw *g = ud;

	vg_counter_add(g->m.ev_sent, (double)sent);
	if (slow)
		vg_counter_add(
			vg_metric_labels(g->m.ev_dropped, "slow_consumer"),
			(double)slow);
}

void gw_ws_close(const struct srv_ws_info *ws, void *ud)
{
	struct gw *g = ud;
	char code[16], secs[32], sent[32];
	int bad = strcmp(ws->why, "slow_consumer") == 0 ||
	          strcmp(ws->why, "protocol") == 0 ||
	          strcmp(ws->why, "too_big") == 0;

	vg_gauge_dec(g->m.ev_conns);
	snprintf(code, sizeof(code), "%d", ws->code);
	snprintf(secs, sizeof(secs), "%.3f", ws->seconds);
	snprintf(sent, sizeof(sent), "%llu", ws->sent);
	vg_log(bad ? VG_LOG_WARN : VG_LOG_INFO,
	       strcmp(ws->why, "slow_consumer") == 0
	               ? "events client too slow; closed"
	               : "events client closed",
	       "request_id", ws->request_id, "tenant", ws->topic, "peer",
	       ws->peer, "code", code, "why", ws->why, "seconds", secs, "sent",
	       sent, (const char *)NULL);
}

void gw_authcache_revoked(struct gw *g, const char *key_id)
{
	char ch[VG_EVENTS_CHANNEL_MAX];
	struct vg_err err = {0};

	gw_authcache_drop_key(g->authcache, key_id);
	if (revoked_channel(g->cfg, ch, sizeof(ch)) ||
	    gw_redis_cmd(g->redis, NULL, &err, "PUBLISH", ch, key_id, NULL) !=
	            VG_OK)
		vg_warn("key revocation not published; other replicas forget "
		        "the key within the auth cache TTL",
		        "api_key_id", key_id, "err", err.msg);
}
