/* test_scan_net.c - the vigil-agent binary against real listeners on
 * 127.0.0.x: exact open ports and banners, an expired self-signed TLS
 * server that accepts TLS 1.0, an HTTP server missing security headers,
 * and scope refusals that send no probe at all. */
#include "harness.h"

static char dir[] = "/tmp/vigil-agent-net-XXXXXX";
static char out_path[PATH_MAX], err_path[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(out_path, sizeof(out_path), "%s/findings.jsonl", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr.log", dir);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(dir);
	return 0;
}

static void show_stderr(void)
{
	char *e = slurp(err_path);

	fprintf(stderr, "agent stderr:\n%s\n", e);
	free(e);
}

static void test_open_ports_and_banners(void **state)
{
	struct listener *a1 = listener_start("127.0.0.2", 0, NULL, NULL);
	struct listener *a2 = listener_start(
		"127.0.0.2", 0, serve_banner,
		(void *)"SSH-2.0-OpenSSH_9.2p1 vigil-test\r\n");
	struct listener *b1 = listener_start("127.0.0.3", 0, NULL, NULL);
	int closed2 = closed_port("127.0.0.2");
	char ports[128];
	json_t *f;
	int rc;

	(void)state;
	/* every port on both addresses: 3 open of 8 probes */
	snprintf(ports, sizeof(ports), "%d,%d,%d,%d", a1->port, a2->port,
		 b1->port, closed2);
	const char *args[] = {"--targets", "127.0.0.2,127.0.0.3",
			      "--allowed", "127.0.0.0/29",
			      "--allow-loopback", "--ports", ports,
			      "--scanners", "tcp,banner",
			      "--per-target-rate", "1000",
			      "--connect-timeout-ms", "1000",
			      "--output", out_path, NULL};
	rc = agent_run(args, NULL, err_path, 30000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	f = read_findings(out_path);
	if (count_findings(f, NULL, -1, "tcp", "open") != 3 ||
	    json_array_size(f) != 4)
		dump_findings(f);
	assert_int_equal(count_findings(f, NULL, -1, "tcp", "open"), 3);
	assert_int_equal(count_findings(f, "127.0.0.2", a1->port, "tcp", "open"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.2", a2->port, "tcp", "open"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.3", b1->port, "tcp", "open"),
			 1);
	/* the banner, and nothing for closed ports */
	assert_int_equal(count_findings(f, "127.0.0.2", a2->port, "banner",
					"banner"),
			 1);
	assert_int_equal(json_array_size(f), 4);
	size_t i;
	json_t *x;

	json_array_foreach(f, i, x)
	{
		assert_string_equal(vg_json_get_str(x, "protocol", ""), "tcp");
		assert_string_equal(vg_json_get_str(x, "severity", ""), "info");
		assert_int_equal(strlen(vg_json_get_str(x, "fingerprint", "")),
				 64);
		if (!strcmp(vg_json_get_str(x, "scanner", ""), "banner"))
			assert_string_equal(
				vg_json_get_str(x, "evidence.banner", ""),
				"SSH-2.0-OpenSSH_9.2p1 vigil-test\\r\\n");
	}
	json_decref(f);
	/* the summary line on stderr says the same */
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "\"msg\":\"scan finished\""));
	assert_non_null(strstr(e, "\"open_ports\":\"3\""));
	assert_non_null(strstr(e, "\"probes_sent\":\"8\""));
	free(e);
	listener_stop(a1);
	listener_stop(a2);
	listener_stop(b1);
}

static void test_tls_expired_self_signed(void **state)
{
	X509 *cert;
	EVP_PKEY *key;
	SSL_CTX *ctx;
	struct listener *l;
	json_t *f;
	char port[16];
	int rc;

	(void)state;
	make_cert(-60, -30, &cert, &key); /* expired 30 days ago */
	ctx = server_ctx(cert, key, TLS1_VERSION);
	l = listener_start("127.0.0.4", 0, serve_tls, ctx);
	snprintf(port, sizeof(port), "%d", l->port);
	const char *args[] = {"--targets", "127.0.0.4", "--allowed",
			      "127.0.0.4", "--allow-loopback", "--ports", port,
			      "--scanners", "tcp,tls", "--output", out_path,
			      NULL};
	rc = agent_run(args, NULL, err_path, 60000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	f = read_findings(out_path);
	dump_findings(f);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tcp", "open"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-service"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-cert-expired"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-cert-self-signed"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-cert-untrusted"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-hostname-mismatch"),
			 1);
	/* the server accepts TLS 1.0 and 1.1: both flagged */
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-protocol-tls1.0"),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.4", l->port, "tls",
					"tls-protocol-tls1.1"),
			 1);
	assert_int_equal(count_findings(f, NULL, -1, "tls",
					"tls-cert-expiring"),
			 0);
	size_t i;
	json_t *x;

	json_array_foreach(f, i, x)
	{
		const char *chk = vg_json_get_str(x, "evidence.check", "");

		if (!strcmp(chk, "tls-cert-expired")) {
			assert_string_equal(vg_json_get_str(x, "severity", ""),
					    "high");
			assert_int_equal(
				vg_json_get_int(x, "evidence.days_ago", 0), 30);
		}
	}
	json_decref(f);
	listener_stop(l);
	SSL_CTX_free(ctx);
	X509_free(cert);
	EVP_PKEY_free(key);

	/* a modern server with a certificate valid for 10 more days: only
	 * "expiring", no old protocols, no "expired" */
	make_cert(-1, 10, &cert, &key);
	ctx = server_ctx(cert, key, TLS1_2_VERSION);
	l = listener_start("127.0.0.4", 0, serve_tls, ctx);
	snprintf(port, sizeof(port), "%d", l->port);
	args[6] = port;
	rc = agent_run(args, NULL, err_path, 60000);
	assert_int_equal(rc, 0);
	f = read_findings(out_path);
	assert_int_equal(count_findings(f, NULL, -1, "tls", "tls-cert-expiring"),
			 1);
	assert_int_equal(count_findings(f, NULL, -1, "tls", "tls-cert-expired"),
			 0);
	assert_int_equal(count_findings(f, NULL, -1, "tls",
					"tls-protocol-tls1.0"),
			 0);
	assert_int_equal(count_findings(f, NULL, -1, "tls",
					"tls-protocol-tls1.1"),
			 0);
	json_decref(f);
	listener_stop(l);
	SSL_CTX_free(ctx);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static const char bare_http[] =
	"HTTP/1.1 200 OK\r\nServer: Apache/2.4.41 (Unix)\r\n"
	"X-Powered-By: PHP/5.6.40\r\nContent-Type: text/html\r\n"
	"Content-Length: 2\r\nConnection: close\r\n\r\nok";

static const char good_http[] =
	"HTTP/1.1 301 Moved Permanently\r\nServer: nginx\r\n"
	"Location: https://www.example.com/\r\n"
	"Content-Length: 0\r\nConnection: close\r\n\r\n";

static void test_http_missing_headers(void **state)
{
	struct listener *bare = listener_start("127.0.0.5", 0, serve_http,
					       (void *)bare_http);
	struct listener *good = listener_start("127.0.0.5", 0, serve_http,
					       (void *)good_http);
	char ports[64];
	json_t *f;
	int rc;

	(void)state;
	snprintf(ports, sizeof(ports), "%d,%d", bare->port, good->port);
	const char *args[] = {"--targets", "127.0.0.5", "--allowed",
			      "127.0.0.0/8", "--allow-loopback", "--ports",
			      ports, "--scanners", "tcp,http", "--output",
			      out_path, NULL};
	rc = agent_run(args, NULL, err_path, 60000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	f = read_findings(out_path);
	dump_findings(f);
	static const char *const missing[] = {
		"http-missing-csp",
		"http-missing-x-content-type-options",
		"http-missing-x-frame-options",
		"http-no-https-redirect",
		"http-server-version",
		"http-powered-by",
		"http-service",
	};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		if (count_findings(f, "127.0.0.5", bare->port, "http",
				   missing[i]) != 1)
			fail_msg("want one %s on the bare server", missing[i]);
	/* HSTS matters only over HTTPS */
	assert_int_equal(count_findings(f, NULL, -1, "http",
					"http-missing-hsts"),
			 0);
	/* the redirecting server: only its service line */
	assert_int_equal(count_findings(f, "127.0.0.5", good->port, "http",
					NULL),
			 1);
	assert_int_equal(count_findings(f, "127.0.0.5", good->port, "http",
					"http-service"),
			 1);
	json_decref(f);
	listener_stop(bare);
	listener_stop(good);
}

static void test_outside_scope_refused(void **state)
{
	struct listener *l = listener_start("127.0.0.6", 0, NULL, NULL);
	char port[16];
	int rc;

	(void)state;
	snprintf(port, sizeof(port), "%d", l->port);
	unlink(out_path);
	/* 127.0.0.6 is outside 127.0.0.2/31 */
	const char *args[] = {"--targets", "127.0.0.2,127.0.0.6", "--allowed",
			      "127.0.0.2/31", "--allow-loopback", "--ports",
			      port, "--output", out_path, NULL};
	rc = agent_run(args, NULL, err_path, 10000);
	assert_int_equal(rc, 2);
	char *e = slurp(err_path);

	assert_non_null(
		strstr(e, "target \\\"127.0.0.6\\\" is outside the allowed "
			  "scope"));
	/* one line */
	assert_int_equal(strchr(e, '\n'), e + strlen(e) - 1);
	free(e);
	usleep(200000);
	assert_int_equal(atomic_load(&l->conns), 0);
	assert_int_equal(access(out_path, F_OK), -1);

	/* loopback without --allow-loopback */
	const char *args2[] = {"--targets", "127.0.0.6", "--allowed",
			       "127.0.0.0/8", "--ports", port, "--output",
			       out_path, NULL};
	assert_int_equal(agent_run(args2, NULL, err_path, 10000), 2);
	usleep(200000);
	assert_int_equal(atomic_load(&l->conns), 0);

	/* through the environment as the operator renders it */
	const char *env[] = {"VIGIL_TARGETS=127.0.0.6",
			     "VIGIL_ALLOWED_TARGETS=10.0.0.0/8",
			     "VIGIL_ALLOW_LOOPBACK=true", NULL};
	const char *args3[] = {"--ports", port, "--output", out_path, NULL};
	assert_int_equal(agent_run(args3, env, err_path, 10000), 2);
	usleep(200000);
	assert_int_equal(atomic_load(&l->conns), 0);
	listener_stop(l);
}

static void test_forbidden_refused(void **state)
{
	static const char *const targets[] = {
		"169.254.169.254", "::ffff:169.254.169.254",
		"169.254.0.0/16",  "fd00:ec2::254",
		"fe80::1",	   "64:ff9b::a9fe:a9fe",
	};
	static const char *const bad_input[][2] = {
		{"--ports", "0"},
		{"--ports", "100-90"},
		{"--targets", "10.0.0.1/8"},
		{"--scanners", "tcp,smtp"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		/* even with everything allowed, and loopback too */
		const char *args[] = {"--targets", targets[i], "--allowed",
				      "0.0.0.0/0,::/0", "--allow-loopback",
				      "--ports", "80", "--output", out_path,
				      NULL};
		int rc = agent_run(args, NULL, err_path, 10000);
		char *e = slurp(err_path);

		if (rc != 2 || !strstr(e, targets[i]))
			fail_msg("%s: exit %d, stderr %s", targets[i], rc, e);
		free(e);
	}
	for (size_t i = 0; i < sizeof(bad_input) / sizeof(bad_input[0]); i++) {
		const char *args[] = {"--targets", "10.0.0.1", "--allowed",
				      "10.0.0.0/8", "--output", out_path,
				      bad_input[i][0], bad_input[i][1], NULL};
		int rc = agent_run(args, NULL, err_path, 10000);
		char *e = slurp(err_path);

		if (rc != 2 || !strstr(e, "\"level\":\"error\""))
			fail_msg("%s %s: exit %d, stderr %s", bad_input[i][0],
				 bad_input[i][1], rc, e);
		free(e);
	}
}

/* A host name that resolves to a loopback address outside the allowed
 * addresses is not probed even though the name itself is allowed. */
static void test_resolved_address_checked(void **state)
{
	struct listener *l = listener_start("127.0.0.1", 0, NULL, NULL);
	char port[16];
	int rc;

	(void)state;
	snprintf(port, sizeof(port), "%d", l->port);
	const char *args[] = {"--targets", "localhost", "--allowed",
			      "localhost,127.0.0.2", "--allow-loopback",
			      "--ports", port, "--output", out_path, NULL};
	rc = agent_run(args, NULL, err_path, 10000);
	assert_int_equal(rc, 0);
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "resolved address refused"));
	free(e);
	usleep(200000);
	assert_int_equal(atomic_load(&l->conns), 0);

	/* with its address allowed too, it is scanned, by name */
	args[3] = "localhost,127.0.0.1";
	rc = agent_run(args, NULL, err_path, 10000);
	assert_int_equal(rc, 0);
	json_t *f = read_findings(out_path);

	assert_int_equal(count_findings(f, "127.0.0.1", l->port, "tcp", "open"),
			 1);
	assert_string_equal(
		vg_json_get_str(json_array_get(f, 0), "evidence.hostname", ""),
		"localhost");
	json_decref(f);
	listener_stop(l);
}

static void test_ipv6(void **state)
{
	struct listener *l = listener_start("::1", 0, NULL, NULL);
	int closed = closed_port("127.0.0.2");
	char ports[32];
	json_t *f;
	int rc;

	(void)state;
	snprintf(ports, sizeof(ports), "%d,%d", l->port, closed);
	const char *args[] = {"--targets", "::1", "--allowed", "::1/128",
			      "--allow-loopback", "--ports", ports,
			      "--output", out_path, NULL};
	rc = agent_run(args, NULL, err_path, 20000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	f = read_findings(out_path);
	assert_int_equal(json_array_size(f), 1);
	assert_int_equal(count_findings(f, "::1", l->port, "tcp", "open"), 1);
	json_decref(f);
	listener_stop(l);
}

/* "probes_sent" etc. of the agent's last summary line */
static long summary_num(const char *key)
{
	char *e = slurp(err_path), pat[64], *p;
	long v = -1;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(e, "\"msg\":\"scan finished\"");
	if (p && (p = strstr(p, pat)))
		v = strtol(p + strlen(pat), NULL, 10);
	free(e);
	return v;
}

static void test_rates(void **state)
{
	char ports[32];
	double t0, took;
	int rc;

	(void)state;
	/* 61 closed ports of one address at 50/s: 60 intervals of 20 ms */
	snprintf(ports, sizeof(ports), "%d-%d", 61000, 61060);
	const char *slow[] = {"--targets", "127.0.0.10", "--allowed",
			      "127.0.0.10", "--allow-loopback", "--ports",
			      ports, "--per-target-rate", "50", "--output",
			      out_path, NULL};
	t0 = vg_mono_s();
	rc = agent_run(slow, NULL, err_path, 30000);
	took = vg_mono_s() - t0;
	assert_int_equal(rc, 0);
	assert_int_equal(summary_num("probes_sent"), 61);
	if (took < 1.1 || took > 6.0)
		fail_msg("61 probes at 50/s took %.2f s", took);

	/* 80 probes over 4 addresses at a global 40/s: about 2 s, however
	 * fast one address may go */
	const char *global[] = {"--targets", "127.0.0.10-127.0.0.13",
				"--allowed", "127.0.0.0/24",
				"--allow-loopback", "--ports", "61000-61019",
				"--rate", "40", "--per-target-rate", "1000",
				"--output", out_path, NULL};
	t0 = vg_mono_s();
	rc = agent_run(global, NULL, err_path, 30000);
	took = vg_mono_s() - t0;
	assert_int_equal(rc, 0);
	assert_int_equal(summary_num("probes_sent"), 80);
	if (took < 1.5 || took > 6.0)
		fail_msg("80 probes at 40/s took %.2f s", took);

	/* unpaced, the same 80 take well under a second */
	global[8] = "100000";
	t0 = vg_mono_s();
	rc = agent_run(global, NULL, err_path, 30000);
	took = vg_mono_s() - t0;
	assert_int_equal(rc, 0);
	if (took > 1.0)
		fail_msg("80 unpaced probes took %.2f s", took);
}

/* A port whose accept queue is full drops SYNs: the connect times out,
 * is retried once, and the port is filtered, not open. */
static void test_timeout_retry(void **state)
{
	struct listener *l = listener_start_ex("127.0.0.11", 0, NULL, NULL, 0,
					       1);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)l->port)};
	int fill[4], n = 0;
	char port[16];
	int rc;

	(void)state;
	inet_pton(AF_INET, "127.0.0.11", &sin.sin_addr);
	/* fill the queue (backlog 0 holds one) */
	for (int i = 0; i < 4; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		connect(fd, (struct sockaddr *)&sin, sizeof(sin));
		fill[n++] = fd;
	}
	usleep(200000);
	snprintf(port, sizeof(port), "%d", l->port);
	const char *args[] = {"--targets", "127.0.0.11", "--allowed",
			      "127.0.0.11", "--allow-loopback", "--ports", port,
			      "--connect-timeout-ms", "300", "--retries", "1",
			      "--output", out_path, NULL};
	rc = agent_run(args, NULL, err_path, 20000);
	assert_int_equal(rc, 0);
	json_t *f = read_findings(out_path);

	assert_int_equal(json_array_size(f), 0);
	json_decref(f);
	assert_int_equal(summary_num("probes_sent"), 2);
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "\"filtered\":\"1\""));
	free(e);
	for (int i = 0; i < n; i++)
		close(fill[i]);
	listener_stop(l);
}

/* Three shards of six addresses: each address in exactly one shard. */
static void test_shards(void **state)
{
	struct listener *l[6];
	char ports[128], addr[32];
	json_t *all = json_object();
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 6; i++) {
		snprintf(addr, sizeof(addr), "127.0.0.%d", 20 + i);
		l[i] = listener_start(addr, 0, NULL, NULL);
		n += (size_t)snprintf(ports + n, sizeof(ports) - n, "%s%d",
				      i ? "," : "", l[i]->port);
	}
	for (int s = 0; s < 3; s++) {
		char idx[48];
		const char *env[] = {idx, "VIGIL_SHARDS=3", NULL};
		const char *args[] = {"--targets", "127.0.0.20-127.0.0.25",
				      "--allowed", "127.0.0.0/24",
				      "--allow-loopback", "--ports", ports,
				      "--output", out_path, NULL};
		json_t *f, *x;
		size_t i;

		snprintf(idx, sizeof(idx), "JOB_COMPLETION_INDEX=%d", s);
		assert_int_equal(agent_run(args, env, err_path, 20000), 0);
		f = read_findings(out_path);
		/* two addresses per shard, each with its one open port */
		assert_int_equal(json_array_size(f), 2);
		json_array_foreach(f, i, x)
		{
			const char *h = vg_json_get_str(x, "host", "");

			assert_null(json_object_get(all, h));
			json_object_set_new(all, h, json_integer(s));
		}
		json_decref(f);
	}
	assert_int_equal(json_object_size(all), 6);
	json_decref(all);
	for (int i = 0; i < 6; i++)
		listener_stop(l[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_ports_and_banners),
		cmocka_unit_test(test_tls_expired_self_signed),
		cmocka_unit_test(test_http_missing_headers),
		cmocka_unit_test(test_outside_scope_refused),
		cmocka_unit_test(test_forbidden_refused),
		cmocka_unit_test(test_resolved_address_checked),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_timeout_retry),
		cmocka_unit_test(test_shards),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
