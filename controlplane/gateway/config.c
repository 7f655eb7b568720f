/*
 * config.c - the gateway's settings: one table names each setting's
 * environment variable (the operator's contract), its key in the JSON
 * config file, its command-line flag (derived from the variable: VIGIL_
 * dropped, lower case, '-' for '_'), type, default and bounds.
 */
#include "gateway.h"

#include "vigil/buf.h"
#include "vigil/json.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum ctype { T_STR, T_INT, T_BOOL, T_LONG };

struct setting {
	const char *env;
	const char *json; /* key path in VIGIL_CONFIG_FILE, or NULL */
	enum ctype type;
	size_t off;
	const char *def; /* NULL: unset */
	long long min, max;
	const char *help;
};

#define OFF(f) offsetof(struct gw_config, f)

static const struct setting settings[] = {
	{"VIGIL_PLATFORM", "platform", T_STR, OFF(platform), "", 0, 0,
         "name of the Platform resource"},
	{"VIGIL_NAMESPACE", "namespace", T_STR, OFF(namespace_), "", 0, 0,
         "install namespace"},
	{"VIGIL_LOG_LEVEL", "logLevel", T_STR, OFF(log_level), "info", 0, 0,
         "debug, info, warn, error"},
	{"VIGIL_EMERGENCY_STOP", "emergencyStop", T_BOOL, OFF(emergency_stop),
         "false", 0, 1, "engage the emergency stop at start-up"},
	{"VIGIL_HEALTH_PORT", "healthPort", T_INT, OFF(health_port), "9090", 0,
         65535, "port of /healthz, /readyz, /metrics"},
	{"VIGIL_GATEWAY_PORT", "gateway.port", T_INT, OFF(gateway_port), "8080",
         0, 65535, "port of the API"},
	{"VIGIL_GATEWAY_TLS", "gateway.tls", T_BOOL, OFF(gateway_tls), "false",
         0, 1, "serve the API over TLS"},
	{"VIGIL_GATEWAY_LISTEN", NULL, T_STR, OFF(listen), NULL, 0, 0,
         "API address host:port (default 0.0.0.0:$VIGIL_GATEWAY_PORT)"},
	{"VIGIL_HEALTH_LISTEN", NULL, T_STR, OFF(health_listen), NULL, 0, 0,
         "probe address host:port (default 0.0.0.0:$VIGIL_HEALTH_PORT)"},
	{"VIGIL_DB_HOST", "database.host", T_STR, OFF(db_host), "localhost", 0,
         0, "PostgreSQL host"},
	{"VIGIL_DB_PORT", "database.port", T_INT, OFF(db_port), "5432", 1,
         65535, "PostgreSQL port"},
	{"VIGIL_DB_NAME", "database.name", T_STR, OFF(db_name), "vigil", 0, 0,
         "database name"},
	{"VIGIL_DB_SSLMODE", "database.sslMode", T_STR, OFF(db_sslmode),
         "prefer", 0, 0, "libpq sslmode"},
	{"VIGIL_DB_SSLROOTCERT", "database.sslRootCert", T_STR,
         OFF(db_sslrootcert), NULL, 0, 0, "CA file for the server"},
	{"VIGIL_DB_USER", NULL, T_STR, OFF(db_user), "postgres", 0, 0,
         "user that runs the migrations (the database owner)"},
	{"VIGIL_DB_PASSWORD", NULL, T_STR, OFF(db_password), NULL, 0, 0,
         "its password"},
	{"VIGIL_DB_APP_USER", NULL, T_STR, OFF(db_app_user), NULL, 0, 0,
         "login of the request path (vigil_app); unset: VIGIL_DB_USER "
         "switched to role vigil_app"},
	{"VIGIL_DB_APP_PASSWORD", NULL, T_STR, OFF(db_app_password), NULL, 0, 0,
         "its password"},
	{"VIGIL_DB_POOL_MAX", NULL, T_INT, OFF(db_pool_max), "16", 1, 1000,
         "database connections"},
	{"VIGIL_DB_STATEMENT_TIMEOUT_MS", NULL, T_INT,
         OFF(db_statement_timeout_ms), "5000", 0, 600000,
         "statement timeout of the request path"},
	{"VIGIL_DB_MIGRATE", NULL, T_BOOL, OFF(migrate), "true", 0, 1,
         "run the schema migrations at start-up"},
	{"VIGIL_REDIS_HOST", "redis.host", T_STR, OFF(redis_host), "localhost",
         0, 0, "Redis host"},
	{"VIGIL_REDIS_PORT", "redis.port", T_INT, OFF(redis_port), "6379", 1,
         65535, "Redis port"},
	{"VIGIL_REDIS_ADDR", "redis.addr", T_STR, OFF(redis_addr), NULL, 0, 0,
         "Redis host:port (wins over host and port)"},
	{"VIGIL_REDIS_DB", "redis.db", T_INT, OFF(redis_db), "0", 0, 1024,
         "Redis database number"},
	{"VIGIL_REDIS_TLS", "redis.tls", T_BOOL, OFF(redis_tls), "false", 0, 1,
         "TLS to Redis"},
	{"VIGIL_REDIS_USER", NULL, T_STR, OFF(redis_user), NULL, 0, 0,
         "Redis ACL user"},
	{"VIGIL_REDIS_PASSWORD", NULL, T_STR, OFF(redis_password), NULL, 0, 0,
         "Redis password"},
	{"VIGIL_REDIS_POOL_MAX", NULL, T_INT, OFF(redis_pool_max), "16", 1,
         1000, "Redis connections"},
	{"VIGIL_QUEUE_PREFIX", "queue.prefix", T_STR, OFF(queue_prefix),
         "vigil", 0, 0,
         "hash tag of the task queue's Redis keys (as the "
         "worker's)"},
	{"VIGIL_EVENTS_MAX_QUEUE", NULL, T_LONG, OFF(events_max_queue),
         "262144", 4096, 64 << 20,
         "bytes of events waiting for one /v1/events client; past it the "
         "client is closed (1008)"},
	{"VIGIL_EVENTS_PING_INTERVAL_MS", NULL, T_INT, OFF(events_ping_ms),
         "30000", 100, 3600000,
         "ping interval of /v1/events; a client silent for two is closed"},
	{"VIGIL_SCAN_JOBS_REFRESH", NULL, T_INT, OFF(scan_jobs_refresh_s), "30",
         1, 3600,
         "seconds between counts of every tenant's scan runs by state "
         "(vigil_scan_jobs)"},
	{"VIGIL_SESSION_KEY", NULL, T_STR, OFF(session_key), NULL, 0, 0,
         "key of the session ids kept in Redis (shared by replicas)"},
	{"VIGIL_TLS_CERT_FILE", NULL, T_STR, OFF(tls_cert_file), NULL, 0, 0,
         "API certificate"},
	{"VIGIL_TLS_KEY_FILE", NULL, T_STR, OFF(tls_key_file), NULL, 0, 0,
         "API private key"},
	{"VIGIL_BOOTSTRAP_ADMIN_KEY", NULL, T_STR, OFF(bootstrap_key), NULL, 0,
         0, "a platform-admin API key (at least 32 characters)"},
	{"VIGIL_BOOTSTRAP_ADMIN_KEY_FILE", NULL, T_STR, OFF(bootstrap_key_file),
         NULL, 0, 0, "file holding that key"},
	{"VIGIL_GATEWAY_LOOPS", NULL, T_INT, OFF(loops), "0", 0, 256,
         "event-loop threads (0: one per CPU)"},
	{"VIGIL_GATEWAY_WORKERS", NULL, T_INT, OFF(workers), "16", 1, 1024,
         "handler threads"},
	{"VIGIL_GATEWAY_MAX_CONNS", NULL, T_INT, OFF(max_conns), "4096", 1,
         1000000, "open connections"},
	{"VIGIL_GATEWAY_MAX_HEADER", NULL, T_LONG, OFF(max_header), "16384",
         1024, 1 << 20, "request line and headers, bytes"},
	{"VIGIL_GATEWAY_MAX_BODY", NULL, T_LONG, OFF(max_body), "1048576", 0,
         64 << 20, "request body, bytes"},
	{"VIGIL_GATEWAY_REQUEST_TIMEOUT_MS", NULL, T_INT,
         OFF(request_timeout_ms), "10000", 100, 600000,
         "to receive a request or send a response"},
	{"VIGIL_GATEWAY_IDLE_TIMEOUT_MS", NULL, T_INT, OFF(idle_timeout_ms),
         "60000", 100, 3600000, "keep-alive idle time"},
	{"VIGIL_GATEWAY_DRAIN_TIMEOUT_MS", NULL, T_INT, OFF(drain_timeout_ms),
         "20000", 100, 600000, "shutdown: time for requests in flight"},
	{"VIGIL_SESSION_TTL", NULL, T_INT, OFF(session_ttl_s), "3600", 1,
         86400 * 30, "session idle expiry (sliding), seconds"},
	{"VIGIL_SESSION_MAX_AGE", NULL, T_INT, OFF(session_max_s), "43200", 1,
         86400 * 365, "session lifetime, seconds"},
	{"VIGIL_AUTH_FAIL_LIMIT", NULL, T_INT, OFF(auth_fail_limit), "10", 1,
         1000000, "failed authentications per address or user per window"},
	{"VIGIL_AUTH_FAIL_WINDOW", NULL, T_INT, OFF(auth_fail_window_s), "300",
         1, 86400, "that window, seconds"},
	{"VIGIL_AUTH_CACHE_TTL_MS", NULL, T_INT, OFF(auth_cache_ttl_ms), "5000",
         0, 60000,
         "how long a verified API key is remembered (revocations reach "
         "every replica at once; 0: look every key up)"},
	{"VIGIL_TRUSTED_PROXIES", NULL, T_STR, OFF(trusted_proxies), NULL, 0, 0,
         "proxies (addresses, CIDRs) whose X-Forwarded-For names the client"},
	{"VIGIL_ACCESS_LOG", NULL, T_BOOL, OFF(access_log), "true", 0, 1,
         "one log line per request"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void flag_name(const struct setting *s, char *out, size_t size)
{
	size_t i = 0;

	for (const char *p = s->env + 6; *p && i + 1 < size; p++, i++) {
		if (*p == '_')
			out[i] = '-';
		else if (*p >= 'A' && *p <= 'Z')
			out[i] = (char)(*p - 'A' + 'a');
		else
			out[i] = *p;
	}
	out[i] = '\0';
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off", ""};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcasecmp(v, yes[i]) == 0)
			return *out = 1, 0;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcasecmp(v, no[i]) == 0)
			return *out = 0, 0;
	return -1;
}

static int apply(struct gw_config *c, const struct setting *s, const char *v,
                 const char *from, struct vg_err *err)
{
	char *base = (char *)c + s->off;
	long long n;
	char *end;
	int b;

	switch (s->type) {
	case T_STR: {
		char *d = strdup(v);

		if (!d)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		free(*(char **)base);
		*(char **)base = d;
		return VG_OK;
	}
	case T_BOOL:
		if (parse_bool(v, &b))
			return vg_err_set(err, VG_CONFIG,
			                  "%s (%s): \"%s\" is not a boolean",
			                  s->env, from, v);
		*(int *)base = b;
		return VG_OK;
	case T_INT:
	case T_LONG:
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end || n < s->min || n > s->max)
			return vg_err_set(err, VG_CONFIG,
			                  "%s (%s): \"%s\" is not an integer "
			                  "in [%lld, %lld]",
			                  s->env, from, v, s->min, s->max);
		if (s->type == T_INT)
			*(int *)base = (int)n;
		else
			*(long *)base = (long)n;
		return VG_OK;
	}
	return VG_INTERNAL;
}

/* Values from the JSON copy of the configuration; the environment wins. */
static int load_file(struct gw_config *c, const char *path, struct vg_err *err)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	int rc = VG_OK;

	if (!doc)
		return vg_err_set(err, VG_CONFIG, "config file %s: %s", path,
		                  jerr.text);
	for (size_t i = 0; i < NSETTINGS && rc == VG_OK; i++) {
		const struct setting *s = &settings[i];
		json_t *v;
		char num[32];
		const char *str = NULL;

		if (!s->json || !(v = vg_json_get(doc, s->json)))
			continue;
		if (json_is_string(v))
			str = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(num, sizeof(num), "%lld",
			         (long long)json_integer_value(v)),
				str = num;
		else if (json_is_boolean(v))
			str = json_is_true(v) ? "true" : "false";
		if (str)
			rc = apply(c, s, str, path, err);
	}
	json_decref(doc);
	return rc;
}

static const struct setting *find_flag(const char *arg, size_t len)
{
	char name[64];

	for (size_t i = 0; i < NSETTINGS; i++) {
		flag_name(&settings[i], name, sizeof(name));
		if (strlen(name) == len && strncmp(name, arg, len) == 0)
			return &settings[i];
	}
	return NULL;
}

static int load_flags(struct gw_config *c, int argc, char **argv,
                      struct vg_err *err)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		const struct setting *s;
		int rc;

		if (strcmp(a, "--version") == 0) {
			c->show_version = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			c->show_help = 1;
			continue;
		}
		if (strcmp(a, "--openapi") == 0) {
			c->show_openapi = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return vg_err_set(err, VG_CONFIG,
			                  "unexpected argument \"%s\"", a);
		a += 2;
		eq = strchr(a, '=');
		s = find_flag(a, eq ? (size_t)(eq - a) : strlen(a));
		if (!s)
			return vg_err_set(err, VG_CONFIG, "unknown flag --%s",
			                  a);
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			return vg_err_set(err, VG_CONFIG, "--%s needs a value",
			                  a);
		}
		if ((rc = apply(c, s, val, "flag", err)) != VG_OK)
			return rc;
	}
	return VG_OK;
}

static int read_key_file(struct gw_config *c, struct vg_err *err)
{
	char buf[1024];
	FILE *f;
	size_t n;

	if (!c->bootstrap_key_file || c->bootstrap_key)
		return VG_OK;
	f = fopen(c->bootstrap_key_file, "re");
	if (!f)
		return vg_err_sys(err, VG_CONFIG, "bootstrap key file %s",
		                  c->bootstrap_key_file);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 &&
	       (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	c->bootstrap_key = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return c->bootstrap_key ? VG_OK
	                        : vg_err_set(err, VG_NOMEM, "out of memory");
}

static int derive(struct gw_config *c, struct vg_err *err)
{
	char addr[64];

	if (!c->listen) {
		snprintf(addr, sizeof(addr), "0.0.0.0:%d", c->gateway_port);
		if (!(c->listen = strdup(addr)))
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (!c->health_listen) {
		snprintf(addr, sizeof(addr), "0.0.0.0:%d", c->health_port);
		if (!(c->health_listen = strdup(addr)))
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (c->redis_addr && c->redis_addr[0]) {
		const char *colon = strrchr(c->redis_addr, ':');
		char *end;
		long port;

		if (!colon)
			return vg_err_set(err, VG_CONFIG,
			                  "VIGIL_REDIS_ADDR: want host:port");
		port = strtol(colon + 1, &end, 10);
		if (*end || port < 1 || port > 65535)
			return vg_err_set(err, VG_CONFIG,
			                  "VIGIL_REDIS_ADDR: bad port");
		free(c->redis_host);
		c->redis_host =
			strndup(c->redis_addr, (size_t)(colon - c->redis_addr));
		if (!c->redis_host)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		c->redis_port = (int)port;
	}
	if (c->gateway_tls && (!c->tls_cert_file || !*c->tls_cert_file ||
	                       !c->tls_key_file || !*c->tls_key_file))
		return vg_err_set(
			err, VG_CONFIG,
			"VIGIL_GATEWAY_TLS: needs VIGIL_TLS_CERT_FILE "
			"and VIGIL_TLS_KEY_FILE");
	if (c->redis_tls)
		return vg_err_set(err, VG_CONFIG,
		                  "VIGIL_REDIS_TLS: TLS to Redis is not "
		                  "supported by this version");
	{
		struct gw_cidr cidrs[GW_MAX_PROXIES];
		size_t n;
		int rc = gw_proxies_parse(c->trusted_proxies, cidrs,
		                          GW_MAX_PROXIES, &n, err);

		if (rc != VG_OK)
			return rc;
	}
	if (c->bootstrap_key && strlen(c->bootstrap_key) < 32)
		return vg_err_set(err, VG_CONFIG,
		                  "VIGIL_BOOTSTRAP_ADMIN_KEY: at least 32 "
		                  "characters");
	return VG_OK;
}

int gw_config_load(struct gw_config *c, int argc, char **argv,
                   struct vg_err *err)
{
	const char *file = getenv("VIGIL_CONFIG_FILE");
	int rc;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].def &&
		    (rc = apply(c, &settings[i], settings[i].def, "default",
		                err)) != VG_OK)
			return rc;
	if (file && *file) {
		FILE *probe = fopen(file, "re");

		/* the file is optional: the environment carries everything */
		if (probe) {
			fclose(probe);
			if ((rc = load_file(c, file, err)) != VG_OK)
				return rc;
		}
		if (!(c->config_file = strdup(file)))
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *v = getenv(settings[i].env);

		if (v && (rc = apply(c, &settings[i], v, "environment", err)) !=
		                 VG_OK)
			return rc;
	}
	if ((rc = load_flags(c, argc, argv, err)) != VG_OK)
		return rc;
	if (c->show_help || c->show_version || c->show_openapi)
		return VG_OK;
	if ((rc = read_key_file(c, err)) != VG_OK)
		return rc;
	return derive(c, err);
}

static void free_secret(char **p)
{
	if (*p)
		OPENSSL_cleanse(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

void gw_config_cleanup(struct gw_config *c)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].type == T_STR)
			free_secret((char **)((char *)c + settings[i].off));
	free(c->config_file);
	memset(c, 0, sizeof(*c));
}

void gw_config_usage(void)
{
	char name[64];

	fprintf(stderr,
	        "usage: vigil-gateway [--version] [--openapi] [--FLAG "
	        "VALUE]...\n\n"
	        "--openapi prints the API's OpenAPI document and exits.\n"
	        "Every flag has an environment variable; flags win.\n\n");
	for (size_t i = 0; i < NSETTINGS; i++) {
		flag_name(&settings[i], name, sizeof(name));
		fprintf(stderr, "  --%-28s %s\n      %s%s%s\n", name,
		        settings[i].env, settings[i].help,
		        settings[i].def ? "; default " : "",
		        settings[i].def ? settings[i].def : "");
	}
}

/* Append key='value' to a conninfo, quoting as libpq wants. */
static void ci_add(struct vg_buf *b, const char *key, const char *val)
{
	if (!val || !*val)
		return;
	vg_buf_appendf(b, "%s%s='", b->len ? " " : "", key);
	for (const char *p = val; *p; p++) {
		if (*p == '\'' || *p == '\\')
			vg_buf_append_byte(b, '\\');
		vg_buf_append_byte(b, *p);
	}
	vg_buf_append_byte(b, '\'');
}

char *gw_config_conninfo(const struct gw_config *c, int app)
{
	struct vg_buf b;
	char port[16];

	vg_buf_init(&b, 0);
	snprintf(port, sizeof(port), "%d", c->db_port);
	ci_add(&b, "host", c->db_host);
	ci_add(&b, "port", port);
	ci_add(&b, "dbname", c->db_name);
	ci_add(&b, "sslmode", c->db_sslmode);
	ci_add(&b, "sslrootcert", c->db_sslrootcert);
	if (app && c->db_app_user) {
		ci_add(&b, "user", c->db_app_user);
		ci_add(&b, "password", c->db_app_password);
	} else {
		ci_add(&b, "user", c->db_user);
		ci_add(&b, "password", c->db_password);
		/* the owner's login, switched to the unprivileged role for
		 * the whole session */
		if (app)
			ci_add(&b, "options", "-c role=vigil_app");
	}
	return vg_buf_take(&b);
}
