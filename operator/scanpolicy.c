/*
 * scanpolicy.c - the ScanPolicy reconciler: validate against the tenant's
 * scope, decide whether a run is due, start it as an agent Job within the
 * tenant's quota, prune finished runs, report in the status.
 *
 * Everything it reads comes from the caches (policies, Jobs, Tenants,
 * Platforms), so a reconcile with nothing due makes no request at all.
 * A change of a Platform (emergency stop) or of a Tenant (scope, quota)
 * enqueues the policies it concerns through the watches below; a Job's
 * change enqueues its policy as its owner.
 */
#include "scanpolicy.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform.h"
#include "resources.h"
#include "tenant.h"
#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/scope.h"
#include "vigil/strmap.h"
#include "vigil/timeutil.h"

#define MSG_LEN 512
/* a Job created but not yet in the cache counts for the quota this long:
 * the informer shows it within milliseconds, and a Job deleted before any
 * quota check saw it (its policy deleted) must not hold a slot for long */
#define PENDING_SECONDS 5

/*
 * Quota checks and starts are serialised, and the Jobs just created are
 * remembered until the cache shows them: two policies of one tenant
 * reconciled at once must not both take the last free slot.
 */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vg_strmap pending; /* "ns/job" -> int64_t created (mono) */
static pthread_once_t pending_once = PTHREAD_ONCE_INIT;

static void pending_init(void)
{
	vg_strmap_init(&pending, free);
}

static void pending_add(const char *ns, const char *job)
{
	char key[320];
	int64_t *t = malloc(sizeof(*t));

	if (!t)
		return; /* only a weaker quota check */
	*t = (int64_t)vg_mono_s();
	snprintf(key, sizeof(key), "%s/%s", ns, job);
	if (vg_strmap_put(&pending, key, t) != VG_OK)
		free(t);
}

/* --- the schedule --------------------------------------------------------- */

void scanpolicy_due(const struct vg_cron *c, const struct vg_tz *tz,
		    int64_t last, int64_t now, int64_t deadline,
		    struct scanpolicy_due *out)
{
	int64_t t = last, x;

	memset(out, 0, sizeof(*out));
	/* count forward from the last run, up to the cap */
	while (out->missed <= SCANPOLICY_MAX_MISSED &&
	       vg_cron_next(c, tz, t, &x) == VG_OK && x <= now) {
		out->when = t = x;
		out->missed++;
	}
	/* more than that: find the latest by looking back a growing window
	 * from now rather than walking forward from a `last` years old */
	for (int64_t w = 3600; out->missed > SCANPOLICY_MAX_MISSED; w *= 4) {
		int64_t start = now - w > last ? now - w : last;

		for (t = start; vg_cron_next(c, tz, t, &x) == VG_OK && x <= now;)
			out->when = t = x;
		if (t > start || start == last)
			break;
	}
	if (vg_cron_next(c, tz, now, &out->next) != VG_OK)
		out->next = 0;
	out->too_late = out->when && deadline >= 0 && now - out->when > deadline;
}

/* --- one reconcile ------------------------------------------------------ */

struct runinfo {
	json_t *job;	/* borrowed from `jobs` */
	int finished;	/* 1 succeeded, 2 failed, 0 active */
	int64_t ended;	/* completion or failure time */
	int64_t started;
};

struct sp {
	struct rec *rc;
	const struct scanpolicy_env *env;
	int64_t now;
	json_t *jobs;		/* this policy's Jobs (new array) */
	struct runinfo *runs;
	size_t nruns, nactive;
	const json_t *tenant;	/* borrowed from `tenants` */
	json_t *tenants;
	json_t *platform;
	char tenant_ns[64];

	/* what the conditions say */
	const char *blocked;	/* Ready=False reason, or NULL */
	char blocked_msg[MSG_LEN];
	int out_of_scope, quota, estop;
	char scope_msg[MSG_LEN], quota_msg[MSG_LEN];
	const char *ready_reason;
	char ready_msg[MSG_LEN];

	/* status fields carried or set */
	int64_t last_schedule, last_success, next_schedule;
	const char *run_now_done; /* status.lastRunNow after this reconcile */
	double after;		  /* requeue, seconds; 0: none */
};

static int64_t now_of(const struct scanpolicy_env *env)
{
	return env && env->now ? env->now() : (int64_t)time(NULL);
}

static int64_t time_at(const json_t *obj, const char *path)
{
	int64_t t;

	return vg_time_parse(vg_json_get_str(obj, path, NULL), &t) == 0 ? t : 0;
}

static void requeue(struct sp *s, double after)
{
	if (after < 1)
		after = 1;
	if (s->after == 0 || after < s->after)
		s->after = after;
}

__attribute__((format(printf, 3, 4))) static void
block(struct sp *s, const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (s->blocked)
		return; /* the first reason is the one reported */
	s->blocked = reason;
	va_start(ap, fmt);
	vsnprintf(s->blocked_msg, sizeof(s->blocked_msg), fmt, ap);
	va_end(ap);
}

/* A Job's outcome from its conditions. */
static void job_state(const json_t *job, struct runinfo *ri)
{
	const json_t *conds = vg_json_get(job, "status.conditions"), *c;
	size_t i;

	ri->finished = 0;
	ri->ended = 0;
	ri->started = time_at(job, "status.startTime");
	if (!ri->started)
		ri->started = time_at(job, "metadata.creationTimestamp");
	json_array_foreach(conds, i, c)
	{
		const char *type = vg_json_get_str(c, "type", "");

		if (strcmp(vg_json_get_str(c, "status", ""), "True") != 0)
			continue;
		if (strcmp(type, "Complete") == 0)
			ri->finished = 1;
		else if (strcmp(type, "Failed") == 0)
			ri->finished = 2;
		else
			continue;
		ri->ended = time_at(job, "status.completionTime");
		if (!ri->ended)
			ri->ended = time_at(c, "lastTransitionTime");
	}
}

/* A Job deleted before the cache showed it no longer counts. */
static void pending_del(const char *ns, const char *job)
{
	char key[320];

	pthread_once(&pending_once, pending_init);
	snprintf(key, sizeof(key), "%s/%s", ns, job);
	pthread_mutex_lock(&start_mu);
	vg_strmap_del(&pending, key);
	pthread_mutex_unlock(&start_mu);
}

/* This policy's Jobs from the cache, with their states. */
static int load_jobs(struct sp *s)
{
	const char *uid = vg_json_get_str(s->rc->obj, "metadata.uid", "");
	json_t *all = ctl_list_cached(s->rc->m, &vg_kube_jobs), *j, *ref;
	size_t i, k;

	s->jobs = json_array();
	if (!s->jobs) {
		json_decref(all);
		return VG_NOMEM;
	}
	json_array_foreach(all, i, j)
	{
		if (strcmp(vg_json_get_str(j, "metadata.namespace", ""),
			   s->rc->ns) != 0)
			continue;
		json_array_foreach(vg_json_get(j, "metadata.ownerReferences"), k,
				   ref)
			if (json_is_true(json_object_get(ref, "controller")) &&
			    strcmp(vg_json_get_str(ref, "uid", ""), uid) == 0) {
				json_array_append(s->jobs, j);
				break;
			}
	}
	json_decref(all);
	s->nruns = json_array_size(s->jobs);
	s->runs = calloc(s->nruns + 1, sizeof(*s->runs));
	if (!s->runs)
		return VG_NOMEM;
	json_array_foreach(s->jobs, i, j)
	{
		s->runs[i].job = j;
		job_state(j, &s->runs[i]);
		if (!s->runs[i].finished)
			s->nactive++;
	}
	return VG_OK;
}

/* The Tenant whose namespace holds the policy. */
static void find_tenant(struct sp *s)
{
	json_t *t;
	size_t i;

	s->tenants = ctl_list_cached(s->rc->m, &vigil_tenants);
	json_array_foreach(s->tenants, i, t)
	{
		char ns[64];

		if (tenant_namespace(t, ns, sizeof(ns), NULL) == VG_OK &&
		    strcmp(ns, s->rc->ns) == 0) {
			s->tenant = t;
			snprintf(s->tenant_ns, sizeof(s->tenant_ns), "%s", ns);
			return;
		}
	}
}

/* The policy's targets within the tenant's scope? Fills the OutOfScope
 * condition; 1 when a run may go ahead. */
static int check_scope(struct sp *s)
{
	const json_t *p = s->rc->obj;
	const char *tname = vg_json_get_str(s->tenant, "metadata.name", "?");
	struct vg_scope targets, exclude, allowed, eff;
	const struct vg_scope_item *bad = NULL;
	struct vg_err err;
	unsigned tflags = vg_json_get_bool(p, "spec.allowLoopback", 0)
				  ? VG_SCOPE_ALLOW_LOOPBACK
				  : 0;
	int ok = 0;
	const json_t *v;
	size_t i;

	vg_scope_init(&targets);
	vg_scope_init(&exclude);
	vg_scope_init(&allowed);
	vg_scope_init(&eff);
	vg_err_clear(&err);
	json_array_foreach(vg_json_get(p, "spec.targets"), i, v)
		if (vg_scope_add(&targets, json_string_value(v), tflags,
				 &err) != VG_OK)
			goto refused;
	json_array_foreach(vg_json_get(p, "spec.excludeTargets"), i, v)
		if (vg_scope_add(&exclude, json_string_value(v),
				 VG_SCOPE_ANY_ADDRESS, &err) != VG_OK)
			goto refused;
	json_array_foreach(vg_json_get(s->tenant, "spec.allowedTargets"), i, v)
		if (vg_scope_add(&allowed, json_string_value(v),
				 VG_SCOPE_WILDCARD | VG_SCOPE_ANY_ADDRESS,
				 &err) != VG_OK) {
			snprintf(s->scope_msg, sizeof(s->scope_msg),
				 "Tenant %s: allowedTargets: %s", tname,
				 err.msg);
			goto out;
		}
	if (targets.n == 0) {
		snprintf(s->scope_msg, sizeof(s->scope_msg),
			 "spec.targets is empty");
		goto out;
	}
	if (vg_scope_subtract(&targets, &exclude, &eff, &err) != VG_OK)
		goto refused;
	if (!vg_scope_covers(&allowed, &eff, &bad)) {
		snprintf(s->scope_msg, sizeof(s->scope_msg),
			 "target %s is outside Tenant %s's allowedTargets",
			 bad ? bad->text : "?", tname);
		goto out;
	}
	ok = 1;
	goto out;
refused:
	snprintf(s->scope_msg, sizeof(s->scope_msg), "%s", err.msg);
out:
	vg_scope_cleanup(&targets);
	vg_scope_cleanup(&exclude);
	vg_scope_cleanup(&allowed);
	vg_scope_cleanup(&eff);
	s->out_of_scope = !ok;
	return ok;
}

/* 1 when the Job a trigger names exists already: in the cache, or
 * created by this process and not cached yet. */
static int run_exists(struct sp *s, const char *trigger, int64_t when,
		      const char *run_now)
{
	char name[64], key[320];
	json_t *job;
	int found;

	if (scanpolicy_job_name(s->rc->name, trigger, when, run_now, name,
				sizeof(name)) != VG_OK)
		return 0;
	job = ctl_get_cached(s->rc->m, &vg_kube_jobs, s->rc->ns, name);
	found = job != NULL;
	json_decref(job);
	if (!found) {
		pthread_once(&pending_once, pending_init);
		snprintf(key, sizeof(key), "%s/%s", s->rc->ns, name);
		pthread_mutex_lock(&start_mu);
		found = vg_strmap_has(&pending, key);
		pthread_mutex_unlock(&start_mu);
	}
	return found;
}

/* Delete every active run (emergency stop, scope withdrawn, Replace). */
static int stop_active(struct sp *s, const char *why)
{
	int rc = VG_OK;

	for (size_t i = 0; i < s->nruns; i++) {
		const char *name;

		if (s->runs[i].finished)
			continue;
		name = vg_json_get_str(s->runs[i].job, "metadata.name", "");
		if (ctl_delete(s->rc, &vg_kube_jobs, s->rc->ns, name) != VG_OK) {
			rc = REC_ERROR;
			continue;
		}
		pending_del(s->rc->ns, name);
		ctl_event(s->rc, "Warning", "RunStopped",
			  "deleted running Job %s: %s", name, why);
		s->runs[i].finished = 3; /* gone */
		s->nactive--;
	}
	return rc;
}

/* Active scan Jobs in the tenant's namespace, every policy's. */
static long tenant_active_runs(struct sp *s)
{
	json_t *all = ctl_list_cached(s->rc->m, &vg_kube_jobs), *j;
	struct runinfo ri;
	long n = 0;
	size_t i;

	json_array_foreach(all, i, j)
	{
		if (strcmp(vg_json_get_str(j, "metadata.namespace", ""),
			   s->rc->ns) != 0 ||
		    !json_object_get(vg_json_get(j, "metadata.labels"),
				     SCANPOLICY_LABEL))
			continue;
		job_state(j, &ri);
		n += !ri.finished;
	}
	json_decref(all);
	/* created by us, not in the cache yet */
	{
		size_t pos = 0, plen = strlen(s->rc->ns);
		const char *key;
		void *val;
		int64_t now = (int64_t)vg_mono_s();

		while (vg_strmap_next(&pending, &pos, &key, &val)) {
			const char *job = key + plen + 1;
			json_t *cached;

			if (strncmp(key, s->rc->ns, plen) != 0 ||
			    key[plen] != '/')
				continue;
			cached = ctl_get_cached(s->rc->m, &vg_kube_jobs,
						s->rc->ns, job);
			if (cached || now - *(int64_t *)val > PENDING_SECONDS) {
				json_decref(cached);
				vg_strmap_del(&pending, key);
				pos = 0; /* the map changed: start over */
				continue;
			}
			n++;
		}
	}
	return n;
}

static const char *platform_image(struct sp *s, char *buf, size_t size)
{
	const char *reg, *ver;

	if (s->env && s->env->agent_image)
		return s->env->agent_image;
	if (!s->platform)
		return SCANPOLICY_DEFAULT_AGENT_IMAGE ":latest";
	reg = vg_json_get_str(s->platform, "spec.imageRegistry",
			      "ghcr.io/vigil-dev");
	ver = vg_json_get_str(s->platform, "spec.version", "latest");
	snprintf(buf, size, "%s/vigil-agent:%s", reg, ver);
	return buf;
}

/* Start one run. VG_OK, or an error in rc->err. */
static int start_run(struct sp *s, const char *trigger, int64_t scheduled,
		     const char *run_now)
{
	struct scanpolicy_run run = { 0 };
	char name[64], image[512];
	json_t *job = NULL;
	int rc;

	rc = scanpolicy_job_name(s->rc->name, trigger, scheduled, run_now,
				 name, sizeof(name));
	if (rc != VG_OK)
		return vg_err_set(&s->rc->err, rc, "Job name too long");
	/* started before (the status saying so not cached yet): the same
	 * run, since its name derives from what triggered it */
	job = ctl_get_cached(s->rc->m, &vg_kube_jobs, s->rc->ns, name);
	if (job) {
		json_decref(job);
		return VG_OK;
	}
	run.job_name = name;
	run.trigger = trigger;
	run.scheduled = scheduled;
	run.tenant = vg_json_get_str(s->tenant, "metadata.name", "");
	run.tenant_id = vg_json_get_str(s->tenant, "status.databaseID", NULL);
	run.allowed = vg_json_get(s->tenant, "spec.allowedTargets");
	run.max_pods = (int)vg_json_get_int(s->tenant,
					    "spec.quota.maxAgentPods", 10);
	run.image = platform_image(s, image, sizeof(image));
	run.gateway_url = s->env && s->env->gateway_url
				  ? s->env->gateway_url
				  : vg_json_get_str(s->platform,
						    "status.endpoint", NULL);
	run.token_secret = TENANT_AGENT_SECRET;
	rc = scanpolicy_job(s->rc->obj, &run, &job, &s->rc->err);
	if (rc == VG_INVAL) {
		/* not ready to run (no endpoint, no tenant id yet): wait */
		block(s, "NotReady", "%s", s->rc->err.msg);
		requeue(s, 10);
		return VG_OK;
	}
	if (rc == VG_OK)
		rc = ctl_create_once(s->rc, &vg_kube_jobs, job);
	json_decref(job);
	if (rc != VG_OK)
		return rc;
	pending_add(s->rc->ns, name);
	ctl_event(s->rc, "Normal", "RunStarted",
		  "created Job %s (%s, %d shard%s)", name, trigger,
		  scanpolicy_shards(s->rc->obj, run.max_pods),
		  scanpolicy_shards(s->rc->obj, run.max_pods) == 1 ? "" : "s");
	vg_info("scan run started", "controller", "scanpolicy", "namespace",
		s->rc->ns, "name", s->rc->name, "job", name, "trigger",
		trigger, "reconcile_id", s->rc->id);
	s->nactive++;
	return VG_OK;
}

/* Keep the newest finished Jobs of each outcome up to the limits. */
static int prune_history(struct sp *s)
{
	long keep[3] = { 0,
			 vg_json_get_int(s->rc->obj,
					 "spec.successfulRunsHistoryLimit", 3),
			 vg_json_get_int(s->rc->obj,
					 "spec.failedRunsHistoryLimit", 1) };
	int rc = VG_OK;

	for (int outcome = 1; outcome <= 2; outcome++)
		for (;;) {
			long n = 0;
			struct runinfo *oldest = NULL;

			for (size_t i = 0; i < s->nruns; i++) {
				struct runinfo *r = &s->runs[i];

				if (r->finished != outcome)
					continue;
				n++;
				if (!oldest || r->ended < oldest->ended)
					oldest = r;
			}
			if (n <= keep[outcome])
				break;
			if (ctl_delete(s->rc, &vg_kube_jobs, s->rc->ns,
				       vg_json_get_str(oldest->job,
						       "metadata.name", "")) !=
			    VG_OK)
				rc = VG_IO;
			oldest->finished = 3;
		}
	return rc;
}

/* Decide and start what is due. VG_OK or an API error. */
static int schedule(struct sp *s)
{
	const json_t *p = s->rc->obj;
	const char *sched = vg_json_get_str(p, "spec.schedule", NULL);
	const char *zone = vg_json_get_str(p, "spec.timeZone", NULL);
	/* (a key with dots: not through a vg_json path) */
	const char *run_now = json_string_value(
		json_object_get(vg_json_get(p, "metadata.annotations"),
				SCANPOLICY_RUN_NOW_ANNOTATION));
	const char *policy = vg_json_get_str(p, "spec.concurrencyPolicy",
					     "Forbid");
	struct scanpolicy_due due = { 0 };
	struct vg_cron cron;
	struct vg_tz *tz = NULL;
	struct vg_err err;
	const char *trigger = NULL;
	int64_t when = 0, limit;
	int rc = VG_OK;

	if (sched) {
		vg_err_clear(&err);
		if (vg_cron_parse(sched, &cron, &err) != VG_OK ||
		    vg_tz_load(zone, &tz, &err) != VG_OK) {
			block(s, "InvalidSchedule", "%s", err.msg);
			return VG_OK;
		}
		scanpolicy_due(&cron, tz, s->last_schedule ? s->last_schedule
							   : time_at(p, "metadata.creationTimestamp"),
			       s->now,
			       vg_json_get_int(p, "spec.startingDeadlineSeconds",
					       -1),
			       &due);
		vg_tz_free(tz);
		s->next_schedule = due.next;
		if (!due.next && !due.when)
			block(s, "InvalidSchedule",
			      "schedule \"%s\" never fires", sched);
		if (due.next)
			requeue(s, (double)(due.next - s->now));
	}
	if (s->estop) {
		/* schedule times passing during a stop are skipped */
		if (due.when)
			s->last_schedule = due.when;
		return VG_OK;
	}
	if (vg_json_get_bool(p, "spec.suspend", 0))
		return VG_OK;
	if (run_now && *run_now &&
	    strcmp(run_now, vg_json_get_str(p, "status.lastRunNow", "")) != 0) {
		trigger = "manual";
		when = s->now;
	} else if (sched && due.when) {
		if (due.too_late) {
			ctl_event(s->rc, "Warning", "MissedSchedule",
				  "skipped the run due at %lld: more than "
				  "startingDeadlineSeconds late",
				  (long long)due.when);
			s->last_schedule = due.when;
			return VG_OK;
		}
		if (due.missed > SCANPOLICY_MAX_MISSED)
			ctl_event(s->rc, "Warning", "TooManyMissedTimes",
				  "more than %d schedule times missed; "
				  "running the latest only",
				  SCANPOLICY_MAX_MISSED);
		trigger = "schedule";
		when = due.when;
	} else if (!sched && !s->last_schedule) {
		trigger = "once";
		when = s->now;
	}
	if (!trigger)
		return VG_OK;
	/* the run this trigger names was started already, and the status
	 * that records it is not in the cache yet: it is done, and above
	 * all it must not replace itself (concurrencyPolicy Replace) */
	if (run_exists(s, trigger, when, run_now)) {
		if (strcmp(trigger, "manual") == 0)
			s->run_now_done = run_now;
		else
			s->last_schedule = when;
		return VG_OK;
	}
	if (s->nactive && strcmp(policy, "Forbid") == 0) {
		/* the due run waits for the active one (its end enqueues us),
		 * within the starting deadline */
		return VG_OK;
	}
	if (s->nactive && strcmp(policy, "Replace") == 0 &&
	    (rc = stop_active(s, "replaced by a new run")) != VG_OK)
		return rc;
	limit = vg_json_get_int(s->tenant, "spec.quota.maxConcurrentScans", 2);
	pthread_once(&pending_once, pending_init);
	pthread_mutex_lock(&start_mu);
	if (tenant_active_runs(s) >= limit) {
		pthread_mutex_unlock(&start_mu);
		s->quota = 1;
		snprintf(s->quota_msg, sizeof(s->quota_msg),
			 "Tenant %s runs %lld scans at once at most; the run "
			 "waits",
			 vg_json_get_str(s->tenant, "metadata.name", "?"),
			 (long long)limit);
		requeue(s, SCANPOLICY_QUOTA_RETRY_SECONDS);
		return VG_OK;
	}
	rc = start_run(s, trigger, when, run_now);
	pthread_mutex_unlock(&start_mu);
	if (rc != VG_OK || s->blocked)
		return rc;
	if (strcmp(trigger, "manual") == 0)
		s->run_now_done = run_now;
	else
		s->last_schedule = when;
	return VG_OK;
}

/* --- status ---------------------------------------------------------------- */

static const char *phase_of(const struct runinfo *r)
{
	if (r->finished == 1)
		return "Succeeded";
	if (r->finished == 2)
		return "Failed";
	if (r->finished == 3)
		return "Cancelled";
	return vg_json_get_int(r->job, "status.active", 0) > 0 ? "Running"
							       : "Pending";
}

static int set_time(json_t *o, const char *key, int64_t t)
{
	char buf[32];

	if (!t || !vg_time_fmt(t, buf, sizeof(buf)))
		return 0;
	return json_object_set_new(o, key, json_string(buf));
}

/* How long after a run's Job ended its results are still looked for in
 * the platform database (the worker finalizes a run when the last shard
 * reported). */
#define RESULTS_WAIT_SECONDS 600
#define RESULTS_POLL_SECONDS 10.0

/* The finished run's findings by severity and open ports, from the
 * platform database, into lastRun `o`: once per run (then carried over
 * from the status). */
static void results(struct sp *s, json_t *o, const struct runinfo *r)
{
	static const char *const sev[] = { "critical", "high", "medium", "low",
					   "info" };
	const json_t *prev = vg_json_get(s->rc->obj, "status.lastRun");
	const char *job = vg_json_get_str(r->job, "metadata.name", "");
	const char *tid = vg_json_get_str(s->tenant, "status.databaseID", NULL);
	struct tenant_db *db = NULL;
	json_t *sum = NULL, *f;
	struct vg_err err;

	if (r->finished != 1 && r->finished != 2)
		return;
	if (strcmp(vg_json_get_str(prev, "name", ""), job) == 0 &&
	    json_object_get(prev, "findings")) {
		json_object_set(o, "findings", json_object_get(prev, "findings"));
		if (json_object_get(prev, "openPorts"))
			json_object_set(o, "openPorts",
					json_object_get(prev, "openPorts"));
		return;
	}
	if (!s->env || !s->env->db || !tid ||
	    s->now - r->ended > RESULTS_WAIT_SECONDS)
		return;
	vg_err_clear(&err);
	if (tenant_db_open(s->rc, s->env->db, s->platform, &db, &err) != VG_OK ||
	    tenant_db_run_summary(tenant_db_pool(db), tid, job, &sum, &err) !=
		    VG_OK ||
	    (strcmp(vg_json_get_str(sum, "state", ""), "succeeded") != 0 &&
	     strcmp(vg_json_get_str(sum, "state", ""), "failed") != 0)) {
		/* not finalized yet, or no database: look again shortly */
		if (err.code != VG_OK && err.code != VG_NOTFOUND)
			vg_debug("run results not readable", "job", job, "err",
				 err.msg);
		requeue(s, RESULTS_POLL_SECONDS);
		goto out;
	}
	f = json_object();
	for (size_t i = 0; f && i < sizeof(sev) / sizeof(sev[0]); i++)
		json_object_set_new(f, sev[i],
				    json_integer(vg_json_get_int(
					    json_object_get(sum, "findings"),
					    sev[i], 0)));
	if (f)
		json_object_set_new(o, "findings", f);
	json_object_set(o, "openPorts", json_object_get(sum, "openPorts"));
out:
	json_decref(sum);
	if (db)
		tenant_db_put(db);
}

static json_t *last_run(struct sp *s)
{
	const struct runinfo *newest = NULL;
	const json_t *conds, *c;
	json_t *o;
	size_t i;

	for (size_t k = 0; k < s->nruns; k++)
		if (!newest || s->runs[k].started > newest->started)
			newest = &s->runs[k];
	if (!newest)
		return json_incref(vg_json_get(s->rc->obj, "status.lastRun"));
	o = json_pack("{s:s,s:s}", "name",
		      vg_json_get_str(newest->job, "metadata.name", ""), "phase",
		      phase_of(newest));
	if (!o)
		return NULL;
	set_time(o, "startTime", newest->started);
	if (newest->finished == 1 || newest->finished == 2)
		set_time(o, "completionTime", newest->ended);
	results(s, o, newest);
	conds = vg_json_get(newest->job, "status.conditions");
	json_array_foreach(conds, i, c)
		if (strcmp(vg_json_get_str(c, "type", ""), "Failed") == 0 &&
		    strcmp(vg_json_get_str(c, "status", ""), "True") == 0)
			json_object_set_new(o, "message",
					    json_string(vg_json_get_str(
						    c, "message", "")));
	return o;
}

static int write_status(struct sp *s)
{
	json_t *st = json_object(), *active = json_array(), *lr;
	int rc;

	if (!st || !active) {
		json_decref(st);
		json_decref(active);
		return vg_err_set(&s->rc->err, VG_NOMEM, "status");
	}
	json_object_set_new(st, "observedGeneration",
			    json_integer(vg_json_get_int(
				    s->rc->obj, "metadata.generation", 0)));
	for (size_t i = 0; i < s->nruns; i++) {
		json_t *a;

		if (s->runs[i].finished)
			continue;
		a = json_pack("{s:s,s:s}", "name",
			      vg_json_get_str(s->runs[i].job, "metadata.name",
					      ""),
			      "uid",
			      vg_json_get_str(s->runs[i].job, "metadata.uid",
					      ""));
		if (a) {
			set_time(a, "startTime", s->runs[i].started);
			json_array_append_new(active, a);
		}
	}
	json_object_set_new(st, "active", active);
	set_time(st, "lastScheduleTime", s->last_schedule);
	set_time(st, "lastSuccessfulTime", s->last_success);
	if (s->next_schedule && !s->estop &&
	    !vg_json_get_bool(s->rc->obj, "spec.suspend", 0))
		set_time(st, "nextScheduleTime", s->next_schedule);
	if (s->run_now_done)
		json_object_set_new(st, "lastRunNow",
				    json_string(s->run_now_done));
	lr = last_run(s);
	if (lr)
		json_object_set_new(st, "lastRun", lr);

	ctl_condition(s->rc, st, "Ready", !s->blocked,
		      s->blocked ? s->blocked : s->ready_reason,
		      s->blocked ? s->blocked_msg : s->ready_msg);
	ctl_condition(s->rc, st, "OutOfScope", s->out_of_scope,
		      s->out_of_scope ? "OutOfScope" : "InScope",
		      s->out_of_scope ? s->scope_msg
				      : "every target is within the "
					"tenant's allowed scope");
	ctl_condition(s->rc, st, "QuotaExceeded", s->quota,
		      s->quota ? "QuotaExceeded" : "WithinQuota",
		      s->quota ? s->quota_msg
			       : "the tenant's concurrent-scan quota has room");
	ctl_condition(s->rc, st, "EmergencyStop", s->estop,
		      s->estop ? "EmergencyStop" : "Running",
		      s->estop ? "the platform's emergency stop is on: no "
				 "new runs, running ones deleted"
			       : "no emergency stop");
	rc = ctl_update_status(s->rc, st);
	json_decref(st);
	return rc;
}

/* --- the reconciler -------------------------------------------------------- */

static enum rec_result scanpolicy_reconcile(struct rec *rc)
{
	const struct scanpolicy_env *env = rc->ctx;
	struct sp s = { 0 };
	enum rec_result res = REC_DONE;
	int apierr = 0;

	if (!rc->obj || ctl_is_deleting(rc))
		return REC_DONE; /* the Jobs go with their owner */
	s.rc = rc;
	s.env = env;
	s.now = now_of(env);
	s.ready_reason = "Scheduled";
	snprintf(s.ready_msg, sizeof(s.ready_msg), "runs as scheduled");
	s.last_schedule = time_at(rc->obj, "status.lastScheduleTime");
	s.last_success = time_at(rc->obj, "status.lastSuccessfulTime");
	s.run_now_done = vg_json_get_str(rc->obj, "status.lastRunNow", NULL);
	if (load_jobs(&s) != VG_OK) {
		vg_err_set(&rc->err, VG_NOMEM, "out of memory");
		res = REC_ERROR;
		goto out;
	}
	for (size_t i = 0; i < s.nruns; i++)
		if (s.runs[i].finished == 1 && s.runs[i].ended > s.last_success)
			s.last_success = s.runs[i].ended;
	s.platform = platform_pick(rc->m, env ? env->platform_namespace : NULL);
	s.estop = s.platform &&
		  vg_json_get_bool(s.platform, "spec.emergencyStop", 0);
	find_tenant(&s);

	if (!s.tenant) {
		block(&s, "TenantNotFound",
		      "no Tenant has namespace %s", rc->ns);
	} else if (!check_scope(&s)) {
		block(&s, "OutOfScope", "%s", s.scope_msg);
		ctl_event(rc, "Warning", "OutOfScope", "%s", s.scope_msg);
		apierr |= stop_active(&s, "out of the tenant's scope") != VG_OK;
	} else {
		if (s.estop) {
			block(&s, "EmergencyStop",
			      "the platform's emergency stop is on");
			apierr |= stop_active(&s, "emergency stop") != VG_OK;
		} else if (vg_json_get_bool(rc->obj, "spec.suspend", 0)) {
			s.ready_reason = "Suspended";
			snprintf(s.ready_msg, sizeof(s.ready_msg),
				 "suspended: no new runs");
		}
		if (schedule(&s) != VG_OK)
			apierr = 1;
	}
	if (s.nactive && !s.blocked) {
		s.ready_reason = "Running";
		snprintf(s.ready_msg, sizeof(s.ready_msg), "%zu run%s active",
			 s.nactive, s.nactive == 1 ? "" : "s");
	}
	if (prune_history(&s) != VG_OK)
		apierr = 1;
	if (write_status(&s) != VG_OK || apierr) {
		res = REC_ERROR;
		goto out;
	}
	if (s.after > 0) {
		/* a long wait is re-checked hourly: clocks get corrected */
		rc->after = s.after > 3600 ? 3600 : s.after;
		res = REC_REQUEUE_AFTER;
	}
out:
	json_decref(s.jobs);
	json_decref(s.tenants);
	json_decref(s.platform);
	free(s.runs);
	return res;
}

/* --- what else enqueues a policy ---------------------------------------- */

static void enqueue_namespace(struct manager *m, const char *controller,
			      const char *ns)
{
	json_t *all = ctl_list_cached(m, &vigil_scanpolicies), *p;
	size_t i;

	json_array_foreach(all, i, p)
	{
		const char *pns = vg_json_get_str(p, "metadata.namespace", "");
		char key[320];

		if (ns && strcmp(pns, ns) != 0)
			continue;
		snprintf(key, sizeof(key), "%s/%s", pns,
			 vg_json_get_str(p, "metadata.name", ""));
		ctl_enqueue(m, controller, key);
	}
	json_decref(all);
}

/* A Platform's emergency stop or endpoint concerns every policy. */
static void map_platform(struct manager *m, const char *controller,
			 const json_t *obj, const json_t *old)
{
	if (old &&
	    vg_json_get_bool(obj, "spec.emergencyStop", 0) ==
		    vg_json_get_bool(old, "spec.emergencyStop", 0) &&
	    vg_json_equal(vg_json_get(obj, "status.endpoint"),
			  vg_json_get(old, "status.endpoint")))
		return;
	enqueue_namespace(m, controller, NULL);
}

/* A Tenant's scope, quota or id concerns the policies in its namespace. */
static void map_tenant(struct manager *m, const char *controller,
		       const json_t *obj, const json_t *old)
{
	char ns[64];

	if (old && vg_json_equal(vg_json_get(obj, "spec"),
				 vg_json_get(old, "spec")) &&
	    vg_json_equal(vg_json_get(obj, "status.databaseID"),
			  vg_json_get(old, "status.databaseID")))
		return;
	if (tenant_namespace(obj, ns, sizeof(ns), NULL) == VG_OK)
		enqueue_namespace(m, controller, ns);
}

static const struct vg_kube_resource *const scanpolicy_owned[] = {
	&vg_kube_jobs,
	NULL,
};

static const struct ctl_watch scanpolicy_watches[] = {
	{ &vigil_platforms, map_platform },
	{ &vigil_tenants, map_tenant },
	{ NULL, NULL },
};

const struct controller_def scanpolicy_controller = {
	.name = "scanpolicy",
	.primary = &vigil_scanpolicies,
	.owned = scanpolicy_owned,
	.watches = scanpolicy_watches,
	.reconcile = scanpolicy_reconcile,
};
