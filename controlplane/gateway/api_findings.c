/*
 * api_findings.c - a tenant's findings: the list analysts page through
 * (filters, keyset pages, most severe and most recent first) and triage
 * (the finding's state, audited).
 *
 * The list is the hot read path: two prepared statements (first page,
 * next pages) whose order and cursor bound are the index
 * findings_tenant_rank (0009): a page costs the same at the start and
 * deep into a million findings. The cursor names the severity; the
 * query bounds its rank (severity_rank, a leakproof smallint). The page
 * is read in one round trip (gw_read) in binary form, which spares the
 * server its text output (timestamps, UUIDs) on the hottest query.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const finding_states[] = {"open", "resolved", "accepted",
                                             "false_positive", NULL};
static const char *const severities[] = {"info", "low",      "medium",
                                         "high", "critical", NULL};

const struct vg_json_field api_triage_body[] = {
	{"state", VG_JSON_STRING, VG_JSON_REQUIRED, 0, 0, finding_states, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

#define FINDING_COLS                                                     \
	"id, run_id, batch_id, host, port, protocol, scanner, severity," \
	" fingerprint, title, evidence, state, first_seen, last_seen"
#define FINDING_KEY ", severity, last_seen, id"
#define FINDING_ORDER " ORDER BY severity_rank DESC, last_seen DESC, id DESC"

static const char finding_spec[] =
	"id,run_id,batch_id,host,port:i,protocol,scanner,severity,fingerprint,"
	"title,evidence:j,state,first_seen,last_seen";

/*
 * One statement per set of filters (and with or without a cursor), naming
 * only the filters present, so each gets the plan that suits it. The
 * unfiltered pages run from their generic plan (vg_db_stmt.generic): the
 * rank index in order, with no planning per request. Filtered pages are
 * planned per request, with their values, which may pick another index.
 */
static const struct {
	const char *pre, *post; /* around the parameter's number */
} filter_sql[GW_FINDINGS_FILTERS] = {
	{"severity = ANY ($", "::severity[])"},
	{"host = $", ""},
	{"port = $", "::integer"},
	{"run_id = $", "::uuid"},
	{"state = $", ""},
	{"scanner = $", ""},
};

#define NSTMTS (1 << (GW_FINDINGS_FILTERS + 1))

static struct vg_db_stmt list_stmts[NSTMTS];
static char list_names[NSTMTS][24];
static pthread_once_t list_once = PTHREAD_ONCE_INIT;

static void list_init(void)
{
	for (unsigned m = 0; m < NSTMTS; m++) {
		struct vg_buf b;
		int n = 0;

		vg_buf_init(&b, 0);
		vg_buf_append_str(&b, "SELECT " FINDING_COLS FINDING_KEY
		                      " FROM findings"
		                      " WHERE tenant_id = current_tenant()");
		for (int f = 0; f < GW_FINDINGS_FILTERS; f++) {
			if (!(m & 1u << f))
				continue;
			vg_buf_appendf(&b, " AND %s%d%s", filter_sql[f].pre,
			               ++n, filter_sql[f].post);
		}
		if (m & GW_FINDINGS_CURSOR) {
			vg_buf_appendf(&b,
			               " AND (severity_rank, last_seen, id) <"
			               " ($%d::smallint, $%d::timestamptz,"
			               " $%d::uuid)",
			               n + 1, n + 2, n + 3);
			n += 3;
		}
		vg_buf_appendf(&b, FINDING_ORDER " LIMIT $%d::integer", ++n);
		snprintf(list_names[m], sizeof(list_names[m]),
		         "gw_findings_%02x", m);
		/* NULL on ENOMEM: that list answers 503 */
		list_stmts[m].sql = vg_buf_take(&b);
		list_stmts[m].name = list_names[m];
		list_stmts[m].nparams = n;
		/* the unfiltered pages, the hot ones: their generic plan is
		 * the rank index in order, but LIMIT $n makes it look dear */
		list_stmts[m].generic = (m & (GW_FINDINGS_CURSOR - 1)) == 0;
	}
}

const struct vg_db_stmt *gw_findings_stmt(unsigned mask)
{
	pthread_once(&list_once, list_init);
	return mask < NSTMTS && list_stmts[mask].sql ? &list_stmts[mask]
	                                              : NULL;
}

static int one_of(const char *const *set, const char *s, size_t n)
{
	for (size_t i = 0; set[i]; i++)
		if (strlen(set[i]) == n && strncmp(set[i], s, n) == 0)
			return 1;
	return 0;
}

/* "high,critical" -> "{high,critical}" in `out`; 0, or -1 for an unknown
 * or empty severity. */
static int severity_array(const char *list, char *out, size_t size)
{
	size_t o = 0;

	if (size < 3)
		return -1;
	out[o++] = '{';
	for (const char *p = list;;) {
		size_t n = strcspn(p, ",");

		if (!one_of(severities, p, n) || o + n + 2 >= size)
			return -1;
		if (o > 1)
			out[o++] = ',';
		memcpy(out + o, p, n);
		o += n;
		if (!p[n])
			break;
		p += n + 1;
	}
	out[o++] = '}';
	out[o] = '\0';
	return 0;
}

/* 0 (info) to 4 (critical), as severity_rank; -1 for no severity */
static int severity_rank(const char *s)
{
	for (int i = 0; severities[i]; i++)
		if (strcmp(severities[i], s) == 0)
			return i;
	return -1;
}

void api_findings_list(struct gw_rctx *rc)
{
	char sev[128], sev_arr[128], host[256], port[16], run[64], state[32],
		scanner[80], limit_s[16], rank[2] = "";
	const char *val[GW_FINDINGS_FILTERS] = {sev_arr, host,  port,
	                                        run,     state, scanner};
	const char *p[GW_FINDINGS_FILTERS + 4];
	struct vg_db_step step = {.params = p, .binary = 1};
	struct gw_cursor cur;
	struct vg_err err = {0};
	unsigned mask = 0;
	int limit, h[GW_FINDINGS_FILTERS], n = 0, r;

	if (gw_page_params(rc, "stu", &limit, &cur) ||
	    (h[0] = gw_query_param(rc, "severity", sev, sizeof(sev))) < 0 ||
	    (h[1] = gw_query_param(rc, "host", host, sizeof(host))) < 0 ||
	    (h[2] = gw_query_param(rc, "port", port, sizeof(port))) < 0 ||
	    (h[3] = gw_query_param(rc, "run_id", run, sizeof(run))) < 0 ||
	    (h[4] = gw_query_param(rc, "state", state, sizeof(state))) < 0 ||
	    (h[5] = gw_query_param(rc, "scanner", scanner, sizeof(scanner))) <
	            0)
		return;
	if (h[0] && severity_array(sev, sev_arr, sizeof(sev_arr))) {
		gw_reply_error(rc, 400, "bad_request",
		               "severity: want one or more of info, low, "
		               "medium, high, critical, separated by commas");
		return;
	}
	if (h[2]) {
		char *end;
		long v;

		errno = 0;
		v = strtol(port, &end, 10);
		if (!*port || *end || errno || v < 0 || v > 65535) {
			gw_reply_error(rc, 400, "bad_request",
			               "port: want an integer from 0 to 65535");
			return;
		}
	}
	if (h[3] && !vg_db_is_uuid(run)) {
		gw_reply_error(rc, 400, "bad_request", "run_id: want a UUID");
		return;
	}
	if (h[4] && !one_of(finding_states, state, strlen(state))) {
		gw_reply_error(rc, 400, "bad_request",
		               "state: want open, resolved, accepted or "
		               "false_positive");
		return;
	}
	snprintf(limit_s, sizeof(limit_s), "%d", limit + 1);
	for (int f = 0; f < GW_FINDINGS_FILTERS; f++)
		if (h[f]) {
			mask |= 1u << f;
			p[n++] = val[f];
		}
	if (cur.n) {
		rank[0] = (char)('0' + severity_rank(cur.part[0]));
		mask |= GW_FINDINGS_CURSOR;
		p[n++] = rank;
		p[n++] = cur.part[1];
		p[n++] = cur.part[2];
	}
	p[n++] = limit_s;
	if (!(step.st = gw_findings_stmt(mask))) {
		gw_reply_error(rc, 503, "unavailable", "out of memory");
		return;
	}
	/* one round trip: the tenant check and the page */
	r = gw_read(rc, &step, 1, &err);
	if (r == VG_INVAL && cur.n)
		gw_reply_error(rc, 400, "bad_request",
		               "cursor: not a cursor of this list");
	else if (r != VG_OK)
		gw_reply_failure(rc, r, &err);
	else
		gw_reply_page(rc, step.res, finding_spec, limit, 3);
	vg_db_res_free(step.res);
}

/* ------------------------------------------------------------------ */
/* Triage                                                               */
/* ------------------------------------------------------------------ */

struct triage_arg {
	struct gw_rctx *rc;
	json_t *out;
};

static int triage_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct triage_arg *a = arg;
	const char *to = vg_json_get_str(a->rc->body, "state", "");
	const char *p[] = {a->rc->params[1], to};
	struct vg_db_res *r = NULL;
	json_t *details;
	char from[32];
	int rc;

	json_decref(a->out);
	a->out = NULL;
	rc = vg_db_exec(c,
	                "SELECT state FROM findings WHERE id = $1"
	                " FOR UPDATE",
	                1, p, &r, err);
	if (rc == VG_OK && vg_db_res_rows(r) != 1)
		rc = vg_err_set(err, VG_NOTFOUND, "finding not found");
	if (rc == VG_OK)
		snprintf(from, sizeof(from), "%s", vg_db_res_get(r, 0, 0));
	vg_db_res_free(r);
	r = NULL;
	if (rc != VG_OK)
		return rc;
	rc = vg_db_exec(c,
	                "UPDATE findings SET state = $2 WHERE id = $1"
	                " RETURNING " FINDING_COLS,
	                2, p, &r, err);
	if (rc == VG_OK && !(a->out = gw_row_json(r, 0, finding_spec)))
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	vg_db_res_free(r);
	if (rc != VG_OK)
		return rc;
	details = json_pack("{s:s, s:s}", "from", from, "to", to);
	rc = gw_audit(c, a->rc, "finding.triage", "finding", p[0], details,
	              err);
	json_decref(details);
	return rc;
}

void api_findings_triage(struct gw_rctx *rc)
{
	struct triage_arg a = {rc, NULL};
	struct vg_err err = {0};
	int r;

	if (!vg_db_is_uuid(rc->params[1])) {
		gw_reply_error(rc, 404, "not_found", "finding not found");
		return;
	}
	r = gw_tx(rc, 0, triage_tx, &a, &err);
	if (r != VG_OK) {
		json_decref(a.out);
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_rlog(rc, VG_LOG_INFO, "finding triaged", "finding_id", rc->params[1],
	        "state", vg_json_get_str(rc->body, "state", ""), NULL);
	gw_reply_json(rc, 200, a.out);
}
