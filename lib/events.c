/*
 * events.c - publishing live scan events on Redis pub/sub (events.h).
 */
#include "vigil/events.h"

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/metrics.h"
#include "vigil/timeutil.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_PAUSE_MS 1000

static int valid_name(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* prefixes as the queue takes them: anything but the glob characters
 * and braces, which would break the pattern and the hash tag */
static int valid_prefix(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	return n > 0 && n <= VG_EVENTS_PREFIX_MAX &&
	       !strpbrk(p, "{}*?[]\\ \r\n\t");
}

int vg_events_channel(const char *prefix, const char *tenant, char *out,
                      size_t size)
{
	int n;

	if (!valid_prefix(prefix) || !valid_name(tenant, VG_EVENTS_TENANT_MAX))
		return VG_INVAL;
	n = snprintf(out, size, "{%s}:events:%s", prefix, tenant);
	return n < 0 || (size_t)n >= size ? VG_RANGE : VG_OK;
}

int vg_events_pattern(const char *prefix, char *out, size_t size)
{
	int n;

	if (!valid_prefix(prefix))
		return VG_INVAL;
	n = snprintf(out, size, "{%s}:events:*", prefix);
	return n < 0 || (size_t)n >= size ? VG_RANGE : VG_OK;
}

const char *vg_events_channel_tenant(const char *prefix, const char *channel)
{
	size_t pn = prefix ? strlen(prefix) : 0;
	const char *t;

	if (!channel || channel[0] != '{' || strncmp(channel + 1, prefix, pn) ||
	    strncmp(channel + 1 + pn, "}:events:", 9) != 0)
		return NULL;
	t = channel + 1 + pn + 9;
	return valid_name(t, VG_EVENTS_TENANT_MAX) ? t : NULL;
}

json_t *vg_event_new(const char *type, const char *tenant, const char *run_id,
                     const char *request_id)
{
	char ts[40];
	json_t *e;

	vg_time_rfc3339(ts, sizeof(ts), 3);
	e = json_pack("{s:s, s:s, s:s}", "type", type ? type : "", "tenant_id",
	              tenant ? tenant : "", "ts", ts);
	if (e && run_id && *run_id &&
	    json_object_set_new(e, "run_id", json_string(run_id))) {
		json_decref(e);
		return NULL;
	}
	if (e && request_id && *request_id &&
	    json_object_set_new(e, "request_id", json_string(request_id))) {
		json_decref(e);
		return NULL;
	}
	return e;
}

void vg_events_opts_env(struct vg_events_opts *o)
{
	const char *v;

	memset(o, 0, sizeof(*o));
	o->host = getenv("VIGIL_REDIS_HOST");
	if ((v = getenv("VIGIL_REDIS_PORT")))
		o->port = (int)strtol(v, NULL, 10);
	o->password = getenv("VIGIL_REDIS_PASSWORD");
	if (o->password && !*o->password)
		o->password = NULL;
	if ((v = getenv("VIGIL_REDIS_DB")))
		o->db = (int)strtol(v, NULL, 10);
	o->prefix = getenv("VIGIL_QUEUE_PREFIX");
}

/* ------------------------------------------------------------------ */
/* Publisher                                                            */
/* ------------------------------------------------------------------ */

struct vg_events {
	redisContext *c;
	char *host, *password, *prefix;
	int port, db, connect_ms, cmd_ms;
};

static char *dup_or(const char *s, const char *def)
{
	return strdup(s && *s ? s : def);
}

int vg_events_new(const struct vg_events_opts *o, struct vg_events **out,
                  struct vg_err *err)
{
	struct vg_events *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	e->host = dup_or(o->host, "127.0.0.1");
	e->prefix = dup_or(o->prefix, "vigil");
	e->password = o->password ? strdup(o->password) : NULL;
	e->port = o->port > 0 ? o->port : 6379;
	e->db = o->db;
	e->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 500;
	e->cmd_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 1000;
	if (!e->host || !e->prefix || (o->password && !e->password)) {
		vg_events_free(e);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (!valid_prefix(e->prefix)) {
		vg_events_free(e);
		return vg_err_set(err, VG_INVAL, "events: bad prefix \"%s\"",
		                  o->prefix);
	}
	*out = e;
	return VG_OK;
}

void vg_events_free(struct vg_events *e)
{
	if (!e)
		return;
	if (e->c)
		redisFree(e->c);
	free(e->host);
	free(e->prefix);
	if (e->password)
		memset(e->password, 0, strlen(e->password));
	free(e->password);
	free(e);
}

static int check_reply(redisContext *c, redisReply *r, const char *what,
                       struct vg_err *err)
{
	int rc = VG_OK;

	if (!r)
		rc = vg_err_set(err, VG_IO, "redis %s: %s", what, c->errstr);
	else if (r->type == REDIS_REPLY_ERROR)
		rc = vg_err_set(err, VG_REDIS, "redis %s: %s", what, r->str);
	freeReplyObject(r);
	return rc;
}

static int connect_redis(struct vg_events *e, struct vg_err *err)
{
	struct timeval ct = {e->connect_ms / 1000,
	                     (e->connect_ms % 1000) * 1000};
	struct timeval cmd = {e->cmd_ms / 1000, (e->cmd_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(e->host, e->port, ct);
	int rc;

	if (!c)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	if (c->err) {
		rc = vg_err_set(err, VG_IO, "redis connect %s:%d: %s", e->host,
		                e->port, c->errstr);
		redisFree(c);
		return rc;
	}
	redisSetTimeout(c, cmd);
	if (e->password &&
	    (rc = check_reply(c, redisCommand(c, "AUTH %s", e->password),
	                      "AUTH", err)) != VG_OK) {
		redisFree(c);
		return rc;
	}
	if (e->db && (rc = check_reply(c, redisCommand(c, "SELECT %d", e->db),
	                               "SELECT", err)) != VG_OK) {
		redisFree(c);
		return rc;
	}
	e->c = c;
	return VG_OK;
}

int vg_events_publish(struct vg_events *e, const json_t *event,
                      long long *receivers, struct vg_err *err)
{
	const char *tenant =
		json_string_value(json_object_get(event, "tenant_id"));
	char channel[VG_EVENTS_CHANNEL_MAX];
	struct vg_buf body;
	redisReply *r = NULL;
	int rc;

	if (receivers)
		*receivers = 0;
	if (!json_is_object(event) ||
	    !json_is_string(json_object_get(event, "type")))
		return vg_err_set(err, VG_INVAL,
		                  "event: want an object with a "
		                  "\"type\"");
	if (vg_events_channel(e->prefix, tenant, channel, sizeof(channel)))
		return vg_err_set(err, VG_INVAL, "event: bad tenant_id");
	vg_buf_init(&body, 0);
	if ((rc = vg_json_dumps(event, JSON_COMPACT, &body)) != VG_OK) {
		vg_buf_cleanup(&body);
		return vg_err_set(err, rc, "event: cannot encode");
	}
	if (body.len > VG_EVENTS_MAX) {
		vg_buf_cleanup(&body);
		return vg_err_set(err, VG_TOOLARGE,
		                  "event: %zu bytes, at most %zu", body.len,
		                  VG_EVENTS_MAX);
	}
	/* a connection dead since its last use fails once: try once more
	 * on a new one */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!e->c && (rc = connect_redis(e, err)) != VG_OK)
			break;
		r = redisCommand(e->c, "PUBLISH %s %b", channel, body.data,
		                 body.len);
		if (r)
			break;
		rc = vg_err_set(err, VG_IO, "redis PUBLISH: %s", e->c->errstr);
		redisFree(e->c);
		e->c = NULL;
	}
	vg_buf_cleanup(&body);
	if (!r)
		return rc;
	if (r->type == REDIS_REPLY_ERROR)
		rc = vg_err_set(err, VG_REDIS, "redis PUBLISH: %s", r->str);
	else if (receivers && r->type == REDIS_REPLY_INTEGER)
		*receivers = r->integer;
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The thread's own publisher                                           */
/* ------------------------------------------------------------------ */

struct tls_pub {
	struct vg_events *e;
	int64_t paused_until; /* ms, monotonic */
};

static pthread_key_t pub_key;
static pthread_once_t pub_once = PTHREAD_ONCE_INIT;
static struct vg_series *m_ok, *m_failed;

static void tls_pub_free(void *p)
{
	struct tls_pub *t = p;

	vg_events_free(t->e);
	free(t);
}

static void pub_init(void)
{
	struct vg_metric *m = vg_metrics_counter(
		vg_metrics_default(), "vigil_events_published_total",
		"Live events published to Redis pub/sub, by result: ok, "
		"failed (the event is lost; the work it reports is not).",
		VG_LABELS("result"), NULL);

	pthread_key_create(&pub_key, tls_pub_free);
	if (m) {
		m_ok = vg_metric_labels(m, "ok");
		m_failed = vg_metric_labels(m, "failed");
	}
}

int vg_events_emit(json_t *event, struct vg_err *err)
{
	struct tls_pub *t;
	int64_t now = vg_mono_ms();
	int rc;

	pthread_once(&pub_once, pub_init);
	if (!event)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	t = pthread_getspecific(pub_key);
	if (!t) {
		struct vg_events_opts o;

		t = calloc(1, sizeof(*t));
		vg_events_opts_env(&o);
		if (!t || vg_events_new(&o, &t->e, err) != VG_OK) {
			free(t);
			json_decref(event);
			if (m_failed)
				vg_counter_inc(m_failed);
			return err && err->code ? err->code : VG_NOMEM;
		}
		pthread_setspecific(pub_key, t);
	}
	if (now < t->paused_until) {
		rc = vg_err_set(err, VG_IO,
		                "events: redis unreachable lately; "
		                "event dropped");
	} else {
		rc = vg_events_publish(t->e, event, NULL, err);
		if (rc == VG_IO)
			t->paused_until = now + FAIL_PAUSE_MS;
	}
	json_decref(event);
	if (rc == VG_OK ? m_ok != NULL : m_failed != NULL)
		vg_counter_inc(rc == VG_OK ? m_ok : m_failed);
	return rc;
}
