/* sink.h - where findings go: JSON lines to the --output file, and
 * batches for the gateway, closed every batch_size findings (or before a
 * body would pass max_bytes) and written to the spool. Thread-safe. */
#ifndef AGENT_SINK_H
#define AGENT_SINK_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "spool.h"
#include "vigil/err.h"

/* What the batches' "stats" report; updated by the scan as it goes. */
struct counters {
	atomic_uint_fast64_t targets, probes, open_ports, findings;
};

struct sink_config {
	FILE *out;	    /* JSON lines, or NULL */
	struct spool *spool; /* batches, or NULL (no gateway) */
	void (*kick)(void *ctx); /* a batch was spooled */
	void *kick_ctx;
	int batch_size;
	size_t max_bytes;
	const char *job_name, *policy_namespace, *policy_name, *policy_uid;
	const char *trigger;
	int shards, shard;
	struct counters *counters;
};

struct sink {
	struct sink_config cfg;
	pthread_mutex_t mu;
	json_t *batch; /* findings of the open batch */
	size_t bytes;
	uint64_t batches; /* spooled so far */
	int failed;	  /* a batch or line could not be written */
	int finished;
};

int sink_init(struct sink *s, const struct sink_config *cfg,
	      struct vg_err *err);
void sink_cleanup(struct sink *s);

/* Add a finding (stolen). */
void sink_add(struct sink *s, json_t *finding);
/* Write out buffered output lines (about once a second). */
void sink_flush(struct sink *s);
/* Close the last batch with "final": true (empty if need be) and flush the
 * output file. Once only; later calls do nothing. */
int sink_finish(struct sink *s, struct vg_err *err);

/* The request body of a batch, as spooled (for tests): new string. */
char *sink_batch_body(const struct sink_config *cfg, const char *batch_id,
		      int final, json_t *findings);

#endif
