/* harness.h - shared by the brain's tests: a real PostgreSQL (migrated by
 * lib's migrator) and Redis, tenants, policy runs with findings as the
 * worker leaves them, superuser queries. Header-only: each test binary
 * includes it once. */
#ifndef BRAIN_TEST_HARNESS_H
#define BRAIN_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "testsupport/services.h"
#include "vigil/db.h"
#include "vigil/json.h"
#include "vigil/log.h"
#include "vigil/queue.h"

static struct vg_ts_service pg, redis;
static struct vg_db_pool *su; /* superuser: sets up rows, counts */

static __attribute__((unused)) long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static __attribute__((unused)) void sleep_ms(int ms)
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

/* The first value of a superuser query, new ("" for NULL); no row
 * fails unless `none` is set, which it then returns. */
static char *su_str_or(const char *sql, int n, const char *const *params,
                       const char *none)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = {0};
	char *v = NULL;
	int rc = vg_db_acquire(su, &c, &err);

	if (rc == VG_OK)
		rc = vg_db_query_value(c, sql, n, params, &v, &err);
	vg_db_release(c);
	if (rc == VG_NOTFOUND && none)
		return strdup(none);
	if (rc != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	return v ? v : strdup("");
}

static char *su_str(const char *sql, int n, const char *const *params)
{
	return su_str_or(sql, n, params, NULL);
}

static __attribute__((unused)) long long su_num(const char *sql, int n,
                                                const char *const *params)
{
	char *v = su_str(sql, n, params);
	long long r = *v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return r;
}

static int start_services(void)
{
	struct vg_db_pool *p;
	struct vg_err err = {0};
	struct vg_db_opts o = {.max_conns = 1};
	struct vg_db_conn *c = NULL;
	char ci[256];

	if (vg_ts_pg_start(&pg) != 0 || vg_ts_redis_start(&redis, 1) != 0)
		return -1;
	o.conninfo = vg_ts_pg_conninfo(&pg, "postgres", "postgres", ci,
	                               sizeof(ci));
	if (vg_db_pool_new(&o, &p, &err) != VG_OK ||
	    vg_db_acquire(p, &c, &err) != VG_OK ||
	    vg_db_exec_script(c, "CREATE DATABASE vigil", &err) != VG_OK)
		return -1;
	vg_db_release(c);
	vg_db_pool_free(p);
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

/*
 * The run's stored report content, checked to be what the brain stores:
 * content_encoding 'zstd' and exactly one zstd frame that names its size;
 * decoded, new and NUL-terminated. *zlen (NULL allowed): bytes stored.
 */
static __attribute__((unused)) char *stored_html(const char *run, size_t *zlen)
{
	const char *p[] = {run};
	char *enc = su_str("SELECT content_encoding FROM vigil.reports "
	                   "WHERE run_id = $1 AND kind = 'run'",
	                   1, p);
	char *hex = su_str("SELECT encode(content, 'hex') FROM vigil.reports "
	                   "WHERE run_id = $1 AND kind = 'run'",
	                   1, p);
	size_t n = strlen(hex) / 2, got;
	unsigned char *z = malloc(n + 1);
	unsigned long long size;
	char *html;

	assert_string_equal(enc, "zstd");
	assert_non_null(z);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			fail_msg("content is not hex at %zu", i);
		z[i] = (unsigned char)v;
	}
	/* a zstd frame: magic number 0xFD2FB528, little-endian */
	assert_true(n > 4);
	assert_memory_equal(z, "\x28\xb5\x2f\xfd", 4);
	assert_int_equal(ZSTD_findFrameCompressedSize(z, n), n);
	size = ZSTD_getFrameContentSize(z, n);
	assert_true(size != ZSTD_CONTENTSIZE_UNKNOWN &&
	            size != ZSTD_CONTENTSIZE_ERROR && size < (64u << 20));
	html = malloc((size_t)size + 1);
	assert_non_null(html);
	got = ZSTD_decompress(html, (size_t)size, z, n);
	if (ZSTD_isError(got))
		fail_msg("zstd: %s", ZSTD_getErrorName(got));
	assert_int_equal(got, size);
	html[got] = '\0';
	if (zlen)
		*zlen = n;
	free(z);
	free(hex);
	free(enc);
	return html;
}

/* A new tenant; its id into `id` (37 bytes). */
static __attribute__((unused)) void make_tenant(const char *name, char *id)
{
	const char *p[] = {name};
	char *v = su_str("SELECT vigil.tenant_upsert(gen_random_uuid(), $1, "
	                 "'', '')",
	                 1, p);

	snprintf(id, 37, "%s", v);
	free(v);
}

/*
 * A finished run of policy (uid, ns/name) created `days_ago` days ago,
 * with the findings of `spec`: "fp:host:port:severity:age_days;..."
 * (port "-" for none; first_seen is age_days before now). Counts as the
 * worker's finalize records them. Its id into `id`.
 */
static __attribute__((unused)) void make_run(const char *tenant,
                                             const char *uid, const char *ns,
                                             const char *name, int days_ago,
                                             const char *spec, char *id)
{
	char days[16], *v;
	const char *p[] = {tenant, uid, ns, name, days};
	json_t *arr = json_array();
	char *copy = strdup(spec), *save = NULL, *tok;
	struct vg_buf b;

	snprintf(days, sizeof(days), "%d", days_ago);
	v = su_str("INSERT INTO vigil.scan_runs (tenant_id, policy_uid, "
	           "policy_namespace, policy_name, state, created_at, "
	           "started_at) VALUES ($1, $2, $3, $4, 'running', "
	           "now() - make_interval(days => $5::integer), "
	           "now() - make_interval(days => $5::integer)) RETURNING id",
	           5, p);
	snprintf(id, 37, "%s", v);
	free(v);
	for (tok = strtok_r(copy, ";", &save); tok;
	     tok = strtok_r(NULL, ";", &save)) {
		char fp[64], host[128], port[16], sev[16];
		int age;

		if (sscanf(tok, "%63[^:]:%127[^:]:%15[^:]:%15[^:]:%d", fp, host,
		           port, sev, &age) != 5)
			fail_msg("bad finding spec %s", tok);
		json_t *jport = strcmp(port, "-")
		                        ? json_integer(strtol(port, NULL, 10))
		                        : json_null();

		json_array_append_new(
			arr, json_pack("{s:s,s:s,s:o,s:s,s:i,s:s}", "fp", fp,
		                       "host", host, "port", jport, "sev", sev,
		                       "age", age, "title", fp));
	}
	free(copy);
	vg_buf_init(&b, 0);
	vg_json_dumps(arr, JSON_COMPACT, &b);
	{
		const char *q[] = {tenant, id, vg_buf_str(&b)};

		su_exec("INSERT INTO vigil.findings (tenant_id, run_id, "
		        "batch_id, host, port, scanner, severity, fingerprint, "
		        "title, first_seen, last_seen) "
		        "SELECT $1, $2, 'b', f.host, f.port, 'tcp', "
		        "f.sev::vigil.severity, f.fp, f.title, "
		        "now() - make_interval(days => f.age), now() "
		        "FROM jsonb_to_recordset($3::jsonb) AS f(fp text, host "
		        "text, port integer, sev text, age integer, title text)",
		        3, q);
	}
	{
		const char *q[] = {id};

		su_exec("UPDATE vigil.scan_runs r SET state = 'succeeded', "
		        "shards_done = 1, finished_at = r.created_at + "
		        "interval '10 minutes', finding_counts = c.counts "
		        "FROM (SELECT jsonb_build_object("
		        "'critical', count(*) FILTER (WHERE severity = "
		        "'critical'), "
		        "'high', count(*) FILTER (WHERE severity = 'high'), "
		        "'medium', count(*) FILTER (WHERE severity = 'medium'), "
		        "'low', count(*) FILTER (WHERE severity = 'low'), "
		        "'info', count(*) FILTER (WHERE severity = 'info'), "
		        "'total', count(*)) AS counts "
		        "FROM vigil.findings WHERE run_id = $1) c "
		        "WHERE r.id = $1",
		        1, q);
	}
	vg_buf_cleanup(&b);
	json_decref(arr);
}

/* The pending report row the worker's report task records. */
static __attribute__((unused)) void worker_hands_off(const char *tenant,
                                                     const char *run,
                                                     const char *request_id)
{
	const char *p[] = {tenant, run, request_id};

	su_exec("INSERT INTO vigil.reports (tenant_id, run_id, kind, format, "
	        "state, summary, request_id) "
	        "SELECT $1, id, 'run', 'json', 'pending', finding_counts, $3 "
	        "FROM vigil.scan_runs WHERE id = $2 "
	        "ON CONFLICT (tenant_id, run_id) WHERE kind = 'run' "
	        "DO NOTHING",
	        3, p);
}

static __attribute__((unused)) struct vg_queue *open_q(const char *prefix,
                                                       const char *group)
{
	struct vg_queue_opts o = {
		.port = redis.port, .prefix = prefix, .group = group};
	struct vg_queue *q = NULL;
	struct vg_err err = {0};

	if (vg_queue_new(&o, &q, &err) != VG_OK)
		fail_msg("queue: %s", err.msg);
	return q;
}

static __attribute__((unused)) struct vg_queue_stats qstats(struct vg_queue *q)
{
	struct vg_queue_stats s;
	struct vg_err err = {0};

	if (vg_queue_stats(q, &s, &err) != VG_OK)
		fail_msg("stats: %s", err.msg);
	return s;
}

/* Wait until a superuser query gives `want`; fail after `ms`. */
static __attribute__((unused)) void wait_str(const char *sql, int n,
                                             const char *const *params,
                                             const char *want, int ms)
{
	long long t0 = mono_ms();
	char *got = NULL;

	while (mono_ms() - t0 < ms) {
		free(got);
		got = su_str_or(sql, n, params, "(no row)");
		if (strcmp(got, want) == 0) {
			free(got);
			return;
		}
		sleep_ms(20);
	}
	fail_msg("%s: \"%s\", want \"%s\"", sql, got, want);
}

#endif
