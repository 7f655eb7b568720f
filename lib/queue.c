/* queue.c - reliable task queue on Redis streams: envelope, producer,
 * consumer group, delayed set, dead letters. The data model and the
 * guarantees are described in vigil/queue.h. */
#include "vigil/queue.h"

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/timeutil.h"

#include <errno.h>
#include <hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MSGID_MAX     48
#define PROMOTE_BATCH 512
#define DLQ_PAGE      100

/* ------------------------------------------------------------------ */
/* Scripts. KEYS are always tasks, delayed, wake, dlq. Every time is    */
/* Redis's clock, so producers and consumers need not agree on theirs.  */
/* ------------------------------------------------------------------ */

#define LUA_NOW                                                            \
	"local t = redis.call('TIME') "                                    \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / " \
	"1000) "

/* Push the wake token when `member` became the earliest delayed task. */
#define LUA_WAKE(member)                                     \
	"local first = redis.call('ZRANGE', KEYS[2], 0, 0) " \
	"if first[1] == " member " then "                    \
	"redis.call('DEL', KEYS[3]) redis.call('RPUSH', KEYS[3], '1') end "

/* Is ARGV[idx] still pending and held by consumer `who`? */
#define LUA_HELD                                                         \
	"local function held(id, who) "                                  \
	"local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) " \
	"return #p > 0 and p[1][2] == who end "

enum script_id {
	S_ACK,
	S_DELAY,
	S_RETRY,
	S_BURY,
	S_PROMOTE,
	S_RECLAIM,
	S_RELEASE,
	S_TOUCH,
	S_REPLAY,
	S_COUNT
};

static const char *const scripts[S_COUNT] = {
	/* ARGV: group, ids... */
	[S_ACK] = "local ids = {} "
		  "for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end "
		  "local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) "
		  "redis.call('XDEL', KEYS[1], unpack(ids)) "
		  "return n",
	/* ARGV: delay ms, envelope */
	[S_DELAY] = LUA_NOW "redis.call('ZADD', KEYS[2], "
			    "string.format('%d', now + tonumber(ARGV[1])), "
			    "ARGV[2]) " LUA_WAKE("ARGV[2]") "return 1",
	/* ARGV: group, consumer, id, delay ms, envelope */
	[S_RETRY] = LUA_HELD "if not held(ARGV[3], ARGV[2]) then return 0 end "
			     "redis.call('XACK', KEYS[1], ARGV[1], ARGV[3]) "
			     "redis.call('XDEL', KEYS[1], ARGV[3]) " LUA_NOW
			     "redis.call('ZADD', KEYS[2], "
			     "string.format('%d', now + tonumber(ARGV[4])), "
			     "ARGV[5]) " LUA_WAKE("ARGV[5]") "return 1",
	/* ARGV: group, consumer, id, envelope or "", raw or "", error */
	[S_BURY] = LUA_HELD "if not held(ARGV[3], ARGV[2]) then return 0 end "
			    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[3]) "
			    "redis.call('XDEL', KEYS[1], ARGV[3]) " LUA_NOW
			    "local at = string.format('%d', now) "
			    "if ARGV[4] ~= '' then "
			    "redis.call('XADD', KEYS[4], '*', 'e', ARGV[4], "
			    "'error', ARGV[6], 'dead_at', at) else "
			    "redis.call('XADD', KEYS[4], '*', 'raw', ARGV[5], "
			    "'error', ARGV[6], 'dead_at', at) end "
			    "return 1",
	/* ARGV: max -> {moved, ms to the next due or -1} */
	[S_PROMOTE] = LUA_NOW
	"local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, "
	"'LIMIT', 0, tonumber(ARGV[1])) "
	"for _, e in ipairs(due) do "
	"redis.call('XADD', KEYS[1], '*', 'e', e) end "
	"if #due > 0 then redis.call('ZREM', KEYS[2], unpack(due)) end "
	"local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES') "
	"local wait = -1 "
	"if #nxt > 0 then wait = math.max(0, tonumber(nxt[2]) - now) end "
	"return {#due, wait}",
	/* ARGV: group, consumer, min idle, cursor, count
         * -> {cursor, {{id, fields, deliveries}...}} */
	[S_RECLAIM] =
		"local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], "
		"ARGV[3], ARGV[4], 'COUNT', ARGV[5]) "
		"local out = {} "
		"for _, e in ipairs(r[2]) do "
		"if e then "
		"local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], "
		"e[1], 1) "
		"local n = 1 "
		"if #p > 0 then n = p[1][4] end "
		"out[#out + 1] = {e[1], e[2], n} end end "
		"return {r[1], out}",
	/* ARGV: group, consumer, (id, envelope)... */
	[S_RELEASE] = LUA_HELD "local n = 0 "
			       "for i = 3, #ARGV, 2 do "
			       "if held(ARGV[i], ARGV[2]) then "
			       "redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) "
			       "redis.call('XDEL', KEYS[1], ARGV[i]) "
			       "redis.call('XADD', KEYS[1], '*', 'e', "
			       "ARGV[i + 1]) "
			       "n = n + 1 end end "
			       "return n",
	/* ARGV: group, (id, consumer)... */
	[S_TOUCH] = LUA_HELD "local n = 0 "
			     "for i = 2, #ARGV, 2 do "
			     "if held(ARGV[i], ARGV[i + 1]) then "
			     "redis.call('XCLAIM', KEYS[1], ARGV[1], "
			     "ARGV[i + 1], 0, ARGV[i], 'JUSTID') "
			     "n = n + 1 end end "
			     "return n",
	/* ARGV: dead letter id, envelope */
	[S_REPLAY] = "if redis.call('XDEL', KEYS[4], ARGV[1]) == 0 then "
		     "return 0 end "
		     "redis.call('XADD', KEYS[1], '*', 'e', ARGV[2]) "
		     "return 1",
};

/* ------------------------------------------------------------------ */
/* Handle                                                               */
/* ------------------------------------------------------------------ */

struct vg_queue {
	redisContext *c;
	int timeout_ms; /* socket timeout set on c */
	char *host, *password, *group, *consumer;
	int port, db, vis_ms, connect_ms, cmd_ms;
	char *keys[4]; /* tasks, delayed, wake, dlq */
	char sha[S_COUNT][41];
	const struct vg_queue_type *types;
	size_t ntypes;
	void (*on_dead)(void *, const char *, const char *, const char *);
	void *on_dead_ctx;

	char (*acks)[MSGID_MAX]; /* ids acknowledged later */
	size_t nacks, acks_cap;

	long long next_reclaim; /* monotonic ms */
	char cursor[MSGID_MAX];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int random_bytes(void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((char *)p + got, n - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static void new_task_id(char out[VG_QUEUE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[VG_QUEUE_ID_LEN / 2];

	if (random_bytes(b, sizeof(b)) < 0) {
		/* no entropy source: time, pid and a counter stay unique */
		static atomic_ulong seq;
		unsigned long long v[2] = {
			(unsigned long long)now_ms() ^
				((unsigned long long)getpid() << 40),
			atomic_fetch_add(&seq, 1)};
		memcpy(b, v, sizeof(b));
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[VG_QUEUE_ID_LEN] = '\0';
}

static char *dup_or(const char *s, const char *def)
{
	return strdup(s && *s ? s : def);
}

static char *make_key(const char *prefix, const char *name)
{
	struct vg_buf b;

	vg_buf_init(&b, 0);
	if (vg_buf_appendf(&b, "{%s}:%s", prefix, name) != VG_OK)
		return NULL;
	return vg_buf_take(&b);
}

int vg_queue_new(const struct vg_queue_opts *o, struct vg_queue **out,
                 struct vg_err *err)
{
	static atomic_uint seq;
	static const char *const names[4] = {"tasks", "delayed", "wake", "dlq"};
	struct vg_queue *q = NULL;
	char host[64], consumer[128];

	*out = NULL;
	if (!o || o->port < 0 || o->port > 65535 || o->db < 0 ||
	    o->visibility_timeout_ms < 0 || (o->ntypes && !o->types))
		return vg_err_set(err, VG_INVAL, "queue: invalid options");
	for (size_t i = 0; i < o->ntypes; i++)
		if (!o->types[i].name || o->types[i].max_attempts < 1 ||
		    o->types[i].backoff_base_ms < 0 ||
		    o->types[i].backoff_max_ms < o->types[i].backoff_base_ms)
			return vg_err_set(err, VG_INVAL,
			                  "queue: invalid policy of type %s",
			                  o->types[i].name ? o->types[i].name
			                                   : "(null)");
	q = calloc(1, sizeof(*q));
	if (!q)
		goto nomem;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "worker");
	host[sizeof(host) - 1] = '\0';
	snprintf(consumer, sizeof(consumer), "%s-%ld-%u", host, (long)getpid(),
	         atomic_fetch_add(&seq, 1));
	q->host = dup_or(o->host, "127.0.0.1");
	q->password = o->password && *o->password ? strdup(o->password) : NULL;
	q->group = dup_or(o->group, "workers");
	q->consumer = dup_or(o->consumer, consumer);
	if (!q->host || !q->group || !q->consumer ||
	    (o->password && *o->password && !q->password))
		goto nomem;
	for (int i = 0; i < 4; i++)
		if (!(q->keys[i] = make_key(o->prefix && *o->prefix ? o->prefix
		                                                    : "vigil",
		                            names[i])))
			goto nomem;
	q->port = o->port ? o->port : 6379;
	q->db = o->db;
	q->vis_ms = o->visibility_timeout_ms ? o->visibility_timeout_ms : 30000;
	q->connect_ms =
		o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
	q->cmd_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 5000;
	q->types = o->types;
	q->ntypes = o->ntypes;
	q->on_dead = o->on_dead;
	q->on_dead_ctx = o->on_dead_ctx;
	snprintf(q->cursor, sizeof(q->cursor), "0-0");
	*out = q;
	return VG_OK;
nomem:
	vg_queue_free(q);
	return vg_err_set(err, VG_NOMEM, "queue: out of memory");
}

void vg_queue_free(struct vg_queue *q)
{
	if (!q)
		return;
	if (q->c)
		redisFree(q->c);
	free(q->host);
	if (q->password) {
		explicit_bzero(q->password, strlen(q->password));
		free(q->password);
	}
	free(q->group);
	free(q->consumer);
	for (int i = 0; i < 4; i++)
		free(q->keys[i]);
	free(q->acks);
	free(q);
}

const char *vg_queue_consumer(const struct vg_queue *q)
{
	return q->consumer;
}

const struct vg_queue_type *vg_queue_type_find(const struct vg_queue *q,
                                               const char *type)
{
	for (size_t i = 0; i < q->ntypes; i++)
		if (strcmp(q->types[i].name, type) == 0)
			return &q->types[i];
	return NULL;
}

long long vg_queue_backoff_ms(const struct vg_queue_type *t, int attempt,
                              uint32_t rnd)
{
	long long d = t->backoff_base_ms, half;

	if (attempt < 1)
		attempt = 1;
	for (int i = 1; i < attempt && d < t->backoff_max_ms; i++)
		d *= 2;
	if (d > t->backoff_max_ms)
		d = t->backoff_max_ms;
	half = d / 2;
	return d - half + (long long)(rnd % (uint64_t)(half + 1));
}

/* ------------------------------------------------------------------ */
/* Connection and commands                                              */
/* ------------------------------------------------------------------ */

static void drop(struct vg_queue *q)
{
	if (q->c)
		redisFree(q->c);
	q->c = NULL;
}

static int io_error(struct vg_queue *q, struct vg_err *err, const char *what)
{
	int rc = vg_err_set(
		err, VG_IO, "redis %s:%d: %s: %s", q->host, q->port, what,
		q->c && q->c->errstr[0] ? q->c->errstr : "connection lost");

	drop(q);
	return rc;
}

static int set_timeout(struct vg_queue *q, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (q->timeout_ms == ms)
		return 0;
	if (redisSetTimeout(q->c, tv) != REDIS_OK)
		return -1;
	q->timeout_ms = ms;
	return 0;
}

static int reply_error(const redisReply *r, struct vg_err *err,
                       const char *what)
{
	int code = VG_REDIS;

	if (strncmp(r->str, "NOAUTH", 6) == 0 ||
	    strncmp(r->str, "WRONGPASS", 9) == 0)
		code = VG_UNAUTHORIZED;
	else if (strncmp(r->str, "LOADING", 7) == 0 ||
	         strncmp(r->str, "BUSY", 4) == 0 ||
	         strncmp(r->str, "MASTERDOWN", 10) == 0 ||
	         strncmp(r->str, "TRYAGAIN", 8) == 0)
		code = VG_AGAIN;
	return vg_err_set(err, code, "redis %s: %.*s", what, 200, r->str);
}

static int load_scripts(struct vg_queue *q, struct vg_err *err)
{
	redisReply *r = NULL;
	int rc = VG_OK;

	for (int i = 0; i < S_COUNT; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};

		if (redisAppendCommandArgv(q->c, 3, argv, NULL) != REDIS_OK)
			return io_error(q, err, "script load");
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (redisGetReply(q->c, (void **)&r) != REDIS_OK)
			return io_error(q, err, "script load");
		if (r->type == REDIS_REPLY_STRING && r->len == 40)
			memcpy(q->sha[i], r->str, 41);
		else if (rc == VG_OK)
			rc = r->type == REDIS_REPLY_ERROR
			             ? reply_error(r, err, "script load")
			             : vg_err_set(err, VG_REDIS,
			                          "redis script load: "
			                          "unexpected reply");
		freeReplyObject(r);
	}
	return rc;
}

/* Connect, authenticate, select the database, create the group, load the
 * scripts. */
static int connect_redis(struct vg_queue *q, struct vg_err *err)
{
	struct timeval tv = {q->connect_ms / 1000,
	                     (q->connect_ms % 1000) * 1000};
	redisReply *r;
	int rc;

	q->c = redisConnectWithTimeout(q->host, q->port, tv);
	if (!q->c)
		return vg_err_set(err, VG_NOMEM, "redis: out of memory");
	if (q->c->err)
		return io_error(q, err, "connect");
	q->timeout_ms = -1;
	if (set_timeout(q, q->cmd_ms) < 0 ||
	    redisEnableKeepAlive(q->c) != REDIS_OK)
		return io_error(q, err, "socket options");
	if (q->password) {
		const char *argv[] = {"AUTH", q->password};

		r = redisCommandArgv(q->c, 2, argv, NULL);
		if (!r)
			return io_error(q, err, "auth");
		rc = r->type == REDIS_REPLY_ERROR ? reply_error(r, err, "auth")
		                                  : VG_OK;
		freeReplyObject(r);
		if (rc != VG_OK) {
			drop(q);
			return rc;
		}
	}
	if (q->db) {
		char db[16];
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", q->db);
		r = redisCommandArgv(q->c, 2, argv, NULL);
		if (!r)
			return io_error(q, err, "select");
		rc = r->type == REDIS_REPLY_ERROR
		             ? reply_error(r, err, "select")
		             : VG_OK;
		freeReplyObject(r);
		if (rc != VG_OK) {
			drop(q);
			return rc;
		}
	}
	{
		const char *argv[] = {"XGROUP", "CREATE", q->keys[0],
		                      q->group, "0",      "MKSTREAM"};

		r = redisCommandArgv(q->c, 6, argv, NULL);
		if (!r)
			return io_error(q, err, "create group");
		rc = r->type == REDIS_REPLY_ERROR &&
		                     strncmp(r->str, "BUSYGROUP", 9) != 0
		             ? reply_error(r, err, "create group")
		             : VG_OK;
		freeReplyObject(r);
		if (rc != VG_OK) {
			drop(q);
			return rc;
		}
	}
	rc = load_scripts(q, err);
	if (rc != VG_OK)
		drop(q);
	return rc;
}

static int ensure(struct vg_queue *q, struct vg_err *err)
{
	return q->c ? VG_OK : connect_redis(q, err);
}

/* One command; *out is the reply (not an error reply) for the caller to
 * free. */
static int command(struct vg_queue *q, int argc, const char **argv,
                   const size_t *lens, redisReply **out, struct vg_err *err)
{
	redisReply *r;
	int rc;

	*out = NULL;
	if ((rc = ensure(q, err)) != VG_OK)
		return rc;
	if (set_timeout(q, q->cmd_ms) < 0)
		return io_error(q, err, "socket options");
	r = redisCommandArgv(q->c, argc, argv, lens);
	if (!r)
		return io_error(q, err, argv[0]);
	if (r->type == REDIS_REPLY_ERROR) {
		rc = reply_error(r, err, argv[0]);
		freeReplyObject(r);
		return rc;
	}
	*out = r;
	return VG_OK;
}

/* Arguments of a script call: EVALSHA sha 4 keys... args... */
struct call {
	const char **argv;
	size_t *lens;
	int argc, cap;
};

static int call_init(struct call *c, struct vg_queue *q, enum script_id s,
                     int nargs)
{
	c->cap = 7 + nargs;
	c->argc = 0;
	c->argv = malloc(sizeof(*c->argv) * (size_t)c->cap);
	c->lens = malloc(sizeof(*c->lens) * (size_t)c->cap);
	if (!c->argv || !c->lens) {
		free(c->argv);
		free(c->lens);
		return VG_NOMEM;
	}
	c->argv[c->argc] = "EVALSHA";
	c->lens[c->argc++] = 7;
	c->argv[c->argc] = q->sha[s];
	c->lens[c->argc++] = 40;
	c->argv[c->argc] = "4";
	c->lens[c->argc++] = 1;
	for (int i = 0; i < 4; i++) {
		c->argv[c->argc] = q->keys[i];
		c->lens[c->argc++] = strlen(q->keys[i]);
	}
	return VG_OK;
}

static void call_arg(struct call *c, const char *s, size_t len)
{
	c->argv[c->argc] = s;
	c->lens[c->argc++] = len;
}

static void call_str(struct call *c, const char *s)
{
	call_arg(c, s, strlen(s));
}

static void call_cleanup(struct call *c)
{
	free(c->argv);
	free(c->lens);
}

static int is_noscript(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	       strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Run a script call; reloads the scripts once on NOSCRIPT (a restarted
 * or flushed server). The sha slot of the call is refreshed. */
static int run_call(struct vg_queue *q, struct call *c, enum script_id s,
                    redisReply **out, struct vg_err *err)
{
	redisReply *r;
	int rc;

	*out = NULL;
	for (int tries = 0;; tries++) {
		if ((rc = ensure(q, err)) != VG_OK)
			return rc;
		c->argv[1] = q->sha[s];
		if (set_timeout(q, q->cmd_ms) < 0)
			return io_error(q, err, "socket options");
		r = redisCommandArgv(q->c, c->argc, c->argv, c->lens);
		if (!r)
			return io_error(q, err, "script");
		if (is_noscript(r) && tries == 0) {
			freeReplyObject(r);
			if ((rc = load_scripts(q, err)) != VG_OK) {
				drop(q);
				return rc;
			}
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			rc = reply_error(r, err, "script");
			freeReplyObject(r);
			return rc;
		}
		*out = r;
		return VG_OK;
	}
}

int vg_queue_ping(struct vg_queue *q, struct vg_err *err)
{
	const char *argv[] = {"PING"};
	redisReply *r;
	int rc = command(q, 1, argv, NULL, &r, err);

	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Envelope                                                             */
/* ------------------------------------------------------------------ */

static int valid_type(const char *s)
{
	size_t n = 0;

	if (!s || !(*s >= 'a' && *s <= 'z'))
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
		      s[n] == '.' || s[n] == '-'))
			return 0;
	return n <= VG_QUEUE_TYPE_MAX;
}

static int valid_id(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' ||
		      s[n] == '-'))
			return 0;
	return n >= 1 && n <= 64;
}

/* Printable ASCII without spaces, at most `max` bytes ("" allowed). */
static int valid_token(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (s[n] < 0x21 || s[n] > 0x7e)
			return 0;
	return n <= max;
}

void vg_task_free(struct vg_task *t)
{
	if (!t)
		return;
	json_decref(t->root_);
	free(t);
}

/* A string member: "" when absent; VG_PARSE when not a string. */
static int get_str(json_t *root, const char *key, const char **out,
                   struct vg_err *err)
{
	json_t *v = json_object_get(root, key);

	*out = "";
	if (!v)
		return VG_OK;
	if (!json_is_string(v))
		return vg_err_set(err, VG_PARSE,
		                  "task envelope: \"%s\" is not a string", key);
	*out = json_string_value(v);
	return VG_OK;
}

static int get_int(json_t *root, const char *key, long long max, long long *out,
                   struct vg_err *err)
{
	json_t *v = json_object_get(root, key);

	*out = 0;
	if (!v)
		return VG_OK;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > max)
		return vg_err_set(err, VG_PARSE,
		                  "task envelope: \"%s\" is not an integer "
		                  "in [0, %lld]",
		                  key, max);
	*out = json_integer_value(v);
	return VG_OK;
}

int vg_task_decode(const char *data, size_t len, struct vg_task **out,
                   struct vg_err *err)
{
	const long long max_ms = 1LL << 53;
	struct vg_task *t = NULL;
	json_t *root = NULL;
	long long v = 0, attempts = 0;
	int rc;

	*out = NULL;
	if (len > VG_QUEUE_MAX_TASK)
		return vg_err_set(err, VG_TOOLARGE,
		                  "task envelope of %zu bytes exceeds %zu", len,
		                  VG_QUEUE_MAX_TASK);
	rc = vg_json_loadb(data, len, VG_QUEUE_MAX_TASK, &root, err);
	if (rc != VG_OK) {
		if (rc == VG_PARSE)
			vg_err_set(err, VG_PARSE, "task envelope: %s",
			           err ? err->msg : "not JSON");
		return rc;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		json_decref(root);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	t->root_ = root;
	if (!json_is_object(root)) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: not a JSON object");
		goto fail;
	}
	if ((rc = get_int(root, "v", 1000, &v, err)) != VG_OK)
		goto fail;
	if (v != 1) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: unsupported version %lld", v);
		goto fail;
	}
	if ((rc = get_str(root, "id", &t->id, err)) != VG_OK ||
	    (rc = get_str(root, "type", &t->type, err)) != VG_OK ||
	    (rc = get_str(root, "tenant", &t->tenant, err)) != VG_OK ||
	    (rc = get_str(root, "request_id", &t->request_id, err)) != VG_OK ||
	    (rc = get_str(root, "last_error", &t->last_error, err)) != VG_OK ||
	    (rc = get_int(root, "attempts", 1000000, &attempts, err)) !=
	            VG_OK ||
	    (rc = get_int(root, "enqueued_at", max_ms, &t->enqueued_ms, err)) !=
	            VG_OK ||
	    (rc = get_int(root, "first_attempt_at", max_ms,
	                  &t->first_attempt_ms, err)) != VG_OK ||
	    (rc = get_int(root, "last_attempt_at", max_ms, &t->last_attempt_ms,
	                  err)) != VG_OK)
		goto fail;
	t->attempts = (int)attempts;
	if (!valid_id(t->id)) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: missing or malformed \"id\"");
		goto fail;
	}
	if (!valid_type(t->type)) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: missing or malformed \"type\"");
		goto fail;
	}
	if (!valid_token(t->tenant, VG_QUEUE_TENANT_MAX) ||
	    !valid_token(t->request_id, VG_QUEUE_REQUEST_ID_MAX)) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: malformed \"tenant\" or "
		                "\"request_id\"");
		goto fail;
	}
	t->payload = json_object_get(root, "payload");
	if (!t->payload) {
		rc = vg_err_set(err, VG_PARSE,
		                "task envelope: missing \"payload\"");
		goto fail;
	}
	*out = t;
	return VG_OK;
fail:
	vg_task_free(t);
	return rc;
}

static int append_kv_str(struct vg_buf *b, const char *key, const char *s)
{
	int rc = vg_buf_appendf(b, ",\"%s\":", key);

	return rc ? rc : vg_json_escape(b, s ? s : "", s ? strlen(s) : 0);
}

/* Length of `s` cut to at most `max` bytes, not inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

int vg_task_encode(const struct vg_task *t, struct vg_buf *out)
{
	size_t start = out->len;
	const char *e = t->last_error ? t->last_error : "";
	int rc;

	if (!t->payload)
		return VG_INVAL;
	rc = vg_buf_append_str(out, "{\"v\":1");
	if (!rc)
		rc = append_kv_str(out, "id", t->id);
	if (!rc)
		rc = append_kv_str(out, "type", t->type);
	if (!rc)
		rc = append_kv_str(out, "tenant", t->tenant);
	if (!rc)
		rc = append_kv_str(out, "request_id", t->request_id);
	if (!rc)
		rc = vg_buf_appendf(out,
		                    ",\"attempts\":%d,\"enqueued_at\":%lld,"
		                    "\"first_attempt_at\":%lld,"
		                    "\"last_attempt_at\":%lld,\"last_error\":",
		                    t->attempts, t->enqueued_ms,
		                    t->first_attempt_ms, t->last_attempt_ms);
	if (!rc)
		rc = vg_json_escape(out, e, utf8_prefix(e, VG_QUEUE_ERROR_MAX));
	if (!rc)
		rc = vg_buf_append_str(out, ",\"payload\":");
	if (!rc)
		rc = vg_json_dumps(t->payload, JSON_COMPACT | JSON_ENCODE_ANY,
		                   out);
	if (!rc)
		rc = vg_buf_append_byte(out, '}');
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Producer                                                             */
/* ------------------------------------------------------------------ */

static int encode_msg(struct vg_queue_msg *m, struct vg_buf *b,
                      struct vg_err *err)
{
	struct vg_task t = {0};
	int rc;

	if (!valid_type(m->type))
		return vg_err_set(err, VG_INVAL, "enqueue: invalid type \"%s\"",
		                  m->type ? m->type : "(null)");
	if (!m->payload)
		return vg_err_set(err, VG_INVAL, "enqueue: no payload");
	if (!valid_token(m->request_id ? m->request_id : "",
	                 VG_QUEUE_REQUEST_ID_MAX) ||
	    !valid_token(m->tenant ? m->tenant : "", VG_QUEUE_TENANT_MAX))
		return vg_err_set(err, VG_INVAL,
		                  "enqueue: malformed request id or tenant");
	new_task_id(m->id);
	t.id = m->id;
	t.type = m->type;
	t.tenant = m->tenant;
	t.request_id = m->request_id;
	t.payload = m->payload;
	t.enqueued_ms = now_ms();
	vg_buf_reset(b);
	rc = vg_task_encode(&t, b);
	if (rc == VG_OK && b->len > VG_QUEUE_MAX_TASK)
		rc = VG_TOOLARGE;
	if (rc != VG_OK)
		return vg_err_set(err, rc, "enqueue %s: %s%s", m->type,
		                  vg_strerror(rc),
		                  rc == VG_TOOLARGE ? " (task envelope)" : "");
	return VG_OK;
}

int vg_queue_enqueue_after(struct vg_queue *q, struct vg_queue_msg *m,
                           long long delay_ms, struct vg_err *err)
{
	m->delay_ms = delay_ms;
	return vg_queue_enqueue_many(q, m, 1, err);
}

int vg_queue_enqueue(struct vg_queue *q, struct vg_queue_msg *m,
                     struct vg_err *err)
{
	return vg_queue_enqueue_many(q, m, 1, err);
}

int vg_queue_enqueue_many(struct vg_queue *q, struct vg_queue_msg *m, size_t n,
                          struct vg_err *err)
{
	struct vg_buf *bufs = NULL;
	redisReply *r = NULL;
	size_t sent = 0;
	int rc;

	if (n == 0)
		return VG_OK;
	bufs = calloc(n, sizeof(*bufs));
	if (!bufs)
		return vg_err_set(err, VG_NOMEM, "enqueue: out of memory");
	for (size_t i = 0; i < n; i++) {
		vg_buf_init(&bufs[i], 0);
		if ((rc = encode_msg(&m[i], &bufs[i], err)) != VG_OK)
			goto out;
	}
	if ((rc = ensure(q, err)) != VG_OK)
		goto out;
	if (set_timeout(q, q->cmd_ms) < 0) {
		rc = io_error(q, err, "socket options");
		goto out;
	}
	for (size_t i = 0; i < n; i++, sent++) {
		char delay[24];
		int ok;

		if (m[i].delay_ms > 0) {
			/* EVAL with the text: no NOSCRIPT inside a pipeline */
			const char *argv[] = {"EVAL",      scripts[S_DELAY],
			                      "4",         q->keys[0],
			                      q->keys[1],  q->keys[2],
			                      q->keys[3],  delay,
			                      bufs[i].data};
			size_t lens[] = {4,
			                 strlen(scripts[S_DELAY]),
			                 1,
			                 strlen(q->keys[0]),
			                 strlen(q->keys[1]),
			                 strlen(q->keys[2]),
			                 strlen(q->keys[3]),
			                 0,
			                 bufs[i].len};

			lens[7] = (size_t)snprintf(delay, sizeof(delay), "%lld",
			                           m[i].delay_ms);
			ok = redisAppendCommandArgv(q->c, 9, argv, lens);
		} else {
			const char *argv[] = {"XADD", q->keys[0], "*", "e",
			                      bufs[i].data};
			size_t lens[] = {4, strlen(q->keys[0]), 1, 1,
			                 bufs[i].len};

			ok = redisAppendCommandArgv(q->c, 5, argv, lens);
		}
		if (ok != REDIS_OK) {
			rc = io_error(q, err, "enqueue");
			goto out;
		}
	}
	rc = VG_OK;
	for (size_t i = 0; i < sent; i++) {
		if (redisGetReply(q->c, (void **)&r) != REDIS_OK) {
			rc = io_error(q, err, "enqueue");
			goto out;
		}
		if (r->type == REDIS_REPLY_ERROR && rc == VG_OK)
			rc = reply_error(r, err, "enqueue");
		freeReplyObject(r);
	}
out:
	for (size_t i = 0; i < n; i++)
		vg_buf_cleanup(&bufs[i]);
	free(bufs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Consumer                                                             */
/* ------------------------------------------------------------------ */

/* Move the stream entry `msgid` to the dead letters: an envelope `env`
 * or else the raw bytes. Only when this consumer still holds it. */
static int bury(struct vg_queue *q, const char *msgid, const char *env,
                size_t env_len, const char *raw, size_t raw_len,
                const char *error, int *buried, struct vg_err *err)
{
	struct call c;
	redisReply *r;
	int rc;

	if (call_init(&c, q, S_BURY, 6) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	call_str(&c, q->group);
	call_str(&c, q->consumer);
	call_str(&c, msgid);
	call_arg(&c, env ? env : "", env ? env_len : 0);
	call_arg(&c, raw ? raw : "", raw ? raw_len : 0);
	call_arg(&c, error, strnlen(error, VG_QUEUE_ERROR_MAX));
	rc = run_call(q, &c, S_BURY, &r, err);
	call_cleanup(&c);
	if (rc == VG_OK && buried)
		*buried = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return rc;
}

static void report_dead(struct vg_queue *q, const char *type,
                        const char *request_id, const char *error)
{
	if (q->on_dead)
		q->on_dead(q->on_dead_ctx, type, request_id, error);
}

/* The field "e" of a flat [field, value, ...] reply, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			return fields->element[i + 1];
	return NULL;
}

static void encode_dead(const struct vg_task *t, const char *error,
                        struct vg_buf *b)
{
	struct vg_task d = *t;

	d.attempts = t->attempt;
	d.last_error = error;
	vg_buf_reset(b);
	vg_task_encode(&d, b);
}

/*
 * Turn stream entry (id, fields) with `deliveries` into a task for the
 * caller, or dead-letter it. Returns the task or NULL (buried, or left
 * for a later claim when Redis failed).
 */
static struct vg_task *accept_entry(struct vg_queue *q, const char *msgid,
                                    const redisReply *fields,
                                    long long deliveries, long long now)
{
	const redisReply *e = field(fields, "e");
	struct vg_err derr = {0}, rerr = {0};
	struct vg_task *t = NULL;
	const struct vg_queue_type *type;
	char error[VG_QUEUE_ERROR_MAX];
	struct vg_buf b;

	if (!e) {
		bury(q, msgid, NULL, 0, "", 0,
		     "malformed task: stream entry has no \"e\" field", NULL,
		     &rerr);
		report_dead(q, "", "", "malformed task: no envelope");
		return NULL;
	}
	if (vg_task_decode(e->str, e->len, &t, &derr) != VG_OK) {
		snprintf(error, sizeof(error), "malformed task: %s", derr.msg);
		bury(q, msgid, NULL, 0, e->str, e->len, error, NULL, &rerr);
		report_dead(q, "", "", error);
		return NULL;
	}
	snprintf(t->msgid, sizeof(t->msgid), "%s", msgid);
	snprintf(t->consumer, sizeof(t->consumer), "%s", q->consumer);
	t->deliveries = deliveries < 1 ? 1 : (int)deliveries;
	t->attempt = t->attempts + t->deliveries;
	if (!t->first_attempt_ms)
		t->first_attempt_ms = now;
	t->last_attempt_ms = now;
	type = vg_queue_type_find(q, t->type);
	error[0] = '\0';
	if (q->ntypes && !type)
		snprintf(error, sizeof(error), "unknown task type \"%s\"",
		         t->type);
	else if (type && t->attempt > type->max_attempts)
		snprintf(error, sizeof(error),
		         "gave up after %d attempts: the worker holding it "
		         "stopped (visibility timeout) %d time(s); last "
		         "error: %s",
		         t->attempt - 1, t->deliveries - 1,
		         t->last_error[0] ? t->last_error : "none");
	if (!error[0])
		return t;
	vg_buf_init(&b, 0);
	t->attempt--; /* this delivery is no attempt */
	encode_dead(t, error, &b);
	if (bury(q, msgid, b.data, b.len, NULL, 0, error, NULL, &rerr) == VG_OK)
		report_dead(q, t->type, t->request_id, error);
	vg_buf_cleanup(&b);
	vg_task_free(t);
	return NULL;
}

/* Collect entries [[id, fields], ...] (deliveries 1) or, for reclaim,
 * [[id, fields, deliveries], ...]. */
static void accept_entries(struct vg_queue *q, const redisReply *entries,
                           struct vg_task **tasks, int max, int *n)
{
	long long now = now_ms();

	if (!entries || entries->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < entries->elements && *n < max; i++) {
		const redisReply *e = entries->element[i];
		long long deliveries = 1;
		struct vg_task *t;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		if (e->elements >= 3 &&
		    e->element[2]->type == REDIS_REPLY_INTEGER)
			deliveries = e->element[2]->integer;
		t = accept_entry(q, e->element[0]->str, e->element[1],
		                 deliveries, now);
		if (t)
			tasks[(*n)++] = t;
	}
}

static int reclaim(struct vg_queue *q, struct vg_task **tasks, int max, int *n,
                   struct vg_err *err)
{
	char idle[24], count[24];
	struct call c;
	redisReply *r;
	int rc;

	snprintf(idle, sizeof(idle), "%d", q->vis_ms);
	snprintf(count, sizeof(count), "%d", max);
	if (call_init(&c, q, S_RECLAIM, 5) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	call_str(&c, q->group);
	call_str(&c, q->consumer);
	call_str(&c, idle);
	call_str(&c, q->cursor);
	call_str(&c, count);
	rc = run_call(q, &c, S_RECLAIM, &r, err);
	call_cleanup(&c);
	if (rc != VG_OK)
		return rc;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING) {
		snprintf(q->cursor, sizeof(q->cursor), "%s",
		         r->element[0]->str);
		accept_entries(q, r->element[1], tasks, max, n);
	} else {
		snprintf(q->cursor, sizeof(q->cursor), "0-0");
	}
	/* scanned the whole pending list: rest until the next period */
	if (strcmp(q->cursor, "0-0") == 0)
		q->next_reclaim = vg_mono_ms() + q->vis_ms / 2;
	freeReplyObject(r);
	return VG_OK;
}

static int append_acks(struct vg_queue *q, struct call *c)
{
	if (call_init(c, q, S_ACK, 1 + (int)q->nacks) != VG_OK)
		return VG_NOMEM;
	call_str(c, q->group);
	for (size_t i = 0; i < q->nacks; i++)
		call_str(c, q->acks[i]);
	if (redisAppendCommandArgv(q->c, c->argc, c->argv, c->lens) !=
	    REDIS_OK) {
		call_cleanup(c);
		return VG_IO;
	}
	return VG_OK;
}

/* Read the reply to a pipelined ack. *noscript: the scripts must be
 * loaded again and the acks resent (they stay pending). */
static int read_ack_reply(struct vg_queue *q, int *noscript, struct vg_err *err)
{
	redisReply *r = NULL;
	int rc = VG_OK;

	*noscript = 0;
	if (redisGetReply(q->c, (void **)&r) != REDIS_OK)
		return io_error(q, err, "ack");
	if (is_noscript(r))
		*noscript = 1;
	else if (r->type == REDIS_REPLY_ERROR)
		rc = reply_error(r, err, "ack");
	else
		q->nacks = 0;
	freeReplyObject(r);
	return rc;
}

int vg_queue_flush(struct vg_queue *q, struct vg_err *err)
{
	struct call c;
	int rc;

	if (!q->nacks)
		return VG_OK;
	if ((rc = ensure(q, err)) != VG_OK)
		return rc;
	if (set_timeout(q, q->cmd_ms) < 0)
		return io_error(q, err, "socket options");
	for (int tries = 0;; tries++) {
		int noscript = 0;

		rc = append_acks(q, &c);
		if (rc == VG_NOMEM)
			return vg_err_set(err, rc, "out of memory");
		if (rc != VG_OK)
			return io_error(q, err, "ack");
		rc = read_ack_reply(q, &noscript, err);
		call_cleanup(&c);
		if (rc != VG_OK || !noscript)
			return rc;
		if (tries > 0)
			return vg_err_set(err, VG_REDIS, "ack: NOSCRIPT");
		if ((rc = load_scripts(q, err)) != VG_OK) {
			drop(q);
			return rc;
		}
	}
}

size_t vg_queue_pending_acks(const struct vg_queue *q)
{
	return q->nacks;
}

int vg_queue_ack_later(struct vg_queue *q, const struct vg_task *t)
{
	if (q->nacks == q->acks_cap) {
		size_t cap = q->acks_cap ? q->acks_cap * 2 : 64;
		void *p = realloc(q->acks, cap * sizeof(*q->acks));

		if (!p)
			return VG_NOMEM;
		q->acks = p;
		q->acks_cap = cap;
	}
	snprintf(q->acks[q->nacks++], MSGID_MAX, "%s", t->msgid);
	return VG_OK;
}

int vg_queue_ack(struct vg_queue *q, const struct vg_task *t,
                 struct vg_err *err)
{
	if (vg_queue_ack_later(q, t) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return vg_queue_flush(q, err);
}

int vg_queue_claim(struct vg_queue *q, struct vg_task **tasks, int max,
                   int block_ms, int *n, struct vg_err *err)
{
	char count[24], block[24];
	const char *blocking[] = {
		"XREADGROUP", "GROUP", q->group,  q->consumer, "COUNT", count,
		"BLOCK",      block,   "STREAMS", q->keys[0],  ">"};
	/* BLOCK 0 would wait forever: without blocking, leave it out */
	const char *polling[] = {"XREADGROUP", "GROUP",    q->group,
	                         q->consumer,  "COUNT",    count,
	                         "STREAMS",    q->keys[0], ">"};
	struct call acks;
	int has_acks = 0, noscript = 0;
	redisReply *r = NULL;
	int rc;

	*n = 0;
	if (max < 1)
		return vg_err_set(err, VG_INVAL, "claim: max < 1");
	if ((rc = ensure(q, err)) != VG_OK)
		return rc;
	if (vg_mono_ms() >= q->next_reclaim) {
		if ((rc = vg_queue_flush(q, err)) != VG_OK)
			return rc;
		if ((rc = reclaim(q, tasks, max, n, err)) != VG_OK || *n > 0)
			return rc;
	}
	if (block_ms < 0)
		block_ms = 0;
	/* a blocked read must not time out on the socket first */
	if (set_timeout(q, q->cmd_ms + block_ms) < 0)
		return io_error(q, err, "socket options");
	if (q->nacks) {
		rc = append_acks(q, &acks);
		if (rc == VG_NOMEM)
			return vg_err_set(err, rc, "out of memory");
		if (rc != VG_OK)
			return io_error(q, err, "ack");
		has_acks = 1;
	}
	snprintf(count, sizeof(count), "%d", max);
	snprintf(block, sizeof(block), "%d", block_ms);
	if (redisAppendCommandArgv(q->c, block_ms > 0 ? 11 : 9,
	                           block_ms > 0 ? blocking : polling,
	                           NULL) != REDIS_OK) {
		rc = io_error(q, err, "claim");
		goto out;
	}
	if (has_acks && (rc = read_ack_reply(q, &noscript, err)) != VG_OK) {
		/* the read is still in flight: drop the connection */
		if (q->c)
			drop(q);
		goto out;
	}
	if (!q->c || redisGetReply(q->c, (void **)&r) != REDIS_OK) {
		rc = io_error(q, err, "claim");
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		rc = reply_error(r, err, "claim");
		/* the group vanished (FLUSHALL, restore): create it again */
		if (strncmp(r->str, "NOGROUP", 7) == 0)
			drop(q);
		goto out;
	}
	rc = VG_OK;
	/* [[stream, [[id, fields], ...]]] or nil on timeout */
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY &&
	    r->element[0]->elements == 2)
		accept_entries(q, r->element[0]->element[1], tasks, max, n);
	if (noscript) {
		/* scripts flushed: load them, send the acks again */
		if (load_scripts(q, err) != VG_OK)
			drop(q);
		else
			vg_queue_flush(q, NULL);
	}
out:
	if (has_acks)
		call_cleanup(&acks);
	freeReplyObject(r);
	return rc;
}

static int run_simple(struct vg_queue *q, enum script_id s, int nargs,
                      const char *const *args, const size_t *lens,
                      long long *result, struct vg_err *err)
{
	struct call c;
	redisReply *r;
	int rc;

	if (call_init(&c, q, s, nargs) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (int i = 0; i < nargs; i++)
		call_arg(&c, args[i], lens ? lens[i] : strlen(args[i]));
	rc = run_call(q, &c, s, &r, err);
	call_cleanup(&c);
	if (rc == VG_OK && result)
		*result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	return rc;
}

int vg_queue_fail(struct vg_queue *q, const struct vg_task *t, int permanent,
                  const char *error, int *outcome, long long *delay_ms,
                  struct vg_err *err)
{
	const struct vg_queue_type *type = vg_queue_type_find(q, t->type);
	char msg[VG_QUEUE_ERROR_MAX], delay[24];
	struct vg_task next = *t;
	struct vg_buf b;
	long long done = 0, d = 0;
	uint32_t rnd = 0;
	int rc, dead;

	snprintf(msg, sizeof(msg), "%s", error && *error ? error : "failed");
	dead = permanent || !type || t->attempt >= type->max_attempts;
	vg_buf_init(&b, 0);
	next.attempts = t->attempt;
	next.last_error = msg;
	if (vg_task_encode(&next, &b) != VG_OK) {
		vg_buf_cleanup(&b);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (dead) {
		int buried = 0;

		rc = bury(q, t->msgid, b.data, b.len, NULL, 0, msg, &buried,
		          err);
		done = buried;
	} else {
		const char *args[5] = {q->group, t->consumer, t->msgid, delay,
		                       b.data};
		size_t lens[5] = {strlen(q->group), strlen(t->consumer),
		                  strlen(t->msgid), 0, b.len};

		random_bytes(&rnd, sizeof(rnd));
		d = vg_queue_backoff_ms(type, t->attempt, rnd);
		lens[3] = (size_t)snprintf(delay, sizeof(delay), "%lld", d);
		rc = run_simple(q, S_RETRY, 5, args, lens, &done, err);
	}
	vg_buf_cleanup(&b);
	if (rc != VG_OK)
		return rc;
	if (outcome)
		*outcome = !done  ? VG_QUEUE_LOST
		           : dead ? VG_QUEUE_DEAD
		                  : VG_QUEUE_RETRIED;
	if (delay_ms)
		*delay_ms = dead ? 0 : d;
	return VG_OK;
}

int vg_queue_release(struct vg_queue *q, struct vg_task *const *tasks, size_t n,
                     struct vg_err *err)
{
	struct vg_buf *bufs;
	struct call c;
	redisReply *r = NULL;
	int rc;

	if (n == 0)
		return VG_OK;
	bufs = calloc(n, sizeof(*bufs));
	if (!bufs || call_init(&c, q, S_RELEASE, 2 + 2 * (int)n) != VG_OK) {
		free(bufs);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	call_str(&c, q->group);
	call_str(&c, q->consumer);
	rc = VG_OK;
	for (size_t i = 0; i < n && rc == VG_OK; i++) {
		struct vg_task back = *tasks[i];

		/* lost deliveries before this one still count */
		back.attempts = tasks[i]->attempt - 1;
		vg_buf_init(&bufs[i], 0);
		rc = vg_task_encode(&back, &bufs[i]);
		call_str(&c, tasks[i]->msgid);
		call_arg(&c, bufs[i].data, bufs[i].len);
	}
	if (rc == VG_OK)
		rc = run_call(q, &c, S_RELEASE, &r, err);
	else
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	freeReplyObject(r);
	call_cleanup(&c);
	for (size_t i = 0; i < n; i++)
		vg_buf_cleanup(&bufs[i]);
	free(bufs);
	return rc;
}

int vg_queue_touch(struct vg_queue *q, const struct vg_task *const *tasks,
                   size_t n, struct vg_err *err)
{
	struct call c;
	redisReply *r = NULL;
	int rc;

	if (n == 0)
		return VG_OK;
	if (call_init(&c, q, S_TOUCH, 1 + 2 * (int)n) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	call_str(&c, q->group);
	for (size_t i = 0; i < n; i++) {
		call_str(&c, tasks[i]->msgid);
		call_str(&c, tasks[i]->consumer);
	}
	rc = run_call(q, &c, S_TOUCH, &r, err);
	freeReplyObject(r);
	call_cleanup(&c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Delayed tasks                                                        */
/* ------------------------------------------------------------------ */

int vg_queue_promote(struct vg_queue *q, int max, int *moved,
                     long long *next_ms, struct vg_err *err)
{
	char count[24];
	struct call c;
	redisReply *r;
	int rc;

	snprintf(count, sizeof(count), "%d", max > 0 ? max : PROMOTE_BATCH);
	if (call_init(&c, q, S_PROMOTE, 1) != VG_OK)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	call_str(&c, count);
	rc = run_call(q, &c, S_PROMOTE, &r, err);
	call_cleanup(&c);
	if (rc != VG_OK)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(r);
		return vg_err_set(err, VG_REDIS, "promote: unexpected reply");
	}
	if (moved)
		*moved = (int)r->element[0]->integer;
	if (next_ms)
		*next_ms = r->element[1]->integer;
	freeReplyObject(r);
	return VG_OK;
}

int vg_queue_schedule(struct vg_queue *q, int max_wait_ms, int *moved,
                      struct vg_err *err)
{
	long long next = -1, wait;
	char secs[32];
	const char *argv[] = {"BLPOP", q->keys[2], secs};
	redisReply *r;
	int rc, m = 0, total = 0;

	do {
		rc = vg_queue_promote(q, PROMOTE_BATCH, &m, &next, err);
		if (rc != VG_OK)
			return rc;
		total += m;
	} while (m == PROMOTE_BATCH);
	if (moved)
		*moved = total;
	if (total > 0)
		return VG_OK; /* let the caller see them at once */
	wait = next < 0 || next > max_wait_ms ? max_wait_ms : next;
	if (wait <= 0)
		return VG_OK;
	snprintf(secs, sizeof(secs), "%lld.%03lld", wait / 1000, wait % 1000);
	if (set_timeout(q, q->cmd_ms + (int)wait) < 0)
		return io_error(q, err, "socket options");
	r = redisCommandArgv(q->c, 3, argv, NULL);
	if (!r)
		return io_error(q, err, "wait");
	rc = r->type == REDIS_REPLY_ERROR ? reply_error(r, err, "wait") : VG_OK;
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Dead letters and statistics                                          */
/* ------------------------------------------------------------------ */

static long long str_ll(const redisReply *r)
{
	char *end;
	long long v;

	if (!r)
		return 0;
	errno = 0;
	v = strtoll(r->str, &end, 10);
	return errno || *end ? 0 : v;
}

int vg_queue_dlq_list(struct vg_queue *q, const char *type, size_t limit,
                      int (*fn)(const struct vg_dead *d, void *arg), void *arg,
                      struct vg_err *err)
{
	char start[MSGID_MAX + 1] = "-", count[16];
	const char *argv[] = {"XRANGE", q->keys[3], start, "+", "COUNT", count};
	size_t seen = 0;
	int rc;

	snprintf(count, sizeof(count), "%d", DLQ_PAGE);
	for (;;) {
		redisReply *r;
		int stop = 0;

		if ((rc = command(q, 6, argv, NULL, &r, err)) != VG_OK)
			return rc;
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
			freeReplyObject(r);
			return VG_OK;
		}
		for (size_t i = 0; i < r->elements && !stop; i++) {
			const redisReply *e = r->element[i], *env, *raw, *er;
			struct vg_dead d = {0};
			struct vg_task *t = NULL;

			if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING)
				continue;
			snprintf(start, sizeof(start), "(%s",
			         e->element[0]->str);
			env = field(e->element[1], "e");
			raw = field(e->element[1], "raw");
			er = field(e->element[1], "error");
			d.id = e->element[0]->str;
			d.error = er ? er->str : "";
			d.dead_ms = str_ll(field(e->element[1], "dead_at"));
			if (env && vg_task_decode(env->str, env->len, &t,
			                          NULL) == VG_OK) {
				d.task = t;
				d.raw = "";
			} else {
				d.raw = env ? env->str : raw ? raw->str : "";
				d.raw_len = env ? env->len : raw ? raw->len : 0;
			}
			if (!type || (t && strcmp(t->type, type) == 0)) {
				stop = fn(&d, arg) != 0;
				if (limit && ++seen >= limit)
					stop = 1;
			}
			vg_task_free(t);
		}
		freeReplyObject(r);
		if (stop)
			return VG_OK;
	}
}

int vg_queue_dlq_replay(struct vg_queue *q, const char *id, struct vg_err *err)
{
	const char *argv[] = {"XRANGE", q->keys[3], id, id};
	const redisReply *env;
	struct vg_task *t = NULL;
	redisReply *r = NULL;
	struct vg_buf b;
	long long done = 0;
	int rc;

	vg_buf_init(&b, 0);
	if ((rc = command(q, 4, argv, NULL, &r, err)) != VG_OK)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY ||
	    r->element[0]->elements < 2) {
		rc = vg_err_set(err, VG_NOTFOUND, "no dead letter %s", id);
		goto out;
	}
	env = field(r->element[0]->element[1], "e");
	if (!env || vg_task_decode(env->str, env->len, &t, NULL) != VG_OK) {
		rc = vg_err_set(err, VG_INVAL,
		                "dead letter %s holds no task envelope; it "
		                "cannot be replayed",
		                id);
		goto out;
	}
	t->attempts = 0;
	t->first_attempt_ms = 0;
	t->last_attempt_ms = 0;
	if (vg_task_encode(t, &b) != VG_OK) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	{
		const char *args[2] = {id, b.data};
		size_t lens[2] = {strlen(id), b.len};

		rc = run_simple(q, S_REPLAY, 2, args, lens, &done, err);
	}
	if (rc == VG_OK && !done)
		rc = vg_err_set(err, VG_NOTFOUND, "no dead letter %s", id);
out:
	vg_task_free(t);
	vg_buf_cleanup(&b);
	freeReplyObject(r);
	return rc;
}

int vg_queue_dlq_delete(struct vg_queue *q, const char *id, struct vg_err *err)
{
	const char *argv[] = {"XDEL", q->keys[3], id};
	redisReply *r;
	int rc = command(q, 3, argv, NULL, &r, err);

	if (rc != VG_OK)
		return rc;
	if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "no dead letter %s", id);
	freeReplyObject(r);
	return rc;
}

int vg_queue_dlq_purge(struct vg_queue *q, long long *n, struct vg_err *err)
{
	const char *len[] = {"XLEN", q->keys[3]};
	const char *del[] = {"DEL", q->keys[3]};
	redisReply *r;
	int rc;

	if ((rc = command(q, 2, len, NULL, &r, err)) != VG_OK)
		return rc;
	if (n)
		*n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	if ((rc = command(q, 2, del, NULL, &r, err)) != VG_OK)
		return rc;
	freeReplyObject(r);
	return VG_OK;
}

int vg_queue_stats(struct vg_queue *q, struct vg_queue_stats *out,
                   struct vg_err *err)
{
	const char *xlen[] = {"XLEN", q->keys[0]};
	const char *xpending[] = {"XPENDING", q->keys[0], q->group};
	const char *zcard[] = {"ZCARD", q->keys[1]};
	const char *dlen[] = {"XLEN", q->keys[3]};
	const char **cmds[] = {xlen, xpending, zcard, dlen};
	const int argcs[] = {2, 3, 2, 2};
	long long v[4] = {0};
	redisReply *r;
	int rc = VG_OK;

	memset(out, 0, sizeof(*out));
	if ((rc = ensure(q, err)) != VG_OK)
		return rc;
	if (set_timeout(q, q->cmd_ms) < 0)
		return io_error(q, err, "socket options");
	for (int i = 0; i < 4; i++)
		if (redisAppendCommandArgv(q->c, argcs[i], cmds[i], NULL) !=
		    REDIS_OK)
			return io_error(q, err, "stats");
	for (int i = 0; i < 4; i++) {
		if (redisGetReply(q->c, (void **)&r) != REDIS_OK)
			return io_error(q, err, "stats");
		if (r->type == REDIS_REPLY_INTEGER)
			v[i] = r->integer;
		else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
		         r->element[0]->type == REDIS_REPLY_INTEGER)
			v[i] = r->element[0]->integer; /* XPENDING summary */
		else if (r->type == REDIS_REPLY_ERROR && rc == VG_OK)
			rc = reply_error(r, err, "stats");
		freeReplyObject(r);
	}
	out->pending = v[1];
	out->ready = v[0] - v[1] > 0 ? v[0] - v[1] : 0;
	out->delayed = v[2];
	out->dead = v[3];
	return rc;
}
