/* test_db.c - the PostgreSQL pool, queries, tenant transactions, the
 * migrations and the row-level-security wall, against a real server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testsupport/services.h"
#include "vigil/db.h"

static struct vg_ts_service pg;

static int setup(void **state)
{
	(void)state;
	return vg_ts_pg_start(&pg);
}

static int teardown(void **state)
{
	(void)state;
	vg_ts_cleanup(&pg);
	return 0;
}

static struct vg_db_pool *pool_as(const char *user, const char *db, int max)
{
	struct vg_db_opts o = { .max_conns = max, .acquire_timeout_ms = 20000 };
	struct vg_db_pool *p = NULL;
	struct vg_err err = { 0 };
	char ci[256];

	o.conninfo = vg_ts_pg_conninfo(&pg, user, db, ci, sizeof(ci));
	if (vg_db_pool_new(&o, &p, &err) != VG_OK)
		fail_msg("pool: %s", err.msg);
	return p;
}

/* Run one statement outside a transaction; fail the test on error. */
static void must_exec(struct vg_db_pool *p, const char *sql)
{
	struct vg_db_conn *c = NULL;
	struct vg_err err = { 0 };

	if (vg_db_acquire(p, &c, &err) != VG_OK ||
	    vg_db_exec_script(c, sql, &err) != VG_OK)
		fail_msg("%s: %s", sql, err.msg);
	vg_db_release(c);
}

/* A fresh database `name` on the shared server. */
static void new_db(const char *name)
{
	struct vg_db_pool *p = pool_as("postgres", "postgres", 1);
	char sql[128];

	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	must_exec(p, sql);
	vg_db_pool_free(p);
}

/* new_db + migrations as the superuser; returns that pool. */
static struct vg_db_pool *migrated_db(const char *name)
{
	struct vg_db_pool *p;
	struct vg_err err = { 0 };
	int n = -1;

	new_db(name);
	p = pool_as("postgres", name, 2);
	if (vg_db_migrate(p, NULL, &n, &err) != VG_OK)
		fail_msg("migrate: %s (%s)", err.msg, err.reason);
	return p;
}

static int num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && !*end ? (int)v : -1;
}

struct q {
	const char *sql;
	int n;
	const char *params[8];
	long long affected;
	char val[128]; /* first value of the first row */
	int rows;
};

static int run_q(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct q *q = arg;
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(c, q->sql, q->n, q->params, &r, err);

	if (rc != VG_OK)
		return rc;
	q->affected = vg_db_res_affected(r);
	q->rows = vg_db_res_rows(r);
	snprintf(q->val, sizeof(q->val), "%s",
		 vg_db_res_get(r, 0, 0) ? vg_db_res_get(r, 0, 0) : "");
	vg_db_res_free(r);
	return VG_OK;
}

/* One statement in a transaction of `tenant`; returns the code. */
static int tx_q(struct vg_db_pool *p, const char *tenant, struct q *q,
		struct vg_err *err)
{
	vg_err_clear(err);
	return vg_db_tx(p, tenant, 0, run_q, q, err);
}

/* --- migrations ------------------------------------------------------- */

static void test_migrate_once_then_noop(void **state)
{
	(void)state;
	struct vg_db_pool *p, *app;
	struct vg_db_conn *c = NULL;
	struct vg_err err = { 0 };
	size_t nmig;
	int n = -1, v = -1;

	vg_db_migrations(&nmig);
	new_db("mig_once");
	p = pool_as("postgres", "mig_once", 2);
	assert_int_equal(vg_db_migrate(p, NULL, &n, &err), VG_OK);
	assert_int_equal(n, (int)nmig);
	assert_int_equal(vg_db_migrate(p, NULL, &n, &err), VG_OK);
	assert_int_equal(n, 0);

	struct q q = { .sql = "SELECT count(*) FROM public.schema_migrations" };
	assert_int_equal(tx_q(p, NULL, &q, &err), VG_OK);
	assert_int_equal(num(q.val), (int)nmig);

	/* the application role can read the version, as services do */
	app = pool_as("vigil_app", "mig_once", 1);
	assert_int_equal(vg_db_acquire(app, &c, &err), VG_OK);
	assert_int_equal(vg_db_schema_version(c, &v, &err), VG_OK);
	assert_int_equal(v, (int)nmig);
	vg_db_release(c);
	vg_db_pool_free(app);
	vg_db_pool_free(p);
}

struct migrator {
	const char *db;
	pthread_barrier_t *start;
	int rc, applied;
	char msg[256];
};

static void *migrate_thread(void *arg)
{
	struct migrator *m = arg;
	struct vg_db_pool *p = pool_as("postgres", m->db, 1);
	struct vg_err err = { 0 };

	pthread_barrier_wait(m->start);
	m->rc = vg_db_migrate(p, NULL, &m->applied, &err);
	snprintf(m->msg, sizeof(m->msg), "%s", err.msg);
	vg_db_pool_free(p);
	return NULL;
}

static void test_migrate_concurrently(void **state)
{
	(void)state;
	enum { N = 4 };
	struct migrator m[N];
	pthread_t t[N];
	pthread_barrier_t start;
	struct vg_db_pool *p;
	struct vg_err err = { 0 };
	size_t nmig;
	int total = 0;

	vg_db_migrations(&nmig);
	new_db("mig_race");
	pthread_barrier_init(&start, NULL, N);
	for (int i = 0; i < N; i++) {
		m[i] = (struct migrator){ .db = "mig_race", .start = &start };
		pthread_create(&t[i], NULL, migrate_thread, &m[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		if (m[i].rc != VG_OK)
			fail_msg("migrator %d: %s", i, m[i].msg);
		total += m[i].applied;
	}
	pthread_barrier_destroy(&start);
	/* exactly one of them applied everything */
	assert_int_equal(total, (int)nmig);
	p = pool_as("postgres", "mig_race", 1);
	struct q q = { .sql = "SELECT count(*) FROM public.schema_migrations" };
	assert_int_equal(tx_q(p, NULL, &q, &err), VG_OK);
	assert_int_equal(num(q.val), (int)nmig);
	vg_db_pool_free(p);
}

static void test_migrate_refuses_edited_migration(void **state)
{
	(void)state;
	struct vg_db_pool *p = migrated_db("mig_edit");
	struct vg_err err = { 0 };
	int n = -1;

	must_exec(p, "UPDATE public.schema_migrations SET checksum = 'x' "
		     "WHERE version = 3");
	assert_int_equal(vg_db_migrate(p, NULL, &n, &err), VG_CONFLICT);
	assert_non_null(strstr(err.msg, "0003_scans"));
	assert_int_equal(n, 0);
	vg_db_pool_free(p);
}

/* The compiled-in SQL is byte for byte the files under review. */
static void test_embedded_migrations_match_files(void **state)
{
	(void)state;
	const char *dir = "lib/db/migrations";
	const struct vg_db_migration *m;
	struct dirent *de;
	size_t n, files = 0;
	DIR *d = opendir(dir);

	if (!d)
		fail_msg("%s: run the tests from the repository root", dir);
	m = vg_db_migrations(&n);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[512], *text;
		FILE *f;
		long size;
		size_t i;

		if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		files++;
		for (i = 0; i < n; i++)
			if (strncmp(de->d_name, m[i].name, len - 4) == 0 &&
			    strlen(m[i].name) == len - 4)
				break;
		if (i == n)
			fail_msg("%s is not compiled in (db_migrate.c)",
				 de->d_name);
		assert_int_equal(m[i].version, (int)strtol(de->d_name, NULL, 10));
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		size = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)size + 1);
		assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
		fclose(f);
		if (strcmp(text, m[i].sql) != 0)
			fail_msg("%s differs from the compiled text: rebuild "
				 "db_migrate.o", de->d_name);
		free(text);
	}
	closedir(d);
	assert_int_equal(files, n);
	for (size_t i = 1; i < n; i++)
		assert_true(m[i].version == m[i - 1].version + 1);
}

/* --- the row-level-security wall ------------------------------------- */

struct world {
	struct vg_db_pool *admin, *app;
	char a[40], b[40];       /* tenant ids */
	char run_a[40], run_b[40];
};

static void upsert_tenant(struct vg_db_pool *admin, const char *uid,
			  const char *name, char *id)
{
	struct vg_err err = { 0 };
	struct q q = { .sql = "SELECT vigil.tenant_upsert($1, $2, $3, $4)",
		       .n = 4,
		       .params = { uid, name, name, "tenant-x" } };

	if (tx_q(admin, NULL, &q, &err) != VG_OK)
		fail_msg("upsert: %s", err.msg);
	snprintf(id, 40, "%.36s", q.val);
}

static void add_findings(struct world *w, const char *tenant, char *run,
			 int n)
{
	struct vg_err err = { 0 };
	struct q q = { .sql = "INSERT INTO scan_runs (tenant_id) VALUES ($1) "
			      "RETURNING id",
		       .n = 1,
		       .params = { tenant } };

	if (tx_q(w->app, tenant, &q, &err) != VG_OK)
		fail_msg("run: %s", err.msg);
	snprintf(run, 40, "%.36s", q.val);
	for (int i = 0; i < n; i++) {
		char fp[32];
		struct q f = {
			.sql = "INSERT INTO findings (tenant_id, run_id, "
			       "batch_id, host, port, scanner, severity, "
			       "fingerprint) VALUES ($1, $2, 'b1', "
			       "'192.0.2.1', 443, 'tls', 'high', $3)",
			.n = 3,
			.params = { tenant, run, fp },
		};

		snprintf(fp, sizeof(fp), "fp-%d", i);
		if (tx_q(w->app, tenant, &f, &err) != VG_OK)
			fail_msg("finding: %s", err.msg);
	}
}

static void world_init(struct world *w, const char *db)
{
	w->admin = migrated_db(db);
	w->app = pool_as("vigil_app", db, 2);
	upsert_tenant(w->admin, "00000000-0000-4000-8000-00000000000a", "acme",
		      w->a);
	upsert_tenant(w->admin, "00000000-0000-4000-8000-00000000000b",
		      "globex", w->b);
	add_findings(w, w->a, w->run_a, 3);
	add_findings(w, w->b, w->run_b, 2);
}

static void world_free(struct world *w)
{
	vg_db_pool_free(w->app);
	vg_db_pool_free(w->admin);
}

static void test_rls_tenant_sees_only_its_rows(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };

	world_init(&w, "rls_read");
	/* no tenant filter in the query: the policy is the filter */
	struct q q = { .sql = "SELECT count(*) FROM findings" };
	assert_int_equal(tx_q(w.app, w.a, &q, &err), VG_OK);
	assert_string_equal(q.val, "3");
	assert_int_equal(tx_q(w.app, w.b, &q, &err), VG_OK);
	assert_string_equal(q.val, "2");

	struct q other = { .sql = "SELECT count(*) FROM findings "
				  "WHERE tenant_id <> $1",
			   .n = 1,
			   .params = { w.a } };
	assert_int_equal(tx_q(w.app, w.a, &other, &err), VG_OK);
	assert_string_equal(other.val, "0");

	/* every tenant table, the tenant's own row of tenants */
	struct q t = { .sql = "SELECT id FROM tenants" };
	assert_int_equal(tx_q(w.app, w.a, &t, &err), VG_OK);
	assert_int_equal(t.rows, 1);
	assert_string_equal(t.val, w.a);
	struct q runs = { .sql = "SELECT count(*) FROM scan_runs" };
	assert_int_equal(tx_q(w.app, w.b, &runs, &err), VG_OK);
	assert_string_equal(runs.val, "1");

	/* an unfiltered UPDATE touches only the tenant's rows */
	struct q upd = { .sql = "UPDATE findings SET state = 'accepted'" };
	assert_int_equal(tx_q(w.app, w.a, &upd, &err), VG_OK);
	assert_int_equal(upd.affected, 3);
	struct q acc = { .sql = "SELECT count(*) FROM findings "
				"WHERE state = 'accepted'" };
	assert_int_equal(tx_q(w.admin, NULL, &acc, &err), VG_OK);
	assert_string_equal(acc.val, "3");
	world_free(&w);
}

static void test_rls_no_tenant_sees_nothing(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };
	struct vg_db_conn *c = NULL;
	char *v = NULL;

	world_init(&w, "rls_none");
	const char *tables[] = { "findings", "scan_runs", "tenants",
				 "ingest_batches", "reports", "audit_log",
				 "api_keys", "role_bindings", "users" };
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[96];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
			 tables[i]);
		struct q q = { .sql = sql };
		if (tx_q(w.app, NULL, &q, &err) != VG_OK)
			fail_msg("%s: %s", tables[i], err.msg);
		if (strcmp(q.val, "0") != 0)
			fail_msg("%s: %s rows without a tenant", tables[i],
				 q.val);
	}
	/* outside any transaction, on a connection that just served tenant
	 * A (the pool has one): the setting did not outlive its transaction */
	vg_db_pool_free(w.app);
	w.app = pool_as("vigil_app", "rls_none", 1);
	struct q q = { .sql = "SELECT count(*) FROM findings" };
	assert_int_equal(tx_q(w.app, w.a, &q, &err), VG_OK);
	assert_string_equal(q.val, "3");
	assert_int_equal(vg_db_acquire(w.app, &c, &err), VG_OK);
	assert_int_equal(vg_db_query_value(c, "SELECT count(*) FROM findings",
					   0, NULL, &v, &err),
			 VG_OK);
	assert_string_equal(v, "0");
	free(v);
	vg_db_release(c);
	world_free(&w);
}

static void test_rls_refuses_other_tenant_rows(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };

	world_init(&w, "rls_write");
	/* tenant A writes a finding claiming tenant B (and B's run) */
	struct q ins = {
		.sql = "INSERT INTO findings (tenant_id, run_id, batch_id, "
		       "host, scanner, severity, fingerprint) VALUES "
		       "($1, $2, 'b9', 'h', 'tcp', 'low', 'sneaky')",
		.n = 2,
		.params = { w.b, w.run_b },
	};
	assert_int_equal(tx_q(w.app, w.a, &ins, &err), VG_FORBIDDEN);
	assert_string_equal(err.reason, "42501");
	assert_non_null(strstr(err.msg, "row-level security"));

	/* moving an own row to the other tenant is refused too */
	struct q mv = { .sql = "UPDATE scan_runs SET tenant_id = $1",
			.n = 1,
			.params = { w.b } };
	assert_int_equal(tx_q(w.app, w.a, &mv, &err), VG_FORBIDDEN);

	/* A's finding cannot point at B's run, even with A's tenant_id */
	struct q cross = {
		.sql = "INSERT INTO findings (tenant_id, run_id, batch_id, "
		       "host, scanner, severity, fingerprint) VALUES "
		       "($1, $2, 'b9', 'h', 'tcp', 'low', 'cross')",
		.n = 2,
		.params = { w.a, w.run_b },
	};
	assert_int_equal(tx_q(w.app, w.a, &cross, &err), VG_CONFLICT);
	assert_string_equal(err.reason, "23503");

	/* tenants cannot be written by the application at all */
	struct q t = { .sql = "UPDATE tenants SET display_name = 'x'" };
	assert_int_equal(tx_q(w.app, w.a, &t, &err), VG_FORBIDDEN);

	/* nor the platform functions called */
	struct q up = { .sql = "SELECT vigil.tenant_archive($1)",
			.n = 1,
			.params = { "00000000-0000-4000-8000-00000000000b" } };
	assert_int_equal(tx_q(w.app, w.a, &up, &err), VG_FORBIDDEN);

	struct q none = { .sql = "SELECT count(*) FROM findings" };
	assert_int_equal(tx_q(w.admin, NULL, &none, &err), VG_OK);
	assert_string_equal(none.val, "5");
	world_free(&w);
}

static void test_app_role_privileges(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };

	world_init(&w, "rls_roles");
	struct q r = { .sql = "SELECT rolsuper OR rolbypassrls "
			      "OR pg_has_role('vigil_app', 'vigil_owner', "
			      "'MEMBER') FROM pg_roles "
			      "WHERE rolname = 'vigil_app'" };
	assert_int_equal(tx_q(w.admin, NULL, &r, &err), VG_OK);
	assert_string_equal(r.val, "f");
	struct q owns = { .sql = "SELECT count(*) FROM pg_class c "
				 "JOIN pg_roles o ON o.oid = c.relowner "
				 "WHERE o.rolname = 'vigil_app'" };
	assert_int_equal(tx_q(w.admin, NULL, &owns, &err), VG_OK);
	assert_string_equal(owns.val, "0");
	/* every table of the schema is owned by vigil_owner and forces RLS
	 * unless it is platform-wide by design */
	struct q loose = {
		.sql = "SELECT string_agg(c.relname, ',') FROM pg_class c "
		       "JOIN pg_namespace n ON n.oid = c.relnamespace "
		       "WHERE n.nspname = 'vigil' AND c.relkind = 'r' "
		       "AND (pg_get_userbyid(c.relowner) <> 'vigil_owner' "
		       "OR NOT (c.relrowsecurity AND c.relforcerowsecurity)) "
		       "AND c.relname <> 'emergency_stop'"
	};
	assert_int_equal(tx_q(w.admin, NULL, &loose, &err), VG_OK);
	assert_string_equal(loose.val, "");

	/* the emergency stop: readable and switchable, not deletable */
	struct q es = { .sql = "UPDATE emergency_stop SET engaged = true, "
			       "changed_by = 'alice'" };
	assert_int_equal(tx_q(w.app, NULL, &es, &err), VG_OK);
	assert_int_equal(es.affected, 1);
	struct q esd = { .sql = "DELETE FROM emergency_stop" };
	assert_int_equal(tx_q(w.app, NULL, &esd, &err), VG_FORBIDDEN);

	/* API key hashes are never readable by the application */
	struct q k = { .sql = "INSERT INTO api_keys (tenant_id, prefix, hash, "
			      "role) VALUES ($1, 'vgk_abcd', "
			      "sha256('secret'), 'agent') RETURNING id",
		       .n = 1,
		       .params = { w.a } };
	assert_int_equal(tx_q(w.app, w.a, &k, &err), VG_OK);
	struct q kh = { .sql = "SELECT hash FROM api_keys" };
	assert_int_equal(tx_q(w.app, w.a, &kh, &err), VG_FORBIDDEN);
	struct q kl = { .sql = "SELECT tenant_id FROM vigil.api_key_lookup("
			       "sha256('secret'))" };
	assert_int_equal(tx_q(w.app, NULL, &kl, &err), VG_OK);
	assert_string_equal(kl.val, w.a);
	world_free(&w);
}

static void test_audit_log_append_only_chain(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };

	world_init(&w, "audit");
	for (int i = 0; i < 3; i++) {
		struct q ins = { .sql = "INSERT INTO audit_log (tenant_id, "
					"actor, action, details) VALUES "
					"($1, 'alice', 'policy.create', "
					"'{\"n\": 1}')",
				 .n = 1,
				 .params = { w.a } };
		if (tx_q(w.app, w.a, &ins, &err) != VG_OK)
			fail_msg("audit insert: %s", err.msg);
	}
	struct q other = { .sql = "INSERT INTO audit_log (tenant_id, actor, "
				  "action) VALUES ($1, 'bob', 'x')",
			   .n = 1,
			   .params = { w.b } };
	assert_int_equal(tx_q(w.app, w.b, &other, &err), VG_OK);
	assert_int_equal(tx_q(w.app, w.a, &other, &err), VG_FORBIDDEN);

	/* the chain: seq 1..3, each prev_hash is the previous hash */
	struct q links = { .sql = "SELECT count(*) FROM audit_log a "
				  "JOIN audit_log b ON b.seq = a.seq + 1 "
				  "AND b.prev_hash = a.hash" };
	assert_int_equal(tx_q(w.app, w.a, &links, &err), VG_OK);
	assert_string_equal(links.val, "2");
	struct q seq = { .sql = "SELECT max(seq) FROM audit_log" };
	assert_int_equal(tx_q(w.app, w.a, &seq, &err), VG_OK);
	assert_string_equal(seq.val, "3");
	struct q verify = { .sql = "SELECT vigil.audit_verify($1)",
			    .n = 1,
			    .params = { w.a } };
	assert_int_equal(tx_q(w.app, w.a, &verify, &err), VG_OK);
	assert_string_equal(verify.val, "");

	/* vigil_app: no UPDATE, no DELETE */
	struct q upd = { .sql = "UPDATE audit_log SET actor = 'mallory'" };
	assert_int_equal(tx_q(w.app, w.a, &upd, &err), VG_FORBIDDEN);
	assert_string_equal(err.reason, "42501");
	struct q del = { .sql = "DELETE FROM audit_log" };
	assert_int_equal(tx_q(w.app, w.a, &del, &err), VG_FORBIDDEN);
	assert_string_equal(err.reason, "42501");
	/* even the owner (here the superuser) is stopped by the trigger */
	assert_int_equal(tx_q(w.admin, NULL, &upd, &err), VG_FORBIDDEN);
	assert_non_null(strstr(err.msg, "append-only"));

	/* tampering behind the trigger's back is detected */
	must_exec(w.admin, "ALTER TABLE vigil.audit_log DISABLE TRIGGER "
			   "audit_log_no_update");
	struct q tamper = { .sql = "UPDATE vigil.audit_log SET actor = "
				   "'mallory' WHERE tenant_id = $1 AND seq = 2",
			    .n = 1,
			    .params = { w.a } };
	assert_int_equal(tx_q(w.admin, NULL, &tamper, &err), VG_OK);
	must_exec(w.admin, "ALTER TABLE vigil.audit_log ENABLE TRIGGER "
			   "audit_log_no_update");
	assert_int_equal(tx_q(w.app, w.a, &verify, &err), VG_OK);
	assert_string_equal(verify.val, "2");

	/* platform entries form their own chain */
	struct q plat = { .sql = "SELECT vigil.audit_append_platform('ops', "
				 "'emergency_stop.engage', '', '', '', NULL)" };
	assert_int_equal(tx_q(w.app, NULL, &plat, &err), VG_OK);
	assert_string_equal(plat.val, "1");
	world_free(&w);
}

static void test_tenant_functions_idempotent(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };
	char again[40], renamed[40];

	world_init(&w, "tenants");
	upsert_tenant(w.admin, "00000000-0000-4000-8000-00000000000a", "acme",
		      again);
	assert_string_equal(again, w.a);
	upsert_tenant(w.admin, "00000000-0000-4000-8000-00000000000a", "acme2",
		      renamed);
	assert_string_equal(renamed, w.a);
	struct q n = { .sql = "SELECT count(*) FROM vigil.tenants" };
	assert_int_equal(tx_q(w.admin, NULL, &n, &err), VG_OK);
	assert_string_equal(n.val, "2");

	struct q arch = { .sql = "SELECT vigil.tenant_archive($1)",
			  .n = 1,
			  .params = { "00000000-0000-4000-8000-00000000000a" } };
	assert_int_equal(tx_q(w.admin, NULL, &arch, &err), VG_OK);
	assert_string_equal(arch.val, w.a);
	assert_int_equal(tx_q(w.admin, NULL, &arch, &err), VG_OK);
	assert_string_equal(arch.val, w.a);
	struct q st = { .sql = "SELECT state || ',' || (archived_at IS NOT NULL)"
			       " FROM vigil.tenants WHERE id = $1",
			.n = 1,
			.params = { w.a } };
	assert_int_equal(tx_q(w.admin, NULL, &st, &err), VG_OK);
	assert_string_equal(st.val, "archived,true");
	/* a new Tenant may take the archived one's name */
	char fresh[40];
	upsert_tenant(w.admin, "00000000-0000-4000-8000-0000000000aa", "acme2",
		      fresh);
	assert_string_not_equal(fresh, w.a);
	/* the application sees the list through the definer function */
	struct q list = { .sql = "SELECT count(*) FROM vigil.tenant_list()" };
	assert_int_equal(tx_q(w.app, NULL, &list, &err), VG_OK);
	assert_string_equal(list.val, "3");
	world_free(&w);
}

/* --- pool, queries, errors -------------------------------------------- */

static void test_errors_keep_sqlstate(void **state)
{
	(void)state;
	struct vg_db_pool *p = pool_as("postgres", "postgres", 2), *dead;
	struct vg_db_opts o = { 0 };
	struct vg_err err = { 0 };
	struct vg_db_conn *c = NULL;
	char ci[128];

	assert_int_equal(vg_db_acquire(p, &c, &err), VG_OK);
	assert_int_equal(vg_db_exec_script(c, "CREATE TEMP TABLE u (k int "
					      "PRIMARY KEY); INSERT INTO u "
					      "VALUES (1)",
					   &err),
			 VG_OK);
	const char *one[] = { "1" };
	assert_int_equal(vg_db_exec(c, "INSERT INTO u VALUES ($1)", 1, one,
				    NULL, &err),
			 VG_EXISTS);
	assert_string_equal(err.reason, "23505");
	assert_int_equal(vg_db_exec(c, "SELECT 1/0", 0, NULL, NULL, &err),
			 VG_INVAL);
	assert_string_equal(err.reason, "22012");
	assert_int_equal(vg_db_exec_script(c, "SELECT 1;\nSELECT 2;\nSELEC 3",
					   &err),
			 VG_DB);
	assert_string_equal(err.reason, "42601");
	assert_true(strncmp(err.msg, "line 3:", 7) == 0);
	assert_int_equal(vg_db_begin(c, "not-a-uuid'; DROP TABLE u; --", 0,
				     &err),
			 VG_INVAL);
	/* a failed statement dooms the transaction; commit says so */
	assert_int_equal(vg_db_begin(c, NULL, 0, &err), VG_OK);
	assert_int_equal(vg_db_exec(c, "INSERT INTO u VALUES ($1)", 1, one,
				    NULL, &err),
			 VG_EXISTS);
	assert_int_equal(vg_db_commit(c, &err), VG_DB);
	char *v = NULL;
	assert_int_equal(vg_db_query_value(c, "SELECT k FROM u WHERE k > 1", 0,
					   NULL, &v, &err),
			 VG_NOTFOUND);
	assert_null(v);
	vg_db_release(c);
	vg_db_pool_free(p);

	o.conninfo = "host=127.0.0.1 port=1 user=x dbname=x";
	assert_int_equal(vg_db_pool_new(&o, &dead, &err), VG_OK);
	assert_int_equal(vg_db_acquire(dead, &c, &err), VG_IO);
	assert_true(vg_db_unavailable(&err));
	assert_string_equal(err.reason, "08001");
	vg_db_pool_free(dead);

	snprintf(ci, sizeof(ci), "nonsense=1");
	o.conninfo = ci;
	assert_int_equal(vg_db_pool_new(&o, &dead, &err), VG_CONFIG);
	assert_null(dead);
}

static void test_acquire_timeout(void **state)
{
	(void)state;
	struct vg_db_opts o = { .max_conns = 1, .acquire_timeout_ms = 200 };
	struct vg_db_pool *p = NULL;
	struct vg_db_conn *c = NULL, *c2 = NULL;
	struct vg_db_pool_stats st;
	struct vg_err err = { 0 };
	char ci[256];

	o.conninfo = vg_ts_pg_conninfo(&pg, "postgres", "postgres", ci,
				       sizeof(ci));
	assert_int_equal(vg_db_pool_new(&o, &p, &err), VG_OK);
	assert_int_equal(vg_db_acquire(p, &c, &err), VG_OK);
	assert_int_equal(vg_db_acquire(p, &c2, &err), VG_TIMEOUT);
	vg_db_pool_stats(p, &st);
	assert_int_equal(st.in_use, 1);
	assert_int_equal(st.waits, 1);
	vg_db_release(c);
	assert_int_equal(vg_db_acquire(p, &c2, &err), VG_OK);
	assert_ptr_equal(c2, c); /* the same connection, reused */
	vg_db_release(c2);
	vg_db_pool_free(p);
}

static const struct vg_db_stmt stmt_add = {
	.name = "test_add",
	.sql = "SELECT $1::int + $2::int",
	.nparams = 2,
};

static void test_prepared_statements(void **state)
{
	(void)state;
	struct vg_db_pool *p = pool_as("postgres", "postgres", 1);
	struct vg_db_conn *c = NULL;
	struct vg_db_res *r = NULL;
	struct vg_err err = { 0 };
	const char *args[] = { "2", "40" };
	char *v = NULL;

	assert_int_equal(vg_db_acquire(p, &c, &err), VG_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vg_db_exec_stmt(c, &stmt_add, args, &r, &err),
				 VG_OK);
		assert_string_equal(vg_db_res_get(r, 0, 0), "42");
		vg_db_res_free(r);
	}
	assert_int_equal(vg_db_query_value(c, "SELECT count(*) FROM "
					      "pg_prepared_statements WHERE "
					      "name = 'test_add'",
					   0, NULL, &v, &err),
			 VG_OK);
	assert_string_equal(v, "1");
	free(v);
	/* the session forgot it: prepared again transparently */
	assert_int_equal(vg_db_exec_script(c, "DEALLOCATE ALL", &err), VG_OK);
	assert_int_equal(vg_db_exec_stmt(c, &stmt_add, args, &r, &err), VG_OK);
	assert_string_equal(vg_db_res_get(r, 0, 0), "42");
	assert_int_equal(vg_db_res_col(r, "?column?"), 0);
	assert_null(vg_db_res_get(r, 1, 0));
	vg_db_res_free(r);
	vg_db_release(c);
	vg_db_pool_free(p);
}

/* --- reads in one round trip ---------------------------------------- */

static const struct vg_db_stmt st_count_findings = {
	.name = "test_count_findings",
	.sql = "SELECT count(*), current_setting('vigil.tenant_id', true)"
	       " FROM findings",
	.nparams = 0,
};

static const struct vg_db_stmt st_findings_of = {
	.name = "test_findings_of",
	.sql = "SELECT count(*) FROM findings WHERE run_id = $1::uuid",
	.nparams = 1,
};

static const struct vg_db_stmt st_write_in_read = {
	.name = "test_write_in_read",
	.sql = "UPDATE findings SET state = 'accepted'",
	.nparams = 0,
};

static const struct vg_db_stmt st_bad_cast = {
	.name = "test_bad_cast",
	.sql = "SELECT $1::integer",
	.nparams = 1,
};

static void test_read_pipeline(void **state)
{
	(void)state;
	struct world w;
	struct vg_err err = { 0 };
	struct vg_db_conn *c = NULL;
	const char *run_b[] = { NULL }, *bad[] = { "x" };
	char *v = NULL;

	world_init(&w, "read_pipe");
	run_b[0] = w.run_b;
	for (int round = 0; round < 3; round++) { /* prepared, then reused */
		struct vg_db_step s[] = {
			{ .st = &st_count_findings },
			{ .st = &st_findings_of, .params = run_b },
		};

		assert_int_equal(vg_db_read(w.app, w.a, s, 2, &err), VG_OK);
		/* the tenant holds for every step; the policy filters */
		assert_string_equal(vg_db_res_get(s[0].res, 0, 0), "3");
		assert_string_equal(vg_db_res_get(s[0].res, 0, 1), w.a);
		assert_string_equal(vg_db_res_get(s[1].res, 0, 0), "0");
		vg_db_res_free(s[0].res);
		vg_db_res_free(s[1].res);
		assert_int_equal(vg_db_read(w.app, w.b, s, 2, &err), VG_OK);
		assert_string_equal(vg_db_res_get(s[0].res, 0, 0), "2");
		assert_string_equal(vg_db_res_get(s[1].res, 0, 0), "2");
		vg_db_res_free(s[0].res);
		vg_db_res_free(s[1].res);
	}
	/* no tenant: no rows */
	struct vg_db_step none[] = { { .st = &st_count_findings } };
	assert_int_equal(vg_db_read(w.app, NULL, none, 1, &err), VG_OK);
	assert_string_equal(vg_db_res_get(none[0].res, 0, 0), "0");
	vg_db_res_free(none[0].res);

	/* read only: a write fails (25006) and nothing changed */
	struct vg_db_step wr[] = { { .st = &st_count_findings },
				   { .st = &st_write_in_read } };
	assert_int_equal(vg_db_read(w.app, w.a, wr, 2, &err), VG_DB);
	assert_string_equal(err.reason, "25006");
	assert_null(wr[0].res);
	assert_null(wr[1].res);
	struct q acc = { .sql = "SELECT count(*) FROM findings "
				"WHERE state = 'accepted'" };
	assert_int_equal(tx_q(w.admin, NULL, &acc, &err), VG_OK);
	assert_string_equal(acc.val, "0");

	/* an error in a step: its code, the other results dropped */
	struct vg_db_step e[] = { { .st = &st_count_findings },
				  { .st = &st_bad_cast, .params = bad } };
	assert_int_equal(vg_db_read(w.app, w.a, e, 2, &err), VG_INVAL);
	assert_string_equal(err.reason, "22P02");
	assert_null(e[0].res);
	/* a bad tenant id is refused before anything is sent */
	assert_int_equal(vg_db_read(w.app, "a'; DROP", none, 1, &err), VG_INVAL);

	/* the connections went back clean: idle, no tenant, read-write,
	 * out of pipeline mode; a session that lost its statements (and
	 * one whose server side was closed) gets them back */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(vg_db_acquire(w.app, &c, &err), VG_OK);
		assert_int_equal(PQpipelineStatus(vg_db_conn_pg(c)),
				 PQ_PIPELINE_OFF);
		assert_int_equal(vg_db_query_value(
					 c,
					 "SELECT coalesce(current_setting("
					 "'vigil.tenant_id', true), '') || '/' "
					 "|| current_setting("
					 "'transaction_read_only')",
					 0, NULL, &v, &err),
				 VG_OK);
		assert_string_equal(v, "/off");
		free(v);
		assert_int_equal(vg_db_exec_script(c, "DEALLOCATE ALL", &err),
				 VG_OK);
		vg_db_release(c);
	}
	struct vg_db_step again[] = { { .st = &st_count_findings } };
	assert_int_equal(vg_db_read(w.app, w.a, again, 1, &err), VG_OK);
	assert_string_equal(vg_db_res_get(again[0].res, 0, 0), "3");
	vg_db_res_free(again[0].res);
	world_free(&w);
}

struct hammer {
	struct vg_db_pool *p;
	int ok;
};

static int count_one(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	(void)arg;
	return vg_db_exec(c, "SELECT pg_sleep(0.001)", 0, NULL, NULL, err);
}

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < 100; i++) {
		struct vg_err err = { 0 };

		h->ok += vg_db_tx(h->p, "00000000-0000-4000-8000-000000000001",
				  VG_DB_TX_READ_ONLY, count_one, NULL,
				  &err) == VG_OK;
	}
	return NULL;
}

static void test_pool_threads(void **state)
{
	(void)state;
	enum { N = 8 };
	struct hammer h[N];
	pthread_t t[N];
	struct vg_db_pool_stats st;
	struct vg_db_pool *p = pool_as("postgres", "postgres", 3);

	for (int i = 0; i < N; i++) {
		h[i] = (struct hammer){ .p = p };
		pthread_create(&t[i], NULL, hammer_thread, &h[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].ok, 100);
	}
	vg_db_pool_stats(p, &st);
	assert_int_equal(st.in_use, 0);
	assert_true(st.open <= 3);
	assert_int_equal(st.connects, (unsigned long)st.open);
	vg_db_pool_free(p);
}

struct flaky {
	int calls;
};

static int fail_once(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct flaky *f = arg;

	if (f->calls++ == 0)
		return vg_err_set(err, VG_AGAIN, "serialization failure");
	return vg_db_exec(c, "SELECT 1", 0, NULL, NULL, err);
}

static void test_tx_retries_serialization_failures(void **state)
{
	(void)state;
	struct vg_db_pool *p = pool_as("postgres", "postgres", 1);
	struct vg_err err = { 0 };
	struct flaky f = { 0 };

	assert_int_equal(vg_db_tx(p, NULL, VG_DB_TX_SERIALIZABLE, fail_once,
				  &f, &err),
			 VG_OK);
	assert_int_equal(f.calls, 2);
	vg_db_pool_free(p);
}

/* --- the server goes away --------------------------------------------- */

static int select_one(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	(void)arg;
	return vg_db_exec(c, "SELECT 1", 0, NULL, NULL, err);
}

/* Open `n` connections so they sit idle in the pool. */
static void warm(struct vg_db_pool *p, int n)
{
	struct vg_db_conn *c[8] = { 0 };
	struct vg_err err = { 0 };

	for (int i = 0; i < n; i++)
		assert_int_equal(vg_db_acquire(p, &c[i], &err), VG_OK);
	for (int i = 0; i < n; i++)
		vg_db_release(c[i]);
}

static void test_pool_recovers_after_restart(void **state)
{
	(void)state;
	struct vg_db_opts o = { .max_conns = 3,
				/* never health-checked by age: recovery must
				 * come from noticing the broken connection */
				.health_check_idle_ms = 3600 * 1000 };
	struct vg_db_pool *p = NULL;
	struct vg_db_pool_stats st;
	struct vg_err err = { 0 };
	char ci[256];

	o.conninfo = vg_ts_pg_conninfo(&pg, "postgres", "postgres", ci,
				       sizeof(ci));
	assert_int_equal(vg_db_pool_new(&o, &p, &err), VG_OK);
	warm(p, 3);
	assert_int_equal(vg_ts_restart(&pg), 0);
	for (int i = 0; i < 5; i++)
		if (vg_db_tx(p, NULL, 0, select_one, NULL, &err) != VG_OK)
			fail_msg("after restart, tx %d: %s", i, err.msg);
	vg_db_pool_stats(p, &st);
	assert_true(st.broken >= 1);
	assert_int_equal(st.in_use, 0);
	vg_db_pool_free(p);
}

static void test_pool_recovers_after_kill9(void **state)
{
	(void)state;
	struct vg_db_pool *p = pool_as("postgres", "postgres", 3);
	struct vg_err err = { 0 };
	struct timespec t0, t1;
	int up = -1;

	warm(p, 3);
	assert_int_equal(vg_ts_kill9(&pg), 0);
	/* down: a clean, quick error that says so */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vg_db_tx(p, NULL, 0, select_one, NULL, &err), VG_IO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(vg_db_unavailable(&err));
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	/* orphaned backends notice the postmaster's death and exit; until
	 * then the new postmaster may refuse to start */
	for (int i = 0; i < 20 && up != 0; i++) {
		up = vg_ts_restart(&pg);
		if (up != 0)
			usleep(250 * 1000);
	}
	assert_int_equal(up, 0);
	assert_int_equal(vg_db_tx(p, NULL, 0, select_one, NULL, &err), VG_OK);
	vg_db_pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_once_then_noop),
		cmocka_unit_test(test_migrate_concurrently),
		cmocka_unit_test(test_migrate_refuses_edited_migration),
		cmocka_unit_test(test_embedded_migrations_match_files),
		cmocka_unit_test(test_rls_tenant_sees_only_its_rows),
		cmocka_unit_test(test_rls_no_tenant_sees_nothing),
		cmocka_unit_test(test_rls_refuses_other_tenant_rows),
		cmocka_unit_test(test_app_role_privileges),
		cmocka_unit_test(test_audit_log_append_only_chain),
		cmocka_unit_test(test_tenant_functions_idempotent),
		cmocka_unit_test(test_errors_keep_sqlstate),
		cmocka_unit_test(test_acquire_timeout),
		cmocka_unit_test(test_prepared_statements),
		cmocka_unit_test(test_read_pipeline),
		cmocka_unit_test(test_pool_threads),
		cmocka_unit_test(test_tx_retries_serialization_failures),
		/* last: they restart the shared server */
		cmocka_unit_test(test_pool_recovers_after_restart),
		cmocka_unit_test(test_pool_recovers_after_kill9),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
