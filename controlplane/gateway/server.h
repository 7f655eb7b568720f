/*
 * server.h - the gateway's HTTP/1.1 server: N event loops (epoll, edge
 * triggered) share one listening socket and own their connections; a pool
 * of handler threads runs the requests that may block (database, Redis,
 * password hashing) while the loops keep serving everyone else.
 *
 * Keep-alive and pipelining: a connection has at most one request in a
 * handler at a time, and its responses leave in request order. Limits:
 * request head size (431), body size (413), the time to receive a request
 * or to write a response (408 / close), keep-alive idle time, connections.
 * Every error the server itself produces is the API's JSON error document.
 *
 * Shutdown (srv_shutdown): stop accepting, close idle connections, let
 * requests in flight finish (their responses say "Connection: close"),
 * then join every thread.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stddef.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/http_parse.h"

#define SRV_REQUEST_ID_MAX 64
#define SRV_TOPIC_MAX      64

struct srv_config {
	const char *addr;       /* "host:port", port 0 picks one */
	int loops;              /* event-loop threads; default: CPUs */
	int workers;            /* handler threads; default 16 */
	int max_conns;          /* default 4096 */
	size_t max_header;      /* default 16 KiB */
	size_t max_body;        /* default 1 MiB */
	int request_timeout_ms; /* receive a request / send a response;
	                           default 10000 */
	int idle_timeout_ms;    /* keep-alive idle; default 60000 */
	int drain_timeout_ms;   /* shutdown: wait for requests; default 20000 */
	/* an OpenSSL SSL_CTX to serve TLS with (borrowed; outlives the
	 * server), or NULL for plain HTTP */
	void *tls_ctx;
	/* WebSockets */
	size_t ws_max_frame; /* client frame payload (1009 past it);
	                        default 64 KiB, at most max_body */
	size_t ws_max_queue; /* bytes waiting for one client; past it the
	                        client is closed (1008); default 256 KiB */
	int ws_ping_ms;      /* ping interval; a client silent for two is
	                        dropped; default 30000 */
	int ws_backlog;      /* published messages waiting for one loop;
	                        past it they are dropped; default 8192 */
};

/* One request, valid for the handler call. */
struct srv_req {
	char method[16];
	char *path;  /* NUL-terminated, not decoded */
	char *query; /* after '?', "" without one */
	const struct vg_http_head *head;
	const char *body; /* not NUL-terminated */
	size_t body_len;
	char request_id[SRV_REQUEST_ID_MAX + 1];
	char peer[64];  /* client address (no port) */
	double started; /* seconds, monotonic */
};

/* Filled by the handler; starts as 200, no body, no extra headers. */
struct srv_resp {
	int status;
	const char *content_type; /* static */
	struct vg_buf body;
	struct vg_buf headers;            /* extra "Name: value\r\n" lines */
	const char *route;                /* route label for metrics; static */
	char ws_topic[SRV_TOPIC_MAX + 1]; /* srv_resp_upgrade; "" none */
};

/* A WebSocket as the open and close callbacks see it. */
struct srv_ws_info {
	const char *topic;
	const char *request_id; /* of the handshake */
	const char *peer;
	int code;        /* close code sent or received; 1006: none */
	const char *why; /* "client", "slow_consumer", "protocol", "too_big",
	                    "timeout", "shutdown", "gone", "open" */
	double seconds;  /* since the handshake */
	unsigned long long sent; /* messages queued for it */
};

struct srv_ops {
	/* Answer `req`. Runs on a handler thread, or on the loop thread when
	 * `is_inline` says so (it must not block then). */
	void (*handle)(struct srv_req *req, struct srv_resp *resp, void *ud);
	int (*is_inline)(const struct srv_req *req, void *ud);
	/* After each response is queued, on the loop thread (metrics, access
	 * log). `req` may lack path and method for a request that did not
	 * parse. */
	void (*done)(const struct srv_req *req, const struct srv_resp *resp,
	             double seconds, void *ud);
	/* A connection became a WebSocket / a WebSocket closed; on the
	 * loop thread, NULL allowed. */
	void (*ws_open)(const struct srv_ws_info *ws, void *ud);
	void (*ws_close)(const struct srv_ws_info *ws, void *ud);
	/* After a loop handed out published messages: how many it queued
	 * for clients, and how many clients it closed as too slow. */
	void (*ws_sent)(unsigned long long sent, unsigned long long slow,
	                void *ud);
};

struct srv;

int srv_new(const struct srv_config *cfg, const struct srv_ops *ops, void *ud,
            struct srv **out, struct vg_err *err);
int srv_port(const struct srv *s);
int srv_start(struct srv *s, struct vg_err *err);
/* Graceful stop; returns once every thread has exited. */
void srv_shutdown(struct srv *s);
/* Shut down if needed and free; NULL allowed. */
void srv_free(struct srv *s);

/* Copy request header `name` into `out` (NUL-terminated; a value that
 * does not fit, or holds a NUL, counts as absent); 1 when present. */
int srv_req_header(const struct srv_req *req, const char *name, char *out,
                   size_t size);

/* Set the JSON error document {"error":{"code","message","request_id"}}. */
void srv_resp_error(struct srv_resp *resp, int status, const char *code,
                    const char *message, const char *request_id);
/* Append an extra response header. */
void srv_resp_header(struct srv_resp *resp, const char *name,
                     const char *value);

/*
 * Answer 101 Switching Protocols with Sec-WebSocket-Accept `accept`:
 * once the response is written the connection is a WebSocket that
 * receives what srv_ws_publish sends to `topic` (1..SRV_TOPIC_MAX bytes).
 * It answers pings, sends a ping every ws_ping_ms, completes the close
 * handshake, fails bad frames (1002, 1009) and closes a client that lets
 * more than ws_max_queue bytes wait (1008). While the server shuts down
 * it answers 503 instead.
 */
void srv_resp_upgrade(struct srv_resp *resp, const char *topic,
                      const char *accept);

/* Queue `text` as one text frame for every WebSocket of `topic`; any
 * thread. The number of loops that had no room for it (ws_backlog) and
 * dropped it, or -1 (out of memory, bad topic, not started). */
int srv_ws_publish(struct srv *s, const char *topic, const char *text,
                   size_t len);

struct srv_ws_stats {
	unsigned long long sent;         /* messages queued for clients */
	unsigned long long dropped_slow; /* clients closed as too slow */
	unsigned long long
		dropped_backlog; /* messages a loop had no room for */
};
void srv_ws_stats(struct srv *s, struct srv_ws_stats *out);

/* 1 when `id` is acceptable as a client-supplied X-Request-ID. */
int srv_request_id_valid(const char *id, size_t len);

#endif
