/* test_delivery_net.c - the vigil-agent binary and a minimal HTTP peer
 * standing in for the gateway's socket (it records what the agent posts):
 * batches with the contract's headers and body, retries after 503,
 * delivery once the gateway comes up, resending a dead agent's spool, a
 * batch refused for good, the emergency stop and SIGTERM. */
#include "harness.h"

#define TENANT "0b4c2f8e-7d1a-4c3e-9f5b-2a6d8e1c4b7f"
#define TOKEN "tok-7f3a9c"

static char dir[] = "/tmp/vigil-agent-dlv-XXXXXX";
static char spool[PATH_MAX], out_path[PATH_MAX], err_path[PATH_MAX];
static struct listener *open_ports[5];
static char ports[128];

static int setup(void **state)
{
	size_t n = 0;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(spool, sizeof(spool), "%s/spool", dir);
	snprintf(out_path, sizeof(out_path), "%s/findings.jsonl", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr.log", dir);
	signal(SIGPIPE, SIG_IGN);
	/* five open ports: five findings per run */
	for (int i = 0; i < 5; i++) {
		open_ports[i] = listener_start("127.0.0.8", 0, NULL, NULL);
		n += (size_t)snprintf(ports + n, sizeof(ports) - n, "%s%d",
				      i ? "," : "", open_ports[i]->port);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++)
		listener_stop(open_ports[i]);
	rm_rf(dir);
	return 0;
}

static void show_stderr(void)
{
	char *e = slurp(err_path);

	fprintf(stderr, "agent stderr:\n%s\n", e);
	free(e);
}

/* Files in the spool ending in `suffix`. */
static int spool_files(const char *suffix)
{
	int n = 0;
	DIR *d = opendir(spool);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name), k = strlen(suffix);

		n += l > k && strcmp(e->d_name + l - k, suffix) == 0;
	}
	if (d)
		closedir(d);
	return n;
}

static const char *const gw_env_base[] = {
	"VIGIL_AGENT_TOKEN=" TOKEN,
	"VIGIL_TENANT_ID=" TENANT,
	"VIGIL_JOB_NAME=scan-abc",
	"VIGIL_POLICY_NAMESPACE=tenant-acme",
	"VIGIL_POLICY_NAME=web",
	"VIGIL_POLICY_UID=9d1e-uid",
	"VIGIL_RUN_TRIGGER=manual",
	"VIGIL_ALLOWED_TARGETS=127.0.0.8/32",
	"VIGIL_ALLOW_LOOPBACK=true",
	NULL,
};

/* Agent arguments for a run against gateway port `gwport`. */
static void gw_args(const char **args, char *url, size_t n, int gwport,
		    const char *flush_ms)
{
	int k = 0;

	snprintf(url, n, "http://127.0.0.1:%d/", gwport);
	args[k++] = "--gateway";
	args[k++] = url;
	args[k++] = "--targets";
	args[k++] = "127.0.0.8";
	args[k++] = "--ports";
	args[k++] = ports;
	args[k++] = "--batch-size";
	args[k++] = "2";
	args[k++] = "--spool-dir";
	args[k++] = spool;
	args[k++] = "--estop-interval-ms";
	args[k++] = "200";
	args[k++] = "--flush-timeout-ms";
	args[k++] = flush_ms;
	args[k] = NULL;
}

/* The posted batches' ids must be prefix-0..n-1 in order, each once. */
static void check_ids(struct gw_peer *g, int n)
{
	pthread_mutex_lock(&g->mu);
	if (g->nposts != n) {
		for (int i = 0; i < g->nposts; i++)
			fprintf(stderr, "post %d: %.200s\n", i,
				g->posts[i].body);
		pthread_mutex_unlock(&g->mu);
		fail_msg("%d batches posted, want %d", g->nposts, n);
	}
	for (int i = 0; i < n; i++) {
		json_t *j = NULL;
		char want[64];

		assert_int_equal(vg_json_loadb(g->posts[i].body,
					       strlen(g->posts[i].body), 0, &j,
					       NULL),
				 VG_OK);
		snprintf(want, sizeof(want), "scan-abc-0-%d", i);
		assert_string_equal(vg_json_get_str(j, "batch_id", ""), want);
		json_decref(j);
	}
	pthread_mutex_unlock(&g->mu);
}

static void test_batches_delivered(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	const char *args[24];
	char url[64], path[128];
	json_t *fps = json_object();
	int rc;

	(void)state;
	gw_peer_init(&g);
	g.fail_first = 2; /* the gateway's database is briefly away */
	gl = listener_start("127.0.0.1", 0, serve_gateway, &g);
	gw_args(args, url, sizeof(url), gl->port, "20000");
	rc = agent_run(args, gw_env_base, err_path, 30000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	check_ids(&g, 3);
	snprintf(path, sizeof(path), "/v1/tenants/%s/ingest", TENANT);
	for (int i = 0; i < 3; i++) {
		struct posted *p = &g.posts[i];
		json_t *j = NULL, *f;
		size_t k;

		assert_string_equal(p->path, path);
		assert_string_equal(p->auth, "Bearer " TOKEN);
		assert_string_equal(p->content_type, "application/json");
		assert_true(strlen(p->request_id) >= 16);
		if (i)
			assert_string_not_equal(p->request_id,
						g.posts[i - 1].request_id);
		assert_int_equal(vg_json_loadb(p->body, strlen(p->body), 0, &j,
					       NULL),
				 VG_OK);
		assert_string_equal(vg_json_get_str(j, "job_name", ""),
				    "scan-abc");
		assert_string_equal(vg_json_get_str(j, "policy.namespace", ""),
				    "tenant-acme");
		assert_string_equal(vg_json_get_str(j, "policy.name", ""),
				    "web");
		assert_string_equal(vg_json_get_str(j, "policy.uid", ""),
				    "9d1e-uid");
		assert_string_equal(vg_json_get_str(j, "trigger", ""),
				    "manual");
		assert_int_equal(vg_json_get_int(j, "shards", 0), 1);
		assert_int_equal(vg_json_get_int(j, "shard", -1), 0);
		assert_int_equal(vg_json_get_bool(j, "final", -1), i == 2);
		assert_int_equal(json_array_size(vg_json_get(j, "findings")),
				 i == 2 ? 1 : 2);
		json_array_foreach(vg_json_get(j, "findings"), k, f)
			json_object_set(fps,
					vg_json_get_str(f, "fingerprint", ""),
					f);
		if (i == 2) {
			assert_int_equal(
				vg_json_get_int(j, "stats.open_ports", 0), 5);
			assert_int_equal(vg_json_get_int(j, "stats.probes", 0),
					 5);
			assert_int_equal(vg_json_get_int(j, "stats.targets", 0),
					 1);
		}
		json_decref(j);
	}
	/* five distinct findings, none lost or repeated */
	assert_int_equal(json_object_size(fps), 5);
	json_decref(fps);
	assert_int_equal(spool_files(".json"), 0);
	/* the token is never logged */
	char *e = slurp(err_path);

	assert_null(strstr(e, TOKEN));
	assert_non_null(strstr(e, "database unavailable"));
	free(e);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

static void test_gateway_down_then_up(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	const char *args[24];
	char url[64];
	int port = closed_port("127.0.0.1"), rc;
	pid_t pid;

	(void)state;
	rm_rf(spool);
	gw_peer_init(&g);
	gw_args(args, url, sizeof(url), port, "30000");
	pid = agent_spawn(args, gw_env_base, err_path);
	assert_true(pid > 0);
	/* the scan ends at once; its batches wait in the spool */
	usleep(1500000);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	assert_int_equal(spool_files(".json"), 3);
	gl = listener_start("127.0.0.1", port, serve_gateway, &g);
	rc = agent_wait(pid, 30000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	check_ids(&g, 3);
	assert_int_equal(spool_files(".json"), 0);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

static void test_restart_resends_spool(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	const char *args[24];
	char url[64];
	int port = closed_port("127.0.0.1"), rc;

	(void)state;
	rm_rf(spool);
	gw_peer_init(&g);
	gw_args(args, url, sizeof(url), port, "300");
	/* no gateway at all: exit 4, three batches kept */
	rc = agent_run(args, gw_env_base, err_path, 30000);
	assert_int_equal(rc, 4);
	assert_int_equal(spool_files(".json"), 3);
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "remain in the spool"));
	free(e);
	/* the restarted agent sends them first, then its own after them */
	gl = listener_start("127.0.0.1", port, serve_gateway, &g);
	gw_args(args, url, sizeof(url), port, "20000");
	rc = agent_run(args, gw_env_base, err_path, 30000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	check_ids(&g, 6);
	for (int i = 0; i < 6; i++) {
		json_t *j = NULL;

		vg_json_loadb(g.posts[i].body, strlen(g.posts[i].body), 0, &j,
			      NULL);
		/* each run ended with its own final batch */
		assert_int_equal(vg_json_get_bool(j, "final", -1),
				 i == 2 || i == 5);
		json_decref(j);
	}
	assert_int_equal(spool_files(".json"), 0);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

static void test_rejected_batch(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	const char *args[24];
	char url[64];
	int rc;

	(void)state;
	rm_rf(spool);
	gw_peer_init(&g);
	snprintf(g.reject_id, sizeof(g.reject_id), "scan-abc-0-1");
	gl = listener_start("127.0.0.1", 0, serve_gateway, &g);
	gw_args(args, url, sizeof(url), gl->port, "20000");
	rc = agent_run(args, gw_env_base, err_path, 30000);
	assert_int_equal(rc, 5);
	/* the others went through; the refused one is kept */
	assert_int_equal(g.nposts, 2);
	assert_int_equal(spool_files(".json"), 0);
	assert_int_equal(spool_files(".rejected"), 1);
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/scan-abc-0-1.rejected", spool);
	assert_int_equal(access(p, F_OK), 0);
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "findings[0].severity: not one of info"));
	assert_non_null(strstr(e, "\"status\":\"422\""));
	free(e);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

/* Start a long, slow scan against the peer; returns its pid. */
static pid_t slow_scan(struct gw_peer *g, struct listener *gl)
{
	static char url[64];
	pid_t pid;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", gl->port);
	const char *args[] = {"--gateway", url, "--targets", "127.0.0.8",
			      "--ports", "1-65535", "--rate", "300",
			      "--spool-dir", spool, "--estop-interval-ms",
			      "200", "--output", out_path, NULL};
	pid = agent_spawn(args, gw_env_base, err_path);
	assert_true(pid > 0);
	/* it is probing and polling */
	for (int i = 0; i < 100; i++) {
		int polls;

		pthread_mutex_lock(&g->mu);
		polls = g->estop_polls;
		pthread_mutex_unlock(&g->mu);
		if (polls >= 2)
			break;
		usleep(50000);
	}
	usleep(500000);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	return pid;
}

static int last_is_final(struct gw_peer *g)
{
	json_t *j = NULL;
	int final;

	pthread_mutex_lock(&g->mu);
	if (g->nposts == 0) {
		pthread_mutex_unlock(&g->mu);
		return 0;
	}
	vg_json_loadb(g->posts[g->nposts - 1].body,
		      strlen(g->posts[g->nposts - 1].body), 0, &j, NULL);
	pthread_mutex_unlock(&g->mu);
	final = vg_json_get_bool(j, "final", 0);
	json_decref(j);
	return final;
}

static void test_emergency_stop(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	double t0;
	pid_t pid;
	int rc;

	(void)state;
	rm_rf(spool);
	gw_peer_init(&g);
	gl = listener_start("127.0.0.1", 0, serve_gateway, &g);
	pid = slow_scan(&g, gl);
	t0 = vg_mono_s();
	atomic_store(&g.engaged, 1);
	rc = agent_wait(pid, 10000);
	double took = vg_mono_s() - t0;

	if (rc != 3)
		show_stderr();
	assert_int_equal(rc, 3);
	if (took >= 2.0)
		fail_msg("agent took %.2f s to stop", took);
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "emergency stop engaged"));
	assert_non_null(strstr(e, "scan stopped by the emergency stop"));
	free(e);
	/* results flushed: the final batch arrived */
	assert_true(last_is_final(&g));
	/* it had been probing (50/s: the per-address rate) and stopped long
	 * before 65535 probes */
	e = slurp(err_path);
	char *sum = strstr(e, "\"msg\":\"scan stopped by the emergency stop\"");

	assert_non_null(sum);
	sum = strstr(sum, "\"probes_sent\":\"");
	assert_non_null(sum);
	long probes = strtol(sum + 15, NULL, 10);

	if (probes < 10 || probes > 5000)
		fail_msg("%ld probes before the stop", probes);
	free(e);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

static void test_sigterm(void **state)
{
	struct gw_peer g;
	struct listener *gl;
	double t0;
	pid_t pid;
	int rc;

	(void)state;
	rm_rf(spool);
	gw_peer_init(&g);
	gl = listener_start("127.0.0.1", 0, serve_gateway, &g);
	pid = slow_scan(&g, gl);
	t0 = vg_mono_s();
	kill(pid, SIGTERM);
	rc = agent_wait(pid, 10000);
	if (rc != 0)
		show_stderr();
	assert_int_equal(rc, 0);
	assert_true(vg_mono_s() - t0 < 2.0);
	assert_true(last_is_final(&g));
	char *e = slurp(err_path);

	assert_non_null(strstr(e, "scan stopped by a signal"));
	free(e);
	listener_stop(gl);
	gw_peer_cleanup(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batches_delivered),
		cmocka_unit_test(test_gateway_down_then_up),
		cmocka_unit_test(test_restart_resends_spool),
		cmocka_unit_test(test_rejected_batch),
		cmocka_unit_test(test_emergency_stop),
		cmocka_unit_test(test_sigterm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
