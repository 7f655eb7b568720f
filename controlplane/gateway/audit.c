/*
 * audit.c - audit entries, written in the same transaction as the change
 * they record, so a change without its entry (or the reverse) cannot be
 * committed. The database chains and hashes them (0004_audit.sql).
 */
#include "gateway.h"

#include <stdlib.h>

static const struct vg_db_stmt st_audit_tenant = {
	.name = "gw_audit_tenant",
	.sql = "INSERT INTO audit_log (tenant_id, actor, action, object_type,"
	       " object_id, request_id, source_ip, details)"
	       " VALUES (current_tenant(), $1, $2, $3, $4, $5, $6::inet,"
	       " $7::jsonb)",
	.nparams = 7,
};

static const struct vg_db_stmt st_audit_platform = {
	.name = "gw_audit_platform",
	.sql = "SELECT audit_append_platform($1, $2, $3, $4, $5, $6::jsonb)",
	.nparams = 6,
};

int gw_audit(struct vg_db_conn *c, const struct gw_rctx *rc, const char *action,
             const char *object_type, const char *object_id,
             const json_t *details, struct vg_err *err)
{
	char *d = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS)
	                  : NULL;
	const char *actor = rc->who.actor[0] ? rc->who.actor : "anonymous";
	const char *peer = rc->client[0] ? rc->client : NULL;
	int r;

	if (details && !d)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	if (rc->tenant) {
		const char *p[] = {actor,
		                   action,
		                   object_type,
		                   object_id ? object_id : "",
		                   rc->req->request_id,
		                   peer,
		                   d ? d : "{}"};

		r = vg_db_exec_stmt(c, &st_audit_tenant, p, NULL, err);
	} else {
		const char *p[] = {actor,
		                   action,
		                   object_type,
		                   object_id ? object_id : "",
		                   rc->req->request_id,
		                   d ? d : "{}"};

		r = vg_db_exec_stmt(c, &st_audit_platform, p, NULL, err);
	}
	free(d);
	return r;
}

void gw_audit_committed(struct gw *g, int n)
{
	vg_counter_add(g->m.audit, n);
}
