/* analysis.c - dedup by fingerprint, classification against the previous
 * run, risk per finding and per host. Strings and items live in one arena
 * per analysis: a report of 100,000 findings makes no 100,000 mallocs. */
#include "analysis.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Names                                                                */
/* ------------------------------------------------------------------ */

static const char *const sev_names[SEV_N] = {"info", "low", "medium", "high",
                                             "critical"};
static const char *const crit_names[CRIT_N] = {"low", "medium", "high",
                                               "critical"};
static const char *const class_names[CLASS_N] = {"new", "persisting",
                                                 "resolved", "regressed"};

const char *severity_name(enum severity s)
{
	return (unsigned)s < SEV_N ? sev_names[s] : "unknown";
}

int severity_parse(const char *s, enum severity *out)
{
	for (int i = 0; s && i < SEV_N; i++)
		if (strcmp(s, sev_names[i]) == 0) {
			*out = (enum severity)i;
			return VG_OK;
		}
	return VG_INVAL;
}

const char *criticality_name(enum criticality c)
{
	return (unsigned)c < CRIT_N ? crit_names[c] : "unknown";
}

int criticality_parse(const char *s, enum criticality *out)
{
	for (int i = 0; s && i < CRIT_N; i++)
		if (strcmp(s, crit_names[i]) == 0) {
			*out = (enum criticality)i;
			return VG_OK;
		}
	return VG_INVAL;
}

const char *class_name(enum finding_class c)
{
	return (unsigned)c < CLASS_N ? class_names[c] : "unknown";
}

/* ------------------------------------------------------------------ */
/* Exposure                                                             */
/* ------------------------------------------------------------------ */

static const struct {
	uint32_t net, mask;
} internal_v4[] = {
	{0x0A000000, 0xFF000000}, /* 10/8 */
	{0xAC100000, 0xFFF00000}, /* 172.16/12 */
	{0xC0A80000, 0xFFFF0000}, /* 192.168/16 */
	{0x7F000000, 0xFF000000}, /* 127/8 loopback */
	{0xA9FE0000, 0xFFFF0000}, /* 169.254/16 link-local */
	{0x64400000, 0xFFC00000}, /* 100.64/10 shared address space */
	{0x00000000, 0xFF000000}, /* 0/8 "this network" */
};

/* Names that never resolve on the internet. */
static const char *const internal_suffixes[] = {
	".local", ".localhost", ".internal", ".lan", ".home.arpa", ".svc",
	".intranet", ".corp"};

static int v4_internal(uint32_t a)
{
	for (size_t i = 0; i < sizeof(internal_v4) / sizeof(internal_v4[0]);
	     i++)
		if ((a & internal_v4[i].mask) == internal_v4[i].net)
			return 1;
	return 0;
}

static int name_internal(const char *h, size_t n)
{
	if (n && h[n - 1] == '.')
		n--;
	if (!memchr(h, '.', n))
		return 1; /* "localhost", single-label names */
	for (size_t i = 0;
	     i < sizeof(internal_suffixes) / sizeof(internal_suffixes[0]);
	     i++) {
		size_t k = strlen(internal_suffixes[i]);

		if (n > k &&
		    strncasecmp(h + n - k, internal_suffixes[i], k) == 0)
			return 1;
	}
	return 0;
}

int host_is_internal(const char *host)
{
	char buf[64];
	struct in_addr v4;
	struct in6_addr v6;
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n >= sizeof(buf))
		return name_internal(host, n);
	memcpy(buf, host, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &v4) == 1)
		return v4_internal(ntohl(v4.s_addr));
	if (inet_pton(AF_INET6, buf, &v6) == 1) {
		const unsigned char *b = v6.s6_addr;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
		                                         0, 0, 0, 0, 0xff, 0xff};
		static const unsigned char loop[16] = {0, 0, 0, 0, 0, 0, 0, 0,
		                                       0, 0, 0, 0, 0, 0, 0, 1};

		if (memcmp(b, mapped, 12) == 0)
			return v4_internal((uint32_t)b[12] << 24 |
			                   (uint32_t)b[13] << 16 |
			                   (uint32_t)b[14] << 8 | b[15]);
		return memcmp(b, loop, 16) == 0 || (b[0] & 0xfe) == 0xfc ||
		       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
	}
	return name_internal(host, n);
}

/* Remote administration, and data stores that should never face anyone
 * but their clients. */
static const int admin_ports[] = {
	21,   22,   23,    135,  139,   445,  1433, 1521, 2375,
	2376, 2379, 3306,  3389, 5432,  5900, 5984, 6379, 6443,
	9200, 9300, 10250, 11211, 27017, 5985, 5986};

int port_is_admin(int port)
{
	for (size_t i = 0; i < sizeof(admin_ports) / sizeof(admin_ports[0]);
	     i++)
		if (admin_ports[i] == port)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Risk                                                                 */
/* ------------------------------------------------------------------ */

static const double sev_weight[SEV_N] = {0.5, 2, 5, 8, 10};
static const double crit_weight[CRIT_N] = {0.75, 1, 1.5, 2};
#define INTERNET_FACTOR 1.5
#define ADMIN_FACTOR    1.25
#define AGE_CAP_DAYS    90.0
#define AGE_MAX_BONUS   0.5

static double round2(double x)
{
	return round(x * 100.0) / 100.0;
}

/* risk_score() with the host's exposure known. */
static double risk_of(const struct risk_input *in, int internal)
{
	double sev = sev_weight[(unsigned)in->severity < SEV_N ? in->severity
	                                                        : SEV_INFO];
	double crit = crit_weight[(unsigned)in->criticality < CRIT_N
	                                  ? in->criticality
	                                  : CRIT_MEDIUM];
	double exposure = 1.0, days = floor(in->age_days), age;

	if (!internal)
		exposure *= INTERNET_FACTOR;
	if (in->port >= 0 && port_is_admin(in->port))
		exposure *= ADMIN_FACTOR;
	if (!(days > 0)) /* also NaN */
		days = 0;
	age = 1.0 + AGE_MAX_BONUS * (days < AGE_CAP_DAYS ? days : AGE_CAP_DAYS) /
	                    AGE_CAP_DAYS;
	return round2(sev * exposure * age * crit);
}

double risk_score(const struct risk_input *in)
{
	return risk_of(in, !in->host || host_is_internal(in->host));
}

double host_risk(double max, double sum)
{
	return round2(max + 0.1 * (sum - max));
}

/* ------------------------------------------------------------------ */
/* Arena                                                                */
/* ------------------------------------------------------------------ */

#define CHUNK ((size_t)256 << 10)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

/* An open-addressing index of borrowed keys (arena strings), with their
 * hashes kept: the analysis looks up every row, and lib's strmap copies
 * each key. */
struct ix_slot {
	uint64_t h;
	const char *key; /* NULL: free */
	void *val;
};

struct ix {
	struct ix_slot *s;
	size_t cap, len;
};

static uint64_t ix_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	/* FNV's low bits are weak for keys that differ at the end */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

static size_t ix_slot(const struct ix *x, const char *key, uint64_t h)
{
	size_t mask = x->cap - 1, i = (size_t)h & mask;

	while (x->s[i].key && (x->s[i].h != h || strcmp(x->s[i].key, key)))
		i = (i + 1) & mask;
	return i;
}

static void *ix_get(const struct ix *x, const char *key, uint64_t h)
{
	return x->len ? x->s[ix_slot(x, key, h)].val : NULL;
}

/* Add `key` (absent; borrowed) -> `val`. */
static int ix_put(struct ix *x, const char *key, uint64_t h, void *val)
{
	size_t i;

	if (2 * (x->len + 1) > x->cap) {
		struct ix old = *x;

		x->cap = old.cap ? old.cap * 2 : 1024;
		x->s = calloc(x->cap, sizeof(*x->s));
		if (!x->s) {
			*x = old;
			return VG_NOMEM;
		}
		for (size_t k = 0; k < old.cap; k++)
			if (old.s[k].key)
				x->s[ix_slot(x, old.s[k].key, old.s[k].h)] =
					old.s[k];
		free(old.s);
	}
	i = ix_slot(x, key, h);
	x->s[i] = (struct ix_slot){h, key, val};
	x->len++;
	return VG_OK;
}

struct analysis_int {
	struct chunk *chunks;
	struct ix by_fp; /* fingerprint -> struct item */
	struct item **all;
	size_t nall, capall;
};

static void *arena_alloc(struct analysis_int *in, size_t n)
{
	struct chunk *c = in->chunks;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK ? n : CHUNK;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = in->chunks;
		c->used = 0;
		c->cap = cap;
		in->chunks = c;
	}
	c->used += n;
	return (char *)c->data + c->used - n;
}

static const char *arena_str(struct analysis_int *in, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *p;

	if (n == 0)
		return "";
	p = arena_alloc(in, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

/* ------------------------------------------------------------------ */
/* Analysis                                                             */
/* ------------------------------------------------------------------ */

int analysis_new(struct analysis **out, struct vg_err *err)
{
	struct analysis *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (a)
		a->in_ = calloc(1, sizeof(*a->in_));
	if (!a || !a->in_) {
		free(a);
		return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	*out = a;
	return VG_OK;
}

void analysis_free(struct analysis *a)
{
	struct chunk *c, *next;

	if (!a)
		return;
	for (c = a->in_->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a->in_->by_fp.s);
	free(a->in_->all);
	free(a->in_);
	free(a->items);
	free(a->hosts);
	free(a);
}

static int set_attrs(struct analysis_int *in, struct item *it,
                     const struct finding_row *r)
{
	it->host = arena_str(in, r->host);
	it->protocol = arena_str(in, r->protocol);
	it->scanner = arena_str(in, r->scanner);
	it->title = arena_str(in, r->title);
	it->port = r->port;
	it->severity = r->severity;
	return it->host && it->protocol && it->scanner && it->title ? VG_OK
	                                                            : VG_NOMEM;
}

int analysis_add(struct analysis *a, enum run_role role,
                 const struct finding_row *r, struct vg_err *err)
{
	struct analysis_int *in = a->in_;
	struct item *it;
	uint64_t h;

	if (!r->fingerprint || !*r->fingerprint ||
	    (!r->host && role != RUN_EARLIER))
		return vg_err_set(err, VG_INVAL,
		                  "finding without fingerprint or host");
	if ((unsigned)r->severity >= SEV_N)
		return vg_err_set(err, VG_INVAL, "finding %s: bad severity",
		                  r->fingerprint);
	h = ix_hash(r->fingerprint);
	it = ix_get(&in->by_fp, r->fingerprint, h);
	if (!it) {
		if (in->nall == in->capall) {
			size_t cap = in->capall ? in->capall * 2 : 1024;
			struct item **p = realloc(in->all, cap * sizeof(*p));

			if (!p)
				return vg_err_set(err, VG_NOMEM,
				                  "out of memory");
			in->all = p;
			in->capall = cap;
		}
		it = arena_alloc(in, sizeof(*it));
		if (!it)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		memset(it, 0, sizeof(*it));
		it->fingerprint = arena_str(in, r->fingerprint);
		it->first_seen = r->first_seen;
		if (!it->fingerprint || set_attrs(in, it, r) != VG_OK ||
		    ix_put(&in->by_fp, it->fingerprint, h, it) != VG_OK)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		in->all[in->nall++] = it;
	} else if (role == RUN_CURRENT && !(it->roles & RUN_CURRENT)) {
		/* the current run describes the finding as it is now */
		if (set_attrs(in, it, r) != VG_OK)
			return vg_err_set(err, VG_NOMEM, "out of memory");
	} else if (role == RUN_PREVIOUS && !(it->roles & RUN_CURRENT) &&
	           !(it->roles & RUN_PREVIOUS)) {
		if (set_attrs(in, it, r) != VG_OK)
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (r->first_seen < it->first_seen)
		it->first_seen = r->first_seen;
	it->roles |= (unsigned)role;
	return VG_OK;
}

struct item *analysis_find(struct analysis *a, const char *fingerprint)
{
	return ix_get(&a->in_->by_fp, fingerprint, ix_hash(fingerprint));
}

int analysis_set_details(struct analysis *a, struct item *it,
                         const char *protocol, const char *scanner,
                         const char *title)
{
	struct analysis_int *in = a->in_;

	it->protocol = arena_str(in, protocol);
	it->scanner = arena_str(in, scanner);
	it->title = arena_str(in, title);
	return it->protocol && it->scanner && it->title ? VG_OK : VG_NOMEM;
}

static int classify(unsigned roles, enum finding_class *out)
{
	if (roles & RUN_CURRENT)
		*out = roles & RUN_PREVIOUS  ? CLASS_PERSISTING
		       : roles & RUN_EARLIER ? CLASS_REGRESSED
		                             : CLASS_NEW;
	else if (roles & RUN_PREVIOUS)
		*out = CLASS_RESOLVED;
	else
		return 0; /* only earlier runs: not in this report */
	return 1;
}

static int cmp_item(const void *x, const void *y)
{
	const struct item *a = *(struct item *const *)x;
	const struct item *b = *(struct item *const *)y;

	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	if (a->risk != b->risk)
		return a->risk > b->risk ? -1 : 1;
	return strcmp(a->fingerprint, b->fingerprint);
}

static int cmp_host(const void *x, const void *y)
{
	const struct host_rank *a = x, *b = y;

	if (a->risk != b->risk)
		return a->risk > b->risk ? -1 : 1;
	return strcmp(a->host, b->host);
}

static enum criticality host_criticality(const struct analysis_opts *o,
                                         const char *host)
{
	enum criticality c = CRIT_MEDIUM;
	const char *v;

	if (o->criticality && (v = vg_strmap_get(o->criticality, host)))
		criticality_parse(v, &c);
	return c;
}

static int rank_hosts(struct analysis *a, const struct analysis_opts *o,
                      struct vg_err *err)
{
	struct ix idx = {0};
	int rc = VG_OK;

	a->hosts = calloc(a->total ? (size_t)a->total : 1, sizeof(*a->hosts));
	if (!a->hosts)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (size_t i = 0; i < a->nitems; i++) {
		const struct item *it = a->items[i];
		struct host_rank *h;
		uintptr_t k;

		if (!(it->roles & RUN_CURRENT))
			continue;
		uint64_t hh = ix_hash(it->host);

		k = (uintptr_t)ix_get(&idx, it->host, hh);
		if (!k) {
			if (ix_put(&idx, it->host, hh,
			           (void *)(a->nhosts + 1)) != VG_OK) {
				rc = vg_err_set(err, VG_NOMEM,
				                "out of memory");
				goto out;
			}
			h = &a->hosts[a->nhosts++];
			h->host = it->host;
			h->internal = host_is_internal(it->host);
			h->criticality = host_criticality(o, it->host);
			h->max_severity = it->severity;
		} else {
			h = &a->hosts[k - 1];
		}
		h->findings++;
		h->risk += it->risk; /* the sum until the end */
		if (it->risk > h->max_risk)
			h->max_risk = it->risk;
		if (it->severity > h->max_severity)
			h->max_severity = it->severity;
	}
	for (size_t i = 0; i < a->nhosts; i++)
		a->hosts[i].risk = host_risk(a->hosts[i].max_risk,
		                             a->hosts[i].risk);
	qsort(a->hosts, a->nhosts, sizeof(*a->hosts), cmp_host);
out:
	free(idx.s);
	return rc;
}

/* What the risk needs of a host, worked out once per host. */
struct host_info {
	int internal;
	enum criticality criticality;
};

static const struct host_info *host_info(struct analysis_int *in,
                                         struct ix *hosts,
                                         const struct analysis_opts *o,
                                         const char *host)
{
	uint64_t h = ix_hash(host);
	struct host_info *hi = ix_get(hosts, host, h);

	if (hi)
		return hi;
	hi = arena_alloc(in, sizeof(*hi));
	if (!hi)
		return NULL;
	hi->internal = host_is_internal(host);
	hi->criticality = host_criticality(o, host);
	return ix_put(hosts, host, h, hi) == VG_OK ? hi : NULL;
}

int analysis_finish(struct analysis *a, const struct analysis_opts *o,
                    struct vg_err *err)
{
	struct analysis_int *in = a->in_;
	struct ix hosts = {0};
	size_t n = 0;

	free(a->items);
	a->items = malloc((in->nall ? in->nall : 1) * sizeof(*a->items));
	if (!a->items)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	memset(a->counts, 0, sizeof(a->counts));
	memset(a->by_class, 0, sizeof(a->by_class));
	a->total = 0;
	a->risk_total = 0;
	for (size_t i = 0; i < in->nall; i++) {
		struct item *it = in->all[i];
		const struct host_info *hi;
		struct risk_input ri;
		double age;

		if (!classify(it->roles, &it->cls))
			continue;
		if (!(hi = host_info(in, &hosts, o, it->host))) {
			free(hosts.s);
			return vg_err_set(err, VG_NOMEM, "out of memory");
		}
		age = (o->now - it->first_seen) / 86400.0;
		it->age_days = age > 0 ? floor(age) : 0;
		ri = (struct risk_input){it->severity, it->host, it->port,
		                         it->age_days, hi->criticality};
		it->risk = risk_of(&ri, hi->internal);
		a->items[n++] = it;
		a->by_class[it->cls]++;
		if (it->roles & RUN_CURRENT) {
			a->counts[it->severity]++;
			a->total++;
			a->risk_total += it->risk;
		}
	}
	free(hosts.s);
	a->nitems = n;
	a->risk_total = round2(a->risk_total);
	qsort(a->items, n, sizeof(*a->items), cmp_item);
	for (size_t i = 0, c = 0; c < CLASS_N; c++) {
		a->class_start[c] = i;
		while (i < n && a->items[i]->cls == (enum finding_class)c)
			i++;
		a->class_len[c] = i - a->class_start[c];
	}
	free(a->hosts);
	a->hosts = NULL;
	a->nhosts = 0;
	return rank_hosts(a, o, err);
}
