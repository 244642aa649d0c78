/*
 * The qcow2 engine's internal state and the functions its files share.
 */
#ifndef TERN_QCOW2_IMAGE_H
#define TERN_QCOW2_IMAGE_H

#include <sys/types.h>
#include <sys/uio.h>

#include "format.h"
#include "tern/qcow2.h"

/* ---------------------------------------------------------------- caches */

struct qcache_entry {
	uint64_t offset; /* 0: empty */
	int32_t next;	 /* hash chain */
	uint32_t refs;
	uint8_t dirty;
	uint8_t referenced; /* CLOCK's second-chance bit */
};

struct qcache {
	struct tern_qcow2 *q;
	size_t n;
	size_t table_size;
	uint8_t *mem;
	struct qcache_entry *e;
	int32_t *bucket;
	uint64_t bucket_mask;
	size_t hand;
	size_t ndirty;
	/* Dirty entries of `before` reach the disk, synced, ahead of ours. */
	struct qcache *before;
	uint64_t hits, misses;
};

int qcache_init(struct qcache *c, struct tern_qcow2 *q, size_t entries, struct tern_error *err);
void qcache_destroy(struct qcache *c);
/* The table at `offset`, pinned until qcache_put.  With `read` false the
 * table is not read from disk (the caller fills all of it). */
int qcache_get(struct qcache *c, uint64_t offset, bool read, uint8_t **table,
	       struct tern_error *err);
void qcache_put(struct qcache *c, uint8_t *table);
void qcache_dirty(struct qcache *c, uint8_t *table);
/* Write every dirty table (sorted, coalesced), then sync. */
int qcache_flush(struct qcache *c, struct tern_error *err);
/* Forget a table (freed, or rewritten behind the cache). */
void qcache_drop(struct qcache *c, uint64_t offset);
void qcache_clear(struct qcache *c);

/* ------------------------------------------------------------ snapshots */

struct qcow2_snapshot {
	uint64_t l1_table_offset;
	uint32_t l1_size;
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint32_t vm_state_size;
	uint64_t vm_state_size_large, disk_size, icount;
	uint32_t extra_size; /* bytes of extra data kept */
	uint8_t extra[QCOW2_MAX_SNAPSHOT_EXTRA];
};

/* Parse the snapshot table (validated against the file and the header);
 * -ENODATA when `len` bytes end inside it. */
int qcow2_snapshots_parse(const uint8_t *buf, size_t len, uint32_t count,
			  const struct qcow2_header *h, uint64_t file_size,
			  struct qcow2_snapshot **out, size_t *table_bytes, struct tern_error *err);
size_t qcow2_snapshots_size(const struct qcow2_snapshot *s, uint32_t count);
void qcow2_snapshots_build(const struct qcow2_snapshot *s, uint32_t count, uint8_t *buf);
void qcow2_snapshots_free(struct qcow2_snapshot *s, uint32_t count);

/* ---------------------------------------------------------------- image */

struct pending_free {
	uint64_t cluster, count;
};

struct tern_qcow2 {
	int fd;
	bool writable;
	bool bitmaps_cleared;
	bool unsynced; /* written since the last fdatasync */
	bool direct;   /* the fd is O_DIRECT: unaligned I/O is bounced */
	unsigned align; /* O_DIRECT alignment of memory, offsets and lengths */
	char *path;
	uint64_t file_size;
	struct qcow2_header h;
	uint64_t cluster_size;
	unsigned cluster_bits;
	unsigned l2_bits;	 /* log2 entries per L2 table */
	unsigned rb_bits;	 /* log2 refcounts per refcount block */
	uint64_t *l1;		 /* host byte order */
	uint32_t l1_size;
	uint64_t *reftable;	 /* host byte order */
	uint64_t reftable_size;	 /* entries */
	struct qcache l2;
	struct qcache rb;
	struct qcow2_snapshot *snapshots;
	uint32_t nb_snapshots;
	size_t snapshots_bytes;
	uint64_t free_hint;	 /* no free cluster below this index */
	/* Offsets of every L2 table and refcount block, sorted, for the
	 * overlap guard; rebuilt when an L1 or refcount-table entry changes. */
	uint64_t *meta_sorted;
	size_t meta_count;
	bool meta_stale;
	struct pending_free *frees;
	size_t nfrees, frees_cap;
	/* The backing file: a qcow2 image or a raw file. */
	struct tern_qcow2 *backing;
	char *backing_path; /* as opened */
	int backing_fd;
	uint64_t backing_size;
	/* One decompressed cluster. */
	uint8_t *cbuf, *dbuf;
	uint64_t dbuf_entry;
	struct tern_qcow2_stats stats;
	int depth; /* of the backing chain */
	bool corrupt; /* corruption found: no more writes through this handle */
	dev_t dev;    /* the file, to find loops of backing files */
	ino_t ino;
	const struct tern_qcow2 *child; /* while opening: the image this backs */
	int (*backing_opened)(void *opaque, int fd, const char *path, struct tern_error *err);
	void *backing_opaque;
};

/* Corruption guards (guard.c). */
/* r is -EUCLEAN: refuse further writes, set the corrupt bit of a writable
 * image, and tell the person how to repair it.  Returns r. */
int qcow2_signal_corruption(struct tern_qcow2 *q, int r, struct tern_error *err);
/* -EUCLEAN once corruption was found through this handle. */
int qcow2_refuse_corrupt(struct tern_qcow2 *q, struct tern_error *err);
/* At open for writing: tables clear of each other, L1 entries clear of them. */
int qcow2_guard_layout(struct tern_qcow2 *q, struct tern_error *err);
/* The table or cluster at `off`, flagged COPIED, must have refcount 1. */
int qcow2_guard_sole(struct tern_qcow2 *q, uint64_t off, const char *what, struct tern_error *err);

/* A position in an iovec array; tmp has room for as many entries, for
 * slices of it (hostio.c). */
struct qiov {
	const struct iovec *iov;
	int cnt;
	size_t skip; /* bytes of iov[0] already consumed */
	struct iovec *tmp;
};
void qiov_init(struct qiov *c, const struct iovec *iov, int cnt, struct iovec *tmp);
void qiov_advance(struct qiov *c, size_t n);
/* The next n bytes as iovecs in out (room for c->cnt); returns how many. */
int qiov_slice(const struct qiov *c, size_t n, struct iovec *out);
void qiov_gather(const struct qiov *c, void *buf, size_t n);
void qiov_scatter(const struct qiov *c, const void *buf, size_t n);
void qiov_zero(const struct qiov *c, size_t n);
/* 4 KiB-aligned, so that O_DIRECT I/O from it needs no bounce. */
void *qcow2_alloc_aligned(size_t len);

/* I/O that counts; on an O_DIRECT fd, unaligned requests are bounced. */
int qcow2_preadv(struct tern_qcow2 *q, const struct qiov *c, size_t n, uint64_t off,
		 struct tern_error *err);
int qcow2_pwritev(struct tern_qcow2 *q, const struct qiov *c, size_t n, uint64_t off, bool meta,
		  struct tern_error *err);
/* Plain preadv of a (buffered) fd: the raw backing file. */
int qcow2_fd_preadv(int fd, const struct qiov *c, size_t n, uint64_t off, struct tern_error *err);
int qcow2_pread(struct tern_qcow2 *q, void *buf, size_t len, uint64_t off,
		struct tern_error *err);
int qcow2_pwrite(struct tern_qcow2 *q, const void *buf, size_t len, uint64_t off, bool meta,
		 struct tern_error *err);
int qcow2_sync(struct tern_qcow2 *q, struct tern_error *err);
/* Write header bytes [off, off+len) from the parsed fields (one sector). */
int qcow2_header_update(struct tern_qcow2 *q, struct tern_error *err);

/* Refcounts through the cache. */
int qcow2_refcount(struct tern_qcow2 *q, uint64_t cluster, uint64_t *out,
		   struct tern_error *err);
int qcow2_refcount_add(struct tern_qcow2 *q, uint64_t cluster, int64_t delta,
		       struct tern_error *err);
/* Allocate `n` contiguous clusters with refcount 1; returns the host offset. */
int qcow2_alloc_clusters(struct tern_qcow2 *q, uint64_t n, uint64_t *offset,
			 struct tern_error *err);
/* Release later, once nothing on disk points to the clusters. */
int qcow2_free_later(struct tern_qcow2 *q, uint64_t offset, uint64_t n, struct tern_error *err);
/* Free the clusters a (compressed or normal) L2 entry holds, later. */
int qcow2_free_entry_later(struct tern_qcow2 *q, uint64_t l2_entry, struct tern_error *err);
int qcow2_apply_frees(struct tern_qcow2 *q, struct tern_error *err);

/* A table of big-endian u64 entries (L1, refcount table), in host order;
 * the caller frees it. */
int qcow2_read_table(struct tern_qcow2 *q, uint64_t off, uint64_t entries, uint64_t **out,
		     struct tern_error *err);

/* Metadata loading: L1, refcount table, snapshots. */
int qcow2_load_metadata(struct tern_qcow2 *q, struct tern_error *err);
void qcow2_unload_metadata(struct tern_qcow2 *q);

/* An L1 or refcount-table entry changed: the overlap guard re-reads them. */
static inline void qcow2_metadata_changed(struct tern_qcow2 *q)
{
	q->meta_stale = true;
}

/* Is [off, off+len) clear of every table tern knows of?  Guards data writes
 * against images whose L2 entries point into metadata. */
bool qcow2_overlaps_metadata(struct tern_qcow2 *q, uint64_t off, uint64_t len);

/* Compressed clusters. */
int qcow2_compressed_range(struct tern_qcow2 *q, uint64_t l2_entry, uint64_t *host,
			   uint64_t *bytes);
int qcow2_decompress(struct tern_qcow2 *q, uint64_t l2_entry, struct tern_error *err);

/* The lowest cluster that nothing uses, beyond every table and data. */
uint64_t qcow2_clusters_in_file(struct tern_qcow2 *q);

static inline uint64_t qcow2_l1_index(struct tern_qcow2 *q, uint64_t guest)
{
	return guest >> (q->cluster_bits + q->l2_bits);
}
static inline uint64_t qcow2_l2_index(struct tern_qcow2 *q, uint64_t guest)
{
	return (guest >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
}

#endif
