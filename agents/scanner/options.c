/* options.c - vigil-agent's settings: one table of flag, environment
 * variable, type, default and range; the environment first, then flags. */
#include "options.h"

#include "vigil/opts.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>


#define OFF(f) offsetof(struct options, f)

static const struct vg_opt opts[] = {
	{"targets", "VIGIL_TARGETS", VG_OPT_STR, OFF(targets), NULL, 0, 0,
	 "comma-separated addresses, CIDRs, ranges, host names"},
	{"exclude", "VIGIL_EXCLUDE", VG_OPT_STR, OFF(exclude), NULL, 0, 0,
	 "targets never probed (same syntax, *.domain allowed)"},
	{"ports", "VIGIL_PORTS", VG_OPT_STR, OFF(ports), "1-1024", 0, 0,
	 "TCP ports, like 22,80,443,8000-8100"},
	{"scanners", "VIGIL_SCANNERS", VG_OPT_STR, OFF(scanners), "tcp", 0, 0,
	 "comma-separated: tcp, banner, tls, http"},
	{"allowed", "VIGIL_ALLOWED_TARGETS", VG_OPT_STR, OFF(allowed), NULL, 0, 0,
	 "the tenant's authorised scope (required)"},
	{"allow-loopback", "VIGIL_ALLOW_LOOPBACK", VG_OPT_BOOL,
	 OFF(allow_loopback), "false", 0, 0,
	 "permit loopback targets (127.0.0.0/8, ::1)"},
	{"rate", "VIGIL_RATE", VG_OPT_INT, OFF(rate), "1000", 1, 10000000,
	 "probes per second, all targets"},
	{"per-target-rate", "VIGIL_PER_TARGET_RATE", VG_OPT_INT,
	 OFF(per_target_rate), "50", 1, 10000000,
	 "probes per second to one address"},
	{"connect-timeout-ms", "VIGIL_CONNECT_TIMEOUT_MS", VG_OPT_INT,
	 OFF(connect_timeout_ms), "2000", 1, 600000,
	 "TCP connect timeout"},
	{"retries", "VIGIL_RETRIES", VG_OPT_INT, OFF(retries), "1", 0, 10,
	 "extra attempts after a connect timeout"},
	{"max-in-flight", "VIGIL_MAX_IN_FLIGHT", VG_OPT_INT, OFF(max_in_flight),
	 "10000", 1, 200000, "connects in progress at once"},
	{"banner-timeout-ms", "VIGIL_BANNER_TIMEOUT_MS", VG_OPT_INT,
	 OFF(banner_timeout_ms), "2000", 1, 60000,
	 "wait for a service's first bytes"},
	{"service-timeout-ms", "VIGIL_SERVICE_TIMEOUT_MS", VG_OPT_INT,
	 OFF(service_timeout_ms), "5000", 100, 600000,
	 "each TLS handshake or HTTP request"},
	{"workers", "VIGIL_WORKERS", VG_OPT_INT, OFF(workers), "16", 1, 256,
	 "threads for TLS and HTTP checks"},
	{"shards", "VIGIL_SHARDS", VG_OPT_INT, OFF(shards), "1", 1, 100000,
	 "pods the targets are split across"},
	{"shard", "JOB_COMPLETION_INDEX", VG_OPT_INT, OFF(shard), "0", 0, 99999,
	 "this pod's shard (the Indexed Job's index)"},
	{"gateway", "VIGIL_GATEWAY_URL", VG_OPT_STR, OFF(gateway), NULL, 0, 0,
	 "gateway base URL results are posted to"},
	{NULL, "VIGIL_AGENT_TOKEN", VG_OPT_STR, OFF(token), NULL, 0, 0,
	 "agent token (environment only)"},
	{"token-file", "VIGIL_AGENT_TOKEN_FILE", VG_OPT_STR, OFF(token_file),
	 NULL, 0, 0, "file holding the agent token"},
	{"tenant-id", "VIGIL_TENANT_ID", VG_OPT_STR, OFF(tenant_id), NULL, 0, 0,
	 "tenant UUID"},
	{"job-name", "VIGIL_JOB_NAME", VG_OPT_STR, OFF(job_name), NULL, 0, 0,
	 "the run's Job name"},
	{"policy-namespace", "VIGIL_POLICY_NAMESPACE", VG_OPT_STR,
	 OFF(policy_namespace), "", 0, 0, "ScanPolicy namespace"},
	{"policy-name", "VIGIL_POLICY_NAME", VG_OPT_STR, OFF(policy_name), "", 0,
	 0, "ScanPolicy name"},
	{"policy-uid", "VIGIL_POLICY_UID", VG_OPT_STR, OFF(policy_uid), "", 0, 0,
	 "ScanPolicy UID"},
	{"trigger", "VIGIL_RUN_TRIGGER", VG_OPT_STR, OFF(trigger), "schedule", 0,
	 0, "schedule, manual or once"},
	{"spool-dir", "VIGIL_SPOOL_DIR", VG_OPT_STR, OFF(spool_dir),
	 "/tmp/vigil-spool", 0, 0, "batches wait here until accepted"},
	{"batch-size", "VIGIL_BATCH_SIZE", VG_OPT_INT, OFF(batch_size), "500", 1,
	 10000, "findings per batch"},
	{"output", "VIGIL_OUTPUT", VG_OPT_STR, OFF(output), NULL, 0, 0,
	 "also write findings as JSON lines to FILE (- for stdout)"},
	{"estop-interval-ms", "VIGIL_ESTOP_INTERVAL_MS", VG_OPT_INT,
	 OFF(estop_interval_ms), "1000", 50, 600000,
	 "emergency-stop poll interval"},
	{"flush-timeout-ms", "VIGIL_FLUSH_TIMEOUT_MS", VG_OPT_INT,
	 OFF(flush_timeout_ms), "60000", 0, 3600000,
	 "how long to keep delivering batches after the scan"},
	{"log-level", "VIGIL_LOG_LEVEL", VG_OPT_STR, OFF(log_level), "info", 0, 0,
	 "debug, info, warn or error"},
	{"version", NULL, VG_OPT_BOOL, OFF(show_version), "false", 0, 0,
	 "print the version and exit"},
	{"help", NULL, VG_OPT_BOOL, OFF(show_help), "false", 0, 0,
	 "print this help and exit"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int options_parse(struct options *o, int argc, char **argv, struct vg_err *err)
{
	int first = argc, rc;

	memset(o, 0, sizeof(*o));
	rc = vg_opts_parse(opts, NOPTS, o, argc, argv, &first, err);
	if (rc == VG_OK && first < argc)
		rc = vg_err_set(err, VG_INVAL,
				"unexpected argument \"%s\" (targets go in "
				"--targets)",
				argv[first]);
	return rc;
}

static int is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == '-' ? s[i] != '-'
				    : !strchr("0123456789abcdefABCDEF", s[i]))
			return 0;
	return 1;
}

/* A Kubernetes object name: it becomes part of spool file names and batch
 * ids, so only [a-z0-9.-] and no leading dot. */
static int is_job_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 100 && s[0] != '.' && s[0] != '-' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

static int read_token_file(struct options *o, struct vg_err *err)
{
	char buf[4096];
	ssize_t n;
	size_t len = 0;
	int fd = open(o->token_file, O_RDONLY | O_CLOEXEC), rc = VG_OK;

	if (fd < 0)
		return vg_err_sys(err, VG_INVAL, "--token-file %s: cannot open",
				  o->token_file);
	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
		       buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	if (len == 0)
		rc = vg_err_set(err, VG_INVAL, "--token-file %s is empty",
				o->token_file);
	else
		rc = vg_opts_set(&(struct vg_opt){.type = VG_OPT_STR,
						  .offset = OFF(token)},
				 o, buf, "--token-file", err);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int options_check(struct options *o, struct vg_err *err)
{
	static const char *const triggers[] = {"schedule", "manual", "once"};
	int ok = 0;

	if (!o->allowed || !*o->allowed)
		return vg_err_set(err, VG_INVAL,
				  "--allowed (VIGIL_ALLOWED_TARGETS) is "
				  "required: the tenant's authorised scope");
	if (!o->targets || !*o->targets)
		return vg_err_set(err, VG_INVAL,
				  "--targets (VIGIL_TARGETS) is required");
	if (o->shard >= o->shards)
		return vg_err_set(err, VG_INVAL,
				  "shard index %d (JOB_COMPLETION_INDEX) must "
				  "be below --shards %d",
				  o->shard, o->shards);
	for (size_t i = 0; i < sizeof(triggers) / sizeof(triggers[0]); i++)
		ok |= strcmp(o->trigger, triggers[i]) == 0;
	if (!ok)
		return vg_err_set(err, VG_INVAL,
				  "--trigger (VIGIL_RUN_TRIGGER): \"%s\" is "
				  "not schedule, manual or once",
				  o->trigger);
	if (o->token_file && *o->token_file) {
		int rc = read_token_file(o, err);

		if (rc)
			return rc;
	}
	if (!o->gateway || !*o->gateway) {
		if (!o->output || !*o->output)
			return vg_err_set(err, VG_INVAL,
					  "no --gateway (VIGIL_GATEWAY_URL): "
					  "--output is required");
		return VG_OK;
	}
	if (strncmp(o->gateway, "http://", 7) != 0 &&
	    strncmp(o->gateway, "https://", 8) != 0)
		return vg_err_set(err, VG_INVAL,
				  "--gateway \"%s\" is not an http:// or "
				  "https:// URL",
				  o->gateway);
	if (!o->tenant_id || !is_uuid(o->tenant_id))
		return vg_err_set(err, VG_INVAL,
				  "--tenant-id (VIGIL_TENANT_ID) must be a "
				  "UUID with --gateway");
	if (!o->token || !*o->token)
		return vg_err_set(err, VG_INVAL,
				  "VIGIL_AGENT_TOKEN or --token-file is "
				  "required with --gateway");
	if (!o->job_name || !is_job_name(o->job_name))
		return vg_err_set(err, VG_INVAL,
				  "VIGIL_JOB_NAME must be a Job name "
				  "([a-z0-9.-], at most 100 characters) with "
				  "--gateway");
	return VG_OK;
}

void options_cleanup(struct options *o)
{
	vg_opts_cleanup(opts, NOPTS, o);
	memset(o, 0, sizeof(*o));
}

void options_usage(const char *prog, FILE *fp)
{
	fprintf(fp,
		"usage: %s --allowed SCOPE --targets LIST [flags]\n\n"
		"flags (and environment):\n",
		prog);
	vg_opts_usage(opts, NOPTS, fp);
	fprintf(fp, "\nexit codes: 0 done, 1 runtime failure, 2 bad input or "
		    "scope refused,\n3 emergency stop, 4 results left in the "
		    "spool, 5 the gateway rejected a batch\n");
}
