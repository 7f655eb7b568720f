/* fuzz_scope.c - libFuzzer target for target lists and port specs. The
 * first byte picks the parse flags; the rest is a target list and, after
 * the first NUL, a port spec. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigil/scope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_scope(const struct vg_scope *s, unsigned flags)
{
	struct vg_scope_iter it;
	struct vg_scope self;
	const struct vg_scope_item *bad = NULL;
	struct vg_addr a, prev;
	struct vg_err err = {0};
	int have = 0;

	/* every scope covers itself, and minus itself is empty */
	if (!vg_scope_covers(s, s, &bad) || bad)
		abort();
	vg_scope_init(&self);
	if (vg_scope_subtract(s, s, &self, &err) == VG_OK) {
		for (size_t i = 0; i < self.n; i++)
			if (self.items[i].kind != VG_SCOPE_SUFFIX)
				abort();
	}
	vg_scope_cleanup(&self);
	if (vg_scope_iter_init(&it, s, 1, 3, 4096, &err) != VG_OK)
		return;
	while (vg_scope_iter_next(&it, &a)) {
		if (!vg_scope_contains(s, &a))
			abort();
		if (!(flags & VG_SCOPE_ANY_ADDRESS) &&
		    vg_addr_forbidden(&a, flags, NULL))
			abort();
		if (have && vg_addr_cmp(&prev, &a) >= 0)
			abort();
		prev = a;
		have = 1;
	}
	vg_scope_iter_cleanup(&it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_scope s;
	struct vg_ports p = {0};
	struct vg_err err = {0};
	unsigned flags;
	char *text, *ports;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0] & 7;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	text[size] = '\0';
	ports = text + strlen(text) + 1;
	if (ports > text + size - 1)
		ports = text + size - 1;

	vg_scope_init(&s);
	rc = vg_scope_parse(&s, text, flags, &err);
	if (rc == VG_OK)
		check_scope(&s, flags);
	else if (s.n != 0 || err.code != rc || !err.msg[0])
		abort();
	vg_scope_cleanup(&s);

	rc = vg_ports_parse(&p, ports, &err);
	if (rc == VG_OK) {
		if (p.n == 0)
			abort();
		for (size_t i = 1; i < p.n; i++)
			if (p.port[i - 1] >= p.port[i])
				abort();
	} else if (p.n != 0 || err.code != rc || !err.msg[0]) {
		abort();
	}
	vg_ports_cleanup(&p);
	free(text);
	return 0;
}
