/*
 * A string-keyed hash map (open addressing, linear probing, tombstones) for
 * in-memory indexes such as the library's path -> file entry. Keys are copied;
 * values are the caller's pointers. Not thread-safe.
 */
#ifndef IMES_HMAP_H
#define IMES_HMAP_H

#include <stddef.h>

struct hmap;

struct hmap *hmap_new(void);
/* Frees the map and its keys; free_value (may be NULL) is called on each value. */
void hmap_free(struct hmap **m, void (*free_value)(void *));

void *hmap_get(const struct hmap *m, const char *key);
/* Sets key to value; returns the previous value (NULL if none) through *old
 * when old is not NULL. Returns 0 or -ENOMEM. */
int hmap_set(struct hmap *m, const char *key, void *value, void **old);
/* Removes key; returns its value or NULL. */
void *hmap_remove(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);

/* Iteration: for (size_t i = 0; hmap_next(m, &i, &k, &v);) ... Removing the
 * current entry while iterating is allowed; adding is not. */
int hmap_next(const struct hmap *m, size_t *pos, const char **key, void **value);

#endif
