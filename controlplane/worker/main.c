/* vigil-worker: processes tasks from the Redis queue (ingest, finalize,
 * report, archive), manages dead letters (`vigil-worker dlq ...`) and
 * archived runs (`vigil-worker archive ...`).
 * Configuration, wiring, the signal loop; the work is in worker.c and
 * tasks.c. */
#include "archive.h"
#include "dlq.h"
#include "options.h"
#include "worker.h"

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

static void queue_opts(const struct options *o, struct vg_queue_opts *q)
{
	*q = (struct vg_queue_opts){
		.host = o->redis_host,
		.port = o->redis_port,
		.password = o->redis_password,
		.db = o->redis_db,
		.prefix = o->queue_prefix,
		.visibility_timeout_ms = o->visibility_ms,
	};
}

static void archive_setup(const struct options *o)
{
	struct archive_config ac = {.cold_dir = o->cold_dir,
	                            .retention_s = o->archive_retention_s,
	                            .sweep_limit = o->archive_sweep_limit,
	                            .zstd_level = o->archive_zstd_level};

	archive_configure(&ac);
}

static int ready(void *data, struct vg_buf *reason)
{
	if (worker_ready(data))
		return 1;
	vg_buf_append_str(reason, "not taking tasks (starting, draining or "
	                          "redis unreachable)");
	return 0;
}

static int run_dlq(const struct options *o)
{
	struct vg_queue_opts qo;
	struct vg_queue *q = NULL;
	struct vg_err err = {0};
	int rc;

	queue_opts(o, &qo);
	if (vg_queue_new(&qo, &q, &err) != VG_OK) {
		fprintf(stderr, "vigil-worker: %s\n", err.msg);
		return 1;
	}
	rc = dlq_main(q, o->nargs - 1, o->args + 1, stdout, stderr);
	vg_queue_free(q);
	return rc;
}

static int run_archive(const struct options *o)
{
	struct vg_db_opts dbo = {.max_conns = 1};
	struct vg_db_pool *db = NULL;
	struct vg_queue_opts qo;
	struct vg_queue *q = NULL;
	struct vg_err err = {0};
	char *conninfo = options_conninfo(o);
	int rc = 1;

	archive_setup(o);
	queue_opts(o, &qo);
	dbo.conninfo = conninfo;
	if (!conninfo || vg_db_pool_new(&dbo, &db, &err) != VG_OK ||
	    vg_queue_new(&qo, &q, &err) != VG_OK)
		fprintf(stderr, "vigil-worker: %s\n", err.msg);
	else
		rc = archive_main(db, q, o->nargs - 1, o->args + 1, stdout,
		                  stderr);
	vg_queue_free(q);
	vg_db_pool_free(db);
	if (conninfo)
		explicit_bzero(conninfo, strlen(conninfo));
	free(conninfo);
	return rc;
}

static int run_worker(const struct options *o)
{
	struct worker_config wc = {.concurrency = o->concurrency,
	                           .prefetch = o->prefetch};
	struct vg_db_opts dbo = {.max_conns = o->concurrency + 2};
	struct vg_db_pool *db = NULL;
	struct worker *w = NULL;
	struct archive_ticker *ticker = NULL;
	struct vg_httpd *h = NULL;
	struct vg_err err = {0};
	char addr[64], port[16], *conninfo = options_conninfo(o);
	sigset_t sigs;
	int sig = 0, rc = 1;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	vg_metrics_register_process(vg_metrics_default(), NULL);

	dbo.conninfo = conninfo;
	if (!conninfo || vg_db_pool_new(&dbo, &db, &err) != VG_OK)
		goto fail;
	queue_opts(o, &wc.queue);
	wc.db = db;
	archive_setup(o);
	if (worker_new(&wc, &w, &err) != VG_OK)
		goto fail;
	struct vg_httpd_config hc = {
		.addr = options_health_addr(o, addr, sizeof(addr))};
	if (vg_httpd_new(&hc, &h, &err) != VG_OK)
		goto fail;
	vg_httpd_set_ready_fn(h, ready, w);
	if (o->archive_interval_s > 0 &&
	    archive_ticker_start(db, &wc.queue, o->archive_interval_s, &ticker,
	                         &err) != VG_OK)
		goto fail;
	if (vg_httpd_start(h, &err) != VG_OK || worker_start(w, &err) != VG_OK)
		goto fail;
	snprintf(port, sizeof(port), "%d", vg_httpd_port(h));
	char conc[16];
	snprintf(conc, sizeof(conc), "%d", o->concurrency);
	vg_info("starting", "version", VIGIL_VERSION, "redis", o->redis_host,
	        "health_port", port, "concurrency", conc);

	while (sig != SIGTERM && sig != SIGINT)
		if (sigwait(&sigs, &sig) != 0)
			sig = 0;
	vg_info("draining", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	archive_ticker_stop(ticker);
	ticker = NULL;
	worker_stop(w);
	if (worker_wait(w, o->shutdown_ms) != VG_OK) {
		char n[16];

		snprintf(n, sizeof(n), "%d", worker_in_flight(w));
		vg_error("shutdown deadline passed; unfinished tasks will be "
		         "delivered again after the visibility timeout",
		         "in_flight", n);
		_exit(1); /* threads still hold the pools */
	}
	vg_info("stopped");
	rc = 0;
	goto out;
fail:
	vg_error("cannot start", "err", err.msg);
out:
	archive_ticker_stop(ticker);
	vg_httpd_free(h);
	worker_free(w);
	vg_db_pool_free(db);
	if (conninfo)
		explicit_bzero(conninfo, strlen(conninfo));
	free(conninfo);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(const struct options *o);
} commands[] = {
	{"dlq", run_dlq},
	{"archive", run_archive},
};

int main(int argc, char **argv)
{
	struct options o;
	struct vg_err err = {0};
	enum vg_log_level lvl;
	int rc = 2;

	if (options_parse(&o, argc, argv, &err) != VG_OK) {
		fprintf(stderr, "vigil-worker: %s\n", err.msg);
		options_usage(argv[0], stderr);
		goto out;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help)
			options_usage(argv[0], stdout);
		else
			printf("vigil-worker %s\n", VIGIL_VERSION);
		rc = 0;
		goto out;
	}
	vg_log_init("worker");
	if (vg_log_parse_level(o.log_level, &lvl) == VG_OK)
		vg_log_set_level(lvl);
	if (o.nargs == 0) {
		rc = run_worker(&o);
		goto out;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(o.args[0], commands[i].name) == 0) {
			rc = commands[i].run(&o);
			goto out;
		}
	fprintf(stderr, "vigil-worker: unknown command \"%s\"\n", o.args[0]);
	options_usage(argv[0], stderr);
out:
	options_cleanup(&o);
	return rc;
}
