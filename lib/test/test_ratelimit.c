/* test_ratelimit.c - token bucket: burst, steady rate, debt, cancel, threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vigil/err.h"
#include "vigil/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

#define MS 1000000ull

struct fake_clock {
	uint64_t now;
	uint64_t slept;        /* total nanoseconds slept */
	atomic_int *cancel_at; /* set to 1 once `now` passes cancel_ns */
	uint64_t cancel_ns;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static void fake_sleep(void *ctx, uint64_t ns)
{
	struct fake_clock *fc = ctx;

	fc->now += ns;
	fc->slept += ns;
	if (fc->cancel_at && fc->now >= fc->cancel_ns)
		atomic_store(fc->cancel_at, 1);
}

static void fake_init(struct fake_clock *fc, struct vg_clock *c)
{
	fc->now = 1000 * MS;
	fc->slept = 0;
	fc->cancel_at = NULL;
	fc->cancel_ns = 0;
	c->now_ns = fake_now;
	c->sleep_ns = fake_sleep;
	c->ctx = fc;
}

static void test_burst_then_qps(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(2.0, 3, &clk);
	assert_non_null(rl);

	/* The full bucket allows exactly `burst` immediate takes. */
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 0);
	assert_int_equal(vg_ratelimit_delay(rl) / MS, 500);

	/* Half a period later still nothing; a full period gives one token. */
	fc.now += 250 * MS;
	assert_int_equal(vg_ratelimit_try(rl), 0);
	fc.now += 250 * MS;
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 0);

	/* A long idle period refills only up to the burst. */
	fc.now += 60000 * MS;
	for (int i = 0; i < 3; i++)
		assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 0);
	vg_ratelimit_free(rl);
}

static void test_reserve_queues_callers(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(10.0, 2, &clk);
	assert_non_null(rl);

	/* Burst of 2, then each reservation waits 100 ms more than the last. */
	assert_int_equal(vg_ratelimit_reserve(rl), 0);
	assert_int_equal(vg_ratelimit_reserve(rl), 0);
	assert_int_equal((vg_ratelimit_reserve(rl) + MS / 2) / MS, 100);
	assert_int_equal((vg_ratelimit_reserve(rl) + MS / 2) / MS, 200);
	assert_int_equal((vg_ratelimit_reserve(rl) + MS / 2) / MS, 300);
	/* try() never goes into debt. */
	assert_int_equal(vg_ratelimit_try(rl), 0);

	/* Giving a reservation back shortens the queue. */
	vg_ratelimit_unreserve(rl);
	assert_int_equal((vg_ratelimit_reserve(rl) + MS / 2) / MS, 300);
	vg_ratelimit_free(rl);
}

static void test_wait_sleeps_on_clock(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(5.0, 1, &clk);
	assert_non_null(rl);

	/* QPS 5, burst 1: 11 waits take 10 intervals of 200 ms = 2 s. */
	for (int i = 0; i < 11; i++)
		assert_int_equal(vg_ratelimit_wait(rl, NULL), VG_OK);
	assert_int_equal((fc.slept + MS / 2) / MS, 2000);
	vg_ratelimit_free(rl);
}

static void test_wait_cancel_returns_token(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;
	atomic_int cancel = 0;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(1.0, 1, &clk);
	assert_non_null(rl);
	assert_int_equal(vg_ratelimit_wait(rl, &cancel), VG_OK);

	/* The next token is 1 s away; cancel after 120 ms of waiting. */
	fc.cancel_at = &cancel;
	fc.cancel_ns = fc.now + 120 * MS;
	assert_int_equal(vg_ratelimit_wait(rl, &cancel), VG_CANCELED);
	assert_true(fc.slept >= 120 * MS);
	assert_true(fc.slept < 1000 * MS);
	/* The cancelled reservation was returned: the wait is < 1 s again. */
	assert_true(vg_ratelimit_delay(rl) < 1000 * MS);
	assert_true(vg_ratelimit_delay(rl) > 800 * MS);
	vg_ratelimit_free(rl);
}

static void test_unlimited(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(0, 1, &clk);
	assert_non_null(rl);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_reserve(rl), 0);
	assert_int_equal(vg_ratelimit_wait(rl, NULL), VG_OK);
	assert_int_equal(fc.slept, 0);

	/* Switching to a limited rate takes effect at once. */
	vg_ratelimit_set(rl, 1.0, 2);
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 1);
	assert_int_equal(vg_ratelimit_try(rl), 0);
	vg_ratelimit_free(rl);
}

#define THREADS    8
#define PER_THREAD 50

struct thread_arg {
	struct vg_ratelimit *rl;
	uint64_t max_wait;
	int taken;
};

static void *reserve_many(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t w = vg_ratelimit_reserve(a->rl);

		if (w > a->max_wait)
			a->max_wait = w;
		a->taken++;
	}
	return NULL;
}

/* Concurrent reservations on a frozen clock: each token handed out once. */
static void test_threads_share_bucket(void **state)
{
	struct fake_clock fc;
	struct vg_clock clk;
	struct vg_ratelimit *rl;
	pthread_t th[THREADS];
	struct thread_arg args[THREADS] = {0};
	uint64_t max_wait = 0;
	int total = 0;

	(void)state;
	fake_init(&fc, &clk);
	rl = vg_ratelimit_new(100.0, 10, &clk);
	assert_non_null(rl);
	for (int i = 0; i < THREADS; i++) {
		args[i].rl = rl;
		assert_int_equal(
			pthread_create(&th[i], NULL, reserve_many, &args[i]),
			0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		total += args[i].taken;
		if (args[i].max_wait > max_wait)
			max_wait = args[i].max_wait;
	}
	assert_int_equal(total, THREADS * PER_THREAD);
	/* 400 reservations, 10 free: the last waits 390 intervals of 10 ms. */
	assert_int_equal((max_wait + MS / 2) / MS, 3900);
	vg_ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_qps),
		cmocka_unit_test(test_reserve_queues_callers),
		cmocka_unit_test(test_wait_sleeps_on_clock),
		cmocka_unit_test(test_wait_cancel_returns_token),
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_threads_share_bucket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
