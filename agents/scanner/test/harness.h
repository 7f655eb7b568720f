/* harness.h - what the agent's network tests share: running the real
 * vigil-agent binary, listeners on 127.0.0.x driven by threads (plain,
 * banner, HTTP, TLS with a certificate made here), a minimal HTTP peer
 * that records what the agent posts, and reading the findings file. */
#ifndef AGENT_TEST_HARNESS_H
#define AGENT_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vigil/json.h"
#include "vigil/timeutil.h"

#define H static __attribute__((unused))

extern char **environ;

/* --- the agent binary ---------------------------------------------------- */

/* build/test/agents/scanner/<test> -> build/bin/vigil-agent (the ASan
 * tests find the ASan agent the same way); else $VIGIL_BUILD/bin. */
H const char *agent_path(void)
{
	static char path[PATH_MAX + 64];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *b = getenv("VIGIL_BUILD");

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path),
				 "%s/../../../bin/vigil-agent", self);
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	snprintf(path, sizeof(path), "%s/bin/vigil-agent", b && *b ? b : "build");
	return path;
}

/* Start the agent with `args` (NULL-terminated) and `env` ("K=V",
 * NULL-terminated) added to a copy of our environment without VIGIL_*
 * settings; stderr goes to `errfile`. */
H pid_t agent_spawn(const char *const *args, const char *const *env,
		    const char *errfile)
{
	char *argv[64], *envp[256];
	int na = 0, ne = 0;
	pid_t pid;

	argv[na++] = (char *)agent_path();
	for (int i = 0; args[i] && na < 63; i++)
		argv[na++] = (char *)args[i];
	argv[na] = NULL;
	for (char **e = environ; *e && ne < 200; e++)
		if (strncmp(*e, "VIGIL_", 6) != 0 &&
		    strncmp(*e, "JOB_COMPLETION_INDEX=", 21) != 0)
			envp[ne++] = *e;
	for (int i = 0; env && env[i] && ne < 255; i++)
		envp[ne++] = (char *)env[i];
	envp[ne] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execve(argv[0], argv, envp);
		_exit(127);
	}
	return pid;
}

/* Exit code of `pid` within timeout_ms; on timeout it is killed and -1
 * returned. */
H int agent_wait(pid_t pid, int timeout_ms)
{
	int64_t end = vg_mono_ms() + timeout_ms;
	int st = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		if (vg_mono_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(10000);
	}
}

H int agent_run(const char *const *args, const char *const *env,
		const char *errfile, int timeout_ms)
{
	pid_t pid = agent_spawn(args, env, errfile);

	return pid > 0 ? agent_wait(pid, timeout_ms) : -1;
}

/* Whole file as a new string ("" when missing). */
H char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;

	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	if (f)
		fclose(f);
	fclose(m);
	return buf;
}

/* The findings of a JSON-lines file as a new array. */
H json_t *read_findings(const char *path)
{
	char *text = slurp(path), *line = text, *nl;
	json_t *arr = json_array();

	while (line && *line) {
		json_t *j = NULL;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line) {
			if (vg_json_loadb(line, strlen(line), 0, &j, NULL))
				fail_msg("not JSON: %s", line);
			json_array_append_new(arr, j);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return arr;
}

/* How many findings match (NULLs / -1 match anything). */
H int count_findings(const json_t *arr, const char *host, int port,
		     const char *scanner, const char *check)
{
	size_t i;
	json_t *f;
	int n = 0;

	json_array_foreach(arr, i, f)
	{
		if (host && strcmp(vg_json_get_str(f, "host", ""), host))
			continue;
		if (port >= 0 && vg_json_get_int(f, "port", -1) != port)
			continue;
		if (scanner && strcmp(vg_json_get_str(f, "scanner", ""), scanner))
			continue;
		if (check &&
		    strcmp(vg_json_get_str(f, "evidence.check", ""), check))
			continue;
		n++;
	}
	return n;
}

H void dump_findings(const json_t *arr)
{
	size_t i;
	json_t *f;

	json_array_foreach(arr, i, f)
	{
		fprintf(stderr, "  %s:%lld %s %s\n",
			vg_json_get_str(f, "host", ""),
			vg_json_get_int(f, "port", 0),
			vg_json_get_str(f, "scanner", ""),
			vg_json_get_str(f, "evidence.check", ""));
	}
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

H void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- listeners ------------------------------------------------------------ */

struct listener;
typedef void (*serve_fn)(struct listener *l, int fd);

struct listener {
	char addr[INET6_ADDRSTRLEN];
	int port;
	int fd;
	serve_fn serve;
	void *ctx;
	pthread_t th;
	atomic_int stop;
	atomic_int conns;
	int no_accept;
};

static void *listener_main(void *arg)
{
	struct listener *l = arg;

	while (!atomic_load(&l->stop)) {
		struct pollfd p = {.fd = l->fd, .events = POLLIN};
		int c;

		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		atomic_fetch_add(&l->conns, 1);
		if (l->serve)
			l->serve(l, c);
		close(c);
	}
	return NULL;
}

/* Listen on addr:port (0: a free one; IPv4 or IPv6 addr) with `backlog`
 * and serve each connection with `serve` (NULL: accept and close; with
 * no_accept, never accept). */
H struct listener *listener_start_ex(const char *addr, int port,
				     serve_fn serve, void *ctx, int backlog,
				     int no_accept)
{
	struct listener *l = calloc(1, sizeof(*l));
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, v6 = strchr(addr, ':') != NULL;

	assert_non_null(l);
	memset(&ss, 0, sizeof(ss));
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
		len = sizeof(*s4);
	}
	l->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, len) || listen(l->fd, backlog))
		fail_msg("listen %s:%d: %s", addr, port, strerror(errno));
	getsockname(l->fd, (struct sockaddr *)&ss, &len);
	l->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
			   : ((struct sockaddr_in *)&ss)->sin_port);
	l->serve = serve;
	l->ctx = ctx;
	atomic_init(&l->stop, 0);
	atomic_init(&l->conns, 0);
	l->no_accept = no_accept;
	if (!no_accept)
		assert_int_equal(
			pthread_create(&l->th, NULL, listener_main, l), 0);
	return l;
}

H struct listener *listener_start(const char *addr, int port, serve_fn serve,
				  void *ctx)
{
	return listener_start_ex(addr, port, serve, ctx, 512, 0);
}

H void listener_stop(struct listener *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, 1);
	if (!l->no_accept)
		pthread_join(l->th, NULL);
	close(l->fd);
	free(l);
}

/* A port on `addr` nobody listens on (bound, then released). */
H int closed_port(const char *addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	inet_pton(AF_INET, addr, &sin.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

H void set_timeout(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Write all of s. */
H void send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* serve: write ctx (a string) at once, as a banner */
H void serve_banner(struct listener *l, int fd)
{
	const char *b = l->ctx;

	send_all(fd, b, strlen(b));
	usleep(100000);
}

/* An HTTP request read from fd: head and body (Content-Length). */
struct http_req {
	char method[16];
	char path[256];
	char head[8192];
	char *body;
	size_t body_len;
};

H int read_request(int fd, struct http_req *r)
{
	char buf[1 << 16];
	size_t len = 0;
	char *end = NULL;
	long clen = 0;

	memset(r, 0, sizeof(*r));
	set_timeout(fd, 3000);
	while (!end) {
		ssize_t n;

		if (len >= sizeof(buf) - 1)
			return -1;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	*end = '\0';
	memcpy(r->head, buf,
	       strlen(buf) < sizeof(r->head) ? strlen(buf) + 1
					     : sizeof(r->head));
	r->head[sizeof(r->head) - 1] = '\0';
	sscanf(buf, "%15s %255s", r->method, r->path);
	for (char *p = buf; (p = strchr(p, '\n')); p++)
		if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
			clen = strtol(p + 16, NULL, 10);
	r->body = malloc((size_t)clen + 1);
	r->body_len = len - (size_t)(end + 4 - buf);
	if ((long)r->body_len > clen)
		r->body_len = (size_t)clen;
	memcpy(r->body, end + 4, r->body_len);
	while ((long)r->body_len < clen) {
		ssize_t n = recv(fd, r->body + r->body_len,
				 (size_t)clen - r->body_len, 0);

		if (n <= 0)
			break;
		r->body_len += (size_t)n;
	}
	r->body[r->body_len] = '\0';
	return 0;
}

/* Value of request header `name` into out ("" when absent). */
H const char *req_header(const struct http_req *r, const char *name,
			 char *out, size_t n)
{
	size_t k = strlen(name);

	out[0] = '\0';
	for (const char *p = r->head; (p = strchr(p, '\n')); p++)
		if (strncasecmp(p + 1, name, k) == 0 && p[1 + k] == ':') {
			const char *v = p + 2 + k;
			size_t m;

			while (*v == ' ')
				v++;
			m = strcspn(v, "\r\n");
			snprintf(out, n, "%.*s", (int)m, v);
			break;
		}
	return out;
}

/* serve: read a request, answer with ctx (a whole HTTP response) */
H void serve_http(struct listener *l, int fd)
{
	struct http_req r;
	const char *resp = l->ctx;

	if (read_request(fd, &r) == 0)
		send_all(fd, resp, strlen(resp));
	free(r.body);
}

/* --- TLS ----------------------------------------------------------------- */

/* A self-signed certificate for CN=vigil-test.invalid valid from
 * `from_days` to `to_days` days from now, and its key. */
H void make_cert(int from_days, int to_days, X509 **cert, EVP_PKEY **key)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;

	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), (long)from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)to_days * 86400);
	X509_set_pubkey(x, k);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
				   (const unsigned char *)"vigil-test.invalid",
				   -1, -1, 0);
	X509_set_issuer_name(x, nm);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*cert = x;
	*key = k;
}

/* A server context with that certificate, every protocol down to TLS 1.0
 * at security level 0 (an old, badly configured server). */
H SSL_CTX *server_ctx(X509 *cert, EVP_PKEY *key, int min_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, min_version);
	SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
	assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	return ctx;
}

/* serve: TLS handshake with ctx (an SSL_CTX), then close */
H void serve_tls(struct listener *l, int fd)
{
	SSL *ssl = SSL_new(l->ctx);

	set_timeout(fd, 3000);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) == 1)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}

/* --- a peer for the agent's gateway client ------------------------------- */

struct posted {
	char path[256];
	char auth[512];
	char request_id[64];
	char content_type[64];
	char *body;
};

struct gw_peer {
	pthread_mutex_t mu;
	struct posted posts[256];
	int nposts;
	int estop_polls;
	atomic_int engaged;
	/* ingest answers: the first `fail_first` with 503, and the batch
	 * whose id is `reject_id` with 422 */
	int fail_first;
	char reject_id[128];
};

H void gw_peer_init(struct gw_peer *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	atomic_init(&g->engaged, 0);
}

H void gw_peer_cleanup(struct gw_peer *g)
{
	for (int i = 0; i < g->nposts; i++)
		free(g->posts[i].body);
	pthread_mutex_destroy(&g->mu);
}

H void serve_gateway(struct listener *l, int fd)
{
	struct gw_peer *g = l->ctx;
	struct http_req r;
	char out[1024], body[256];
	const char *status = "202 Accepted";

	snprintf(body, sizeof(body), "{}");
	if (read_request(fd, &r))
		return;
	if (strcmp(r.method, "GET") == 0 &&
	    strcmp(r.path, "/v1/emergency-stop") == 0) {
		pthread_mutex_lock(&g->mu);
		g->estop_polls++;
		pthread_mutex_unlock(&g->mu);
		snprintf(body, sizeof(body), "{\"engaged\":%s}",
			 atomic_load(&g->engaged) ? "true" : "false");
		status = "200 OK";
	} else if (strcmp(r.method, "POST") == 0) {
		json_t *j = NULL;
		const char *id = "";

		vg_json_loadb(r.body, r.body_len, 0, &j, NULL);
		if (j)
			id = vg_json_get_str(j, "batch_id", "");
		pthread_mutex_lock(&g->mu);
		if (g->fail_first > 0) {
			g->fail_first--;
			status = "503 Service Unavailable\r\nRetry-After: 0";
			snprintf(body, sizeof(body),
				 "{\"error\":{\"code\":\"unavailable\","
				 "\"message\":\"database unavailable\"}}");
		} else if (g->reject_id[0] && strcmp(id, g->reject_id) == 0) {
			status = "422 Unprocessable Entity";
			snprintf(body, sizeof(body),
				 "{\"error\":{\"code\":\"validation_failed\","
				 "\"message\":\"findings[0].severity: not "
				 "one of info, low\"}}");
		} else if (g->nposts < 256) {
			struct posted *p = &g->posts[g->nposts++];

			snprintf(p->path, sizeof(p->path), "%s", r.path);
			req_header(&r, "Authorization", p->auth,
				   sizeof(p->auth));
			req_header(&r, "X-Request-ID", p->request_id,
				   sizeof(p->request_id));
			req_header(&r, "Content-Type", p->content_type,
				   sizeof(p->content_type));
			p->body = strdup(r.body);
			snprintf(body, sizeof(body), "{\"accepted\":true}");
		}
		pthread_mutex_unlock(&g->mu);
		json_decref(j);
	} else {
		status = "404 Not Found";
		snprintf(body, sizeof(body), "{}");
	}
	snprintf(out, sizeof(out),
		 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 status, strlen(body), body);
	send_all(fd, out, strlen(out));
	free(r.body);
}

#endif
