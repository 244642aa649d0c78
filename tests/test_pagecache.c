/* The XBZRLE page cache: hits, LRU eviction within a set, drops, sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/pagecache.h"

static void hit_miss_and_content(void **state)
{
	(void)state;
	struct tern_pagecache *c = tern_pagecache_new(64 * 4096, 4096, 8, 0);
	assert_non_null(c);
	assert_int_equal(tern_pagecache_bytes(c), 64 * 4096);
	assert_null(tern_pagecache_get(c, 5));
	uint8_t *slot = tern_pagecache_put(c, 5);
	memset(slot, 0x55, 4096);
	uint8_t *again = tern_pagecache_get(c, 5);
	assert_ptr_equal(again, slot);
	assert_int_equal(again[4095], 0x55);
	assert_ptr_equal(tern_pagecache_put(c, 5), slot); /* same page, same slot */
	tern_pagecache_drop(c, 5);
	assert_null(tern_pagecache_get(c, 5));
	struct tern_pagecache_stats s;
	tern_pagecache_stats(c, &s);
	assert_int_equal(s.hits, 1);
	assert_int_equal(s.misses, 2);
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.capacity, 64);
	tern_pagecache_free(c);
}

/* Fill far past capacity, then reuse a working set that fits: LRU keeps
 * it; every page found holds what was put for it. */
static void lru_keeps_the_recent(void **state)
{
	(void)state;
	struct tern_pagecache *c = tern_pagecache_new(1024 * 64, 64, 8, 0); /* 1024 entries */
	for (uint64_t p = 0; p < 100000; p++)
		memset(tern_pagecache_put(c, p), (int)(p & 0xff), 64);
	struct tern_pagecache_stats s;
	tern_pagecache_stats(c, &s);
	assert_int_equal(s.entries, 1024);
	assert_int_equal(s.evictions, 100000 - 1024);
	for (uint64_t p = 0; p < 100000; p++) {
		uint8_t *d = tern_pagecache_get(c, p);
		if (d != NULL)
			assert_int_equal(d[63], p & 0xff);
	}
	/* A working set of half the capacity, touched repeatedly, stays. */
	for (uint64_t p = 500000; p < 500512; p++)
		tern_pagecache_put(c, p);
	for (int round = 0; round < 5; round++)
		for (uint64_t p = 500000; p < 500512; p++) {
			if (tern_pagecache_get(c, p) == NULL)
				tern_pagecache_put(c, p);
			tern_pagecache_put(c, 1000000 + (uint64_t)round * 1000 + p % 7); /* noise */
		}
	unsigned kept = 0;
	for (uint64_t p = 500000; p < 500512; p++)
		kept += tern_pagecache_get(c, p) != NULL;
	assert_true(kept >= 500); /* nearly all; a crowded set may lose a few */
	tern_pagecache_free(c);
}

static void bad_sizes(void **state)
{
	(void)state;
	assert_null(tern_pagecache_new(4096 * 4, 4096, 8, 0)); /* fewer pages than ways */
	assert_null(tern_pagecache_new(1 << 20, 4096, 3, 0));  /* not a power of two */
	assert_null(tern_pagecache_new(1 << 20, 0, 8, 0));
	struct tern_pagecache *c = tern_pagecache_new((1 << 20) + 4096 * 3, 4096, 1, 0);
	assert_non_null(c);
	assert_int_equal(tern_pagecache_bytes(c), 1 << 20); /* a power of two of pages */
	assert_null(tern_pagecache_put(c, UINT64_MAX));
	tern_pagecache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hit_miss_and_content),
		cmocka_unit_test(lru_keeps_the_recent),
		cmocka_unit_test(bad_sizes),
	};
	return cmocka_run_group_tests_name("pagecache", tests, NULL, NULL);
}
