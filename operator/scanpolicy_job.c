/*
 * scanpolicy_job.c - the agent Job of one ScanPolicy run, and its name.
 *
 * The pod takes its whole configuration from its command line and
 * environment (agents/scanner/README.md has the contract): nothing to
 * mount but the token Secret and a scratch volume for results waiting to
 * be delivered.
 */
#include "scanpolicy.h"

#include <stdio.h>
#include <string.h>

#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/timeutil.h"

#define LABEL_NAME "app.kubernetes.io/name"
#define LABEL_COMPONENT "app.kubernetes.io/component"
#define LABEL_PART_OF "app.kubernetes.io/part-of"
#define TENANT_LABEL "vigil.dev/tenant"
/* a Job's name becomes the pods' job-name label: 63 at most, less the
 * run suffix ("-" and up to 10 digits) */
#define BASE_MAX 52

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The policy's part of its Jobs' names: the name, or a prefix and a hash. */
static void name_base(const char *policy, char *out, size_t size)
{
	size_t n = strlen(policy);

	if (n <= BASE_MAX - 10) {
		snprintf(out, size, "%s", policy);
		return;
	}
	n = BASE_MAX - 10 - 9;
	while (n > 0 && policy[n - 1] == '-')
		n--;
	snprintf(out, size, "%.*s-%08x", (int)n, policy, fnv1a(policy));
}

int scanpolicy_job_name(const char *policy, const char *trigger,
			int64_t scheduled, const char *run_now, char *out,
			size_t size)
{
	char base[BASE_MAX + 1];
	int n;

	name_base(policy, base, sizeof(base));
	if (strcmp(trigger, "manual") == 0)
		n = snprintf(out, size, "%s-m%08x", base,
			     fnv1a(run_now ? run_now : ""));
	else if (strcmp(trigger, "once") == 0)
		n = snprintf(out, size, "%s-once", base);
	else
		n = snprintf(out, size, "%s-%lld", base,
			     (long long)(scheduled / 60));
	return n < 0 || (size_t)n >= size ? VG_TOOLARGE : VG_OK;
}

int scanpolicy_shards(const json_t *policy, int max_pods)
{
	long long p = vg_json_get_int(policy, "spec.parallelism", 1);

	if (p < 1)
		p = 1;
	if (max_pods > 0 && p > max_pods)
		p = max_pods;
	return (int)p;
}

/* The strings of array `a` joined by commas into `b`. */
static int join(const json_t *a, struct vg_buf *b)
{
	const json_t *v;
	size_t i;

	vg_buf_reset(b);
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return VG_INVAL;
		if ((i && vg_buf_append(b, ",", 1)) ||
		    vg_buf_append_str(b, json_string_value(v)))
			return VG_NOMEM;
	}
	return vg_buf_append(b, "", 0);
}

static int add_arg(json_t *args, const char *flag, const char *value)
{
	if (json_array_append_new(args, json_string(flag)))
		return VG_NOMEM;
	if (value && json_array_append_new(args, json_string(value)))
		return VG_NOMEM;
	return VG_OK;
}

static int add_int_arg(json_t *args, const char *flag, long long v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", v);
	return add_arg(args, flag, s);
}

/* A list-valued argument from spec field `field` (strings). */
static int add_list_arg(json_t *args, const char *flag, const json_t *list,
			const char *field, int required, struct vg_buf *b,
			struct vg_err *err)
{
	int rc;

	if (!list || json_array_size(list) == 0) {
		if (required)
			return vg_err_set(err, VG_INVAL, "%s is empty", field);
		return VG_OK;
	}
	if (!json_is_array(list))
		return vg_err_set(err, VG_INVAL, "%s must be a list", field);
	rc = join(list, b);
	if (rc == VG_INVAL)
		return vg_err_set(err, rc, "%s must be a list of strings",
				  field);
	if (rc != VG_OK || add_arg(args, flag, vg_buf_str(b)))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return VG_OK;
}

static json_t *agent_args(const json_t *policy,
			  const struct scanpolicy_run *run, int shards,
			  struct vg_err *err)
{
	json_t *args = json_array();
	const json_t *scanners = vg_json_get(policy, "spec.scanners");
	long long rate = vg_json_get_int(policy,
					 "spec.rateLimit.packetsPerSecond",
					 1000);
	struct vg_buf b;
	int rc;

	vg_buf_init(&b, 0);
	if (!args) {
		vg_err_set(err, VG_NOMEM, "out of memory");
		goto fail;
	}
	if (add_list_arg(args, "--targets", vg_json_get(policy, "spec.targets"),
			 "spec.targets", 1, &b, err) ||
	    add_list_arg(args, "--exclude",
			 vg_json_get(policy, "spec.excludeTargets"),
			 "spec.excludeTargets", 0, &b, err) ||
	    add_list_arg(args, "--allowed", run->allowed,
			 "the Tenant's allowedTargets", 1, &b, err))
		goto fail;
	if (scanners && json_array_size(scanners)) {
		if (add_list_arg(args, "--scanners", scanners, "spec.scanners",
				 1, &b, err))
			goto fail;
	} else if (add_arg(args, "--scanners", "tcp")) {
		goto nomem;
	}
	/* the policy's rate is the run's: each shard gets its part */
	rate = (rate + shards - 1) / shards;
	rc = add_arg(args, "--ports",
		     vg_json_get_str(policy, "spec.ports", "1-1024")) ||
	     add_int_arg(args, "--rate", rate) ||
	     add_int_arg(args, "--per-target-rate",
			 vg_json_get_int(policy,
					 "spec.rateLimit.perTargetPerSecond",
					 50)) ||
	     add_int_arg(args, "--connect-timeout-ms",
			 vg_json_get_int(policy,
					 "spec.connectTimeoutMilliseconds",
					 2000)) ||
	     add_int_arg(args, "--shards", shards) ||
	     add_arg(args, "--spool-dir", SCANPOLICY_SPOOL_DIR);
	if (rc)
		goto nomem;
	if (vg_json_get_bool(policy, "spec.allowLoopback", 0) &&
	    add_arg(args, "--allow-loopback", NULL))
		goto nomem;
	vg_buf_cleanup(&b);
	return args;
nomem:
	vg_err_set(err, VG_NOMEM, "out of memory");
fail:
	vg_buf_cleanup(&b);
	json_decref(args);
	return NULL;
}

static json_t *agent_env(const json_t *policy,
			 const struct scanpolicy_run *run)
{
	const json_t *md = json_object_get(policy, "metadata");

	return json_pack(
		"[{s:s,s:s},{s:s,s:s},{s:s,s:{s:{s:s,s:s}}},{s:s,s:s},"
		"{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]",
		"name", "VIGIL_GATEWAY_URL", "value", run->gateway_url, "name",
		"VIGIL_TENANT_ID", "value", run->tenant_id, "name",
		"VIGIL_AGENT_TOKEN", "valueFrom", "secretKeyRef", "name",
		run->token_secret, "key", "token", "name", "VIGIL_JOB_NAME",
		"value", run->job_name, "name", "VIGIL_POLICY_NAMESPACE",
		"value", vg_json_get_str(md, "namespace", ""), "name",
		"VIGIL_POLICY_NAME", "value", vg_json_get_str(md, "name", ""),
		"name", "VIGIL_POLICY_UID", "value",
		vg_json_get_str(md, "uid", ""), "name", "VIGIL_RUN_TRIGGER",
		"value", run->trigger);
}

static json_t *agent_resources(const json_t *policy)
{
	return json_pack(
		"{s:{s:s,s:s},s:{s:s,s:s}}", "requests", "cpu",
		vg_json_get_str(policy, "spec.resources.requests.cpu", "100m"),
		"memory",
		vg_json_get_str(policy, "spec.resources.requests.memory",
				"64Mi"),
		"limits", "cpu",
		vg_json_get_str(policy, "spec.resources.limits.cpu", "500m"),
		"memory",
		vg_json_get_str(policy, "spec.resources.limits.memory",
				"256Mi"));
}

int scanpolicy_job(const json_t *policy, const struct scanpolicy_run *run,
		   json_t **job, struct vg_err *err)
{
	const char *ns = vg_json_get_str(policy, "metadata.namespace", NULL);
	const char *name = vg_json_get_str(policy, "metadata.name", NULL);
	json_t *args = NULL, *env = NULL, *res = NULL, *labels = NULL;
	char base[BASE_MAX + 1], when[32];
	int shards = scanpolicy_shards(policy, run->max_pods);
	struct tm tm;
	time_t t = (time_t)run->scheduled;

	*job = NULL;
	if (!ns || !name)
		return vg_err_set(err, VG_INVAL,
				  "ScanPolicy without name or namespace");
	if (!run->gateway_url || !*run->gateway_url)
		return vg_err_set(err, VG_INVAL,
				  "no gateway URL for the agents (no "
				  "Platform endpoint yet)");
	if (!run->tenant_id || !*run->tenant_id)
		return vg_err_set(err, VG_INVAL,
				  "Tenant %s has no platform database id yet",
				  run->tenant);
	args = agent_args(policy, run, shards, err);
	if (!args)
		return err->code;
	name_base(name, base, sizeof(base));
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	env = agent_env(policy, run);
	res = agent_resources(policy);
	labels = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", LABEL_NAME,
			   "vigil-agent", LABEL_COMPONENT, "scanner",
			   LABEL_PART_OF, "vigil", SCANPOLICY_LABEL, base,
			   TENANT_LABEL, run->tenant, SCANPOLICY_TRIGGER_LABEL,
			   run->trigger);
	if (!env || !res || !labels)
		goto nomem;
	*job = json_pack(
		"{s:s,s:s,"
		"s:{s:s,s:s,s:O,s:{s:s}},"
		"s:{s:s,s:i,s:i,s:I,s:I,s:i,"
		"s:{s:{s:O},"
		"s:{s:s,s:b,s:b,s:i,"
		"s:{s:b,s:i,s:i,s:i,s:{s:s}},"
		"s:[{s:s,s:s,s:s,s:[s],s:O,s:O,s:O,"
		"s:{s:b,s:b,s:b,s:{s:[s]}},"
		"s:[{s:s,s:s}]}],"
		"s:[{s:s,s:{s:s}}]}}}}",
		"apiVersion", "batch/v1", "kind", "Job",
		"metadata", "name", run->job_name, "namespace", ns, "labels",
		labels, "annotations", SCANPOLICY_SCHEDULED_ANNOTATION, when,
		"spec", "completionMode", "Indexed", "completions", shards,
		"parallelism", shards, "activeDeadlineSeconds",
		(json_int_t)vg_json_get_int(policy, "spec.timeoutSeconds", 3600),
		"ttlSecondsAfterFinished", (json_int_t)SCANPOLICY_JOB_TTL_SECONDS,
		"backoffLimit",
		(int)vg_json_get_int(policy, "spec.backoffLimit", 2),
		"template", "metadata", "labels", labels,
		"spec", "restartPolicy", "Never",
		"automountServiceAccountToken", 0, "enableServiceLinks", 0,
		"terminationGracePeriodSeconds", 30,
		"securityContext", "runAsNonRoot", 1, "runAsUser", 65532,
		"runAsGroup", 65532, "fsGroup", 65532, "seccompProfile", "type",
		"RuntimeDefault",
		"containers", "name", "agent", "image", run->image,
		"imagePullPolicy", "IfNotPresent", "command",
		SCANPOLICY_AGENT_PATH, "args", args, "env", env, "resources",
		res, "securityContext", "allowPrivilegeEscalation", 0,
		"readOnlyRootFilesystem", 1, "runAsNonRoot", 1, "capabilities",
		"drop", "ALL", "volumeMounts", "name", "spool", "mountPath",
		SCANPOLICY_SPOOL_DIR,
		"volumes", "name", "spool", "emptyDir", "sizeLimit", "256Mi");
	if (!*job)
		goto nomem;
	if (json_object_size(vg_json_get(policy, "spec.podAnnotations")) &&
	    json_object_set(vg_json_get(*job, "spec.template.metadata"),
			    "annotations",
			    vg_json_get(policy, "spec.podAnnotations"))) {
		json_decref(*job);
		*job = NULL;
		goto nomem;
	}
	json_decref(args);
	json_decref(env);
	json_decref(res);
	json_decref(labels);
	return VG_OK;
nomem:
	json_decref(args);
	json_decref(env);
	json_decref(res);
	json_decref(labels);
	return vg_err_set(err, VG_NOMEM, "out of memory");
}
