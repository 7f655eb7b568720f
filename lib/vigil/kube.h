/*
 * kube.h - Kubernetes API client: configuration, typed resource
 * descriptors, CRUD/patch/apply, list paging and watch streams.
 *
 * One `struct vg_kube_client` is shared by every thread of a program. It
 * reuses connections (a pool of curl easy handles plus a curl share for DNS
 * and TLS sessions), applies a client-side rate limit (token bucket), and
 * reports every request to an optional observer for metrics.
 *
 * Objects travel as jansson values. Functions that return one hand the
 * caller a new reference. Every failure fills the caller's `struct vg_err`;
 * when the API server answered, `http_status`, `reason` and `msg` hold its
 * `Status` code, reason and message, and the return code is mapped:
 *
 *   404 -> VG_NOTFOUND   409 AlreadyExists -> VG_EXISTS   409 -> VG_CONFLICT
 *   410 -> VG_GONE       422 -> VG_INVAL   403 -> VG_FORBIDDEN
 *   401 -> VG_UNAUTHORIZED   other HTTP errors -> VG_HTTP
 *   connection / TLS failures -> VG_IO (curl's error text in msg)
 *
 * Credentials (tokens, client keys) are held in memory only, never logged,
 * and wiped before they are freed.
 */
#ifndef VG_KUBE_H
#define VG_KUBE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/ratelimit.h"

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

/* Default service-account directory of a pod. */
#define VG_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/*
 * Where and how to reach an API server, with whose credentials. Embedded
 * by the caller: vg_kube_config_init() / vg_kube_config_cleanup(). All
 * strings and PEM blocks are owned by the struct.
 */
struct vg_kube_config {
	char *server;    /* "https://host:port[/prefix]", no trailing '/' */
	char *namespace; /* default namespace; "default" when unset */
	char *context;   /* name of the context used (kubeconfig only) */

	char *ca_pem; /* trusted CA bundle (PEM); NULL: system CAs */
	size_t ca_len;
	bool insecure_skip_tls_verify;
	char *tls_server_name; /* name checked in the server cert, or NULL */

	char *cert_pem; /* client certificate (PEM) or NULL */
	size_t cert_len;
	char *key_pem; /* client key (PEM) or NULL */
	size_t key_len;

	char *token;      /* static bearer token, or NULL */
	char *token_file; /* bearer token file, re-read periodically */
	char *username;   /* basic auth, or NULL */
	char *password;
};

void vg_kube_config_init(struct vg_kube_config *cfg);
/* Free and wipe everything; the struct is empty (re-initialised) after. */
void vg_kube_config_cleanup(struct vg_kube_config *cfg);

/*
 * Load a kubeconfig. `path` NULL means $KUBECONFIG (a ':'-separated list,
 * merged as kubectl does: the first file to define a name wins) or else
 * ~/.kube/config. `context` NULL means current-context. Relative file
 * references are resolved against the directory of the file that holds
 * them. Fails with VG_CONFIG and a message naming the problem: missing
 * file, unknown context/cluster/user, invalid base64, missing server,
 * malformed YAML, unsupported auth (exec/auth-provider). `cfg` must be
 * initialised; it is filled only on success.
 */
int vg_kube_config_load_file(struct vg_kube_config *cfg, const char *path,
                             const char *context, struct vg_err *err);

/*
 * Load a kubeconfig held in memory. Relative file references resolve
 * against `base_dir` (NULL: the current directory).
 */
int vg_kube_config_load_data(struct vg_kube_config *cfg, const char *data,
                             size_t len, const char *base_dir,
                             const char *context, struct vg_err *err);

/*
 * In-cluster configuration: server from $KUBERNETES_SERVICE_HOST and
 * $KUBERNETES_SERVICE_PORT, and token, ca.crt and namespace from `sa_dir`
 * (NULL: VG_KUBE_SA_DIR). The token file is re-read by the client so
 * rotated projected tokens keep working.
 */
int vg_kube_config_in_cluster(struct vg_kube_config *cfg, const char *sa_dir,
                              struct vg_err *err);

/*
 * In-cluster when $KUBERNETES_SERVICE_HOST is set and `kubeconfig` is
 * NULL, else vg_kube_config_load_file(kubeconfig, context).
 */
int vg_kube_config_load_default(struct vg_kube_config *cfg,
                                const char *kubeconfig, const char *context,
                                struct vg_err *err);

/* Copy `src` into the initialised, empty `dst` (deep). */
int vg_kube_config_copy(struct vg_kube_config *dst,
                        const struct vg_kube_config *src, struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Resources                                                            */
/* ------------------------------------------------------------------ */

/*
 * What a REST path needs to know about a kind. Strings are borrowed, so a
 * custom resource is just a designated initialiser:
 *
 *   static const struct vg_kube_resource platform = {
 *	.group = "vigil.dev", .version = "v1alpha1",
 *	.resource = "platforms", .kind = "Platform", .namespaced = true,
 *   };
 */
struct vg_kube_resource {
	const char *group; /* "" (or NULL) for the core group */
	const char *version;
	const char *resource; /* lower-case plural: "configmaps" */
	const char *kind;     /* "ConfigMap" */
	bool namespaced;
};

extern const struct vg_kube_resource vg_kube_configmaps;
extern const struct vg_kube_resource vg_kube_secrets;
extern const struct vg_kube_resource vg_kube_services;
extern const struct vg_kube_resource vg_kube_serviceaccounts;
extern const struct vg_kube_resource vg_kube_namespaces;
extern const struct vg_kube_resource vg_kube_pods;
extern const struct vg_kube_resource vg_kube_events;
extern const struct vg_kube_resource vg_kube_persistentvolumeclaims;
extern const struct vg_kube_resource vg_kube_resourcequotas;
extern const struct vg_kube_resource vg_kube_limitranges;
extern const struct vg_kube_resource vg_kube_endpoints;
extern const struct vg_kube_resource vg_kube_nodes;
extern const struct vg_kube_resource vg_kube_deployments;
extern const struct vg_kube_resource vg_kube_statefulsets;
extern const struct vg_kube_resource vg_kube_daemonsets;
extern const struct vg_kube_resource vg_kube_replicasets;
extern const struct vg_kube_resource vg_kube_jobs;
extern const struct vg_kube_resource vg_kube_cronjobs;
extern const struct vg_kube_resource vg_kube_hpas; /* autoscaling/v2 */
extern const struct vg_kube_resource vg_kube_pdbs; /* policy/v1 */
extern const struct vg_kube_resource vg_kube_networkpolicies;
extern const struct vg_kube_resource vg_kube_roles;
extern const struct vg_kube_resource vg_kube_rolebindings;
extern const struct vg_kube_resource vg_kube_clusterroles;
extern const struct vg_kube_resource vg_kube_clusterrolebindings;
extern const struct vg_kube_resource vg_kube_leases;
extern const struct vg_kube_resource vg_kube_events_v1; /* events.k8s.io */
extern const struct vg_kube_resource vg_kube_crds;
extern const struct vg_kube_resource vg_kube_tokenreviews;
extern const struct vg_kube_resource vg_kube_subjectaccessreviews;

/*
 * The built-in descriptor for an object's apiVersion ("apps/v1", "v1") and
 * kind, or NULL; borrowed, static.
 */
const struct vg_kube_resource *vg_kube_resource_find(const char *api_version,
                                                     const char *kind);

/* "group/version" or "version" for the core group, into `out`. */
int vg_kube_resource_api_version(const struct vg_kube_resource *r, char *out,
                                 size_t size);

/* ------------------------------------------------------------------ */
/* Client                                                               */
/* ------------------------------------------------------------------ */

/* One finished request, for metrics (rest_client_requests_total ...). */
struct vg_kube_request_info {
	const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	long code;          /* HTTP status; 0 when no response arrived */
	uint64_t duration_ns;
	int err;          /* VG_OK or the returned VG_* code */
	bool watch;       /* a watch stream (duration = stream lifetime) */
	const char *path; /* URL path without query; borrowed */
};

/* Called from the requesting thread after every request. */
typedef void (*vg_kube_observer_fn)(void *ctx,
                                    const struct vg_kube_request_info *info);

struct vg_kube_client_opts {
	double qps;      /* 0: 5 (client-go's default); < 0: unlimited */
	int burst;       /* 0: 10 */
	long timeout_ms; /* per request, not for watches; 0: 30000 */
	long connect_timeout_ms;   /* 0: 10000 */
	const char *user_agent;    /* 0: "vigil/<version>" */
	size_t max_response_bytes; /* 0: 256 MiB */
	int token_refresh_sec;     /* token file re-read period; 0: 60 */
	int max_idle_handles;      /* connections kept for reuse; 0: 16 */
	vg_kube_observer_fn observer;
	void *observer_ctx;
	const struct vg_clock *clock; /* NULL: monotonic; borrowed */
};

struct vg_kube_client;

/*
 * New client for `cfg` (copied; the caller keeps `cfg`). `opts` NULL means
 * all defaults. Reads the token file once, so a missing token fails here.
 */
int vg_kube_client_new(const struct vg_kube_config *cfg,
                       const struct vg_kube_client_opts *opts,
                       struct vg_kube_client **out, struct vg_err *err);
/* Free the client; no request may be running. NULL allowed. */
void vg_kube_client_free(struct vg_kube_client *c);

/* The configured default namespace; borrowed, lives as long as `c`. */
const char *vg_kube_client_namespace(const struct vg_kube_client *c);
/* The server URL; borrowed. */
const char *vg_kube_client_server(const struct vg_kube_client *c);

/*
 * Re-read the bearer token file now (the client also does this on its own
 * every token_refresh_sec). No-op without a token file.
 */
int vg_kube_client_reload_token(struct vg_kube_client *c, struct vg_err *err);

/*
 * The bearer token the next request will send, as a new string (*out NULL
 * when there is none); re-read from the file first when it is due. For
 * diagnostics and tests; never log it.
 */
int vg_kube_client_token(struct vg_kube_client *c, char **out,
                         struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Paths and raw requests                                               */
/* ------------------------------------------------------------------ */

/*
 * Append the REST path of a resource to `out`:
 *   /api/v1/namespaces/{ns}/configmaps/{name}/{sub}
 *   /apis/{group}/{version}/{resource}
 * `ns` NULL for a namespaced resource means all namespaces; it must be
 * NULL (or "") for a cluster-scoped one. `name` and `sub` are optional.
 * Segments are percent-escaped; "", "." and ".." names are rejected.
 */
int vg_kube_path(struct vg_buf *out, const struct vg_kube_resource *r,
                 const char *ns, const char *name, const char *sub,
                 struct vg_err *err);

/* A request for anything the typed calls below do not cover. */
struct vg_kube_request {
	const char *method;       /* "GET" ... */
	const char *path;         /* "/version", from vg_kube_path() ... */
	const char *query;        /* "a=b&c=d" already escaped, or NULL */
	const json_t *body;       /* sent as JSON, or NULL */
	const char *content_type; /* NULL: application/json */
};

/*
 * Send `req`; on 2xx parse the response into *out (new; JSON null for an
 * empty body; `out` may be NULL to discard it).
 */
int vg_kube_request(struct vg_kube_client *c, const struct vg_kube_request *req,
                    json_t **out, struct vg_err *err);

/*
 * Map an HTTP status and Status reason to a VG_* code (table at the top of
 * this file). 2xx gives VG_OK.
 */
int vg_kube_status_code(long http_status, const char *reason);

/*
 * Fill `err` from an API server response: the `Status` object in `body`
 * when there is one (code, reason, message), else the HTTP status and the
 * start of the body. Returns the mapped code.
 */
int vg_kube_err_from_status(const json_t *status, long http_status,
                            struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

/*
 * In all calls, for a namespaced resource `ns` NULL means the client's
 * default namespace, and VG_KUBE_ALL_NAMESPACES ("") means every namespace
 * (list and watch only; single-object calls reject it with VG_INVAL). For a
 * cluster-scoped resource `ns` is ignored.
 */
#define VG_KUBE_ALL_NAMESPACES ""

struct vg_kube_get_opts {
	const char *subresource;      /* "status", "scale" or NULL */
	const char *resource_version; /* "0": any cached version, or NULL */
};

/* GET one object into *out (new). */
int vg_kube_get(struct vg_kube_client *c, const struct vg_kube_resource *r,
                const char *ns, const char *name,
                const struct vg_kube_get_opts *opts, json_t **out,
                struct vg_err *err);

struct vg_kube_list_opts {
	const char *label_selector;
	const char *field_selector;
	long limit;                         /* page size; 0: no limit */
	const char *continue_token;         /* from a previous page */
	const char *resource_version;       /* NULL: most recent (quorum) */
	const char *resource_version_match; /* "Exact", "NotOlderThan" */
	long timeout_seconds;               /* server side; 0: unset */
};

/*
 * One page of a list into *out (new): the List object with `items`,
 * metadata.resourceVersion and metadata.continue (when more remain).
 */
int vg_kube_list(struct vg_kube_client *c, const struct vg_kube_resource *r,
                 const char *ns, const struct vg_kube_list_opts *opts,
                 json_t **out, struct vg_err *err);

/*
 * Every page of a list (`opts->limit` per request; 0 means 500), merged
 * into one List object (new) whose metadata.resourceVersion is that of the
 * snapshot, suitable to start a watch from. When the continue token
 * expires mid-way (410), falls back to one unpaginated list as client-go
 * does. `opts->continue_token` is ignored.
 */
int vg_kube_list_all(struct vg_kube_client *c, const struct vg_kube_resource *r,
                     const char *ns, const struct vg_kube_list_opts *opts,
                     json_t **out, struct vg_err *err);

/* Options of create and update (PUT). */
struct vg_kube_write_opts {
	const char *subresource;   /* "status" ... or NULL */
	const char *field_manager; /* NULL: server default */
	bool dry_run;              /* dryRun=All: validate, persist nothing */
	const char *field_validation; /* "Strict", "Warn", "Ignore" or NULL */
};

/* POST `obj` to the collection; the created object into *out (new). */
int vg_kube_create(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const json_t *obj,
                   const struct vg_kube_write_opts *opts, json_t **out,
                   struct vg_err *err);

/*
 * PUT `obj` (name from metadata.name; its metadata.resourceVersion, when
 * set, makes the write conditional: a stale one gives VG_CONFLICT).
 */
int vg_kube_update(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const json_t *obj,
                   const struct vg_kube_write_opts *opts, json_t **out,
                   struct vg_err *err);

enum vg_kube_patch_type {
	VG_KUBE_PATCH_MERGE = 0, /* application/merge-patch+json (RFC 7386) */
	VG_KUBE_PATCH_JSON,      /* application/json-patch+json (RFC 6902) */
	VG_KUBE_PATCH_STRATEGIC, /* strategic-merge-patch+json (built-ins) */
	VG_KUBE_PATCH_APPLY,     /* server-side apply, body sent as JSON */
};

struct vg_kube_patch_opts {
	enum vg_kube_patch_type type;
	const char *subresource;
	const char *field_manager; /* required by the server for APPLY */
	bool force; /* APPLY only: take over conflicting fields */
	bool dry_run;
	const char *field_validation;
};

/* PATCH object `name` with `patch`; the result into *out (new). */
int vg_kube_patch(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const char *name, const json_t *patch,
                  const struct vg_kube_patch_opts *opts, json_t **out,
                  struct vg_err *err);

/*
 * Server-side apply of the fully specified intent `obj` (name from
 * metadata.name, namespace from `ns` or else metadata.namespace). `opts`
 * type is ignored (always APPLY); field_manager is required.
 */
int vg_kube_apply(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const json_t *obj,
                  const struct vg_kube_patch_opts *opts, json_t **out,
                  struct vg_err *err);

struct vg_kube_delete_opts {
	const char *uid;                /* precondition, or NULL */
	const char *resource_version;   /* precondition, or NULL */
	const char *propagation_policy; /* "Foreground", "Background",
	                                   "Orphan" or NULL */
	long grace_period_seconds;      /* < 0 or 0 with grace_set false */
	bool grace_set;                 /* send grace_period_seconds */
	bool dry_run;
};

/*
 * DELETE object `name`. *out (new; `out` may be NULL) is what the server
 * returned: the object (still terminating, or as deleted) or a Status.
 */
int vg_kube_delete(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const char *name,
                   const struct vg_kube_delete_opts *opts, json_t **out,
                   struct vg_err *err);

/* ------------------------------------------------------------------ */
/* Watch                                                                */
/* ------------------------------------------------------------------ */

enum vg_watch_type {
	VG_WATCH_ADDED = 1,
	VG_WATCH_MODIFIED,
	VG_WATCH_DELETED,
	VG_WATCH_BOOKMARK,
	VG_WATCH_ERROR,
};

/* "ADDED" ... ; static, never NULL ("UNKNOWN"). */
const char *vg_watch_type_name(enum vg_watch_type t);

struct vg_watch_event {
	enum vg_watch_type type;
	json_t *object; /* borrowed for the callback; json_incref to keep */
	/* metadata.resourceVersion of the object, or NULL; borrowed */
	const char *resource_version;
};

/*
 * Event callback. Return 0 to continue, VG_WATCH_STOP to end the watch
 * cleanly (the watch returns 0), or a negative VG_* code to end it with
 * that error.
 */
#define VG_WATCH_STOP 1
typedef int (*vg_watch_fn)(void *ctx, const struct vg_watch_event *ev);

/* Largest single event accepted by default (the server allows ~3 MiB
 * objects; a Status or a big list item fits easily). */
#define VG_WATCH_MAX_EVENT_DEFAULT (16u * 1024 * 1024)

/*
 * Streaming parser of a watch response body: newline-delimited JSON
 * `{"type": ..., "object": {...}}` events, fed in arbitrary chunks (split
 * at any byte). Embedded by the caller: _init / _cleanup.
 *
 * Each complete event goes to the callback. An ERROR event (a Status) is
 * delivered too, then ends the stream: feed returns the Status's mapped
 * code (VG_GONE for 410 Expired/Gone) with the Status in `err`. A line
 * that is not a valid event gives VG_PARSE; an event longer than
 * `max_event` bytes gives VG_TOOLARGE. After an error or a stop the parser
 * refuses further input with the same result.
 */
struct vg_watch_parser {
	struct vg_buf line; /* partial event carried between chunks */
	size_t max_event;
	vg_watch_fn fn;
	void *ctx;
	char *resource_version; /* last seen, or NULL */
	int done;               /* 0, VG_WATCH_STOP or the error */
	unsigned long events;   /* events delivered */
};

/* `max_event` 0 means VG_WATCH_MAX_EVENT_DEFAULT. */
void vg_watch_parser_init(struct vg_watch_parser *p, size_t max_event,
                          vg_watch_fn fn, void *ctx);
void vg_watch_parser_cleanup(struct vg_watch_parser *p);

/* Feed bytes; returns 0, VG_WATCH_STOP (callback stopped) or an error. */
int vg_watch_parser_feed(struct vg_watch_parser *p, const char *data,
                         size_t len, struct vg_err *err);

/*
 * End of stream: a final event without a trailing newline is delivered;
 * returns like feed.
 */
int vg_watch_parser_finish(struct vg_watch_parser *p, struct vg_err *err);

/*
 * resourceVersion of the last ADDED/MODIFIED/DELETED/BOOKMARK event seen
 * (or the one set at init by the watch), or NULL; borrowed until the next
 * feed.
 */
const char *vg_watch_parser_resource_version(const struct vg_watch_parser *p);

struct vg_kube_watch_opts {
	const char *resource_version; /* start after this; NULL: "now" with
	                                 synthetic ADDED events for all */
	const char *label_selector;
	const char *field_selector;
	long timeout_seconds;     /* server ends the watch after; 0: server
	                             default (kube-apiserver: 30-60 min) */
	bool no_bookmarks;        /* do not ask for BOOKMARK events */
	size_t max_event_bytes;   /* 0: VG_WATCH_MAX_EVENT_DEFAULT */
	const atomic_int *cancel; /* shared stop flag (e.g. shutdown), or
	                             NULL; polled at least every 200 ms */
};

struct vg_kube_watch;

/*
 * Prepare a watch of `r` in `ns` (VG_KUBE_ALL_NAMESPACES for all). Strings
 * in `opts` are copied. Nothing is sent until vg_kube_watch_run().
 */
int vg_kube_watch_new(struct vg_kube_client *c,
                      const struct vg_kube_resource *r, const char *ns,
                      const struct vg_kube_watch_opts *opts, vg_watch_fn fn,
                      void *ctx, struct vg_kube_watch **out,
                      struct vg_err *err);

/*
 * Open the stream and deliver events until it ends. Returns:
 *   0             the server closed the stream (timeout) or the callback
 *                 returned VG_WATCH_STOP: resume from
 *                 vg_kube_watch_resource_version()
 *   VG_GONE       the resourceVersion is too old (HTTP 410, or an ERROR
 *                 event with code 410): relist, then watch again
 *   VG_CANCELED   vg_kube_watch_cancel() or opts->cancel
 *   VG_IO ...     connection failure; other API errors as mapped above
 * May be called again after it returns, to resume from the last seen
 * resourceVersion; after a cancellation every run returns VG_CANCELED.
 */
int vg_kube_watch_run(struct vg_kube_watch *w, struct vg_err *err);

/*
 * Set where the next run starts (e.g. a relist's resourceVersion after
 * VG_GONE); NULL for "now". Not while running. VG_NOMEM or 0.
 */
int vg_kube_watch_set_resource_version(struct vg_kube_watch *w, const char *rv);

/*
 * Stop a running watch from any thread: vg_kube_watch_run() returns
 * VG_CANCELED promptly (it is woken, not polled). Safe to call before run,
 * after it, and more than once; `w` must not be freed concurrently.
 */
void vg_kube_watch_cancel(struct vg_kube_watch *w);

/* The last resourceVersion seen (events and bookmarks) or the starting
 * one; borrowed, valid until the next run or free. NULL if none. */
const char *vg_kube_watch_resource_version(const struct vg_kube_watch *w);

void vg_kube_watch_free(struct vg_kube_watch *w);

/*
 * Convenience: one watch from start to end (new, run, free). `last_rv`,
 * when non-NULL, receives the last resourceVersion seen (new string or
 * NULL).
 */
int vg_kube_watch(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const struct vg_kube_watch_opts *opts,
                  vg_watch_fn fn, void *ctx, char **last_rv,
                  struct vg_err *err);

#endif
