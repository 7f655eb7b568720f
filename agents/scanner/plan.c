/* plan.c - scope enforcement before the first probe (see plan.h). */
#include "plan.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "vigil/log.h"

static const struct {
	const char *name;
	unsigned bit;
} scanner_names[] = {
	{"tcp", SCAN_TCP},
	{"banner", SCAN_BANNER},
	{"tls", SCAN_TLS},
	{"http", SCAN_HTTP},
};

int plan_scanners(const char *list, unsigned *out, struct vg_err *err)
{
	const char *p = list;

	*out = 0;
	if (!list || !*list)
		return vg_err_set(err, VG_PARSE, "no scanners given");
	for (;;) {
		size_t n = strcspn(p, ","), i;

		for (i = 0; i < sizeof(scanner_names) / sizeof(scanner_names[0]);
		     i++)
			if (strlen(scanner_names[i].name) == n &&
			    strncmp(p, scanner_names[i].name, n) == 0)
				break;
		if (i == sizeof(scanner_names) / sizeof(scanner_names[0]))
			return vg_err_set(err, VG_PARSE,
					  "unknown scanner \"%.*s\" (want tcp, "
					  "banner, tls or http)",
					  (int)(n > 40 ? 40 : n), p);
		*out |= scanner_names[i].bit;
		if (!p[n])
			break;
		p += n + 1;
	}
	/* every other check runs on the ports the connect scan found */
	*out |= SCAN_TCP;
	return VG_OK;
}

int plan_build(struct plan *p, const struct plan_input *in,
	       struct vg_err *err)
{
	const struct vg_scope_item *bad = NULL;
	size_t k = 0;
	int rc;

	memset(p, 0, sizeof(*p));
	vg_scope_init(&p->allowed);
	vg_scope_init(&p->targets);
	vg_scope_init(&p->exclude);
	vg_scope_init(&p->effective);
	p->scope_flags = in->allow_loopback ? VG_SCOPE_ALLOW_LOOPBACK : 0;
	if ((rc = vg_scope_parse(&p->allowed, in->allowed,
				 VG_SCOPE_WILDCARD | VG_SCOPE_ANY_ADDRESS,
				 err)))
		return vg_err_set(err, rc, "--allowed: %s", err->msg);
	if (p->allowed.n == 0)
		return vg_err_set(err, VG_INVAL,
				  "--allowed is empty: it authorises nothing");
	if ((rc = vg_scope_parse(&p->targets, in->targets, p->scope_flags,
				 err)))
		return vg_err_set(err, rc, "--targets: %s", err->msg);
	if (p->targets.n == 0)
		return vg_err_set(err, VG_INVAL, "--targets is empty");
	if ((rc = vg_scope_parse(&p->exclude, in->exclude,
				 VG_SCOPE_WILDCARD | VG_SCOPE_ANY_ADDRESS,
				 err)))
		return vg_err_set(err, rc, "--exclude: %s", err->msg);
	if (!vg_scope_covers(&p->allowed, &p->targets, &bad))
		return vg_err_set(err, VG_FORBIDDEN,
				  "target \"%s\" is outside the allowed scope",
				  bad ? bad->text : "?");
	if ((rc = vg_ports_parse(&p->ports, in->ports, err)))
		return vg_err_set(err, rc, "--ports: %s", err->msg);
	if ((rc = plan_scanners(in->scanners, &p->scanners, err)))
		return vg_err_set(err, rc, "--scanners: %s", err->msg);
	if ((rc = vg_scope_subtract(&p->targets, &p->exclude, &p->effective,
				    err)))
		return rc;
	if ((rc = vg_scope_iter_init(&p->iter, &p->effective, in->shard,
				     in->shards, 0, err)))
		return vg_err_set(err, rc, "--targets: %s", err->msg);
	p->names = calloc(vg_scope_nhosts(&p->effective) + 1, sizeof(char *));
	if (!p->names)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (size_t i = 0; i < p->effective.n; i++) {
		const struct vg_scope_item *it = &p->effective.items[i];

		if (it->kind != VG_SCOPE_HOST)
			continue;
		if (vg_scope_host_shard(k++, in->shards) == in->shard)
			p->names[p->nnames++] = it->name; /* borrowed */
	}
	return VG_OK;
}

int plan_admits(const struct plan *p, const struct vg_addr *a,
		const char **why)
{
	if (vg_addr_forbidden(a, p->scope_flags, why))
		return 0;
	if (vg_scope_contains(&p->exclude, a)) {
		*why = "excluded";
		return 0;
	}
	/* a host name in the allowed scope authorises the name, not whatever
	 * address its DNS returns: the address must be allowed too */
	if (!vg_scope_contains(&p->allowed, a)) {
		*why = "outside the allowed scope";
		return 0;
	}
	return 1;
}

static int add_resolved(struct plan *p, const struct vg_addr *a, int name)
{
	struct tcp_target *v;

	for (size_t i = 0; i < p->nresolved; i++)
		if (p->resolved[i].name == name &&
		    vg_addr_cmp(&p->resolved[i].addr, a) == 0)
			return 0; /* getaddrinfo repeats itself */
	v = realloc(p->resolved, (p->nresolved + 1) * sizeof(*v));
	if (!v)
		return -1;
	p->resolved = v;
	v[p->nresolved].addr = *a;
	v[p->nresolved].name = name;
	p->nresolved++;
	return 0;
}

int plan_resolve(struct plan *p, struct vg_err *err)
{
	for (size_t i = 0; i < p->nnames; i++) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(p->names[i], NULL, &hints, &res);

		if (rc) {
			vg_warn("host name does not resolve; skipped", "host",
				p->names[i], "err", gai_strerror(rc));
			continue;
		}
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			struct vg_addr a = {0};
			char buf[VG_ADDR_STRLEN];
			const char *why = NULL;

			if (ai->ai_family == AF_INET) {
				a.family = AF_INET;
				memcpy(a.b,
				       &((struct sockaddr_in *)ai->ai_addr)
						->sin_addr,
				       4);
			} else if (ai->ai_family == AF_INET6) {
				a.family = AF_INET6;
				memcpy(a.b,
				       &((struct sockaddr_in6 *)ai->ai_addr)
						->sin6_addr,
				       16);
			} else {
				continue;
			}
			if (!plan_admits(p, &a, &why)) {
				p->skipped++;
				vg_warn("resolved address refused; not probed",
					"host", p->names[i], "address",
					vg_addr_str(&a, buf, sizeof(buf)),
					"reason", why);
				continue;
			}
			if (add_resolved(p, &a, (int)i)) {
				freeaddrinfo(res);
				return vg_err_set(err, VG_NOMEM,
						  "out of memory");
			}
		}
		freeaddrinfo(res);
	}
	return VG_OK;
}

uint64_t plan_count(const struct plan *p)
{
	return vg_scope_iter_count(&p->iter) + p->nresolved;
}

void plan_cleanup(struct plan *p)
{
	vg_scope_iter_cleanup(&p->iter);
	vg_scope_cleanup(&p->allowed);
	vg_scope_cleanup(&p->targets);
	vg_scope_cleanup(&p->exclude);
	vg_scope_cleanup(&p->effective);
	vg_ports_cleanup(&p->ports);
	free(p->names);
	free(p->resolved);
	memset(p, 0, sizeof(*p));
}
