/*
 * Guards against writing into a corrupt image: the corrupt bit, the layout
 * check at open for writing, the refcount checks before a table or cluster
 * is changed in place, and the metadata map whole-image rewrites test every
 * reference against.  None of them scans the image: each costs what the
 * operation it guards already reads (see docs/qcow2.md, "Corrupt images").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "refmodel.h"

static void append(struct tern_error *err, const char *text)
{
	if (!err || strstr(err->msg, "check -r all"))
		return;
	size_t n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, "%s", text);
}

int qcow2_signal_corruption(struct tern_qcow2 *q, int r, struct tern_error *err)
{
	if (r != -EUCLEAN)
		return r;
	if (!q->writable) {
		append(err, "; `tern-img check` shows the damage and `tern-img check -r all` repairs "
			    "what can be repaired");
		return r;
	}
	if (!q->corrupt) {
		/* As QEMU does: say so in the header, so that no writer (QEMU's
		 * either) trusts the image until a repair clears the bit. */
		q->corrupt = true;
		if (q->h.version == 3 && !(q->h.incompatible & QCOW2_INCOMPAT_CORRUPT)) {
			struct tern_error e2;
			q->h.incompatible |= QCOW2_INCOMPAT_CORRUPT;
			if (qcow2_header_update(q, &e2) == 0)
				qcow2_sync(q, &e2);
		}
	}
	append(err, q->h.version == 3
		    ? "; the image is marked corrupt and neither tern nor QEMU will write to it "
		      "until `tern-img check -r all` repairs it"
		    : "; tern writes nothing more to it; run `tern-img check -r all`");
	return r;
}

int qcow2_refuse_corrupt(struct tern_qcow2 *q, struct tern_error *err)
{
	if (!q->corrupt)
		return 0;
	return tern_errorf(err, -EUCLEAN,
			   "image is corrupt (see `tern-img check`); it takes no writes until "
			   "`tern-img check -r all` repairs it");
}

/* ------------------------------------------------------ fixed tables */

struct extent {
	uint64_t off, end; /* whole clusters */
	const char *what;
	uint64_t index;
};

static int cmp_extent(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void describe(const struct extent *e, char *buf, size_t len)
{
	if (e->index != UINT64_MAX)
		snprintf(buf, len, "%s %" PRIu64 " (0x%" PRIx64 ")", e->what, e->index, e->off);
	else
		snprintf(buf, len, "%s (0x%" PRIx64 ")", e->what, e->off);
}

static void add_extent(struct extent *e, size_t *n, uint64_t cs, uint64_t off, uint64_t bytes,
		       const char *what, uint64_t index)
{
	if (bytes)
		e[(*n)++] = (struct extent){ off, (off + bytes + cs - 1) & ~(cs - 1), what, index };
}

/* The header, L1 table, refcount table and blocks, snapshot table and
 * snapshot L1 tables, sorted, in whole clusters. */
static int fixed_extents(struct tern_qcow2 *q, struct extent **out, size_t *count,
			 struct tern_error *err)
{
	size_t n = 0, cap = 4 + q->nb_snapshots + q->reftable_size;
	struct extent *e = malloc(cap * sizeof(*e));
	if (!e)
		return tern_errorf(err, -ENOMEM, "out of memory");
	uint64_t cs = q->cluster_size;
	add_extent(e, &n, cs, 0, cs, "header", UINT64_MAX);
	add_extent(e, &n, cs, q->h.l1_table_offset, (uint64_t)q->l1_size * 8, "L1 table", UINT64_MAX);
	add_extent(e, &n, cs, q->h.refcount_table_offset,
		   (uint64_t)q->h.refcount_table_clusters << q->cluster_bits, "refcount table",
		   UINT64_MAX);
	if (q->nb_snapshots)
		add_extent(e, &n, cs, q->h.snapshots_offset, q->snapshots_bytes, "snapshot table",
			   UINT64_MAX);
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		add_extent(e, &n, cs, q->snapshots[i].l1_table_offset,
			   (uint64_t)q->snapshots[i].l1_size * 8, "L1 table of snapshot", i);
	for (uint64_t i = 0; i < q->reftable_size; i++)
		if (q->reftable[i])
			add_extent(e, &n, cs, q->reftable[i], cs, "refcount block", i);
	qsort(e, n, sizeof(*e), cmp_extent);
	*out = e;
	*count = n;
	return 0;
}

/* The extent holding `off`, if any. */
static const struct extent *find_extent(const struct extent *e, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (e[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && e[lo].off <= off ? &e[lo] : NULL;
}

/* Fixed tables clear of each other; the active L1 table's entries clear of
 * them.  O(tables + L1 entries), no reads: what open has already loaded. */
int qcow2_guard_layout(struct tern_qcow2 *q, struct tern_error *err)
{
	struct extent *e;
	size_t n;
	int r = fixed_extents(q, &e, &n, err);
	if (r < 0)
		return r;
	char a[96], b[96];
	size_t widest = 0;
	for (size_t i = 1; r == 0 && i < n; i++) {
		if (e[i].off < e[widest].end) {
			describe(&e[widest], a, sizeof(a));
			describe(&e[i], b, sizeof(b));
			r = tern_errorf(err, -EUCLEAN, "image is corrupt: the %s overlaps the %s", b, a);
		}
		if (e[i].end > e[widest].end)
			widest = i;
	}
	for (uint32_t i = 0; r == 0 && i < q->l1_size; i++) {
		uint64_t off = q->l1[i] & QCOW2_OFFSET_MASK;
		if (!q->l1[i])
			continue;
		const struct extent *hit = off ? find_extent(e, n, off) : &e[0];
		if (!hit || (off & (q->cluster_size - 1)))
			continue; /* unaligned or past the end: refused where used */
		describe(hit, a, sizeof(a));
		r = tern_errorf(err, -EUCLEAN,
				"image is corrupt: L1 entry %u (0x%" PRIx64 ") points at the %s", i,
				q->l1[i], a);
	}
	free(e);
	return r;
}

/* The table or cluster at `off` is about to change in place, as the only
 * user the COPIED flag says it has: its refcount must say so too. */
int qcow2_guard_sole(struct tern_qcow2 *q, uint64_t off, const char *what, struct tern_error *err)
{
	uint64_t rc;
	int r = qcow2_refcount(q, off >> q->cluster_bits, &rc, err);
	if (r < 0 || rc == 1)
		return r;
	return tern_errorf(err, -EUCLEAN,
			   "image is corrupt: the %s at 0x%" PRIx64 " is flagged as used once but its "
			   "refcount is %" PRIu64, what, off, rc);
}

/* ------------------------------------------------- rewrites' metadata map */

static void mark(struct refmodel *m, uint64_t c)
{
	if (c < m->meta_n)
		m->meta[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static int mark_l1(struct refmodel *m, const uint64_t *l1, uint32_t size, const struct extent *e,
		   size_t n, const char *tree, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	for (uint32_t i = 0; i < size; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
		if (!l1[i] || (off & (q->cluster_size - 1)) || off >= q->file_size)
			continue; /* empty, or refused by the walk that meets it */
		const struct extent *hit = off ? find_extent(e, n, off) : &e[0];
		if (hit) {
			char a[96];
			describe(hit, a, sizeof(a));
			return tern_errorf(err, -EUCLEAN,
					   "image is corrupt: entry %u of the %s points at the %s", i,
					   tree, a);
		}
		mark(m, off >> q->cluster_bits);
	}
	return 0;
}

int qcow2_metamap_build(struct refmodel *m, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	struct extent *e;
	size_t n;
	int r = qcow2_guard_layout(q, err);
	if (r == 0)
		r = fixed_extents(q, &e, &n, err);
	if (r < 0)
		return r;
	m->meta_n = qcow2_clusters_in_file(q);
	m->meta = calloc(m->meta_n / 8 + 1, 1);
	if (!m->meta)
		r = tern_errorf(err, -ENOMEM, "out of memory for a map of %" PRIu64 " clusters",
				m->meta_n);
	for (size_t i = 0; r == 0 && i < n; i++)
		for (uint64_t o = e[i].off; o < e[i].end; o += q->cluster_size)
			mark(m, o >> q->cluster_bits);
	/* Every tree's L2 tables: the L1 tables are small next to them. */
	if (r == 0)
		r = mark_l1(m, q->l1, q->l1_size, e, n, "L1 table", err);
	for (uint32_t s = 0; r == 0 && s < q->nb_snapshots; s++) {
		uint64_t *l1;
		r = qcow2_read_table(q, q->snapshots[s].l1_table_offset, q->snapshots[s].l1_size, &l1,
				     err);
		if (r == 0) {
			char tree[64];
			snprintf(tree, sizeof(tree), "L1 table of snapshot %u", s);
			r = mark_l1(m, l1, q->snapshots[s].l1_size, e, n, tree, err);
			free(l1);
		}
	}
	/* A table the refcounts call free could be handed out and overwritten. */
	for (uint64_t c = 0; r == 0 && c < m->meta_n; c++)
		if (!m->meta[c >> 3])
			c |= 7;
		else if ((m->meta[c >> 3] >> (c & 7)) & 1 && refmodel_get(m, c) == 0)
			r = tern_errorf(err, -EUCLEAN,
					"image is corrupt: metadata cluster %" PRIu64 " (0x%" PRIx64
					") has refcount 0", c, c << q->cluster_bits);
	free(e);
	return r;
}

int qcow2_metamap_refused(struct refmodel *m, uint64_t c, struct tern_error *err)
{
	return tern_errorf(err, -EUCLEAN,
			   "image is corrupt: data cluster %" PRIu64 " (0x%" PRIx64 ") is %s", c,
			   c << m->q->cluster_bits,
			   c >= m->meta_n ? "past the end of the file"
					  : "metadata, or has refcount 0 and was just reused");
}
