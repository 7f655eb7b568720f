/*
 * strmap.h - a hash map from NUL-terminated strings to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), FNV-1a hashing. Keys are copied and owned by the map; values
 * are borrowed unless a free function is given at init. Not thread-safe:
 * callers lock.
 */
#ifndef VG_STRMAP_H
#define VG_STRMAP_H

#include <stddef.h>

struct vg_strmap_slot {
	char *key; /* NULL when free */
	void *val;
	size_t hash;
};

struct vg_strmap {
	struct vg_strmap_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t len;
	void (*free_val)(void *);
};

/* `free_val` (NULL allowed) is called on values removed, replaced or left
 * at cleanup. */
void vg_strmap_init(struct vg_strmap *m, void (*free_val)(void *));
void vg_strmap_cleanup(struct vg_strmap *m);

/* Borrowed value, or NULL when absent. */
void *vg_strmap_get(const struct vg_strmap *m, const char *key);
int vg_strmap_has(const struct vg_strmap *m, const char *key);
/* Insert or replace (the old value goes to free_val). 0 or VG_NOMEM. */
int vg_strmap_put(struct vg_strmap *m, const char *key, void *val);
/* Remove and return the value without calling free_val; NULL if absent. */
void *vg_strmap_take(struct vg_strmap *m, const char *key);
/* Remove, calling free_val; 1 if it was present. */
int vg_strmap_del(struct vg_strmap *m, const char *key);
size_t vg_strmap_len(const struct vg_strmap *m);

/* Iterate: `*pos` starts at 0; returns 0 at the end. Do not modify the map
 * while iterating. Key and value are borrowed. */
int vg_strmap_next(const struct vg_strmap *m, size_t *pos, const char **key,
		   void **val);

#endif
