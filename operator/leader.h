/*
 * leader.h - leader election on a coordination.k8s.io/v1 Lease.
 *
 * client-go's algorithm: a candidate takes the Lease when it is free or
 * its holder has not renewed it for a lease duration, judged by the time
 * this process *observed* the last change (so clock skew between machines
 * does not matter); the leader renews every retry period and gives up when
 * it could not renew within the renew deadline. Writes to the Lease are
 * conditional on its resourceVersion, so two candidates never both win.
 *
 * is_leader() is an atomic read meant to guard every write the operator
 * makes: it turns false the moment the lease is lost.
 */
#ifndef VIGIL_OPERATOR_LEADER_H
#define VIGIL_OPERATOR_LEADER_H

#include "vigil/kube.h"

struct leader;

struct leader_opts {
	const char *ns;		/* namespace of the Lease */
	const char *name;	/* Lease name */
	const char *identity;	/* this candidate; NULL: hostname_pid */
	double lease_duration;	/* s; 0: 15 */
	double renew_deadline;	/* s; 0: 10 */
	double retry_period;	/* s; 0: 2 */
	/* Called on the election thread when leadership starts / ends. */
	void (*on_started)(void *ctx);
	void (*on_stopped)(void *ctx);
	void *ctx;
};

struct leader *leader_new(struct vg_kube_client *client,
			  const struct leader_opts *opts);
/* Start campaigning on a thread of its own. */
int leader_start(struct leader *l);
/* Stop; a leader releases the Lease (empty holder) so another candidate
 * takes over at once. Joins the thread. */
void leader_stop(struct leader *l);
void leader_free(struct leader *l);

int leader_is_leader(const struct leader *l);
/* The identity in use; borrowed. */
const char *leader_identity(const struct leader *l);

#endif
