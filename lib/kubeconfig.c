/*
 * kubeconfig.c - where the Kubernetes client connects and as whom: a
 * kubeconfig (files merged as kubectl merges $KUBECONFIG), or a pod's
 * service account (in-cluster).
 *
 * PEM material stays in memory (the client hands it to curl as blobs);
 * credentials are wiped before they are freed and never logged.
 */
#include "kube_int.h"

#include "vigil/err.h"
#include "vigil/kube.h"
#include "vigil/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KUBECONFIG_BYTES (16u * 1024 * 1024)
#define MAX_PEM_BYTES        (16u * 1024 * 1024)
#define MAX_SMALL_FILE       (64u * 1024)
#define MAX_KUBECONFIG_FILES 32

/* ------------------------------------------------------------------ */
/* Files and secrets                                                    */
/* ------------------------------------------------------------------ */

void kube_free_secret(char *p, size_t n)
{
	if (!p)
		return;
	explicit_bzero(p, n);
	free(p);
}

int kube_read_file(const char *path, size_t max, char **out, size_t *len,
                   struct vg_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap;
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return vg_err_sys(err, VG_IO, "%s", path);
	if (fstat(fd, &st) != 0) {
		rc = vg_err_sys(err, VG_IO, "%s", path);
		goto out;
	}
	/* Devices and FIFOs could block or never end. */
	if (!S_ISREG(st.st_mode)) {
		rc = vg_err_set(err, VG_IO, "%s: not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		rc = vg_err_set(err, VG_TOOLARGE, "%s: larger than %zu bytes",
		                path, max);
		goto out;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = vg_err_set(err, VG_NOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 == cap) {
			/* The file grew since fstat. */
			char *nb;

			if (cap > max) {
				rc = vg_err_set(err, VG_TOOLARGE,
				                "%s: larger than %zu bytes",
				                path, max);
				goto out;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = vg_err_set(err, VG_NOMEM,
				                "%s: out of memory", path);
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = vg_err_sys(err, VG_IO, "%s", path);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		rc = vg_err_set(err, VG_TOOLARGE, "%s: larger than %zu bytes",
		                path, max);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	rc = VG_OK;
out:
	if (buf)
		kube_free_secret(buf, cap);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The config struct                                                    */
/* ------------------------------------------------------------------ */

void vg_kube_config_init(struct vg_kube_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

static void free_str_secret(char *s)
{
	if (s)
		kube_free_secret(s, strlen(s));
}

void vg_kube_config_cleanup(struct vg_kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->context);
	free(cfg->ca_pem);
	free(cfg->tls_server_name);
	free(cfg->cert_pem);
	kube_free_secret(cfg->key_pem, cfg->key_len);
	free_str_secret(cfg->token);
	free(cfg->token_file);
	free(cfg->username);
	free_str_secret(cfg->password);
	vg_kube_config_init(cfg);
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return VG_OK;
	*dst = strdup(src);
	return *dst ? VG_OK : VG_NOMEM;
}

static int dup_mem(char **dst, size_t *dlen, const char *src, size_t len)
{
	*dst = NULL;
	*dlen = 0;
	if (!src)
		return VG_OK;
	*dst = malloc(len + 1);
	if (!*dst)
		return VG_NOMEM;
	memcpy(*dst, src, len);
	(*dst)[len] = '\0';
	*dlen = len;
	return VG_OK;
}

int vg_kube_config_copy(struct vg_kube_config *dst,
                        const struct vg_kube_config *src, struct vg_err *err)
{
	int rc = 0;

	vg_kube_config_init(dst);
	rc |= dup_str(&dst->server, src->server);
	rc |= dup_str(&dst->namespace, src->namespace);
	rc |= dup_str(&dst->context, src->context);
	rc |= dup_mem(&dst->ca_pem, &dst->ca_len, src->ca_pem, src->ca_len);
	rc |= dup_str(&dst->tls_server_name, src->tls_server_name);
	rc |= dup_mem(&dst->cert_pem, &dst->cert_len, src->cert_pem,
	              src->cert_len);
	rc |= dup_mem(&dst->key_pem, &dst->key_len, src->key_pem, src->key_len);
	rc |= dup_str(&dst->token, src->token);
	rc |= dup_str(&dst->token_file, src->token_file);
	rc |= dup_str(&dst->username, src->username);
	rc |= dup_str(&dst->password, src->password);
	dst->insecure_skip_tls_verify = src->insecure_skip_tls_verify;
	if (!dst->namespace && rc == 0)
		rc = dup_str(&dst->namespace, "default");
	if (rc) {
		vg_kube_config_cleanup(dst);
		return vg_err_set(err, VG_NOMEM, "copying configuration");
	}
	return VG_OK;
}

/* ------------------------------------------------------------------ */
/* Base64 and PEM                                                       */
/* ------------------------------------------------------------------ */

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/*
 * Decode standard, padded base64 (as Go's encoding/json reads []byte);
 * whitespace is skipped. On failure *bad_at is the offending offset.
 */
static int b64_decode(const char *in, size_t len, char **out, size_t *olen,
                      size_t *bad_at)
{
	unsigned char *buf = malloc(len / 4 * 3 + 4);
	unsigned quad[4];
	size_t n = 0, q = 0, pad = 0;

	*out = NULL;
	*olen = 0;
	*bad_at = 0;
	if (!buf)
		return VG_NOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v;

		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
			continue;
		if (ch == '=') {
			/* Padding only in the last two places of a quad. */
			if (q < 2) {
				*bad_at = i;
				goto bad;
			}
			pad++;
			quad[q++] = 0;
		} else {
			v = b64_value(ch);
			if (v < 0 || pad) {
				*bad_at = i;
				goto bad;
			}
			quad[q++] = (unsigned)v;
		}
		if (q == 4) {
			buf[n++] = (unsigned char)(quad[0] << 2 | quad[1] >> 4);
			if (pad < 2)
				buf[n++] = (unsigned char)((quad[1] & 15) << 4 |
				                           quad[2] >> 2);
			if (pad < 1)
				buf[n++] = (unsigned char)((quad[2] & 3) << 6 |
				                           quad[3]);
			q = 0;
			if (pad) {
				/* Nothing but whitespace may follow. */
				for (size_t j = i + 1; j < len; j++) {
					if (!strchr(" \t\r\n", in[j]) ||
					    !in[j]) {
						*bad_at = j;
						goto bad;
					}
				}
				break;
			}
		}
	}
	if (q != 0) {
		*bad_at = len;
		goto bad;
	}
	buf[n] = '\0';
	*out = (char *)buf;
	*olen = n;
	return VG_OK;
bad:
	kube_free_secret((char *)buf, len / 4 * 3 + 4);
	return VG_PARSE;
}

static int looks_like_pem(const char *p, size_t len)
{
	return memmem(p, len, "-----BEGIN ", 11) != NULL;
}

/* ------------------------------------------------------------------ */
/* kubeconfig documents                                                 */
/* ------------------------------------------------------------------ */

struct kc_doc {
	json_t *doc;
	char *dir;  /* directory relative paths resolve against */
	char *path; /* for messages; "<data>" for in-memory input */
};

struct kc_set {
	struct kc_doc docs[MAX_KUBECONFIG_FILES];
	size_t n;
};

static void kc_set_cleanup(struct kc_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		json_decref(s->docs[i].doc);
		free(s->docs[i].dir);
		free(s->docs[i].path);
	}
	s->n = 0;
}

/* Parse `data` as one kubeconfig document and append it to the set. */
static int kc_add(struct kc_set *s, const char *data, size_t len,
                  const char *path, const char *dir, struct vg_err *err)
{
	struct kc_doc *d;
	json_t *doc = NULL;
	struct vg_err perr;
	int rc;

	if (s->n == MAX_KUBECONFIG_FILES)
		return vg_err_set(err, VG_CONFIG,
		                  "more than %d kubeconfig files",
		                  MAX_KUBECONFIG_FILES);
	vg_err_clear(&perr);
	rc = vg_yaml_parse(data, len, &doc, &perr);
	if (rc)
		return vg_err_set(err, rc == VG_NOMEM ? VG_NOMEM : VG_CONFIG,
		                  "kubeconfig %s: %s", path, perr.msg);
	if (json_is_null(doc)) {
		/* An empty file is an empty config, as for kubectl. */
		json_decref(doc);
		doc = json_object();
		if (!doc)
			return vg_err_set(err, VG_NOMEM, "out of memory");
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return vg_err_set(err, VG_CONFIG,
		                  "kubeconfig %s: top level is not a mapping",
		                  path);
	}
	d = &s->docs[s->n];
	d->doc = doc;
	d->dir = strdup(dir ? dir : ".");
	d->path = strdup(path);
	s->n++;
	if (!d->dir || !d->path)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return VG_OK;
}

/* Directory part of `path` as a new string ("." when there is none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int kc_add_file(struct kc_set *s, const char *path, struct vg_err *err)
{
	char *data = NULL, *dir = NULL;
	size_t len = 0;
	struct vg_err ferr;
	int rc;

	vg_err_clear(&ferr);
	rc = kube_read_file(path, MAX_KUBECONFIG_BYTES, &data, &len, &ferr);
	if (rc)
		return vg_err_set(err, rc == VG_NOMEM ? VG_NOMEM : VG_CONFIG,
		                  "kubeconfig %s", ferr.msg);
	dir = dir_of(path);
	if (!dir)
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
	else
		rc = kc_add(s, data, len, path, dir, err);
	/* Kubeconfigs embed keys and tokens. */
	kube_free_secret(data, len);
	free(dir);
	return rc;
}

/*
 * Find the entry `name` in list `list` ("clusters") of the first document
 * that has it, returning its `inner` mapping ("cluster") and document.
 */
static int kc_find(const struct kc_set *s, const char *list, const char *inner,
                   const char *name, json_t **entry, const struct kc_doc **from,
                   struct vg_err *err)
{
	for (size_t i = 0; i < s->n; i++) {
		json_t *arr = json_object_get(s->docs[i].doc, list);
		size_t idx;
		json_t *el;

		if (!arr || json_is_null(arr))
			continue;
		if (!json_is_array(arr))
			return vg_err_set(err, VG_CONFIG,
			                  "kubeconfig %s: %s is not a list",
			                  s->docs[i].path, list);
		json_array_foreach(arr, idx, el)
		{
			const char *n =
				json_string_value(json_object_get(el, "name"));
			json_t *v;

			if (!n || strcmp(n, name) != 0)
				continue;
			v = json_object_get(el, inner);
			if (v && !json_is_null(v) && !json_is_object(v))
				return vg_err_set(
					err, VG_CONFIG,
					"kubeconfig %s: %s \"%s\": %s is not "
					"a mapping",
					s->docs[i].path, inner, name, inner);
			*entry = v;
			*from = &s->docs[i];
			return VG_OK;
		}
	}
	*entry = NULL;
	*from = NULL;
	return VG_NOTFOUND;
}

/* String field `key` of `obj` (NULL when absent or null). */
static int kc_str(const json_t *obj, const char *key, const char *what,
                  const char *name, const char **out, struct vg_err *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return VG_OK;
	if (!json_is_string(v))
		return vg_err_set(err, VG_CONFIG,
		                  "%s \"%s\": %s is not a string", what, name,
		                  key);
	*out = json_string_value(v);
	if (!**out)
		*out = NULL;
	return VG_OK;
}

/* `rel` resolved against `dir` unless absolute; new string. */
static char *resolve_path(const char *dir, const char *rel)
{
	size_t n;
	char *p;

	if (rel[0] == '/' || !dir)
		return strdup(rel);
	n = strlen(dir) + strlen(rel) + 2;
	p = malloc(n);
	if (p && snprintf(p, n, "%s/%s", dir, rel) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/*
 * PEM material from `<key>-data` (base64) or else from file `<key>`
 * (resolved against the document's directory). *pem NULL when neither.
 */
static int kc_pem(const json_t *obj, const struct kc_doc *from,
                  const char *what, const char *name, const char *key,
                  char **pem, size_t *len, struct vg_err *err)
{
	char data_key[64];
	const char *b64 = NULL, *file = NULL;
	char *path = NULL;
	size_t bad_at;
	struct vg_err ferr;
	int rc;

	*pem = NULL;
	*len = 0;
	snprintf(data_key, sizeof(data_key), "%s-data", key);
	rc = kc_str(obj, data_key, what, name, &b64, err);
	if (rc == VG_OK)
		rc = kc_str(obj, key, what, name, &file, err);
	if (rc)
		return rc;
	if (b64) {
		rc = b64_decode(b64, strlen(b64), pem, len, &bad_at);
		if (rc == VG_NOMEM)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		if (rc)
			return vg_err_set(err, VG_CONFIG,
			                  "%s \"%s\": %s is not valid base64 "
			                  "(at offset %zu)",
			                  what, name, data_key, bad_at);
		key = data_key;
	} else if (file) {
		path = resolve_path(from->dir, file);
		if (!path)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		vg_err_clear(&ferr);
		rc = kube_read_file(path, MAX_PEM_BYTES, pem, len, &ferr);
		free(path);
		if (rc)
			return vg_err_set(
				err, rc == VG_NOMEM ? VG_NOMEM : VG_CONFIG,
				"%s \"%s\": %s: %s", what, name, key, ferr.msg);
	} else {
		return VG_OK;
	}
	if (!looks_like_pem(*pem, *len)) {
		kube_free_secret(*pem, *len);
		*pem = NULL;
		*len = 0;
		return vg_err_set(err, VG_CONFIG,
		                  "%s \"%s\": %s does not hold PEM data", what,
		                  name, key);
	}
	return VG_OK;
}

/* Normalise the server URL: default scheme https, no trailing '/'. */
static int kc_server(const char *server, const char *cluster, char **out,
                     struct vg_err *err)
{
	const char *sep = strstr(server, "://");
	size_t n;

	*out = NULL;
	if (sep && strncmp(server, "https://", 8) != 0 &&
	    strncmp(server, "http://", 7) != 0)
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\": server %s: only http and "
		                  "https are supported",
		                  cluster, server);
	n = strlen(server) + (sep ? 0 : 8) + 1;
	*out = malloc(n);
	if (!*out)
		return vg_err_set(err, VG_NOMEM, "out of memory");
	snprintf(*out, n, "%s%s", sep ? "" : "https://", server);
	n = strlen(*out);
	while (n > 0 && (*out)[n - 1] == '/')
		(*out)[--n] = '\0';
	if (strlen(*out) <= (sep ? (size_t)(sep - server) + 3 : 8)) {
		free(*out);
		*out = NULL;
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\": server has no host",
		                  cluster);
	}
	return VG_OK;
}

static int kc_cluster(struct vg_kube_config *cfg, const struct kc_set *s,
                      const char *name, const char *ctx, struct vg_err *err)
{
	const struct kc_doc *from;
	const char *server = NULL, *tsn = NULL;
	json_t *cl, *insecure;
	int rc;

	rc = kc_find(s, "clusters", "cluster", name, &cl, &from, err);
	if (rc == VG_NOTFOUND)
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\" (of context \"%s\") not "
		                  "found in kubeconfig",
		                  name, ctx);
	if (rc)
		return rc;
	rc = kc_str(cl, "server", "cluster", name, &server, err);
	if (rc == VG_OK)
		rc = kc_str(cl, "tls-server-name", "cluster", name, &tsn, err);
	if (rc)
		return rc;
	if (!server)
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\" has no server", name);
	rc = kc_server(server, name, &cfg->server, err);
	if (rc)
		return rc;
	insecure = json_object_get(cl, "insecure-skip-tls-verify");
	if (insecure && !json_is_null(insecure) && !json_is_boolean(insecure))
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\": insecure-skip-tls-verify "
		                  "is not a boolean",
		                  name);
	cfg->insecure_skip_tls_verify = json_is_true(insecure);
	if (tsn && dup_str(&cfg->tls_server_name, tsn))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	rc = kc_pem(cl, from, "cluster", name, "certificate-authority",
	            &cfg->ca_pem, &cfg->ca_len, err);
	if (rc)
		return rc;
	if (cfg->ca_pem && cfg->insecure_skip_tls_verify)
		return vg_err_set(err, VG_CONFIG,
		                  "cluster \"%s\": a certificate authority "
		                  "and insecure-skip-tls-verify exclude each "
		                  "other",
		                  name);
	return VG_OK;
}

/* Authentication kinds vigil cannot perform. */
static const char *const unsupported_auth[] = {"exec", "auth-provider"};

static int kc_user(struct vg_kube_config *cfg, const struct kc_set *s,
                   const char *name, const char *ctx, struct vg_err *err)
{
	const struct kc_doc *from;
	const char *token = NULL, *token_file = NULL, *user = NULL,
		   *pass = NULL;
	char *tf = NULL, *probe = NULL;
	size_t probe_len = 0;
	struct vg_err ferr;
	json_t *u;
	int rc;

	rc = kc_find(s, "users", "user", name, &u, &from, err);
	if (rc == VG_NOTFOUND)
		return vg_err_set(err, VG_CONFIG,
		                  "user \"%s\" (of context \"%s\") not found "
		                  "in kubeconfig",
		                  name, ctx);
	if (rc)
		return rc;
	for (size_t i = 0;
	     i < sizeof(unsupported_auth) / sizeof(unsupported_auth[0]); i++) {
		json_t *v = json_object_get(u, unsupported_auth[i]);

		if (v && !json_is_null(v))
			return vg_err_set(err, VG_CONFIG,
			                  "user \"%s\": %s credentials are "
			                  "not supported",
			                  name, unsupported_auth[i]);
	}
	rc = kc_pem(u, from, "user", name, "client-certificate", &cfg->cert_pem,
	            &cfg->cert_len, err);
	if (rc == VG_OK)
		rc = kc_pem(u, from, "user", name, "client-key", &cfg->key_pem,
		            &cfg->key_len, err);
	if (rc)
		return rc;
	if (!cfg->cert_pem != !cfg->key_pem)
		return vg_err_set(err, VG_CONFIG,
		                  "user \"%s\": client certificate and client "
		                  "key must be given together",
		                  name);
	rc = kc_str(u, "token", "user", name, &token, err);
	if (rc == VG_OK)
		rc = kc_str(u, "tokenFile", "user", name, &token_file, err);
	if (rc == VG_OK)
		rc = kc_str(u, "username", "user", name, &user, err);
	if (rc == VG_OK)
		rc = kc_str(u, "password", "user", name, &pass, err);
	if (rc)
		return rc;
	if (token) {
		/* A literal token wins over tokenFile, as in client-go. */
		if (dup_str(&cfg->token, token))
			return vg_err_set(err, VG_NOMEM, "out of memory");
	} else if (token_file) {
		tf = resolve_path(from->dir, token_file);
		if (!tf)
			return vg_err_set(err, VG_NOMEM, "out of memory");
		/* Fail now, with a clear message, if it cannot be read. */
		vg_err_clear(&ferr);
		rc = kube_read_file(tf, MAX_SMALL_FILE, &probe, &probe_len,
		                    &ferr);
		kube_free_secret(probe, probe_len);
		if (rc) {
			free(tf);
			return vg_err_set(err, VG_CONFIG,
			                  "user \"%s\": tokenFile: %s", name,
			                  ferr.msg);
		}
		cfg->token_file = tf;
	}
	if (user && (dup_str(&cfg->username, user) ||
	             dup_str(&cfg->password, pass ? pass : "")))
		return vg_err_set(err, VG_NOMEM, "out of memory");
	return VG_OK;
}

static int kc_resolve(struct vg_kube_config *out, const struct kc_set *s,
                      const char *context, struct vg_err *err)
{
	struct vg_kube_config cfg;
	const struct kc_doc *from;
	const char *cluster = NULL, *user = NULL, *ns = NULL;
	json_t *ctx;
	int rc;

	vg_kube_config_init(&cfg);
	if (!context) {
		for (size_t i = 0; i < s->n && !context; i++) {
			json_t *cc = json_object_get(s->docs[i].doc,
			                             "current-context");

			if (cc && !json_is_null(cc) && !json_is_string(cc)) {
				rc = vg_err_set(
					err, VG_CONFIG,
					"kubeconfig %s: current-context "
					"is not a string",
					s->docs[i].path);
				goto out;
			}
			context = json_string_value(cc);
			if (context && !*context)
				context = NULL;
		}
		if (!context) {
			rc = vg_err_set(err, VG_CONFIG,
			                "kubeconfig: no context given and "
			                "current-context is not set");
			goto out;
		}
	}
	rc = kc_find(s, "contexts", "context", context, &ctx, &from, err);
	if (rc == VG_NOTFOUND) {
		rc = vg_err_set(err, VG_CONFIG,
		                "context \"%s\" not found in kubeconfig",
		                context);
		goto out;
	}
	if (rc)
		goto out;
	rc = kc_str(ctx, "cluster", "context", context, &cluster, err);
	if (rc == VG_OK)
		rc = kc_str(ctx, "user", "context", context, &user, err);
	if (rc == VG_OK)
		rc = kc_str(ctx, "namespace", "context", context, &ns, err);
	if (rc)
		goto out;
	if (!cluster) {
		rc = vg_err_set(err, VG_CONFIG, "context \"%s\" has no cluster",
		                context);
		goto out;
	}
	rc = kc_cluster(&cfg, s, cluster, context, err);
	if (rc)
		goto out;
	if (user) {
		rc = kc_user(&cfg, s, user, context, err);
		if (rc)
			goto out;
	}
	if (dup_str(&cfg.namespace, ns ? ns : "default") ||
	    dup_str(&cfg.context, context)) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	vg_kube_config_cleanup(out);
	*out = cfg;
	vg_kube_config_init(&cfg);
	rc = VG_OK;
out:
	vg_kube_config_cleanup(&cfg);
	return rc;
}

int vg_kube_config_load_data(struct vg_kube_config *cfg, const char *data,
                             size_t len, const char *base_dir,
                             const char *context, struct vg_err *err)
{
	struct kc_set s = {.n = 0};
	int rc;

	rc = kc_add(&s, data, len, "<data>", base_dir, err);
	if (rc == VG_OK)
		rc = kc_resolve(cfg, &s, context, err);
	kc_set_cleanup(&s);
	return rc;
}

int vg_kube_config_load_file(struct vg_kube_config *cfg, const char *path,
                             const char *context, struct vg_err *err)
{
	struct kc_set s = {.n = 0};
	char *list = NULL, *home_cfg = NULL;
	const char *env;
	int rc = VG_OK;

	if (path) {
		rc = kc_add_file(&s, path, err);
	} else if ((env = getenv("KUBECONFIG")) && *env) {
		char *p, *next;

		list = strdup(env);
		if (!list) {
			rc = vg_err_set(err, VG_NOMEM, "out of memory");
			goto out;
		}
		/* Missing files in the list are skipped, as kubectl does. */
		for (p = list; p && rc == VG_OK; p = next) {
			next = strchr(p, ':');
			if (next)
				*next++ = '\0';
			if (*p && access(p, F_OK) == 0)
				rc = kc_add_file(&s, p, err);
		}
		if (rc == VG_OK && s.n == 0)
			rc = vg_err_set(err, VG_CONFIG,
			                "kubeconfig: none of the files in "
			                "$KUBECONFIG (%s) exists",
			                env);
	} else {
		const char *home = getenv("HOME");
		size_t n;

		if (!home || !*home) {
			rc = vg_err_set(
				err, VG_CONFIG,
				"kubeconfig: no path given, $KUBECONFIG "
				"and $HOME are unset");
			goto out;
		}
		n = strlen(home) + sizeof("/.kube/config");
		home_cfg = malloc(n);
		if (!home_cfg) {
			rc = vg_err_set(err, VG_NOMEM, "out of memory");
			goto out;
		}
		snprintf(home_cfg, n, "%s/.kube/config", home);
		rc = kc_add_file(&s, home_cfg, err);
	}
	if (rc == VG_OK)
		rc = kc_resolve(cfg, &s, context, err);
out:
	kc_set_cleanup(&s);
	free(list);
	free(home_cfg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* In-cluster                                                           */
/* ------------------------------------------------------------------ */

static char *join(const char *dir, const char *file)
{
	size_t n = strlen(dir) + strlen(file) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, file);
	return p;
}

int vg_kube_config_in_cluster(struct vg_kube_config *out, const char *sa_dir,
                              struct vg_err *err)
{
	struct vg_kube_config cfg;
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *ca_path = NULL, *ns_path = NULL, *ns = NULL, *probe = NULL;
	size_t ns_len = 0, probe_len = 0, n;
	struct vg_err ferr;
	char *end;
	long portnum;
	int rc;

	vg_kube_config_init(&cfg);
	vg_err_clear(&ferr);
	if (!sa_dir)
		sa_dir = VG_KUBE_SA_DIR;
	if (!host || !*host || !port || !*port)
		return vg_err_set(err, VG_CONFIG,
		                  "not in a cluster: KUBERNETES_SERVICE_HOST "
		                  "and KUBERNETES_SERVICE_PORT must be set");
	errno = 0;
	portnum = strtol(port, &end, 10);
	if (errno || *end || portnum < 1 || portnum > 65535)
		return vg_err_set(err, VG_CONFIG,
		                  "KUBERNETES_SERVICE_PORT \"%s\" is not a "
		                  "port number",
		                  port);
	n = strlen(host) + 32;
	cfg.server = malloc(n);
	cfg.token_file = join(sa_dir, "token");
	ca_path = join(sa_dir, "ca.crt");
	ns_path = join(sa_dir, "namespace");
	if (!cfg.server || !cfg.token_file || !ca_path || !ns_path) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	/* An IPv6 address needs brackets in a URL. */
	snprintf(cfg.server, n,
	         strchr(host, ':') ? "https://[%s]:%ld" : "https://%s:%ld",
	         host, portnum);

	rc = kube_read_file(cfg.token_file, MAX_SMALL_FILE, &probe, &probe_len,
	                    &ferr);
	kube_free_secret(probe, probe_len);
	if (rc) {
		rc = vg_err_set(err, VG_CONFIG, "service account token: %s",
		                ferr.msg);
		goto out;
	}
	rc = kube_read_file(ca_path, MAX_PEM_BYTES, &cfg.ca_pem, &cfg.ca_len,
	                    &ferr);
	if (rc == VG_OK && !looks_like_pem(cfg.ca_pem, cfg.ca_len))
		rc = vg_err_set(&ferr, VG_CONFIG, "%s does not hold PEM data",
		                ca_path);
	if (rc) {
		rc = vg_err_set(err, VG_CONFIG, "service account CA: %s",
		                ferr.msg);
		goto out;
	}
	/* The namespace file is optional; "default" without it. */
	if (kube_read_file(ns_path, MAX_SMALL_FILE, &ns, &ns_len, &ferr) ==
	    VG_OK) {
		while (ns_len > 0 && strchr(" \t\r\n", ns[ns_len - 1]))
			ns[--ns_len] = '\0';
		if (ns_len > 0) {
			cfg.namespace = ns;
			ns = NULL;
		}
	}
	if (!cfg.namespace && dup_str(&cfg.namespace, "default")) {
		rc = vg_err_set(err, VG_NOMEM, "out of memory");
		goto out;
	}
	vg_kube_config_cleanup(out);
	*out = cfg;
	vg_kube_config_init(&cfg);
	rc = VG_OK;
out:
	free(ns);
	free(ca_path);
	free(ns_path);
	vg_kube_config_cleanup(&cfg);
	return rc;
}

int vg_kube_config_load_default(struct vg_kube_config *cfg,
                                const char *kubeconfig, const char *context,
                                struct vg_err *err)
{
	const char *env = getenv("KUBECONFIG");
	const char *host = getenv("KUBERNETES_SERVICE_HOST");

	/* Order of controller-runtime: flag, $KUBECONFIG, in-cluster, home. */
	if (!kubeconfig && !(env && *env) && host && *host)
		return vg_kube_config_in_cluster(cfg, NULL, err);
	return vg_kube_config_load_file(cfg, kubeconfig, context, err);
}
