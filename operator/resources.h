/*
 * resources.h - descriptors of vigil's own kinds (group vigil.dev, version
 * v1alpha1), next to the built-in ones of vigil/kube.h. Controllers name
 * them as their primary kind; the manager runs an informer per kind.
 */
#ifndef VIGIL_OPERATOR_RESOURCES_H
#define VIGIL_OPERATOR_RESOURCES_H

#include "vigil/kube.h"

#define VIGIL_GROUP "vigil.dev"
#define VIGIL_VERSION "v1alpha1"
#define VIGIL_API_VERSION "vigil.dev/v1alpha1"

extern const struct vg_kube_resource vigil_platforms;	    /* namespaced */
extern const struct vg_kube_resource vigil_tenants;	    /* cluster */
extern const struct vg_kube_resource vigil_scanpolicies;    /* namespaced */
extern const struct vg_kube_resource vigil_backupschedules; /* namespaced */

/* The descriptor of a vigil.dev kind ("Platform" ...), or NULL; static. */
const struct vg_kube_resource *vigil_resource_find(const char *kind);

#endif
