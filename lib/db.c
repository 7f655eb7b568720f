/* db.c - PostgreSQL connection pool, queries, prepared statements and
 * tenant-scoped transactions over libpq. */
#include "vigil/db.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigil/buf.h"
#include "vigil/log.h"
#include "vigil/strmap.h"
#include "vigil/timeutil.h"

#define DEFAULT_MAX_CONNS 10
#define DEFAULT_CONNECT_TIMEOUT_S 5
#define DEFAULT_ACQUIRE_TIMEOUT_MS 10000
#define DEFAULT_HEALTH_IDLE_MS 1000
#define DEFAULT_SEARCH_PATH "vigil, public"
#define TX_RETRIES 3

struct vg_db_conn {
	struct vg_db_pool *pool;
	PGconn *pg;	/* NULL while the slot is empty */
	int in_use;
	long long idle_since; /* monotonic ms */
	struct vg_strmap prepared; /* statement name -> its SQL (borrowed) */
};

struct vg_db_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *conninfo;
	char *options;	/* "-c search_path=... -c statement_timeout=..." */
	char *app_name;
	char connect_timeout[16];
	int max, acquire_ms, health_ms;
	/* connections idle since before this were open when another one was
	 * found broken (e.g. a server restart): check them all */
	long long broken_at;
	struct vg_db_conn *slots;
	unsigned long connects, broken, waits;
};

struct vg_db_res {
	PGresult *pg;
};

/* --- errors ---------------------------------------------------------- */

/* SQLSTATE (or class prefix) -> code; the first match wins. */
static const struct {
	const char *state;
	int code;
} sqlstate_codes[] = {
	{ "23505", VG_EXISTS },	    { "23503", VG_CONFLICT },
	{ "23502", VG_INVAL },	    { "23514", VG_INVAL },
	{ "22", VG_INVAL },	    { "40001", VG_AGAIN },
	{ "40P01", VG_AGAIN },	    { "57014", VG_TIMEOUT },
	{ "55P03", VG_TIMEOUT },    { "42501", VG_FORBIDDEN },
	{ "28", VG_UNAUTHORIZED }, { "08", VG_IO },
	{ "57P", VG_IO },	    { "53300", VG_IO },
};

static int code_of_sqlstate(const char *state)
{
	for (size_t i = 0; i < sizeof(sqlstate_codes) / sizeof(sqlstate_codes[0]);
	     i++) {
		const char *p = sqlstate_codes[i].state;

		if (strncmp(state, p, strlen(p)) == 0)
			return sqlstate_codes[i].code;
	}
	return VG_DB;
}

/* libpq messages end with a newline and may span lines: keep the first. */
static void first_line(char *dst, size_t n, const char *src)
{
	size_t len = 0;

	if (!src)
		src = "";
	while (src[len] && src[len] != '\n')
		len++;
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static int set_state_err(struct vg_err *err, int code, const char *state,
			 const char *what, const char *msg, const char *detail)
{
	char m[VG_ERR_MSG_MAX], d[VG_ERR_MSG_MAX];

	first_line(m, sizeof(m), msg);
	first_line(d, sizeof(d), detail);
	if (*d)
		vg_err_set(err, code, "%s: %s (%s)", what, m, d);
	else
		vg_err_set(err, code, "%s: %s", what, m);
	if (err)
		snprintf(err->reason, sizeof(err->reason), "%s", state);
	return code;
}

/* Fill `err` from a failed result (`res` may be NULL) on `pg`. */
static int result_err(PGconn *pg, const PGresult *res, const char *what,
		      struct vg_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
				: NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			      : NULL;
	const char *detail =
		res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;

	if (!msg)
		msg = PQerrorMessage(pg);
	if (!state || !*state) {
		if (PQstatus(pg) == CONNECTION_BAD)
			return set_state_err(err, VG_IO, "08006", what, msg,
					     NULL);
		return set_state_err(err, VG_DB, "", what, msg, detail);
	}
	return set_state_err(err, code_of_sqlstate(state), state, what, msg,
			     detail);
}

/* Connection failures libpq reports only as text. */
static const struct {
	const char *needle;
	int code;
	const char *state;
} connect_errors[] = {
	{ "password authentication failed", VG_UNAUTHORIZED, "28P01" },
	{ "no password supplied", VG_UNAUTHORIZED, "28P01" },
	{ "no pg_hba.conf entry", VG_UNAUTHORIZED, "28000" },
};

static int connect_err(PGconn *pg, struct vg_err *err)
{
	const char *msg = pg ? PQerrorMessage(pg) : "out of memory";

	for (size_t i = 0; i < sizeof(connect_errors) / sizeof(connect_errors[0]);
	     i++)
		if (strstr(msg, connect_errors[i].needle))
			return set_state_err(err, connect_errors[i].code,
					     connect_errors[i].state,
					     "database connect", msg, NULL);
	return set_state_err(err, VG_IO, "08001", "database connect", msg,
			     NULL);
}

int vg_db_unavailable(const struct vg_err *err)
{
	return err && err->code == VG_IO;
}

int vg_db_is_uuid(const char *s)
{
	static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (!s)
		return 0;
	for (i = 0; form[i]; i++) {
		if (form[i] == '-' ? s[i] != '-'
				   : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[i] == '\0';
}

/* --- pool ------------------------------------------------------------ */

static char *dup_or(const char *s, const char *def)
{
	return strdup(s ? s : def);
}

static int build_options(struct vg_db_pool *p, const struct vg_db_opts *o)
{
	const char *sp = o->search_path ? o->search_path : DEFAULT_SEARCH_PATH;
	struct vg_buf b;
	int rc = VG_OK;

	vg_buf_init(&b, 0);
	if (*sp) {
		/* options are split on spaces; a backslash keeps one */
		rc = vg_buf_append_str(&b, "-c search_path=");
		for (const char *c = sp; rc == VG_OK && *c; c++) {
			if (*c == ' ' || *c == '\\')
				rc = vg_buf_append_byte(&b, '\\');
			if (rc == VG_OK)
				rc = vg_buf_append_byte(&b, *c);
		}
	}
	if (rc == VG_OK && o->statement_timeout_ms > 0)
		rc = vg_buf_appendf(&b, "%s-c statement_timeout=%d",
				    b.len ? " " : "", o->statement_timeout_ms);
	/* timestamps come back in UTC whatever the server's default */
	if (rc == VG_OK)
		rc = vg_buf_appendf(&b, "%s-c TimeZone=UTC", b.len ? " " : "");
	if (rc == VG_OK && b.len && !(p->options = vg_buf_take(&b)))
		rc = VG_NOMEM;
	vg_buf_cleanup(&b);
	return rc;
}

/* Server notices (e.g. "already exists, skipping") go to the debug log
 * instead of libpq's default, stderr. */
static void log_notice(void *arg, const char *msg)
{
	char line[VG_ERR_MSG_MAX];

	(void)arg;
	first_line(line, sizeof(line), msg);
	vg_debug("database notice", "notice", line);
}

/* Open the slot's connection; called without the lock held. */
static int slot_connect(struct vg_db_pool *p, struct vg_db_conn *c,
			struct vg_err *err)
{
	/* defaults first: the conninfo (expanded from "dbname") overrides */
	const char *keys[] = { "connect_timeout", "application_name",
			       "keepalives_idle", "keepalives_interval",
			       "keepalives_count", "options", "dbname", NULL };
	const char *vals[] = { p->connect_timeout, p->app_name, "30", "10", "3",
			       p->options, p->conninfo, NULL };
	PGconn *pg;

	if (!p->options) { /* an absent key must not end the list early */
		keys[5] = "dbname";
		vals[5] = p->conninfo;
		keys[6] = vals[6] = NULL;
	}
	pg = PQconnectdbParams(keys, vals, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		int rc = connect_err(pg, err);

		PQfinish(pg);
		return rc;
	}
	PQsetNoticeProcessor(pg, log_notice, NULL);
	c->pg = pg;
	vg_strmap_cleanup(&c->prepared);
	vg_strmap_init(&c->prepared, NULL);
	pthread_mutex_lock(&p->mu);
	p->connects++;
	pthread_mutex_unlock(&p->mu);
	return VG_OK;
}

static void slot_close(struct vg_db_conn *c)
{
	PQfinish(c->pg);
	c->pg = NULL;
	vg_strmap_cleanup(&c->prepared);
	vg_strmap_init(&c->prepared, NULL);
}

int vg_db_pool_new(const struct vg_db_opts *o, struct vg_db_pool **out,
		   struct vg_err *err)
{
	struct vg_db_pool *p = NULL;
	PQconninfoOption *parsed = NULL;
	char *perr = NULL;
	int rc = VG_OK;

	*out = NULL;
	if (!o || !o->conninfo || o->max_conns < 0 || o->min_conns < 0 ||
	    (o->max_conns && o->min_conns > o->max_conns))
		return vg_err_set(err, VG_INVAL, "database pool: bad options");
	parsed = PQconninfoParse(o->conninfo, &perr);
	if (!parsed) {
		char m[VG_ERR_MSG_MAX];

		first_line(m, sizeof(m), perr ? perr : "out of memory");
		PQfreemem(perr);
		return vg_err_set(err, VG_CONFIG, "database conninfo: %s", m);
	}
	PQconninfoFree(parsed);

	p = calloc(1, sizeof(*p));
	if (!p)
		return vg_err_set(err, VG_NOMEM, "database pool");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->max = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS;
	p->acquire_ms = o->acquire_timeout_ms > 0 ? o->acquire_timeout_ms
						  : DEFAULT_ACQUIRE_TIMEOUT_MS;
	p->health_ms = o->health_check_idle_ms == 0 ? DEFAULT_HEALTH_IDLE_MS
		       : o->health_check_idle_ms < 0 ? 0
						      : o->health_check_idle_ms;
	snprintf(p->connect_timeout, sizeof(p->connect_timeout), "%d",
		 o->connect_timeout_s > 0 ? o->connect_timeout_s
					  : DEFAULT_CONNECT_TIMEOUT_S);
	p->conninfo = strdup(o->conninfo);
	p->app_name = dup_or(o->application_name, "vigil");
	p->slots = calloc((size_t)p->max, sizeof(*p->slots));
	if (!p->conninfo || !p->app_name || !p->slots ||
	    build_options(p, o) != VG_OK) {
		rc = vg_err_set(err, VG_NOMEM, "database pool");
		goto out;
	}
	for (int i = 0; i < p->max; i++) {
		p->slots[i].pool = p;
		vg_strmap_init(&p->slots[i].prepared, NULL);
	}
	for (int i = 0; i < o->min_conns; i++) {
		struct vg_err cerr = { 0 };

		if (slot_connect(p, &p->slots[i], &cerr) != VG_OK) {
			vg_warn("database not reachable yet", "err", cerr.msg);
			break;
		}
		p->slots[i].idle_since = vg_mono_ms();
	}
	*out = p;
	p = NULL;
out:
	vg_db_pool_free(p);
	return rc;
}

void vg_db_pool_free(struct vg_db_pool *p)
{
	if (!p)
		return;
	for (int i = 0; p->slots && i < p->max; i++) {
		PQfinish(p->slots[i].pg);
		vg_strmap_cleanup(&p->slots[i].prepared);
	}
	free(p->slots);
	free(p->conninfo);
	free(p->options);
	free(p->app_name);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* One round trip proves the connection works and is idle. */
static int healthy(PGconn *pg)
{
	PGresult *r;
	int ok;

	if (PQstatus(pg) != CONNECTION_OK ||
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		return 0;
	r = PQexec(pg, "");
	ok = r && PQresultStatus(r) == PGRES_EMPTY_QUERY;
	PQclear(r);
	return ok && PQstatus(pg) == CONNECTION_OK;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Take an idle slot with a connection, else an empty one; NULL if none. */
static struct vg_db_conn *take_slot(struct vg_db_pool *p)
{
	struct vg_db_conn *empty = NULL, *best = NULL;

	for (int i = 0; i < p->max; i++) {
		struct vg_db_conn *c = &p->slots[i];

		if (c->in_use)
			continue;
		if (!c->pg) {
			if (!empty)
				empty = c;
		} else if (!best || c->idle_since > best->idle_since) {
			best = c; /* the most recently used is the warmest */
		}
	}
	if (!best)
		best = empty;
	if (best)
		best->in_use = 1;
	return best;
}

static void put_slot(struct vg_db_pool *p, struct vg_db_conn *c, int broken)
{
	pthread_mutex_lock(&p->mu);
	if (broken) {
		p->broken++;
		p->broken_at = vg_mono_ms();
	}
	c->in_use = 0;
	c->idle_since = vg_mono_ms();
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int vg_db_acquire(struct vg_db_pool *p, struct vg_db_conn **out,
		  struct vg_err *err)
{
	struct vg_db_conn *c;
	struct timespec deadline;
	long long idle_since, broken_at;
	int waited = 0;

	*out = NULL;
	deadline_after(&deadline, p->acquire_ms);
	pthread_mutex_lock(&p->mu);
	while (!(c = take_slot(p))) {
		if (!waited++)
			p->waits++;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) ==
		    ETIMEDOUT) {
			c = take_slot(p);
			if (c)
				break;
			pthread_mutex_unlock(&p->mu);
			return vg_err_set(err, VG_TIMEOUT,
					  "no free database connection within "
					  "%d ms (pool of %d)",
					  p->acquire_ms, p->max);
		}
	}
	idle_since = c->idle_since;
	broken_at = p->broken_at;
	pthread_mutex_unlock(&p->mu);

	if (c->pg && (PQstatus(c->pg) != CONNECTION_OK ||
		      idle_since <= broken_at ||
		      vg_mono_ms() - idle_since >= p->health_ms) &&
	    !healthy(c->pg)) {
		slot_close(c);
		pthread_mutex_lock(&p->mu);
		p->broken++;
		p->broken_at = vg_mono_ms();
		pthread_mutex_unlock(&p->mu);
	}
	if (!c->pg) {
		int rc = slot_connect(p, c, err);

		if (rc != VG_OK) {
			put_slot(p, c, 0);
			return rc;
		}
	}
	*out = c;
	return VG_OK;
}

void vg_db_release(struct vg_db_conn *c)
{
	int had;

	if (!c)
		return;
	had = c->pg != NULL;
	if (c->pg && PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
		slot_close(c); /* results still owed: unusable */
	} else if (c->pg && PQstatus(c->pg) == CONNECTION_OK) {
		switch (PQtransactionStatus(c->pg)) {
		case PQTRANS_IDLE:
			break;
		case PQTRANS_INTRANS:
		case PQTRANS_INERROR:
			vg_db_rollback(c); /* closes it if that fails */
			break;
		default: /* a query still running, or unknown: unusable */
			slot_close(c);
			break;
		}
	} else if (c->pg) {
		slot_close(c);
	}
	put_slot(c->pool, c, had && !c->pg);
}

void vg_db_pool_stats(struct vg_db_pool *p, struct vg_db_pool_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->max; i++) {
		out->open += p->slots[i].pg != NULL;
		out->in_use += p->slots[i].in_use;
	}
	out->connects = p->connects;
	out->broken = p->broken;
	out->waits = p->waits;
	pthread_mutex_unlock(&p->mu);
}

struct pg_conn *vg_db_conn_pg(struct vg_db_conn *c)
{
	return c->pg;
}

/* --- queries --------------------------------------------------------- */

/* Wrap a finished result: VG_OK and *out (when wanted), or the error. */
static int finish(struct vg_db_conn *c, PGresult *r, const char *what,
		  struct vg_db_res **out, struct vg_err *err)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR
			     ? result_err(c->pg, r, what, err)
			     : vg_err_set(err, VG_UNSUPPORTED,
					  "%s: unexpected result %s", what,
					  PQresStatus(st));
		PQclear(r);
		return rc;
	}
	if (!out) {
		PQclear(r);
		return VG_OK;
	}
	*out = malloc(sizeof(**out));
	if (!*out) {
		PQclear(r);
		return vg_err_set(err, VG_NOMEM, "%s: result", what);
	}
	(*out)->pg = r;
	return VG_OK;
}

int vg_db_exec(struct vg_db_conn *c, const char *sql, int nparams,
	       const char *const *params, struct vg_db_res **out,
	       struct vg_err *err)
{
	if (out)
		*out = NULL;
	if (!c || !c->pg)
		return vg_err_set(err, VG_INVAL, "query without a connection");
	return finish(c, PQexecParams(c->pg, sql, nparams, NULL, params, NULL,
				      NULL, 0),
		      "query", out, err);
}

/* Line of the 1-based character position `pos` in `sql`, or 0. */
static int line_of(const char *sql, const char *pos)
{
	char *end;
	long chars = pos ? strtol(pos, &end, 10) : 0;
	int line = 1;

	if (chars <= 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
		if ((*p & 0xc0) != 0x80 && --chars == 0) /* UTF-8 lead byte */
			return line;
		if (*p == '\n')
			line++;
	}
	return 0;
}

int vg_db_exec_script(struct vg_db_conn *c, const char *sql,
		      struct vg_err *err)
{
	PGresult *r;
	ExecStatusType st;
	char what[32] = "script";
	int line, rc;

	if (!c || !c->pg)
		return vg_err_set(err, VG_INVAL, "query without a connection");
	r = PQexec(c->pg, sql);
	st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
	    st == PGRES_EMPTY_QUERY) {
		PQclear(r);
		return VG_OK;
	}
	line = r ? line_of(sql, PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION))
		 : 0;
	if (line)
		snprintf(what, sizeof(what), "line %d", line);
	rc = result_err(c->pg, r, what, err);
	PQclear(r);
	return rc;
}

static int prepare(struct vg_db_conn *c, const struct vg_db_stmt *st,
		   struct vg_err *err)
{
	const char *known = vg_strmap_get(&c->prepared, st->name);
	int rc;

	if (known) {
		if (known == st->sql || strcmp(known, st->sql) == 0)
			return VG_OK;
		return vg_err_set(err, VG_INVAL,
				  "statement %s prepared with other SQL",
				  st->name);
	}
	rc = finish(c, PQprepare(c->pg, st->name, st->sql, st->nparams, NULL),
		    st->name, NULL, err);
	if (rc == VG_OK &&
	    vg_strmap_put(&c->prepared, st->name, (void *)st->sql) != VG_OK)
		rc = vg_err_set(err, VG_NOMEM, "prepared statements");
	return rc;
}

int vg_db_exec_stmt(struct vg_db_conn *c, const struct vg_db_stmt *st,
		    const char *const *params, struct vg_db_res **out,
		    struct vg_err *err)
{
	int rc;

	if (out)
		*out = NULL;
	if (!c || !c->pg || !st || !st->name || !*st->name || !st->sql)
		return vg_err_set(err, VG_INVAL, "bad prepared statement");
	for (int attempt = 0;; attempt++) {
		rc = prepare(c, st, err);
		if (rc != VG_OK)
			return rc;
		rc = finish(c, PQexecPrepared(c->pg, st->name, st->nparams,
					      params, NULL, NULL, 0),
			    st->name, out, err);
		/* 26000: the session lost it (DEALLOCATE ALL, DISCARD ALL) */
		if (rc == VG_OK || attempt > 0 || !err ||
		    strcmp(err->reason, "26000") != 0 ||
		    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
			return rc;
		vg_strmap_del(&c->prepared, st->name);
	}
}

int vg_db_query_value(struct vg_db_conn *c, const char *sql, int nparams,
		      const char *const *params, char **out,
		      struct vg_err *err)
{
	struct vg_db_res *r = NULL;
	const char *v;
	int rc;

	*out = NULL;
	rc = vg_db_exec(c, sql, nparams, params, &r, err);
	if (rc != VG_OK)
		return rc;
	if (vg_db_res_rows(r) != 1 || vg_db_res_cols(r) < 1) {
		rc = vg_err_set(err,
				vg_db_res_rows(r) == 0 ? VG_NOTFOUND
						       : VG_CONFLICT,
				"query returned %d rows, wanted one",
				vg_db_res_rows(r));
		goto out;
	}
	v = vg_db_res_get(r, 0, 0);
	if (v && !(*out = strdup(v)))
		rc = vg_err_set(err, VG_NOMEM, "query value");
out:
	vg_db_res_free(r);
	return rc;
}

int vg_db_res_rows(const struct vg_db_res *r)
{
	return r ? PQntuples(r->pg) : 0;
}

int vg_db_res_cols(const struct vg_db_res *r)
{
	return r ? PQnfields(r->pg) : 0;
}

int vg_db_res_col(const struct vg_db_res *r, const char *name)
{
	return r ? PQfnumber(r->pg, name) : -1;
}

const char *vg_db_res_get(const struct vg_db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->pg) ||
	    col >= PQnfields(r->pg) || PQgetisnull(r->pg, row, col))
		return NULL;
	return PQgetvalue(r->pg, row, col);
}

int vg_db_res_len(const struct vg_db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->pg) ||
	    col >= PQnfields(r->pg))
		return 0;
	return PQgetlength(r->pg, row, col);
}

unsigned vg_db_res_type(const struct vg_db_res *r, int col)
{
	return r && col >= 0 && col < PQnfields(r->pg)
		       ? (unsigned)PQftype(r->pg, col)
		       : 0;
}

int vg_db_res_binary(const struct vg_db_res *r)
{
	return r && PQnfields(r->pg) > 0 && PQfformat(r->pg, 0) == 1;
}

long long vg_db_res_affected(const struct vg_db_res *r)
{
	const char *s = r ? PQcmdTuples(r->pg) : "";
	char *end;
	long long n;

	if (!*s)
		return 0;
	errno = 0;
	n = strtoll(s, &end, 10);
	return errno || *end ? 0 : n;
}

void vg_db_res_free(struct vg_db_res *r)
{
	if (!r)
		return;
	PQclear(r->pg);
	free(r);
}

/* --- transactions ---------------------------------------------------- */

static const char *const begin_sql[] = {
	[0] = "BEGIN",
	[VG_DB_TX_READ_ONLY] = "BEGIN READ ONLY",
	[VG_DB_TX_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
	[VG_DB_TX_READ_ONLY | VG_DB_TX_SERIALIZABLE] =
		"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
};

int vg_db_begin(struct vg_db_conn *c, const char *tenant_id, unsigned flags,
		struct vg_err *err)
{
	char sql[192];
	int rc;

	if (!c || !c->pg)
		return vg_err_set(err, VG_INVAL, "begin without a connection");
	if (flags > (VG_DB_TX_READ_ONLY | VG_DB_TX_SERIALIZABLE))
		return vg_err_set(err, VG_INVAL, "bad transaction flags");
	if (tenant_id && !vg_db_is_uuid(tenant_id))
		return vg_err_set(err, VG_INVAL, "tenant id is not a UUID");
	/* One round trip: BEGIN and the tenant in one simple query. The id
	 * is spliced in as a literal, which is safe because it was just
	 * checked to be hex digits and dashes only. */
	if (tenant_id)
		snprintf(sql, sizeof(sql),
			 "%s; SELECT pg_catalog.set_config('vigil.tenant_id', "
			 "'%s', true)",
			 begin_sql[flags], tenant_id);
	else
		snprintf(sql, sizeof(sql), "%s", begin_sql[flags]);
	rc = finish(c, PQexec(c->pg, sql), "begin", NULL, err);
	if (rc != VG_OK)
		vg_db_rollback(c);
	return rc;
}

int vg_db_commit(struct vg_db_conn *c, struct vg_err *err)
{
	PGresult *r;
	int rc;

	if (!c || !c->pg)
		return vg_err_set(err, VG_INVAL, "commit without a connection");
	if (PQtransactionStatus(c->pg) == PQTRANS_INERROR) {
		vg_db_rollback(c);
		return vg_err_set(err, VG_DB,
				  "commit: the transaction was aborted by an "
				  "earlier error");
	}
	r = PQexec(c->pg, "COMMIT");
	/* a transaction that failed deferred checks answers ROLLBACK */
	if (r && PQresultStatus(r) == PGRES_COMMAND_OK &&
	    strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		PQclear(r);
		return vg_err_set(err, VG_DB, "commit: rolled back instead");
	}
	rc = finish(c, r, "commit", NULL, err);
	if (rc != VG_OK)
		vg_db_rollback(c);
	return rc;
}

void vg_db_rollback(struct vg_db_conn *c)
{
	PGresult *r;

	if (!c || !c->pg || PQstatus(c->pg) != CONNECTION_OK ||
	    PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return;
	r = PQexec(c->pg, "ROLLBACK");
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK ||
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		slot_close(c); /* released as broken: a new one replaces it */
	PQclear(r);
}

static void backoff(int attempt)
{
	/* 10, 20, 40 ms plus up to as much jitter */
	long ms = 10L << attempt;
	struct timespec ts;

	ms += (long)((unsigned)rand() % (unsigned)ms);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int vg_db_tx(struct vg_db_pool *p, const char *tenant_id, unsigned flags,
	     vg_db_tx_fn fn, void *arg, struct vg_err *err)
{
	int replaced = 0, rc;

	for (int attempt = 0;; attempt++) {
		struct vg_db_conn *c = NULL;

		rc = vg_db_acquire(p, &c, err);
		if (rc != VG_OK)
			return rc;
		rc = vg_db_begin(c, tenant_id, flags, err);
		if (rc != VG_OK) {
			vg_db_release(c);
			/* nothing was done yet: a fresh connection is safe */
			if (vg_db_unavailable(err) && !replaced++)
				continue;
			return rc;
		}
		rc = fn(c, arg, err);
		if (rc == VG_OK)
			rc = vg_db_commit(c, err);
		else
			vg_db_rollback(c);
		vg_db_release(c);
		if (rc != VG_AGAIN || attempt >= TX_RETRIES)
			return rc;
		backoff(attempt);
	}
}

/* --- pipelined reads ------------------------------------------------- */

#define READ_STEPS_MAX 8

/* The read's settings, local to its transaction: the tenant ('' for none:
 * current_tenant() is then NULL and row-level security shows nothing),
 * read only, and the plan cache mode. */
static const struct vg_db_stmt st_read_begin = {
	.name = "vg_read_begin",
	.sql = "SELECT pg_catalog.set_config('vigil.tenant_id',"
	       " coalesce($1, ''), true),"
	       " pg_catalog.set_config('transaction_read_only', 'on', true),"
	       " pg_catalog.set_config('plan_cache_mode', $2, true)",
	.nparams = 2,
};

/* What the pipeline expects back, in order. */
struct read_cmd {
	const struct vg_db_stmt *st;
	int step;    /* index in steps, -1 for the tenant statement */
	int prepare; /* a Parse, not an Execute */
};

/* Queue one statement (and its Parse when the connection lacks it). */
static int read_queue(struct vg_db_conn *c, const struct vg_db_stmt *st,
		      const char *const *params, int binary, int step,
		      struct read_cmd *cmds, int *nc)
{
	const char *known = vg_strmap_get(&c->prepared, st->name);

	if (known && known != st->sql && strcmp(known, st->sql) != 0)
		return -1;
	if (!known) {
		if (!PQsendPrepare(c->pg, st->name, st->sql, st->nparams, NULL))
			return -1;
		cmds[(*nc)++] = (struct read_cmd){st, step, 1};
	}
	if (!PQsendQueryPrepared(c->pg, st->name, st->nparams, params, NULL,
				 NULL, binary ? 1 : 0))
		return -1;
	cmds[(*nc)++] = (struct read_cmd){st, step, 0};
	return 0;
}

static void free_steps(struct vg_db_step *steps, int n)
{
	for (int i = 0; i < n; i++) {
		vg_db_res_free(steps[i].res);
		steps[i].res = NULL;
	}
}

/* One round trip on `c`. Leaves pipeline mode, or the connection broken. */
static int read_pipeline(struct vg_db_conn *c, const char *tenant_id,
			 struct vg_db_step *steps, int n, struct vg_err *err)
{
	struct read_cmd cmds[2 * (READ_STEPS_MAX + 1)];
	const char *bp[2] = {tenant_id, "auto"};
	int nc = 0, rc = VG_OK, ok;
	PGresult *r;

	for (int i = 0; i < n; i++)
		if (steps[i].st->generic)
			bp[1] = "force_generic_plan";
	if (!PQenterPipelineMode(c->pg))
		return result_err(c->pg, NULL, "pipeline", err);
	ok = read_queue(c, &st_read_begin, bp, 0, -1, cmds, &nc) == 0;
	for (int i = 0; ok && i < n; i++)
		ok = read_queue(c, steps[i].st, steps[i].params,
				steps[i].binary, i, cmds, &nc) == 0;
	if (!ok || !PQpipelineSync(c->pg)) {
		rc = PQstatus(c->pg) == CONNECTION_OK
			     ? vg_err_set(err, VG_INVAL,
					  "pipeline: could not queue (%s)",
					  PQerrorMessage(c->pg))
			     : result_err(c->pg, NULL, "pipeline", err);
		slot_close(c); /* mid-pipeline: not reusable */
		return rc;
	}
	for (int i = 0; i < nc; i++) {
		const struct read_cmd *m = &cmds[i];
		ExecStatusType st;

		r = PQgetResult(c->pg);
		if (!r) { /* connection lost */
			if (rc == VG_OK)
				rc = result_err(c->pg, NULL, m->st->name, err);
			break;
		}
		st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_ABORTED) {
			PQclear(r);
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (rc == VG_OK)
				rc = finish(c, r, m->st->name, NULL, err);
			else
				PQclear(r);
		} else if (m->prepare) {
			PQclear(r);
			if (vg_strmap_put(&c->prepared, m->st->name,
					  (void *)m->st->sql) != VG_OK &&
			    rc == VG_OK)
				rc = vg_err_set(err, VG_NOMEM,
						"prepared statements");
		} else if (m->step < 0 || rc != VG_OK) {
			PQclear(r);
		} else {
			int frc = finish(c, r, m->st->name, &steps[m->step].res,
					 err);

			if (frc != VG_OK)
				rc = frc;
		}
		/* each command's results end with a NULL */
		if ((r = PQgetResult(c->pg))) {
			PQclear(r);
			if (rc == VG_OK)
				rc = vg_err_set(err, VG_UNSUPPORTED,
						"%s: more than one result",
						m->st->name);
			slot_close(c);
			return rc;
		}
	}
	r = PQstatus(c->pg) == CONNECTION_OK ? PQgetResult(c->pg) : NULL;
	if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC ||
	    !PQexitPipelineMode(c->pg)) {
		if (rc == VG_OK)
			rc = result_err(c->pg, NULL, "pipeline sync", err);
		slot_close(c);
	}
	PQclear(r);
	return rc;
}

int vg_db_read(struct vg_db_pool *p, const char *tenant_id,
	       struct vg_db_step *steps, int n, struct vg_err *err)
{
	int replaced = 0, rc;

	for (int i = 0; i < n; i++)
		steps[i].res = NULL;
	if (n < 1 || n > READ_STEPS_MAX)
		return vg_err_set(err, VG_INVAL, "a read of %d statements", n);
	for (int i = 0; i < n; i++)
		if (!steps[i].st || !steps[i].st->name || !*steps[i].st->name ||
		    !steps[i].st->sql)
			return vg_err_set(err, VG_INVAL,
					  "bad prepared statement");
	if (tenant_id && !vg_db_is_uuid(tenant_id))
		return vg_err_set(err, VG_INVAL, "tenant id is not a UUID");
	for (int attempt = 0;; attempt++) {
		struct vg_db_conn *c = NULL;
		int again;

		rc = vg_db_acquire(p, &c, err);
		if (rc != VG_OK)
			return rc;
		rc = read_pipeline(c, tenant_id, steps, n, err);
		if (rc == VG_OK) {
			vg_db_release(c);
			return rc;
		}
		free_steps(steps, n);
		/* 26000: the session lost its prepared statements (DEALLOCATE
		 * ALL, DISCARD ALL): prepare them again. A lost connection:
		 * another one (nothing was written). */
		again = err && strcmp(err->reason, "26000") == 0;
		if (again && c->pg) {
			vg_strmap_cleanup(&c->prepared);
			vg_strmap_init(&c->prepared, NULL);
		}
		vg_db_release(c);
		if (attempt > 0 || !(again || (vg_db_unavailable(err) &&
					       !replaced++)))
			return rc;
	}
}

/* Append key='value' with libpq's quoting (\\ and \'). */
static int conninfo_kv(struct vg_buf *b, const char *key, const char *v)
{
	int rc;

	if (!v || !*v)
		return VG_OK;
	rc = vg_buf_appendf(b, "%s%s='", b->len ? " " : "", key);
	for (const char *p = v; !rc && *p; p++) {
		if (*p == '\\' || *p == '\'')
			rc = vg_buf_append_byte(b, '\\');
		if (!rc)
			rc = vg_buf_append_byte(b, *p);
	}
	return rc ? rc : vg_buf_append_byte(b, '\'');
}

char *vg_db_conninfo(const char *host, int port, const char *dbname,
		     const char *user, const char *password,
		     const char *sslmode)
{
	struct vg_buf b;
	char ports[16] = "";

	if (port > 0)
		snprintf(ports, sizeof(ports), "%d", port);
	vg_buf_init(&b, 0);
	if (conninfo_kv(&b, "host", host) || conninfo_kv(&b, "port", ports) ||
	    conninfo_kv(&b, "dbname", dbname) ||
	    conninfo_kv(&b, "user", user) ||
	    conninfo_kv(&b, "password", password) ||
	    conninfo_kv(&b, "sslmode", sslmode)) {
		if (b.data)
			explicit_bzero(b.data, b.len);
		vg_buf_cleanup(&b);
		return NULL;
	}
	return vg_buf_take(&b);
}
