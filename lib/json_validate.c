/*
 * json_validate.c - validation of JSON objects against a field table.
 */
#include "vigil/json_validate.h"

#include "vigil/json.h"

#include <ctype.h>
#include <string.h>

#define DEFAULT_ITEM_MAX 256

static int invalid(struct vg_err *err, const char *field, const char *what)
{
	vg_err_set(err, VG_INVAL, "%s: %s", *field ? field : "body", what);
	if (err)
		snprintf(err->reason, sizeof(err->reason), "%s", field);
	return VG_INVAL;
}

static int is_uuid(const char *s)
{
	static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	for (i = 0; form[i]; i++) {
		if (form[i] == '-' ? s[i] != '-'
		                   : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[i] == '\0';
}

static int digits(const char *s, int n, int lo, int hi)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

int vg_json_is_timestamp(const char *s)
{
	size_t i = 19;

	/* YYYY-MM-DDTHH:MM:SS */
	if (strlen(s) < 20 || digits(s, 4, 1, 9999) < 0 || s[4] != '-' ||
	    digits(s + 5, 2, 1, 12) < 0 || s[7] != '-' ||
	    digits(s + 8, 2, 1, 31) < 0 || (s[10] != 'T' && s[10] != 't') ||
	    digits(s + 11, 2, 0, 23) < 0 || s[13] != ':' ||
	    digits(s + 14, 2, 0, 59) < 0 || s[16] != ':' ||
	    digits(s + 17, 2, 0, 60) < 0)
		return 0;
	if (s[i] == '.') {
		size_t f = ++i;

		while (isdigit((unsigned char)s[i]))
			i++;
		if (i == f || i - f > 9)
			return 0;
	}
	if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
		return 1;
	if ((s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2, 0, 23) >= 0 &&
	    s[i + 3] == ':' && digits(s + i + 4, 2, 0, 59) >= 0 &&
	    s[i + 6] == '\0')
		return 1;
	return 0;
}

static int has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

static int check_string(const json_t *v, const struct vg_json_field *f,
                        struct vg_err *err)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (f->min && n < (size_t)f->min)
		return invalid(err, f->name, "too short");
	if (f->max && n > (size_t)f->max)
		return invalid(err, f->name, "too long");
	if ((f->flags & VG_JSON_TEXT) && has_control(s, n))
		return invalid(err, f->name,
		               "control characters are not allowed");
	if (f->enumv) {
		for (size_t i = 0; f->enumv[i]; i++)
			if (strcmp(f->enumv[i], s) == 0)
				return VG_OK;
		return invalid(err, f->name, "not one of the allowed values");
	}
	return VG_OK;
}

static int check_array(const json_t *v, const struct vg_json_field *f,
                       struct vg_err *err)
{
	size_t n = json_array_size(v), i;
	size_t item_max = f->item_max ? f->item_max : DEFAULT_ITEM_MAX;
	const json_t *it;

	if (f->min && n < (size_t)f->min)
		return invalid(err, f->name, "too few items");
	if (f->max && n > (size_t)f->max)
		return invalid(err, f->name, "too many items");
	json_array_foreach(v, i, it)
	{
		size_t l;

		if (!json_is_string(it))
			return invalid(err, f->name, "items must be strings");
		l = json_string_length(it);
		if (l == 0 || l > item_max ||
		    has_control(json_string_value(it), l))
			return invalid(err, f->name,
			               "an item is empty, too long or has "
			               "control characters");
		if (f->enumv) {
			size_t k;

			for (k = 0; f->enumv[k]; k++)
				if (strcmp(f->enumv[k],
				           json_string_value(it)) == 0)
					break;
			if (!f->enumv[k])
				return invalid(err, f->name,
				               "an item is not one of the "
				               "allowed values");
		}
	}
	return VG_OK;
}

static int check_value(const json_t *v, const struct vg_json_field *f,
                       struct vg_err *err)
{
	switch (f->type) {
	case VG_JSON_STRING:
		if (!json_is_string(v))
			return invalid(err, f->name, "must be a string");
		return check_string(v, f, err);
	case VG_JSON_UUID:
		if (!json_is_string(v) || !is_uuid(json_string_value(v)))
			return invalid(err, f->name, "must be a UUID string");
		return VG_OK;
	case VG_JSON_TIMESTAMP:
		if (!json_is_string(v) ||
		    !vg_json_is_timestamp(json_string_value(v)))
			return invalid(err, f->name,
			               "must be an RFC 3339 date-time");
		return VG_OK;
	case VG_JSON_INT:
		if (!json_is_integer(v))
			return invalid(err, f->name, "must be an integer");
		if ((f->min || f->max) && (json_integer_value(v) < f->min ||
		                           json_integer_value(v) > f->max))
			return invalid(err, f->name, "out of range");
		return VG_OK;
	case VG_JSON_BOOL:
		if (!json_is_boolean(v))
			return invalid(err, f->name, "must be true or false");
		return VG_OK;
	case VG_JSON_STRING_ARRAY:
		if (!json_is_array(v))
			return invalid(err, f->name,
			               "must be an array of strings");
		return check_array(v, f, err);
	}
	return invalid(err, f->name, "unknown field type");
}

static const struct vg_json_field *lookup(const struct vg_json_field *fields,
                                          const char *name)
{
	for (const struct vg_json_field *f = fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

int vg_json_validate(const json_t *obj, const struct vg_json_field *fields,
                     struct vg_err *err)
{
	const char *key;
	const json_t *v;
	int rc;

	if (!json_is_object(obj))
		return invalid(err, "", "must be a JSON object");
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct vg_json_field *f = lookup(fields, key);

		if (!f) {
			char name[64];

			/* the member name comes from the client: keep it
			 * short and printable in the message */
			snprintf(name, sizeof(name), "%s", key);
			for (char *p = name; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			return invalid(err, name, "unknown field");
		}
		if (json_is_null(v) && (f->flags & VG_JSON_NULLABLE))
			continue;
		if ((rc = check_value(v, f, err)) != VG_OK)
			return rc;
	}
	for (const struct vg_json_field *f = fields; f->name; f++) {
		const json_t *m = json_object_get(obj, f->name);

		if ((f->flags & VG_JSON_REQUIRED) && (!m || json_is_null(m)))
			return invalid(err, f->name, "is required");
	}
	return VG_OK;
}

int vg_json_validate_body(const char *body, size_t len, size_t max,
                          const struct vg_json_field *fields, json_t **out,
                          struct vg_err *err)
{
	json_t *doc = NULL;
	int rc;

	*out = NULL;
	if (len == 0) {
		doc = json_object();
		if (!doc)
			return vg_err_set(err, VG_NOMEM, "out of memory");
	} else if ((rc = vg_json_loadb(body, len, max, &doc, err)) != VG_OK) {
		return rc;
	}
	if ((rc = vg_json_validate(doc, fields, err)) != VG_OK) {
		json_decref(doc);
		return rc;
	}
	*out = doc;
	return VG_OK;
}
