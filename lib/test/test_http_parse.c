/* test_http_parse.c - the HTTP/1.1 request-head parser: valid heads,
 * incremental input, limits, and the ambiguous framings it must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "vigil/http_parse.h"

static int parse(const char *s, struct vg_http_head *h)
{
	return vg_http_parse(s, strlen(s), 8192, h);
}

static void test_simple_get(void **state)
{
	struct vg_http_head h;
	const char *req = "GET /v1/tenants?limit=5 HTTP/1.1\r\nHost: x\r\n"
			  "X-Request-ID:  abc  \r\n\r\nrest";
	size_t len;
	const char *v;

	(void)state;
	assert_int_equal(parse(req, &h), VG_OK);
	assert_int_equal(h.head_len, strlen(req) - 4);
	assert_int_equal(h.method_len, 3);
	assert_memory_equal(h.method, "GET", 3);
	assert_int_equal(h.path_len, strlen("/v1/tenants"));
	assert_int_equal(h.query_len, strlen("limit=5"));
	assert_int_equal(h.minor, 1);
	assert_int_equal(h.keep_alive, 1);
	assert_int_equal(h.content_length, -1);
	v = vg_http_head_get(&h, "x-request-id", &len);
	assert_non_null(v);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "abc", 3);
}

static void test_incremental(void **state)
{
	const char *req = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2"
			  "\r\n\r\n{}";
	struct vg_http_head h;
	size_t head = strlen(req) - 2;

	(void)state;
	for (size_t n = 0; n < head; n++)
		assert_int_equal(vg_http_parse(req, n, 8192, &h), VG_AGAIN);
	assert_int_equal(vg_http_parse(req, head, 8192, &h), VG_OK);
	assert_int_equal(h.content_length, 2);
}

static void test_connection_semantics(void **state)
{
	struct vg_http_head h;

	(void)state;
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: "
	                       "Close\r\n\r\n",
	                       &h),
	                 VG_OK);
	assert_int_equal(h.keep_alive, 0);
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &h), VG_OK);
	assert_int_equal(h.keep_alive, 0);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive"
	                       "\r\n\r\n",
	                       &h),
	                 VG_OK);
	assert_int_equal(h.keep_alive, 1);
	assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nExpect: "
	                       "100-continue\r\nContent-Length: 1\r\n\r\n",
	                       &h),
	                 VG_OK);
	assert_int_equal(h.expect_continue, 1);
	/* bare LF line ends are accepted */
	assert_int_equal(parse("GET / HTTP/1.1\nHost: x\n\n", &h), VG_OK);
}

static const struct {
	const char *req;
	int rc;
	int status;
} bad[] = {
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length:"
         " 2\r\n\r\n",
         VG_PARSE, 400},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", VG_PARSE,
         400},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", VG_PARSE,
         400},
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
         "\r\n\r\n",
         VG_PARSE, 400},
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 3\r\n\r\n",
         VG_PARSE, 400},
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
         VG_UNSUPPORTED, 411},
	{"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/1.1\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", VG_UNSUPPORTED, 505},
	{"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", VG_UNSUPPORTED, 501},
	{"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", VG_UNSUPPORTED, 501},
	{"GET /#f HTTP/1.1\r\nHost: x\r\n\r\n", VG_PARSE, 400},
	{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", VG_PARSE, 400},
	{"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", VG_PARSE, 400},
	{"G\x01T / HTTP/1.1\r\n", VG_PARSE, 400},
	/* garbage is refused before any line end */
	{"\x16\x03\x01\x02", VG_PARSE, 400},
	{"GET / HTTP/1.1\r\nHo\x7fst", VG_PARSE, 400},
};

static void test_refused(void **state)
{
	struct vg_http_head h;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i].req, &h);

		if (rc != bad[i].rc || h.status != bad[i].status)
			fail_msg("case %zu: rc %d status %d, want %d %d", i, rc,
			         h.status, bad[i].rc, bad[i].status);
		assert_non_null(h.error);
	}
}

static void test_limits(void **state)
{
	struct vg_http_head h;
	char big[9000];
	size_t n;

	(void)state;
	n = (size_t)snprintf(big, sizeof(big),
	                     "GET / HTTP/1.1\r\nHost: x\r\n"
	                     "X-Big: ");
	memset(big + n, 'a', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(vg_http_parse(big, strlen(big), 8192, &h),
	                 VG_TOOLARGE);
	assert_int_equal(h.status, 431);
	/* within the limit but incomplete */
	assert_int_equal(vg_http_parse(big, 4000, 8192, &h), VG_AGAIN);
}

static void test_too_many_headers(void **state)
{
	char req[8192];
	size_t n = (size_t)snprintf(req, sizeof(req),
	                            "GET / HTTP/1.1\r\nHost: x\r\n");
	struct vg_http_head h;

	(void)state;
	for (int i = 0; i < VG_HTTP_MAX_HEADERS + 1; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n, "X-%d: y\r\n",
		                      i);
	snprintf(req + n, sizeof(req) - n, "\r\n");
	assert_int_equal(parse(req, &h), VG_TOOLARGE);
	assert_int_equal(h.status, 431);
}

static void test_query(void **state)
{
	const char *q = "tenant=abc&limit=10&x=a%20b+c&empty=&bad=%zz&nul=%00";
	char out[16];

	(void)state;
	assert_int_equal(
		vg_http_query_get(q, strlen(q), "limit", out, sizeof(out)),
		VG_OK);
	assert_string_equal(out, "10");
	assert_int_equal(vg_http_query_get(q, strlen(q), "x", out, sizeof(out)),
	                 VG_OK);
	assert_string_equal(out, "a b c");
	assert_int_equal(
		vg_http_query_get(q, strlen(q), "empty", out, sizeof(out)),
		VG_OK);
	assert_string_equal(out, "");
	assert_int_equal(
		vg_http_query_get(q, strlen(q), "bad", out, sizeof(out)),
		VG_PARSE);
	assert_int_equal(
		vg_http_query_get(q, strlen(q), "nul", out, sizeof(out)),
		VG_PARSE);
	assert_int_equal(
		vg_http_query_get(q, strlen(q), "none", out, sizeof(out)),
		VG_NOTFOUND);
	assert_int_equal(vg_http_query_get(q, strlen(q), "tenant", out, 3),
	                 VG_TOOLARGE);
	assert_true(vg_http_has_token("a, Keep-Alive ,b", 16, "keep-alive"));
	assert_false(vg_http_has_token("keep-alivex", 11, "keep-alive"));
	assert_string_equal(vg_http_reason(404), "Not Found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_connection_semantics),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
