/*
 * The in-memory refcount model behind whole-image rewrites; see refmodel.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>

#include "refmodel.h"

#define BATCH_BYTES (8u << 20)

static int grow(struct refmodel *m, uint64_t nblocks, struct tern_error *err)
{
	if (nblocks <= m->nblocks)
		return 0;
	uint64_t limit = (QCOW2_MAX_SIZE >> m->q->cluster_bits) / m->per_block + 1;
	if (nblocks > limit)
		return tern_errorf(err, -EFBIG, "image would grow past qcow2's limits");
	uint64_t cap = nblocks + nblocks / 4 + 8;
	void *b = realloc(m->block, cap * sizeof(*m->block));
	if (b)
		m->block = b;
	void *f = realloc(m->freed, cap * sizeof(*m->freed));
	if (f)
		m->freed = f;
	void *o = realloc(m->old_off, cap * 8);
	if (o)
		m->old_off = o;
	void *n = realloc(m->new_off, cap * 8);
	if (n)
		m->new_off = n;
	void *t = realloc(m->touched, cap);
	if (t)
		m->touched = t;
	if (!b || !f || !o || !n || !t)
		return tern_errorf(err, -ENOMEM, "out of memory for refcounts");
	for (uint64_t i = m->nblocks; i < cap; i++) {
		m->block[i] = NULL;
		m->freed[i] = NULL;
		m->old_off[i] = 0;
		m->new_off[i] = 0;
		m->touched[i] = 0;
	}
	m->nblocks = nblocks;
	return 0;
}

static int cmp_u64_pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

int refmodel_load(struct refmodel *m, struct tern_qcow2 *q, struct tern_error *err)
{
	memset(m, 0, sizeof(*m));
	m->q = q;
	m->order = q->h.refcount_order;
	m->per_block = 1ull << q->rb_bits;
	m->block_shift = q->rb_bits;
	m->cursor = 1;
	int r = grow(m, q->reftable_size, err);
	if (r < 0)
		return r;
	/* Read the blocks in offset order, adjacent ones in one read. */
	uint64_t (*order)[2] = malloc((q->reftable_size + 1) * sizeof(*order));
	if (!order)
		return tern_errorf(err, -ENOMEM, "out of memory");
	size_t n = 0;
	for (uint64_t i = 0; i < q->reftable_size; i++)
		if (q->reftable[i]) {
			order[n][0] = q->reftable[i];
			order[n++][1] = i;
		}
	qsort(order, n, sizeof(*order), cmp_u64_pair);
	uint64_t cs = q->cluster_size;
	for (size_t i = 0; i < n && r == 0;) {
		size_t j = i + 1;
		while (j < n && order[j][0] == order[j - 1][0] + cs && (j - i) * cs < BATCH_BYTES)
			j++;
		uint8_t *buf = malloc((j - i) * cs);
		if (!buf) {
			r = tern_errorf(err, -ENOMEM, "out of memory for refcounts");
			break;
		}
		r = qcow2_pread(q, buf, (j - i) * cs, order[i][0], err);
		for (size_t k = i; k < j && r == 0; k++) {
			uint64_t bi = order[k][1];
			if (m->block[bi]) {
				r = tern_errorf(err, -EUCLEAN,
						"image is corrupt: two refcount table entries share a block");
				break;
			}
			m->block[bi] = malloc(cs);
			if (!m->block[bi]) {
				r = tern_errorf(err, -ENOMEM, "out of memory for refcounts");
				break;
			}
			memcpy(m->block[bi], buf + (k - i) * cs, cs);
			m->old_off[bi] = order[k][0];
		}
		free(buf);
		i = j;
	}
	free(order);
	m->table_off = q->h.refcount_table_offset;
	m->table_clusters = q->h.refcount_table_clusters;
	return r;
}

void refmodel_free(struct refmodel *m)
{
	for (uint64_t i = 0; i < m->nblocks; i++) {
		free(m->block[i]);
		free(m->freed[i]);
	}
	free(m->block);
	free(m->freed);
	free(m->old_off);
	free(m->new_off);
	free(m->touched);
	free(m->wbuf);
	free(m->meta);
	memset(m, 0, sizeof(*m));
}

uint64_t refmodel_get(struct refmodel *m, uint64_t c)
{
	uint64_t bi = c / m->per_block;
	if (bi >= m->nblocks || !m->block[bi])
		return 0;
	return qcow2_rc_get(m->block[bi], c % m->per_block, m->order);
}

static bool was_freed(struct refmodel *m, uint64_t c)
{
	uint64_t bi = c / m->per_block, i = c % m->per_block;
	return bi < m->nblocks && m->freed[bi] && (m->freed[bi][i / 8] >> (i % 8)) & 1;
}

int refmodel_add(struct refmodel *m, uint64_t c, int64_t delta, struct tern_error *err)
{
	uint64_t bi = c / m->per_block, i = c % m->per_block;
	if (delta > 0) {
		int r = grow(m, bi + 1, err);
		if (r < 0)
			return r;
	}
	if (bi >= m->nblocks || !m->block[bi]) {
		if (delta < 0)
			return tern_errorf(err, -EUCLEAN,
					   "image is corrupt: cluster %" PRIu64 " is used but has refcount 0",
					   c);
		m->block[bi] = calloc(1, m->q->cluster_size);
		if (!m->block[bi])
			return tern_errorf(err, -ENOMEM, "out of memory for refcounts");
	}
	uint64_t v = qcow2_rc_get(m->block[bi], i, m->order);
	if (delta < 0 && v < (uint64_t)-delta)
		return tern_errorf(err, -EUCLEAN,
				   "image is corrupt: cluster %" PRIu64 " has more references than its refcount %" PRIu64,
				   c, v);
	if (delta > 0 && qcow2_rc_max(m->order) - v < (uint64_t)delta)
		return tern_errorf(err, -ERANGE,
				   "refcount overflow at cluster %" PRIu64 " (refcount width %u bits)",
				   c, 1u << m->order);
	v += (uint64_t)delta;
	qcow2_rc_set(m->block[bi], i, m->order, v);
	m->touched[bi] = 1;
	if (v == 0) {
		/* Free here, but still in use on disk until the header switches. */
		if (!m->freed[bi] && !(m->freed[bi] = calloc(1, m->per_block / 8 + 1)))
			return tern_errorf(err, -ENOMEM, "out of memory for refcounts");
		m->freed[bi][i / 8] |= (uint8_t)(1u << (i % 8));
	}
	return 0;
}

int refmodel_ref(struct refmodel *m, uint64_t c, int64_t delta, struct tern_error *err)
{
	if (delta > 0 && refmodel_get(m, c) == 0)
		return tern_errorf(err, -EUCLEAN,
				   "image is corrupt: cluster %" PRIu64 " is in use but has refcount 0", c);
	return refmodel_add(m, c, delta, err);
}

int refmodel_add_entry(struct refmodel *m, uint64_t e, int64_t delta, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	if (e & QCOW2_OFLAG_COMPRESSED) {
		uint64_t host, bytes;
		if (qcow2_compressed_range(q, e, &host, &bytes) < 0)
			return tern_errorf(err, -EUCLEAN, "image is corrupt: compressed entry 0x%" PRIx64, e);
		for (uint64_t c = host >> q->cluster_bits; c <= (host + bytes - 1) >> q->cluster_bits; c++) {
			int r = refmodel_data_ok(m, c) ? refmodel_ref(m, c, delta, err)
						       : qcow2_metamap_refused(m, c, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	uint64_t off = e & QCOW2_OFFSET_MASK;
	if (!off)
		return 0;
	if (off & (q->cluster_size - 1) || e & QCOW2_L2_RESERVED)
		return tern_errorf(err, -EUCLEAN, "image is corrupt: L2 entry 0x%" PRIx64, e);
	if (!refmodel_data_ok(m, off >> q->cluster_bits))
		return qcow2_metamap_refused(m, off >> q->cluster_bits, err);
	return refmodel_ref(m, off >> q->cluster_bits, delta, err);
}

int refmodel_alloc(struct refmodel *m, uint64_t n, uint64_t *offset, struct tern_error *err)
{
	uint64_t c = m->cursor, run = 0, start = 0;
	uint64_t limit = QCOW2_MAX_SIZE >> m->q->cluster_bits;
	bool seen_free = false;
	while (run < n) {
		if (c >= limit)
			return tern_errorf(err, -ENOSPC, "the image has no room left");
		uint64_t bi = c / m->per_block;
		if (bi >= m->nblocks || (!m->block[bi] && !m->freed[bi])) {
			/* A whole block of free clusters. */
			uint64_t end = (bi + 1) * m->per_block;
			uint64_t take = end - c < n - run ? end - c : n - run;
			if (!run)
				start = c;
			seen_free = true;
			run += take;
			c += take;
			continue;
		}
		if (refmodel_get(m, c) == 0 && !was_freed(m, c) && !(m->meta && refmodel_is_meta(m, c))) {
			if (!run)
				start = c;
			seen_free = true;
			run++;
		} else {
			run = 0;
			if (!seen_free)
				m->cursor = c + 1;
		}
		c++;
	}
	if (start == m->cursor)
		m->cursor = start + n;
	for (uint64_t x = start; x < start + n; x++) {
		int r = refmodel_add(m, x, 1, err);
		if (r < 0)
			return r;
		/* A data reference met later to a cluster handed out here was in
		 * use with refcount 0: the walk stops before the switch. */
		if (m->meta && x < m->meta_n)
			m->meta[x >> 3] |= (uint8_t)(1u << (x & 7));
	}
	*offset = start << m->q->cluster_bits;
	return 0;
}

int refmodel_write_flush(struct refmodel *m, struct tern_error *err)
{
	if (!m->wlen)
		return 0;
	int r = qcow2_pwrite(m->q, m->wbuf, m->wlen, m->woff, true, err);
	/* Start writing back now, so the sync before the header switch waits
	 * for the last batch only, not for all of them. */
	if (r == 0)
		sync_file_range(m->q->fd, (off_t)m->woff, (off_t)m->wlen, SYNC_FILE_RANGE_WRITE);
	m->wlen = 0;
	return r;
}

int refmodel_write(struct refmodel *m, const void *buf, size_t len, uint64_t off,
		   struct tern_error *err)
{
	if (m->wlen && (off != m->woff + m->wlen || m->wlen + len > BATCH_BYTES)) {
		int r = refmodel_write_flush(m, err);
		if (r < 0)
			return r;
	}
	if (len > BATCH_BYTES)
		return qcow2_pwrite(m->q, buf, len, off, true, err);
	if (!m->wbuf && !(m->wbuf = malloc(BATCH_BYTES)))
		return tern_errorf(err, -ENOMEM, "out of memory");
	if (!m->wlen)
		m->woff = off;
	memcpy(m->wbuf + m->wlen, buf, len);
	m->wlen += len;
	return 0;
}

int refmodel_write_table(struct refmodel *m, const uint64_t *t, uint64_t entries,
			 uint64_t *offset, struct tern_error *err)
{
	uint64_t cs = m->q->cluster_size;
	uint64_t clusters = (entries * 8 + cs - 1) / cs;
	*offset = 0;
	if (!clusters)
		return 0;
	uint8_t *buf = calloc(clusters, cs);
	if (!buf)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < entries; i++)
		qcow2_put64(buf + i * 8, t[i]);
	int r = refmodel_alloc(m, clusters, offset, err);
	if (r == 0)
		r = refmodel_write(m, buf, clusters * cs, *offset, err);
	free(buf);
	return r;
}

static int free_range(struct refmodel *m, uint64_t off, uint64_t clusters, struct tern_error *err)
{
	for (uint64_t k = 0; k < clusters; k++) {
		int r = refmodel_add(m, (off >> m->q->cluster_bits) + k, -1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int refmodel_commit(struct refmodel *m, struct tern_error *err)
{
	struct tern_qcow2 *q = m->q;
	uint64_t cs = q->cluster_size;
	/* The old refcount table is replaced. */
	int r = free_range(m, m->table_off, m->table_clusters, err);
	m->table_off = 0;
	m->table_clusters = 0;
	for (bool changed = true; r == 0 && changed;) {
		changed = false;
		for (uint64_t b = 0; r == 0 && b < m->nblocks; b++) {
			if (!m->touched[b] || m->new_off[b])
				continue;
			r = refmodel_alloc(m, 1, &m->new_off[b], err);
			if (r == 0 && m->old_off[b])
				r = free_range(m, m->old_off[b], 1, err);
			changed = true;
		}
		uint64_t clusters = (m->nblocks * 8 + cs - 1) / cs;
		if (r == 0 && clusters != m->table_clusters) {
			if (m->table_clusters)
				r = free_range(m, m->table_off, m->table_clusters, err);
			if (r == 0)
				r = refmodel_alloc(m, clusters, &m->table_off, err);
			m->table_clusters = clusters;
			changed = true;
		}
	}
	if (r < 0)
		return r;
	if (m->table_clusters << q->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
		return tern_errorf(err, -EFBIG, "the refcount table would exceed %u MiB",
				   QCOW2_MAX_REFTABLE_BYTES >> 20);
	/* Blocks in the order of their new offsets, so writes coalesce. */
	uint64_t (*order)[2] = malloc((m->nblocks + 1) * sizeof(*order));
	uint64_t *table = calloc(m->table_clusters, cs);
	if (!order || !table) {
		free(order);
		free(table);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	size_t n = 0;
	for (uint64_t b = 0; b < m->nblocks; b++) {
		table[b] = m->new_off[b] ? m->new_off[b] : m->old_off[b];
		if (m->new_off[b]) {
			if (!m->block[b] && !(m->block[b] = calloc(1, cs))) {
				r = tern_errorf(err, -ENOMEM, "out of memory");
				break;
			}
			order[n][0] = m->new_off[b];
			order[n++][1] = b;
		}
	}
	qsort(order, n, sizeof(*order), cmp_u64_pair);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = refmodel_write(m, m->block[order[i][1]], cs, order[i][0], err);
	free(order);
	uint8_t *be = (uint8_t *)table;
	for (uint64_t b = 0; b < m->table_clusters * cs / 8; b++)
		qcow2_put64(be + b * 8, table[b]);
	if (r == 0)
		r = refmodel_write(m, be, m->table_clusters * cs, m->table_off, err);
	free(table);
	if (r == 0)
		r = refmodel_write_flush(m, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	return r;
}

struct l2_ref {
	uint64_t offset, index;
};

static int cmp_l2_ref(const void *a, const void *b)
{
	const struct l2_ref *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int qcow2_for_each_l2(struct tern_qcow2 *q, const uint64_t *l1, uint32_t l1_size,
		      l2_visit_fn fn, void *opaque, struct tern_error *err)
{
	struct l2_ref *refs = malloc((l1_size + 1) * sizeof(*refs));
	if (!refs)
		return tern_errorf(err, -ENOMEM, "out of memory");
	size_t n = 0;
	uint64_t cs = q->cluster_size;
	int r = 0;
	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
		if (l1[i] & QCOW2_L1_RESERVED || (off & (cs - 1)) ||
		    (off && (off < cs || off >= q->file_size))) {
			r = tern_errorf(err, -EUCLEAN, "image is corrupt: L1 entry %u is 0x%" PRIx64, i,
					l1[i]);
			break;
		}
		if (off)
			refs[n++] = (struct l2_ref){ off, i };
	}
	qsort(refs, n, sizeof(*refs), cmp_l2_ref);
	uint8_t *buf = r == 0 ? malloc(BATCH_BYTES > cs ? BATCH_BYTES : cs) : NULL;
	if (r == 0 && !buf)
		r = tern_errorf(err, -ENOMEM, "out of memory");
	for (size_t i = 0; r == 0 && i < n;) {
		size_t j = i + 1;
		while (j < n && refs[j].offset == refs[j - 1].offset + cs && (j - i + 1) * cs <= BATCH_BYTES)
			j++;
		r = qcow2_pread(q, buf, (j - i) * cs, refs[i].offset, err);
		for (size_t k = i; k < j && r == 0; k++)
			r = fn(opaque, refs[k].index, refs[k].offset, buf + (k - i) * cs, err);
		i = j;
	}
	free(buf);
	free(refs);
	return r;
}

int qcow2_reload(struct tern_qcow2 *q, struct tern_error *err)
{
	qcache_clear(&q->l2);
	qcache_clear(&q->rb);
	qcow2_unload_metadata(q);
	q->free_hint = 0;
	q->dbuf_entry = UINT64_MAX;
	return qcow2_load_metadata(q, err);
}
