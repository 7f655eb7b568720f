/*
 * auth.c - who is calling: the bootstrap platform-admin key, API keys
 * (agent tokens are API keys with the agent role), and login sessions;
 * passwords (argon2id); limits on failed authentication.
 *
 * API keys are "vgk_<8 hex>_<43 base64url>": 256 random bits after a
 * public prefix. The database keeps the prefix (to find the key) and the
 * SHA-256 of the whole key (to prove it), compared here with
 * CRYPTO_memcmp. A fast hash is right for such keys: with 256 bits of
 * entropy there is nothing to guess, so a slow password hash would only
 * cost every request tens of milliseconds (and hand attackers a cheap way
 * to burn CPU) without making a leaked hash any easier to reverse.
 * Passwords are chosen by people and get argon2id.
 */
#include "gateway.h"

#include <argon2.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* argon2id: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane), 30-50
 * ms on one core here; handler threads bound how many run at once */
#define ARGON2_T     2
#define ARGON2_M_KIB 19456
#define ARGON2_P     1
#define SALT_LEN     16
#define HASH_LEN     32
#define MAX_TOKEN    512

#define FAIL_PREFIX "vigil:authfail:"

void gw_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void gw_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void base64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	unsigned long acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

int gw_random_token(const char *prefix, char *out, size_t size)
{
	unsigned char r[32];
	size_t pl = strlen(prefix);

	if (size < pl + 44)
		return VG_TOOLARGE;
	if (RAND_bytes(r, sizeof(r)) != 1)
		return VG_INTERNAL;
	memcpy(out, prefix, pl);
	base64url(r, sizeof(r), out + pl);
	OPENSSL_cleanse(r, sizeof(r));
	return VG_OK;
}

int gw_api_key_new(char *key, size_t size, char *prefix, size_t psize)
{
	unsigned char id[4];
	char hex[9], head[16];
	int rc;

	if (psize < 13 || RAND_bytes(id, sizeof(id)) != 1)
		return VG_INTERNAL;
	gw_hex(id, sizeof(id), hex);
	snprintf(head, sizeof(head), "vgk_%s_", hex);
	if ((rc = gw_random_token(head, key, size)) != VG_OK)
		return rc;
	memcpy(prefix, key, 12);
	prefix[12] = '\0';
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Passwords                                                            */
/* ------------------------------------------------------------------ */

int gw_password_hash(const char *password, char *out, size_t size)
{
	unsigned char salt[SALT_LEN];
	size_t need = argon2_encodedlen(ARGON2_T, ARGON2_M_KIB, ARGON2_P,
	                                SALT_LEN, HASH_LEN, Argon2_id);

	if (size < need || RAND_bytes(salt, sizeof(salt)) != 1)
		return VG_INTERNAL;
	if (argon2id_hash_encoded(ARGON2_T, ARGON2_M_KIB, ARGON2_P, password,
	                          strlen(password), salt, SALT_LEN, HASH_LEN,
	                          out, size) != ARGON2_OK)
		return VG_INTERNAL;
	return VG_OK;
}

int gw_password_verify(const char *encoded, const char *password)
{
	return argon2id_verify(encoded, password, strlen(password)) ==
	       ARGON2_OK;
}

static char dummy_hash[160];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
	char pw[64];

	if (gw_random_token("", pw, sizeof(pw)) != VG_OK ||
	    gw_password_hash(pw, dummy_hash, sizeof(dummy_hash)) != VG_OK)
		dummy_hash[0] = '\0';
}

/* A hash to verify against when the user does not exist, so that an
 * unknown user costs as much time as a wrong password. */
const char *gw_password_dummy(void)
{
	pthread_once(&dummy_once, dummy_init);
	return dummy_hash;
}

/* ------------------------------------------------------------------ */
/* Failed-authentication limits                                         */
/* ------------------------------------------------------------------ */

static void fail_key(const char *kind, const char *who, char *out, size_t size)
{
	unsigned char md[32];
	char hex[65];

	/* hashed: bounded keys whatever the client sends */
	gw_sha256(who, strlen(who), md);
	gw_hex(md, 16, hex);
	snprintf(out, size, FAIL_PREFIX "%s:%s", kind, hex);
}

void gw_auth_count(struct gw *g, const char *result)
{
	vg_counter_inc(vg_metric_labels(g->m.auth, result));
}

int gw_auth_limit_check(struct gw_rctx *rc, const char *user)
{
	struct gw *g = rc->g;
	char kip[96], kuser[96];
	redisReply *rep = NULL, *ttl = NULL;
	struct vg_err err = {0};
	int limited = -1, r;
	char retry[32];

	/* a bearer credential from an address Redis cleared a moment ago,
	 * while Redis is known to be up (fail closed: no Redis, no limits,
	 * no authentication) */
	if (!user && atomic_load(&g->redis_ok) &&
	    gw_authcache_addr_clear(g->authcache, rc->client))
		return 0;
	fail_key("ip", rc->client, kip, sizeof(kip));
	fail_key("user", user ? user : "", kuser, sizeof(kuser));
	r = gw_redis_cmd(g->redis, &rep, &err, "MGET", kip, kuser, NULL);
	if (r != VG_OK) {
		gw_reply_failure(rc, r, &err);
		return -1;
	}
	for (size_t i = 0; i < rep->elements && i < 2; i++) {
		redisReply *e = rep->element[i];

		if (i == 1 && !user)
			break;
		if (e->type == REDIS_REPLY_STRING &&
		    strtoll(e->str, NULL, 10) >= g->cfg->auth_fail_limit)
			limited = (int)i;
	}
	freeReplyObject(rep);
	if (limited < 0) {
		gw_authcache_addr_note(g->authcache, rc->client, 1);
		return 0;
	}
	r = gw_redis_cmd(g->redis, &ttl, NULL, "TTL", limited ? kuser : kip,
	                 NULL);
	snprintf(retry, sizeof(retry), "%lld",
	         r == VG_OK && ttl->type == REDIS_REPLY_INTEGER &&
	                         ttl->integer > 0
	                 ? ttl->integer
	                 : (long long)g->cfg->auth_fail_window_s);
	freeReplyObject(ttl);
	gw_auth_count(g, "rate_limited");
	srv_resp_header(rc->resp, "Retry-After", retry);
	gw_reply_error(rc, 429, "rate_limited",
	               "too many failed authentication attempts; retry later");
	gw_rlog(rc, VG_LOG_WARN, "authentication rate limited", "client",
	        rc->client, NULL);
	return -1;
}

static void fail_incr(struct gw *g, const char *key)
{
	char win[16];

	snprintf(win, sizeof(win), "%d", g->cfg->auth_fail_window_s);
	/* the window starts with the first failure; SET NX first so the
	 * key never lives without its expiry */
	gw_redis_cmd(g->redis, NULL, NULL, "SET", key, "0", "EX", win, "NX",
	             NULL);
	gw_redis_cmd(g->redis, NULL, NULL, "INCR", key, NULL);
}

void gw_auth_limit_fail(struct gw_rctx *rc, const char *user)
{
	char key[96];

	gw_authcache_addr_note(rc->g->authcache, rc->client, 0);
	fail_key("ip", rc->client, key, sizeof(key));
	fail_incr(rc->g, key);
	if (user) {
		fail_key("user", user, key, sizeof(key));
		fail_incr(rc->g, key);
	}
}

void gw_auth_limit_reset_user(struct gw_rctx *rc, const char *user)
{
	char key[96];

	fail_key("user", user, key, sizeof(key));
	gw_redis_cmd(rc->g->redis, NULL, NULL, "DEL", key, NULL);
}

/* ------------------------------------------------------------------ */
/* Bearer credentials                                                   */
/* ------------------------------------------------------------------ */

static const struct vg_db_stmt st_key_by_prefix = {
	.name = "gw_api_key_by_prefix",
	.sql = "SELECT id, tenant_id, tenant_name, role, encode(hash, 'hex'),"
	       " stale, (extract(epoch FROM expires_at) * 1000)::bigint"
	       " FROM vigil.api_key_by_prefix($1)",
	.nparams = 1,
};

static const struct vg_db_stmt st_user_bindings = {
	.name = "gw_user_bindings",
	.sql = "SELECT tenant_id, tenant_name, role"
	       " FROM vigil.user_bindings($1)",
	.nparams = 1,
};

static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return s[2 * n] == '\0' ? 0 : -1;
}

static int touch_key(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	const char *p[] = {arg};

	return vg_db_exec(c,
	                  "UPDATE api_keys SET last_used_at = now()"
	                  " WHERE id = $1",
	                  1, p, NULL, err);
}

/* VG_OK, VG_UNAUTHORIZED, or a database failure. `md` is the token's
 * SHA-256. */
static int auth_api_key(struct gw_rctx *rc, const char *token,
                        const unsigned char md[32], struct vg_err *err)
{
	struct gw_principal *w = &rc->who;
	struct vg_db_conn *c = NULL;
	struct vg_db_res *res = NULL;
	unsigned char want[32];
	char prefix[13];
	const char *p[1] = {prefix}, *exp;
	int r, stale;

	if (strlen(token) != 12 + 1 + 43 || token[12] != '_')
		return VG_UNAUTHORIZED;
	if (gw_authcache_get(rc->g->authcache, md, w))
		return VG_OK;
	memcpy(prefix, token, 12);
	prefix[12] = '\0';
	if ((r = vg_db_acquire(rc->g->db, &c, err)) != VG_OK)
		return r;
	r = vg_db_exec_stmt(c, &st_key_by_prefix, p, &res, err);
	vg_db_release(c);
	if (r != VG_OK)
		return r;
	if (vg_db_res_rows(res) != 1 ||
	    unhex(vg_db_res_get(res, 0, 4), want, sizeof(want)) ||
	    CRYPTO_memcmp(want, md, sizeof(want)) != 0) {
		vg_db_res_free(res);
		return VG_UNAUTHORIZED;
	}
	w->kind = PRINC_API_KEY;
	snprintf(w->id, sizeof(w->id), "%s", vg_db_res_get(res, 0, 0));
	snprintf(w->subject, sizeof(w->subject), "%s", prefix);
	snprintf(w->actor, sizeof(w->actor), "apikey:%s", prefix);
	snprintf(w->b[0].tenant_id, sizeof(w->b[0].tenant_id), "%s",
	         vg_db_res_get(res, 0, 1));
	snprintf(w->b[0].tenant_name, sizeof(w->b[0].tenant_name), "%s",
	         vg_db_res_get(res, 0, 2));
	w->b[0].role = gw_role_parse(vg_db_res_get(res, 0, 3));
	w->nb = w->b[0].role == ROLE_NONE ? 0 : 1;
	stale = vg_db_res_get(res, 0, 5) && vg_db_res_get(res, 0, 5)[0] == 't';
	exp = vg_db_res_get(res, 0, 6);
	gw_authcache_put(rc->g->authcache, md, w,
	                 exp ? strtoll(exp, NULL, 10) : 0);
	vg_db_res_free(res);
	if (stale)
		vg_db_tx(rc->g->db, w->b[0].tenant_id, 0, touch_key, w->id,
		         NULL);
	return VG_OK;
}

static int auth_session(struct gw_rctx *rc, const char *token,
                        struct vg_err *err)
{
	struct gw_principal *w = &rc->who;
	struct vg_db_conn *c = NULL;
	struct vg_db_res *res = NULL;
	char user_id[40];
	const char *p[1] = {user_id};
	int r, rows;

	r = gw_session_lookup(rc->g, token, user_id, sizeof(user_id),
	                      w->subject, sizeof(w->subject), w->session_id,
	                      err);
	if (r == VG_NOTFOUND)
		return VG_UNAUTHORIZED;
	if (r != VG_OK)
		return r;
	if (!vg_db_is_uuid(user_id))
		return VG_UNAUTHORIZED;
	if ((r = vg_db_acquire(rc->g->db, &c, err)) != VG_OK)
		return r;
	r = vg_db_exec_stmt(c, &st_user_bindings, p, &res, err);
	vg_db_release(c);
	if (r != VG_OK)
		return r;
	w->kind = PRINC_SESSION;
	snprintf(w->id, sizeof(w->id), "%s", user_id);
	snprintf(w->actor, sizeof(w->actor), "user:%s", w->subject);
	rows = vg_db_res_rows(res);
	for (int i = 0; i < rows && w->nb < GW_MAX_BINDINGS; i++) {
		const char *tid = vg_db_res_get(res, i, 0);
		enum gw_role role = gw_role_parse(vg_db_res_get(res, i, 2));

		if (!tid) {
			w->platform_admin |= role == ROLE_PLATFORM_ADMIN;
			continue;
		}
		if (role == ROLE_NONE)
			continue;
		snprintf(w->b[w->nb].tenant_id, sizeof(w->b[0].tenant_id), "%s",
		         tid);
		snprintf(w->b[w->nb].tenant_name, sizeof(w->b[0].tenant_name),
		         "%s", vg_db_res_get(res, i, 1));
		w->b[w->nb++].role = role;
	}
	vg_db_res_free(res);
	return VG_OK;
}

static int printable_token(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > MAX_TOKEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (t[i] <= 0x20 || t[i] >= 0x7f)
			return 0;
	return 1;
}

static void unauthorized(struct gw_rctx *rc, const char *msg)
{
	srv_resp_header(rc->resp, "WWW-Authenticate", "Bearer realm=\"vigil\"");
	gw_reply_error(rc, 401, "unauthenticated", "%s", msg);
}

int gw_authenticate(struct gw_rctx *rc)
{
	struct gw *g = rc->g;
	char hdr[MAX_TOKEN + 16];
	const char *token;
	unsigned char md[32];
	struct vg_err err = {0};
	int r;

	memset(&rc->who, 0, sizeof(rc->who));
	if (!srv_req_header(rc->req, "authorization", hdr, sizeof(hdr)) ||
	    strncasecmp(hdr, "Bearer ", 7) != 0) {
		unauthorized(rc, "missing bearer credentials");
		return -1;
	}
	token = hdr + 7;
	while (*token == ' ')
		token++;
	if (!printable_token(token)) {
		unauthorized(rc, "malformed bearer credentials");
		return -1;
	}
	if (gw_auth_limit_check(rc, NULL))
		return -1;
	gw_sha256(token, strlen(token), md);
	if (g->has_bootstrap &&
	    CRYPTO_memcmp(md, g->bootstrap_hash, sizeof(md)) == 0) {
		rc->who.kind = PRINC_BOOTSTRAP;
		rc->who.platform_admin = 1;
		snprintf(rc->who.subject, sizeof(rc->who.subject), "bootstrap");
		snprintf(rc->who.actor, sizeof(rc->who.actor),
		         "apikey:bootstrap");
		gw_auth_count(g, "success");
		return 0;
	}
	if (strncmp(token, "vgk_", 4) == 0)
		r = auth_api_key(rc, token, md, &err);
	else if (strncmp(token, "vgs_", 4) == 0)
		r = auth_session(rc, token, &err);
	else
		r = VG_UNAUTHORIZED;
	if (r == VG_OK) {
		gw_auth_count(g, "success");
		return 0;
	}
	if (r != VG_UNAUTHORIZED) {
		gw_reply_failure(rc, r, &err);
		return -1;
	}
	gw_auth_limit_fail(rc, NULL);
	gw_auth_count(g, "failure");
	gw_rlog(rc, VG_LOG_INFO, "authentication failed", "client", rc->client,
	        NULL);
	unauthorized(rc, "invalid, expired or revoked credentials");
	return -1;
}
