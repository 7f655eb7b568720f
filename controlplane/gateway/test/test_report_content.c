/* test_report_content.c - downloading a report whose content is stored
 * zstd-compressed (as vigil-brain stores its HTML), against a real
 * PostgreSQL and Redis: the stored frame as it is to a client that
 * accepts zstd, decoded for one that does not (bounded at 64 MiB),
 * identity rows unchanged whatever the client accepts, and undecodable
 * content refused. */
#include "harness.h"

#include <zstd.h>

static char tid[37];
static char viewer[80];
static char rep_zstd[37], rep_identity[37], rep_frames[37], rep_huge[37],
	rep_corrupt[37];
static const char html[] = "<!DOCTYPE html><html><body><h1>Run</h1>"
			   "<svg><rect width=\"10\"/></svg></body></html>";
static unsigned char *frame; /* zstd of html */
static size_t frame_len;

static unsigned char *compress(const void *src, size_t n, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(n), z;
	unsigned char *out = malloc(cap);

	assert_non_null(out);
	z = ZSTD_compress(out, cap, src, n, 3);
	assert_false(ZSTD_isError(z));
	*out_len = z;
	return out;
}

/* `n` bytes as a bytea literal '\x..'::bytea, appended to `b`. */
static void bytea_literal(struct vg_buf *b, const unsigned char *p, size_t n)
{
	vg_buf_append_str(b, "'\\x");
	for (size_t i = 0; i < n; i++)
		vg_buf_appendf(b, "%02x", p[i]);
	vg_buf_append_str(b, "'::bytea");
}

/* A ready report row of a new run with `content` and `encoding`. */
static void report_row(const unsigned char *content, size_t n,
                       const char *encoding, char *id)
{
	static int seq;
	struct vg_buf q;
	char *run, *v, sql[256];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO vigil.scan_runs (tenant_id, job_name, state)"
	         " VALUES ('%s', 'content-%d', 'succeeded') RETURNING id",
	         tid, ++seq);
	run = h_sql(sql);
	vg_buf_init(&q, 0);
	vg_buf_appendf(&q,
	               "INSERT INTO vigil.reports (tenant_id, run_id, kind, "
	               "format, state, content_type, content_encoding, "
	               "content) VALUES ('%s', '%s', 'run', 'json', 'ready', "
	               "'text/html; charset=utf-8', '%s', ",
	               tid, run, encoding);
	bytea_literal(&q, content, n);
	vg_buf_append_str(&q, ") RETURNING id");
	v = h_sql(vg_buf_str(&q));
	snprintf(id, 37, "%s", v);
	free(v);
	free(run);
	vg_buf_cleanup(&q);
}

static int setup(void **state)
{
	if (h_setup_all(state))
		return -1;
	h_tenant("content", tid);
	h_key(tid, "viewer", NULL, viewer, NULL);
	frame = compress(html, strlen(html), &frame_len);
	report_row(frame, frame_len, "zstd", rep_zstd);
	report_row((const unsigned char *)html, strlen(html), "identity",
	           rep_identity);
	{
		/* two frames one after the other: one document */
		size_t a_len, b_len;
		unsigned char *a = compress("first half, ", 12, &a_len);
		unsigned char *b = compress("second half", 11, &b_len);
		unsigned char *ab = malloc(a_len + b_len);

		assert_non_null(ab);
		memcpy(ab, a, a_len);
		memcpy(ab + a_len, b, b_len);
		report_row(ab, a_len + b_len, "zstd", rep_frames);
		free(a);
		free(b);
		free(ab);
	}
	{
		/* 64 MiB and one byte decoded, a few KiB stored */
		size_t n = ((size_t)64 << 20) + 1, z_len;
		char *zeros = calloc(1, n);
		unsigned char *z;

		assert_non_null(zeros);
		z = compress(zeros, n, &z_len);
		assert_true(z_len < 64 * 1024);
		report_row(z, z_len, "zstd", rep_huge);
		free(zeros);
		free(z);
	}
	/* a frame cut short */
	report_row(frame, frame_len - 3, "zstd", rep_corrupt);
	return 0;
}

static int teardown(void **state)
{
	free(frame);
	return h_teardown_all(state);
}

/* GET the content of `id` with an Accept-Encoding line (NULL: none). */
static long get(const char *id, const char *accept, struct h_resp *r)
{
	char path[256], line[256];

	snprintf(path, sizeof(path), "/v1/tenants/%s/reports/%s/content", tid,
	         id);
	if (accept)
		snprintf(line, sizeof(line), "Accept-Encoding: %s", accept);
	return h_req_ex(H.port, "GET", path, viewer, NULL, 0, NULL,
	                accept ? line : NULL, r);
}

static void expect_identity(const char *id, const char *accept,
                            const char *want)
{
	struct h_resp r;
	char v[128];

	if (get(id, accept, &r) != 200)
		fail_msg("%s (Accept-Encoding %s): status %ld: %s", id,
		         accept ? accept : "none", r.status,
		         vg_buf_str(&r.body));
	assert_false(h_header(&r, "Content-Encoding", v, sizeof(v)));
	assert_true(h_header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/html; charset=utf-8");
	assert_true(h_header(&r, "Vary", v, sizeof(v)));
	assert_string_equal(v, "Accept-Encoding");
	assert_int_equal(r.body.len, strlen(want));
	assert_memory_equal(r.body.data, want, strlen(want));
	h_resp_free(&r);
}

static void test_zstd_to_a_client_that_accepts_it(void **state)
{
	static const char *const accepts[] = {"zstd", "gzip, deflate, br, zstd",
	                                      "ZSTD;q=0.5", "br;q=1, zstd"};
	(void)state;

	for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
		struct h_resp r;
		char v[128];

		assert_int_equal(get(rep_zstd, accepts[i], &r), 200);
		assert_true(h_header(&r, "Content-Encoding", v, sizeof(v)));
		assert_string_equal(v, "zstd");
		assert_true(h_header(&r, "Content-Type", v, sizeof(v)));
		assert_string_equal(v, "text/html; charset=utf-8");
		assert_true(h_header(&r, "Vary", v, sizeof(v)));
		assert_string_equal(v, "Accept-Encoding");
		/* the stored frame, byte for byte */
		assert_int_equal(r.body.len, frame_len);
		assert_memory_equal(r.body.data, frame, frame_len);
		h_resp_free(&r);
	}
}

static void test_zstd_decoded_for_other_clients(void **state)
{
	(void)state;
	expect_identity(rep_zstd, NULL, html);
	expect_identity(rep_zstd, "gzip, deflate, br", html);
	expect_identity(rep_zstd, "zstd;q=0", html);
	expect_identity(rep_zstd, "zstd; q=0.000, gzip", html);
	expect_identity(rep_zstd, "zstdx, xzstd", html);
	expect_identity(rep_frames, NULL, "first half, second half");
}

static void test_identity_rows_unchanged(void **state)
{
	(void)state;
	expect_identity(rep_identity, NULL, html);
	expect_identity(rep_identity, "zstd", html);
	expect_identity(rep_identity, "gzip, zstd", html);
}

static void test_decoding_is_bounded(void **state)
{
	struct h_resp r;
	char v[128];

	(void)state;
	assert_int_equal(get(rep_huge, NULL, &r), 500);
	assert_string_equal(h_err_code(&r), "content_too_large");
	assert_non_null(
		strstr(vg_json_get_str(r.json, "error.message", ""), "64 MiB"));
	assert_false(h_header(&r, "Content-Encoding", v, sizeof(v)));
	h_resp_free(&r);
	/* a client that takes zstd gets the small stored frame */
	assert_int_equal(get(rep_huge, "zstd", &r), 200);
	assert_true(h_header(&r, "Content-Encoding", v, sizeof(v)));
	assert_true(r.body.len < 64 * 1024);
	assert_int_equal(ZSTD_getFrameContentSize(r.body.data, r.body.len),
	                 ((unsigned long long)64 << 20) + 1);
	h_resp_free(&r);
}

static void test_undecodable_content(void **state)
{
	struct h_resp r;
	char v[128];

	(void)state;
	assert_int_equal(get(rep_corrupt, NULL, &r), 500);
	assert_string_equal(h_err_code(&r), "internal");
	assert_false(h_header(&r, "Content-Encoding", v, sizeof(v)));
	h_resp_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zstd_to_a_client_that_accepts_it),
		cmocka_unit_test(test_zstd_decoded_for_other_clients),
		cmocka_unit_test(test_identity_rows_unchanged),
		cmocka_unit_test(test_decoding_is_bounded),
		cmocka_unit_test(test_undecodable_content),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
