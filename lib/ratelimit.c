/* ratelimit.c - thread-safe token bucket with debt, on an injectable clock. */
#include "vigil/ratelimit.h"

#include "vigil/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define NS_PER_SEC 1000000000.0
/* Longest single sleep while a cancellation flag is being watched. */
#define CANCEL_POLL_NS 50000000ull

struct vg_ratelimit {
	pthread_mutex_t mu;
	const struct vg_clock *clock;
	double qps;       /* tokens per second; <= 0 means unlimited */
	double burst;     /* bucket size */
	double tokens;    /* may be negative: reserved ahead of time */
	uint64_t last_ns; /* when `tokens` was last brought up to date */
};

static uint64_t mono_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void mono_sleep(void *ctx, uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};

	(void)ctx;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const struct vg_clock monotonic_clock = {
	.now_ns = mono_now,
	.sleep_ns = mono_sleep,
	.ctx = NULL,
};

const struct vg_clock *vg_clock_monotonic(void)
{
	return &monotonic_clock;
}

struct vg_ratelimit *vg_ratelimit_new(double qps, int burst,
                                      const struct vg_clock *clock)
{
	struct vg_ratelimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	if (pthread_mutex_init(&rl->mu, NULL) != 0) {
		free(rl);
		return NULL;
	}
	rl->clock = clock ? clock : &monotonic_clock;
	rl->qps = qps;
	rl->burst = burst < 1 ? 1.0 : (double)burst;
	rl->tokens = rl->burst;
	rl->last_ns = vg_clock_now(rl->clock);
	return rl;
}

void vg_ratelimit_free(struct vg_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

/* Credit the tokens earned since last_ns. Called with mu held. */
static void advance(struct vg_ratelimit *rl)
{
	uint64_t now = vg_clock_now(rl->clock);

	if (now > rl->last_ns && rl->qps > 0) {
		rl->tokens +=
			(double)(now - rl->last_ns) * rl->qps / NS_PER_SEC;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	if (now > rl->last_ns)
		rl->last_ns = now;
}

/* Nanoseconds until `tokens` reaches `want`. Called with mu held. */
static uint64_t delay_until(const struct vg_ratelimit *rl, double want)
{
	double ns;

	if (rl->tokens >= want)
		return 0;
	ns = (want - rl->tokens) * NS_PER_SEC / rl->qps;
	/* Round up so that a caller sleeping this long finds the token. */
	return (uint64_t)ns + 1;
}

void vg_ratelimit_set(struct vg_ratelimit *rl, double qps, int burst)
{
	pthread_mutex_lock(&rl->mu);
	advance(rl);
	rl->burst = burst < 1 ? 1.0 : (double)burst;
	/* An unlimited bucket counts as full. */
	if (rl->qps <= 0)
		rl->tokens = rl->burst;
	rl->qps = qps;
	if (rl->tokens > rl->burst)
		rl->tokens = rl->burst;
	pthread_mutex_unlock(&rl->mu);
}

int vg_ratelimit_try(struct vg_ratelimit *rl)
{
	int ok = 1;

	pthread_mutex_lock(&rl->mu);
	if (rl->qps > 0) {
		advance(rl);
		if (rl->tokens >= 1.0)
			rl->tokens -= 1.0;
		else
			ok = 0;
	}
	pthread_mutex_unlock(&rl->mu);
	return ok;
}

uint64_t vg_ratelimit_reserve(struct vg_ratelimit *rl)
{
	uint64_t wait = 0;

	pthread_mutex_lock(&rl->mu);
	if (rl->qps > 0) {
		advance(rl);
		rl->tokens -= 1.0;
		wait = delay_until(rl, 0.0);
	}
	pthread_mutex_unlock(&rl->mu);
	return wait;
}

void vg_ratelimit_unreserve(struct vg_ratelimit *rl)
{
	pthread_mutex_lock(&rl->mu);
	if (rl->qps > 0) {
		advance(rl);
		rl->tokens += 1.0;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
	}
	pthread_mutex_unlock(&rl->mu);
}

uint64_t vg_ratelimit_delay(struct vg_ratelimit *rl)
{
	uint64_t wait = 0;

	pthread_mutex_lock(&rl->mu);
	if (rl->qps > 0) {
		advance(rl);
		wait = delay_until(rl, 1.0);
	}
	pthread_mutex_unlock(&rl->mu);
	return wait;
}

int vg_ratelimit_wait(struct vg_ratelimit *rl, const atomic_int *cancel)
{
	uint64_t wait = vg_ratelimit_reserve(rl);
	uint64_t deadline, now, step;

	if (wait == 0)
		return VG_OK;
	if (!cancel) {
		rl->clock->sleep_ns(rl->clock->ctx, wait);
		return VG_OK;
	}
	deadline = vg_clock_now(rl->clock) + wait;
	for (;;) {
		if (atomic_load(cancel)) {
			vg_ratelimit_unreserve(rl);
			return VG_CANCELED;
		}
		now = vg_clock_now(rl->clock);
		if (now >= deadline)
			return VG_OK;
		step = deadline - now;
		if (step > CANCEL_POLL_NS)
			step = CANCEL_POLL_NS;
		rl->clock->sleep_ns(rl->clock->ctx, step);
	}
}
