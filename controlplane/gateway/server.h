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
	struct vg_buf headers; /* extra "Name: value\r\n" lines */
	const char *route;     /* route label for metrics; static */
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

/* 1 when `id` is acceptable as a client-supplied X-Request-ID. */
int srv_request_id_valid(const char *id, size_t len);

#endif
