/* Slot id -> pointer hash table; see idtable.h. */
#include "idtable.h"

#include <errno.h>
#include <stdlib.h>

#define MIN_CAPACITY 16u

void idtable_init(struct idtable *t)
{
	t->ids = NULL;
	t->values = NULL;
	t->mask = 0;
	t->count = 0;
}

void idtable_free(struct idtable *t)
{
	free(t->ids);
	free(t->values);
	idtable_init(t);
}

static void place(struct idtable *t, uint32_t id, void *value)
{
	uint32_t b = idtable_bucket(t, id);
	while (t->values[b] != NULL)
		b = (b + 1) & t->mask;
	t->ids[b] = id;
	t->values[b] = value;
}

static int resize(struct idtable *t, uint32_t capacity)
{
	struct idtable bigger = { .mask = capacity - 1, .count = t->count };
	bigger.ids = malloc(capacity * sizeof *bigger.ids);
	bigger.values = calloc(capacity, sizeof *bigger.values);
	if (bigger.ids == NULL || bigger.values == NULL) {
		free(bigger.ids);
		free(bigger.values);
		return -ENOMEM;
	}
	if (t->values)
		for (uint32_t b = 0; b <= t->mask; b++)
			if (t->values[b])
				place(&bigger, t->ids[b], t->values[b]);
	free(t->ids);
	free(t->values);
	*t = bigger;
	return 0;
}

int idtable_add(struct idtable *t, uint32_t id, void *value)
{
	/* Keep the load at or under one half: probes stay short. */
	uint32_t capacity = t->values ? t->mask + 1 : 0;
	if (2 * ((uint64_t)t->count + 1) > capacity) {
		int rc = resize(t, capacity ? capacity * 2 : MIN_CAPACITY);
		if (rc < 0)
			return rc;
	}
	place(t, id, value);
	t->count++;
	return 0;
}

static uint32_t find_bucket(const struct idtable *t, uint32_t id, int *found)
{
	*found = 0;
	if (t->values == NULL)
		return 0;
	uint32_t b = idtable_bucket(t, id);
	while (t->values[b] != NULL) {
		if (t->ids[b] == id) {
			*found = 1;
			return b;
		}
		b = (b + 1) & t->mask;
	}
	return b;
}

int idtable_replace(struct idtable *t, uint32_t id, void *value)
{
	int found;
	uint32_t b = find_bucket(t, id, &found);
	if (!found)
		return -ENOENT;
	t->values[b] = value;
	return 0;
}

void *idtable_remove(struct idtable *t, uint32_t id)
{
	int found;
	uint32_t hole = find_bucket(t, id, &found);
	if (!found)
		return NULL;
	void *value = t->values[hole];
	/* Shift later members of the probe run back over the hole, so every
	 * entry stays reachable from its home bucket without tombstones. */
	for (uint32_t b = (hole + 1) & t->mask; t->values[b] != NULL; b = (b + 1) & t->mask) {
		uint32_t home = idtable_bucket(t, t->ids[b]);
		/* Movable when home is not cyclically within (hole, b]. */
		if (((b - home) & t->mask) >= ((b - hole) & t->mask)) {
			t->ids[hole] = t->ids[b];
			t->values[hole] = t->values[b];
			hole = b;
		}
	}
	t->values[hole] = NULL;
	t->count--;
	return value;
}
