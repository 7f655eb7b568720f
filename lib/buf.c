/* buf.c - growable byte buffer. */
#include "vigil/buf.h"

#include "vigil/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vg_buf_init(struct vg_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void vg_buf_cleanup(struct vg_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void vg_buf_reset(struct vg_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int vg_buf_reserve(struct vg_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > SIZE_MAX - b->len - 1)
		return VG_TOOLARGE;
	if (b->max && b->len + n > b->max)
		return VG_TOOLARGE;
	need = b->len + n + 1;
	if (need <= b->cap)
		return VG_OK;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return VG_NOMEM;
	b->data = p;
	b->cap = cap;
	return VG_OK;
}

int vg_buf_append(struct vg_buf *b, const void *p, size_t n)
{
	int rc = vg_buf_reserve(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return VG_OK;
}

int vg_buf_append_str(struct vg_buf *b, const char *s)
{
	return vg_buf_append(b, s, strlen(s));
}

int vg_buf_append_byte(struct vg_buf *b, char c)
{
	return vg_buf_append(b, &c, 1);
}

int vg_buf_vappendf(struct vg_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return VG_INVAL;
	rc = vg_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	if (vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap) != n)
		return VG_INTERNAL;
	b->len += (size_t)n;
	return VG_OK;
}

int vg_buf_appendf(struct vg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vg_buf_vappendf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void vg_buf_consume(struct vg_buf *b, size_t n)
{
	if (n >= b->len) {
		vg_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

const char *vg_buf_str(const struct vg_buf *b)
{
	return b->data ? b->data : "";
}

char *vg_buf_take(struct vg_buf *b)
{
	char *s = b->data;

	if (!s)
		s = calloc(1, 1);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return s;
}
