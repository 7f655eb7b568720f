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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clean),
		cmocka_unit_test_setup(test_precedence, clean),
		cmocka_unit_test_setup(test_refused, clean),
		cmocka_unit_test_setup(test_key_file_and_conninfo, clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
