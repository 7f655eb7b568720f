/*
 * httpd.h - a small HTTP/1.1 listener for probes and metrics.
 *
 * Every daemon serves /healthz, /readyz and /metrics with it. One thread
 * multiplexes all connections with poll(2), so a slow client never holds
 * up another; handlers run on that thread and must be quick. It is not an
 * API server: requests are small (8 KiB of headers, bodies up to 64 KiB
 * with Content-Length, no chunked uploads), and limits on connections and
 * time protect the process.
 *
 *   struct vg_httpd *h;
 *   struct vg_httpd_config cfg = { .addr = "127.0.0.1:8081" };
 *
 *   vg_httpd_new(&cfg, &h, &err);       binds, so the port is known
 *   vg_httpd_route(h, "GET", "/debug", debug_handler, ctx);
 *   vg_httpd_start(h, &err);            serves on its own thread
 *   vg_httpd_set_ready(h, 1, NULL);
 *   ...
 *   vg_httpd_free(h);                   stops, joins, closes everything
 *
 * Built in: GET /healthz -> 200 "ok"; GET /readyz -> 200 "ok" when ready,
 * else 503 with the reason; GET /metrics -> the configured registry. HEAD
 * is answered wherever GET is. Malformed requests get 400, oversized
 * headers 431, unknown paths 404, other methods 405 with Allow.
 */
#ifndef VG_HTTPD_H
#define VG_HTTPD_H

#include <stddef.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/metrics.h"

#define VG_HTTPD_MAX_HEADER 8192
#define VG_HTTPD_MAX_BODY (64 * 1024)
#define VG_HTTPD_MAX_HEADERS 64

struct vg_httpd_config {
	/* "host:port", "[v6]:port" or ":port" (every interface); port 0
	 * picks a free one (see vg_httpd_port). Required. */
	const char *addr;
	int max_conns;		/* open connections; default 64 */
	int request_timeout_ms; /* to receive a request or send a response,
				   and keep-alive idle time; default 10000 */
	size_t max_header;	/* request line + headers; default 8 KiB */
	struct vg_metrics *metrics; /* for /metrics; NULL: the default */
};

struct vg_http_header {
	const char *name;
	const char *value;
};

/* A parsed request; every pointer is borrowed for the handler call. */
struct vg_http_request {
	const char *method;
	const char *path;  /* target up to '?' */
	const char *query; /* after '?', "" without one */
	int minor_version; /* HTTP/1.<minor> */
	const struct vg_http_header *headers;
	size_t nheaders;
	const char *body; /* Content-Length bytes, not NUL-terminated */
	size_t body_len;
};

/* Filled by the handler: status and content type start as 200 and
 * "text/plain; charset=utf-8", the body empty. */
struct vg_http_response {
	int status;
	const char *content_type; /* must outlive the handler call */
	struct vg_buf body;
};

typedef void (*vg_httpd_handler)(const struct vg_http_request *req,
				 struct vg_http_response *resp, void *data);

/*
 * Readiness callback for /readyz: return 1 when ready; when not, append
 * the reason to `reason`. Runs on the listener thread.
 */
typedef int (*vg_httpd_ready_fn)(void *data, struct vg_buf *reason);

struct vg_httpd;

/* Validate `cfg`, bind and listen; a new listener, not yet serving.
 * Returns 0, VG_CONFIG (bad address), VG_IO (bind/listen) or VG_NOMEM. */
int vg_httpd_new(const struct vg_httpd_config *cfg, struct vg_httpd **out,
		 struct vg_err *err);

/*
 * Add a route (before vg_httpd_start; method and path are copied). An
 * exact path match; a later route for the same method and path replaces
 * an earlier one, built-ins included. Returns 0, VG_INVAL or VG_NOMEM.
 */
int vg_httpd_route(struct vg_httpd *h, const char *method, const char *path,
		   vg_httpd_handler fn, void *data);

/* Start serving on a new thread. Returns 0, VG_INVAL (already started) or
 * VG_NOMEM / VG_IO. */
int vg_httpd_start(struct vg_httpd *h, struct vg_err *err);

/* The bound port (useful after binding port 0). */
int vg_httpd_port(const struct vg_httpd *h);

/* Set readiness; `reason` (copied, may be NULL) is shown while not ready.
 * Starts not ready. Thread-safe. */
void vg_httpd_set_ready(struct vg_httpd *h, int ready, const char *reason);
/* Ask `fn` instead of the flag (NULL to go back to the flag). Set before
 * vg_httpd_start. */
void vg_httpd_set_ready_fn(struct vg_httpd *h, vg_httpd_ready_fn fn,
			   void *data);

/* Stop serving: wake the thread, join it, close every connection and the
 * listening socket. Safe to call more than once. */
void vg_httpd_stop(struct vg_httpd *h);
/* Stop and free; NULL allowed. */
void vg_httpd_free(struct vg_httpd *h);

/* Value of header `name` (case-insensitive), first occurrence; borrowed;
 * NULL when absent. */
const char *vg_http_request_header(const struct vg_http_request *req,
				   const char *name);

#endif
