/*
 * quantity.h - Kubernetes resource quantities ("500m", "1Gi", "1e3").
 *
 * Parses a quantity exactly as the API server does (resource.ParseQuantity:
 * decimal SI suffixes n u m k M G T P E, binary suffixes Ki .. Ei, and
 * exponents e3 / E-3; values needing more than nano precision are rounded
 * up, out-of-range ones capped as the server caps them) and prints the
 * canonical form the server stores and returns ("1000m" -> "1",
 * "0.5" -> "500m", "1024Mi" -> "1Gi", "1.5Gi" -> "1536Mi"). The operator
 * writes every quantity in that form so that an unchanged intent compares
 * equal with the live object.
 *
 * Stricter than the server in two corner cases that no schema accepts:
 * at least one digit is required ("-" and "." are errors), and exponents
 * beyond +-1000000 and inputs longer than QUANTITY_INPUT_MAX are refused.
 */
#ifndef VIGIL_OPERATOR_QUANTITY_H
#define VIGIL_OPERATOR_QUANTITY_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/err.h"

/* The suffix family a quantity was written in; it decides how it prints. */
enum quantity_format {
	QUANTITY_DECIMAL_SI = 0,   /* "", m, k, M ... */
	QUANTITY_BINARY_SI,	   /* Ki, Mi, Gi ... */
	QUANTITY_DECIMAL_EXPONENT, /* e3, E-6 */
};

#define QUANTITY_INPUT_MAX 256
#define QUANTITY_DIGITS_MAX 48
/* Room for any canonical form, NUL included. */
#define QUANTITY_STR_MAX 72

/*
 * An exact decimal value: |value| = digits * 10^exp10. `digits` holds the
 * significant digits without leading or trailing zeros ("" for zero).
 */
struct quantity {
	int neg;
	char digits[QUANTITY_DIGITS_MAX];
	int exp10;
	enum quantity_format format;
};

/* Parse `s` into *q. VG_INVAL (with the reason in err) or VG_RANGE. */
int quantity_parse(struct quantity *q, const char *s, struct vg_err *err);

/* The canonical string of `q` into `out`. VG_OK or VG_TOOLARGE. */
int quantity_format(const struct quantity *q, char *out, size_t size);

/* <0, 0, >0 as a is less than, equal to or greater than b. */
int quantity_cmp(const struct quantity *a, const struct quantity *b);

/* Parse and print canonically in one step. */
int quantity_canonical(const char *s, char *out, size_t size,
		       struct vg_err *err);

/*
 * The canonical string of a JSON quantity: a string, or an integer (an
 * int-or-string schema field); anything else is VG_INVAL.
 */
int quantity_canonical_json(const json_t *v, char *out, size_t size,
			    struct vg_err *err);

/* Parse a JSON quantity (string or integer) into *q. */
int quantity_parse_json(struct quantity *q, const json_t *v,
			struct vg_err *err);

#endif
