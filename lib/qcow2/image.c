/*
 * Opening and closing an image: the header, the tables it points to, the
 * backing file, the caches; counted I/O; the metadata overlap guard.
 *
 * Names used throughout lib/qcow2 (QEMU's docs/interop/qcow2.txt has the
 * format itself):
 *
 *  cluster   the image's unit of allocation, cluster_size = 2^cluster_bits
 *            bytes (512 B .. 2 MiB).  As a number (`cluster`, `c`) it is a
 *            host offset >> cluster_bits; every table starts on one.
 *  guest     a byte offset in the virtual disk the guest sees (0 .. h.size).
 *  host, off a byte offset in the image file; table entries hold them.
 *  entry, e  one big-endian u64 of a table, kept in host byte order in
 *            q->l1 and q->reftable.  Its offset is e & QCOW2_OFFSET_MASK; its
 *            flags: COPIED (refcount exactly 1, so it may be changed in
 *            place; set only in the active tree), COMPRESSED (an L2 entry
 *            with an offset and a length in 512-byte sectors instead), ZERO
 *            (an L2 entry that reads as zeros).
 *  L1 table  l1, l1_size: the entries that point to L2 tables; entry
 *            qcow2_l1_index(guest) covers 2^(cluster_bits + l2_bits) bytes.
 *  L2 table  one cluster of 2^l2_bits entries, each mapping one guest
 *            cluster (qcow2_l2_index) to a data cluster; 0: unallocated,
 *            read from the backing file or as zeros.
 *  reftable  the refcount table: entry bi (cluster >> rb_bits) points to a
 *            refcount block, 0 when none exists yet.
 *  refcount block  rb: one cluster of 2^rb_bits refcounts, each 2^order
 *            bits wide (h.refcount_order; 1 .. 64 bits), read and written
 *            with qcow2_rc_get/qcow2_rc_set.
 *  table     an L2 table or a refcount block in the caches (qcache: q->l2,
 *            q->rb, a cluster per entry); also L1 and refcount tables.
 *  metadata  the header, the L1 and refcount tables, L2 tables, refcount
 *            blocks, the snapshot table and snapshots' L1 tables; written
 *            with qcow2_pwrite's `meta` (counted apart), and kept clear of
 *            data writes by the overlap guard.
 *  active tree  the L1 table in the header and what it reaches; a
 *            snapshot is a saved L1 table (and an entry in the snapshot
 *            table) whose tree shares clusters with it by refcount.
 *  free later  clusters whose last reference went away wait (pending_free)
 *            until the L2 tables that dropped them are on disk.
 *  refmodel  every refcount of the image in memory, for rewrites that
 *            switch the header in one write (refmodel.h).
 *  backing   the image (qcow2 or raw) unallocated clusters read from.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

#define MAX_BACKING_DEPTH 16

int qcow2_header_update(struct tern_qcow2 *q, struct tern_error *err)
{
	uint8_t buf[QCOW2_V3_HEADER_LEN];
	size_t len = q->h.version == 2 ? QCOW2_V2_HEADER_LEN : QCOW2_V3_HEADER_LEN;
	int r = qcow2_pread(q, buf, len, 0, err);
	if (r < 0)
		return r;
	qcow2_put32(buf + QCOW2_HDR_L1_SIZE, q->h.l1_size);
	qcow2_put64(buf + QCOW2_HDR_L1_OFFSET, q->h.l1_table_offset);
	qcow2_put64(buf + QCOW2_HDR_REFTABLE_OFFSET, q->h.refcount_table_offset);
	qcow2_put32(buf + QCOW2_HDR_REFTABLE_CLUSTERS, q->h.refcount_table_clusters);
	qcow2_put32(buf + QCOW2_HDR_NB_SNAPSHOTS, q->h.nb_snapshots);
	qcow2_put64(buf + QCOW2_HDR_SNAPSHOTS_OFFSET, q->h.snapshots_offset);
	if (q->h.version == 3) {
		qcow2_put64(buf + QCOW2_HDR_INCOMPAT, q->h.incompatible);
		qcow2_put64(buf + QCOW2_HDR_AUTOCLEAR, q->h.autoclear);
	}
	return qcow2_pwrite(q, buf, len, 0, true, err);
}

static bool range_hits(uint64_t off, uint64_t len, uint64_t start, uint64_t bytes)
{
	return bytes && off < start + bytes && start < off + len;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int rebuild_metadata_index(struct tern_qcow2 *q)
{
	uint64_t *t = realloc(q->meta_sorted, (q->l1_size + q->reftable_size + 1) * 8);
	if (!t)
		return -ENOMEM;
	size_t n = 0;
	for (uint64_t i = 0; i < q->l1_size; i++)
		if (q->l1[i] & QCOW2_OFFSET_MASK)
			t[n++] = q->l1[i] & QCOW2_OFFSET_MASK;
	for (uint64_t i = 0; i < q->reftable_size; i++)
		if (q->reftable[i] & ~QCOW2_REFTABLE_RESERVED)
			t[n++] = q->reftable[i] & ~QCOW2_REFTABLE_RESERVED;
	qsort(t, n, 8, cmp_u64);
	q->meta_sorted = t;
	q->meta_count = n;
	q->meta_stale = false;
	return 0;
}

bool qcow2_overlaps_metadata(struct tern_qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t cs = q->cluster_size;
	if (range_hits(off, len, 0, cs) ||
	    range_hits(off, len, q->h.l1_table_offset, (uint64_t)q->l1_size * 8) ||
	    range_hits(off, len, q->h.refcount_table_offset,
		       (uint64_t)q->h.refcount_table_clusters << q->cluster_bits) ||
	    range_hits(off, len, q->h.snapshots_offset, q->nb_snapshots ? q->snapshots_bytes : 0))
		return true;
	for (uint32_t i = 0; i < q->nb_snapshots; i++)
		if (range_hits(off, len, q->snapshots[i].l1_table_offset,
			       (uint64_t)q->snapshots[i].l1_size * 8))
			return true;
	/* L2 tables and refcount blocks: binary search in their sorted offsets. */
	if (q->meta_stale && rebuild_metadata_index(q) < 0)
		return true; /* out of memory: refuse rather than risk it */
	size_t lo = 0, hi = q->meta_count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (q->meta_sorted[mid] + cs <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < q->meta_count && q->meta_sorted[lo] < off + len;
}

uint64_t qcow2_clusters_in_file(struct tern_qcow2 *q)
{
	return (q->file_size + q->cluster_size - 1) >> q->cluster_bits;
}

int qcow2_read_table(struct tern_qcow2 *q, uint64_t off, uint64_t entries, uint64_t **out,
		     struct tern_error *err)
{
	uint64_t *t = malloc((entries ? entries : 1) * 8);
	if (!t)
		return tern_errorf(err, -ENOMEM, "out of memory for a table of %" PRIu64 " entries",
				   entries);
	int r = qcow2_pread(q, t, entries * 8, off, err);
	if (r < 0) {
		free(t);
		return r;
	}
	for (uint64_t i = 0; i < entries; i++)
		t[i] = be64toh(t[i]);
	*out = t;
	return 0;
}

int qcow2_load_metadata(struct tern_qcow2 *q, struct tern_error *err)
{
	q->meta_stale = true;
	q->l1_size = q->h.l1_size;
	int r = qcow2_read_table(q, q->h.l1_table_offset, q->l1_size, &q->l1, err);
	if (r < 0)
		return r;
	q->reftable_size = (uint64_t)q->h.refcount_table_clusters << (q->cluster_bits - 3);
	r = qcow2_read_table(q, q->h.refcount_table_offset, q->reftable_size, &q->reftable, err);
	if (r < 0)
		return r;
	for (uint64_t i = 0; i < q->reftable_size; i++) {
		uint64_t e = q->reftable[i];
		if (e & QCOW2_REFTABLE_RESERVED || (e & (q->cluster_size - 1)) ||
		    (e && (e >= q->file_size || e < q->cluster_size)))
			return tern_errorf(err, -EUCLEAN,
					   "image is corrupt: refcount block %" PRIu64
					   " at invalid offset 0x%" PRIx64, i, e);
	}
	q->nb_snapshots = 0;
	if (q->h.nb_snapshots) {
		/* Read what the table needs: 64 KiB first, more while it runs on. */
		uint64_t avail = q->file_size - q->h.snapshots_offset;
		if (avail > QCOW2_MAX_SNAPSHOT_TABLE_BYTES)
			avail = QCOW2_MAX_SNAPSHOT_TABLE_BYTES;
		size_t len = avail < (64u << 10) ? (size_t)avail : 64u << 10;
		for (;;) {
			uint8_t *buf = malloc(len ? len : 1);
			if (!buf)
				return tern_errorf(err, -ENOMEM, "out of memory reading snapshots");
			r = qcow2_pread(q, buf, len, q->h.snapshots_offset, err);
			if (r == 0)
				r = qcow2_snapshots_parse(buf, len, q->h.nb_snapshots, &q->h,
							  q->file_size, &q->snapshots,
							  &q->snapshots_bytes, err);
			free(buf);
			if (r != -ENODATA || len == avail)
				break;
			len = avail / 4 > len ? len * 4 : (size_t)avail;
		}
		if (r < 0)
			return r;
		q->nb_snapshots = q->h.nb_snapshots;
	}
	return 0;
}

void qcow2_unload_metadata(struct tern_qcow2 *q)
{
	free(q->meta_sorted);
	q->meta_sorted = NULL;
	q->meta_count = 0;
	q->meta_stale = true;
	free(q->l1);
	free(q->reftable);
	qcow2_snapshots_free(q->snapshots, q->nb_snapshots);
	q->l1 = NULL;
	q->reftable = NULL;
	q->snapshots = NULL;
	q->nb_snapshots = 0;
}

static int open_image_fd(int fd, const char *path, const struct tern_qcow2_open_opts *opts,
			 const struct tern_qcow2 *child, struct tern_qcow2 **out,
			 struct tern_error *err);

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
	       : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a file";
}

/* Open a regular file.  O_NONBLOCK so that a FIFO named as an image or a
 * backing file is refused instead of waiting for a writer forever. */
static int open_regular(const char *path, int flags, struct stat *st, struct tern_error *err)
{
	int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return tern_errorf(err, -errno, "opening %s: %s", path, strerror(errno));
	int r = 0;
	if (fstat(fd, st) < 0)
		r = tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		r = tern_errorf(err, -EINVAL,
				"%s is not a regular file (it is %s); qcow2 images and their backing "
				"files must be regular files", path, file_kind(st->st_mode));
	else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		r = tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* A backing file that is one of the images it backs makes the chain a loop. */
static int refuse_loop(const struct tern_qcow2 *child, const char *path, const struct stat *st,
		       struct tern_error *err)
{
	for (const struct tern_qcow2 *c = child; c; c = c->child)
		if (c->dev == st->st_dev && c->ino == st->st_ino)
			return tern_errorf(err, -ELOOP,
					   "backing file %s is %s itself: the backing chain is a loop",
					   path, c->path);
	return 0;
}

static int open_backing(struct tern_qcow2 *q, struct tern_error *err)
{
	char path[PATH_MAX];
	/* Relative to the image's directory, as QEMU combines them. */
	if (q->h.backing_file[0] == '/' || !strchr(q->path, '/')) {
		snprintf(path, sizeof(path), "%s", q->h.backing_file);
	} else {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", q->path);
		snprintf(path, sizeof(path), "%s/%s", dirname(dir), q->h.backing_file);
	}
	if (q->depth >= MAX_BACKING_DEPTH)
		return tern_errorf(err, -ELOOP, "the backing chain of %s is deeper than %d images",
				   q->path, MAX_BACKING_DEPTH);
	struct stat st;
	int fd = open_regular(path, O_RDONLY, &st, err);
	if (fd < 0)
		return fd;
	int r = refuse_loop(q, path, &st, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (q->backing_opened && (r = q->backing_opened(q->backing_opaque, fd, path, err)) < 0) {
		close(fd);
		return r;
	}
	uint8_t magic[4] = { 0 };
	bool is_qcow2 = pread(fd, magic, 4, 0) == 4 && qcow2_be32(magic) == QCOW2_MAGIC &&
			strcmp(q->h.backing_format, "raw") != 0;
	if (!(q->backing_path = strdup(path))) {
		close(fd);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	if (!is_qcow2) {
		q->backing_fd = fd;
		q->backing_size = (uint64_t)st.st_size;
		return 0;
	}
	struct tern_qcow2_open_opts o = { .l2_cache_bytes = 1 << 20,
					  .backing_opened = q->backing_opened,
					  .backing_opaque = q->backing_opaque };
	struct tern_qcow2 *b;
	r = open_image_fd(fd, path, &o, q, &b, err);
	if (r < 0) {
		/* Deeper images' errors name their own files. */
		if (q->depth == 0)
			tern_error_prefix(err, "backing file %s", path);
		return r;
	}
	q->backing = b;
	q->backing_size = b->h.size;
	return 0;
}

static int open_fd(struct tern_qcow2 *q, const struct tern_qcow2_open_opts *opts,
		   struct tern_error *err)
{
	struct stat st;
	if (fstat(q->fd, &st) < 0)
		return tern_errorf(err, -errno, "stat: %s", strerror(errno));
	q->file_size = (uint64_t)st.st_size;
	q->dev = st.st_dev;
	q->ino = st.st_ino;
	int fl = fcntl(q->fd, F_GETFL);
	q->direct = fl >= 0 && (fl & O_DIRECT);
	q->align = opts->direct_align ? opts->direct_align : 4096;
	if (q->align & (q->align - 1) || q->align > (1u << 16))
		return tern_errorf(err, -EINVAL, "direct_align %u is not a power of two up to 64 KiB",
				   q->align);
	q->backing_opened = opts->backing_opened;
	q->backing_opaque = opts->backing_opaque;
	/* The header cluster: read 64 KiB, more only for larger clusters. */
	size_t first = 1u << 16;
	uint8_t *buf = qcow2_alloc_aligned(1u << QCOW2_MAX_CLUSTER_BITS);
	if (!buf)
		return tern_errorf(err, -ENOMEM, "out of memory");
	memset(buf, 0, 1u << QCOW2_MAX_CLUSTER_BITS);
	int r = qcow2_pread(q, buf, first, 0, err);
	uint32_t bits = qcow2_be32(buf + 20);
	if (r == 0 && bits > 16 && bits <= QCOW2_MAX_CLUSTER_BITS) {
		first = 1u << bits;
		r = qcow2_pread(q, buf, first, 0, err);
	}
	if (r == 0)
		r = qcow2_header_parse(buf, q->file_size < first ? (size_t)q->file_size : first,
				       q->file_size, &q->h, err);
	free(buf);
	if (r < 0)
		return r;
	q->cluster_bits = q->h.cluster_bits;
	q->cluster_size = 1ull << q->cluster_bits;
	q->l2_bits = q->cluster_bits - 3;
	q->rb_bits = q->cluster_bits + 3 - q->h.refcount_order;
	q->dbuf_entry = UINT64_MAX;
	if (q->writable && (q->h.incompatible & QCOW2_INCOMPAT_CORRUPT) && !opts->skip_repair)
		return tern_errorf(err, -EUCLEAN,
				   "image is marked corrupt; repair it with `tern-img check -r all`");
	r = qcow2_load_metadata(q, err);
	/* Cheap, from the tables just loaded: nothing is written into an image
	 * whose L1 entries or tables point at each other.  check -r all
	 * (skip_repair) opens it to say what it can and cannot repair. */
	if (r == 0 && q->writable && !opts->skip_repair)
		r = qcow2_signal_corruption(q, qcow2_guard_layout(q, err), err);
	if (r < 0)
		return r;
	size_t l2_bytes = opts->l2_cache_bytes;
	if (!l2_bytes) {
		l2_bytes = (size_t)((8ull << 30) >> (q->cluster_bits - 3));
		if (l2_bytes < (1u << 20))
			l2_bytes = 1u << 20;
	}
	size_t rb_bytes = opts->refcount_cache_bytes ? opts->refcount_cache_bytes : l2_bytes / 4;
	r = qcache_init(&q->l2, q, l2_bytes >> q->cluster_bits, err);
	if (r == 0)
		r = qcache_init(&q->rb, q, rb_bytes >> q->cluster_bits, err);
	if (r < 0)
		return r;
	q->l2.before = &q->rb;
	q->cbuf = qcow2_alloc_aligned(2 * q->cluster_size + 4096);
	q->dbuf = qcow2_alloc_aligned(q->cluster_size);
	if (!q->cbuf || !q->dbuf)
		return tern_errorf(err, -ENOMEM, "out of memory");
	if (q->h.backing_file[0] && !opts->no_backing) {
		r = open_backing(q, err);
		if (r < 0)
			return r;
	}
	if (q->writable && q->h.version == 3 && (q->h.autoclear & ~QCOW2_AUTOCLEAR_KNOWN)) {
		/* Bitmaps tern does not keep up to date: say so on disk. */
		q->h.autoclear &= QCOW2_AUTOCLEAR_KNOWN;
		q->bitmaps_cleared = true;
		r = qcow2_header_update(q, err);
		if (r == 0)
			r = qcow2_sync(q, err);
		if (r < 0)
			return r;
	}
	if (q->writable && (q->h.incompatible & QCOW2_INCOMPAT_DIRTY) && !opts->skip_repair) {
		/* Left dirty with lazy refcounts: rebuild them before any write. */
		struct tern_qcow2_check res = { 0 };
		r = tern_qcow2_check(q, TERN_QCOW2_REPAIR_ALL, &res, err);
		if (r == 0 && res.corruptions > res.corruptions_fixed)
			r = qcow2_signal_corruption(
				q, tern_errorf(err, -EUCLEAN,
					       "image is corrupt: rebuilding its refcounts (it was "
					       "left dirty) found damage that cannot be repaired"), err);
		if (r < 0)
			return r;
		q->h.incompatible &= ~QCOW2_INCOMPAT_DIRTY;
		r = qcow2_header_update(q, err);
		if (r == 0)
			r = qcow2_sync(q, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Takes fd: it is closed when the open fails, and by tern_qcow2_close. */
static int open_image_fd(int fd, const char *path, const struct tern_qcow2_open_opts *opts,
			 const struct tern_qcow2 *child, struct tern_qcow2 **out,
			 struct tern_error *err)
{
	struct tern_qcow2 *q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	q->fd = fd;
	q->backing_fd = -1;
	q->writable = opts->writable;
	q->depth = child ? child->depth + 1 : 0;
	q->child = child;
	q->path = strdup(path);
	struct stat st;
	int r = 0;
	if (!q->path)
		r = tern_errorf(err, -ENOMEM, "out of memory");
	else if (fstat(fd, &st) < 0)
		r = tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = tern_errorf(err, -EINVAL,
				"%s is not a regular file (it is %s); qcow2 images and their backing "
				"files must be regular files", path, file_kind(st.st_mode));
	if (r == 0)
		r = refuse_loop(child, path, &st, err);
	if (r == 0)
		r = open_fd(q, opts, err);
	if (r < 0) {
		q->writable = false; /* nothing to write back */
		tern_qcow2_close(q, NULL);
		return r;
	}
	*out = q;
	return 0;
}

static int open_image(const char *path, const struct tern_qcow2_open_opts *opts,
		      const struct tern_qcow2 *child, struct tern_qcow2 **out, struct tern_error *err)
{
	struct stat st;
	int fd = open_regular(path, opts->writable ? O_RDWR : O_RDONLY, &st, err);
	return fd < 0 ? fd : open_image_fd(fd, path, opts, child, out, err);
}

int tern_qcow2_open(const char *path, const struct tern_qcow2_open_opts *opts,
		    struct tern_qcow2 **out, struct tern_error *err)
{
	static const struct tern_qcow2_open_opts defaults;
	return open_image(path, opts ? opts : &defaults, NULL, out, err);
}

int tern_qcow2_open_fd(int fd, const char *path, const struct tern_qcow2_open_opts *opts,
		       struct tern_qcow2 **out, struct tern_error *err)
{
	static const struct tern_qcow2_open_opts defaults;
	if (!opts)
		opts = &defaults;
	if (!path)
		path = "(image fd)";
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	if (opts->writable && (fl & O_ACCMODE) != O_RDWR)
		return tern_errorf(err, -EBADF, "%s: the descriptor is not open for reading and "
				   "writing; open it O_RDWR to write to the image", path);
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup < 0)
		return tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	return open_image_fd(dup, path, opts, NULL, out, err);
}

static int flush_all(struct tern_qcow2 *q, struct tern_error *err)
{
	/* Refcount increments, then the L2 tables that rely on them (the L2
	 * cache flushes the refcount cache first), then the releases that were
	 * waiting for those L2 tables, then everything synced. */
	int r = qcache_flush(&q->l2, err);
	if (r == 0 && q->nfrees) {
		r = qcow2_apply_frees(q, err);
	}
	if (r == 0)
		r = qcache_flush(&q->rb, err);
	if (r == 0)
		r = qcow2_sync(q, err);
	return r;
}

int tern_qcow2_flush(struct tern_qcow2 *q, struct tern_error *err)
{
	if (!q->writable)
		return 0;
	int r = flush_all(q, err);
	return qcow2_signal_corruption(q, r, err);
}

int tern_qcow2_close(struct tern_qcow2 *q, struct tern_error *err)
{
	if (!q)
		return 0;
	int r = 0;
	if (q->writable && q->fd >= 0 && q->l2.e)
		r = tern_qcow2_flush(q, err);
	if (q->backing)
		tern_qcow2_close(q->backing, NULL);
	if (q->backing_fd >= 0)
		close(q->backing_fd);
	qcache_destroy(&q->l2);
	qcache_destroy(&q->rb);
	qcow2_unload_metadata(q);
	free(q->frees);
	free(q->cbuf);
	free(q->dbuf);
	free(q->path);
	free(q->backing_path);
	if (q->fd >= 0)
		close(q->fd);
	free(q);
	return r;
}

void tern_qcow2_get_info(struct tern_qcow2 *q, struct tern_qcow2_info *info)
{
	memset(info, 0, sizeof(*info));
	struct stat st;
	info->version = q->h.version;
	info->size = q->h.size;
	info->cluster_size = q->cluster_size;
	info->refcount_bits = 1u << q->h.refcount_order;
	info->file_size = q->file_size;
	if (fstat(q->fd, &st) == 0)
		info->allocated = (uint64_t)st.st_blocks * 512;
	info->nb_snapshots = q->nb_snapshots;
	info->dirty = q->h.incompatible & QCOW2_INCOMPAT_DIRTY;
	info->corrupt = q->h.incompatible & QCOW2_INCOMPAT_CORRUPT;
	info->lazy_refcounts = q->h.compatible & QCOW2_COMPAT_LAZY_REFCOUNTS;
	info->zstd = q->h.compression_type == QCOW2_COMPRESSION_ZSTD;
	snprintf(info->backing_file, sizeof(info->backing_file), "%s", q->h.backing_file);
	snprintf(info->backing_format, sizeof(info->backing_format), "%s", q->h.backing_format);
}

struct tern_qcow2 *tern_qcow2_backing(struct tern_qcow2 *q, const char **path, uint64_t *size)
{
	*path = q->backing_path;
	*size = q->backing_size;
	return q->backing;
}

void tern_qcow2_get_stats(struct tern_qcow2 *q, struct tern_qcow2_stats *stats)
{
	*stats = q->stats;
	stats->l2_hits = q->l2.hits;
	stats->l2_misses = q->l2.misses;
	stats->refcount_hits = q->rb.hits;
	stats->refcount_misses = q->rb.misses;
}
