/*
 * kube_int.h - private to kube.c, kube_watch.c and kubeconfig.c: the
 * client's layout and the request plumbing the watch shares.
 */
#ifndef VG_KUBE_INT_H
#define VG_KUBE_INT_H

#include "vigil/buf.h"
#include "vigil/kube.h"

#include <curl/curl.h>
#include <pthread.h>

struct vg_kube_client {
	struct vg_kube_config cfg;
	struct vg_kube_client_opts opts; /* defaults applied */
	/* cfg.server, with the host replaced by cfg.tls_server_name when
	 * set; connect_to then maps that name back to the real address. */
	char *base_url;
	struct curl_slist *connect_to;
	char *user_agent;
	const struct vg_clock *clock;
	struct vg_ratelimit *rl;

	/* DNS cache and TLS sessions shared by every handle. */
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

	/* Idle easy handles; each keeps its own live connections. */
	pthread_mutex_t pool_mu;
	CURL **idle;
	int nidle;

	/* Bearer token, re-read from cfg.token_file when stale. */
	pthread_mutex_t token_mu;
	char *token;
	uint64_t token_read_ns;
};

/* An easy handle for one request: from the pool or new. NULL: no memory. */
CURL *kube_handle_get(struct vg_kube_client *c);
/* Give a handle back (kept for reuse up to max_idle_handles). */
void kube_handle_put(struct vg_kube_client *c, CURL *h);

/*
 * Prepare `h` (reset first) for `method` on server + path [+ ? query]:
 * TLS material, credentials, user agent, connect timeout, shared caches.
 * Headers are appended to *hdrs, which the caller frees after the
 * transfer. The request body, write callback and overall timeout are left
 * to the caller.
 */
int kube_easy_setup(struct vg_kube_client *c, CURL *h, const char *method,
                    const char *path, const char *query,
                    struct curl_slist **hdrs, struct vg_err *err);

/* Rate limit, honouring up to two cancel flags (either may be NULL). */
int kube_rate_wait(struct vg_kube_client *c, const atomic_int *a,
                   const atomic_int *b);

/* Report a finished request to the observer, if any. */
void kube_observe(struct vg_kube_client *c, const char *method,
                  const char *path, long code, uint64_t start_ns, int rc,
                  bool watch);

/* Map a curl failure to VG_IO / VG_TIMEOUT with curl's text in `err`. */
int kube_curl_err(struct vg_err *err, CURLcode cc, const char *errbuf,
                  const char *method, const char *path);

/*
 * Fill `err` from a failed response body (a Status when it parses as one,
 * else the first bytes of the body) and return the mapped code.
 */
int kube_err_from_body(const char *body, size_t len, long http_status,
                       struct vg_err *err);

/* Append `s` percent-escaped (everything but RFC 3986 unreserved). */
int kube_escape(struct vg_buf *b, const char *s);
/* Append "&key=escaped(val)" ("key=..." when `q` is empty); val may be NULL
 * (then nothing is appended). */
int kube_query_add(struct vg_buf *q, const char *key, const char *val);

/* Resolve the namespace argument of a call (see kube.h); NULL for
 * cluster-scoped resources. VG_INVAL when `single` and ns is "". */
int kube_resolve_ns(struct vg_kube_client *c, const struct vg_kube_resource *r,
                    const char *ns, bool single, const char **out,
                    struct vg_err *err);

/* Read a whole file into a new NUL-terminated buffer of at most `max`
 * bytes. VG_IO (with errno) or VG_TOOLARGE. */
int kube_read_file(const char *path, size_t max, char **out, size_t *len,
                   struct vg_err *err);

/* Free `p` after overwriting its `n` bytes (credentials). */
void kube_free_secret(char *p, size_t n);

#endif
