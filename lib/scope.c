/* scope.c - target lists, authorised scopes and port specs (see scope.h).
 *
 * Every address item is an inclusive range [lo, hi] of one family, held
 * internally as a 128-bit integer; questions about unions (covers, count,
 * enumerate) run on the sorted, merged list of those ranges ("spans"). */
#include "vigil/scope.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

__extension__ typedef unsigned __int128 u128;

#define ITEM_MAX 253 /* longest item: a host name */

struct vg_scope_span {
	int family;
	u128 lo, hi;
};

static u128 to_u128(const struct vg_addr *a)
{
	int n = a->family == AF_INET ? 4 : 16;
	u128 v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | a->b[i];
	return v;
}

static void from_u128(int family, u128 v, struct vg_addr *a)
{
	int n = family == AF_INET ? 4 : 16;

	memset(a, 0, sizeof(*a));
	a->family = family;
	for (int i = n - 1; i >= 0; i--) {
		a->b[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static u128 family_max(int family)
{
	return family == AF_INET ? (u128)0xffffffffu : ~(u128)0;
}

/* hi - lo + 1, saturating at UINT64_MAX */
static uint64_t span_size(u128 lo, u128 hi)
{
	u128 d = hi - lo;

	return d >= (u128)UINT64_MAX ? UINT64_MAX : (uint64_t)d + 1;
}

int vg_addr_parse(const char *s, struct vg_addr *out)
{
	struct vg_addr a;

	memset(&a, 0, sizeof(a));
	if (!s || !*s)
		return VG_PARSE;
	if (!strchr(s, ':')) {
		/* a.b.c.d, decimal octets without leading zeros (which
		 * inet_aton would read as octal) */
		for (const char *p = s; *p; p++)
			if (*p == '0' && (p == s || p[-1] == '.') &&
			    p[1] >= '0' && p[1] <= '9')
				return VG_PARSE;
		if (inet_pton(AF_INET, s, a.b) != 1)
			return VG_PARSE;
		a.family = AF_INET;
	} else {
		if (inet_pton(AF_INET6, s, a.b) != 1)
			return VG_PARSE;
		a.family = AF_INET6;
	}
	if (out)
		*out = a;
	return VG_OK;
}

const char *vg_addr_str(const struct vg_addr *a, char *buf, size_t n)
{
	if (!inet_ntop(a->family, a->b, buf, (socklen_t)n) && n)
		buf[0] = '\0';
	return buf;
}

int vg_addr_cmp(const struct vg_addr *a, const struct vg_addr *b)
{
	u128 x, y;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	x = to_u128(a);
	y = to_u128(b);
	return x < y ? -1 : x > y;
}

int vg_addr_unmap(const struct vg_addr *a, struct vg_addr *v4)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0,
					   0, 0, 0, 0, 0xff, 0xff};

	if (a->family != AF_INET6 || memcmp(a->b, prefix, 12) != 0)
		return 0;
	if (v4) {
		memset(v4, 0, sizeof(*v4));
		v4->family = AF_INET;
		memcpy(v4->b, a->b + 12, 4);
	}
	return 1;
}

/* --- forbidden addresses ------------------------------------------------ */

static const struct forbidden {
	const char *lo, *hi;
	int loopback; /* allowed by VG_SCOPE_ALLOW_LOOPBACK */
	const char *why;
} forbidden[] = {
	{"169.254.0.0", "169.254.255.255", 0,
	 "link-local 169.254.0.0/16 (cloud metadata)"},
	{"::ffff:169.254.0.0", "::ffff:169.254.255.255", 0,
	 "IPv4-mapped link-local ::ffff:169.254.0.0/112 (cloud metadata)"},
	{"64:ff9b::169.254.0.0", "64:ff9b::169.254.255.255", 0,
	 "NAT64 link-local 64:ff9b::169.254.0.0/112 (cloud metadata)"},
	{"fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0,
	 "link-local fe80::/10"},
	{"fd00:ec2::254", "fd00:ec2::254", 0, "cloud metadata fd00:ec2::254"},
	{"127.0.0.0", "127.255.255.255", 1, "loopback 127.0.0.0/8"},
	{"0.0.0.0", "0.255.255.255", 1, "this host 0.0.0.0/8"},
	{"::1", "::1", 1, "loopback ::1"},
	{"::", "::", 1, "unspecified address ::"},
	{"::ffff:127.0.0.0", "::ffff:127.255.255.255", 1,
	 "IPv4-mapped loopback ::ffff:127.0.0.0/104"},
	{"::ffff:0.0.0.0", "::ffff:0.255.255.255", 1,
	 "IPv4-mapped this host ::ffff:0.0.0.0/104"},
	{"64:ff9b::127.0.0.0", "64:ff9b::127.255.255.255", 1,
	 "NAT64 loopback 64:ff9b::127.0.0.0/104"},
};

#define NFORBIDDEN (sizeof(forbidden) / sizeof(forbidden[0]))

/* The first forbidden range [lo, hi] of `family` overlaps, or NULL. */
static const struct forbidden *forbidden_overlap(int family, u128 lo, u128 hi,
						 unsigned flags)
{
	if (flags & VG_SCOPE_ANY_ADDRESS)
		return NULL;
	for (size_t i = 0; i < NFORBIDDEN; i++) {
		const struct forbidden *f = &forbidden[i];
		struct vg_addr a, b;

		if (f->loopback && (flags & VG_SCOPE_ALLOW_LOOPBACK))
			continue;
		if (vg_addr_parse(f->lo, &a) || vg_addr_parse(f->hi, &b) ||
		    a.family != family)
			continue;
		if (lo <= to_u128(&b) && to_u128(&a) <= hi)
			return f;
	}
	return NULL;
}

int vg_addr_forbidden(const struct vg_addr *a, unsigned flags,
		      const char **why)
{
	u128 v = to_u128(a);
	const struct forbidden *f = forbidden_overlap(a->family, v, v, flags);

	if (f && why)
		*why = f->why;
	return f != NULL;
}

/* "localhost" and names below it are loopback by definition (RFC 6761) */
static int host_is_loopback(const char *name)
{
	size_t n = strlen(name);

	return strcmp(name, "localhost") == 0 ||
	       (n > 10 && strcmp(name + n - 10, ".localhost") == 0);
}

/* --- items ------------------------------------------------------------- */

/* NULL when `s` is a lower-case RFC 1123 host name, else the problem. */
static const char *host_problem(const char *s)
{
	size_t n = strlen(s), label = 0;
	int numeric = 1;

	if (n == 0 || n > 253)
		return "a host name has 1 to 253 characters";
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "empty label in host name";
			if (s[i - 1] == '-')
				return "a host name label may not end with '-'";
			label = 0;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			return "host names must be lower-case";
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return "not an IP address, CIDR, range or host name";
		if (c == '-' && label == 0)
			return "a host name label may not start with '-'";
		if (c < '0' || c > '9')
			numeric = 0;
		if (++label > 63)
			return "a host name label has at most 63 characters";
	}
	if (numeric)
		return "not a valid IPv4 address";
	return NULL;
}

static void item_free(struct vg_scope_item *it)
{
	free(it->name);
	free(it->text);
	memset(it, 0, sizeof(*it));
}

/* A dash makes `s` a range when an address precedes it or the item has a
 * colon (IPv6): "10.0.0.1-10.0.0.9", not "web-1.example.com". Copies the
 * part before the dash into `buf` (ITEM_MAX + 1 bytes). */
static int is_range(const char *s, const char *dash, char *buf)
{
	memcpy(buf, s, (size_t)(dash - s));
	buf[dash - s] = '\0';
	return strchr(s, ':') || vg_addr_parse(buf, NULL) == 0;
}

/* Parse the NUL-terminated item `s` into `it` (text not set). */
static int parse_item(const char *s, unsigned flags, struct vg_scope_item *it,
		      struct vg_err *err)
{
	char buf[ITEM_MAX + 1];
	const char *slash = strchr(s, '/'), *dash = strchr(s, '-'), *why;
	const struct forbidden *f;
	struct vg_addr lo, hi;
	u128 l, h;

	memset(it, 0, sizeof(*it));
	if (strlen(s) > ITEM_MAX)
		return vg_err_set(err, VG_PARSE,
				  "target \"%.40s...\": longer than %d "
				  "characters",
				  s, ITEM_MAX);
	if (slash) {
		const char *p = slash + 1;
		long bits = 0;
		int maxbits;
		u128 mask;

		memcpy(buf, s, (size_t)(slash - s));
		buf[slash - s] = '\0';
		if (vg_addr_parse(buf, &lo))
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": \"%s\" is not an IP "
					  "address",
					  s, buf);
		maxbits = lo.family == AF_INET ? 32 : 128;
		if (!*p || (p[0] == '0' && p[1]) || strlen(p) > 3 ||
		    strspn(p, "0123456789") != strlen(p))
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": malformed prefix "
					  "length",
					  s);
		bits = strtol(p, NULL, 10);
		if (bits > maxbits)
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": prefix length %ld "
					  "exceeds %d",
					  s, bits, maxbits);
		l = to_u128(&lo);
		mask = bits == maxbits ? 0 : family_max(lo.family) >> bits;
		h = l | mask;
		if (l & mask)
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": CIDR has host bits "
					  "set",
					  s);
		from_u128(lo.family, h, &hi);
	} else if (dash && is_range(s, dash, buf)) {
		if (vg_addr_parse(buf, &lo))
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": \"%s\" is not an IP "
					  "address",
					  s, buf);
		if (vg_addr_parse(dash + 1, &hi))
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": \"%s\" is not an IP "
					  "address",
					  s, dash + 1);
		if (lo.family != hi.family)
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": a range's ends must "
					  "be of one address family",
					  s);
		if (to_u128(&lo) > to_u128(&hi))
			return vg_err_set(err, VG_PARSE,
					  "target \"%s\": range start is after "
					  "its end",
					  s);
	} else if (vg_addr_parse(s, &lo) == 0) {
		hi = lo;
	} else if (strchr(s, ':')) {
		return vg_err_set(err, VG_PARSE,
				  "target \"%s\": not a valid IPv6 address", s);
	} else {
		const char *name = s;

		it->kind = VG_SCOPE_HOST;
		if (s[0] == '*') {
			if (!(flags & VG_SCOPE_WILDCARD))
				return vg_err_set(err, VG_PARSE,
						  "target \"%s\": wildcards "
						  "are allowed only in "
						  "authorised scopes",
						  s);
			if (s[1] != '.')
				return vg_err_set(err, VG_PARSE,
						  "target \"%s\": a wildcard "
						  "is written *.domain",
						  s);
			name = s + 2;
			it->kind = VG_SCOPE_SUFFIX;
		}
		if ((why = host_problem(name)))
			return vg_err_set(err, VG_PARSE, "target \"%s\": %s", s,
					  why);
		if (!(flags & (VG_SCOPE_ANY_ADDRESS |
			       VG_SCOPE_ALLOW_LOOPBACK)) &&
		    (host_is_loopback(name) ||
		     (it->kind == VG_SCOPE_SUFFIX &&
		      strcmp(name, "localhost") == 0)))
			return vg_err_set(err, VG_FORBIDDEN,
					  "target \"%s\": loopback host name "
					  "refused (allow loopback to scan it)",
					  s);
		it->name = it->kind == VG_SCOPE_SUFFIX ? strdup(s + 1)
						       : strdup(s);
		if (!it->name)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		return VG_OK;
	}
	it->kind = VG_SCOPE_RANGE;
	it->lo = lo;
	it->hi = hi;
	f = forbidden_overlap(lo.family, to_u128(&lo), to_u128(&hi), flags);
	if (f)
		return vg_err_set(err, VG_FORBIDDEN,
				  "target \"%s\": overlaps %s, which is never "
				  "scanned%s",
				  s, f->why,
				  f->loopback ? " unless loopback is allowed"
					      : "");
	return VG_OK;
}

void vg_scope_init(struct vg_scope *s)
{
	memset(s, 0, sizeof(*s));
}

void vg_scope_cleanup(struct vg_scope *s)
{
	for (size_t i = 0; i < s->n; i++)
		item_free(&s->items[i]);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

static int push(struct vg_scope *s, struct vg_scope_item *it,
		struct vg_err *err)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct vg_scope_item *p = realloc(s->items, cap * sizeof(*p));

		if (!p) {
			item_free(it);
			return vg_err_set(err, VG_NOMEM, "out of memory");
		}
		s->items = p;
		s->cap = cap;
	}
	s->items[s->n++] = *it;
	return VG_OK;
}

int vg_scope_add(struct vg_scope *s, const char *item, unsigned flags,
		 struct vg_err *err)
{
	struct vg_scope_item it;
	int rc;

	if (!item || !*item)
		return vg_err_set(err, VG_PARSE, "empty target");
	rc = parse_item(item, flags, &it, err);
	if (rc) {
		item_free(&it);
		return rc;
	}
	it.text = strdup(item);
	if (!it.text) {
		item_free(&it);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	return push(s, &it, err);
}

int vg_scope_add_addr(struct vg_scope *s, const struct vg_addr *a,
		      struct vg_err *err)
{
	struct vg_scope_item it = {.kind = VG_SCOPE_RANGE, .lo = *a, .hi = *a};
	char buf[VG_ADDR_STRLEN];

	it.text = strdup(vg_addr_str(a, buf, sizeof(buf)));
	if (!it.text)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return push(s, &it, err);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int vg_scope_parse(struct vg_scope *s, const char *list, unsigned flags,
		   struct vg_err *err)
{
	size_t start = s->n;
	const char *p = list;
	char buf[ITEM_MAX + 2];
	int rc = VG_OK;

	if (!list)
		return VG_OK;
	while (is_space(*p))
		p++;
	if (!*p)
		return VG_OK;
	for (;;) {
		const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);
		const char *a = p, *b = end;
		size_t len;

		while (a < b && is_space(*a))
			a++;
		while (b > a && is_space(b[-1]))
			b--;
		len = (size_t)(b - a);
		if (len == 0) {
			rc = vg_err_set(err, VG_PARSE,
					"empty target in list (stray comma)");
			break;
		}
		if (len > ITEM_MAX) {
			rc = vg_err_set(err, VG_PARSE,
					"target \"%.40s...\": longer than %d "
					"characters",
					a, ITEM_MAX);
			break;
		}
		memcpy(buf, a, len);
		buf[len] = '\0';
		if ((rc = vg_scope_add(s, buf, flags, err)))
			break;
		if (!e)
			break;
		p = e + 1;
	}
	if (rc)
		while (s->n > start)
			item_free(&s->items[--s->n]);
	return rc;
}

int vg_scope_parse_array(struct vg_scope *s, const char *const *items,
			 size_t n, unsigned flags, struct vg_err *err)
{
	size_t start = s->n;
	int rc = VG_OK;

	for (size_t i = 0; i < n && !rc; i++) {
		if (!items[i] || !*items[i])
			rc = vg_err_set(err, VG_PARSE, "target %zu is empty",
					i);
		else
			rc = vg_scope_parse(s, items[i], flags, err);
	}
	if (rc)
		while (s->n > start)
			item_free(&s->items[--s->n]);
	return rc;
}

/* --- questions about the union ------------------------------------------ */

static int range_in(const struct vg_scope_item *it, int family, u128 v)
{
	return it->kind == VG_SCOPE_RANGE && it->lo.family == family &&
	       to_u128(&it->lo) <= v && v <= to_u128(&it->hi);
}

int vg_scope_contains(const struct vg_scope *s, const struct vg_addr *a)
{
	struct vg_addr v4;
	int mapped = vg_addr_unmap(a, &v4);
	u128 v = to_u128(a), w = mapped ? to_u128(&v4) : 0;

	for (size_t i = 0; i < s->n; i++)
		if (range_in(&s->items[i], a->family, v) ||
		    (mapped && range_in(&s->items[i], AF_INET, w)))
			return 1;
	return 0;
}

/* `name` ends in suffix `suf` (".example.com") with at least one label
 * before it */
static int below(const char *name, const char *suf)
{
	size_t n = strlen(name), k = strlen(suf);

	return n > k && strcmp(name + n - k, suf) == 0;
}

int vg_scope_contains_host(const struct vg_scope *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct vg_scope_item *it = &s->items[i];

		if ((it->kind == VG_SCOPE_HOST && strcmp(it->name, name) == 0) ||
		    (it->kind == VG_SCOPE_SUFFIX && below(name, it->name)))
			return 1;
	}
	return 0;
}

static int span_cmp(const void *pa, const void *pb)
{
	const struct vg_scope_span *a = pa, *b = pb;

	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* The address items of `s`, sorted (IPv4 first) and merged where they
 * overlap or touch. *out is new (NULL when there are none). */
static int spans_of(const struct vg_scope *s, struct vg_scope_span **out,
		    size_t *nout)
{
	struct vg_scope_span *v = NULL;
	size_t n = 0, m = 0;

	*out = NULL;
	*nout = 0;
	for (size_t i = 0; i < s->n; i++)
		n += s->items[i].kind == VG_SCOPE_RANGE;
	if (n == 0)
		return VG_OK;
	v = calloc(n, sizeof(*v));
	if (!v)
		return VG_NOMEM;
	n = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->items[i].kind == VG_SCOPE_RANGE) {
			v[n].family = s->items[i].lo.family;
			v[n].lo = to_u128(&s->items[i].lo);
			v[n].hi = to_u128(&s->items[i].hi);
			n++;
		}
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n; i++) {
		if (m && v[m - 1].family == v[i].family &&
		    (v[m - 1].hi == family_max(v[i].family) ||
		     v[i].lo <= v[m - 1].hi + 1)) {
			if (v[i].hi > v[m - 1].hi)
				v[m - 1].hi = v[i].hi;
			continue;
		}
		v[m++] = v[i];
	}
	*out = v;
	*nout = m;
	return VG_OK;
}

int vg_scope_covers(const struct vg_scope *outer, const struct vg_scope *inner,
		    const struct vg_scope_item **uncovered)
{
	struct vg_scope_span *sp = NULL;
	size_t nsp = 0;
	int ok = 1;

	if (spans_of(outer, &sp, &nsp))
		ok = 0; /* out of memory: cover nothing */
	for (size_t i = 0; ok && i < inner->n; i++) {
		const struct vg_scope_item *it = &inner->items[i];
		int hit = 0;

		if (it->kind == VG_SCOPE_RANGE) {
			u128 lo = to_u128(&it->lo), hi = to_u128(&it->hi);

			for (size_t k = 0; k < nsp && !hit; k++)
				hit = sp[k].family == it->lo.family &&
				      sp[k].lo <= lo && hi <= sp[k].hi;
		} else if (it->kind == VG_SCOPE_HOST) {
			hit = vg_scope_contains_host(outer, it->name);
		} else {
			for (size_t k = 0; k < outer->n && !hit; k++)
				hit = outer->items[k].kind == VG_SCOPE_SUFFIX &&
				      (strcmp(outer->items[k].name, it->name) ==
					       0 ||
				       below(it->name, outer->items[k].name));
		}
		if (!hit) {
			ok = 0;
			if (uncovered)
				*uncovered = it;
		}
	}
	if (ok && uncovered)
		*uncovered = NULL;
	free(sp);
	return ok;
}

static int push_range(struct vg_scope *out, int family, u128 lo, u128 hi,
		      const char *text, struct vg_err *err)
{
	struct vg_scope_item it = {.kind = VG_SCOPE_RANGE};
	char a[VG_ADDR_STRLEN], b[VG_ADDR_STRLEN], buf[2 * VG_ADDR_STRLEN + 2];

	from_u128(family, lo, &it.lo);
	from_u128(family, hi, &it.hi);
	if (!text) {
		vg_addr_str(&it.lo, a, sizeof(a));
		vg_addr_str(&it.hi, b, sizeof(b));
		if (lo == hi)
			snprintf(buf, sizeof(buf), "%s", a);
		else
			snprintf(buf, sizeof(buf), "%s-%s", a, b);
		text = buf;
	}
	it.text = strdup(text);
	if (!it.text)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return push(out, &it, err);
}

int vg_scope_subtract(const struct vg_scope *targets,
		      const struct vg_scope *exclude, struct vg_scope *out,
		      struct vg_err *err)
{
	struct vg_scope_span *ex = NULL, *piece = NULL;
	size_t nex = 0, start = out->n;
	int rc = VG_OK;

	if (spans_of(exclude, &ex, &nex))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	/* the merged exclusions are disjoint, so one range breaks into at
	 * most nex + 1 pieces */
	piece = calloc(nex + 1, sizeof(*piece));
	if (!piece) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < targets->n && !rc; i++) {
		const struct vg_scope_item *it = &targets->items[i];
		int fam = it->lo.family, cut = 0;
		u128 lo, hi;
		size_t np = 0;

		if (it->kind == VG_SCOPE_HOST) {
			struct vg_scope_item c = {.kind = VG_SCOPE_HOST};

			if (vg_scope_contains_host(exclude, it->name))
				continue;
			c.name = strdup(it->name);
			c.text = strdup(it->text);
			if (!c.name || !c.text) {
				item_free(&c);
				rc = vg_err_set(err, VG_NOMEM, "out of memory");
			} else {
				rc = push(out, &c, err);
			}
			continue;
		}
		if (it->kind == VG_SCOPE_SUFFIX) {
			struct vg_scope_item c = {.kind = VG_SCOPE_SUFFIX};

			c.name = strdup(it->name);
			c.text = strdup(it->text);
			if (!c.name || !c.text) {
				item_free(&c);
				rc = vg_err_set(err, VG_NOMEM, "out of memory");
			} else {
				rc = push(out, &c, err);
			}
			continue;
		}
		lo = to_u128(&it->lo);
		hi = to_u128(&it->hi);
		/* walk the sorted exclusions left to right, emitting the gaps */
		for (size_t k = 0; k < nex && lo <= hi; k++) {
			if (ex[k].family != fam || ex[k].hi < lo)
				continue;
			if (ex[k].lo > hi)
				break;
			cut = 1;
			if (ex[k].lo > lo)
				piece[np++] = (struct vg_scope_span){
					fam, lo, ex[k].lo - 1};
			if (ex[k].hi >= hi)
				goto next; /* the rest is excluded */
			lo = ex[k].hi + 1;
		}
		piece[np++] = (struct vg_scope_span){fam, lo, hi};
next:
		for (size_t k = 0; k < np && !rc; k++)
			rc = push_range(out, fam, piece[k].lo, piece[k].hi,
					cut ? NULL : it->text, err);
	}
out:
	if (rc)
		while (out->n > start)
			item_free(&out->items[--out->n]);
	free(piece);
	free(ex);
	return rc;
}

uint64_t vg_scope_count(const struct vg_scope *s)
{
	struct vg_scope_span *sp = NULL;
	size_t n = 0;
	uint64_t total = 0;

	if (spans_of(s, &sp, &n))
		return UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		uint64_t k = span_size(sp[i].lo, sp[i].hi);

		total = total > UINT64_MAX - k ? UINT64_MAX : total + k;
	}
	free(sp);
	return total;
}

size_t vg_scope_nhosts(const struct vg_scope *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->items[i].kind == VG_SCOPE_HOST;
	return n;
}

/* --- enumeration ------------------------------------------------------- */

static void iter_seek(struct vg_scope_iter *it)
{
	uint64_t skip = it->first;

	it->span = 0;
	it->off = 0;
	it->done = 0;
	while (it->span < it->nspans) {
		const struct vg_scope_span *sp = &it->spans[it->span];
		uint64_t k = span_size(sp->lo, sp->hi);

		if (skip < k) {
			it->off = skip;
			return;
		}
		skip -= k;
		it->span++;
	}
}

int vg_scope_iter_init(struct vg_scope_iter *it, const struct vg_scope *s,
		       unsigned shard, unsigned nshards, uint64_t max,
		       struct vg_err *err)
{
	uint64_t total;
	u128 a, b;

	memset(it, 0, sizeof(*it));
	if (nshards == 0 || shard >= nshards)
		return vg_err_set(err, VG_INVAL,
				  "shard %u of %u: the index must be below the "
				  "number of shards",
				  shard, nshards);
	if (max == 0)
		max = VG_SCOPE_MAX_ENUM;
	total = vg_scope_count(s);
	if (total > max) {
		if (total == UINT64_MAX)
			return vg_err_set(err, VG_TOOLARGE,
					  "scope has more than 2^64 addresses; "
					  "at most %llu are enumerated",
					  (unsigned long long)max);
		return vg_err_set(err, VG_TOOLARGE,
				  "scope has %llu addresses; at most %llu "
				  "are enumerated",
				  (unsigned long long)total,
				  (unsigned long long)max);
	}
	if (spans_of(s, &it->spans, &it->nspans))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	a = (u128)total * shard / nshards;
	b = (u128)total * (shard + 1) / nshards;
	it->first = (uint64_t)a;
	it->count = (uint64_t)(b - a);
	iter_seek(it);
	return VG_OK;
}

int vg_scope_iter_next(struct vg_scope_iter *it, struct vg_addr *out)
{
	const struct vg_scope_span *sp;

	if (it->done >= it->count || it->span >= it->nspans)
		return 0;
	sp = &it->spans[it->span];
	from_u128(sp->family, sp->lo + it->off, out);
	it->done++;
	if (++it->off >= span_size(sp->lo, sp->hi)) {
		it->span++;
		it->off = 0;
	}
	return 1;
}

void vg_scope_iter_reset(struct vg_scope_iter *it)
{
	iter_seek(it);
}

uint64_t vg_scope_iter_count(const struct vg_scope_iter *it)
{
	return it->count;
}

void vg_scope_iter_cleanup(struct vg_scope_iter *it)
{
	free(it->spans);
	memset(it, 0, sizeof(*it));
}

unsigned vg_scope_host_shard(size_t k, unsigned nshards)
{
	return nshards ? (unsigned)(k % nshards) : 0;
}

/* --- ports ------------------------------------------------------------- */

/* A port number at *p: digits without a leading zero; advances *p. */
static int port_num(const char **p, long *v)
{
	const char *s = *p;
	long x = 0;
	int n = 0;

	if (*s == '0' && s[1] >= '0' && s[1] <= '9')
		return -1;
	while (*s >= '0' && *s <= '9') {
		if (x < 1000000)
			x = x * 10 + (*s - '0');
		s++;
		n++;
	}
	if (n == 0)
		return -1;
	*p = s;
	*v = x;
	return 0;
}

void vg_ports_cleanup(struct vg_ports *p)
{
	free(p->port);
	p->port = NULL;
	p->n = 0;
}

int vg_ports_parse(struct vg_ports *p, const char *spec, struct vg_err *err)
{
	uint8_t *bits = NULL;
	const char *s = spec;
	size_t n = 0;
	uint16_t *v = NULL;

	vg_ports_cleanup(p);
	if (!spec || !*spec)
		return vg_err_set(err, VG_PARSE, "empty port list");
	bits = calloc(65536 / 8, 1);
	if (!bits)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (;;) {
		const char *start = s, *end;
		long a, b;
		int len;

		end = strchr(s, ',');
		len = end ? (int)(end - s) : (int)strlen(s);
		if (port_num(&s, &a)) {
			free(bits);
			return vg_err_set(err, VG_PARSE,
					  "ports \"%.*s\": not a port number "
					  "or range (like 22 or 8000-8100)",
					  len > 40 ? 40 : len, start);
		}
		b = a;
		if (*s == '-') {
			s++;
			if (port_num(&s, &b)) {
				free(bits);
				return vg_err_set(err, VG_PARSE,
						  "ports \"%.*s\": malformed "
						  "range",
						  len > 40 ? 40 : len, start);
			}
		}
		if (*s != ',' && *s != '\0') {
			free(bits);
			return vg_err_set(err, VG_PARSE,
					  "ports \"%.*s\": unexpected character "
					  "'%c'",
					  len > 40 ? 40 : len, start, *s);
		}
		if (a < 1 || a > 65535 || b < 1 || b > 65535) {
			free(bits);
			return vg_err_set(err, VG_RANGE,
					  "ports \"%.*s\": ports are 1 to 65535",
					  len > 40 ? 40 : len, start);
		}
		if (a > b) {
			free(bits);
			return vg_err_set(err, VG_RANGE,
					  "ports \"%.*s\": range start is after "
					  "its end",
					  len > 40 ? 40 : len, start);
		}
		for (long x = a; x <= b; x++)
			bits[x / 8] |= (uint8_t)(1u << (x % 8));
		if (*s == '\0')
			break;
		s++;
		if (*s == '\0') {
			free(bits);
			return vg_err_set(err, VG_PARSE,
					  "ports \"%s\": trailing comma", spec);
		}
	}
	for (long x = 1; x <= 65535; x++)
		n += (bits[x / 8] >> (x % 8)) & 1;
	v = malloc(n * sizeof(*v));
	if (!v) {
		free(bits);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	n = 0;
	for (long x = 1; x <= 65535; x++)
		if ((bits[x / 8] >> (x % 8)) & 1)
			v[n++] = (uint16_t)x;
	free(bits);
	p->port = v;
	p->n = n;
	return VG_OK;
}
