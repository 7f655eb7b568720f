/*
 * scope.h - scan scopes: target lists, authorised scopes, port specs.
 *
 * A scope is a list of items, each one of
 *
 *   an address        192.0.2.7, 2001:db8::7
 *   a CIDR            192.0.2.0/24, 2001:db8::/120 (host bits must be zero)
 *   a range           192.0.2.10-192.0.2.50 (one family, first <= last)
 *   a host name       scanme.example.com (lower-case RFC 1123)
 *   a suffix          *.example.com (only with VG_SCOPE_WILDCARD): every
 *                     name below example.com, not example.com itself
 *
 * Addresses, CIDRs and ranges are all kept as inclusive ranges. Parsing
 * refuses items that overlap forbidden addresses unless the flags allow
 * them:
 *
 *   link-local   169.254.0.0/16 (cloud metadata 169.254.169.254),
 *                fe80::/10, fd00:ec2::254 (AWS metadata over IPv6)
 *   loopback     127.0.0.0/8, ::1, 0.0.0.0/8 and :: (they reach this
 *                host), the names localhost and *.localhost
 *
 * and the IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms
 * of the IPv4 ones. vg_addr_forbidden() applies the same rule to a single
 * address, e.g. one a host name resolved to.
 *
 *   struct vg_scope targets, allowed;
 *   const struct vg_scope_item *bad;
 *
 *   vg_scope_init(&targets);
 *   vg_scope_parse(&targets, "10.0.0.0/24,db.example.com", 0, &err);
 *   vg_scope_parse(&allowed, "10.0.0.0/16,*.example.com",
 *                  VG_SCOPE_WILDCARD | VG_SCOPE_ANY_ADDRESS, &err);
 *   if (!vg_scope_covers(&allowed, &targets, &bad))
 *           refuse(bad->text);
 *
 * Port specs are "22,80,443,8000-8100": ports 1-65535, ascending ranges,
 * no spaces; the parsed set is sorted and free of duplicates.
 */
#ifndef VG_SCOPE_H
#define VG_SCOPE_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/err.h"

/* A single IPv4 or IPv6 address, network byte order. */
struct vg_addr {
	int family;	/* AF_INET or AF_INET6 */
	uint8_t b[16];	/* AF_INET: b[0..3] */
};

/* Longest text of vg_addr_str (an IPv6 address), with its NUL. */
#define VG_ADDR_STRLEN 46

/* Parse a literal address (no brackets, no zone, no leading zeros in IPv4
 * octets). Returns 0 or VG_PARSE. */
int vg_addr_parse(const char *s, struct vg_addr *out);
/* `a` as text into `buf` (at least VG_ADDR_STRLEN bytes); returns buf. */
const char *vg_addr_str(const struct vg_addr *a, char *buf, size_t n);
/* -1, 0, 1: IPv4 before IPv6, then by value. */
int vg_addr_cmp(const struct vg_addr *a, const struct vg_addr *b);
/* 1 for an IPv6 address in ::ffff:0:0/96, and sets *v4 to the IPv4 form. */
int vg_addr_unmap(const struct vg_addr *a, struct vg_addr *v4);

/* Parse flags. */
#define VG_SCOPE_WILDCARD 0x1	    /* accept *.domain suffix items */
#define VG_SCOPE_ALLOW_LOOPBACK 0x2 /* loopback items are not refused */
#define VG_SCOPE_ANY_ADDRESS 0x4    /* no forbidden-address check at all
				       (authorised scopes, exclusions) */

/*
 * 1 when `a` must not be probed under `flags` (VG_SCOPE_ALLOW_LOOPBACK
 * permits loopback, VG_SCOPE_ANY_ADDRESS everything); *why (may be NULL)
 * then names the rule ("link-local 169.254.0.0/16 (cloud metadata)").
 */
int vg_addr_forbidden(const struct vg_addr *a, unsigned flags,
		      const char **why);

enum vg_scope_kind {
	VG_SCOPE_RANGE,	 /* address, CIDR or range */
	VG_SCOPE_HOST,	 /* one host name */
	VG_SCOPE_SUFFIX, /* every name ending in `name` (".example.com") */
};

struct vg_scope_item {
	enum vg_scope_kind kind;
	struct vg_addr lo, hi; /* VG_SCOPE_RANGE: first and last address */
	char *name;		/* HOST: the name; SUFFIX: ".example.com" */
	char *text;		/* the item as written, for messages */
};

/* Embedded by the caller: vg_scope_init() / vg_scope_cleanup(). */
struct vg_scope {
	struct vg_scope_item *items;
	size_t n, cap;
};

void vg_scope_init(struct vg_scope *s);
void vg_scope_cleanup(struct vg_scope *s);

/*
 * Parse one item and append it. Errors (VG_PARSE for malformed items,
 * VG_FORBIDDEN for forbidden addresses, VG_NOMEM) quote the item in
 * err->msg; the scope is unchanged on failure.
 */
int vg_scope_add(struct vg_scope *s, const char *item, unsigned flags,
		 struct vg_err *err);
/* Parse a comma-separated list (white space around items ignored; an empty
 * string is an empty list, an empty item an error) and append it. On
 * failure nothing is appended. */
int vg_scope_parse(struct vg_scope *s, const char *list, unsigned flags,
		   struct vg_err *err);
/* The same for an array of `n` items, each an item or a comma list. */
int vg_scope_parse_array(struct vg_scope *s, const char *const *items,
			 size_t n, unsigned flags, struct vg_err *err);
/* Append a copy of the single address `a` (no forbidden check). */
int vg_scope_add_addr(struct vg_scope *s, const struct vg_addr *a,
		      struct vg_err *err);

/* 1 when an address item of `s` holds `a` (an IPv4-mapped IPv6 address
 * also matches as its IPv4 form). */
int vg_scope_contains(const struct vg_scope *s, const struct vg_addr *a);
/* 1 when host name `name` is a HOST item of `s` or lies below a SUFFIX. */
int vg_scope_contains_host(const struct vg_scope *s, const char *name);

/*
 * 1 when `outer` covers every item of `inner`: each range lies inside the
 * union of outer's ranges, each host name is an outer HOST or below an
 * outer SUFFIX, each suffix is below an outer suffix. Otherwise 0 and
 * *uncovered (may be NULL) is the first item of `inner` that is not.
 */
int vg_scope_covers(const struct vg_scope *outer, const struct vg_scope *inner,
		    const struct vg_scope_item **uncovered);

/*
 * `out` (initialised, appended to) = `targets` minus `exclude`: ranges
 * with the excluded ranges cut out, host names without those an exclude
 * HOST or SUFFIX matches. Pieces of a cut range get text "first-last".
 */
int vg_scope_subtract(const struct vg_scope *targets,
		      const struct vg_scope *exclude, struct vg_scope *out,
		      struct vg_err *err);

/* Number of distinct addresses of `s` (overlaps counted once; host names
 * not counted), saturating at UINT64_MAX. */
uint64_t vg_scope_count(const struct vg_scope *s);
/* Number of HOST items of `s`. */
size_t vg_scope_nhosts(const struct vg_scope *s);

/* Largest scope vg_scope_iter_init enumerates by default: 2^24. */
#define VG_SCOPE_MAX_ENUM ((uint64_t)1 << 24)

struct vg_scope_span; /* private */

/* Deterministic enumeration of a scope's addresses: sorted (IPv4 first),
 * each once. Fields are private. */
struct vg_scope_iter {
	struct vg_scope_span *spans;
	size_t nspans;
	uint64_t first, count; /* this shard: positions [first, first+count) */
	size_t span;	       /* cursor */
	uint64_t off, done;
};

/*
 * Prepare to enumerate shard `shard` of `nshards` (0 <= shard < nshards):
 * the sorted addresses split into nshards contiguous runs whose sizes
 * differ by at most one. Fails with VG_TOOLARGE when the whole scope has
 * more than `max` addresses (0: VG_SCOPE_MAX_ENUM), VG_INVAL for a bad
 * shard. Host names are not enumerated: see vg_scope_host_shard.
 */
int vg_scope_iter_init(struct vg_scope_iter *it, const struct vg_scope *s,
		       unsigned shard, unsigned nshards, uint64_t max,
		       struct vg_err *err);
/* Next address into *out: 1, or 0 at the end of the shard. */
int vg_scope_iter_next(struct vg_scope_iter *it, struct vg_addr *out);
/* Back to the shard's first address. */
void vg_scope_iter_reset(struct vg_scope_iter *it);
/* Addresses in this shard. */
uint64_t vg_scope_iter_count(const struct vg_scope_iter *it);
void vg_scope_iter_cleanup(struct vg_scope_iter *it);

/* The shard the k-th HOST item of a scope (counting HOST items only, in
 * scope order) belongs to: k mod nshards. */
unsigned vg_scope_host_shard(size_t k, unsigned nshards);

/* A set of TCP ports, sorted ascending, no duplicates. */
struct vg_ports {
	uint16_t *port;
	size_t n;
};

/* Parse `spec` into `p` (replacing its content). Errors name the bad
 * element; VG_PARSE, VG_RANGE (0 or > 65535, descending range), VG_NOMEM. */
int vg_ports_parse(struct vg_ports *p, const char *spec, struct vg_err *err);
void vg_ports_cleanup(struct vg_ports *p);

#endif
