/*
 * log.h - structured logging: JSON Lines on stderr.
 *
 * One record per line, written with a single write(2) so lines from several
 * threads or processes sharing the descriptor never interleave:
 *
 *   {"ts":"2026-11-28T12:00:00.123Z","level":"info","component":"operator",
 *    "msg":"reconciled","kind":"Platform","name":"main"}
 *
 * Key/value pairs are strings. Values of keys that name credentials
 * (password, token, secret, authorization, api_key, cookie, ...) are written
 * as "[redacted]" whatever the caller passes.
 */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stdarg.h>

enum vg_log_level {
	VG_LOG_DEBUG = 0,
	VG_LOG_INFO = 1,
	VG_LOG_WARN = 2,
	VG_LOG_ERROR = 3,
	VG_LOG_OFF = 4,
};

/*
 * Set the component name (copied) and read the level from $VIGIL_LOG_LEVEL
 * (debug, info, warn, error, off; default info). Safe to call again.
 */
void vg_log_init(const char *component);
void vg_log_set_level(enum vg_log_level level);
enum vg_log_level vg_log_get_level(void);
/* Parse a level name; returns 0 and sets *out, or VG_INVAL. */
int vg_log_parse_level(const char *s, enum vg_log_level *out);
/* Descriptor records go to (default 2). For tests. */
void vg_log_set_fd(int fd);
int vg_log_enabled(enum vg_log_level level);

/*
 * Log `msg` with key/value string pairs terminated by a NULL key:
 *   vg_log(VG_LOG_INFO, "watch restarted", "kind", "Tenant", NULL);
 * A NULL value is written as JSON null.
 */
void vg_log(enum vg_log_level level, const char *msg, ...);
void vg_logv(enum vg_log_level level, const char *msg, va_list kv);

/* Key/value list variant for callers that build fields at run time. */
struct vg_log_field {
	const char *key;
	const char *val;
};
void vg_log_fields(enum vg_log_level level, const char *msg,
		   const struct vg_log_field *fields, int nfields);

/* 1 if a value logged under `key` is replaced by "[redacted]". */
int vg_log_key_is_secret(const char *key);

#define vg_debug(...) vg_log(VG_LOG_DEBUG, __VA_ARGS__, (const char *)NULL)
#define vg_info(...) vg_log(VG_LOG_INFO, __VA_ARGS__, (const char *)NULL)
#define vg_warn(...) vg_log(VG_LOG_WARN, __VA_ARGS__, (const char *)NULL)
#define vg_error(...) vg_log(VG_LOG_ERROR, __VA_ARGS__, (const char *)NULL)

#endif
