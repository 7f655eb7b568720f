/*
 * test_kubeconfig.c - loading kubeconfigs and in-cluster configuration from
 * real files in a temporary directory, token file re-reading on a fake
 * clock, and the REST paths built from resource descriptors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vigil/buf.h"
#include "vigil/err.h"
#include "vigil/kube.h"
#include "vigil/log.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_PEM                                            \
	"-----BEGIN CERTIFICATE-----\nTUlJQ0FURVNULUNB\n" \
	"-----END CERTIFICATE-----\n"
#define CERT_PEM                                          \
	"-----BEGIN CERTIFICATE-----\nTUlJQ0NMSUVOVA==\n" \
	"-----END CERTIFICATE-----\n"
#define KEY_PEM                                          \
	"-----BEGIN EC PRIVATE KEY-----\nTUhjQ0FRRUVJ\n" \
	"-----END EC PRIVATE KEY-----\n"

static char tmpdir[256];

/* --- helpers ------------------------------------------------------------ */

static void write_file(const char *rel, const char *content)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, strlen(content), f),
	                 strlen(content));
	assert_int_equal(fclose(f), 0);
}

static char *path_of(const char *rel)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	return path;
}

static char *b64(const char *s)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
	                          "stuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 3 * 4 + 5);

	assert_non_null(out);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[o++] = tbl[v >> 18 & 63];
		out[o++] = tbl[v >> 12 & 63];
		out[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static int rm_entry(const char *p, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vg-kubeconfig-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Load `yaml` written as tmpdir/<name>; returns the code. */
static int load(const char *name, const char *yaml, const char *context,
                struct vg_kube_config *cfg, struct vg_err *err)
{
	write_file(name, yaml);
	vg_err_clear(err);
	return vg_kube_config_load_file(cfg, path_of(name), context, err);
}

/* --- kubeconfig ---------------------------------------------------------- */

static void test_data_fields(void **state)
{
	char *ca = b64(CA_PEM), *cert = b64(CERT_PEM), *key = b64(KEY_PEM);
	char yaml[4096];
	struct vg_kube_config cfg;
	struct vg_err err;

	(void)state;
	snprintf(yaml, sizeof(yaml),
	         "apiVersion: v1\n"
	         "kind: Config\n"
	         "current-context: admin@local\n"
	         "clusters:\n"
	         "- name: local\n"
	         "  cluster:\n"
	         "    server: https://127.0.0.1:6443/\n"
	         "    certificate-authority-data: %s\n"
	         "contexts:\n"
	         "- name: admin@local\n"
	         "  context: {cluster: local, user: admin}\n"
	         "users:\n"
	         "- name: admin\n"
	         "  user:\n"
	         "    client-certificate-data: %s\n"
	         "    client-key-data: |\n"
	         "      %.40s\n"
	         "      %s\n",
	         ca, cert, key, strlen(key) > 40 ? key + 40 : "");
	vg_kube_config_init(&cfg);
	assert_int_equal(load("data.yaml", yaml, NULL, &cfg, &err), VG_OK);
	assert_string_equal(cfg.server, "https://127.0.0.1:6443");
	assert_string_equal(cfg.context, "admin@local");
	assert_string_equal(cfg.namespace, "default");
	assert_int_equal(cfg.ca_len, strlen(CA_PEM));
	assert_memory_equal(cfg.ca_pem, CA_PEM, cfg.ca_len);
	assert_int_equal(cfg.cert_len, strlen(CERT_PEM));
	assert_memory_equal(cfg.cert_pem, CERT_PEM, cfg.cert_len);
	/* Base64 folded over lines (a YAML block) decodes the same. */
	assert_int_equal(cfg.key_len, strlen(KEY_PEM));
	assert_memory_equal(cfg.key_pem, KEY_PEM, cfg.key_len);
	assert_false(cfg.insecure_skip_tls_verify);
	assert_null(cfg.token);
	assert_null(cfg.token_file);
	vg_kube_config_cleanup(&cfg);
	assert_null(cfg.server);
	free(ca);
	free(cert);
	free(key);
}

static void test_file_fields_relative(void **state)
{
	struct vg_kube_config cfg;
	struct vg_err err;

	(void)state;
	assert_int_equal(mkdir(path_of("sub"), 0700), 0);
	assert_int_equal(mkdir(path_of("sub/pki"), 0700), 0);
	write_file("sub/pki/ca.crt", CA_PEM);
	write_file("sub/pki/client.crt", CERT_PEM);
	write_file("sub/pki/client.key", KEY_PEM);
	vg_kube_config_init(&cfg);
	/* Paths are relative to the kubeconfig's directory, not the cwd. */
	assert_int_equal(
		load("sub/files.yaml",
	             "current-context: c\n"
	             "clusters:\n"
	             "- name: k\n"
	             "  cluster:\n"
	             "    server: kube.example:6443\n"
	             "    certificate-authority: pki/ca.crt\n"
	             "    tls-server-name: kubernetes.default\n"
	             "contexts:\n"
	             "- name: c\n"
	             "  context: {cluster: k, user: u, namespace: team-a}\n"
	             "users:\n"
	             "- name: u\n"
	             "  user:\n"
	             "    client-certificate: pki/client.crt\n"
	             "    client-key: pki/client.key\n",
	             NULL, &cfg, &err),
		VG_OK);
	/* A scheme-less server defaults to https. */
	assert_string_equal(cfg.server, "https://kube.example:6443");
	assert_string_equal(cfg.namespace, "team-a");
	assert_string_equal(cfg.tls_server_name, "kubernetes.default");
	assert_memory_equal(cfg.ca_pem, CA_PEM, strlen(CA_PEM));
	assert_memory_equal(cfg.cert_pem, CERT_PEM, strlen(CERT_PEM));
	assert_memory_equal(cfg.key_pem, KEY_PEM, strlen(KEY_PEM));
	vg_kube_config_cleanup(&cfg);

	/* A missing referenced file is named in the error. */
	assert_int_equal(load("sub/missing.yaml",
	                      "current-context: c\n"
	                      "clusters:\n"
	                      "- name: k\n"
	                      "  cluster: {server: https://h, "
	                      "certificate-authority: pki/nope.crt}\n"
	                      "contexts:\n"
	                      "- name: c\n"
	                      "  context: {cluster: k}\n",
	                      NULL, &cfg, &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "pki/nope.crt"));
	assert_non_null(strstr(err.msg, "certificate-authority"));
	assert_null(cfg.server);
}

static void test_token_and_token_file(void **state)
{
	struct vg_kube_config cfg;
	struct vg_kube_client *c = NULL;
	struct vg_err err;
	char *tok = NULL;

	(void)state;
	vg_kube_config_init(&cfg);
	assert_int_equal(
		load("tok.yaml",
	             "current-context: c\n"
	             "clusters:\n"
	             "- {name: k, cluster: {server: 'http://127.0.0.1:1',"
	             " insecure-skip-tls-verify: true}}\n"
	             "contexts:\n"
	             "- {name: c, context: {cluster: k, user: u}}\n"
	             "users:\n"
	             "- {name: u, user: {token: s3cr3t-literal}}\n",
	             NULL, &cfg, &err),
		VG_OK);
	assert_string_equal(cfg.token, "s3cr3t-literal");
	assert_true(cfg.insecure_skip_tls_verify);
	assert_int_equal(vg_kube_client_new(&cfg, NULL, &c, &err), VG_OK);
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "s3cr3t-literal");
	free(tok);
	vg_kube_client_free(c);
	vg_kube_config_cleanup(&cfg);

	/* tokenFile, relative to the kubeconfig, trimmed when read. */
	write_file("token.txt", "  file-token-1\n");
	assert_int_equal(load("tokfile.yaml",
	                      "current-context: c\n"
	                      "clusters:\n"
	                      "- {name: k, cluster: {server: https://h:1}}\n"
	                      "contexts:\n"
	                      "- {name: c, context: {cluster: k, user: u}}\n"
	                      "users:\n"
	                      "- {name: u, user: {tokenFile: token.txt}}\n",
	                      NULL, &cfg, &err),
	                 VG_OK);
	assert_null(cfg.token);
	assert_string_equal(cfg.token_file, path_of("token.txt"));
	assert_int_equal(vg_kube_client_new(&cfg, NULL, &c, &err), VG_OK);
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "file-token-1");
	free(tok);
	vg_kube_client_free(c);
	vg_kube_config_cleanup(&cfg);

	/* An unreadable tokenFile fails at load, naming the file. */
	assert_int_equal(load("tokmissing.yaml",
	                      "current-context: c\n"
	                      "clusters:\n"
	                      "- {name: k, cluster: {server: https://h:1}}\n"
	                      "contexts:\n"
	                      "- {name: c, context: {cluster: k, user: u}}\n"
	                      "users:\n"
	                      "- {name: u, user: {tokenFile: nope.txt}}\n",
	                      NULL, &cfg, &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "nope.txt"));
}

static const char two_contexts[] =
	"current-context: one\n"
	"clusters:\n"
	"- {name: a, cluster: {server: https://a.example}}\n"
	"- {name: b, cluster: {server: https://b.example:8443}}\n"
	"contexts:\n"
	"- {name: one, context: {cluster: a}}\n"
	"- {name: two, context: {cluster: b, namespace: ns-two}}\n"
	"- {name: ghost-cluster, context: {cluster: zz}}\n"
	"- {name: ghost-user, context: {cluster: a, user: nobody}}\n"
	"- {name: no-cluster, context: {namespace: x}}\n";

static void test_contexts(void **state)
{
	struct vg_kube_config cfg;
	struct vg_err err;

	(void)state;
	vg_kube_config_init(&cfg);
	assert_int_equal(load("ctx.yaml", two_contexts, NULL, &cfg, &err),
	                 VG_OK);
	assert_string_equal(cfg.server, "https://a.example");
	assert_string_equal(cfg.namespace, "default");
	assert_string_equal(cfg.context, "one");

	/* An explicit context replaces the loaded config. */
	assert_int_equal(load("ctx.yaml", two_contexts, "two", &cfg, &err),
	                 VG_OK);
	assert_string_equal(cfg.server, "https://b.example:8443");
	assert_string_equal(cfg.namespace, "ns-two");
	assert_string_equal(cfg.context, "two");
	vg_kube_config_cleanup(&cfg);
}

struct config_error {
	const char *name;
	const char *yaml; /* NULL: the file does not exist */
	const char *context;
	const char *want[2]; /* substrings of the message */
};

static void test_config_errors(void **state)
{
	static const struct config_error cases[] = {
		{"unknown context",
	         two_contexts,
	         "three",
	         {"context \"three\"", "not found"}},
		{"unknown cluster",
	         two_contexts,
	         "ghost-cluster",
	         {"cluster \"zz\"", "not found"}},
		{"unknown user",
	         two_contexts,
	         "ghost-user",
	         {"user \"nobody\"", "not found"}},
		{"context without cluster",
	         two_contexts,
	         "no-cluster",
	         {"context \"no-cluster\"", "no cluster"}},
		{"missing file",
	         NULL,
	         NULL,
	         {"does-not-exist.yaml", "No such file"}},
		{"bad base64",
	         "current-context: c\n"
	         "clusters:\n"
	         "- {name: k, cluster: {server: https://h, "
	         "certificate-authority-data: 'LS0t*LS1C'}}\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"certificate-authority-data", "base64"}},
		{"base64 without padding",
	         "current-context: c\n"
	         "clusters:\n"
	         "- {name: k, cluster: {server: https://h, "
	         "certificate-authority-data: 'LS0tLS1CRUdJTg'}}\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"certificate-authority-data", "base64"}},
		{"base64 of something else",
	         "current-context: c\n"
	         "clusters:\n"
	         "- {name: k, cluster: {server: https://h, "
	         "certificate-authority-data: 'aGVsbG8gd29ybGQ='}}\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"certificate-authority-data", "PEM"}},
		{"missing server",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {insecure-skip-tls-verify: "
	         "true}}]\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"cluster \"k\"", "no server"}},
		{"unsupported scheme",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: 'ftp://h'}}]\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"ftp://h", "https"}},
		{"malformed yaml",
	         "current-context: c\nclusters: [ {name: k\n  - : :\n",
	         NULL,
	         {"yaml", "line"}},
		{"not a mapping", "- a\n- b\n", NULL, {"mapping", NULL}},
		{"clusters not a list",
	         "current-context: c\nclusters: {a: b}\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"clusters", "not a list"}},
		{"server not a string",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: [1]}}]\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"server", "not a string"}},
		{"no current context",
	         "clusters: []\n",
	         NULL,
	         {"current-context", NULL}},
		{"empty file", "", NULL, {"current-context", NULL}},
		{"exec plugin",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: https://h}}]\n"
	         "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
	         "users: [{name: u, user: {exec: {command: aws}}}]\n",
	         NULL,
	         {"exec", "not supported"}},
		{"certificate without key",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: https://h}}]\n"
	         "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
	         "users: [{name: u, user: {client-certificate-data: "
	         "LS0tLS1CRUdJTiBYLS0tLS0K}}]\n",
	         NULL,
	         {"user \"u\"", "together"}},
		{"insecure with a CA",
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: https://h, "
	         "insecure-skip-tls-verify: true, certificate-authority-data: "
	         "LS0tLS1CRUdJTiBYLS0tLS0K}}]\n"
	         "contexts: [{name: c, context: {cluster: k}}]\n",
	         NULL,
	         {"insecure-skip-tls-verify", NULL}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_kube_config cfg;
		struct vg_err err;
		int rc;

		print_message("case: %s\n", cases[i].name);
		vg_kube_config_init(&cfg);
		vg_err_clear(&err);
		if (cases[i].yaml)
			rc = load("err.yaml", cases[i].yaml, cases[i].context,
			          &cfg, &err);
		else
			rc = vg_kube_config_load_file(
				&cfg, path_of("does-not-exist.yaml"),
				cases[i].context, &err);
		assert_int_equal(rc, VG_CONFIG);
		assert_int_equal(err.code, VG_CONFIG);
		for (int j = 0; j < 2; j++)
			if (cases[i].want[j] &&
			    !strstr(err.msg, cases[i].want[j]))
				fail_msg("case %s: \"%s\" not in \"%s\"",
				         cases[i].name, cases[i].want[j],
				         err.msg);
		/* Nothing is half-filled on failure. */
		assert_null(cfg.server);
		assert_null(cfg.ca_pem);
		vg_kube_config_cleanup(&cfg);
	}
}

static void test_kubeconfig_env_merge(void **state)
{
	struct vg_kube_config cfg;
	struct vg_err err;
	char list[2048];
	int n, n2;

	(void)state;
	assert_int_equal(mkdir(path_of("m1"), 0700), 0);
	assert_int_equal(mkdir(path_of("m2"), 0700), 0);
	write_file("m2/tok", "merged-token\n");
	write_file("m1/config",
	           "current-context: first\n"
	           "contexts: [{name: first, context: {cluster: k, user: u, "
	           "namespace: from-m1}}]\n"
	           "clusters: [{name: k, cluster: {server: https://m1}}]\n");
	write_file("m2/config",
	           "current-context: ignored\n"
	           "clusters: [{name: k, cluster: {server: https://m2}}]\n"
	           "users: [{name: u, user: {tokenFile: tok}}]\n");
	/* path_of() reuses one buffer: build the list in steps. */
	n = snprintf(list, sizeof(list), "%s:%s/absent:", path_of("m1/config"),
	             tmpdir);
	assert_true(n > 0 && (size_t)n < sizeof(list));
	n2 = snprintf(list + n, sizeof(list) - (size_t)n, "%s",
	              path_of("m2/config"));
	assert_true(n2 > 0 && (size_t)(n + n2) < sizeof(list));
	setenv("KUBECONFIG", list, 1);
	vg_kube_config_init(&cfg);
	vg_err_clear(&err);
	assert_int_equal(vg_kube_config_load_file(&cfg, NULL, NULL, &err),
	                 VG_OK);
	/* First file wins per name; the user's tokenFile resolves in m2. */
	assert_string_equal(cfg.server, "https://m1");
	assert_string_equal(cfg.namespace, "from-m1");
	assert_string_equal(cfg.token_file, path_of("m2/tok"));
	vg_kube_config_cleanup(&cfg);

	setenv("KUBECONFIG", path_of("absent-only"), 1);
	assert_int_equal(vg_kube_config_load_file(&cfg, NULL, NULL, &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "KUBECONFIG"));
	unsetenv("KUBECONFIG");
}

static void test_load_data_in_memory(void **state)
{
	struct vg_kube_config cfg;
	struct vg_err err;
	static const char y[] =
		"current-context: c\n"
		"clusters: [{name: k, cluster: {server: "
	        "'http://[::1]:8080'}}]\n"
		"contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		"users: [{name: u, user: {username: admin, password: pw}}]\n";

	(void)state;
	vg_kube_config_init(&cfg);
	vg_err_clear(&err);
	assert_int_equal(vg_kube_config_load_data(&cfg, y, strlen(y), tmpdir,
	                                          NULL, &err),
	                 VG_OK);
	assert_string_equal(cfg.server, "http://[::1]:8080");
	assert_string_equal(cfg.username, "admin");
	assert_string_equal(cfg.password, "pw");
	vg_kube_config_cleanup(&cfg);
}

/* --- in-cluster ---------------------------------------------------------- */

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static void fake_sleep(void *ctx, uint64_t ns)
{
	((struct fake_clock *)ctx)->now += ns;
}

static void make_sa_dir(const char *token, const char *ns)
{
	if (access(path_of("sa"), F_OK) != 0)
		assert_int_equal(mkdir(path_of("sa"), 0700), 0);
	write_file("sa/token", token);
	write_file("sa/ca.crt", CA_PEM);
	if (ns)
		write_file("sa/namespace", ns);
}

static void test_in_cluster(void **state)
{
	struct vg_kube_config cfg;
	struct vg_err err;

	(void)state;
	make_sa_dir("sa-token-1", "tenant-x\n");
	vg_kube_config_init(&cfg);
	vg_err_clear(&err);

	/* Outside a pod the environment is missing. */
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "KUBERNETES_SERVICE_HOST"));

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_OK);
	assert_string_equal(cfg.server, "https://10.96.0.1:443");
	assert_string_equal(cfg.namespace, "tenant-x");
	assert_string_equal(cfg.token_file, path_of("sa/token"));
	assert_null(cfg.token);
	assert_memory_equal(cfg.ca_pem, CA_PEM, strlen(CA_PEM));

	/* load_default picks in-cluster when no kubeconfig is named. */
	assert_int_equal(vg_kube_config_load_default(&cfg, NULL, NULL, &err),
	                 VG_CONFIG); /* the real SA dir does not exist here */
	assert_non_null(strstr(err.msg, "service account"));

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_OK);
	assert_string_equal(cfg.server, "https://[fd00::1]:443");

	setenv("KUBERNETES_SERVICE_PORT", "443x", 1);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "443x"));
	/* A failed load leaves the previous config untouched. */
	assert_string_equal(cfg.server, "https://[fd00::1]:443");
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);

	assert_int_equal(unlink(path_of("sa/namespace")), 0);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_OK);
	assert_string_equal(cfg.namespace, "default");

	assert_int_equal(unlink(path_of("sa/token")), 0);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_CONFIG);
	assert_non_null(strstr(err.msg, "token"));
	vg_kube_config_cleanup(&cfg);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_token_reread(void **state)
{
	struct fake_clock fc = {.now = 5000000000ull};
	struct vg_clock clk = {fake_now, fake_sleep, &fc};
	struct vg_kube_client_opts opts = {.clock = &clk};
	struct vg_kube_config cfg;
	struct vg_kube_client *c = NULL;
	struct vg_err err;
	char *tok = NULL;
	char logpath[300];
	char logbuf[4096] = "";
	int logfd;
	ssize_t n;

	(void)state;
	make_sa_dir("rotating-1\n", "ns");
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	vg_kube_config_init(&cfg);
	vg_err_clear(&err);
	assert_int_equal(vg_kube_config_in_cluster(&cfg, path_of("sa"), &err),
	                 VG_OK);
	assert_int_equal(vg_kube_client_new(&cfg, &opts, &c, &err), VG_OK);
	assert_string_equal(vg_kube_client_namespace(c), "ns");
	assert_string_equal(vg_kube_client_server(c), "https://127.0.0.1:6443");

	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "rotating-1");
	free(tok);

	/* The kubelet rotates the file; the cached token lives a minute. */
	write_file("sa/token", "rotating-2\n");
	fc.now += 59ull * 1000000000ull;
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "rotating-1");
	free(tok);
	fc.now += 1ull * 1000000000ull;
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "rotating-2");
	free(tok);

	/* An explicit reload does not wait for the period. */
	write_file("sa/token", "rotating-3");
	assert_int_equal(vg_kube_client_reload_token(c, &err), VG_OK);
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "rotating-3");
	free(tok);

	/* A vanished file keeps the last good token and logs no secret. */
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	logfd = open(logpath, O_CREAT | O_RDWR | O_TRUNC, 0600);
	assert_true(logfd >= 0);
	vg_log_set_fd(logfd);
	assert_int_equal(unlink(path_of("sa/token")), 0);
	fc.now += 61ull * 1000000000ull;
	assert_int_equal(vg_kube_client_token(c, &tok, &err), VG_OK);
	assert_string_equal(tok, "rotating-3");
	free(tok);
	vg_log_set_fd(2);
	n = pread(logfd, logbuf, sizeof(logbuf) - 1, 0);
	assert_true(n > 0);
	logbuf[n] = '\0';
	assert_non_null(strstr(logbuf, "token file re-read failed"));
	assert_null(strstr(logbuf, "rotating-3"));
	close(logfd);

	vg_kube_client_free(c);
	vg_kube_config_cleanup(&cfg);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

/* --- resources and paths ------------------------------------------------- */

static void test_paths(void **state)
{
	static const struct vg_kube_resource platform = {
		.group = "vigil.dev",
		.version = "v1alpha1",
		.resource = "platforms",
		.kind = "Platform",
		.namespaced = true,
	};
	static const struct {
		const struct vg_kube_resource *r;
		const char *ns, *name, *sub;
		int rc;
		const char *path;
	} cases[] = {
		{&vg_kube_configmaps, "ns1", "cm", NULL, VG_OK,
	         "/api/v1/namespaces/ns1/configmaps/cm"},
		{&vg_kube_configmaps, NULL, NULL, NULL, VG_OK,
	         "/api/v1/configmaps"},
		{&vg_kube_deployments, "ns1", "web", "status", VG_OK,
	         "/apis/apps/v1/namespaces/ns1/deployments/web/status"},
		{&vg_kube_namespaces, NULL, "kube-system", NULL, VG_OK,
	         "/api/v1/namespaces/kube-system"},
		{&vg_kube_hpas, "a", NULL, NULL, VG_OK,
	         "/apis/autoscaling/v2/namespaces/a/horizontalpodautoscalers"},
		{&vg_kube_crds, NULL, "platforms.vigil.dev", NULL, VG_OK,
	         "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
	         "platforms.vigil.dev"},
		{&platform, "t", "main", "status", VG_OK,
	         "/apis/vigil.dev/v1alpha1/namespaces/t/platforms/main/"
	         "status"},
		{&vg_kube_configmaps, "n s", "a/b?c#d%", NULL, VG_OK,
	         "/api/v1/namespaces/n%20s/configmaps/a%2Fb%3Fc%23d%25"},
		{&vg_kube_configmaps, "ns", "..", NULL, VG_INVAL, NULL},
		{&vg_kube_configmaps, "ns", ".", NULL, VG_INVAL, NULL},
		{&vg_kube_configmaps, "ns", "", NULL, VG_INVAL, NULL},
		{&vg_kube_configmaps, "..", "x", NULL, VG_INVAL, NULL},
		{&vg_kube_namespaces, "ns", "x", NULL, VG_INVAL, NULL},
		{&vg_kube_configmaps, "ns", NULL, "status", VG_INVAL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_buf b;
		struct vg_err err;
		int rc;

		vg_buf_init(&b, 0);
		vg_err_clear(&err);
		rc = vg_kube_path(&b, cases[i].r, cases[i].ns, cases[i].name,
		                  cases[i].sub, &err);
		assert_int_equal(rc, cases[i].rc);
		if (cases[i].path)
			assert_string_equal(vg_buf_str(&b), cases[i].path);
		else
			assert_true(strlen(err.msg) > 0);
		vg_buf_cleanup(&b);
	}
}

static void test_resource_lookup(void **state)
{
	char av[64];

	(void)state;
	assert_ptr_equal(vg_kube_resource_find("v1", "ConfigMap"),
	                 &vg_kube_configmaps);
	assert_ptr_equal(vg_kube_resource_find("apps/v1", "StatefulSet"),
	                 &vg_kube_statefulsets);
	assert_ptr_equal(vg_kube_resource_find("autoscaling/v2",
	                                       "HorizontalPodAutoscaler"),
	                 &vg_kube_hpas);
	assert_ptr_equal(vg_kube_resource_find("events.k8s.io/v1", "Event"),
	                 &vg_kube_events_v1);
	assert_ptr_equal(vg_kube_resource_find("v1", "Event"), &vg_kube_events);
	assert_null(vg_kube_resource_find("apps/v1", "ConfigMap"));
	assert_null(vg_kube_resource_find("autoscaling/v1",
	                                  "HorizontalPodAutoscaler"));
	assert_null(vg_kube_resource_find("v1", "Platform"));
	assert_null(vg_kube_resource_find(NULL, "Pod"));

	assert_int_equal(
		vg_kube_resource_api_version(&vg_kube_pdbs, av, sizeof(av)),
		VG_OK);
	assert_string_equal(av, "policy/v1");
	assert_int_equal(
		vg_kube_resource_api_version(&vg_kube_secrets, av, sizeof(av)),
		VG_OK);
	assert_string_equal(av, "v1");
	assert_int_equal(vg_kube_resource_api_version(&vg_kube_roles, av, 8),
	                 VG_RANGE);
}

static void test_client_needs_server(void **state)
{
	struct vg_kube_config cfg;
	struct vg_kube_client *c = (struct vg_kube_client *)&cfg;
	struct vg_err err;

	(void)state;
	vg_kube_config_init(&cfg);
	vg_err_clear(&err);
	assert_int_equal(vg_kube_client_new(&cfg, NULL, &c, &err), VG_CONFIG);
	assert_null(c);
	vg_kube_client_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_fields),
		cmocka_unit_test(test_file_fields_relative),
		cmocka_unit_test(test_token_and_token_file),
		cmocka_unit_test(test_contexts),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_kubeconfig_env_merge),
		cmocka_unit_test(test_load_data_in_memory),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_token_reread),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_resource_lookup),
		cmocka_unit_test(test_client_needs_server),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
