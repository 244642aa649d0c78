/*
 * Seed 001's table, reproduced in one run: compact a set of dirty pages of
 * a 10,000,000-page slot into a list of page numbers, for the seed's list
 * copy, packed radix-8 tree and bitmap scan, and for tern's dirty set
 * (default kernel and each other kernel), plus tern's kernel on a flat
 * bitmap.  Random rows use the seed's data: srand(pages + count), then
 * count times rand() % pages (duplicates included).  Also a scale row at
 * 268,435,456 pages (1 TiB of 4 KiB pages).
 *
 *   dirty_set [--reps N] [--csv] [--quick] [--only DIRTY]
 *
 * Each structure is built N times from empty (insert cost per page, median;
 * allocation is not timed, the seed's tree being preallocated too)
 * and the last one compacted N times (median): a warm structure, as a
 * migration finds its dirty set every iteration.  N defaults to 7; three
 * untimed compactions come first, for every implementation alike.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/stats.h"

#include "baselines/seed_radix8.h"
#include "tern/dirty.h"

#define SEED_PAGES 10000000ULL
#define SCALE_PAGES 268435456ULL
#define MAX_REPS 31
/* Untimed compactions first, for every implementation alike, so that no
 * timing includes the CPU clocking up or caches filling. */
#define WARMUP 3

struct row {
	const char *pattern;
	uint64_t pages, dirty;
};

enum impl {
	IMPL_LIST,
	IMPL_RADIX8,
	IMPL_BITMAP,
	IMPL_TERN,
	IMPL_TERN_AVX2,
	IMPL_TERN_PORTABLE,
	IMPL_TERN_FLAT,
	IMPLS
};
static const char *const impl_names[IMPLS] = {
	"list", "radix8", "bitmap", "tern", "tern-avx2", "tern-portable", "tern-flat",
};

struct result {
	double compact_ns, insert_ns, kb;
	size_t found;
	int ran;
};

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t *make_pages(const struct row *r)
{
	uint64_t *list = malloc(r->dirty * sizeof *list);
	srand((unsigned)(r->pages + r->dirty));
	for (uint64_t i = 0; i < r->dirty; i++)
		list[i] = strcmp(r->pattern, "seq") == 0 ? i : (uint64_t)rand() % r->pages;
	return list;
}

static const char *kernel_of(enum impl i)
{
	switch (i) {
	case IMPL_TERN_AVX2: return "avx2";
	case IMPL_TERN_PORTABLE: return "portable";
	default: return NULL;
	}
}

/* A built structure of one implementation. */
struct built {
	struct radix8 *tree;
	uint64_t *bitmap;
	struct tern_dirty *set;
};

/* Allocate an empty structure (not timed: the seed preallocates too). */
static void allocate(enum impl impl, const struct row *r, struct built *b)
{
	memset(b, 0, sizeof *b);
	if (impl == IMPL_RADIX8 || impl == IMPL_BITMAP)
		b->tree = radix8_new(r->pages);
	else if (impl == IMPL_TERN_FLAT)
		b->bitmap = calloc((size_t)((r->pages + 63) / 64), sizeof *b->bitmap);
	else if (impl != IMPL_LIST)
		b->set = tern_dirty_new(r->pages);
}

/* Insert every page (timed). */
static void insert_all(enum impl impl, const struct row *r, const uint64_t *list, uint64_t *out,
		       struct built *b)
{
	switch (impl) {
	case IMPL_LIST:
		list_copy(list, r->dirty, out); /* building the list is appending */
		break;
	case IMPL_RADIX8:
	case IMPL_BITMAP:
		for (uint64_t i = 0; i < r->dirty; i++)
			radix8_insert(b->tree, list[i]);
		break;
	case IMPL_TERN_FLAT:
		for (uint64_t i = 0; i < r->dirty; i++)
			b->bitmap[list[i] >> 6] |= 1ULL << (list[i] & 63);
		break;
	default:
		for (uint64_t i = 0; i < r->dirty; i++)
			tern_dirty_insert(b->set, list[i]);
		break;
	}
}

static size_t compact(enum impl impl, const struct row *r, const uint64_t *list, uint64_t *out,
		      struct built *b)
{
	struct tern_dirty_cursor c = { 0 };
	switch (impl) {
	case IMPL_LIST:
		list_copy(list, r->dirty, out);
		return r->dirty;
	case IMPL_RADIX8:
		return radix8_compact(b->tree, out);
	case IMPL_BITMAP:
		return radix8_bitmap_compact(b->tree, out);
	case IMPL_TERN_FLAT:
		return tern_dirty_compact_bitmap(b->bitmap, (size_t)((r->pages + 63) / 64), 0, out);
	default:
		return tern_dirty_compact(b->set, &c, out, r->dirty + TERN_DIRTY_SLACK, 0);
	}
}

static double memory_kb(enum impl impl, const struct row *r, const struct built *b)
{
	switch (impl) {
	case IMPL_LIST: return (double)r->dirty * 8 / 1024;
	case IMPL_RADIX8: return (double)b->tree->bytes / 1024;
	case IMPL_BITMAP:
	case IMPL_TERN_FLAT: return (double)((r->pages + 63) / 64) * 8 / 1024;
	default: return (double)tern_dirty_memory(b->set) / 1024;
	}
}

static void unbuild(struct built *b)
{
	free(b->tree);
	free(b->bitmap);
	if (b->set)
		tern_dirty_free(b->set);
}

/* Time one implementation on one row: insert cost over `reps` builds from
 * empty, then `reps` compactions of the last, warm, structure. */
static struct result measure(enum impl impl, const struct row *r, const uint64_t *list,
			     uint64_t *out, int reps, const char *default_kernel)
{
	struct result res = { .ran = 1 };
	const char *k = kernel_of(impl);
	if (impl >= IMPL_TERN && impl != IMPL_TERN_FLAT &&
	    tern_dirty_use_kernel(k ? k : default_kernel) != 0) {
		res.ran = 0;
		return res;
	}
	double compact_ns[MAX_REPS], insert_ns[MAX_REPS];
	struct built b = { 0 };
	for (int rep = 0; rep < reps; rep++) {
		unbuild(&b);
		allocate(impl, r, &b);
		double t0 = now_ns();
		insert_all(impl, r, list, out, &b);
		insert_ns[rep] = (now_ns() - t0) / (double)r->dirty;
	}
	for (int rep = -WARMUP; rep < reps; rep++) {
		double t0 = now_ns();
		res.found = compact(impl, r, list, out, &b);
		if (rep >= 0)
			compact_ns[rep] = now_ns() - t0;
	}
	res.kb = memory_kb(impl, r, &b);
	unbuild(&b);
	tern_dirty_use_kernel(default_kernel);
	res.compact_ns = harness_median(compact_ns, reps);
	res.insert_ns = harness_median(insert_ns, reps);
	return res;
}

/* Insert costs of tern's other insert paths, for the notes. */
static void insert_variants(const struct row *r, const uint64_t *list, int reps, double *excl,
			    double *batch)
{
	double a[MAX_REPS], b[MAX_REPS];
	for (int rep = 0; rep < reps; rep++) {
		struct tern_dirty *d = tern_dirty_new(r->pages);
		tern_dirty_insert_batch(d, list, r->dirty); /* first touch, untimed */
		tern_dirty_clear_all(d);
		double t0 = now_ns();
		for (uint64_t i = 0; i < r->dirty; i++)
			tern_dirty_insert_exclusive(d, list[i]);
		double t1 = now_ns();
		tern_dirty_clear_all(d);
		double t2 = now_ns();
		tern_dirty_insert_batch(d, list, r->dirty);
		double t3 = now_ns();
		a[rep] = (t1 - t0) / (double)r->dirty;
		b[rep] = (t3 - t2) / (double)r->dirty;
		tern_dirty_free(d);
	}
	*excl = harness_median(a, reps);
	*batch = harness_median(b, reps);
}

static void print_ns(double ns)
{
	if (ns < 1e4)
		printf(" %9.0fns", ns);
	else if (ns < 1e7)
		printf(" %9.1fus", ns / 1e3);
	else
		printf(" %9.2fms", ns / 1e6);
}

int main(int argc, char **argv)
{
	int reps = 7, csv = 0, quick = 0;
	uint64_t only = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: %s [--reps N] [--csv] [--quick] [--only DIRTY]\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 5 || reps > MAX_REPS) {
		fprintf(stderr, "--reps must be 5..%d\n", MAX_REPS);
		return 2;
	}
	const struct row rows[] = {
		{ "random", SEED_PAGES, 100 },       { "random", SEED_PAGES, 1000 },
		{ "random", SEED_PAGES, 10000 },     { "random", SEED_PAGES, 100000 },
		{ "random", SEED_PAGES, 1000000 },   { "random", SEED_PAGES, 10000000 },
		{ "seq", SEED_PAGES, 1000 },         { "seq", SEED_PAGES, 10000 },
		{ "seq", SEED_PAGES, 100000 },       { "random-1TiB", SCALE_PAGES, 1000 },
		{ "random-1TiB", SCALE_PAGES, 1000000 },
	};
	size_t nrows = sizeof rows / sizeof rows[0];
	if (quick)
		nrows = 6;
	char default_kernel[32];
	snprintf(default_kernel, sizeof default_kernel, "%s", tern_dirty_kernel());

	if (csv)
		printf("pattern,dirty,impl,compact_ns,insert_ns_per_page,kb\n");
	else
		printf("dirty-page sets: compact dirty pages into a list, median of %d; tern's "
		       "default kernel here: %s\n\n%-11s %9s %10s %11s %11s %11s %11s %11s %11s %11s "
		       "%9s\n",
		       reps, default_kernel, "pattern", "pages", "dirty", "list", "radix8", "bitmap",
		       "tern", "tern-avx2", "tern-port", "tern-flat", "vs radix8");
	struct result res[sizeof rows / sizeof rows[0]][IMPLS];
	double excl[sizeof rows / sizeof rows[0]], batch[sizeof rows / sizeof rows[0]];
	for (size_t ri = 0; ri < nrows; ri++) {
		const struct row *r = &rows[ri];
		if (only && r->dirty != only)
			continue;
		uint64_t *list = make_pages(r);
		size_t out_len = (size_t)(r->dirty + 2 * TERN_DIRTY_SLACK + 64 * 64);
		uint64_t *out = malloc(out_len * sizeof *out);
		memset(out, 0, out_len * sizeof *out); /* no first-touch faults in timings */
		int row_reps = r->pages > SEED_PAGES ? 5 : reps;
		for (int i = 0; i < IMPLS; i++) {
			/* The bit-by-bit scan of 2^28 bits takes seconds; once is
			 * enough to show it. */
			int n = r->pages > SEED_PAGES && i == IMPL_BITMAP ? 1 : row_reps;
			res[ri][i] = measure((enum impl)i, r, list, out, n < 5 ? 5 : n, default_kernel);
			/* Every set finds the same distinct pages as the tree (the
			 * list keeps the duplicates). */
			if (i > IMPL_RADIX8 && res[ri][i].ran &&
			    res[ri][i].found != res[ri][IMPL_RADIX8].found) {
				fprintf(stderr, "%s found %zu pages, radix8 %zu\n", impl_names[i],
					res[ri][i].found, res[ri][IMPL_RADIX8].found);
				return 1;
			}
		}
		insert_variants(r, list, row_reps, &excl[ri], &batch[ri]);
		free(out);
		free(list);
		if (csv) {
			for (int i = 0; i < IMPLS; i++)
				if (res[ri][i].ran)
					printf("%s,%llu,%s,%.0f,%.2f,%.0f\n", r->pattern,
					       (unsigned long long)r->dirty, impl_names[i],
					       res[ri][i].compact_ns, res[ri][i].insert_ns, res[ri][i].kb);
			printf("%s,%llu,tern-insert-exclusive,%.0f,%.2f,%.0f\n", r->pattern,
			       (unsigned long long)r->dirty, res[ri][IMPL_TERN].compact_ns, excl[ri],
			       res[ri][IMPL_TERN].kb);
			printf("%s,%llu,tern-insert-batch,%.0f,%.2f,%.0f\n", r->pattern,
			       (unsigned long long)r->dirty, res[ri][IMPL_TERN].compact_ns, batch[ri],
			       res[ri][IMPL_TERN].kb);
			continue;
		}
		printf("%-11s %9llu %10llu", r->pattern, (unsigned long long)r->pages,
		       (unsigned long long)r->dirty);
		for (int i = 0; i < IMPLS; i++) {
			if (res[ri][i].ran)
				print_ns(res[ri][i].compact_ns);
			else
				printf(" %11s", "n/a");
		}
		printf(" %8.0fx\n", res[ri][IMPL_RADIX8].compact_ns / res[ri][IMPL_TERN].compact_ns);
		fflush(stdout);
	}
	if (csv)
		return 0;
	printf("\ninsert, ns per page (building from empty), and memory in kB\n%-11s %10s %9s %9s "
	       "%9s %12s %10s %10s %10s %10s\n",
	       "pattern", "dirty", "list", "radix8", "tern", "tern-excl", "tern-batch", "kB radix8",
	       "kB bitmap", "kB tern");
	for (size_t ri = 0; ri < nrows; ri++) {
		const struct row *r = &rows[ri];
		if (only && r->dirty != only)
			continue;
		printf("%-11s %10llu %9.2f %9.2f %9.2f %12.2f %10.2f %10.0f %10.0f %10.0f\n", r->pattern,
		       (unsigned long long)r->dirty, res[ri][IMPL_LIST].insert_ns,
		       res[ri][IMPL_RADIX8].insert_ns, res[ri][IMPL_TERN].insert_ns, excl[ri],
		       batch[ri], res[ri][IMPL_RADIX8].kb, res[ri][IMPL_BITMAP].kb,
		       res[ri][IMPL_TERN].kb);
	}
	printf("\ntern: lock-free insert (atomic OR); tern-excl: single-writer insert; tern-batch: "
	       "insert_batch (one atomic per run of pages in a word).\nvs radix8: the seed's tree "
	       "time over tern's, same run.\n");
	return 0;
}
