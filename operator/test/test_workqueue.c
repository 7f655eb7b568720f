/* test_workqueue.c - de-duplication, exclusivity, delays, backoff, bucket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workqueue.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void take_expect(struct workqueue *q, const char *want)
{
	char *k = workqueue_get(q);

	assert_non_null(k);
	assert_string_equal(k, want);
	workqueue_done(q, k);
	free(k);
}

static void test_dedup_and_fifo(void **state)
{
	(void)state;
	struct workqueue *q = workqueue_new(NULL);
	struct workqueue_stats st;

	assert_int_equal(workqueue_add(q, "ns/a"), 0);
	assert_int_equal(workqueue_add(q, "ns/b"), 0);
	assert_int_equal(workqueue_add(q, "ns/a"), 0);
	workqueue_stats(q, &st);
	assert_int_equal(st.depth, 2);
	assert_int_equal(st.adds, 2);
	take_expect(q, "ns/a");
	take_expect(q, "ns/b");
	workqueue_stats(q, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.processing, 0);
	workqueue_free(q);
}

static void test_key_never_processed_twice(void **state)
{
	(void)state;
	struct workqueue *q = workqueue_new(NULL);
	struct workqueue_stats st;
	char *k;

	workqueue_add(q, "ns/a");
	k = workqueue_get(q);
	assert_string_equal(k, "ns/a");
	/* added while a worker holds it: not ready until done() */
	workqueue_add(q, "ns/a");
	workqueue_add(q, "ns/a");
	workqueue_stats(q, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.processing, 1);
	workqueue_done(q, k);
	free(k);
	workqueue_stats(q, &st);
	assert_int_equal(st.depth, 1);
	take_expect(q, "ns/a");
	workqueue_stats(q, &st);
	assert_int_equal(st.depth, 0);
	workqueue_free(q);
}

static void test_add_after_earliest_wins(void **state)
{
	(void)state;
	struct workqueue *q = workqueue_new(NULL);
	struct workqueue_stats st;
	double t0 = now_s(), dt;

	workqueue_add_after(q, "ns/a", 30.0);
	workqueue_add_after(q, "ns/a", 0.08);
	workqueue_add_after(q, "ns/a", 10.0); /* later: ignored */
	workqueue_stats(q, &st);
	assert_int_equal(st.delayed, 1);
	assert_int_equal(st.depth, 0);
	take_expect(q, "ns/a");
	dt = now_s() - t0;
	assert_true(dt >= 0.07);
	assert_true(dt < 2.0);
	workqueue_stats(q, &st);
	assert_int_equal(st.delayed, 0);
	workqueue_free(q);
}

static void test_backoff_doubles_and_forget_resets(void **state)
{
	(void)state;
	struct workqueue_opts o = { .base_delay = 0.04, .max_delay = 0.2,
				    .qps = 1000, .burst = 1000 };
	struct workqueue *q = workqueue_new(&o);
	const double want[] = { 0.04, 0.08, 0.16, 0.2, 0.2 };

	for (int i = 0; i < 5; i++) {
		double t0 = now_s(), dt;

		assert_int_equal(workqueue_add_rate_limited(q, "ns/a"), 0);
		take_expect(q, "ns/a");
		dt = now_s() - t0;
		assert_true(dt >= want[i] * 0.9);
		assert_true(dt < want[i] + 0.5);
		assert_int_equal(workqueue_num_requeues(q, "ns/a"), i + 1);
	}
	workqueue_forget(q, "ns/a");
	assert_int_equal(workqueue_num_requeues(q, "ns/a"), 0);
	workqueue_free(q);
}

static void test_global_bucket_limits_distinct_keys(void **state)
{
	(void)state;
	struct workqueue_opts o = { .base_delay = 0.001, .max_delay = 1,
				    .qps = 10, .burst = 2 };
	struct workqueue *q = workqueue_new(&o);
	double t0 = now_s(), dt;
	char key[16];

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "ns/k%d", i);
		workqueue_add_rate_limited(q, key);
	}
	for (int i = 0; i < 5; i++) {
		char *k = workqueue_get(q);

		assert_non_null(k);
		workqueue_done(q, k);
		free(k);
	}
	/* 2 from the burst, then 3 at 10/s */
	dt = now_s() - t0;
	assert_true(dt >= 0.27);
	assert_true(dt < 2.0);
	workqueue_free(q);
}

static void *blocked_getter(void *arg)
{
	return workqueue_get(arg);
}

static void test_shutdown_wakes_workers(void **state)
{
	(void)state;
	struct workqueue *q = workqueue_new(NULL);
	pthread_t t;
	void *ret = (void *)1;

	pthread_create(&t, NULL, blocked_getter, q);
	usleep(50000);
	workqueue_shutdown(q);
	pthread_join(t, &ret);
	assert_null(ret);
	assert_int_equal(workqueue_is_shutdown(q), 1);
	assert_null(workqueue_get(q));
	workqueue_free(q);
}

enum { NKEYS = 40, NADDS = 4000, NWORKERS = 4 };
static atomic_int busy[NKEYS];
static atomic_int overlap, processed;

static void *worker(void *arg)
{
	struct workqueue *q = arg;
	char *k;

	while ((k = workqueue_get(q)) != NULL) {
		int i = (int)strtol(k + 1, NULL, 10);

		if (atomic_fetch_add(&busy[i], 1) != 0)
			atomic_fetch_add(&overlap, 1);
		usleep(50);
		atomic_fetch_sub(&busy[i], 1);
		atomic_fetch_add(&processed, 1);
		workqueue_done(q, k);
		free(k);
	}
	return NULL;
}

static void test_concurrent_workers_exclusive(void **state)
{
	(void)state;
	struct workqueue *q = workqueue_new(NULL);
	struct workqueue_stats st;
	pthread_t t[NWORKERS];
	char key[16];

	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&t[i], NULL, worker, q);
	for (int i = 0; i < NADDS; i++) {
		snprintf(key, sizeof(key), "k%d", i % NKEYS);
		workqueue_add(q, key);
	}
	for (int i = 0; i < 500; i++) { /* drain */
		workqueue_stats(q, &st);
		if (!st.depth && !st.processing)
			break;
		usleep(10000);
	}
	workqueue_shutdown(q);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&overlap), 0);
	/* every key processed at least once, never more often than added */
	assert_true(atomic_load(&processed) >= NKEYS);
	assert_true(atomic_load(&processed) <= NADDS);
	workqueue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedup_and_fifo),
		cmocka_unit_test(test_key_never_processed_twice),
		cmocka_unit_test(test_add_after_earliest_wins),
		cmocka_unit_test(test_backoff_doubles_and_forget_resets),
		cmocka_unit_test(test_global_bucket_limits_distinct_keys),
		cmocka_unit_test(test_shutdown_wakes_workers),
		cmocka_unit_test(test_concurrent_workers_exclusive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
