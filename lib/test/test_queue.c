/* test_queue.c - the task envelope and backoff (unit), and the queue's
 * delivery, retry, dead-letter and recovery semantics against a real
 * Redis with appendonly on (appendfsync always). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testsupport/services.h"
#include "vigil/buf.h"
#include "vigil/queue.h"

static struct vg_ts_service redis;

static const struct vg_queue_type types[] = {
	{"ingest", 3, 50, 200},
	{"noop", 5, 10, 100},
	{"once", 1, 10, 10},
	{"twice", 2, 10, 10},
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

struct dead_log {
	int n;
	char last[256];
};

static void on_dead(void *ctx, const char *type, const char *request_id,
                    const char *error)
{
	struct dead_log *d = ctx;

	(void)type;
	(void)request_id;
	d->n++;
	snprintf(d->last, sizeof(d->last), "%s", error);
}

/* A handle on the test Redis; each test uses its own key prefix. */
static struct vg_queue *open_q(const char *prefix, int vis_ms,
                               struct dead_log *dead)
{
	struct vg_queue_opts o = {
		.port = redis.port,
		.prefix = prefix,
		.visibility_timeout_ms = vis_ms,
		.types = types,
		.ntypes = sizeof(types) / sizeof(types[0]),
		.on_dead = dead ? on_dead : NULL,
		.on_dead_ctx = dead,
	};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};

	if (vg_queue_new(&o, &q, &err) != VG_OK)
		fail_msg("queue: %s", err.msg);
	return q;
}

static void enqueue(struct vg_queue *q, const char *type, int n,
                    char id[VG_QUEUE_ID_LEN + 1])
{
	json_t *p = json_pack("{s:i}", "n", n);
	struct vg_queue_msg m = {.type = type,
	                         .payload = p,
	                         .request_id = "req-1",
	                         .tenant = "tenant-a"};
	struct vg_err err = {0};

	if (vg_queue_enqueue(q, &m, &err) != VG_OK)
		fail_msg("enqueue: %s", err.msg);
	if (id)
		memcpy(id, m.id, sizeof(m.id));
	json_decref(p);
}

/* Claim exactly one task within `block_ms`, or fail. */
static struct vg_task *claim1(struct vg_queue *q, int block_ms)
{
	struct vg_task *t[1];
	struct vg_err err = {0};
	int n = 0;

	if (vg_queue_claim(q, t, 1, block_ms, &n, &err) != VG_OK)
		fail_msg("claim: %s", err.msg);
	if (n != 1)
		fail_msg("claim: expected a task, got %d", n);
	return t[0];
}

static int claim_none(struct vg_queue *q, int block_ms)
{
	struct vg_task *t[4];
	struct vg_err err = {0};
	int n = -1;

	assert_int_equal(vg_queue_claim(q, t, 4, block_ms, &n, &err), VG_OK);
	for (int i = 0; i < n; i++)
		vg_task_free(t[i]);
	return n;
}

static struct vg_queue_stats stats(struct vg_queue *q)
{
	struct vg_queue_stats s;
	struct vg_err err = {0};

	if (vg_queue_stats(q, &s, &err) != VG_OK)
		fail_msg("stats: %s", err.msg);
	return s;
}

static redisContext *raw_redis(void)
{
	redisContext *c = redisConnect("127.0.0.1", redis.port);

	if (!c || c->err)
		fail_msg("redis connect");
	return c;
}

/* --- envelope (unit) -------------------------------------------------- */

static void test_envelope_round_trip(void **state)
{
	(void)state;
	json_t *p = json_pack("{s:s,s:[i,i]}", "batch_id", "b\"1\n", "findings",
	                      1, 2);
	struct vg_task in = {.id = "0123456789abcdef0123456789abcdef",
	                     .type = "ingest",
	                     .tenant = "6f1c9e0a-1111-2222-3333-444455556666",
	                     .request_id = "req-42",
	                     .payload = p,
	                     .attempts = 3,
	                     .enqueued_ms = 1700000000123LL,
	                     .first_attempt_ms = 1700000000200LL,
	                     .last_attempt_ms = 1700000000300LL,
	                     .last_error = "boom: \"quoted\""};
	struct vg_task *out = NULL;
	struct vg_err err = {0};
	struct vg_buf b;

	vg_buf_init(&b, 0);
	assert_int_equal(vg_task_encode(&in, &b), VG_OK);
	assert_int_equal(vg_task_decode(b.data, b.len, &out, &err), VG_OK);
	assert_string_equal(out->id, in.id);
	assert_string_equal(out->type, "ingest");
	assert_string_equal(out->tenant, in.tenant);
	assert_string_equal(out->request_id, "req-42");
	assert_string_equal(out->last_error, in.last_error);
	assert_int_equal(out->attempts, 3);
	assert_int_equal(out->enqueued_ms, 1700000000123LL);
	assert_int_equal(out->first_attempt_ms, 1700000000200LL);
	assert_int_equal(out->last_attempt_ms, 1700000000300LL);
	assert_true(json_equal((json_t *)out->payload, p));
	vg_task_free(out);
	vg_buf_cleanup(&b);
	json_decref(p);
}

static void test_envelope_optional_and_unknown_keys(void **state)
{
	(void)state;
	const char *s = "{\"v\":1,\"id\":\"abc\",\"type\":\"noop\","
			"\"payload\":null,\"future\":[1,2]}";
	struct vg_task *t = NULL;
	struct vg_err err = {0};

	assert_int_equal(vg_task_decode(s, strlen(s), &t, &err), VG_OK);
	assert_string_equal(t->tenant, "");
	assert_string_equal(t->request_id, "");
	assert_string_equal(t->last_error, "");
	assert_int_equal(t->attempts, 0);
	assert_true(json_is_null(t->payload));
	vg_task_free(t);
}

static void test_envelope_rejects(void **state)
{
	(void)state;
	static const struct {
		const char *in, *msg;
	} cases[] = {
		{"", "task envelope"},
		{"not json", "task envelope"},
		{"[1]", "not a JSON object"},
		{"{\"id\":\"a\",\"type\":\"t\",\"payload\":1}",
	         "unsupported version 0"},
		{"{\"v\":2,\"id\":\"a\",\"type\":\"t\",\"payload\":1}",
	         "unsupported version 2"},
		{"{\"v\":1,\"type\":\"t\",\"payload\":1}", "\"id\""},
		{"{\"v\":1,\"id\":\"a b\",\"type\":\"t\",\"payload\":1}",
	         "\"id\""},
		{"{\"v\":1,\"id\":\"a\",\"type\":\"Bad\",\"payload\":1}",
	         "\"type\""},
		{"{\"v\":1,\"id\":\"a\",\"type\":7,\"payload\":1}",
	         "\"type\" is not a string"},
		{"{\"v\":1,\"id\":\"a\",\"type\":\"t\"}", "\"payload\""},
		{"{\"v\":1,\"id\":\"a\",\"type\":\"t\",\"payload\":1,"
	         "\"attempts\":-1}",
	         "\"attempts\""},
		{"{\"v\":1,\"id\":\"a\",\"type\":\"t\",\"payload\":1,"
	         "\"tenant\":\"a b\"}",
	         "\"tenant\""},
		{"{\"v\":1,\"id\":\"a\",\"id\":\"b\",\"type\":\"t\","
	         "\"payload\":1}",
	         "task envelope"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_task *t = (struct vg_task *)1;
		struct vg_err err = {0};
		int rc = vg_task_decode(cases[i].in, strlen(cases[i].in), &t,
		                        &err);

		if (rc != VG_PARSE || t != NULL ||
		    !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu (%s): rc %d, msg \"%s\", want "
			         "\"%s\"",
			         i, cases[i].in, rc, err.msg, cases[i].msg);
	}
}

static void test_envelope_too_large(void **state)
{
	(void)state;
	struct vg_task *t = NULL;
	struct vg_err err = {0};
	size_t n = VG_QUEUE_MAX_TASK + 1;
	char *big = malloc(n);

	assert_non_null(big);
	memset(big, ' ', n);
	assert_int_equal(vg_task_decode(big, n, &t, &err), VG_TOOLARGE);
	assert_null(t);
	free(big);
}

/* --- backoff (unit) --------------------------------------------------- */

static void test_backoff(void **state)
{
	(void)state;
	const struct vg_queue_type t = {"x", 10, 1000, 30000};

	/* with no jitter (rnd 0) the lower half is returned */
	assert_int_equal(vg_queue_backoff_ms(&t, 1, 0), 500);
	assert_int_equal(vg_queue_backoff_ms(&t, 2, 0), 1000);
	assert_int_equal(vg_queue_backoff_ms(&t, 3, 0), 2000);
	/* at most the full nominal delay */
	assert_int_equal(vg_queue_backoff_ms(&t, 1, 500), 1000);
	assert_int_equal(vg_queue_backoff_ms(&t, 1, 501), 500);
	/* capped, also for absurd attempt numbers */
	assert_int_equal(vg_queue_backoff_ms(&t, 6, 0), 15000);
	assert_int_equal(vg_queue_backoff_ms(&t, 1000000, 15000), 30000);
	/* jitter stays within [d/2, d] */
	for (uint32_t r = 0; r < 100000; r += 997) {
		long long d = vg_queue_backoff_ms(&t, 4, r * 2654435761u);

		assert_in_range(d, 4000, 8000);
	}
	/* zero base: immediate retry */
	const struct vg_queue_type z = {"z", 3, 0, 0};
	assert_int_equal(vg_queue_backoff_ms(&z, 2, 12345), 0);
}

/* --- against Redis ---------------------------------------------------- */

static int setup_redis(void **state)
{
	(void)state;
	return vg_ts_redis_start(&redis, 1);
}

static int teardown_redis(void **state)
{
	(void)state;
	vg_ts_cleanup(&redis);
	return 0;
}

static void test_enqueue_claim_ack(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("t-basic", 30000, NULL);
	char id[VG_QUEUE_ID_LEN + 1];
	struct vg_err err = {0};
	struct vg_task *t;
	struct vg_queue_stats s;

	enqueue(q, "noop", 7, id);
	s = stats(q);
	assert_int_equal(s.ready, 1);
	assert_int_equal(s.pending, 0);
	t = claim1(q, 1000);
	assert_string_equal(t->id, id);
	assert_string_equal(t->type, "noop");
	assert_string_equal(t->request_id, "req-1");
	assert_string_equal(t->tenant, "tenant-a");
	assert_int_equal(json_integer_value(json_object_get(t->payload, "n")),
	                 7);
	assert_int_equal(t->attempt, 1);
	assert_true(t->first_attempt_ms >= t->enqueued_ms);
	s = stats(q);
	assert_int_equal(s.ready, 0);
	assert_int_equal(s.pending, 1);
	assert_int_equal(vg_queue_ack(q, t, &err), VG_OK);
	s = stats(q);
	assert_int_equal(s.ready + s.pending + s.delayed + s.dead, 0);
	vg_task_free(t);
	/* nothing left: a short block times out with no task */
	assert_int_equal(claim_none(q, 50), 0);
	vg_queue_free(q);
}

static void test_enqueue_rejects(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("t-rej", 30000, NULL);
	json_t *p = json_object();
	struct vg_queue_msg bad_type = {.type = "Bad Type", .payload = p};
	struct vg_queue_msg no_payload = {.type = "noop"};
	struct vg_queue_msg bad_tenant = {
		.type = "noop", .payload = p, .tenant = "has space"};
	struct vg_err err = {0};

	assert_int_equal(vg_queue_enqueue(q, &bad_type, &err), VG_INVAL);
	assert_int_equal(vg_queue_enqueue(q, &no_payload, &err), VG_INVAL);
	assert_int_equal(vg_queue_enqueue(q, &bad_tenant, &err), VG_INVAL);
	json_decref(p);
	vg_queue_free(q);
}

static void test_pipelined_batch(void **state)
{
	(void)state;
	enum { N = 2000 };
	struct vg_queue *q = open_q("t-batch", 30000, NULL);
	struct vg_queue_msg *m = calloc(N, sizeof(*m));
	json_t *p = json_object();
	struct vg_err err = {0};
	struct vg_task *t[128];
	char *seen = calloc(N, 1);
	int got = 0;

	for (int i = 0; i < N; i++)
		m[i] = (struct vg_queue_msg){.type = "noop", .payload = p};
	assert_int_equal(vg_queue_enqueue_many(q, m, N, &err), VG_OK);
	while (got < N) {
		int n = 0;

		assert_int_equal(vg_queue_claim(q, t, 128, 500, &n, &err),
		                 VG_OK);
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			int idx = -1;

			for (int j = 0; j < N && idx < 0; j++)
				if (!strcmp(m[j].id, t[i]->id))
					idx = j;
			assert_true(idx >= 0);
			assert_int_equal(seen[idx], 0);
			seen[idx] = 1;
			assert_int_equal(vg_queue_ack_later(q, t[i]), VG_OK);
			vg_task_free(t[i]);
		}
		got += n;
	}
	assert_true(vg_queue_pending_acks(q) > 0);
	assert_int_equal(vg_queue_flush(q, &err), VG_OK);
	assert_int_equal(vg_queue_pending_acks(q), 0);
	struct vg_queue_stats s = stats(q);
	assert_int_equal(s.ready + s.pending, 0);
	free(seen);
	free(m);
	json_decref(p);
	vg_queue_free(q);
}

static void test_fail_retries_then_dead_letters(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("t-retry", 30000, NULL);
	char id[VG_QUEUE_ID_LEN + 1];
	struct vg_err err = {0};
	int outcome = 0, moved = 0;
	long long delay = -1, first = 0;

	enqueue(q, "ingest", 1, id); /* 3 attempts, backoff 50..200 ms */
	for (int attempt = 1; attempt <= 3; attempt++) {
		struct vg_task *t = NULL;
		long long t0 = mono_ms();

		/* the retry waits in the delayed set until it is due */
		while (!t) {
			int n = 0;
			struct vg_task *one[1];

			assert_int_equal(
				vg_queue_schedule(q, 1000, &moved, &err),
				VG_OK);
			assert_int_equal(vg_queue_claim(q, one, 1, 0, &n, &err),
			                 VG_OK);
			if (n)
				t = one[0];
			assert_true(mono_ms() - t0 < 3000);
		}
		if (attempt > 1)
			assert_true(mono_ms() - t0 >= delay - 20);
		assert_string_equal(t->id, id);
		assert_int_equal(t->attempt, attempt);
		if (attempt == 1)
			first = t->first_attempt_ms;
		else
			assert_int_equal(t->first_attempt_ms, first);
		if (attempt > 1)
			assert_string_equal(t->last_error, "db down");
		assert_int_equal(vg_queue_fail(q, t, 0, "db down", &outcome,
		                               &delay, &err),
		                 VG_OK);
		if (attempt < 3) {
			assert_int_equal(outcome, VG_QUEUE_RETRIED);
			/* 50 ms doubling, equal jitter */
			assert_in_range(delay, 25 << (attempt - 1),
			                50 << (attempt - 1));
			assert_int_equal(stats(q).delayed, 1);
		} else {
			assert_int_equal(outcome, VG_QUEUE_DEAD);
		}
		vg_task_free(t);
	}
	struct vg_queue_stats s = stats(q);
	assert_int_equal(s.dead, 1);
	assert_int_equal(s.ready + s.pending + s.delayed, 0);
	vg_queue_free(q);
}

struct dlq_seen {
	int n;
	char id[64];
	char task_id[VG_QUEUE_ID_LEN + 1];
	char error[256];
	char raw[256];
	int attempts;
	long long first, last, dead;
	char request_id[64];
};

static int collect(const struct vg_dead *d, void *arg)
{
	struct dlq_seen *s = arg;

	s->n++;
	snprintf(s->id, sizeof(s->id), "%s", d->id);
	snprintf(s->error, sizeof(s->error), "%s", d->error);
	snprintf(s->raw, sizeof(s->raw), "%.*s", (int)d->raw_len, d->raw);
	s->dead = d->dead_ms;
	if (d->task) {
		snprintf(s->task_id, sizeof(s->task_id), "%s", d->task->id);
		s->attempts = d->task->attempts;
		s->first = d->task->first_attempt_ms;
		s->last = d->task->last_attempt_ms;
		snprintf(s->request_id, sizeof(s->request_id), "%s",
		         d->task->request_id);
	}
	return 0;
}

static void test_permanent_failure_and_dlq_ops(void **state)
{
	(void)state;
	struct vg_queue *q = open_q("t-dlq", 30000, NULL);
	char id[VG_QUEUE_ID_LEN + 1];
	struct vg_err err = {0};
	struct dlq_seen seen = {0};
	struct vg_task *t;
	int outcome = 0;
	long long purged = -1;

	enqueue(q, "noop", 1, id);
	t = claim1(q, 1000);
	assert_int_equal(vg_queue_fail(q, t, 1, "payload: missing batch_id",
	                               &outcome, NULL, &err),
	                 VG_OK);
	assert_int_equal(outcome, VG_QUEUE_DEAD);
	vg_task_free(t);

	assert_int_equal(vg_queue_dlq_list(q, NULL, 0, collect, &seen, &err),
	                 VG_OK);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.task_id, id);
	assert_string_equal(seen.error, "payload: missing batch_id");
	assert_string_equal(seen.request_id, "req-1");
	assert_int_equal(seen.attempts, 1);
	assert_true(seen.first > 0 && seen.last >= seen.first);
	assert_true(seen.dead > 0);
	/* type filter */
	struct dlq_seen other = {0};
	assert_int_equal(
		vg_queue_dlq_list(q, "ingest", 0, collect, &other, &err),
		VG_OK);
	assert_int_equal(other.n, 0);

	/* replay: back on the stream with its attempts reset, once */
	assert_int_equal(vg_queue_dlq_replay(q, seen.id, &err), VG_OK);
	assert_int_equal(vg_queue_dlq_replay(q, seen.id, &err), VG_NOTFOUND);
	assert_int_equal(stats(q).dead, 0);
	t = claim1(q, 1000);
	assert_string_equal(t->id, id);
	assert_int_equal(t->attempt, 1);
	assert_string_equal(t->last_error, "payload: missing batch_id");
	assert_int_equal(vg_queue_ack(q, t, &err), VG_OK);
	vg_task_free(t);

	/* delete one, purge the rest */
	for (int i = 0; i < 3; i++) {
		enqueue(q, "once", i, NULL);
		t = claim1(q, 1000);
		assert_int_equal(
			vg_queue_fail(q, t, 0, "x", &outcome, NULL, &err),
			VG_OK);
		assert_int_equal(outcome, VG_QUEUE_DEAD); /* max 1 */
		vg_task_free(t);
	}
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(vg_queue_dlq_list(q, NULL, 1, collect, &seen, &err),
	                 VG_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(vg_queue_dlq_delete(q, seen.id, &err), VG_OK);
	assert_int_equal(vg_queue_dlq_delete(q, seen.id, &err), VG_NOTFOUND);
	assert_int_equal(vg_queue_dlq_purge(q, &purged, &err), VG_OK);
	assert_int_equal(purged, 2);
	assert_int_equal(stats(q).dead, 0);
	vg_queue_free(q);
}

static void test_malformed_entries_dead_letter(void **state)
{
	(void)state;
	struct dead_log dead = {0};
	struct vg_queue *q = open_q("t-bad", 30000, &dead);
	redisContext *c = raw_redis();
	struct dlq_seen seen = {0};
	struct vg_err err = {0};
	redisReply *r;

	r = redisCommand(c, "XADD {t-bad}:tasks * e %s", "{not json");
	freeReplyObject(r);
	r = redisCommand(c, "XADD {t-bad}:tasks * other x");
	freeReplyObject(r);
	r = redisCommand(c, "XADD {t-bad}:tasks * e %s",
	                 "{\"v\":1,\"id\":\"x1\",\"type\":\"nosuch\","
	                 "\"payload\":{}}");
	freeReplyObject(r);
	redisFree(c);

	/* none of them is handed out, and nothing crashes */
	assert_int_equal(claim_none(q, 100), 0);
	assert_int_equal(dead.n, 3);
	struct vg_queue_stats s = stats(q);
	assert_int_equal(s.dead, 3);
	assert_int_equal(s.ready + s.pending, 0);

	assert_int_equal(vg_queue_dlq_list(q, NULL, 1, collect, &seen, &err),
	                 VG_OK);
	assert_non_null(strstr(seen.error, "malformed task: task envelope"));
	assert_string_equal(seen.raw, "{not json");
	/* an entry without an envelope cannot be replayed */
	assert_int_equal(vg_queue_dlq_replay(q, seen.id, &err), VG_INVAL);
	assert_non_null(strstr(err.msg, "cannot be replayed"));
	assert_int_equal(vg_queue_dlq_purge(q, NULL, &err), VG_OK);
	vg_queue_free(q);
}

static void test_reclaim_after_visibility_timeout(void **state)
{
	(void)state;
	struct vg_queue *a = open_q("t-vis", 300, NULL);
	struct vg_queue *b = open_q("t-vis", 300, NULL);
	char id[VG_QUEUE_ID_LEN + 1];
	struct vg_err err = {0};
	struct vg_task *ta, *tb;
	int outcome = 0;

	enqueue(a, "noop", 1, id);
	ta = claim1(a, 1000); /* a "crashes" holding it */
	assert_int_equal(claim_none(b, 100), 0);
	sleep_ms(350);
	tb = claim1(b, 1000);
	assert_string_equal(tb->id, id);
	assert_int_equal(tb->deliveries, 2);
	assert_int_equal(tb->attempt, 2);
	/* a comes back: its failure no longer applies */
	assert_int_equal(vg_queue_fail(a, ta, 0, "late", &outcome, NULL, &err),
	                 VG_OK);
	assert_int_equal(outcome, VG_QUEUE_LOST);
	assert_int_equal(stats(a).delayed, 0);
	assert_int_equal(vg_queue_ack(b, tb, &err), VG_OK);
	assert_int_equal(stats(a).pending, 0);
	vg_task_free(ta);
	vg_task_free(tb);
	vg_queue_free(a);
	vg_queue_free(b);
}

static void test_lost_too_often_dead_letters(void **state)
{
	(void)state;
	struct dead_log dead = {0};
	struct vg_queue *a = open_q("t-lost", 200, &dead);
	struct vg_task *t;
	struct dlq_seen seen = {0};
	struct vg_err err = {0};

	enqueue(a, "twice", 1, NULL); /* max 2 attempts */
	t = claim1(a, 1000);
	vg_task_free(t);
	sleep_ms(250);
	t = claim1(a, 1000);
	assert_int_equal(t->attempt, 2);
	vg_task_free(t);
	sleep_ms(250);
	assert_int_equal(claim_none(a, 0), 0);
	assert_int_equal(dead.n, 1);
	assert_non_null(strstr(dead.last, "gave up after 2 attempts"));
	assert_int_equal(vg_queue_dlq_list(a, NULL, 0, collect, &seen, &err),
	                 VG_OK);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.attempts, 2);
	assert_int_equal(stats(a).pending, 0);
	vg_queue_free(a);
}

static void test_touch_keeps_the_task(void **state)
{
	(void)state;
	struct vg_queue *a = open_q("t-touch", 1000, NULL);
	struct vg_queue *keeper = open_q("t-touch", 1000, NULL);
	struct vg_queue *b = open_q("t-touch", 1000, NULL);
	struct vg_err err = {0};
	struct vg_task *t;

	enqueue(a, "noop", 1, NULL);
	t = claim1(a, 1000);
	for (int i = 0; i < 8; i++) {
		const struct vg_task *const held[] = {t};

		sleep_ms(250); /* 2 s in all, twice the visibility timeout */
		assert_int_equal(vg_queue_touch(keeper, held, 1, &err), VG_OK);
		assert_int_equal(claim_none(b, 0), 0);
	}
	assert_int_equal(vg_queue_ack(a, t, &err), VG_OK);
	vg_task_free(t);
	vg_queue_free(a);
	vg_queue_free(keeper);
	vg_queue_free(b);
}

static void test_release_hands_back_at_once(void **state)
{
	(void)state;
	struct vg_queue *a = open_q("t-rel", 30000, NULL);
	struct vg_queue *b = open_q("t-rel", 30000, NULL);
	struct vg_task *t[3];
	struct vg_err err = {0};
	int n = 0;

	for (int i = 0; i < 3; i++)
		enqueue(a, "noop", i, NULL);
	assert_int_equal(vg_queue_claim(a, t, 3, 1000, &n, &err), VG_OK);
	assert_int_equal(n, 3);
	assert_int_equal(vg_queue_release(a, t, 3, &err), VG_OK);
	for (int i = 0; i < 3; i++) {
		struct vg_task *u = claim1(b, 1000);

		assert_int_equal(u->attempt, 1); /* not counted */
		assert_int_equal(vg_queue_ack(b, u, &err), VG_OK);
		vg_task_free(u);
		vg_task_free(t[i]);
	}
	assert_int_equal(stats(a).pending, 0);
	vg_queue_free(a);
	vg_queue_free(b);
}

struct sched_arg {
	struct vg_queue *q;
	int moved;
	long long woke_after;
};

static void *scheduler(void *arg)
{
	struct sched_arg *s = arg;
	struct vg_err err = {0};
	long long t0 = mono_ms();

	while (s->moved == 0 && mono_ms() - t0 < 20000) {
		int m = 0;

		if (vg_queue_schedule(s->q, 10000, &m, &err) != VG_OK)
			break;
		s->moved += m;
	}
	s->woke_after = mono_ms() - t0;
	return NULL;
}

static void test_delayed_wakes_the_scheduler(void **state)
{
	(void)state;
	struct vg_queue *p = open_q("t-delay", 30000, NULL);
	struct sched_arg s = {.q = open_q("t-delay", 30000, NULL)};
	json_t *payload = json_object();
	struct vg_queue_msg m = {.type = "noop", .payload = payload};
	struct vg_err err = {0};
	long long next = 0;
	int moved = -1;
	pthread_t th;

	/* the scheduler sleeps (BLPOP) with nothing delayed: 10 s */
	pthread_create(&th, NULL, scheduler, &s);
	sleep_ms(300);
	assert_int_equal(vg_queue_enqueue_after(p, &m, 400, &err), VG_OK);
	assert_int_equal(claim_none(p, 0), 0);
	assert_int_equal(vg_queue_promote(p, 10, &moved, &next, &err), VG_OK);
	assert_int_equal(moved, 0);
	assert_in_range(next, 1, 400);
	pthread_join(th, NULL);
	/* woken by the new earliest task, then slept until it was due */
	assert_int_equal(s.moved, 1);
	assert_in_range(s.woke_after, 650, 5000); /* not the 10 s timeout */
	struct vg_task *t = claim1(p, 100);
	assert_string_equal(t->id, m.id);
	assert_int_equal(vg_queue_ack(p, t, &err), VG_OK);
	vg_task_free(t);
	json_decref(payload);
	vg_queue_free(s.q);
	vg_queue_free(p);
}

/* Redis dies (SIGKILL) with tasks queued, in flight and delayed, and
 * comes back from its append-only file: nothing is lost. */
static void test_redis_restart_loses_nothing(void **state)
{
	(void)state;
	enum { N = 50, HELD = 10 };
	struct vg_queue *q = open_q("t-restart", 1000, NULL);
	struct vg_task *held[HELD];
	json_t *payload = json_object();
	struct vg_queue_msg later = {.type = "noop", .payload = payload};
	char ids[N][VG_QUEUE_ID_LEN + 1], seen[N + 1] = {0};
	struct vg_err err = {0};
	int n = 0, got = 0;

	for (int i = 0; i < N; i++)
		enqueue(q, "noop", i, ids[i]);
	assert_int_equal(vg_queue_enqueue_after(q, &later, 200, &err), VG_OK);
	assert_int_equal(vg_queue_claim(q, held, HELD, 1000, &n, &err), VG_OK);
	assert_int_equal(n, HELD);

	assert_int_equal(vg_ts_kill9(&redis), 0);
	/* while it is down, calls fail cleanly */
	assert_int_equal(vg_queue_ack(q, held[0], &err), VG_IO);
	assert_int_equal(vg_queue_pending_acks(q), 1); /* kept for later */
	assert_int_equal(vg_ts_restart(&redis), 0);

	/* the held tasks are still ours: the acks go through */
	for (int i = 1; i < HELD; i++)
		assert_int_equal(vg_queue_ack_later(q, held[i]), VG_OK);
	assert_int_equal(vg_queue_flush(q, &err), VG_OK);
	for (int i = 0; i < HELD; i++) {
		for (int j = 0; j < N; j++)
			if (!strcmp(ids[j], held[i]->id))
				seen[j]++;
		vg_task_free(held[i]);
	}
	got = HELD;
	long long t0 = mono_ms();
	while (got < N + 1 && mono_ms() - t0 < 5000) {
		struct vg_task *t[16];
		int m = 0;

		assert_int_equal(vg_queue_schedule(q, 100, NULL, &err), VG_OK);
		assert_int_equal(vg_queue_claim(q, t, 16, 100, &m, &err),
		                 VG_OK);
		for (int i = 0; i < m; i++) {
			int k = N;

			for (int j = 0; j < N; j++)
				if (!strcmp(ids[j], t[i]->id))
					k = j;
			if (k == N)
				assert_string_equal(t[i]->id, later.id);
			seen[k]++;
			assert_int_equal(vg_queue_ack(q, t[i], &err), VG_OK);
			vg_task_free(t[i]);
		}
		got += m;
	}
	for (int i = 0; i <= N; i++)
		if (seen[i] != 1)
			fail_msg("task %d seen %d times", i, seen[i]);
	struct vg_queue_stats s = stats(q);
	assert_int_equal(s.ready + s.pending + s.delayed + s.dead, 0);
	json_decref(payload);
	vg_queue_free(q);
}

int main(void)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test(test_envelope_round_trip),
		cmocka_unit_test(test_envelope_optional_and_unknown_keys),
		cmocka_unit_test(test_envelope_rejects),
		cmocka_unit_test(test_envelope_too_large),
		cmocka_unit_test(test_backoff),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_enqueue_claim_ack),
		cmocka_unit_test(test_enqueue_rejects),
		cmocka_unit_test(test_pipelined_batch),
		cmocka_unit_test(test_fail_retries_then_dead_letters),
		cmocka_unit_test(test_permanent_failure_and_dlq_ops),
		cmocka_unit_test(test_malformed_entries_dead_letter),
		cmocka_unit_test(test_reclaim_after_visibility_timeout),
		cmocka_unit_test(test_lost_too_often_dead_letters),
		cmocka_unit_test(test_touch_keeps_the_task),
		cmocka_unit_test(test_release_hands_back_at_once),
		cmocka_unit_test(test_delayed_wakes_the_scheduler),
		cmocka_unit_test(test_redis_restart_loses_nothing),
	};
	int failed =
		cmocka_run_group_tests_name("queue envelope", unit, NULL, NULL);

	failed += cmocka_run_group_tests_name("queue on redis", live,
	                                      setup_redis, teardown_redis);
	return failed ? 1 : 0;
}
