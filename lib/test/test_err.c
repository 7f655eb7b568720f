/* test_err.c - error codes, names and messages, and the error-info struct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vigil/err.h"

/* Pinned by hand: codes are never renumbered, so this table is the
 * contract, not a copy of the header. */
static const struct {
	int code;
	int value;
	const char *name;
} pinned[] = {
	{ VG_OK, 0, "VG_OK" },
	{ VG_NOMEM, -1, "VG_NOMEM" },
	{ VG_INVAL, -2, "VG_INVAL" },
	{ VG_IO, -3, "VG_IO" },
	{ VG_PARSE, -4, "VG_PARSE" },
	{ VG_NOTFOUND, -5, "VG_NOTFOUND" },
	{ VG_EXISTS, -6, "VG_EXISTS" },
	{ VG_CONFLICT, -7, "VG_CONFLICT" },
	{ VG_HTTP, -8, "VG_HTTP" },
	{ VG_TIMEOUT, -9, "VG_TIMEOUT" },
	{ VG_GONE, -10, "VG_GONE" },
	{ VG_FORBIDDEN, -11, "VG_FORBIDDEN" },
	{ VG_UNAUTHORIZED, -12, "VG_UNAUTHORIZED" },
	{ VG_CONFIG, -13, "VG_CONFIG" },
	{ VG_TLS, -14, "VG_TLS" },
	{ VG_RANGE, -15, "VG_RANGE" },
	{ VG_CLOSED, -16, "VG_CLOSED" },
	{ VG_AGAIN, -17, "VG_AGAIN" },
	{ VG_UNSUPPORTED, -18, "VG_UNSUPPORTED" },
	{ VG_DB, -19, "VG_DB" },
	{ VG_REDIS, -20, "VG_REDIS" },
	{ VG_TOOLARGE, -21, "VG_TOOLARGE" },
	{ VG_CANCELED, -22, "VG_CANCELED" },
	{ VG_INTERNAL, -23, "VG_INTERNAL" },
};

static void test_codes_are_pinned(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
		assert_int_equal(pinned[i].code, pinned[i].value);
		assert_string_equal(vg_errname(pinned[i].code),
				    pinned[i].name);
	}
}

static const struct {
	int code;
	const char *name;
	const char *msg;
} generated[] = {
#define ROW(name, val, msg) { VG_##name, "VG_" #name, msg },
	VG_ERRNO_MAP(ROW)
#undef ROW
};

static void test_names_and_strings_round_trip(void **state)
{
	size_t n = sizeof(generated) / sizeof(generated[0]);

	(void)state;
	/* every code in the list is pinned above: a new code needs a row */
	assert_int_equal(n, sizeof(pinned) / sizeof(pinned[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(vg_errname(generated[i].code),
				    generated[i].name);
		assert_string_equal(vg_strerror(generated[i].code),
				    generated[i].msg);
		assert_true(strlen(generated[i].msg) > 0);
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(generated[i].code,
					     generated[j].code);
			assert_string_not_equal(generated[i].msg,
						generated[j].msg);
		}
	}
	assert_string_equal(vg_strerror(VG_NOTFOUND), "not found");
	assert_string_equal(vg_strerror(-999), "unknown error");
	assert_string_equal(vg_strerror(1), "unknown error");
	assert_string_equal(vg_errname(12345), "VG_UNKNOWN");
}

static void test_err_set(void **state)
{
	struct vg_err err;
	char long_arg[600];

	(void)state;
	memset(&err, 0x5a, sizeof(err));
	vg_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_int_equal(err.sys_errno, 0);
	assert_int_equal(err.http_status, 0);
	assert_string_equal(err.reason, "");
	assert_string_equal(err.msg, "");
	vg_err_clear(NULL);

	assert_int_equal(vg_err_set(&err, VG_PARSE, "line %d: %s", 3, "bad"),
			 VG_PARSE);
	assert_int_equal(err.code, VG_PARSE);
	assert_string_equal(err.msg, "line 3: bad");
	assert_int_equal(vg_err_set(NULL, VG_IO, "ignored"), VG_IO);

	/* long messages are cut, never overflowed */
	memset(long_arg, 'x', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	vg_err_set(&err, VG_INVAL, "%s", long_arg);
	assert_int_equal(strlen(err.msg), VG_ERR_MSG_MAX - 1);
}

static void test_err_sys(void **state)
{
	struct vg_err err = { 0 };
	char long_arg[300];

	(void)state;
	errno = ENOENT;
	assert_int_equal(vg_err_sys(&err, VG_IO, "open %s", "/nope"), VG_IO);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(err.code, VG_IO);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_string_equal(err.msg, "open /nope: No such file or directory");

	errno = EACCES;
	assert_int_equal(vg_err_sys(NULL, VG_IO, "x"), VG_IO);
	assert_int_equal(errno, EACCES);

	memset(long_arg, 'y', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	errno = EPIPE;
	vg_err_sys(&err, VG_IO, "%s", long_arg);
	assert_int_equal(strlen(err.msg), VG_ERR_MSG_MAX - 1);
	assert_int_equal(err.sys_errno, EPIPE);
}

/* A struct reused for a second failure must not keep details of the
 * first: a stale 409 would make a caller treat a local error as a
 * Conflict. */
static void test_reuse_clears_details(void **state)
{
	struct vg_err err = { 0 };

	(void)state;
	errno = ECONNREFUSED;
	vg_err_sys(&err, VG_IO, "connect");
	err.http_status = 409;
	snprintf(err.reason, sizeof(err.reason), "Conflict");
	vg_err_set(&err, VG_NOMEM, "out of memory");
	assert_int_equal(err.code, VG_NOMEM);
	assert_int_equal(err.sys_errno, 0);
	assert_int_equal(err.http_status, 0);
	assert_string_equal(err.reason, "");
	assert_string_equal(err.msg, "out of memory");

	/* wrapping the previous message in a new one */
	vg_err_set(&err, VG_CONFIG, "load %s: %s", "a.yaml", err.msg);
	assert_int_equal(err.code, VG_CONFIG);
	assert_string_equal(err.msg, "load a.yaml: out of memory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_are_pinned),
		cmocka_unit_test(test_names_and_strings_round_trip),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_sys),
		cmocka_unit_test(test_reuse_clears_details),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
