/*
 * Dirty-page sets: random operation sequences against a plain reference
 * (one byte per page), for sizes on and off every boundary; every kernel
 * against the portable one; resumable and bounded compaction; takes; many
 * threads inserting at once, also while a take runs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/dirty.h"

static const char *const kernels[] = { "portable", "avx2", "avx512" };

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Compact (or take) everything with a buffer of `chunk` entries at a time,
 * checking it against the reference; returns the count. */
static uint64_t check_compact(struct tern_dirty *d, uint8_t *ref, uint64_t pages, size_t chunk,
			      unsigned flags)
{
	uint64_t *buf = malloc((chunk + TERN_DIRTY_SLACK) * sizeof *buf);
	struct tern_dirty_cursor c = { 0 };
	uint64_t expect = 0, total = 0;
	while (c.page < pages) {
		uint64_t before = c.page;
		size_t n = tern_dirty_compact(d, &c, buf, chunk, flags);
		assert_true(n <= chunk);
		assert_true(n > 0 || c.page == pages); /* progress with >= 64 */
		assert_true(c.page > before || c.page == pages || n > 0);
		for (size_t i = 0; i < n; i++) {
			/* ascending, each a dirty page, none missed in between */
			while (expect < pages && !ref[expect])
				expect++;
			if (buf[i] != expect)
				fail_msg("pages=%llu chunk=%zu: entry %llu is %llu, expected %llu",
					 (unsigned long long)pages, chunk,
					 (unsigned long long)(total + i), (unsigned long long)buf[i],
					 (unsigned long long)expect);
			if (flags & TERN_DIRTY_TAKE)
				ref[expect] = 0;
			expect++;
		}
		total += n;
	}
	while (expect < pages && !ref[expect])
		expect++;
	assert_int_equal(expect, pages); /* nothing left out */
	free(buf);
	return total;
}

static uint64_t ref_count(const uint8_t *ref, uint64_t pages)
{
	uint64_t n = 0;
	for (uint64_t p = 0; p < pages; p++)
		n += ref[p];
	return n;
}

static void random_operations(uint64_t pages, unsigned rounds)
{
	struct tern_dirty *d = tern_dirty_new(pages);
	assert_non_null(d);
	assert_int_equal(tern_dirty_pages(d), pages);
	uint8_t *ref = calloc(pages, 1);
	uint64_t *batch = malloc(256 * sizeof *batch);
	/* OR-ins may run two words past the set's end (the set must ignore it). */
	uint64_t *bitmap = calloc((pages + 63) / 64 + 2, sizeof *bitmap);
	for (unsigned round = 0; round < rounds; round++) {
		unsigned op = (unsigned)(rnd() % 10);
		/* Densities from a handful of pages to most of the set. */
		uint64_t many = 1 + rnd() % (pages / (1 + rnd() % 64) + 1);
		switch (op) {
		case 0:
		case 1:
			for (uint64_t i = 0; i < many; i++) {
				uint64_t p = rnd() % (pages + 3); /* some past the end */
				if (op == 0)
					tern_dirty_insert(d, p);
				else
					tern_dirty_insert_exclusive(d, p);
				if (p < pages)
					ref[p] = 1;
			}
			break;
		case 2: {
			size_t n = (size_t)(rnd() % 256);
			uint64_t at = rnd() % pages;
			for (size_t i = 0; i < n; i++) /* clustered, with duplicates */
				batch[i] = (at + rnd() % 200) % (pages + 1);
			tern_dirty_insert_batch(d, batch, n);
			for (size_t i = 0; i < n; i++)
				if (batch[i] < pages)
					ref[batch[i]] = 1;
			break;
		}
		case 3: {
			uint64_t words = (pages + 63) / 64;
			uint64_t first = rnd() % words, n = 1 + rnd() % (words - first + 2);
			memset(bitmap, 0, (words + 2) * sizeof *bitmap);
			for (uint64_t w = 0; w < n; w++)
				bitmap[w] = rnd() & rnd() & rnd();
			tern_dirty_or_bitmap(d, first * 64, bitmap, (size_t)n);
			for (uint64_t w = 0; w < n; w++)
				for (unsigned b = 0; b < 64; b++)
					if (((bitmap[w] >> b) & 1) && (first + w) * 64 + b < pages)
						ref[(first + w) * 64 + b] = 1;
			break;
		}
		case 4:
			for (uint64_t i = 0; i < many % 50 + 1; i++) {
				uint64_t p = rnd() % pages;
				tern_dirty_clear(d, p);
				ref[p] = 0;
			}
			break;
		case 5: {
			uint64_t first = rnd() % pages, n = rnd() % (pages / 4 + 2);
			tern_dirty_clear_range(d, first, n);
			for (uint64_t p = first; p < pages && p - first < n; p++)
				ref[p] = 0;
			break;
		}
		case 6:
			if (rnd() % 8 == 0) {
				tern_dirty_clear_all(d);
				memset(ref, 0, pages);
			}
			break;
		case 7: {
			size_t chunk = (size_t)(rnd() % 3 == 0 ? 64 + rnd() % 100 : 64 + rnd() % 70000);
			uint64_t n = check_compact(d, ref, pages, chunk, 0);
			assert_int_equal(n, ref_count(ref, pages));
			break;
		}
		case 8: {
			size_t chunk = (size_t)(64 + rnd() % 5000);
			unsigned flags = TERN_DIRTY_TAKE | (rnd() % 2 ? TERN_DIRTY_EXCLUSIVE : 0);
			check_compact(d, ref, pages, chunk, flags);
			assert_int_equal(tern_dirty_count(d), 0);
			break;
		}
		default:
			for (int i = 0; i < 20; i++) {
				uint64_t p = rnd() % (pages + 5);
				assert_int_equal(tern_dirty_test(d, p), p < pages && ref[p]);
			}
			assert_int_equal(tern_dirty_count(d), ref_count(ref, pages));
			break;
		}
	}
	check_compact(d, ref, pages, 1 << 20, 0);
	tern_dirty_free(d);
	free(ref);
	free(batch);
	free(bitmap);
}

static void property_odd_and_even_sizes(void **state)
{
	(void)state;
	/* On and off multiples of 64 (a word), 4096 (a summary word) and
	 * 262,144 (two summary levels). */
	static const uint64_t sizes[] = { 1,    2,    63,   64,   65,     127,    4095,
					  4096, 4097, 8191, 12345, 262143, 262144, 262145,
					  300007 };
	for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
		for (unsigned k = 0; k < 3; k++) {
			if (tern_dirty_use_kernel(kernels[k]) != 0)
				continue;
			random_operations(sizes[s], sizes[s] > 100000 ? 60 : 150);
		}
	tern_dirty_use_kernel("portable");
	assert_int_equal(tern_dirty_use_kernel("nonexistent"), -ENOENT);
}

static void memory_near_a_bitmap(void **state)
{
	(void)state;
	static const uint64_t sizes[] = { 4096 * 64, 10000000, 268435456 };
	for (unsigned i = 0; i < 3; i++) {
		struct tern_dirty *d = tern_dirty_new(sizes[i]);
		double bitmap = (double)sizes[i] / 8;
		double ratio = (double)tern_dirty_memory(d) / bitmap;
		if (ratio > 1.1)
			fail_msg("%llu pages: %.3fx a bitmap", (unsigned long long)sizes[i], ratio);
		tern_dirty_free(d);
	}
	assert_null(tern_dirty_new(0));
	assert_null(tern_dirty_new((1ULL << 48) + 1));
}

/* Every kernel gives the portable kernel's output, word for word, on words
 * of every density, including all ones and lone top bits. */
static void kernels_agree(void **state)
{
	(void)state;
	const size_t words = 4096;
	uint64_t *w = malloc(words * sizeof *w);
	for (size_t i = 0; i < words; i++) {
		switch (i % 7) {
		case 0: w[i] = 0; break;
		case 1: w[i] = ~0ULL; break;
		case 2: w[i] = 1ULL << 63; break;
		case 3: w[i] = rnd(); break;
		case 4: w[i] = rnd() & rnd() & rnd() & rnd(); break;
		case 5: w[i] = 1ULL << (rnd() % 64); break;
		default: w[i] = (1ULL << (rnd() % 64)) | (1ULL << (rnd() % 64)); break;
		}
	}
	size_t cap = words * 64 + TERN_DIRTY_SLACK;
	uint64_t *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got);
	assert_int_equal(tern_dirty_use_kernel("portable"), 0);
	size_t n = tern_dirty_compact_bitmap(w, words, 12345 * 64, want);
	for (unsigned k = 1; k < 3; k++) {
		if (tern_dirty_use_kernel(kernels[k]) != 0) {
			print_message("    (kernel %s not supported here)\n", kernels[k]);
			continue;
		}
		/* Every window and offset, to reach each code path's edges. */
		for (size_t off = 0; off < 64; off += 7)
			for (size_t len = 1; len + off <= words; len = len * 3 + 1) {
				size_t m = tern_dirty_compact_bitmap(w + off, len, 12345 * 64, got);
				assert_int_equal(tern_dirty_use_kernel("portable"), 0);
				size_t e = tern_dirty_compact_bitmap(w + off, len, 12345 * 64, want);
				assert_int_equal(tern_dirty_use_kernel(kernels[k]), 0);
				assert_int_equal(m, e);
				assert_memory_equal(got, want, m * sizeof *got);
			}
		size_t m = tern_dirty_compact_bitmap(w, words, 12345 * 64, got);
		assert_int_equal(m, n);
	}
	tern_dirty_use_kernel("portable");
	free(w);
	free(want);
	free(got);
}

/* Whole sets through each kernel, at the densities where the walk changes
 * strategy (sparse gathers, dense blocks, streaming output). */
static void kernels_agree_on_sets(void **state)
{
	(void)state;
	const uint64_t pages = 3000000;
	static const uint64_t dirty[] = { 1, 100, 5000, 200000, 2000000 };
	uint64_t *want = malloc((pages + 4096) * sizeof *want);
	uint64_t *got = malloc((pages + 4096) * sizeof *got);
	for (unsigned i = 0; i < sizeof dirty / sizeof dirty[0]; i++) {
		struct tern_dirty *d = tern_dirty_new(pages);
		for (uint64_t j = 0; j < dirty[i]; j++)
			tern_dirty_insert(d, rnd() % pages);
		tern_dirty_use_kernel("portable");
		struct tern_dirty_cursor c = { 0 };
		size_t n = tern_dirty_compact(d, &c, want, pages + 4096, 0);
		assert_int_equal(n, tern_dirty_count(d));
		for (unsigned k = 1; k < 3; k++) {
			if (tern_dirty_use_kernel(kernels[k]) != 0)
				continue;
			c.page = 0;
			size_t m = tern_dirty_compact(d, &c, got, pages + 4096, 0);
			assert_int_equal(m, n);
			assert_memory_equal(got, want, n * sizeof *got);
		}
		tern_dirty_free(d);
	}
	tern_dirty_use_kernel("portable");
	free(want);
	free(got);
}

static int visit(uint64_t page, void *opaque)
{
	struct {
		uint64_t last, n;
	} *seen = opaque;
	if (seen->n > 0 && page <= seen->last)
		return -1;
	seen->last = page;
	seen->n++;
	return 0;
}

static void for_each_visits_in_order(void **state)
{
	(void)state;
	struct tern_dirty *d = tern_dirty_new(100000);
	for (uint64_t p = 3; p < 100000; p += 997)
		tern_dirty_insert(d, p);
	struct {
		uint64_t last, n;
	} seen = { 0, 0 };
	assert_int_equal(tern_dirty_for_each(d, 0, visit, &seen), 0);
	assert_int_equal(seen.n, tern_dirty_count(d));
	seen.n = 0;
	assert_int_equal(tern_dirty_for_each(d, TERN_DIRTY_TAKE, visit, &seen), 0);
	assert_int_equal(tern_dirty_count(d), 0);
	tern_dirty_free(d);
}

struct inserter {
	struct tern_dirty *d;
	uint64_t first, count, stride;
	int batch;
};

static void *insert_thread(void *arg)
{
	struct inserter *in = arg;
	uint64_t buf[64];
	size_t n = 0;
	for (uint64_t i = 0; i < in->count; i++) {
		uint64_t p = in->first + i * in->stride;
		if (!in->batch) {
			tern_dirty_insert(in->d, p);
			continue;
		}
		buf[n++] = p;
		if (n == 64) {
			tern_dirty_insert_batch(in->d, buf, n);
			n = 0;
		}
	}
	tern_dirty_insert_batch(in->d, buf, n);
	return NULL;
}

/* Threads insert interleaved pages, sharing every word: none is lost. */
static void concurrent_inserts_lose_nothing(void **state)
{
	(void)state;
	enum { THREADS = 4 };
	const uint64_t per_thread = 500000, pages = THREADS * per_thread;
	struct tern_dirty *d = tern_dirty_new(pages);
	pthread_t t[THREADS];
	struct inserter in[THREADS];
	for (int i = 0; i < THREADS; i++) {
		in[i] = (struct inserter){ d, (uint64_t)i, per_thread, THREADS, i % 2 };
		pthread_create(&t[i], NULL, insert_thread, &in[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(tern_dirty_count(d), pages);
	tern_dirty_free(d);
}

/* Inserts racing with repeated takes: every inserted page comes out of
 * exactly one take (none lost, none twice). */
static void takes_racing_inserts(void **state)
{
	(void)state;
	enum { THREADS = 3 };
	const uint64_t per_thread = 300000, pages = THREADS * per_thread;
	struct tern_dirty *d = tern_dirty_new(pages);
	pthread_t t[THREADS];
	struct inserter in[THREADS];
	for (int i = 0; i < THREADS; i++) {
		/* Each thread a contiguous range, so summary words churn. */
		in[i] = (struct inserter){ d, (uint64_t)i * per_thread, per_thread, 1, i == 0 };
		pthread_create(&t[i], NULL, insert_thread, &in[i]);
	}
	uint8_t *seen = calloc(pages, 1);
	uint64_t *buf = malloc(10000 * sizeof *buf);
	uint64_t taken = 0;
	int joined[THREADS] = { 0 };
	for (int round = 0; taken < pages && round < 100000; round++) {
		struct tern_dirty_cursor c = { 0 };
		while (c.page < pages) {
			size_t n = tern_dirty_compact(d, &c, buf, 10000, TERN_DIRTY_TAKE);
			for (size_t i = 0; i < n; i++) {
				assert_true(buf[i] < pages);
				if (seen[buf[i]]++)
					fail_msg("page %llu taken twice", (unsigned long long)buf[i]);
			}
			taken += n;
			if (n == 0)
				break;
		}
		if (round % 64 == 63)
			for (int i = 0; i < THREADS; i++)
				if (!joined[i] && pthread_tryjoin_np(t[i], NULL) == 0)
					joined[i] = 1;
	}
	for (int i = 0; i < THREADS; i++)
		if (!joined[i])
			pthread_join(t[i], NULL);
	/* Whatever the last round missed is still in the set. */
	struct tern_dirty_cursor c = { 0 };
	while (c.page < pages) {
		size_t n = tern_dirty_compact(d, &c, buf, 10000, TERN_DIRTY_TAKE);
		for (size_t i = 0; i < n; i++)
			if (seen[buf[i]]++)
				fail_msg("page %llu taken twice", (unsigned long long)buf[i]);
		taken += n;
		if (n == 0)
			break;
	}
	assert_int_equal(taken, pages);
	free(seen);
	free(buf);
	tern_dirty_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(property_odd_and_even_sizes),
		cmocka_unit_test(memory_near_a_bitmap),
		cmocka_unit_test(kernels_agree),
		cmocka_unit_test(kernels_agree_on_sets),
		cmocka_unit_test(for_each_visits_in_order),
		cmocka_unit_test(concurrent_inserts_lose_nothing),
		cmocka_unit_test(takes_racing_inserts),
	};
	return cmocka_run_group_tests_name("dirty", tests, NULL, NULL);
}
