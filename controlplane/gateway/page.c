/*
 * page.c - list pages: ?limit= and keyset cursors.
 *
 * A cursor is the sort key of the last row of a page ("3,1764339734123456,
 * <uuid>"), base64url without padding. It is opaque to clients, and
 * checked like any outside input: a cursor that does not decode to the
 * list's kinds of parts answers 400. Keyset pages stay exact while rows
 * are added (no offset to drift) and cost the same on page 1 and 1,000.
 */
#include "gateway.h"

#include "vigil/http_parse.h"
#include "vigil/json.h"
#include "vigil/json_validate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_MAX 256

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;

	return p ? (int)(p - b64url) : -1;
}

/* Decode `in` into `out` (NUL-terminated); -1 for anything that is not
 * canonical unpadded base64url or does not fit. */
static int b64url_decode(const char *in, char *out, size_t size)
{
	size_t n = strlen(in), o = 0;
	unsigned acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value(in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* the bits left over must be zero: one encoding per cursor */
	if (bits && (acc & ((1u << bits) - 1)))
		return -1;
	out[o] = '\0';
	return (int)o;
}

static char *b64url_encode(const char *in, size_t n)
{
	struct vg_buf b;
	unsigned acc = 0;
	int bits = 0;

	vg_buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | (unsigned char)in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			vg_buf_append_byte(&b, b64url[(acc >> bits) & 63]);
		}
	}
	if (bits)
		vg_buf_append_byte(&b, b64url[(acc << (6 - bits)) & 63]);
	return vg_buf_take(&b);
}

char *gw_cursor_encode(const char *const *parts, int n)
{
	struct vg_buf b;
	char *out;

	vg_buf_init(&b, 0);
	for (int i = 0; i < n; i++)
		vg_buf_appendf(&b, "%s%s", i ? "," : "",
		               parts[i] ? parts[i] : "");
	out = b64url_encode(vg_buf_str(&b), b.len);
	vg_buf_cleanup(&b);
	return out;
}

static int is_int(const char *s)
{
	const char *d = *s == '-' ? s + 1 : s;
	char *end;

	if (*d < '0' || *d > '9')
		return 0;
	errno = 0;
	(void)strtoll(s, &end, 10);
	return *end == '\0' && errno == 0;
}

static int part_ok(char kind, const char *s)
{
	static const char *const severities[] = {"info", "low", "medium",
	                                         "high", "critical"};

	switch (kind) {
	case 'i':
		return is_int(s);
	case 'u':
		return vg_db_is_uuid(s);
	case 't':
		return vg_json_is_timestamp(s);
	case 's':
		for (size_t i = 0; i < 5; i++)
			if (strcmp(s, severities[i]) == 0)
				return 1;
		return 0;
	}
	return 0;
}

static int cursor_decode(const char *text, const char *kinds,
                         struct gw_cursor *c)
{
	char plain[CURSOR_MAX];
	const char *p = plain;
	int want = (int)strlen(kinds);

	if (b64url_decode(text, plain, sizeof(plain)) <= 0)
		return -1;
	c->n = 0;
	while (c->n < want) {
		size_t len = strcspn(p, ",");

		if (len == 0 || len >= sizeof(c->part[0]))
			return -1;
		memcpy(c->part[c->n], p, len);
		c->part[c->n][len] = '\0';
		if (!part_ok(kinds[c->n], c->part[c->n]))
			return -1;
		c->n++;
		p += len;
		if (c->n < want && *p++ != ',')
			return -1;
	}
	return *p == '\0' ? 0 : -1;
}

int gw_query_param(struct gw_rctx *rc, const char *name, char *out, size_t size)
{
	int r = vg_http_query_get(rc->req->query, strlen(rc->req->query), name,
	                          out, size);

	if (r == VG_NOTFOUND)
		return 0;
	if (r != VG_OK) {
		gw_reply_error(rc, 400, "bad_request",
		               "%s: malformed or too long", name);
		return -1;
	}
	return 1;
}

int gw_page_params(struct gw_rctx *rc, const char *kinds, int *limit,
                   struct gw_cursor *c)
{
	char v[CURSOR_MAX];
	int r;

	*limit = GW_LIMIT_DEFAULT;
	c->n = 0;
	if ((r = gw_query_param(rc, "limit", v, sizeof(v))) < 0)
		return -1;
	if (r) {
		char *end;
		long n;

		errno = 0;
		n = strtol(v, &end, 10);
		if (!*v || *end || errno || n < 1 || n > GW_LIMIT_MAX) {
			gw_reply_error(rc, 400, "bad_request",
			               "limit: want an integer from 1 to %d",
			               GW_LIMIT_MAX);
			return -1;
		}
		*limit = (int)n;
	}
	if ((r = gw_query_param(rc, "cursor", v, sizeof(v))) < 0)
		return -1;
	if (r && cursor_decode(v, kinds, c) != 0) {
		gw_reply_error(rc, 400, "bad_request",
		               "cursor: not a cursor of this list");
		return -1;
	}
	return 0;
}

void gw_reply_page(struct gw_rctx *rc, const struct vg_db_res *r,
                   const char *spec, int limit, int nkey)
{
	struct vg_buf *b = &rc->resp->body;
	int rows = vg_db_res_rows(r), cols = vg_db_res_cols(r);
	int err = 0;
	char *c = NULL;

	if (rows > limit) {
		char text[GW_CURSOR_PARTS][72];
		const char *key[GW_CURSOR_PARTS];

		for (int k = 0; k < nkey && k < GW_CURSOR_PARTS; k++)
			key[k] = gw_col_text(r, limit - 1, cols - nkey + k,
			                     text[k], sizeof(text[k]))
			                 ? ""
			                 : text[k];
		if (!(c = gw_cursor_encode(key, nkey)))
			err = VG_NOMEM;
	}
	/* written as it goes, not built as a tree: this is the hot path of
	 * every list */
	vg_buf_reset(b);
	if (!err)
		err = vg_buf_append_str(b, "{\"items\":[");
	for (int i = 0; !err && i < rows && i < limit; i++) {
		if (i)
			err = vg_buf_append_byte(b, ',');
		if (!err)
			err = gw_row_render(b, r, i, spec);
	}
	if (!err)
		err = vg_buf_append_str(b, "],\"next_cursor\":");
	if (!err)
		err = c ? vg_json_escape(b, c, strlen(c))
		        : vg_buf_append_str(b, "null");
	if (!err)
		err = vg_buf_append_byte(b, '}');
	free(c);
	if (err) {
		vg_buf_reset(b);
		gw_reply_error(rc, err == VG_NOMEM ? 503 : 500,
		               err == VG_NOMEM ? "unavailable" : "internal",
		               "could not encode reply");
		return;
	}
	rc->resp->status = 200;
	rc->resp->content_type = "application/json";
}
