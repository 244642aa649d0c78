/*
 * check and repair: count every reference the image's tables make, compare
 * with the refcounts on disk, verify the active tree's COPIED flags; repair
 * by rewriting the refcounts (and any L2 table whose flags are wrong) into
 * free clusters and switching the header, like the snapshot operations.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "refmodel.h"

/* What a cluster is used as: a cluster used as two of these (other than
 * data shared by snapshots, or an L2 table shared by L1 tables) overlaps. */
enum use { USE_NONE, USE_HEADER, USE_L1, USE_REFTABLE, USE_REFBLOCK, USE_SNAPTABLE, USE_SNAPL1,
	   USE_L2, USE_DATA, USE_OVERLAP };
static const char *const use_names[] = {
	"", "header", "L1 table", "refcount table", "refcount block", "snapshot table",
	"snapshot L1 table", "L2 table", "data cluster",
};

struct counter {
	struct tern_qcow2 *q;
	struct tern_qcow2_check *res;
	uint32_t *expected;
	uint8_t *use;
	uint64_t n;
	bool active;
	uint64_t last_data; /* for fragmentation: host cluster of the previous data cluster */
	uint64_t header_l1; /* active L1 entries with offset 0 but flags: cleared by -r all */
};

static void report(struct tern_qcow2_check *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void report(struct tern_qcow2_check *res, const char *fmt, ...)
{
	if (!res->report)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	res->report(res->opaque, line);
}

/* One more reference to each cluster of [off, off+bytes). */
static void reference(struct counter *c, uint64_t off, uint64_t bytes, enum use use)
{
	const char *what = use_names[use];
	if (!bytes)
		return;
	uint64_t first = off >> c->q->cluster_bits;
	uint64_t last = (off + bytes - 1) >> c->q->cluster_bits;
	for (uint64_t k = first; k <= last; k++) {
		if (k >= c->n) {
			report(c->res, "ERROR %s at 0x%" PRIx64 " is past the end of the image", what,
			       k << c->q->cluster_bits);
			c->res->corruptions++;
			return;
		}
		uint8_t was = c->use[k];
		if (was == USE_NONE || (was == use && (use == USE_L2 || use == USE_DATA))) {
			c->use[k] = (uint8_t)use;
		} else if (was != USE_OVERLAP) {
			/* Not a matter of counts: writing one would destroy the other. */
			report(c->res, "ERROR cluster %" PRIu64 " is used as %s and as %s", k,
			       use_names[was], what);
			c->use[k] = USE_OVERLAP;
			c->res->corruptions++;
			c->res->overlaps++;
		}
		if (c->expected[k] == UINT32_MAX) {
			c->res->corruptions++;
			continue;
		}
		c->expected[k]++;
	}
}

static int count_l2(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
		    struct tern_error *err)
{
	struct counter *c = opaque;
	struct tern_qcow2 *q = c->q;
	(void)i;
	(void)err;
	for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
		uint64_t e = qcow2_be64(table + j * 8);
		if (e & QCOW2_OFLAG_COMPRESSED) {
			uint64_t host, bytes;
			if (qcow2_compressed_range(q, e, &host, &bytes) < 0 || e & QCOW2_OFLAG_COPIED) {
				report(c->res, "ERROR invalid compressed L2 entry 0x%" PRIx64 " in table 0x%" PRIx64,
				       e, l2_off);
				c->res->corruptions++;
				continue;
			}
			reference(c, host, bytes, USE_DATA);
			if (c->active)
				c->res->compressed_clusters++, c->res->allocated_clusters++;
			continue;
		}
		uint64_t off = e & QCOW2_OFFSET_MASK;
		uint64_t reserved = QCOW2_L2_RESERVED | (q->h.version == 2 ? QCOW2_OFLAG_ZERO : 0);
		if (e & reserved || (off & (q->cluster_size - 1)) || (off && off < q->cluster_size)) {
			report(c->res, "ERROR invalid L2 entry 0x%" PRIx64 " in table 0x%" PRIx64, e, l2_off);
			c->res->corruptions++;
			continue;
		}
		if (!off)
			continue;
		reference(c, off, q->cluster_size, USE_DATA);
		if (c->active) {
			c->res->allocated_clusters++;
			if (c->last_data && off >> q->cluster_bits != c->last_data + 1)
				c->res->fragmented_clusters++;
			c->last_data = off >> q->cluster_bits;
		}
	}
	return 0;
}

/* An L1 table's valid entries (bad ones reported and left out). */
static uint64_t *checked_l1(struct counter *c, const uint64_t *l1, uint32_t size)
{
	struct tern_qcow2 *q = c->q;
	uint64_t *t = malloc(((size_t)size + 1) * 8);
	if (!t)
		return NULL;
	for (uint32_t i = 0; i < size; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
		t[i] = l1[i];
		if (l1[i] & QCOW2_L1_RESERVED || (off & (q->cluster_size - 1)) ||
		    (off && (off < q->cluster_size || off >= q->file_size))) {
			report(c->res, "ERROR invalid L1 entry %u: 0x%" PRIx64, i, l1[i]);
			c->res->corruptions++;
			t[i] = 0;
			continue;
		}
		if (l1[i] && !off) {
			/* I/O reads it as unallocated, QEMU's check as an L2 table in
			 * the header: -r all clears it (no read changes). */
			report(c->res, "ERROR L1 entry %u (0x%" PRIx64 ") points at the header", i, l1[i]);
			c->res->corruptions++;
			if (c->active)
				c->header_l1++;
			t[i] = 0;
			continue;
		}
		reference(c, off, off ? q->cluster_size : 0, USE_L2);
	}
	return t;
}

static int count_tree(struct counter *c, const uint64_t *l1, uint32_t size, bool active,
		      struct tern_error *err)
{
	c->active = active;
	uint64_t *t = checked_l1(c, l1, size);
	if (!t)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int r = qcow2_for_each_l2(c->q, t, size, count_l2, c, err);
	free(t);
	return r;
}

struct copied_ctx {
	struct refmodel *m;
	struct tern_qcow2_check *res;
	uint64_t wrong;
};

static int check_copied(void *opaque, uint64_t i, uint64_t l2_off, uint8_t *table,
			struct tern_error *err)
{
	struct copied_ctx *c = opaque;
	struct tern_qcow2 *q = c->m->q;
	(void)i;
	(void)err;
	for (uint64_t j = 0; j < q->cluster_size / 8; j++) {
		uint64_t e = qcow2_be64(table + j * 8), off = e & QCOW2_OFFSET_MASK;
		if (e & QCOW2_OFLAG_COMPRESSED || !off || e & QCOW2_L2_RESERVED)
			continue;
		uint64_t rc = refmodel_get(c->m, off >> q->cluster_bits);
		if ((rc == 1) != !!(e & QCOW2_OFLAG_COPIED)) {
			report(c->res, "ERROR OFLAG_COPIED data cluster: l2_entry=%" PRIx64 " refcount=%" PRIu64
			       " (table 0x%" PRIx64 ")", e, rc, l2_off);
			c->wrong++;
		}
	}
	return 0;
}

/* COPIED flags of the active tree against the counts in m. */
static int count_copied(struct tern_qcow2 *q, struct refmodel *m, struct tern_qcow2_check *res,
			uint64_t *wrong, struct tern_error *err)
{
	struct copied_ctx c = { m, res, 0 };
	uint64_t *l1 = malloc(((size_t)q->l1_size + 1) * 8);
	if (!l1)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t off = q->l1[i] & QCOW2_OFFSET_MASK;
		bool ok = !(q->l1[i] & QCOW2_L1_RESERVED) && !(off & (q->cluster_size - 1)) &&
			  (!off || (off >= q->cluster_size && off < q->file_size));
		l1[i] = ok ? q->l1[i] : 0;
		if (!ok || !off)
			continue;
		uint64_t rc = refmodel_get(m, off >> q->cluster_bits);
		if ((rc == 1) != !!(q->l1[i] & QCOW2_OFLAG_COPIED)) {
			report(res, "ERROR OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%" PRIx64
			       " refcount=%" PRIu64, i, q->l1[i], rc);
			c.wrong++;
		}
	}
	int r = qcow2_for_each_l2(q, l1, q->l1_size, check_copied, &c, err);
	free(l1);
	*wrong = c.wrong;
	return r;
}

static int count_everything(struct counter *c, struct tern_error *err)
{
	struct tern_qcow2 *q = c->q;
	uint64_t cs = q->cluster_size;
	reference(c, 0, cs, USE_HEADER);
	reference(c, q->h.l1_table_offset, (uint64_t)q->l1_size * 8, USE_L1);
	reference(c, q->h.refcount_table_offset, (uint64_t)q->h.refcount_table_clusters * cs,
		  USE_REFTABLE);
	for (uint64_t i = 0; i < q->reftable_size; i++)
		reference(c, q->reftable[i], q->reftable[i] ? cs : 0, USE_REFBLOCK);
	if (q->nb_snapshots)
		reference(c, q->h.snapshots_offset, q->snapshots_bytes, USE_SNAPTABLE);
	int r = count_tree(c, q->l1, q->l1_size, true, err);
	for (uint32_t s = 0; r == 0 && s < q->nb_snapshots; s++) {
		struct qcow2_snapshot *sn = &q->snapshots[s];
		reference(c, sn->l1_table_offset, (uint64_t)sn->l1_size * 8, USE_SNAPL1);
		uint64_t *l1;
		r = qcow2_read_table(q, sn->l1_table_offset, sn->l1_size, &l1, err);
		if (r == 0) {
			r = count_tree(c, l1, sn->l1_size, false, err);
			free(l1);
		}
	}
	return r;
}

/* Nothing to rewrite: the corrupt bit still follows what check found. */
static int finish_flags(struct tern_qcow2 *q, struct tern_qcow2_check *res, bool refuse, bool all,
			struct tern_error *err)
{
	uint64_t flags = q->h.incompatible;
	if (refuse) {
		report(res, "ERROR %" PRIu64 " clusters are used for two things at once, which "
		       "cannot be repaired", res->overlaps);
		flags |= QCOW2_INCOMPAT_CORRUPT;
	} else if (all && res->corruptions == res->corruptions_fixed) {
		flags &= ~(QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY);
	}
	if (!q->writable || q->h.version != 3 || flags == q->h.incompatible)
		return 0;
	q->h.incompatible = flags;
	q->corrupt = flags & QCOW2_INCOMPAT_CORRUPT;
	int r = qcow2_header_update(q, err);
	return r < 0 ? r : qcow2_sync(q, err);
}

int tern_qcow2_check(struct tern_qcow2 *q, enum tern_qcow2_repair repair,
		     struct tern_qcow2_check *res, struct tern_error *err)
{
	void (*rep)(void *, const char *) = res->report;
	void *opaque = res->opaque;
	memset(res, 0, sizeof(*res));
	res->report = rep;
	res->opaque = opaque;
	if (repair != TERN_QCOW2_REPAIR_NONE && !q->writable)
		return tern_errorf(err, -EBADF, "repairing needs the image open for writing");
	int r = q->writable ? tern_qcow2_flush(q, err) : 0;
	if (r < 0)
		return r;
	struct counter c = { .q = q, .res = res, .n = qcow2_clusters_in_file(q) };
	c.expected = calloc(c.n + 1, sizeof(*c.expected));
	c.use = calloc(c.n + 1, 1);
	if (!c.expected || !c.use) {
		free(c.expected);
		free(c.use);
		return tern_errorf(err, -ENOMEM, "out of memory for %" PRIu64 " clusters", c.n);
	}
	struct refmodel m;
	memset(&m, 0, sizeof(m));
	r = count_everything(&c, err);
	free(c.use);
	/* Overlapping metadata: no count or flag can be trusted to repair by,
	 * and freeing "leaks" could free the only copy a bad pointer lost. */
	bool refuse = res->overlaps != 0;
	if (refuse)
		repair = TERN_QCOW2_REPAIR_NONE;
	if (r == 0)
		r = refmodel_load(&m, q, err);
	/* Every cluster in the file, and any past its end with a refcount. */
	uint64_t used_blocks = 0;
	for (uint64_t b = 0; b < m.nblocks; b++)
		if (m.block[b])
			used_blocks = b + 1;
	uint64_t limit = c.n > used_blocks * m.per_block ? c.n : used_blocks * m.per_block;
	uint64_t max = qcow2_rc_max(q->h.refcount_order);
	res->total_clusters = (q->h.size + q->cluster_size - 1) >> q->cluster_bits;
	for (uint64_t k = 0; r == 0 && k < limit; k++) {
		uint64_t on = refmodel_get(&m, k), ex = k < c.n ? c.expected[k] : 0;
		if (ex)
			res->image_end_offset = (k + 1) << q->cluster_bits;
		if (on == ex)
			continue;
		bool leak = on > ex;
		report(res, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64,
		       leak ? "Leaked" : "ERROR", k, on, ex);
		if (ex > max) {
			res->corruptions++;
			continue;
		}
		if (leak)
			res->leaks++;
		else
			res->corruptions++;
		bool fix = repair == TERN_QCOW2_REPAIR_ALL || (leak && repair == TERN_QCOW2_REPAIR_LEAKS);
		if (fix) {
			r = refmodel_add(&m, k, (int64_t)(ex - on), err);
			if (leak)
				res->leaks_fixed++;
			else
				res->corruptions_fixed++;
		}
	}
	free(c.expected);
	uint64_t wrong = 0;
	if (r == 0)
		r = count_copied(q, &m, res, &wrong, err);
	res->corruptions += wrong;
	bool all = repair == TERN_QCOW2_REPAIR_ALL;
	bool changed = res->leaks_fixed || res->corruptions_fixed || (all && (wrong || c.header_l1));
	if (r < 0 || !changed) {
		refmodel_free(&m);
		return r < 0 ? r : finish_flags(q, res, refuse, all, err);
	}
	/* Repair: the counts in m are right now; flags follow them. */
	uint64_t *l1 = malloc(((size_t)q->l1_size + 1) * 8), l1_off = 0;
	if (!l1)
		r = tern_errorf(err, -ENOMEM, "out of memory");
	if (r == 0) {
		memcpy(l1, q->l1, (size_t)q->l1_size * 8);
		if (all) {
			struct normalize_ctx n = { &m, l1 };
			for (uint32_t i = 0; i < q->l1_size; i++)
				if (!(l1[i] & QCOW2_OFFSET_MASK))
					l1[i] = 0;
			r = qcow2_for_each_l2(q, q->l1, q->l1_size, qcow2_normalize_visit, &n, err);
			res->corruptions_fixed += wrong + c.header_l1;
		}
	}
	if (r == 0)
		r = qcow2_place_active_l1(&m, l1, q->l1_size, &l1_off, err);
	if (r == 0 && all && res->corruptions == res->corruptions_fixed) {
		q->h.incompatible &= ~(QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DIRTY);
		q->corrupt = false;
	}
	if (r == 0)
		r = qcow2_rewrite_commit(&m, l1_off, q->l1_size, q->h.snapshots_offset,
					 q->nb_snapshots, err);
	free(l1);
	return qcow2_rewrite_finish(q, &m, r, err);
}
