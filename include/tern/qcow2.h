/*
 * libtern's qcow2 engine: create, open, read, write, discard, internal
 * snapshots, check and repair of qcow2 images that qemu-img reads and
 * writes too.
 *
 * Metadata goes through two caches (L2 tables, refcount blocks) whose get
 * and put are O(1): a hash from table offset to entry and CLOCK
 * replacement.  Writes are ordered so that a crash at any point leaves at
 * worst leaked clusters: refcounts reach the disk before the L2 entries that
 * use them, L2 tables before the L1 entries that point to them, and freed
 * clusters are released only after nothing points to them.  Snapshot
 * create, apply and delete build their new metadata in free clusters and
 * switch to it with one header write, so they are atomic.
 *
 * Not supported (refused with a clear error): encryption, external data
 * files, extended L2 entries (subclusters), writing compressed clusters.
 * Persistent bitmaps are not kept up: writing to an image that has them
 * clears their autoclear bit, as the format prescribes.
 *
 * Corruption found through a handle open for writing (-EUCLEAN: tables
 * that overlap, a table or cluster changed in place whose refcount is not
 * 1) sets the header's corrupt bit, as QEMU does; from then on neither
 * tern nor QEMU writes to the image until check with REPAIR_ALL repairs
 * it.  Images and backing files must be regular files; loops of backing
 * files and chains deeper than 16 are refused.
 *
 * Threads: a handle is not thread-safe.  One thread at a time may call
 * into it, and a change of thread needs a happens-before (a mutex, a
 * join).  A running VM's disk is served by its I/O thread
 * (include/tern/block.h), which takes the block device's lock around
 * every call; the main thread calls the snapshot and check functions on
 * tern_block_qcow2()'s handle only after tern_block_queue_drain(), which
 * takes the same lock, so guest requests wait while it works.
 */
#ifndef TERN_QCOW2_H
#define TERN_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

struct tern_qcow2;

struct tern_qcow2_create_opts {
	uint64_t size;		   /* virtual disk size in bytes */
	unsigned cluster_bits;	   /* 9..21; 0 means 16 (64 KiB) */
	unsigned refcount_bits;	   /* 1, 2, 4, ..., 64; 0 means 16 */
	bool preallocate_metadata; /* allocate every L2 table and data cluster */
	bool lazy_refcounts;	   /* set the compatible bit (tern still writes them) */
	bool zstd;		   /* compression type zstd instead of deflate */
	const char *backing_file;  /* NULL for none */
	const char *backing_format;
};

int tern_qcow2_create(const char *path, const struct tern_qcow2_create_opts *opts,
		      struct tern_error *err);

struct tern_qcow2_open_opts {
	bool writable;
	size_t l2_cache_bytes;	     /* 0: enough for 8 GiB of disk, at least 1 MiB */
	size_t refcount_cache_bytes; /* 0: a quarter of the L2 cache */
	bool no_backing;	     /* do not open the backing file: unallocated
				      * clusters read as zeros (inspection only) */
	bool skip_repair;	     /* open a dirty image without repairing it */
	/* When the image's descriptor is O_DIRECT: the alignment its memory,
	 * offsets and lengths need (0: 4096).  Unaligned I/O is bounced. */
	unsigned direct_align;
	/* Called with each backing file's descriptor as the engine opens it
	 * (the block layer locks it as QEMU does); an error fails the open. */
	int (*backing_opened)(void *opaque, int fd, const char *path, struct tern_error *err);
	void *backing_opaque;
};

int tern_qcow2_open(const char *path, const struct tern_qcow2_open_opts *opts,
		    struct tern_qcow2 **out, struct tern_error *err);
/* The image open on `fd` (its mode must allow opts->writable; O_DIRECT is
 * honoured).  The handle keeps a duplicate of fd, so locks on its open file
 * description stay with it; the caller still owns fd.  `path` names the
 * image in messages and locates a relative backing file (NULL: the current
 * directory). */
int tern_qcow2_open_fd(int fd, const char *path, const struct tern_qcow2_open_opts *opts,
		       struct tern_qcow2 **out, struct tern_error *err);
/* Writes back all metadata, syncs, clears the dirty bit; frees q always. */
int tern_qcow2_close(struct tern_qcow2 *q, struct tern_error *err);

int tern_qcow2_read(struct tern_qcow2 *q, void *buf, uint64_t offset, size_t len,
		    struct tern_error *err);
int tern_qcow2_write(struct tern_qcow2 *q, const void *buf, uint64_t offset, size_t len,
		     struct tern_error *err);
/* The same for iovecs: as many bytes as they hold, at `offset`. */
struct iovec;
int tern_qcow2_readv(struct tern_qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset,
		     struct tern_error *err);
int tern_qcow2_writev(struct tern_qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err);
/* Reads of the range return zeros afterwards; whole clusters become zero
 * clusters (v3) without data. */
int tern_qcow2_write_zeroes(struct tern_qcow2 *q, uint64_t offset, uint64_t len,
			    struct tern_error *err);
/* Release whole clusters in the range: they read as zeros (or, in a v2
 * image with a backing file, from the backing file). */
int tern_qcow2_discard(struct tern_qcow2 *q, uint64_t offset, uint64_t len,
		       struct tern_error *err);
int tern_qcow2_flush(struct tern_qcow2 *q, struct tern_error *err);

struct tern_qcow2_info {
	uint32_t version;
	uint64_t size;
	uint64_t cluster_size;
	unsigned refcount_bits;
	uint64_t file_size;	/* apparent size */
	uint64_t allocated;	/* bytes the host file system has allocated */
	uint32_t nb_snapshots;
	bool dirty, corrupt, lazy_refcounts, zstd;
	char backing_file[1024];
	char backing_format[64];
};
void tern_qcow2_get_info(struct tern_qcow2 *q, struct tern_qcow2_info *info);
/* The backing file this handle opened: *path is its path (NULL when none
 * was opened: no backing file, or no_backing) and *size its size; returns
 * its qcow2 handle, or NULL for a raw file. */
struct tern_qcow2 *tern_qcow2_backing(struct tern_qcow2 *q, const char **path, uint64_t *size);

enum tern_qcow2_status {
	TERN_QCOW2_UNALLOCATED, /* reads from the backing file, or zeros */
	TERN_QCOW2_ZERO,	/* zero cluster */
	TERN_QCOW2_DATA,	/* data at host_offset */
	TERN_QCOW2_COMPRESSED,
};
/* The status of the clusters from `offset`: how many bytes share it (*len)
 * and, for data, the host offset of `offset`. */
int tern_qcow2_block_status(struct tern_qcow2 *q, uint64_t offset, uint64_t *len,
			    enum tern_qcow2_status *status, uint64_t *host_offset,
			    struct tern_error *err);

struct tern_qcow2_snapshot_info {
	char id[128];
	char name[1024];
	uint64_t vm_state_size;
	uint64_t disk_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t icount;
};
uint32_t tern_qcow2_snapshot_count(struct tern_qcow2 *q);
int tern_qcow2_snapshot_get(struct tern_qcow2 *q, uint32_t index,
			    struct tern_qcow2_snapshot_info *info);
/* `name` may be a snapshot's name or id, as in qemu-img. */
int tern_qcow2_snapshot_create(struct tern_qcow2 *q, const char *name, struct tern_error *err);
int tern_qcow2_snapshot_apply(struct tern_qcow2 *q, const char *name, struct tern_error *err);
int tern_qcow2_snapshot_delete(struct tern_qcow2 *q, const char *name, struct tern_error *err);

enum tern_qcow2_repair {
	TERN_QCOW2_REPAIR_NONE,
	TERN_QCOW2_REPAIR_LEAKS,
	TERN_QCOW2_REPAIR_ALL,
};
struct tern_qcow2_check {
	uint64_t corruptions, leaks, check_errors;
	uint64_t corruptions_fixed, leaks_fixed;
	/* Clusters used as two things at once (two tables, or a table and
	 * data): counted in corruptions, never repaired; with any, a repair
	 * changes nothing but the corrupt bit, which it sets. */
	uint64_t overlaps;
	uint64_t allocated_clusters, total_clusters, fragmented_clusters, compressed_clusters;
	uint64_t image_end_offset;
	/* Called for each problem found, with a one-line description. */
	void (*report)(void *opaque, const char *line);
	void *opaque;
};
int tern_qcow2_check(struct tern_qcow2 *q, enum tern_qcow2_repair repair,
		     struct tern_qcow2_check *result, struct tern_error *err);

/* I/O accounting since open: fdatasync calls and bytes written. */
struct tern_qcow2_stats {
	uint64_t syncs, bytes_written, metadata_bytes_written;
	uint64_t l2_hits, l2_misses, refcount_hits, refcount_misses;
};
void tern_qcow2_get_stats(struct tern_qcow2 *q, struct tern_qcow2_stats *stats);

#endif
