/*
 * What lib/block's files share: request checks, accounting, bounce
 * buffers, the backends' openers and QEMU-compatible image locks.
 */
#ifndef TERN_BLOCK_INT_H
#define TERN_BLOCK_INT_H

#include <pthread.h>

#include "tern/block.h"

struct tern_block_counters {
	pthread_mutex_t lock;
	struct tern_block_stats s;
	uint64_t last_done_ns; /* 0: nothing completed yet */
};

uint64_t block_now_ns(void);

/* Total bytes of an iovec array; -EINVAL when it overflows or iovcnt < 0. */
int block_iov_len(const struct iovec *iov, int iovcnt, uint64_t *len);
/* Is the request well formed for b?  On -EINVAL it is counted as invalid. */
int block_check(struct tern_block *b, enum tern_block_op op, uint64_t offset, uint64_t len,
		struct tern_error *err);
/* Count a finished request (ret: its result) started at start_ns. */
void block_account(struct tern_block *b, enum tern_block_op op, uint64_t offset, uint64_t len,
		   uint64_t start_ns, int ret);

/* cache=none on a raw image: must these iovecs go through a bounce buffer? */
bool block_needs_bounce(const struct tern_block *b, const struct iovec *iov, int iovcnt);
/* An aligned buffer of len bytes (for writes filled from iov); NULL: no memory. */
void *block_bounce_alloc(const struct tern_block *b, const struct iovec *iov, int iovcnt,
			 uint64_t len, bool fill);
void block_bounce_copy_out(void *buf, const struct iovec *iov, int iovcnt, uint64_t len);

/* Backends: fill b->ops, b->priv, b->size from the open b->fd. */
int block_raw_open(struct tern_block *b, struct tern_error *err);
int block_qcow2_open(struct tern_block *b, struct tern_error *err);
bool block_is_raw(const struct tern_block *b);

/* QEMU's image locks (block/file-posix.c's permission bytes) on fd's open
 * file description: a writer's or a reader's, of a qcow2 or a raw image.
 * Released by block_unlock or by closing the last descriptor of it. */
int block_lock(int fd, const char *path, bool writable, bool qcow2, struct tern_error *err);
void block_unlock(int fd);
/* For the qcow2 engine's backing_opened hook: a reader's locks. */
int block_lock_backing(void *opaque, int fd, const char *path, struct tern_error *err);

#endif
