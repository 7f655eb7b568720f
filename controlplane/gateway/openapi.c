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
			json_object_set_new(
				s, "maxItems",
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

/* Query parameters of the list routes (the handlers read them with
 * gw_page_params and gw_query_param). */
static const char *const run_states[] = {"pending", "running",  "succeeded",
                                         "failed",  "canceled", NULL};
static const char *const finding_states[] = {"open", "resolved", "accepted",
                                             "false_positive", NULL};
static const char *const report_states[] = {"pending", "ready", "failed", NULL};

static const struct query_param {
	const char *route; /* "GET pattern" */
	const char *name, *format, *description;
	const char *const *enumv;
} query_params[] = {
	{"GET /v1/tenants/{tid}/scan-runs", "state", NULL, NULL, run_states},
	{"GET /v1/tenants/{tid}/scan-runs", "policy_name", NULL, NULL, NULL},
	{"GET /v1/tenants/{tid}/scan-runs", "policy_namespace", NULL, NULL,
         NULL},
	{"GET /v1/tenants/{tid}/findings", "severity", NULL,
         "one severity or several separated by commas: info, low, medium, "
         "high, critical",
         NULL},
	{"GET /v1/tenants/{tid}/findings", "host", NULL, NULL, NULL},
	{"GET /v1/tenants/{tid}/findings", "port", "port", "0 to 65535", NULL},
	{"GET /v1/tenants/{tid}/findings", "run_id", "uuid", NULL, NULL},
	{"GET /v1/tenants/{tid}/findings", "state", NULL, NULL, finding_states},
	{"GET /v1/tenants/{tid}/findings", "scanner", NULL, NULL, NULL},
	{"GET /v1/tenants/{tid}/reports", "run_id", "uuid", NULL, NULL},
	{"GET /v1/tenants/{tid}/reports", "state", NULL, NULL, report_states},
};

/* the routes whose answer is a page: {"items", "next_cursor"} */
static const char *const paged[] = {
	"GET /v1/tenants/{tid}/scan-runs",
	"GET /v1/tenants/{tid}/findings",
	"GET /v1/tenants/{tid}/reports",
};

static void query_parameters(const struct gw_route *r, json_t *ps)
{
	char key[160];

	snprintf(key, sizeof(key), "%s %s", r->method, r->pattern);
	for (size_t i = 0; i < sizeof(paged) / sizeof(paged[0]); i++) {
		if (strcmp(paged[i], key) != 0)
			continue;
		json_array_append_new(
			ps,
			json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i,"
		                  " s:i}}",
		                  "name", "limit", "in", "query", "required", 0,
		                  "description", "items per page", "schema",
		                  "type", "integer", "minimum", 1, "maximum",
		                  GW_LIMIT_MAX, "default", GW_LIMIT_DEFAULT));
		json_array_append_new(
			ps, json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name",
		                      "cursor", "in", "query", "required", 0,
		                      "description",
		                      "the previous page's next_cursor",
		                      "schema", "type", "string"));
	}
	for (size_t i = 0; i < sizeof(query_params) / sizeof(query_params[0]);
	     i++) {
		const struct query_param *q = &query_params[i];
		json_t *schema, *p;

		if (strcmp(q->route, key) != 0)
			continue;
		if (q->format && strcmp(q->format, "port") == 0) {
			schema = json_pack("{s:s, s:i, s:i}", "type", "integer",
			                   "minimum", 0, "maximum", 65535);
		} else {
			schema = json_pack("{s:s}", "type", "string");
			if (q->format)
				json_object_set_new(schema, "format",
				                    json_string(q->format));
		}
		if (q->enumv) {
			json_t *e = json_array();

			for (size_t k = 0; q->enumv[k]; k++)
				json_array_append_new(e,
				                      json_string(q->enumv[k]));
			json_object_set_new(schema, "enum", e);
		}
		p = json_pack("{s:s, s:s, s:b, s:o}", "name", q->name, "in",
		              "query", "required", 0, "schema", schema);
		if (q->description)
			json_object_set_new(p, "description",
			                    json_string(q->description));
		json_array_append_new(ps, p);
	}
}

/* The shape of a few replies clients build on: pages and accepted
 * tasks. */
static const struct {
	const char *route;
	const char *const *fields; /* string members; NULL: a page */
} replies[] = {
	{"GET /v1/tenants/{tid}/scan-runs", NULL},
	{"GET /v1/tenants/{tid}/findings", NULL},
	{"GET /v1/tenants/{tid}/reports", NULL},
	{"POST /v1/tenants/{tid}/ingest",
         (const char *const[]){"run_id", "batch_id", "task_id", NULL}},
	{"POST /v1/tenants/{tid}/reports",
         (const char *const[]){"run_id", "task_id", "report_id", NULL}},
};

static void reply_schema(const struct gw_route *r, json_t *response)
{
	char key[160];
	json_t *schema = NULL;

	snprintf(key, sizeof(key), "%s %s", r->method, r->pattern);
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		if (strcmp(replies[i].route, key) != 0)
			continue;
		if (!replies[i].fields) {
			schema = json_pack("{s:s, s:[s,s], s:{s:{s:s, s:{s:s}},"
			                   " s:{s:s, s:b, s:s}}}",
			                   "type", "object", "required",
			                   "items", "next_cursor", "properties",
			                   "items", "type", "array", "items",
			                   "type", "object", "next_cursor",
			                   "type", "string", "nullable", 1,
			                   "description",
			                   "the cursor of the next page; null "
			                   "on the last");
		} else {
			json_t *props = json_object();

			/* report_id: null until the run's report exists */
			for (const char *const *f = replies[i].fields; *f; f++)
				json_object_set_new(
					props, *f,
					json_pack("{s:s, s:b}", "type",
				                  "string", "nullable",
				                  strcmp(*f, "report_id") ==
				                          0));
			schema = json_pack("{s:s, s:o}", "type", "object",
			                   "properties", props);
		}
	}
	if (schema)
		json_object_set_new(response, "content",
		                    json_pack("{s:{s:o}}", "application/json",
		                              "schema", schema));
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
	if (r->scope == SCOPE_CALLER_TENANT)
		json_array_append_new(
			ps, json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:s}}",
		                      "name", "tenant", "in", "query",
		                      "required", 0, "description",
		                      "the tenant; without it the caller's "
		                      "only one",
		                      "schema", "type", "string", "format",
		                      "uuid"));
	query_parameters(r, ps);
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
	reply_schema(r, json_object_get(responses, ok));
	if (r->ok_status == 101)
		json_object_set_new(
			json_object_get(responses, ok), "description",
			json_string("switching protocols: a WebSocket (RFC "
		                    "6455) of the tenant's live events, one "
		                    "JSON object per text frame: {type, "
		                    "tenant_id, run_id, ts, request_id, ...}"));
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
		json_object_set_new(
			op, "requestBody",
			json_pack("{s:b, s:{s:{s:o}}}", "required", 1,
		                  "content", "application/json", "schema",
		                  object_schema(r->body, r->members)));
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
	int rc = doc &&
	                         json_dumpf(doc, out,
	                                    JSON_INDENT(2) | JSON_SORT_KEYS) ==
	                                 0 &&
	                         fputc('\n', out) != EOF && fflush(out) == 0
	                 ? VG_OK
	                 : VG_IO;

	json_decref(doc);
	return rc;
}
