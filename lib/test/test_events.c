/* test_events.c - event channels and envelopes (unit), and publishing
 * to a real Redis with a real subscriber. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testsupport/services.h"
#include "vigil/events.h"
#include "vigil/json.h"

static struct vg_ts_service redis;

#define TENANT "0b6f2a52-3c1d-4e0f-9a1b-2c3d4e5f6a7b"

static void test_channel_names(void **state)
{
	char ch[VG_EVENTS_CHANNEL_MAX];

	(void)state;
	assert_int_equal(vg_events_channel("vigil", TENANT, ch, sizeof(ch)),
	                 VG_OK);
	assert_string_equal(ch, "{vigil}:events:" TENANT);
	assert_string_equal(vg_events_channel_tenant("vigil", ch), TENANT);
	assert_null(vg_events_channel_tenant("vigi", ch));
	assert_null(vg_events_channel_tenant("other", ch));
	assert_null(vg_events_channel_tenant("vigil", "{vigil}:events:"));
	assert_null(vg_events_channel_tenant("vigil", "{vigil}:events:a*"));
	assert_null(vg_events_channel_tenant("vigil", "{vigil}:tasks"));
	assert_int_equal(vg_events_pattern("vigil", ch, sizeof(ch)), VG_OK);
	assert_string_equal(ch, "{vigil}:events:*");
	/* a tenant that would widen a pattern or split a key */
	assert_int_equal(vg_events_channel("vigil", "a*", ch, sizeof(ch)),
	                 VG_INVAL);
	assert_int_equal(vg_events_channel("vigil", "", ch, sizeof(ch)),
	                 VG_INVAL);
	assert_int_equal(vg_events_channel("vi}gil", TENANT, ch, sizeof(ch)),
	                 VG_INVAL);
	assert_int_equal(vg_events_channel("vigil", TENANT, ch, 10), VG_RANGE);
}

static void test_envelope(void **state)
{
	json_t *e = vg_event_new("run.progress", TENANT, "r-1", "req-1");

	(void)state;
	assert_non_null(e);
	assert_string_equal(vg_json_get_str(e, "type", ""), "run.progress");
	assert_string_equal(vg_json_get_str(e, "tenant_id", ""), TENANT);
	assert_string_equal(vg_json_get_str(e, "run_id", ""), "r-1");
	assert_string_equal(vg_json_get_str(e, "request_id", ""), "req-1");
	/* RFC 3339 UTC with milliseconds */
	assert_int_equal(strlen(vg_json_get_str(e, "ts", "")), 24);
	assert_int_equal(vg_json_get_str(e, "ts", "")[23], 'Z');
	json_decref(e);
	e = vg_event_new("x", TENANT, NULL, "");
	assert_null(json_object_get(e, "run_id"));
	assert_null(json_object_get(e, "request_id"));
	json_decref(e);
}

static redisContext *subscriber(void)
{
	struct timeval tv = {3, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
	redisReply *r;

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	redisSetTimeout(c, tv);
	r = redisCommand(c, "PSUBSCRIBE {vigil}:events:*");
	assert_non_null(r);
	freeReplyObject(r);
	return c;
}

/* The next message's channel and payload (new strings). */
static void next_message(redisContext *c, char **channel, char **payload)
{
	redisReply *r = NULL;

	assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 4);
	assert_string_equal(r->element[0]->str, "pmessage");
	*channel = strdup(r->element[2]->str);
	*payload = strdup(r->element[3]->str);
	freeReplyObject(r);
}

static void test_publish(void **state)
{
	struct vg_events_opts o = {.host = "127.0.0.1", .port = redis.port};
	struct vg_events *e = NULL;
	struct vg_err err = {0};
	redisContext *sub = subscriber();
	json_t *ev = vg_event_new("ingest.accepted", TENANT, "run-7", NULL);
	json_t *got;
	char *ch, *payload;
	long long n = -1;

	(void)state;
	assert_int_equal(vg_events_new(&o, &e, &err), VG_OK);
	json_object_set_new(ev, "findings", json_integer(3));
	assert_int_equal(vg_events_publish(e, ev, &n, &err), VG_OK);
	assert_int_equal(n, 1);
	next_message(sub, &ch, &payload);
	assert_string_equal(ch, "{vigil}:events:" TENANT);
	got = json_loads(payload, 0, NULL);
	assert_non_null(got);
	assert_true(json_equal(got, ev));
	json_decref(got);
	free(ch);
	free(payload);

	/* malformed events are refused before Redis sees them */
	json_object_set_new(ev, "tenant_id", json_string("*"));
	assert_int_equal(vg_events_publish(e, ev, NULL, &err), VG_INVAL);
	json_object_set_new(ev, "tenant_id", json_string(TENANT));
	{
		char *big = malloc(VG_EVENTS_MAX + 1);

		memset(big, 'a', VG_EVENTS_MAX);
		big[VG_EVENTS_MAX] = '\0';
		json_object_set_new(ev, "big", json_string(big));
		free(big);
	}
	assert_int_equal(vg_events_publish(e, ev, NULL, &err), VG_TOOLARGE);
	json_decref(ev);

	/* Redis restarted: the publisher connects again by itself */
	assert_int_equal(vg_ts_stop(&redis), 0);
	assert_int_equal(vg_ts_restart(&redis), 0);
	assert_int_equal(vg_ts_wait_ready(&redis, 10000), 0);
	redisFree(sub);
	sub = subscriber();
	ev = vg_event_new("run.finalized", TENANT, "run-7", NULL);
	assert_int_equal(vg_events_publish(e, ev, &n, &err), VG_OK);
	assert_int_equal(n, 1);
	json_decref(ev);
	next_message(sub, &ch, &payload);
	assert_non_null(strstr(payload, "\"run.finalized\""));
	free(ch);
	free(payload);

	/* the thread's publisher from the environment */
	{
		char port[16];

		snprintf(port, sizeof(port), "%d", redis.port);
		setenv("VIGIL_REDIS_HOST", "127.0.0.1", 1);
		setenv("VIGIL_REDIS_PORT", port, 1);
		unsetenv("VIGIL_QUEUE_PREFIX");
	}
	assert_int_equal(vg_events_emit(vg_event_new("report.ready", TENANT,
	                                             "run-7", "q"),
	                                &err),
	                 VG_OK);
	next_message(sub, &ch, &payload);
	assert_non_null(strstr(payload, "\"report.ready\""));
	free(ch);
	free(payload);

	/* Redis gone: a quick failure, and the next event is dropped
	 * without waiting on Redis again */
	assert_int_equal(vg_ts_stop(&redis), 0);
	assert_int_equal(
		vg_events_emit(vg_event_new("x", TENANT, NULL, NULL), &err),
		VG_IO);
	assert_int_equal(
		vg_events_emit(vg_event_new("x", TENANT, NULL, NULL), &err),
		VG_IO);
	assert_non_null(strstr(err.msg, "dropped"));
	assert_int_equal(vg_ts_restart(&redis), 0);
	assert_int_equal(vg_ts_wait_ready(&redis, 10000), 0);

	redisFree(sub);
	vg_events_free(e);
}

static int setup(void **state)
{
	(void)state;
	return vg_ts_redis_start(&redis, 0);
}

static int teardown(void **state)
{
	(void)state;
	vg_ts_cleanup(&redis);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_channel_names),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_publish),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
