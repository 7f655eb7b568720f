/* test_config.c - the gateway's settings: defaults, the JSON config file,
 * the environment and flags in that order of precedence, bounds, the
 * Redis address, the bootstrap key file, and libpq quoting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "vigil/http_parse.h"

static const char *const vars[] = {
	"VIGIL_CONFIG_FILE",
	"VIGIL_GATEWAY_PORT",
	"VIGIL_GATEWAY_LISTEN",
	"VIGIL_REDIS_ADDR",
	"VIGIL_DB_PASSWORD",
	"VIGIL_GATEWAY_MAX_BODY",
	"VIGIL_GATEWAY_TLS",
	"VIGIL_BOOTSTRAP_ADMIN_KEY",
	"VIGIL_BOOTSTRAP_ADMIN_KEY_FILE",
	"VIGIL_DB_APP_USER",
	"VIGIL_EMERGENCY_STOP",
	"VIGIL_HEALTH_PORT",
};

static int clean(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return 0;
}

static int load(struct gw_config *c, int argc, const char **argv,
                struct vg_err *err)
{
	return gw_config_load(c, argc, (char **)argv, err);
}

static void test_defaults(void **state)
{
	struct gw_config c;
	struct vg_err err = {0};
	const char *argv[] = {"gw"};

	(void)state;
	assert_int_equal(load(&c, 1, argv, &err), VG_OK);
	assert_string_equal(c.listen, "0.0.0.0:8080");
	assert_string_equal(c.health_listen, "0.0.0.0:9090");
	assert_int_equal(c.max_body, 1048576);
	assert_int_equal(c.max_header, 16384);
	assert_int_equal(c.migrate, 1);
	assert_null(c.bootstrap_key);
	gw_config_cleanup(&c);
}

static void test_precedence(void **state)
{
	struct gw_config c;
	struct vg_err err = {0};
	char file[] = "/tmp/gwcfg-XXXXXX";
	int fd = mkstemp(file);
	const char *doc = "{\"healthPort\": 9191, \"gateway\": {\"port\": 8181,"
			  " \"tls\": false}, \"redis\": {\"addr\": "
			  "\"redis.vigil:6380\", \"db\": 2},"
			  " \"emergencyStop\": true, \"database\": {\"name\": "
			  "\"fromfile\"}}";
	const char *argv[] = {"gw", "--gateway-max-body", "2048",
	                      "--health-listen=127.0.0.1:0"};

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	setenv("VIGIL_CONFIG_FILE", file, 1);
	setenv("VIGIL_GATEWAY_PORT", "8282", 1);
	setenv("VIGIL_GATEWAY_MAX_BODY", "4096", 1);
	assert_int_equal(load(&c, 4, argv, &err), VG_OK);
	assert_string_equal(c.listen, "0.0.0.0:8282");       /* env > file */
	assert_string_equal(c.health_listen, "127.0.0.1:0"); /* flag */
	assert_int_equal(c.health_port, 9191);               /* file */
	assert_int_equal(c.max_body, 2048);                  /* flag > env */
	assert_string_equal(c.redis_host, "redis.vigil");
	assert_int_equal(c.redis_port, 6380);
	assert_int_equal(c.redis_db, 2);
	assert_int_equal(c.emergency_stop, 1);
	assert_string_equal(c.db_name, "fromfile");
	gw_config_cleanup(&c);
	unlink(file);
}

static void test_refused(void **state)
{
	static const struct {
		const char *var, *val;
	} bad[] = {
		{"VIGIL_GATEWAY_MAX_BODY", "-1"},
		{"VIGIL_GATEWAY_MAX_BODY", "12abc"},
		{"VIGIL_GATEWAY_PORT", "70000"},
		{"VIGIL_EMERGENCY_STOP", "maybe"},
		{"VIGIL_GATEWAY_TLS", "true"},
		{"VIGIL_REDIS_ADDR", "nohost"},
		{"VIGIL_BOOTSTRAP_ADMIN_KEY", "short"},
		{"VIGIL_TRUSTED_PROXIES", "10.0.0.0/33"},
		{"VIGIL_TRUSTED_PROXIES", "10.0.0.0/"},
		{"VIGIL_TRUSTED_PROXIES", "proxy.local"},
		{"VIGIL_TRUSTED_PROXIES", "::1/129"},
	};
	const char *argv[] = {"gw"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_config c;
		struct vg_err err = {0};

		setenv(bad[i].var, bad[i].val, 1);
		if (load(&c, 1, argv, &err) != VG_CONFIG)
			fail_msg("%s=%s accepted", bad[i].var, bad[i].val);
		assert_non_null(strstr(err.msg, bad[i].var));
		gw_config_cleanup(&c);
		unsetenv(bad[i].var);
	}
	{
		struct gw_config c;
		struct vg_err err = {0};
		const char *args[] = {"gw", "--no-such-flag", "1"};

		assert_int_equal(load(&c, 3, args, &err), VG_CONFIG);
		gw_config_cleanup(&c);
	}
}

static void test_key_file_and_conninfo(void **state)
{
	struct gw_config c;
	struct vg_err err = {0};
	char file[] = "/tmp/gwkey-XXXXXX";
	int fd = mkstemp(file);
	const char *key = "0123456789abcdef0123456789abcdef-from-file\n";
	const char *argv[] = {"gw"};
	char *ci;

	(void)state;
	assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
	close(fd);
	setenv("VIGIL_BOOTSTRAP_ADMIN_KEY_FILE", file, 1);
	setenv("VIGIL_DB_PASSWORD", "it's a \\ secret", 1);
	assert_int_equal(load(&c, 1, argv, &err), VG_OK);
	assert_string_equal(c.bootstrap_key,
	                    "0123456789abcdef0123456789abcdef-from-file");
	ci = gw_config_conninfo(&c, 0);
	assert_non_null(strstr(ci, "password='it\\'s a \\\\ secret'"));
	assert_null(strstr(ci, "role=vigil_app"));
	free(ci);
	/* without an app login the owner's login switches role */
	ci = gw_config_conninfo(&c, 1);
	assert_non_null(strstr(ci, "options='-c role=vigil_app'"));
	free(ci);
	gw_config_cleanup(&c);
	setenv("VIGIL_DB_APP_USER", "vigil_app", 1);
	assert_int_equal(load(&c, 1, argv, &err), VG_OK);
	ci = gw_config_conninfo(&c, 1);
	assert_non_null(strstr(ci, "user='vigil_app'"));
	assert_null(strstr(ci, "secret"));
	free(ci);
	gw_config_cleanup(&c);
	unlink(file);
}

/* The client behind trusted proxies, read from X-Forwarded-For. */
static const char *client(const struct gw *g, const char *peer, const char *xff)
{
	static char out[64];
	char raw[512];
	struct vg_http_head h;
	struct srv_req req = {0};

	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n",
	         xff ? "X-Forwarded-For: " : "", xff ? xff : "",
	         xff ? "\r\n" : "");
	assert_int_equal(vg_http_parse(raw, strlen(raw), 4096, &h), VG_OK);
	req.head = &h;
	snprintf(req.peer, sizeof(req.peer), "%s", peer);
	gw_client_addr(g, &req, out, sizeof(out));
	return out;
}

static void test_client_address(void **state)
{
	struct gw g;
	struct vg_err err = {0};

	(void)state;
	memset(&g, 0, sizeof(g));
	/* no trusted proxy: the header is the client's to forge */
	assert_string_equal(client(&g, "127.0.0.1", "203.0.113.7"),
	                    "127.0.0.1");
	assert_int_equal(gw_proxies_parse("127.0.0.1, 10.0.0.0/8 ::1/128 "
	                                  "fd00::/8",
	                                  g.proxies, GW_MAX_PROXIES,
	                                  &g.nproxies, &err),
	                 VG_OK);
	assert_int_equal(g.nproxies, 4);
	assert_string_equal(client(&g, "127.0.0.1", "203.0.113.7"),
	                    "203.0.113.7");
	/* from the right: trusted hops skipped, the client's own claims
	 * further left ignored */
	assert_string_equal(
		client(&g, "127.0.0.1", "198.51.100.1, 203.0.113.7, 10.1.2.3"),
		"203.0.113.7");
	assert_string_equal(client(&g, "127.0.0.1", "10.0.0.1"), "10.0.0.1");
	assert_string_equal(client(&g, "::1", "2001:db8::1, fd00::2"),
	                    "2001:db8::1");
	assert_string_equal(client(&g, "127.0.0.1", "not-an-ip"), "127.0.0.1");
	assert_string_equal(client(&g, "127.0.0.1", NULL), "127.0.0.1");
	/* a peer that is no proxy is the client, whatever it says */
	assert_string_equal(client(&g, "192.0.2.5", "203.0.113.7"),
	                    "192.0.2.5");
	assert_string_equal(client(&g, "11.0.0.1", "203.0.113.7"), "11.0.0.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clean),
		cmocka_unit_test_setup(test_precedence, clean),
		cmocka_unit_test_setup(test_refused, clean),
		cmocka_unit_test_setup(test_key_file_and_conninfo, clean),
		cmocka_unit_test(test_client_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
