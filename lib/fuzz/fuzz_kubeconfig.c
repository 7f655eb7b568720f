/*
 * fuzz_kubeconfig.c - libFuzzer target for kubeconfig loading: any input
 * either loads into a usable configuration or fails with VG_CONFIG (or
 * VG_NOMEM) and a message, leaving the config empty.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *data, size_t size, const char *context)
{
	struct vg_kube_config cfg, copy;
	struct vg_err err = {0};
	int rc;

	vg_kube_config_init(&cfg);
	/* Relative file references resolve into a directory that does not
	 * exist, so the target never reads the fuzzer's host files by
	 * accident; absolute ones are only read if they are regular files. */
	rc = vg_kube_config_load_data(&cfg, data, size,
	                              "/nonexistent-vigil-fuzz", context, &err);
	if (rc == VG_OK) {
		if (!cfg.server || strncmp(cfg.server, "http", 4) != 0 ||
		    !cfg.namespace || !cfg.context)
			abort();
		if (cfg.cert_pem && !cfg.key_pem)
			abort();
		if (cfg.ca_pem && cfg.insecure_skip_tls_verify)
			abort();
		vg_kube_config_init(&copy);
		if (vg_kube_config_copy(&copy, &cfg, &err) == VG_OK) {
			if (strcmp(copy.server, cfg.server) != 0 ||
			    copy.ca_len != cfg.ca_len)
				abort();
			vg_kube_config_cleanup(&copy);
		}
	} else {
		if (rc != VG_CONFIG && rc != VG_NOMEM)
			abort();
		if (err.code != rc || !err.msg[0] || cfg.server)
			abort();
	}
	vg_kube_config_cleanup(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check((const char *)data, size, NULL);
	check((const char *)data, size, "c");
	return 0;
}
