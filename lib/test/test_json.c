/* test_json.c - strict loading, paths, dumping, escaping and comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vigil/json.h"

static json_t *load(const char *text)
{
	struct vg_err err = { 0 };
	json_t *v = NULL;
	int rc = vg_json_loadb(text, strlen(text), 0, &v, &err);

	if (rc)
		fail_msg("load %s: %s", text, err.msg);
	assert_non_null(v);
	return v;
}

static void assert_load_error(const char *text, size_t len, int code,
			      const char *msg_part)
{
	struct vg_err err = { 0 };
	json_t *v = NULL;
	int rc = vg_json_loadb(text, len, 0, &v, &err);

	assert_int_equal(rc, code);
	assert_int_equal(err.code, code);
	assert_null(v);
	if (!strstr(err.msg, msg_part))
		fail_msg("error \"%s\" lacks \"%s\"", err.msg, msg_part);
}

static void test_load_strict(void **state)
{
	json_t *v;

	(void)state;
	v = load("{\"a\": [1, 2.5, \"x\", null, true]}");
	assert_int_equal(json_array_size(json_object_get(v, "a")), 5);
	json_decref(v);
	v = load("\"just a string\"");
	assert_true(json_is_string(v));
	json_decref(v);

	assert_load_error("{\"a\": 1, \"a\": 2}", 16, VG_PARSE,
			  "duplicate object key");
	assert_load_error("{\"a\": 1,\n \"b\": }", 16, VG_PARSE,
			  "line 2:");
	assert_load_error("{\"a\": 1} x", 10, VG_PARSE, "(byte ");
	assert_load_error("", 0, VG_PARSE, "line 1:");
	assert_load_error(NULL, 0, VG_PARSE, "json line");
	assert_load_error("[1, 2", 5, VG_PARSE, "line 1:");
	assert_load_error("{'a': 1}", 8, VG_PARSE, "line 1:");
	/* bad UTF-8: a lone continuation byte and an overlong encoding */
	assert_load_error("\"\x80\"", 3, VG_PARSE,
			  "unable to decode byte 0x80");
	assert_load_error("\"\xc0\xaf\"", 4, VG_PARSE,
			  "unable to decode byte 0xc0");
	/* an embedded NUL byte and an escaped one */
	assert_load_error("{\"a\":\"x\0\"}", 10, VG_PARSE, "line 1:");
	assert_load_error("\"a\\u0000b\"", 10, VG_PARSE, "\\u0000");
	/* huge numbers: no silent conversion to floats */
	assert_load_error("{\"n\": 99999999999999999999}", 27, VG_PARSE,
			  "too big integer");
	assert_load_error("[1e999]", 7, VG_PARSE, "overflow");
	v = load("[9223372036854775807, -9223372036854775808, 1e308]");
	assert_true(json_integer_value(json_array_get(v, 0)) == INT64_MAX);
	assert_true(json_integer_value(json_array_get(v, 1)) == INT64_MIN);
	assert_true(json_is_real(json_array_get(v, 2)));
	json_decref(v);
}

static void test_load_size_bound(void **state)
{
	struct vg_err err = { 0 };
	json_t *v = NULL;
	const char *text = "[1,2,3]";

	(void)state;
	assert_int_equal(vg_json_loadb(text, 7, 6, &v, &err), VG_TOOLARGE);
	assert_null(v);
	assert_non_null(strstr(err.msg, "exceeds 6"));
	assert_int_equal(vg_json_loadb(text, 7, 7, &v, &err), VG_OK);
	json_decref(v);
}

static void test_load_deep(void **state)
{
	char *deep = malloc(100001);
	json_t *v = NULL;
	struct vg_err err = { 0 };

	(void)state;
	assert_non_null(deep);
	memset(deep, '[', 100000);
	deep[100000] = '\0';
	assert_int_equal(vg_json_loadb(deep, 100000, 0, &v, &err), VG_PARSE);
	assert_non_null(strstr(err.msg, "depth"));
	free(deep);
}

static const char pod[] =
	"{\"metadata\": {\"name\": \"web-0\", \"generation\": 7,"
	" \"labels\": {\"app.kubernetes.io/name\": \"web\", \"a\\\"b\": \"q\"}},"
	" \"spec\": {\"replicas\": 3.0, \"paused\": false, \"ratio\": 0.5,"
	"  \"big\": 1e30,"
	"  \"containers\": [{\"name\": \"c0\", \"image\": \"nginx\"},"
	"                  {\"name\": \"c1\", \"ports\": [80, 443]}]}}";

static void test_getters(void **state)
{
	json_t *v = load(pod), *found = NULL;

	(void)state;
	assert_string_equal(vg_json_get_str(v, "metadata.name", "x"), "web-0");
	assert_string_equal(vg_json_get_str(v, "metadata.missing", "dflt"),
			    "dflt");
	assert_null(vg_json_get_str(v, "metadata.generation", NULL));
	assert_int_equal(vg_json_get_int(v, "metadata.generation", -1), 7);
	assert_int_equal(vg_json_get_int(v, "spec.replicas", -1), 3);
	assert_int_equal(vg_json_get_int(v, "spec.ratio", -1), -1);
	assert_int_equal(vg_json_get_int(v, "spec.big", -1), -1);
	assert_int_equal(vg_json_get_int(v, "metadata.name", -1), -1);
	assert_true(vg_json_get_num(v, "spec.ratio", 0) == 0.5);
	assert_int_equal(vg_json_get_bool(v, "spec.paused", 1), 0);
	assert_int_equal(vg_json_get_bool(v, "spec.nope", 1), 1);
	assert_string_equal(vg_json_get_str(v, "spec.containers[1].name", ""),
			    "c1");
	assert_int_equal(vg_json_get_int(v, "spec.containers[1].ports[1]", 0),
			 443);
	assert_null(vg_json_get(v, "spec.containers[2]"));
	assert_null(vg_json_get(v, "spec.containers.name"));
	assert_string_equal(
		vg_json_get_str(v, "metadata.labels[\"app.kubernetes.io/name\"]",
				""),
		"web");
	assert_string_equal(vg_json_get_str(v, "metadata.labels[\"a\\\"b\"]",
					    ""),
			    "q");
	assert_non_null(vg_json_get_object(v, "spec.containers[0]"));
	assert_null(vg_json_get_object(v, "spec.containers"));
	assert_int_equal(json_array_size(vg_json_get_array(v,
							   "spec.containers")),
			 2);
	assert_null(vg_json_get_array(v, "metadata"));
	assert_ptr_equal(vg_json_get(v, ""), v);

	assert_int_equal(vg_json_find(v, "metadata.name", &found), VG_OK);
	assert_string_equal(json_string_value(found), "web-0");
	assert_int_equal(vg_json_find(v, "metadata.nope.deeper", &found),
			 VG_NOTFOUND);
	assert_null(found);
	assert_int_equal(vg_json_find(v, "spec.containers[0]", NULL), VG_OK);
	/* malformed paths are told apart from missing values, even when an
	 * earlier step is already missing */
	static const char *const bad[] = {
		"a..b", ".a", "a.", "a[", "a[]", "a[x]", "a[-1]", "a[1",
		"a[\"k\"", "a[\"k]", "a[\"\\n\"]", "a.[0]", "a[0]b",
		"nope..x", "a[99999999999999999999999]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = vg_json_find(v, bad[i], NULL);

		if (rc != VG_INVAL)
			fail_msg("path %s: %s, want VG_INVAL", bad[i],
				 vg_errname(rc));
	}
	assert_null(vg_json_get(NULL, "a"));
	assert_string_equal(vg_json_get_str(NULL, "a", "d"), "d");
	json_decref(v);
}

static void test_set(void **state)
{
	json_t *v = load("{\"spec\": {\"list\": [{}, 5]}}");
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 0);
	assert_int_equal(vg_json_set_new(v, "metadata.labels[\"a.b/c\"]",
					 json_string("x")),
			 VG_OK);
	assert_int_equal(vg_json_set_new(v, "spec.list[0].name",
					 json_string("n")),
			 VG_OK);
	assert_int_equal(vg_json_set_new(v, "spec.list[1]", json_true()),
			 VG_OK);
	assert_int_equal(vg_json_set_new(v, "spec.list[2]", json_true()),
			 VG_NOTFOUND);
	assert_int_equal(vg_json_set_new(v, "spec.list[5].x", json_true()),
			 VG_NOTFOUND);
	assert_int_equal(vg_json_set_new(v, "spec.list.x", json_true()),
			 VG_INVAL);
	assert_int_equal(vg_json_set_new(v, "spec.list[1].x", json_true()),
			 VG_INVAL);
	assert_int_equal(vg_json_set_new(v, "", json_true()), VG_INVAL);
	assert_int_equal(vg_json_set_new(v, "a..b", json_true()), VG_INVAL);
	assert_int_equal(vg_json_set_new(v, "a", NULL), VG_NOMEM);
	assert_int_equal(vg_json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS, &b),
			 VG_OK);
	assert_string_equal(vg_buf_str(&b),
			    "{\"metadata\":{\"labels\":{\"a.b/c\":\"x\"}},"
			    "\"spec\":{\"list\":[{\"name\":\"n\"},true]}}");
	vg_buf_cleanup(&b);
	json_decref(v);
}

static void test_dumps(void **state)
{
	json_t *v = load("{\"b\": 1, \"a\": [true, null], \"c\": \"\\u00e9\"}");
	json_t *s = json_string("x");
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 0);
	assert_int_equal(vg_buf_append_str(&b, "pre:"), VG_OK);
	assert_int_equal(vg_json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS, &b),
			 VG_OK);
	assert_string_equal(vg_buf_str(&b),
			    "pre:{\"a\":[true,null],\"b\":1,\"c\":\"\xc3\xa9\"}");
	vg_buf_reset(&b);
	assert_int_equal(vg_json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS, &b),
			 VG_OK);
	assert_string_equal(vg_buf_str(&b), "{\n  \"a\": [\n    true,\n"
					    "    null\n  ],\n  \"b\": 1,\n"
					    "  \"c\": \"\xc3\xa9\"\n}");
	vg_buf_reset(&b);
	/* scalars dump too */
	assert_int_equal(vg_json_dumps(s, 0, &b), VG_OK);
	assert_string_equal(vg_buf_str(&b), "\"x\"");
	vg_buf_cleanup(&b);

	/* a full buffer fails and keeps what it had */
	vg_buf_init(&b, 10);
	assert_int_equal(vg_buf_append_str(&b, "keep"), VG_OK);
	assert_int_equal(vg_json_dumps(v, JSON_COMPACT, &b), VG_TOOLARGE);
	assert_string_equal(vg_buf_str(&b), "keep");
	assert_int_equal(b.len, 4);
	assert_int_equal(vg_json_dumps(NULL, 0, &b), VG_INVAL);
	vg_buf_cleanup(&b);
	json_decref(s);
	json_decref(v);
}

static const struct {
	const char *in;
	size_t len;
	const char *out;
} escape_cases[] = {
	{ "plain", 5, "\"plain\"" },
	{ "", 0, "\"\"" },
	{ "q\"b\\s/", 6, "\"q\\\"b\\\\s/\"" },
	{ "\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"" },
	{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
	{ "a\0b", 3, "\"a\\u0000b\"" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
	  "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
	/* invalid UTF-8 becomes U+FFFD, one per bad byte */
	{ "a\x80z", 3, "\"a\xef\xbf\xbdz\"" },
	{ "\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
	{ "\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
	{ "\xe2\x82", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
	{ "\xf4\x90\x80\x80", 4,
	  "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
};

static void test_escape(void **state)
{
	struct vg_buf b;

	(void)state;
	vg_buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]);
	     i++) {
		json_t *back = NULL;
		struct vg_err err = { 0 };

		vg_buf_reset(&b);
		assert_int_equal(vg_json_escape(&b, escape_cases[i].in,
						escape_cases[i].len),
				 VG_OK);
		assert_string_equal(vg_buf_str(&b), escape_cases[i].out);
		/* the output is always valid JSON (NUL needs ALLOW_NUL) */
		if (!memchr(escape_cases[i].in, '\0', escape_cases[i].len)) {
			assert_int_equal(vg_json_loadb(b.data, b.len, 0, &back,
						       &err),
					 VG_OK);
			json_decref(back);
		}
	}
	vg_buf_cleanup(&b);

	vg_buf_init(&b, 8);
	assert_int_equal(vg_buf_append_str(&b, "ab"), VG_OK);
	assert_int_equal(vg_json_escape(&b, "\n\n\n", 3), VG_TOOLARGE);
	assert_string_equal(vg_buf_str(&b), "ab");
	vg_buf_cleanup(&b);
}

static void test_equal(void **state)
{
	static const struct {
		const char *a, *b;
		int eq;
	} cases[] = {
		{ "1", "1.0", 1 },
		{ "1", "1.5", 0 },
		{ "1.5", "1.5", 1 },
		{ "9007199254740993", "9007199254740992.0", 0 },
		{ "1e30", "1", 0 },
		{ "\"a\"", "\"a\"", 1 },
		{ "\"a\"", "\"b\"", 0 },
		{ "\"1\"", "1", 0 },
		{ "null", "false", 0 },
		{ "true", "true", 1 },
		{ "{\"a\":1,\"b\":[1,2]}", "{\"b\":[1,2.0],\"a\":1}", 1 },
		{ "{\"a\":1}", "{\"a\":1,\"b\":2}", 0 },
		{ "{\"a\":1,\"c\":2}", "{\"a\":1,\"b\":2}", 0 },
		{ "[1,2]", "[2,1]", 0 },
		{ "[1,2]", "[1,2,3]", 0 },
		{ "[]", "{}", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *a = load(cases[i].a), *b = load(cases[i].b);

		if (vg_json_equal(a, b) != cases[i].eq ||
		    vg_json_equal(b, a) != cases[i].eq)
			fail_msg("equal(%s, %s) != %d", cases[i].a, cases[i].b,
				 cases[i].eq);
		json_decref(a);
		json_decref(b);
	}
	assert_int_equal(vg_json_equal(NULL, NULL), 1);
	assert_int_equal(vg_json_equal(NULL, json_null()), 0);
}

static void test_is_subset(void **state)
{
	static const char live[] =
		"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
		"\"metadata\":{\"name\":\"web\",\"uid\":\"123\","
		"\"resourceVersion\":\"9\",\"labels\":{\"app\":\"web\"}},"
		"\"spec\":{\"replicas\":3,\"template\":{\"spec\":{"
		"\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1\","
		"\"imagePullPolicy\":\"IfNotPresent\",\"args\":[\"-a\",\"-b\"]}]"
		"}}},\"status\":{\"readyReplicas\":3}}";
	static const struct {
		const char *desired;
		int subset;
	} cases[] = {
		{ "{}", 1 },
		{ "{\"metadata\":{\"name\":\"web\"}}", 1 },
		{ "{\"spec\":{\"replicas\":3.0}}", 1 },
		{ "{\"spec\":{\"replicas\":4}}", 0 },
		{ "{\"spec\":{\"template\":{\"spec\":{\"containers\":"
		  "[{\"name\":\"web\",\"image\":\"nginx:1\"}]}}}}",
		  1 },
		{ "{\"spec\":{\"template\":{\"spec\":{\"containers\":"
		  "[{\"name\":\"web\",\"image\":\"nginx:2\"}]}}}}",
		  0 },
		/* arrays keep their length: an extra live element differs */
		{ "{\"spec\":{\"template\":{\"spec\":{\"containers\":"
		  "[{\"name\":\"web\",\"args\":[\"-a\"]}]}}}}",
		  0 },
		{ "{\"spec\":{\"template\":{\"spec\":{\"containers\":[]}}}}", 0 },
		{ "{\"metadata\":{\"labels\":{\"app\":\"web\",\"tier\":\"x\"}}}",
		  0 },
		{ "{\"metadata\":{\"annotations\":null}}", 1 },
		{ "{\"metadata\":{\"name\":null}}", 0 },
		{ "{\"metadata\":\"web\"}", 0 },
		{ "{\"spec\":{\"replicas\":\"3\"}}", 0 },
		{ "[]", 0 },
	};
	json_t *l = load(live);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *d = load(cases[i].desired);

		if (vg_json_is_subset(d, l) != cases[i].subset)
			fail_msg("is_subset(%s) != %d", cases[i].desired,
				 cases[i].subset);
		json_decref(d);
	}
	assert_int_equal(vg_json_is_subset(l, l), 1);
	json_decref(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_strict),
		cmocka_unit_test(test_load_size_bound),
		cmocka_unit_test(test_load_deep),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_dumps),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_is_subset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
