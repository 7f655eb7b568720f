/* agent.c - one scan run: scope plan, connect scan with banners, TLS and
 * HTTP checks on the open ports, findings into the sink, delivery through
 * the spool, emergency stop and signals. */
#include "agent.h"

#include "gateway.h"
#include "plan.h"
#include "service.h"
#include "sink.h"
#include "tcpscan.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "vigil/log.h"
#include "vigil/timeutil.h"

#define BANNER_MAX 512
#define BATCH_MAX_BYTES (768 * 1024) /* the gateway takes 1 MiB bodies */
#define STOP_FLUSH_MS 20000 /* delivery after a stop: inside a pod's grace */

static atomic_int stop_flag, signalled;

static void on_signal(int sig)
{
	atomic_store(&signalled, sig);
	atomic_store(&stop_flag, 1);
}

struct run {
	struct options *o;
	struct plan plan;
	struct sink sink;
	struct counters counters;
	struct svc_target *open; /* for the TLS and HTTP checks */
	size_t nopen, capopen;
	int oom;
	uint64_t last_probes;
	double last_tick;
	struct tcp_stats last;
};

static const char *name_of(const struct run *r, int name)
{
	return name >= 0 ? r->plan.names[name] : NULL;
}

static void emit(void *ctx, json_t *f)
{
	struct run *r = ctx;

	sink_add(&r->sink, f);
}

static void on_open(void *ctx, const struct vg_addr *a, int name, int port)
{
	struct run *r = ctx;
	struct svc_target t = {.addr = *a, .hostname = name_of(r, name),
			       .port = port};
	struct svc_ctx c = {.emit = emit, .ctx = r};
	char title[64];

	atomic_fetch_add(&r->counters.open_ports, 1);
	snprintf(title, sizeof(title), "open TCP port %d", port);
	svc_emit(&c, &t, "tcp", "open", SEV_INFO, title,
		 json_pack("{s:s}", "state", "open"));
	if (!(r->plan.scanners & (SCAN_TLS | SCAN_HTTP)))
		return;
	if (r->nopen == r->capopen) {
		size_t cap = r->capopen ? r->capopen * 2 : 64;
		struct svc_target *v = realloc(r->open, cap * sizeof(*v));

		if (!v) {
			r->oom = 1;
			return;
		}
		r->open = v;
		r->capopen = cap;
	}
	r->open[r->nopen++] = t;
}

static void on_banner(void *ctx, const struct vg_addr *a, int name, int port,
		      const unsigned char *data, size_t len)
{
	struct run *r = ctx;
	struct svc_target t = {.addr = *a, .hostname = name_of(r, name),
			       .port = port};
	struct svc_ctx c = {.emit = emit, .ctx = r};
	size_t line = 0;
	char *all = printable(data, len), *first, title[160];

	while (line < len && line < 100 && data[line] != '\n' &&
	       data[line] != '\r')
		line++;
	first = printable(data, line);
	if (!all || !first) {
		free(all);
		free(first);
		return;
	}
	snprintf(title, sizeof(title), "service banner: %s", first);
	svc_emit(&c, &t, "banner", "banner", SEV_INFO, title,
		 json_pack("{s:s, s:i}", "banner", all, "bytes", (int)len));
	free(all);
	free(first);
}

static void kick(void *sender)
{
	sender_kick(sender);
}

static void progress(struct run *r, const struct tcp_stats *st,
		     const char *msg)
{
	char probes[24], open[24], findings[24], rate[24], inflight[16],
		peak[16], waiting[24], targets[24];
	double now = vg_mono_s(), dt = now - r->last_tick;

	snprintf(probes, sizeof(probes), "%llu", (unsigned long long)st->probes);
	snprintf(open, sizeof(open), "%llu", (unsigned long long)st->open);
	snprintf(findings, sizeof(findings), "%llu",
		 (unsigned long long)atomic_load(&r->counters.findings));
	snprintf(rate, sizeof(rate), "%.0f",
		 dt > 0 ? (double)(st->probes - r->last_probes) / dt : 0.0);
	snprintf(inflight, sizeof(inflight), "%d", st->in_flight);
	snprintf(peak, sizeof(peak), "%d", st->peak_in_flight);
	snprintf(waiting, sizeof(waiting), "%zu", st->waiting);
	snprintf(targets, sizeof(targets), "%llu",
		 (unsigned long long)atomic_load(&r->counters.targets));
	vg_info(msg, "targets", targets, "probes_sent", probes, "open_ports",
		open, "findings", findings, "rate", rate, "in_flight",
		inflight, "peak_in_flight", peak, "waiting", waiting);
	r->last_tick = now;
	r->last_probes = st->probes;
}

static void on_tick(void *ctx, const struct tcp_stats *st)
{
	struct run *r = ctx;

	atomic_store(&r->counters.probes, st->probes);
	r->last = *st;
	sink_flush(&r->sink);
	progress(r, st, "progress");
}

/* Soft RLIMIT_NOFILE up to the hard limit; clamp max_in_flight to fit. */
static void raise_nofile(struct options *o)
{
	struct rlimit rl;
	char have[24], want[24];

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)o->max_in_flight + 128 > rl.rlim_cur) {
		snprintf(want, sizeof(want), "%d", o->max_in_flight);
		o->max_in_flight = rl.rlim_cur > 256 ? (int)rl.rlim_cur - 128
						     : 64;
		snprintf(have, sizeof(have), "%d", o->max_in_flight);
		vg_warn("open-file limit too low; fewer probes in flight",
			"max_in_flight", want, "using", have);
	}
}

static void trim_slash(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

int agent_run(struct options *o, const char *version)
{
	struct run r;
	struct plan_input pin = {
		.allowed = o->allowed,
		.targets = o->targets,
		.exclude = o->exclude,
		.ports = o->ports,
		.scanners = o->scanners,
		.allow_loopback = o->allow_loopback,
		.shard = (unsigned)o->shard,
		.shards = (unsigned)o->shards,
	};
	struct gw_client gw = {0};
	struct spool sp = {0};
	struct sender *snd = NULL;
	struct estop *es = NULL;
	struct vg_err err = {0};
	struct tcp_stats st = {0};
	struct sigaction sa;
	atomic_int engaged;
	FILE *out = NULL;
	int rc = EXIT_FAILURE_RUN, scan_rc = VG_OK, have_spool = 0;
	size_t pending = 0, rejected = 0;
	double t0 = vg_mono_s();

	memset(&r, 0, sizeof(r));
	r.o = o;
	atomic_init(&engaged, 0);
	if (plan_build(&r.plan, &pin, &err) != VG_OK) {
		vg_error("refusing to scan", "err", err.msg);
		plan_cleanup(&r.plan);
		return EXIT_BAD_INPUT;
	}
	raise_nofile(o);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (o->output && *o->output) {
		out = strcmp(o->output, "-") == 0 ? stdout
						  : fopen(o->output, "we");
		if (!out) {
			vg_err_sys(&err, VG_IO, "--output %s", o->output);
			vg_error("cannot open the output file", "err", err.msg);
			goto out;
		}
	}
	if (o->gateway && *o->gateway) {
		trim_slash(o->gateway);
		gw = (struct gw_client){.base = o->gateway,
					.tenant = o->tenant_id,
					.token = o->token,
					.timeout_ms = 10000};
		if (spool_open(&sp, o->spool_dir, o->job_name,
			       (unsigned)o->shard, &err)) {
			vg_error("cannot open the spool", "err", err.msg);
			goto out;
		}
		have_spool = 1;
		/* batches an earlier run of this job and shard left behind go
		 * first */
		if (sender_start(&gw, &sp, 250, 10000, &snd, &err) ||
		    estop_start(&gw, o->estop_interval_ms, &engaged,
				&stop_flag, &es, &err)) {
			vg_error("cannot start", "err", err.msg);
			goto out;
		}
	}
	struct sink_config sc = {
		.out = out,
		.spool = have_spool ? &sp : NULL,
		.kick = have_spool ? kick : NULL,
		.kick_ctx = snd,
		.batch_size = o->batch_size,
		.max_bytes = BATCH_MAX_BYTES,
		.job_name = o->job_name,
		.policy_namespace = o->policy_namespace,
		.policy_name = o->policy_name,
		.policy_uid = o->policy_uid,
		.trigger = o->trigger,
		.shards = o->shards,
		.shard = o->shard,
		.counters = &r.counters,
	};
	if (sink_init(&r.sink, &sc, &err)) {
		vg_error("cannot start", "err", err.msg);
		goto out;
	}

	if (plan_resolve(&r.plan, &err)) {
		vg_error("cannot resolve targets", "err", err.msg);
		goto finish;
	}
	atomic_store(&r.counters.targets, plan_count(&r.plan));
	{
		char n[24], p[24], s[16], sh[32];

		snprintf(n, sizeof(n), "%llu",
			 (unsigned long long)plan_count(&r.plan));
		snprintf(p, sizeof(p), "%zu", r.plan.ports.n);
		snprintf(s, sizeof(s), "%s", o->scanners);
		snprintf(sh, sizeof(sh), "%d/%d", o->shard, o->shards);
		vg_info("scan starting", "version", version,
			"targets", n, "ports", p, "scanners", o->scanners,
			"shard", sh, "job_name", o->job_name);
	}
	r.last_tick = vg_mono_s();
	struct tcp_config tc = {
		.rate = o->rate,
		.per_target_rate = o->per_target_rate,
		.connect_timeout_ms = o->connect_timeout_ms,
		.retries = o->retries,
		.max_in_flight = o->max_in_flight,
		.banner = (r.plan.scanners & SCAN_BANNER) != 0,
		.banner_timeout_ms = o->banner_timeout_ms,
		.banner_max = BANNER_MAX,
		.stop = &stop_flag,
		.on_open = on_open,
		.on_banner = on_banner,
		.on_tick = on_tick,
		.ctx = &r,
	};
	struct tcp_source src = {.it = &r.plan.iter,
				 .extra = r.plan.resolved,
				 .nextra = r.plan.nresolved,
				 .ports = &r.plan.ports};
	if (!atomic_load(&stop_flag))
		scan_rc = tcp_scan(&tc, &src, &st, &err);
	else
		scan_rc = VG_CANCELED;
	atomic_store(&r.counters.probes, st.probes);
	if (scan_rc != VG_OK && scan_rc != VG_CANCELED) {
		vg_error("scan failed", "err", err.msg);
		goto finish;
	}
	if (scan_rc == VG_OK && r.nopen &&
	    (r.plan.scanners & (SCAN_TLS | SCAN_HTTP))) {
		struct svc_ctx c = {.timeout_ms = o->service_timeout_ms,
				    .stop = &stop_flag,
				    .emit = emit,
				    .ctx = &r};
		unsigned which = ((r.plan.scanners & SCAN_TLS) ? SVC_TLS : 0) |
				 ((r.plan.scanners & SCAN_HTTP) ? SVC_HTTP : 0);
		char n[24];

		snprintf(n, sizeof(n), "%zu", r.nopen);
		vg_info("checking services", "open_ports", n);
		scan_rc = svc_run(r.open, r.nopen, which, o->workers, &c);
	}
	rc = EXIT_DONE;
finish:
	if (atomic_load(&engaged))
		vg_warn("emergency stop engaged: probing stopped, flushing "
			"results");
	else if (atomic_load(&signalled))
		vg_info("signal received: probing stopped, flushing results",
			"signal",
			atomic_load(&signalled) == SIGTERM ? "SIGTERM"
							   : "SIGINT");
	if (sink_finish(&r.sink, &err))
		rc = EXIT_FAILURE_RUN;
	if (snd) {
		long ms = o->flush_timeout_ms;

		if (atomic_load(&stop_flag) && ms > STOP_FLUSH_MS)
			ms = STOP_FLUSH_MS;
		pending = sender_flush(snd, ms);
		rejected = sender_rejected(snd);
	}
	if (r.sink.failed || r.oom)
		rc = EXIT_FAILURE_RUN;
	if (rc == EXIT_DONE && pending)
		rc = EXIT_UNDELIVERED;
	if (rc == EXIT_DONE && rejected)
		rc = EXIT_REJECTED;
	if (atomic_load(&engaged))
		rc = EXIT_ESTOP;
	{
		char code[8], dur[24], pend[24], rej[24], filt[24], closed[24];

		snprintf(code, sizeof(code), "%d", rc);
		snprintf(dur, sizeof(dur), "%.3f", vg_mono_s() - t0);
		snprintf(pend, sizeof(pend), "%zu", pending);
		snprintf(rej, sizeof(rej), "%zu", rejected);
		snprintf(filt, sizeof(filt), "%llu",
			 (unsigned long long)st.filtered);
		snprintf(closed, sizeof(closed), "%llu",
			 (unsigned long long)st.closed);
		r.last_tick = t0;
		r.last_probes = 0;
		progress(&r, &st,
			 rc == EXIT_ESTOP ? "scan stopped by the emergency "
					    "stop"
			 : atomic_load(&signalled) ? "scan stopped by a signal"
						   : "scan finished");
		vg_info("summary", "exit_code", code, "duration_s", dur,
			"closed", closed, "filtered", filt, "batches_pending",
			pend, "batches_rejected", rej);
		if (pending)
			vg_warn("results not delivered remain in the spool",
				"spool_dir", o->spool_dir, "batches", pend);
	}
out:
	estop_free(es);
	sender_free(snd);
	sink_cleanup(&r.sink);
	if (have_spool)
		spool_close(&sp);
	if (out && out != stdout)
		fclose(out);
	else if (out)
		fflush(out);
	free(r.open);
	plan_cleanup(&r.plan);
	return rc;
}
