/* queue_load.c - benchmark driver: enqueue N no-op tasks (pipelined in
 * batches) while vigil-worker processes run, and time until the queue is
 * empty again (every task processed and acknowledged). Not a test.
 *
 *   queue_load --port P --tasks N             enqueue, then wait for empty
 *   queue_load --port P --tasks N --fill 1    only enqueue
 *   queue_load --port P --tasks N --drain 1   only wait for empty (timed
 *                                             from the start) */
#include "vigil/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long arg(int argc, char **argv, const char *name, long def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0) {
			char *end;
			long v;

			errno = 0;
			v = strtol(argv[i + 1], &end, 10);
			if (!errno && !*end && v > 0)
				return v;
		}
	return def;
}

int main(int argc, char **argv)
{
	long port = arg(argc, argv, "--port", 6379);
	long n = arg(argc, argv, "--tasks", 200000);
	long batch = arg(argc, argv, "--batch", 100);
	int fill = arg(argc, argv, "--fill", 0) > 0;
	int drain = arg(argc, argv, "--drain", 0) > 0;
	struct vg_queue_opts o = {.port = (int)port};
	struct vg_queue *q = NULL;
	struct vg_queue_msg *m = calloc((size_t)batch, sizeof(*m));
	json_t *payload = json_pack("{s:s,s:i}", "bench", "noop", "n", 1);
	struct vg_queue_stats st;
	struct vg_err err = {0};
	double t0, t_enq, t_end;

	if (!m || !payload || vg_queue_new(&o, &q, &err) != VG_OK) {
		fprintf(stderr, "queue_load: %s\n", err.msg);
		return 1;
	}
	for (long i = 0; i < batch; i++)
		m[i] = (struct vg_queue_msg){.type = "noop",
		                             .payload = payload,
		                             .request_id = "bench"};
	t0 = now_s();
	for (long done = 0; !drain && done < n; done += batch) {
		size_t k = (size_t)(n - done < batch ? n - done : batch);

		if (vg_queue_enqueue_many(q, m, k, &err) != VG_OK) {
			fprintf(stderr, "queue_load: %s\n", err.msg);
			return 1;
		}
	}
	t_enq = now_s();
	if (fill) {
		printf("tasks=%ld enqueue_s=%.3f enqueue_per_s=%.0f\n", n,
		       t_enq - t0, (double)n / (t_enq - t0));
		return 0;
	}
	for (;;) {
		struct timespec ts = {0, 2000000L};

		if (vg_queue_stats(q, &st, &err) != VG_OK) {
			fprintf(stderr, "queue_load: %s\n", err.msg);
			return 1;
		}
		if (st.ready + st.pending + st.delayed == 0)
			break;
		nanosleep(&ts, NULL);
	}
	t_end = now_s();
	printf("tasks=%ld enqueue_s=%.3f enqueue_per_s=%.0f end_to_end_s=%.3f "
	       "end_to_end_per_s=%.0f dead=%lld\n",
	       n, t_enq - t0, (double)n / (t_enq - t0), t_end - t0,
	       (double)n / (t_end - t0), st.dead);
	json_decref(payload);
	free(m);
	vg_queue_free(q);
	return 0;
}
