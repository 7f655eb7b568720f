/* analysis.h - vigil-brain's analysis of one scan run, without a database:
 * findings of the run, the previous run and earlier runs of the same
 * policy are deduplicated by fingerprint, classified (new, persisting,
 * resolved, regressed) and scored for risk, per finding and per host.
 *
 *   struct analysis *a;
 *   analysis_new(&a);
 *   analysis_add(a, RUN_CURRENT, &row);   ... every row of every role
 *   analysis_finish(a, &opts);            classify, score, rank
 *   a->items[i], a->hosts[i], a->counts   read the results
 *   analysis_free(a);
 *
 * The formula is documented in README.md; risk_score() is it. */
#ifndef BRAIN_ANALYSIS_H
#define BRAIN_ANALYSIS_H

#include <stddef.h>

#include "vigil/err.h"
#include "vigil/strmap.h"

enum severity { SEV_INFO, SEV_LOW, SEV_MEDIUM, SEV_HIGH, SEV_CRITICAL, SEV_N };

enum criticality { CRIT_LOW, CRIT_MEDIUM, CRIT_HIGH, CRIT_CRITICAL, CRIT_N };

enum finding_class {
	CLASS_NEW,        /* in this run, in no earlier run */
	CLASS_PERSISTING, /* in this run and the previous one */
	CLASS_RESOLVED,   /* in the previous run, not in this one */
	CLASS_REGRESSED,  /* in this run, not the previous, but earlier */
	CLASS_N
};

/* Which run a row comes from. */
enum run_role {
	RUN_CURRENT = 1 << 0,
	RUN_PREVIOUS = 1 << 1,
	RUN_EARLIER = 1 << 2, /* any finished run before the previous one */
};

/* Names ("critical", "regressed" ...), static; parse: 0 or VG_INVAL. */
const char *severity_name(enum severity s);
int severity_parse(const char *s, enum severity *out);
const char *criticality_name(enum criticality c);
int criticality_parse(const char *s, enum criticality *out);
const char *class_name(enum finding_class c);

/* 1 when `host` (IPv4/IPv6 literal or name) is internal: RFC 1918,
 * loopback, link-local, CGNAT, ULA, or a name such as "localhost",
 * "db.svc" or "x.internal"; 0 when it faces the internet. */
int host_is_internal(const char *host);
/* 1 for ports of remote administration and data stores (22, 3389 ...). */
int port_is_admin(int port);

struct risk_input {
	enum severity severity;
	const char *host;
	int port; /* -1: host-level finding */
	double age_days;
	enum criticality criticality;
};
/* The finding's risk, rounded to 2 decimals (README.md). */
double risk_score(const struct risk_input *in);
/* A host's risk from its findings' risks: the highest plus a tenth of
 * the others, rounded to 2 decimals. */
double host_risk(double max, double sum);

/* One row as the database (or a test) gives it; strings are copied. Rows
 * of earlier runs need only the fingerprint and first_seen. */
struct finding_row {
	const char *fingerprint;
	const char *host;
	int port; /* -1: none */
	const char *protocol;
	const char *scanner;
	const char *title;
	enum severity severity;
	double first_seen; /* Unix seconds */
};

/* One deduplicated finding of the current or previous run. Strings live
 * as long as the analysis. Attributes are the current run's when the
 * finding is in it, else the previous run's. */
struct item {
	const char *fingerprint, *host, *protocol, *scanner, *title;
	int port;
	enum severity severity;
	double first_seen; /* earliest over every run added */
	unsigned roles;    /* RUN_* seen */
	enum finding_class cls;
	double age_days;
	double risk;
};

struct host_rank {
	const char *host;
	double risk;
	double max_risk;
	long findings;
	enum severity max_severity;
	int internal;
	enum criticality criticality;
};

struct analysis_opts {
	double now; /* Unix seconds the ages are measured at */
	/* host -> criticality name ("high"); NULL or absent: medium.
	 * Borrowed for analysis_finish. */
	const struct vg_strmap *criticality;
};

struct analysis {
	/* after analysis_finish: the current and previous run's findings,
	 * by class, then risk (highest first), then fingerprint */
	struct item **items;
	size_t nitems;
	size_t class_start[CLASS_N], class_len[CLASS_N];
	/* hosts of the current run, riskiest first */
	struct host_rank *hosts;
	size_t nhosts;
	/* current run: counts[severity]; total = sum */
	long counts[SEV_N];
	long total;
	long by_class[CLASS_N];
	double risk_total; /* sum over the current run */
	struct analysis_int *in_; /* private */
};

int analysis_new(struct analysis **out, struct vg_err *err);
/* Add one row seen in a run of role `role` (rows of any role in any
 * order; the same fingerprint twice in one role is one finding). */
int analysis_add(struct analysis *a, enum run_role role,
                 const struct finding_row *r, struct vg_err *err);
int analysis_finish(struct analysis *a, const struct analysis_opts *o,
                    struct vg_err *err);
/* The finding of `fingerprint`, or NULL; borrowed. */
struct item *analysis_find(struct analysis *a, const char *fingerprint);
/* Fill in what rows may leave out until a finding is listed (copied). */
int analysis_set_details(struct analysis *a, struct item *it,
                         const char *protocol, const char *scanner,
                         const char *title);
void analysis_free(struct analysis *a);

#endif
