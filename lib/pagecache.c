/* The XBZRLE page cache; see include/tern/pagecache.h. */
#include "tern/pagecache.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY UINT64_MAX

struct tern_pagecache {
	size_t page_size;
	unsigned ways, set_shift; /* sets = 2^(64 - set_shift) */
	size_t sets, capacity, entries;
	uint64_t clock;      /* per use, for LRU order */
	uint64_t generation; /* per dirty sync */
	unsigned lifetime;
	uint64_t *born;      /* generation of last use */
	uint64_t *keys;   /* [sets * ways], EMPTY when free */
	uint64_t *stamps; /* last use, for LRU */
	uint8_t *data;    /* [sets * ways * page_size] */
	struct tern_pagecache_stats st;
};

struct tern_pagecache *tern_pagecache_new(size_t bytes, size_t page_size, unsigned ways,
					  unsigned lifetime)
{
	if (page_size == 0 || ways == 0 || ways > 64 || (ways & (ways - 1)) != 0)
		return NULL;
	size_t pages = bytes / page_size;
	if (pages < ways)
		return NULL;
	size_t sets = 1;
	while (sets * 2 * ways <= pages)
		sets *= 2;
	struct tern_pagecache *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->page_size = page_size;
	c->ways = ways;
	c->sets = sets;
	c->set_shift = 64 - (unsigned)__builtin_ctzll(sets);
	c->capacity = sets * ways;
	c->lifetime = lifetime;
	c->keys = malloc(c->capacity * sizeof *c->keys);
	c->stamps = calloc(c->capacity, sizeof *c->stamps);
	c->born = calloc(c->capacity, sizeof *c->born);
	c->data = malloc(c->capacity * page_size);
	if (c->keys == NULL || c->stamps == NULL || c->born == NULL || c->data == NULL) {
		tern_pagecache_free(c);
		return NULL;
	}
	for (size_t i = 0; i < c->capacity; i++)
		c->keys[i] = EMPTY;
	return c;
}

void tern_pagecache_free(struct tern_pagecache *c)
{
	if (c == NULL)
		return;
	free(c->keys);
	free(c->stamps);
	free(c->born);
	free(c->data);
	free(c);
}

/* Fibonacci hashing: neighbouring pages land in different sets. */
static size_t set_of(const struct tern_pagecache *c, uint64_t page)
{
	if (c->sets == 1)
		return 0;
	return (size_t)((page * 0x9e3779b97f4a7c15ULL) >> c->set_shift);
}

static long find(const struct tern_pagecache *c, uint64_t page)
{
	size_t base = set_of(c, page) * c->ways;
	for (unsigned w = 0; w < c->ways; w++)
		if (c->keys[base + w] == page)
			return (long)(base + w);
	return -1;
}

uint8_t *tern_pagecache_get(struct tern_pagecache *c, uint64_t page)
{
	long i = page == EMPTY ? -1 : find(c, page);
	if (i < 0) {
		c->st.misses++;
		return NULL;
	}
	c->st.hits++;
	c->stamps[i] = ++c->clock;
	c->born[i] = c->generation;
	return c->data + (size_t)i * c->page_size;
}

uint8_t *tern_pagecache_put(struct tern_pagecache *c, uint64_t page)
{
	if (page == EMPTY)
		return NULL;
	long i = find(c, page);
	if (i < 0) {
		size_t base = set_of(c, page) * c->ways, victim = base;
		for (unsigned w = 0; w < c->ways; w++) {
			size_t at = base + w;
			if (c->keys[at] == EMPTY) {
				victim = at;
				break;
			}
			if (c->stamps[at] < c->stamps[victim])
				victim = at;
		}
		if (c->keys[victim] == EMPTY) {
			c->entries++;
		} else if (c->born[victim] + c->lifetime > c->generation) {
			c->st.refused++; /* all are young: keep them, skip this page */
			return NULL;
		} else {
			c->st.evictions++;
		}
		c->keys[victim] = page;
		i = (long)victim;
	}
	c->st.inserts++;
	c->stamps[i] = ++c->clock;
	c->born[i] = c->generation;
	return c->data + (size_t)i * c->page_size;
}

void tern_pagecache_drop(struct tern_pagecache *c, uint64_t page)
{
	long i = page == EMPTY ? -1 : find(c, page);
	if (i < 0)
		return;
	c->keys[i] = EMPTY;
	c->stamps[i] = 0;
	c->entries--;
}

void tern_pagecache_next_generation(struct tern_pagecache *c)
{
	c->generation++;
}

void tern_pagecache_stats(const struct tern_pagecache *c, struct tern_pagecache_stats *s)
{
	*s = c->st;
	s->entries = c->entries;
	s->capacity = c->capacity;
}

size_t tern_pagecache_bytes(const struct tern_pagecache *c)
{
	return c->capacity * c->page_size;
}
