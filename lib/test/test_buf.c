/* test_buf.c - growth, limits, formatting, consume and take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vigil/buf.h"
#include "vigil/err.h"

static void test_empty(void **state)
{
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 0);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_string_equal(vg_buf_str(&b), "");
	vg_buf_consume(&b, 5);
	vg_buf_reset(&b);
	assert_string_equal(vg_buf_str(&b), "");
	assert_int_equal(vg_buf_append(&b, NULL, 0), VG_OK);
	assert_int_equal(b.len, 0);
	assert_string_equal(vg_buf_str(&b), "");
	vg_buf_cleanup(&b);
	vg_buf_cleanup(&b); /* twice is harmless */
	assert_null(b.data);
}

static void test_growth(void **state)
{
	struct vg_buf b;
	size_t caps = 0, last_cap = 0;

	(void)state;
	vg_buf_init(&b, 0);
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(vg_buf_append_byte(&b, (char)('a' + i % 26)),
				 VG_OK);
		assert_true(b.cap >= b.len + 1);
		if (b.cap != last_cap) {
			caps++;
			last_cap = b.cap;
		}
	}
	assert_int_equal(b.len, 100000);
	assert_int_equal(strlen(b.data), 100000);
	for (int i = 0; i < 100000; i++)
		if (b.data[i] != (char)('a' + i % 26))
			fail_msg("byte %d is %c", i, b.data[i]);
	/* geometric growth: a handful of reallocations, not one per byte */
	assert_true(caps < 20);

	assert_int_equal(vg_buf_append_str(&b, "tail"), VG_OK);
	assert_string_equal(b.data + 100000, "tail");
	/* binary content with NULs keeps its length */
	vg_buf_reset(&b);
	assert_int_equal(vg_buf_append(&b, "a\0b", 3), VG_OK);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b\0", 4);
	vg_buf_cleanup(&b);
}

static void test_reset_keeps_allocation(void **state)
{
	struct vg_buf b;
	size_t cap;
	char *data;

	(void)state;
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_append_str(&b, "some content"), VG_OK);
	cap = b.cap;
	data = b.data;
	vg_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, cap);
	assert_ptr_equal(b.data, data);
	assert_string_equal(vg_buf_str(&b), "");
	vg_buf_cleanup(&b);
}

static void test_limit(void **state)
{
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 10);
	assert_int_equal(vg_buf_append_str(&b, "12345678"), VG_OK);
	assert_int_equal(vg_buf_append_str(&b, "abc"), VG_TOOLARGE);
	assert_int_equal(b.len, 8);
	assert_string_equal(vg_buf_str(&b), "12345678");
	assert_int_equal(vg_buf_appendf(&b, "%d", 123), VG_TOOLARGE);
	assert_string_equal(vg_buf_str(&b), "12345678");
	assert_int_equal(vg_buf_append_str(&b, "90"), VG_OK);
	assert_int_equal(b.len, 10);
	assert_int_equal(vg_buf_append_byte(&b, 'x'), VG_TOOLARGE);
	assert_int_equal(vg_buf_reserve(&b, 1), VG_TOOLARGE);
	assert_int_equal(vg_buf_reserve(&b, 0), VG_OK);
	assert_string_equal(vg_buf_str(&b), "1234567890");
	/* consuming makes room again */
	vg_buf_consume(&b, 5);
	assert_int_equal(vg_buf_append_str(&b, "abcde"), VG_OK);
	assert_string_equal(vg_buf_str(&b), "67890abcde");
	vg_buf_cleanup(&b);

	/* sizes that would overflow are refused, not wrapped */
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_append_str(&b, "x"), VG_OK);
	assert_int_equal(vg_buf_reserve(&b, SIZE_MAX), VG_TOOLARGE);
	assert_int_equal(vg_buf_reserve(&b, SIZE_MAX - 1), VG_TOOLARGE);
	assert_string_equal(vg_buf_str(&b), "x");
	vg_buf_cleanup(&b);
}

static void test_appendf(void **state)
{
	struct vg_buf b;
	char *big;

	(void)state;
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_appendf(&b, "%s=%d", "replicas", 3), VG_OK);
	assert_int_equal(vg_buf_appendf(&b, ",%05.1f|%-4s|", 2.25, "ab"),
			 VG_OK);
	assert_string_equal(vg_buf_str(&b), "replicas=3,002.2|ab  |");
	assert_int_equal(b.len, strlen("replicas=3,002.2|ab  |"));
	assert_int_equal(vg_buf_appendf(&b, "%s", ""), VG_OK);
	assert_int_equal(b.len, strlen("replicas=3,002.2|ab  |"));

	/* output larger than the current allocation */
	vg_buf_reset(&b);
	assert_int_equal(vg_buf_appendf(&b, "[%5000d]", 7), VG_OK);
	assert_int_equal(b.len, 5002);
	assert_int_equal(b.data[0], '[');
	assert_string_equal(b.data + 4998, "  7]");
	vg_buf_cleanup(&b);

	big = malloc(70000);
	assert_non_null(big);
	memset(big, 'q', 69999);
	big[69999] = '\0';
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_appendf(&b, "<%s>", big), VG_OK);
	assert_int_equal(b.len, 70001);
	assert_int_equal(b.data[70000], '>');
	vg_buf_cleanup(&b);
	free(big);
}

static void test_consume(void **state)
{
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_append_str(&b, "GET / HTTP/1.1\r\nnext"),
			 VG_OK);
	vg_buf_consume(&b, 16);
	assert_string_equal(vg_buf_str(&b), "next");
	assert_int_equal(b.len, 4);
	vg_buf_consume(&b, 0);
	assert_string_equal(vg_buf_str(&b), "next");
	vg_buf_consume(&b, 4);
	assert_int_equal(b.len, 0);
	assert_string_equal(vg_buf_str(&b), "");
	assert_int_equal(vg_buf_append_str(&b, "abc"), VG_OK);
	vg_buf_consume(&b, 1000);
	assert_int_equal(b.len, 0);
	assert_string_equal(vg_buf_str(&b), "");
	vg_buf_cleanup(&b);
}

static void test_take(void **state)
{
	struct vg_buf b;
	char *s;

	(void)state;
	vg_buf_init(&b, 64);
	assert_int_equal(vg_buf_append_str(&b, "owned"), VG_OK);
	s = vg_buf_take(&b);
	assert_non_null(s);
	assert_string_equal(s, "owned");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 64); /* still limited, reusable */
	free(s);

	s = vg_buf_take(&b); /* empty: a fresh "" */
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);

	assert_int_equal(vg_buf_append_str(&b, "again"), VG_OK);
	assert_string_equal(vg_buf_str(&b), "again");
	vg_buf_cleanup(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_reset_keeps_allocation),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_appendf),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_take),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
