/*
 * platform_network.c - the Platform's NetworkPolicies (spec.networkPolicy):
 * deny by default, then allow what each component must accept.
 */
#include "platform_int.h"

static json_t *peer_new(struct pctx *c, int i)
{
	return json_pack("{s:{s:o}}", "podSelector", "matchLabels",
			 selector_new(c, platform_components[i].app,
				      platform_components[i].name));
}

/* One ingress rule on a TCP port; `from` (stolen) NULL: any source. */
static json_t *ingress_new(json_t *from, long long port)
{
	return json_pack("[{s:o*, s:[{s:s, s:I}]}]", "from", from, "ports",
			 "protocol", "TCP", "port", (json_int_t)port);
}

/* Ingress-only policy; `match` and `ingress` stolen, ingress NULL: deny. */
static json_t *netpol_new(struct pctx *c, const char *suffix, const char *app,
			  const char *component, json_t *match,
			  json_t *ingress)
{
	char name[NAME_LEN];

	pctx_fmt(c, name, sizeof(name), "%s-%s", c->name, suffix);
	return object_with(c, "networking.k8s.io/v1", "NetworkPolicy", name,
			   labels_new(c, app, component), "spec",
			   json_pack("{s:{s:o}, s:[s], s:o*}", "podSelector",
				     "matchLabels", match, "policyTypes",
				     "Ingress", "ingress", ingress));
}

/*
 * Ingress only: every pod of the platform denies what is not allowed
 * below. No egress policy: external databases and Redis live at
 * addresses a NetworkPolicy cannot name (host names), and DNS would need
 * its own allowance; egress stays open.
 */
void add_network_policies(struct pctx *c, json_t *children)
{
	const struct comp *gw = &c->comp[GATEWAY], *br = &c->comp[BRAIN];

	pctx_add(c, children,
		 netpol_new(c, "default-deny", "vigil", "platform",
			    json_pack("{s:s, s:s}", LABEL_INSTANCE, c->name,
				      LABEL_PART_OF, "vigil"),
			    NULL));
	pctx_add(c, children,
		 netpol_new(c, "gateway", gw->def->app, "gateway",
			    selector_new(c, gw->def->app, "gateway"),
			    ingress_new(NULL, gw->port)));
	pctx_add(
		c, children,
		netpol_new(c, "brain", br->def->app, "brain",
			   selector_new(c, br->def->app, "brain"),
			   ingress_new(json_pack("[o, o]", peer_new(c, GATEWAY),
						 peer_new(c, WORKER)),
				       br->port)));
	if (c->db.managed)
		pctx_add(c, children,
			 netpol_new(
				 c, "postgres", "postgres", "postgres",
				 selector_new(c, "postgres", "postgres"),
				 ingress_new(
					 json_pack("[o, o, o, {s:{s:{s:s}}}, "
						   "{s:{s:[{s:s, s:s}]}, "
						   "s:{s:{s:s}}}]",
						   peer_new(c, GATEWAY),
						   peer_new(c, WORKER),
						   peer_new(c, BRAIN),
						   "podSelector", "matchLabels",
						   LABEL_ROLE, "backup",
						   /* the operator, wherever it
						    * is installed: tenant rows,
						    * agent tokens, run results */
						   "namespaceSelector",
						   "matchExpressions", "key",
						   "kubernetes.io/metadata.name",
						   "operator", "Exists",
						   "podSelector", "matchLabels",
						   "app.kubernetes.io/name",
						   "vigil-operator"),
					 PLATFORM_POSTGRES_PORT)));
	if (c->redis.managed)
		pctx_add(c, children,
			 netpol_new(c, "redis", "redis", "redis",
				    selector_new(c, "redis", "redis"),
				    ingress_new(json_pack("[o, o, o]",
							  peer_new(c, GATEWAY),
							  peer_new(c, WORKER),
							  peer_new(c, BRAIN)),
						PLATFORM_REDIS_PORT)));
}
