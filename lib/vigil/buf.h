/*
 * buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Embedded by the caller: vg_buf_init() / vg_buf_cleanup(). A buffer may
 * have a size limit; appends that would exceed it fail with VG_TOOLARGE and
 * leave the content unchanged.
 */
#ifndef VG_BUF_H
#define VG_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct vg_buf {
	char *data;	 /* NUL-terminated when non-NULL; NULL while empty */
	size_t len;	 /* bytes used, excluding the terminating NUL */
	size_t cap;	 /* bytes allocated */
	size_t max;	 /* maximum len, 0 for no limit */
};

/* Prepare an empty buffer; `max` 0 means no limit. Allocates nothing. */
void vg_buf_init(struct vg_buf *b, size_t max);
/* Free the content; the buffer is empty and reusable afterwards. */
void vg_buf_cleanup(struct vg_buf *b);
/* Empty the buffer, keeping its allocation. */
void vg_buf_reset(struct vg_buf *b);

/* Make room for `n` more bytes. Returns 0, VG_NOMEM or VG_TOOLARGE. */
int vg_buf_reserve(struct vg_buf *b, size_t n);
int vg_buf_append(struct vg_buf *b, const void *p, size_t n);
int vg_buf_append_str(struct vg_buf *b, const char *s);
int vg_buf_append_byte(struct vg_buf *b, char c);
int vg_buf_appendf(struct vg_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int vg_buf_vappendf(struct vg_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Remove the first `n` bytes (all if n >= len). */
void vg_buf_consume(struct vg_buf *b, size_t n);

/* Content as a C string: never NULL ("" when empty); borrowed. */
const char *vg_buf_str(const struct vg_buf *b);

/*
 * Steal the content: returns a new NUL-terminated string the caller frees
 * (an empty string when the buffer is empty; NULL only on allocation
 * failure) and leaves the buffer empty.
 */
char *vg_buf_take(struct vg_buf *b);

#endif
