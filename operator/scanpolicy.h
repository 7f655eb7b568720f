/*
 * scanpolicy.h - the ScanPolicy controller: scheduled and on-demand scans
 * run as agent Jobs owned by the policy.
 *
 * The operator schedules runs itself rather than through a CronJob, so the
 * tenant's scope and quota and the platform's emergency stop are enforced
 * in one place, with the CronJob semantics users know:
 *
 *   schedule + timeZone     cron(5) in an IANA zone (default UTC); without
 *                           a schedule the policy runs once
 *   startingDeadlineSeconds a run more than this late is skipped
 *   concurrencyPolicy       Allow, Forbid (skip while one runs), Replace
 *                           (delete the running one first)
 *   suspend                 no new runs; running ones continue
 *   *RunsHistoryLimit       finished Jobs kept per outcome
 *   vigil.dev/run-now       annotation: one run now, whatever the
 *                           schedule; each new value is one more run
 *
 * Of the schedule times that passed since the last run only the latest is
 * considered (no burst of catch-up runs after downtime), and schedule
 * times that pass during an emergency stop are skipped.
 *
 * A run is an Indexed Job: `parallelism` shards of the target list, one
 * agent pod each (at most the tenant's maxAgentPods), the policy's rate
 * split across them, activeDeadlineSeconds = timeoutSeconds, backoffLimit
 * from the spec, the tenant's agent token from its Secret, restricted pod
 * security, no service-account token.
 */
#ifndef VIGIL_OPERATOR_SCANPOLICY_H
#define VIGIL_OPERATOR_SCANPOLICY_H

#include <jansson.h>
#include <stdint.h>

#include "controller.h"
#include "tenant.h"
#include "vigil/cron.h"
#include "vigil/err.h"

#define SCANPOLICY_LABEL "vigil.dev/scan-policy"
#define SCANPOLICY_TRIGGER_LABEL "vigil.dev/trigger"
#define SCANPOLICY_SCHEDULED_ANNOTATION "vigil.dev/scheduled-time"
#define SCANPOLICY_RUN_NOW_ANNOTATION "vigil.dev/run-now"
#define SCANPOLICY_DEFAULT_AGENT_IMAGE "vigil/vigil-agent"
#define SCANPOLICY_AGENT_PATH "/usr/local/bin/vigil-agent"
#define SCANPOLICY_SPOOL_DIR "/var/spool/vigil"
/* finished Jobs also expire on their own after this */
#define SCANPOLICY_JOB_TTL_SECONDS (7 * 86400)
/* how often a run waiting for quota looks again */
#define SCANPOLICY_QUOTA_RETRY_SECONDS 5.0
/* more missed schedule times than this are reported, not counted */
#define SCANPOLICY_MAX_MISSED 100

struct scanpolicy_env {
	/* Agent image; NULL: <Platform imageRegistry>/vigil-agent:<version>,
	 * or SCANPOLICY_DEFAULT_AGENT_IMAGE:latest without a Platform. */
	const char *agent_image;
	/* Gateway URL agents post to; NULL: the Platform's status.endpoint. */
	const char *gateway_url;
	/* With several Platforms, the one in this namespace. */
	const char *platform_namespace;
	/* Where the platform database is (the Tenant controller's
	 * configuration), for the runs' results; NULL: not read. */
	const struct tenant_env *db;
	/* The clock (Unix seconds); NULL: time(). */
	int64_t (*now)(void);
};

extern const struct controller_def scanpolicy_controller;

/* --- the schedule (pure, unit-tested) ------------------------------------ */

struct scanpolicy_due {
	int64_t when;	 /* the latest schedule time in (last, now], or 0 */
	int64_t next;	 /* the first schedule time after now, or 0: never */
	int missed;	 /* schedule times in (last, now], capped */
	int too_late;	 /* `when` is past the starting deadline */
};

/*
 * What `c` in `tz` asks at `now` when the last run was scheduled at
 * `last` (or the policy created then): `deadline` seconds of lateness
 * allowed, < 0 for no limit.
 */
void scanpolicy_due(const struct vg_cron *c, const struct vg_tz *tz,
		    int64_t last, int64_t now, int64_t deadline,
		    struct scanpolicy_due *out);

/* --- the Job (pure, unit-tested) ------------------------------------------ */

/* What the Job of one run needs besides the policy. */
struct scanpolicy_run {
	const char *job_name;
	const char *trigger;	  /* "schedule", "manual", "once" */
	int64_t scheduled;	  /* Unix seconds */
	const char *tenant;	  /* Tenant name */
	const char *tenant_id;	  /* the tenant's id in the platform database */
	const json_t *allowed;	  /* the Tenant's allowedTargets (array) */
	int max_pods;		  /* the tenant's maxAgentPods */
	const char *image;
	const char *gateway_url;
	const char *token_secret; /* Secret with the agent token, key "token" */
};

/*
 * The name of a run's Job: <policy>-<minutes since the epoch> for a
 * schedule time (as a CronJob names its Jobs), <policy>-m<hash> for a
 * run-now value, <policy>-once; a long policy name is shortened with a
 * hash so the name stays a valid label value. VG_TOOLARGE if `size` is
 * too small.
 */
int scanpolicy_job_name(const char *policy, const char *trigger,
			int64_t scheduled, const char *run_now, char *out,
			size_t size);

/* The Job (new) for one run of `policy`, without owner reference. */
int scanpolicy_job(const json_t *policy, const struct scanpolicy_run *run,
		   json_t **job, struct vg_err *err);

/* The policy's shards: spec.parallelism capped by the tenant's pods. */
int scanpolicy_shards(const json_t *policy, int max_pods);

#endif
