/* err.c - error names and messages, the caller-provided error-info struct. */
#include "vigil/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *vg_strerror(int code)
{
	switch (code) {
#define VG_ERR_STR(name, val, msg)                                           \
	case (val):                                                              \
		return (msg);
		VG_ERRNO_MAP(VG_ERR_STR)
#undef VG_ERR_STR
	}
	return "unknown error";
}

const char *vg_errname(int code)
{
	switch (code) {
#define VG_ERR_NAME(name, val, msg)                                          \
	case (val):                                                              \
		return "VG_" #name;
		VG_ERRNO_MAP(VG_ERR_NAME)
#undef VG_ERR_NAME
	}
	return "VG_UNKNOWN";
}

void vg_err_clear(struct vg_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

int vg_err_setv(struct vg_err *err, int code, const char *fmt, va_list ap)
{
	char msg[VG_ERR_MSG_MAX];

	if (!err)
		return code;
	/* format first: the arguments may quote err->msg to wrap it */
	if (!fmt || vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		snprintf(msg, sizeof(msg), "%s", vg_strerror(code));
	/* a reused struct must not keep details of an earlier failure */
	memset(err, 0, sizeof(*err));
	err->code = code;
	memcpy(err->msg, msg, sizeof(msg));
	return code;
}

int vg_err_set(struct vg_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vg_err_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int vg_err_sys(struct vg_err *err, int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	size_t n;

	if (!err)
		return code;
	va_start(ap, fmt);
	vg_err_setv(err, code, fmt, ap);
	va_end(ap);
	err->sys_errno = saved;
	n = strlen(err->msg);
	if (saved && n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
			 strerror(saved));
	errno = saved;
	return code;
}
