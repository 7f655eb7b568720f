/*
 * openapi.c - GET /v1/openapi.json: the OpenAPI 3.0 description of the
 * API, generated from the route table, the body field tables and the
 * permission table, so it cannot drift from what the gateway does.
 */
#include "gateway.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static json_t *field_schema(const struct vg_json_field *f)
{
	json_t *s = json_object();

	switch (f->type) {
	case VG_JSON_STRING:
		json_object_set_new(s, "type", json_string("string"));
		if (f->min)
			json_object_set_new(s, "minLength",
			                    json_integer(f->min));
		if (f->max)
			json_object_set_new(s, "maxLength",
			                    json_integer(f->max));
		if (f->enumv) {
			json_t *e = json_array();

			for (size_t i = 0; f->enumv[i]; i++)
				json_array_append_new(e,
				                      json_string(f->enumv[i]));
			json_object_set_new(s, "enum", e);
		}
		break;
	case VG_JSON_INT:
		json_object_set_new(s, "type", json_string("integer"));
		json_object_set_new(s, "format", json_string("int64"));
		if (f->min || f->max) {
			json_object_set_new(s, "minimum", json_integer(f->min));
			json_object_set_new(s, "maximum", json_integer(f->max));
		}
		break;
	case VG_JSON_BOOL:
		json_object_set_new(s, "type", json_string("boolean"));
		break;
	case VG_JSON_UUID:
		json_object_set_new(s, "type", json_string("string"));
		json_object_set_new(s, "format", json_string("uuid"));
		break;
	case VG_JSON_TIMESTAMP:
		json_object_set_new(s, "type", json_string("string"));
		json_object_set_new(s, "format", json_string("date-time"));
		break;
	case VG_JSON_STRING_ARRAY:
		json_object_set_new(s, "type", json_string("array"));
		json_object_set_new(
			s, "items",
			json_pack(
				"{s:s, s:i, s:I}", "type", "string",
				"minLength", 1, "maxLength",
				(json_int_t)(f->item_max ? f->item_max : 256)));
		if (f->min)
			json_object_set_new(s, "minItems",
			                    json_integer(f->min));
		if (f->max)
			json_object_set_new(s, "maxItems",
			                    json_integer(f->max));
		break;
	}
	if (f->flags & VG_JSON_NULLABLE)
		json_object_set_new(s, "nullable", json_true());
	return s;
}

static json_t *object_schema(const struct vg_json_field *fields,
                             const struct gw_member *members);

static json_t *member_schema(const struct gw_member *m)
{
	json_t *obj = m->fields ? object_schema(m->fields, m->members)
	                        : json_pack("{s:s}", "type", "object");
	json_t *s = obj;

	if (m->kind == GW_MEMBER_ARRAY) {
		s = json_pack("{s:s, s:o}", "type", "array", "items", obj);
		if (m->max_items)
			json_object_set_new(s, "maxItems",
			                    json_integer((json_int_t)m->max_items));
	}
	if (m->flags & VG_JSON_NULLABLE)
		json_object_set_new(s, "nullable", json_true());
	return s;
}

static json_t *object_schema(const struct vg_json_field *fields,
                             const struct gw_member *members)
{
	json_t *props = json_object(), *req = json_array();
	json_t *s = json_pack("{s:s, s:b, s:o}", "type", "object",
	                      "additionalProperties", 0, "properties", props);

	for (const struct vg_json_field *f = fields; f && f->name; f++) {
		json_object_set_new(props, f->name, field_schema(f));
		if (f->flags & VG_JSON_REQUIRED)
			json_array_append_new(req, json_string(f->name));
	}
	for (const struct gw_member *m = members; m && m->name; m++) {
		json_object_set_new(props, m->name, member_schema(m));
		if (m->flags & VG_JSON_REQUIRED)
			json_array_append_new(req, json_string(m->name));
	}
	if (json_array_size(req))
		json_object_set_new(s, "required", req);
	else
		json_decref(req);
	return s;
}

/* "/v1/tenants/{tid}/users" + "post" -> "post_v1_tenants_tid_users" */
static void operation_id(const struct gw_route *r, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = r->method; *p && o + 1 < size; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	for (const char *p = r->pattern; *p && o + 1 < size; p++) {
		if (*p == '/' || *p == '-' || *p == '.')
			out[o++] = '_';
		else if (*p != '{' && *p != '}')
			out[o++] = *p;
	}
	out[o] = '\0';
}

static json_t *parameters(const struct gw_route *r)
{
	json_t *ps = json_array();

	for (const char *p = r->pattern; (p = strchr(p, '{')); p++) {
		const char *e = strchr(p, '}');
		char name[32];

		if (!e || (size_t)(e - p - 1) >= sizeof(name))
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(e - p - 1), p + 1);
		json_array_append_new(ps,
		                      json_pack("{s:s, s:s, s:b, s:{s:s, s:s}}",
		                                "name", name, "in", "path",
		                                "required", 1, "schema", "type",
		                                "string", "format", "uuid"));
	}
	if (r->scope == SCOPE_QUERY_TENANT)
		json_array_append_new(
			ps, json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:s}}",
		                      "name", "tenant", "in", "query",
		                      "required", 0, "description",
		                      "the tenant's chain; without it the "
		                      "platform's",
		                      "schema", "type", "string", "format",
		                      "uuid"));
	return ps;
}

static json_t *operation(const struct gw_route *r)
{
	json_t *roles = json_array(), *op, *responses;
	char id[128], ok[8];

	for (int i = 0; i < ROLE_COUNT; i++)
		if (r->perm == PERM_AUTHENTICATED ||
		    gw_rbac_allowed(r->perm, (enum gw_role)i))
			json_array_append_new(roles,
			                      json_string(gw_role_name(i)));
	operation_id(r, id, sizeof(id));
	snprintf(ok, sizeof(ok), "%d",
	         r->ok_status                       ? r->ok_status
	         : strcmp(r->method, "POST") == 0   ? 201
	         : strcmp(r->method, "DELETE") == 0 ? 204
	                                            : 200);
	responses =
		json_pack("{s:{s:s}, s:{s:s}}", ok, "description", "success",
	                  "default", "$ref", "#/components/responses/Error");
	op = json_pack("{s:s, s:o, s:s, s:o}", "operationId", id, "parameters",
	               parameters(r), "x-vigil-permission",
	               gw_perm_name(r->perm), "responses", responses);
	if (r->perm == PERM_PUBLIC) {
		json_object_set_new(op, "security", json_array());
		json_decref(roles);
	} else {
		json_object_set_new(op, "x-vigil-roles", roles);
	}
	if (r->body || r->members)
		json_object_set_new(op, "requestBody",
		                    json_pack("{s:b, s:{s:{s:o}}}", "required",
		                              1, "content", "application/json",
		                              "schema",
		                              object_schema(r->body,
		                                            r->members)));
	return op;
}

json_t *gw_openapi_document(void)
{
	json_t *paths = json_object();
	size_t n;
	const struct gw_route *routes = gw_routes(&n);
	json_t *err = json_pack(
		"{s:s, s:[s], s:{s:{s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s},"
		" s:{s:s}}}}}",
		"type", "object", "required", "error", "properties", "error",
		"type", "object", "required", "code", "message", "request_id",
		"properties", "code", "type", "string", "message", "type",
		"string", "request_id", "type", "string");

	for (size_t i = 0; i < n; i++) {
		const struct gw_route *r = &routes[i];
		json_t *item = json_object_get(paths, r->pattern);
		char m[16];
		size_t k;

		if (!item) {
			item = json_object();
			json_object_set_new(paths, r->pattern, item);
		}
		for (k = 0; r->method[k] && k + 1 < sizeof(m); k++)
			m[k] = (char)tolower((unsigned char)r->method[k]);
		m[k] = '\0';
		json_object_set_new(item, m, operation(r));
	}
	return json_pack(
		"{s:s, s:{s:s, s:s}, s:[{s:[]}], s:o, s:{s:{s:{s:s, s:s, s:s}},"
		" s:{s:o}, s:{s:{s:s, s:{s:{s:{s:s}}}}}}}",
		"openapi", "3.0.3", "info", "title", "vigil gateway API",
		"version", "v1", "security", "bearer", "paths", paths,
		"components", "securitySchemes", "bearer", "type", "http",
		"scheme", "bearer", "description",
		"an API key (vgk_...), an agent token (an API key with the "
		"agent role), a session token (vgs_...) or the bootstrap key",
		"schemas", "Error", err, "responses", "Error", "description",
		"an error", "content", "application/json", "schema", "$ref",
		"#/components/schemas/Error");
}

void api_openapi(struct gw_rctx *rc)
{
	gw_reply_json(rc, 200, gw_openapi_document());
}

int gw_openapi_print(FILE *out)
{
	json_t *doc = gw_openapi_document();
	int rc = doc && json_dumpf(doc, out, JSON_INDENT(2) | JSON_SORT_KEYS) ==
	                        0 &&
	                         fputc('\n', out) != EOF && fflush(out) == 0
	                 ? VG_OK
	                 : VG_IO;

	json_decref(doc);
	return rc;
}
