/*
 * http_parse.c - the HTTP/1.1 request-head parser (RFC 9112 section 2-6).
 *
 * The whole head is re-scanned on each call: heads are bounded (a few KiB)
 * and a server calls again only when more bytes arrived, so keeping no
 * state between calls costs little and makes the parser easy to fuzz.
 */
#include "vigil/http_parse.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 token characters */
static int is_tchar(unsigned char c)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr(extra, c) != NULL;
}

/* field-content: visible ASCII, obs-text, space and tab */
static int is_field_char(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static int fail(struct vg_http_head *h, int code, int status, const char *msg)
{
	h->status = status;
	h->error = msg;
	return code;
}

/* Find the end of the line starting at `p`: the offset of its '\n', or -1.
 * `*content` receives the length without the line ending. */
static long line_end(const char *p, size_t n, size_t *content)
{
	const char *nl = memchr(p, '\n', n);
	size_t l;

	if (!nl)
		return -1;
	l = (size_t)(nl - p);
	*content = (l > 0 && p[l - 1] == '\r') ? l - 1 : l;
	return (long)l;
}

/* An incomplete trailing line is checked as far as it goes, so garbage is
 * refused without waiting for a line end. */
static int check_partial(const char *p, size_t n, int request_line)
{
	size_t i = 0;

	if (request_line) {
		while (i < n && is_tchar((unsigned char)p[i]))
			i++;
		if (i < n && p[i] != ' ')
			return -1;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' && i + 1 == n)
			break;
		if (!is_field_char(c))
			return -1;
	}
	return 0;
}

static int parse_request_line(struct vg_http_head *h, const char *p, size_t n)
{
	size_t i = 0, start;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return fail(h, VG_PARSE, 400, "malformed request line");
	h->method = p;
	h->method_len = i;
	start = ++i;
	while (i < n && (unsigned char)p[i] > 0x20 && p[i] != 0x7f)
		i++;
	if (i == start || i >= n || p[i] != ' ')
		return fail(h, VG_PARSE, 400, "malformed request target");
	h->target = p + start;
	h->target_len = i - start;
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' ||
	    p[i + 5] > '9' || p[i + 6] != '.' || p[i + 7] < '0' ||
	    p[i + 7] > '9')
		return fail(h, VG_PARSE, 400, "malformed HTTP version");
	if (p[i + 5] != '1')
		return fail(h, VG_UNSUPPORTED, 505,
		            "HTTP version not supported");
	h->minor = p[i + 7] - '0';
	return VG_OK;
}

static int parse_header_line(struct vg_http_head *h, const char *p, size_t n)
{
	struct vg_http_hdr *hd;
	size_t i = 0, vs, ve;

	if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
		return fail(h, VG_PARSE, 400, "obsolete line folding");
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return fail(h, VG_PARSE, 400, "malformed header field");
	if (h->nheaders >= VG_HTTP_MAX_HEADERS)
		return fail(h, VG_TOOLARGE, 431, "too many header fields");
	hd = &h->headers[h->nheaders++];
	hd->name = p;
	hd->name_len = i;
	vs = i + 1;
	for (size_t j = vs; j < n; j++)
		if (!is_field_char((unsigned char)p[j]))
			return fail(h, VG_PARSE, 400,
			            "invalid character in header value");
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	hd->value = p + vs;
	hd->value_len = ve - vs;
	return VG_OK;
}

static int hdr_is(const struct vg_http_hdr *hd, const char *name)
{
	size_t n = strlen(name);

	return hd->name_len == n && strncasecmp(hd->name, name, n) == 0;
}

int vg_http_has_token(const char *value, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len &&
		       (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		s = i;
		while (i < len && value[i] != ',')
			i++;
		e = i;
		while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(value + s, token, tl) == 0)
			return 1;
	}
	return 0;
}

static int parse_content_length(struct vg_http_head *h,
                                const struct vg_http_hdr *hd)
{
	long long v = 0;

	if (hd->value_len == 0 || hd->value_len > 18)
		return fail(h, VG_PARSE, 400, "invalid Content-Length");
	for (size_t i = 0; i < hd->value_len; i++) {
		if (hd->value[i] < '0' || hd->value[i] > '9')
			return fail(h, VG_PARSE, 400, "invalid Content-Length");
		v = v * 10 + (hd->value[i] - '0');
	}
	if (h->content_length >= 0 && h->content_length != v)
		return fail(h, VG_PARSE, 400, "conflicting Content-Length");
	h->content_length = v;
	return VG_OK;
}

/* What the header fields mean for framing and the connection. */
static int check_semantics(struct vg_http_head *h)
{
	int hosts = 0, te = 0, close = 0, keep = 0, rc;

	for (size_t i = 0; i < h->nheaders; i++) {
		const struct vg_http_hdr *hd = &h->headers[i];

		if (hdr_is(hd, "content-length")) {
			if ((rc = parse_content_length(h, hd)) != VG_OK)
				return rc;
		} else if (hdr_is(hd, "transfer-encoding")) {
			te = 1;
		} else if (hdr_is(hd, "host")) {
			hosts++;
		} else if (hdr_is(hd, "connection")) {
			close |= vg_http_has_token(hd->value, hd->value_len,
			                           "close");
			keep |= vg_http_has_token(hd->value, hd->value_len,
			                          "keep-alive");
		} else if (hdr_is(hd, "expect")) {
			h->expect_continue |= vg_http_has_token(
				hd->value, hd->value_len, "100-continue");
		}
	}
	if (te && h->content_length >= 0)
		return fail(h, VG_PARSE, 400,
		            "both Content-Length and Transfer-Encoding");
	if (te)
		return fail(h, VG_UNSUPPORTED, 411,
		            "Transfer-Encoding is not accepted; send "
		            "Content-Length");
	if (h->minor >= 1 && hosts != 1)
		return fail(h, VG_PARSE, 400,
		            "HTTP/1.1 needs exactly one Host header");
	if (hosts > 1)
		return fail(h, VG_PARSE, 400, "more than one Host header");
	h->keep_alive = h->minor >= 1 ? !close : (keep && !close);
	return VG_OK;
}

static int split_target(struct vg_http_head *h)
{
	const char *q;

	if (h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0)
		return fail(h, VG_UNSUPPORTED, 501, "CONNECT not supported");
	if (h->target_len == 1 && h->target[0] == '*') {
		if (!(h->method_len == 7 &&
		      memcmp(h->method, "OPTIONS", 7) == 0))
			return fail(h, VG_PARSE, 400, "malformed target");
	} else if (h->target[0] != '/') {
		return fail(h, VG_UNSUPPORTED, 501,
		            "only origin-form request targets are served");
	}
	if (memchr(h->target, '#', h->target_len))
		return fail(h, VG_PARSE, 400, "fragment in request target");
	q = memchr(h->target, '?', h->target_len);
	h->path = h->target;
	if (q) {
		h->path_len = (size_t)(q - h->target);
		h->query = q + 1;
		h->query_len = h->target_len - h->path_len - 1;
	} else {
		h->path_len = h->target_len;
		h->query = h->target + h->target_len;
		h->query_len = 0;
	}
	return VG_OK;
}

int vg_http_parse(const char *buf, size_t len, size_t max_head,
                  struct vg_http_head *h)
{
	size_t pos = 0, avail, content;
	long l;
	int rc, first = 1;

	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	h->status = 400;
	avail = len < max_head ? len : max_head;
	/* RFC 9112 2.2: ignore an empty line before the request line */
	if (avail >= 2 && buf[0] == '\r' && buf[1] == '\n')
		pos = 2;
	else if (avail >= 1 && buf[0] == '\n')
		pos = 1;
	for (;;) {
		l = line_end(buf + pos, avail - pos, &content);
		if (l < 0) {
			if (check_partial(buf + pos, avail - pos, first) < 0)
				return fail(h, VG_PARSE, 400,
				            first ? "malformed request line"
				                  : "malformed header field");
			if (len >= max_head)
				return fail(h, VG_TOOLARGE, 431,
				            "request header too large");
			return VG_AGAIN;
		}
		if (memchr(buf + pos, '\r', content))
			return fail(h, VG_PARSE, 400,
			            "bare CR in request head");
		if (first) {
			rc = parse_request_line(h, buf + pos, content);
			first = 0;
		} else if (content == 0) {
			pos += (size_t)l + 1;
			break;
		} else {
			rc = parse_header_line(h, buf + pos, content);
		}
		if (rc != VG_OK)
			return rc;
		pos += (size_t)l + 1;
	}
	h->head_len = pos;
	if ((rc = split_target(h)) != VG_OK)
		return rc;
	if ((rc = check_semantics(h)) != VG_OK)
		return rc;
	h->status = 0;
	h->error = NULL;
	return VG_OK;
}

const char *vg_http_head_get(const struct vg_http_head *h, const char *name,
                             size_t *len)
{
	for (size_t i = 0; i < h->nheaders; i++) {
		if (hdr_is(&h->headers[i], name)) {
			if (len)
				*len = h->headers[i].value_len;
			return h->headers[i].value;
		}
	}
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return VG_PARSE;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return VG_PARSE;
			c = hi * 16 + lo;
			if (c == 0)
				return VG_PARSE;
			i += 2;
		}
		if (o + 1 >= size)
			return VG_TOOLARGE;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return VG_OK;
}

int vg_http_query_get(const char *query, size_t len, const char *name,
                      char *out, size_t size)
{
	size_t nl = strlen(name), i = 0;

	if (size == 0)
		return VG_TOOLARGE;
	while (i < len) {
		size_t s = i, e, eq;

		while (i < len && query[i] != '&')
			i++;
		e = i++;
		eq = s;
		while (eq < e && query[eq] != '=')
			eq++;
		if (eq - s == nl && memcmp(query + s, name, nl) == 0) {
			if (eq == e) {
				out[0] = '\0';
				return VG_OK;
			}
			return decode(query + eq + 1, e - eq - 1, out, size);
		}
	}
	return VG_NOTFOUND;
}

const char *vg_http_reason(int status)
{
	static const struct {
		int status;
		const char *text;
	} reasons[] = {
		{100, "Continue"},
		{200, "OK"},
		{201, "Created"},
		{202, "Accepted"},
		{204, "No Content"},
		{301, "Moved Permanently"},
		{304, "Not Modified"},
		{400, "Bad Request"},
		{401, "Unauthorized"},
		{403, "Forbidden"},
		{404, "Not Found"},
		{405, "Method Not Allowed"},
		{408, "Request Timeout"},
		{409, "Conflict"},
		{411, "Length Required"},
		{413, "Content Too Large"},
		{415, "Unsupported Media Type"},
		{422, "Unprocessable Content"},
		{429, "Too Many Requests"},
		{431, "Request Header Fields Too Large"},
		{500, "Internal Server Error"},
		{501, "Not Implemented"},
		{503, "Service Unavailable"},
		{505, "HTTP Version Not Supported"},
	};

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	return "Unknown";
}
