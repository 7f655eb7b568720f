/* service.h - checks that run on open ports after the connect scan (TLS,
 * HTTP), on a small pool of threads with blocking-style I/O bounded by a
 * timeout and the stop flag. */
#ifndef AGENT_SERVICE_H
#define AGENT_SERVICE_H

#include <jansson.h>
#include <stdatomic.h>

#include "finding.h"
#include "vigil/scope.h"

/* An open port; `hostname` is the scanned name (borrowed) or NULL. */
struct svc_target {
	struct vg_addr addr;
	const char *hostname;
	int port;
};

struct svc_ctx {
	int timeout_ms;		/* each handshake or request */
	const atomic_int *stop; /* non-zero: give up at once */
	void (*emit)(void *ctx, json_t *finding); /* thread-safe, steals */
	void *ctx;
};

/* Build a finding for `t` (host = its address; evidence.hostname when it
 * was scanned by name) and pass it to c->emit. Steals `evidence`. */
void svc_emit(const struct svc_ctx *c, const struct svc_target *t,
	      const char *scanner, const char *check, enum severity sev,
	      const char *title, json_t *evidence);

/* A connected non-blocking TCP socket to t, or -1 (timeout, refused,
 * stopped). */
int svc_connect(const struct svc_target *t, const struct svc_ctx *c);
/* 1 once c->stop is set. */
int svc_stopped(const struct svc_ctx *c);

/* TLS checks; 1 when the port completed a TLS handshake. */
int tls_check(const struct svc_target *t, const struct svc_ctx *c);
/* HTTP checks over `https` or plain HTTP; 1 when it answered HTTP. */
int http_check(const struct svc_target *t, const struct svc_ctx *c,
	       int https);

#define SVC_TLS 0x1
#define SVC_HTTP 0x2

/* Run the `which` checks on each of `n` targets with `workers` threads;
 * returns early (VG_CANCELED) once c->stop is set. */
int svc_run(const struct svc_target *t, size_t n, unsigned which,
	    int workers, const struct svc_ctx *c);

#endif
