/* test_analysis.c - the brain's analysis and rendering without a
 * database: classification across three runs, the risk formula's exact
 * values, exposure, host ranking, the JSON report's numbers, HTML
 * escaping of hostile strings and well-formed SVG. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analysis.h"
#include "brain.h"
#include "report.h"
#include "vigil/json.h"

#define DAY 86400.0
#define NOW 1800000000.0 /* 2027-01-15 */

/* ------------------------------------------------------------------ */
/* Fixtures                                                             */
/* ------------------------------------------------------------------ */

struct fx {
	const char *fp, *host;
	int port;
	enum severity sev;
	const char *title;
	double age; /* days before NOW */
};

static void add(struct analysis *a, enum run_role role, const struct fx *f)
{
	struct finding_row r = {.fingerprint = f->fp,
	                        .host = f->host,
	                        .port = f->port,
	                        .protocol = "tcp",
	                        .scanner = "tcp",
	                        .title = f->title,
	                        .severity = f->sev,
	                        .first_seen = NOW - f->age * DAY};
	struct vg_err err = {0};

	if (analysis_add(a, role, &r, &err) != VG_OK)
		fail_msg("add %s: %s", f->fp, err.msg);
}

/* Run 1 {A,B,C,D}, run 2 {A,B,E}, run 3 {A,C,E,F} (A twice): for run 3,
 * A and E persist, B is resolved, C regressed (gone in 2, back in 3),
 * F is new, and D (only in run 1) is in none of the lists. */
static struct analysis *three_runs(const struct vg_strmap *crit)
{
	static const struct fx run1[] = {
		{"A", "10.0.0.1", 22, SEV_HIGH, "ssh weak kex", 100},
		{"B", "10.0.0.1", 80, SEV_LOW, "http banner", 100},
		{"C", "8.8.8.8", 3389, SEV_CRITICAL, "rdp exposed", 60},
		{"D", "10.0.0.9", 443, SEV_INFO, "tls", 60},
	};
	static const struct fx run2[] = {
		{"A", "10.0.0.1", 22, SEV_HIGH, "ssh weak kex", 20},
		{"B", "10.0.0.1", 80, SEV_LOW, "http banner", 20},
		{"E", "8.8.8.8", 443, SEV_MEDIUM, "tls old", 20},
	};
	static const struct fx run3[] = {
		{"A", "10.0.0.1", 22, SEV_HIGH, "ssh weak kex", 1},
		{"C", "8.8.8.8", 3389, SEV_CRITICAL, "rdp exposed", 1},
		{"E", "8.8.8.8", 443, SEV_MEDIUM, "tls old", 1},
		{"F", "example.com", -1, SEV_INFO, "dns", 1},
		{"A", "10.0.0.1", 22, SEV_HIGH, "ssh weak kex", 1},
	};
	struct analysis_opts o = {.now = NOW, .criticality = crit};
	struct analysis *a = NULL;
	struct vg_err err = {0};

	assert_int_equal(analysis_new(&a, &err), VG_OK);
	/* the earlier run first: the order of roles does not matter */
	for (size_t i = 0; i < sizeof(run1) / sizeof(run1[0]); i++)
		add(a, RUN_EARLIER, &run1[i]);
	for (size_t i = 0; i < sizeof(run3) / sizeof(run3[0]); i++)
		add(a, RUN_CURRENT, &run3[i]);
	for (size_t i = 0; i < sizeof(run2) / sizeof(run2[0]); i++)
		add(a, RUN_PREVIOUS, &run2[i]);
	assert_int_equal(analysis_finish(a, &o, &err), VG_OK);
	return a;
}

/* The fingerprints of class `c`, sorted, space-separated. */
static void class_set(const struct analysis *a, enum finding_class c,
                      char *out, size_t n)
{
	const char *fps[16];
	size_t k = a->class_len[c];

	assert_true(k <= 16);
	for (size_t i = 0; i < k; i++)
		fps[i] = a->items[a->class_start[c] + i]->fingerprint;
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(fps[j - 1], fps[j]) > 0; j--) {
			const char *t = fps[j];

			fps[j] = fps[j - 1];
			fps[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < k; i++)
		snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? " " : "",
		         fps[i]);
}

static const struct item *find(const struct analysis *a, const char *fp)
{
	for (size_t i = 0; i < a->nitems; i++)
		if (strcmp(a->items[i]->fingerprint, fp) == 0)
			return a->items[i];
	fail_msg("no item %s", fp);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Classification                                                       */
/* ------------------------------------------------------------------ */

static void test_classification_three_runs(void **state)
{
	(void)state;
	struct analysis *a = three_runs(NULL);
	char set[64];

	class_set(a, CLASS_NEW, set, sizeof(set));
	assert_string_equal(set, "F");
	class_set(a, CLASS_PERSISTING, set, sizeof(set));
	assert_string_equal(set, "A E");
	class_set(a, CLASS_RESOLVED, set, sizeof(set));
	assert_string_equal(set, "B");
	class_set(a, CLASS_REGRESSED, set, sizeof(set));
	assert_string_equal(set, "C");
	assert_int_equal(a->nitems, 5); /* D is only history */
	/* the current run: A, C, E, F (A once) */
	assert_int_equal(a->total, 4);
	assert_int_equal(a->counts[SEV_CRITICAL], 1);
	assert_int_equal(a->counts[SEV_HIGH], 1);
	assert_int_equal(a->counts[SEV_MEDIUM], 1);
	assert_int_equal(a->counts[SEV_LOW], 0);
	assert_int_equal(a->counts[SEV_INFO], 1);
	/* ages from the earliest sighting over every run */
	assert_int_equal((int)find(a, "A")->age_days, 100);
	assert_int_equal((int)find(a, "C")->age_days, 60);
	assert_int_equal((int)find(a, "E")->age_days, 20);
	assert_int_equal((int)find(a, "F")->age_days, 1);
	/* a resolved finding keeps the previous run's attributes */
	assert_string_equal(find(a, "B")->title, "http banner");
	analysis_free(a);
}

/* A policy's first run: everything new, nothing resolved. */
static void test_first_run_all_new(void **state)
{
	(void)state;
	static const struct fx f[] = {
		{"x", "10.0.0.1", 22, SEV_LOW, "", 0},
		{"y", "10.0.0.2", 22, SEV_LOW, "", 0},
	};
	struct analysis_opts o = {.now = NOW};
	struct analysis *a = NULL;
	struct vg_err err = {0};

	assert_int_equal(analysis_new(&a, &err), VG_OK);
	add(a, RUN_CURRENT, &f[0]);
	add(a, RUN_CURRENT, &f[1]);
	assert_int_equal(analysis_finish(a, &o, &err), VG_OK);
	assert_int_equal(a->by_class[CLASS_NEW], 2);
	assert_int_equal(a->by_class[CLASS_PERSISTING], 0);
	assert_int_equal(a->by_class[CLASS_RESOLVED], 0);
	assert_int_equal(a->by_class[CLASS_REGRESSED], 0);
	analysis_free(a);
}

/* ------------------------------------------------------------------ */
/* Risk                                                                 */
/* ------------------------------------------------------------------ */

static void test_risk_formula_exact(void **state)
{
	(void)state;
	static const struct {
		struct risk_input in;
		double want;
	} cases[] = {
		/* 10 x 1.5 (internet) x 1.25 (ssh) x 1.25 (45 d) x 1.5 */
		{{SEV_CRITICAL, "8.8.8.8", 22, 45, CRIT_HIGH}, 35.16},
		/* 5 x 1 x 1 x 1 x 1 */
		{{SEV_MEDIUM, "10.0.0.5", 443, 0, CRIT_MEDIUM}, 5.00},
		/* 2 x 1.25 (rdp) x 1.5 (age capped at 90 d) x 2 */
		{{SEV_LOW, "192.168.1.1", 3389, 200, CRIT_CRITICAL}, 7.50},
		/* 0.5 x 1.5 x 1.05 (9 whole days) x 0.75 = 0.590625 */
		{{SEV_INFO, "example.com", -1, 9.9, CRIT_LOW}, 0.59},
		/* 8 x 1.25 (redis) x (1 + 0.5 x 30/90) x 1, ULA internal */
		{{SEV_HIGH, "fd00::1", 6379, 30, CRIT_MEDIUM}, 11.67},
		/* the maximum: 10 x 1.875 x 1.5 x 2 */
		{{SEV_CRITICAL, "1.1.1.1", 3389, 365, CRIT_CRITICAL}, 56.25},
		/* negative age (clock skew) counts as 0 */
		{{SEV_HIGH, "127.0.0.1", 8080, -3, CRIT_MEDIUM}, 8.00},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double got = risk_score(&cases[i].in);

		if (got != cases[i].want)
			fail_msg("case %zu: risk %.4f, want %.2f", i, got,
			         cases[i].want);
	}
	assert_true(host_risk(10, 25) == 11.5);
	assert_true(host_risk(7.5, 7.5) == 7.5);
}

static void test_exposure(void **state)
{
	(void)state;
	static const struct {
		const char *host;
		int internal;
	} cases[] = {
		{"10.1.2.3", 1},      {"172.16.0.1", 1},    {"172.31.255.1", 1},
		{"172.32.0.1", 0},    {"192.168.0.10", 1},  {"127.0.0.1", 1},
		{"100.64.1.1", 1},    {"169.254.1.1", 1},   {"8.8.8.8", 0},
		{"::1", 1},           {"fd12:3456::1", 1},  {"fe80::1", 1},
		{"[fe80::1]", 1},     {"2001:db8::1", 0},   {"::ffff:10.1.2.3", 1},
		{"::ffff:1.2.3.4", 0}, {"localhost", 1},    {"db", 1},
		{"db.svc", 1},        {"x.cluster.local", 1}, {"app.internal", 1},
		{"example.com", 0},   {"EXAMPLE.COM.", 0},  {"printer.LAN", 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (host_is_internal(cases[i].host) != cases[i].internal)
			fail_msg("%s: internal %d, want %d", cases[i].host,
			         host_is_internal(cases[i].host),
			         cases[i].internal);
	assert_true(port_is_admin(22));
	assert_true(port_is_admin(27017));
	assert_false(port_is_admin(443));
	assert_false(port_is_admin(-1));
}

/* Per-finding and per-host risk in an analysis, with criticality. */
static void test_host_ranking(void **state)
{
	(void)state;
	struct vg_strmap crit;
	struct vg_err err = {0};
	struct analysis *a;

	vg_strmap_init(&crit, NULL);
	assert_int_equal(brain_parse_criticality("10.0.0.1=critical,,x=low",
	                                         &crit, &err),
	                 VG_OK);
	assert_int_equal(brain_parse_criticality("10.0.0.1=urgent", &crit, &err),
	                 VG_INVAL);
	assert_non_null(strstr(err.msg, "\"urgent\" is not low"));
	a = three_runs(&crit);
	/* A: high, internal, ssh, 100 d (capped), critical asset:
	 * 8 x 1.25 x 1.5 x 2 = 30 */
	assert_true(find(a, "A")->risk == 30.0);
	/* C: critical, internet, rdp, 60 d: 10 x 1.875 x (1 + 1/3) = 25 */
	assert_true(find(a, "C")->risk == 25.0);
	/* E: medium, internet, 443, 20 d: 5 x 1.5 x 1.1111 = 8.33 */
	assert_true(find(a, "E")->risk == 8.33);
	/* F: info, internet name, 1 d: 0.5 x 1.5 x 1 = 0.75 */
	assert_true(find(a, "F")->risk == 0.75);
	assert_int_equal(a->nhosts, 3);
	/* 8.8.8.8: max 25 + 0.1 x 8.33 = 25.833 -> 25.83; 10.0.0.1: 30 */
	assert_string_equal(a->hosts[0].host, "10.0.0.1");
	assert_true(a->hosts[0].risk == 30.0);
	assert_int_equal(a->hosts[0].criticality, CRIT_CRITICAL);
	assert_int_equal(a->hosts[0].internal, 1);
	assert_string_equal(a->hosts[1].host, "8.8.8.8");
	assert_true(a->hosts[1].risk == 25.83);
	assert_int_equal(a->hosts[1].findings, 2);
	assert_int_equal(a->hosts[1].max_severity, SEV_CRITICAL);
	assert_string_equal(a->hosts[2].host, "example.com");
	/* the run's total: 30 + 25 + 8.33 + 0.75 */
	assert_true(a->risk_total == 64.08);
	/* resolved B is no part of any host */
	analysis_free(a);
	vg_strmap_cleanup(&crit);
}

/* ------------------------------------------------------------------ */
/* Rendering                                                            */
/* ------------------------------------------------------------------ */

static struct trend_point trend[3] = {
	{"11111111-1111-4111-8111-111111111111", "2027-01-01T00:00:00Z",
	 {1, 1, 0, 1, 1}, 4, -1, -1},
	{"22222222-2222-4222-8222-222222222222", "2027-01-08T00:00:00Z",
	 {0, 1, 1, 1, 0}, 3, 1, 2},
	{"33333333-3333-4333-8333-333333333333", "2027-01-15T00:00:00Z",
	 {1, 0, 1, 1, 1}, 4, 2, 1},
};

static struct report_doc doc(const struct analysis *a, const char *title)
{
	return (struct report_doc){
		.tenant_id = "00000000-0000-4000-8000-000000000001",
		.tenant_name = "acme",
		.run_id = trend[2].run_id,
		.run_state = "succeeded",
		.created_at = "2027-01-15T00:00:00Z",
		.finished_at = "2027-01-15T00:10:00Z",
		.policy_namespace = "tenant-acme",
		.policy_name = title,
		.policy_uid = "",
		.previous_run_id = trend[1].run_id,
		.generated_at = "2027-01-15T00:11:00Z",
		.a = a,
		.trend = trend,
		.ntrend = 3,
	};
}

static void test_json_report_numbers(void **state)
{
	(void)state;
	struct analysis *a = three_runs(NULL);
	struct report_doc d = doc(a, "weekly");
	struct vg_buf b;
	struct vg_err err = {0};
	json_t *j = NULL, *cls;

	vg_buf_init(&b, 0);
	assert_int_equal(report_render_json(&d, &b), VG_OK);
	if (vg_json_loadb(b.data, b.len, 0, &j, &err) != VG_OK)
		fail_msg("JSON: %s\n%s", err.msg, vg_buf_str(&b));
	assert_int_equal(vg_json_get_int(j, "version", -1), 1);
	assert_int_equal(vg_json_get_int(j, "counts.total", -1), 4);
	assert_int_equal(vg_json_get_int(j, "counts.by_severity.critical", -1),
	                 1);
	assert_int_equal(vg_json_get_int(j, "counts.by_severity.low", -1), 0);
	assert_int_equal(vg_json_get_int(j, "counts.by_class.new", -1), 1);
	assert_int_equal(vg_json_get_int(j, "counts.by_class.persisting", -1),
	                 2);
	assert_int_equal(vg_json_get_int(j, "counts.by_class.resolved", -1), 1);
	assert_int_equal(vg_json_get_int(j, "counts.by_class.regressed", -1),
	                 1);
	/* risk (C: 25, no criticality labels: A is 15) */
	assert_true(vg_json_get_num(j, "risk.total", -1) == 49.08);
	assert_true(vg_json_get_num(j, "risk.max", -1) == 25.0);
	cls = vg_json_get_object(j, "classification");
	assert_int_equal(json_array_size(json_object_get(cls, "persisting")), 2);
	/* riskiest first: A (15) before E (8.33) */
	assert_string_equal(vg_json_get_str(j,
	                                    "classification.persisting[0]."
	                                    "fingerprint",
	                                    ""),
	                    "A");
	assert_int_equal(vg_json_get_int(j,
	                                 "classification.persisting[0].port",
	                                 -1),
	                 22);
	assert_true(json_is_null(vg_json_get(j, "classification.new[0].port")));
	assert_string_equal(vg_json_get_str(j,
	                                    "classification.regressed[0]."
	                                    "severity",
	                                    ""),
	                    "critical");
	assert_int_equal(vg_json_get_int(j,
	                                 "classification.regressed[0]."
	                                 "age_days",
	                                 -1),
	                 60);
	assert_string_equal(vg_json_get_str(j,
	                                    "classification.resolved[0]."
	                                    "fingerprint",
	                                    ""),
	                    "B");
	assert_false(vg_json_get_bool(j, "classification.truncated", 1));
	assert_string_equal(vg_json_get_str(j, "top_hosts[0].host", ""),
	                    "8.8.8.8");
	assert_true(vg_json_get_num(j, "top_hosts[0].risk", -1) == 25.83);
	assert_true(vg_json_get_bool(j, "top_hosts[0].internet_facing", 0));
	assert_int_equal(json_array_size(vg_json_get_array(j, "trend")), 3);
	assert_true(json_is_null(vg_json_get(j, "trend[0].new")));
	assert_int_equal(vg_json_get_int(j, "trend[1].resolved", -1), 2);
	assert_int_equal(vg_json_get_int(j, "trend[2].by_severity.critical",
	                                 -1),
	                 1);
	assert_string_equal(vg_json_get_str(j, "run.previous_run_id", ""),
	                    trend[1].run_id);
	json_decref(j);

	/* list_max truncates the lists, never the counts */
	d.list_max = 1;
	vg_buf_reset(&b);
	assert_int_equal(report_render_json(&d, &b), VG_OK);
	assert_int_equal(vg_json_loadb(b.data, b.len, 0, &j, &err), VG_OK);
	assert_int_equal(json_array_size(vg_json_get_array(
				 j, "classification.persisting")),
	                 1);
	assert_true(vg_json_get_bool(j, "classification.truncated", 0));
	assert_int_equal(vg_json_get_int(j, "counts.by_class.persisting", -1),
	                 2);
	json_decref(j);
	vg_buf_cleanup(&b);
	analysis_free(a);
}

/* Elements must nest: every open tag closed in order. HTML's void
 * elements (only <meta> is used) need no end tag. Returns the number of
 * elements, or fails. `s` must hold no comments or CDATA. */
static int check_balanced(const char *s, const char *const *voids, size_t nv)
{
	char stack[64][32];
	int depth = 0, elements = 0;

	for (const char *p = strchr(s, '<'); p; p = strchr(p + 1, '<')) {
		const char *end = strchr(p, '>');
		char name[32];
		size_t n = 0;
		int closing = p[1] == '/', self = 0, v = 0;

		assert_non_null(end);
		if (p[1] == '!') /* <!DOCTYPE html> */
			continue;
		for (const char *q = p + 1 + closing;
		     q < end && (isalnum((unsigned char)*q) || *q == '-') &&
		     n < sizeof(name) - 1;
		     q++)
			name[n++] = (char)tolower((unsigned char)*q);
		name[n] = '\0';
		if (n == 0)
			fail_msg("bad tag at: %.40s", p);
		self = end[-1] == '/';
		for (size_t i = 0; i < nv; i++)
			v |= strcmp(name, voids[i]) == 0;
		if (closing) {
			if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
				fail_msg("</%s> closes <%s>", name,
				         depth ? stack[depth - 1] : "(none)");
			depth--;
		} else {
			elements++;
			if (!self && !v) {
				assert_true(depth < 64);
				snprintf(stack[depth++], sizeof(stack[0]), "%s",
				         name);
			}
		}
	}
	if (depth != 0)
		fail_msg("<%s> never closed", stack[depth - 1]);
	return elements;
}

static void test_html_escapes_hostile_strings(void **state)
{
	(void)state;
	static const struct fx evil[] = {
		{"fp-1", "\"><img src=x onerror=alert(1)>", 80,
		 SEV_CRITICAL, "<script>alert('x')</script> & more", 0},
		/* no title: the fingerprint is shown */
		{"<b>fp</b>", "10.0.0.1", 80, SEV_LOW, "", 0},
	};
	struct analysis_opts o = {.now = NOW};
	struct analysis *a = NULL;
	struct vg_err err = {0};
	struct report_doc d;
	struct vg_buf b;

	assert_int_equal(analysis_new(&a, &err), VG_OK);
	add(a, RUN_CURRENT, &evil[0]);
	add(a, RUN_CURRENT, &evil[1]);
	assert_int_equal(analysis_finish(a, &o, &err), VG_OK);
	d = doc(a, "</title><script>alert(2)</script>");
	d.tenant_name = "<svg onload=alert(3)>";
	vg_buf_init(&b, 0);
	assert_int_equal(report_render_html(&d, &b), VG_OK);
	assert_null(strcasestr(vg_buf_str(&b), "<script"));
	assert_null(strcasestr(vg_buf_str(&b), "<img"));
	assert_null(strcasestr(vg_buf_str(&b), "<svg onload"));
	assert_null(strcasestr(vg_buf_str(&b), "<b>fp"));
	assert_non_null(strstr(vg_buf_str(&b), "&lt;b&gt;fp&lt;/b&gt;"));
	assert_non_null(strstr(vg_buf_str(&b),
	                       "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
	                       " &amp; more"));
	assert_non_null(strstr(vg_buf_str(&b),
	                       "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
	assert_non_null(strstr(vg_buf_str(&b),
	                       "<title>vigil scan report: tenant-acme/&lt;/"
	                       "title&gt;&lt;script&gt;"));
	/* the page still nests properly around the hostile strings */
	check_balanced(vg_buf_str(&b), (const char *const[]){"meta"}, 1);
	/* and forbids scripts should anything get through */
	assert_non_null(strstr(vg_buf_str(&b), "default-src 'none'"));
	vg_buf_cleanup(&b);

	vg_buf_init(&b, 0);
	assert_int_equal(html_escape(&b, "a\x01<\x7f\tz"), VG_OK);
	assert_string_equal(vg_buf_str(&b), "a&lt;\tz");
	vg_buf_cleanup(&b);
	analysis_free(a);
}

static void test_svg_charts_well_formed(void **state)
{
	(void)state;
	struct analysis *a = three_runs(NULL);
	struct report_doc d = doc(a, "weekly");
	struct vg_buf b;
	const char *p;
	int svgs = 0;

	vg_buf_init(&b, 0);
	assert_int_equal(report_render_html(&d, &b), VG_OK);
	check_balanced(vg_buf_str(&b), (const char *const[]){"meta"}, 1);
	for (p = strstr(vg_buf_str(&b), "<svg"); p;
	     p = strstr(p + 1, "<svg")) {
		const char *end = strstr(p, "</svg>");
		char *one;
		int n;

		assert_non_null(end);
		one = strndup(p, (size_t)(end - p) + strlen("</svg>"));
		assert_non_null(strstr(one, "xmlns=\"http://www.w3.org/2000/"
		                            "svg\""));
		/* XML rules inside: no void elements */
		n = check_balanced(one, NULL, 0);
		assert_true(n > 5);
		svgs++;
		free(one);
	}
	assert_int_equal(svgs, 2);
	/* the bar chart: one bar per severity, critical's count labelled */
	vg_buf_reset(&b);
	assert_int_equal(svg_severity_bars(&b, (long[]){0, 3, 0, 7, 2}), VG_OK);
	{
		int bars = 0;

		for (p = strstr(vg_buf_str(&b), "<rect"); p;
		     p = strstr(p + 1, "<rect"))
			bars++;
		assert_int_equal(bars, SEV_N);
	}
	assert_non_null(strstr(vg_buf_str(&b), "<title>high: 7</title>"));
	/* the tallest bar spans the plot (axis max 10: 7 -> 134 of 192) */
	assert_non_null(strstr(vg_buf_str(&b), "height=\"134\""));
	/* the trend: three series with a point per run */
	vg_buf_reset(&b);
	assert_int_equal(svg_trend_lines(&b, trend, 3), VG_OK);
	{
		int lines = 0, dots = 0;

		for (p = strstr(vg_buf_str(&b), "<polyline"); p;
		     p = strstr(p + 1, "<polyline"))
			lines++;
		for (p = strstr(vg_buf_str(&b), "<circle"); p;
		     p = strstr(p + 1, "<circle"))
			dots++;
		assert_int_equal(lines, 3);
		assert_int_equal(dots, 9);
	}
	check_balanced(vg_buf_str(&b), NULL, 0);
	/* no runs: still one valid, empty chart */
	vg_buf_reset(&b);
	assert_int_equal(svg_trend_lines(&b, NULL, 0), VG_OK);
	check_balanced(vg_buf_str(&b), NULL, 0);
	vg_buf_cleanup(&b);
	analysis_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classification_three_runs),
		cmocka_unit_test(test_first_run_all_new),
		cmocka_unit_test(test_risk_formula_exact),
		cmocka_unit_test(test_exposure),
		cmocka_unit_test(test_host_ranking),
		cmocka_unit_test(test_json_report_numbers),
		cmocka_unit_test(test_html_escapes_hostile_strings),
		cmocka_unit_test(test_svg_charts_well_formed),
	};

	return cmocka_run_group_tests_name("brain analysis", tests, NULL, NULL);
}
