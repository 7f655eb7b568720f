/* e2e_informer.c - the informer against the real API server: initial list,
 * watch events in order, the cache following them, and a clean stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "informer.h"
#include "vigil/kube.h"

static struct vg_kube_client *client;
static char ns[64];

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char events[64][96];
static int nevents;

static void record(void *ctx, enum vg_watch_type t, json_t *obj, json_t *old)
{
	(void)ctx;
	const char *name = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "name"));

	if (t == VG_WATCH_MODIFIED)
		assert_non_null(old);
	pthread_mutex_lock(&log_mu);
	if (nevents < 64)
		snprintf(events[nevents++], sizeof(events[0]), "%s %s",
			 vg_watch_type_name(t), name ? name : "?");
	pthread_mutex_unlock(&log_mu);
}

/* Wait until `want` was recorded; 1 if seen within 15 s. */
static int wait_event(const char *want)
{
	for (int i = 0; i < 1500; i++) {
		pthread_mutex_lock(&log_mu);
		for (int j = 0; j < nevents; j++) {
			if (strcmp(events[j], want) == 0) {
				pthread_mutex_unlock(&log_mu);
				return 1;
			}
		}
		pthread_mutex_unlock(&log_mu);
		usleep(10000);
	}
	return 0;
}

static void make_cm(const char *name, const char *val)
{
	struct vg_err err = { 0 };
	json_t *cm = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1",
			       "kind", "ConfigMap", "metadata", "name", name,
			       "data", "v", val);

	assert_int_equal(vg_kube_create(client, &vg_kube_configmaps, ns, cm,
					NULL, NULL, &err),
			 VG_OK);
	json_decref(cm);
}

static int setup(void **state)
{
	(void)state;
	struct vg_kube_config cfg;
	struct vg_err err = { 0 };
	json_t *nsobj;

	vg_kube_config_init(&cfg);
	if (vg_kube_config_load_file(&cfg, NULL, NULL, &err) != VG_OK) {
		fprintf(stderr, "kubeconfig: %s (is KUBECONFIG set?)\n",
			err.msg);
		return -1;
	}
	if (vg_kube_client_new(&cfg, NULL, &client, &err) != VG_OK) {
		fprintf(stderr, "client: %s\n", err.msg);
		vg_kube_config_cleanup(&cfg);
		return -1;
	}
	vg_kube_config_cleanup(&cfg);
	snprintf(ns, sizeof(ns), "e2e-informer-%ld", (long)getpid());
	nsobj = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
			  "Namespace", "metadata", "name", ns);
	if (vg_kube_create(client, &vg_kube_namespaces, NULL, nsobj, NULL,
			   NULL, &err) != VG_OK) {
		fprintf(stderr, "create namespace: %s\n", err.msg);
		json_decref(nsobj);
		return -1;
	}
	json_decref(nsobj);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct vg_err err = { 0 };

	vg_kube_delete(client, &vg_kube_namespaces, NULL, ns, NULL, NULL,
		       &err);
	vg_kube_client_free(client);
	return 0;
}

static void test_list_then_watch(void **state)
{
	(void)state;
	struct informer_opts o = { .resource = &vg_kube_configmaps,
				   .ns = ns, .page_size = 2,
				   .on_event = record };
	struct informer *inf;
	struct informer_stats st;
	struct vg_err err = { 0 };
	char key[128];
	json_t *obj, *patch;

	make_cm("pre-1", "a");
	make_cm("pre-2", "a");
	make_cm("pre-3", "a");
	inf = informer_new(client, &o);
	assert_non_null(inf);
	assert_int_equal(informer_start(inf), 0);
	assert_int_equal(informer_wait_synced(inf, 15000), 1);
	/* paged list (2 per page) of 3 objects + the root CA ConfigMap */
	assert_true(wait_event("ADDED pre-1"));
	assert_true(wait_event("ADDED pre-3"));
	snprintf(key, sizeof(key), "%s/pre-2", ns);
	obj = informer_get(inf, key);
	assert_non_null(obj);
	assert_string_equal(json_string_value(json_object_get(obj, "kind")),
			    "ConfigMap");
	json_decref(obj);

	make_cm("live", "1");
	assert_true(wait_event("ADDED live"));
	patch = json_pack("{s:{s:s}}", "data", "v", "2");
	assert_int_equal(vg_kube_patch(client, &vg_kube_configmaps, ns, "live",
				       patch, NULL, NULL, &err),
			 VG_OK);
	json_decref(patch);
	assert_true(wait_event("MODIFIED live"));
	snprintf(key, sizeof(key), "%s/live", ns);
	obj = informer_get(inf, key);
	assert_non_null(obj);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(obj, "data"),
						  "v")),
		"2");
	json_decref(obj);

	assert_int_equal(vg_kube_delete(client, &vg_kube_configmaps, ns,
					"live", NULL, NULL, &err),
			 VG_OK);
	assert_true(wait_event("DELETED live"));
	obj = informer_get(inf, key);
	assert_null(obj);

	informer_stats(inf, &st);
	assert_int_equal(st.lists, 1);
	assert_true(st.events >= 3);
	informer_stop(inf);
	informer_free(inf);
}

/* A watch the server keeps ending (short timeout) is resumed from the last
 * resourceVersion without relisting and without losing an event. */
static void test_resume_after_server_timeout(void **state)
{
	(void)state;
	struct informer_opts o = { .resource = &vg_kube_configmaps,
				   .ns = ns, .watch_timeout_s = 1,
				   .on_event = record };
	struct informer *inf = informer_new(client, &o);
	struct informer_stats st;

	assert_int_equal(informer_start(inf), 0);
	assert_int_equal(informer_wait_synced(inf, 15000), 1);
	sleep(3); /* at least two server-side watch ends */
	make_cm("after-timeout", "x");
	assert_true(wait_event("ADDED after-timeout"));
	informer_stats(inf, &st);
	assert_int_equal(st.relists, 0);
	assert_true(st.watch_restarts >= 1);
	informer_free(inf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_then_watch),
		cmocka_unit_test(test_resume_after_server_timeout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
