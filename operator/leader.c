/* leader.c - Lease-based leader election. */
#include "leader.h"

#include "vigil/err.h"
#include "vigil/log.h"
#include "vigil/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct leader {
	struct vg_kube_client *client;
	struct leader_opts o;
	char *ns, *name, *identity;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int running;
	atomic_int stop;
	atomic_int leading;

	/* what we last saw of the Lease, and when (monotonic) */
	char *observed_holder;
	char *observed_rv;
	double observed_at;
	double renewed_at; /* last successful renew (monotonic) */
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct leader *leader_new(struct vg_kube_client *client,
			  const struct leader_opts *opts)
{
	struct leader *l = calloc(1, sizeof(*l));
	char host[128], id[192];

	if (!l)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	vg_cond_init_mono(&l->cond);
	l->client = client;
	l->o = *opts;
	if (l->o.lease_duration <= 0)
		l->o.lease_duration = 15;
	if (l->o.renew_deadline <= 0)
		l->o.renew_deadline = 10;
	if (l->o.retry_period <= 0)
		l->o.retry_period = 2;
	if (!opts->identity) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "unknown");
		host[sizeof(host) - 1] = '\0';
		snprintf(id, sizeof(id), "%s_%ld", host, (long)getpid());
	}
	l->ns = strdup(opts->ns);
	l->name = strdup(opts->name);
	l->identity = strdup(opts->identity ? opts->identity : id);
	if (!l->ns || !l->name || !l->identity) {
		leader_free(l);
		return NULL;
	}
	return l;
}

static json_t *lease_spec(const struct leader *l, const char *holder,
			  const char *acquire, long transitions)
{
	char now[40];

	vg_time_rfc3339(now, sizeof(now), 6); /* metav1.MicroTime */
	return json_pack("{s:s?,s:i,s:s,s:s,s:I}", "holderIdentity", holder,
			 "leaseDurationSeconds", (int)l->o.lease_duration,
			 "acquireTime", acquire ? acquire : now, "renewTime",
			 now, "leaseTransitions", (json_int_t)transitions);
}

static void observe(struct leader *l, const json_t *lease)
{
	const json_t *spec = json_object_get(lease, "spec");
	const char *holder =
		json_string_value(json_object_get(spec, "holderIdentity"));
	const char *rv = json_string_value(json_object_get(
		json_object_get(lease, "metadata"), "resourceVersion"));

	/* the clock starts when the record changes, as we see it */
	if (!l->observed_rv || !rv || strcmp(rv, l->observed_rv) != 0) {
		free(l->observed_rv);
		l->observed_rv = dup_or_null(rv);
		l->observed_at = vg_mono_s();
	}
	free(l->observed_holder);
	l->observed_holder = dup_or_null(holder && *holder ? holder : NULL);
}

/* Try to take or renew the Lease once; 1 when we hold it afterwards. */
static int try_acquire_or_renew(struct leader *l)
{
	struct vg_err err = { 0 };
	json_t *lease = NULL, *spec = NULL, *out = NULL;
	const json_t *cur;
	int rc, ok = 0;

	rc = vg_kube_get(l->client, &vg_kube_leases, l->ns, l->name, NULL,
			 &lease, &err);
	if (rc == VG_NOTFOUND) {
		spec = lease_spec(l, l->identity, NULL, 0);
		lease = json_pack("{s:s,s:s,s:{s:s,s:s},s:O}", "apiVersion",
				  "coordination.k8s.io/v1", "kind", "Lease",
				  "metadata", "name", l->name, "namespace",
				  l->ns, "spec", spec);
		rc = vg_kube_create(l->client, &vg_kube_leases, l->ns, lease,
				    NULL, &out, &err);
		if (rc == VG_OK) {
			observe(l, out);
			ok = 1;
		}
		goto out;
	}
	if (rc != VG_OK)
		goto out;
	observe(l, lease);
	cur = json_object_get(lease, "spec");
	int mine = l->observed_holder &&
		   strcmp(l->observed_holder, l->identity) == 0;
	if (!mine && l->observed_holder &&
	    vg_mono_s() < l->observed_at + l->o.lease_duration)
		goto out; /* held by another, still fresh */

	const char *acq = json_string_value(json_object_get(cur, "acquireTime"));
	long transitions = (long)json_integer_value(
		json_object_get(cur, "leaseTransitions"));
	spec = lease_spec(l, l->identity, mine ? acq : NULL,
			  mine ? transitions : transitions + 1);
	json_object_set(lease, "spec", spec);
	/* conditional on the resourceVersion we read: one winner */
	rc = vg_kube_update(l->client, &vg_kube_leases, l->ns, lease, NULL,
			    &out, &err);
	if (rc == VG_OK) {
		observe(l, out);
		ok = 1;
	}
out:
	if (!ok && rc != VG_OK)
		vg_debug("lease attempt failed", "lease", l->name, "err",
			 err.msg);
	json_decref(lease);
	json_decref(spec);
	json_decref(out);
	return ok;
}

static int wait_or_stop(struct leader *l, double s)
{
	struct timespec ts;

	vg_mono_deadline(&ts, s);
	pthread_mutex_lock(&l->mu);
	while (!atomic_load(&l->stop))
		if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&l->mu);
	return atomic_load(&l->stop);
}

static void release(struct leader *l)
{
	struct vg_err err = { 0 };
	json_t *lease = NULL;

	if (vg_kube_get(l->client, &vg_kube_leases, l->ns, l->name, NULL,
			&lease, &err) != VG_OK)
		return;
	json_t *spec = json_object_get(lease, "spec");
	const char *holder =
		json_string_value(json_object_get(spec, "holderIdentity"));
	if (holder && strcmp(holder, l->identity) == 0) {
		/* an empty holder with a 1 s duration: free at once */
		json_object_del(spec, "holderIdentity");
		json_object_set_new(spec, "leaseDurationSeconds",
				    json_integer(1));
		vg_kube_update(l->client, &vg_kube_leases, l->ns, lease, NULL,
			       NULL, &err);
	}
	json_decref(lease);
}

static void *run(void *arg)
{
	struct leader *l = arg;

	while (!atomic_load(&l->stop)) {
		/* candidate: try every retry period */
		if (!try_acquire_or_renew(l)) {
			if (wait_or_stop(l, l->o.retry_period))
				break;
			continue;
		}
		l->renewed_at = vg_mono_s();
		atomic_store(&l->leading, 1);
		vg_info("became leader", "lease", l->name, "identity",
			l->identity);
		if (l->o.on_started)
			l->o.on_started(l->o.ctx);
		/* leader: renew; give up past the renew deadline */
		while (!atomic_load(&l->stop)) {
			if (wait_or_stop(l, l->o.retry_period))
				break;
			if (try_acquire_or_renew(l)) {
				l->renewed_at = vg_mono_s();
				continue;
			}
			if (vg_mono_s() - l->renewed_at >= l->o.renew_deadline)
				break;
		}
		atomic_store(&l->leading, 0);
		if (atomic_load(&l->stop)) {
			release(l);
		} else {
			vg_warn("lost leadership", "lease", l->name,
				"identity", l->identity);
		}
		if (l->o.on_stopped)
			l->o.on_stopped(l->o.ctx);
	}
	return NULL;
}

int leader_start(struct leader *l)
{
	int rc = VG_OK;

	pthread_mutex_lock(&l->mu);
	if (!l->running) {
		atomic_store(&l->stop, 0);
		if (pthread_create(&l->thread, NULL, run, l) == 0)
			l->running = 1;
		else
			rc = VG_INTERNAL;
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void leader_stop(struct leader *l)
{
	int was;

	pthread_mutex_lock(&l->mu);
	atomic_store(&l->stop, 1);
	pthread_cond_broadcast(&l->cond);
	was = l->running;
	l->running = 0;
	pthread_mutex_unlock(&l->mu);
	if (was)
		pthread_join(l->thread, NULL);
}

void leader_free(struct leader *l)
{
	if (!l)
		return;
	if (l->running)
		leader_stop(l);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->observed_holder);
	free(l->observed_rv);
	free(l);
}

int leader_is_leader(const struct leader *l)
{
	return atomic_load(&l->leading);
}

const char *leader_identity(const struct leader *l)
{
	return l->identity;
}
