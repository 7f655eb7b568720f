/* gateway.h - the agent's side of the gateway's API: posting result
 * batches (POST /v1/tenants/{tenant}/ingest), reading the emergency stop
 * (GET /v1/emergency-stop), and the two threads that use them: the
 * sender, which delivers spooled batches in order with backoff, and the
 * emergency-stop poller. */
#ifndef AGENT_GATEWAY_H
#define AGENT_GATEWAY_H

#include <stdatomic.h>
#include <stddef.h>

#include "spool.h"
#include "vigil/err.h"

struct gw_client {
	const char *base;   /* "http://gateway:8080", no trailing slash */
	const char *tenant; /* UUID */
	const char *token;  /* never logged */
	int timeout_ms;
};

struct gw_reply {
	long status;	    /* 0: no HTTP answer (network error) */
	long retry_after_ms; /* Retry-After, or -1 */
	char message[256];  /* the gateway's error message, if any */
	char request_id[33];
};

/* POST one batch body. VG_OK when an HTTP answer came (any status; see
 * reply->status), VG_HTTP when none did. */
int gw_post_batch(const struct gw_client *gw, const char *body, size_t len,
		  struct gw_reply *reply, struct vg_err *err);
/* GET the emergency stop: 0 and *engaged, or an error. */
int gw_get_estop(const struct gw_client *gw, int *engaged, struct vg_err *err);

/* 1 when `status` (0 for a network error) is worth retrying: 0, 408, 429
 * and 5xx. */
int gw_retryable(long status);
/* The backoff before attempt `attempt` (0-based) of a retry: exponential
 * from base_ms, capped at max_ms, with up to 50% random jitter removed. */
long gw_backoff_ms(int attempt, long base_ms, long max_ms);

struct sender;

/* Start the thread delivering `sp`'s pending batches in order. */
int sender_start(const struct gw_client *gw, struct spool *sp, long base_ms,
		 long max_ms, struct sender **out, struct vg_err *err);
/* New batches are in the spool. */
void sender_kick(struct sender *s);
/* Wait until every batch is delivered or rejected, or `timeout_ms`
 * passes. Returns the number of batches still pending. */
size_t sender_flush(struct sender *s, long timeout_ms);
/* Batches the gateway refused for good so far. */
size_t sender_rejected(struct sender *s);
size_t sender_delivered(struct sender *s);
/* Stop the thread (mid-backoff too) and free. NULL allowed. */
void sender_free(struct sender *s);

struct estop;

/* Poll the emergency stop every interval_ms; once the gateway says
 * engaged, sets *engaged and *stop to 1 (and keeps them so). */
int estop_start(const struct gw_client *gw, int interval_ms,
		atomic_int *engaged, atomic_int *stop, struct estop **out,
		struct vg_err *err);
void estop_free(struct estop *e);

#endif
