/*
 * platform_objects.c - the pieces every child of a Platform is built from:
 * object skeleton, labels and selectors, pod and container security,
 * probes, environment, volumes, ports, Services.
 *
 * Everything the builders emit is in the form the API server stores, so
 * vg_json_is_subset(desired, live) holds for an unchanged intent:
 * quantities canonical, no empty maps or lists the server would drop, no
 * zero/false values of omitempty fields (readOnly: false, value: ""),
 * ports as integers, protocol: TCP spelled out.
 */
#include "platform_int.h"

void pctx_append(struct pctx *c, json_t *arr, json_t *v)
{
	if (json_array_append_new(arr, v))
		pctx_nomem(c);
}

void pctx_add(struct pctx *c, json_t *children, json_t *obj)
{
	if (c->rc != VG_OK) {
		json_decref(obj);
		return;
	}
	pctx_append(c, children, obj);
}

json_t *labels_new(const struct pctx *c, const char *app, const char *component)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", LABEL_NAME, app,
			 LABEL_INSTANCE, c->name, LABEL_COMPONENT, component,
			 LABEL_PART_OF, "vigil", VIGIL_LABEL_MANAGED_BY,
			 VIGIL_MANAGED_BY);
}

json_t *selector_new(const struct pctx *c, const char *app,
		     const char *component)
{
	return json_pack("{s:s, s:s, s:s}", LABEL_NAME, app, LABEL_INSTANCE,
			 c->name, LABEL_COMPONENT, component);
}

json_t *object_new(const struct pctx *c, const char *api_version,
		   const char *kind, const char *name, json_t *labels)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "apiVersion",
			 api_version, "kind", kind, "metadata", "name", name,
			 "namespace", c->ns, "labels", labels);
}

json_t *object_with(const struct pctx *c, const char *api_version,
		    const char *kind, const char *name, json_t *labels,
		    const char *key, json_t *body)
{
	json_t *obj = object_new(c, api_version, kind, name, labels);

	if (!obj || json_object_set_new(obj, key, body)) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

json_t *pod_security_new(long long uid)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:{s:s}}", "runAsNonRoot", 1,
			 "runAsUser", (json_int_t)uid, "runAsGroup",
			 (json_int_t)uid, "fsGroup", (json_int_t)uid,
			 "seccompProfile", "type", "RuntimeDefault");
}

json_t *container_security_new(long long uid)
{
	return json_pack("{s:b, s:b, s:b, s:I, s:I, s:{s:[s]}, s:{s:s}}",
			 "allowPrivilegeEscalation", 0,
			 "readOnlyRootFilesystem", 1, "runAsNonRoot", 1,
			 "runAsUser", (json_int_t)uid, "runAsGroup",
			 (json_int_t)uid, "capabilities", "drop", "ALL",
			 "seccompProfile", "type", "RuntimeDefault");
}

json_t *http_probe_new(const char *path, int period, int failures)
{
	return json_pack("{s:{s:s, s:s}, s:i, s:i, s:i}", "httpGet", "path",
			 path, "port", "metrics", "periodSeconds", period,
			 "timeoutSeconds", 3, "failureThreshold", failures);
}

json_t *exec_probe_new(json_t *command, int period, int failures)
{
	return json_pack("{s:{s:o}, s:i, s:i, s:i}", "exec", "command",
			 command, "periodSeconds", period, "timeoutSeconds", 5,
			 "failureThreshold", failures);
}

json_t *env_value_new(const char *name, const char *value)
{
	return json_pack("{s:s, s:s}", "name", name, "value", value);
}

json_t *env_secret_new(const char *name, const char *secret, const char *key)
{
	return json_pack("{s:s, s:{s:{s:s, s:s}}}", "name", name, "valueFrom",
			 "secretKeyRef", "name", secret, "key", key);
}

json_t *env_field_new(const char *name, const char *path)
{
	return json_pack("{s:s, s:{s:{s:s}}}", "name", name, "valueFrom",
			 "fieldRef", "fieldPath", path);
}

/* readOnly is omitempty: false is left out, never written. */
json_t *mount_new(const char *name, const char *path, int read_only)
{
	return read_only ? json_pack("{s:s, s:s, s:b}", "name", name,
				     "mountPath", path, "readOnly", 1)
			 : json_pack("{s:s, s:s}", "name", name, "mountPath",
				     path);
}

json_t *secret_volume_new(const char *name, const char *secret)
{
	return json_pack("{s:s, s:{s:s, s:i}}", "name", name, "secret",
			 "secretName", secret, "defaultMode", SECRET_FILE_MODE);
}

json_t *empty_dir_new(const char *name, const char *medium, const char *size)
{
	return json_pack("{s:s, s:{s:s*, s:s}}", "name", name, "emptyDir",
			 "medium", medium, "sizeLimit", size);
}

json_t *container_port_new(const char *name, long long port)
{
	return json_pack("{s:s, s:I, s:s}", "name", name, "containerPort",
			 (json_int_t)port, "protocol", "TCP");
}

json_t *pull_secrets_new(struct pctx *c)
{
	const json_t *list = pctx_get_container(c, 1, "spec.imagePullSecrets");
	json_t *out, *item;
	size_t i;

	if (!list || json_array_size(list) == 0)
		return NULL;
	out = json_array();
	json_array_foreach((json_t *)list, i, item) {
		const char *n = json_string_value(json_object_get(item, "name"));

		if (!n || !n[0]) {
			pctx_fail(c, VG_INVAL,
				  "spec.imagePullSecrets[%zu].name must be a "
				  "non-empty string",
				  i);
			break;
		}
		pctx_append(c, out, json_pack("{s:s}", "name", n));
	}
	return out;
}

json_t *service_new(struct pctx *c, const char *name, const char *app,
		    const char *component, const char *type, int headless,
		    const char *port_name, long long port)
{
	json_t *spec = json_pack(
		"{s:s, s:o, s:[{s:s, s:I, s:s, s:s}]}", "type", type,
		"selector", selector_new(c, app, component), "ports", "name",
		port_name, "port", (json_int_t)port, "targetPort", port_name,
		"protocol", "TCP");

	if (spec && headless &&
	    json_object_set_new(spec, "clusterIP", json_string("None"))) {
		json_decref(spec);
		spec = NULL;
	}
	return object_with(c, "v1", "Service", name,
			   labels_new(c, app, component), "spec", spec);
}
