/*
 * json_validate.h - a small declarative validator for JSON request bodies.
 *
 * A body is an object whose members are described by a table; anything not
 * in the table is refused, so a misspelt field is an error rather than a
 * silently ignored one:
 *
 *   static const char *const roles[] = {"admin", "viewer", NULL};
 *   static const struct vg_json_field key_fields[] = {
 *	{"name", VG_JSON_STRING, VG_JSON_REQUIRED, .min = 1, .max = 128},
 *	{"role", VG_JSON_STRING, VG_JSON_REQUIRED, .enumv = roles},
 *	{"expires_at", VG_JSON_TIMESTAMP, VG_JSON_NULLABLE},
 *	{NULL},
 *   };
 *   rc = vg_json_validate_body(body, len, 64 << 10, key_fields, &doc, &err);
 *
 * Failures: VG_PARSE (not JSON, invalid UTF-8, numbers beyond 64 bits or
 * doubles, trailing bytes, duplicate keys: answer 400), VG_TOOLARGE (over
 * the size limit: 413), VG_INVAL (valid JSON that breaks the table: 422).
 * err->reason holds the offending member's name for VG_INVAL.
 */
#ifndef VG_JSON_VALIDATE_H
#define VG_JSON_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/err.h"

enum vg_json_type {
	VG_JSON_STRING, /* min/max: length in bytes */
	VG_JSON_INT,    /* min/max: value */
	VG_JSON_BOOL,
	VG_JSON_UUID,         /* a string in 8-4-4-4-12 hex form */
	VG_JSON_TIMESTAMP,    /* an RFC 3339 date-time string */
	VG_JSON_STRING_ARRAY, /* min/max: items; each item 1..item_max */
};

enum {
	VG_JSON_REQUIRED = 1 << 0,
	VG_JSON_NULLABLE = 1 << 1, /* null is accepted (as absent) */
	VG_JSON_TEXT = 1 << 2,     /* strings: no control characters */
};

struct vg_json_field {
	const char *name; /* NULL ends the table */
	enum vg_json_type type;
	unsigned flags;
	long long min, max;       /* 0, 0: no bound */
	const char *const *enumv; /* strings: NULL-terminated allowed values */
	size_t item_max;          /* STRING_ARRAY: longest item; 0: 256 */
};

/*
 * Check that `obj` is an object whose members all appear in `fields` with
 * the right type and within bounds, and that every required member is
 * present. Returns VG_OK or VG_INVAL (err says which member and why).
 */
int vg_json_validate(const json_t *obj, const struct vg_json_field *fields,
                     struct vg_err *err);

/*
 * Parse `len` bytes (strictly: see vg_json_loadb) and validate them against
 * `fields`; an empty body counts as {}. On VG_OK *out is a new reference.
 */
int vg_json_validate_body(const char *body, size_t len, size_t max,
                          const struct vg_json_field *fields, json_t **out,
                          struct vg_err *err);

/* 1 when `s` is an RFC 3339 date-time ("2026-11-28T12:00:00Z",
 * fractional seconds and a numeric offset allowed). */
int vg_json_is_timestamp(const char *s);

#endif
