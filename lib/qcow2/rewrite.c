/*
 * The steps every whole-image rewrite shares: start from flushed caches and
 * the on-disk refcounts, make the active tree's COPIED flags match the new
 * counts, write a new active L1 when it changed, commit and switch the
 * header, and reload.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "refmodel.h"

/* Release a table of `bytes` at `off` in the model. */
int qcow2_rewrite_free(struct refmodel *m, uint64_t off, uint64_t bytes, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	uint64_t n = (bytes + q->cluster_size - 1) >> q->cluster_bits;
	for (uint64_t k = 0; off && k < n; k++) {
		int r = refmodel_add(m, (off >> q->cluster_bits) + k, -1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Write the new refcounts, switch the header, reload. */
int qcow2_rewrite_commit(struct refmodel *m, uint64_t l1_off, uint32_t l1_size, uint64_t snap_off,
		  uint32_t nb_snapshots, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	int r = refmodel_write_flush(m, err);
	if (r == 0)
		r = refmodel_commit(m, err);
	if (r < 0)
		return r;
	struct qcow2_header old = q->h;
	q->h.l1_table_offset = l1_off;
	q->h.l1_size = l1_size;
	q->h.refcount_table_offset = m->table_off;
	q->h.refcount_table_clusters = (uint32_t)m->table_clusters;
	q->h.snapshots_offset = snap_off;
	q->h.nb_snapshots = nb_snapshots;
	r = qcow2_header_update(q, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	if (r < 0) {
		q->h = old;
		return r;
	}
	return 0;
}

/* Everything failed before the header switch: the image on disk is the old
 * one; forget what the caches and tables say and read it again. */
int qcow2_rewrite_finish(struct tern_qcow2 *q, struct refmodel *m, int r, struct tern_error *err)
{
	refmodel_free(m);
	struct tern_error e2;
	int r2 = qcow2_reload(q, r < 0 ? &e2 : err);
	return qcow2_signal_corruption(q, r < 0 ? r : r2, err);
}

int qcow2_rewrite_prepare(struct tern_qcow2 *q, struct refmodel *m, struct tern_error *err)
{
	memset(m, 0, sizeof(*m));
	if (!q->writable)
		return tern_errorf(err, -EBADF, "image is open read-only");
	int r = qcow2_refuse_corrupt(q, err);
	if (r == 0)
		r = tern_qcow2_flush(q, err);
	if (r == 0)
		r = refmodel_load(m, q, err);
	/* Every table mapped before anything is counted or allocated. */
	if (r == 0)
		r = qcow2_metamap_build(m, err);
	return r;
}

/* The active tree's COPIED flags, made to match the new refcounts: a table
 * whose flags change is written to a new cluster. */
int qcow2_normalize_visit(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
			   struct tern_error *err)
{
	struct normalize_ctx *c = opaque;
	struct refmodel *m = c->m;
	struct tern_qcow2 *q = m->q;
	bool changed = false;
	for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
		uint64_t e = qcow2_be64(table + j * 8), off = e & QCOW2_OFFSET_MASK, ne = e;
		if (!(e & QCOW2_OFLAG_COMPRESSED) && off) {
			bool sole = refmodel_get(m, off >> q->cluster_bits) == 1;
			ne = sole ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
		}
		if (ne != e) {
			qcow2_put64(table + j * 8, ne);
			changed = true;
		}
	}
	uint64_t off = l2_off;
	if (changed) {
		int r = refmodel_alloc(m, 1, &off, err);
		if (r == 0)
			r = refmodel_add(m, l2_off >> q->cluster_bits, -1, err);
		if (r == 0)
			r = refmodel_write(m, table, q->cluster_size, off, err);
		if (r < 0)
			return r;
	}
	bool sole = refmodel_get(m, off >> q->cluster_bits) == 1;
	c->l1[i] = off | (sole ? QCOW2_OFLAG_COPIED : 0);
	return 0;
}

/* Write `l1` as the new active L1 table if it differs from the current one. */
int qcow2_place_active_l1(struct refmodel *m, const uint64_t *l1, uint32_t size,
			   uint64_t *off, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	if (size == q->l1_size && !memcmp(l1, q->l1, (size_t)size * 8)) {
		*off = q->h.l1_table_offset;
		return 0;
	}
	int r = refmodel_write_table(m, l1, size, off, err);
	if (r == 0)
		r = qcow2_rewrite_free(m, q->h.l1_table_offset, (uint64_t)q->l1_size * 8, err);
	return r;
}

