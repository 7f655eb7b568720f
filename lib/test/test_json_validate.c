/* test_json_validate.c - the declarative body validator: types, bounds,
 * enums, unknown and missing members, and what the strict loader refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vigil/json_validate.h"

static const char *const roles[] = {"admin", "viewer", NULL};

static const struct vg_json_field fields[] = {
	{"name", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 8, NULL,
         0},
	{"role", VG_JSON_STRING, 0, 0, 0, roles, 0},
	{"count", VG_JSON_INT, VG_JSON_NULLABLE, 1, 100, NULL, 0},
	{"on", VG_JSON_BOOL, 0, 0, 0, NULL, 0},
	{"id", VG_JSON_UUID, 0, 0, 0, NULL, 0},
	{"at", VG_JSON_TIMESTAMP, 0, 0, 0, NULL, 0},
	{"tags", VG_JSON_STRING_ARRAY, 0, 0, 2, NULL, 4},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const struct {
	const char *body;
	int rc;
	const char *field; /* err.reason for VG_INVAL */
} cases[] = {
	{"{\"name\":\"a\"}", VG_OK, NULL},
	{"{\"name\":\"a\",\"role\":\"admin\",\"count\":100,\"on\":true,"
         "\"id\":\"0b8e0f4e-2f4c-4d3a-9d6a-1e2f3a4b5c6d\","
         "\"at\":\"2026-11-28T12:00:00.5+01:00\",\"tags\":[\"a\",\"bb\"]}",
         VG_OK, NULL},
	{"{\"name\":\"a\",\"count\":null}", VG_OK, NULL},
	{"{}", VG_INVAL, "name"},
	{"", VG_INVAL, "name"},
	{"{\"name\":null}", VG_INVAL, "name"},
	{"{\"name\":\"a\",\"nmae\":1}", VG_INVAL, "nmae"},
	{"{\"name\":1}", VG_INVAL, "name"},
	{"{\"name\":\"\"}", VG_INVAL, "name"},
	{"{\"name\":\"123456789\"}", VG_INVAL, "name"},
	{"{\"name\":\"a\\nb\"}", VG_INVAL, "name"},
	{"{\"name\":\"a\",\"role\":\"root\"}", VG_INVAL, "role"},
	{"{\"name\":\"a\",\"count\":0}", VG_INVAL, "count"},
	{"{\"name\":\"a\",\"count\":1.5}", VG_INVAL, "count"},
	{"{\"name\":\"a\",\"count\":\"5\"}", VG_INVAL, "count"},
	{"{\"name\":\"a\",\"on\":1}", VG_INVAL, "on"},
	{"{\"name\":\"a\",\"id\":\"nope\"}", VG_INVAL, "id"},
	{"{\"name\":\"a\",\"at\":\"2026-13-01T00:00:00Z\"}", VG_INVAL, "at"},
	{"{\"name\":\"a\",\"at\":\"2026-01-01 00:00:00\"}", VG_INVAL, "at"},
	{"{\"name\":\"a\",\"tags\":[\"a\",\"b\",\"c\"]}", VG_INVAL, "tags"},
	{"{\"name\":\"a\",\"tags\":[\"toolong\"]}", VG_INVAL, "tags"},
	{"{\"name\":\"a\",\"tags\":[1]}", VG_INVAL, "tags"},
	{"[]", VG_INVAL, ""},
	{"\"x\"", VG_INVAL, ""},
	{"{\"name\":\"a\"", VG_PARSE, NULL},
	{"{\"name\":\"a\"} x", VG_PARSE, NULL},
	{"{\"name\":\"a\",\"name\":\"b\"}", VG_PARSE, NULL},
	{"{\"name\":\"\xff\"}", VG_PARSE, NULL},
	{"{\"name\":\"a\\u0000\"}", VG_PARSE, NULL},
	{"{\"name\":\"a\",\"count\":123456789012345678901234567890}", VG_PARSE,
         NULL},
	{"{\"name\":\"a\",\"count\":1e999}", VG_PARSE, NULL},
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_err err = {0};
		json_t *doc = NULL;
		int rc = vg_json_validate_body(cases[i].body,
		                               strlen(cases[i].body), 4096,
		                               fields, &doc, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d, want %d (%s)", i,
			         cases[i].body, rc, cases[i].rc, err.msg);
		if (rc == VG_INVAL && strcmp(err.reason, cases[i].field) != 0)
			fail_msg("case %zu: field \"%s\", want \"%s\"", i,
			         err.reason, cases[i].field);
		assert_true((rc == VG_OK) == (doc != NULL));
		json_decref(doc);
	}
}

static void test_too_large(void **state)
{
	struct vg_err err = {0};
	json_t *doc = NULL;

	(void)state;
	assert_int_equal(vg_json_validate_body("{\"name\":\"abc\"}", 14, 10,
	                                       fields, &doc, &err),
	                 VG_TOOLARGE);
	assert_null(doc);
}

static void test_timestamps(void **state)
{
	(void)state;
	assert_true(vg_json_is_timestamp("2026-11-28T12:00:00Z"));
	assert_true(vg_json_is_timestamp("2026-11-28t12:00:00.123456789z"));
	assert_true(vg_json_is_timestamp("2026-11-28T12:00:00-05:30"));
	assert_false(vg_json_is_timestamp("2026-11-28T12:00:00"));
	assert_false(vg_json_is_timestamp("2026-11-28T12:00:00.Z"));
	assert_false(vg_json_is_timestamp("2026-11-28T24:00:00Z"));
	assert_false(vg_json_is_timestamp("2026-11-28T12:00:00+0530"));
	assert_false(vg_json_is_timestamp(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_timestamps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
