/* test_yaml.c - YAML streams to JSON: documents, scalar typing, anchors,
 * malformed input and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vigil/buf.h"
#include "vigil/yaml.h"

static json_t *parse_ok(const char *text)
{
	struct vg_err err = { 0 };
	json_t *doc = NULL;
	int rc = vg_yaml_parse(text, strlen(text), &doc, &err);

	if (rc)
		fail_msg("parse failed: %s: %s", vg_errname(rc), err.msg);
	assert_non_null(doc);
	return doc;
}

/* Dump compactly with sorted keys so expectations are plain strings. */
static void assert_json(const json_t *v, const char *want)
{
	char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
					  JSON_ENCODE_ANY);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void assert_parse_error(const char *text, size_t len,
			       const char *where)
{
	struct vg_err err = { 0 };
	json_t *docs = NULL;
	int rc = vg_yaml_parse_stream(text, len, &docs, &err);

	assert_int_equal(rc, VG_PARSE);
	assert_int_equal(err.code, VG_PARSE);
	assert_null(docs);
	if (!strstr(err.msg, where))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg,
			 where);
	if (!strstr(err.msg, "line "))
		fail_msg("error \"%s\" has no line", err.msg);
}

static const char manifest[] =
	"# an app, kubectl-apply style\n"
	"apiVersion: apps/v1\n"
	"kind: Deployment\n"
	"metadata:\n"
	"  name: web\n"
	"  labels: {app: web, tier: \"1\"}\n"
	"spec:\n"
	"  replicas: 3\n"
	"  template:\n"
	"    spec:\n"
	"      containers:\n"
	"        - name: web\n"
	"          image: nginx:1.25\n"
	"          ports:\n"
	"            - containerPort: 8080\n"
	"          args: [\"--verbose\", --port=8080]\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata:\n"
	"  name: web\n"
	"spec:\n"
	"  ports:\n"
	"  - port: 80\n"
	"    targetPort: 8080\n"
	"---\n"
	"# comment-only document is skipped\n"
	"---\n"
	"apiVersion: v1\n"
	"kind: ConfigMap\n"
	"metadata:\n"
	"  name: web-config\n"
	"data:\n"
	"  enabled: \"true\"\n"
	"  script: |\n"
	"    #!/bin/sh\n"
	"    echo hi\n"
	"---\n";

static void test_multi_document_manifest(void **state)
{
	struct vg_err err = { 0 };
	json_t *docs = NULL, *d;
	int rc;

	(void)state;
	rc = vg_yaml_parse_stream(manifest, strlen(manifest), &docs, &err);
	assert_int_equal(rc, VG_OK);
	assert_true(json_is_array(docs));
	assert_int_equal(json_array_size(docs), 3);

	d = json_array_get(docs, 0);
	assert_string_equal(json_string_value(json_object_get(d, "kind")),
			    "Deployment");
	assert_json(json_object_get(d, "metadata"),
		    "{\"labels\":{\"app\":\"web\",\"tier\":\"1\"},"
		    "\"name\":\"web\"}");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(d, "spec"), "replicas")),
			 3);
	assert_json(json_object_get(json_object_get(json_object_get(
							    d, "spec"),
						    "template"),
				    "spec"),
		    "{\"containers\":[{\"args\":[\"--verbose\","
		    "\"--port=8080\"],\"image\":\"nginx:1.25\",\"name\":"
		    "\"web\",\"ports\":[{\"containerPort\":8080}]}]}");

	d = json_array_get(docs, 1);
	assert_string_equal(json_string_value(json_object_get(d, "kind")),
			    "Service");
	assert_json(json_object_get(d, "spec"),
		    "{\"ports\":[{\"port\":80,\"targetPort\":8080}]}");

	d = json_array_get(docs, 2);
	assert_json(json_object_get(d, "data"),
		    "{\"enabled\":\"true\",\"script\":"
		    "\"#!/bin/sh\\necho hi\\n\"}");
	json_decref(docs);

	/* vg_yaml_parse insists on one document */
	rc = vg_yaml_parse(manifest, strlen(manifest), &d, &err);
	assert_int_equal(rc, VG_PARSE);
	assert_null(d);
	assert_non_null(strstr(err.msg, "found 3"));
}

static const struct {
	const char *yaml;
	const char *json;
} scalar_cases[] = {
	{ "~", "null" },
	{ "null", "null" },
	{ "Null", "null" },
	{ "NULL", "null" },
	{ "", "null" },
	{ "true", "true" },
	{ "True", "true" },
	{ "TRUE", "true" },
	{ "false", "false" },
	{ "False", "false" },
	{ "FALSE", "false" },
	{ "0", "0" },
	{ "42", "42" },
	{ "-17", "-17" },
	{ "+5", "5" },
	{ "007", "7" },
	{ "0o17", "15" },
	{ "0x1F", "31" },
	{ "9223372036854775807", "9223372036854775807" },
	{ "-9223372036854775808", "-9223372036854775808" },
	{ "99999999999999999999", "1e20" },
	{ "1.5", "1.5" },
	{ "-0.25", "-0.25" },
	{ ".5", "0.5" },
	{ "1.", "1.0" },
	{ "1e3", "1000.0" },
	{ "2.5E-1", "0.25" },
	/* YAML 1.1 spellings are strings in the core schema */
	{ "yes", "\"yes\"" },
	{ "no", "\"no\"" },
	{ "on", "\"on\"" },
	{ "off", "\"off\"" },
	{ "y", "\"y\"" },
	{ "1_000", "\"1_000\"" },
	{ "0b101", "\"0b101\"" },
	{ "-0x10", "\"-0x10\"" },
	{ "0o8", "\"0o8\"" },
	{ "1e", "\"1e\"" },
	{ ".", "\".\"" },
	{ "tRuE", "\"tRuE\"" },
	{ "nullx", "\"nullx\"" },
	/* JSON has no infinities or NaN: they stay text */
	{ ".inf", "\".inf\"" },
	{ "-.Inf", "\"-.Inf\"" },
	{ ".nan", "\".nan\"" },
	{ "1e999", "\"1e999\"" },
	{ "0x10000000000000000", "\"0x10000000000000000\"" },
	{ "1.2.3", "\"1.2.3\"" },
	{ "10:30", "\"10:30\"" },
	{ "2024-01-02", "\"2024-01-02\"" },
	{ "hello world", "\"hello world\"" },
	/* quoted and block scalars are always strings */
	{ "\"true\"", "\"true\"" },
	{ "'false'", "\"false\"" },
	{ "\"42\"", "\"42\"" },
	{ "'~'", "\"~\"" },
	{ "\"\"", "\"\"" },
	{ "\"null\"", "\"null\"" },
	{ "|\n  123\n", "\"123\\n\"" },
	{ ">-\n  true\n", "\"true\"" },
	{ "\"tab\\there\\u00e9\"", "\"tab\\there\xc3\xa9\"" },
	/* explicit tags */
	{ "!!str 123", "\"123\"" },
	{ "!!str true", "\"true\"" },
	{ "! 12", "\"12\"" },
	{ "!!int \"12\"", "12" },
	{ "!!float 3", "3.0" },
	{ "!!bool \"false\"", "false" },
	{ "!!null ''", "null" },
	{ "!custom 5", "5" },
};

static void test_scalar_typing(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scalar_cases) / sizeof(scalar_cases[0]);
	     i++) {
		struct vg_err err = { 0 };
		json_t *doc = NULL;
		char *text = NULL;
		char *got;
		int rc;

		/* as a mapping value, so empty input is a null value, not an
		 * empty stream */
		assert_true(asprintf(&text, "v: %s", scalar_cases[i].yaml) >
			    0);
		rc = vg_yaml_parse(text, strlen(text), &doc, &err);
		if (rc)
			fail_msg("%s: %s", text, err.msg);
		got = json_dumps(json_object_get(doc, "v"),
				 JSON_COMPACT | JSON_ENCODE_ANY);
		assert_non_null(got);
		if (strcmp(got, scalar_cases[i].json) != 0)
			fail_msg("v: %s -> %s, want %s", scalar_cases[i].yaml,
				 got, scalar_cases[i].json);
		free(got);
		free(text);
		json_decref(doc);
	}
}

static void test_bad_tagged_scalars(void **state)
{
	(void)state;
	assert_parse_error("a: 1\nb: !!int abc\n", 18, "line 2:4");
	assert_parse_error("a: !!bool yes\n", 14, "cannot decode yes");
	assert_parse_error("a: !!float .inf\n", 16, "line 1:4");
	assert_parse_error("a: !!null x\n", 12, "line 1:4");
}

static void test_quoted_true_stays_string(void **state)
{
	json_t *doc = parse_ok("enabled: \"true\"\n"
			       "count: '3'\n"
			       "flag: true\n"
			       "\"true\": 1\n"
			       "8080: port\n"
			       "~: tilde\n");

	(void)state;
	assert_true(json_is_string(json_object_get(doc, "enabled")));
	assert_string_equal(json_string_value(json_object_get(doc, "enabled")),
			    "true");
	assert_true(json_is_string(json_object_get(doc, "count")));
	assert_true(json_is_true(json_object_get(doc, "flag")));
	/* keys keep their text whatever it would resolve to */
	assert_int_equal(json_integer_value(json_object_get(doc, "true")), 1);
	assert_string_equal(json_string_value(json_object_get(doc, "8080")),
			    "port");
	assert_string_equal(json_string_value(json_object_get(doc, "~")),
			    "tilde");
	json_decref(doc);
}

static void test_anchors_and_merge(void **state)
{
	json_t *doc = parse_ok("defaults: &defaults\n"
			       "  cpu: 100m\n"
			       "  memory: 256Mi\n"
			       "  limits: &lim {cpu: 500m}\n"
			       "gateway:\n"
			       "  <<: *defaults\n"
			       "  memory: 1Gi\n"
			       "brain:\n"
			       "  memory: 2Gi\n"
			       "  <<: [*defaults, {cpu: 1, disk: 5Gi}]\n"
			       "worker: *defaults\n"
			       "limits: *lim\n"
			       "names: [&n web, *n, *n]\n"
			       "\"<<\": literal\n");
	json_t *w;

	(void)state;
	assert_json(json_object_get(doc, "gateway"),
		    "{\"cpu\":\"100m\",\"limits\":{\"cpu\":\"500m\"},"
		    "\"memory\":\"1Gi\"}");
	assert_json(json_object_get(doc, "brain"),
		    "{\"cpu\":\"100m\",\"disk\":\"5Gi\",\"limits\":{\"cpu\":"
		    "\"500m\"},\"memory\":\"2Gi\"}");
	assert_json(json_object_get(doc, "worker"),
		    "{\"cpu\":\"100m\",\"limits\":{\"cpu\":\"500m\"},"
		    "\"memory\":\"256Mi\"}");
	assert_json(json_object_get(doc, "limits"), "{\"cpu\":\"500m\"}");
	assert_json(json_object_get(doc, "names"), "[\"web\",\"web\",\"web\"]");
	assert_string_equal(json_string_value(json_object_get(doc, "<<")),
			    "literal");

	/* aliases are copies: changing one leaves the anchor alone */
	w = json_object_get(doc, "worker");
	assert_int_equal(json_object_set_new(w, "cpu", json_string("2")), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(doc, "defaults"), "cpu")),
			    "100m");
	json_decref(doc);

	assert_parse_error("a: *nope\n", 9, "unknown anchor \"nope\"");
	assert_parse_error("a: &x [1, *x]\n", 14, "unknown anchor");
	assert_parse_error("a: &s str\nb:\n  <<: *s\n", 22,
			   "merge key << needs a mapping");
	/* anchors do not cross documents */
	assert_parse_error("a: &x 1\n---\nb: *x\n", 18, "line 3:4");
}

static void test_billion_laughs(void **state)
{
	static const char bomb[] =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g]\n"
		"i: &i [*h,*h,*h,*h,*h,*h,*h,*h]\n";

	(void)state;
	assert_parse_error(bomb, sizeof(bomb) - 1, "aliases expand to more");
}

static void test_kubeconfig(void **state)
{
	json_t *doc = parse_ok(
		"apiVersion: v1\n"
		"kind: Config\n"
		"current-context: dev\n"
		"preferences: {}\n"
		"clusters:\n"
		"- cluster:\n"
		"    certificate-authority-data: LS0tLS1CRUdJTg==\n"
		"    server: https://127.0.0.1:6443\n"
		"  name: local\n"
		"contexts:\n"
		"- context:\n"
		"    cluster: local\n"
		"    namespace: vigil-system\n"
		"    user: admin\n"
		"  name: dev\n"
		"users:\n"
		"- name: admin\n"
		"  user:\n"
		"    token: abc.def\n"
		"    client-certificate-data: Y2VydA==\n");
	json_t *cl, *users;

	(void)state;
	assert_string_equal(
		json_string_value(json_object_get(doc, "current-context")),
		"dev");
	assert_json(json_object_get(doc, "preferences"), "{}");
	cl = json_object_get(json_array_get(json_object_get(doc, "clusters"),
					    0),
			     "cluster");
	assert_string_equal(json_string_value(json_object_get(cl, "server")),
			    "https://127.0.0.1:6443");
	users = json_object_get(doc, "users");
	assert_int_equal(json_array_size(users), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(users, 0),
						    "user"),
				    "token")),
			    "abc.def");
	json_decref(doc);
}

static void test_malformed(void **state)
{
	static const char junk[] = { 'a', ':', ' ', 0x01, 0x02, (char)0xff,
				     (char)0xfe, 0x00, 0x7f, '\n' };

	(void)state;
	/* bad indentation: a sibling key less indented than the first */
	assert_parse_error("a:\n    b: 1\n  c: 2\n", 19, "line 3:");
	/* unclosed quote runs to the end of input */
	assert_parse_error("a: 1\nb: \"open\nc: 3\n", 19, "line 4:");
	/* tabs cannot indent */
	assert_parse_error("a:\n\tb: 1\n", 8, "line 2:1");
	assert_parse_error(junk, sizeof(junk), "line 1:");
	assert_parse_error("a: [1, 2\n", 9, "line 2:");
	assert_parse_error("key: value: other\n", 18, "line 1:");
	assert_parse_error("- a\nb: c\n", 8, "line 2:");
	assert_parse_error("a: 1\na: 2\n", 10, "duplicate key \"a\"");
	assert_parse_error("? [a, b]\n: 1\n", 13, "keys must be scalars");
	assert_parse_error("a: \"\\ud800\"\n", 12, "line 1:");
	assert_parse_error("\xef\xbb\xbf" "a: \xc3\x28\n", 9, "line 1:8");
}

static void test_deep_nesting(void **state)
{
	struct vg_buf b;
	json_t *doc = NULL;
	struct vg_err err = { 0 };
	int rc;

	(void)state;
	/* 256 levels are allowed */
	vg_buf_init(&b, 0);
	for (int i = 0; i < 256; i++)
		assert_int_equal(vg_buf_append_byte(&b, '['), VG_OK);
	for (int i = 0; i < 256; i++)
		assert_int_equal(vg_buf_append_byte(&b, ']'), VG_OK);
	rc = vg_yaml_parse(b.data, b.len, &doc, &err);
	assert_int_equal(rc, VG_OK);
	assert_true(json_is_array(doc));
	json_decref(doc);

	/* far deeper fails cleanly, in flow and block style */
	vg_buf_reset(&b);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(vg_buf_append_byte(&b, '['), VG_OK);
	assert_parse_error(b.data, b.len, "nesting deeper than 256");
	vg_buf_reset(&b);
	for (int i = 0; i < 300; i++)
		assert_int_equal(vg_buf_appendf(&b, "%*sk:\n", i, ""), VG_OK);
	assert_parse_error(b.data, b.len, "line 257:");

	/* an alias cannot smuggle in extra depth */
	vg_buf_reset(&b);
	assert_int_equal(vg_buf_append_str(&b, "a: &a "), VG_OK);
	for (int i = 0; i < 200; i++)
		assert_int_equal(vg_buf_append_byte(&b, '['), VG_OK);
	for (int i = 0; i < 200; i++)
		assert_int_equal(vg_buf_append_byte(&b, ']'), VG_OK);
	assert_int_equal(vg_buf_append_str(&b, "\nb: "), VG_OK);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vg_buf_append_byte(&b, '['), VG_OK);
	assert_int_equal(vg_buf_append_str(&b, "*a"), VG_OK);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vg_buf_append_byte(&b, ']'), VG_OK);
	assert_parse_error(b.data, b.len, "nests deeper than 256");
	vg_buf_cleanup(&b);
}

static void test_empty_input(void **state)
{
	static const char *const empties[] = { "", "\n\n", "# only a comment\n",
					       "---\n", "---\n...\n---\n" };
	struct vg_err err = { 0 };
	json_t *v = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		assert_int_equal(vg_yaml_parse_stream(empties[i],
						      strlen(empties[i]), &v,
						      &err),
				 VG_OK);
		assert_true(json_is_array(v));
		assert_int_equal(json_array_size(v), 0);
		json_decref(v);
		assert_int_equal(vg_yaml_parse(empties[i], strlen(empties[i]),
					       &v, &err),
				 VG_OK);
		assert_true(json_is_null(v));
		json_decref(v);
	}
	assert_int_equal(vg_yaml_parse_stream(NULL, 0, &v, &err), VG_OK);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/vigil-test-yaml-XXXXXX";
	struct vg_err err = { 0 };
	json_t *v = NULL;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, manifest, strlen(manifest)),
			 (ssize_t)strlen(manifest));
	close(fd);
	assert_int_equal(vg_yaml_load_file_stream(path, &v, &err), VG_OK);
	assert_int_equal(json_array_size(v), 3);
	json_decref(v);
	assert_int_equal(vg_yaml_load_file(path, &v, &err), VG_PARSE);
	assert_null(v);
	unlink(path);

	assert_int_equal(vg_yaml_load_file(path, &v, &err), VG_IO);
	assert_int_equal(err.code, VG_IO);
	assert_non_null(strstr(err.msg, path));
	assert_null(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multi_document_manifest),
		cmocka_unit_test(test_scalar_typing),
		cmocka_unit_test(test_bad_tagged_scalars),
		cmocka_unit_test(test_quoted_true_stays_string),
		cmocka_unit_test(test_anchors_and_merge),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_kubeconfig),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
