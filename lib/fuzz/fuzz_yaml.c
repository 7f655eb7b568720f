/* fuzz_yaml.c - libFuzzer target for the YAML stream parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vigil/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_err err = { 0 };
	json_t *docs = NULL;
	char *text;
	int rc;

	rc = vg_yaml_parse_stream((const char *)data, size, &docs, &err);
	if (rc == VG_OK) {
		if (!json_is_array(docs))
			abort();
		/* whatever loads must serialise: no cycles, valid UTF-8 */
		text = json_dumps(docs, JSON_COMPACT);
		if (!text)
			abort();
		free(text);
		json_decref(docs);
	} else if (docs || err.code != rc || !err.msg[0]) {
		abort();
	}
	return 0;
}
