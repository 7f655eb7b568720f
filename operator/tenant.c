/* tenant.c - the Tenant reconciler: the tenant's namespace and what it
 * holds, and the tenant's row in the platform database. */
#include "tenant.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "platform.h"
#include "quantity.h"
#include "resources.h"
#include "vigil/buf.h"
#include "vigil/json.h"
#include "vigil/log.h"

#define LABEL_PART_OF "app.kubernetes.io/part-of"
#define LABEL_COMPONENT "app.kubernetes.io/component"
#define LABEL_INSTANCE "app.kubernetes.io/instance"
#define RBAC_GROUP "rbac.authorization.k8s.io"
#define METADATA_ADDR 0xa9fea9feu /* 169.254.169.254 */
#define NAME_MAX_LEN 63
#define TOKEN_BYTES 32

/* Defaults the Tenant schema applies (crds/vigil.dev_tenants.yaml). */
#define DEFAULT_MAX_AGENT_PODS 10
#define DEFAULT_MAX_CONCURRENT_SCANS 2
#define DEFAULT_AGENT_CPU "4"
#define DEFAULT_AGENT_MEMORY "4Gi"

/* What the builders share while computing one Tenant's children. */
struct tctx {
	const json_t *t;
	const struct tenant_platform *pf;
	const char *name;
	char ns[NAME_MAX_LEN + 1];
	struct vg_err *err;
};

static const char *md_str(const json_t *obj, const char *field)
{
	return json_string_value(
		json_object_get(json_object_get(obj, "metadata"), field));
}

static int is_dns_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

int tenant_namespace(const json_t *tenant, char *out, size_t size,
		     struct vg_err *err)
{
	const char *name = md_str(tenant, "name");
	const json_t *ns = vg_json_get(tenant, "spec.namespace");
	int n;

	if (!is_dns_label(name))
		return vg_err_set(err, VG_INVAL,
				  "metadata.name must be a DNS label");
	if (ns && !json_is_null(ns)) {
		if (!is_dns_label(json_string_value(ns)))
			return vg_err_set(err, VG_INVAL,
					  "spec.namespace must be a DNS label");
		n = snprintf(out, size, "%s", json_string_value(ns));
	} else {
		n = snprintf(out, size, TENANT_NAMESPACE_PREFIX "%s", name);
	}
	if (n < 0 || (size_t)n >= size || n > NAME_MAX_LEN)
		return vg_err_set(err, VG_TOOLARGE,
				  "namespace " TENANT_NAMESPACE_PREFIX
				  "%s is longer than %d characters; set "
				  "spec.namespace",
				  name, NAME_MAX_LEN);
	return VG_OK;
}

/* --- object scaffolding ------------------------------------------------ */

static json_t *labels(const struct tctx *c)
{
	return json_pack("{s:s,s:s,s:s,s:s}", TENANT_LABEL, c->name,
			 LABEL_PART_OF, "vigil", LABEL_COMPONENT, "tenant",
			 VIGIL_LABEL_MANAGED_BY, VIGIL_MANAGED_BY);
}

/* {apiVersion, kind, metadata: {name, [namespace], labels}} */
static json_t *object(const struct tctx *c, const char *api_version,
		      const char *kind, const char *name, int namespaced)
{
	json_t *o = json_pack("{s:s,s:s,s:{s:s,s:o}}", "apiVersion",
			      api_version, "kind", kind, "metadata", "name",
			      name, "labels", labels(c));

	if (o && namespaced)
		json_object_set_new(json_object_get(o, "metadata"),
				    "namespace", json_string(c->ns));
	return o;
}

static int nomem(const struct tctx *c, const char *what)
{
	return vg_err_set(c->err, VG_NOMEM, "building %s", what);
}

/* --- quota ------------------------------------------------------------- */

/* An integer of spec.quota within [lo, hi], `def` when absent. */
static int quota_int(const struct tctx *c, const char *field, long long def,
		     long long lo, long long hi, long long *out)
{
	char path[64];
	const json_t *v;

	snprintf(path, sizeof(path), "spec.quota.%s", field);
	v = vg_json_get(c->t, path);
	*out = def;
	if (!v || json_is_null(v))
		return VG_OK;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return vg_err_set(c->err, VG_INVAL,
				  "%s must be an integer from %lld to %lld",
				  path, lo, hi);
	*out = json_integer_value(v);
	return VG_OK;
}

/* spec.quota.<field> parsed, `def` when absent. */
static int quota_qty(const struct tctx *c, const char *field, const char *def,
		     struct quantity *q)
{
	char path[64];
	const json_t *v;
	struct vg_err qerr = { 0 };
	int rc;

	snprintf(path, sizeof(path), "spec.quota.%s", field);
	v = vg_json_get(c->t, path);
	rc = v && !json_is_null(v) ? quantity_parse_json(q, v, &qerr)
				   : quantity_parse(q, def, &qerr);
	if (rc == VG_OK && q->neg)
		rc = vg_err_set(&qerr, VG_INVAL, "negative");
	if (rc != VG_OK)
		return vg_err_set(c->err, VG_INVAL, "%s: %s", path, qerr.msg);
	return VG_OK;
}

/* floor(q / 10^scale), the value in units of 10^scale; VG_RANGE when it
 * does not fit. */
static int qty_units(const struct quantity *q, int scale, long long *out)
{
	long long v = 0;
	int shift = q->exp10 - scale;
	size_t nd = strlen(q->digits);

	if (shift < 0)
		nd = (size_t)-shift >= nd ? 0 : nd - (size_t)-shift;
	for (size_t i = 0; i < nd; i++) {
		if (v > (LLONG_MAX - 9) / 10)
			return VG_RANGE;
		v = v * 10 + (q->digits[i] - '0');
	}
	for (int i = 0; i < shift; i++) {
		if (v > LLONG_MAX / 10)
			return VG_RANGE;
		v *= 10;
	}
	*out = v;
	return VG_OK;
}

static int canonical(const struct tctx *c, const struct quantity *q,
		     char *out, size_t size)
{
	if (quantity_format(q, out, size) != VG_OK)
		return vg_err_set(c->err, VG_INVAL, "quantity too long");
	return VG_OK;
}

/* "<units><suffix>" in canonical form. */
static int canonical_units(const struct tctx *c, long long units,
			   const char *suffix, char *out, size_t size)
{
	char s[48];

	snprintf(s, sizeof(s), "%lld%s", units, suffix);
	return quantity_canonical(s, out, size, c->err);
}

struct quota {
	long long pods;
	char cpu[QUANTITY_STR_MAX], mem[QUANTITY_STR_MAX];
	/* per pod: the total divided among maxAgentPods */
	char cpu_share[QUANTITY_STR_MAX], mem_share[QUANTITY_STR_MAX];
};

static int read_quota(const struct tctx *c, struct quota *qt)
{
	struct quantity cpu, mem;
	long long scans, milli, bytes, unit;
	int binary;

	if (quota_int(c, "maxAgentPods", DEFAULT_MAX_AGENT_PODS, 1, 10000,
		      &qt->pods) != VG_OK ||
	    quota_int(c, "maxConcurrentScans", DEFAULT_MAX_CONCURRENT_SCANS, 1,
		      1000, &scans) != VG_OK ||
	    quota_qty(c, "agentCPU", DEFAULT_AGENT_CPU, &cpu) != VG_OK ||
	    quota_qty(c, "agentMemory", DEFAULT_AGENT_MEMORY, &mem) != VG_OK)
		return c->err ? c->err->code : VG_INVAL;
	if (qt->pods < scans)
		return vg_err_set(c->err, VG_INVAL,
				  "spec.quota.maxAgentPods must be at least "
				  "spec.quota.maxConcurrentScans");
	if (canonical(c, &cpu, qt->cpu, sizeof(qt->cpu)) != VG_OK ||
	    canonical(c, &mem, qt->mem, sizeof(qt->mem)) != VG_OK)
		return VG_INVAL;
	if (qty_units(&cpu, -3, &milli) != VG_OK ||
	    qty_units(&mem, 0, &bytes) != VG_OK)
		return vg_err_set(c->err, VG_INVAL,
				  "spec.quota.agentCPU or agentMemory is out "
				  "of range");
	/* shares round down to 1m and to whole Mi (M when written in
	 * decimal units) so the pods together stay within the total */
	binary = mem.format == QUANTITY_BINARY_SI;
	unit = binary ? 1024 * 1024 : 1000 * 1000;
	if (canonical_units(c, milli / qt->pods, "m", qt->cpu_share,
			    sizeof(qt->cpu_share)) != VG_OK)
		return VG_INVAL;
	if (bytes / qt->pods >= unit)
		return canonical_units(c, bytes / qt->pods / unit,
				       binary ? "Mi" : "M", qt->mem_share,
				       sizeof(qt->mem_share));
	return canonical_units(c, bytes / qt->pods, "", qt->mem_share,
			       sizeof(qt->mem_share));
}

/* --- builders ---------------------------------------------------------- */

static int build_namespace(struct tctx *c, json_t **out)
{
	json_t *o = object(c, "v1", "Namespace", c->ns, 0);
	json_t *l = json_object_get(json_object_get(o, "metadata"), "labels");

	if (!o)
		return nomem(c, "Namespace");
	/* agents need no privileges: hold their pods to the baseline */
	json_object_set_new(l, "pod-security.kubernetes.io/enforce",
			    json_string("baseline"));
	json_object_set_new(l, "pod-security.kubernetes.io/warn",
			    json_string("restricted"));
	json_object_set_new(l, "pod-security.kubernetes.io/audit",
			    json_string("restricted"));
	*out = o;
	return VG_OK;
}

static int build_quota(struct tctx *c, json_t **out)
{
	struct quota qt;
	char pods[24];
	json_t *o;

	if (read_quota(c, &qt) != VG_OK)
		return c->err ? c->err->code : VG_INVAL;
	snprintf(pods, sizeof(pods), "%lld", qt.pods);
	o = object(c, "v1", "ResourceQuota", TENANT_QUOTA_NAME, 1);
	if (!o || json_object_set_new(o, "spec",
				      json_pack("{s:{s:s,s:s,s:s,s:s,s:s}}",
						"hard", "pods", pods,
						"requests.cpu", qt.cpu,
						"limits.cpu", qt.cpu,
						"requests.memory", qt.mem,
						"limits.memory", qt.mem))) {
		json_decref(o);
		return nomem(c, "ResourceQuota");
	}
	*out = o;
	return VG_OK;
}

static int build_limits(struct tctx *c, json_t **out)
{
	struct quota qt;
	json_t *o;

	if (read_quota(c, &qt) != VG_OK)
		return c->err ? c->err->code : VG_INVAL;
	o = object(c, "v1", "LimitRange", TENANT_LIMITS_NAME, 1);
	/* every field the API server would default is given, so the live
	 * object matches this intent exactly */
	if (!o ||
	    json_object_set_new(
		    o, "spec",
		    json_pack("{s:[{s:s,s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s}}]}",
			      "limits", "type", "Container", "default", "cpu",
			      qt.cpu_share, "memory", qt.mem_share,
			      "defaultRequest", "cpu", qt.cpu_share, "memory",
			      qt.mem_share, "max", "cpu", qt.cpu, "memory",
			      qt.mem))) {
		json_decref(o);
		return nomem(c, "LimitRange");
	}
	*out = o;
	return VG_OK;
}

/*
 * `target` as an ipBlock (new), or NULL for a host name. IPs become /32
 * or /128 blocks; IPv4 blocks wider than /32 that contain the cloud
 * metadata address exclude it.
 */
static json_t *ip_block(const char *target)
{
	char addr[INET6_ADDRSTRLEN + 1], cidr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(target, '/');
	size_t alen = slash ? (size_t)(slash - target) : strlen(target);
	unsigned char bin[16];
	long bits = -1;
	int v6;

	if (alen >= sizeof(addr))
		return NULL;
	memcpy(addr, target, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		v6 = 1;
	else
		return NULL;
	if (slash) {
		char *end;

		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || bits < 0 ||
		    bits > (v6 ? 128 : 32))
			return NULL;
		snprintf(cidr, sizeof(cidr), "%s", target);
	} else {
		snprintf(cidr, sizeof(cidr), "%s/%d", addr, v6 ? 128 : 32);
	}
	if (!v6 && bits >= 0 && bits < 32) {
		uint32_t net, mask;

		memcpy(&net, bin, sizeof(net));
		net = ntohl(net);
		mask = bits ? 0xffffffffu << (32 - bits) : 0;

		if ((METADATA_ADDR & mask) == (net & mask))
			return json_pack("{s:s,s:[s]}", "cidr", cidr, "except",
					 "169.254.169.254/32");
	}
	return json_pack("{s:s}", "cidr", cidr);
}

/* The egress rule to DNS: the cluster's resolver only. */
static json_t *egress_dns(void)
{
	return json_pack(
		"{s:[{s:{s:{s:s}},s:{s:{s:s}}}],s:[{s:s,s:i},{s:s,s:i}]}",
		"to", "namespaceSelector", "matchLabels",
		"kubernetes.io/metadata.name", "kube-system", "podSelector",
		"matchLabels", "k8s-app", "kube-dns", "ports", "protocol",
		"UDP", "port", 53, "protocol", "TCP", "port", 53);
}

/* The egress rule to the platform's gateway pods, where results go. */
static json_t *egress_gateway(const struct tenant_platform *pf)
{
	return json_pack(
		"{s:[{s:{s:{s:s}},s:{s:{s:s,s:s}}}],s:[{s:s,s:i}]}", "to",
		"namespaceSelector", "matchLabels",
		"kubernetes.io/metadata.name", pf->ns, "podSelector",
		"matchLabels", LABEL_COMPONENT, TENANT_GATEWAY_COMPONENT,
		LABEL_INSTANCE, pf->name, "ports", "protocol", "TCP", "port",
		pf->gateway_port ? pf->gateway_port
				 : TENANT_DEFAULT_GATEWAY_PORT);
}

static int build_netpol(struct tctx *c, json_t **out)
{
	const json_t *targets = vg_json_get(c->t, "spec.allowedTargets");
	json_t *o = NULL, *egress = json_array(), *blocks = json_array(), *t;
	size_t i;
	int rc = VG_OK;

	if (!egress || !blocks || json_array_append_new(egress, egress_dns()))
		goto nomem;
	if (c->pf && c->pf->ns && c->pf->name &&
	    json_array_append_new(egress, egress_gateway(c->pf)))
		goto nomem;
	if (targets && !json_is_array(targets) && !json_is_null(targets)) {
		rc = vg_err_set(c->err, VG_INVAL,
				"spec.allowedTargets must be a list");
		goto out;
	}
	/* the authorised scope: addresses and networks, every port; host
	 * names are the agent's to enforce */
	json_array_foreach(targets, i, t)
	{
		json_t *b;

		if (!json_is_string(t)) {
			rc = vg_err_set(c->err, VG_INVAL,
					"spec.allowedTargets[%zu] must be a "
					"string",
					i);
			goto out;
		}
		b = ip_block(json_string_value(t));
		if (b && json_array_append_new(blocks,
					       json_pack("{s:o}", "ipBlock", b)))
			goto nomem;
	}
	/* an egress rule without peers would allow everything: the targets'
	 * rule exists only with at least one block */
	if (json_array_size(blocks) &&
	    json_array_append_new(egress, json_pack("{s:O}", "to", blocks)))
		goto nomem;
	o = object(c, "networking.k8s.io/v1", "NetworkPolicy",
		   TENANT_NETPOL_NAME, 1);
	if (!o || json_object_set_new(o, "spec",
				      json_pack("{s:{},s:[s,s],s:O}",
						"podSelector", "policyTypes",
						"Ingress", "Egress", "egress",
						egress)))
		goto nomem;
	*out = o;
	o = NULL;
	goto out;
nomem:
	rc = nomem(c, "NetworkPolicy");
out:
	json_decref(o);
	json_decref(egress);
	json_decref(blocks);
	return rc;
}

/* What tenant admins may do in their namespace. The operator can only
 * grant what it holds itself (config/rbac/operator.yaml). */
static const char *const verbs_all[] = { "get",	  "list",   "watch",
					 "create", "update", "patch",
					 "delete", "deletecollection", NULL };
static const char *const verbs_read[] = { "get", "list", "watch", NULL };
static const char *const verbs_get[] = { "get", NULL };

static const struct admin_rule {
	const char *group;
	const char *resources[3];
	const char *const *verbs;
} admin_rules[] = {
	{ VIGIL_GROUP, { "scanpolicies" }, verbs_all },
	{ VIGIL_GROUP, { "scanpolicies/status" }, verbs_get },
	{ "batch", { "jobs" }, verbs_read },
	{ "", { "pods", "pods/log" }, verbs_read },
	{ "", { "events" }, verbs_read },
};

static json_t *strings(const char *const *s)
{
	json_t *a = json_array();

	for (; a && *s; s++)
		json_array_append_new(a, json_string(*s));
	return a;
}

static int build_role(struct tctx *c, json_t **out)
{
	json_t *o = object(c, RBAC_GROUP "/v1", "Role", TENANT_ROLE_NAME, 1);
	json_t *rules = json_array();

	if (!o || !rules)
		goto nomem;
	for (size_t i = 0; i < sizeof(admin_rules) / sizeof(admin_rules[0]);
	     i++) {
		const struct admin_rule *r = &admin_rules[i];
		json_t *rule = json_pack("{s:[s],s:o,s:o}", "apiGroups",
					 r->group, "resources",
					 strings(r->resources), "verbs",
					 strings(r->verbs));

		if (!rule || json_array_append_new(rules, rule))
			goto nomem;
	}
	if (json_object_set_new(o, "rules", rules)) {
		rules = NULL;
		goto nomem;
	}
	*out = o;
	return VG_OK;
nomem:
	json_decref(o);
	json_decref(rules);
	return nomem(c, "Role");
}

/* spec.admins.users and .groups, as RBAC subjects */
static const struct subject_kind {
	const char *field;
	const char *kind;
} subject_kinds[] = {
	{ "spec.admins.users", "User" },
	{ "spec.admins.groups", "Group" },
};

static int build_binding(struct tctx *c, json_t **out)
{
	json_t *subjects = json_array(), *o = NULL, *v;
	size_t i;

	if (!subjects)
		return nomem(c, "RoleBinding");
	for (size_t k = 0; k < sizeof(subject_kinds) / sizeof(subject_kinds[0]);
	     k++) {
		const json_t *list = vg_json_get(c->t, subject_kinds[k].field);

		if (list && !json_is_array(list) && !json_is_null(list)) {
			json_decref(subjects);
			return vg_err_set(c->err, VG_INVAL,
					  "%s must be a list",
					  subject_kinds[k].field);
		}
		json_array_foreach(list, i, v)
		{
			if (!json_is_string(v) || !json_string_length(v)) {
				json_decref(subjects);
				return vg_err_set(c->err, VG_INVAL,
						  "%s[%zu] must be a name",
						  subject_kinds[k].field, i);
			}
			json_array_append_new(
				subjects,
				json_pack("{s:s,s:s,s:s}", "kind",
					  subject_kinds[k].kind, "apiGroup",
					  RBAC_GROUP, "name",
					  json_string_value(v)));
		}
	}
	if (!json_array_size(subjects)) { /* nobody to bind: pruned */
		json_decref(subjects);
		*out = NULL;
		return VG_OK;
	}
	o = object(c, RBAC_GROUP "/v1", "RoleBinding", TENANT_BINDING_NAME, 1);
	if (!o || json_object_set_new(o, "roleRef",
				      json_pack("{s:s,s:s,s:s}", "apiGroup",
						RBAC_GROUP, "kind", "Role",
						"name", TENANT_ROLE_NAME)) ||
	    json_object_set_new(o, "subjects", subjects)) {
		json_decref(o);
		return nomem(c, "RoleBinding");
	}
	*out = o;
	return VG_OK;
}

/* The children in apply order (the namespace first). */
static const struct builder {
	const char *kind;
	int (*build)(struct tctx *c, json_t **out);
} builders[] = {
	{ "Namespace", build_namespace },
	{ "ResourceQuota", build_quota },
	{ "LimitRange", build_limits },
	{ "NetworkPolicy", build_netpol },
	{ "Role", build_role },
	{ "RoleBinding", build_binding },
};

static int tctx_init(struct tctx *c, const json_t *tenant,
		     const struct tenant_platform *pf, struct vg_err *err)
{
	memset(c, 0, sizeof(*c));
	c->t = tenant;
	c->pf = pf;
	c->err = err;
	c->name = md_str(tenant, "name");
	return tenant_namespace(tenant, c->ns, sizeof(c->ns), err);
}

int tenant_desired(const json_t *tenant, const struct tenant_platform *pf,
		   json_t **children, struct vg_err *err)
{
	struct tctx c;
	json_t *all = NULL;
	int rc;

	*children = NULL;
	rc = tctx_init(&c, tenant, pf, err);
	if (rc != VG_OK)
		return rc;
	all = json_array();
	if (!all)
		return vg_err_set(err, VG_NOMEM, "children");
	for (size_t i = 0; i < sizeof(builders) / sizeof(builders[0]); i++) {
		json_t *o = NULL;

		rc = builders[i].build(&c, &o);
		if (rc != VG_OK) {
			json_decref(all);
			return rc;
		}
		if (o)
			json_array_append_new(all, o);
	}
	*children = all;
	return VG_OK;
}

/* base64url without padding of n bytes into out (4 * n / 3 + 2 bytes). */
static void base64url(const unsigned char *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	for (int k = 0; k < len; k++)
		if (out[k] == '+')
			out[k] = '-';
		else if (out[k] == '/')
			out[k] = '_';
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
}

int tenant_agent_secret(const json_t *tenant, json_t **secret,
			struct vg_err *err)
{
	unsigned char raw[4 + TOKEN_BYTES];
	char token[TENANT_AGENT_TOKEN_LEN + 8];
	struct tctx c;
	json_t *o;
	int rc;

	*secret = NULL;
	rc = tctx_init(&c, tenant, NULL, err);
	if (rc != VG_OK)
		return rc;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return vg_err_sys(err, VG_IO, "getrandom");
	/* an API key of the gateway: "vgk_<8 hex>_<43 base64url>", the
	 * first 12 characters its public prefix */
	snprintf(token, sizeof(token), "vgk_%02x%02x%02x%02x_", raw[0], raw[1],
		 raw[2], raw[3]);
	base64url(raw + 4, TOKEN_BYTES, token + 13);
	o = object(&c, "v1", "Secret", TENANT_AGENT_SECRET, 1);
	if (!o || json_object_set_new(o, "type", json_string("Opaque")) ||
	    json_object_set_new(o, "stringData",
				json_pack("{s:s}", TENANT_AGENT_SECRET_KEY,
					  token))) {
		json_decref(o);
		rc = vg_err_set(err, VG_NOMEM, "agent Secret");
	} else {
		*secret = o;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

/* --- the platform database: where ------------------------------------- */

static int copy_field(char *dst, size_t size, const char *src,
		      const char *what, struct vg_err *err)
{
	int n = snprintf(dst, size, "%s", src ? src : "");

	if (n < 0 || (size_t)n >= size)
		return vg_err_set(err, VG_INVAL, "%s is too long", what);
	return VG_OK;
}

int tenant_platform_db(const json_t *platform, struct tenant_dbref *ref,
		       struct vg_err *err)
{
	const json_t *m = vg_json_get_object(platform, "spec.database.managed");
	const json_t *x = vg_json_get_object(platform, "spec.database.external");
	const char *name = md_str(platform, "name");
	const char *ns = md_str(platform, "namespace");
	int rc;

	memset(ref, 0, sizeof(*ref));
	if (!name || !ns || !m == !x)
		return vg_err_set(err, VG_INVAL,
				  "Platform %s: spec.database needs exactly "
				  "one of managed and external",
				  name ? name : "?");
	rc = copy_field(ref->ns, sizeof(ref->ns), ns, "namespace", err);
	if (rc != VG_OK)
		return rc;
	if (m) {
		/* what the Platform reconciler runs: see platform.h */
		snprintf(ref->host, sizeof(ref->host), "%s-postgres.%s.svc",
			 name, ns);
		ref->port = 5432;
		snprintf(ref->dbname, sizeof(ref->dbname), "vigil");
		snprintf(ref->sslmode, sizeof(ref->sslmode), "disable");
		snprintf(ref->secret, sizeof(ref->secret), "%s-db-credentials",
			 name);
		snprintf(ref->user_key, sizeof(ref->user_key), "username");
		snprintf(ref->pass_key, sizeof(ref->pass_key), "password");
		return VG_OK;
	}
	ref->port = (int)vg_json_get_int(x, "port", 5432);
	if (ref->port < 1 || ref->port > 65535)
		return vg_err_set(err, VG_INVAL,
				  "spec.database.external.port out of range");
	if ((rc = copy_field(ref->host, sizeof(ref->host),
			     vg_json_get_str(x, "host", NULL), "host", err)) ||
	    (rc = copy_field(ref->dbname, sizeof(ref->dbname),
			     vg_json_get_str(x, "database", "vigil"),
			     "database", err)) ||
	    (rc = copy_field(ref->sslmode, sizeof(ref->sslmode),
			     vg_json_get_str(x, "sslMode", "require"),
			     "sslMode", err)) ||
	    (rc = copy_field(ref->secret, sizeof(ref->secret),
			     vg_json_get_str(x, "credentialsSecret.name", NULL),
			     "credentialsSecret.name", err)) ||
	    (rc = copy_field(ref->user_key, sizeof(ref->user_key),
			     vg_json_get_str(x, "credentialsSecret.usernameKey",
					     "username"),
			     "usernameKey", err)) ||
	    (rc = copy_field(ref->pass_key, sizeof(ref->pass_key),
			     vg_json_get_str(x, "credentialsSecret.passwordKey",
					     "password"),
			     "passwordKey", err)) ||
	    (rc = copy_field(ref->ca_secret, sizeof(ref->ca_secret),
			     vg_json_get_str(x, "caSecret.name", ""),
			     "caSecret.name", err)) ||
	    (rc = copy_field(ref->ca_key, sizeof(ref->ca_key),
			     vg_json_get_str(x, "caSecret.key", "ca.crt"),
			     "caSecret.key", err)))
		return rc;
	if (!ref->host[0] || !ref->secret[0])
		return vg_err_set(err, VG_INVAL,
				  "spec.database.external needs host and "
				  "credentialsSecret.name");
	return VG_OK;
}

/* key='value' with ' and \ escaped, as libpq reads it */
static int conn_kv(struct vg_buf *b, const char *key, const char *val)
{
	int rc = vg_buf_appendf(b, "%s%s='", b->len ? " " : "", key);

	for (const char *p = val; rc == VG_OK && *p; p++) {
		if (*p == '\'' || *p == '\\')
			rc = vg_buf_append_byte(b, '\\');
		if (rc == VG_OK)
			rc = vg_buf_append_byte(b, *p);
	}
	return rc == VG_OK ? vg_buf_append_byte(b, '\'') : rc;
}

int tenant_conninfo(const struct tenant_dbref *ref, const char *user,
		    const char *password, const char *ca_file, char **out,
		    struct vg_err *err)
{
	struct vg_buf b;
	char port[16];
	int rc;

	*out = NULL;
	snprintf(port, sizeof(port), "%d", ref->port);
	vg_buf_init(&b, 0);
	rc = conn_kv(&b, "host", ref->host);
	if (rc == VG_OK)
		rc = conn_kv(&b, "port", port);
	if (rc == VG_OK)
		rc = conn_kv(&b, "dbname", ref->dbname);
	if (rc == VG_OK)
		rc = conn_kv(&b, "sslmode", ref->sslmode);
	/* The Platform authenticates with a password over what sslMode
	 * says; libpq's default (prefer GSSAPI encryption) would first look
	 * for Kerberos credentials on every connect, which loads and
	 * initialises krb5 (0.6 MB resident) for nothing. */
	if (rc == VG_OK)
		rc = conn_kv(&b, "gssencmode", "disable");
	if (rc == VG_OK && user)
		rc = conn_kv(&b, "user", user);
	if (rc == VG_OK && password)
		rc = conn_kv(&b, "password", password);
	if (rc == VG_OK && ca_file)
		rc = conn_kv(&b, "sslrootcert", ca_file);
	if (rc == VG_OK && !(*out = vg_buf_take(&b)))
		rc = VG_NOMEM;
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	vg_buf_cleanup(&b);
	return rc == VG_OK ? VG_OK : vg_err_set(err, rc, "conninfo");
}

/* --- the platform database: the pool ----------------------------------- */

struct tenant_db {
	char *conninfo;
	struct vg_db_pool *pool;
	int refs; /* under db_mu */
	pthread_mutex_t migrate_mu;
	int migrated;
};

static pthread_mutex_t db_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tenant_db *db_current;

static void db_free(struct tenant_db *db)
{
	if (!db)
		return;
	vg_db_pool_free(db->pool);
	if (db->conninfo)
		OPENSSL_cleanse(db->conninfo, strlen(db->conninfo));
	free(db->conninfo);
	pthread_mutex_destroy(&db->migrate_mu);
	free(db);
}

static void db_unref_locked(struct tenant_db *db)
{
	if (db && --db->refs == 0)
		db_free(db);
}

static int db_new(const char *conninfo, struct tenant_db **out,
		  struct vg_err *err)
{
	struct vg_db_opts o = {
		.conninfo = conninfo,
		.max_conns = 4,
		.connect_timeout_s = 5,
		.acquire_timeout_ms = 10000,
		.application_name = "vigil-operator",
	};
	struct tenant_db *db = calloc(1, sizeof(*db));
	int rc;

	if (!db || !(db->conninfo = strdup(conninfo))) {
		free(db);
		return vg_err_set(err, VG_NOMEM, "database handle");
	}
	pthread_mutex_init(&db->migrate_mu, NULL);
	rc = vg_db_pool_new(&o, &db->pool, err);
	if (rc != VG_OK) {
		db_free(db);
		return rc;
	}
	*out = db;
	return VG_OK;
}

int tenant_db_get(const char *conninfo, struct tenant_db **out,
		  struct vg_err *err)
{
	struct tenant_db *db = NULL;
	int rc = VG_OK;

	*out = NULL;
	pthread_mutex_lock(&db_mu);
	if (db_current && strcmp(db_current->conninfo, conninfo) == 0) {
		db = db_current;
	} else {
		rc = db_new(conninfo, &db, err);
		if (rc == VG_OK) { /* the new target replaces the old one */
			db_unref_locked(db_current);
			db_current = db;
			db->refs = 1;
		}
	}
	if (db)
		db->refs++;
	pthread_mutex_unlock(&db_mu);
	if (rc != VG_OK)
		return rc;

	pthread_mutex_lock(&db->migrate_mu);
	if (!db->migrated) {
		rc = vg_db_migrate(db->pool, NULL, NULL, err);
		db->migrated = rc == VG_OK;
	}
	pthread_mutex_unlock(&db->migrate_mu);
	if (rc != VG_OK) {
		tenant_db_put(db);
		return rc;
	}
	*out = db;
	return VG_OK;
}

void tenant_db_put(struct tenant_db *db)
{
	pthread_mutex_lock(&db_mu);
	db_unref_locked(db);
	pthread_mutex_unlock(&db_mu);
}

struct vg_db_pool *tenant_db_pool(struct tenant_db *db)
{
	return db->pool;
}

void tenant_db_shutdown(void)
{
	pthread_mutex_lock(&db_mu);
	db_unref_locked(db_current);
	db_current = NULL;
	pthread_mutex_unlock(&db_mu);
}

/* --- the platform database: the tenant's row --------------------------- */

static const struct vg_db_stmt stmt_upsert = {
	.name = "vigil_tenant_upsert",
	.sql = "SELECT vigil.tenant_upsert($1, $2, $3, $4)",
	.nparams = 4,
};

static const struct vg_db_stmt stmt_archive = {
	.name = "vigil_tenant_archive",
	.sql = "SELECT vigil.tenant_archive($1)",
	.nparams = 1,
};

struct row_call {
	const struct vg_db_stmt *st;
	const char *params[4];
	char *id; /* 37 bytes */
};

static int call_row(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct row_call *rc_ = arg;
	struct vg_db_res *r = NULL;
	const char *v;
	int rc = vg_db_exec_stmt(c, rc_->st, rc_->params, &r, err);

	if (rc != VG_OK)
		return rc;
	v = vg_db_res_get(r, 0, 0);
	snprintf(rc_->id, 37, "%s", v && vg_db_is_uuid(v) ? v : "");
	vg_db_res_free(r);
	return VG_OK;
}

int tenant_db_upsert(struct vg_db_pool *p, const json_t *tenant,
		     char id[37], struct vg_err *err)
{
	char ns[NAME_MAX_LEN + 1];
	struct row_call call = { .st = &stmt_upsert, .id = id };
	const char *uid = md_str(tenant, "uid");
	int rc;

	id[0] = '\0';
	if (!vg_db_is_uuid(uid))
		return vg_err_set(err, VG_INVAL, "metadata.uid is not a UUID");
	rc = tenant_namespace(tenant, ns, sizeof(ns), err);
	if (rc != VG_OK)
		return rc;
	call.params[0] = uid;
	call.params[1] = md_str(tenant, "name");
	call.params[2] = vg_json_get_str(tenant, "spec.displayName", "");
	call.params[3] = ns;
	rc = vg_db_tx(p, NULL, 0, call_row, &call, err);
	if (rc == VG_OK && !id[0])
		rc = vg_err_set(err, VG_DB, "tenant_upsert returned no id");
	return rc;
}

int tenant_db_archive(struct vg_db_pool *p, const char *uid, char id[37],
		      struct vg_err *err)
{
	struct row_call call = { .st = &stmt_archive, .params = { uid },
				 .id = id };

	id[0] = '\0';
	if (!vg_db_is_uuid(uid))
		return vg_err_set(err, VG_INVAL, "metadata.uid is not a UUID");
	return vg_db_tx(p, NULL, 0, call_row, &call, err);
}

static const struct vg_db_stmt stmt_agent_key = {
	.name = "vigil_agent_key_register",
	.sql = "SELECT vigil.agent_key_register($1, $2, $3)",
	.nparams = 3,
};

static int call_stmt(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct row_call *rc_ = arg;

	return vg_db_exec_stmt(c, rc_->st, rc_->params, NULL, err);
}

int tenant_db_register_agent_key(struct vg_db_pool *p, const char *id,
				 const char *token, struct vg_err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char prefix[13], hex[65];
	struct row_call call = { .st = &stmt_agent_key,
				 .params = { id, prefix, hex } };

	if (strlen(token) != TENANT_AGENT_TOKEN_LEN ||
	    strncmp(token, "vgk_", 4) != 0 || token[12] != '_')
		return vg_err_set(err, VG_INVAL,
				  "the agent token is not an API key");
	memcpy(prefix, token, 12);
	prefix[12] = '\0';
	if (!EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL))
		return vg_err_set(err, VG_INTERNAL, "SHA-256");
	for (unsigned int k = 0; k < mdlen; k++)
		snprintf(hex + 2 * k, 3, "%02x", md[k]);
	return vg_db_tx(p, NULL, 0, call_stmt, &call, err);
}

static const struct {
	int code;
	const char *reason;
} db_reasons[] = {
	{ VG_IO, "DatabaseUnavailable" },
	{ VG_TIMEOUT, "DatabaseUnavailable" },
	{ VG_UNAUTHORIZED, "DatabaseUnauthorized" },
	{ VG_EXISTS, "DatabaseConflict" },
	{ VG_CONFLICT, "DatabaseConflict" },
	{ VG_CONFIG, "DatabaseMisconfigured" },
};

const char *tenant_db_reason(const struct vg_err *err)
{
	for (size_t i = 0; err && i < sizeof(db_reasons) / sizeof(db_reasons[0]);
	     i++)
		if (db_reasons[i].code == err->code)
			return db_reasons[i].reason;
	return "DatabaseError";
}

/* --- reconcile --------------------------------------------------------- */

static const struct tenant_env default_env;

/* The Platform whose database and gateway the tenants use (new
 * reference), or NULL. */
static json_t *pick_platform(struct rec *rc, const struct tenant_env *env)
{
	return platform_pick(rc->m, env->platform_namespace);
}

/* The decoded value of data[key] of a Secret (new string). */
static int secret_value(const json_t *secret, const char *key, char **out,
			struct vg_err *err)
{
	const char *b64 = json_string_value(
		json_object_get(json_object_get(secret, "data"), key));
	size_t len = b64 ? strlen(b64) : 0;
	unsigned char *buf;
	int n;

	*out = NULL;
	if (!b64)
		return vg_err_set(err, VG_NOTFOUND, "Secret %s has no key %s",
				  md_str(secret, "name"), key);
	buf = malloc(len / 4 * 3 + 4);
	if (!buf)
		return vg_err_set(err, VG_NOMEM, "secret value");
	n = len % 4 ? -1 : EVP_DecodeBlock(buf, (const unsigned char *)b64,
					   (int)len);
	if (n >= 0) {
		n -= (len > 0 && b64[len - 1] == '=') +
		     (len > 1 && b64[len - 2] == '=');
		buf[n] = '\0';
	}
	if (n < 0 || memchr(buf, '\0', (size_t)n)) {
		free(buf);
		return vg_err_set(err, VG_INVAL,
				  "Secret %s key %s is not valid text",
				  md_str(secret, "name"), key);
	}
	*out = (char *)buf;
	return VG_OK;
}

/* Keep the CA certificate in a file for libpq's sslrootcert. */
static int write_ca(const struct tenant_dbref *ref, const char *pem,
		    char *path, size_t size, struct vg_err *err)
{
	const char *dir = getenv("TMPDIR");
	char tmp[PATH_MAX];
	size_t len = strlen(pem);
	int fd;

	int n = snprintf(path, size, "%s/vigil-operator-%s-%s.crt",
			 dir && *dir ? dir : "/tmp", ref->ns, ref->ca_secret);

	if (n < 0 || (size_t)n >= size ||
	    (size_t)n + sizeof(".tmp") > sizeof(tmp))
		return vg_err_set(err, VG_TOOLARGE, "CA file path");
	memcpy(tmp, path, (size_t)n);
	memcpy(tmp + n, ".tmp", sizeof(".tmp"));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return vg_err_sys(err, VG_IO, "%s", tmp);
	if (write(fd, pem, len) != (ssize_t)len) {
		close(fd);
		return vg_err_sys(err, VG_IO, "%s", tmp);
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		return vg_err_sys(err, VG_IO, "%s", path);
	return VG_OK;
}

/* The conninfo of the platform database (new), or VG_NOTFOUND when none
 * is configured. Reads credentials Secrets from the API server (they are
 * the user's, not in the operator's caches). */
static int resolve_conninfo(struct rec *rc, const struct tenant_env *env,
			    const json_t *platform, char **out,
			    struct vg_err *err)
{
	const char *url = env->database_url ? env->database_url
					    : getenv("VIGIL_DATABASE_URL");
	struct tenant_dbref ref;
	json_t *sec = NULL, *ca = NULL;
	char *user = NULL, *pass = NULL, *pem = NULL, ca_file[PATH_MAX];
	int r;

	*out = NULL;
	if (url && *url) {
		*out = strdup(url);
		return *out ? VG_OK : vg_err_set(err, VG_NOMEM, "conninfo");
	}
	if (!platform)
		return vg_err_set(err, VG_NOTFOUND,
				  "no Platform and no --database-url: nowhere "
				  "to record the tenant");
	r = tenant_platform_db(platform, &ref, err);
	if (r == VG_OK)
		r = vg_kube_get(ctl_client(rc->m), &vg_kube_secrets, ref.ns,
				ref.secret, NULL, &sec, err);
	if (r == VG_OK)
		r = secret_value(sec, ref.user_key, &user, err);
	if (r == VG_OK)
		r = secret_value(sec, ref.pass_key, &pass, err);
	if (r == VG_OK && ref.ca_secret[0]) {
		r = vg_kube_get(ctl_client(rc->m), &vg_kube_secrets, ref.ns,
				ref.ca_secret, NULL, &ca, err);
		if (r == VG_OK)
			r = secret_value(ca, ref.ca_key, &pem, err);
		if (r == VG_OK)
			r = write_ca(&ref, pem, ca_file, sizeof(ca_file), err);
	}
	if (r == VG_OK)
		r = tenant_conninfo(&ref, user, pass,
				    ref.ca_secret[0] ? ca_file : NULL, out,
				    err);
	if (pass)
		OPENSSL_cleanse(pass, strlen(pass));
	free(user);
	free(pass);
	free(pem);
	json_decref(sec);
	json_decref(ca);
	if (r == VG_NOTFOUND && err) { /* a missing Secret is not "no database" */
		char msg[VG_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		r = vg_err_set(err, VG_CONFIG, "%s", msg);
	}
	return r;
}

/* What went wrong, for the conditions; reason NULL when nothing did. */
struct problem {
	const char *reason;
	char msg[512];
};

static void problem_set(struct problem *p, const char *reason,
			const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem_set(struct problem *p, const char *reason,
			const char *fmt, ...)
{
	va_list ap;

	if (p->reason) /* the first problem is the one reported */
		return;
	p->reason = reason;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static int write_status(struct rec *rc, const char *ns, const char *dbid,
			const struct problem *p)
{
	const json_t *live = json_object_get(rc->obj, "status");
	const char *old_id = json_string_value(json_object_get(live, "databaseID"));
	const json_t *active = json_object_get(live, "activeScans");
	json_t *st = json_object();
	struct vg_err keep;
	int r;

	if (!st)
		return vg_err_set(&rc->err, VG_NOMEM, "status");
	json_object_set_new(st, "observedGeneration",
			    json_integer(vg_json_get_int(
				    rc->obj, "metadata.generation", 0)));
	if (ns && *ns)
		json_object_set_new(st, "namespace", json_string(ns));
	if ((dbid && *dbid) || old_id)
		json_object_set_new(st, "databaseID",
				    json_string(dbid && *dbid ? dbid : old_id));
	if (active) /* the ScanPolicy controller's to maintain */
		json_object_set(st, "activeScans", (json_t *)active);
	ctl_condition(rc, st, "Ready", !p->reason,
		      p->reason ? p->reason : "Reconciled",
		      p->reason ? p->msg
				: "namespace, quota, network policy, RBAC and "
				  "database row are in place");
	ctl_condition(rc, st, "Degraded", p->reason != NULL,
		      p->reason ? p->reason : "AsExpected", p->msg);
	keep = rc->err; /* the failure being reported, for the queue's log */
	r = ctl_update_status(rc, st);
	if (r == VG_OK)
		rc->err = keep;
	json_decref(st);
	return r;
}

/* Register the agent token of the tenant's Secret (from the cache; a
 * Secret just created is registered on the reconcile its event brings)
 * with the gateway's API keys. */
static int register_agent_key(struct rec *rc, struct vg_db_pool *pool,
			      const char *id, struct vg_err *err)
{
	char ns[NAME_MAX_LEN + 1], *token = NULL;
	json_t *secret;
	int r;

	if (tenant_namespace(rc->obj, ns, sizeof(ns), NULL) != VG_OK)
		return VG_OK;
	secret = ctl_get_cached(rc->m, &vg_kube_secrets, ns,
				TENANT_AGENT_SECRET);
	if (!secret)
		return VG_OK;
	r = secret_value(secret, TENANT_AGENT_SECRET_KEY, &token, err);
	json_decref(secret);
	if (r == VG_OK)
		r = tenant_db_register_agent_key(pool, id, token, err);
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	return r;
}

/* The database step of a reconcile: the row written (id) or archived. */
static int with_db(struct rec *rc, const struct tenant_env *env,
		   const json_t *platform, int archive, char id[37],
		   struct problem *p)
{
	struct tenant_db *db = NULL;
	struct vg_err err = { 0 };
	char *conninfo = NULL;
	int r;

	r = resolve_conninfo(rc, env, platform, &conninfo, &err);
	if (r == VG_NOTFOUND) {
		problem_set(p, "DatabaseNotConfigured", "%s", err.msg);
		return r;
	}
	if (r == VG_OK)
		r = tenant_db_get(conninfo, &db, &err);
	if (r == VG_OK)
		r = archive ? tenant_db_archive(tenant_db_pool(db),
						md_str(rc->obj, "uid"), id,
						&err)
			    : tenant_db_upsert(tenant_db_pool(db), rc->obj, id,
					       &err);
	if (r == VG_OK && !archive)
		r = register_agent_key(rc, tenant_db_pool(db), id, &err);
	tenant_db_put(db);
	if (conninfo)
		OPENSSL_cleanse(conninfo, strlen(conninfo));
	free(conninfo);
	if (r != VG_OK) {
		const char *reason = tenant_db_reason(&err);

		problem_set(p, reason, "%s", err.msg);
		ctl_event(rc, "Warning", reason, "%s", err.msg);
		rc->err = err;
	}
	return r;
}

int tenant_db_open(struct rec *rc, const struct tenant_env *env,
		   const json_t *platform, struct tenant_db **db,
		   struct vg_err *err)
{
	char *conninfo = NULL;
	int r;

	*db = NULL;
	r = resolve_conninfo(rc, env ? env : &default_env, platform, &conninfo,
			     err);
	if (r == VG_OK)
		r = tenant_db_get(conninfo, db, err);
	if (conninfo)
		OPENSSL_cleanse(conninfo, strlen(conninfo));
	free(conninfo);
	return r;
}

static const struct vg_db_stmt stmt_run_summary = {
	.name = "vigil_run_summary",
	.sql = "SELECT state, finding_counts::text, open_ports "
	       "FROM vigil.run_summary($1, $2)",
	.nparams = 2,
};

struct summary_call {
	const char *params[2];
	json_t *out;
};

static int call_summary(struct vg_db_conn *c, void *arg, struct vg_err *err)
{
	struct summary_call *sc = arg;
	struct vg_db_res *r = NULL;
	json_t *counts;
	int rc = vg_db_exec_stmt(c, &stmt_run_summary, sc->params, &r, err);

	if (rc != VG_OK)
		return rc;
	if (vg_db_res_rows(r) == 1) {
		counts = json_loads(vg_db_res_get(r, 0, 1), 0, NULL);
		sc->out = json_pack("{s:s,s:o,s:I}", "state",
				    vg_db_res_get(r, 0, 0),
				    "findings", counts ? counts : json_object(),
				    "openPorts",
				    (json_int_t)strtoll(vg_db_res_get(r, 0, 2),
							NULL, 10));
		if (!sc->out)
			rc = vg_err_set(err, VG_NOMEM, "out of memory");
	}
	vg_db_res_free(r);
	return rc;
}

int tenant_db_run_summary(struct vg_db_pool *p, const char *tenant_id,
			  const char *job, json_t **out, struct vg_err *err)
{
	struct summary_call sc = { .params = { tenant_id, job } };
	int rc;

	*out = NULL;
	if (!vg_db_is_uuid(tenant_id))
		return vg_err_set(err, VG_INVAL, "tenant id is not a UUID");
	rc = vg_db_tx(p, NULL, 0, call_summary, &sc, err);
	if (rc == VG_OK && !sc.out)
		rc = vg_err_set(err, VG_NOTFOUND, "no run for Job %s", job);
	if (rc == VG_OK)
		*out = sc.out;
	else
		json_decref(sc.out);
	return rc;
}

/* Deletion: archive the row, then let the Tenant go. */
static enum rec_result finalize(struct rec *rc, const struct tenant_env *env)
{
	struct problem p = { 0 };
	json_t *platform;
	char id[37] = "";
	int r;

	if (!ctl_has_finalizer(rc, TENANT_FINALIZER))
		return REC_DONE;
	platform = pick_platform(rc, env);
	r = with_db(rc, env, platform, 1, id, &p);
	json_decref(platform);
	if (r != VG_OK) {
		write_status(rc, vg_json_get_str(rc->obj, "status.namespace", ""),
			     NULL, &p);
		if (r == VG_NOTFOUND) {
			rc->after = TENANT_REQUEUE_SECONDS;
			return REC_REQUEUE_AFTER;
		}
		return REC_ERROR;
	}
	if (id[0])
		ctl_event(rc, "Normal", "Archived",
			  "archived the tenant's database row %s", id);
	return ctl_remove_finalizer(rc, TENANT_FINALIZER) == VG_OK ? REC_DONE
								   : REC_ERROR;
}

/* Apply every child; the first failure goes to `p`. */
static int apply_children(struct rec *rc, json_t *children, struct problem *p)
{
	json_t *o, *secret = NULL;
	size_t i;
	int first = VG_OK, ns_ok = 0;

	json_array_foreach(children, i, o)
	{
		const char *kind = json_string_value(json_object_get(o, "kind"));
		const struct vg_kube_resource *r = vg_kube_resource_find(
			json_string_value(json_object_get(o, "apiVersion")),
			kind);
		int ar = r ? ctl_apply(rc, r, o)
			   : vg_err_set(&rc->err, VG_INTERNAL, "no kind %s",
					kind);

		if (ar == VG_OK && r == &vg_kube_namespaces)
			ns_ok = 1;
		if (ar != VG_OK && first == VG_OK) {
			first = ar;
			problem_set(p, "ApplyFailed", "%s %s: %s", kind,
				    md_str(o, "name"), rc->err.msg);
		}
	}
	if (ns_ok) {
		struct vg_err err = { 0 };
		int sr = tenant_agent_secret(rc->obj, &secret, &err);

		if (sr == VG_OK)
			sr = ctl_create_once(rc, &vg_kube_secrets, secret);
		else
			rc->err = err;
		if (sr != VG_OK && first == VG_OK) {
			first = sr;
			problem_set(p, "ApplyFailed", "Secret %s: %s",
				    TENANT_AGENT_SECRET, rc->err.msg);
		}
		json_decref(secret);
	}
	return first;
}

static const struct vg_kube_resource *const owned_kinds[] = {
	&vg_kube_namespaces,	  &vg_kube_resourcequotas,
	&vg_kube_limitranges,	  &vg_kube_networkpolicies,
	&vg_kube_roles,		  &vg_kube_rolebindings,
	&vg_kube_secrets,	  NULL,
};

enum rec_result tenant_reconcile(struct rec *rc)
{
	const struct tenant_env *env = rc->ctx ? rc->ctx : &default_env;
	struct tenant_platform pf = { 0 };
	struct problem p = { 0 };
	json_t *platform = NULL, *children = NULL;
	char ns[NAME_MAX_LEN + 1] = "", id[37] = "";
	enum rec_result res = REC_DONE;
	int applied, dbr, had_id;

	if (!rc->obj)
		return REC_DONE; /* gone: children follow by garbage collection */
	if (ctl_is_deleting(rc))
		return finalize(rc, env);
	/* before the row exists, so a deletion always archives it */
	if (ctl_add_finalizer(rc, TENANT_FINALIZER) != VG_OK)
		return REC_ERROR;

	platform = pick_platform(rc, env);
	if (platform) {
		pf.ns = md_str(platform, "namespace");
		pf.name = md_str(platform, "name");
		pf.gateway_port = (int)vg_json_get_int(platform,
						       "spec.gateway.port",
						       TENANT_DEFAULT_GATEWAY_PORT);
	}
	if (tenant_desired(rc->obj, &pf, &children, &rc->err) != VG_OK) {
		problem_set(&p, "InvalidSpec", "%s", rc->err.msg);
		ctl_event(rc, "Warning", "InvalidSpec", "%s", rc->err.msg);
		write_status(rc, NULL, NULL, &p);
		json_decref(platform);
		return REC_DONE; /* nothing to retry until the spec changes */
	}
	tenant_namespace(rc->obj, ns, sizeof(ns), NULL);
	applied = apply_children(rc, children, &p);
	for (size_t i = 0; owned_kinds[i]; i++) {
		int pr = ctl_prune(rc, owned_kinds[i]);

		if (pr != VG_OK && applied == VG_OK) {
			applied = pr;
			problem_set(&p, "PruneFailed", "%s: %s",
				    owned_kinds[i]->kind, rc->err.msg);
		}
	}

	had_id = vg_json_get_str(rc->obj, "status.databaseID", NULL) != NULL;
	dbr = with_db(rc, env, platform, 0, id, &p);
	if (dbr == VG_OK && !had_id)
		ctl_event(rc, "Normal", "DatabaseRowCreated",
			  "the tenant is %s in the platform database", id);
	json_decref(platform);
	json_decref(children);

	if (write_status(rc, ns, id, &p) != VG_OK)
		res = REC_ERROR;
	if (applied != VG_OK || (dbr != VG_OK && dbr != VG_NOTFOUND))
		res = REC_ERROR; /* the work queue backs off */
	else if (dbr == VG_NOTFOUND && res == REC_DONE) {
		rc->after = TENANT_REQUEUE_SECONDS;
		res = REC_REQUEUE_AFTER;
	}
	return res;
}

const struct controller_def tenant_controller = {
	.name = "tenant",
	.primary = &vigil_tenants,
	.owned = owned_kinds,
	.reconcile = tenant_reconcile,
};
