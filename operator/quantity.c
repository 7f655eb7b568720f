/* quantity.c - parse Kubernetes quantities and print their canonical form. */
#include "quantity.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXP_LIMIT 1000000L
/* Digits of the largest magnitude the server keeps (2^63-1, in units). */
static const char max_digits[] = "9223372036854775807";

/* The server's suffix tables (resource.quantitySuffixer). */
struct suffix_def {
	const char *suffix;
	int base; /* 10 or 2 */
	int exp;  /* power of the base */
	enum quantity_format format;
};

static const struct suffix_def suffixes[] = {
	{"n", 10, -9, QUANTITY_DECIMAL_SI},  {"u", 10, -6, QUANTITY_DECIMAL_SI},
	{"m", 10, -3, QUANTITY_DECIMAL_SI},  {"", 10, 0, QUANTITY_DECIMAL_SI},
	{"k", 10, 3, QUANTITY_DECIMAL_SI},   {"M", 10, 6, QUANTITY_DECIMAL_SI},
	{"G", 10, 9, QUANTITY_DECIMAL_SI},   {"T", 10, 12, QUANTITY_DECIMAL_SI},
	{"P", 10, 15, QUANTITY_DECIMAL_SI},  {"E", 10, 18, QUANTITY_DECIMAL_SI},
	{"Ki", 2, 10, QUANTITY_BINARY_SI},   {"Mi", 2, 20, QUANTITY_BINARY_SI},
	{"Gi", 2, 30, QUANTITY_BINARY_SI},   {"Ti", 2, 40, QUANTITY_BINARY_SI},
	{"Pi", 2, 50, QUANTITY_BINARY_SI},   {"Ei", 2, 60, QUANTITY_BINARY_SI},
};

#define NSUFFIXES (sizeof(suffixes) / sizeof(suffixes[0]))

static const struct suffix_def *suffix_by_exp(int base, int exp)
{
	for (size_t i = 0; i < NSUFFIXES; i++)
		if (suffixes[i].base == base && suffixes[i].exp == exp)
			return &suffixes[i];
	return NULL;
}

/*
 * A non-negative integer in decimal digits, least significant first, no
 * leading (most significant) zeros; n == 0 is zero. Big enough for any
 * accepted input times 2^60.
 */
struct bigdec {
	unsigned char d[QUANTITY_INPUT_MAX + 32];
	size_t n;
};

static void big_trim(struct bigdec *b)
{
	while (b->n > 0 && b->d[b->n - 1] == 0)
		b->n--;
}

/* The integer written as the digits of `a` followed by those of `b`. */
static void big_from(struct bigdec *b, const char *a, size_t na, const char *c,
		     size_t nc)
{
	b->n = 0;
	for (size_t i = nc; i > 0; i--)
		b->d[b->n++] = (unsigned char)(c[i - 1] - '0');
	for (size_t i = na; i > 0; i--)
		b->d[b->n++] = (unsigned char)(a[i - 1] - '0');
	big_trim(b);
}

static void big_mul_small(struct bigdec *b, unsigned m)
{
	unsigned long carry = 0;

	for (size_t i = 0; i < b->n; i++) {
		unsigned long v = (unsigned long)b->d[i] * m + carry;

		b->d[i] = (unsigned char)(v % 10);
		carry = v / 10;
	}
	while (carry && b->n < sizeof(b->d)) {
		b->d[b->n++] = (unsigned char)(carry % 10);
		carry /= 10;
	}
}

static void big_add_one(struct bigdec *b)
{
	size_t i = 0;

	while (i < b->n && b->d[i] == 9)
		b->d[i++] = 0;
	if (i < b->n)
		b->d[i]++;
	else if (b->n < sizeof(b->d))
		b->d[b->n++] = 1;
}

/* Drop the `t` least significant digits; *nonzero when any was not 0. */
static void big_drop_low(struct bigdec *b, long t, int *nonzero)
{
	size_t drop = (size_t)t < b->n ? (size_t)t : b->n;

	*nonzero = 0;
	for (size_t i = 0; i < drop; i++)
		if (b->d[i])
			*nonzero = 1;
	memmove(b->d, b->d + drop, b->n - drop);
	b->n -= drop;
}

/*
 * Significant digits of b * 10^scale, most significant first, into `out`
 * (room for sizeof(b->d) + 1), trailing zeros moved into *exp10.
 */
static void big_digits(const struct bigdec *b, long scale, char *out,
		       long *exp10)
{
	size_t low = 0, k = 0;

	while (low < b->n && b->d[low] == 0)
		low++;
	for (size_t i = b->n; i > low; i--)
		out[k++] = (char)('0' + b->d[i - 1]);
	out[k] = '\0';
	*exp10 = k ? scale + (long)low : 0;
}

/* Compare magnitudes a*10^ea and b*10^eb of normalised digit strings. */
static int mag_cmp(const char *a, long ea, const char *b, long eb)
{
	size_t la = strlen(a), lb = strlen(b);
	long oa, ob;

	if (!la || !lb)
		return (la > 0) - (lb > 0);
	oa = (long)la + ea;
	ob = (long)lb + eb;
	if (oa != ob)
		return oa < ob ? -1 : 1;
	for (size_t i = 0; i < la || i < lb; i++) {
		char ca = i < la ? a[i] : '0';
		char cb = i < lb ? b[i] : '0';

		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Interpret a suffix: a table entry, or e/E followed by a signed decimal
 * exponent. VG_INVAL for an unknown suffix, VG_RANGE for a huge exponent.
 */
static int suffix_parse(const char *s, int *base, long *exp,
			enum quantity_format *format)
{
	const char *p;
	long v = 0;
	int neg = 0;

	for (size_t i = 0; i < NSUFFIXES; i++) {
		if (strcmp(suffixes[i].suffix, s) == 0) {
			*base = suffixes[i].base;
			*exp = suffixes[i].exp;
			*format = suffixes[i].format;
			return VG_OK;
		}
	}
	if ((s[0] != 'e' && s[0] != 'E') || s[1] == '\0')
		return VG_INVAL;
	p = s + 1;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!is_digit(*p))
		return VG_INVAL;
	for (; is_digit(*p); p++) {
		v = v * 10 + (*p - '0');
		if (v > EXP_LIMIT)
			return VG_RANGE;
	}
	if (*p)
		return VG_INVAL;
	*base = 10;
	*exp = neg ? -v : v;
	*format = QUANTITY_DECIMAL_EXPONENT;
	return VG_OK;
}

static int store(struct quantity *q, const char *digits, long exp10, int neg,
		 enum quantity_format format, struct vg_err *err)
{
	size_t n = strlen(digits);

	if (n >= sizeof(q->digits))
		return vg_err_set(err, VG_RANGE, "quantity has too many digits");
	memcpy(q->digits, digits, n + 1);
	q->exp10 = n ? (int)exp10 : 0;
	q->neg = n ? neg : 0;
	q->format = format;
	return VG_OK;
}

/*
 * The server's int64 fast path (resource.ParseQuantity): small decimal
 * values are kept exactly, without the rounding and the cap of the
 * general path. Returns 1 when it applies and *q is set.
 */
static int parse_fast(struct quantity *q, const char *num, size_t nnum,
		      const char *den, size_t nden, int base, long exp,
		      int neg, enum quantity_format format)
{
	long numlen = nnum ? (long)nnum : 1;
	struct bigdec b;
	char digits[sizeof(b.d) + 1];
	long exp10;

	if (base == 10) {
		if (18 - numlen - (long)nden < 0 || exp - (long)nden < -9)
			return 0;
		big_from(&b, num, nnum, den, nden);
		big_digits(&b, exp - (long)nden, digits, &exp10);
		return store(q, digits, exp10, neg, format, NULL) == VG_OK;
	}
	if (nden == 0 && 15 - numlen - exp * 3 / 10 - 1 >= 0) {
		uint64_t v = 0;

		for (size_t i = 0; i < nnum; i++)
			v = v * 10 + (uint64_t)(num[i] - '0');
		if (v > ((uint64_t)INT64_MAX >> exp))
			return 0;
		v <<= exp;
		snprintf(digits, sizeof(digits), "%" PRIu64, v);
		if (v == 0)
			digits[0] = '\0';
		big_from(&b, digits, strlen(digits), "", 0);
		big_digits(&b, 0, digits, &exp10);
		return store(q, digits, exp10, neg, format, NULL) == VG_OK;
	}
	return 0;
}

int quantity_parse(struct quantity *q, const char *s, struct vg_err *err)
{
	const char *p, *num, *den = "";
	size_t nnum, nden = 0;
	int neg = 0, have_digit = 0, base, rc, nonzero;
	long exp, scale, exp10;
	enum quantity_format format;
	struct bigdec b;
	char digits[sizeof(b.d) + 1];

	memset(q, 0, sizeof(*q));
	if (!s || !*s)
		return vg_err_set(err, VG_INVAL, "empty quantity");
	if (strlen(s) > QUANTITY_INPUT_MAX)
		return vg_err_set(err, VG_INVAL,
				  "quantity longer than %d characters",
				  QUANTITY_INPUT_MAX);
	p = s;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	for (; *p == '0'; p++)
		have_digit = 1;
	for (num = p; is_digit(*p); p++)
		have_digit = 1;
	nnum = (size_t)(p - num);
	if (*p == '.') {
		for (den = ++p; is_digit(*p); p++)
			have_digit = 1;
		nden = (size_t)(p - den);
	}
	if (!have_digit)
		return vg_err_set(err, VG_INVAL,
				  "quantity \"%s\" must start with a number",
				  s);
	rc = suffix_parse(p, &base, &exp, &format);
	if (rc == VG_RANGE)
		return vg_err_set(err, VG_RANGE,
				  "quantity \"%s\": exponent out of range", s);
	if (rc != VG_OK)
		return vg_err_set(err, VG_INVAL,
				  "quantity \"%s\": unknown suffix \"%s\"", s,
				  p);

	if (parse_fast(q, num, nnum, den, nden, base, exp, neg, format))
		return VG_OK;

	/* General path: exact value, rounded up to 1n, capped at 2^63-1. */
	big_from(&b, num, nnum, den, nden);
	scale = -(long)nden;
	if (base == 10)
		scale += exp;
	else
		for (long i = 0; i < exp / 10; i++)
			big_mul_small(&b, 1024);
	if (b.n > 0 && scale < -9) {
		big_drop_low(&b, -9 - scale, &nonzero);
		if (nonzero)
			big_add_one(&b);
		scale = -9;
	}
	big_digits(&b, scale, digits, &exp10);
	if (mag_cmp(digits, exp10, max_digits, 0) > 0) {
		memcpy(digits, max_digits, sizeof(max_digits));
		exp10 = 0;
	}
	if (format == QUANTITY_BINARY_SI && digits[0] &&
	    mag_cmp(digits, exp10, "1", 0) < 0)
		format = QUANTITY_DECIMAL_SI;
	return store(q, digits, exp10, neg, format, err);
}

/* digits * 10^exp10 as an integer, when it is one and fits. */
static int to_u64(const struct quantity *q, uint64_t *out)
{
	uint64_t v = 0;

	if (q->exp10 < 0)
		return 0;
	for (const char *p = q->digits; *p; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (int i = 0; i < q->exp10; i++) {
		if (v > UINT64_MAX / 10)
			return 0;
		v *= 10;
	}
	*out = v;
	return 1;
}

/* VG_OK when snprintf's result `n` fitted `size` bytes. */
static int put(size_t size, int n)
{
	return n < 0 || (size_t)n >= size ? VG_TOOLARGE : VG_OK;
}

int quantity_format(const struct quantity *q, char *out, size_t size)
{
	const char *sign = q->neg ? "-" : "";
	char m[QUANTITY_DIGITS_MAX + 3];
	const struct suffix_def *sd;
	uint64_t v;
	int e = q->exp10, r, k = 0;
	size_t n;

	if (!q->digits[0])
		return put(size, snprintf(out, size, "0"));
	/* Binary form only for whole values of at least 1Ki (CanonicalizeBytes). */
	if (q->format == QUANTITY_BINARY_SI &&
	    mag_cmp(q->digits, q->exp10, "1024", 0) >= 0 && to_u64(q, &v)) {
		while (k < 60 && v % 1024 == 0) {
			v /= 1024;
			k += 10;
		}
		sd = suffix_by_exp(2, k);
		return put(size,
			   snprintf(out, size, "%s%" PRIu64 "%s", sign, v,
				    sd ? sd->suffix : ""));
	}
	/* Decimal: the exponent goes down to a multiple of three. */
	n = strlen(q->digits);
	memcpy(m, q->digits, n + 1);
	r = e % 3;
	if (r == 1 || r == -2) {
		memcpy(m + n, "0", 2);
		e -= 1;
	} else if (r == 2 || r == -1) {
		memcpy(m + n, "00", 3);
		e -= 2;
	}
	sd = q->format == QUANTITY_DECIMAL_EXPONENT ? NULL : suffix_by_exp(10, e);
	if (sd)
		return put(size,
			   snprintf(out, size, "%s%s%s", sign, m, sd->suffix));
	if (e == 0)
		return put(size, snprintf(out, size, "%s%s", sign, m));
	/* beyond E (10^18) DecimalSI falls back to exponent notation too */
	return put(size, snprintf(out, size, "%s%se%d", sign, m, e));
}

int quantity_cmp(const struct quantity *a, const struct quantity *b)
{
	int sa = a->digits[0] ? (a->neg ? -1 : 1) : 0;
	int sb = b->digits[0] ? (b->neg ? -1 : 1) : 0;
	int c;

	if (sa != sb)
		return sa < sb ? -1 : 1;
	c = mag_cmp(a->digits, a->exp10, b->digits, b->exp10);
	return sa < 0 ? -c : c;
}

int quantity_canonical(const char *s, char *out, size_t size,
		       struct vg_err *err)
{
	struct quantity q;
	int rc = quantity_parse(&q, s, err);

	if (rc != VG_OK)
		return rc;
	if (quantity_format(&q, out, size) != VG_OK)
		return vg_err_set(err, VG_TOOLARGE,
				  "quantity \"%s\" does not fit the buffer", s);
	return VG_OK;
}

int quantity_parse_json(struct quantity *q, const json_t *v,
			struct vg_err *err)
{
	char num[32];

	if (json_is_string(v))
		return quantity_parse(q, json_string_value(v), err);
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return quantity_parse(q, num, err);
	}
	return vg_err_set(err, VG_INVAL,
			  "a quantity must be a string or an integer");
}

int quantity_canonical_json(const json_t *v, char *out, size_t size,
			    struct vg_err *err)
{
	struct quantity q;
	int rc = quantity_parse_json(&q, v, err);

	if (rc != VG_OK)
		return rc;
	if (quantity_format(&q, out, size) != VG_OK)
		return vg_err_set(err, VG_TOOLARGE,
				  "quantity does not fit the buffer");
	return VG_OK;
}
