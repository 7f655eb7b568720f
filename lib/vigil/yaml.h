/*
 * yaml.h - YAML to jansson conversion over libyaml.
 *
 * Scalars follow the YAML 1.2 core schema as Kubernetes reads it: plain
 * null/~/empty -> null, true/false -> boolean, integers and floats ->
 * numbers, everything else (and every quoted scalar) -> string. Anchors and
 * aliases are resolved; merge keys (<<) are supported.
 */
#ifndef VG_YAML_H
#define VG_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "vigil/err.h"

/*
 * Parse a stream of one or more documents (separated by ---) into a new
 * JSON array with one element per non-empty document. Errors carry the line
 * and column. Returns 0 or VG_PARSE / VG_NOMEM.
 */
int vg_yaml_parse_stream(const char *data, size_t len, json_t **docs,
			 struct vg_err *err);

/* Parse exactly one document (an empty stream gives JSON null); new ref. */
int vg_yaml_parse(const char *data, size_t len, json_t **doc,
		  struct vg_err *err);

/* Read and parse a file: VG_IO when it cannot be read. */
int vg_yaml_load_file(const char *path, json_t **doc, struct vg_err *err);
int vg_yaml_load_file_stream(const char *path, json_t **docs,
			     struct vg_err *err);

#endif
