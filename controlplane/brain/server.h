/* server.h - the brain's API listener: a small HTTP/1.1 server whose
 * handlers may block (a report request waits for its report up to a
 * deadline), so each connection is served by one of a fixed set of
 * threads, not by lib/httpd's single poll loop. Requests are parsed with
 * lib/http_parse; one request per connection (Connection: close), bodies
 * with Content-Length only, limits on head, body and time. */
#ifndef BRAIN_SERVER_H
#define BRAIN_SERVER_H

#include <stddef.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/http_parse.h"

#define SERVER_REQUEST_ID_MAX 128

/* One request; everything borrowed for the handler call. */
struct server_req {
	char method[16];
	char path[512];
	const struct vg_http_head *head; /* headers: vg_http_head_get */
	const char *body;                /* not NUL-terminated */
	size_t body_len;
	/* X-Request-ID when the client sent a valid one, else a new one;
	 * sent back in the response */
	char request_id[SERVER_REQUEST_ID_MAX + 1];
};

/* Filled by the handler: status 200, JSON, empty body to start with. */
struct server_resp {
	int status;
	const char *content_type; /* static */
	struct vg_buf body;
	struct vg_buf headers; /* extra "Name: value\r\n" lines */
};

typedef void (*server_handler)(const struct server_req *req,
                               struct server_resp *resp, void *data);

struct server_config {
	const char *addr;      /* "host:port", "[v6]:port", ":port"; port 0 */
	int threads;           /* connections served at once; default 8 */
	int io_timeout_ms;     /* to read a request, to write a reply; 10000 */
	size_t max_body;       /* larger bodies: 413 unread; default 16 KiB */
	server_handler handle; /* required */
	void *data;
};

struct server;

/* Bind and listen (the port is known afterwards); not serving yet. */
int server_new(const struct server_config *cfg, struct server **out,
               struct vg_err *err);
int server_port(const struct server *s);
int server_start(struct server *s, struct vg_err *err);
/* Stop accepting, let requests being handled finish, join the threads.
 * Safe to call more than once. */
void server_stop(struct server *s);
/* Stop and free; NULL allowed. */
void server_free(struct server *s);

/* The JSON error document {"error":{"code","message","request_id"}}. */
void server_error(struct server_resp *resp, const struct server_req *req,
                  int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Add a response header line (name and value must be clean). */
void server_header(struct server_resp *resp, const char *name,
                   const char *value);

#endif
