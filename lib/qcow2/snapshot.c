/*
 * Internal snapshots: create, apply (revert), delete, list.
 *
 * Each operation reads the tables it changes in large sequential batches,
 * counts in memory (refmodel.h), writes every changed table into free
 * clusters and then switches the header in one write, so a crash leaves
 * either the old image or the new one, never a mixture.  QEMU instead
 * changes refcounts and L2 tables in place through its caches, one cluster
 * at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "refmodel.h"

uint32_t tern_qcow2_snapshot_count(struct tern_qcow2 *q)
{
	return q->nb_snapshots;
}

int tern_qcow2_snapshot_get(struct tern_qcow2 *q, uint32_t index,
			    struct tern_qcow2_snapshot_info *info)
{
	if (index >= q->nb_snapshots)
		return -ENOENT;
	const struct qcow2_snapshot *sn = &q->snapshots[index];
	memset(info, 0, sizeof(*info));
	snprintf(info->id, sizeof(info->id), "%s", sn->id);
	snprintf(info->name, sizeof(info->name), "%s", sn->name);
	info->vm_state_size = sn->vm_state_size_large;
	info->disk_size = sn->disk_size;
	info->date_sec = sn->date_sec;
	info->date_nsec = sn->date_nsec;
	info->vm_clock_nsec = sn->vm_clock_nsec;
	info->icount = sn->icount;
	return 0;
}

/* By id first, then by name, as qemu-img looks them up. */
static int find_snapshot(struct tern_qcow2 *q, const char *name)
{
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snapshots[i].id, name))
			return (int)i;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (!strcmp(q->snapshots[i].name, name))
			return (int)i;
	return -1;
}

/* Write the snapshot table into new clusters. */
static int write_snapshot_table(struct refmodel *m, const struct qcow2_snapshot *s, uint32_t n,
				uint64_t *offset, struct tern_error *err)
{
	*offset = 0;
	if (!n)
		return 0;
	size_t bytes = qcow2_snapshots_size(s, n);
	if (bytes > QCOW2_MAX_SNAPSHOT_TABLE_BYTES)
		return tern_errorf(err, -EFBIG, "the snapshot table would exceed %u MiB",
				   QCOW2_MAX_SNAPSHOT_TABLE_BYTES >> 20);
	uint64_t clusters = (bytes + m->q->cluster_size - 1) >> m->q->cluster_bits;
	uint8_t *buf = calloc(clusters, m->q->cluster_size);
	if (!buf)
		return tern_errorf(err, -ENOMEM, "out of memory");
	qcow2_snapshots_build(s, n, buf);
	int r = refmodel_alloc(m, clusters, offset, err);
	if (r == 0)
		r = refmodel_write(m, buf, clusters << m->q->cluster_bits, *offset, err);
	free(buf);
	return r;
}

/* ------------------------------------------------------------- create */

struct create_ctx {
	struct refmodel *m;
	uint64_t *l1; /* the new L1, shared by the active image and the snapshot */
	uint8_t *scratch;
};

static int create_visit(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
			struct tern_error *err)
{
	struct create_ctx *c = opaque;
	struct refmodel *m = c->m;
	struct tern_qcow2 *q = m->q;
	uint64_t n = q->cluster_size / 8;
	bool changed = false;
	for (uint64_t j = 0; j < n; j++) {
		uint64_t e = qcow2_be64(table + j * 8);
		if (!e)
			continue;
		uint64_t off = e & QCOW2_OFFSET_MASK;
		/* The common entry, a data cluster, inline; the rest in full. */
		int r = !(e & (QCOW2_OFLAG_COMPRESSED | QCOW2_L2_RESERVED)) && off &&
				!(off & (q->cluster_size - 1))
			? refmodel_ref_inc(m, off >> q->cluster_bits, err)
			: refmodel_add_entry(m, e, 1, err);
		if (r < 0)
			return r;
		if (e & QCOW2_OFLAG_COPIED) {
			qcow2_put64(table + j * 8, e & ~QCOW2_OFLAG_COPIED);
			changed = true;
		}
	}
	/* The table itself gains the snapshot's reference.  A table the active
	 * image held alone had COPIED flags to clear: that version goes into a
	 * new cluster and the old one is released at the switch. */
	if (!changed || !(c->l1[i] & QCOW2_OFLAG_COPIED)) {
		if (changed)
			return tern_errorf(err, -EUCLEAN,
					   "image is corrupt: shared L2 table 0x%" PRIx64 " has COPIED entries",
					   l2_off);
		c->l1[i] &= ~QCOW2_OFLAG_COPIED;
		return refmodel_ref(m, l2_off >> q->cluster_bits, 1, err);
	}
	uint64_t fresh;
	int r = refmodel_alloc(m, 1, &fresh, err);
	if (r == 0)
		r = refmodel_add(m, fresh >> q->cluster_bits, 1, err);
	if (r == 0)
		r = refmodel_add(m, l2_off >> q->cluster_bits, -1, err);
	if (r == 0)
		r = refmodel_write(m, table, q->cluster_size, fresh, err);
	c->l1[i] = fresh;
	return r;
}

static int next_id(struct tern_qcow2 *q, char *id, size_t len)
{
	unsigned long max = 0;
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		unsigned long v = strtoul(q->snapshots[i].id, NULL, 10);
		if (v > max)
			max = v;
	}
	return snprintf(id, len, "%lu", max + 1);
}

int tern_qcow2_snapshot_create(struct tern_qcow2 *q, const char *name, struct tern_error *err)
{
	if (!name || !*name || strlen(name) > 65535)
		return tern_errorf(err, -EINVAL, "a snapshot needs a name of 1..65535 bytes");
	if (find_snapshot(q, name) >= 0)
		return tern_errorf(err, -EEXIST, "a snapshot named '%s' already exists", name);
	if (q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS)
		return tern_errorf(err, -ENOSPC, "the image already has %d snapshots",
				   QCOW2_MAX_SNAPSHOTS);
	struct refmodel m;
	int r = qcow2_rewrite_prepare(q, &m, err);
	uint64_t *l1 = NULL;
	struct qcow2_snapshot *s = NULL;
	if (r == 0 && !(l1 = malloc(((size_t)q->l1_size + 1) * 8)))
		r = tern_errorf(err, -ENOMEM, "out of memory");
	if (r == 0) {
		memcpy(l1, q->l1, (size_t)q->l1_size * 8);
		struct create_ctx c = { &m, l1, NULL };
		r = qcow2_for_each_l2(q, q->l1, q->l1_size, create_visit, &c, err);
	}
	uint64_t l1_off = 0, snap_l1_off = 0, table_off = 0;
	if (r == 0)
		r = refmodel_write_table(&m, l1, q->l1_size, &l1_off, err);
	if (r == 0)
		r = refmodel_write_table(&m, l1, q->l1_size, &snap_l1_off, err);
	if (r == 0)
		r = qcow2_rewrite_free(&m, q->h.l1_table_offset, (uint64_t)q->l1_size * 8, err);
	if (r == 0 && !(s = calloc(q->nb_snapshots + 1, sizeof(*s))))
		r = tern_errorf(err, -ENOMEM, "out of memory");
	if (r == 0) {
		if (q->nb_snapshots)
			memcpy(s, q->snapshots, q->nb_snapshots * sizeof(*s));
		struct qcow2_snapshot *sn = &s[q->nb_snapshots];
		char id[32];
		next_id(q, id, sizeof(id));
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		sn->l1_table_offset = snap_l1_off;
		sn->l1_size = q->l1_size;
		sn->id = id;
		sn->name = (char *)name;
		sn->date_sec = (uint32_t)now.tv_sec;
		sn->date_nsec = (uint32_t)now.tv_nsec;
		sn->disk_size = q->h.size;
		sn->icount = UINT64_MAX;
		r = write_snapshot_table(&m, s, q->nb_snapshots + 1, &table_off, err);
		free(s); /* the strings belong to q->snapshots and the caller */
	}
	if (r == 0)
		r = qcow2_rewrite_free(&m, q->h.snapshots_offset, q->snapshots_bytes, err);
	if (r == 0)
		r = qcow2_rewrite_commit(&m, l1_off, q->l1_size, table_off, q->nb_snapshots + 1, err);
	free(l1);
	return qcow2_rewrite_finish(q, &m, r, err);
}

/* ---------------------------------------------------- apply and delete */

struct adjust_ctx {
	struct refmodel *m;
	int64_t delta;
};

/* A tree gains or loses a reference: each table, and each cluster through it. */
static int adjust_visit(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
			struct tern_error *err)
{
	struct adjust_ctx *c = opaque;
	struct tern_qcow2 *q = c->m->q;
	(void)i;
	for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
		int r = refmodel_add_entry(c->m, qcow2_be64(table + j * 8), c->delta, err);
		if (r < 0)
			return r;
	}
	return refmodel_ref(c->m, l2_off >> q->cluster_bits, c->delta, err);
}

int tern_qcow2_snapshot_apply(struct tern_qcow2 *q, const char *name, struct tern_error *err)
{
	int idx = find_snapshot(q, name);
	if (idx < 0)
		return tern_errorf(err, -ENOENT, "no snapshot named '%s'", name);
	struct qcow2_snapshot *sn = &q->snapshots[idx];
	if (sn->disk_size != q->h.size)
		return tern_errorf(err, -ENOTSUP,
				   "snapshot '%s' has a different disk size; applying it is not supported",
				   name);
	uint64_t span = q->cluster_size * (q->cluster_size / 8);
	if (sn->l1_size < (q->h.size + span - 1) / span)
		return tern_errorf(err, -EUCLEAN, "snapshot '%s' has a short L1 table", name);
	struct refmodel m;
	int r = qcow2_rewrite_prepare(q, &m, err);
	uint64_t *l1 = NULL, l1_off = 0;
	if (r == 0)
		r = qcow2_read_table(q, sn->l1_table_offset, sn->l1_size, &l1, err);
	if (r == 0) {
		struct adjust_ctx gain = { &m, 1 }, lose = { &m, -1 };
		r = qcow2_for_each_l2(q, l1, sn->l1_size, adjust_visit, &gain, err);
		if (r == 0)
			r = qcow2_for_each_l2(q, q->l1, q->l1_size, adjust_visit, &lose, err);
	}
	if (r == 0) {
		struct normalize_ctx c = { &m, l1 };
		for (uint32_t i = 0; i < sn->l1_size; i++)
			l1[i] &= ~QCOW2_OFLAG_COPIED;
		r = qcow2_for_each_l2(q, l1, sn->l1_size, qcow2_normalize_visit, &c, err);
	}
	if (r == 0)
		r = qcow2_place_active_l1(&m, l1, sn->l1_size, &l1_off, err);
	if (r == 0)
		r = qcow2_rewrite_commit(&m, l1_off, sn->l1_size, q->h.snapshots_offset, q->nb_snapshots, err);
	free(l1);
	return qcow2_rewrite_finish(q, &m, r, err);
}

int tern_qcow2_snapshot_delete(struct tern_qcow2 *q, const char *name, struct tern_error *err)
{
	int idx = find_snapshot(q, name);
	if (idx < 0)
		return tern_errorf(err, -ENOENT, "no snapshot named '%s'", name);
	struct refmodel m;
	int r = qcow2_rewrite_prepare(q, &m, err);
	struct qcow2_snapshot *sn = &q->snapshots[idx];
	uint64_t *snap_l1 = NULL, *l1 = NULL, l1_off = 0, table_off = 0;
	if (r == 0)
		r = qcow2_read_table(q, sn->l1_table_offset, sn->l1_size, &snap_l1, err);
	if (r == 0) {
		struct adjust_ctx lose = { &m, -1 };
		r = qcow2_for_each_l2(q, snap_l1, sn->l1_size, adjust_visit, &lose, err);
	}
	if (r == 0)
		r = qcow2_rewrite_free(&m, sn->l1_table_offset, (uint64_t)sn->l1_size * 8, err);
	if (r == 0 && !(l1 = malloc(((size_t)q->l1_size + 1) * 8)))
		r = tern_errorf(err, -ENOMEM, "out of memory");
	if (r == 0) {
		memcpy(l1, q->l1, (size_t)q->l1_size * 8);
		struct normalize_ctx c = { &m, l1 };
		r = qcow2_for_each_l2(q, q->l1, q->l1_size, qcow2_normalize_visit, &c, err);
	}
	if (r == 0)
		r = qcow2_place_active_l1(&m, l1, q->l1_size, &l1_off, err);
	uint32_t left = q->nb_snapshots - 1;
	if (r == 0) {
		struct qcow2_snapshot *s = calloc(left + 1, sizeof(*s));
		if (!s) {
			r = tern_errorf(err, -ENOMEM, "out of memory");
		} else {
			memcpy(s, q->snapshots, (size_t)idx * sizeof(*s));
			memcpy(s + idx, q->snapshots + idx + 1, (size_t)(left - (uint32_t)idx) * sizeof(*s));
			r = write_snapshot_table(&m, s, left, &table_off, err);
			free(s);
		}
	}
	if (r == 0)
		r = qcow2_rewrite_free(&m, q->h.snapshots_offset, q->snapshots_bytes, err);
	if (r == 0)
		r = qcow2_rewrite_commit(&m, l1_off, q->l1_size, table_off, left, err);
	free(snap_l1);
	free(l1);
	return qcow2_rewrite_finish(q, &m, r, err);
}
