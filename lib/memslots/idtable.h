/*
 * Slot id -> pointer: open addressing with linear probing and
 * backward-shift deletion (no tombstones), so a find touches one or two
 * cache lines whatever the history of adds and removes.  Memory follows
 * the slots in use, not the largest id allowed (seed 003's complaint
 * about id_to_index).  Not thread-safe; the memslot map keeps one per set.
 */
#ifndef TERN_IDTABLE_H
#define TERN_IDTABLE_H

#include <stddef.h>
#include <stdint.h>

struct idtable {
	uint32_t *ids;
	void **values; /* NULL: an empty bucket */
	uint32_t mask; /* capacity - 1 (capacity: a power of two) */
	uint32_t count;
};

void idtable_init(struct idtable *t);
void idtable_free(struct idtable *t);

static inline uint32_t idtable_bucket(const struct idtable *t, uint32_t id)
{
	return (uint32_t)((id * 0x9e3779b1u) >> 7) & t->mask;
}

static inline void *idtable_get(const struct idtable *t, uint32_t id)
{
	if (t->values == NULL)
		return NULL;
	for (uint32_t b = idtable_bucket(t, id);; b = (b + 1) & t->mask) {
		if (t->values[b] == NULL)
			return NULL;
		if (t->ids[b] == id)
			return t->values[b];
	}
}

/* Add id (absent) -> value (non-NULL); 0 or -ENOMEM (table unchanged). */
int idtable_add(struct idtable *t, uint32_t id, void *value);
/* Point a present id at a new value; -ENOENT when absent. */
int idtable_replace(struct idtable *t, uint32_t id, void *value);
/* Remove id; its value, or NULL when absent. */
void *idtable_remove(struct idtable *t, uint32_t id);

#endif
