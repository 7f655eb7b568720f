/* plan.h - what this agent may and will probe, decided before any probe:
 *
 *   1. parse --allowed (the tenant's scope), --targets, --exclude, --ports
 *      and --scanners; any malformed item is an error naming it;
 *   2. refuse when a target is outside the allowed scope, or is a
 *      forbidden address (link-local, cloud metadata, loopback unless
 *      allowed);
 *   3. targets minus exclusions, this shard's share of the addresses
 *      (contiguous runs of the sorted addresses) and host names (k mod
 *      shards);
 *   4. resolve this shard's host names; every resolved address must be
 *      inside the allowed scope's addresses, not excluded and not
 *      forbidden, or it is skipped with a warning.
 *
 * Errors of steps 1-3 are the operator's or the tenant's (exit code 2). */
#ifndef AGENT_PLAN_H
#define AGENT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "tcpscan.h"
#include "vigil/err.h"
#include "vigil/scope.h"

#define SCAN_TCP 0x1
#define SCAN_BANNER 0x2
#define SCAN_TLS 0x4
#define SCAN_HTTP 0x8

struct plan_input {
	const char *allowed, *targets, *exclude, *ports, *scanners;
	int allow_loopback;
	unsigned shard, shards;
};

struct plan {
	struct vg_scope allowed, targets, exclude, effective;
	struct vg_scope_iter iter; /* this shard's addresses */
	struct vg_ports ports;
	unsigned scanners;
	unsigned scope_flags;	/* for vg_addr_forbidden */
	char **names;		/* this shard's host names */
	size_t nnames;
	struct tcp_target *resolved; /* their addresses; .name indexes names */
	size_t nresolved;
	size_t skipped; /* resolved addresses refused */
};

/* Parse `scanners` ("tcp,tls") into SCAN_* bits. */
int plan_scanners(const char *list, unsigned *out, struct vg_err *err);

/* Steps 1-3. VG_PARSE / VG_FORBIDDEN / VG_TOOLARGE / VG_INVAL are input
 * errors. */
int plan_build(struct plan *p, const struct plan_input *in,
	       struct vg_err *err);
/* Step 4 (DNS). Host names that do not resolve are logged and skipped. */
int plan_resolve(struct plan *p, struct vg_err *err);
/* Would `a` pass the checks of step 4? (*why says why not.) */
int plan_admits(const struct plan *p, const struct vg_addr *a,
		const char **why);
/* Addresses of this shard, resolved ones included. */
uint64_t plan_count(const struct plan *p);
void plan_cleanup(struct plan *p);

#endif
