/* fuzz_task.c - libFuzzer target for the task envelope parser: whatever
 * sits in the Redis stream must be decoded or refused, never crash, and
 * what decodes must encode and decode again to the same task. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/buf.h"
#include "vigil/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_err err = {0};
	struct vg_task *t = NULL, *back = NULL;
	struct vg_buf b;
	int rc;

	rc = vg_task_decode((const char *)data, size, &t, &err);
	if (rc != VG_OK) {
		if (t || err.code != rc || !err.msg[0])
			abort();
		return 0;
	}
	if (!t->id || !t->type || !t->tenant || !t->request_id ||
	    !t->last_error || !t->payload || t->attempts < 0)
		abort();
	vg_buf_init(&b, 0);
	if (vg_task_encode(t, &b) != VG_OK)
		abort();
	if (vg_task_decode(b.data, b.len, &back, &err) != VG_OK)
		abort();
	/* last_error is truncated on encode (VG_QUEUE_ERROR_MAX) */
	if (!same(t->id, back->id) || !same(t->type, back->type) ||
	    !same(t->tenant, back->tenant) ||
	    !same(t->request_id, back->request_id) ||
	    t->attempts != back->attempts ||
	    t->enqueued_ms != back->enqueued_ms ||
	    t->first_attempt_ms != back->first_attempt_ms ||
	    t->last_attempt_ms != back->last_attempt_ms ||
	    strncmp(t->last_error, back->last_error,
	            strlen(back->last_error)) != 0 ||
	    !json_equal((json_t *)t->payload, (json_t *)back->payload))
		abort();
	vg_task_free(back);
	vg_task_free(t);
	vg_buf_cleanup(&b);
	return 0;
}
