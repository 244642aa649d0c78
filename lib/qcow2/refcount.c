/*
 * Refcounts: read and change them through the refcount-block cache,
 * allocate free clusters, grow the refcount structure, and release freed
 * clusters only once nothing on disk points to them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "image.h"

/* The refcount block holding `cluster`'s count; *block is NULL (count 0)
 * when it has none and `create` is false. */
static int block_for(struct tern_qcow2 *q, uint64_t cluster, bool create, uint8_t **block,
		     struct tern_error *err);

static int write_reftable_entry(struct tern_qcow2 *q, uint64_t index, struct tern_error *err)
{
	uint8_t be[8];
	qcow2_put64(be, q->reftable[index]);
	qcow2_metadata_changed(q);
	return qcow2_pwrite(q, be, 8, q->h.refcount_table_offset + index * 8, true, err);
}

/*
 * A new refcount table when the old one cannot describe `min_index`: the
 * table and the refcount blocks describing it go past the last cluster the
 * old table covers, are written and synced, and the header switches to them
 * in one write.  A crash before the switch leaves the old, whole table.
 */
static int grow_reftable(struct tern_qcow2 *q, uint64_t min_index, struct tern_error *err)
{
	uint64_t rpb = 1ull << q->rb_bits, old = q->reftable_size;
	uint64_t start = old * rpb, nblocks, table_clusters, entries;
	for (nblocks = 1;; nblocks++) {
		entries = old * 2;
		if (entries < min_index + 1)
			entries = min_index + 1;
		if (entries < old + nblocks)
			entries = old + nblocks;
		table_clusters = (entries * 8 + q->cluster_size - 1) >> q->cluster_bits;
		if (start + nblocks + table_clusters <= (old + nblocks) * rpb)
			break;
	}
	entries = table_clusters << (q->cluster_bits - 3);
	if (table_clusters << q->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
		return tern_errorf(err, -EFBIG, "the image would need a refcount table over %u MiB",
				   QCOW2_MAX_REFTABLE_BYTES >> 20);
	uint64_t *table = calloc(entries, 8);
	uint8_t *blocks = calloc(nblocks, q->cluster_size);
	uint8_t *table_be = calloc(table_clusters, q->cluster_size);
	int r = -ENOMEM;
	if (!table || !blocks || !table_be) {
		tern_errorf(err, r, "out of memory growing the refcount table");
		goto out;
	}
	memcpy(table, q->reftable, old * 8);
	uint64_t used_end = start + nblocks + table_clusters;
	for (uint64_t k = 0; k < nblocks; k++) {
		table[old + k] = (start + k) << q->cluster_bits;
		uint64_t first = (old + k) * rpb;
		for (uint64_t c = first; c < first + rpb && c < used_end; c++)
			qcow2_rc_set(blocks + k * q->cluster_size, c - first, q->h.refcount_order, 1);
	}
	for (uint64_t i = 0; i < entries; i++)
		qcow2_put64(table_be + i * 8, table[i]);
	uint64_t table_off = (start + nblocks) << q->cluster_bits;
	r = qcow2_pwrite(q, blocks, nblocks << q->cluster_bits, start << q->cluster_bits, true, err);
	if (r == 0)
		r = qcow2_pwrite(q, table_be, table_clusters << q->cluster_bits, table_off, true, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	if (r < 0)
		goto out;
	uint64_t old_off = q->h.refcount_table_offset, old_clusters = q->h.refcount_table_clusters;
	q->h.refcount_table_offset = table_off;
	q->h.refcount_table_clusters = (uint32_t)table_clusters;
	r = qcow2_header_update(q, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	if (r < 0) {
		q->h.refcount_table_offset = old_off;
		q->h.refcount_table_clusters = (uint32_t)old_clusters;
		goto out;
	}
	free(q->reftable);
	q->reftable = table;
	q->reftable_size = entries;
	qcow2_metadata_changed(q);
	table = NULL;
	r = qcow2_free_later(q, old_off, old_clusters, err);
out:
	free(table);
	free(blocks);
	free(table_be);
	return r;
}

/* A refcount block for block index `bi`, whose clusters are all free, goes
 * in its own first cluster and counts itself. */
static int create_block(struct tern_qcow2 *q, uint64_t bi, struct tern_error *err)
{
	uint64_t off = (bi << q->rb_bits) << q->cluster_bits;
	if (qcow2_overlaps_metadata(q, off, q->cluster_size))
		return tern_errorf(err, -EUCLEAN,
				   "image is corrupt: cluster 0x%" PRIx64 " is in use but has no refcount",
				   off);
	uint8_t *block;
	int r = qcache_get(&q->rb, off, false, &block, err);
	if (r < 0)
		return r;
	memset(block, 0, q->cluster_size);
	qcow2_rc_set(block, 0, q->h.refcount_order, 1);
	r = qcow2_pwrite(q, block, q->cluster_size, off, true, err);
	qcache_put(&q->rb, block);
	if (r == 0)
		r = qcow2_sync(q, err);
	if (r < 0) {
		qcache_drop(&q->rb, off);
		return r;
	}
	q->reftable[bi] = off;
	return write_reftable_entry(q, bi, err);
}

static int block_for(struct tern_qcow2 *q, uint64_t cluster, bool create, uint8_t **block,
		     struct tern_error *err)
{
	uint64_t bi = cluster >> q->rb_bits;
	*block = NULL;
	if (bi >= q->reftable_size) {
		if (!create)
			return 0;
		int r = grow_reftable(q, bi, err);
		if (r < 0)
			return r;
	}
	if (!q->reftable[bi]) {
		if (!create)
			return 0;
		int r = create_block(q, bi, err);
		if (r < 0)
			return r;
	}
	return qcache_get(&q->rb, q->reftable[bi], true, block, err);
}

int qcow2_refcount(struct tern_qcow2 *q, uint64_t cluster, uint64_t *out, struct tern_error *err)
{
	uint8_t *block;
	int r = block_for(q, cluster, false, &block, err);
	if (r < 0)
		return r;
	*out = 0;
	if (block) {
		*out = qcow2_rc_get(block, cluster & ((1ull << q->rb_bits) - 1), q->h.refcount_order);
		qcache_put(&q->rb, block);
	}
	return 0;
}

int qcow2_refcount_add(struct tern_qcow2 *q, uint64_t cluster, int64_t delta,
		       struct tern_error *err)
{
	uint8_t *block;
	int r = block_for(q, cluster, delta > 0, &block, err);
	if (r < 0)
		return r;
	if (!block)
		return tern_errorf(err, -EUCLEAN,
				   "image is corrupt: freeing cluster %" PRIu64 " which has no refcount",
				   cluster);
	uint64_t i = cluster & ((1ull << q->rb_bits) - 1), v = qcow2_rc_get(block, i, q->h.refcount_order);
	unsigned order = q->h.refcount_order;
	if (delta < 0 && v < (uint64_t)-delta)
		r = tern_errorf(err, -EUCLEAN,
				"image is corrupt: refcount of cluster %" PRIu64 " would go below 0",
				cluster);
	else if (delta > 0 && qcow2_rc_max(order) - v < (uint64_t)delta)
		r = tern_errorf(err, -ERANGE,
				"refcount overflow at cluster %" PRIu64 " (refcount width %u bits)",
				cluster, 1u << order);
	else {
		qcow2_rc_set(block, i, order, v + (uint64_t)delta);
		qcache_dirty(&q->rb, block);
		if (v + (uint64_t)delta == 0) {
			/* Free now: it may come back as data, so no stale L2 copy. */
			qcache_drop(&q->l2, cluster << q->cluster_bits);
			if (cluster < q->free_hint)
				q->free_hint = cluster;
		}
	}
	qcache_put(&q->rb, block);
	return r;
}

/* Is the cluster free (count 0, and not a table tern knows is in use)? */
static int cluster_free(struct tern_qcow2 *q, uint64_t c, bool *free_out, struct tern_error *err)
{
	uint64_t v;
	int r = qcow2_refcount(q, c, &v, err);
	if (r < 0)
		return r;
	*free_out = v == 0 && !qcow2_overlaps_metadata(q, c << q->cluster_bits, q->cluster_size);
	return 0;
}

int qcow2_alloc_clusters(struct tern_qcow2 *q, uint64_t n, uint64_t *offset,
			 struct tern_error *err)
{
	uint64_t limit = QCOW2_MAX_SIZE >> q->cluster_bits;
	for (;;) {
		uint64_t c = q->free_hint, run = 0, start = 0, first_free = UINT64_MAX;
		while (run < n) {
			if (c >= limit)
				return tern_errorf(err, -ENOSPC, "the image has no room left");
			bool f;
			int r = cluster_free(q, c, &f, err);
			if (r < 0)
				return r;
			if (f) {
				if (first_free == UINT64_MAX)
					first_free = c;
				if (!run)
					start = c;
				run++;
			} else {
				run = 0;
			}
			c++;
		}
		/* Make sure every block exists first: a new block takes the
		 * first cluster it covers, which may lie in our run. */
		for (uint64_t x = start; x < start + n; x = ((x >> q->rb_bits) + 1) << q->rb_bits) {
			uint8_t *block;
			int r = block_for(q, x, true, &block, err);
			if (r < 0)
				return r;
			qcache_put(&q->rb, block);
		}
		bool still_free = true;
		for (uint64_t x = start; x < start + n && still_free; x++) {
			int r = cluster_free(q, x, &still_free, err);
			if (r < 0)
				return r;
		}
		if (!still_free)
			continue;
		for (uint64_t x = start; x < start + n; x++) {
			int r = qcow2_refcount_add(q, x, 1, err);
			if (r < 0)
				return r;
		}
		q->free_hint = first_free == start ? start + n : first_free;
		*offset = start << q->cluster_bits;
		return 0;
	}
}

int qcow2_free_later(struct tern_qcow2 *q, uint64_t offset, uint64_t n, struct tern_error *err)
{
	if (q->nfrees == q->frees_cap) {
		size_t cap = q->frees_cap ? 2 * q->frees_cap : 64;
		struct pending_free *p = realloc(q->frees, cap * sizeof(*p));
		if (!p)
			return tern_errorf(err, -ENOMEM, "out of memory freeing clusters");
		q->frees = p;
		q->frees_cap = cap;
	}
	q->frees[q->nfrees++] = (struct pending_free){ offset >> q->cluster_bits, n };
	return 0;
}

int qcow2_free_entry_later(struct tern_qcow2 *q, uint64_t entry, struct tern_error *err)
{
	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint64_t host, bytes;
		int r = qcow2_compressed_range(q, entry, &host, &bytes);
		if (r < 0)
			return tern_errorf(err, r, "invalid compressed cluster entry");
		uint64_t first = host >> q->cluster_bits;
		uint64_t last = (host + bytes - 1) >> q->cluster_bits;
		if (qcow2_overlaps_metadata(q, first << q->cluster_bits, (last - first + 1) << q->cluster_bits))
			return tern_errorf(err, -EUCLEAN,
					   "image is corrupt: compressed data at 0x%" PRIx64 " overlaps metadata",
					   host);
		return qcow2_free_later(q, first << q->cluster_bits, last - first + 1, err);
	}
	uint64_t off = entry & QCOW2_OFFSET_MASK;
	/* Releasing a data cluster that is really a table would free the table. */
	if (off && qcow2_overlaps_metadata(q, off, q->cluster_size))
		return tern_errorf(err, -EUCLEAN,
				   "image is corrupt: data cluster 0x%" PRIx64 " overlaps metadata", off);
	return off ? qcow2_free_later(q, off, 1, err) : 0;
}

/* Called once every L2 and L1 write that dropped a reference is on disk. */
int qcow2_apply_frees(struct tern_qcow2 *q, struct tern_error *err)
{
	for (size_t i = 0; i < q->nfrees; i++) {
		for (uint64_t k = 0; k < q->frees[i].count; k++) {
			uint64_t c = q->frees[i].cluster + k;
			int r = qcow2_refcount_add(q, c, -1, err);
			if (r < 0) {
				/* Keep the rest: applying them again later is wrong for the
				 * ones done, so drop only what succeeded. */
				memmove(q->frees, q->frees + i, (q->nfrees - i) * sizeof(*q->frees));
				q->frees[0].cluster = c + 1;
				q->frees[0].count -= k + 1;
				q->nfrees -= i;
				return r;
			}
		}
	}
	q->nfrees = 0;
	return 0;
}
