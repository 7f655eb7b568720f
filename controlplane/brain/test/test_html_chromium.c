/* test_html_chromium.c - the HTML report in a real browser: chromium
 * headless parses it (its DOM holds both SVG charts and no script even
 * with hostile strings in the data) and renders it to a PNG screenshot
 * of the requested size. make deps installs chromium. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis.h"
#include "report.h"

#define NOW 1800000000.0

static const char *chromium;
static char dir[] = "/tmp/vigil-brain-chromium-XXXXXX";

static int setup(void **state)
{
	static const char *const names[] = {"/usr/bin/chromium",
	                                    "/usr/bin/chromium-browser"};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (access(names[i], X_OK) == 0)
			chromium = names[i];
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Run chromium headless with `args` (after the common flags); its stdout
 * into `out` (NULL: discarded). Exit status. */
static int run_chromium(const char *args, const char *out)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
	         "HOME=%s timeout 120 %s --headless --no-sandbox --disable-gpu "
	         "--no-first-run --disable-dev-shm-usage "
	         "--user-data-dir=%s/profile %s >%s 2>%s/chromium.log",
	         dir, chromium, dir, args, out ? out : "/dev/null", dir);
	return system(cmd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s = calloc(1, 4 << 20);
	size_t n = 0;

	if (f && s)
		n = fread(s, 1, (4 << 20) - 1, f);
	if (f)
		fclose(f);
	if (len)
		*len = n;
	return s;
}

static unsigned be32(const unsigned char *p)
{
	return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 |
	       (unsigned)p[2] << 8 | p[3];
}

static void test_report_in_chromium(void **state)
{
	(void)state;
	static const struct {
		const char *fp, *host;
		int port;
		enum severity sev;
		enum run_role role;
	} rows[] = {
		{"a", "10.0.0.1", 22, SEV_HIGH, RUN_CURRENT},
		{"a", "10.0.0.1", 22, SEV_HIGH, RUN_PREVIOUS},
		{"b", "8.8.8.8", 3389, SEV_CRITICAL, RUN_CURRENT},
		{"c", "<img src=x onerror=alert(1)>", 80, SEV_LOW, RUN_PREVIOUS},
		{"d", "example.com", -1, SEV_MEDIUM, RUN_CURRENT},
	};
	static struct trend_point trend[] = {
		{"r1", "2027-01-01T00:00:00Z", {1, 2, 3, 4, 1}, 11, -1, -1},
		{"r2", "2027-01-08T00:00:00Z", {0, 1, 2, 1, 0}, 4, 1, 8},
		{"r3", "2027-01-15T00:00:00Z", {0, 0, 1, 1, 1}, 3, 2, 3},
	};
	struct analysis_opts o = {.now = NOW};
	struct analysis *a = NULL;
	struct vg_err err = {0};
	struct vg_buf b;
	char html[256], png[256], dom[256], args[1024];
	unsigned char *p;
	size_t len;
	char *s;
	FILE *f;

	/* scripts/deps.sh installs it: its absence is a broken machine */
	if (!chromium)
		fail_msg("chromium is not installed (make deps installs it)");
	assert_int_equal(analysis_new(&a, &err), VG_OK);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct finding_row r = {.fingerprint = rows[i].fp,
		                        .host = rows[i].host,
		                        .port = rows[i].port,
		                        .protocol = "tcp",
		                        .scanner = "tcp",
		                        .title = "<script>alert('t')</script>",
		                        .severity = rows[i].sev,
		                        .first_seen = NOW - 86400 * 3};

		assert_int_equal(analysis_add(a, rows[i].role, &r, &err), VG_OK);
	}
	assert_int_equal(analysis_finish(a, &o, &err), VG_OK);
	struct report_doc d = {
		.tenant_id = "t",
		.tenant_name = "acme <b>corp</b>",
		.run_id = "r3",
		.run_state = "succeeded",
		.created_at = "2027-01-15T00:00:00Z",
		.finished_at = "2027-01-15T00:10:00Z",
		.policy_namespace = "tenant-acme",
		.policy_name = "nightly\"><script>alert(2)</script>",
		.policy_uid = "",
		.previous_run_id = "r2",
		.generated_at = "2027-01-15T00:11:00Z",
		.a = a,
		.trend = trend,
		.ntrend = 3,
	};
	vg_buf_init(&b, 0);
	assert_int_equal(report_render_html(&d, &b), VG_OK);
	snprintf(html, sizeof(html), "%s/report.html", dir);
	snprintf(png, sizeof(png), "%s/report.png", dir);
	snprintf(dom, sizeof(dom), "%s/dom.html", dir);
	f = fopen(html, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
	fclose(f);

	/* the DOM as the browser parsed it */
	snprintf(args, sizeof(args), "--dump-dom file://%s", html);
	assert_int_equal(run_chromium(args, dom), 0);
	s = slurp(dom, NULL);
	{
		int svgs = 0;

		for (const char *q = strstr(s, "<svg"); q; q = strstr(q + 1, "<svg"))
			svgs++;
		assert_int_equal(svgs, 2);
	}
	assert_non_null(strstr(s, "<polyline"));
	assert_non_null(strstr(s, "<rect"));
	assert_null(strcasestr(s, "<script"));
	assert_null(strcasestr(s, "<img"));
	assert_non_null(strstr(s, "<title>vigil scan report: tenant-acme/"
	                          "nightly\"&gt;&lt;script&gt;"));
	free(s);

	/* and drawn */
	snprintf(args, sizeof(args),
	         "--hide-scrollbars --window-size=1100,1400 --screenshot=%s "
	         "file://%s",
	         png, html);
	assert_int_equal(run_chromium(args, NULL), 0);
	p = (unsigned char *)slurp(png, &len);
	assert_true(len > 10000); /* not a blank page */
	assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
	assert_memory_equal(p + 12, "IHDR", 4);
	assert_int_equal(be32(p + 16), 1100);
	assert_int_equal(be32(p + 20), 1400);
	free(p);
	if (getenv("VIGIL_KEEP_SCREENSHOT")) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "cp %s %s", png,
		         getenv("VIGIL_KEEP_SCREENSHOT"));
		assert_int_equal(system(cmd), 0);
	}
	vg_buf_cleanup(&b);
	analysis_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_in_chromium),
	};

	return cmocka_run_group_tests_name("brain HTML in chromium", tests,
	                                   setup, teardown);
}
