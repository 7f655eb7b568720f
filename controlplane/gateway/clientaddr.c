/*
 * clientaddr.c - the client's address behind trusted proxies.
 *
 * The per-address limit on failed authentication, the audit log's
 * source_ip and the logs want the client, not the ingress controller or
 * load balancer in front of the gateway. X-Forwarded-For is believed only
 * when the connection comes from a trusted proxy (VIGIL_TRUSTED_PROXIES,
 * CIDRs), and then read from the right: the first address that is not a
 * trusted proxy is the client, since anything further left was written by
 * the client itself.
 */
#include "gateway.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_addr(const char *s, size_t n, int *family,
                      unsigned char addr[16])
{
	char buf[64];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

int gw_proxies_parse(const char *list, struct gw_cidr *out, size_t max,
                     size_t *n, struct vg_err *err)
{
	const char *p = list ? list : "";

	*n = 0;
	while (*p) {
		size_t len, alen;
		const char *slash;
		struct gw_cidr c;
		long bits;
		char *end;

		p += strspn(p, " ,");
		len = strcspn(p, " ,");
		if (len == 0)
			break;
		slash = memchr(p, '/', len);
		alen = slash ? (size_t)(slash - p) : len;
		if (*n >= max || parse_addr(p, alen, &c.family, c.addr))
			return vg_err_set(err, VG_CONFIG,
			                  "VIGIL_TRUSTED_PROXIES: \"%.*s\" is "
			                  "not an address or CIDR",
			                  (int)len, p);
		bits = c.family == AF_INET ? 32 : 128;
		if (slash) {
			bits = strtol(slash + 1, &end, 10);
			if (end != p + len || slash + 1 == end || bits < 0 ||
			    bits > (c.family == AF_INET ? 32 : 128))
				return vg_err_set(err, VG_CONFIG,
				                  "VIGIL_TRUSTED_PROXIES: bad "
				                  "prefix in \"%.*s\"",
				                  (int)len, p);
		}
		c.bits = (int)bits;
		out[(*n)++] = c;
		p += len;
	}
	return VG_OK;
}

static int in_cidr(const struct gw_cidr *c, int family,
                   const unsigned char addr[16])
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (c->family != family || memcmp(c->addr, addr, (size_t)full))
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

static int trusted(const struct gw *g, int family, const unsigned char a[16])
{
	for (size_t i = 0; i < g->nproxies; i++)
		if (in_cidr(&g->proxies[i], family, a))
			return 1;
	return 0;
}

void gw_client_addr(const struct gw *g, const struct srv_req *req, char *out,
                    size_t size)
{
	unsigned char a[16];
	int family;
	size_t len = 0;
	const char *xff;

	snprintf(out, size, "%s", req->peer);
	if (g->nproxies == 0 ||
	    parse_addr(req->peer, strlen(req->peer), &family, a) ||
	    !trusted(g, family, a))
		return;
	xff = vg_http_head_get(req->head, "x-forwarded-for", &len);
	/* from the right: skip trusted proxies, stop at the first other */
	while (xff && len > 0) {
		size_t end = len, start;

		while (end > 0 && (xff[end - 1] == ' ' || xff[end - 1] == ','))
			end--;
		start = end;
		while (start > 0 && xff[start - 1] != ',' &&
		       xff[start - 1] != ' ')
			start--;
		if (end == start ||
		    parse_addr(xff + start, end - start, &family, a))
			return; /* garbage: keep the last address believed */
		snprintf(out, size, "%.*s", (int)(end - start), xff + start);
		if (!trusted(g, family, a))
			return;
		len = start;
	}
}
