/*
 * Dirty-page sets.
 *
 * A set over N pages is a bitmap (one bit per page) under summary levels
 * of one bit per 64-bit word of the level below, so walks skip empty
 * regions: compacting 100 dirty pages out of 10 million touches a few
 * hundred words, not 156,250.  Memory is the bitmap plus 1/63 of it.
 *
 * Concurrency: insert, or_bitmap and insert_batch may run in many threads
 * at once and never lose a page (lock-free: atomic OR, summaries set
 * bottom-up).  A take (compact with TERN_DIRTY_TAKE) may run alongside
 * them: every page inserted before the take starts is returned by it or by
 * a later take, never lost.  At most one take or clear runs at a time.
 * The _exclusive functions skip the atomics for a caller that knows nobody
 * else touches the set meanwhile (for example with the vCPUs stopped).
 */
#ifndef TERN_DIRTY_H
#define TERN_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_dirty;

/* Where a compaction resumes; start from {0}.  `page` is the next page to
 * look at; it equals the set's page count when the walk is complete. */
struct tern_dirty_cursor {
	uint64_t page;
};

enum {
	TERN_DIRTY_TAKE = 1 << 0,      /* clear what is returned */
	TERN_DIRTY_EXCLUSIVE = 1 << 1, /* no concurrent writers: no atomics */
};

/* A set over `pages` pages (1 .. 2^48), all clean; NULL when out of memory. */
struct tern_dirty *tern_dirty_new(uint64_t pages);
void tern_dirty_free(struct tern_dirty *d);
uint64_t tern_dirty_pages(const struct tern_dirty *d);
/* Bytes of memory the set uses. */
size_t tern_dirty_memory(const struct tern_dirty *d);

/* Mark a page dirty (thread-safe, lock-free).  Pages past the end are
 * ignored. */
void tern_dirty_insert(struct tern_dirty *d, uint64_t page);
void tern_dirty_insert_exclusive(struct tern_dirty *d, uint64_t page);
/* Mark many pages, as a dirty ring delivers them (any order, duplicates
 * allowed); runs in the same 64-page word cost one atomic. */
void tern_dirty_insert_batch(struct tern_dirty *d, const uint64_t *pages, size_t n);
/* OR in a bitmap as KVM_GET_DIRTY_LOG returns it: bit i of words[w] is page
 * first_page + 64 * w + i.  first_page must be a multiple of 64. */
void tern_dirty_or_bitmap(struct tern_dirty *d, uint64_t first_page, const uint64_t *words,
			  size_t nwords);

bool tern_dirty_test(const struct tern_dirty *d, uint64_t page);
void tern_dirty_clear(struct tern_dirty *d, uint64_t page);
/* Clear [first, first + count); with count past the end, to the end. */
void tern_dirty_clear_range(struct tern_dirty *d, uint64_t first, uint64_t count);
void tern_dirty_clear_all(struct tern_dirty *d);
uint64_t tern_dirty_count(const struct tern_dirty *d);

/*
 * Write the dirty page numbers, ascending, from cursor->page on, into
 * out[0 .. max); returns how many were written and advances the cursor.
 * With TERN_DIRTY_TAKE the returned pages are cleared.  Call again with the
 * same cursor until it reaches the end.  Pages go out a 64-page word at a
 * time, so max must be at least 64 for every call to make progress.
 */
size_t tern_dirty_compact(struct tern_dirty *d, struct tern_dirty_cursor *cursor, uint64_t *out,
			  size_t max, unsigned flags);

/* Iterator form: calls fn(page, opaque) for each dirty page in order, in
 * batches; stops early when fn returns nonzero (that value is returned). */
int tern_dirty_for_each(struct tern_dirty *d, unsigned flags,
			int (*fn)(uint64_t page, void *opaque), void *opaque);

/*
 * Compact a plain bitmap (bit i of words[w] = page base + 64 * w + i) into
 * out, ascending; out must hold every set bit plus TERN_DIRTY_SLACK more
 * entries (the kernels store in whole vectors).  Returns the count.
 */
#define TERN_DIRTY_SLACK 64
size_t tern_dirty_compact_bitmap(const uint64_t *words, size_t nwords, uint64_t base,
				 uint64_t *out);

/*
 * The bit-extraction kernels are chosen at run time from what the CPU
 * offers ("avx512", "avx2", "portable"); all give identical results.
 * tern_dirty_use_kernel() forces one (tests, benchmarks): 0, or -ENOTSUP
 * when this CPU cannot run it.
 */
const char *tern_dirty_kernel(void);
int tern_dirty_use_kernel(const char *name);

#endif
