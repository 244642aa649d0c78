/* Seed 001's baselines; see seed_radix8.h. */
#include "seed_radix8.h"

#include <stdlib.h>
#include <string.h>

#define RADIX 8
#define NO_LEAF UINT64_MAX

struct radix8 *radix8_new(uint64_t pages)
{
	uint64_t bitmap_size = RADIX, tree_size = 0;
	while (bitmap_size < pages) {
		tree_size += bitmap_size;
		bitmap_size *= RADIX;
	}
	size_t bytes = (size_t)((pages + tree_size) / 8 + 1);
	struct radix8 *t = malloc(sizeof *t + bytes);
	if (t == NULL)
		return NULL;
	memset(t->packed, 0, bytes);
	t->bitmap_offset = tree_size;
	t->bitmap_size = pages;
	t->bytes = bytes;
	return t;
}

static uint8_t find_next_bit(uint8_t byte, uint8_t bit)
{
	while (bit < RADIX && !(byte & (1u << bit)))
		bit++;
	return bit;
}

/* Move *node to its parent; return which child it was. */
static uint8_t parent_node(uint64_t *node)
{
	uint8_t child = (uint8_t)((*node - 1) & (RADIX - 1));
	*node = (*node - 1) / RADIX;
	return child;
}

static uint64_t child_node(uint64_t node, uint8_t child)
{
	return node * RADIX + 1 + child;
}

void radix8_insert(struct radix8 *t, uint64_t page)
{
	uint64_t node = page + t->bitmap_offset + 1;
	do {
		uint8_t child = parent_node(&node);
		t->packed[node] |= (uint8_t)(1u << child);
	} while (node);
}

static uint64_t first_leaf_below(const struct radix8 *t, uint64_t node)
{
	while (node < t->bitmap_offset) {
		uint8_t child = find_next_bit(t->packed[node], 0);
		if (child == RADIX)
			return NO_LEAF;
		node = child_node(node, child);
	}
	return node;
}

static uint64_t next_leaf(const struct radix8 *t, uint64_t leaf)
{
	uint64_t node = leaf;
	uint8_t child;
	do {
		child = parent_node(&node);
		child = find_next_bit(t->packed[node], (uint8_t)(child + 1));
	} while (node && child == RADIX);
	if (child == RADIX)
		return NO_LEAF;
	return first_leaf_below(t, child_node(node, child));
}

size_t radix8_compact(const struct radix8 *t, uint64_t *out)
{
	size_t n = 0;
	for (uint64_t leaf = first_leaf_below(t, 0); leaf != NO_LEAF; leaf = next_leaf(t, leaf))
		out[n++] = leaf - t->bitmap_offset - 1;
	return n;
}

static uint64_t bitmap_next(const uint8_t *bitmap, uint64_t size, uint64_t bit)
{
	while (bit < size) {
		uint8_t offset = (uint8_t)(bit % 8);
		for (; offset < 8 && !(bitmap[bit / 8] & (1u << offset)); bit++, offset++)
			;
		if (offset < 8)
			break;
	}
	return bit;
}

size_t radix8_bitmap_compact(const struct radix8 *t, uint64_t *out)
{
	const uint8_t *bitmap = &t->packed[t->bitmap_offset / RADIX];
	size_t n = 0;
	for (uint64_t bit = bitmap_next(bitmap, t->bitmap_size, 0); bit < t->bitmap_size;
	     bit = bitmap_next(bitmap, t->bitmap_size, bit + 1))
		out[n++] = bit;
	return n;
}

void list_copy(const uint64_t *list, size_t n, uint64_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = list[i];
}
