/*
 * kube.c - Kubernetes API client: resource descriptors, REST paths, the
 * shared thread-safe client (handle pool, rate limit, token refresh) and
 * the object operations (get, list, create, update, patch, apply, delete).
 */
#include "kube_int.h"

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/kube.h"
#include "vigil/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_QPS                5.0
#define DEFAULT_BURST              10
#define DEFAULT_TIMEOUT_MS         30000L
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_RESPONSE       (256u * 1024 * 1024)
#define DEFAULT_TOKEN_REFRESH_SEC  60
#define DEFAULT_MAX_IDLE           16
#define DEFAULT_USER_AGENT         "vigil/0.1"
#define DEFAULT_PAGE_SIZE          500
#define KUBE_UPLOAD_BUFFER         16384L /* curl's least */
#define MAX_TOKEN_BYTES            (1024 * 1024)
/* Retries of a request the server asked to retry later (429 + Retry-After). */
#define MAX_RETRIES         3
#define MAX_RETRY_AFTER_SEC 10

/* ------------------------------------------------------------------ */
/* Resource descriptors                                                 */
/* ------------------------------------------------------------------ */

#define RES(var, grp, ver, plural, knd, nsd)  \
	const struct vg_kube_resource var = { \
		.group = grp,                 \
		.version = ver,               \
		.resource = plural,           \
		.kind = knd,                  \
		.namespaced = nsd,            \
	}

RES(vg_kube_configmaps, "", "v1", "configmaps", "ConfigMap", true);
RES(vg_kube_secrets, "", "v1", "secrets", "Secret", true);
RES(vg_kube_services, "", "v1", "services", "Service", true);
RES(vg_kube_serviceaccounts, "", "v1", "serviceaccounts", "ServiceAccount",
    true);
RES(vg_kube_namespaces, "", "v1", "namespaces", "Namespace", false);
RES(vg_kube_pods, "", "v1", "pods", "Pod", true);
RES(vg_kube_events, "", "v1", "events", "Event", true);
RES(vg_kube_persistentvolumeclaims, "", "v1", "persistentvolumeclaims",
    "PersistentVolumeClaim", true);
RES(vg_kube_resourcequotas, "", "v1", "resourcequotas", "ResourceQuota", true);
RES(vg_kube_limitranges, "", "v1", "limitranges", "LimitRange", true);
RES(vg_kube_endpoints, "", "v1", "endpoints", "Endpoints", true);
RES(vg_kube_nodes, "", "v1", "nodes", "Node", false);
RES(vg_kube_deployments, "apps", "v1", "deployments", "Deployment", true);
RES(vg_kube_statefulsets, "apps", "v1", "statefulsets", "StatefulSet", true);
RES(vg_kube_daemonsets, "apps", "v1", "daemonsets", "DaemonSet", true);
RES(vg_kube_replicasets, "apps", "v1", "replicasets", "ReplicaSet", true);
RES(vg_kube_jobs, "batch", "v1", "jobs", "Job", true);
RES(vg_kube_cronjobs, "batch", "v1", "cronjobs", "CronJob", true);
RES(vg_kube_hpas, "autoscaling", "v2", "horizontalpodautoscalers",
    "HorizontalPodAutoscaler", true);
RES(vg_kube_pdbs, "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
    true);
RES(vg_kube_networkpolicies, "networking.k8s.io", "v1", "networkpolicies",
    "NetworkPolicy", true);
RES(vg_kube_roles, "rbac.authorization.k8s.io", "v1", "roles", "Role", true);
RES(vg_kube_rolebindings, "rbac.authorization.k8s.io", "v1", "rolebindings",
    "RoleBinding", true);
RES(vg_kube_clusterroles, "rbac.authorization.k8s.io", "v1", "clusterroles",
    "ClusterRole", false);
RES(vg_kube_clusterrolebindings, "rbac.authorization.k8s.io", "v1",
    "clusterrolebindings", "ClusterRoleBinding", false);
RES(vg_kube_leases, "coordination.k8s.io", "v1", "leases", "Lease", true);
RES(vg_kube_events_v1, "events.k8s.io", "v1", "events", "Event", true);
RES(vg_kube_crds, "apiextensions.k8s.io", "v1", "customresourcedefinitions",
    "CustomResourceDefinition", false);
RES(vg_kube_tokenreviews, "authentication.k8s.io", "v1", "tokenreviews",
    "TokenReview", false);
RES(vg_kube_subjectaccessreviews, "authorization.k8s.io", "v1",
    "subjectaccessreviews", "SubjectAccessReview", false);

static const struct vg_kube_resource *const builtin_resources[] = {
	&vg_kube_configmaps,
	&vg_kube_secrets,
	&vg_kube_services,
	&vg_kube_serviceaccounts,
	&vg_kube_namespaces,
	&vg_kube_pods,
	&vg_kube_events,
	&vg_kube_persistentvolumeclaims,
	&vg_kube_resourcequotas,
	&vg_kube_limitranges,
	&vg_kube_endpoints,
	&vg_kube_nodes,
	&vg_kube_deployments,
	&vg_kube_statefulsets,
	&vg_kube_daemonsets,
	&vg_kube_replicasets,
	&vg_kube_jobs,
	&vg_kube_cronjobs,
	&vg_kube_hpas,
	&vg_kube_pdbs,
	&vg_kube_networkpolicies,
	&vg_kube_roles,
	&vg_kube_rolebindings,
	&vg_kube_clusterroles,
	&vg_kube_clusterrolebindings,
	&vg_kube_leases,
	&vg_kube_events_v1,
	&vg_kube_crds,
	&vg_kube_tokenreviews,
	&vg_kube_subjectaccessreviews,
};

static const char *group_of(const struct vg_kube_resource *r)
{
	return r->group ? r->group : "";
}

const struct vg_kube_resource *vg_kube_resource_find(const char *api_version,
                                                     const char *kind)
{
	const char *slash;
	size_t glen;

	if (!api_version || !kind)
		return NULL;
	slash = strchr(api_version, '/');
	glen = slash ? (size_t)(slash - api_version) : 0;
	for (size_t i = 0;
	     i < sizeof(builtin_resources) / sizeof(builtin_resources[0]);
	     i++) {
		const struct vg_kube_resource *r = builtin_resources[i];
		const char *g = group_of(r);

		if (strcmp(r->kind, kind) != 0)
			continue;
		if (strlen(g) != glen || strncmp(g, api_version, glen) != 0)
			continue;
		if (strcmp(r->version, slash ? slash + 1 : api_version) == 0)
			return r;
	}
	return NULL;
}

int vg_kube_resource_api_version(const struct vg_kube_resource *r, char *out,
                                 size_t size)
{
	const char *g = group_of(r);
	int n;

	if (*g)
		n = snprintf(out, size, "%s/%s", g, r->version);
	else
		n = snprintf(out, size, "%s", r->version);
	if (n < 0 || (size_t)n >= size)
		return VG_RANGE;
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Paths and query strings                                              */
/* ------------------------------------------------------------------ */

static int is_unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
	       ch == '_' || ch == '~';
}

int kube_escape(struct vg_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = VG_OK;

	for (const unsigned char *p = (const unsigned char *)s; *p && !rc;
	     p++) {
		if (is_unreserved(*p)) {
			rc = vg_buf_append_byte(b, (char)*p);
		} else {
			char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

			rc = vg_buf_append(b, enc, sizeof(enc));
		}
	}
	return rc;
}

int kube_query_add(struct vg_buf *q, const char *key, const char *val)
{
	int rc;

	if (!val)
		return VG_OK;
	rc = vg_buf_appendf(q, "%s%s=", q->len ? "&" : "", key);
	if (rc == VG_OK)
		rc = kube_escape(q, val);
	return rc;
}

static int query_add_long(struct vg_buf *q, const char *key, long val)
{
	char num[32];

	snprintf(num, sizeof(num), "%ld", val);
	return kube_query_add(q, key, num);
}

/* A path segment the server could read as something else is refused. */
static int check_segment(const char *what, const char *s, struct vg_err *err)
{
	if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return vg_err_set(err, VG_INVAL, "invalid %s \"%s\"", what, s);
	return VG_OK;
}

static int append_segment(struct vg_buf *out, const char *what, const char *s,
                          struct vg_err *err)
{
	int rc = check_segment(what, s, err);

	if (rc)
		return rc;
	rc = vg_buf_append_byte(out, '/');
	if (rc == VG_OK)
		rc = kube_escape(out, s);
	if (rc)
		return vg_err_set(err, rc, "building path: %s",
		                  vg_strerror(rc));
	return VG_OK;
}

int vg_kube_path(struct vg_buf *out, const struct vg_kube_resource *r,
                 const char *ns, const char *name, const char *sub,
                 struct vg_err *err)
{
	const char *g;
	int rc;

	if (!r || !r->version || !r->resource)
		return vg_err_set(err, VG_INVAL, "incomplete resource");
	g = group_of(r);
	if (ns && *ns && !r->namespaced)
		return vg_err_set(err, VG_INVAL,
		                  "%s is cluster-scoped: no namespace allowed",
		                  r->resource);
	if (*g) {
		rc = vg_buf_append_str(out, "/apis");
		if (rc == VG_OK)
			rc = append_segment(out, "group", g, err);
	} else {
		rc = vg_buf_append_str(out, "/api");
	}
	if (rc == VG_OK)
		rc = append_segment(out, "version", r->version, err);
	if (rc == VG_OK && ns && *ns) {
		rc = vg_buf_append_str(out, "/namespaces");
		if (rc == VG_OK)
			rc = append_segment(out, "namespace", ns, err);
	}
	if (rc == VG_OK)
		rc = append_segment(out, "resource", r->resource, err);
	if (rc == VG_OK && name)
		rc = append_segment(out, "name", name, err);
	if (rc == VG_OK && sub) {
		if (!name)
			return vg_err_set(err, VG_INVAL,
			                  "subresource %s needs a name", sub);
		rc = append_segment(out, "subresource", sub, err);
	}
	if (rc == VG_NOMEM || rc == VG_TOOLARGE)
		return vg_err_set(err, rc, "building path: %s",
		                  vg_strerror(rc));
	return rc;
}

int kube_resolve_ns(struct vg_kube_client *c, const struct vg_kube_resource *r,
                    const char *ns, bool single, const char **out,
                    struct vg_err *err)
{
	if (!r->namespaced) {
		*out = NULL;
		return VG_OK;
	}
	if (!ns) {
		*out = c->cfg.namespace;
		return VG_OK;
	}
	if (!*ns && single)
		return vg_err_set(err, VG_INVAL, "%s: a namespace is required",
		                  r->resource);
	*out = ns;
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

/* Status -> VG code; the first matching row wins (reason NULL: any). */
static const struct {
	long http_status;
	const char *reason;
	int code;
} status_map[] = {
	{409, "AlreadyExists", VG_EXISTS},
	{409, NULL, VG_CONFLICT},
	{404, NULL, VG_NOTFOUND},
	{410, NULL, VG_GONE},
	{422, NULL, VG_INVAL},
	{403, NULL, VG_FORBIDDEN},
	{401, NULL, VG_UNAUTHORIZED},
};

int vg_kube_status_code(long http_status, const char *reason)
{
	if (http_status >= 200 && http_status < 300)
		return VG_OK;
	for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]);
	     i++) {
		if (status_map[i].http_status != http_status)
			continue;
		if (status_map[i].reason &&
		    (!reason || strcmp(reason, status_map[i].reason) != 0))
			continue;
		return status_map[i].code;
	}
	return VG_HTTP;
}

int vg_kube_err_from_status(const json_t *status, long http_status,
                            struct vg_err *err)
{
	const char *reason = NULL, *message = NULL;
	json_t *code;
	int rc;

	if (json_is_object(status)) {
		reason = json_string_value(json_object_get(status, "reason"));
		message = json_string_value(json_object_get(status, "message"));
		code = json_object_get(status, "code");
		if (json_is_integer(code) && json_integer_value(code) > 0)
			http_status = (long)json_integer_value(code);
	}
	rc = vg_kube_status_code(http_status, reason);
	if (rc == VG_OK)
		rc = VG_HTTP; /* a failure Status with a 2xx code */
	if (!err)
		return rc;
	if (message)
		vg_err_set(err, rc, "%s", message);
	else
		vg_err_set(err, rc, "HTTP %ld%s%s", http_status,
		           reason ? " " : "", reason ? reason : "");
	err->http_status = http_status;
	snprintf(err->reason, sizeof(err->reason), "%s", reason ? reason : "");
	return rc;
}

int kube_err_from_body(const char *body, size_t len, long http_status,
                       struct vg_err *err)
{
	json_t *status = len ? json_loadb(body, len, 0, NULL) : NULL;
	int rc;

	if (json_is_object(status) && (json_object_get(status, "reason") ||
	                               json_object_get(status, "message"))) {
		rc = vg_kube_err_from_status(status, http_status, err);
		json_decref(status);
		return rc;
	}
	json_decref(status);
	rc = vg_kube_status_code(http_status, NULL);
	if (rc == VG_OK)
		rc = VG_HTTP;
	if (!err)
		return rc;
	/* Not a Status (a proxy's page, say): keep the start of the body. */
	vg_err_set(err, rc, "HTTP %ld: %.*s", http_status,
	           (int)(len > 160 ? 160 : len), body ? body : "");
	err->http_status = http_status;
	err->reason[0] = '\0';
	return rc;
}

int kube_curl_err(struct vg_err *err, CURLcode cc, const char *errbuf,
                  const char *method, const char *path)
{
	int rc = cc == CURLE_OPERATION_TIMEDOUT ? VG_TIMEOUT : VG_IO;

	return vg_err_set(err, rc, "%s %s: %s", method, path,
	                  errbuf && *errbuf ? errbuf : curl_easy_strerror(cc));
}

/* ------------------------------------------------------------------ */
/* Client                                                               */
/* ------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access,
                       void *ctx)
{
	struct vg_kube_client *c = ctx;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
	struct vg_kube_client *c = ctx;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_mu[data]);
}

/*
 * With tls-server-name, requests go to https://<tls-server-name>:<port> and
 * curl is told to connect to the configured host instead, so the server's
 * certificate is verified against (and SNI carries) that name.
 */
static int setup_server_name(struct vg_kube_client *c, struct vg_err *err)
{
	CURLU *u = NULL;
	char *host = NULL, *port = NULL, *url = NULL, *map = NULL;
	struct curl_slist *tmp;
	size_t n;
	int rc = VG_OK;

	if (!c->cfg.tls_server_name) {
		c->base_url = strdup(c->cfg.server);
		return c->base_url ? VG_OK
		                   : vg_err_set(err, VG_NOMEM, "copying URL");
	}
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, c->cfg.server, 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ||
	    curl_url_set(u, CURLUPART_HOST, c->cfg.tls_server_name, 0) ||
	    curl_url_get(u, CURLUPART_URL, &url, 0)) {
		rc = vg_err_set(err, VG_CONFIG,
		                "server %s with tls-server-name %s: cannot "
		                "build the URL",
		                c->cfg.server, c->cfg.tls_server_name);
		goto out;
	}
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	n = strlen(c->cfg.tls_server_name) + strlen(host) + 2 * strlen(port) +
	    4;
	map = malloc(n);
	c->base_url = strdup(url);
	if (!map || !c->base_url) {
		rc = vg_err_set(err, VG_NOMEM, "building URL");
		goto out;
	}
	snprintf(map, n, "%s:%s:%s:%s", c->cfg.tls_server_name, port, host,
	         port);
	tmp = curl_slist_append(NULL, map);
	if (!tmp) {
		rc = vg_err_set(err, VG_NOMEM, "building URL");
		goto out;
	}
	c->connect_to = tmp;
out:
	free(map);
	curl_free(host);
	curl_free(port);
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

static void apply_defaults(struct vg_kube_client_opts *o)
{
	if (o->qps == 0)
		o->qps = DEFAULT_QPS;
	if (o->burst <= 0)
		o->burst = DEFAULT_BURST;
	if (o->timeout_ms <= 0)
		o->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (o->max_response_bytes == 0)
		o->max_response_bytes = DEFAULT_MAX_RESPONSE;
	if (o->token_refresh_sec <= 0)
		o->token_refresh_sec = DEFAULT_TOKEN_REFRESH_SEC;
	if (o->max_idle_handles <= 0)
		o->max_idle_handles = DEFAULT_MAX_IDLE;
}

int vg_kube_client_new(const struct vg_kube_config *cfg,
                       const struct vg_kube_client_opts *opts,
                       struct vg_kube_client **out, struct vg_err *err)
{
	struct vg_kube_client *c = NULL;
	int rc;

	*out = NULL;
	if (!cfg || !cfg->server || !*cfg->server)
		return vg_err_set(err, VG_CONFIG, "no API server configured");
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return vg_err_set(err, VG_INTERNAL, "curl_global_init: %s",
		                  curl_easy_strerror(curl_init_rc));

	c = calloc(1, sizeof(*c));
	if (!c)
		return vg_err_set(err, VG_NOMEM, "allocating client");
	vg_kube_config_init(&c->cfg);
	pthread_mutex_init(&c->pool_mu, NULL);
	pthread_mutex_init(&c->token_mu, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_mu[i], NULL);

	rc = vg_kube_config_copy(&c->cfg, cfg, err);
	if (rc)
		goto out;
	if (opts)
		c->opts = *opts;
	apply_defaults(&c->opts);
	c->clock = c->opts.clock ? c->opts.clock : vg_clock_monotonic();
	c->opts.clock = c->clock;
	c->user_agent = strdup(c->opts.user_agent ? c->opts.user_agent
	                                          : DEFAULT_USER_AGENT);
	c->opts.user_agent = c->user_agent;
	c->rl = vg_ratelimit_new(c->opts.qps, c->opts.burst, c->clock);
	c->idle = calloc((size_t)c->opts.max_idle_handles, sizeof(*c->idle));
	c->share = curl_share_init();
	if (!c->user_agent || !c->rl || !c->idle || !c->share) {
		rc = vg_err_set(err, VG_NOMEM, "allocating client");
		goto out;
	}
	rc = setup_server_name(c, err);
	if (rc)
		goto out;
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	/* Connections are not shared: curl's shared connection cache is not
	 * safe across threads. Each pooled handle keeps its own. */
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE,
	                  CURL_LOCK_DATA_SSL_SESSION);

	if (c->cfg.token_file) {
		rc = vg_kube_client_reload_token(c, err);
		if (rc)
			goto out;
	}
	*out = c;
	c = NULL;
out:
	vg_kube_client_free(c);
	return rc;
}

void vg_kube_client_free(struct vg_kube_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	if (c->share)
		curl_share_cleanup(c->share);
	vg_ratelimit_free(c->rl);
	if (c->token)
		kube_free_secret(c->token, strlen(c->token));
	free(c->user_agent);
	free(c->base_url);
	curl_slist_free_all(c->connect_to);
	vg_kube_config_cleanup(&c->cfg);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_mu[i]);
	pthread_mutex_destroy(&c->token_mu);
	pthread_mutex_destroy(&c->pool_mu);
	free(c);
}

const char *vg_kube_client_namespace(const struct vg_kube_client *c)
{
	return c->cfg.namespace;
}

const char *vg_kube_client_server(const struct vg_kube_client *c)
{
	return c->cfg.server;
}

CURL *kube_handle_get(struct vg_kube_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_mu);
	if (c->nidle > 0)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->pool_mu);
	return h ? h : curl_easy_init();
}

void kube_handle_put(struct vg_kube_client *c, CURL *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&c->pool_mu);
	if (c->nidle < c->opts.max_idle_handles) {
		c->idle[c->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ------------------------------------------------------------------ */
/* Bearer token                                                         */
/* ------------------------------------------------------------------ */

/* Read and trim the token file into a new string. */
static int read_token_file(const char *path, char **out, struct vg_err *err)
{
	char *data = NULL;
	size_t len = 0, start = 0;
	int rc;

	*out = NULL;
	rc = kube_read_file(path, MAX_TOKEN_BYTES, &data, &len, err);
	if (rc)
		return rc;
	while (start < len && strchr(" \t\r\n", data[start]))
		start++;
	while (len > start && strchr(" \t\r\n", data[len - 1]))
		len--;
	if (len == start) {
		kube_free_secret(data, len);
		return vg_err_set(err, VG_CONFIG, "token file %s is empty",
		                  path);
	}
	data[len] = '\0';
	if (start)
		memmove(data, data + start, len - start + 1);
	*out = data;
	return VG_OK;
}

int vg_kube_client_reload_token(struct vg_kube_client *c, struct vg_err *err)
{
	char *tok = NULL;
	int rc;

	if (!c->cfg.token_file)
		return VG_OK;
	rc = read_token_file(c->cfg.token_file, &tok, err);
	pthread_mutex_lock(&c->token_mu);
	if (rc == VG_OK) {
		if (c->token)
			kube_free_secret(c->token, strlen(c->token));
		c->token = tok;
	}
	/* A failed re-read keeps the old token and retries next period. */
	c->token_read_ns = vg_clock_now(c->clock);
	pthread_mutex_unlock(&c->token_mu);
	return rc;
}

/* The token to send (new copy, or NULL for none). */
static int current_token(struct vg_kube_client *c, char **out,
                         struct vg_err *err)
{
	uint64_t period = (uint64_t)c->opts.token_refresh_sec * 1000000000ull;
	int stale, rc = VG_OK;

	*out = NULL;
	if (!c->cfg.token_file) {
		if (c->cfg.token && !(*out = strdup(c->cfg.token)))
			return vg_err_set(err, VG_NOMEM, "copying token");
		return VG_OK;
	}
	pthread_mutex_lock(&c->token_mu);
	stale = !c->token ||
	        vg_clock_now(c->clock) - c->token_read_ns >= period;
	pthread_mutex_unlock(&c->token_mu);
	if (stale) {
		struct vg_err rerr;

		vg_err_clear(&rerr);
		if (vg_kube_client_reload_token(c, &rerr) != VG_OK)
			vg_warn("token file re-read failed", "err", rerr.msg);
	}
	pthread_mutex_lock(&c->token_mu);
	if (c->token && !(*out = strdup(c->token)))
		rc = vg_err_set(err, VG_NOMEM, "copying token");
	else if (!c->token)
		rc = vg_err_set(err, VG_CONFIG,
		                "no token could be read from %s",
		                c->cfg.token_file);
	pthread_mutex_unlock(&c->token_mu);
	return rc;
}

int vg_kube_client_token(struct vg_kube_client *c, char **out,
                         struct vg_err *err)
{
	return current_token(c, out, err);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

void kube_observe(struct vg_kube_client *c, const char *method,
                  const char *path, long code, uint64_t start_ns, int rc,
                  bool watch)
{
	struct vg_kube_request_info info = {
		.method = method,
		.code = code,
		.duration_ns = vg_clock_now(c->clock) - start_ns,
		.err = rc,
		.watch = watch,
		.path = path,
	};

	if (c->opts.observer)
		c->opts.observer(c->opts.observer_ctx, &info);
}

int kube_rate_wait(struct vg_kube_client *c, const atomic_int *a,
                   const atomic_int *b)
{
	const uint64_t slice = 50000000ull;
	uint64_t wait = vg_ratelimit_reserve(c->rl), start, now;

	if (wait == 0)
		return VG_OK;
	if (!a && !b) {
		c->clock->sleep_ns(c->clock->ctx, wait);
		return VG_OK;
	}
	start = vg_clock_now(c->clock);
	for (;;) {
		if ((a && atomic_load(a)) || (b && atomic_load(b))) {
			vg_ratelimit_unreserve(c->rl);
			return VG_CANCELED;
		}
		now = vg_clock_now(c->clock);
		if (now - start >= wait)
			return VG_OK;
		c->clock->sleep_ns(c->clock->ctx, wait - (now - start) < slice
		                                          ? wait - (now - start)
		                                          : slice);
	}
}

int kube_easy_setup(struct vg_kube_client *c, CURL *h, const char *method,
                    const char *path, const char *query,
                    struct curl_slist **hdrs, struct vg_err *err)
{
	struct vg_buf url;
	struct curl_slist *tmp;
	char *token = NULL;
	int rc;

	vg_buf_init(&url, 0);
	curl_easy_reset(h);
	rc = vg_buf_append_str(&url, c->base_url);
	if (rc == VG_OK)
		rc = vg_buf_append_str(&url, path);
	if (rc == VG_OK && query && *query)
		rc = vg_buf_appendf(&url, "?%s", query);
	if (rc) {
		rc = vg_err_set(err, rc, "building URL: %s", vg_strerror(rc));
		goto out;
	}
	rc = current_token(c, &token, err);
	if (rc)
		goto out;

	curl_easy_setopt(h, CURLOPT_URL, vg_buf_str(&url));
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 c->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 15L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	/*
	 * HTTP/1.1, not HTTP/2: a handle runs one request at a time on a
	 * connection of its own, so HTTP/2's streams would never share one,
	 * while each connection would carry an nghttp2 session and curl's
	 * 32 KB frame buffer (~55 KB). The upload buffer HTTP/1.1 allocates
	 * is 64 KB by default; at its least, 16 KB, a large body goes out in
	 * more pieces.
	 */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, KUBE_UPLOAD_BUFFER);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (c->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);

	if (c->cfg.ca_pem) {
		struct curl_blob ca = {.data = c->cfg.ca_pem,
		                       .len = c->cfg.ca_len,
		                       .flags = CURL_BLOB_NOCOPY};

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
	}
	if (c->cfg.insecure_skip_tls_verify) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cfg.cert_pem && c->cfg.key_pem) {
		struct curl_blob cert = {.data = c->cfg.cert_pem,
		                         .len = c->cfg.cert_len,
		                         .flags = CURL_BLOB_NOCOPY};
		struct curl_blob key = {.data = c->cfg.key_pem,
		                        .len = c->cfg.key_len,
		                        .flags = CURL_BLOB_NOCOPY};

		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (token) {
		/* curl copies the token; it is sent only to this host. */
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, token);
	} else if (c->cfg.username) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->cfg.username);
		curl_easy_setopt(h, CURLOPT_PASSWORD,
		                 c->cfg.password ? c->cfg.password : "");
	}

	tmp = curl_slist_append(*hdrs, "Accept: application/json");
	if (!tmp) {
		rc = vg_err_set(err, VG_NOMEM, "building headers");
		goto out;
	}
	*hdrs = tmp;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	rc = VG_OK;
out:
	if (token)
		kube_free_secret(token, strlen(token));
	vg_buf_cleanup(&url);
	return rc;
}

struct response {
	struct vg_buf body;
	int too_large;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct response *resp = ctx;

	if (vg_buf_append(&resp->body, data, size * n) != VG_OK) {
		resp->too_large = 1;
		return 0;
	}
	return size * n;
}

/* One HTTP exchange; parses a 2xx body into *out. */
static int send_once(struct vg_kube_client *c, const char *method,
                     const char *path, const char *query, const char *payload,
                     const char *ctype, json_t **out, long *retry_after,
                     struct vg_err *err)
{
	struct curl_slist *hdrs = NULL, *tmp;
	struct response resp;
	char errbuf[CURL_ERROR_SIZE] = "";
	char ctype_hdr[128];
	CURL *h = NULL;
	CURLcode cc;
	curl_off_t ra = -1;
	long code = 0;
	uint64_t start;
	int rc;

	*retry_after = -1;
	vg_buf_init(&resp.body, c->opts.max_response_bytes);
	resp.too_large = 0;
	kube_rate_wait(c, NULL, NULL);
	start = vg_clock_now(c->clock);

	h = kube_handle_get(c);
	if (!h) {
		rc = vg_err_set(err, VG_NOMEM, "curl_easy_init failed");
		goto out;
	}
	rc = kube_easy_setup(c, h, method, path, query, &hdrs, err);
	if (rc)
		goto out;
	if (payload) {
		snprintf(ctype_hdr, sizeof(ctype_hdr), "Content-Type: %s",
		         ctype ? ctype : "application/json");
		tmp = curl_slist_append(hdrs, ctype_hdr);
		if (!tmp) {
			rc = vg_err_set(err, VG_NOMEM, "building headers");
			goto out;
		}
		hdrs = tmp;
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(payload));
	}
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);

	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (resp.too_large) {
		rc = vg_err_set(err, VG_TOOLARGE,
		                "%s %s: response larger than %zu bytes", method,
		                path, c->opts.max_response_bytes);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = kube_curl_err(err, cc, errbuf, method, path);
		goto out;
	}
	if (code < 200 || code >= 300) {
		rc = kube_err_from_body(resp.body.data, resp.body.len, code,
		                        err);
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) ==
		            CURLE_OK &&
		    ra >= 0)
			*retry_after = (long)ra;
		goto out;
	}
	rc = VG_OK;
	if (!out)
		goto out;
	if (resp.body.len == 0) {
		*out = json_null();
	} else {
		json_error_t jerr;

		*out = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
		if (!*out)
			rc = vg_err_set(err, VG_PARSE,
			                "%s %s: invalid JSON in response: %s",
			                method, path, jerr.text);
	}
out:
	kube_observe(c, method, path, code, start, rc, false);
	curl_slist_free_all(hdrs);
	if (h) {
		/* Drop references to this call's buffers before pooling. */
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		kube_handle_put(c, h);
	}
	vg_buf_cleanup(&resp.body);
	return rc;
}

/* Send with retries when the server asks for them (429 + Retry-After). */
static int kube_send(struct vg_kube_client *c, const char *method,
                     const char *path, const char *query, const json_t *body,
                     const char *ctype, json_t **out, struct vg_err *err)
{
	char *payload = NULL;
	long retry_after;
	int rc;

	if (out)
		*out = NULL;
	vg_err_clear(err);
	if (body) {
		payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!payload)
			return vg_err_set(err, VG_NOMEM, "encoding body");
	}
	for (int attempt = 0;; attempt++) {
		rc = send_once(c, method, path, query, payload, ctype, out,
		               &retry_after, err);
		if (rc == VG_OK || attempt >= MAX_RETRIES)
			break;
		if (!err || err->http_status != 429 || retry_after < 0)
			break;
		if (retry_after > MAX_RETRY_AFTER_SEC)
			retry_after = MAX_RETRY_AFTER_SEC;
		vg_debug("retrying after 429", "method", method, "path", path);
		c->clock->sleep_ns(c->clock->ctx,
		                   (uint64_t)(retry_after ? retry_after : 1) *
		                           1000000000ull);
		vg_err_clear(err);
	}
	free(payload);
	return rc;
}

int vg_kube_request(struct vg_kube_client *c, const struct vg_kube_request *req,
                    json_t **out, struct vg_err *err)
{
	if (!req || !req->method || !req->path || req->path[0] != '/')
		return vg_err_set(
			err, VG_INVAL,
			"request needs a method and an absolute path");
	return kube_send(c, req->method, req->path, req->query, req->body,
	                 req->content_type, out, err);
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */
/* ------------------------------------------------------------------ */

/* Path and query of one call, released with call_cleanup(). */
struct call {
	struct vg_buf path;
	struct vg_buf query;
};

static void call_init(struct call *k)
{
	vg_buf_init(&k->path, 0);
	vg_buf_init(&k->query, 0);
}

static void call_cleanup(struct call *k)
{
	vg_buf_cleanup(&k->path);
	vg_buf_cleanup(&k->query);
}

static int call_path(struct call *k, struct vg_kube_client *c,
                     const struct vg_kube_resource *r, const char *ns,
                     const char *name, const char *sub, bool single,
                     struct vg_err *err)
{
	const char *rns = NULL;
	int rc;

	if (!r)
		return vg_err_set(err, VG_INVAL, "no resource given");
	if (single && !name)
		return vg_err_set(err, VG_INVAL, "%s: a name is required",
		                  r->resource);
	rc = kube_resolve_ns(c, r, ns, single, &rns, err);
	if (rc == VG_OK)
		rc = vg_kube_path(&k->path, r, rns, name, sub, err);
	return rc;
}

static int query_done(int rc, struct vg_err *err)
{
	if (rc)
		return vg_err_set(err, rc, "building query: %s",
		                  vg_strerror(rc));
	return VG_OK;
}

int vg_kube_get(struct vg_kube_client *c, const struct vg_kube_resource *r,
                const char *ns, const char *name,
                const struct vg_kube_get_opts *opts, json_t **out,
                struct vg_err *err)
{
	static const struct vg_kube_get_opts none;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	call_init(&k);
	rc = call_path(&k, c, r, ns, name, opts->subresource, true, err);
	if (rc)
		goto out;
	rc = query_done(kube_query_add(&k.query, "resourceVersion",
	                               opts->resource_version),
	                err);
	if (rc)
		goto out;
	rc = kube_send(c, "GET", vg_buf_str(&k.path), vg_buf_str(&k.query),
	               NULL, NULL, out, err);
out:
	call_cleanup(&k);
	return rc;
}

static int list_query(struct vg_buf *q, const struct vg_kube_list_opts *o)
{
	int rc = kube_query_add(q, "labelSelector", o->label_selector);

	if (rc == VG_OK)
		rc = kube_query_add(q, "fieldSelector", o->field_selector);
	if (rc == VG_OK && o->limit > 0)
		rc = query_add_long(q, "limit", o->limit);
	if (rc == VG_OK)
		rc = kube_query_add(q, "continue", o->continue_token);
	if (rc == VG_OK)
		rc = kube_query_add(q, "resourceVersion", o->resource_version);
	if (rc == VG_OK)
		rc = kube_query_add(q, "resourceVersionMatch",
		                    o->resource_version_match);
	if (rc == VG_OK && o->timeout_seconds > 0)
		rc = query_add_long(q, "timeoutSeconds", o->timeout_seconds);
	return rc;
}

int vg_kube_list(struct vg_kube_client *c, const struct vg_kube_resource *r,
                 const char *ns, const struct vg_kube_list_opts *opts,
                 json_t **out, struct vg_err *err)
{
	static const struct vg_kube_list_opts none;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	call_init(&k);
	rc = call_path(&k, c, r, ns, NULL, NULL, false, err);
	if (rc)
		goto out;
	rc = query_done(list_query(&k.query, opts), err);
	if (rc)
		goto out;
	rc = kube_send(c, "GET", vg_buf_str(&k.path), vg_buf_str(&k.query),
	               NULL, NULL, out, err);
	if (rc == VG_OK && !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		rc = vg_err_set(err, VG_PARSE, "list of %s: not an object",
		                r->resource);
	}
out:
	call_cleanup(&k);
	return rc;
}

/* Items of `page` appended to `all`'s items; `all` takes page metadata. */
static int merge_page(json_t *all, json_t *page, struct vg_err *err)
{
	json_t *items = json_object_get(all, "items");
	json_t *more = json_object_get(page, "items");

	if (more && !json_is_array(more))
		return vg_err_set(err, VG_PARSE, "list items not an array");
	if (!items) {
		items = json_array();
		if (!items || json_object_set_new(all, "items", items))
			return vg_err_set(err, VG_NOMEM, "merging pages");
	}
	if (more && json_array_extend(items, more))
		return vg_err_set(err, VG_NOMEM, "merging pages");
	return VG_OK;
}

/* Page through a list; VG_GONE when the continue token expires. */
static int list_pages(struct vg_kube_client *c,
                      const struct vg_kube_resource *r, const char *ns,
                      const struct vg_kube_list_opts *base, long limit,
                      json_t **out, struct vg_err *err)
{
	struct vg_kube_list_opts o = *base;
	json_t *all = NULL, *page = NULL;
	char *cont = NULL;
	int rc;

	o.limit = limit;
	o.continue_token = NULL;
	for (;;) {
		const char *next;

		rc = vg_kube_list(c, r, ns, &o, &page, err);
		if (rc)
			goto out;
		if (!all) {
			all = page;
			page = NULL;
			if (!json_object_get(all, "items") &&
			    json_object_set_new(all, "items", json_array())) {
				rc = vg_err_set(err, VG_NOMEM, "merging pages");
				goto out;
			}
		} else {
			rc = merge_page(all, page, err);
			if (rc)
				goto out;
		}
		next = page ? json_string_value(json_object_get(
				      json_object_get(page, "metadata"),
				      "continue"))
		            : json_string_value(json_object_get(
				      json_object_get(all, "metadata"),
				      "continue"));
		free(cont);
		cont = next && *next ? strdup(next) : NULL;
		if (next && *next && !cont) {
			rc = vg_err_set(err, VG_NOMEM, "copying continue");
			goto out;
		}
		json_decref(page);
		page = NULL;
		if (!cont)
			break;
		/* Later pages come from the first page's snapshot. */
		o.continue_token = cont;
		o.resource_version = NULL;
		o.resource_version_match = NULL;
	}
	/* The merged list is complete: drop the first page's token. */
	json_object_del(json_object_get(all, "metadata"), "continue");
	json_object_del(json_object_get(all, "metadata"), "remainingItemCount");
	*out = all;
	all = NULL;
	rc = VG_OK;
out:
	free(cont);
	json_decref(page);
	json_decref(all);
	return rc;
}

int vg_kube_list_all(struct vg_kube_client *c, const struct vg_kube_resource *r,
                     const char *ns, const struct vg_kube_list_opts *opts,
                     json_t **out, struct vg_err *err)
{
	static const struct vg_kube_list_opts none;
	long limit;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &none;
	limit = opts->limit > 0 ? opts->limit : DEFAULT_PAGE_SIZE;
	rc = list_pages(c, r, ns, opts, limit, out, err);
	if (rc == VG_GONE) {
		vg_debug("continue token expired, listing in one request",
		         "resource", r->resource);
		vg_err_clear(err);
		rc = list_pages(c, r, ns, opts, 0, out, err);
	}
	return rc;
}

static int write_query(struct vg_buf *q, const char *field_manager,
                       bool dry_run, const char *field_validation)
{
	int rc = kube_query_add(q, "fieldManager", field_manager);

	if (rc == VG_OK && dry_run)
		rc = kube_query_add(q, "dryRun", "All");
	if (rc == VG_OK)
		rc = kube_query_add(q, "fieldValidation", field_validation);
	return rc;
}

int vg_kube_create(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const json_t *obj,
                   const struct vg_kube_write_opts *opts, json_t **out,
                   struct vg_err *err)
{
	static const struct vg_kube_write_opts none;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	if (!json_is_object(obj))
		return vg_err_set(err, VG_INVAL, "create: object required");
	call_init(&k);
	/* POST goes to the collection (or to a subresource of a name). */
	if (opts->subresource) {
		const char *name = json_string_value(json_object_get(
			json_object_get(obj, "metadata"), "name"));

		rc = call_path(&k, c, r, ns, name, opts->subresource, true,
		               err);
	} else {
		const char *rns = NULL;

		rc = kube_resolve_ns(c, r, ns, true, &rns, err);
		if (rc == VG_OK)
			rc = vg_kube_path(&k.path, r, rns, NULL, NULL, err);
	}
	if (rc)
		goto out;
	rc = query_done(write_query(&k.query, opts->field_manager,
	                            opts->dry_run, opts->field_validation),
	                err);
	if (rc)
		goto out;
	rc = kube_send(c, "POST", vg_buf_str(&k.path), vg_buf_str(&k.query),
	               obj, NULL, out, err);
out:
	call_cleanup(&k);
	return rc;
}

int vg_kube_update(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const json_t *obj,
                   const struct vg_kube_write_opts *opts, json_t **out,
                   struct vg_err *err)
{
	static const struct vg_kube_write_opts none;
	const char *name;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	name = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "name"));
	if (!json_is_object(obj) || !name)
		return vg_err_set(err, VG_INVAL,
		                  "update: object with metadata.name required");
	call_init(&k);
	rc = call_path(&k, c, r, ns, name, opts->subresource, true, err);
	if (rc)
		goto out;
	rc = query_done(write_query(&k.query, opts->field_manager,
	                            opts->dry_run, opts->field_validation),
	                err);
	if (rc)
		goto out;
	rc = kube_send(c, "PUT", vg_buf_str(&k.path), vg_buf_str(&k.query), obj,
	               NULL, out, err);
out:
	call_cleanup(&k);
	return rc;
}

static const char *const patch_content_types[] = {
	[VG_KUBE_PATCH_MERGE] = "application/merge-patch+json",
	[VG_KUBE_PATCH_JSON] = "application/json-patch+json",
	[VG_KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
	[VG_KUBE_PATCH_APPLY] = "application/apply-patch+yaml",
};

int vg_kube_patch(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const char *name, const json_t *patch,
                  const struct vg_kube_patch_opts *opts, json_t **out,
                  struct vg_err *err)
{
	static const struct vg_kube_patch_opts none;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	if ((unsigned)opts->type >=
	    sizeof(patch_content_types) / sizeof(patch_content_types[0]))
		return vg_err_set(err, VG_INVAL, "unknown patch type %d",
		                  (int)opts->type);
	if (!patch)
		return vg_err_set(err, VG_INVAL, "patch: no patch given");
	if (opts->type == VG_KUBE_PATCH_APPLY && !opts->field_manager)
		return vg_err_set(err, VG_INVAL,
		                  "server-side apply needs a field manager");
	call_init(&k);
	rc = call_path(&k, c, r, ns, name, opts->subresource, true, err);
	if (rc)
		goto out;
	rc = write_query(&k.query, opts->field_manager, opts->dry_run,
	                 opts->field_validation);
	/* force is only meaningful (and only accepted) for apply. */
	if (rc == VG_OK && opts->type == VG_KUBE_PATCH_APPLY && opts->force)
		rc = kube_query_add(&k.query, "force", "true");
	rc = query_done(rc, err);
	if (rc)
		goto out;
	rc = kube_send(c, "PATCH", vg_buf_str(&k.path), vg_buf_str(&k.query),
	               patch, patch_content_types[opts->type], out, err);
out:
	call_cleanup(&k);
	return rc;
}

int vg_kube_apply(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const json_t *obj,
                  const struct vg_kube_patch_opts *opts, json_t **out,
                  struct vg_err *err)
{
	struct vg_kube_patch_opts o = {0};
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));

	if (opts)
		o = *opts;
	o.type = VG_KUBE_PATCH_APPLY;
	if (!json_is_object(obj) || !name)
		return vg_err_set(err, VG_INVAL,
		                  "apply: object with metadata.name required");
	if (!ns)
		ns = json_string_value(json_object_get(meta, "namespace"));
	return vg_kube_patch(c, r, ns, name, obj, &o, out, err);
}

int vg_kube_delete(struct vg_kube_client *c, const struct vg_kube_resource *r,
                   const char *ns, const char *name,
                   const struct vg_kube_delete_opts *opts, json_t **out,
                   struct vg_err *err)
{
	static const struct vg_kube_delete_opts none;
	json_t *body = NULL, *pre = NULL;
	struct call k;
	int rc;

	if (!opts)
		opts = &none;
	call_init(&k);
	rc = call_path(&k, c, r, ns, name, NULL, true, err);
	if (rc)
		goto out;
	body = json_pack("{s:s, s:s}", "apiVersion", "v1", "kind",
	                 "DeleteOptions");
	pre = json_object();
	if (!body || !pre) {
		rc = vg_err_set(err, VG_NOMEM, "building DeleteOptions");
		goto out;
	}
	if ((opts->uid &&
	     json_object_set_new(pre, "uid", json_string(opts->uid))) ||
	    (opts->resource_version &&
	     json_object_set_new(pre, "resourceVersion",
	                         json_string(opts->resource_version))) ||
	    (json_object_size(pre) &&
	     json_object_set(body, "preconditions", pre)) ||
	    (opts->propagation_policy &&
	     json_object_set_new(body, "propagationPolicy",
	                         json_string(opts->propagation_policy))) ||
	    (opts->grace_set &&
	     json_object_set_new(body, "gracePeriodSeconds",
	                         json_integer(opts->grace_period_seconds))) ||
	    (opts->dry_run &&
	     json_object_set_new(body, "dryRun", json_pack("[s]", "All")))) {
		rc = vg_err_set(err, VG_NOMEM, "building DeleteOptions");
		goto out;
	}
	rc = kube_send(c, "DELETE", vg_buf_str(&k.path), NULL, body, NULL, out,
	               err);
out:
	json_decref(pre);
	json_decref(body);
	call_cleanup(&k);
	return rc;
}
