/*
 * The metadata cache for L2 tables and refcount blocks.
 *
 * QEMU's cache finds a table by scanning every entry and picks a victim by
 * scanning again for the least-recently-used counter, so at multi-TiB
 * sizes most of a snapshot's CPU goes into the cache itself (seed 002).
 * Here a table is found through a hash of its offset (chained through the
 * entries, no allocation) and a victim through CLOCK, both O(1) per access.
 * Write-back is batched: when a dirty table must leave, every dirty table
 * goes, sorted by offset and coalesced, after the cache it depends on has
 * been written and synced once; so a run that dirties many tables pays one
 * sync per cache-full instead of one per eviction.
 */
#include <errno.h>
#include <stdlib.h>


#include "image.h"

static uint64_t hash_offset(uint64_t off)
{
	off *= 0x9e3779b97f4a7c15ull;
	return off ^ (off >> 29);
}

int qcache_init(struct qcache *c, struct tern_qcow2 *q, size_t entries, struct tern_error *err)
{
	memset(c, 0, sizeof(*c));
	c->q = q;
	c->n = entries < 4 ? 4 : entries;
	c->table_size = q->cluster_size;
	size_t nb = 1;
	while (nb < 2 * c->n)
		nb <<= 1;
	c->bucket_mask = nb - 1;
	c->bucket = malloc(nb * sizeof(*c->bucket));
	c->e = calloc(c->n, sizeof(*c->e));
	if (posix_memalign((void **)&c->mem, 4096, c->n * c->table_size))
		c->mem = NULL;
	if (!c->bucket || !c->e || !c->mem) {
		qcache_destroy(c);
		return tern_errorf(err, -ENOMEM, "cannot allocate a metadata cache of %zu tables",
				   c->n);
	}
	for (size_t i = 0; i < nb; i++)
		c->bucket[i] = -1;
	return 0;
}

void qcache_destroy(struct qcache *c)
{
	free(c->bucket);
	free(c->e);
	free(c->mem);
	c->bucket = NULL;
	c->e = NULL;
	c->mem = NULL;
}

static uint8_t *table_of(struct qcache *c, size_t i)
{
	return c->mem + i * c->table_size;
}

static size_t index_of(struct qcache *c, const uint8_t *table)
{
	return (size_t)(table - c->mem) / c->table_size;
}

static int32_t *chain_head(struct qcache *c, uint64_t off)
{
	return &c->bucket[hash_offset(off) & c->bucket_mask];
}

static int32_t lookup(struct qcache *c, uint64_t off)
{
	for (int32_t i = *chain_head(c, off); i >= 0; i = c->e[i].next)
		if (c->e[i].offset == off)
			return i;
	return -1;
}

static void unlink_entry(struct qcache *c, size_t i)
{
	int32_t *p = chain_head(c, c->e[i].offset);
	while (*p != (int32_t)i)
		p = &c->e[*p].next;
	*p = c->e[i].next;
	c->e[i].offset = 0;
}

static int cmp_by_offset(const void *a, const void *b, void *arg)
{
	const struct qcache_entry *e = arg;
	uint64_t x = e[*(const int32_t *)a].offset, y = e[*(const int32_t *)b].offset;
	return x < y ? -1 : x > y;
}

/* Write all dirty entries: sorted, adjacent tables in one pwritev. */
static int write_dirty(struct qcache *c, struct tern_error *err)
{
	if (!c->ndirty)
		return 0;
	if (c->before && c->before->ndirty) {
		int r = qcache_flush(c->before, err);
		if (r < 0)
			return r;
	}
	int32_t *order = malloc(c->ndirty * sizeof(*order));
	if (!order)
		return tern_errorf(err, -ENOMEM, "out of memory writing metadata");
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].dirty)
			order[n++] = (int32_t)i;
	qsort_r(order, n, sizeof(*order), cmp_by_offset, c->e);
	int r = 0;
	for (size_t i = 0; i < n && r == 0;) {
		size_t j = i + 1;
		while (j < n && (j - i) * c->table_size < (8u << 20) &&
		       c->e[order[j]].offset == c->e[order[j - 1]].offset + c->table_size)
			j++;
		uint64_t start = c->e[order[i]].offset;
		if (j == i + 1) {
			r = qcow2_pwrite(c->q, table_of(c, (size_t)order[i]), c->table_size, start,
					 true, err);
		} else {
			/* Coalesce through one buffer: simple and as fast for page cache. */
			size_t len = (j - i) * c->table_size;
			uint8_t *buf = malloc(len);
			if (!buf) {
				r = tern_errorf(err, -ENOMEM, "out of memory writing metadata");
				break;
			}
			for (size_t k = i; k < j; k++)
				memcpy(buf + (k - i) * c->table_size, table_of(c, (size_t)order[k]),
				       c->table_size);
			r = qcow2_pwrite(c->q, buf, len, start, true, err);
			free(buf);
		}
		for (size_t k = i; k < j && r == 0; k++)
			c->e[order[k]].dirty = 0;
		i = j;
	}
	free(order);
	if (r == 0)
		c->ndirty = 0;
	return r;
}

int qcache_flush(struct qcache *c, struct tern_error *err)
{
	if (!c->ndirty)
		return 0;
	int r = write_dirty(c, err);
	return r < 0 ? r : qcow2_sync(c->q, err);
}

/* CLOCK: the first unpinned entry whose second chance is used up. */
static int victim(struct qcache *c, size_t *out, struct tern_error *err)
{
	for (size_t scanned = 0; scanned < 2 * c->n + 1; scanned++) {
		size_t i = c->hand;
		c->hand = (c->hand + 1) % c->n;
		struct qcache_entry *e = &c->e[i];
		if (e->refs)
			continue;
		if (e->offset && e->referenced) {
			e->referenced = 0;
			continue;
		}
		if (e->dirty) {
			/* Write back every dirty table now, ordered after what we
			 * depend on; then this entry is clean and can go. */
			int r = qcache_flush(c, err);
			if (r < 0)
				return r;
		}
		*out = i;
		return 0;
	}
	return tern_errorf(err, -ENOSPC, "metadata cache too small: every table is in use");
}

int qcache_get(struct qcache *c, uint64_t offset, bool read, uint8_t **table,
	       struct tern_error *err)
{
	int32_t hit = lookup(c, offset);
	if (hit >= 0) {
		c->hits++;
		c->e[hit].refs++;
		c->e[hit].referenced = 1;
		*table = table_of(c, (size_t)hit);
		return 0;
	}
	c->misses++;
	size_t i = 0;
	int r = victim(c, &i, err);
	if (r < 0)
		return r;
	if (c->e[i].offset)
		unlink_entry(c, i);
	if (read) {
		r = qcow2_pread(c->q, table_of(c, i), c->table_size, offset, err);
		if (r < 0)
			return r;
	}
	struct qcache_entry *e = &c->e[i];
	e->offset = offset;
	e->refs = 1;
	e->referenced = 1;
	e->dirty = 0;
	int32_t *head = chain_head(c, offset);
	e->next = *head;
	*head = (int32_t)i;
	*table = table_of(c, i);
	return 0;
}

void qcache_put(struct qcache *c, uint8_t *table)
{
	c->e[index_of(c, table)].refs--;
}

void qcache_dirty(struct qcache *c, uint8_t *table)
{
	struct qcache_entry *e = &c->e[index_of(c, table)];
	if (!e->dirty) {
		e->dirty = 1;
		c->ndirty++;
	}
}

void qcache_drop(struct qcache *c, uint64_t offset)
{
	int32_t i = lookup(c, offset);
	if (i < 0)
		return;
	if (c->e[i].dirty)
		c->ndirty--;
	c->e[i].dirty = 0;
	unlink_entry(c, (size_t)i);
}

void qcache_clear(struct qcache *c)
{
	for (size_t i = 0; i < c->n; i++)
		c->e[i] = (struct qcache_entry){ .next = -1 };
	for (uint64_t b = 0; b <= c->bucket_mask; b++)
		c->bucket[b] = -1;
	c->ndirty = 0;
	c->hand = 0;
}
