/*
 * Whole-image metadata rewrites (snapshot create, apply, delete; refcount
 * rebuilds): every refcount of the image in memory, new tables written only
 * into clusters that are free on disk, and one header write that switches
 * the image from the old metadata to the new.  A crash before that write
 * leaves the old image whole; after it, the new one.
 */
#ifndef TERN_QCOW2_REFMODEL_H
#define TERN_QCOW2_REFMODEL_H

#include "image.h"

struct refmodel {
	struct tern_qcow2 *q;
	unsigned order;
	unsigned block_shift;	/* log2 of per_block */
	uint64_t per_block;	/* refcounts per block */
	uint64_t nblocks;
	uint8_t **block;	/* NULL: every count 0 */
	uint8_t **freed;	/* per block, a bit per cluster that went to 0 here */
	uint64_t *old_off;	/* where the block is on disk now (0: nowhere) */
	uint64_t *new_off;	/* where it goes (0: not moved) */
	uint8_t *touched;
	uint64_t cursor;	/* no cluster below is free for allocation */
	uint64_t table_off, table_clusters; /* the new refcount table */
	/* Batched writes of new tables into free clusters. */
	uint8_t *wbuf;
	size_t wlen, wcap;
	uint64_t woff;
	/* Whole-image rewrites: a bit per cluster of the file that is metadata
	 * or was allocated here; no data reference may land on one (guard.c). */
	uint8_t *meta;
	uint64_t meta_n;
};

static inline bool refmodel_is_meta(const struct refmodel *m, uint64_t c)
{
	return c < m->meta_n && (m->meta[c >> 3] >> (c & 7)) & 1;
}
/* A data reference to cluster c: refused when it is metadata, was handed
 * out by this rewrite, or lies past the end of the file. */
static inline bool refmodel_data_ok(const struct refmodel *m, uint64_t c)
{
	return !m->meta || (c < m->meta_n && !refmodel_is_meta(m, c));
}
int qcow2_metamap_refused(struct refmodel *m, uint64_t c, struct tern_error *err);
/* Map every table of the image, refusing overlaps and tables whose
 * refcount is 0 (guard.c). */
int qcow2_metamap_build(struct refmodel *m, struct tern_error *err);

int refmodel_load(struct refmodel *m, struct tern_qcow2 *q, struct tern_error *err);
void refmodel_free(struct refmodel *m);
uint64_t refmodel_get(struct refmodel *m, uint64_t cluster);
int refmodel_add(struct refmodel *m, uint64_t cluster, int64_t delta, struct tern_error *err);
/* A reference gained or lost: a cluster in use must already be counted. */
int refmodel_ref(struct refmodel *m, uint64_t cluster, int64_t delta, struct tern_error *err);
/* refmodel_ref(m, c, +1) for the common case, inline: the block is loaded
 * and the count neither 0 nor at its maximum. */
static inline int refmodel_ref_inc(struct refmodel *m, uint64_t c, struct tern_error *err)
{
	if (!refmodel_data_ok(m, c))
		return qcow2_metamap_refused(m, c, err);
	uint64_t bi = c >> m->block_shift, i = c & (m->per_block - 1);
	if (bi < m->nblocks && m->block[bi]) {
		uint64_t v = qcow2_rc_get(m->block[bi], i, m->order);
		if (v && v < qcow2_rc_max(m->order)) {
			qcow2_rc_set(m->block[bi], i, m->order, v + 1);
			m->touched[bi] = 1;
			return 0;
		}
	}
	return refmodel_ref(m, c, 1, err);
}

/* Adjust every cluster an L2 entry holds (data or compressed). */
int refmodel_add_entry(struct refmodel *m, uint64_t l2_entry, int64_t delta,
		       struct tern_error *err);
/* `n` contiguous clusters free on disk and here; their counts become 1. */
int refmodel_alloc(struct refmodel *m, uint64_t n, uint64_t *offset, struct tern_error *err);
/* Write bytes into clusters refmodel_alloc returned (batched). */
int refmodel_write(struct refmodel *m, const void *buf, size_t len, uint64_t off,
		   struct tern_error *err);
int refmodel_write_flush(struct refmodel *m, struct tern_error *err);
/* Write a table of host-order u64 entries into new clusters. */
int refmodel_write_table(struct refmodel *m, const uint64_t *t, uint64_t entries,
			 uint64_t *offset, struct tern_error *err);
/* Move the changed refcount blocks and a new refcount table into free
 * clusters, write them, sync; then the caller switches the header. */
int refmodel_commit(struct refmodel *m, struct tern_error *err);

/* Every L2 table of an L1 table, read in large sequential batches. */
typedef int (*l2_visit_fn)(void *opaque, uint64_t l1_index, uint64_t l2_offset,
			   uint8_t *table, struct tern_error *err);
int qcow2_for_each_l2(struct tern_qcow2 *q, const uint64_t *l1, uint32_t l1_size,
		      l2_visit_fn fn, void *opaque, struct tern_error *err);

/* After a rewrite: caches emptied, tables reloaded from the new header. */
int qcow2_reload(struct tern_qcow2 *q, struct tern_error *err);

/* Shared steps of the rewrites (rewrite.c). */
int qcow2_rewrite_prepare(struct tern_qcow2 *q, struct refmodel *m, struct tern_error *err);
int qcow2_rewrite_free(struct refmodel *m, uint64_t off, uint64_t bytes, struct tern_error *err);
int qcow2_rewrite_commit(struct refmodel *m, uint64_t l1_off, uint32_t l1_size, uint64_t snap_off,
			 uint32_t nb_snapshots, struct tern_error *err);
int qcow2_rewrite_finish(struct tern_qcow2 *q, struct refmodel *m, int r, struct tern_error *err);
struct normalize_ctx {
	struct refmodel *m;
	uint64_t *l1;
};
int qcow2_normalize_visit(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
			  struct tern_error *err);
int qcow2_place_active_l1(struct refmodel *m, const uint64_t *l1, uint32_t size, uint64_t *off,
			  struct tern_error *err);

#endif
