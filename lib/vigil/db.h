/*
 * db.h - PostgreSQL for every vigil program: a thread-safe connection pool,
 * parameterised queries, prepared statements on hot paths, transactions
 * scoped to one tenant for row-level security, and the schema migrations.
 *
 *   struct vg_db_opts o = { .conninfo = "host=... dbname=vigil" };
 *   vg_db_pool_new(&o, &pool, &err);
 *   vg_db_tx(pool, tenant_id, 0, insert_findings, &batch, &err);
 *
 * Every tenant-owned table has FORCE ROW LEVEL SECURITY with policies on
 * current_setting('vigil.tenant_id'), which vg_db_begin() sets per
 * transaction (set_config(..., true), the equivalent of SET LOCAL), so a
 * query that forgets its tenant filter still sees only that tenant's rows,
 * and a connection returned to the pool carries no tenant.
 *
 * Errors: the server's SQLSTATE is kept in err->reason ("23505") and its
 * message (with DETAIL) in err->msg. Codes:
 *
 *   23505 unique violation      -> VG_EXISTS
 *   23503 foreign key violation -> VG_CONFLICT
 *   22xxx, 23502, 23514         -> VG_INVAL
 *   40001, 40P01 (retryable)    -> VG_AGAIN
 *   57014 canceled, 55P03 lock  -> VG_TIMEOUT
 *   42501 privilege / RLS       -> VG_FORBIDDEN
 *   28xxx authentication        -> VG_UNAUTHORIZED
 *   08xxx, 57P0x, 53300, no server, connection lost
 *                               -> VG_IO  (vg_db_unavailable() is true)
 *   anything else               -> VG_DB
 *
 * Connection-level failures carry SQLSTATE 08001 (could not connect) or
 * 08006 (connection lost) when the server sent none.
 */
#ifndef VG_DB_H
#define VG_DB_H

#include <stddef.h>

#include "vigil/err.h"

struct pg_conn; /* libpq's PGconn */

struct vg_db_pool;
struct vg_db_conn;
struct vg_db_res;

/* ------------------------------------------------------------------ */
/* Pool                                                                 */
/* ------------------------------------------------------------------ */

struct vg_db_opts {
	/* libpq "key=value ..." string or postgresql:// URI (copied). Its
	 * own connect_timeout, application_name or options win over the
	 * defaults below. */
	const char *conninfo;
	int min_conns;		 /* opened by vg_db_pool_new; default 0 */
	int max_conns;		 /* default 10 */
	int connect_timeout_s;	 /* default 5 */
	int acquire_timeout_ms;	 /* wait for a free connection; default 10000 */
	/* A connection idle at least this long is checked (one round trip)
	 * before it is handed out; 0: 1000; < 0: always. */
	int health_check_idle_ms;
	int statement_timeout_ms; /* 0: the server's default */
	/* search_path of every session; NULL: "vigil, public"; "": unset.
	 * Every session also runs with TimeZone UTC. */
	const char *search_path;
	const char *application_name; /* NULL: "vigil" */
};

/*
 * New pool. Fails only on invalid options (VG_INVAL, VG_CONFIG for a
 * conninfo libpq cannot parse) or memory; min_conns are opened best
 * effort, so a pool can be created while the server is down and
 * connects once it is up.
 */
/*
 * A libpq "key='value' ..." conninfo (new; the caller wipes and frees it)
 * from its parts, quoted for libpq; NULL or empty parts (and port <= 0)
 * are left out. NULL on ENOMEM.
 */
char *vg_db_conninfo(const char *host, int port, const char *dbname,
		     const char *user, const char *password,
		     const char *sslmode);

int vg_db_pool_new(const struct vg_db_opts *opts, struct vg_db_pool **out,
		   struct vg_err *err);
/* Close every connection; none may be checked out. NULL allowed. */
void vg_db_pool_free(struct vg_db_pool *p);

/*
 * Check a connection out: an idle one (health-checked when it was idle
 * long enough, replaced when broken) or a new one while fewer than
 * max_conns exist. Waits up to acquire_timeout_ms for one to be released
 * (VG_TIMEOUT). VG_IO when the server cannot be reached.
 */
int vg_db_acquire(struct vg_db_pool *p, struct vg_db_conn **out,
		  struct vg_err *err);
/*
 * Return a connection. An open transaction is rolled back; a broken
 * connection is closed (the next acquire opens a new one). NULL allowed.
 */
void vg_db_release(struct vg_db_conn *c);

struct vg_db_pool_stats {
	int open;	   /* connections open now */
	int in_use;	   /* of which checked out */
	unsigned long connects;	   /* successful connects so far */
	unsigned long broken;	   /* connections found broken and dropped */
	unsigned long waits;	   /* acquires that had to wait */
};
void vg_db_pool_stats(struct vg_db_pool *p, struct vg_db_pool_stats *out);

/* The libpq connection (borrowed) for what the helpers do not cover
 * (COPY, LISTEN). Leave it idle, outside a failed transaction. */
struct pg_conn *vg_db_conn_pg(struct vg_db_conn *c);

/* ------------------------------------------------------------------ */
/* Queries                                                              */
/* ------------------------------------------------------------------ */

/*
 * Run one statement with text parameters $1..$n (NULL elements are SQL
 * NULL). `out` NULL discards the result; otherwise *out is a new result
 * for vg_db_res_free(). `sql` holds exactly one statement.
 */
int vg_db_exec(struct vg_db_conn *c, const char *sql, int nparams,
	       const char *const *params, struct vg_db_res **out,
	       struct vg_err *err);

/*
 * Run `sql`: one or more statements without parameters (simple query
 * protocol), such as a migration. A failure's message starts with the line
 * of `sql` the server points at, when it does ("line 12: ...").
 */
int vg_db_exec_script(struct vg_db_conn *c, const char *sql,
		      struct vg_err *err);

/*
 * A statement prepared once per connection, on first use, under `name`
 * (unique in the program). Define them as static constants:
 *
 *   static const struct vg_db_stmt ins_finding = {
 *	.name = "ins_finding", .nparams = 9,
 *	.sql = "INSERT INTO findings (...) VALUES ($1, ...)",
 *   };
 */
struct vg_db_stmt {
	const char *name;
	const char *sql;
	int nparams;
	/* vg_db_read only: run from the generic plan every time (no planning
	 * per run). For statements whose generic plan is the right one but
	 * looks dearer than a custom one, such as a keyset page with
	 * LIMIT $n (the planner guesses 10% of the rows for $n). */
	int generic;
};
int vg_db_exec_stmt(struct vg_db_conn *c, const struct vg_db_stmt *st,
		    const char *const *params, struct vg_db_res **out,
		    struct vg_err *err);

/*
 * The first column of the only row as a new string (NULL for SQL NULL),
 * VG_NOTFOUND when there is no row, VG_CONFLICT when there are several.
 */
int vg_db_query_value(struct vg_db_conn *c, const char *sql, int nparams,
		      const char *const *params, char **out,
		      struct vg_err *err);

/* Result accessors. Values are borrowed from the result, NULL for SQL
 * NULL; out-of-range row/column also give NULL. */
int vg_db_res_rows(const struct vg_db_res *r);
int vg_db_res_cols(const struct vg_db_res *r);
/* Column index of `name`, or -1. */
int vg_db_res_col(const struct vg_db_res *r, const char *name);
const char *vg_db_res_get(const struct vg_db_res *r, int row, int col);
/* For binary results (vg_db_step.binary): a value's length in bytes, a
 * column's type OID, and 1 when the result is binary. */
int vg_db_res_len(const struct vg_db_res *r, int row, int col);
unsigned vg_db_res_type(const struct vg_db_res *r, int col);
int vg_db_res_binary(const struct vg_db_res *r);
/* Rows an INSERT/UPDATE/DELETE touched (0 for other statements). */
long long vg_db_res_affected(const struct vg_db_res *r);
void vg_db_res_free(struct vg_db_res *r);

/* ------------------------------------------------------------------ */
/* Transactions                                                         */
/* ------------------------------------------------------------------ */

enum {
	VG_DB_TX_READ_ONLY = 1 << 0,
	VG_DB_TX_SERIALIZABLE = 1 << 1,
};

/*
 * BEGIN, then set vigil.tenant_id for this transaction only when
 * `tenant_id` (a UUID, checked here: VG_INVAL) is not NULL. Without a
 * tenant, row-level security shows no tenant rows at all.
 */
int vg_db_begin(struct vg_db_conn *c, const char *tenant_id, unsigned flags,
		struct vg_err *err);
int vg_db_commit(struct vg_db_conn *c, struct vg_err *err);
/* Roll back if a transaction is open; a failure closes the connection. */
void vg_db_rollback(struct vg_db_conn *c);

/*
 * Run `fn` in a transaction of `tenant_id` on a pooled connection and
 * commit when it returns VG_OK (roll back otherwise; its code is
 * returned). Serialization failures and deadlocks (VG_AGAIN) are retried
 * up to 3 times and a connection that fails at BEGIN is replaced once, so
 * `fn` may run more than once: it must only touch the database.
 */
typedef int (*vg_db_tx_fn)(struct vg_db_conn *c, void *arg,
			   struct vg_err *err);
int vg_db_tx(struct vg_db_pool *p, const char *tenant_id, unsigned flags,
	     vg_db_tx_fn fn, void *arg, struct vg_err *err);

/*
 * A read in one round trip: the prepared statements of `steps` run in
 * order, in one read-only transaction of `tenant_id` (NULL: no tenant),
 * sent together in libpq's pipeline mode. The tenant is set by a prepared
 * set_config(..., true) in the same implicit transaction, which ends at
 * the pipeline's sync: the connection goes back to the pool with no
 * tenant. Statements a connection has not prepared yet are prepared in
 * the same round trip. When a step's statement is `generic`, the whole
 * read runs with plan_cache_mode force_generic_plan.
 *
 * On VG_OK every step's `res` is a new result (free each with
 * vg_db_res_free()); on failure none is, and the error is the first
 * step's that failed. A lost connection is replaced once, since nothing
 * was written.
 */
struct vg_db_step {
	const struct vg_db_stmt *st;
	const char *const *params;
	int binary;            /* results in PostgreSQL's binary format */
	struct vg_db_res *res; /* out */
};
int vg_db_read(struct vg_db_pool *p, const char *tenant_id,
	       struct vg_db_step *steps, int n, struct vg_err *err);

/* 1 when `err` says the server could not be reached or the connection
 * was lost (as opposed to an SQL error). */
int vg_db_unavailable(const struct vg_err *err);

/* 1 when `s` is a UUID in the 8-4-4-4-12 hex form. */
int vg_db_is_uuid(const char *s);

/* ------------------------------------------------------------------ */
/* Migrations (db_migrate.c)                                            */
/* ------------------------------------------------------------------ */

/* One schema migration compiled into the program (lib/db/migrations/). */
struct vg_db_migration {
	int version;
	const char *name; /* "0002_tenancy" */
	const char *sql;  /* the file's content */
};

/* The migrations in version order; borrowed, static. */
const struct vg_db_migration *vg_db_migrations(size_t *n);

struct vg_db_migrate_opts {
	int lock_timeout_ms; /* wait for another migrator; 0: 60000 */
};

/*
 * Bring the schema up to date on one connection of `p`, which must log in
 * as the database owner (it creates the vigil roles when missing, which
 * needs CREATEROLE). Under a session advisory lock, so replicas starting
 * together migrate once: the others wait, then find nothing to do. Each
 * pending migration runs in its own transaction and is recorded in
 * public.schema_migrations with a SHA-256 of its text; an applied
 * migration whose text changed since is an error (VG_CONFLICT). Versions
 * newer than this program knows are left alone. `applied` (NULL allowed)
 * receives the number of migrations run now.
 */
int vg_db_migrate(struct vg_db_pool *p, const struct vg_db_migrate_opts *o,
		  int *applied, struct vg_err *err);

/* Highest applied version (0 when none), readable as vigil_app too. */
int vg_db_schema_version(struct vg_db_conn *c, int *version,
			 struct vg_err *err);

#endif
