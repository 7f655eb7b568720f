/*
 * test_kube_client.c - the Kubernetes client against the real local control
 * plane (kube-apiserver + etcd, e2e/cluster/up.sh). Reads $KUBECONFIG; the
 * 410 test also reads the cluster's env file (next to the kubeconfig) for
 * etcdctl.
 *
 * Everything happens in a fresh namespace (and, for the 410 test, a CRD
 * with a group unique to the run), deleted at the end.
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

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static struct vg_kube_client *client;
static struct vg_kube_config config;
static char ns[64];
static char crd_group[96];
static char crd_name[128];
static int crd_created;

/* --- helpers ------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static const char *str_at(const json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static const char *str_or(const char *s)
{
	return s ? s : "";
}

static const char *rv_of(const json_t *o)
{
	return str_at(o, "metadata", "resourceVersion");
}

#define assert_ok(call, err)                                                   \
	do {                                                                   \
		int rc_ = (call);                                              \
		if (rc_ != VG_OK)                                              \
			fail_msg("%s: %s (%s, http %ld %s)", #call, (err).msg, \
			         vg_errname(rc_), (err).http_status,           \
			         (err).reason);                                \
	} while (0)

static json_t *configmap(const char *name, const char *k, const char *v)
{
	json_t *cm =
		json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion",
	                  "v1", "kind", "ConfigMap", "metadata", "name", name,
	                  "labels", "suite", "kube-client", "data", k, v);

	assert_non_null(cm);
	return cm;
}

static void create_cm(const char *name, const char *k, const char *v,
                      json_t **out)
{
	json_t *cm = configmap(name, k, v), *res = NULL;
	struct vg_err err;

	vg_err_clear(&err);
	assert_ok(vg_kube_create(client, &vg_kube_configmaps, ns, cm, NULL,
	                         &res, &err),
	          err);
	json_decref(cm);
	if (out)
		*out = res;
	else
		json_decref(res);
}

/* Run argv, capture stdout (new string); returns the exit status. */
static int run_capture(char *const argv[], char **out)
{
	posix_spawn_file_actions_t fa;
	struct vg_buf b;
	int fds[2], status = -1;
	char chunk[4096];
	pid_t pid;
	ssize_t n;

	vg_buf_init(&b, 1 << 20);
	if (pipe(fds) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
		vg_buf_append(&b, chunk, (size_t)n);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out)
		*out = vg_buf_take(&b);
	vg_buf_cleanup(&b);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The cluster's env file: $VIGIL_CLUSTER_DIR/env or next to KUBECONFIG. */
static void cluster_env_path(char *out, size_t size)
{
	const char *dir = getenv("VIGIL_CLUSTER_DIR");
	const char *kc = getenv("KUBECONFIG");
	const char *slash;

	if (dir && *dir) {
		snprintf(out, size, "%s/env", dir);
		return;
	}
	slash = kc ? strrchr(kc, '/') : NULL;
	if (slash)
		snprintf(out, size, "%.*s/env", (int)(slash - kc), kc);
	else
		snprintf(out, size, "env");
}

/* Run etcdctl with the cluster env (ETCDCTL_ENDPOINTS); captures stdout. */
static int etcdctl(char **out, const char *a1, const char *a2, const char *a3)
{
	char envfile[512], arg1[64], arg2[64], arg3[64];
	char sh[] = "/bin/sh", dash_c[] = "-c", name[] = "sh";
	/* etcdctl 3.6 warns about ETCDCTL_API (v3 is the only API left). */
	char script[] = ". \"$1\" && unset ETCDCTL_API && "
			"exec \"$VIGIL_ETCDCTL\" \"$2\" \"$3\" \"$4\"";
	char *argv[] = {sh,   dash_c, script, name, envfile,
	                arg1, arg2,   arg3,   NULL};

	snprintf(arg1, sizeof(arg1), "%s", a1);
	snprintf(arg2, sizeof(arg2), "%s", a2);
	snprintf(arg3, sizeof(arg3), "%s", a3);

	cluster_env_path(envfile, sizeof(envfile));
	if (access(envfile, R_OK) != 0)
		fail_msg("cluster env file %s not readable: the 410 test "
		         "needs etcdctl from it",
		         envfile);
	return run_capture(argv, out);
}

/* --- watching in a thread ------------------------------------------------ */

#define MAX_EVENTS 64

struct watcher {
	pthread_t th;
	struct vg_kube_watch *w;
	pthread_mutex_t mu;
	int rc;
	struct vg_err err;
	int n; /* non-bookmark events */
	int bookmarks;
	int error_events;
	char ev[MAX_EVENTS][160]; /* "TYPE name" */
	char rv[MAX_EVENTS][32];
	char bookmark_rv[32];
	const char *stop_after; /* stop after the event "TYPE name" */
	const char *stop_rv;    /* or after an event with this rv */
	volatile int done;
};

static int on_watch(void *ctx, const struct vg_watch_event *ev)
{
	struct watcher *wa = ctx;
	const char *name = str_at(ev->object, "metadata", "name");
	int stop = 0;

	pthread_mutex_lock(&wa->mu);
	if (ev->type == VG_WATCH_BOOKMARK) {
		wa->bookmarks++;
		snprintf(wa->bookmark_rv, sizeof(wa->bookmark_rv), "%s",
		         ev->resource_version ? ev->resource_version : "");
	} else {
		if (ev->type == VG_WATCH_ERROR)
			wa->error_events++;
		if (wa->n < MAX_EVENTS) {
			snprintf(wa->ev[wa->n], sizeof(wa->ev[0]), "%s %s",
			         vg_watch_type_name(ev->type),
			         name ? name : "-");
			snprintf(wa->rv[wa->n], sizeof(wa->rv[0]), "%s",
			         ev->resource_version ? ev->resource_version
			                              : "");
			if (wa->stop_after &&
			    strcmp(wa->ev[wa->n], wa->stop_after) == 0)
				stop = 1;
			if (wa->stop_rv && ev->resource_version &&
			    strcmp(ev->resource_version, wa->stop_rv) == 0)
				stop = 1;
		}
		wa->n++;
	}
	pthread_mutex_unlock(&wa->mu);
	return stop ? VG_WATCH_STOP : 0;
}

static void *watch_thread(void *p)
{
	struct watcher *wa = p;

	wa->rc = vg_kube_watch_run(wa->w, &wa->err);
	wa->done = 1;
	return NULL;
}

static void watcher_start(struct watcher *wa, const struct vg_kube_resource *r,
                          const struct vg_kube_watch_opts *opts)
{
	struct vg_err err;

	pthread_mutex_init(&wa->mu, NULL);
	vg_err_clear(&err);
	assert_ok(vg_kube_watch_new(client, r, ns, opts, on_watch, wa, &wa->w,
	                            &err),
	          err);
	assert_int_equal(pthread_create(&wa->th, NULL, watch_thread, wa), 0);
}

/* Run the same watch again (resuming), with fresh counters. */
static void watcher_rerun(struct watcher *wa)
{
	wa->n = wa->bookmarks = wa->error_events = 0;
	wa->done = 0;
	vg_err_clear(&wa->err);
	pthread_mutex_init(&wa->mu, NULL);
	assert_int_equal(pthread_create(&wa->th, NULL, watch_thread, wa), 0);
}

/* Wait for the watch to end; cancel it (and fail) after `secs`. */
static void watcher_join(struct watcher *wa, double secs)
{
	double until = now_s() + secs;
	int timed_out = 0;

	while (!wa->done && now_s() < until)
		sleep_ms(20);
	if (!wa->done) {
		timed_out = 1;
		vg_kube_watch_cancel(wa->w);
	}
	pthread_join(wa->th, NULL);
	pthread_mutex_destroy(&wa->mu);
	if (timed_out)
		print_message("watch did not end in %.0fs; seen %d events\n",
		              secs, wa->n);
}

static void watcher_free(struct watcher *wa)
{
	vg_kube_watch_free(wa->w);
	wa->w = NULL;
}

/* --- setup --------------------------------------------------------------- */

static int setup(void **state)
{
	const char *kc = getenv("KUBECONFIG");
	struct vg_kube_client_opts opts = {.qps = 200, .burst = 400};
	json_t *nsobj = NULL, *res = NULL;
	struct vg_kube_request req = {.method = "GET", .path = "/version"};
	struct vg_err err;

	(void)state;
	vg_log_init("test_kube_client");
	if (!kc || !*kc) {
		fprintf(stderr, "test_kube_client: KUBECONFIG is not set; "
		                "start the cluster (make cluster-up) and "
		                "source .cluster/env\n");
		return -1;
	}
	vg_kube_config_init(&config);
	vg_err_clear(&err);
	if (vg_kube_config_load_file(&config, NULL, NULL, &err) != VG_OK) {
		fprintf(stderr, "test_kube_client: %s\n", err.msg);
		return -1;
	}
	if (vg_kube_client_new(&config, &opts, &client, &err) != VG_OK) {
		fprintf(stderr, "test_kube_client: %s\n", err.msg);
		return -1;
	}
	if (vg_kube_request(client, &req, &res, &err) != VG_OK) {
		fprintf(stderr,
		        "test_kube_client: cluster at %s unreachable: %s\n",
		        config.server, err.msg);
		return -1;
	}
	fprintf(stderr, "test_kube_client: kube-apiserver %s at %s\n",
	        str_at(res, "gitVersion", NULL), config.server);
	json_decref(res);

	srand((unsigned)(time(NULL) ^ getpid()));
	snprintf(ns, sizeof(ns), "vg-kc-%d-%04x", (int)getpid(),
	         (unsigned)rand() & 0xffff);
	nsobj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind",
	                  "Namespace", "metadata", "name", ns);
	if (vg_kube_create(client, &vg_kube_namespaces, NULL, nsobj, NULL, NULL,
	                   &err) != VG_OK) {
		fprintf(stderr, "test_kube_client: creating namespace %s: %s\n",
		        ns, err.msg);
		json_decref(nsobj);
		return -1;
	}
	json_decref(nsobj);
	return 0;
}

static int teardown(void **state)
{
	struct vg_err err;

	(void)state;
	if (!client)
		return 0;
	if (crd_created)
		vg_kube_delete(client, &vg_kube_crds, NULL, crd_name, NULL,
		               NULL, &err);
	if (ns[0] && vg_kube_delete(client, &vg_kube_namespaces, NULL, ns, NULL,
	                            NULL, &err) != VG_OK)
		fprintf(stderr, "deleting namespace %s: %s\n", ns, err.msg);
	vg_kube_client_free(client);
	vg_kube_config_cleanup(&config);
	return 0;
}

/* --- CRUD ---------------------------------------------------------------- */

static void test_create_get_list(void **state)
{
	json_t *got = NULL, *created = NULL, *list = NULL, *dup;
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	create_cm("alpha", "greeting", "hello", &created);
	assert_string_equal(str_at(created, "metadata", "namespace"), ns);
	assert_non_null(str_at(created, "metadata", "uid"));

	assert_ok(vg_kube_get(client, &vg_kube_configmaps, ns, "alpha", NULL,
	                      &got, &err),
	          err);
	assert_string_equal(str_at(got, "data", "greeting"), "hello");
	assert_string_equal(rv_of(got), rv_of(created));
	assert_string_equal(str_at(got, "kind", NULL), "ConfigMap");
	json_decref(got);

	assert_ok(vg_kube_list(client, &vg_kube_configmaps, ns, NULL, &list,
	                       &err),
	          err);
	assert_string_equal(str_at(list, "kind", NULL), "ConfigMapList");
	/* alpha and the namespace's kube-root-ca.crt (if the controller
	 * manager has published it yet). */
	assert_true(json_array_size(json_object_get(list, "items")) >= 1);
	json_decref(list);

	/* Creating it again: 409 AlreadyExists, told apart from Conflict. */
	dup = configmap("alpha", "x", "y");
	assert_int_equal(vg_kube_create(client, &vg_kube_configmaps, ns, dup,
	                                NULL, NULL, &err),
	                 VG_EXISTS);
	assert_int_equal(err.http_status, 409);
	assert_string_equal(err.reason, "AlreadyExists");
	assert_non_null(strstr(err.msg, "alpha"));
	json_decref(dup);
	json_decref(created);
}

static void test_list_paging_and_selectors(void **state)
{
	static const char *const tiers[] = {"a", "b", "a", "b", "a"};
	json_t *page = NULL, *all = NULL;
	struct vg_err err;
	char cont[2048] = "";
	int seen = 0, pages = 0;

	(void)state;
	vg_err_clear(&err);
	for (int i = 0; i < 5; i++) {
		char name[32];
		json_t *cm;

		snprintf(name, sizeof(name), "page-%d", i);
		cm = configmap(name, "i", name);
		json_object_set_new(
			json_object_get(json_object_get(cm, "metadata"),
		                        "labels"),
			"tier", json_string(tiers[i]));
		json_object_set_new(
			json_object_get(json_object_get(cm, "metadata"),
		                        "labels"),
			"paged", json_string("yes"));
		assert_ok(vg_kube_create(client, &vg_kube_configmaps, ns, cm,
		                         NULL, NULL, &err),
		          err);
		json_decref(cm);
	}

	/* By hand: limit 2 over 5 objects is pages of 2, 2, 1. */
	do {
		struct vg_kube_list_opts lo = {
			.label_selector = "paged=yes",
			.limit = 2,
			.continue_token = cont[0] ? cont : NULL,
		};
		const char *next;
		size_t n;

		assert_ok(vg_kube_list(client, &vg_kube_configmaps, ns, &lo,
		                       &page, &err),
		          err);
		n = json_array_size(json_object_get(page, "items"));
		assert_int_equal(n, pages < 2 ? 2 : 1);
		seen += (int)n;
		next = str_at(page, "metadata", "continue");
		snprintf(cont, sizeof(cont), "%s", next ? next : "");
		json_decref(page);
		pages++;
	} while (cont[0] && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(seen, 5);

	/* The helper does the same and returns one list with a version. */
	{
		struct vg_kube_list_opts lo = {.label_selector = "paged=yes",
		                               .limit = 2};

		assert_ok(vg_kube_list_all(client, &vg_kube_configmaps, ns, &lo,
		                           &all, &err),
		          err);
		assert_int_equal(json_array_size(json_object_get(all, "items")),
		                 5);
		assert_non_null(rv_of(all));
		assert_null(str_at(all, "metadata", "continue"));
		json_decref(all);
	}

	/* Label selectors: equality, set-based, negation. */
	{
		static const struct {
			const char *sel;
			size_t n;
		} sels[] = {
			{"paged=yes,tier=a", 3},
			{"paged=yes,tier=b", 2},
			{"paged=yes,tier in (a,b)", 5},
			{"paged=yes,tier!=a", 2},
			{"paged=yes,!tier", 0},
			{"tier=c", 0},
		};

		for (size_t i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
			struct vg_kube_list_opts lo = {.label_selector =
			                                       sels[i].sel};

			assert_ok(vg_kube_list(client, &vg_kube_configmaps, ns,
			                       &lo, &page, &err),
			          err);
			assert_int_equal(
				json_array_size(json_object_get(page, "items")),
				sels[i].n);
			json_decref(page);
		}
	}

	/* A field selector. */
	{
		struct vg_kube_list_opts lo = {.field_selector =
		                                       "metadata.name=page-3"};

		assert_ok(vg_kube_list(client, &vg_kube_configmaps, ns, &lo,
		                       &page, &err),
		          err);
		assert_int_equal(
			json_array_size(json_object_get(page, "items")), 1);
		json_decref(page);
	}
}

static void test_patches(void **state)
{
	json_t *res = NULL, *patch;
	struct vg_err err;
	struct vg_kube_patch_opts merge = {.type = VG_KUBE_PATCH_MERGE};
	struct vg_kube_patch_opts jsonp = {.type = VG_KUBE_PATCH_JSON};

	(void)state;
	vg_err_clear(&err);
	create_cm("patchme", "keep", "1", NULL);

	/* Merge patch: add a key, delete one with null. */
	patch = json_pack("{s:{s:s, s:n}}", "data", "added", "2", "keep");
	assert_ok(vg_kube_patch(client, &vg_kube_configmaps, ns, "patchme",
	                        patch, &merge, &res, &err),
	          err);
	assert_string_equal(str_at(res, "data", "added"), "2");
	assert_null(str_at(res, "data", "keep"));
	json_decref(patch);
	json_decref(res);

	/* JSON patch: test + add + replace, atomically. */
	patch = json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]",
	                  "op", "test", "path", "/data/added", "value", "2",
	                  "op", "add", "path", "/metadata/labels/patched",
	                  "value", "yes", "op", "replace", "path",
	                  "/data/added", "value", "3");
	assert_ok(vg_kube_patch(client, &vg_kube_configmaps, ns, "patchme",
	                        patch, &jsonp, &res, &err),
	          err);
	assert_string_equal(str_at(res, "data", "added"), "3");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(res, "metadata"),
	                                "labels"),
			"patched")),
		"yes");
	json_decref(res);

	/* A failing test op changes nothing; the server's reason is kept. */
	assert_int_not_equal(vg_kube_patch(client, &vg_kube_configmaps, ns,
	                                   "patchme", patch, &jsonp, &res,
	                                   &err),
	                     VG_OK);
	assert_true(err.http_status >= 400);
	assert_true(strlen(err.msg) > 0);
	json_decref(patch);

	/* Patching a missing object is a 404. */
	patch = json_pack("{s:{s:s}}", "data", "a", "b");
	assert_int_equal(vg_kube_patch(client, &vg_kube_configmaps, ns,
	                               "no-such-cm", patch, &merge, NULL, &err),
	                 VG_NOTFOUND);
	json_decref(patch);
}

static void test_server_side_apply(void **state)
{
	json_t *intent, *res = NULL, *res2 = NULL, *other;
	struct vg_err err;
	struct vg_kube_patch_opts a = {.field_manager = "vigil-e2e-a"};
	struct vg_kube_patch_opts b = {.field_manager = "vigil-e2e-b"};
	char rv1[32];

	(void)state;
	vg_err_clear(&err);
	intent = configmap("applied", "owner", "a");
	assert_ok(vg_kube_apply(client, &vg_kube_configmaps, ns, intent, &a,
	                        &res, &err),
	          err);
	assert_string_equal(str_at(res, "data", "owner"), "a");
	snprintf(rv1, sizeof(rv1), "%s", rv_of(res));
	json_decref(res);

	/* The same intent again writes nothing. */
	assert_ok(vg_kube_apply(client, &vg_kube_configmaps, ns, intent, &a,
	                        &res2, &err),
	          err);
	assert_string_equal(rv_of(res2), rv1);
	json_decref(res2);

	/* Another manager changing a's field: 409 Conflict, Status kept. */
	other = configmap("applied", "owner", "b");
	assert_int_equal(vg_kube_apply(client, &vg_kube_configmaps, ns, other,
	                               &b, &res, &err),
	                 VG_CONFLICT);
	assert_int_equal(err.http_status, 409);
	assert_string_equal(err.reason, "Conflict");
	assert_non_null(strstr(err.msg, "conflict"));
	assert_non_null(strstr(err.msg, "vigil-e2e-a"));
	assert_null(res);

	/* Forced, b takes the field over. */
	b.force = true;
	assert_ok(vg_kube_apply(client, &vg_kube_configmaps, ns, other, &b,
	                        &res, &err),
	          err);
	assert_string_equal(str_at(res, "data", "owner"), "b");
	assert_string_not_equal(rv_of(res), rv1);
	json_decref(res);

	/* Dry run: validated and returned, not stored. */
	{
		json_t *dry = configmap("dry", "k", "v");
		struct vg_kube_write_opts wo = {.dry_run = true};

		assert_ok(vg_kube_create(client, &vg_kube_configmaps, ns, dry,
		                         &wo, &res, &err),
		          err);
		assert_string_equal(str_at(res, "data", "k"), "v");
		json_decref(res);
		assert_int_equal(vg_kube_get(client, &vg_kube_configmaps, ns,
		                             "dry", NULL, &res, &err),
		                 VG_NOTFOUND);
		json_decref(dry);
	}
	json_decref(other);
	json_decref(intent);
}

static void test_update_conflict(void **state)
{
	json_t *first = NULL, *stale, *res = NULL;
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	create_cm("updated", "v", "0", &first);
	stale = json_deep_copy(first);

	json_object_set_new(json_object_get(first, "data"), "v",
	                    json_string("1"));
	assert_ok(vg_kube_update(client, &vg_kube_configmaps, ns, first, NULL,
	                         &res, &err),
	          err);
	assert_string_equal(str_at(res, "data", "v"), "1");
	assert_string_not_equal(rv_of(res), rv_of(stale));
	json_decref(res);

	/* Writing with the old resourceVersion loses the race. */
	json_object_set_new(json_object_get(stale, "data"), "v",
	                    json_string("stale"));
	assert_int_equal(vg_kube_update(client, &vg_kube_configmaps, ns, stale,
	                                NULL, &res, &err),
	                 VG_CONFLICT);
	assert_int_equal(err.http_status, 409);
	assert_string_equal(err.reason, "Conflict");
	assert_non_null(strstr(err.msg, "modified"));
	json_decref(stale);
	json_decref(first);
}

static void test_delete_preconditions(void **state)
{
	json_t *cm = NULL;
	struct vg_err err;
	struct vg_kube_delete_opts wrong = {
		.uid = "00000000-0000-0000-0000-000000000000",
		.propagation_policy = "Foreground",
	};
	struct vg_kube_delete_opts right = {.propagation_policy = "Background"};

	(void)state;
	vg_err_clear(&err);
	create_cm("doomed", "k", "v", &cm);
	assert_int_equal(vg_kube_delete(client, &vg_kube_configmaps, ns,
	                                "doomed", &wrong, NULL, &err),
	                 VG_CONFLICT);
	assert_int_equal(err.http_status, 409);
	assert_non_null(strstr(err.msg, "UID in the precondition"));

	right.uid = str_at(cm, "metadata", "uid");
	right.resource_version = rv_of(cm);
	assert_ok(vg_kube_delete(client, &vg_kube_configmaps, ns, "doomed",
	                         &right, NULL, &err),
	          err);
	assert_int_equal(vg_kube_get(client, &vg_kube_configmaps, ns, "doomed",
	                             NULL, NULL, &err),
	                 VG_NOTFOUND);
	/* Deleting what is gone is a 404 too. */
	assert_int_equal(vg_kube_delete(client, &vg_kube_configmaps, ns,
	                                "doomed", NULL, NULL, &err),
	                 VG_NOTFOUND);
	json_decref(cm);
}

static void test_errors_keep_status(void **state)
{
	json_t *bad, *res = NULL;
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	assert_int_equal(vg_kube_get(client, &vg_kube_configmaps, ns,
	                             "does-not-exist", NULL, &res, &err),
	                 VG_NOTFOUND);
	assert_null(res);
	assert_int_equal(err.code, VG_NOTFOUND);
	assert_int_equal(err.http_status, 404);
	assert_string_equal(err.reason, "NotFound");
	assert_non_null(strstr(err.msg, "does-not-exist"));

	/* 422 Invalid: the server's explanation survives. */
	bad = configmap("Not_A_Valid_Name!", "k", "v");
	assert_int_equal(vg_kube_create(client, &vg_kube_configmaps, ns, bad,
	                                NULL, &res, &err),
	                 VG_INVAL);
	assert_int_equal(err.http_status, 422);
	assert_string_equal(err.reason, "Invalid");
	assert_non_null(strstr(err.msg, "Not_A_Valid_Name!"));
	assert_non_null(strstr(err.msg, "RFC 1123"));
	json_decref(bad);

	/* A missing namespace is a 404 for the namespace. */
	bad = configmap("x", "k", "v");
	assert_int_equal(vg_kube_create(client, &vg_kube_configmaps,
	                                "vg-no-such-namespace", bad, NULL, NULL,
	                                &err),
	                 VG_NOTFOUND);
	json_decref(bad);
}

static void test_auth_errors(void **state)
{
	struct vg_kube_config anon;
	struct vg_kube_client *c = NULL;
	json_t *sa, *tr, *res = NULL;
	struct vg_buf path;
	struct vg_err err;
	struct vg_kube_request req = {.method = "POST"};

	(void)state;
	vg_err_clear(&err);

	/* A token the server does not know: 401. */
	assert_ok(vg_kube_config_copy(&anon, &config, &err), err);
	free(anon.cert_pem);
	free(anon.key_pem);
	anon.cert_pem = anon.key_pem = NULL;
	anon.cert_len = anon.key_len = 0;
	free(anon.token);
	anon.token = strdup("not-a-real-token");
	assert_ok(vg_kube_client_new(&anon, NULL, &c, &err), err);
	assert_int_equal(vg_kube_get(c, &vg_kube_namespaces, NULL, "default",
	                             NULL, NULL, &err),
	                 VG_UNAUTHORIZED);
	assert_int_equal(err.http_status, 401);
	assert_string_equal(err.reason, "Unauthorized");
	vg_kube_client_free(c);

	/* A real service account without permissions: 403, via its token. */
	sa = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind",
	               "ServiceAccount", "metadata", "name", "nobody");
	assert_ok(vg_kube_create(client, &vg_kube_serviceaccounts, ns, sa, NULL,
	                         NULL, &err),
	          err);
	json_decref(sa);
	vg_buf_init(&path, 0);
	assert_ok(vg_kube_path(&path, &vg_kube_serviceaccounts, ns, "nobody",
	                       "token", &err),
	          err);
	tr = json_pack("{s:s, s:s, s:{s:i}}", "apiVersion",
	               "authentication.k8s.io/v1", "kind", "TokenRequest",
	               "spec", "expirationSeconds", 600);
	req.path = vg_buf_str(&path);
	req.body = tr;
	assert_ok(vg_kube_request(client, &req, &res, &err), err);
	assert_non_null(str_at(res, "status", "token"));
	free(anon.token);
	anon.token = strdup(str_at(res, "status", "token"));
	json_decref(res);
	json_decref(tr);
	vg_buf_cleanup(&path);

	assert_ok(vg_kube_client_new(&anon, NULL, &c, &err), err);
	assert_int_equal(vg_kube_list(c, &vg_kube_secrets, "kube-system", NULL,
	                              &res, &err),
	                 VG_FORBIDDEN);
	assert_int_equal(err.http_status, 403);
	assert_string_equal(err.reason, "Forbidden");
	assert_non_null(strstr(err.msg, "nobody"));
	vg_kube_client_free(c);
	vg_kube_config_cleanup(&anon);

	/* Nobody listening: VG_IO with curl's explanation. */
	{
		struct vg_kube_config dead;

		assert_ok(vg_kube_config_copy(&dead, &config, &err), err);
		free(dead.server);
		dead.server = strdup("https://127.0.0.1:1");
		assert_ok(vg_kube_client_new(&dead, NULL, &c, &err), err);
		assert_int_equal(vg_kube_get(c, &vg_kube_namespaces, NULL,
		                             "default", NULL, NULL, &err),
		                 VG_IO);
		assert_int_equal(err.http_status, 0);
		assert_non_null(strstr(err.msg, "127.0.0.1"));
		vg_kube_client_free(c);
		vg_kube_config_cleanup(&dead);
	}
}

static void test_tls_server_name(void **state)
{
	static const struct {
		const char *name;
		int rc;
	} cases[] = {
		/* In the serving certificate, though not the URL's host. */
		{"kubernetes.default", VG_OK},
		/* Not in the certificate: verification must fail. */
		{"not-in-the-cert.example", VG_IO},
	};
	struct vg_err err;

	(void)state;
	if (config.insecure_skip_tls_verify || !config.ca_pem)
		skip();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_kube_config cfg;
		struct vg_kube_client *c = NULL;

		vg_err_clear(&err);
		assert_ok(vg_kube_config_copy(&cfg, &config, &err), err);
		free(cfg.tls_server_name);
		cfg.tls_server_name = strdup(cases[i].name);
		assert_ok(vg_kube_client_new(&cfg, NULL, &c, &err), err);
		assert_int_equal(vg_kube_get(c, &vg_kube_namespaces, NULL,
		                             "default", NULL, NULL, &err),
		                 cases[i].rc);
		vg_kube_client_free(c);
		vg_kube_config_cleanup(&cfg);
	}
}

/* --- status subresource -------------------------------------------------- */

static json_t *condition(const char *type)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type,
	                      "status", "True", "reason", "E2E", "message",
	                      "set by test_kube_client", "lastUpdateTime",
	                      "2025-01-01T00:00:00Z", "lastTransitionTime",
	                      "2025-01-01T00:00:00Z");

	assert_non_null(c);
	return c;
}

static int has_condition(const json_t *obj, const char *type)
{
	json_t *conds =
		json_object_get(json_object_get(obj, "status"), "conditions");
	size_t i;
	json_t *c;

	json_array_foreach(conds, i, c) if (strcmp(str_or(json_string_value(
							   json_object_get(
								   c, "type"))),
	                                           type) == 0) return 1;
	return 0;
}

static void test_deployment_status(void **state)
{
	json_t *dep, *res = NULL, *patch;
	struct vg_err err;
	struct vg_kube_patch_opts merge = {.type = VG_KUBE_PATCH_MERGE,
	                                   .subresource = "status"};
	struct vg_kube_patch_opts main_merge = {.type = VG_KUBE_PATCH_MERGE};
	struct vg_kube_get_opts status = {.subresource = "status"};
	struct vg_kube_write_opts put_status = {.subresource = "status"};
	int ok = 0;

	(void)state;
	vg_err_clear(&err);
	dep = json_pack("{s:s, s:s, s:{s:s}, s:{s:i, s:{s:{s:s}}, s:{s:{s:{s:"
	                "s}}, s:{s:[{s:s, s:s}]}}}}",
	                "apiVersion", "apps/v1", "kind", "Deployment",
	                "metadata", "name", "web", "spec", "replicas", 1,
	                "selector", "matchLabels", "app", "web", "template",
	                "metadata", "labels", "app", "web", "spec",
	                "containers", "name", "c", "image", "nginx");
	assert_non_null(dep);
	assert_ok(vg_kube_create(client, &vg_kube_deployments, ns, dep, NULL,
	                         NULL, &err),
	          err);
	json_decref(dep);

	/* Through /status, spec changes are ignored and status is written. */
	patch = json_pack("{s:{s:i}, s:{s:[o]}}", "spec", "replicas", 7,
	                  "status", "conditions", condition("VigilPatched"));
	assert_ok(vg_kube_patch(client, &vg_kube_deployments, ns, "web", patch,
	                        &merge, &res, &err),
	          err);
	assert_true(has_condition(res, "VigilPatched"));
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(res, "spec"), "replicas")),
	                 1);
	json_decref(res);
	json_decref(patch);

	/* Through the main resource, status changes are ignored. */
	patch = json_pack("{s:{s:[o]}}", "status", "conditions",
	                  condition("VigilIgnored"));
	assert_ok(vg_kube_patch(client, &vg_kube_deployments, ns, "web", patch,
	                        &main_merge, &res, &err),
	          err);
	assert_false(has_condition(res, "VigilIgnored"));
	json_decref(res);
	json_decref(patch);

	/* GET and PUT of /status; the deployment controller may write in
	 * between, so a conflict means: read again and retry. */
	for (int attempt = 0; attempt < 10 && !ok; attempt++) {
		json_t *conds;
		int rc;

		assert_ok(vg_kube_get(client, &vg_kube_deployments, ns, "web",
		                      &status, &res, &err),
		          err);
		assert_string_equal(str_at(res, "kind", NULL), "Deployment");
		conds = json_object_get(json_object_get(res, "status"),
		                        "conditions");
		if (!conds) {
			conds = json_array();
			json_object_set_new(json_object_get(res, "status"),
			                    "conditions", conds);
		}
		json_array_append_new(conds, condition("VigilPut"));
		rc = vg_kube_update(client, &vg_kube_deployments, ns, res,
		                    &put_status, NULL, &err);
		json_decref(res);
		if (rc == VG_OK)
			ok = 1;
		else if (rc != VG_CONFLICT)
			fail_msg("PUT status: %s", err.msg);
	}
	assert_true(ok);
}

/* --- watch --------------------------------------------------------------- */

static void test_watch_sequence(void **state)
{
	struct watcher wa = {.stop_after = "DELETED watched"};
	struct vg_kube_list_opts lo = {.field_selector =
	                                       "metadata.name=watched"};
	struct vg_kube_watch_opts wo = {.field_selector =
	                                        "metadata.name=watched"};
	json_t *list = NULL, *cm = NULL, *patch;
	struct vg_kube_patch_opts merge = {.type = VG_KUBE_PATCH_MERGE};
	struct vg_err err;
	char list_rv[32];

	(void)state;
	vg_err_clear(&err);
	assert_ok(vg_kube_list_all(client, &vg_kube_configmaps, ns, &lo, &list,
	                           &err),
	          err);
	snprintf(list_rv, sizeof(list_rv), "%s", rv_of(list));
	json_decref(list);
	wo.resource_version = list_rv;
	watcher_start(&wa, &vg_kube_configmaps, &wo);

	create_cm("watched", "v", "1", &cm);
	patch = json_pack("{s:{s:s}}", "data", "v", "2");
	assert_ok(vg_kube_patch(client, &vg_kube_configmaps, ns, "watched",
	                        patch, &merge, NULL, &err),
	          err);
	json_decref(patch);
	assert_ok(vg_kube_delete(client, &vg_kube_configmaps, ns, "watched",
	                         NULL, NULL, &err),
	          err);

	watcher_join(&wa, 30);
	if (wa.rc != VG_OK)
		fail_msg("watch ended with %s: %s", vg_errname(wa.rc),
		         wa.err.msg);
	assert_int_equal(wa.n, 3);
	assert_string_equal(wa.ev[0], "ADDED watched");
	assert_string_equal(wa.ev[1], "MODIFIED watched");
	assert_string_equal(wa.ev[2], "DELETED watched");
	assert_string_equal(wa.rv[0], rv_of(cm));
	assert_true(strtoull(wa.rv[1], NULL, 10) >
	            strtoull(wa.rv[0], NULL, 10));
	/* The watch remembers where to resume. */
	assert_string_equal(vg_kube_watch_resource_version(wa.w), wa.rv[2]);

	/* Rewound to the list's version, the same handle replays all. */
	assert_int_equal(vg_kube_watch_set_resource_version(wa.w, list_rv),
	                 VG_OK);
	watcher_rerun(&wa);
	watcher_join(&wa, 30);
	assert_int_equal(wa.rc, VG_OK);
	assert_int_equal(wa.n, 3);
	assert_string_equal(wa.ev[0], "ADDED watched");
	assert_string_equal(wa.ev[2], "DELETED watched");
	watcher_free(&wa);

	/* The one-call form, stopped by its callback at the first event. */
	{
		struct watcher one = {.stop_after = "ADDED watched"};
		char *last = NULL;

		pthread_mutex_init(&one.mu, NULL);
		assert_ok(vg_kube_watch(client, &vg_kube_configmaps, ns, &wo,
		                        on_watch, &one, &last, &err),
		          err);
		pthread_mutex_destroy(&one.mu);
		assert_int_equal(one.n, 1);
		assert_non_null(last);
		assert_string_equal(last, rv_of(cm));
		free(last);
	}
	json_decref(cm);
}

static void test_watch_cancel(void **state)
{
	struct watcher wa = {0};
	struct vg_kube_watch_opts wo = {.field_selector =
	                                        "metadata.name=never"};
	atomic_int shared = 0;
	double t0;

	(void)state;
	/* Cancelled from another thread: woken at once, not polled. */
	watcher_start(&wa, &vg_kube_configmaps, &wo);
	sleep_ms(500);
	assert_false(wa.done);
	t0 = now_s();
	vg_kube_watch_cancel(wa.w);
	watcher_join(&wa, 5);
	assert_int_equal(wa.rc, VG_CANCELED);
	assert_true(now_s() - t0 < 0.5);
	/* Once cancelled, run refuses to start again. */
	assert_int_equal(vg_kube_watch_run(wa.w, &wa.err), VG_CANCELED);
	watcher_free(&wa);

	/* A shared flag (shutdown of many informers) is polled. */
	memset(&wa, 0, sizeof(wa));
	wo.cancel = &shared;
	watcher_start(&wa, &vg_kube_configmaps, &wo);
	sleep_ms(300);
	t0 = now_s();
	atomic_store(&shared, 1);
	watcher_join(&wa, 5);
	assert_int_equal(wa.rc, VG_CANCELED);
	assert_true(now_s() - t0 < 1.0);
	watcher_free(&wa);
}

static void test_watch_bookmark_and_timeout(void **state)
{
	struct watcher wa = {0};
	struct vg_kube_watch_opts wo = {.field_selector = "metadata.name=quiet",
	                                .timeout_seconds = 5};
	json_t *list = NULL, *noise = NULL;
	struct vg_err err;
	char list_rv[32];

	(void)state;
	vg_err_clear(&err);
	assert_ok(vg_kube_list(client, &vg_kube_configmaps, ns, NULL, &list,
	                       &err),
	          err);
	snprintf(list_rv, sizeof(list_rv), "%s", rv_of(list));
	json_decref(list);
	wo.resource_version = list_rv;
	/* The server ends the watch after timeoutSeconds, sending a
	 * BOOKMARK shortly before so the client can resume from it. A
	 * bookmark only says something when the version moved on: a write
	 * the watch does not match moves it. */
	watcher_start(&wa, &vg_kube_configmaps, &wo);
	sleep_ms(300);
	create_cm("bookmark-noise", "k", "v", &noise);
	watcher_join(&wa, 20);
	if (wa.rc != VG_OK)
		fail_msg("watch ended with %s: %s", vg_errname(wa.rc),
		         wa.err.msg);
	assert_int_equal(wa.n, 0);
	assert_true(wa.bookmarks >= 1);
	assert_true(strtoull(wa.bookmark_rv, NULL, 10) >=
	            strtoull(rv_of(noise), NULL, 10));
	json_decref(noise);
	assert_string_equal(vg_kube_watch_resource_version(wa.w),
	                    wa.bookmark_rv);
	watcher_free(&wa);
}

/* Current etcd revision, from `etcdctl endpoint status -w json`. */
static unsigned long long etcd_revision(void)
{
	char *out = NULL;
	json_t *st, *rev;
	unsigned long long r;
	int rc = etcdctl(&out, "endpoint", "status", "--write-out=json");

	if (rc != 0)
		fail_msg("etcdctl endpoint status failed (exit %d)", rc);
	/* cluster_id does not fit in an int64: read numbers as reals. */
	st = json_loads(out, JSON_DECODE_INT_AS_REAL, NULL);
	rev = json_object_get(
		json_object_get(
			json_object_get(json_array_get(st, 0), "Status"),
			"header"),
		"revision");
	if (!json_is_number(rev))
		fail_msg("no revision in etcdctl output: %.200s", out);
	r = (unsigned long long)json_number_value(rev);
	json_decref(st);
	free(out);
	return r;
}

static const struct vg_kube_resource *crd_resource(void)
{
	static struct vg_kube_resource r = {
		.version = "v1",
		.resource = "watchtests",
		.kind = "WatchTest",
		.namespaced = true,
	};

	r.group = crd_group;
	return &r;
}

static void create_crd(void)
{
	json_t *crd, *res = NULL;
	struct vg_err err;
	double until;
	int established = 0;

	snprintf(crd_group, sizeof(crd_group), "r%d%04x.e2e.vigil.dev",
	         (int)getpid(), (unsigned)rand() & 0xffff);
	snprintf(crd_name, sizeof(crd_name), "watchtests.%s", crd_group);
	crd = json_pack(
		"{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s}, "
		"s:[{s:s, s:b, s:b, s:{s:{s:s, s:b}}}]}}",
		"apiVersion", "apiextensions.k8s.io/v1", "kind",
		"CustomResourceDefinition", "metadata", "name", crd_name,
		"spec", "group", crd_group, "scope", "Namespaced", "names",
		"plural", "watchtests", "singular", "watchtest", "kind",
		"WatchTest", "listKind", "WatchTestList", "versions", "name",
		"v1", "served", 1, "storage", 1, "schema", "openAPIV3Schema",
		"type", "object", "x-kubernetes-preserve-unknown-fields", 1);
	assert_non_null(crd);
	vg_err_clear(&err);
	assert_ok(vg_kube_create(client, &vg_kube_crds, NULL, crd, NULL, NULL,
	                         &err),
	          err);
	crd_created = 1;
	json_decref(crd);

	for (until = now_s() + 30; now_s() < until && !established;) {
		json_t *conds, *c;
		size_t i;

		assert_ok(vg_kube_get(client, &vg_kube_crds, NULL, crd_name,
		                      NULL, &res, &err),
		          err);
		conds = json_object_get(json_object_get(res, "status"),
		                        "conditions");
		json_array_foreach(
			conds, i,
			c) if (strcmp(str_or(str_at(c, "type", NULL)),
		                      "Established") == 0 &&
		               strcmp(str_or(str_at(c, "status", NULL)),
		                      "True") == 0) established = 1;
		json_decref(res);
		if (!established)
			sleep_ms(100);
	}
	assert_true(established);
}

/* Watch `r` from `rv` until it ends; retried while the server's cache for
 * a new resource is still initialising (429). */
static void watch_from(const struct vg_kube_resource *r, const char *rv,
                       struct watcher *wa)
{
	struct vg_kube_watch_opts wo = {.resource_version = rv};

	for (int attempt = 0; attempt < 30; attempt++) {
		memset(wa, 0, sizeof(*wa));
		watcher_start(wa, r, &wo);
		watcher_join(wa, 20);
		if (!(wa->rc == VG_HTTP && wa->err.http_status == 429))
			return;
		watcher_free(wa);
		sleep_ms(500);
	}
}

static void test_watch_gone_relist(void **state)
{
	struct vg_kube_patch_opts merge = {.type = VG_KUBE_PATCH_MERGE};
	json_t *cm = NULL, *res = NULL, *patch, *list = NULL, *obj;
	struct watcher wa;
	struct vg_err err;
	char old_rv[32], last_rv[32], fresh_rv[32], revbuf[32];
	unsigned long long rev;
	char *out = NULL;
	int rc;
	const char *cache_outcome;

	(void)state;
	vg_err_clear(&err);

	/* 1. An object, its version, then more writes after it. */
	create_cm("gone-probe", "n", "0", &cm);
	snprintf(old_rv, sizeof(old_rv), "%s", rv_of(cm));
	json_decref(cm);
	for (int i = 1; i <= 3; i++) {
		char v[16];

		snprintf(v, sizeof(v), "%d", i);
		patch = json_pack("{s:{s:s}}", "data", "n", v);
		assert_ok(vg_kube_patch(client, &vg_kube_configmaps, ns,
		                        "gone-probe", patch, &merge, &res,
		                        &err),
		          err);
		snprintf(last_rv, sizeof(last_rv), "%s", rv_of(res));
		json_decref(res);
		json_decref(patch);
	}

	/* 2. Compact etcd at its current revision: old_rv is gone there. */
	rev = etcd_revision();
	assert_true(rev >= strtoull(last_rv, NULL, 10));
	snprintf(revbuf, sizeof(revbuf), "%llu", rev);
	rc = etcdctl(&out, "compact", revbuf, "--physical=true");
	free(out);
	assert_int_equal(rc, 0);
	print_message("compacted etcd at revision %s (watch from %s)\n", revbuf,
	              old_rv);

	/* 3. Watch ConfigMaps from the compacted version. kube-apiserver
	 * serves watches from its watch cache, whose window still holds the
	 * events after old_rv: either it replays them, or (without a watch
	 * cache) etcd answers 410. Both are correct; record which. */
	{
		struct vg_kube_watch_opts wo = {.resource_version = old_rv,
		                                .field_selector =
		                                        "metadata.name=gone-"
		                                        "probe"};

		memset(&wa, 0, sizeof(wa));
		wa.stop_rv = last_rv;
		watcher_start(&wa, &vg_kube_configmaps, &wo);
		watcher_join(&wa, 20);
		if (wa.rc == VG_GONE) {
			cache_outcome = "410 from the compacted revision";
			assert_int_equal(wa.err.http_status, 410);
		} else {
			if (wa.rc != VG_OK)
				fail_msg("watch from compacted rv: %s: %s",
				         vg_errname(wa.rc), wa.err.msg);
			/* Replayed: the three writes after old_rv. */
			assert_int_equal(wa.n, 3);
			for (int i = 0; i < 3; i++)
				assert_string_equal(wa.ev[i],
				                    "MODIFIED gone-probe");
			assert_string_equal(wa.rv[2], last_rv);
			cache_outcome = "replayed from the watch cache, no 410";
		}
		print_message("ConfigMap watch from compacted rv %s: %s\n",
		              old_rv, cache_outcome);
		watcher_free(&wa);
	}

	/* 4. A version older than the watch cache's window: a new custom
	 * resource gets a fresh cache that starts at its initial list,
	 * later than old_rv, so watching it from old_rv is "too old". */
	create_crd();
	watch_from(crd_resource(), old_rv, &wa);
	if (wa.rc != VG_GONE)
		fail_msg("watch from an rv older than the cache window: %s "
		         "(http %ld): %s",
		         vg_errname(wa.rc), wa.err.http_status, wa.err.msg);
	assert_int_equal(wa.err.code, VG_GONE);
	assert_int_equal(wa.err.http_status, 410);
	assert_true(strcmp(wa.err.reason, "Expired") == 0 ||
	            strcmp(wa.err.reason, "Gone") == 0);
	assert_non_null(strstr(wa.err.msg, "too old resource version"));
	print_message("custom resource watch from rv %s: 410 %s as %s: %s\n",
	              old_rv, wa.err.reason,
	              wa.error_events ? "an ERROR event" : "an HTTP 410",
	              wa.err.msg);
	watcher_free(&wa);

	/* 5. Relist, then watch from the fresh version: the next change
	 * arrives. */
	assert_ok(
		vg_kube_list_all(client, crd_resource(), ns, NULL, &list, &err),
		err);
	snprintf(fresh_rv, sizeof(fresh_rv), "%s", rv_of(list));
	json_decref(list);
	{
		struct vg_kube_watch_opts wo = {.resource_version = fresh_rv};

		memset(&wa, 0, sizeof(wa));
		wa.stop_after = "ADDED after-relist";
		watcher_start(&wa, crd_resource(), &wo);
	}
	obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "",
	                "kind", "WatchTest", "metadata", "name", "after-relist",
	                "spec", "note", "hello");
	{
		char av[128];

		snprintf(av, sizeof(av), "%s/v1", crd_group);
		json_object_set_new(obj, "apiVersion", json_string(av));
	}
	assert_ok(vg_kube_create(client, crd_resource(), ns, obj, NULL, NULL,
	                         &err),
	          err);
	json_decref(obj);
	watcher_join(&wa, 30);
	if (wa.rc != VG_OK)
		fail_msg("watch after relist: %s: %s", vg_errname(wa.rc),
		         wa.err.msg);
	assert_int_equal(wa.n, 1);
	assert_string_equal(wa.ev[0], "ADDED after-relist");
	watcher_free(&wa);

	/* And for ConfigMaps: relist, rewatch, next change seen. */
	assert_ok(vg_kube_list_all(client, &vg_kube_configmaps, ns, NULL, &list,
	                           &err),
	          err);
	snprintf(fresh_rv, sizeof(fresh_rv), "%s", rv_of(list));
	json_decref(list);
	{
		struct vg_kube_watch_opts wo = {.resource_version = fresh_rv};

		memset(&wa, 0, sizeof(wa));
		wa.stop_after = "MODIFIED gone-probe";
		watcher_start(&wa, &vg_kube_configmaps, &wo);
	}
	patch = json_pack("{s:{s:s}}", "data", "n", "after");
	assert_ok(vg_kube_patch(client, &vg_kube_configmaps, ns, "gone-probe",
	                        patch, &merge, NULL, &err),
	          err);
	json_decref(patch);
	watcher_join(&wa, 30);
	assert_int_equal(wa.rc, VG_OK);
	assert_int_equal(wa.n, 1);
	watcher_free(&wa);
}

/* --- client behaviour ------------------------------------------------------
 */

struct counts {
	pthread_mutex_t mu;
	int total;
	int get200;
	int other;
	uint64_t ns;
};

static void observe(void *ctx, const struct vg_kube_request_info *info)
{
	struct counts *c = ctx;

	pthread_mutex_lock(&c->mu);
	c->total++;
	if (strcmp(info->method, "GET") == 0 && info->code == 200)
		c->get200++;
	else
		c->other++;
	c->ns += info->duration_ns;
	pthread_mutex_unlock(&c->mu);
}

static void test_rate_limit(void **state)
{
	struct counts cnt = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct vg_kube_client_opts opts = {.qps = 5,
	                                   .burst = 1,
	                                   .observer = observe,
	                                   .observer_ctx = &cnt};
	struct vg_kube_client *c = NULL;
	struct vg_err err;
	double t0, elapsed;

	(void)state;
	vg_err_clear(&err);
	assert_ok(vg_kube_client_new(&config, &opts, &c, &err), err);
	t0 = now_s();
	for (int i = 0; i < 11; i++)
		assert_ok(vg_kube_get(c, &vg_kube_namespaces, NULL, ns, NULL,
		                      NULL, &err),
		          err);
	elapsed = now_s() - t0;
	print_message("11 GETs at qps 5 burst 1: %.3fs\n", elapsed);
	/* One immediately, then one every 200 ms. */
	assert_true(elapsed >= 2.0);
	assert_true(elapsed < 5.0);
	/* The observer saw each request with its method and code. */
	assert_int_equal(cnt.total, 11);
	assert_int_equal(cnt.get200, 11);
	assert_int_equal(cnt.other, 0);
	assert_true(cnt.ns > 0);
	vg_kube_client_free(c);
}

#define THREADS    6
#define PER_THREAD 8

struct worker {
	int id;
	int failures;
	char msg[512];
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct vg_err err;

	for (int i = 0; i < PER_THREAD; i++) {
		char name[32];
		json_t *cm, *got = NULL;

		snprintf(name, sizeof(name), "thr-%d-%d", w->id, i);
		cm = configmap(name, "by", name);
		vg_err_clear(&err);
		if (vg_kube_create(client, &vg_kube_configmaps, ns, cm, NULL,
		                   NULL, &err) != VG_OK ||
		    vg_kube_get(client, &vg_kube_configmaps, ns, name, NULL,
		                &got, &err) != VG_OK ||
		    strcmp(str_or(str_at(got, "data", "by")), name) != 0 ||
		    vg_kube_delete(client, &vg_kube_configmaps, ns, name, NULL,
		                   NULL, &err) != VG_OK) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s: %s", name,
			         err.msg);
		}
		json_decref(got);
		json_decref(cm);
	}
	return NULL;
}

static void test_threads_share_client(void **state)
{
	pthread_t th[THREADS];
	struct worker w[THREADS];

	(void)state;
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.id = i};
		assert_int_equal(
			pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < THREADS; i++)
		if (w[i].failures)
			fail_msg("thread %d: %d failures, last: %s", i,
			         w[i].failures, w[i].msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_get_list),
		cmocka_unit_test(test_list_paging_and_selectors),
		cmocka_unit_test(test_patches),
		cmocka_unit_test(test_server_side_apply),
		cmocka_unit_test(test_update_conflict),
		cmocka_unit_test(test_delete_preconditions),
		cmocka_unit_test(test_errors_keep_status),
		cmocka_unit_test(test_auth_errors),
		cmocka_unit_test(test_tls_server_name),
		cmocka_unit_test(test_deployment_status),
		cmocka_unit_test(test_watch_sequence),
		cmocka_unit_test(test_watch_cancel),
		cmocka_unit_test(test_watch_bookmark_and_timeout),
		cmocka_unit_test(test_watch_gone_relist),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_threads_share_client),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
