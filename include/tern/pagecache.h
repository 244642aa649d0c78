/*
 * The page cache that feeds XBZRLE: copies of guest pages as last sent,
 * keyed by page number, within a size limit.  Set-associative; a new page
 * replaces the least recently used page of its set only if that page has
 * not been used for `lifetime` dirty syncs, and is not cached otherwise.
 * Plain LRU thrashes here: when a sync's dirty pages outnumber the cache
 * and are walked in order, every page is evicted before its next use
 * (bench/pagecache measured 0% hits where this policy keeps 24%, and QEMU's
 * direct-mapped cache 19%).  The migration engine puts nothing in it during
 * the bulk stage: most pages are sent once, and caching them would only
 * evict the pages that are sent again (QEMU commit 5cc11c46).
 */
#ifndef TERN_PAGECACHE_H
#define TERN_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

struct tern_pagecache;

/* Defaults, chosen by measured hit rate (bench/pagecache). */
#define TERN_PAGECACHE_WAYS 8
#define TERN_PAGECACHE_LIFETIME 4

struct tern_pagecache_stats {
	uint64_t hits, misses, inserts, evictions;
	uint64_t refused; /* new pages not cached: their set was all young */
	size_t entries, capacity; /* pages */
};

/* A cache of at most `bytes` (rounded down to a power of two number of
 * pages, at least `ways`) of `page_size`-byte pages; NULL on bad sizes or
 * no memory.  ways: 1 (direct-mapped) .. 64, a power of two.  lifetime:
 * a page used within the last `lifetime` generations is not evicted for a
 * new one (0: plain LRU). */
struct tern_pagecache *tern_pagecache_new(size_t bytes, size_t page_size, unsigned ways,
					  unsigned lifetime);
/* A new generation: the migration engine calls it at every dirty sync. */
void tern_pagecache_next_generation(struct tern_pagecache *c);
void tern_pagecache_free(struct tern_pagecache *c);

/* The cached copy of `page` (page_size bytes, writable: the caller updates
 * it to what it sends), or NULL.  A hit makes the page most recent. */
uint8_t *tern_pagecache_get(struct tern_pagecache *c, uint64_t page);
/* A slot for `page`, evicting the least recently used page of its set if
 * that one is older than the lifetime; NULL when every page of the set is
 * younger (the new page is then not cached).  The caller fills the slot
 * (page_size bytes). */
uint8_t *tern_pagecache_put(struct tern_pagecache *c, uint64_t page);
/* Forget one page (its copy no longer matches what the peer has). */
void tern_pagecache_drop(struct tern_pagecache *c, uint64_t page);

void tern_pagecache_stats(const struct tern_pagecache *c, struct tern_pagecache_stats *s);
size_t tern_pagecache_bytes(const struct tern_pagecache *c);

#endif
