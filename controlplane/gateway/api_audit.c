/*
 * api_audit.c - reading and verifying the audit log: a tenant's chain
 * (?tenant=<id>, tenant admins and platform admins) or the platform's
 * (platform admins).
 */
#include "gateway.h"

#include "vigil/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_COLS                                                    \
	"seq, at, actor, action, object_type, object_id, request_id," \
	" host(source_ip), details::text, encode(prev_hash, 'hex'),"  \
	" encode(hash, 'hex')"

static const char audit_spec[] = "seq:i,at,actor,action,object_type,"
				 "object_id,request_id,source_ip,details:j,"
				 "prev_hash,hash";

/* Integer query parameter `name` in [min, max]; `def` when absent.
 * 0, or -1 after replying 400. */
static int query_int(struct gw_rctx *rc, const char *name, long long min,
                     long long max, long long def, long long *out)
{
	char v[32], *end;
	int r = vg_http_query_get(rc->req->query, strlen(rc->req->query), name,
	                          v, sizeof(v));

	*out = def;
	if (r == VG_NOTFOUND)
		return 0;
	errno = 0;
	*out = r == VG_OK ? strtoll(v, &end, 10) : 0;
	if (r != VG_OK || errno || end == v || *end || *out < min ||
	    *out > max) {
		gw_reply_error(rc, 400, "bad_request",
		               "%s: want an integer in [%lld, %lld]", name, min,
		               max);
		return -1;
	}
	return 0;
}

struct list_arg {
	struct gw_rctx *rc;
	const char *params[2];
	json_t *out;
};

static int list_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct list_arg *a = arg;
	struct vg_db_res *r = NULL;
	int rc;

	if (a->rc->tenant)
		rc = vg_db_exec(c,
		                "SELECT " AUDIT_COLS " FROM audit_log"
		                " WHERE tenant_id = current_tenant()"
		                " AND seq > $1 ORDER BY seq LIMIT $2",
		                2, a->params, &r, err);
	else
		rc = vg_db_exec(c,
		                "SELECT " AUDIT_COLS
		                " FROM audit_list_platform($1, $2)",
		                2, a->params, &r, err);
	json_decref(a->out);
	a->out = rc == VG_OK ? gw_rows_json(r, audit_spec) : NULL;
	vg_db_res_free(r);
	if (rc == VG_OK && !a->out)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

void api_audit_list(struct gw_rctx *rc)
{
	struct list_arg a = {rc, {NULL, NULL}, NULL};
	struct vg_err err = {0};
	long long after, limit;
	char s_after[24], s_limit[24];
	size_t n;
	json_t *next;
	int r;

	if (query_int(rc, "after", 0, (1LL << 62), 0, &after) ||
	    query_int(rc, "limit", 1, 500, 100, &limit))
		return;
	snprintf(s_after, sizeof(s_after), "%lld", after);
	snprintf(s_limit, sizeof(s_limit), "%lld", limit);
	a.params[0] = s_after;
	a.params[1] = s_limit;
	r = gw_tx(rc, VG_DB_TX_READ_ONLY, list_tx, &a, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	n = json_array_size(a.out);
	next = n == (size_t)limit
	               ? json_integer(vg_json_get_int(
				 json_array_get(a.out, n - 1), "seq", 0))
	               : json_null();
	gw_reply_json(rc, 200,
	              json_pack("{s:s, s:o, s:o}", "chain",
	                        rc->tenant ? rc->tenant : "platform", "items",
	                        a.out, "next_after", next));
}

struct verify_arg {
	struct gw_rctx *rc;
	char *broken;
	char *count;
};

static int verify_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct verify_arg *a = arg;
	const char *p[] = {a->rc->tenant};
	int rc;

	free(a->broken);
	free(a->count);
	a->broken = a->count = NULL;
	rc = vg_db_query_value(c, "SELECT audit_verify($1::uuid)", 1, p,
	                       &a->broken, err);
	if (rc == VG_OK && a->rc->tenant)
		rc = vg_db_query_value(c,
		                       "SELECT count(*) FROM audit_log"
		                       " WHERE tenant_id = current_tenant()",
		                       0, NULL, &a->count, err);
	return rc;
}

void api_audit_verify(struct gw_rctx *rc)
{
	struct verify_arg a = {rc, NULL, NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, VG_DB_TX_READ_ONLY, verify_tx, &a, &err);
	json_t *doc;

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		goto out;
	}
	doc = json_pack("{s:s, s:b, s:o}", "chain",
	                rc->tenant ? rc->tenant : "platform", "intact",
	                a.broken == NULL, "first_broken_seq",
	                a.broken ? json_integer(strtoll(a.broken, NULL, 10))
	                         : json_null());
	if (doc && a.count)
		json_object_set_new(doc, "entries",
		                    json_integer(strtoll(a.count, NULL, 10)));
	if (a.broken)
		gw_rlog(rc, VG_LOG_ERROR, "audit chain broken", "chain",
		        rc->tenant ? rc->tenant : "platform", "seq", a.broken,
		        NULL);
	gw_reply_json(rc, 200, doc);
out:
	free(a.broken);
	free(a.count);
}
