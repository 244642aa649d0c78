/*
 * Baselines from seed 001 (Radim Krčmář's KVM dirty-tracking measurements,
 * 2016), written here from its description: a preallocated packed radix-8
 * tree (one byte per node, node n's children are 8n+1 .. 8n+8, leaves are
 * pages), its bit-by-bit scan of the tree's leaf bitmap, and a list copy.
 * Non-atomic, as in the seed.  For the benchmark only.
 */
#ifndef BENCH_SEED_RADIX8_H
#define BENCH_SEED_RADIX8_H

#include <stddef.h>
#include <stdint.h>

struct radix8 {
	uint64_t bitmap_offset; /* node number where the leaves start */
	uint64_t bitmap_size;   /* pages */
	size_t bytes;
	uint8_t packed[];
};

struct radix8 *radix8_new(uint64_t pages);
void radix8_insert(struct radix8 *t, uint64_t page);
/* Walk the leaves (find-first, find-next) into out; returns the count. */
size_t radix8_compact(const struct radix8 *t, uint64_t *out);
/* The seed's bitmap: scan the tree's leaf bitmap bit by bit. */
size_t radix8_bitmap_compact(const struct radix8 *t, uint64_t *out);
/* The seed's list: copy n entries. */
void list_copy(const uint64_t *list, size_t n, uint64_t *out);

#endif
