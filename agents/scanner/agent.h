/* agent.h - one scan run of vigil-agent, from checked options to exit
 * code: plan (scope), connect scan, service checks, delivery. */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include "options.h"

enum agent_exit {
	EXIT_DONE = 0,	      /* scanned, every batch delivered */
	EXIT_FAILURE_RUN = 1, /* could not run (I/O, memory) */
	EXIT_BAD_INPUT = 2,   /* malformed input or scope refused; no probe */
	EXIT_ESTOP = 3,	      /* stopped by the emergency stop */
	EXIT_UNDELIVERED = 4, /* batches left in the spool */
	EXIT_REJECTED = 5,    /* the gateway refused a batch for good */
};

/* Run the scan `o` describes; returns an agent_exit code. Logs as it
 * goes. Call once per process (installs signal handlers). */
int agent_run(struct options *o, const char *version);

#endif
