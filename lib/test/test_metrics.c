/* test_metrics.c - exposition text, concurrency, escaping, limits, and the
 * rendered output checked by promtool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vigil/metrics.h"

#define PROMTOOL "/usr/bin/promtool"

static int setup(void **state)
{
	*state = vg_metrics_new();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	vg_metrics_free(*state);
	return 0;
}

static void render(struct vg_metrics *reg, struct vg_buf *b)
{
	vg_buf_reset(b);
	assert_int_equal(vg_metrics_render(reg, b), VG_OK);
}

static void test_counter_gauge_text(void **state)
{
	struct vg_metrics *reg = *state;
	struct vg_err err = { 0 };
	struct vg_metric *c, *g, *t;
	struct vg_series *get;
	struct vg_buf b;

	c = vg_metrics_counter(reg, "test_requests_total", "Requests handled.",
			       VG_LABELS("code", "method"), &err);
	assert_non_null(c);
	g = vg_metrics_gauge(reg, "test_queue_depth", "Items queued.",
			     VG_LABELS("name"), &err);
	assert_non_null(g);
	t = vg_metrics_gauge(reg, "test_temperature_celsius", "Temperature.",
			     NULL, &err);
	assert_non_null(t);

	get = vg_metric_labels(c, "200", "GET");
	vg_counter_inc(get);
	vg_counter_inc(get);
	vg_counter_add(get, 1);
	assert_ptr_equal(vg_metric_labels(c, "200", "GET"), get);
	vg_counter_add(vg_metric_labels(c, "500", "POST"), 2.5);
	vg_counter_inc(vg_metric_labels(c, "500", "POST"));
	vg_counter_add(get, -5); /* ignored: counters only go up */
	vg_counter_add(get, NAN);
	vg_gauge_set(vg_metric_labels(g, "platform"), 5);
	vg_gauge_add(vg_metric_labels(g, "platform"), -2);
	vg_gauge_inc(vg_metric_labels(g, "tenant"));
	vg_gauge_dec(vg_metric_labels(g, "tenant"));
	vg_gauge_dec(vg_metric_labels(g, "tenant"));
	vg_gauge_set(vg_metric_series(t, NULL), -1.5);
	/* the wrong kind of update is ignored */
	vg_gauge_set(get, 100);
	vg_histogram_observe(get, 1);

	assert_true(vg_series_value(get) == 3);
	vg_buf_init(&b, 0);
	render(reg, &b);
	assert_string_equal(
		vg_buf_str(&b),
		"# HELP test_queue_depth Items queued.\n"
		"# TYPE test_queue_depth gauge\n"
		"test_queue_depth{name=\"platform\"} 3\n"
		"test_queue_depth{name=\"tenant\"} -1\n"
		"# HELP test_requests_total Requests handled.\n"
		"# TYPE test_requests_total counter\n"
		"test_requests_total{code=\"200\",method=\"GET\"} 3\n"
		"test_requests_total{code=\"500\",method=\"POST\"} 3.5\n"
		"# HELP test_temperature_celsius Temperature.\n"
		"# TYPE test_temperature_celsius gauge\n"
		"test_temperature_celsius -1.5\n");
	vg_buf_cleanup(&b);
}

static void test_histogram_text(void **state)
{
	static const double bounds[] = { 0.1, 0.5, 1 };
	struct vg_metrics *reg = *state;
	struct vg_err err = { 0 };
	struct vg_metric *h, *d;
	struct vg_series *s;
	struct vg_buf b;

	h = vg_metrics_histogram(reg, "test_duration_seconds", "Durations.",
				 VG_LABELS("kind"), bounds, 3, &err);
	assert_non_null(h);
	s = vg_metric_labels(h, "Tenant");
	vg_histogram_observe(s, 0.25);
	vg_histogram_observe(s, 0.5); /* le is inclusive */
	vg_histogram_observe(s, 0.5);
	vg_histogram_observe(s, 2);
	assert_int_equal(vg_series_count(s), 4);
	d = vg_metrics_histogram(reg, "test_default_seconds", "Defaults.",
				 NULL, NULL, 0, &err);
	assert_non_null(d);
	vg_histogram_observe(vg_metric_series(d, NULL), 0.003);
	vg_histogram_observe(vg_metric_series(d, NULL), 11);

	vg_buf_init(&b, 0);
	render(reg, &b);
	assert_string_equal(
		vg_buf_str(&b),
		"# HELP test_default_seconds Defaults.\n"
		"# TYPE test_default_seconds histogram\n"
		"test_default_seconds_bucket{le=\"0.005\"} 1\n"
		"test_default_seconds_bucket{le=\"0.01\"} 1\n"
		"test_default_seconds_bucket{le=\"0.025\"} 1\n"
		"test_default_seconds_bucket{le=\"0.05\"} 1\n"
		"test_default_seconds_bucket{le=\"0.1\"} 1\n"
		"test_default_seconds_bucket{le=\"0.25\"} 1\n"
		"test_default_seconds_bucket{le=\"0.5\"} 1\n"
		"test_default_seconds_bucket{le=\"1\"} 1\n"
		"test_default_seconds_bucket{le=\"2.5\"} 1\n"
		"test_default_seconds_bucket{le=\"5\"} 1\n"
		"test_default_seconds_bucket{le=\"10\"} 1\n"
		"test_default_seconds_bucket{le=\"+Inf\"} 2\n"
		"test_default_seconds_sum 11.003\n"
		"test_default_seconds_count 2\n"
		"# HELP test_duration_seconds Durations.\n"
		"# TYPE test_duration_seconds histogram\n"
		"test_duration_seconds_bucket{kind=\"Tenant\",le=\"0.1\"} 0\n"
		"test_duration_seconds_bucket{kind=\"Tenant\",le=\"0.5\"} 3\n"
		"test_duration_seconds_bucket{kind=\"Tenant\",le=\"1\"} 3\n"
		"test_duration_seconds_bucket{kind=\"Tenant\",le=\"+Inf\"} 4\n"
		"test_duration_seconds_sum{kind=\"Tenant\"} 3.25\n"
		"test_duration_seconds_count{kind=\"Tenant\"} 4\n");
	vg_buf_cleanup(&b);
}

static void test_escaping(void **state)
{
	struct vg_metrics *reg = *state;
	struct vg_metric *c;
	struct vg_buf b;

	c = vg_metrics_counter(reg, "test_escapes_total",
			       "Back\\slash and\nnewline \"kept\".",
			       VG_LABELS("v"), NULL);
	assert_non_null(c);
	vg_counter_inc(vg_metric_labels(c, "a\\b\"c\nd"));
	vg_counter_inc(vg_metric_labels(c, ""));
	vg_buf_init(&b, 0);
	render(reg, &b);
	assert_string_equal(
		vg_buf_str(&b),
		"# HELP test_escapes_total Back\\\\slash and\\nnewline "
		"\"kept\".\n"
		"# TYPE test_escapes_total counter\n"
		"test_escapes_total{v=\"\"} 1\n"
		"test_escapes_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
	vg_buf_cleanup(&b);
}

static void test_value_formatting(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0, "0" },	       { 0.1, "0.1" },
		{ 1e21, "1e+21" },     { 123456789, "123456789" },
		{ 1.0 / 3, "0.3333333333333333" },
		{ -0.000001, "-1e-06" }, { INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" }, { NAN, "NaN" },
	};
	struct vg_metrics *reg = *state;
	struct vg_metric *g;
	struct vg_buf b;

	g = vg_metrics_gauge(reg, "test_value", "Value.", NULL, NULL);
	assert_non_null(g);
	vg_buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128];
		const char *got;

		vg_gauge_set(vg_metric_series(g, NULL), cases[i].v);
		render(reg, &b);
		got = strstr(vg_buf_str(&b), "\ntest_value ");
		assert_non_null(got);
		snprintf(want, sizeof(want), "\ntest_value %s\n",
			 cases[i].text);
		assert_string_equal(got, want);
	}
	vg_buf_cleanup(&b);
}

struct worker_arg {
	struct vg_metric *counter, *labelled, *gauge, *hist;
	int id;
};

#define ROUNDS 100000

static void *worker(void *p)
{
	struct worker_arg *a = p;
	struct vg_series *c = vg_metric_series(a->counter, NULL);
	struct vg_series *g = vg_metric_series(a->gauge, NULL);
	struct vg_series *h = vg_metric_series(a->hist, NULL);
	char name[16];

	for (int i = 0; i < ROUNDS; i++) {
		vg_counter_inc(c);
		vg_counter_add(c, 0.5);
		vg_gauge_add(g, 1);
		vg_histogram_observe(h, (i % 4) * 0.25);
		/* series created concurrently from every thread */
		snprintf(name, sizeof(name), "s%d", i % 50);
		vg_counter_inc(vg_metric_labels(a->labelled, name));
	}
	return NULL;
}

static void test_concurrent_updates(void **state)
{
	struct vg_metrics *reg = *state;
	struct worker_arg arg;
	pthread_t th[4];
	unsigned long long total = 0;

	arg.counter = vg_metrics_counter(reg, "test_ops_total", "Ops.", NULL,
					 NULL);
	arg.labelled = vg_metrics_counter(reg, "test_named_total", "Named.",
					  VG_LABELS("name"), NULL);
	arg.gauge = vg_metrics_gauge(reg, "test_level", "Level.", NULL, NULL);
	arg.hist = vg_metrics_histogram(reg, "test_obs", "Obs.", NULL, NULL, 0,
					NULL);
	assert_non_null(arg.counter);
	assert_non_null(arg.labelled);
	assert_non_null(arg.gauge);
	assert_non_null(arg.hist);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, &arg), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);

	assert_true(vg_series_value(vg_metric_series(arg.counter, NULL)) ==
		    4 * ROUNDS * 1.5);
	assert_true(vg_series_value(vg_metric_series(arg.gauge, NULL)) ==
		    4 * ROUNDS);
	assert_int_equal(vg_series_count(vg_metric_series(arg.hist, NULL)),
			 4 * ROUNDS);
	/* (0 + .25 + .5 + .75) per four rounds */
	assert_true(vg_series_value(vg_metric_series(arg.hist, NULL)) ==
		    4 * ROUNDS / 4 * 1.5);
	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		total += (unsigned long long)vg_series_value(
			vg_metric_labels(arg.labelled, name));
	}
	assert_int_equal(total, 4 * ROUNDS);
}

static void test_registration(void **state)
{
	static const double bad_order[] = { 1, 0.5 };
	static const double with_inf[] = { 1, INFINITY };
	struct vg_metrics *reg = *state;
	struct vg_err err = { 0 };
	struct vg_metric *a, *b;

	a = vg_metrics_counter(reg, "test_dup_total", "Dup.", VG_LABELS("x"),
			       &err);
	assert_non_null(a);
	b = vg_metrics_counter(reg, "test_dup_total", "Dup.", VG_LABELS("x"),
			       &err);
	assert_ptr_equal(a, b);
	assert_null(vg_metrics_gauge(reg, "test_dup_total", "Dup.",
				     VG_LABELS("x"), &err));
	assert_int_equal(err.code, VG_EXISTS);
	assert_null(vg_metrics_counter(reg, "test_dup_total", "Dup.",
				       VG_LABELS("y"), &err));
	assert_int_equal(err.code, VG_EXISTS);

	static const char *const bad_names[] = { "", "1abc", "a-b", "a b",
						 "é" };
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]);
	     i++) {
		vg_err_clear(&err);
		assert_null(vg_metrics_gauge(reg, bad_names[i], "h", NULL,
					     &err));
		assert_int_equal(err.code, VG_INVAL);
	}
	assert_non_null(vg_metrics_gauge(reg, "ns:sub_metric", "h", NULL,
					 &err));
	assert_null(vg_metrics_gauge(reg, "test_l", "h", VG_LABELS("a:b"),
				     &err));
	assert_int_equal(err.code, VG_INVAL);
	assert_null(vg_metrics_gauge(reg, "test_l", "h", VG_LABELS("__x"),
				     &err));
	assert_null(vg_metrics_gauge(reg, "test_l", "h", VG_LABELS("a", "a"),
				     &err));
	assert_non_null(strstr(err.msg, "repeated"));
	assert_null(vg_metrics_histogram(reg, "test_h", "h", VG_LABELS("le"),
					 NULL, 0, &err));
	assert_int_equal(err.code, VG_INVAL);
	assert_null(vg_metrics_histogram(reg, "test_h", "h", NULL, bad_order,
					 2, &err));
	assert_non_null(strstr(err.msg, "increase"));
	assert_null(vg_metrics_histogram(reg, "test_h", "h", NULL, with_inf, 2,
					 &err));
	assert_non_null(strstr(err.msg, "finite"));
	assert_null(vg_metrics_gauge(reg, "test_l", NULL, NULL, &err));
	assert_int_equal(err.code, VG_INVAL);

	/* NULL families and series are inert */
	vg_counter_inc(vg_metric_labels(NULL, "x"));
	vg_gauge_set(NULL, 1);
	vg_histogram_observe(NULL, 1);
	assert_true(vg_series_value(NULL) == 0);
}

static void test_series_limits(void **state)
{
	struct vg_metrics *reg = *state;
	struct vg_metric *c;
	struct vg_series *s, *discard;
	struct vg_buf b;
	char name[32];

	c = vg_metrics_counter(reg, "test_many_total", "Many.",
			       VG_LABELS("id", "kind"), NULL);
	assert_non_null(c);
	/* missing values land in a series that is never rendered */
	discard = vg_metric_series(c, NULL);
	assert_non_null(discard);
	vg_counter_inc(discard);
	assert_ptr_equal(vg_metric_series(c, (const char *const[]){ "a", NULL }),
			 discard);
	for (int i = 0; i < VG_METRICS_MAX_SERIES; i++) {
		snprintf(name, sizeof(name), "%d", i);
		s = vg_metric_labels(c, name, "k");
		assert_true(s != discard);
		vg_counter_inc(s);
	}
	s = vg_metric_labels(c, "one-too-many", "k");
	assert_ptr_equal(s, discard);
	/* long values go through the heap path */
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_ptr_equal(vg_metric_labels(c, name, "k"), discard);
	assert_ptr_not_equal(vg_metric_labels(c, "0", "k"), discard);

	vg_buf_init(&b, 0);
	render(reg, &b);
	assert_null(strstr(vg_buf_str(&b), "one-too-many"));
	assert_non_null(strstr(vg_buf_str(&b),
			       "test_many_total{id=\"9999\",kind=\"k\"} 1\n"));
	vg_buf_cleanup(&b);

	/* a render that does not fit leaves the buffer as it was */
	vg_buf_init(&b, 100);
	assert_int_equal(vg_buf_append_str(&b, "before"), VG_OK);
	assert_int_equal(vg_metrics_render(reg, &b), VG_TOOLARGE);
	assert_string_equal(vg_buf_str(&b), "before");
	vg_buf_cleanup(&b);
}

static void test_process_collector(void **state)
{
	struct vg_metrics *reg = *state;
	struct vg_err err = { 0 };
	struct vg_buf b;
	const char *p;
	double v;

	assert_int_equal(vg_metrics_register_process(reg, &err), VG_OK);
	assert_int_equal(vg_metrics_register_process(reg, &err), VG_EXISTS);
	vg_buf_init(&b, 0);
	render(reg, &b);

	p = strstr(vg_buf_str(&b), "\nprocess_resident_memory_bytes ");
	assert_non_null(p);
	v = strtod(strchr(p + 1, ' '), NULL);
	assert_true(v > 1024 * 1024);
	p = strstr(vg_buf_str(&b), "\nprocess_start_time_seconds ");
	assert_non_null(p);
	v = strtod(strchr(p + 1, ' '), NULL);
	if (fabs(v - (double)time(NULL)) > 600)
		fail_msg("start time %f is not near now (%ld)", v,
			 (long)time(NULL));
	p = strstr(vg_buf_str(&b), "\nprocess_open_fds ");
	assert_non_null(p);
	v = strtod(strchr(p + 1, ' '), NULL);
	assert_true(v >= 3);
	assert_non_null(strstr(vg_buf_str(&b), "\nprocess_max_fds "));
	assert_non_null(strstr(vg_buf_str(&b), "\nprocess_virtual_memory_bytes "));
	assert_non_null(strstr(vg_buf_str(&b),
			       "# TYPE process_cpu_seconds_total counter\n"));
	vg_buf_cleanup(&b);
}

static void test_promtool_accepts_output(void **state)
{
	static const double bounds[] = { 0.001, 0.01, 0.1, 1, 10 };
	struct vg_metrics *reg = *state;
	char path[] = "/tmp/vigil-test-metrics-XXXXXX";
	char outpath[] = "/tmp/vigil-test-promtool-XXXXXX";
	char cmd[256], msg[2048] = "";
	struct vg_metric *c, *g, *h;
	struct vg_buf b;
	int fd, ofd, status;
	ssize_t n;

	if (access(PROMTOOL, X_OK) != 0)
		fail_msg(PROMTOOL " is missing: install the Debian package "
			 "prometheus (make deps) to check the exposition "
			 "format");
	c = vg_metrics_counter(reg, "vigil_reconcile_total",
			       "Reconciles per \"kind\" and result.\\",
			       VG_LABELS("kind", "result"), NULL);
	g = vg_metrics_gauge(reg, "vigil_workqueue_depth",
			     "Current depth of the work queue.",
			     VG_LABELS("name"), NULL);
	h = vg_metrics_histogram(reg, "vigil_reconcile_time_seconds",
				 "Time per reconcile.\nSecond line.",
				 VG_LABELS("kind"), bounds, 5, NULL);
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(h);
	vg_counter_inc(vg_metric_labels(c, "Platform", "success"));
	vg_counter_add(vg_metric_labels(c, "Tenant\n\"x\\y\"", "error"), 3);
	vg_gauge_set(vg_metric_labels(g, "platform"), 2);
	vg_gauge_set(vg_metric_labels(g, "tenant"), -INFINITY);
	vg_histogram_observe(vg_metric_labels(h, "Platform"), 0.02);
	vg_histogram_observe(vg_metric_labels(h, "ScanPolicy"), 20);
	assert_int_equal(vg_metrics_register_process(reg, NULL), VG_OK);

	vg_buf_init(&b, 0);
	render(reg, &b);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
	close(fd);
	ofd = mkstemp(outpath);
	assert_true(ofd >= 0);
	assert_true(snprintf(cmd, sizeof(cmd),
			     PROMTOOL " check metrics < %s > %s 2>&1", path,
			     outpath) < (int)sizeof(cmd));
	status = system(cmd);
	n = read(ofd, msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(ofd);
	unlink(outpath);
	unlink(path);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("promtool check metrics failed (status %d): %s\n"
			 "input:\n%s",
			 status, msg, vg_buf_str(&b));
	vg_buf_cleanup(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counter_gauge_text, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_histogram_text, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_formatting, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_updates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registration, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_series_limits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_process_collector, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_promtool_accepts_output,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
