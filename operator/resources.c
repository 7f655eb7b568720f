/* resources.c - descriptors of the vigil.dev/v1alpha1 kinds (see crds/). */
#include "resources.h"

#include <stddef.h>
#include <string.h>

#define VIGIL_RES(var, plural, knd, nsd)                                     \
	const struct vg_kube_resource var = {                                \
		.group = VIGIL_GROUP,                                        \
		.version = VIGIL_VERSION,                                    \
		.resource = plural,                                          \
		.kind = knd,                                                 \
		.namespaced = nsd,                                           \
	}

VIGIL_RES(vigil_platforms, "platforms", "Platform", true);
VIGIL_RES(vigil_tenants, "tenants", "Tenant", false);
VIGIL_RES(vigil_scanpolicies, "scanpolicies", "ScanPolicy", true);
VIGIL_RES(vigil_backupschedules, "backupschedules", "BackupSchedule", true);

static const struct vg_kube_resource *const vigil_resources[] = {
	&vigil_platforms,
	&vigil_tenants,
	&vigil_scanpolicies,
	&vigil_backupschedules,
};

const struct vg_kube_resource *vigil_resource_find(const char *kind)
{
	if (!kind)
		return NULL;
	for (size_t i = 0; i < sizeof(vigil_resources) / sizeof(vigil_resources[0]);
	     i++)
		if (strcmp(vigil_resources[i]->kind, kind) == 0)
			return vigil_resources[i];
	return NULL;
}
