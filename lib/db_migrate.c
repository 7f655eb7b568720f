/*
 * db_migrate.c - versioned schema migrations, applied at start-up.
 *
 * The migrations are the files in lib/db/migrations/ (reviewed and usable
 * with psql as they are), compiled into the program with the assembler's
 * .incbin, so a binary always carries exactly the schema it was built for
 * and needs no files at run time. The build tracks only the C file: after
 * editing a .sql file, rebuild this object (test_db checks that the
 * compiled text matches the files). Released migrations are never edited;
 * changes are new files, and the recorded checksum refuses an edited one.
 */
#include "vigil/db.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/log.h"

/* The file's bytes plus a NUL, as a read-only array `sym`. */
#define VG_DB_EMBED(sym, path)                                               \
	__asm__(".pushsection .rodata\n"                                     \
		".global " #sym "\n"                                         \
		".hidden " #sym "\n"                                         \
		".type " #sym ", @object\n"                                  \
		".balign 16\n" #sym ":\n"                                    \
		".incbin \"" path "\"\n"                                     \
		".byte 0\n"                                                  \
		".size " #sym ", . - " #sym "\n"                             \
		".popsection\n");                                            \
	extern const char sym[]

#define MIGRATIONS_DIR "lib/db/migrations/"

VG_DB_EMBED(vg_db_sql_0001, MIGRATIONS_DIR "0001_roles.sql");
VG_DB_EMBED(vg_db_sql_0002, MIGRATIONS_DIR "0002_tenancy.sql");
VG_DB_EMBED(vg_db_sql_0003, MIGRATIONS_DIR "0003_scans.sql");
VG_DB_EMBED(vg_db_sql_0004, MIGRATIONS_DIR "0004_audit.sql");
VG_DB_EMBED(vg_db_sql_0005, MIGRATIONS_DIR "0005_emergency_stop.sql");
VG_DB_EMBED(vg_db_sql_0006, MIGRATIONS_DIR "0006_run_results.sql");
VG_DB_EMBED(vg_db_sql_0007, MIGRATIONS_DIR "0007_gateway.sql");
VG_DB_EMBED(vg_db_sql_0008, MIGRATIONS_DIR "0008_brain.sql");
VG_DB_EMBED(vg_db_sql_0009, MIGRATIONS_DIR "0009_gateway_scans.sql");
VG_DB_EMBED(vg_db_sql_0010, MIGRATIONS_DIR "0010_agent_keys.sql");
VG_DB_EMBED(vg_db_sql_0011, MIGRATIONS_DIR "0011_run_summary.sql");
VG_DB_EMBED(vg_db_sql_0012, MIGRATIONS_DIR "0012_archive.sql");
VG_DB_EMBED(vg_db_sql_0013, MIGRATIONS_DIR "0013_report_encoding.sql");
VG_DB_EMBED(vg_db_sql_0014, MIGRATIONS_DIR "0014_api_key_expiry.sql");

static const struct vg_db_migration migrations[] = {
	{ 1, "0001_roles", vg_db_sql_0001 },
	{ 2, "0002_tenancy", vg_db_sql_0002 },
	{ 3, "0003_scans", vg_db_sql_0003 },
	{ 4, "0004_audit", vg_db_sql_0004 },
	{ 5, "0005_emergency_stop", vg_db_sql_0005 },
	{ 6, "0006_run_results", vg_db_sql_0006 },
	{ 7, "0007_gateway", vg_db_sql_0007 },
	{ 8, "0008_brain", vg_db_sql_0008 },
	{ 9, "0009_gateway_scans", vg_db_sql_0009 },
	{ 10, "0010_agent_keys", vg_db_sql_0010 },
	{ 11, "0011_run_summary", vg_db_sql_0011 },
	{ 12, "0012_archive", vg_db_sql_0012 },
	{ 13, "0013_report_encoding", vg_db_sql_0013 },
	{ 14, "0014_api_key_expiry", vg_db_sql_0014 },
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* pg_advisory_lock(int, int) keys: "vigi", 1 = schema migrations */
#define LOCK_KEYS "1986619241, 1"
#define DEFAULT_LOCK_TIMEOUT_MS 60000

const struct vg_db_migration *vg_db_migrations(size_t *n)
{
	*n = NMIGRATIONS;
	return migrations;
}

static int sha256_hex(const char *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) ||
	    len != 32)
		return VG_INTERNAL;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return VG_OK;
}

/* Apply one migration in its own transaction. */
static int apply(struct vg_db_conn *c, const struct vg_db_migration *m,
		 const char *sum, struct vg_err *err)
{
	char version[16], msg[VG_ERR_MSG_MAX];
	const char *params[3] = { version, m->name, sum };
	int rc;

	snprintf(version, sizeof(version), "%d", m->version);
	rc = vg_db_begin(c, NULL, 0, err);
	if (rc != VG_OK)
		return rc;
	rc = vg_db_exec_script(c, m->sql, err);
	if (rc != VG_OK && err) {
		snprintf(msg, sizeof(msg), "%s", err->msg);
		vg_err_set(err, rc, "migration %s: %s", m->name, msg);
	}
	/* the migration may have switched to the owner role */
	if (rc == VG_OK)
		rc = vg_db_exec_script(c, "RESET ROLE", err);
	if (rc == VG_OK)
		rc = vg_db_exec(c,
				"INSERT INTO public.schema_migrations "
				"(version, name, checksum) VALUES ($1, $2, $3)",
				3, params, NULL, err);
	if (rc == VG_OK)
		rc = vg_db_commit(c, err);
	else
		vg_db_rollback(c);
	if (rc == VG_OK)
		vg_info("schema migration applied", "migration", m->name);
	return rc;
}

/* Compare what the database recorded with the compiled migrations;
 * pending[i] = 1 for those still to apply. */
static int plan(struct vg_db_conn *c, const char (*sums)[65], int *pending,
		struct vg_err *err)
{
	struct vg_db_res *r = NULL;
	int rc;

	rc = vg_db_exec(c,
			"SELECT version, name, checksum, applied_at "
			"FROM public.schema_migrations ORDER BY version",
			0, NULL, &r, err);
	if (rc != VG_OK)
		return rc;
	for (size_t i = 0; i < NMIGRATIONS; i++)
		pending[i] = 1;
	for (int row = 0; row < vg_db_res_rows(r); row++) {
		char *end;
		long v = strtol(vg_db_res_get(r, row, 0), &end, 10);
		const char *sum = vg_db_res_get(r, row, 2);
		size_t i;

		for (i = 0; i < NMIGRATIONS; i++)
			if (migrations[i].version == v)
				break;
		if (i == NMIGRATIONS) {
			vg_info("schema has a newer migration than this program",
				"migration", vg_db_res_get(r, row, 1));
			continue;
		}
		if (!sum || strcmp(sum, sums[i]) != 0) {
			rc = vg_err_set(err, VG_CONFLICT,
					"migration %s was applied on %s with "
					"other SQL than this program carries",
					migrations[i].name,
					vg_db_res_get(r, row, 3));
			break;
		}
		pending[i] = 0;
	}
	vg_db_res_free(r);
	return rc;
}

int vg_db_migrate(struct vg_db_pool *p, const struct vg_db_migrate_opts *o,
		  int *applied, struct vg_err *err)
{
	char sums[NMIGRATIONS][65];
	int pending[NMIGRATIONS];
	struct vg_db_conn *c = NULL;
	char sql[128];
	int rc, locked = 0, n = 0;

	if (applied)
		*applied = 0;
	for (size_t i = 0; i < NMIGRATIONS; i++)
		if (sha256_hex(migrations[i].sql, sums[i]) != VG_OK)
			return vg_err_set(err, VG_INTERNAL, "sha256");
	rc = vg_db_acquire(p, &c, err);
	if (rc != VG_OK)
		return rc;

	snprintf(sql, sizeof(sql), "SET lock_timeout = %d",
		 o && o->lock_timeout_ms > 0 ? o->lock_timeout_ms
					     : DEFAULT_LOCK_TIMEOUT_MS);
	rc = vg_db_exec_script(c, sql, err);
	if (rc == VG_OK) {
		rc = vg_db_exec(c, "SELECT pg_catalog.pg_advisory_lock(" LOCK_KEYS ")",
				0, NULL, NULL, err);
		locked = rc == VG_OK;
		if (rc == VG_TIMEOUT)
			vg_err_set(err, VG_TIMEOUT,
				   "another replica is migrating the schema "
				   "and did not finish in time");
	}
	if (rc == VG_OK)
		rc = vg_db_exec_script(c, "RESET lock_timeout", err);
	if (rc == VG_OK)
		rc = vg_db_exec_script(
			c,
			"CREATE TABLE IF NOT EXISTS public.schema_migrations ("
			" version integer PRIMARY KEY,"
			" name text NOT NULL,"
			" checksum text NOT NULL,"
			" applied_at timestamptz NOT NULL DEFAULT now())",
			err);
	if (rc == VG_OK)
		rc = plan(c, (const char(*)[65])sums, pending, err);
	for (size_t i = 0; rc == VG_OK && i < NMIGRATIONS; i++) {
		if (!pending[i])
			continue;
		rc = apply(c, &migrations[i], sums[i], err);
		n += rc == VG_OK;
	}
	if (locked) {
		struct vg_err uerr = { 0 };

		/* on a lost connection the server has released it already */
		vg_db_exec(c, "SELECT pg_catalog.pg_advisory_unlock(" LOCK_KEYS ")",
			   0, NULL, NULL, &uerr);
	}
	vg_db_release(c);
	if (applied)
		*applied = n;
	return rc;
}

int vg_db_schema_version(struct vg_db_conn *c, int *version,
			 struct vg_err *err)
{
	char *v = NULL, *end;
	int rc;

	*version = 0;
	rc = vg_db_query_value(
		c,
		"SELECT coalesce(max(version), 0) FROM public.schema_migrations",
		0, NULL, &v, err);
	if (rc != VG_OK) {
		/* 42P01: no table yet, nothing was ever migrated */
		if (err && strcmp(err->reason, "42P01") == 0) {
			vg_err_clear(err);
			return VG_OK;
		}
		return rc;
	}
	*version = (int)strtol(v, &end, 10);
	free(v);
	return VG_OK;
}
