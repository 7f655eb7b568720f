/* test_strmap.c - the string map against a brute-force model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/strmap.h"

static int freed;
static void count_free(void *p)
{
	freed++;
	free(p);
}

static void test_put_get_replace_del(void **state)
{
	(void)state;
	struct vg_strmap m;

	freed = 0;
	vg_strmap_init(&m, count_free);
	assert_null(vg_strmap_get(&m, "a"));
	assert_int_equal(vg_strmap_put(&m, "a", strdup("1")), 0);
	assert_int_equal(vg_strmap_put(&m, "b", strdup("2")), 0);
	assert_string_equal(vg_strmap_get(&m, "a"), "1");
	assert_int_equal(vg_strmap_put(&m, "a", strdup("3")), 0);
	assert_int_equal(freed, 1); /* the replaced value */
	assert_string_equal(vg_strmap_get(&m, "a"), "3");
	assert_int_equal(vg_strmap_len(&m), 2);
	assert_int_equal(vg_strmap_del(&m, "a"), 1);
	assert_int_equal(vg_strmap_del(&m, "a"), 0);
	assert_int_equal(freed, 2);
	assert_null(vg_strmap_get(&m, "a"));
	vg_strmap_cleanup(&m);
	assert_int_equal(freed, 3);
}

/* Random inserts and deletes checked against a plain array model; deletes
 * exercise the backward shift in long probe runs. */
static void test_against_model(void **state)
{
	(void)state;
	enum { N = 2000 };
	static intptr_t model[N];
	struct vg_strmap m;
	char key[32];
	size_t pos = 0, seen = 0, live = 0;
	const char *k;
	void *v;

	srand(7);
	memset(model, 0, sizeof(model));
	vg_strmap_init(&m, NULL);
	for (int step = 0; step < 50000; step++) {
		int i = rand() % N;

		snprintf(key, sizeof(key), "ns/obj-%d", i);
		if (rand() % 3 == 0) {
			vg_strmap_del(&m, key);
			model[i] = 0;
		} else {
			intptr_t val = step + 1;

			assert_int_equal(vg_strmap_put(&m, key, (void *)val), 0);
			model[i] = val;
		}
	}
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "ns/obj-%d", i);
		assert_int_equal((intptr_t)vg_strmap_get(&m, key), model[i]);
		live += model[i] != 0;
	}
	assert_int_equal(vg_strmap_len(&m), live);
	while (vg_strmap_next(&m, &pos, &k, &v)) {
		int i = (int)strtol(k + strlen("ns/obj-"), NULL, 10);

		assert_int_equal((intptr_t)v, model[i]);
		seen++;
	}
	assert_int_equal(seen, live);
	vg_strmap_cleanup(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_replace_del),
		cmocka_unit_test(test_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
