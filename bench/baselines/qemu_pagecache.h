/* A model of QEMU's XBZRLE page cache (migration/page_cache.c, 7.2):
 * direct-mapped by page number, and a fresh entry (inserted fewer than 2
 * dirty syncs ago) is never replaced.  For the benchmark only. */
#ifndef BENCH_QEMU_PAGECACHE_H
#define BENCH_QEMU_PAGECACHE_H

#include <stdint.h>

struct qemu_pagecache;

struct qemu_pagecache *qemu_pagecache_new(uint64_t pages);
void qemu_pagecache_free(struct qemu_pagecache *c);
/* Nonzero when `page` is cached (QEMU's cache_is_cached). */
int qemu_pagecache_hit(struct qemu_pagecache *c, uint64_t page);
/* QEMU's cache_insert at sync generation `age`. */
void qemu_pagecache_insert(struct qemu_pagecache *c, uint64_t page, uint64_t age);

#endif
