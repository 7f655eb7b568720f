/*
 * metrics.c - Prometheus registry, families, series and text exposition.
 *
 * Values are C11 atomics: a counter keeps whole increments in a 64-bit
 * integer (one fetch-add) and fractional additions as a double updated by
 * compare-and-swap; gauges and histogram sums are doubles the same way;
 * histogram buckets are per-bucket integers, made cumulative at render so
 * _count always equals the +Inf bucket. A family's mutex guards only its
 * series index, taken when a series is looked up, never on updates.
 */
#include "vigil/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_LABELS 16
#define MAX_BUCKETS 64

struct vg_series {
	struct vg_metric *family;
	const char **values; /* into key */
	char *key;	     /* label values, each NUL-terminated */
	size_t key_len;
	uint64_t hash;
	_Atomic uint64_t count; /* counter whole part; unused otherwise */
	_Atomic uint64_t bits;	/* double: counter fraction, gauge, sum */
	_Atomic uint64_t buckets[]; /* histogram: nbuckets + 1 (+Inf) */
};

struct vg_metric {
	char *name;
	char *help;
	enum vg_metric_type type;
	char **labels;
	size_t nlabels;
	double *bounds; /* histogram upper bounds, +Inf excluded */
	size_t nbounds;

	pthread_mutex_t lock; /* guards the index below */
	struct vg_series **series;
	size_t nseries, series_cap;
	size_t *slots; /* open addressing: index + 1, 0 for empty */
	size_t nslots;
	struct vg_series *discard; /* absorbs updates that have no series */
};

struct collector {
	vg_metrics_collect_fn fn;
	void *data;
};

struct vg_metrics {
	pthread_mutex_t lock; /* families and collectors */
	struct vg_metric **families;
	size_t nfamilies, families_cap;
	struct collector *collectors;
	size_t ncollectors, collectors_cap;
	struct process_metrics *process; /* vg_metrics_register_process */
};

static const double default_buckets[] = { .005, .01, .025, .05, .1, .25,
					  .5,   1,   2.5,  5,   10 };

static const char *const type_names[] = {
	[VG_METRIC_COUNTER] = "counter",
	[VG_METRIC_GAUGE] = "gauge",
	[VG_METRIC_HISTOGRAM] = "histogram",
};

/* --- atomics on doubles --------------------------------------------------- */

static double bits_to_double(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double atomic_load_double(const _Atomic uint64_t *p)
{
	return bits_to_double(
		atomic_load_explicit((_Atomic uint64_t *)p,
				     memory_order_relaxed));
}

static void atomic_store_double(_Atomic uint64_t *p, double v)
{
	atomic_store_explicit(p, double_to_bits(v), memory_order_relaxed);
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
		p, &old, double_to_bits(bits_to_double(old) + v),
		memory_order_relaxed, memory_order_relaxed))
		;
}

/* --- names ---------------------------------------------------------------- */

static int valid_name(const char *s, int colons)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 c == '_' || (colons && c == ':') ||
			 (i > 0 && c >= '0' && c <= '9');

		if (!ok)
			return 0;
	}
	return 1;
}

/* --- families ------------------------------------------------------------- */

static void series_free(struct vg_series *s)
{
	if (!s)
		return;
	free(s->values);
	free(s->key);
	free(s);
}

static void family_free(struct vg_metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nseries; i++)
		series_free(m->series[i]);
	series_free(m->discard);
	free(m->series);
	free(m->slots);
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->bounds);
	free(m->name);
	free(m->help);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static struct vg_series *series_alloc(const struct vg_metric *m)
{
	size_t nb = m->type == VG_METRIC_HISTOGRAM ? m->nbounds + 1 : 0;
	struct vg_series *s;

	s = calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]));
	if (!s)
		return NULL;
	s->family = (struct vg_metric *)m;
	return s;
}

/* Same shape: type, help, label names and buckets. */
static int family_matches(const struct vg_metric *m, enum vg_metric_type type,
			  const char *help, const char *const *labels,
			  size_t nlabels, const double *bounds, size_t nbounds)
{
	if (m->type != type || strcmp(m->help, help) != 0 ||
	    m->nlabels != nlabels)
		return 0;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(m->labels[i], labels[i]) != 0)
			return 0;
	if (type != VG_METRIC_HISTOGRAM)
		return 1;
	return m->nbounds == nbounds &&
	       memcmp(m->bounds, bounds, nbounds * sizeof(*bounds)) == 0;
}

static int check_labels(const char *const *labels, int histogram,
			size_t *nlabels, struct vg_err *err)
{
	size_t n = 0;

	for (; labels && labels[n]; n++) {
		if (n == MAX_LABELS)
			return vg_err_set(err, VG_INVAL,
					  "metrics: more than %d labels",
					  MAX_LABELS);
		if (!valid_name(labels[n], 0) ||
		    strncmp(labels[n], "__", 2) == 0 ||
		    (histogram && strcmp(labels[n], "le") == 0))
			return vg_err_set(err, VG_INVAL,
					  "metrics: invalid label name \"%s\"",
					  labels[n]);
		for (size_t j = 0; j < n; j++)
			if (strcmp(labels[j], labels[n]) == 0)
				return vg_err_set(
					err, VG_INVAL,
					"metrics: label \"%s\" repeated",
					labels[n]);
	}
	*nlabels = n;
	return VG_OK;
}

static int check_buckets(const double *b, size_t n, struct vg_err *err)
{
	if (n > MAX_BUCKETS)
		return vg_err_set(err, VG_INVAL, "metrics: more than %d buckets",
				  MAX_BUCKETS);
	for (size_t i = 0; i < n; i++) {
		if (isnan(b[i]) || isinf(b[i]))
			return vg_err_set(err, VG_INVAL,
					  "metrics: bucket bounds must be finite");
		if (i > 0 && !(b[i] > b[i - 1]))
			return vg_err_set(
				err, VG_INVAL,
				"metrics: bucket bounds must increase");
	}
	return VG_OK;
}

static struct vg_metric *family_new(enum vg_metric_type type,
				    const char *name, const char *help,
				    const char *const *labels, size_t nlabels,
				    const double *bounds, size_t nbounds)
{
	struct vg_metric *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL)) {
		free(m);
		return NULL;
	}
	m->type = type;
	m->name = strdup(name);
	m->help = strdup(help);
	m->labels = calloc(nlabels ? nlabels : 1, sizeof(*m->labels));
	if (!m->name || !m->help || !m->labels)
		goto fail;
	for (m->nlabels = 0; m->nlabels < nlabels; m->nlabels++) {
		m->labels[m->nlabels] = strdup(labels[m->nlabels]);
		if (!m->labels[m->nlabels])
			goto fail;
	}
	if (type == VG_METRIC_HISTOGRAM) {
		m->bounds = malloc((nbounds ? nbounds : 1) * sizeof(*bounds));
		if (!m->bounds)
			goto fail;
		if (nbounds)
			memcpy(m->bounds, bounds, nbounds * sizeof(*bounds));
		m->nbounds = nbounds;
	}
	m->discard = series_alloc(m);
	if (!m->discard)
		goto fail;
	return m;
fail:
	family_free(m);
	return NULL;
}

static struct vg_metric *register_family(struct vg_metrics *reg,
					 enum vg_metric_type type,
					 const char *name, const char *help,
					 const char *const *labels,
					 const double *bounds, size_t nbounds,
					 struct vg_err *err)
{
	struct vg_metric *m = NULL, **fams;
	size_t nlabels = 0;

	if (!reg || !help) {
		vg_err_set(err, VG_INVAL, "metrics: no registry or help text");
		return NULL;
	}
	if (!valid_name(name, 1)) {
		vg_err_set(err, VG_INVAL, "metrics: invalid metric name \"%s\"",
			   name ? name : "(null)");
		return NULL;
	}
	if (check_labels(labels, type == VG_METRIC_HISTOGRAM, &nlabels, err))
		return NULL;
	if (type == VG_METRIC_HISTOGRAM) {
		if (!bounds) {
			bounds = default_buckets;
			nbounds = sizeof(default_buckets) /
				  sizeof(default_buckets[0]);
		}
		if (check_buckets(bounds, nbounds, err))
			return NULL;
	}

	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->nfamilies; i++) {
		struct vg_metric *f = reg->families[i];

		if (strcmp(f->name, name) != 0)
			continue;
		if (family_matches(f, type, help, labels, nlabels, bounds,
				   nbounds))
			m = f;
		else
			vg_err_set(err, VG_EXISTS,
				   "metrics: \"%s\" already registered "
				   "differently",
				   name);
		goto out;
	}
	if (reg->nfamilies == reg->families_cap) {
		size_t cap = reg->families_cap ? reg->families_cap * 2 : 16;

		fams = realloc(reg->families, cap * sizeof(*fams));
		if (!fams) {
			vg_err_set(err, VG_NOMEM, "metrics: out of memory");
			goto out;
		}
		reg->families = fams;
		reg->families_cap = cap;
	}
	m = family_new(type, name, help, labels, nlabels, bounds, nbounds);
	if (!m) {
		vg_err_set(err, VG_NOMEM, "metrics: out of memory");
		goto out;
	}
	reg->families[reg->nfamilies++] = m;
out:
	pthread_mutex_unlock(&reg->lock);
	/* a family without labels has its one series from the start */
	if (m && !nlabels)
		vg_metric_series(m, NULL);
	return m;
}

struct vg_metric *vg_metrics_counter(struct vg_metrics *reg, const char *name,
				     const char *help,
				     const char *const *labels,
				     struct vg_err *err)
{
	return register_family(reg, VG_METRIC_COUNTER, name, help, labels,
			       NULL, 0, err);
}

struct vg_metric *vg_metrics_gauge(struct vg_metrics *reg, const char *name,
				   const char *help, const char *const *labels,
				   struct vg_err *err)
{
	return register_family(reg, VG_METRIC_GAUGE, name, help, labels, NULL,
			       0, err);
}

struct vg_metric *vg_metrics_histogram(struct vg_metrics *reg,
				       const char *name, const char *help,
				       const char *const *labels,
				       const double *buckets, size_t nbuckets,
				       struct vg_err *err)
{
	return register_family(reg, VG_METRIC_HISTOGRAM, name, help, labels,
			       buckets, nbuckets, err);
}

/* --- series lookup -------------------------------------------------------- */

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int index_grow(struct vg_metric *m)
{
	size_t n = m->nslots ? m->nslots * 2 : 16;
	size_t *slots = calloc(n, sizeof(*slots));

	if (!slots)
		return VG_NOMEM;
	for (size_t i = 0; i < m->nseries; i++) {
		size_t j = m->series[i]->hash & (n - 1);

		while (slots[j])
			j = (j + 1) & (n - 1);
		slots[j] = i + 1;
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = n;
	return VG_OK;
}

/* New series holding a copy of `values`. */
static struct vg_series *series_new(struct vg_metric *m,
				    const char *const *values, size_t key_len,
				    uint64_t hash)
{
	struct vg_series *s = series_alloc(m);
	char *p;

	if (!s)
		return NULL;
	s->key = malloc(key_len ? key_len : 1);
	s->values = calloc(m->nlabels ? m->nlabels : 1, sizeof(*s->values));
	if (!s->key || !s->values) {
		series_free(s);
		return NULL;
	}
	p = s->key;
	for (size_t i = 0; i < m->nlabels; i++) {
		size_t n = strlen(values[i]) + 1;

		memcpy(p, values[i], n);
		s->values[i] = p;
		p += n;
	}
	s->key_len = key_len;
	s->hash = hash;
	return s;
}

struct vg_series *vg_metric_series(struct vg_metric *m,
				   const char *const *values)
{
	char stack_key[512], *key = stack_key;
	struct vg_series *s = NULL, **grown;
	size_t key_len = 0, j;
	uint64_t hash;

	if (!m)
		return NULL;
	if (m->nlabels && !values)
		return m->discard;
	for (size_t i = 0; i < m->nlabels; i++) {
		if (!values[i])
			return m->discard;
		key_len += strlen(values[i]) + 1;
	}
	if (key_len > sizeof(stack_key)) {
		key = malloc(key_len);
		if (!key)
			return m->discard;
	}
	for (size_t i = 0, off = 0; i < m->nlabels; i++) {
		size_t n = strlen(values[i]) + 1;

		memcpy(key + off, values[i], n);
		off += n;
	}
	hash = fnv1a(key, key_len);

	pthread_mutex_lock(&m->lock);
	if (m->nslots) {
		for (j = hash & (m->nslots - 1); m->slots[j];
		     j = (j + 1) & (m->nslots - 1)) {
			struct vg_series *c = m->series[m->slots[j] - 1];

			if (c->hash == hash && c->key_len == key_len &&
			    memcmp(c->key, key, key_len) == 0) {
				s = c;
				goto out;
			}
		}
	}
	s = m->discard;
	if (m->nseries >= VG_METRICS_MAX_SERIES)
		goto out;
	if ((m->nseries + 1) * 2 > m->nslots && index_grow(m))
		goto out;
	if (m->nseries == m->series_cap) {
		size_t cap = m->series_cap ? m->series_cap * 2 : 8;

		grown = realloc(m->series, cap * sizeof(*grown));
		if (!grown)
			goto out;
		m->series = grown;
		m->series_cap = cap;
	}
	s = series_new(m, values, key_len, hash);
	if (!s) {
		s = m->discard;
		goto out;
	}
	for (j = hash & (m->nslots - 1); m->slots[j];
	     j = (j + 1) & (m->nslots - 1))
		;
	m->series[m->nseries++] = s;
	m->slots[j] = m->nseries;
out:
	pthread_mutex_unlock(&m->lock);
	if (key != stack_key)
		free(key);
	return s;
}

struct vg_series *vg_metric_labels(struct vg_metric *m, ...)
{
	const char *values[MAX_LABELS];
	va_list ap;

	if (!m)
		return NULL;
	va_start(ap, m);
	for (size_t i = 0; i < m->nlabels; i++)
		values[i] = va_arg(ap, const char *);
	va_end(ap);
	return vg_metric_series(m, values);
}

/* --- updates -------------------------------------------------------------- */

static int is_type(const struct vg_series *s, enum vg_metric_type type)
{
	return s && s->family->type == type;
}

void vg_counter_inc(struct vg_series *s)
{
	if (is_type(s, VG_METRIC_COUNTER))
		atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void vg_counter_add(struct vg_series *s, double v)
{
	if (!is_type(s, VG_METRIC_COUNTER) || !(v >= 0))
		return;
	if (v == floor(v) && v < 9007199254740992.0)
		atomic_fetch_add_explicit(&s->count, (uint64_t)v,
					  memory_order_relaxed);
	else
		atomic_add_double(&s->bits, v);
}

void vg_counter_set(struct vg_series *s, double v)
{
	if (!is_type(s, VG_METRIC_COUNTER) || !(v >= 0))
		return;
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	atomic_store_double(&s->bits, v);
}

void vg_gauge_set(struct vg_series *s, double v)
{
	if (is_type(s, VG_METRIC_GAUGE))
		atomic_store_double(&s->bits, v);
}

void vg_gauge_add(struct vg_series *s, double v)
{
	if (is_type(s, VG_METRIC_GAUGE))
		atomic_add_double(&s->bits, v);
}

void vg_gauge_inc(struct vg_series *s)
{
	vg_gauge_add(s, 1);
}

void vg_gauge_dec(struct vg_series *s)
{
	vg_gauge_add(s, -1);
}

void vg_histogram_observe(struct vg_series *s, double v)
{
	const struct vg_metric *m;
	size_t lo = 0, hi;

	if (!is_type(s, VG_METRIC_HISTOGRAM))
		return;
	m = s->family;
	/* first bound >= v; NaN lands in +Inf */
	hi = m->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= m->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&s->bits, v);
}

double vg_series_value(const struct vg_series *s)
{
	if (!s)
		return 0;
	if (s->family->type == VG_METRIC_COUNTER)
		return (double)atomic_load_explicit(
			       (_Atomic uint64_t *)&s->count,
			       memory_order_relaxed) +
		       atomic_load_double(&s->bits);
	return atomic_load_double(&s->bits);
}

unsigned long long vg_series_count(const struct vg_series *s)
{
	unsigned long long n = 0;

	if (!is_type(s, VG_METRIC_HISTOGRAM))
		return 0;
	for (size_t i = 0; i <= s->family->nbounds; i++)
		n += atomic_load_explicit((_Atomic uint64_t *)&s->buckets[i],
					  memory_order_relaxed);
	return n;
}

/* --- registry ------------------------------------------------------------- */

struct vg_metrics *vg_metrics_new(void)
{
	struct vg_metrics *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return NULL;
	if (pthread_mutex_init(&reg->lock, NULL)) {
		free(reg);
		return NULL;
	}
	return reg;
}

void vg_metrics_free(struct vg_metrics *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->nfamilies; i++)
		family_free(reg->families[i]);
	free(reg->families);
	free(reg->collectors);
	free(reg->process);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static struct vg_metrics *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_create(void)
{
	default_registry = vg_metrics_new();
}

struct vg_metrics *vg_metrics_default(void)
{
	pthread_once(&default_once, default_create);
	return default_registry;
}

int vg_metrics_add_collector(struct vg_metrics *reg, vg_metrics_collect_fn fn,
			     void *data)
{
	int rc = VG_OK;

	if (!reg || !fn)
		return VG_INVAL;
	pthread_mutex_lock(&reg->lock);
	if (reg->ncollectors == reg->collectors_cap) {
		size_t cap = reg->collectors_cap ? reg->collectors_cap * 2 : 4;
		struct collector *c =
			realloc(reg->collectors, cap * sizeof(*c));

		if (!c) {
			rc = VG_NOMEM;
			goto out;
		}
		reg->collectors = c;
		reg->collectors_cap = cap;
	}
	reg->collectors[reg->ncollectors++] =
		(struct collector){ .fn = fn, .data = data };
out:
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* --- exposition ----------------------------------------------------------- */

/* Appends stop at the first failure, remembered in rc. */
struct writer {
	struct vg_buf *out;
	int rc;
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (!w->rc)
		w->rc = vg_buf_append(w->out, s, n);
}

static void puts_(struct writer *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Shortest text that reads back as `v`; Prometheus spells infinities
 * +Inf/-Inf and NaN as NaN. */
static void format_double(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		int n = snprintf(buf, size, "%.*g", prec, v);

		if (n > 0 && (size_t)n < size && strtod(buf, NULL) == v)
			return;
	}
}

static void put_double(struct writer *w, double v)
{
	char tmp[32];

	format_double(tmp, sizeof(tmp), v);
	puts_(w, tmp);
}

/* HELP text escapes \ and newline; label values also escape ". */
static void put_escaped(struct writer *w, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (quote && *s == '"')
			esc = "\\\"";
		if (!esc)
			continue;
		put(w, run, (size_t)(s - run));
		puts_(w, esc);
		run = s + 1;
	}
	put(w, run, (size_t)(s - run));
}

/* {a="x",b="y"} plus an optional le pair; nothing when both are absent. */
static void put_labels(struct writer *w, const struct vg_series *s,
		       const char *le)
{
	const struct vg_metric *m = s->family;

	if (!m->nlabels && !le)
		return;
	put(w, "{", 1);
	for (size_t i = 0; i < m->nlabels; i++) {
		if (i)
			put(w, ",", 1);
		puts_(w, m->labels[i]);
		put(w, "=\"", 2);
		put_escaped(w, s->values[i], 1);
		put(w, "\"", 1);
	}
	if (le) {
		if (m->nlabels)
			put(w, ",", 1);
		put(w, "le=\"", 4);
		puts_(w, le);
		put(w, "\"", 1);
	}
	put(w, "}", 1);
}

static void put_sample(struct writer *w, const struct vg_series *s,
		       const char *suffix, const char *le, double v)
{
	puts_(w, s->family->name);
	puts_(w, suffix);
	put_labels(w, s, le);
	put(w, " ", 1);
	put_double(w, v);
	put(w, "\n", 1);
}

static void put_histogram(struct writer *w, const struct vg_series *s)
{
	const struct vg_metric *m = s->family;
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i <= m->nbounds; i++) {
		cum += atomic_load_explicit((_Atomic uint64_t *)&s->buckets[i],
					    memory_order_relaxed);
		format_double(le, sizeof(le),
			      i == m->nbounds ? INFINITY : m->bounds[i]);
		put_sample(w, s, "_bucket", le, (double)cum);
	}
	put_sample(w, s, "_sum", NULL, atomic_load_double(&s->bits));
	put_sample(w, s, "_count", NULL, (double)cum);
}

static int series_cmp(const void *a, const void *b)
{
	const struct vg_series *x = *(const struct vg_series *const *)a;
	const struct vg_series *y = *(const struct vg_series *const *)b;

	for (size_t i = 0; i < x->family->nlabels; i++) {
		int c = strcmp(x->values[i], y->values[i]);

		if (c)
			return c;
	}
	return 0;
}

static int family_cmp(const void *a, const void *b)
{
	const struct vg_metric *x = *(const struct vg_metric *const *)a;
	const struct vg_metric *y = *(const struct vg_metric *const *)b;

	return strcmp(x->name, y->name);
}

static void put_family(struct writer *w, struct vg_metric *m)
{
	struct vg_series **list = NULL;
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = m->nseries;
	if (n) {
		list = malloc(n * sizeof(*list));
		if (list)
			memcpy(list, m->series, n * sizeof(*list));
	}
	pthread_mutex_unlock(&m->lock);
	if (!n)
		return;
	if (!list) {
		w->rc = w->rc ? w->rc : VG_NOMEM;
		return;
	}
	qsort(list, n, sizeof(*list), series_cmp);

	puts_(w, "# HELP ");
	puts_(w, m->name);
	put(w, " ", 1);
	put_escaped(w, m->help, 0);
	puts_(w, "\n# TYPE ");
	puts_(w, m->name);
	put(w, " ", 1);
	puts_(w, type_names[m->type]);
	put(w, "\n", 1);
	for (size_t i = 0; i < n; i++) {
		if (m->type == VG_METRIC_HISTOGRAM)
			put_histogram(w, list[i]);
		else
			put_sample(w, list[i], "", NULL,
				   vg_series_value(list[i]));
	}
	free(list);
}

int vg_metrics_render(struct vg_metrics *reg, struct vg_buf *out)
{
	struct writer w = { .out = out, .rc = VG_OK };
	struct collector *coll = NULL;
	struct vg_metric **fams = NULL;
	size_t saved = out->len, ncoll, nfam;

	if (!reg)
		return VG_INVAL;
	/* snapshot under the lock; collectors and rendering run without it
	 * so a collector may register families or look series up */
	pthread_mutex_lock(&reg->lock);
	ncoll = reg->ncollectors;
	nfam = reg->nfamilies;
	if (ncoll) {
		coll = malloc(ncoll * sizeof(*coll));
		if (coll)
			memcpy(coll, reg->collectors, ncoll * sizeof(*coll));
	}
	pthread_mutex_unlock(&reg->lock);
	if (ncoll && !coll)
		return VG_NOMEM;
	for (size_t i = 0; i < ncoll; i++)
		coll[i].fn(reg, coll[i].data);
	free(coll);

	pthread_mutex_lock(&reg->lock);
	nfam = reg->nfamilies;
	if (nfam) {
		fams = malloc(nfam * sizeof(*fams));
		if (fams)
			memcpy(fams, reg->families, nfam * sizeof(*fams));
	}
	pthread_mutex_unlock(&reg->lock);
	if (nfam && !fams)
		return VG_NOMEM;
	qsort(fams, nfam, sizeof(*fams), family_cmp);
	for (size_t i = 0; i < nfam && !w.rc; i++)
		put_family(&w, fams[i]);
	free(fams);
	if (w.rc && out->data) {
		out->len = saved;
		out->data[saved] = '\0';
	}
	return w.rc;
}

/* --- process collector ---------------------------------------------------- */

struct process_metrics {
	struct vg_series *cpu, *rss, *vsize, *start, *open_fds, *max_fds;
	long page_size;
	long ticks;
};

/* Fields of /proc/self/stat after the command name, from field 3 (state)
 * on; returns how many were read. */
static size_t read_stat_fields(unsigned long long *f, size_t max)
{
	char buf[1024], *p, *end;
	size_t n = 0;
	FILE *fp = fopen("/proc/self/stat", "r");
	size_t len;

	if (!fp)
		return 0;
	len = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[len] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	while (n < max) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		if (n == 0) { /* state letter */
			f[n++] = (unsigned char)*p;
			while (*p && *p != ' ')
				p++;
			continue;
		}
		f[n++] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	return n;
}

static double boot_time(void)
{
	char line[256];
	double bt = 0;
	FILE *fp = fopen("/proc/stat", "r");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "btime ", 6) == 0) {
			bt = strtod(line + 6, NULL);
			break;
		}
	}
	fclose(fp);
	return bt;
}

static double count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	double n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the descriptor reading the directory */
}

static void collect_process(struct vg_metrics *reg, void *data)
{
	struct process_metrics *pm = data;
	unsigned long long f[24];
	struct rlimit rl;

	(void)reg;
	/* after ')': index 11 utime, 12 stime, 20 vsize, 21 rss (pages) */
	if (read_stat_fields(f, 24) >= 22) {
		vg_counter_set(pm->cpu, (double)(f[11] + f[12]) /
						(double)pm->ticks);
		vg_gauge_set(pm->vsize, (double)f[20]);
		vg_gauge_set(pm->rss, (double)f[21] * (double)pm->page_size);
	}
	vg_gauge_set(pm->open_fds, count_open_fds());
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		vg_gauge_set(pm->max_fds, rl.rlim_cur == RLIM_INFINITY ?
						  INFINITY :
						  (double)rl.rlim_cur);
}

int vg_metrics_register_process(struct vg_metrics *reg, struct vg_err *err)
{
	static const struct {
		const char *name, *help;
		enum vg_metric_type type;
		size_t offset;
	} defs[] = {
		{ "process_cpu_seconds_total",
		  "Total user and system CPU time spent in seconds.",
		  VG_METRIC_COUNTER, offsetof(struct process_metrics, cpu) },
		{ "process_resident_memory_bytes",
		  "Resident memory size in bytes.", VG_METRIC_GAUGE,
		  offsetof(struct process_metrics, rss) },
		{ "process_virtual_memory_bytes",
		  "Virtual memory size in bytes.", VG_METRIC_GAUGE,
		  offsetof(struct process_metrics, vsize) },
		{ "process_start_time_seconds",
		  "Start time of the process since unix epoch in seconds.",
		  VG_METRIC_GAUGE, offsetof(struct process_metrics, start) },
		{ "process_open_fds", "Number of open file descriptors.",
		  VG_METRIC_GAUGE, offsetof(struct process_metrics, open_fds) },
		{ "process_max_fds",
		  "Maximum number of open file descriptors.", VG_METRIC_GAUGE,
		  offsetof(struct process_metrics, max_fds) },
	};
	struct process_metrics *pm = NULL;
	unsigned long long f[24];
	int rc = VG_OK;

	if (!reg)
		return vg_err_set(err, VG_INVAL, "metrics: no registry");
	pthread_mutex_lock(&reg->lock);
	rc = reg->process ? VG_EXISTS : VG_OK;
	pthread_mutex_unlock(&reg->lock);
	if (rc)
		return vg_err_set(err, rc,
				  "metrics: process metrics already registered");
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return vg_err_set(err, VG_NOMEM, "metrics: out of memory");
	pm->page_size = sysconf(_SC_PAGESIZE);
	pm->ticks = sysconf(_SC_CLK_TCK);
	if (pm->page_size <= 0)
		pm->page_size = 4096;
	if (pm->ticks <= 0)
		pm->ticks = 100;
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		struct vg_metric *m = register_family(reg, defs[i].type,
						      defs[i].name,
						      defs[i].help, NULL,
						      NULL, 0, err);

		if (!m) {
			rc = err ? err->code : VG_INVAL;
			goto out;
		}
		*(struct vg_series **)((char *)pm + defs[i].offset) =
			vg_metric_series(m, NULL);
	}
	/* index 19: start time in ticks after boot */
	if (read_stat_fields(f, 24) >= 20)
		vg_gauge_set(pm->start, boot_time() + (double)f[19] /
							      (double)pm->ticks);
	rc = vg_metrics_add_collector(reg, collect_process, pm);
	if (rc) {
		vg_err_set(err, rc, "metrics: out of memory");
		goto out;
	}
	pthread_mutex_lock(&reg->lock);
	reg->process = pm; /* freed with the registry */
	pthread_mutex_unlock(&reg->lock);
	pm = NULL;
out:
	free(pm);
	return rc;
}
