/* test_log.c - the JSON Lines record format, escaping, levels, redaction
 * and one write(2) per record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/log.h"

/*
 * Records go to one end of a datagram socket pair: each write(2) arrives
 * as exactly one datagram, so a record split over several writes shows up
 * as several datagrams.
 */
struct capture {
	int fds[2];
};

static int setup(void **state)
{
	struct capture *c = calloc(1, sizeof(*c));

	if (!c || socketpair(AF_UNIX, SOCK_DGRAM, 0, c->fds))
		return -1;
	fcntl(c->fds[0], F_SETFL, O_NONBLOCK);
	unsetenv("VIGIL_LOG_LEVEL");
	vg_log_init("test");
	vg_log_set_level(VG_LOG_DEBUG);
	vg_log_set_fd(c->fds[1]);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct capture *c = *state;

	vg_log_set_fd(2);
	vg_log_set_level(VG_LOG_INFO);
	close(c->fds[0]);
	close(c->fds[1]);
	free(c);
	return 0;
}

/* The next record (one datagram) into `out`; 0 when there is none. */
static int next_record(struct capture *c, struct vg_buf *out)
{
	static char tmp[256 * 1024];
	ssize_t n = recv(c->fds[0], tmp, sizeof(tmp), 0);

	vg_buf_reset(out);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	assert_true(n > 0);
	assert_int_equal(vg_buf_append(out, tmp, (size_t)n), VG_OK);
	return 1;
}

/* Read one record, check it is one line of valid JSON; new reference. */
static json_t *read_record(struct capture *c, struct vg_buf *raw)
{
	json_error_t jerr;
	json_t *rec;

	if (!next_record(c, raw))
		fail_msg("no record was written");
	assert_true(raw->len > 1);
	assert_int_equal(raw->data[raw->len - 1], '\n');
	assert_ptr_equal(strchr(raw->data, '\n'), raw->data + raw->len - 1);
	rec = json_loadb(raw->data, raw->len, 0, &jerr);
	if (!rec)
		fail_msg("record is not JSON (%s): %s", jerr.text, raw->data);
	assert_true(json_is_object(rec));
	return rec;
}

static const char *field(const json_t *rec, const char *key)
{
	const json_t *v = json_object_get(rec, key);

	if (!json_is_string(v))
		fail_msg("field %s missing or not a string", key);
	return json_string_value(v);
}

static void test_record_format(void **state)
{
	struct capture *c = *state;
	regex_t re;
	struct vg_buf raw;
	json_t *rec;
	struct tm tm = { 0 };
	const char *ts, *p;
	time_t when;

	vg_buf_init(&raw, 0);
	vg_log(VG_LOG_INFO, "reconciled", "kind", "Platform", "name", "main",
	       "empty", "", (const char *)NULL);
	rec = read_record(c, &raw);

	/* fixed fields first, in order, then the pairs in call order */
	assert_int_equal(strncmp(raw.data, "{\"ts\":\"", 7), 0);
	p = strstr(raw.data, "\",\"level\":\"info\",\"component\":\"test\","
			     "\"msg\":\"reconciled\",\"kind\":\"Platform\","
			     "\"name\":\"main\",\"empty\":\"\"}\n");
	assert_non_null(p);
	assert_int_equal(p - raw.data, 7 + 24);
	assert_int_equal(json_object_size(rec), 7);

	ts = field(rec, "ts");
	assert_int_equal(regcomp(&re,
				 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}"
				 ":[0-9]{2}\\.[0-9]{3}Z$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	if (regexec(&re, ts, 0, NULL, 0) != 0)
		fail_msg("ts \"%s\" is not RFC 3339 UTC with milliseconds", ts);
	regfree(&re);
	p = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(p);
	when = timegm(&tm);
	if (labs((long)(when - time(NULL))) > 5)
		fail_msg("ts %s is not now", ts);

	assert_string_equal(field(rec, "level"), "info");
	assert_string_equal(field(rec, "component"), "test");
	assert_string_equal(field(rec, "msg"), "reconciled");
	assert_string_equal(field(rec, "kind"), "Platform");
	assert_string_equal(field(rec, "name"), "main");
	json_decref(rec);

	/* a NULL value is JSON null; the macros add the terminator */
	vg_warn("queue full", "tenant", (const char *)NULL);
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "level"), "warn");
	assert_true(json_is_null(json_object_get(rec, "tenant")));
	json_decref(rec);

	vg_debug("d");
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "level"), "debug");
	json_decref(rec);
	vg_error("e");
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "level"), "error");
	json_decref(rec);
	assert_int_equal(next_record(c, &raw), 0);
	vg_buf_cleanup(&raw);
}

static void test_escaping(void **state)
{
	static const char nasty[] = "say \"hi\"\\ now\nline2\r\ttab\x01\x1f\x7f"
				    " caf\xc3\xa9";
	struct capture *c = *state;
	struct vg_buf raw;
	json_t *rec;

	vg_buf_init(&raw, 0);
	vg_log(VG_LOG_INFO, nasty, "k\"ey\n", nasty, (const char *)NULL);
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "msg"), nasty);
	assert_string_equal(field(rec, "k\"ey\n"), nasty);
	json_decref(rec);

	/* invalid UTF-8 must not break the line for JSON readers */
	vg_log(VG_LOG_INFO, "bad \xff\xfe bytes", "v", "\xc3(",
	       (const char *)NULL);
	rec = read_record(c, &raw);
	assert_non_null(strstr(field(rec, "msg"), "bad "));
	assert_non_null(strstr(field(rec, "msg"), " bytes"));
	json_decref(rec);
	vg_buf_cleanup(&raw);
}

static void test_level_from_environment(void **state)
{
	static const struct {
		const char *env;
		enum vg_log_level want;
	} cases[] = {
		{ "debug", VG_LOG_DEBUG }, { "INFO", VG_LOG_INFO },
		{ "warn", VG_LOG_WARN },   { "warning", VG_LOG_WARN },
		{ "error", VG_LOG_ERROR }, { "off", VG_LOG_OFF },
		/* unknown and empty values keep the current level */
		{ "verbose", VG_LOG_OFF }, { "", VG_LOG_OFF },
	};
	struct capture *c = *state;
	struct vg_buf raw;
	json_t *rec;

	vg_buf_init(&raw, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(setenv("VIGIL_LOG_LEVEL", cases[i].env, 1), 0);
		vg_log_init(NULL);
		assert_int_equal(vg_log_get_level(), cases[i].want);
	}

	assert_int_equal(setenv("VIGIL_LOG_LEVEL", "warn", 1), 0);
	vg_log_init("filtered");
	vg_info("dropped");
	vg_debug("dropped");
	assert_int_equal(next_record(c, &raw), 0);
	assert_int_equal(vg_log_enabled(VG_LOG_INFO), 0);
	assert_int_equal(vg_log_enabled(VG_LOG_ERROR), 1);
	vg_warn("kept");
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "msg"), "kept");
	assert_string_equal(field(rec, "component"), "filtered");
	json_decref(rec);
	vg_error("kept too");
	rec = read_record(c, &raw);
	json_decref(rec);

	vg_log_set_level(VG_LOG_OFF);
	vg_error("nothing at all");
	vg_log(VG_LOG_OFF, "not a level to log at", (const char *)NULL);
	assert_int_equal(next_record(c, &raw), 0);

	/* levels outside the enum are ignored, never indexed */
	vg_log_set_level(VG_LOG_DEBUG);
	vg_log((enum vg_log_level)7, "bogus", (const char *)NULL);
	vg_log((enum vg_log_level)-1, "bogus", (const char *)NULL);
	assert_int_equal(next_record(c, &raw), 0);
	unsetenv("VIGIL_LOG_LEVEL");
	vg_log_init("test");
	vg_buf_cleanup(&raw);
}

static void test_parse_level(void **state)
{
	enum vg_log_level lvl = VG_LOG_INFO;

	(void)state;
	assert_int_equal(vg_log_parse_level("Error", &lvl), VG_OK);
	assert_int_equal(lvl, VG_LOG_ERROR);
	assert_int_equal(vg_log_parse_level("trace", &lvl), VG_INVAL);
	assert_int_equal(lvl, VG_LOG_ERROR);
}

static void test_secrets_redacted(void **state)
{
	static const char *const secret_keys[] = {
		"password",	 "db_password", "Token",      "bearer_token",
		"authorization", "Authorization", "api_key",  "client_secret",
		"cookie",	 "private_key",
	};
	struct vg_log_field fields[] = {
		{ "tenant", "acme" },
		{ "token", "abc" },
		{ "authorization", "Bearer xyz" },
		{ NULL, "skipped" },
	};
	struct capture *c = *state;
	struct vg_buf raw;
	json_t *rec;

	vg_buf_init(&raw, 0);
	for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]);
	     i++) {
		assert_int_equal(vg_log_key_is_secret(secret_keys[i]), 1);
		vg_log(VG_LOG_INFO, "login", secret_keys[i], "hunter2", "user",
		       "bob", (const char *)NULL);
		rec = read_record(c, &raw);
		assert_string_equal(field(rec, secret_keys[i]), "[redacted]");
		assert_string_equal(field(rec, "user"), "bob");
		assert_null(strstr(raw.data, "hunter2"));
		json_decref(rec);
	}
	assert_int_equal(vg_log_key_is_secret("tenant"), 0);
	assert_int_equal(vg_log_key_is_secret("kind"), 0);

	vg_log_fields(VG_LOG_INFO, "fields", fields, 4);
	rec = read_record(c, &raw);
	assert_string_equal(field(rec, "tenant"), "acme");
	assert_string_equal(field(rec, "token"), "[redacted]");
	assert_string_equal(field(rec, "authorization"), "[redacted]");
	assert_null(strstr(raw.data, "Bearer"));
	assert_null(strstr(raw.data, "skipped"));
	json_decref(rec);
	vg_buf_cleanup(&raw);
}

static void test_one_write_per_record(void **state)
{
	struct capture *c = *state;
	struct vg_buf raw;
	char *big = malloc(10 * 1024 + 1);
	json_t *rec;

	assert_non_null(big);
	for (size_t i = 0; i < 10 * 1024; i++)
		big[i] = (char)('a' + i % 26);
	big[10 * 1024] = '\0';
	vg_buf_init(&raw, 0);
	vg_log(VG_LOG_INFO, big, "also", big, (const char *)NULL);
	/* the whole record in a single datagram, hence a single write */
	rec = read_record(c, &raw);
	assert_true(raw.len > 20 * 1024);
	assert_string_equal(field(rec, "msg"), big);
	assert_string_equal(field(rec, "also"), big);
	json_decref(rec);
	assert_int_equal(next_record(c, &raw), 0);
	vg_buf_cleanup(&raw);
	free(big);
}

static void test_component_is_bounded(void **state)
{
	struct capture *c = *state;
	char name[200];
	struct vg_buf raw;
	json_t *rec;

	memset(name, 'c', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	vg_log_init(name);
	vg_buf_init(&raw, 0);
	vg_info("x");
	rec = read_record(c, &raw);
	assert_int_equal(strlen(field(rec, "component")), 63);
	json_decref(rec);
	vg_buf_cleanup(&raw);
	vg_log_init("test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_record_format, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_from_environment,
						setup, teardown),
		cmocka_unit_test(test_parse_level),
		cmocka_unit_test_setup_teardown(test_secrets_redacted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_write_per_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_component_is_bounded,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
