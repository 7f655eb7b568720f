/* log.c - JSON Lines logging, one write(2) per record. */
#include "vigil/log.h"

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/timeutil.h"
#include "vigil/json.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = VG_LOG_INFO;
static _Atomic int log_fd = 2;
static char log_component[64] = "vigil";

static const char *const level_names[] = {
	[VG_LOG_DEBUG] = "debug",
	[VG_LOG_INFO] = "info",
	[VG_LOG_WARN] = "warn",
	[VG_LOG_ERROR] = "error",
	[VG_LOG_OFF] = "off",
};

/* Substrings that mark a key as naming a credential. */
static const char *const secret_words[] = {
	"password", "passwd", "secret", "token", "authorization",
	"api_key", "apikey", "cookie", "credential", "private_key",
};

int vg_log_parse_level(const char *s, enum vg_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum vg_log_level)i;
			return VG_OK;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = VG_LOG_WARN;
		return VG_OK;
	}
	return VG_INVAL;
}

void vg_log_init(const char *component)
{
	const char *env = getenv("VIGIL_LOG_LEVEL");
	enum vg_log_level lvl;

	if (component)
		snprintf(log_component, sizeof(log_component), "%s", component);
	if (env && *env && vg_log_parse_level(env, &lvl) == VG_OK)
		log_level = (int)lvl;
}

void vg_log_set_level(enum vg_log_level level)
{
	log_level = (int)level;
}

enum vg_log_level vg_log_get_level(void)
{
	return (enum vg_log_level)log_level;
}

void vg_log_set_fd(int fd)
{
	log_fd = fd;
}

int vg_log_enabled(enum vg_log_level level)
{
	int l = (int)level;

	/* OFF and values outside the enum never log (nor index names) */
	return l >= VG_LOG_DEBUG && l < VG_LOG_OFF && l >= log_level;
}

int vg_log_key_is_secret(const char *key)
{
	for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]);
	     i++)
		if (strcasestr(key, secret_words[i]))
			return 1;
	return 0;
}

/* Append `s` as a JSON string literal; invalid UTF-8 becomes U+FFFD so the
 * record stays one valid JSON line. A failed append is caught by emit(). */
static void json_str(struct vg_buf *b, const char *s)
{
	vg_json_escape(b, s, strlen(s));
}

static void append_field(struct vg_buf *b, const char *key, const char *val)
{
	vg_buf_append_byte(b, ',');
	json_str(b, key);
	vg_buf_append_byte(b, ':');
	if (!val)
		vg_buf_append_str(b, "null");
	else if (vg_log_key_is_secret(key))
		json_str(b, "[redacted]");
	else
		json_str(b, val);
}

static void emit(struct vg_buf *b)
{
	const char *p = vg_buf_str(b);
	size_t left = b->len;
	int fd = log_fd;

	if (b->len == 0 || b->data[b->len - 1] != '\n')
		return; /* allocation failed part-way: drop, never emit half */
	p = b->data;
	while (left > 0) {
		ssize_t n = write(fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		left -= (size_t)n;
	}
}

static void record_begin(struct vg_buf *b, enum vg_log_level level,
			 const char *msg)
{
	char ts[64];

	vg_time_rfc3339(ts, sizeof(ts), 3);
	vg_buf_append_str(b, "{\"ts\":\"");
	vg_buf_append_str(b, ts);
	vg_buf_append_str(b, "\",\"level\":\"");
	vg_buf_append_str(b, level_names[level]);
	vg_buf_append_str(b, "\",\"component\":");
	json_str(b, log_component);
	vg_buf_append_str(b, ",\"msg\":");
	json_str(b, msg ? msg : "");
}

static int record_end(struct vg_buf *b)
{
	return vg_buf_append(b, "}\n", 2);
}

void vg_logv(enum vg_log_level level, const char *msg, va_list kv)
{
	struct vg_buf b;
	const char *key;

	if (!vg_log_enabled(level))
		return;
	vg_buf_init(&b, 0);
	record_begin(&b, level, msg);
	while ((key = va_arg(kv, const char *)) != NULL) {
		const char *val = va_arg(kv, const char *);

		append_field(&b, key, val);
	}
	if (record_end(&b) == VG_OK)
		emit(&b);
	vg_buf_cleanup(&b);
}

void vg_log(enum vg_log_level level, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vg_logv(level, msg, ap);
	va_end(ap);
}

void vg_log_fields(enum vg_log_level level, const char *msg,
		   const struct vg_log_field *fields, int nfields)
{
	struct vg_buf b;

	if (!vg_log_enabled(level))
		return;
	vg_buf_init(&b, 0);
	record_begin(&b, level, msg);
	for (int i = 0; i < nfields; i++)
		if (fields[i].key)
			append_field(&b, fields[i].key, fields[i].val);
	if (record_end(&b) == VG_OK)
		emit(&b);
	vg_buf_cleanup(&b);
}
