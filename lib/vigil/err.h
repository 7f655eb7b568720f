/*
 * err.h - vigil's error codes and the caller-provided error-info struct.
 *
 * Every fallible libvigil function returns an `int`: 0 (VG_OK) on success or
 * a negative VG_E* code, and fills an optional `struct vg_err` with the
 * details. Codes are generated from one X-macro list and are never
 * renumbered: append new ones at the end.
 */
#ifndef VG_ERR_H
#define VG_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* X(name, value, message) */
#define VG_ERRNO_MAP(X)                                                      \
	X(OK, 0, "success")                                                      \
	X(NOMEM, -1, "out of memory")                                            \
	X(INVAL, -2, "invalid argument")                                         \
	X(IO, -3, "input/output error")                                          \
	X(PARSE, -4, "malformed input")                                          \
	X(NOTFOUND, -5, "not found")                                             \
	X(EXISTS, -6, "already exists")                                          \
	X(CONFLICT, -7, "conflict")                                              \
	X(HTTP, -8, "HTTP request failed")                                       \
	X(TIMEOUT, -9, "timed out")                                              \
	X(GONE, -10, "resource version too old (410 Gone)")                      \
	X(FORBIDDEN, -11, "forbidden")                                           \
	X(UNAUTHORIZED, -12, "unauthorized")                                     \
	X(CONFIG, -13, "invalid configuration")                                  \
	X(TLS, -14, "TLS error")                                                 \
	X(RANGE, -15, "value out of range")                                      \
	X(CLOSED, -16, "connection closed")                                      \
	X(AGAIN, -17, "try again")                                               \
	X(UNSUPPORTED, -18, "not supported")                                     \
	X(DB, -19, "database error")                                             \
	X(REDIS, -20, "redis error")                                             \
	X(TOOLARGE, -21, "too large")                                            \
	X(CANCELED, -22, "canceled")                                             \
	X(INTERNAL, -23, "internal error")

enum vg_errno {
#define VG_ERR_ENUM(name, val, msg) VG_##name = (val),
	VG_ERRNO_MAP(VG_ERR_ENUM)
#undef VG_ERR_ENUM
};

#define VG_ERR_MSG_MAX 256

/*
 * Details of a failure. Filled by the callee when the caller passes one;
 * every field is optional. `http_status`, `reason` are set for failures that
 * came from an HTTP peer (e.g. the Kubernetes API server's Status).
 */
struct vg_err {
	int code;		   /* VG_E* */
	int sys_errno;	   /* errno at the point of failure, or 0 */
	long http_status;  /* HTTP status code, or 0 */
	char reason[64];   /* machine-readable reason (e.g. "AlreadyExists") */
	char msg[VG_ERR_MSG_MAX];
};

/* Static string describing `code`, never NULL. */
const char *vg_strerror(int code);
/* Static symbolic name of `code` ("VG_NOTFOUND"), never NULL. */
const char *vg_errname(int code);

/* Reset `err` (NULL allowed). */
void vg_err_clear(struct vg_err *err);

/*
 * Fill `err` (NULL allowed) with `code` and a formatted message, clearing
 * the other fields; returns `code` so callers can
 * `return vg_err_set(err, VG_INVAL, "...")`. The arguments may quote
 * err->msg itself to wrap it: vg_err_set(err, rc, "load %s: %s", path,
 * err->msg).
 */
int vg_err_set(struct vg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vg_err_setv(struct vg_err *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Like vg_err_set, and records `errno` (captured at call time) too. */
int vg_err_sys(struct vg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
