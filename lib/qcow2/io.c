/*
 * Guest I/O: map guest offsets through L1 and L2, read, write with
 * allocation and copy-on-write, write zeroes, discard.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "image.h"

static bool table_offset_ok(struct tern_qcow2 *q, uint64_t off)
{
	return off >= q->cluster_size && !(off & (q->cluster_size - 1)) && off < q->file_size;
}

static int check_range(struct tern_qcow2 *q, uint64_t offset, uint64_t len, struct tern_error *err)
{
	if (offset > q->h.size || len > q->h.size - offset)
		return tern_errorf(err, -EINVAL,
				   "range 0x%" PRIx64 "+0x%" PRIx64 " is past the disk's end (0x%" PRIx64
				   ")", offset, len, q->h.size);
	return 0;
}

/* The L2 table for guest offset `guest`, pinned; NULL if there is none. */
static int l2_lookup(struct tern_qcow2 *q, uint64_t guest, uint8_t **table, struct tern_error *err)
{
	uint64_t i = qcow2_l1_index(q, guest);
	*table = NULL;
	if (i >= q->l1_size)
		return 0;
	uint64_t e = q->l1[i];
	if (e & QCOW2_L1_RESERVED || (e & QCOW2_OFFSET_MASK && !table_offset_ok(q, e & QCOW2_OFFSET_MASK)))
		return tern_errorf(err, -EUCLEAN, "image is corrupt: L1 entry %" PRIu64 " is 0x%" PRIx64,
				   i, e);
	if (!(e & QCOW2_OFFSET_MASK))
		return 0;
	return qcache_get(&q->l2, e & QCOW2_OFFSET_MASK, true, table, err);
}

static int write_l1_entry(struct tern_qcow2 *q, uint64_t i, struct tern_error *err)
{
	uint8_t be[8];
	qcow2_put64(be, q->l1[i]);
	qcow2_metadata_changed(q);
	return qcow2_pwrite(q, be, 8, q->h.l1_table_offset + i * 8, true, err);
}

/*
 * The L2 table for `guest`, writable: allocated when missing, copied when
 * shared with a snapshot.  The new table's refcount and contents are on
 * disk (synced) before the L1 entry points to it.
 */
static int l2_writable(struct tern_qcow2 *q, uint64_t guest, uint8_t **table,
		       struct tern_error *err)
{
	uint64_t i = qcow2_l1_index(q, guest);
	int r = l2_lookup(q, guest, table, err);
	if (r == 0 && *table && (q->l1[i] & QCOW2_OFLAG_COPIED)) {
		/* Changed in place: a table the refcounts call free or shared
		 * would take the change into someone else's cluster. */
		r = qcow2_guard_sole(q, q->l1[i] & QCOW2_OFFSET_MASK, "L2 table", err);
		if (r < 0)
			qcache_put(&q->l2, *table);
		return r;
	}
	if (r < 0)
		return r;
	uint8_t *old = *table;
	uint64_t old_off = q->l1[i] & QCOW2_OFFSET_MASK, off;
	r = qcow2_alloc_clusters(q, 1, &off, err);
	if (r == 0)
		r = qcache_flush(&q->rb, err);
	uint8_t *fresh = NULL;
	if (r == 0)
		r = qcache_get(&q->l2, off, false, &fresh, err);
	if (r < 0) {
		if (old)
			qcache_put(&q->l2, old);
		return r;
	}
	if (old) {
		memcpy(fresh, old, q->cluster_size);
		qcache_put(&q->l2, old);
	} else {
		memset(fresh, 0, q->cluster_size);
	}
	r = qcow2_pwrite(q, fresh, q->cluster_size, off, true, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	if (r == 0) {
		q->l1[i] = off | QCOW2_OFLAG_COPIED;
		r = write_l1_entry(q, i, err);
	}
	if (r == 0 && old_off)
		r = qcow2_free_later(q, old_off, 1, err);
	if (r < 0) {
		qcache_put(&q->l2, fresh);
		qcache_drop(&q->l2, off);
		return r;
	}
	*table = fresh;
	return 0;
}

static uint64_t entry_at(struct tern_qcow2 *q, const uint8_t *table, uint64_t guest)
{
	return qcow2_be64(table + qcow2_l2_index(q, guest) * 8);
}

static void set_entry(struct tern_qcow2 *q, uint8_t *table, uint64_t guest, uint64_t e)
{
	qcow2_put64(table + qcow2_l2_index(q, guest) * 8, e);
	qcache_dirty(&q->l2, table);
}

static int classify(struct tern_qcow2 *q, uint64_t e, enum tern_qcow2_status *st,
		    struct tern_error *err)
{
	if (e & QCOW2_OFLAG_COMPRESSED) {
		*st = TERN_QCOW2_COMPRESSED;
		return 0;
	}
	uint64_t reserved = QCOW2_L2_RESERVED | (q->h.version == 2 ? QCOW2_OFLAG_ZERO : 0);
	uint64_t off = e & QCOW2_OFFSET_MASK;
	if (e & reserved || (off & (q->cluster_size - 1)) || (off && off < q->cluster_size))
		return tern_errorf(err, -EUCLEAN, "image is corrupt: invalid L2 entry 0x%" PRIx64, e);
	if (e & QCOW2_OFLAG_ZERO)
		*st = TERN_QCOW2_ZERO;
	else
		*st = off ? TERN_QCOW2_DATA : TERN_QCOW2_UNALLOCATED;
	return 0;
}

/* Status of the run of clusters from `offset` (at most `*len` bytes, at
 * most to the end of the L2 table): same kind and, for data, contiguous. */
static int map_run(struct tern_qcow2 *q, uint64_t offset, uint64_t *len,
		   enum tern_qcow2_status *st, uint64_t *host, uint64_t *entry,
		   struct tern_error *err)
{
	uint64_t cs = q->cluster_size, in = offset & (cs - 1);
	uint64_t table_end = ((offset >> (q->cluster_bits + q->l2_bits)) + 1)
			     << (q->cluster_bits + q->l2_bits);
	uint64_t limit = offset + *len < table_end ? offset + *len : table_end;
	uint8_t *table;
	int r = l2_lookup(q, offset, &table, err);
	if (r < 0)
		return r;
	if (!table) {
		*st = TERN_QCOW2_UNALLOCATED;
		*entry = 0;
		*len = limit - offset;
		return 0;
	}
	uint64_t e = entry_at(q, table, offset);
	*entry = e;
	r = classify(q, e, st, err);
	uint64_t end = (offset | (cs - 1)) + 1;
	*host = (e & QCOW2_OFFSET_MASK) + in;
	if (*st != TERN_QCOW2_COMPRESSED) {
		uint64_t next_host = (e & QCOW2_OFFSET_MASK) + cs;
		while (r == 0 && end < limit) {
			uint64_t f = entry_at(q, table, end);
			enum tern_qcow2_status fst;
			r = classify(q, f, &fst, err);
			if (r < 0 || fst != *st || (fst == TERN_QCOW2_DATA &&
						    (f & QCOW2_OFFSET_MASK) != next_host))
				break;
			next_host += cs;
			end += cs;
		}
	}
	qcache_put(&q->l2, table);
	*len = (end < limit ? end : limit) - offset;
	return r;
}

int tern_qcow2_block_status(struct tern_qcow2 *q, uint64_t offset, uint64_t *len,
			    enum tern_qcow2_status *status, uint64_t *host_offset,
			    struct tern_error *err)
{
	int r = check_range(q, offset, *len, err);
	if (r < 0)
		return r;
	uint64_t entry;
	*host_offset = 0;
	return map_run(q, offset, len, status, host_offset, &entry, err);
}

static int iov_total(const struct iovec *iov, int iovcnt, size_t *len, struct tern_error *err)
{
	size_t n = 0;
	if (iovcnt < 0)
		return tern_errorf(err, -EINVAL, "negative iovec count");
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - n)
			return tern_errorf(err, -EINVAL, "iovecs longer than memory");
		n += iov[i].iov_len;
	}
	*len = n;
	return 0;
}

/* n bytes from the backing file (zeros past its end) into the cursor. */
static int read_backing(struct tern_qcow2 *q, const struct qiov *c, uint64_t offset, size_t n,
			struct tern_error *err)
{
	size_t have = 0;
	if (offset < q->backing_size)
		have = q->backing_size - offset < n ? (size_t)(q->backing_size - offset) : n;
	if (have < n) {
		struct qiov tail = *c;
		qiov_advance(&tail, have);
		qiov_zero(&tail, n - have);
	}
	if (!have)
		return 0;
	if (!q->backing)
		return qcow2_fd_preadv(q->backing_fd, c, have, offset, err);
	/* The slice goes to a readv of its own, which brings its own scratch. */
	int k = qiov_slice(c, have, c->tmp);
	return tern_qcow2_readv(q->backing, c->tmp, k, offset, err);
}

static int read_backing_flat(struct tern_qcow2 *q, uint8_t *buf, uint64_t offset, size_t n,
			     struct tern_error *err)
{
	struct iovec v = { buf, n }, tmp;
	struct qiov c;
	qiov_init(&c, &v, 1, &tmp);
	return read_backing(q, &c, offset, n, err);
}

int tern_qcow2_readv(struct tern_qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset,
		     struct tern_error *err)
{
	size_t len;
	int r = iov_total(iov, iovcnt, &len, err);
	if (r == 0)
		r = check_range(q, offset, len, err);
	struct iovec *tmp = r == 0 ? malloc(((size_t)iovcnt + 1) * sizeof(*tmp)) : NULL;
	if (r == 0 && !tmp)
		r = tern_errorf(err, -ENOMEM, "out of memory");
	struct qiov c;
	qiov_init(&c, iov, iovcnt, tmp);
	while (r == 0 && len) {
		uint64_t n = len, host, entry;
		enum tern_qcow2_status st;
		r = map_run(q, offset, &n, &st, &host, &entry, err);
		if (r < 0)
			break;
		switch (st) {
		case TERN_QCOW2_UNALLOCATED:
			if (q->backing || q->backing_fd >= 0)
				r = read_backing(q, &c, offset, n, err);
			else
				qiov_zero(&c, n);
			break;
		case TERN_QCOW2_ZERO:
			qiov_zero(&c, n);
			break;
		case TERN_QCOW2_DATA:
			r = qcow2_preadv(q, &c, n, host, err);
			break;
		case TERN_QCOW2_COMPRESSED:
			r = qcow2_decompress(q, entry, err);
			if (r == 0)
				qiov_scatter(&c, q->dbuf + (offset & (q->cluster_size - 1)), n);
			break;
		}
		qiov_advance(&c, n);
		offset += n;
		len -= n;
	}
	free(tmp);
	return qcow2_signal_corruption(q, r, err);
}

int tern_qcow2_read(struct tern_qcow2 *q, void *buf, uint64_t offset, size_t len,
		    struct tern_error *err)
{
	struct iovec v = { buf, len };
	return tern_qcow2_readv(q, &v, 1, offset, err);
}

/* The current contents of the cluster holding `guest`, as `entry` maps it. */
static int cluster_contents(struct tern_qcow2 *q, uint64_t guest, uint64_t entry, uint8_t *buf,
			    struct tern_error *err)
{
	uint64_t start = guest & ~(q->cluster_size - 1), n = q->cluster_size;
	if (start + n > q->h.size)
		n = q->h.size - start;
	memset(buf + n, 0, q->cluster_size - n);
	enum tern_qcow2_status st;
	int r = classify(q, entry, &st, err);
	if (r < 0)
		return r;
	switch (st) {
	case TERN_QCOW2_UNALLOCATED:
		if (q->backing || q->backing_fd >= 0)
			return read_backing_flat(q, buf, start, n, err);
		memset(buf, 0, n);
		return 0;
	case TERN_QCOW2_ZERO:
		memset(buf, 0, n);
		return 0;
	case TERN_QCOW2_DATA:
		return qcow2_pread(q, buf, n, entry & QCOW2_OFFSET_MASK, err);
	case TERN_QCOW2_COMPRESSED:
		r = qcow2_decompress(q, entry, err);
		if (r == 0)
			memcpy(buf, q->dbuf, n);
		return r;
	}
	return 0;
}

/* Write part of one cluster: n bytes from the cursor. */
static int write_cluster(struct tern_qcow2 *q, uint64_t guest, const struct qiov *data, size_t n,
			 uint8_t *scratch, struct tern_error *err)
{
	uint8_t *table;
	int r = l2_writable(q, guest, &table, err);
	if (r < 0)
		return r;
	uint64_t e = entry_at(q, table, guest), cs = q->cluster_size;
	uint64_t in = guest & (cs - 1), off = e & QCOW2_OFFSET_MASK;
	bool in_place = (e & QCOW2_OFLAG_COPIED) && !(e & QCOW2_OFLAG_COMPRESSED) && off;
	enum tern_qcow2_status st;
	r = classify(q, e, &st, err);
	if (r < 0) {
		qcache_put(&q->l2, table);
		return r;
	}
	if (in_place) {
		/* Written in place: it must be data, and this image's alone. */
		if (qcow2_overlaps_metadata(q, off, cs))
			r = tern_errorf(err, -EUCLEAN,
					"image is corrupt: data cluster 0x%" PRIx64 " overlaps metadata",
					off);
		else
			r = qcow2_guard_sole(q, off, "data cluster", err);
		if (r < 0)
			;
		else if (!(e & QCOW2_OFLAG_ZERO))
			r = qcow2_pwritev(q, data, n, off + in, false, err);
		else {
			memset(scratch, 0, cs);
			qiov_gather(data, scratch + in, n);
			r = qcow2_pwrite(q, scratch, cs, off, false, err);
			if (r == 0)
				set_entry(q, table, guest, off | QCOW2_OFLAG_COPIED);
		}
		qcache_put(&q->l2, table);
		return r;
	}
	/* Copy on write: a fresh cluster with the old contents around the new. */
	if (n < cs) {
		r = cluster_contents(q, guest, e, scratch, err);
		if (r == 0)
			qiov_gather(data, scratch + in, n);
	}
	uint64_t fresh = 0;
	if (r == 0)
		r = qcow2_alloc_clusters(q, 1, &fresh, err);
	if (r == 0 && n < cs)
		r = qcow2_pwrite(q, scratch, cs, fresh, false, err);
	else if (r == 0)
		r = qcow2_pwritev(q, data, cs, fresh, false, err);
	if (r == 0) {
		set_entry(q, table, guest, fresh | QCOW2_OFLAG_COPIED);
		if (e & QCOW2_OFLAG_COMPRESSED || off)
			r = qcow2_free_entry_later(q, e, err);
	}
	qcache_put(&q->l2, table);
	return r;
}

static int need_writable(struct tern_qcow2 *q, struct tern_error *err)
{
	return q->writable ? qcow2_refuse_corrupt(q, err)
			   : tern_errorf(err, -EBADF, "image is open read-only");
}

int tern_qcow2_writev(struct tern_qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err)
{
	size_t len = 0;
	int r = need_writable(q, err);
	if (r == 0)
		r = iov_total(iov, iovcnt, &len, err);
	if (r == 0)
		r = check_range(q, offset, len, err);
	uint8_t *scratch = r == 0 ? qcow2_alloc_aligned(q->cluster_size) : NULL;
	struct iovec *tmp = r == 0 ? malloc(((size_t)iovcnt + 1) * sizeof(*tmp)) : NULL;
	if (r == 0 && (!scratch || !tmp))
		r = tern_errorf(err, -ENOMEM, "out of memory");
	struct qiov c;
	qiov_init(&c, iov, iovcnt, tmp);
	while (r == 0 && len) {
		size_t n = q->cluster_size - (offset & (q->cluster_size - 1));
		if (n > len)
			n = len;
		r = write_cluster(q, offset, &c, n, scratch, err);
		qiov_advance(&c, n);
		offset += n;
		len -= n;
	}
	free(tmp);
	free(scratch);
	return qcow2_signal_corruption(q, r, err);
}

int tern_qcow2_write(struct tern_qcow2 *q, const void *buf, uint64_t offset, size_t len,
		     struct tern_error *err)
{
	struct iovec v = { (void *)buf, len };
	return tern_qcow2_writev(q, &v, 1, offset, err);
}

/* Whole clusters become `fresh(entry)`; partial ones are written with zeros. */
static int rewrite_entries(struct tern_qcow2 *q, uint64_t offset, uint64_t len, bool discard,
			   struct tern_error *err)
{
	uint64_t cs = q->cluster_size;
	bool has_backing = q->backing || q->backing_fd >= 0;
	while (len) {
		uint64_t n = cs - (offset & (cs - 1));
		if (n > len)
			n = len;
		bool whole = n == cs || offset + n == q->h.size;
		int r = 0;
		if (!whole) {
			if (!discard) {
				static const uint8_t zeros[4096];
				for (uint64_t done = 0; r == 0 && done < n;) {
					uint64_t k = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
					r = tern_qcow2_write(q, zeros, offset + done, k, err);
					done += k;
				}
			}
		} else if (q->h.version == 2 && !discard) {
			uint8_t *z = calloc(1, cs);
			r = z ? tern_qcow2_write(q, z, offset, n, err)
			      : tern_errorf(err, -ENOMEM, "out of memory");
			free(z);
		} else {
			uint8_t *table;
			uint64_t i = qcow2_l1_index(q, offset);
			bool unmapped = i >= q->l1_size || !(q->l1[i] & QCOW2_OFFSET_MASK);
			if (unmapped && (discard || !has_backing)) {
				offset += n;
				len -= n;
				continue; /* already reads as zeros (or from the backing file) */
			}
			r = l2_writable(q, offset, &table, err);
			if (r < 0)
				return r;
			uint64_t e = entry_at(q, table, offset), off = e & QCOW2_OFFSET_MASK;
			uint64_t ne;
			bool keep = !discard && (e & QCOW2_OFLAG_COPIED) && off &&
				    !(e & QCOW2_OFLAG_COMPRESSED);
			if (keep)
				ne = off | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO;
			else if (discard && (q->h.version == 2 || !has_backing))
				ne = 0;
			else
				ne = QCOW2_OFLAG_ZERO;
			if (ne != e) {
				set_entry(q, table, offset, ne);
				if (!keep && (off || (e & QCOW2_OFLAG_COMPRESSED)))
					r = qcow2_free_entry_later(q, e, err);
			}
			qcache_put(&q->l2, table);
		}
		if (r < 0)
			return r;
		offset += n;
		len -= n;
	}
	return 0;
}

int tern_qcow2_write_zeroes(struct tern_qcow2 *q, uint64_t offset, uint64_t len,
			    struct tern_error *err)
{
	int r = need_writable(q, err);
	if (r == 0)
		r = check_range(q, offset, len, err);
	return qcow2_signal_corruption(q, r < 0 ? r : rewrite_entries(q, offset, len, false, err),
				       err);
}

int tern_qcow2_discard(struct tern_qcow2 *q, uint64_t offset, uint64_t len,
		       struct tern_error *err)
{
	int r = need_writable(q, err);
	if (r == 0)
		r = check_range(q, offset, len, err);
	return qcow2_signal_corruption(q, r < 0 ? r : rewrite_entries(q, offset, len, true, err),
				       err);
}
