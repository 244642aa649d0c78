/*
 * Raw images: regular files and block devices, read and written in place
 * with preadv/pwritev.  Zeroes and discards use what the host offers
 * (fallocate's ZERO_RANGE and PUNCH_HOLE on files, BLKZEROOUT and
 * BLKDISCARD on devices) and remember what it refused, falling back to
 * writing zeros (write zeroes) or to doing nothing (discard, a hint).
 * Calls may come from many threads at once: nothing here is shared but
 * the descriptor and those flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block_int.h"

struct raw {
	atomic_bool no_zero_range, no_punch, no_zeroout, no_discard;
};

static int raw_io(struct tern_block *b, bool write, const struct iovec *iov, int iovcnt,
		  uint64_t offset, struct tern_error *err)
{
	struct iovec local[64], *v = local;
	if (iovcnt > 64 && !(v = malloc((size_t)iovcnt * sizeof(*v))))
		return tern_errorf(err, -ENOMEM, "out of memory");
	memcpy(v, iov, (size_t)iovcnt * sizeof(*v));
	int r = 0, left = iovcnt;
	struct iovec *at = v;
	while (left > 0) {
		if (!at->iov_len) {
			at++;
			left--;
			continue;
		}
		int k = left > IOV_MAX ? IOV_MAX : left;
		ssize_t n = write ? pwritev(b->fd, at, k, (off_t)offset) : preadv(b->fd, at, k, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = tern_errorf(err, -errno, "%s: %s at 0x%" PRIx64 ": %s", b->path,
					write ? "writing" : "reading", offset, strerror(errno));
			break;
		}
		if (n == 0) {
			if (write) {
				r = tern_errorf(err, -EIO, "%s: writing at 0x%" PRIx64 " made no progress",
						b->path, offset);
				break;
			}
			/* The file shrank under us: what is gone reads as zeros. */
			for (; left > 0; at++, left--)
				memset(at->iov_base, 0, at->iov_len);
			break;
		}
		offset += (uint64_t)n;
		for (size_t done = (size_t)n; done;) {
			size_t t = at->iov_len < done ? at->iov_len : done;
			at->iov_base = (uint8_t *)at->iov_base + t;
			at->iov_len -= t;
			done -= t;
			if (!at->iov_len) {
				at++;
				left--;
			}
		}
	}
	if (v != local)
		free(v);
	return r;
}

static int raw_preadv(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err)
{
	return raw_io(b, false, iov, iovcnt, offset, err);
}

static int raw_pwritev(struct tern_block *b, const struct iovec *iov, int iovcnt,
		       uint64_t offset, struct tern_error *err)
{
	return raw_io(b, true, iov, iovcnt, offset, err);
}

static int raw_flush(struct tern_block *b, struct tern_error *err)
{
	if (fdatasync(b->fd) < 0)
		return tern_errorf(err, -errno, "%s: fdatasync: %s", b->path, strerror(errno));
	return 0;
}

static bool unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOTTY || e == EINVAL || e == ENOSYS;
}

/* fallocate(mode), remembering in *off that the host refused it. */
static int try_fallocate(struct tern_block *b, atomic_bool *off, int mode, uint64_t offset,
			 uint64_t len)
{
	if (atomic_load_explicit(off, memory_order_relaxed))
		return -EOPNOTSUPP;
	if (fallocate(b->fd, mode, (off_t)offset, (off_t)len) == 0)
		return 0;
	int e = errno;
	if (unsupported(e))
		atomic_store_explicit(off, true, memory_order_relaxed);
	return -e;
}

static int try_ioctl(struct tern_block *b, atomic_bool *off, unsigned long req, uint64_t offset,
		     uint64_t len)
{
	if (atomic_load_explicit(off, memory_order_relaxed))
		return -EOPNOTSUPP;
	uint64_t range[2] = { offset, len };
	if (ioctl(b->fd, req, range) == 0)
		return 0;
	int e = errno;
	if (unsupported(e))
		atomic_store_explicit(off, true, memory_order_relaxed);
	return -e;
}

static int write_zero_buffers(struct tern_block *b, uint64_t offset, uint64_t len,
			      struct tern_error *err)
{
	size_t chunk = len < (1u << 20) ? (size_t)len : 1u << 20;
	void *z;
	if (posix_memalign(&z, 4096, chunk ? chunk : 1))
		return tern_errorf(err, -ENOMEM, "out of memory");
	memset(z, 0, chunk);
	int r = 0;
	while (r == 0 && len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		struct iovec v = { z, n };
		r = raw_io(b, true, &v, 1, offset, err);
		offset += n;
		len -= n;
	}
	free(z);
	return r;
}

static int raw_write_zeroes(struct tern_block *b, uint64_t offset, uint64_t len, bool may_unmap,
			    struct tern_error *err)
{
	struct raw *s = b->priv;
	int r = -EOPNOTSUPP;
	if (b->is_device) {
		r = try_ioctl(b, &s->no_zeroout, BLKZEROOUT, offset, len);
	} else {
		if (may_unmap)
			r = try_fallocate(b, &s->no_punch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  offset, len);
		if (r < 0 && unsupported(-r))
			r = try_fallocate(b, &s->no_zero_range,
					  FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len);
	}
	if (r < 0 && unsupported(-r))
		return write_zero_buffers(b, offset, len, err);
	if (r < 0)
		return tern_errorf(err, r, "%s: writing zeroes at 0x%" PRIx64 ": %s", b->path,
				   offset, strerror(-r));
	return 0;
}

static int raw_discard(struct tern_block *b, uint64_t offset, uint64_t len,
		       struct tern_error *err)
{
	struct raw *s = b->priv;
	int r = b->is_device ? try_ioctl(b, &s->no_discard, BLKDISCARD, offset, len)
			     : try_fallocate(b, &s->no_punch,
					     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
	if (r < 0 && !unsupported(-r))
		return tern_errorf(err, r, "%s: discarding at 0x%" PRIx64 ": %s", b->path, offset,
				   strerror(-r));
	return 0; /* a hint the host could not take is still answered */
}

static int raw_close(struct tern_block *b, struct tern_error *err)
{
	(void)err;
	free(b->priv);
	b->priv = NULL;
	return 0;
}

static const struct tern_block_ops raw_ops = {
	.name = "raw",
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.write_zeroes = raw_write_zeroes,
	.discard = raw_discard,
	.close = raw_close,
};

bool block_is_raw(const struct tern_block *b)
{
	return b->ops == &raw_ops;
}

int block_raw_open(struct tern_block *b, struct tern_error *err)
{
	struct stat st;
	if (fstat(b->fd, &st) < 0)
		return tern_errorf(err, -errno, "%s: %s", b->path, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes = 0;
		if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0)
			return tern_errorf(err, -errno, "%s: BLKGETSIZE64: %s", b->path,
					   strerror(errno));
		b->size = bytes;
		if (b->writable) {
			int ro = 0;
			if (ioctl(b->fd, BLKROGET, &ro) == 0 && ro)
				return tern_errorf(err, -EACCES, "%s: the block device is read-only "
						   "(blockdev --setro); open it read-only", b->path);
		}
	} else {
		b->size = (uint64_t)st.st_size;
	}
	b->priv = calloc(1, sizeof(struct raw));
	if (!b->priv)
		return tern_errorf(err, -ENOMEM, "out of memory");
	b->ops = &raw_ops;
	return 0;
}
