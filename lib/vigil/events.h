/*
 * events.h - live scan events on Redis pub/sub, for the gateway's
 * `GET /v1/events` WebSocket.
 *
 * One channel per tenant, under the hash tag of the platform's queue
 * keys (queue.h): "{<prefix>}:events:<tenant_id>" ("vigil" is the
 * default prefix). The gateway subscribes to the pattern
 * "{<prefix>}:events:*" and hands each message to the WebSocket clients
 * of the tenant its channel names, and of no other.
 *
 * An event is one JSON object, at most VG_EVENTS_MAX bytes:
 *
 *   {"type":"run.progress","tenant_id":"<uuid>","run_id":"<uuid>",
 *    "ts":"2026-11-28T12:00:00.123Z","request_id":"...", ...data}
 *
 * Delivery is at most once: pub/sub keeps nothing for a subscriber that
 * is away. Events say that something changed; the REST API stays the
 * record (a client that reconnects reads the state again).
 */
#ifndef VG_EVENTS_H
#define VG_EVENTS_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/err.h"

#define VG_EVENTS_MAX        ((size_t)64 << 10)
#define VG_EVENTS_TENANT_MAX 64
/* the longest channel name: "{" prefix "}:events:" tenant */
#define VG_EVENTS_PREFIX_MAX  64
#define VG_EVENTS_CHANNEL_MAX (VG_EVENTS_PREFIX_MAX + VG_EVENTS_TENANT_MAX + 16)

/* The channel of `tenant` ([A-Za-z0-9_-], 1..VG_EVENTS_TENANT_MAX) into
 * `out`. VG_INVAL for a bad tenant or prefix, VG_RANGE when `size` is too
 * small. */
int vg_events_channel(const char *prefix, const char *tenant, char *out,
                      size_t size);
/* The PSUBSCRIBE pattern of every tenant's channel. */
int vg_events_pattern(const char *prefix, char *out, size_t size);
/* The tenant a channel name of `prefix` names (borrowed from `channel`),
 * or NULL when it is no valid channel of that prefix. */
const char *vg_events_channel_tenant(const char *prefix, const char *channel);

/* A new event envelope with "type", "tenant_id", "ts" (now) and, when not
 * NULL or "", "run_id" and "request_id"; add the data members to it.
 * NULL when out of memory. */
json_t *vg_event_new(const char *type, const char *tenant, const char *run_id,
                     const char *request_id);

/* Where to publish. */
struct vg_events_opts {
	const char *host;       /* default "127.0.0.1" */
	int port;               /* default 6379 */
	const char *password;   /* NULL: no AUTH */
	int db;                 /* SELECT; default 0 */
	const char *prefix;     /* default "vigil" */
	int connect_timeout_ms; /* default 500 */
	int command_timeout_ms; /* default 1000 */
};

/* The settings the platform's programs share in the environment:
 * VIGIL_REDIS_HOST, _PORT, _PASSWORD, _DB and VIGIL_QUEUE_PREFIX (strings
 * borrowed from the environment). */
void vg_events_opts_env(struct vg_events_opts *o);

/* A publisher: one Redis connection, made on first use and again after it
 * failed. Not thread-safe. */
struct vg_events;

int vg_events_new(const struct vg_events_opts *o, struct vg_events **out,
                  struct vg_err *err);
/* NULL allowed. */
void vg_events_free(struct vg_events *e);

/*
 * Publish `event` (borrowed; an object whose "tenant_id" names the
 * channel) with one PUBLISH. *receivers (NULL allowed) is how many
 * subscribers Redis handed it to. VG_INVAL for a malformed event,
 * VG_TOOLARGE past VG_EVENTS_MAX, VG_IO when Redis cannot be reached,
 * VG_REDIS for an error reply.
 */
int vg_events_publish(struct vg_events *e, const json_t *event,
                      long long *receivers, struct vg_err *err);

/*
 * Publish `event` (stolen) with the calling thread's own publisher,
 * configured by vg_events_opts_env() on first use, for code that has no
 * configuration at hand (task handlers). Never blocks longer than the
 * timeouts; after a failure to connect, the thread skips publishing for a
 * second. Counts `vigil_events_published_total{result}` (ok, failed) in
 * the default metrics registry. Callers log and go on: a lost event never
 * fails the work it reports.
 */
int vg_events_emit(json_t *event, struct vg_err *err);

#endif
