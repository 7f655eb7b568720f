/*
 * json.h - helpers over jansson: strict loading, path getters, dumping into
 * a vg_buf, string escaping, and equality/subset tests.
 *
 * Paths name a value inside a document: object keys separated by dots,
 * array indexes in brackets, and keys that contain dots or brackets quoted
 * in brackets:
 *
 *   metadata.name
 *   spec.template.spec.containers[0].image
 *   metadata.labels["app.kubernetes.io/name"]
 *
 * Inside a quoted key, \" and \\ stand for " and \. The empty path names
 * the root itself.
 */
#ifndef VG_JSON_H
#define VG_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/buf.h"
#include "vigil/err.h"

/* Default input bound of vg_json_loadb when `max` is 0. */
#define VG_JSON_MAX_INPUT ((size_t)64 << 20)

/*
 * Parse `len` bytes holding exactly one JSON value (any type) into a new
 * reference. Strict: duplicate object keys, invalid UTF-8, \u0000 in
 * strings, integers outside 64 bits and trailing data are errors. Input
 * longer than `max` bytes (0: VG_JSON_MAX_INPUT) fails with VG_TOOLARGE
 * before parsing. Parse errors are VG_PARSE with "line L:C (byte N)" in
 * the message.
 */
int vg_json_loadb(const char *data, size_t len, size_t max, json_t **out,
		  struct vg_err *err);

/*
 * Find the value at `path`: 0 and a borrowed *out, VG_NOTFOUND when some
 * step is missing or of the wrong container type, VG_INVAL for a malformed
 * path. `out` may be NULL to test presence.
 */
int vg_json_find(const json_t *root, const char *path, json_t **out);

/* Borrowed value at `path`, or NULL (absent or malformed path). */
json_t *vg_json_get(const json_t *root, const char *path);
/* Borrowed string at `path`; `def` when absent or not a string. */
const char *vg_json_get_str(const json_t *root, const char *path,
			    const char *def);
/* Integer at `path` (a real with an integral value in range counts);
 * `def` otherwise. */
long long vg_json_get_int(const json_t *root, const char *path,
			  long long def);
/* Any number at `path` as a double; `def` otherwise. */
double vg_json_get_num(const json_t *root, const char *path, double def);
/* 1 or 0 for a JSON boolean at `path`; `def` otherwise. */
int vg_json_get_bool(const json_t *root, const char *path, int def);
/* Borrowed object / array at `path`, or NULL. */
json_t *vg_json_get_object(const json_t *root, const char *path);
json_t *vg_json_get_array(const json_t *root, const char *path);

/*
 * Store `value` (stolen, even on failure) at `path`, creating missing
 * intermediate objects. Array steps must name an existing element.
 * Returns 0, VG_INVAL (malformed or empty path, a step through a
 * non-container), VG_NOTFOUND (index out of range) or VG_NOMEM.
 */
int vg_json_set_new(json_t *root, const char *path, json_t *value);

/*
 * Append the serialisation of `v` (any type) to `out`. `flags` are
 * jansson's dump flags: JSON_SORT_KEYS for a canonical key order,
 * JSON_INDENT(n) or JSON_COMPACT. On failure `out` is left as it was.
 * Returns 0, VG_NOMEM, VG_TOOLARGE (the buffer's limit) or VG_INVAL.
 */
int vg_json_dumps(const json_t *v, size_t flags, struct vg_buf *out);

/*
 * Append `s` (`len` bytes) to `out` as a quoted JSON string literal:
 * ", \ and control characters escaped, invalid UTF-8 replaced by U+FFFD so
 * the result is always valid JSON. Returns 0, VG_NOMEM or VG_TOOLARGE; on
 * failure `out` is left as it was.
 */
int vg_json_escape(struct vg_buf *out, const char *s, size_t len);

/*
 * 1 when `a` and `b` are equal: same type and value, objects with the same
 * keys, arrays element by element; numbers compare by value, so 3 equals
 * 3.0. Two NULLs are equal.
 */
int vg_json_equal(const json_t *a, const json_t *b);

/*
 * 1 when `live` already holds everything `desired` says: every key of a
 * desired object exists in the live object with a matching value
 * (recursively; extra live keys are ignored), arrays have the same length
 * and match element by element, scalars are vg_json_equal. A null in a
 * desired object matches a missing or null live key. Used to skip writes
 * when a live Kubernetes object already matches the desired one.
 */
int vg_json_is_subset(const json_t *desired, const json_t *live);

#endif
