/* tcpscan.h - the TCP connect scan: non-blocking connects on one epoll
 * set, thousands in flight, paced by a global and a per-address rate.
 *
 * Probes run port-major (every address on the first port, then every
 * address on the next ...) so consecutive probes spread over the targets.
 * A probe whose address is still within its per-address interval waits in
 * a heap ordered by due time while others go ahead. A connect that times
 * out is retried `retries` times; a refused one is closed; unreachable
 * ones are filtered. Open ports are reported at once; with `banner` the
 * connection then waits up to banner_timeout_ms for the service's first
 * bytes. Sockets close with RST (SO_LINGER 0), so no TIME_WAIT piles up. */
#ifndef AGENT_TCPSCAN_H
#define AGENT_TCPSCAN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/err.h"
#include "vigil/scope.h"

/* A resolved host-name address: `name` indexes the caller's names. */
struct tcp_target {
	struct vg_addr addr;
	int name;
};

/* What to probe: the iterator's addresses, then `extra`, on each port. */
struct tcp_source {
	struct vg_scope_iter *it; /* may be NULL */
	const struct tcp_target *extra;
	size_t nextra;
	const struct vg_ports *ports;
};

struct tcp_stats {
	uint64_t probes; /* connect attempts, retries included */
	uint64_t open, closed, filtered, retried, banners;
	int in_flight, peak_in_flight;
	size_t waiting; /* probes held back by the per-address rate */
};

struct tcp_config {
	double rate;		/* probes per second, all addresses */
	double per_target_rate; /* probes per second to one address */
	int connect_timeout_ms;
	int retries;
	int max_in_flight;
	int banner; /* read first bytes of open ports */
	int banner_timeout_ms;
	size_t banner_max;
	const atomic_int *stop; /* non-zero: stop at once */
	/* `name` is -1 for address targets, else tcp_target.name */
	void (*on_open)(void *ctx, const struct vg_addr *a, int name, int port);
	void (*on_banner)(void *ctx, const struct vg_addr *a, int name,
			  int port, const unsigned char *data, size_t len);
	void (*on_tick)(void *ctx, const struct tcp_stats *st); /* ~1/s */
	void *ctx;
};

/* Scan; VG_OK when done, VG_CANCELED when stopped (every socket closed),
 * VG_NOMEM / VG_IO when it could not run. `st` is filled either way. */
int tcp_scan(const struct tcp_config *cfg, const struct tcp_source *src,
	     struct tcp_stats *st, struct vg_err *err);

#endif
