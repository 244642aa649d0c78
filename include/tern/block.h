/*
 * Block backends behind one ops table: raw files and block devices, and
 * libtern's qcow2 engine, as the disk a virtio-blk device serves.
 *
 * A `struct tern_block` is an open image: its size, whether it is
 * writable, its cache mode, and its backend's ops.  Every request goes
 * through the tern_block_* functions below, which check it (sector
 * alignment, the disk's end, writability), bounce unaligned buffers for
 * cache=none, time it and count it, then call the backend.
 *
 * Requests: offsets and lengths are multiples of 512 bytes (a sector) and
 * lie inside the disk; anything else is refused with -EINVAL and counted
 * as invalid, as QEMU counts it.  With cache=none (O_DIRECT) the host also
 * wants memory, offsets and lengths aligned to its direct-I/O alignment
 * (`align`, 512 or 4096 on most hosts): buffers that are not aligned are
 * copied through an aligned bounce buffer; offsets and lengths that are
 * sector-aligned but not `align`-aligned are refused on raw images (a
 * read-modify-write there would race with the guest's other requests: show
 * the guest a logical block size of `align` instead) and handled by the
 * qcow2 engine, which is single-threaded.
 *
 * Locking: an image is locked as QEMU locks it (OFD locks on bytes 100+
 * and 200+ of the file, block/file-posix.c), so a second writer, be it
 * tern, QEMU or qemu-img, is refused with a clear message, and so is tern
 * when QEMU holds the image.  Backing files get a reader's locks.
 *
 * Threads: a tern_block may be called from any thread; calls into one
 * qcow2 image are serialized by a lock (the engine is single-threaded),
 * raw ones run in parallel.  A tern_block_queue runs requests on the
 * disk's I/O thread, with io_uring or a thread pool behind one interface.
 */
#ifndef TERN_BLOCK_H
#define TERN_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tern/error.h"

#define TERN_BLOCK_SECTOR 512u

enum tern_block_format {
	TERN_BLOCK_FORMAT_AUTO, /* qcow2 when the file starts with its magic, else raw */
	TERN_BLOCK_FORMAT_RAW,
	TERN_BLOCK_FORMAT_QCOW2,
};

enum tern_block_cache {
	TERN_BLOCK_CACHE_WRITEBACK, /* the host page cache; flush = fdatasync */
	TERN_BLOCK_CACHE_NONE,	    /* O_DIRECT; flush still fdatasyncs */
};

struct tern_block_opts {
	const char *path; /* the image; with from_fd, its name in messages and
			   * where a relative backing file is looked for */
	/* Use the already-open `fd` (CPR, fd passing) instead of opening path.
	 * The block device keeps a duplicate; the fd's mode must allow
	 * `writable`, and its O_DIRECT flag (shared with the caller's fd) is
	 * set or cleared to match `cache`. */
	bool from_fd;
	int fd;
	bool writable;
	enum tern_block_format format;
	enum tern_block_cache cache;
	/* Take no locks and check none, as qemu-img -U (read-only only). */
	bool force_share;
	/* cache=none: the alignment to assume (0: ask the host). */
	unsigned direct_align;
};

/* QEMU's query-blockstats counters (BlockDeviceStats), same meanings:
 * write zeroes count as writes, discards as unmaps; times are from
 * request start to completion. */
struct tern_block_stats {
	uint64_t rd_bytes, wr_bytes, unmap_bytes;
	uint64_t rd_operations, wr_operations, flush_operations, unmap_operations;
	uint64_t rd_total_time_ns, wr_total_time_ns, flush_total_time_ns, unmap_total_time_ns;
	uint64_t wr_highest_offset; /* the end of the furthest write */
	uint64_t failed_rd_operations, failed_wr_operations, failed_flush_operations,
		failed_unmap_operations;
	uint64_t invalid_rd_operations, invalid_wr_operations, invalid_flush_operations,
		invalid_unmap_operations;
	int64_t idle_time_ns; /* since the last completed request; -1: none yet */
};

struct tern_block;

/* What a backend implements.  The tern_block_* wrappers have checked the
 * request and bounced unaligned buffers before these are called. */
struct tern_block_ops {
	const char *name; /* "raw", "qcow2" */
	int (*preadv)(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err);
	int (*pwritev)(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		       struct tern_error *err);
	int (*flush)(struct tern_block *b, struct tern_error *err);
	int (*write_zeroes)(struct tern_block *b, uint64_t offset, uint64_t len, bool may_unmap,
			    struct tern_error *err);
	int (*discard)(struct tern_block *b, uint64_t offset, uint64_t len, struct tern_error *err);
	int (*close)(struct tern_block *b, struct tern_error *err);
};

struct tern_block {
	const struct tern_block_ops *ops;
	void *priv;	  /* the backend's */
	int fd;		  /* the image file, O_DIRECT for cache=none */
	char *path;
	uint64_t size;	  /* bytes */
	bool writable;
	enum tern_block_cache cache;
	bool is_device;	  /* a block device rather than a file */
	unsigned align;	  /* O_DIRECT alignment (1 with cache=writeback) */
	struct tern_block_counters *counters; /* behind tern_block_get_stats */
};

/* Open an image: locks it, picks the backend, probes size and alignment. */
int tern_block_open(const struct tern_block_opts *opts, struct tern_block **out,
		    struct tern_error *err);
/* Flushes (when writable), unlocks and frees b, always.  Destroy b's
 * queues first. */
int tern_block_close(struct tern_block *b, struct tern_error *err);

static inline uint64_t tern_block_size(const struct tern_block *b)
{
	return b->size;
}

int tern_block_preadv(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err);
int tern_block_pwritev(struct tern_block *b, const struct iovec *iov, int iovcnt,
		       uint64_t offset, struct tern_error *err);
/* Everything completed before the call is on stable storage afterwards. */
int tern_block_flush(struct tern_block *b, struct tern_error *err);
/* The range reads as zeros afterwards; may_unmap lets it free the space. */
int tern_block_write_zeroes(struct tern_block *b, uint64_t offset, uint64_t len, bool may_unmap,
			    struct tern_error *err);
/* A hint: the range's contents are no longer needed.  Afterwards each
 * sector reads as zeros (raw images on file systems that punch holes,
 * whole qcow2 clusters) or as before (what could not be released). */
int tern_block_discard(struct tern_block *b, uint64_t offset, uint64_t len,
		       struct tern_error *err);

void tern_block_get_stats(struct tern_block *b, struct tern_block_stats *out);
/* The qcow2 engine behind b (NULL for raw), for snapshots and check: call
 * it only between tern_block_qcow2_lock and _unlock, with b's queues
 * drained (tern_block_queue_drain), so no guest request is inside. */
struct tern_qcow2 *tern_block_qcow2(struct tern_block *b);
void tern_block_qcow2_lock(struct tern_block *b);
void tern_block_qcow2_unlock(struct tern_block *b);

/* ------------------------------------------------------------- I/O queue */

enum tern_block_op {
	TERN_BLOCK_OP_READ,
	TERN_BLOCK_OP_WRITE,
	TERN_BLOCK_OP_FLUSH,
	TERN_BLOCK_OP_WRITE_ZEROES,
	TERN_BLOCK_OP_DISCARD,
};

/* One request.  The submitter owns it and its iovecs until `done` runs. */
struct tern_block_req {
	enum tern_block_op op;
	uint64_t offset;
	uint64_t len;		  /* write zeroes, discard; reads and writes: the iovecs' */
	const struct iovec *iov;
	int iovcnt;
	bool may_unmap;		  /* write zeroes */
	/* Runs on the disk's I/O thread, one completion at a time; ret is 0
	 * or a negative errno. */
	void (*done)(struct tern_block_req *req, int ret);
	void *opaque;
	/* The queue's while the request is in flight. */
	struct tern_block_req *next;
	uint64_t start_ns;
	void *bounce;
	struct iovec bounce_iov;
	size_t done_bytes;
};

enum tern_block_engine {
	TERN_BLOCK_ENGINE_DEFAULT, /* chosen by bench/block_backend.c: see docs/block.md */
	TERN_BLOCK_ENGINE_URING,   /* io_uring (liburing); falls back to threads if refused */
	TERN_BLOCK_ENGINE_THREADS, /* preadv/pwritev in worker threads */
};

struct tern_block_queue_opts {
	enum tern_block_engine engine;
	unsigned depth;	  /* requests in flight at most (0: 128) */
	unsigned threads; /* workers for the thread pool (0: 8) */
	/* An fd for the I/O thread to watch (a guest's ioeventfd; -1 or 0
	 * with no `ready`: none).  `ready` runs on the I/O thread each time it
	 * is readable; it must read the fd, and may submit requests. */
	int watch_fd;
	void (*ready)(void *opaque);
	void *ready_opaque;
};

struct tern_block_queue;

/* Start the disk's I/O thread (and its workers). */
int tern_block_queue_create(struct tern_block *b, const struct tern_block_queue_opts *opts,
			    struct tern_block_queue **out, struct tern_error *err);
/* Queue n requests; from any thread, the I/O thread's own callbacks too.
 * Never blocks on I/O. */
void tern_block_submit(struct tern_block_queue *q, struct tern_block_req **reqs, unsigned n);
/* Wait until every request submitted so far has completed (and its
 * callback returned).  Not from the I/O thread. */
void tern_block_queue_drain(struct tern_block_queue *q);
/* Drain, stop the threads, free q (not the block device). */
void tern_block_queue_destroy(struct tern_block_queue *q);
/* The engine actually running ("io_uring" or "threads"). */
const char *tern_block_queue_engine(const struct tern_block_queue *q);
#endif
