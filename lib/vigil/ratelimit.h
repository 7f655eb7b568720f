/*
 * ratelimit.h - a thread-safe token bucket, and the clock it runs on.
 *
 * The bucket holds up to `burst` tokens and refills at `qps` tokens per
 * second. Taking a token when the bucket is empty puts it into debt: the
 * caller is told how long to wait before acting, and later callers queue
 * behind it (the model of Go's golang.org/x/time/rate). So N callers that
 * reserve at once are spread out at exactly 1/qps intervals after the burst.
 *
 *   struct vg_ratelimit *rl = vg_ratelimit_new(5.0, 10, NULL);
 *   vg_ratelimit_wait(rl, NULL);        // blocks until a token is ours
 *   ...
 *   vg_ratelimit_free(rl);
 *
 * The clock is injectable so unit tests run on fake time.
 */
#ifndef VG_RATELIMIT_H
#define VG_RATELIMIT_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * A monotonic clock. `now_ns` returns nanoseconds from an arbitrary origin;
 * `sleep_ns` blocks for (at least) `ns`. Both receive `ctx`.
 */
struct vg_clock {
	uint64_t (*now_ns)(void *ctx);
	void (*sleep_ns)(void *ctx, uint64_t ns);
	void *ctx;
};

/* The process's CLOCK_MONOTONIC clock; borrowed, static. */
const struct vg_clock *vg_clock_monotonic(void);

static inline uint64_t vg_clock_now(const struct vg_clock *c)
{
	return c->now_ns(c->ctx);
}

struct vg_ratelimit;

/*
 * New bucket, full (`burst` tokens available). `qps` <= 0 means unlimited:
 * every call succeeds at once. `burst` < 1 is treated as 1. `clock` NULL
 * means vg_clock_monotonic(); otherwise it is borrowed and must outlive the
 * bucket. Returns NULL on allocation failure.
 */
struct vg_ratelimit *vg_ratelimit_new(double qps, int burst,
                                      const struct vg_clock *clock);
void vg_ratelimit_free(struct vg_ratelimit *rl);

/* Change the rate; tokens already earned are kept (capped at `burst`). */
void vg_ratelimit_set(struct vg_ratelimit *rl, double qps, int burst);

/* Take a token if one is available now: 1 taken, 0 not (nothing changes). */
int vg_ratelimit_try(struct vg_ratelimit *rl);

/*
 * Take a token unconditionally and return how many nanoseconds the caller
 * must wait before acting on it (0 when one was available).
 */
uint64_t vg_ratelimit_reserve(struct vg_ratelimit *rl);

/* Return a reserved token that will not be used (e.g. a cancelled wait). */
void vg_ratelimit_unreserve(struct vg_ratelimit *rl);

/* Nanoseconds until a token would be available, without taking one. */
uint64_t vg_ratelimit_delay(struct vg_ratelimit *rl);

/*
 * Reserve a token and sleep until it is due. When `cancel` is non-NULL it
 * is polled while sleeping (every 50 ms at most); once it reads non-zero
 * the token is given back and VG_CANCELED is returned. Otherwise 0.
 */
int vg_ratelimit_wait(struct vg_ratelimit *rl, const atomic_int *cancel);

#endif
