/*
 * http_parse.h - an HTTP/1.1 request-head parser for servers that read
 * requests from untrusted peers (the gateway's API, the brain's).
 *
 * Zero-copy: the parsed head points into the caller's buffer, which must
 * stay unchanged while the result is used. Strict where leniency lets two
 * parties disagree on where a request ends (request smuggling): a
 * Content-Length that is not all digits, several different ones, both
 * Content-Length and Transfer-Encoding, obsolete line folding, white space
 * before a colon and bare CR are errors. A line may end in CRLF or LF.
 *
 *   struct vg_http_head h;
 *   switch (vg_http_parse(buf, len, 8192, &h)) {
 *   case VG_OK:      request head is h.head_len bytes; body follows
 *   case VG_AGAIN:   read more
 *   case VG_TOOLARGE: 431: the head exceeds the limit
 *   case VG_UNSUPPORTED: h.status (411/501/505) says which
 *   default:         400 (VG_PARSE)
 *   }
 */
#ifndef VG_HTTP_PARSE_H
#define VG_HTTP_PARSE_H

#include <stddef.h>

#include "vigil/err.h"

#define VG_HTTP_MAX_HEADERS 64

struct vg_http_hdr {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	const char *value; /* without surrounding white space */
	size_t value_len;
};

struct vg_http_head {
	const char *method;
	size_t method_len;
	const char *target; /* origin form, "/..." (or "*" for OPTIONS) */
	size_t target_len;
	const char *path; /* target up to '?' */
	size_t path_len;
	const char *query; /* after '?'; query_len 0 without one */
	size_t query_len;
	int minor; /* HTTP/1.<minor>: 0 or 1 */
	struct vg_http_hdr headers[VG_HTTP_MAX_HEADERS];
	size_t nheaders;
	size_t head_len;          /* bytes of request line + headers + CRLF */
	long long content_length; /* -1 when absent */
	int keep_alive;           /* the connection may serve another request */
	int expect_continue;      /* "Expect: 100-continue" */
	int status;               /* on failure: the HTTP status to answer */
	const char *error;        /* on failure: static, for the message */
};

/*
 * Parse the request head at the start of `buf` (`len` bytes). Returns
 * VG_OK with `out` filled; VG_AGAIN when the head is not complete yet (and
 * not over `max_head`); VG_TOOLARGE when the head is or would be longer
 * than `max_head` bytes (status 431); VG_UNSUPPORTED for a request this
 * parser recognises but will not serve (status 411 for Transfer-Encoding,
 * 505 for another HTTP version, 501 for "CONNECT" or a non-origin target);
 * VG_PARSE for malformed input (status 400). Garbage is reported as soon
 * as it is seen, not only once a blank line arrives.
 */
int vg_http_parse(const char *buf, size_t len, size_t max_head,
                  struct vg_http_head *out);

/* Borrowed value of header `name` (case-insensitive, first occurrence) and
 * its length, or NULL. */
const char *vg_http_head_get(const struct vg_http_head *h, const char *name,
                             size_t *len);

/* 1 when the comma-separated header value contains `token`
 * (case-insensitive). */
int vg_http_has_token(const char *value, size_t len, const char *token);

/*
 * Find parameter `name` in an application/x-www-form-urlencoded query and
 * percent-decode its value into `out` (`size` bytes, NUL-terminated).
 * Returns VG_OK, VG_NOTFOUND, VG_PARSE (bad escape, or a decoded NUL) or
 * VG_TOOLARGE (value does not fit).
 */
int vg_http_query_get(const char *query, size_t len, const char *name,
                      char *out, size_t size);

/* Reason phrase of `status` ("Not Found"); static, never NULL. */
const char *vg_http_reason(int status);

#endif
