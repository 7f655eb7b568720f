/* fuzz_http_request.c - libFuzzer target for what a server reads from the
 * network: the HTTP/1.1 request-head parser, query parameters, and the
 * JSON body validator (a field table like the gateway's). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/http_parse.h"
#include "vigil/json_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const roles[] = {"admin", "analyst", "viewer", "agent",
                                    NULL};

static const struct vg_json_field fields[] = {
	{"name", VG_JSON_STRING, VG_JSON_REQUIRED | VG_JSON_TEXT, 1, 128, NULL,
         0},
	{"role", VG_JSON_STRING, 0, 0, 0, roles, 0},
	{"expires_at", VG_JSON_TIMESTAMP, VG_JSON_NULLABLE, 0, 0, NULL, 0},
	{"scopes", VG_JSON_STRING_ARRAY, VG_JSON_NULLABLE, 0, 16, NULL, 64},
	{"count", VG_JSON_INT, 0, 1, 1000, NULL, 0},
	{"on", VG_JSON_BOOL, 0, 0, 0, NULL, 0},
	{"id", VG_JSON_UUID, 0, 0, 0, NULL, 0},
	{NULL, VG_JSON_STRING, 0, 0, 0, NULL, 0},
};

static void check_head(const char *p, size_t n)
{
	struct vg_http_head h;
	int rc = vg_http_parse(p, n, 4096, &h);
	char out[64];

	switch (rc) {
	case VG_OK:
		if (h.head_len == 0 || h.head_len > n || h.head_len > 4096 ||
		    h.method_len == 0 || h.path_len > h.target_len ||
		    h.nheaders > VG_HTTP_MAX_HEADERS || h.status != 0)
			abort();
		if (h.method < p || h.method + h.method_len > p + n ||
		    h.target < p || h.target + h.target_len > p + n)
			abort();
		for (size_t i = 0; i < h.nheaders; i++)
			if (h.headers[i].value + h.headers[i].value_len >
			    p + h.head_len)
				abort();
		vg_http_query_get(h.query, h.query_len, "tenant", out,
		                  sizeof(out));
		vg_http_head_get(&h, "x-request-id", NULL);
		break;
	case VG_AGAIN:
		if (n >= 4096)
			abort();
		break;
	case VG_PARSE:
	case VG_TOOLARGE:
	case VG_UNSUPPORTED:
		if (h.status < 400 || !h.error)
			abort();
		break;
	default:
		abort();
	}
}

static void check_body(const char *p, size_t n)
{
	struct vg_err err = {0};
	json_t *doc = NULL;
	int rc = vg_json_validate_body(p, n, 1 << 16, fields, &doc, &err);

	if ((rc == VG_OK) != (doc != NULL))
		abort();
	if (rc != VG_OK && rc != VG_PARSE && rc != VG_INVAL &&
	    rc != VG_TOOLARGE && rc != VG_NOMEM)
		abort();
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	/* the first byte picks the target, so one corpus serves both */
	if (size == 0)
		return 0;
	if (data[0] & 1)
		check_head(p + 1, size - 1);
	else
		check_body(p + 1, size - 1);
	return 0;
}
