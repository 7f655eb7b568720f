/*
 * session.c - login sessions in Redis, shared by every gateway replica.
 *
 * The client holds a random 256-bit token; Redis holds only its HMAC under
 * the platform's session key (VIGIL_SESSION_KEY), so a copy of Redis
 * neither yields usable tokens nor lets anyone test guesses offline.
 *
 *   vigil:session:<id>   {"user_id","subject","created"}, EX idle TTL,
 *                        renewed on every use (sliding expiry)
 *   vigil:sessions       sorted set id -> expiry (ms), for the
 *                        vigil_active_sessions gauge across replicas
 *
 * A session also ends at its absolute lifetime (VIGIL_SESSION_MAX_AGE),
 * however active it is.
 */
#include "gateway.h"

#include "vigil/json.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_PREFIX "vigil:session:"
#define INDEX_KEY  "vigil:sessions"

static void session_id(const struct gw *g, const char *token, char *out)
{
	unsigned char md[32];
	unsigned int n = sizeof(md);

	HMAC(EVP_sha256(), g->session_key, sizeof(g->session_key),
	     (const unsigned char *)token, strlen(token), md, &n);
	gw_hex(md, 32, out);
}

static long long now_epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int index_touch(struct gw *g, const char *sid, struct vg_err *err)
{
	char score[32];

	snprintf(score, sizeof(score), "%lld",
	         now_epoch_ms() + (long long)g->cfg->session_ttl_s * 1000);
	return gw_redis_cmd(g->redis, NULL, err, "ZADD", INDEX_KEY, score, sid,
	                    NULL);
}

int gw_session_create(struct gw *g, const char *user_id, const char *subject,
                      char *token, size_t token_size, struct vg_err *err)
{
	char sid[65], key[sizeof(KEY_PREFIX) + 64], ttl[16];
	json_t *v;
	char *val;
	int rc;

	if ((rc = gw_random_token("vgs_", token, token_size)) != VG_OK)
		return vg_err_set(err, rc, "session token");
	session_id(g, token, sid);
	snprintf(key, sizeof(key), KEY_PREFIX "%s", sid);
	snprintf(ttl, sizeof(ttl), "%d", g->cfg->session_ttl_s);
	v = json_pack("{s:s, s:s, s:I}", "user_id", user_id, "subject", subject,
	              "created", (json_int_t)(now_epoch_ms() / 1000));
	val = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	if (!val)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = gw_redis_cmd(g->redis, NULL, err, "SET", key, val, "EX", ttl,
	                  NULL);
	free(val);
	if (rc == VG_OK)
		rc = index_touch(g, sid, err);
	if (rc == VG_OK && g->m.sessions)
		vg_gauge_inc(g->m.sessions);
	return rc;
}

int gw_session_lookup(struct gw *g, const char *token, char *user_id,
                      size_t uid_size, char *subject, size_t subj_size,
                      char *sid, struct vg_err *err)
{
	char key[sizeof(KEY_PREFIX) + 64], ttl[16];
	redisReply *rep = NULL;
	json_t *v = NULL;
	json_error_t jerr;
	long long created;
	int rc;

	session_id(g, token, sid);
	snprintf(key, sizeof(key), KEY_PREFIX "%s", sid);
	snprintf(ttl, sizeof(ttl), "%d", g->cfg->session_ttl_s);
	rc = gw_redis_cmd(g->redis, &rep, err, "GETEX", key, "EX", ttl, NULL);
	if (rc != VG_OK)
		return rc;
	if (rep->type != REDIS_REPLY_STRING) {
		freeReplyObject(rep);
		return vg_err_set(err, VG_NOTFOUND, "no such session");
	}
	v = json_loadb(rep->str, rep->len, 0, &jerr);
	freeReplyObject(rep);
	created = vg_json_get_int(v, "created", 0);
	if (!v || !json_is_string(json_object_get(v, "user_id")) ||
	    !json_is_string(json_object_get(v, "subject")) ||
	    created + g->cfg->session_max_s <= now_epoch_ms() / 1000) {
		json_decref(v);
		gw_session_delete(g, sid, NULL);
		return vg_err_set(err, VG_NOTFOUND, "session expired");
	}
	snprintf(user_id, uid_size, "%s", vg_json_get_str(v, "user_id", ""));
	snprintf(subject, subj_size, "%s", vg_json_get_str(v, "subject", ""));
	json_decref(v);
	/* the index only feeds a gauge: failing to touch it is no reason to
	 * refuse the request */
	index_touch(g, sid, NULL);
	return VG_OK;
}

int gw_session_delete(struct gw *g, const char *sid, struct vg_err *err)
{
	char key[sizeof(KEY_PREFIX) + 64];
	int rc;

	snprintf(key, sizeof(key), KEY_PREFIX "%s", sid);
	rc = gw_redis_cmd(g->redis, NULL, err, "DEL", key, NULL);
	if (rc == VG_OK)
		rc = gw_redis_cmd(g->redis, NULL, err, "ZREM", INDEX_KEY, sid,
		                  NULL);
	return rc;
}

int gw_session_count(struct gw *g, long long *n, struct vg_err *err)
{
	char now[32];
	redisReply *rep = NULL;
	int rc;

	snprintf(now, sizeof(now), "%lld", now_epoch_ms());
	rc = gw_redis_cmd(g->redis, NULL, err, "ZREMRANGEBYSCORE", INDEX_KEY,
	                  "-inf", now, NULL);
	if (rc == VG_OK)
		rc = gw_redis_cmd(g->redis, &rep, err, "ZCARD", INDEX_KEY,
		                  NULL);
	if (rc != VG_OK)
		return rc;
	*n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
	freeReplyObject(rep);
	return VG_OK;
}
