/*
 * health.c - a background thread that asks PostgreSQL and Redis whether
 * they answer (once a second) and refreshes the gauges kept elsewhere
 * (emergency stop, sessions across replicas). /readyz reads its results,
 * so a probe never waits on a dead server, and readiness comes back by
 * itself when the servers do.
 */
#include "gateway.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK_MS     1000
#define GAUGES_EVERY 5

static void check_db(struct gw *g)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	int ok = vg_db_acquire(g->db, &c, &err) == VG_OK &&
	         vg_db_exec(c, "SELECT 1", 0, NULL, NULL, &err) == VG_OK;

	vg_db_release(c);
	if (ok == atomic_exchange(&g->db_ok, ok))
		return;
	if (ok)
		vg_info("postgresql reachable");
	else
		vg_warn("postgresql unreachable", "err", err.msg);
}

static void check_redis(struct gw *g)
{
	struct vg_err err = {0};
	int ok = gw_redis_cmd(g->redis, NULL, &err, "PING", NULL) == VG_OK;

	if (ok == atomic_exchange(&g->redis_ok, ok))
		return;
	if (ok)
		vg_info("redis reachable");
	else
		vg_warn("redis unreachable", "err", err.msg);
}

/* vigil_scan_jobs{state}: every tenant's runs, counted by a function of
 * the schema's owner (0009_gateway_scans.sql); every
 * VIGIL_SCAN_JOBS_REFRESH seconds, as it reads the whole table */
static void refresh_scan_jobs(struct gw *g)
{
	struct vg_db_conn *c = NULL;
	struct vg_db_res *r = NULL;
	struct vg_err err = {0};

	if (vg_db_acquire(g->db, &c, &err) == VG_OK &&
	    vg_db_exec(c, "SELECT state, runs FROM scan_run_counts()", 0, NULL,
	               &r, &err) == VG_OK) {
		for (size_t i = 0; gw_run_states[i]; i++) {
			double n = 0;

			for (int row = 0; row < vg_db_res_rows(r); row++)
				if (strcmp(vg_db_res_get(r, row, 0),
				           gw_run_states[i]) == 0)
					n = strtod(vg_db_res_get(r, row, 1),
					           NULL);
			vg_gauge_set(vg_metric_labels(g->m.scan_jobs,
			                              gw_run_states[i]),
			             n);
		}
	} else {
		vg_debug("scan run counts", "err", err.msg);
	}
	vg_db_res_free(r);
	vg_db_release(c);
}

static void refresh_gauges(struct gw *g)
{
	long long n;

	if (atomic_load(&g->db_ok))
		gw_estop_read(g, NULL, NULL);
	if (atomic_load(&g->redis_ok) && gw_session_count(g, &n, NULL) == VG_OK)
		vg_gauge_set(g->m.sessions, (double)n);
}

/* Migrate until it works; then apply the configured emergency stop. */
static void ensure_schema(struct gw *g)
{
	struct vg_err err = {0};

	if (atomic_load(&g->schema_ok))
		return;
	if (gw_migrate(g, &err) != VG_OK) {
		vg_warn("database migrations not applied yet; retrying", "err",
		        err.msg);
		return;
	}
	atomic_store(&g->schema_ok, 1);
	if (g->cfg->emergency_stop &&
	    gw_estop_engage_from_config(g, &err) != VG_OK)
		vg_warn("could not engage the configured emergency stop", "err",
		        err.msg);
}

static void *health_main(void *arg)
{
	struct gw *g = arg;
	struct gw_health *h = &g->health;
	unsigned tick = 0;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		struct timespec ts;

		pthread_mutex_unlock(&h->mu);
		ensure_schema(g);
		check_db(g);
		check_redis(g);
		if (tick % GAUGES_EVERY == 0)
			refresh_gauges(g);
		/* a count over every tenant's runs: not every tick */
		if (tick % (unsigned)g->cfg->scan_jobs_refresh_s == 0 &&
		    atomic_load(&g->db_ok) && atomic_load(&g->schema_ok))
			refresh_scan_jobs(g);
		tick++;
		pthread_mutex_lock(&h->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CHECK_MS / 1000;
		while (!h->stop && pthread_cond_timedwait(&h->cond, &h->mu,
		                                          &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int gw_health_start(struct gw *g, struct vg_err *err)
{
	struct gw_health *h = &g->health;

	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->stop = 0;
	if (pthread_create(&h->th, NULL, health_main, g)) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cond);
		return vg_err_sys(err, VG_IO, "health checker thread");
	}
	h->running = 1;
	return VG_OK;
}

void gw_health_stop(struct gw *g)
{
	struct gw_health *h = &g->health;

	if (!h->running)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cond);
	h->running = 0;
}

int gw_ready(struct gw *g, char *reason, size_t size)
{
	static const struct {
		size_t off;
		int want;
		const char *why;
	} checks[] = {
		{offsetof(struct gw, draining), 0, "shutting down"},
		{offsetof(struct gw, schema_ok), 1,
	         "database schema not ready"},
		{offsetof(struct gw, db_ok), 1, "postgresql unreachable"},
		{offsetof(struct gw, redis_ok), 1, "redis unreachable"},
	};

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		atomic_int *v = (atomic_int *)((char *)g + checks[i].off);

		if ((atomic_load(v) != 0) != checks[i].want) {
			snprintf(reason, size, "%s", checks[i].why);
			return 0;
		}
	}
	return 1;
}
