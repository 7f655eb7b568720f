/*
 * body.c - request bodies with objects inside: the scalar members of each
 * object go to vg_json_validate's field table, the objects and arrays of
 * objects are described by gw_member lists, recursively. Messages name
 * the full path of the offending member, "findings[3].severity: ...", so
 * an agent can tell which finding of a batch was refused.
 */
#include "gateway.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 128

/* snprintf whose truncation is intended: paths are cut at the buffer */
static void __attribute__((format(printf, 3, 4)))
fmt(char *out, size_t size, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(out, size, f, ap);
	va_end(ap);
}

static const struct gw_member *member_find(const struct gw_member *m,
                                           const char *name)
{
	for (; m && m->name; m++)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static int invalid(struct vg_err *err, const char *path, const char *what)
{
	vg_err_set(err, VG_INVAL, "%s: %s", *path ? path : "body", what);
	if (err)
		fmt(err->reason, sizeof(err->reason), "%s", path);
	return VG_INVAL;
}

/* Prefix a message of vg_json_validate ("name: why") with `path`. */
static int prefixed(struct vg_err *err, const char *path)
{
	char msg[VG_ERR_MSG_MAX], reason[sizeof(err->reason)];

	if (!err || !*path)
		return VG_INVAL;
	fmt(msg, sizeof(msg), "%s", err->msg);
	fmt(reason, sizeof(reason), "%s", err->reason);
	vg_err_set(err, VG_INVAL, "%s.%s", path, msg);
	fmt(err->reason, sizeof(err->reason), "%s%s%s", path,
	    reason[0] ? "." : "", reason);
	return VG_INVAL;
}

static int check_object(const json_t *obj, const struct vg_json_field *fields,
                        const struct gw_member *members, const char *path,
                        struct vg_err *err);

static int check_member(const json_t *v, const struct gw_member *m,
                        const char *path, struct vg_err *err)
{
	char sub[PATH_MAX_LEN];
	size_t i;
	const json_t *it;
	int rc;

	if (m->kind == GW_MEMBER_OBJECT) {
		if (!json_is_object(v))
			return invalid(err, path, "must be an object");
		return m->fields ? check_object(v, m->fields, m->members, path,
		                                err)
		                 : VG_OK;
	}
	if (!json_is_array(v))
		return invalid(err, path, "must be an array of objects");
	if (m->max_items && json_array_size(v) > m->max_items) {
		char what[64];

		fmt(what, sizeof(what), "too many items (at most %zu)",
		    m->max_items);
		return invalid(err, path, what);
	}
	json_array_foreach(v, i, it)
	{
		fmt(sub, sizeof(sub), "%s[%zu]", path, i);
		if (!json_is_object(it))
			return invalid(err, sub, "must be an object");
		if (m->fields &&
		    (rc = check_object(it, m->fields, m->members, sub, err)))
			return rc;
	}
	return VG_OK;
}

static int check_object(const json_t *obj, const struct vg_json_field *fields,
                        const struct gw_member *members, const char *path,
                        struct vg_err *err)
{
	static const struct vg_json_field none[] = {
		{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0}};
	json_t *scalars;
	const char *key;
	json_t *v;
	int rc;

	if (!json_is_object(obj))
		return invalid(err, path, "must be a JSON object");
	if (!members)
		return vg_json_validate(obj, fields ? fields : none, err) ==
		                       VG_OK
		               ? VG_OK
		               : prefixed(err, path);
	/* a shallow copy without the nested members for the flat table */
	if (!(scalars = json_copy((json_t *)obj)))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	for (const struct gw_member *m = members; m->name; m++)
		json_object_del(scalars, m->name);
	rc = vg_json_validate(scalars, fields ? fields : none, err);
	json_decref(scalars);
	if (rc != VG_OK)
		return prefixed(err, path);
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct gw_member *m = member_find(members, key);
		char sub[PATH_MAX_LEN];

		if (!m)
			continue;
		fmt(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
		if (json_is_null(v) && (m->flags & VG_JSON_NULLABLE))
			continue;
		if ((rc = check_member(v, m, sub, err)) != VG_OK)
			return rc;
	}
	for (const struct gw_member *m = members; m->name; m++) {
		const json_t *v2 = json_object_get(obj, m->name);
		char sub[PATH_MAX_LEN];

		if ((m->flags & VG_JSON_REQUIRED) &&
		    (!v2 || json_is_null(v2))) {
			fmt(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "",
			    m->name);
			return invalid(err, sub, "is required");
		}
	}
	return VG_OK;
}

int gw_body_check(const json_t *obj, const struct vg_json_field *fields,
                  const struct gw_member *members, struct vg_err *err)
{
	return check_object(obj, fields, members, "", err);
}
