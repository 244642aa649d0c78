/* KVM's pre-5.17 memslot array, for the benchmark; see kvm_memslot_array.h. */
#include "kvm_memslot_array.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct array_memslots {
	uint64_t generation;
	int used_slots;
	atomic_int lru_slot;
	int16_t *id_to_index; /* points into the same allocation: [max_slots] */
	struct array_slot slots[];
};

static size_t layout_size(uint32_t max_slots, int used, size_t *index_at)
{
	*index_at = sizeof(struct array_memslots) + (size_t)used * sizeof(struct array_slot);
	return *index_at + max_slots * sizeof(int16_t);
}

/* kvm_dup_memslots: a full copy with room for `used` slots. */
static struct array_memslots *dup(const struct array_map *m, int used)
{
	size_t index_at, size = layout_size(m->max_slots, used, &index_at);
	struct array_memslots *copy = malloc(size);
	if (copy == NULL)
		return NULL;
	const struct array_memslots *old = m->active;
	int keep = old->used_slots < used ? old->used_slots : used;
	memcpy(copy, old, sizeof *old + (size_t)keep * sizeof(struct array_slot));
	copy->id_to_index = (int16_t *)((char *)copy + index_at);
	memcpy(copy->id_to_index, old->id_to_index, m->max_slots * sizeof(int16_t));
	atomic_init(&copy->lru_slot, 0);
	return copy;
}

static void publish(struct array_map *m, struct array_memslots *copy)
{
	copy->generation = m->active->generation + 1;
	free(m->active);
	m->active = copy;
}

int array_map_init(struct array_map *m, uint32_t max_slots)
{
	m->max_slots = max_slots;
	size_t index_at, size = layout_size(max_slots, 0, &index_at);
	m->active = calloc(1, size);
	if (m->active == NULL)
		return -ENOMEM;
	m->active->id_to_index = (int16_t *)((char *)m->active + index_at);
	for (uint32_t i = 0; i < max_slots; i++)
		m->active->id_to_index[i] = -1;
	return 0;
}

void array_map_free(struct array_map *m)
{
	free(m->active);
	m->active = NULL;
}

static void place(struct array_memslots *s, int i, const struct array_slot *slot)
{
	s->slots[i] = *slot;
	s->id_to_index[slot->id] = (int16_t)i;
}

/* kvm_memslot_move_backward / forward: walk slot i to its sorted place
 * (descending base gfn), one swap at a time. */
static void resort(struct array_memslots *s, int i)
{
	struct array_slot moving = s->slots[i];
	while (i + 1 < s->used_slots && s->slots[i + 1].base_gfn > moving.base_gfn) {
		place(s, i, &s->slots[i + 1]);
		i++;
	}
	while (i > 0 && s->slots[i - 1].base_gfn < moving.base_gfn) {
		place(s, i, &s->slots[i - 1]);
		i--;
	}
	place(s, i, &moving);
}

static int overlaps(const struct array_memslots *s, uint32_t self, uint64_t gfn, uint64_t pages)
{
	/* __kvm_set_memory_region walks every slot for overlap. */
	for (int i = 0; i < s->used_slots; i++)
		if (s->slots[i].id != self && gfn < s->slots[i].base_gfn + s->slots[i].npages &&
		    s->slots[i].base_gfn < gfn + pages)
			return 1;
	return 0;
}

int array_create(struct array_map *m, uint32_t id, uint64_t gfn, uint64_t pages, uint64_t hva)
{
	struct array_memslots *s = m->active;
	if (id >= m->max_slots || s->id_to_index[id] >= 0)
		return -EINVAL;
	if (overlaps(s, id, gfn, pages))
		return -EEXIST;
	struct array_memslots *copy = dup(m, s->used_slots + 1);
	if (copy == NULL)
		return -ENOMEM;
	struct array_slot slot = { .base_gfn = gfn, .npages = pages, .userspace_addr = hva, .id = id };
	place(copy, copy->used_slots++, &slot);
	resort(copy, copy->used_slots - 1);
	publish(m, copy);
	return 0;
}

static void remove_at(struct array_memslots *s, int i)
{
	s->id_to_index[s->slots[i].id] = -1;
	for (; i + 1 < s->used_slots; i++)
		place(s, i, &s->slots[i + 1]);
	s->used_slots--;
}

int array_delete_many(struct array_map *m, const uint32_t *ids, size_t n)
{
	struct array_memslots *copy = dup(m, m->active->used_slots);
	if (copy == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		int i = ids[k] < m->max_slots ? copy->id_to_index[ids[k]] : -1;
		if (i < 0) {
			free(copy);
			return -ENOENT;
		}
		remove_at(copy, i);
	}
	publish(m, copy);
	return 0;
}

int array_delete(struct array_map *m, uint32_t id)
{
	return array_delete_many(m, &id, 1);
}

int array_move(struct array_map *m, uint32_t id, uint64_t gfn)
{
	struct array_memslots *s = m->active;
	int i = id < m->max_slots ? s->id_to_index[id] : -1;
	if (i < 0)
		return -ENOENT;
	if (overlaps(s, id, gfn, s->slots[i].npages))
		return -EEXIST;
	struct array_memslots *copy = dup(m, s->used_slots);
	if (copy == NULL)
		return -ENOMEM;
	copy->slots[i].base_gfn = gfn;
	resort(copy, i);
	publish(m, copy);
	return 0;
}

/* search_memslots: last used slot, then a binary search. */
const struct array_slot *array_find_gfn(struct array_map *m, uint64_t gfn)
{
	struct array_memslots *s = m->active;
	int lru = atomic_load_explicit(&s->lru_slot, memory_order_relaxed);
	if (lru < s->used_slots && gfn >= s->slots[lru].base_gfn &&
	    gfn < s->slots[lru].base_gfn + s->slots[lru].npages)
		return &s->slots[lru];
	int start = 0, end = s->used_slots;
	while (start < end) {
		int mid = start + (end - start) / 2;
		if (gfn >= s->slots[mid].base_gfn)
			end = mid;
		else
			start = mid + 1;
	}
	if (start < s->used_slots && gfn >= s->slots[start].base_gfn &&
	    gfn < s->slots[start].base_gfn + s->slots[start].npages) {
		atomic_store_explicit(&s->lru_slot, start, memory_order_relaxed);
		return &s->slots[start];
	}
	return NULL;
}

const struct array_slot *array_find_id(struct array_map *m, uint32_t id)
{
	int i = id < m->max_slots ? m->active->id_to_index[id] : -1;
	return i >= 0 ? &m->active->slots[i] : NULL;
}

size_t array_find_hva(struct array_map *m, uint64_t hva, const struct array_slot **first)
{
	const struct array_memslots *s = m->active;
	size_t found = 0;
	for (int i = 0; i < s->used_slots; i++) {
		const struct array_slot *slot = &s->slots[i];
		if (hva >= slot->userspace_addr && hva - slot->userspace_addr < slot->npages * 4096) {
			if (found++ == 0)
				*first = slot;
		}
	}
	return found;
}
