/* vigil-brain: generates run reports (diff against the previous run, risk,
 * trend; JSON and HTML) from "report" tasks of its own Redis queue, fed by
 * the pending reports the worker records and by the report API (POST
 * /v1/reports). `vigil-brain generate TENANT RUN` makes one report at
 * once. Configuration, wiring, the signal loop;
 * the work is in brain.c and report_db.c. */
#include "api.h"
#include "brain.h"
#include "options.h"
#include "report_db.h"

#include "vigil/httpd.h"
#include "vigil/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "dev"
#endif

static int ready(void *data, struct vg_buf *reason)
{
	if (brain_ready(data))
		return 1;
	vg_buf_append_str(reason, "not taking report tasks (starting, "
	                          "draining or redis unreachable)");
	return 0;
}

static int open_db(const struct options *o, int conns, struct vg_db_pool **db,
                   struct vg_err *err)
{
	struct vg_db_opts dbo = {.max_conns = conns,
	                         .application_name = "vigil-brain"};
	char *conninfo = options_conninfo(o);
	int rc;

	if (!conninfo)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	dbo.conninfo = conninfo;
	rc = vg_db_pool_new(&dbo, db, err);
	explicit_bzero(conninfo, strlen(conninfo));
	free(conninfo);
	return rc;
}

/* The brain must never consume the worker's stream: its group would take
 * (and dead-letter) the worker's ingest and finalize tasks. */
static int check_prefix(const struct options *o, struct vg_err *err)
{
	const char *worker = getenv("VIGIL_QUEUE_PREFIX");

	if (strcmp(o->queue_prefix, "vigil") == 0 ||
	    (worker && strcmp(worker, o->queue_prefix) == 0))
		return vg_err_set(err, VG_CONFIG,
		                  "queue prefix \"%s\" is the worker's; the "
		                  "brain needs its own "
		                  "(VIGIL_BRAIN_QUEUE_PREFIX)",
		                  o->queue_prefix);
	return VG_OK;
}

static int run_generate(const struct options *o, struct vg_strmap *crit)
{
	struct report_params p = {.criticality = crit,
	                          .trend_runs = o->trend_runs,
	                          .list_max = (size_t)o->list_max,
	                          .force = 1};
	struct report_outcome out;
	struct vg_db_pool *db = NULL;
	struct vg_err err = {0};
	int rc = 1;

	if (o->nargs != 3) {
		fprintf(stderr, "vigil-brain: generate TENANT RUN\n");
		return 2;
	}
	p.tenant = o->args[1];
	p.run = o->args[2];
	if (open_db(o, 2, &db, &err) != VG_OK ||
	    report_generate(db, &p, &out, &err) != VG_OK) {
		fprintf(stderr, "vigil-brain: %s\n", err.msg);
		goto out;
	}
	printf("{\"report_id\":\"%s\",\"findings\":%ld,\"new\":%ld,"
	       "\"persisting\":%ld,\"resolved\":%ld,\"regressed\":%ld,"
	       "\"json_bytes\":%zu,\"html_bytes\":%zu,\"content_bytes\":%zu,"
	       "\"load_s\":%.4f,\"render_s\":%.4f,\"store_s\":%.4f,"
	       "\"total_s\":%.4f}\n",
	       out.report_id, out.findings, out.by_class[CLASS_NEW],
	       out.by_class[CLASS_PERSISTING], out.by_class[CLASS_RESOLVED],
	       out.by_class[CLASS_REGRESSED], out.json_bytes, out.html_bytes,
	       out.content_bytes, out.load_s, out.render_s, out.store_s,
	       out.load_s + out.render_s + out.store_s);
	rc = 0;
out:
	vg_db_pool_free(db);
	return rc;
}

static int run_brain(const struct options *o, struct vg_strmap *crit)
{
	struct brain_config bc = {
		.queue = {.host = o->redis_host,
	                  .port = o->redis_port,
	                  .password = o->redis_password,
	                  .db = o->redis_db,
	                  .prefix = o->queue_prefix,
	                  .visibility_timeout_ms = o->visibility_ms},
		.concurrency = o->concurrency,
		.sweep_ms = o->sweep_ms,
		.requeue_after_s = o->requeue_after_ms / 1000,
		.criticality = crit,
		.trend_runs = o->trend_runs,
		.list_max = (size_t)o->list_max,
	};
	struct vg_db_pool *db = NULL;
	struct brain *b = NULL;
	struct vg_httpd *h = NULL;
	struct api *api = NULL;
	struct server *srv = NULL;
	struct vg_err err = {0};
	char addr[64], api_addr[64], port[16], aport[16] = "off", conc[16];
	sigset_t sigs;
	int sig = 0, rc = 1;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	vg_metrics_register_process(vg_metrics_default(), NULL);

	if (check_prefix(o, &err) != VG_OK ||
	    open_db(o, o->concurrency + 2, &db, &err) != VG_OK)
		goto fail;
	bc.db = db;
	if (brain_new(&bc, &b, &err) != VG_OK)
		goto fail;
	struct vg_httpd_config hc = {
		.addr = options_health_addr(o, addr, sizeof(addr))};
	if (vg_httpd_new(&hc, &h, &err) != VG_OK)
		goto fail;
	vg_httpd_set_ready_fn(h, ready, b);
	if (o->api_token && *o->api_token) {
		struct api_config ac = {.db = db,
		                        .brain = b,
		                        .token = o->api_token,
		                        .deadline_ms = o->api_deadline_ms};
		struct server_config sc = {
			.addr = options_api_addr(o, api_addr, sizeof(api_addr)),
			.threads = o->api_threads,
			.handle = api_handle};

		if (api_new(&ac, &api, &err) != VG_OK)
			goto fail;
		sc.data = api;
		if (server_new(&sc, &srv, &err) != VG_OK)
			goto fail;
		snprintf(aport, sizeof(aport), "%d", server_port(srv));
	} else {
		vg_warn("report api off: VIGIL_BRAIN_TOKEN is not set");
	}
	if (vg_httpd_start(h, &err) != VG_OK ||
	    (srv && server_start(srv, &err) != VG_OK) ||
	    brain_start(b, &err) != VG_OK)
		goto fail;
	snprintf(port, sizeof(port), "%d", vg_httpd_port(h));
	snprintf(conc, sizeof(conc), "%d", o->concurrency);
	vg_info("starting", "version", VIGIL_VERSION, "redis", o->redis_host,
	        "queue_prefix", o->queue_prefix, "health_port", port,
	        "api_port", aport, "concurrency", conc);

	while (sig != SIGTERM && sig != SIGINT)
		if (sigwait(&sigs, &sig) != 0)
			sig = 0;
	vg_info("draining", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	/* requests waiting for reports answer 202 at once */
	api_stop(api);
	server_stop(srv);
	brain_stop(b);
	if (brain_wait(b, o->shutdown_ms) != VG_OK) {
		vg_error("shutdown deadline passed; unfinished reports will be "
		         "delivered again after the visibility timeout");
		_exit(1); /* threads still hold the pools */
	}
	vg_info("stopped");
	rc = 0;
	goto out;
fail:
	vg_error("cannot start", "err", err.msg);
out:
	server_free(srv);
	api_free(api);
	vg_httpd_free(h);
	brain_free(b);
	vg_db_pool_free(db);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(const struct options *o, struct vg_strmap *crit);
} commands[] = {
	{"generate", run_generate},
};

int main(int argc, char **argv)
{
	struct options o;
	struct vg_strmap crit;
	struct vg_err err = {0};
	enum vg_log_level lvl;
	int rc = 2;

	vg_strmap_init(&crit, NULL);
	if (options_parse(&o, argc, argv, &err) != VG_OK ||
	    brain_parse_criticality(o.asset_criticality, &crit, &err) !=
	            VG_OK) {
		fprintf(stderr, "vigil-brain: %s\n", err.msg);
		options_usage(argv[0], stderr);
		goto out;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help)
			options_usage(argv[0], stdout);
		else
			printf("vigil-brain %s\n", VIGIL_VERSION);
		rc = 0;
		goto out;
	}
	vg_log_init("brain");
	if (vg_log_parse_level(o.log_level, &lvl) == VG_OK)
		vg_log_set_level(lvl);
	if (o.nargs == 0) {
		rc = run_brain(&o, &crit);
		goto out;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(o.args[0], commands[i].name) == 0) {
			rc = commands[i].run(&o, &crit);
			goto out;
		}
	fprintf(stderr, "vigil-brain: unknown command \"%s\"\n", o.args[0]);
	options_usage(argv[0], stderr);
out:
	vg_strmap_cleanup(&crit);
	options_cleanup(&o);
	return rc;
}
