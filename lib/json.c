/* json.c - strict loading, path access, dumping and comparison of jansson
 * values. */
#include "vigil/json.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Longest quoted key a path may hold; Kubernetes keys stay below 320. */
#define PATH_KEY_MAX 512
/* Recursion bound of the comparisons; jansson's parser stops at 2048. */
#define COMPARE_MAX_DEPTH 4096

/* --- loading -------------------------------------------------------------- */

int vg_json_loadb(const char *data, size_t len, size_t max, json_t **out,
		  struct vg_err *err)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	if (!data && len)
		return vg_err_set(err, VG_INVAL, "json: no input");
	if (!max)
		max = VG_JSON_MAX_INPUT;
	if (len > max)
		return vg_err_set(err, VG_TOOLARGE,
				  "json: input of %zu bytes exceeds %zu", len,
				  max);
	v = json_loadb(data ? data : "", len,
		       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v) {
		int code = json_error_code(&jerr) == json_error_out_of_memory ?
				   VG_NOMEM :
				   VG_PARSE;

		return vg_err_set(err, code, "json line %d:%d (byte %d): %s",
				  jerr.line, jerr.column, jerr.position,
				  jerr.text);
	}
	*out = v;
	return VG_OK;
}

/* --- paths ---------------------------------------------------------------- */

struct step {
	int is_index;
	size_t index;
	const char *key; /* into the path or into qkey */
	size_t key_len;
	char qkey[PATH_KEY_MAX];
};

/* Parse the step at *pp: 1 and advance, 0 at the end, VG_INVAL when
 * malformed. */
static int next_step(const char **pp, int first, struct step *st)
{
	const char *p = *pp;
	size_t n = 0;

	if (!*p)
		return 0;
	st->is_index = 0;
	if (*p == '[' && p[1] == '"') {
		for (p += 2; *p && *p != '"'; p++) {
			if (*p == '\\') {
				p++;
				if (*p != '"' && *p != '\\')
					return VG_INVAL;
			}
			if (n == sizeof(st->qkey))
				return VG_INVAL;
			st->qkey[n++] = *p;
		}
		if (p[0] != '"' || p[1] != ']')
			return VG_INVAL;
		p += 2;
		st->key = st->qkey;
		st->key_len = n;
	} else if (*p == '[') {
		size_t idx = 0;

		p++;
		if (*p < '0' || *p > '9')
			return VG_INVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (idx > (SIZE_MAX - 9) / 10)
				return VG_INVAL;
			idx = idx * 10 + (size_t)(*p - '0');
		}
		if (*p != ']')
			return VG_INVAL;
		p++;
		st->is_index = 1;
		st->index = idx;
	} else {
		const char *start;

		if (!first) {
			if (*p != '.')
				return VG_INVAL;
			p++;
		}
		start = p;
		while (*p && *p != '.' && *p != '[')
			p++;
		if (p == start)
			return VG_INVAL;
		st->key = start;
		st->key_len = (size_t)(p - start);
	}
	*pp = p;
	return 1;
}

/* The child named by `st`, or NULL. */
static json_t *step_get(const json_t *cur, const struct step *st)
{
	if (st->is_index)
		return json_is_array(cur) ? json_array_get(cur, st->index) :
					    NULL;
	return json_is_object(cur) ? json_object_getn(cur, st->key,
						      st->key_len) :
				     NULL;
}

int vg_json_find(const json_t *root, const char *path, json_t **out)
{
	json_t *cur = (json_t *)root;
	struct step st;
	int rc, first = 1;

	if (out)
		*out = NULL;
	if (!path)
		return VG_INVAL;
	while ((rc = next_step(&path, first, &st)) == 1) {
		first = 0;
		if (cur)
			cur = step_get(cur, &st);
	}
	if (rc)
		return rc;
	if (!cur)
		return VG_NOTFOUND;
	if (out)
		*out = cur;
	return VG_OK;
}

json_t *vg_json_get(const json_t *root, const char *path)
{
	json_t *v = NULL;

	return vg_json_find(root, path, &v) == VG_OK ? v : NULL;
}

const char *vg_json_get_str(const json_t *root, const char *path,
			    const char *def)
{
	json_t *v = vg_json_get(root, path);

	return json_is_string(v) ? json_string_value(v) : def;
}

long long vg_json_get_int(const json_t *root, const char *path,
			  long long def)
{
	json_t *v = vg_json_get(root, path);
	double d;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (!json_is_real(v))
		return def;
	d = json_real_value(v);
	/* 2^63 is exact as a double; the range is [-2^63, 2^63) */
	if (d != floor(d) || d < -9223372036854775808.0 ||
	    d >= 9223372036854775808.0)
		return def;
	return (long long)d;
}

double vg_json_get_num(const json_t *root, const char *path, double def)
{
	json_t *v = vg_json_get(root, path);

	return json_is_number(v) ? json_number_value(v) : def;
}

int vg_json_get_bool(const json_t *root, const char *path, int def)
{
	json_t *v = vg_json_get(root, path);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

json_t *vg_json_get_object(const json_t *root, const char *path)
{
	json_t *v = vg_json_get(root, path);

	return json_is_object(v) ? v : NULL;
}

json_t *vg_json_get_array(const json_t *root, const char *path)
{
	json_t *v = vg_json_get(root, path);

	return json_is_array(v) ? v : NULL;
}

/* Store `value` (stolen) as the child `st` of `cur`. */
static int step_set(json_t *cur, const struct step *st, json_t *value)
{
	if (st->is_index) {
		if (!json_is_array(cur)) {
			json_decref(value);
			return VG_INVAL;
		}
		if (st->index >= json_array_size(cur)) {
			json_decref(value);
			return VG_NOTFOUND;
		}
		return json_array_set_new(cur, st->index, value) ? VG_NOMEM :
								   VG_OK;
	}
	if (!json_is_object(cur)) {
		json_decref(value);
		return VG_INVAL;
	}
	return json_object_setn_new(cur, st->key, st->key_len, value) ?
		       VG_NOMEM :
		       VG_OK;
}

int vg_json_set_new(json_t *root, const char *path, json_t *value)
{
	struct step steps[2], *st = &steps[0], *next = &steps[1], *tmp;
	json_t *cur = root, *child;
	int rc;

	if (!value)
		return VG_NOMEM;
	if (!path || !root) {
		rc = VG_INVAL;
		goto out;
	}
	rc = next_step(&path, 1, st);
	if (rc == 0)
		rc = VG_INVAL; /* the root cannot be replaced in place */
	if (rc < 0)
		goto out;
	for (;;) {
		rc = next_step(&path, 0, next);
		if (rc < 0)
			goto out;
		if (rc == 0)
			return step_set(cur, st, value);
		child = step_get(cur, st);
		if (!child) {
			if (st->is_index || !json_is_object(cur)) {
				rc = st->is_index && json_is_array(cur) ?
					     VG_NOTFOUND :
					     VG_INVAL;
				goto out;
			}
			child = json_object();
			if (!child) {
				rc = VG_NOMEM;
				goto out;
			}
			rc = step_set(cur, st, child);
			if (rc)
				goto out;
		}
		cur = child;
		tmp = st;
		st = next;
		next = tmp;
	}
out:
	json_decref(value);
	return rc;
}

/* --- output --------------------------------------------------------------- */

struct dump_ctx {
	struct vg_buf *out;
	int rc;
};

static int dump_cb(const char *p, size_t n, void *data)
{
	struct dump_ctx *ctx = data;

	ctx->rc = vg_buf_append(ctx->out, p, n);
	return ctx->rc ? -1 : 0;
}

static void truncate_to(struct vg_buf *b, size_t len)
{
	if (b->data && b->len > len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

int vg_json_dumps(const json_t *v, size_t flags, struct vg_buf *out)
{
	struct dump_ctx ctx = { .out = out, .rc = VG_OK };
	size_t saved = out->len;

	if (!v)
		return VG_INVAL;
	if (json_dump_callback(v, dump_cb, &ctx, flags | JSON_ENCODE_ANY)) {
		truncate_to(out, saved);
		return ctx.rc ? ctx.rc : VG_INVAL;
	}
	return VG_OK;
}

/* Length of the valid UTF-8 sequence at `s` (at most `n` bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static const char *const short_escapes[0x20] = {
	['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n",
	['\r'] = "\\r", ['\t'] = "\\t",
};

int vg_json_escape(struct vg_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t saved = out->len, i = 0, run;
	int rc;

	rc = vg_buf_reserve(out, len + 2);
	if (rc)
		return rc;
	rc = vg_buf_append_byte(out, '"');
	while (!rc && i < len) {
		unsigned char c = p[i];

		/* copy the longest stretch that needs no escaping at once */
		for (run = 0; i + run < len; run += utf8_seq(p + i + run,
							      len - i - run)) {
			c = p[i + run];
			if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f ||
			    !utf8_seq(p + i + run, len - i - run))
				break;
		}
		if (run) {
			rc = vg_buf_append(out, p + i, run);
			i += run;
			continue;
		}
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };

			rc = vg_buf_append(out, esc, 2);
		} else if (c < 0x20 && short_escapes[c]) {
			rc = vg_buf_append(out, short_escapes[c], 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4],
					hex[c & 15] };

			rc = vg_buf_append(out, esc, sizeof(esc));
		} else {
			rc = vg_buf_append(out, "\xef\xbf\xbd", 3);
		}
		i++;
	}
	if (!rc)
		rc = vg_buf_append_byte(out, '"');
	if (rc)
		truncate_to(out, saved);
	return rc;
}

/* --- comparison ----------------------------------------------------------- */

/* Numbers by value: an integer equals a real holding the same integer. */
static int number_equal(const json_t *a, const json_t *b)
{
	double d;

	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	if (json_is_real(a) && json_is_real(b))
		return json_real_value(a) == json_real_value(b);
	if (json_is_real(a)) {
		const json_t *t = a;

		a = b;
		b = t;
	}
	d = json_real_value(b);
	if (d != floor(d) || d < -9223372036854775808.0 ||
	    d >= 9223372036854775808.0)
		return 0;
	return json_integer_value(a) == (json_int_t)d;
}

static int equal_at(const json_t *a, const json_t *b, int depth)
{
	const char *key;
	size_t key_len, i;
	json_t *v;

	if (a == b)
		return 1;
	if (!a || !b || depth > COMPARE_MAX_DEPTH)
		return 0;
	if (json_is_number(a) && json_is_number(b))
		return number_equal(a, b);
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_keylen_foreach((json_t *)a, key, key_len, v) {
			if (!equal_at(v, json_object_getn(b, key, key_len),
				      depth + 1))
				return 0;
		}
		return 1;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach(a, i, v)
			if (!equal_at(v, json_array_get(b, i), depth + 1))
				return 0;
		return 1;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b),
			      json_string_length(a)) == 0;
	default:
		return 1; /* true, false, null: the type is the value */
	}
}

int vg_json_equal(const json_t *a, const json_t *b)
{
	return equal_at(a, b, 0);
}

static int subset_at(const json_t *d, const json_t *l, int depth)
{
	const char *key;
	size_t key_len, i;
	json_t *v, *lv;

	if (depth > COMPARE_MAX_DEPTH)
		return 0;
	if (json_is_object(d)) {
		if (!json_is_object(l))
			return 0;
		json_object_keylen_foreach((json_t *)d, key, key_len, v) {
			lv = json_object_getn(l, key, key_len);
			if (json_is_null(v) && (!lv || json_is_null(lv)))
				continue;
			if (!lv || !subset_at(v, lv, depth + 1))
				return 0;
		}
		return 1;
	}
	if (json_is_array(d)) {
		if (!json_is_array(l) || json_array_size(d) != json_array_size(l))
			return 0;
		json_array_foreach(d, i, v)
			if (!subset_at(v, json_array_get(l, i), depth + 1))
				return 0;
		return 1;
	}
	return equal_at(d, l, depth);
}

int vg_json_is_subset(const json_t *desired, const json_t *live)
{
	return subset_at(desired, live, 0);
}
