/* fuzz_json.c - libFuzzer target for the strict JSON loader, the path
 * syntax and the string escaper. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a path: the first line, NUL-terminated. */
static void fuzz_path(const json_t *doc, const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	char path[512];
	json_t *found = NULL;
	int rc;

	if (nl)
		n = (size_t)(nl - p);
	if (n >= sizeof(path))
		n = sizeof(path) - 1;
	memcpy(path, p, n);
	path[n] = '\0';
	rc = vg_json_find(doc, path, &found);
	if (rc != VG_OK && rc != VG_NOTFOUND && rc != VG_INVAL)
		abort();
	if ((rc == VG_OK) != (found != NULL))
		abort();
}

/* Escaping must always give valid JSON (\u0000 included, which the strict
 * loader refuses), and be lossless for valid UTF-8. */
static void fuzz_escape(const char *p, size_t n)
{
	struct vg_buf b;
	json_error_t jerr;
	json_t *back, *direct;

	vg_buf_init(&b, 0);
	if (vg_json_escape(&b, p, n))
		abort();
	back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
			  &jerr);
	if (!json_is_string(back))
		abort();
	direct = json_stringn(p, n); /* NULL unless valid UTF-8 */
	if (direct && !json_equal(direct, back))
		abort();
	json_decref(direct);
	json_decref(back);
	vg_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct vg_err err = { 0 };
	json_t *doc = NULL, *copy;
	struct vg_buf b;
	int rc;

	rc = vg_json_loadb(p, size, 0, &doc, &err);
	if (rc != VG_OK) {
		if (doc || err.code != rc || !err.msg[0])
			abort();
	} else {
		/* what loads dumps, reloads equal, and contains itself */
		vg_buf_init(&b, 0);
		if (vg_json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS, &b))
			abort();
		if (vg_json_loadb(b.data, b.len, 0, &copy, &err) != VG_OK)
			abort();
		if (!vg_json_equal(doc, copy) || !vg_json_is_subset(doc, copy))
			abort();
		json_decref(copy);
		vg_buf_cleanup(&b);
	}
	fuzz_path(doc, p, size);
	fuzz_escape(p, size);
	json_decref(doc);
	return 0;
}
