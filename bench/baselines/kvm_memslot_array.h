/*
 * A model of KVM's memslots before the scalable rewrite (Linux 5.10,
 * virt/kvm/kvm_main.c): one array sorted by base gfn, highest first, with
 * an inline id_to_index[] sized for the largest id; every update copies
 * the whole structure (kvm_dup_memslots), shifts slots one place at a time
 * to keep the order, and publishes the copy; a gfn lookup checks the
 * last-used slot, then binary-searches; an hva lookup walks every slot.
 * For the benchmark only.
 */
#ifndef BENCH_KVM_MEMSLOT_ARRAY_H
#define BENCH_KVM_MEMSLOT_ARRAY_H

#include <stddef.h>
#include <stdint.h>

struct array_slot {
	uint64_t base_gfn, npages;
	uint64_t userspace_addr;
	uint32_t flags, id;
	void *dirty_bitmap;
	uint64_t arch[3]; /* x86's rmap and lpage_info pointers */
};

struct array_memslots;

struct array_map {
	struct array_memslots *active;
	uint32_t max_slots;
};

int array_map_init(struct array_map *m, uint32_t max_slots);
void array_map_free(struct array_map *m);

/* Each is one published update; -errno on refusal. */
int array_create(struct array_map *m, uint32_t id, uint64_t gfn, uint64_t pages, uint64_t hva);
int array_delete(struct array_map *m, uint32_t id);
int array_move(struct array_map *m, uint32_t id, uint64_t gfn);
/* Delete several slots in one published copy. */
int array_delete_many(struct array_map *m, const uint32_t *ids, size_t n);

const struct array_slot *array_find_gfn(struct array_map *m, uint64_t gfn);
const struct array_slot *array_find_id(struct array_map *m, uint32_t id);
/* How many slots map hva (a walk over all of them). */
size_t array_find_hva(struct array_map *m, uint64_t hva, const struct array_slot **first);

#endif
