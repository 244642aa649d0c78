/*
 * The dirty-page set: a bitmap (level 0) under summary levels, each with
 * one bit per 64-bit word of the level below, up to a single top word.
 *
 * Invariant, kept without locks: if a word of level k is non-zero, its bit
 * in level k+1 is set, or an inserter that made it non-zero is about to set
 * it.  Summary bits may be stale (set over a zero word); walks skip those
 * and takes clear them.
 *
 *  - Inserters go bottom-up: OR the page's bit; only the inserter that
 *    turned a word from zero to non-zero goes on to the level above.
 *  - A take goes top-down: it exchanges a summary word with zero before it
 *    exchanges the words below, so an inserter racing with it either has
 *    its bit taken or finds the summary bit clear and sets it again.
 *  - Clearing a summary bit (after a clear made a word zero) first clears
 *    the bit, then looks at the word again and sets the bit back if the
 *    word gained bits meanwhile.
 *
 * Names used here:
 *
 *  page      a bit number 0 .. pages-1 of level 0.  What it stands for is
 *            the caller's: the VMM keeps a set per memslot, and there a
 *            page is a gfn minus the slot's first gfn.
 *  level k   the array level[k]: level 0 is the page bitmap, level k+1
 *            summarises level k, the top one (levels-1) is a single word.
 *            bits[k] and words[k] are its size; bits[k+1] == words[k].
 *  word      a uint64_t of some level.  Word w holds that level's bits
 *            64w .. 64w+63, so level 0's word w holds pages 64w .. 64w+63.
 *  bit/index bit j of level k (k >= 1) stands for word j of level k-1:
 *            `index` is such a bit number, i.e. a word one level down.
 *  summary   a level above 0, or one of its bits: set while the word below
 *            may be non-zero, stale (set over a zero word) at times.
 *  mark      after a word became non-zero, set its summary bit, and so
 *            on upwards while summary words go from zero to non-zero;
 *  unmark    the converse, after a word became zero.
 *  take      read and clear at once (TERN_DIRTY_TAKE): each word is
 *            exchanged with zero, a summary before the words below it.
 *  exclusive no other thread touches the set: plain loads and stores.
 *  children  of a level-1 word: the level-0 words its set bits name
 *            (at most 64, so a level-1 word spans 4096 pages).
 *  dense     a level-1 word with DENSE_CHILDREN or more children; it is
 *            emitted as one block (the span of its children) instead.
 *  run       level-1 words whose children are expanded and emitted
 *            together, at most RUN_WORDS level-0 words in all.
 *  snapshot  the values of level-0 words read (or taken) before anything
 *            is emitted, counted against the room left in the output.
 *  emit      write the page numbers of a word's set bits (the kernels in
 *            kernels.h); they may store TERN_DIRTY_SLACK entries past the
 *            count, so room is checked with that slack.
 *  cursor    the page a compaction resumes from.
 *  NONE      next_set's "no set bit" (UINT64_MAX).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "tern/dirty.h"

#define MAX_LEVELS 8
#define NONE UINT64_MAX

struct tern_dirty {
	uint64_t pages;
	unsigned levels;               /* >= 3; level levels-1 is one word */
	uint64_t bits[MAX_LEVELS];     /* bits in each level */
	uint64_t words[MAX_LEVELS];
	uint64_t *level[MAX_LEVELS];   /* level[0] is the page bitmap */
	size_t bytes;
	uint64_t storage[];
};

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

struct tern_dirty *tern_dirty_new(uint64_t pages)
{
	if (pages == 0 || pages > (1ULL << 48))
		return NULL;
	uint64_t bits[MAX_LEVELS], words[MAX_LEVELS], total = 0;
	unsigned levels = 0;
	uint64_t b = pages;
	do {
		bits[levels] = b;
		words[levels] = (b + 63) / 64;
		/* Each level starts on a cache line. */
		total += (words[levels] + 7) & ~7ULL;
		b = words[levels];
		levels++;
	} while (words[levels - 1] > 1 || levels < 3); /* the walk reads level 2 */
	size_t bytes = sizeof(struct tern_dirty) + total * sizeof(uint64_t);
	struct tern_dirty *d = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (d == NULL)
		return NULL;
	memset(d, 0, bytes);
	dirty_kernels(); /* choose the kernels (and learn about POPCNT) now */
	d->pages = pages;
	d->levels = levels;
	d->bytes = bytes;
	uint64_t *at = d->storage;
	for (unsigned k = 0; k < levels; k++) {
		d->bits[k] = bits[k];
		d->words[k] = words[k];
		d->level[k] = at;
		at += (words[k] + 7) & ~7ULL;
	}
	return d;
}

void tern_dirty_free(struct tern_dirty *d)
{
	free(d);
}

uint64_t tern_dirty_pages(const struct tern_dirty *d)
{
	return d->pages;
}

size_t tern_dirty_memory(const struct tern_dirty *d)
{
	return d->bytes;
}

/* ------------------------------------------------------------ inserting */

/* Word `index` of level k-1 became non-zero: set its bit in level k and
 * upwards, for as long as each word goes from zero to non-zero. */
static void mark(struct tern_dirty *d, unsigned k, uint64_t index)
{
	for (; k < d->levels; k++) {
		uint64_t *w = &d->level[k][index >> 6];
		uint64_t bit = 1ULL << (index & 63);
		if (load(w) & bit)
			return; /* already summarised */
		if (__atomic_fetch_or(w, bit, __ATOMIC_SEQ_CST) != 0)
			return;
		index >>= 6;
	}
}

static void mark_exclusive(struct tern_dirty *d, unsigned k, uint64_t index)
{
	for (; k < d->levels; k++) {
		uint64_t *w = &d->level[k][index >> 6];
		uint64_t old = *w;
		*w = old | 1ULL << (index & 63);
		if (old != 0)
			return;
		index >>= 6;
	}
}

void tern_dirty_insert(struct tern_dirty *d, uint64_t page)
{
	if (page >= d->pages)
		return;
	uint64_t *w = &d->level[0][page >> 6];
	if (__atomic_fetch_or(w, 1ULL << (page & 63), __ATOMIC_SEQ_CST) == 0)
		mark(d, 1, page >> 6);
}

void tern_dirty_insert_exclusive(struct tern_dirty *d, uint64_t page)
{
	if (page >= d->pages)
		return;
	uint64_t *w = &d->level[0][page >> 6];
	uint64_t old = *w;
	*w = old | 1ULL << (page & 63);
	if (old == 0)
		mark_exclusive(d, 1, page >> 6);
}

void tern_dirty_insert_batch(struct tern_dirty *d, const uint64_t *pages, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint64_t page = pages[i++];
		if (page >= d->pages)
			continue;
		uint64_t word = page >> 6, bits = 1ULL << (page & 63);
		while (i < n && pages[i] >> 6 == word && pages[i] < d->pages)
			bits |= 1ULL << (pages[i++] & 63);
		if (__atomic_fetch_or(&d->level[0][word], bits, __ATOMIC_SEQ_CST) == 0)
			mark(d, 1, word);
	}
}

void tern_dirty_or_bitmap(struct tern_dirty *d, uint64_t first_page, const uint64_t *words,
			  size_t nwords)
{
	if (first_page % 64 != 0 || first_page >= d->pages)
		return;
	uint64_t first_word = first_page / 64;
	if (nwords > d->words[0] - first_word)
		nwords = (size_t)(d->words[0] - first_word);
	const struct dirty_kernels *k = dirty_kernels();
	for (size_t i = k->next_nonzero(words, 0, nwords); i < nwords;
	     i = k->next_nonzero(words, i + 1, nwords)) {
		uint64_t w = first_word + i, bits = words[i];
		if (w == d->words[0] - 1 && d->pages % 64 != 0)
			bits &= (1ULL << (d->pages % 64)) - 1; /* nothing past the end */
		if (bits && __atomic_fetch_or(&d->level[0][w], bits, __ATOMIC_SEQ_CST) == 0)
			mark(d, 1, w);
	}
}

bool tern_dirty_test(const struct tern_dirty *d, uint64_t page)
{
	if (page >= d->pages)
		return false;
	return (load(&d->level[0][page >> 6]) >> (page & 63)) & 1;
}

/* ------------------------------------------------------------ clearing */

/* Word `index` of level k-1 was found zero: clear its summary bit, then
 * look again and put the bit back if the word gained bits meanwhile. */
static void unmark(struct tern_dirty *d, unsigned k, uint64_t index)
{
	for (; k < d->levels; k++) {
		const uint64_t *child = &d->level[k - 1][index];
		uint64_t *w = &d->level[k][index >> 6];
		uint64_t bit = 1ULL << (index & 63);
		uint64_t old = __atomic_fetch_and(w, ~bit, __ATOMIC_SEQ_CST);
		if (load(child) != 0) {
			__atomic_fetch_or(w, bit, __ATOMIC_SEQ_CST);
			return;
		}
		if ((old & ~bit) != 0)
			return; /* the summary word is still non-zero */
		index >>= 6;
	}
}

void tern_dirty_clear(struct tern_dirty *d, uint64_t page)
{
	if (page >= d->pages)
		return;
	uint64_t bit = 1ULL << (page & 63);
	uint64_t old = __atomic_fetch_and(&d->level[0][page >> 6], ~bit, __ATOMIC_SEQ_CST);
	if (old == bit)
		unmark(d, 1, page >> 6);
}

void tern_dirty_clear_range(struct tern_dirty *d, uint64_t first, uint64_t count)
{
	if (first >= d->pages || count == 0)
		return;
	uint64_t end = count > d->pages - first ? d->pages : first + count;
	for (uint64_t w = first >> 6; w <= (end - 1) >> 6; w++) {
		uint64_t lo = w == first >> 6 ? first & 63 : 0;
		uint64_t hi = w == (end - 1) >> 6 ? ((end - 1) & 63) + 1 : 64;
		uint64_t mask = (hi == 64 ? ~0ULL : (1ULL << hi) - 1) & ~((1ULL << lo) - 1);
		uint64_t *word = &d->level[0][w];
		if (load(word) == 0)
			continue;
		if ((__atomic_fetch_and(word, ~mask, __ATOMIC_SEQ_CST) & ~mask) == 0)
			unmark(d, 1, w);
	}
}

void tern_dirty_clear_all(struct tern_dirty *d)
{
	/* Top-down, so that an insert racing with the clear is either cleared
	 * or summarised again (see the top of this file). */
	for (unsigned k = d->levels; k-- > 0;)
		for (uint64_t i = 0; i < d->words[k]; i++)
			if (load(&d->level[k][i]) != 0)
				__atomic_store_n(&d->level[k][i], 0, __ATOMIC_SEQ_CST);
}

/* ------------------------------------------------------------ walking */

/* The first set bit at or after `index` in level k (following the summary
 * above it), or NONE.  Summary bits over zero words are skipped. */
static uint64_t next_set(const struct tern_dirty *d, unsigned k, uint64_t index)
{
	while (index < d->bits[k]) {
		uint64_t w = load(&d->level[k][index >> 6]) & (~0ULL << (index & 63));
		if (w != 0)
			return (index & ~63ULL) + (uint64_t)__builtin_ctzll(w);
		if (k + 1 == d->levels)
			return NONE;
		uint64_t next_word = next_set(d, k + 1, (index >> 6) + 1);
		if (next_word == NONE)
			return NONE;
		index = next_word << 6;
	}
	return NONE;
}

uint64_t tern_dirty_count(const struct tern_dirty *d)
{
	const struct dirty_kernels *k = dirty_kernels();
	uint64_t count = 0;
	for (uint64_t j = next_set(d, 1, 0); j != NONE; j = next_set(d, 1, (j | 63) + 1)) {
		uint64_t block = j >> 6; /* one L1 word: 64 words of pages */
		uint64_t first = block * 64, last = first + 64;
		if (last > d->words[0])
			last = d->words[0];
		count += k->popcount(d->level[0] + first, (size_t)(last - first));
	}
	return count;
}

/*
 * Compaction works level by level so that loads overlap instead of forming
 * a chain of cache misses per page: the summaries yield a batch of
 * non-zero level-1 words; those yield the indices of non-zero level-0
 * words, which are read (or, for a take, exchanged with zero) into a
 * snapshot whose bits are counted before anything is written, so output
 * never exceeds its room however the set changes meanwhile.  A level-1
 * word with most of its 64 children non-zero goes as one block.
 */
#define RUN_WORDS 1024
/* A level-1 word with at least this many non-zero children (of 64) is
 * emitted as one block: past that, reading every word is cheaper than
 * gathering the non-zero ones. */
#define DENSE_CHILDREN 48
/* Output room (entries) from which dense blocks are written with streaming
 * stores through a staging buffer: 8 MiB, past the L2 cache. */
#define STREAM_ROOM (1u << 20)
/* Sets larger than this (past a typical L2 cache) have their words
 * prefetched a batch ahead; smaller ones are already in cache. */
#define PREFETCH_BYTES (4u << 20)
#define STAGE_ENTRIES (64 * 64 + TERN_DIRTY_SLACK)
struct walk {
	struct tern_dirty *d;
	const struct dirty_kernels *k;
	uint64_t *out;
	size_t n, max;
	int take, exclusive;
	int full;        /* out filled up */
	uint64_t stop;   /* then: the first level-0 word not emitted */
	uint64_t l1[RUN_WORDS + 64]; /* level-1 word indices */
	uint64_t v1[RUN_WORDS + 64]; /* their children masks */
	uint64_t l0[RUN_WORDS + 64]; /* level-0 word indices */
	uint64_t v0[RUN_WORDS];      /* their values */
	uint64_t *stage;             /* for streaming; NULL when not */
	int prefetch;
};

/* The non-zero level-1 words at or after `from`, ascending, into out (up
 * to max - 64): the set bits of level 2, a level small enough (1/4096 of
 * the pages) to scan with the kernel, skipping zero words.  *next is where
 * to continue. */
static size_t collect(const struct walk *wk, uint64_t from, uint64_t *out, size_t max,
		      uint64_t *next)
{
	const struct tern_dirty *d = wk->d;
	const uint64_t *level2 = d->level[2];
	size_t words = (size_t)d->words[2], n = 0;
	size_t w = (size_t)(from >> 6);
	if (w < words && (from & 63) != 0) { /* the first word, from mid-word */
		uint64_t first = load(&level2[w]) & (~0ULL << (from & 63));
		n = (size_t)(dirty_emit_word(first, (uint64_t)w * 64, out) - out);
		w++;
	}
	while (w < words && n + 64 <= max) {
		w = wk->k->next_nonzero(level2, w, words);
		size_t end = w, cap = (max - n) / 64;
		while (end < words && end - w < cap && level2[end] != 0)
			end++;
		if (end > w)
			n += wk->k->emit(level2 + w, end - w, (uint64_t)w * 64, out + n);
		w = end;
	}
	*next = (uint64_t)w * 64;
	return n;
}

/* Level-1 word j's non-zero children within mask; a take clears them from
 * the summary first (top-down). */
static uint64_t get_children(struct walk *wk, uint64_t j, uint64_t mask)
{
	uint64_t *summary = &wk->d->level[1][j];
	uint64_t children = load(summary) & mask;
	if (!wk->take || children == 0)
		return children;
	if (wk->exclusive) {
		*summary &= ~children;
		return children;
	}
	return __atomic_fetch_and(summary, ~mask, __ATOMIC_SEQ_CST) & mask;
}

/* Read (or take) level-0 words idx[0 .. n) into vals; return their bits.
 * Prefetching them all first puts many cache misses in flight at once. */
static size_t get_words(struct walk *wk, const uint64_t *idx, size_t n, uint64_t *vals)
{
	uint64_t *level0 = wk->d->level[0];
	if (wk->prefetch)
		for (size_t q = 0; q < n; q++)
			__builtin_prefetch(&level0[idx[q]]);
	for (size_t q = 0; q < n; q++)
		vals[q] = wk->take ? dirty_take_word(&level0[idx[q]], wk->exclusive)
				   : dirty_load_word(&level0[idx[q]]);
	return (size_t)wk->k->popcount(vals, n);
}

/* A take that stopped early puts the words it could not emit back. */
static void give_back(struct walk *wk, const uint64_t *idx, const uint64_t *vals, size_t from,
		      size_t n)
{
	for (size_t q = from; q < n; q++)
		if (vals[q] != 0 &&
		    __atomic_fetch_or(&wk->d->level[0][idx[q]], vals[q], __ATOMIC_SEQ_CST) == 0)
			mark(wk->d, 1, idx[q]);
}

/* Emit the snapshot words (vals[q] is word idx[q]) holding `bits` bits.
 * When they do not all fit, emit whole words while they do and stop. */
static void put_words(struct walk *wk, const uint64_t *idx, const uint64_t *vals, size_t n,
		      size_t bits)
{
	size_t room = wk->max - wk->n;
	if (room >= bits + TERN_DIRTY_SLACK) {
		wk->n += wk->k->emit_values(vals, idx, n, wk->out + wk->n);
		return;
	}
	for (size_t q = 0; q < n; q++) {
		size_t c = dirty_popcount(vals[q]);
		if (c > wk->max - wk->n) {
			wk->full = 1;
			wk->stop = idx[q];
			if (wk->take)
				give_back(wk, idx, vals, q, n);
			return;
		}
		uint64_t tmp[64 + TERN_DIRTY_SLACK];
		size_t got = (size_t)(dirty_emit_word(vals[q], idx[q] * 64, tmp) - tmp);
		memcpy(wk->out + wk->n, tmp, got * sizeof tmp[0]);
		wk->n += got;
	}
}

/* A run of level-1 words l1[0 .. m) with children v1[]: expand, read, emit. */
static void emit_run(struct walk *wk, const uint64_t *l1, const uint64_t *v1, size_t m)
{
	if (m == 0 || wk->full)
		return;
	size_t n0 = wk->k->emit_values(v1, l1, m, wk->l0);
	size_t bits = get_words(wk, wk->l0, n0, wk->v0);
	put_words(wk, wk->l0, wk->v0, n0, bits);
}

/* Level-1 word j whose children are mostly non-zero: one block. */
static void emit_block(struct walk *wk, uint64_t j, uint64_t children)
{
	uint64_t lo = (uint64_t)__builtin_ctzll(children);
	uint64_t hi = 64 - (uint64_t)__builtin_clzll(children);
	uint64_t first = j * 64 + lo;
	size_t count = (size_t)(hi - lo);
	if (first + count > wk->d->words[0])
		count = (size_t)(wk->d->words[0] - first);
	size_t room = wk->max - wk->n;
	const uint64_t *src = wk->d->level[0] + first;
	if (!wk->take && room >= 64 * count + TERN_DIRTY_SLACK && wk->stage == NULL) {
		/* Room for every bit the words could hold: no snapshot needed. */
		wk->n += wk->k->emit(src, count, first * 64, wk->out + wk->n);
		return;
	}
	for (size_t q = 0; q < count; q++)
		wk->l0[q] = first + q;
	size_t bits = get_words(wk, wk->l0, count, wk->v0);
	if (wk->stage != NULL && room >= STREAM_ROOM) {
		size_t got = wk->k->emit(wk->v0, count, first * 64, wk->stage);
		wk->k->stream_copy(wk->out + wk->n, wk->stage, got);
		wk->n += got;
	} else if (room >= bits + TERN_DIRTY_SLACK) {
		wk->n += wk->k->emit(wk->v0, count, first * 64, wk->out + wk->n);
	} else {
		put_words(wk, wk->l0, wk->v0, count, bits);
	}
}

/* After a take, summary bits of level-1 words now zero go too. */
static void prune(struct walk *wk, const uint64_t *l1, size_t m)
{
	for (size_t i = 0; i < m; i++)
		if (load(&wk->d->level[1][l1[i]]) == 0)
			unmark(wk->d, 2, l1[i]);
}

/*
 * Level-1 words wk->l1[0 .. m), the first masked by first_mask.  Runs are
 * slices of that list (children in wk->v1 alongside), cut by dense words
 * and by the level-0 batch size.  A read-only walk reads the summary words
 * of a run eight at a time; a take clears them one by one, top-down.
 */
static void walk_batch(struct walk *wk, size_t m, uint64_t first_mask)
{
	const uint64_t *l1 = wk->l1;
	uint64_t *v1 = wk->v1;
	const uint64_t *level1 = wk->d->level[1];
	if (wk->prefetch)
		for (size_t i = 0; i < m; i++)
			__builtin_prefetch(&level1[l1[i]]);
	size_t start = 0, i = 0, children = 0;
	while (i < m && !wk->full) {
		if (!wk->take && (i > 0 || first_mask == ~0ULL)) {
			size_t bits;
			size_t got = wk->k->gather_run(level1, l1 + i, m - i, v1 + i,
						       RUN_WORDS - children, DENSE_CHILDREN, &bits);
			i += got;
			children += bits;
			if (i == m)
				break;
		}
		uint64_t c = get_children(wk, l1[i], i == 0 ? first_mask : ~0ULL);
		size_t count = dirty_popcount(c);
		if (count >= DENSE_CHILDREN || children + count > RUN_WORDS) {
			emit_run(wk, l1 + start, v1 + start, i - start);
			start = i;
			children = 0;
		}
		if (wk->full) {
			if (wk->take && c != 0) /* not reached: its summary bits go back */
				__atomic_fetch_or(&wk->d->level[1][l1[i]], c, __ATOMIC_SEQ_CST);
			break;
		}
		if (count >= DENSE_CHILDREN) {
			emit_block(wk, l1[i], c);
			start = ++i;
			continue;
		}
		v1[i++] = c;
		children += count;
	}
	emit_run(wk, l1 + start, v1 + start, i - start);
	if (wk->take)
		prune(wk, l1, m);
}

size_t tern_dirty_compact(struct tern_dirty *d, struct tern_dirty_cursor *cursor, uint64_t *out,
			  size_t max, unsigned flags)
{
	struct walk state, *wk = &state; /* 40 KiB of stack */
	wk->d = d;
	wk->k = dirty_kernels();
	wk->out = out;
	wk->n = 0;
	wk->max = max;
	wk->take = (flags & TERN_DIRTY_TAKE) != 0;
	wk->exclusive = (flags & TERN_DIRTY_EXCLUSIVE) != 0;
	wk->full = 0;
	/* Output far past the caches: stage dense blocks, then stream them. */
	wk->stage = max >= STREAM_ROOM ? malloc(STAGE_ENTRIES * sizeof *wk->stage) : NULL;
	wk->prefetch = d->bytes > PREFETCH_BYTES;

	uint64_t start = cursor->page >= d->pages ? d->words[0] : cursor->page / 64;
	uint64_t from = start >> 6; /* level-1 word to continue from */
	while (!wk->full) {
		uint64_t next;
		size_t m = collect(wk, from, wk->l1, RUN_WORDS + 64, &next);
		if (m == 0)
			break;
		uint64_t first_mask = wk->l1[0] == start >> 6 ? ~0ULL << (start & 63) : ~0ULL;
		walk_batch(wk, m, first_mask);
		from = next;
	}
	free(wk->stage);
	cursor->page = wk->full ? wk->stop * 64 : d->pages;
	return wk->n;
}

#define FOR_EACH_BATCH 16384

struct for_each_batch {
	uint64_t pages[FOR_EACH_BATCH];
};

int tern_dirty_for_each(struct tern_dirty *d, unsigned flags,
			int (*fn)(uint64_t page, void *opaque), void *opaque)
{
	struct for_each_batch *b = malloc(sizeof *b);
	if (b == NULL)
		return -ENOMEM;
	struct tern_dirty_cursor c = { 0 };
	int rc = 0;
	while (rc == 0 && c.page < d->pages) {
		size_t n = tern_dirty_compact(d, &c, b->pages, FOR_EACH_BATCH, flags);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = fn(b->pages[i], opaque);
		if (n == 0)
			break;
	}
	free(b);
	return rc;
}
