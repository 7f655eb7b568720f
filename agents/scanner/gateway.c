/* gateway.c - HTTP calls to the gateway, the batch sender thread and the
 * emergency-stop poller (see gateway.h). */
#include "gateway.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/timeutil.h"

#define REPLY_MAX (64 * 1024)

static void request_id(char out[33])
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)rand();
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct vg_buf *b = arg;

	/* a reply beyond the limit is cut, not fatal */
	vg_buf_append(b, p, size * n);
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct gw_reply *r = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char buf[32], *end;
		size_t k = len - 12 < sizeof(buf) - 1 ? len - 12
						      : sizeof(buf) - 1;
		long v;

		memcpy(buf, p + 12, k);
		buf[k] = '\0';
		errno = 0;
		v = strtol(buf, &end, 10);
		while (*end == ' ' || *end == '\r' || *end == '\n')
			end++;
		/* delay-seconds only; an HTTP date falls back to backoff */
		if (!errno && end != buf && !*end && v >= 0 && v <= 3600)
			r->retry_after_ms = v * 1000;
	}
	return len;
}

/* One request; fills reply (status 0 on a network error). */
static int request(const struct gw_client *gw, const char *method,
		   const char *path, const char *body, size_t len,
		   struct gw_reply *reply, struct vg_buf *out,
		   struct vg_err *err)
{
	struct curl_slist *hdrs = NULL;
	char url[1024], auth[4200], rid[64];
	CURLcode rc;
	CURL *h;
	int n;

	memset(reply, 0, sizeof(*reply));
	reply->retry_after_ms = -1;
	request_id(reply->request_id);
	n = snprintf(url, sizeof(url), "%s%s", gw->base, path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return vg_err_set(err, VG_INVAL, "gateway URL too long");
	n = snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		     gw->token);
	if (n < 0 || (size_t)n >= sizeof(auth))
		return vg_err_set(err, VG_INVAL, "token too long");
	snprintf(rid, sizeof(rid), "X-Request-ID: %s", reply->request_id);
	h = curl_easy_init();
	if (!h)
		return vg_err_set(err, VG_NOMEM, "curl_easy_init failed");
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, rid);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body) {
		hdrs = curl_slist_append(hdrs,
					 "Content-Type: application/json");
		hdrs = curl_slist_append(hdrs, "Expect:");
	}
	explicit_bzero(auth, sizeof(auth));
	if (!hdrs) {
		curl_easy_cleanup(h);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)gw->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(gw->timeout_ms < 5000 ? gw->timeout_ms : 5000));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil-agent");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, reply);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK)
		return vg_err_set(err, VG_HTTP, "%s %s: %s", method, path,
				  curl_easy_strerror(rc));
	return VG_OK;
}

/* {"error":{"message":"..."}} of the gateway's error replies */
static void error_message(const struct vg_buf *b, struct gw_reply *r)
{
	json_t *j = NULL;

	if (b->len && vg_json_loadb(b->data, b->len, 0, &j, NULL) == VG_OK) {
		const char *m = vg_json_get_str(j, "error.message", NULL);

		if (!m)
			m = vg_json_get_str(j, "message", NULL);
		if (m)
			snprintf(r->message, sizeof(r->message), "%s", m);
	}
	json_decref(j);
	if (!r->message[0] && b->len)
		snprintf(r->message, sizeof(r->message), "%.200s", b->data);
}

int gw_post_batch(const struct gw_client *gw, const char *body, size_t len,
		  struct gw_reply *reply, struct vg_err *err)
{
	char path[128];
	struct vg_buf out;
	int rc;

	snprintf(path, sizeof(path), "/v1/tenants/%s/ingest", gw->tenant);
	vg_buf_init(&out, REPLY_MAX);
	rc = request(gw, "POST", path, body, len, reply, &out, err);
	if (rc == VG_OK && (reply->status < 200 || reply->status > 299))
		error_message(&out, reply);
	vg_buf_cleanup(&out);
	return rc;
}

int gw_get_estop(const struct gw_client *gw, int *engaged, struct vg_err *err)
{
	struct gw_reply reply;
	struct vg_buf out;
	json_t *j = NULL;
	int rc;

	vg_buf_init(&out, REPLY_MAX);
	rc = request(gw, "GET", "/v1/emergency-stop", NULL, 0, &reply, &out,
		     err);
	if (rc == VG_OK && reply.status != 200) {
		error_message(&out, &reply);
		rc = vg_err_set(err, VG_HTTP, "GET /v1/emergency-stop: %ld %s",
				reply.status, reply.message);
	}
	if (rc == VG_OK) {
		rc = vg_json_loadb(out.data, out.len, 0, &j, err);
		if (rc == VG_OK && !json_is_boolean(json_object_get(j, "engaged")))
			rc = vg_err_set(err, VG_PARSE,
					"emergency stop reply has no boolean "
					"\"engaged\"");
		if (rc == VG_OK)
			*engaged = vg_json_get_bool(j, "engaged", 0);
	}
	json_decref(j);
	vg_buf_cleanup(&out);
	return rc;
}

int gw_retryable(long status)
{
	return status == 0 || status == 408 || status == 429 || status >= 500;
}

long gw_backoff_ms(int attempt, long base_ms, long max_ms)
{
	long d = base_ms;
	unsigned int r = 0;

	for (int i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned int)rand();
	return d - (long)(r % (unsigned int)(d / 2 + 1));
}

/* --- the sender thread ------------------------------------------------- */

struct sender {
	const struct gw_client *gw;
	struct spool *sp;
	long base_ms, max_ms;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop, kicked, drained;
	size_t rejected, delivered;
};

/* Sleep up to ms unless stopped; 1 when stopped. */
static int nap(struct sender *s, long ms)
{
	struct timespec ts;
	int stopped;

	vg_mono_deadline(&ts, (double)ms / 1000.0);
	pthread_mutex_lock(&s->mu);
	while (!s->stop &&
	       pthread_cond_timedwait(&s->cond, &s->mu, &ts) != ETIMEDOUT)
		;
	stopped = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stopped;
}

/* Deliver batch `seq`: 0 done (accepted or rejected), -1 stopped. */
static int deliver(struct sender *s, uint64_t seq)
{
	struct vg_buf body;
	struct vg_err err = {0};
	struct gw_reply reply;
	char id[160], st[16], attempt_s[16], wait_s[24];
	int attempt = 0, rc;

	spool_batch_id(s->sp, seq, id, sizeof(id));
	vg_buf_init(&body, 0);
	if (spool_load(s->sp, seq, &body, &err)) {
		vg_error("cannot read spooled batch", "batch_id", id, "err",
			 err.msg);
		vg_buf_cleanup(&body);
		spool_reject(s->sp, seq, NULL);
		pthread_mutex_lock(&s->mu);
		s->rejected++;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	for (;;) {
		long wait;

		rc = gw_post_batch(s->gw, body.data, body.len, &reply, &err);
		snprintf(st, sizeof(st), "%ld", reply.status);
		if (rc == VG_OK && reply.status >= 200 && reply.status < 300) {
			vg_debug("batch delivered", "batch_id", id, "status",
				 st, "request_id", reply.request_id);
			spool_done(s->sp, seq, NULL);
			pthread_mutex_lock(&s->mu);
			s->delivered++;
			pthread_mutex_unlock(&s->mu);
			break;
		}
		if (rc == VG_OK && !gw_retryable(reply.status)) {
			vg_error("gateway rejected batch; kept in the spool as "
				 ".rejected",
				 "batch_id", id, "status", st, "err",
				 reply.message, "request_id", reply.request_id);
			spool_reject(s->sp, seq, NULL);
			pthread_mutex_lock(&s->mu);
			s->rejected++;
			pthread_mutex_unlock(&s->mu);
			break;
		}
		wait = gw_backoff_ms(attempt, s->base_ms, s->max_ms);
		if (reply.retry_after_ms >= 0)
			wait = reply.retry_after_ms;
		snprintf(attempt_s, sizeof(attempt_s), "%d", attempt + 1);
		snprintf(wait_s, sizeof(wait_s), "%ld", wait);
		vg_warn("batch not delivered; will retry", "batch_id", id,
			"status", st, "err",
			rc == VG_OK ? reply.message : err.msg, "attempt",
			attempt_s, "retry_in_ms", wait_s);
		attempt++;
		if (nap(s, wait)) {
			vg_buf_cleanup(&body);
			return -1;
		}
	}
	vg_buf_cleanup(&body);
	return 0;
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	for (;;) {
		uint64_t *seqs = NULL;
		size_t n = 0;
		struct vg_err err = {0};
		int stop = 0;

		pthread_mutex_lock(&s->mu);
		s->kicked = 0;
		pthread_mutex_unlock(&s->mu);
		if (spool_pending(s->sp, &seqs, &n, &err))
			vg_error("cannot list the spool", "err", err.msg);
		for (size_t i = 0; i < n && !stop; i++)
			stop = deliver(s, seqs[i]) < 0;
		free(seqs);
		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		if (!s->kicked) {
			/* n == 0 and no kick since the listing: all sent */
			s->drained = n == 0;
			pthread_cond_broadcast(&s->cond);
			if (n == 0)
				while (!s->kicked && !s->stop)
					pthread_cond_wait(&s->cond, &s->mu);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

int sender_start(const struct gw_client *gw, struct spool *sp, long base_ms,
		 long max_ms, struct sender **out, struct vg_err *err)
{
	struct sender *s = calloc(1, sizeof(*s));

	if (!s)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	s->gw = gw;
	s->sp = sp;
	s->base_ms = base_ms;
	s->max_ms = max_ms;
	pthread_mutex_init(&s->mu, NULL);
	if (vg_cond_init_mono(&s->cond) ||
	    pthread_create(&s->th, NULL, sender_main, s)) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		return vg_err_set(err, VG_INTERNAL, "cannot start the sender");
	}
	*out = s;
	return VG_OK;
}

void sender_kick(struct sender *s)
{
	pthread_mutex_lock(&s->mu);
	s->kicked = 1;
	s->drained = 0;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

size_t sender_flush(struct sender *s, long timeout_ms)
{
	struct timespec ts;
	uint64_t *seqs = NULL;
	size_t n = 0;

	sender_kick(s);
	vg_mono_deadline(&ts, (double)timeout_ms / 1000.0);
	pthread_mutex_lock(&s->mu);
	while (!s->drained &&
	       pthread_cond_timedwait(&s->cond, &s->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->mu);
	if (spool_pending(s->sp, &seqs, &n, NULL))
		n = 1;
	free(seqs);
	return n;
}

size_t sender_rejected(struct sender *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->rejected;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t sender_delivered(struct sender *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->delivered;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void sender_free(struct sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	/* an HTTP request in progress ends within the client timeout */
	pthread_join(s->th, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* --- the emergency-stop poller ----------------------------------------- */

struct estop {
	const struct gw_client *gw;
	int interval_ms;
	atomic_int *engaged, *stop_flag;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
};

static void *estop_main(void *arg)
{
	struct estop *e = arg;
	int failing = 0;

	for (;;) {
		struct vg_err err = {0};
		struct timespec ts;
		int engaged = 0, stop;

		if (gw_get_estop(e->gw, &engaged, &err) == VG_OK) {
			failing = 0;
			if (engaged && !atomic_exchange(e->engaged, 1)) {
				atomic_store(e->stop_flag, 1);
				vg_warn("emergency stop engaged");
			}
		} else if (!failing++) {
			vg_warn("cannot read the emergency stop", "err",
				err.msg);
		}
		vg_mono_deadline(&ts, (double)e->interval_ms / 1000.0);
		pthread_mutex_lock(&e->mu);
		while (!e->stop &&
		       pthread_cond_timedwait(&e->cond, &e->mu, &ts) !=
			       ETIMEDOUT)
			;
		stop = e->stop;
		pthread_mutex_unlock(&e->mu);
		if (stop)
			return NULL;
	}
}

int estop_start(const struct gw_client *gw, int interval_ms,
		atomic_int *engaged, atomic_int *stop, struct estop **out,
		struct vg_err *err)
{
	struct estop *e = calloc(1, sizeof(*e));

	if (!e)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	e->gw = gw;
	e->interval_ms = interval_ms;
	e->engaged = engaged;
	e->stop_flag = stop;
	pthread_mutex_init(&e->mu, NULL);
	if (vg_cond_init_mono(&e->cond) ||
	    pthread_create(&e->th, NULL, estop_main, e)) {
		pthread_mutex_destroy(&e->mu);
		free(e);
		return vg_err_set(err, VG_INTERNAL,
				  "cannot start the emergency-stop poller");
	}
	*out = e;
	return VG_OK;
}

void estop_free(struct estop *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->th, NULL);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
