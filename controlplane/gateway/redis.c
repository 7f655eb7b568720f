/*
 * redis.c - a small pool of hiredis connections for the request path.
 *
 * A connection that fails (server gone, timeout) is dropped and the next
 * command connects again, so the gateway recovers by itself once Redis is
 * back. Commands take strings only (redisCommandArgv): nothing from a
 * request is ever interpreted as a format.
 */
#include "gateway.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 1000
#define MAX_ARGS   16

struct gw_redis {
	char *host;
	int port, db;
	char *user, *password;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	redisContext **idle;
	int nidle, open, max;
};

int gw_redis_new(const struct gw_config *c, struct gw_redis **out,
                 struct vg_err *err)
{
	struct gw_redis *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	r->max = c->redis_pool_max > 0 ? c->redis_pool_max : 8;
	r->host = strdup(c->redis_host ? c->redis_host : "localhost");
	r->user = c->redis_user ? strdup(c->redis_user) : NULL;
	r->password = c->redis_password ? strdup(c->redis_password) : NULL;
	r->idle = calloc((size_t)r->max, sizeof(*r->idle));
	r->port = c->redis_port;
	r->db = c->redis_db;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (!r->host || !r->idle || (c->redis_user && !r->user) ||
	    (c->redis_password && !r->password)) {
		gw_redis_free(r);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	*out = r;
	return VG_OK;
}

void gw_redis_free(struct gw_redis *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nidle; i++)
		redisFree(r->idle[i]);
	free(r->idle);
	free(r->host);
	free(r->user);
	if (r->password)
		memset(r->password, 0, strlen(r->password));
	free(r->password);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r);
}

static int reply_ok(redisContext *ctx, redisReply *rep, struct vg_err *err,
                    const char *what)
{
	int rc = VG_OK;

	if (!rep)
		rc = vg_err_set(err, VG_IO, "redis %s: %s", what, ctx->errstr);
	else if (rep->type == REDIS_REPLY_ERROR)
		rc = vg_err_set(err, VG_REDIS, "redis %s: %s", what, rep->str);
	freeReplyObject(rep);
	return rc;
}

static int connect_one(struct gw_redis *r, redisContext **out,
                       struct vg_err *err)
{
	struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
	redisContext *ctx = redisConnectWithTimeout(r->host, r->port, tv);
	int rc;

	if (!ctx)
		return vg_err_set(err, VG_NOMEM, "redis: out of memory");
	if (ctx->err) {
		rc = vg_err_set(err, VG_IO, "redis connect %s:%d: %s", r->host,
		                r->port, ctx->errstr);
		redisFree(ctx);
		return rc;
	}
	redisSetTimeout(ctx, tv);
	if (r->password) {
		redisReply *rep =
			r->user ? redisCommand(ctx, "AUTH %s %s", r->user,
		                               r->password)
				: redisCommand(ctx, "AUTH %s", r->password);

		if ((rc = reply_ok(ctx, rep, err, "AUTH")) != VG_OK) {
			redisFree(ctx);
			return rc;
		}
	}
	if (r->db) {
		redisReply *rep = redisCommand(ctx, "SELECT %d", r->db);

		if ((rc = reply_ok(ctx, rep, err, "SELECT")) != VG_OK) {
			redisFree(ctx);
			return rc;
		}
	}
	*out = ctx;
	return VG_OK;
}

/* `reused`: 1 when the connection was idle in the pool (it may have died
 * meanwhile), 0 when it was just opened. */
static int acquire(struct gw_redis *r, redisContext **out, int *reused,
                   struct vg_err *err)
{
	int rc;

	*reused = 0;
	pthread_mutex_lock(&r->mu);
	while (r->nidle == 0 && r->open >= r->max)
		pthread_cond_wait(&r->cond, &r->mu);
	if (r->nidle > 0) {
		*out = r->idle[--r->nidle];
		*reused = 1;
		pthread_mutex_unlock(&r->mu);
		return VG_OK;
	}
	r->open++;
	pthread_mutex_unlock(&r->mu);
	rc = connect_one(r, out, err);
	if (rc != VG_OK) {
		pthread_mutex_lock(&r->mu);
		r->open--;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&r->mu);
	}
	return rc;
}

static void release(struct gw_redis *r, redisContext *ctx, int broken)
{
	pthread_mutex_lock(&r->mu);
	if (broken || ctx->err) {
		redisFree(ctx);
		r->open--;
	} else {
		r->idle[r->nidle++] = ctx;
	}
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* A pooled connection failed: Redis went away (a restart, a failover),
 * so the other idle ones are as dead. */
static void drop_idle(struct gw_redis *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->nidle > 0) {
		redisFree(r->idle[--r->nidle]);
		r->open--;
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

int gw_redis_cmd(struct gw_redis *r, redisReply **out, struct vg_err *err,
                 const char *arg0, ...)
{
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS];
	int argc = 0, rc;
	redisContext *ctx = NULL;
	redisReply *rep;
	va_list ap;

	if (out)
		*out = NULL;
	va_start(ap, arg0);
	for (const char *a = arg0; a && argc < MAX_ARGS;
	     a = va_arg(ap, const char *)) {
		argv[argc] = a;
		lens[argc] = strlen(a);
		argc++;
	}
	va_end(ap);
	/* a connection that died while idle is replaced once by a new one
	 * (the command may then run twice if only its reply was lost: the
	 * gateway's commands tolerate that) */
	for (int attempt = 0;; attempt++) {
		int reused;

		if ((rc = acquire(r, &ctx, &reused, err)) != VG_OK)
			return rc;
		rep = redisCommandArgv(ctx, argc, argv, lens);
		if (rep)
			break;
		rc = vg_err_set(err, VG_IO, "redis %s: %s", arg0, ctx->errstr);
		release(r, ctx, 1);
		if (!reused || attempt > 0)
			return rc;
		drop_idle(r);
	}
	release(r, ctx, 0);
	if (rep->type == REDIS_REPLY_ERROR) {
		rc = vg_err_set(err, VG_REDIS, "redis %s: %s", arg0, rep->str);
		freeReplyObject(rep);
		return rc;
	}
	if (out)
		*out = rep;
	else
		freeReplyObject(rep);
	return VG_OK;
}
