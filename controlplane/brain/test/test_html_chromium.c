/* test_html_chromium.c - the HTML report in a real browser: chromium
 * headless parses it (its DOM holds both SVG charts and no script even
 * with hostile strings in the data) and renders it to a PNG screenshot,
 * which the test decodes: much of the page is drawn over its background,
 * and the severity bars are there in their colours (and a blank page
 * fails the same checks). make deps installs chromium. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
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
/* the page's background (render_html.c's CSS) */
#define BACKGROUND "#f9fafb"

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

/* ------------------------------------------------------------------ */
/* Reading the screenshot: PNG chunks, zlib, the row filters            */
/* ------------------------------------------------------------------ */

/* zlib's uncompress(), from the shared library every Debian system has
 * (zlib1g): the Makefile does not link -lz. */
typedef int (*uncompress_fn)(unsigned char *, unsigned long *,
                             const unsigned char *, unsigned long);

static uncompress_fn zlib_uncompress(void)
{
	static void *lib;

	if (!lib)
		lib = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		fail_msg("cannot load zlib: %s", dlerror());
	return (uncompress_fn)(uintptr_t)dlsym(lib, "uncompress");
}

struct image {
	unsigned w, h;
	unsigned char *rgb; /* w x h x 3 */
};

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);

	if (pa <= pb && pa <= pc)
		return a;
	return pb <= pc ? b : c;
}

/*
 * Decode an 8-bit RGB or RGBA, non-interlaced PNG (what chromium writes)
 * into `img` (RGB, alpha dropped: the page is opaque). Fails the test on
 * anything else.
 */
static void png_decode(const unsigned char *p, size_t len, struct image *img)
{
	unsigned char *z = NULL, *raw, *prev;
	size_t zlen = 0, pos = 8, stride;
	unsigned long rawlen;
	unsigned bpp = 0;
	uncompress_fn unz = zlib_uncompress();

	assert_non_null(unz);
	assert_true(len > 8);
	assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
	memset(img, 0, sizeof(*img));
	while (pos + 12 <= len) {
		unsigned n = be32(p + pos);
		const unsigned char *type = p + pos + 4, *data = p + pos + 8;

		assert_true(n <= len - pos - 12);
		if (memcmp(type, "IHDR", 4) == 0) {
			assert_int_equal(n, 13);
			img->w = be32(data);
			img->h = be32(data + 4);
			assert_int_equal(data[8], 8);  /* bits per sample */
			assert_int_equal(data[12], 0); /* not interlaced */
			assert_true(data[9] == 2 || data[9] == 6);
			bpp = data[9] == 6 ? 4 : 3;
		} else if (memcmp(type, "IDAT", 4) == 0) {
			z = realloc(z, zlen + n);
			assert_non_null(z);
			memcpy(z + zlen, data, n);
			zlen += n;
		} else if (memcmp(type, "IEND", 4) == 0) {
			break;
		}
		pos += 12 + (size_t)n;
	}
	assert_true(bpp && img->w && img->h && zlen);
	assert_true(img->w <= 10000 && img->h <= 10000);
	stride = (size_t)img->w * bpp;
	rawlen = (unsigned long)((stride + 1) * img->h);
	raw = malloc(rawlen);
	prev = calloc(1, stride);
	img->rgb = malloc((size_t)img->w * img->h * 3);
	assert_true(raw && prev && img->rgb);
	assert_int_equal(unz(raw, &rawlen, z, (unsigned long)zlen), 0);
	assert_int_equal(rawlen, (stride + 1) * img->h);
	for (unsigned y = 0; y < img->h; y++) {
		unsigned char *row = raw + y * (stride + 1) + 1;
		int filter = row[-1];

		for (size_t i = 0; i < stride; i++) {
			int a = i >= bpp ? row[i - bpp] : 0, b = prev[i];
			int c = i >= bpp ? prev[i - bpp] : 0;

			switch (filter) {
			case 0:
				break;
			case 1:
				row[i] = (unsigned char)(row[i] + a);
				break;
			case 2:
				row[i] = (unsigned char)(row[i] + b);
				break;
			case 3:
				row[i] = (unsigned char)(row[i] + (a + b) / 2);
				break;
			case 4:
				row[i] = (unsigned char)(row[i] +
				                         paeth(a, b, c));
				break;
			default:
				fail_msg("PNG row %u: filter %d", y, filter);
			}
		}
		memcpy(prev, row, stride);
		for (unsigned x = 0; x < img->w; x++)
			memcpy(img->rgb + ((size_t)y * img->w + x) * 3,
			       row + (size_t)x * bpp, 3);
	}
	free(prev);
	free(raw);
	free(z);
}

/* Pixels of colour `hex` ("#rrggbb") exactly. */
static size_t count_colour(const struct image *img, const char *hex)
{
	unsigned v = (unsigned)strtoul(hex + 1, NULL, 16);
	unsigned char c[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
	                      (unsigned char)v};
	size_t n = 0;

	for (size_t i = 0; i < (size_t)img->w * img->h; i++)
		n += memcmp(img->rgb + 3 * i, c, 3) == 0;
	return n;
}

/* Share of the pixels that differ from the page's background colour. */
static double drawn_share(const struct image *img, const char *background)
{
	size_t all = (size_t)img->w * img->h;

	return (double)(all - count_colour(img, background)) / (double)all;
}

/* Screenshot `html` at 1100x1400 into `png`, decoded. */
static void screenshot(const char *html, const char *png, struct image *img)
{
	char args[1024];
	unsigned char *p;
	size_t len;

	snprintf(args, sizeof(args),
	         "--hide-scrollbars --window-size=1100,1400 --screenshot=%s "
	         "file://%s",
	         png, html);
	assert_int_equal(run_chromium(args, NULL), 0);
	p = (unsigned char *)slurp(png, &len);
	png_decode(p, len, img);
	free(p);
	assert_int_equal(img->w, 1100);
	assert_int_equal(img->h, 1400);
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
	static const char *const bars[] = {"#b91c1c", "#ea580c", "#d97706"};
	char html[256], png[256], dom[256], args[1024];
	char blank[256], blank_png[256];
	struct image img;
	double share;
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

	/* and drawn: cards, tables and charts cover much of the page's
	 * background, and the bars of this run's severities (one critical,
	 * one high, one medium finding: three full-height bars of about
	 * 55 x 190 pixels) are there in their colours (the same colours in
	 * the tables' text are a few hundred pixels at most) */
	screenshot(html, png, &img);
	share = drawn_share(&img, BACKGROUND);
	print_message("drawn over the background: %.1f%%\n", share * 100);
	if (share < 0.2)
		fail_msg("only %.1f%% of the page differs from its background",
		         share * 100);
	for (size_t i = 0; i < sizeof(bars) / sizeof(bars[0]); i++) {
		size_t n = count_colour(&img, bars[i]);

		print_message("%s: %zu pixels\n", bars[i], n);
		if (n < 5000)
			fail_msg("%zu pixels of the %s bar, want >= 5000", n,
			         bars[i]);
	}
	free(img.rgb);
	/* the same checks fail on a page that draws nothing */
	snprintf(blank, sizeof(blank), "%s/blank.html", dir);
	f = fopen(blank, "wb");
	assert_non_null(f);
	fputs("<!DOCTYPE html><html><body "
	      "style=\"margin:0;background:" BACKGROUND "\"></body></html>",
	      f);
	fclose(f);
	snprintf(blank_png, sizeof(blank_png), "%s/blank.png", dir);
	screenshot(blank, blank_png, &img);
	assert_true(drawn_share(&img, BACKGROUND) < 0.01);
	for (size_t i = 0; i < sizeof(bars) / sizeof(bars[0]); i++)
		assert_int_equal(count_colour(&img, bars[i]), 0);
	free(img.rgb);
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
