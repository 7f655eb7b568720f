/*
 * yaml.c - YAML streams to jansson values over libyaml's event parser.
 *
 * Events are folded into JSON values with an explicit stack of open
 * collections, so input nesting never turns into C recursion. Limits guard
 * against hostile input: collections nest at most VG_YAML_MAX_DEPTH deep
 * (aliases count with the height of what they expand to) and aliases may
 * add at most VG_YAML_MAX_ALIAS_NODES nodes per stream ("billion laughs").
 * Aliases are expanded into copies so callers may modify the result freely.
 */
#include "vigil/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define VG_YAML_MAX_DEPTH 256
#define VG_YAML_MAX_ALIAS_NODES 100000
#define VG_YAML_MAX_FILE (64u << 20)

#define TAG_PREFIX "tag:yaml.org,2002:"

/* A collection being built. */
struct frame {
	json_t *node;	   /* object or array; owned */
	char *anchor;	   /* owned; NULL without one */
	char *key;	   /* mapping: pending key (owned); NULL when a key is due */
	size_t key_len;
	int key_is_merge;  /* the pending key is the merge key << */
	json_t *merges;	   /* mapping: values of << keys, in order; owned */
	size_t nodes;	   /* nodes in this subtree, itself included */
	size_t height;	   /* collection levels in this subtree, itself included */
	yaml_mark_t mark;
};

struct anchor {
	char *name;
	json_t *node;
	size_t nodes;
	size_t height;
};

struct builder {
	struct frame stack[VG_YAML_MAX_DEPTH];
	size_t depth;
	struct anchor *anchors;
	size_t nanchors, anchors_cap;
	size_t alias_nodes;
	json_t *root; /* current document's root; owned */
	json_t *docs;
	const char *data;
	size_t len;
	struct vg_err *err;
};

/* --- errors --------------------------------------------------------------- */

static int err_at(struct builder *b, const yaml_mark_t *m, int code,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int err_at(struct builder *b, const yaml_mark_t *m, int code,
		  const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	return vg_err_set(b->err, code, "yaml line %zu:%zu: %s", m->line + 1,
			  m->column + 1, what);
}

/* Position of byte `off` in the input, for reader errors libyaml reports as
 * offsets only. */
static yaml_mark_t mark_of_offset(const struct builder *b, size_t off)
{
	yaml_mark_t m = { .index = off, .line = 0, .column = 0 };

	if (off > b->len)
		off = b->len;
	for (size_t i = 0; i < off; i++) {
		if (b->data[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int parser_error(struct builder *b, const yaml_parser_t *p)
{
	yaml_mark_t m;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	case YAML_READER_ERROR:
		m = mark_of_offset(b, p->problem_offset);
		if (p->problem_value != -1)
			return err_at(b, &m, VG_PARSE, "%s (#%X)",
				      p->problem ? p->problem : "invalid input",
				      (unsigned)p->problem_value);
		return err_at(b, &m, VG_PARSE, "%s",
			      p->problem ? p->problem : "invalid input");
	default:
		break;
	}
	m = p->problem_mark;
	if (p->context)
		return err_at(b, &m, VG_PARSE, "%s (%s at %zu:%zu)",
			      p->problem ? p->problem : "syntax error",
			      p->context, p->context_mark.line + 1,
			      p->context_mark.column + 1);
	return err_at(b, &m, VG_PARSE, "%s",
		      p->problem ? p->problem : "syntax error");
}

/* --- scalars -------------------------------------------------------------- */

enum scalar_kind {
	SCALAR_ANY,   /* resolve plain scalars by the core schema */
	SCALAR_STR,
	SCALAR_NULL,
	SCALAR_BOOL,
	SCALAR_INT,
	SCALAR_FLOAT,
};

static const struct {
	const char *tag;
	enum scalar_kind kind;
} scalar_tags[] = {
	{ "!", SCALAR_STR },
	{ TAG_PREFIX "str", SCALAR_STR },
	{ TAG_PREFIX "binary", SCALAR_STR },
	{ TAG_PREFIX "timestamp", SCALAR_STR },
	{ TAG_PREFIX "null", SCALAR_NULL },
	{ TAG_PREFIX "bool", SCALAR_BOOL },
	{ TAG_PREFIX "int", SCALAR_INT },
	{ TAG_PREFIX "float", SCALAR_FLOAT },
};

static const struct {
	const char *text;
	enum scalar_kind kind;
	int truth;
} scalar_words[] = {
	{ "", SCALAR_NULL, 0 },	     { "~", SCALAR_NULL, 0 },
	{ "null", SCALAR_NULL, 0 },  { "Null", SCALAR_NULL, 0 },
	{ "NULL", SCALAR_NULL, 0 },  { "true", SCALAR_BOOL, 1 },
	{ "True", SCALAR_BOOL, 1 },  { "TRUE", SCALAR_BOOL, 1 },
	{ "false", SCALAR_BOOL, 0 }, { "False", SCALAR_BOOL, 0 },
	{ "FALSE", SCALAR_BOOL, 0 },
};

static int all_digits(const char *s, const char *set)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr(set, *s))
			return 0;
	return 1;
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ ; returns the base or 0. */
static int int_syntax(const char *s, const char **digits)
{
	if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, "01234567")) {
		*digits = s + 2;
		return 8;
	}
	if (s[0] == '0' && s[1] == 'x' &&
	    all_digits(s + 2, "0123456789abcdefABCDEF")) {
		*digits = s + 2;
		return 16;
	}
	*digits = s;
	if (*s == '-' || *s == '+')
		s++;
	return all_digits(s, "0123456789") ? 10 : 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int float_syntax(const char *s)
{
	size_t before = 0, after = 0;

	if (*s == '-' || *s == '+')
		s++;
	while (*s >= '0' && *s <= '9') {
		s++;
		before++;
	}
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9') {
			s++;
			after++;
		}
		if (!before && !after)
			return 0;
	} else if (!before) {
		return 0;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* NULL when `s` is not a number JSON can hold (.inf, .nan, overflow);
 * sets *nomem when it was one but allocation failed. */
static json_t *parse_number(const char *s, int *nomem)
{
	const char *digits;
	int base = int_syntax(s, &digits);
	json_t *v = NULL;
	char *end;
	double d;

	*nomem = 0;
	if (base) {
		long long n;

		errno = 0;
		n = strtoll(digits, &end, base);
		if (errno == 0 && *end == '\0') {
			v = json_integer(n);
			*nomem = !v;
			return v;
		}
		if (base != 10)
			return NULL;
		/* too large for 64 bits: a float, as JSON decoders read it */
	} else if (!float_syntax(s)) {
		return NULL;
	}
	errno = 0;
	d = strtod(s, &end);
	if (*end != '\0' || !isfinite(d))
		return NULL;
	v = json_real(d);
	*nomem = !v;
	return v;
}

static enum scalar_kind tag_kind(const char *tag)
{
	if (!tag)
		return SCALAR_ANY;
	for (size_t i = 0; i < sizeof(scalar_tags) / sizeof(scalar_tags[0]);
	     i++)
		if (strcmp(tag, scalar_tags[i].tag) == 0)
			return scalar_tags[i].kind;
	return SCALAR_ANY; /* unknown application tags: resolve as untagged */
}

/* Resolve one scalar event to a new JSON value. */
static int scalar_value(struct builder *b, const yaml_event_t *ev,
			json_t **out)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	enum scalar_kind want = tag_kind((const char *)ev->data.scalar.tag);
	int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	int nomem = 0;
	json_t *v = NULL;

	*out = NULL;
	if (want == SCALAR_ANY && (!plain || strlen(s) != len))
		want = SCALAR_STR;
	if (want != SCALAR_STR && strlen(s) == len) {
		for (size_t i = 0;
		     i < sizeof(scalar_words) / sizeof(scalar_words[0]); i++) {
			if (strcmp(s, scalar_words[i].text) != 0)
				continue;
			if (want != SCALAR_ANY && want != scalar_words[i].kind)
				break;
			v = scalar_words[i].kind == SCALAR_NULL ?
				    json_null() :
				    json_boolean(scalar_words[i].truth);
			goto out;
		}
		if (want == SCALAR_ANY || want == SCALAR_INT ||
		    want == SCALAR_FLOAT) {
			v = parse_number(s, &nomem);
			if (nomem)
				goto out;
			if (v && want == SCALAR_INT && !json_is_integer(v)) {
				json_decref(v);
				v = NULL;
			} else if (v && want == SCALAR_FLOAT &&
				   json_is_integer(v)) {
				double d = (double)json_integer_value(v);

				json_decref(v);
				v = json_real(d);
				nomem = !v;
				goto out;
			}
			if (v)
				goto out;
		}
		if (want != SCALAR_ANY)
			return err_at(b, &ev->start_mark, VG_PARSE,
				      "cannot decode %.60s as %s",
				      s, ev->data.scalar.tag ?
				      (const char *)ev->data.scalar.tag : "");
	} else if (want != SCALAR_STR) {
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "NUL byte in typed scalar");
	}
	v = json_stringn(s, len);
	nomem = !v;
out:
	if (!v)
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	*out = v;
	return VG_OK;
}

/* --- anchors -------------------------------------------------------------- */

static void anchors_clear(struct builder *b)
{
	for (size_t i = 0; i < b->nanchors; i++) {
		free(b->anchors[i].name);
		json_decref(b->anchors[i].node);
	}
	b->nanchors = 0;
}

static int anchor_add(struct builder *b, const char *name, json_t *node,
		      size_t nodes, size_t height)
{
	struct anchor *a;
	char *copy;

	if (b->nanchors == b->anchors_cap) {
		size_t cap = b->anchors_cap ? b->anchors_cap * 2 : 8;

		a = realloc(b->anchors, cap * sizeof(*a));
		if (!a)
			return vg_err_set(b->err, VG_NOMEM,
					  "yaml: out of memory");
		b->anchors = a;
		b->anchors_cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	a = &b->anchors[b->nanchors++];
	a->name = copy;
	a->node = json_incref(node);
	a->nodes = nodes;
	a->height = height;
	return VG_OK;
}

/* The latest definition of `name` wins, as YAML requires. */
static const struct anchor *anchor_find(const struct builder *b,
					const char *name)
{
	for (size_t i = b->nanchors; i > 0; i--)
		if (strcmp(b->anchors[i - 1].name, name) == 0)
			return &b->anchors[i - 1];
	return NULL;
}

/* --- tree building -------------------------------------------------------- */

static void frame_cleanup(struct frame *f)
{
	json_decref(f->node);
	json_decref(f->merges);
	free(f->anchor);
	free(f->key);
	memset(f, 0, sizeof(*f));
}

static struct frame *top(struct builder *b)
{
	return b->depth ? &b->stack[b->depth - 1] : NULL;
}

/* In a mapping whose key is due: set the key from a string. */
static int set_key(struct builder *b, struct frame *f, const char *s,
		   size_t len, int merge, const yaml_mark_t *m)
{
	if (!merge && json_object_getn(f->node, s, len))
		return err_at(b, m, VG_PARSE, "duplicate key \"%.*s\"",
			      (int)(len > 60 ? 60 : len), s);
	f->key = malloc(len + 1);
	if (!f->key)
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	memcpy(f->key, s, len);
	f->key[len] = '\0';
	f->key_len = len;
	f->key_is_merge = merge;
	return VG_OK;
}

static int add_merge(struct builder *b, struct frame *f, json_t *value,
		     const yaml_mark_t *m)
{
	size_t i;
	json_t *el;

	if (json_is_array(value)) {
		json_array_foreach(value, i, el)
			if (!json_is_object(el))
				return err_at(b, m, VG_PARSE,
					      "merge key << needs mappings");
	} else if (!json_is_object(value)) {
		return err_at(b, m, VG_PARSE, "merge key << needs a mapping");
	}
	if (!f->merges) {
		f->merges = json_array();
		if (!f->merges)
			return vg_err_set(b->err, VG_NOMEM,
					  "yaml: out of memory");
	}
	if (json_array_append(f->merges, value))
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	return VG_OK;
}

/* Fill keys the mapping lacks from its << sources; explicit keys win, and
 * among sources the earlier wins. */
static int apply_merges(struct builder *b, struct frame *f)
{
	size_t i, j;
	json_t *src, *el, *v;
	const char *k;

	json_array_foreach(f->merges, i, src) {
		size_t n = json_is_array(src) ? json_array_size(src) : 1;

		for (j = 0; j < n; j++) {
			el = json_is_array(src) ? json_array_get(src, j) : src;
			json_object_foreach(el, k, v) {
				if (json_object_get(f->node, k))
					continue;
				if (json_object_set(f->node, k, v))
					return vg_err_set(
						b->err, VG_NOMEM,
						"yaml: out of memory");
			}
		}
	}
	return VG_OK;
}

/*
 * Attach a finished node (new reference, stolen) to its parent or make it
 * the document root; `nodes` and `height` describe its subtree.
 */
static int attach(struct builder *b, json_t *node, const char *anchor,
		  size_t nodes, size_t height, const yaml_mark_t *m)
{
	struct frame *f = top(b);
	int rc = VG_OK;

	if (anchor) {
		rc = anchor_add(b, anchor, node, nodes, height);
		if (rc)
			goto out;
	}
	if (!f) {
		b->root = node;
		return VG_OK;
	}
	if (json_is_array(f->node)) {
		if (json_array_append_new(f->node, node))
			return vg_err_set(b->err, VG_NOMEM,
					  "yaml: out of memory");
		node = NULL;
	} else if (!f->key) {
		if (!json_is_string(node)) {
			rc = err_at(b, m, VG_PARSE,
				    "mapping keys must be scalars");
			goto out;
		}
		rc = set_key(b, f, json_string_value(node),
			     json_string_length(node), 0, m);
		goto out;
	} else if (f->key_is_merge) {
		rc = add_merge(b, f, node, m);
		if (rc)
			goto out;
	} else {
		if (json_object_setn_new(f->node, f->key, f->key_len, node))
			rc = vg_err_set(b->err, VG_NOMEM,
					"yaml: out of memory");
		node = NULL;
		if (rc)
			goto out;
	}
	if (json_is_object(f->node)) {
		free(f->key);
		f->key = NULL;
		f->key_is_merge = 0;
	}
	f->nodes += nodes;
	if (height + 1 > f->height)
		f->height = height + 1;
out:
	json_decref(node);
	return rc;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *anchor = (const char *)ev->data.scalar.anchor;
	struct frame *f = top(b);
	json_t *v = NULL;
	int rc;

	if (f && json_is_object(f->node) && !f->key) {
		/* keys keep their text whatever it would resolve to */
		const char *s = (const char *)ev->data.scalar.value;
		int merge = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			    !ev->data.scalar.tag && strcmp(s, "<<") == 0;

		if (anchor) {
			v = json_stringn(s, ev->data.scalar.length);
			if (!v)
				return vg_err_set(b->err, VG_NOMEM,
						  "yaml: out of memory");
			rc = anchor_add(b, anchor, v, 1, 0);
			json_decref(v);
			if (rc)
				return rc;
		}
		return set_key(b, f, s, ev->data.scalar.length, merge,
			       &ev->start_mark);
	}
	rc = scalar_value(b, ev, &v);
	if (rc)
		return rc;
	return attach(b, v, anchor, 1, 0, &ev->start_mark);
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const struct anchor *a = anchor_find(b, name);
	json_t *copy;

	if (!a)
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "unknown anchor \"%.60s\"", name);
	if (b->depth + a->height > VG_YAML_MAX_DEPTH)
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "alias \"%.60s\" nests deeper than %d levels",
			      name, VG_YAML_MAX_DEPTH);
	if (a->nodes > VG_YAML_MAX_ALIAS_NODES - b->alias_nodes)
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "aliases expand to more than %d nodes",
			      VG_YAML_MAX_ALIAS_NODES);
	b->alias_nodes += a->nodes;
	copy = json_deep_copy(a->node);
	if (!copy)
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	return attach(b, copy, NULL, a->nodes, a->height, &ev->start_mark);
}

static int on_start(struct builder *b, const yaml_event_t *ev)
{
	const char *anchor;
	struct frame *f = top(b), *n;

	if (f && json_is_object(f->node) && !f->key)
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "mapping keys must be scalars");
	if (b->depth == VG_YAML_MAX_DEPTH)
		return err_at(b, &ev->start_mark, VG_PARSE,
			      "nesting deeper than %d levels",
			      VG_YAML_MAX_DEPTH);
	anchor = (const char *)(ev->type == YAML_MAPPING_START_EVENT ?
					ev->data.mapping_start.anchor :
					ev->data.sequence_start.anchor);
	n = &b->stack[b->depth];
	memset(n, 0, sizeof(*n));
	n->node = ev->type == YAML_MAPPING_START_EVENT ? json_object() :
							 json_array();
	n->anchor = anchor ? strdup(anchor) : NULL;
	n->nodes = 1;
	n->height = 1;
	n->mark = ev->start_mark;
	if (!n->node || (anchor && !n->anchor)) {
		frame_cleanup(n);
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	}
	b->depth++;
	return VG_OK;
}

static int on_end(struct builder *b, const yaml_event_t *ev)
{
	struct frame f;
	int rc = VG_OK;

	if (!b->depth)
		return err_at(b, &ev->start_mark, VG_INTERNAL,
			      "unbalanced collection end");
	f = b->stack[--b->depth];
	memset(&b->stack[b->depth], 0, sizeof(f));
	if (f.merges)
		rc = apply_merges(b, &f);
	if (!rc) {
		rc = attach(b, f.node, f.anchor, f.nodes, f.height, &f.mark);
		f.node = NULL;
	}
	frame_cleanup(&f);
	return rc;
}

static int on_document_end(struct builder *b)
{
	json_t *root = b->root;

	b->root = NULL;
	anchors_clear(b); /* anchors are scoped to their document */
	if (!root || json_is_null(root)) {
		json_decref(root);
		return VG_OK;
	}
	if (json_array_append_new(b->docs, root))
		return vg_err_set(b->err, VG_NOMEM, "yaml: out of memory");
	return VG_OK;
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(b, ev);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return on_start(b, ev);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(b, ev);
	case YAML_DOCUMENT_START_EVENT:
		json_decref(b->root);
		b->root = NULL;
		return VG_OK;
	case YAML_DOCUMENT_END_EVENT:
		return on_document_end(b);
	default:
		return VG_OK;
	}
}

static void builder_cleanup(struct builder *b)
{
	while (b->depth)
		frame_cleanup(&b->stack[--b->depth]);
	anchors_clear(b);
	free(b->anchors);
	json_decref(b->root);
	json_decref(b->docs);
}

/* --- public API ----------------------------------------------------------- */

int vg_yaml_parse_stream(const char *data, size_t len, json_t **docs,
			 struct vg_err *err)
{
	struct builder *b = NULL;
	yaml_parser_t parser;
	int parser_ready = 0;
	yaml_event_t ev;
	int done = 0, rc = VG_OK;

	*docs = NULL;
	if (!data && len)
		return vg_err_set(err, VG_INVAL, "yaml: no input");
	b = calloc(1, sizeof(*b));
	if (!b)
		return vg_err_set(err, VG_NOMEM, "yaml: out of memory");
	b->err = err;
	b->data = data ? data : "";
	b->len = len;
	b->docs = json_array();
	if (!b->docs) {
		rc = vg_err_set(err, VG_NOMEM, "yaml: out of memory");
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		rc = vg_err_set(err, VG_NOMEM, "yaml: out of memory");
		goto out;
	}
	parser_ready = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)b->data,
				     len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = parser_error(b, &parser);
			goto out;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = on_event(b, &ev);
		yaml_event_delete(&ev);
		if (rc)
			goto out;
	}
	*docs = b->docs;
	b->docs = NULL;
out:
	if (parser_ready)
		yaml_parser_delete(&parser);
	if (b)
		builder_cleanup(b);
	free(b);
	return rc;
}

int vg_yaml_parse(const char *data, size_t len, json_t **doc,
		  struct vg_err *err)
{
	json_t *docs = NULL;
	int rc;

	*doc = NULL;
	rc = vg_yaml_parse_stream(data, len, &docs, err);
	if (rc)
		return rc;
	switch (json_array_size(docs)) {
	case 0:
		*doc = json_null();
		break;
	case 1:
		*doc = json_incref(json_array_get(docs, 0));
		break;
	default:
		rc = vg_err_set(err, VG_PARSE,
				"yaml: expected one document, found %zu",
				json_array_size(docs));
	}
	json_decref(docs);
	return rc;
}

static int read_file(const char *path, char **data, size_t *len,
		     struct vg_err *err)
{
	FILE *f = NULL;
	char *p = NULL, *np;
	size_t n = 0, cap = 0, got;
	int rc = VG_OK;

	*data = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (!f)
		return vg_err_sys(err, VG_IO, "open %s", path);
	for (;;) {
		if (n == cap) {
			if (cap > VG_YAML_MAX_FILE) {
				rc = vg_err_set(err, VG_TOOLARGE,
						"%s: larger than %u bytes",
						path, VG_YAML_MAX_FILE);
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			if (cap > VG_YAML_MAX_FILE + 1)
				cap = VG_YAML_MAX_FILE + 1;
			np = realloc(p, cap);
			if (!np) {
				rc = vg_err_set(err, VG_NOMEM,
						"yaml: out of memory");
				goto out;
			}
			p = np;
		}
		got = fread(p + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f))
				rc = vg_err_sys(err, VG_IO, "read %s", path);
			break;
		}
	}
out:
	fclose(f);
	if (rc) {
		free(p);
		return rc;
	}
	*data = p;
	*len = n;
	return VG_OK;
}

int vg_yaml_load_file(const char *path, json_t **doc, struct vg_err *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*doc = NULL;
	rc = read_file(path, &data, &len, err);
	if (!rc)
		rc = vg_yaml_parse(data, len, doc, err);
	free(data);
	return rc;
}

int vg_yaml_load_file_stream(const char *path, json_t **docs,
			     struct vg_err *err)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	*docs = NULL;
	rc = read_file(path, &data, &len, err);
	if (!rc)
		rc = vg_yaml_parse_stream(data, len, docs, err);
	free(data);
	return rc;
}
