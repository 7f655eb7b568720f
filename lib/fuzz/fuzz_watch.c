/*
 * fuzz_watch.c - libFuzzer target for the watch stream parser. The first
 * bytes choose chunk sizes; the rest is the stream. Fed whole and in
 * chunks, the parser must deliver the same events and end the same way.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENT 4096

struct trace {
	uint64_t hash; /* of the delivered (type, resourceVersion) pairs */
	unsigned long n;
	unsigned long stop_at; /* stop the stream at this event (0: never) */
};

static void mix(struct trace *t, const char *s)
{
	for (; s && *s; s++)
		t->hash = (t->hash ^ (unsigned char)*s) * 1099511628211ull;
	t->hash = (t->hash ^ 0xff) * 1099511628211ull;
}

static int on_event(void *ctx, const struct vg_watch_event *ev)
{
	struct trace *t = ctx;

	if (!ev->object || !json_is_object(ev->object))
		abort();
	mix(t, vg_watch_type_name(ev->type));
	mix(t, ev->resource_version);
	t->n++;
	return t->stop_at && t->n == t->stop_at ? VG_WATCH_STOP : 0;
}

static int run(const char *s, size_t len, const uint8_t *sizes, size_t nsizes,
               struct trace *t, struct vg_err *err)
{
	struct vg_watch_parser p;
	size_t at = 0, i = 0;
	int rc = VG_OK;

	vg_watch_parser_init(&p, MAX_EVENT, on_event, t);
	while (at < len && rc == VG_OK) {
		size_t n = nsizes ? (size_t)sizes[i++ % nsizes] + 1 : len;

		if (n > len - at)
			n = len - at;
		rc = vg_watch_parser_feed(&p, s + at, n, err);
		at += n;
	}
	if (rc == VG_OK)
		rc = vg_watch_parser_finish(&p, err);
	if (vg_watch_parser_resource_version(&p))
		mix(t, vg_watch_parser_resource_version(&p));
	vg_watch_parser_cleanup(&p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole = {.hash = 14695981039346656037ull};
	struct trace chunked = {.hash = 14695981039346656037ull};
	struct vg_err e1 = {0}, e2 = {0};
	size_t nsizes;
	int rc1, rc2;

	if (size < 2)
		return 0;
	nsizes = data[0] % 8 + 1;
	if (size < 1 + nsizes)
		return 0;
	whole.stop_at = chunked.stop_at = data[1] % 4 == 0 ? data[1] / 4 : 0;
	rc1 = run((const char *)data + 1 + nsizes, size - 1 - nsizes, NULL, 0,
	          &whole, &e1);
	rc2 = run((const char *)data + 1 + nsizes, size - 1 - nsizes, data + 1,
	          nsizes, &chunked, &e2);
	if (rc1 != rc2 || whole.n != chunked.n || whole.hash != chunked.hash)
		abort();
	if (rc1 < 0 && (e1.code != rc1 || !e1.msg[0]))
		abort();
	return 0;
}
