/* QEMU's page-cache policy; see qemu_pagecache.h. */
#include "qemu_pagecache.h"

#include <stdlib.h>

#define LIFETIME 2
#define NONE UINT64_MAX

struct qemu_pagecache {
	uint64_t items;
	uint64_t *addr, *age;
};

struct qemu_pagecache *qemu_pagecache_new(uint64_t pages)
{
	struct qemu_pagecache *c = calloc(1, sizeof *c);
	uint64_t items = 1;
	while (items * 2 <= pages)
		items *= 2; /* QEMU rounds the cache size to a power of two */
	c->items = items;
	c->addr = malloc(items * sizeof *c->addr);
	c->age = calloc(items, sizeof *c->age);
	for (uint64_t i = 0; i < items; i++)
		c->addr[i] = NONE;
	return c;
}

void qemu_pagecache_free(struct qemu_pagecache *c)
{
	free(c->addr);
	free(c->age);
	free(c);
}

int qemu_pagecache_hit(struct qemu_pagecache *c, uint64_t page)
{
	return c->addr[page & (c->items - 1)] == page;
}

void qemu_pagecache_insert(struct qemu_pagecache *c, uint64_t page, uint64_t age)
{
	uint64_t i = page & (c->items - 1);
	if (c->addr[i] != NONE && c->addr[i] != page && c->age[i] + LIFETIME > age)
		return; /* the cached page is fresh: keep it */
	c->addr[i] = page;
	c->age[i] = age;
}
