/* strmap.c - string-keyed hash map, open addressing. */
#include "vigil/strmap.h"

#include "vigil/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

void vg_strmap_init(struct vg_strmap *m, void (*free_val)(void *))
{
	m->slots = NULL;
	m->cap = 0;
	m->len = 0;
	m->free_val = free_val;
}

void vg_strmap_cleanup(struct vg_strmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].key)
			continue;
		free(m->slots[i].key);
		if (m->free_val)
			m->free_val(m->slots[i].val);
	}
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
	m->len = 0;
}

/* Index of `key`'s slot, or of the free slot where it would go. */
static size_t find(const struct vg_strmap *m, const char *key, size_t h)
{
	size_t mask = m->cap - 1, i = h & mask;

	while (m->slots[i].key &&
	       (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & mask;
	return i;
}

static int grow(struct vg_strmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	struct vg_strmap_slot *old = m->slots, *ns;
	size_t ocap = m->cap;

	ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return VG_NOMEM;
	m->slots = ns;
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].key)
			continue;
		ns[find(m, old[i].key, old[i].hash)] = old[i];
	}
	free(old);
	return VG_OK;
}

void *vg_strmap_get(const struct vg_strmap *m, const char *key)
{
	size_t i;

	if (!m->len)
		return NULL;
	i = find(m, key, hash_str(key));
	return m->slots[i].key ? m->slots[i].val : NULL;
}

int vg_strmap_has(const struct vg_strmap *m, const char *key)
{
	return m->len && m->slots[find(m, key, hash_str(key))].key != NULL;
}

int vg_strmap_put(struct vg_strmap *m, const char *key, void *val)
{
	size_t h = hash_str(key), i;
	char *k;

	/* keep the load factor under 3/4 */
	if ((m->len + 1) * 4 > m->cap * 3 && grow(m) != VG_OK)
		return VG_NOMEM;
	i = find(m, key, h);
	if (m->slots[i].key) {
		if (m->free_val && m->slots[i].val != val)
			m->free_val(m->slots[i].val);
		m->slots[i].val = val;
		return VG_OK;
	}
	k = strdup(key);
	if (!k)
		return VG_NOMEM;
	m->slots[i].key = k;
	m->slots[i].val = val;
	m->slots[i].hash = h;
	m->len++;
	return VG_OK;
}

void *vg_strmap_take(struct vg_strmap *m, const char *key)
{
	size_t mask, i, j;
	void *val;

	if (!m->len)
		return NULL;
	mask = m->cap - 1;
	i = find(m, key, hash_str(key));
	if (!m->slots[i].key)
		return NULL;
	val = m->slots[i].val;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->len--;
	/* backward-shift: move later members of the run into the hole when
	 * their home slot is not between the hole and their position */
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return val;
}

int vg_strmap_del(struct vg_strmap *m, const char *key)
{
	int present = vg_strmap_has(m, key);
	void *val = vg_strmap_take(m, key);

	if (present && m->free_val)
		m->free_val(val);
	return present;
}

size_t vg_strmap_len(const struct vg_strmap *m)
{
	return m->len;
}

int vg_strmap_next(const struct vg_strmap *m, size_t *pos, const char **key,
		   void **val)
{
	while (*pos < m->cap) {
		const struct vg_strmap_slot *s = &m->slots[(*pos)++];

		if (s->key) {
			if (key)
				*key = s->key;
			if (val)
				*val = s->val;
			return 1;
		}
	}
	return 0;
}
