/*
 * api_keys.c - a tenant's API keys and agent tokens (keys with the agent
 * role). The key is in the creation reply and nowhere else: the database
 * keeps its prefix and SHA-256 (see auth.c).
 */
#include "gateway.h"

#include "vigil/json.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char *const key_roles[] = {"admin", "analyst", "viewer", "agent",
                                        NULL};

const struct vg_json_field api_key_body[] = {
	{"name", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 128, NULL,
         0},
	{"role", VG_JSON_STRING, VG_JSON_REQUIRED, 0, 0, key_roles, 0},
	{"expires_at", VG_JSON_TIMESTAMP, VG_JSON_NULLABLE, 0, 0, NULL, 0},
	{"scopes", VG_JSON_STRING_ARRAY, VG_JSON_NULLABLE, 0, 16, NULL, 64},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static const char key_spec[] = "id,name,prefix,role,scopes:j,created_at,"
			       "created_by,expires_at,revoked_at,last_used_at";

struct list_arg {
	json_t *out;
};

static int list_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct list_arg *a = arg;
	struct vg_db_res *r = NULL;
	int rc = vg_db_exec(
		c,
		"SELECT id, name, prefix, role, array_to_json(scopes),"
		" created_at, created_by, expires_at, revoked_at,"
		" last_used_at FROM api_keys"
		" ORDER BY created_at, id",
		0, NULL, &r, err);

	json_decref(a->out);
	a->out = rc == VG_OK ? gw_rows_json(r, key_spec) : NULL;
	vg_db_res_free(r);
	if (rc == VG_OK && !a->out)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	return rc;
}

void api_keys_list(struct gw_rctx *rc)
{
	struct list_arg a = {NULL};
	struct vg_err err = {0};
	int r = gw_tx(rc, VG_DB_TX_READ_ONLY, list_tx, &a, &err);

	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_reply_json(rc, 200, json_pack("{s:o}", "items", a.out));
}

struct create_arg {
	struct gw_rctx *rc;
	char key[80];
	char prefix[16];
	char hash_hex[65];
	char *scopes; /* a text[] literal */
	json_t *out;
};

static int create_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct create_arg *a = arg;
	const json_t *b = a->rc->body;
	const char *p[] = {
		vg_json_get_str(b, "name", ""),
		a->prefix,
		a->hash_hex,
		vg_json_get_str(b, "role", ""),
		a->scopes,
		a->rc->who.actor,
		vg_json_get_str(b, "expires_at", NULL),
	};
	struct vg_db_res *r = NULL;
	json_t *details;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	if (p[6]) {
		char *future = NULL;
		const char *q[] = {p[6]};

		rc = vg_db_query_value(c, "SELECT $1::timestamptz > now()", 1,
		                       q, &future, err);
		if (rc == VG_OK && (!future || future[0] != 't'))
			rc = vg_err_set(err, VG_INVAL,
			                "expires_at: must be in the future");
		free(future);
		if (rc != VG_OK)
			return rc;
	}
	rc = vg_db_exec(
		c,
		"INSERT INTO api_keys (tenant_id, name, prefix, hash, role,"
		" scopes, created_by, expires_at) VALUES"
		" (current_tenant(), $1, $2, decode($3, 'hex'), $4,"
		" $5::text[], $6, $7::timestamptz)"
		" RETURNING id, name, prefix, role, array_to_json(scopes),"
		" created_at, created_by, expires_at, revoked_at,"
		" last_used_at",
		7, p, &r, err);
	if (rc != VG_OK)
		return rc;
	a->out = gw_row_json(r, 0, key_spec);
	vg_db_res_free(r);
	if (!a->out)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	details = json_pack("{s:s, s:s, s:s}", "prefix", a->prefix, "role",
	                    p[3], "name", p[0]);
	rc = gw_audit(c, a->rc, "api_key.create", "api_key",
	              vg_json_get_str(a->out, "id", ""), details, err);
	json_decref(details);
	return rc;
}

/* The scopes as a PostgreSQL array literal, every element quoted. */
static char *scopes_literal(const json_t *scopes)
{
	struct vg_buf b;
	size_t i;
	const json_t *s;

	vg_buf_init(&b, 0);
	vg_buf_append_byte(&b, '{');
	json_array_foreach(scopes, i, s)
	{
		vg_buf_append_str(&b, i ? ",\"" : "\"");
		for (const char *p = json_string_value(s); *p; p++) {
			if (*p == '"' || *p == '\\')
				vg_buf_append_byte(&b, '\\');
			vg_buf_append_byte(&b, *p);
		}
		vg_buf_append_byte(&b, '"');
	}
	vg_buf_append_byte(&b, '}');
	return vg_buf_take(&b);
}

void api_keys_create(struct gw_rctx *rc)
{
	struct create_arg a = {.rc = rc};
	struct vg_err err = {0};
	unsigned char md[32];
	int r = VG_EXISTS;

	a.scopes = scopes_literal(vg_json_get_array(rc->body, "scopes"));
	if (!a.scopes) {
		gw_reply_error(rc, 503, "unavailable", "out of memory");
		return;
	}
	/* prefixes are 32 random bits: a collision is possible, if rare */
	for (int attempt = 0; attempt < 3 && r == VG_EXISTS; attempt++) {
		if (gw_api_key_new(a.key, sizeof(a.key), a.prefix,
		                   sizeof(a.prefix)) != VG_OK) {
			r = vg_err_set(&err, VG_INTERNAL, "key generation");
			break;
		}
		gw_sha256(a.key, strlen(a.key), md);
		gw_hex(md, sizeof(md), a.hash_hex);
		r = gw_tx(rc, 0, create_tx, &a, &err);
	}
	free(a.scopes);
	if (r == VG_INVAL && !err.reason[0]) {
		gw_reply_error(rc, 422, "validation_failed", "%s", err.msg);
	} else if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
	} else {
		gw_audit_committed(rc->g, 1);
		json_object_set_new(a.out, "key", json_string(a.key));
		gw_rlog(rc, VG_LOG_INFO, "api key created", "prefix", a.prefix,
		        "role", vg_json_get_str(rc->body, "role", ""), NULL);
		gw_reply_json(rc, 201, a.out);
		a.out = NULL;
	}
	json_decref(a.out);
	OPENSSL_cleanse(a.key, sizeof(a.key));
}

static int revoke_tx(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct gw_rctx *rc = arg;
	const char *p[] = {rc->params[1]};
	struct vg_db_res *r = NULL;
	int x = vg_db_exec(c,
	                   "UPDATE api_keys SET revoked_at ="
	                   " coalesce(revoked_at, now()) WHERE id = $1",
	                   1, p, &r, err);

	if (x == VG_OK && vg_db_res_affected(r) == 0)
		x = vg_err_set(err, VG_NOTFOUND, "api key not found");
	vg_db_res_free(r);
	if (x == VG_OK)
		x = gw_audit(c, rc, "api_key.revoke", "api_key", p[0], NULL,
		             err);
	return x;
}

void api_keys_revoke(struct gw_rctx *rc)
{
	struct vg_err err = {0};
	int r;

	if (!vg_db_is_uuid(rc->params[1])) {
		gw_reply_error(rc, 404, "not_found", "api key not found");
		return;
	}
	r = gw_tx(rc, 0, revoke_tx, rc, &err);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return;
	}
	gw_audit_committed(rc->g, 1);
	gw_authcache_revoked(rc->g, rc->params[1]);
	gw_reply_no_content(rc, 204);
}
