/* spool.h - result batches on disk until the gateway accepts them.
 *
 * One file per batch in the spool directory, named after the batch id
 * "<job>-<shard>-<seq>.json" and written atomically (temporary file,
 * fsync, rename, fsync of the directory), so a crash leaves either the
 * whole batch or none. The next sequence number survives a restart in
 * "<job>-<shard>.seq": a restarted agent of the same job and shard resends
 * its pending files first and numbers new batches after every earlier one,
 * so batch ids never repeat with different content. A batch the gateway
 * refuses for good is renamed to "*.rejected" and kept. */
#ifndef AGENT_SPOOL_H
#define AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "vigil/buf.h"
#include "vigil/err.h"

struct spool {
	char *dir;
	char *prefix; /* "<job>-<shard>-" */
	char *seqfile;
	uint64_t next;
};

/* Create `dir` if needed and find where `job`/`shard` left off. */
int spool_open(struct spool *sp, const char *dir, const char *job,
	       unsigned shard, struct vg_err *err);
void spool_close(struct spool *sp);

/* The batch id of `seq` ("<job>-<shard>-<seq>") into buf. */
const char *spool_batch_id(const struct spool *sp, uint64_t seq, char *buf,
			   size_t n);
/* Take the next sequence number (persisted before it is returned). */
int spool_take_seq(struct spool *sp, uint64_t *seq, struct vg_err *err);
/* Write batch `seq` atomically. */
int spool_put(struct spool *sp, uint64_t seq, const char *data, size_t len,
	      struct vg_err *err);
/* Sequence numbers of the pending (*.json) batches, ascending; *seqs is
 * new (NULL when none). */
int spool_pending(const struct spool *sp, uint64_t **seqs, size_t *n,
		  struct vg_err *err);
/* Count of *.rejected files of this job and shard. */
size_t spool_rejected(const struct spool *sp);
/* Read batch `seq` into `out` (appended). */
int spool_load(const struct spool *sp, uint64_t seq, struct vg_buf *out,
	       struct vg_err *err);
/* The gateway took it: delete. */
int spool_done(const struct spool *sp, uint64_t seq, struct vg_err *err);
/* The gateway refused it for good: rename to .rejected. */
int spool_reject(const struct spool *sp, uint64_t seq, struct vg_err *err);

#endif
