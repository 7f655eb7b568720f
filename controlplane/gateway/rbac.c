/*
 * rbac.c - the permission table: which role may do what.
 *
 * Every route names one permission (router.c); this table is the only
 * place that grants them. Tenant roles apply inside their tenant (a
 * tenant-scoped route with no role there answers 404, so other tenants'
 * existence does not leak); platform-admin applies everywhere.
 * PERM_PUBLIC and PERM_AUTHENTICATED need no role.
 */
#include "gateway.h"

#include <string.h>

static const char *const role_names[ROLE_COUNT] = {
	[ROLE_ADMIN] = "admin",
	[ROLE_ANALYST] = "analyst",
	[ROLE_VIEWER] = "viewer",
	[ROLE_AGENT] = "agent",
	[ROLE_PLATFORM_ADMIN] = "platform-admin",
};

/* a grid, read by column */
/* clang-format off */
static const struct {
	enum gw_perm perm;
	const char *name;
	unsigned char allow[ROLE_COUNT]; /* admin analyst viewer agent p-admin */
} perms[PERM_COUNT] = {
	{PERM_PUBLIC,		"public",		{1, 1, 1, 1, 1}},
	{PERM_AUTHENTICATED,	"authenticated",	{1, 1, 1, 1, 1}},
	{PERM_TENANTS_LIST,	"tenants:list",		{0, 0, 0, 0, 1}},
	{PERM_TENANTS_CREATE,	"tenants:create",	{0, 0, 0, 0, 1}},
	{PERM_TENANTS_GET,	"tenants:get",		{1, 1, 1, 0, 1}},
	{PERM_USERS_LIST,	"users:list",		{1, 0, 0, 0, 1}},
	{PERM_USERS_MANAGE,	"users:manage",		{1, 0, 0, 0, 1}},
	{PERM_BINDINGS_LIST,	"role-bindings:list",	{1, 0, 0, 0, 1}},
	{PERM_BINDINGS_MANAGE,	"role-bindings:manage",	{1, 0, 0, 0, 1}},
	{PERM_APIKEYS_LIST,	"api-keys:list",	{1, 0, 0, 0, 1}},
	{PERM_APIKEYS_MANAGE,	"api-keys:manage",	{1, 0, 0, 0, 1}},
	{PERM_ESTOP_READ,	"emergency-stop:read",	{1, 1, 1, 1, 1}},
	{PERM_ESTOP_WRITE,	"emergency-stop:write",	{0, 0, 0, 0, 1}},
	{PERM_AUDIT_READ,	"audit:read",		{1, 0, 0, 0, 1}},
	{PERM_AUDIT_VERIFY,	"audit:verify",		{1, 0, 0, 0, 1}},
	{PERM_SCANS_READ,	"scans:read",		{1, 1, 1, 0, 1}},
	{PERM_SCANS_CREATE,	"scans:create",		{1, 1, 0, 0, 1}},
	{PERM_INGEST_WRITE,	"ingest:write",		{0, 0, 0, 1, 0}},
	{PERM_FINDINGS_READ,	"findings:read",	{1, 1, 1, 0, 1}},
	{PERM_FINDINGS_TRIAGE,	"findings:triage",	{1, 1, 0, 0, 1}},
	{PERM_REPORTS_READ,	"reports:read",		{1, 1, 1, 0, 1}},
	{PERM_EVENTS_SUBSCRIBE,	"events:subscribe",	{1, 1, 1, 0, 1}},
	{PERM_DLQ_READ,		"dead-letters:read",	{0, 0, 0, 0, 1}},
	{PERM_DLQ_MANAGE,	"dead-letters:manage",	{0, 0, 0, 0, 1}},
};
/* clang-format on */

int gw_rbac_allowed(enum gw_perm perm, enum gw_role role)
{
	if ((int)perm < 0 || perm >= PERM_COUNT || (int)role < 0 ||
	    role >= ROLE_COUNT)
		return 0;
	return perms[perm].perm == perm && perms[perm].allow[role];
}

const char *gw_perm_name(enum gw_perm perm)
{
	if ((int)perm < 0 || perm >= PERM_COUNT)
		return "?";
	return perms[perm].name;
}

const char *gw_role_name(enum gw_role role)
{
	if ((int)role < 0 || role >= ROLE_COUNT)
		return "none";
	return role_names[role];
}

enum gw_role gw_role_parse(const char *name)
{
	for (int i = 0; i < ROLE_COUNT; i++)
		if (name && strcmp(role_names[i], name) == 0)
			return (enum gw_role)i;
	return ROLE_NONE;
}
