/* test_db_conninfo.c - libpq conninfo strings built from parts: quoting,
 * omitted parts, and libpq itself reading back what was meant. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/db.h"

/* The value libpq parses for `key` out of `conninfo`, or NULL. */
static char *parsed(const char *conninfo, const char *key)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	char *v = NULL;

	assert_non_null(opts);
	for (o = opts; o->keyword; o++)
		if (strcmp(o->keyword, key) == 0 && o->val)
			v = strdup(o->val);
	PQconninfoFree(opts);
	return v;
}

static void test_quoting_round_trips_through_libpq(void **state)
{
	const char *pw = "it's a \\ tricky' pass word=1";
	char *ci = vg_db_conninfo("db.example", 5433, "vigil", "vigil_app", pw,
				  "verify-full");
	char *v;

	(void)state;
	assert_non_null(ci);
	v = parsed(ci, "password");
	assert_string_equal(v, pw);
	free(v);
	v = parsed(ci, "port");
	assert_string_equal(v, "5433");
	free(v);
	v = parsed(ci, "sslmode");
	assert_string_equal(v, "verify-full");
	free(v);
	free(ci);
}

static void test_empty_parts_are_left_out(void **state)
{
	char *ci = vg_db_conninfo("127.0.0.1", 0, "vigil", "u", NULL, "");

	(void)state;
	assert_non_null(ci);
	assert_string_equal(ci, "host='127.0.0.1' dbname='vigil' user='u'");
	free(ci);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoting_round_trips_through_libpq),
		cmocka_unit_test(test_empty_parts_are_left_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
