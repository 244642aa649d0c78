/*
 * XBZRLE page-cache hit rates on migration-like traces: QEMU's cache (a
 * model: direct-mapped, fresh entries kept for two syncs) against tern's
 * set-associative cache at several associativities and lifetimes (0 is
 * plain LRU; 8 ways, lifetime 4 is tern's default), same size, same trace.
 *
 *   pagecache [--cache-mib N] [--rounds N] [--csv]
 *
 * A trace is a sequence of rounds (dirty syncs); each round's dirty pages
 * are walked in ascending order, as the migration engine walks them: a
 * cached page is a hit (XBZRLE can encode it), a missing one is put in.
 * Round 0 is the bulk stage, which caches nothing (seed 004).  Guest RAM is
 * 1 GiB (262,144 pages).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines/qemu_pagecache.h"
#include "tern/pagecache.h"

#include "../harness/rng.h"

#define PAGES 262144ULL

struct trace {
	const char *name;
	const char *what;
	uint64_t writes;        /* page writes per round */
	uint64_t pages, hot;    /* pages written over; hot part */
	unsigned hot_share;     /* % of writes to the hot part */
	int sequential;
};

static uint64_t rng = 1;

static uint64_t rnd(void)
{
	return harness_splitmix(&rng);
}

/* One round's dirty pages, ascending and distinct, into out; returns n. */
static size_t round_pages(const struct trace *t, unsigned round, uint8_t *mark, uint64_t *out)
{
	memset(mark, 0, PAGES);
	for (uint64_t i = 0; i < t->writes; i++) {
		uint64_t p;
		if (t->sequential)
			p = (round * t->writes + i) % t->pages;
		else if (rnd() % 100 < t->hot_share)
			p = rnd() % t->hot;
		else
			p = t->hot + rnd() % (t->pages - t->hot);
		mark[p] = 1;
	}
	size_t n = 0;
	for (uint64_t p = 0; p < PAGES; p++)
		if (mark[p])
			out[n++] = p;
	return n;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned cache_mib = 64, rounds = 30;
	int csv = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else if (strcmp(argv[i], "--cache-mib") == 0 && i + 1 < argc)
			cache_mib = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--cache-mib N] [--rounds N] [--csv]\n", argv[0]);
			return 2;
		}
	}
	const uint64_t cache_pages = (uint64_t)cache_mib << 8;
	const struct trace traces[] = {
		{ "hotcold", "90% of writes to 10% of RAM (a hot set larger than the cache)", 30000,
		  PAGES, PAGES / 10, 90, 0 },
		{ "hot-fits", "90% of writes to a hot set half the cache's size", 30000, PAGES,
		  cache_pages / 2, 90, 0 },
		{ "sparse", "random writes over 256 MiB (the xbzrle test program)", 50000, 65536,
		  0, 0, 0 },
		{ "sequential", "a sweep over 256 MiB, 30000 pages a round", 30000, 65536, 0, 0, 1 },
	};
	/* tern's cache at several associativities and lifetimes (0: LRU). */
	static const struct {
		unsigned ways, lifetime;
		const char *name;
	} v_[] = {
		{ 1, 0, "1w-lru" },   { 8, 0, "8w-lru" },   { 1, 2, "1w-life2" }, { 1, 4, "1w-life4" },
		{ 8, 2, "8w-life2" }, { 8, 4, "8w-life4" }, { 8, 8, "8w-life8" },
	};
	enum { VARIANTS = 1 + sizeof v_ / sizeof v_[0] };
	uint8_t *mark = malloc(PAGES);
	uint64_t *dirty = malloc(PAGES * sizeof *dirty);
	if (csv)
		printf("trace,cache,hits,lookups,hit_rate,ns_per_lookup\n");
	else
	{
		printf("XBZRLE page-cache hit rate, %u MiB cache (%llu pages), 1 GiB guest, %u "
		       "rounds after the bulk stage\n\n%-11s %9s", cache_mib,
		       (unsigned long long)cache_pages, rounds, "trace", "qemu");
		for (size_t v = 0; v < sizeof v_ / sizeof v_[0]; v++)
			printf(" %9s", v_[v].name);
		printf("\n");
	}
	for (size_t t = 0; t < sizeof traces / sizeof traces[0]; t++) {
		double rate[VARIANTS], ns[VARIANTS];
		uint64_t hits_n[VARIANTS], looks[VARIANTS];
		for (int v = 0; v < VARIANTS; v++) {
			rng = 1 + t; /* the same trace for every cache */
			struct qemu_pagecache *q = v == 0 ? qemu_pagecache_new(cache_pages) : NULL;
			struct tern_pagecache *c =
				v > 0 ? tern_pagecache_new(cache_pages * 4096, 4096, v_[v - 1].ways,
							   v_[v - 1].lifetime)
				      : NULL;
			uint64_t hits = 0, lookups = 0;
			double spent = 0;
			for (unsigned r = 0; r <= rounds; r++) {
				size_t n = round_pages(&traces[t], r, mark, dirty);
				if (r == 0)
					continue; /* the bulk stage caches nothing */
				if (c != NULL)
					tern_pagecache_next_generation(c);
				double t0 = now_ns();
				for (size_t i = 0; i < n; i++) {
					uint64_t p = dirty[i];
					int hit;
					if (q != NULL) {
						hit = qemu_pagecache_hit(q, p);
						if (!hit)
							qemu_pagecache_insert(q, p, r);
					} else {
						hit = tern_pagecache_get(c, p) != NULL;
						if (!hit)
							tern_pagecache_put(c, p);
					}
					hits += (uint64_t)hit;
				}
				spent += now_ns() - t0;
				lookups += n;
			}
			rate[v] = 100.0 * (double)hits / (double)lookups;
			ns[v] = spent / (double)lookups;
			hits_n[v] = hits;
			looks[v] = lookups;
			if (q)
				qemu_pagecache_free(q);
			if (c)
				tern_pagecache_free(c);
		}
		if (csv) {
			for (int v = 0; v < VARIANTS; v++)
				printf("%s,%s%s,%llu,%llu,%.2f,%.1f\n", traces[t].name,
				       v == 0 ? "qemu" : "tern-", v == 0 ? "" : v_[v - 1].name,
				       (unsigned long long)hits_n[v], (unsigned long long)looks[v],
				       rate[v], ns[v]);
			continue;
		}
		printf("%-11s", traces[t].name);
		for (int v = 0; v < VARIANTS; v++)
			printf(" %8.1f%%", rate[v]);
		printf("   (%s)\n", traces[t].what);
	}
	free(mark);
	free(dirty);
	return 0;
}
