/*
 * kube_watch.c - watch streams: the incremental parser of newline-delimited
 * watch events, and the long-lived request that feeds it.
 *
 * A watch runs its transfer on a private curl multi handle so another
 * thread can interrupt the wait at once with curl_multi_wakeup(); a shared
 * cancel flag is also polled every POLL_MS.
 */
#include "kube_int.h"

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/kube.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 200
#define WATCH_RECV_BUFFER 4096L
/* A non-200 answer to a watch is a Status; it is never large. */
#define MAX_ERROR_BODY (1024 * 1024)

/* ------------------------------------------------------------------ */
/* Event parser                                                         */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	enum vg_watch_type type;
} watch_types[] = {
	{"ADDED", VG_WATCH_ADDED},     {"MODIFIED", VG_WATCH_MODIFIED},
	{"DELETED", VG_WATCH_DELETED}, {"BOOKMARK", VG_WATCH_BOOKMARK},
	{"ERROR", VG_WATCH_ERROR},
};

const char *vg_watch_type_name(enum vg_watch_type t)
{
	for (size_t i = 0; i < sizeof(watch_types) / sizeof(watch_types[0]);
	     i++)
		if (watch_types[i].type == t)
			return watch_types[i].name;
	return "UNKNOWN";
}

static int parse_type(const char *s, enum vg_watch_type *out)
{
	for (size_t i = 0; i < sizeof(watch_types) / sizeof(watch_types[0]);
	     i++) {
		if (strcmp(watch_types[i].name, s) == 0) {
			*out = watch_types[i].type;
			return 1;
		}
	}
	return 0;
}

void vg_watch_parser_init(struct vg_watch_parser *p, size_t max_event,
                          vg_watch_fn fn, void *ctx)
{
	p->max_event = max_event ? max_event : VG_WATCH_MAX_EVENT_DEFAULT;
	vg_buf_init(&p->line, p->max_event);
	p->fn = fn;
	p->ctx = ctx;
	p->resource_version = NULL;
	p->done = 0;
	p->events = 0;
}

void vg_watch_parser_cleanup(struct vg_watch_parser *p)
{
	vg_buf_cleanup(&p->line);
	free(p->resource_version);
	p->resource_version = NULL;
}

const char *vg_watch_parser_resource_version(const struct vg_watch_parser *p)
{
	return p->resource_version;
}

static int set_rv(struct vg_watch_parser *p, const char *rv, struct vg_err *err)
{
	char *copy;

	if (p->resource_version && strcmp(p->resource_version, rv) == 0)
		return VG_OK;
	copy = strdup(rv);
	if (!copy)
		return vg_err_set(err, VG_NOMEM, "copying resourceVersion");
	free(p->resource_version);
	p->resource_version = copy;
	return VG_OK;
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr(" \t\r", s[i]) || !s[i])
			return 0;
	return 1;
}

/* Decode and deliver one complete line (without its '\n'). */
static int handle_line(struct vg_watch_parser *p, const char *line, size_t n,
                       struct vg_err *err)
{
	json_error_t jerr;
	json_t *ev = NULL, *obj;
	struct vg_watch_event out;
	const char *type;
	int rc;

	if (is_blank(line, n))
		return VG_OK;
	ev = json_loadb(line, n, 0, &jerr);
	if (!ev) {
		rc = vg_err_set(err, VG_PARSE,
		                "watch event %lu: invalid JSON: %s",
		                p->events + 1, jerr.text);
		goto out;
	}
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		rc = vg_err_set(err, VG_PARSE,
		                "watch event %lu: not a {type, object} event",
		                p->events + 1);
		goto out;
	}
	if (!parse_type(type, &out.type)) {
		rc = vg_err_set(err, VG_PARSE,
		                "watch event %lu: unknown type \"%.32s\"",
		                p->events + 1, type);
		goto out;
	}
	out.object = obj;
	out.resource_version = json_string_value(json_object_get(
		json_object_get(obj, "metadata"), "resourceVersion"));
	if (out.resource_version && !*out.resource_version)
		out.resource_version = NULL;
	if (out.type != VG_WATCH_ERROR && out.resource_version) {
		rc = set_rv(p, out.resource_version, err);
		if (rc)
			goto out;
	}
	p->events++;
	rc = p->fn ? p->fn(p->ctx, &out) : VG_OK;
	if (out.type == VG_WATCH_ERROR) {
		/* The server ends the stream after an ERROR: report it. */
		rc = vg_kube_err_from_status(obj, 0, err);
		goto out;
	}
	if (rc < 0 && err && err->code != rc)
		vg_err_set(err, rc, "watch callback: %s", vg_strerror(rc));
	else if (rc > 0)
		rc = VG_WATCH_STOP;
out:
	json_decref(ev);
	return rc;
}

static int too_large(struct vg_watch_parser *p, struct vg_err *err)
{
	return vg_err_set(err, VG_TOOLARGE,
	                  "watch event %lu larger than %zu bytes",
	                  p->events + 1, p->max_event);
}

int vg_watch_parser_feed(struct vg_watch_parser *p, const char *data,
                         size_t len, struct vg_err *err)
{
	int rc = VG_OK;

	if (p->done)
		return p->done == VG_WATCH_STOP
		               ? VG_WATCH_STOP
		               : vg_err_set(err, p->done,
		                            "watch stream already ended: %s",
		                            vg_strerror(p->done));
	while (len > 0 && rc == VG_OK) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;

		if (!nl) {
			if (vg_buf_append(&p->line, data, take) != VG_OK)
				rc = p->line.len + take > p->max_event
				             ? too_large(p, err)
				             : vg_err_set(err, VG_NOMEM,
				                          "buffering event");
			break;
		}
		if (p->line.len == 0) {
			/* The whole line is in this chunk: no copy. */
			rc = take > p->max_event
			             ? too_large(p, err)
			             : handle_line(p, data, take, err);
		} else {
			if (vg_buf_append(&p->line, data, take) != VG_OK)
				rc = p->line.len + take > p->max_event
				             ? too_large(p, err)
				             : vg_err_set(err, VG_NOMEM,
				                          "buffering event");
			else
				rc = handle_line(p, p->line.data, p->line.len,
				                 err);
			vg_buf_reset(&p->line);
		}
		data += take + 1;
		len -= take + 1;
	}
	if (rc != VG_OK)
		p->done = rc;
	return rc;
}

int vg_watch_parser_finish(struct vg_watch_parser *p, struct vg_err *err)
{
	int rc;

	if (p->done)
		return vg_watch_parser_feed(p, "", 0, err);
	if (p->line.len == 0)
		return VG_OK;
	rc = handle_line(p, p->line.data, p->line.len, err);
	vg_buf_reset(&p->line);
	if (rc != VG_OK)
		p->done = rc;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Watch requests                                                       */
/* ------------------------------------------------------------------ */

struct vg_kube_watch {
	struct vg_kube_client *c;
	char *path;
	char *label_selector;
	char *field_selector;
	long timeout_seconds;
	bool no_bookmarks;
	size_t max_event;
	const atomic_int *shared_cancel;
	atomic_int canceled;
	vg_watch_fn fn;
	void *ctx;
	char *rv; /* where the next run starts */

	CURLM *multi;
	CURL *easy;

	/* State of the running transfer. */
	struct vg_watch_parser parser;
	struct vg_err *err;
	long code;
	struct vg_buf errbody;
	int stream_rc; /* parser result that stopped the transfer */
};

static int is_canceled(const struct vg_kube_watch *w)
{
	return atomic_load(&w->canceled) ||
	       (w->shared_cancel && atomic_load(w->shared_cancel));
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst == NULL;
}

int vg_kube_watch_new(struct vg_kube_client *c,
                      const struct vg_kube_resource *r, const char *ns,
                      const struct vg_kube_watch_opts *opts, vg_watch_fn fn,
                      void *ctx, struct vg_kube_watch **out, struct vg_err *err)
{
	static const struct vg_kube_watch_opts none;
	struct vg_kube_watch *w = NULL;
	struct vg_buf path;
	const char *rns = NULL;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &none;
	if (!r)
		return vg_err_set(err, VG_INVAL, "watch: no resource given");
	vg_buf_init(&path, 0);
	rc = kube_resolve_ns(c, r, ns, false, &rns, err);
	if (rc == VG_OK)
		rc = vg_kube_path(&path, r, rns, NULL, NULL, err);
	if (rc)
		goto out;
	w = calloc(1, sizeof(*w));
	if (!w) {
		rc = vg_err_set(err, VG_NOMEM, "allocating watch");
		goto out;
	}
	w->c = c;
	w->path = vg_buf_take(&path);
	w->timeout_seconds = opts->timeout_seconds;
	w->no_bookmarks = opts->no_bookmarks;
	w->max_event = opts->max_event_bytes;
	w->shared_cancel = opts->cancel;
	atomic_init(&w->canceled, 0);
	w->fn = fn;
	w->ctx = ctx;
	vg_buf_init(&w->errbody, MAX_ERROR_BODY);
	if (!w->path || dup_opt(&w->label_selector, opts->label_selector) ||
	    dup_opt(&w->field_selector, opts->field_selector) ||
	    dup_opt(&w->rv, opts->resource_version)) {
		rc = vg_err_set(err, VG_NOMEM, "allocating watch");
		goto out;
	}
	w->multi = curl_multi_init();
	w->easy = curl_easy_init();
	if (!w->multi || !w->easy) {
		rc = vg_err_set(err, VG_NOMEM, "allocating curl handles");
		goto out;
	}
	*out = w;
	w = NULL;
	rc = VG_OK;
out:
	vg_kube_watch_free(w);
	vg_buf_cleanup(&path);
	return rc;
}

void vg_kube_watch_free(struct vg_kube_watch *w)
{
	if (!w)
		return;
	if (w->easy)
		curl_easy_cleanup(w->easy);
	if (w->multi)
		curl_multi_cleanup(w->multi);
	vg_buf_cleanup(&w->errbody);
	free(w->path);
	free(w->label_selector);
	free(w->field_selector);
	free(w->rv);
	free(w);
}

void vg_kube_watch_cancel(struct vg_kube_watch *w)
{
	atomic_store(&w->canceled, 1);
	/* Thread-safe by contract: interrupts curl_multi_poll() at once. */
	curl_multi_wakeup(w->multi);
}

const char *vg_kube_watch_resource_version(const struct vg_kube_watch *w)
{
	return w->rv;
}

int vg_kube_watch_set_resource_version(struct vg_kube_watch *w, const char *rv)
{
	char *copy = NULL;

	if (rv && !(copy = strdup(rv)))
		return VG_NOMEM;
	free(w->rv);
	w->rv = copy;
	return VG_OK;
}

static size_t on_stream(char *data, size_t size, size_t n, void *ctx)
{
	struct vg_kube_watch *w = ctx;
	size_t len = size * n;

	if (w->code == 0)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->code);
	if (w->code != 200) {
		/* An error answer: keep the Status (truncated if huge). */
		vg_buf_append(&w->errbody, data, len);
		return len;
	}
	w->stream_rc = vg_watch_parser_feed(&w->parser, data, len, w->err);
	/* Anything but "go on" aborts the transfer. */
	return w->stream_rc == VG_OK ? len : 0;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return is_canceled(ctx);
}

static int watch_query(const struct vg_kube_watch *w, struct vg_buf *q)
{
	int rc = kube_query_add(q, "watch", "1");
	char num[32];

	if (rc == VG_OK && !w->no_bookmarks)
		rc = kube_query_add(q, "allowWatchBookmarks", "true");
	if (rc == VG_OK)
		rc = kube_query_add(q, "resourceVersion", w->rv);
	if (rc == VG_OK)
		rc = kube_query_add(q, "labelSelector", w->label_selector);
	if (rc == VG_OK)
		rc = kube_query_add(q, "fieldSelector", w->field_selector);
	if (rc == VG_OK && w->timeout_seconds > 0) {
		snprintf(num, sizeof(num), "%ld", w->timeout_seconds);
		rc = kube_query_add(q, "timeoutSeconds", num);
	}
	return rc;
}

/* Drive the transfer until it ends or is cancelled; curl's result. */
static CURLcode run_transfer(struct vg_kube_watch *w, int *canceled)
{
	CURLcode result = CURLE_OK;
	CURLMsg *msg;
	int running = 1, left;

	*canceled = 0;
	if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (running) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK) {
			result = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (is_canceled(w)) {
			*canceled = 1;
			break;
		}
		if (curl_multi_poll(w->multi, NULL, 0, POLL_MS, NULL) !=
		    CURLM_OK) {
			result = CURLE_FAILED_INIT;
			break;
		}
	}
	while ((msg = curl_multi_info_read(w->multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->easy)
			result = msg->data.result;
	curl_multi_remove_handle(w->multi, w->easy);
	if (is_canceled(w))
		*canceled = 1;
	return result;
}

int vg_kube_watch_run(struct vg_kube_watch *w, struct vg_err *err)
{
	struct vg_kube_client *c = w->c;
	struct curl_slist *hdrs = NULL;
	struct vg_buf query;
	char errbuf[CURL_ERROR_SIZE] = "";
	uint64_t start = 0;
	CURLcode cc;
	int rc, canceled = 0, started = 0;

	vg_err_clear(err);
	vg_buf_init(&query, 0);
	vg_watch_parser_init(&w->parser, w->max_event, w->fn, w->ctx);
	vg_buf_reset(&w->errbody);
	w->err = err;
	w->code = 0;
	w->stream_rc = VG_OK;

	if (is_canceled(w)) {
		rc = vg_err_set(err, VG_CANCELED, "watch canceled");
		goto out;
	}
	rc = watch_query(w, &query);
	if (rc) {
		rc = vg_err_set(err, rc, "building query: %s", vg_strerror(rc));
		goto out;
	}
	if (w->rv && !(w->parser.resource_version = strdup(w->rv))) {
		rc = vg_err_set(err, VG_NOMEM, "copying resourceVersion");
		goto out;
	}
	rc = kube_rate_wait(c, &w->canceled, w->shared_cancel);
	if (rc) {
		rc = vg_err_set(err, rc, "watch canceled");
		goto out;
	}
	rc = kube_easy_setup(c, w->easy, "GET", w->path, vg_buf_str(&query),
	                     &hdrs, err);
	if (rc)
		goto out;
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(w->easy, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(w->easy, CURLOPT_NOPROGRESS, 0L);
	/* A watch mostly waits, and its events come a few KB at a time: a
	 * receive buffer of 4 KB instead of curl's 16 KB, held for as long
	 * as the watch runs (one per watched kind); longer lines are joined
	 * by the parser. */
	curl_easy_setopt(w->easy, CURLOPT_BUFFERSIZE, WATCH_RECV_BUFFER);
	/* The server ends the watch at timeoutSeconds; allow some slack. */
	if (w->timeout_seconds > 0)
		curl_easy_setopt(w->easy, CURLOPT_TIMEOUT,
		                 w->timeout_seconds + 30);

	start = vg_clock_now(c->clock);
	started = 1;
	cc = run_transfer(w, &canceled);
	if (w->code == 0)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->code);

	if (canceled) {
		rc = vg_err_set(err, VG_CANCELED, "watch canceled");
	} else if (w->stream_rc != VG_OK) {
		/* The parser or the callback ended it; err is filled. */
		rc = w->stream_rc == VG_WATCH_STOP ? VG_OK : w->stream_rc;
	} else if (w->code != 0 && w->code != 200) {
		rc = kube_err_from_body(w->errbody.data, w->errbody.len,
		                        w->code, err);
	} else if (cc != CURLE_OK) {
		rc = kube_curl_err(err, cc, errbuf, "WATCH", w->path);
	} else {
		/* The server closed the stream (timeoutSeconds elapsed). */
		rc = vg_watch_parser_finish(&w->parser, err);
		if (rc == VG_WATCH_STOP)
			rc = VG_OK;
	}
out:
	if (started)
		kube_observe(c, "GET", w->path, w->code, start, rc, true);
	/* Resume from the last version seen, whatever ended the stream. */
	if (w->parser.resource_version &&
	    (!w->rv || strcmp(w->rv, w->parser.resource_version) != 0)) {
		free(w->rv);
		w->rv = w->parser.resource_version;
		w->parser.resource_version = NULL;
	}
	vg_watch_parser_cleanup(&w->parser);
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	vg_buf_cleanup(&query);
	w->err = NULL;
	return rc;
}

int vg_kube_watch(struct vg_kube_client *c, const struct vg_kube_resource *r,
                  const char *ns, const struct vg_kube_watch_opts *opts,
                  vg_watch_fn fn, void *ctx, char **last_rv, struct vg_err *err)
{
	struct vg_kube_watch *w = NULL;
	int rc;

	if (last_rv)
		*last_rv = NULL;
	rc = vg_kube_watch_new(c, r, ns, opts, fn, ctx, &w, err);
	if (rc)
		return rc;
	rc = vg_kube_watch_run(w, err);
	if (last_rv && w->rv && !(*last_rv = strdup(w->rv)) && rc == VG_OK)
		rc = vg_err_set(err, VG_NOMEM, "copying resourceVersion");
	vg_kube_watch_free(w);
	return rc;
}
