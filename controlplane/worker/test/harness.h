/* harness.h - shared by the worker's tests: a real PostgreSQL (migrated)
 * and Redis (appendonly, fsync always), tenants and runs, payloads, and
 * waiting for the queue. Header-only: each test binary includes it once. */
#ifndef WORKER_TEST_HARNESS_H
#define WORKER_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testsupport/services.h"
#include "vigil/db.h"
#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/queue.h"

#include <hiredis.h>

static struct vg_ts_service pg, redis;
static struct vg_db_pool *su; /* superuser: sets up rows, counts */

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static struct vg_db_pool *pool_as(const char *user, int max)
{
	struct vg_db_opts o = {.max_conns = max, .acquire_timeout_ms = 20000};
	struct vg_db_pool *p = NULL;
	struct vg_err err = {0};
	char ci[256];

	o.conninfo = vg_ts_pg_conninfo(&pg, user, "vigil", ci, sizeof(ci));
	if (vg_db_pool_new(&o, &p, &err) != VG_OK)
		fail_msg("pool: %s", err.msg);
	return p;
}

static __attribute__((unused)) void su_exec(const char *sql, int n,
                                            const char *const *params)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};

	if (vg_db_acquire(su, &c, &err) != VG_OK ||
	    vg_db_exec(c, sql, n, params, NULL, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	vg_db_release(c);
}

/* The first value of a superuser query as a number. */
static long long su_num(const char *sql, int n, const char *const *params)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	char *v = NULL;
	long long r;

	if (vg_db_acquire(su, &c, &err) != VG_OK ||
	    vg_db_query_value(c, sql, n, params, &v, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	vg_db_release(c);
	r = v ? strtoll(v, NULL, 10) : -1;
	free(v);
	return r;
}

static char *su_str(const char *sql, int n, const char *const *params)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	char *v = NULL;

	if (vg_db_acquire(su, &c, &err) != VG_OK ||
	    vg_db_query_value(c, sql, n, params, &v, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	vg_db_release(c);
	return v;
}

static int start_services(void)
{
	struct vg_db_pool *p;
	struct vg_err err = {0};

	if (vg_ts_pg_start(&pg) != 0 || vg_ts_redis_start(&redis, 1) != 0)
		return -1;
	{
		struct vg_db_opts o = {.max_conns = 1};
		struct vg_db_conn *c = NULL;
		char ci[256];

		o.conninfo = vg_ts_pg_conninfo(&pg, "postgres", "postgres", ci,
		                               sizeof(ci));
		if (vg_db_pool_new(&o, &p, &err) != VG_OK ||
		    vg_db_acquire(p, &c, &err) != VG_OK ||
		    vg_db_exec_script(c, "CREATE DATABASE vigil", &err) !=
		            VG_OK)
			return -1;
		vg_db_release(c);
		vg_db_pool_free(p);
	}
	su = pool_as("postgres", 4);
	if (vg_db_migrate(su, NULL, NULL, &err) != VG_OK) {
		fprintf(stderr, "migrate: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void stop_services(void)
{
	vg_db_pool_free(su);
	su = NULL;
	vg_ts_cleanup(&redis);
	vg_ts_cleanup(&pg);
}

/* A new tenant; its id into `id` (37 bytes). */
static void make_tenant(const char *name, char *id)
{
	const char *p[] = {name};
	char *v = su_str("SELECT vigil.tenant_upsert(gen_random_uuid(), $1, "
	                 "'', '')",
	                 1, p);

	snprintf(id, 37, "%s", v);
	free(v);
}

/* A new run of `tenant` with `shards` shards; its id into `id`. */
static void make_run(const char *tenant, int shards, char *id)
{
	char s[16];
	const char *p[] = {tenant, s};
	char *v;

	snprintf(s, sizeof(s), "%d", shards);
	v = su_str("INSERT INTO vigil.scan_runs (tenant_id, shards) "
	           "VALUES ($1, $2::integer) RETURNING id",
	           2, p);
	snprintf(id, 37, "%s", v);
	free(v);
}

/* An ingest payload with `n` findings (fingerprints fp-0..), new. */
static json_t *ingest_payload(const char *tenant, const char *run,
                              const char *batch, int n, int final)
{
	static const char *const sev[] = {"info", "low", "medium", "high",
	                                  "critical"};
	json_t *f = json_array();

	for (int i = 0; i < n; i++) {
		char fp[64];

		snprintf(fp, sizeof(fp), "%s-fp-%d", batch, i);
		json_array_append_new(
			f, json_pack("{s:s,s:i,s:s,s:s,s:s,s:{s:s}}", "host",
		                     "10.0.0.1", "port", 443, "severity",
		                     sev[i % 5], "fingerprint", fp, "scanner",
		                     "tls", "evidence", "banner", "x"));
	}
	return json_pack("{s:s,s:s,s:s,s:i,s:b,s:o}", "tenant_id", tenant,
	                 "run_id", run, "batch_id", batch, "shard", 0, "final",
	                 final, "findings", f);
}

static struct vg_queue *open_q(const char *prefix)
{
	struct vg_queue_opts o = {.port = redis.port, .prefix = prefix};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};

	if (vg_queue_new(&o, &q, &err) != VG_OK)
		fail_msg("queue: %s", err.msg);
	return q;
}

static void enqueue(struct vg_queue *q, const char *type, json_t *payload,
                    const char *tenant)
{
	struct vg_queue_msg m = {.type = type,
	                         .payload = payload,
	                         .request_id = "req-test",
	                         .tenant = tenant};
	struct vg_err err = {0};

	if (vg_queue_enqueue(q, &m, &err) != VG_OK)
		fail_msg("enqueue: %s", err.msg);
}

static struct vg_queue_stats qstats(struct vg_queue *q)
{
	struct vg_queue_stats s;
	struct vg_err err = {0};
	int rc = VG_IO;

	/* after a Redis restart the first call finds the old connection
	 * closed; the next one reconnects */
	for (int i = 0; i < 3 && rc == VG_IO; i++)
		rc = vg_queue_stats(q, &s, &err);
	if (rc != VG_OK)
		fail_msg("stats: %s", err.msg);
	return s;
}

/* Wait until nothing is ready, held or delayed; fail after `ms`. */
static void wait_drained(struct vg_queue *q, int ms)
{
	long long t0 = mono_ms();

	for (;;) {
		struct vg_queue_stats s = qstats(q);

		if (s.ready + s.pending + s.delayed == 0)
			return;
		if (mono_ms() - t0 > ms)
			fail_msg("queue not drained after %d ms: ready %lld "
			         "pending %lld delayed %lld dead %lld",
			         ms, s.ready, s.pending, s.delayed, s.dead);
		sleep_ms(20);
	}
}

/* Wait until a superuser query counts `want`; fail after `ms`. */
static void wait_count(const char *sql, int n, const char *const *params,
                       long long want, int ms)
{
	long long t0 = mono_ms(), got = -1;

	while (mono_ms() - t0 < ms) {
		got = su_num(sql, n, params);
		if (got == want)
			return;
		sleep_ms(20);
	}
	fail_msg("%s: %lld, want %lld", sql, got, want);
}

/* Holds the run's row locked (FOR UPDATE), which blocks an ingest of the
 * run at its first insert (the foreign key check): a task "in flight". */
struct run_lock {
	struct vg_db_pool *p;
	struct vg_db_conn *c;
};

static void lock_run(struct run_lock *l, const char *run)
{
	const char *p[] = {run};
	struct vg_err err = {0};

	l->p = pool_as("postgres", 1);
	if (vg_db_acquire(l->p, &l->c, &err) != VG_OK ||
	    vg_db_begin(l->c, NULL, 0, &err) != VG_OK ||
	    vg_db_exec(l->c,
	               "SELECT 1 FROM vigil.scan_runs WHERE id = $1 "
	               "FOR UPDATE",
	               1, p, NULL, &err) != VG_OK)
		fail_msg("lock run: %s", err.msg);
}

static void unlock_run(struct run_lock *l)
{
	vg_db_rollback(l->c);
	vg_db_release(l->c);
	vg_db_pool_free(l->p);
	l->p = NULL;
}

/* Sessions waiting for a lock (the blocked ingests). */
static long long lock_waiters(void)
{
	return su_num("SELECT count(*) FROM pg_stat_activity "
	              "WHERE wait_event_type = 'Lock'",
	              0, NULL);
}

static void wait_lock_waiters(long long want, int ms)
{
	long long t0 = mono_ms();

	while (lock_waiters() < want)
		if (mono_ms() - t0 > ms)
			fail_msg("no task blocked on the run after %d ms", ms);
		else
			sleep_ms(20);
}

#endif
