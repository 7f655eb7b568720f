/* test_services.c - the test harness really starts, stops and restarts
 * PostgreSQL and Redis, keeping data across restarts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "testsupport/services.h"

static void test_free_port(void **state)
{
	(void)state;
	int p = vg_ts_free_port();

	assert_true(p > 1024 && p < 65536);
}

static PGresult *pg_exec(const struct vg_ts_service *s, const char *sql)
{
	char ci[256];
	PGconn *c = PQconnectdb(
		vg_ts_pg_conninfo(s, "postgres", "postgres", ci, sizeof(ci)));
	PGresult *r = NULL;

	if (PQstatus(c) == CONNECTION_OK)
		r = PQexec(c, sql);
	PQfinish(c);
	return r;
}

static void test_postgres_restart_keeps_data(void **state)
{
	(void)state;
	struct vg_ts_service pg;
	PGresult *r;

	assert_int_equal(vg_ts_pg_start(&pg), 0);
	assert_true(pg.pid > 0);
	r = pg_exec(&pg, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
	assert_non_null(r);
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);

	assert_int_equal(vg_ts_stop(&pg), 0);
	assert_int_equal(pg.pid, 0);
	assert_null(pg_exec(&pg, "SELECT 1")); /* really down */

	assert_int_equal(vg_ts_restart(&pg), 0);
	r = pg_exec(&pg, "SELECT v FROM t");
	assert_non_null(r);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "42");
	PQclear(r);
	vg_ts_cleanup(&pg);
}

static void test_redis_aof_survives_kill9(void **state)
{
	(void)state;
	struct vg_ts_service rs;
	struct timeval tv = { 2, 0 };
	redisContext *c;
	redisReply *r;

	assert_int_equal(vg_ts_redis_start(&rs, 1), 0);
	c = redisConnectWithTimeout("127.0.0.1", rs.port, tv);
	assert_true(c && !c->err);
	r = redisCommand(c, "SET k v1");
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);

	assert_int_equal(vg_ts_kill9(&rs), 0);
	assert_int_equal(vg_ts_restart(&rs), 0);
	c = redisConnectWithTimeout("127.0.0.1", rs.port, tv);
	assert_true(c && !c->err);
	r = redisCommand(c, "GET k");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "v1");
	freeReplyObject(r);
	redisFree(c);
	vg_ts_cleanup(&rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_port),
		cmocka_unit_test(test_postgres_restart_keeps_data),
		cmocka_unit_test(test_redis_aof_survives_kill9),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
