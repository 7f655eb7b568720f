/*
 * authcache.c - what the hot path remembers about credentials, briefly.
 *
 * Verified API keys: a direct-mapped table keyed by the SHA-256 of the
 * bearer token (the token itself is never kept), each entry the
 * principal the key lookup produced and a deadline: the configured TTL
 * (VIGIL_AUTH_CACHE_TTL_MS; 0 turns the table off), never past the key's
 * own expiry. A hit is compared in constant time over the whole digest.
 * Revoking a key drops it here at once and tells the other replicas over
 * Redis pub/sub (eventsub.c), which drop it too; a replica whose
 * subscription was interrupted empties its table when it subscribes
 * again, so a revocation it missed cannot outlive the reconnection.
 * Anything else (a tenant archived, an agent key the operator replaced
 * in the database) takes effect within the TTL.
 *
 * Client addresses: "not rate limited", as Redis said at most
 * ADDR_TTL_MS ago, so a busy client costs one Redis round trip per
 * second instead of one per request. A failure recorded on this replica
 * forgets the address at once; failures other replicas record are seen
 * within that second.
 */
#include "gateway.h"

#include "vigil/timeutil.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_SLOTS   1024 /* powers of two */
#define ADDR_SLOTS  1024
#define ADDR_TTL_MS 1000

struct key_slot {
	unsigned char md[32];
	int64_t until; /* monotonic ms; 0: empty */
	char id[40];
	char prefix[16];
	char tenant_id[40];
	char tenant_name[64];
	enum gw_role role;
};

struct addr_slot {
	char addr[64];
	int64_t until; /* monotonic ms; 0: empty */
};

struct gw_authcache {
	pthread_mutex_t mu;
	int ttl_ms;
	struct key_slot keys[KEY_SLOTS];
	struct addr_slot addrs[ADDR_SLOTS];
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw_authcache_new(int ttl_ms, struct gw_authcache **out)
{
	struct gw_authcache *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return VG_NOMEM;
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
	*out = c;
	return VG_OK;
}

void gw_authcache_free(struct gw_authcache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	OPENSSL_cleanse(c->keys, sizeof(c->keys));
	free(c);
}

static struct key_slot *key_slot(struct gw_authcache *c,
                                 const unsigned char md[32])
{
	/* the digest is uniform: its first bytes are the index */
	uint32_t h = (uint32_t)md[0] | (uint32_t)md[1] << 8 |
	             (uint32_t)md[2] << 16;

	return &c->keys[h & (KEY_SLOTS - 1)];
}

int gw_authcache_get(struct gw_authcache *c, const unsigned char md[32],
                     struct gw_principal *who)
{
	struct key_slot *s;
	int hit;

	if (!c || !c->ttl_ms)
		return 0;
	s = key_slot(c, md);
	pthread_mutex_lock(&c->mu);
	hit = s->until && vg_mono_ms() < s->until &&
	      CRYPTO_memcmp(s->md, md, sizeof(s->md)) == 0;
	if (hit) {
		who->kind = PRINC_API_KEY;
		snprintf(who->id, sizeof(who->id), "%s", s->id);
		snprintf(who->subject, sizeof(who->subject), "%s", s->prefix);
		snprintf(who->actor, sizeof(who->actor), "apikey:%s",
		         s->prefix);
		snprintf(who->b[0].tenant_id, sizeof(who->b[0].tenant_id), "%s",
		         s->tenant_id);
		snprintf(who->b[0].tenant_name, sizeof(who->b[0].tenant_name),
		         "%s", s->tenant_name);
		who->b[0].role = s->role;
		who->nb = s->role == ROLE_NONE ? 0 : 1;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void gw_authcache_put(struct gw_authcache *c, const unsigned char md[32],
                      const struct gw_principal *who, int64_t expires_ms)
{
	struct key_slot *s;
	int64_t ttl, now = vg_mono_ms();

	if (!c || !c->ttl_ms || who->kind != PRINC_API_KEY || who->nb > 1)
		return;
	ttl = c->ttl_ms;
	if (expires_ms > 0) { /* wall clock; the deadline is monotonic */
		int64_t left = expires_ms - wall_ms();

		if (left <= 0)
			return;
		if (left < ttl)
			ttl = left;
	}
	s = key_slot(c, md);
	pthread_mutex_lock(&c->mu);
	memcpy(s->md, md, sizeof(s->md));
	snprintf(s->id, sizeof(s->id), "%s", who->id);
	snprintf(s->prefix, sizeof(s->prefix), "%.15s", who->subject);
	snprintf(s->tenant_id, sizeof(s->tenant_id), "%s",
	         who->nb ? who->b[0].tenant_id : "");
	snprintf(s->tenant_name, sizeof(s->tenant_name), "%s",
	         who->nb ? who->b[0].tenant_name : "");
	s->role = who->nb ? who->b[0].role : ROLE_NONE;
	s->until = now + ttl;
	pthread_mutex_unlock(&c->mu);
}

void gw_authcache_drop_key(struct gw_authcache *c, const char *key_id)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < KEY_SLOTS; i++)
		if (c->keys[i].until && strcmp(c->keys[i].id, key_id) == 0)
			memset(&c->keys[i], 0, sizeof(c->keys[i]));
	pthread_mutex_unlock(&c->mu);
}

void gw_authcache_clear(struct gw_authcache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	memset(c->keys, 0, sizeof(c->keys));
	memset(c->addrs, 0, sizeof(c->addrs));
	pthread_mutex_unlock(&c->mu);
}

static struct addr_slot *addr_slot(struct gw_authcache *c, const char *addr)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &c->addrs[h & (ADDR_SLOTS - 1)];
}

int gw_authcache_addr_clear(struct gw_authcache *c, const char *addr)
{
	struct addr_slot *s;
	int ok;

	if (!c || !c->ttl_ms || strlen(addr) >= sizeof(s->addr))
		return 0;
	s = addr_slot(c, addr);
	pthread_mutex_lock(&c->mu);
	ok = s->until && vg_mono_ms() < s->until && strcmp(s->addr, addr) == 0;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

void gw_authcache_addr_note(struct gw_authcache *c, const char *addr,
                            int clear)
{
	struct addr_slot *s;

	if (!c || !c->ttl_ms || strlen(addr) >= sizeof(s->addr))
		return;
	s = addr_slot(c, addr);
	pthread_mutex_lock(&c->mu);
	if (clear) {
		snprintf(s->addr, sizeof(s->addr), "%s", addr);
		s->until = vg_mono_ms() + ADDR_TTL_MS;
	} else if (strcmp(s->addr, addr) == 0) {
		s->until = 0;
	}
	pthread_mutex_unlock(&c->mu);
}
