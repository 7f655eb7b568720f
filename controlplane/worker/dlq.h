/* dlq.h - `vigil-worker dlq list|replay|purge`: inspect and act on dead
 * letters. */
#ifndef WORKER_DLQ_H
#define WORKER_DLQ_H

#include <stdio.h>

#include "vigil/queue.h"

/* Run the subcommand in argv[0] ("list", ...) with its arguments. Results
 * go to `out` (JSON Lines for list), problems to `errf`. Returns the exit
 * status: 0, 1 (failed) or 2 (usage). */
int dlq_main(struct vg_queue *q, int argc, char **argv, FILE *out, FILE *errf);

#endif
