/*
 * test_kube_watch.c - the watch stream parser: events split at every byte,
 * byte by byte and in random chunks give the same sequence; ERROR 410 ends
 * with VG_GONE; garbage and oversize events fail; callbacks can stop.
 * Also the API Status -> error code mapping the parser relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vigil/err.h"
#include "vigil/kube.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 16

struct seen {
	int n;
	char ev[MAX_SEEN][96]; /* "TYPE name rv" */
	int stop_after;        /* return VG_WATCH_STOP after this many */
	int fail_with;         /* return this at stop_after instead */
};

static int record(void *ctx, const struct vg_watch_event *ev)
{
	struct seen *s = ctx;
	const char *name = json_string_value(json_object_get(
		json_object_get(ev->object, "metadata"), "name"));

	if (s->n < MAX_SEEN)
		snprintf(s->ev[s->n], sizeof(s->ev[0]), "%s %s %s",
		         vg_watch_type_name(ev->type), name ? name : "-",
		         ev->resource_version ? ev->resource_version : "-");
	s->n++;
	if (s->stop_after && s->n == s->stop_after)
		return s->fail_with ? s->fail_with : VG_WATCH_STOP;
	return 0;
}

static const char stream[] =
	"{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":"
	"\"v1\",\"metadata\":{\"name\":\"a\",\"namespace\":\"t\","
	"\"resourceVersion\":\"10\"},\"data\":{\"k\":\"line1\\nline2 {}\"}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ConfigMap\","
        "\"apiVersion\""
	":\"v1\",\"metadata\":{\"name\":\"a\",\"namespace\":\"t\","
	"\"resourceVersion\":\"11\"},\"data\":{\"k\":\"\\u00e9\\\"\"}}}\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\","
        "\"apiVersion\""
	":\"v1\",\"metadata\":{\"resourceVersion\":\"12\",\"annotations\":{"
	"\"k8s.io/initial-events-end\":\"true\"}}}}\n"
	"{\"type\":\"DELETED\",\"object\":{\"kind\":\"ConfigMap\","
        "\"apiVersion\""
	":\"v1\",\"metadata\":{\"name\":\"a\",\"namespace\":\"t\","
	"\"resourceVersion\":\"13\"}}}\n"
	"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
	"\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":"
	"\"too old resource version: 5 (13)\",\"reason\":\"Expired\","
	"\"code\":410}}\n";

static const char *const expected[] = {
	"ADDED a 10",   "MODIFIED a 11", "BOOKMARK - 12",
	"DELETED a 13", "ERROR - -",
};
#define NEXPECTED ((int)(sizeof(expected) / sizeof(expected[0])))

static void check_full_sequence(const struct seen *s, int rc,
                                const struct vg_err *err,
                                const struct vg_watch_parser *p)
{
	assert_int_equal(rc, VG_GONE);
	assert_int_equal(s->n, NEXPECTED);
	for (int i = 0; i < NEXPECTED; i++)
		assert_string_equal(s->ev[i], expected[i]);
	assert_int_equal(err->code, VG_GONE);
	assert_int_equal(err->http_status, 410);
	assert_string_equal(err->reason, "Expired");
	assert_string_equal(err->msg, "too old resource version: 5 (13)");
	/* The ERROR carries no version: the last one seen is kept. */
	assert_string_equal(vg_watch_parser_resource_version(p), "13");
}

/* Feed `stream` in the chunks given by `cuts` (ascending offsets). */
static int feed_cuts(struct vg_watch_parser *p, const size_t *cuts, int ncuts,
                     struct vg_err *err)
{
	size_t len = strlen(stream), at = 0;
	int rc = VG_OK;

	for (int i = 0; i <= ncuts && rc == VG_OK; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		rc = vg_watch_parser_feed(p, stream + at, end - at, err);
		at = end;
	}
	if (rc == VG_OK)
		rc = vg_watch_parser_finish(p, err);
	return rc;
}

static void test_whole_stream(void **state)
{
	struct vg_watch_parser p;
	struct seen s = {0};
	struct vg_err err;
	int rc;

	(void)state;
	vg_err_clear(&err);
	vg_watch_parser_init(&p, 0, record, &s);
	rc = feed_cuts(&p, NULL, 0, &err);
	check_full_sequence(&s, rc, &err, &p);
	/* After the ERROR the parser refuses more input. */
	assert_int_equal(vg_watch_parser_feed(&p, "{}\n", 3, &err), VG_GONE);
	assert_int_equal(s.n, NEXPECTED);
	vg_watch_parser_cleanup(&p);
}

static void test_split_at_every_byte(void **state)
{
	size_t len = strlen(stream);

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;
		int rc;

		vg_err_clear(&err);
		vg_watch_parser_init(&p, 0, record, &s);
		rc = feed_cuts(&p, &cut, 1, &err);
		check_full_sequence(&s, rc, &err, &p);
		vg_watch_parser_cleanup(&p);
	}
}

static void test_split_at_every_pair(void **state)
{
	size_t len = strlen(stream);

	(void)state;
	/* Every pair of cuts in the 3rd event (the BOOKMARK) and its edges. */
	size_t from = 0, to = 0, line = 0;

	for (size_t i = 0; i < len; i++) {
		if (stream[i] != '\n')
			continue;
		line++;
		if (line == 2)
			from = i;
		if (line == 3)
			to = i + 2;
	}
	assert_true(to > from);
	for (size_t a = from; a <= to; a++) {
		for (size_t b = a; b <= to; b++) {
			size_t cuts[2] = {a, b};
			struct vg_watch_parser p;
			struct seen s = {0};
			struct vg_err err;
			int rc;

			vg_err_clear(&err);
			vg_watch_parser_init(&p, 0, record, &s);
			rc = feed_cuts(&p, cuts, 2, &err);
			check_full_sequence(&s, rc, &err, &p);
			vg_watch_parser_cleanup(&p);
		}
	}
}

static void test_byte_by_byte(void **state)
{
	size_t len = strlen(stream);
	struct vg_watch_parser p;
	struct seen s = {0};
	struct vg_err err;
	int rc = VG_OK;

	(void)state;
	vg_err_clear(&err);
	vg_watch_parser_init(&p, 0, record, &s);
	for (size_t i = 0; i < len && rc == VG_OK; i++) {
		rc = vg_watch_parser_feed(&p, stream + i, 1, &err);
		/* Each event arrives exactly when its newline does. */
		if (stream[i] != '\n')
			assert_true(rc == VG_OK);
	}
	check_full_sequence(&s, rc, &err, &p);
	vg_watch_parser_cleanup(&p);
}

static void test_random_chunks(void **state)
{
	size_t len = strlen(stream);
	uint32_t seed = 12345;

	(void)state;
	for (int iter = 0; iter < 500; iter++) {
		size_t cuts[64];
		int n = 0;
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;
		int rc;

		for (size_t at = 0; n < 64;) {
			seed = seed * 1103515245u + 12345u;
			at += 1 + (seed >> 16) % 40;
			if (at >= len)
				break;
			cuts[n++] = at;
		}
		vg_err_clear(&err);
		vg_watch_parser_init(&p, 0, record, &s);
		rc = feed_cuts(&p, cuts, n, &err);
		check_full_sequence(&s, rc, &err, &p);
		vg_watch_parser_cleanup(&p);
	}
}

static void test_last_event_without_newline(void **state)
{
	static const char two[] =
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\","
		"\"resourceVersion\":\"7\"}}}\r\n\n"
		"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":"
	        "\"x\","
		"\"resourceVersion\":\"8\"}}}";
	struct vg_watch_parser p;
	struct seen s = {0};
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	vg_watch_parser_init(&p, 0, record, &s);
	assert_int_equal(vg_watch_parser_feed(&p, two, strlen(two), &err),
	                 VG_OK);
	/* CRLF and blank lines are tolerated; the tail waits for the end. */
	assert_int_equal(s.n, 1);
	assert_string_equal(vg_watch_parser_resource_version(&p), "7");
	assert_int_equal(vg_watch_parser_finish(&p, &err), VG_OK);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.ev[1], "MODIFIED x 8");
	assert_string_equal(vg_watch_parser_resource_version(&p), "8");
	vg_watch_parser_cleanup(&p);
}

struct bad_case {
	const char *input;
	int rc;
	int delivered;
};

static void test_garbage(void **state)
{
	static const struct bad_case cases[] = {
		{"{\"type\":\"ADDED\",\"object\":{}}\nnot json\n", VG_PARSE, 1},
		{"{\"type\":\"ADDED\",\"object\":{}\n", VG_PARSE, 0},
		{"[1,2]\n", VG_PARSE, 0},
		{"{\"type\":\"RENAMED\",\"object\":{}}\n", VG_PARSE, 0},
		{"{\"type\":\"ADDED\",\"object\":\"x\"}\n", VG_PARSE, 0},
		{"{\"object\":{}}\n", VG_PARSE, 0},
		{"{\"type\":5,\"object\":{}}\n", VG_PARSE, 0},
		{"{\"type\":\"ADDED\",\"object\":{}} trailing\n", VG_PARSE, 0},
		{"{\"type\":\"ADDED\",\"object\":{}}\n{\"type\"", VG_PARSE, 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;
		size_t len = strlen(cases[i].input);
		int rc;

		vg_err_clear(&err);
		vg_watch_parser_init(&p, 0, record, &s);
		rc = vg_watch_parser_feed(&p, cases[i].input, len, &err);
		if (rc == VG_OK)
			rc = vg_watch_parser_finish(&p, &err);
		assert_int_equal(rc, cases[i].rc);
		assert_int_equal(err.code, cases[i].rc);
		assert_true(strlen(err.msg) > 0);
		assert_int_equal(s.n, cases[i].delivered);
		/* Broken streams stay broken. */
		assert_int_equal(vg_watch_parser_feed(&p, "\n", 1, &err),
		                 cases[i].rc);
		vg_watch_parser_cleanup(&p);
	}
}

static void test_oversize_event(void **state)
{
	char big[256];
	int n;

	(void)state;
	n = snprintf(big, sizeof(big),
	             "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":"
	             "\"%s\"}}}\n",
	             "0123456789012345678901234567890123456789");
	assert_true(n > 64);
	/* In one chunk, and byte by byte (buffered path). */
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;
		int rc = VG_OK;

		vg_err_clear(&err);
		vg_watch_parser_init(&p, 64, record, &s);
		if (bytewise)
			for (int i = 0; i < n && rc == VG_OK; i++)
				rc = vg_watch_parser_feed(&p, big + i, 1, &err);
		else
			rc = vg_watch_parser_feed(&p, big, (size_t)n, &err);
		assert_int_equal(rc, VG_TOOLARGE);
		assert_int_equal(err.code, VG_TOOLARGE);
		assert_int_equal(s.n, 0);
		vg_watch_parser_cleanup(&p);
	}

	/* Exactly at the limit is fine. */
	{
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;

		vg_err_clear(&err);
		vg_watch_parser_init(&p, (size_t)n - 1, record, &s);
		for (int i = 0; i < n; i++)
			assert_int_equal(
				vg_watch_parser_feed(&p, big + i, 1, &err),
				VG_OK);
		assert_int_equal(s.n, 1);
		vg_watch_parser_cleanup(&p);
	}
}

static void test_callback_stops(void **state)
{
	struct vg_watch_parser p;
	struct seen s = {.stop_after = 2};
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	vg_watch_parser_init(&p, 0, record, &s);
	assert_int_equal(vg_watch_parser_feed(&p, stream, strlen(stream), &err),
	                 VG_WATCH_STOP);
	assert_int_equal(s.n, 2);
	assert_string_equal(vg_watch_parser_resource_version(&p), "11");
	assert_int_equal(vg_watch_parser_feed(&p, "\n", 1, &err),
	                 VG_WATCH_STOP);
	vg_watch_parser_cleanup(&p);

	/* A negative return ends the stream with that error. */
	s = (struct seen){.stop_after = 3, .fail_with = VG_CONFLICT};
	vg_err_clear(&err);
	vg_watch_parser_init(&p, 0, record, &s);
	assert_int_equal(vg_watch_parser_feed(&p, stream, strlen(stream), &err),
	                 VG_CONFLICT);
	assert_int_equal(err.code, VG_CONFLICT);
	assert_int_equal(s.n, 3);
	vg_watch_parser_cleanup(&p);
}

static void test_error_events(void **state)
{
	static const struct {
		const char *status;
		int rc;
		long http;
	} cases[] = {
		{"{\"code\":410,\"reason\":\"Gone\",\"message\":\"gone\"}",
	         VG_GONE, 410},
		{"{\"code\":500,\"reason\":\"InternalError\",\"message\":"
	         "\"boom\"}",
	         VG_HTTP, 500},
		{"{\"code\":403,\"reason\":\"Forbidden\",\"message\":\"no\"}",
	         VG_FORBIDDEN, 403},
		{"{\"message\":\"no code\"}", VG_HTTP, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[256];
		struct vg_watch_parser p;
		struct seen s = {0};
		struct vg_err err;
		int n = snprintf(line, sizeof(line),
		                 "{\"type\":\"ERROR\",\"object\":%s}\n",
		                 cases[i].status);

		vg_err_clear(&err);
		vg_watch_parser_init(&p, 0, record, &s);
		assert_int_equal(
			vg_watch_parser_feed(&p, line, (size_t)n, &err),
			cases[i].rc);
		assert_int_equal(err.http_status, cases[i].http);
		assert_int_equal(s.n, 1);
		assert_null(vg_watch_parser_resource_version(&p));
		vg_watch_parser_cleanup(&p);
	}
}

static void test_status_mapping(void **state)
{
	static const struct {
		long http;
		const char *reason;
		int rc;
	} cases[] = {
		{200, NULL, VG_OK},
		{201, NULL, VG_OK},
		{404, "NotFound", VG_NOTFOUND},
		{409, "AlreadyExists", VG_EXISTS},
		{409, "Conflict", VG_CONFLICT},
		{409, NULL, VG_CONFLICT},
		{410, "Expired", VG_GONE},
		{410, "Gone", VG_GONE},
		{422, "Invalid", VG_INVAL},
		{403, "Forbidden", VG_FORBIDDEN},
		{401, "Unauthorized", VG_UNAUTHORIZED},
		{400, "BadRequest", VG_HTTP},
		{500, "InternalError", VG_HTTP},
		{429, "TooManyRequests", VG_HTTP},
	};
	json_t *st;
	struct vg_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
			vg_kube_status_code(cases[i].http, cases[i].reason),
			cases[i].rc);

	/* The Status's own code wins over the transport's; all is kept. */
	st = json_pack("{s:s, s:s, s:s, s:i}", "kind", "Status", "reason",
	               "AlreadyExists", "message",
	               "configmaps \"x\" already exists", "code", 409);
	assert_non_null(st);
	vg_err_clear(&err);
	assert_int_equal(vg_kube_err_from_status(st, 500, &err), VG_EXISTS);
	assert_int_equal(err.code, VG_EXISTS);
	assert_int_equal(err.http_status, 409);
	assert_string_equal(err.reason, "AlreadyExists");
	assert_string_equal(err.msg, "configmaps \"x\" already exists");
	json_decref(st);

	/* No Status at all: the HTTP code decides. */
	vg_err_clear(&err);
	assert_int_equal(vg_kube_err_from_status(NULL, 404, &err), VG_NOTFOUND);
	assert_int_equal(err.http_status, 404);
	assert_string_equal(err.reason, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_stream),
		cmocka_unit_test(test_split_at_every_byte),
		cmocka_unit_test(test_split_at_every_pair),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_random_chunks),
		cmocka_unit_test(test_last_event_without_newline),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversize_event),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_error_events),
		cmocka_unit_test(test_status_mapping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
