/*
 * Opening an image behind the ops table, and the checks, bounce buffers
 * and accounting every request goes through on its way to a backend.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block_int.h"
#include "tern/qcow2.h"

uint64_t block_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int block_iov_len(const struct iovec *iov, int iovcnt, uint64_t *len)
{
	uint64_t n = 0;
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > UINT64_MAX - n)
			return -EINVAL;
		n += iov[i].iov_len;
	}
	*len = n;
	return 0;
}

static const char *op_name(enum tern_block_op op)
{
	static const char *const names[] = { "read", "write", "flush", "write zeroes", "discard" };
	return (unsigned)op < 5 ? names[op] : "unknown request";
}

static void count_invalid(struct tern_block *b, enum tern_block_op op)
{
	struct tern_block_counters *c = b->counters;
	pthread_mutex_lock(&c->lock);
	switch (op) {
	case TERN_BLOCK_OP_READ:
		c->s.invalid_rd_operations++;
		break;
	case TERN_BLOCK_OP_FLUSH:
		c->s.invalid_flush_operations++;
		break;
	case TERN_BLOCK_OP_DISCARD:
		c->s.invalid_unmap_operations++;
		break;
	default:
		c->s.invalid_wr_operations++;
	}
	pthread_mutex_unlock(&c->lock);
}

int block_check(struct tern_block *b, enum tern_block_op op, uint64_t offset, uint64_t len,
		struct tern_error *err)
{
	int r = 0;
	if ((unsigned)op > TERN_BLOCK_OP_DISCARD)
		r = tern_errorf(err, -EINVAL, "%s: unknown request type %d", b->path, (int)op);
	else if (op != TERN_BLOCK_OP_READ && !b->writable)
		r = tern_errorf(err, -EROFS, "%s: %s refused: the image is open read-only", b->path,
				op_name(op));
	else if (op == TERN_BLOCK_OP_FLUSH)
		return 0;
	else if ((offset | len) % TERN_BLOCK_SECTOR)
		r = tern_errorf(err, -EINVAL,
				"%s: %s of 0x%" PRIx64 " bytes at 0x%" PRIx64 " is not sector-aligned "
				"(offsets and lengths are multiples of 512)", b->path, op_name(op), len,
				offset);
	else if (offset > b->size || len > b->size - offset)
		r = tern_errorf(err, -EINVAL,
				"%s: %s of 0x%" PRIx64 " bytes at 0x%" PRIx64 " goes past the disk's "
				"end (0x%" PRIx64 ")", b->path, op_name(op), len, offset, b->size);
	else if (block_is_raw(b) && b->align > TERN_BLOCK_SECTOR && (offset | len) % b->align)
		r = tern_errorf(err, -EINVAL,
				"%s: %s at 0x%" PRIx64 "+0x%" PRIx64 " is not aligned to the host's "
				"%u-byte direct I/O blocks (cache=none); give the guest a logical "
				"block size of %u, or use cache=writeback", b->path, op_name(op),
				offset, len, b->align, b->align);
	if (r == -EINVAL)
		count_invalid(b, op);
	return r;
}

void block_account(struct tern_block *b, enum tern_block_op op, uint64_t offset, uint64_t len,
		   uint64_t start_ns, int ret)
{
	struct tern_block_counters *c = b->counters;
	uint64_t now = block_now_ns(), ns = now - start_ns;
	struct tern_block_stats *s = &c->s;
	pthread_mutex_lock(&c->lock);
	c->last_done_ns = now;
	switch (op) {
	case TERN_BLOCK_OP_READ:
		if (ret < 0) {
			s->failed_rd_operations++;
			break;
		}
		s->rd_operations++;
		s->rd_bytes += len;
		s->rd_total_time_ns += ns;
		break;
	case TERN_BLOCK_OP_WRITE:
	case TERN_BLOCK_OP_WRITE_ZEROES:
		if (ret < 0) {
			s->failed_wr_operations++;
			break;
		}
		s->wr_operations++;
		s->wr_bytes += len;
		s->wr_total_time_ns += ns;
		if (offset + len > s->wr_highest_offset)
			s->wr_highest_offset = offset + len;
		break;
	case TERN_BLOCK_OP_FLUSH:
		if (ret < 0) {
			s->failed_flush_operations++;
			break;
		}
		s->flush_operations++;
		s->flush_total_time_ns += ns;
		break;
	case TERN_BLOCK_OP_DISCARD:
		if (ret < 0) {
			s->failed_unmap_operations++;
			break;
		}
		s->unmap_operations++;
		s->unmap_bytes += len;
		s->unmap_total_time_ns += ns;
		break;
	}
	pthread_mutex_unlock(&c->lock);
}

void tern_block_get_stats(struct tern_block *b, struct tern_block_stats *out)
{
	struct tern_block_counters *c = b->counters;
	pthread_mutex_lock(&c->lock);
	*out = c->s;
	out->idle_time_ns = c->last_done_ns ? (int64_t)(block_now_ns() - c->last_done_ns) : -1;
	pthread_mutex_unlock(&c->lock);
}

bool block_needs_bounce(const struct tern_block *b, const struct iovec *iov, int iovcnt)
{
	if (b->cache != TERN_BLOCK_CACHE_NONE || !block_is_raw(b))
		return false;
	for (int i = 0; i < iovcnt; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (b->align - 1))
			return true;
	return false;
}

void *block_bounce_alloc(const struct tern_block *b, const struct iovec *iov, int iovcnt,
			 uint64_t len, bool fill)
{
	void *p;
	if (len > SIZE_MAX || posix_memalign(&p, b->align < 4096 ? 4096 : b->align,
					     len ? (size_t)len : 1))
		return NULL;
	uint8_t *at = p;
	for (int i = 0; fill && i < iovcnt; i++) {
		memcpy(at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	return p;
}

void block_bounce_copy_out(void *buf, const struct iovec *iov, int iovcnt, uint64_t len)
{
	const uint8_t *at = buf;
	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : (size_t)len;
		memcpy(iov[i].iov_base, at, n);
		at += n;
		len -= n;
	}
}

/* A read or a write through the wrappers: checked, bounced, counted. */
static int rw(struct tern_block *b, bool write, const struct iovec *iov, int iovcnt,
	      uint64_t offset, struct tern_error *err)
{
	enum tern_block_op op = write ? TERN_BLOCK_OP_WRITE : TERN_BLOCK_OP_READ;
	uint64_t t0 = block_now_ns(), len = 0;
	int r = block_iov_len(iov, iovcnt, &len);
	if (r < 0) {
		count_invalid(b, op);
		return tern_errorf(err, r, "%s: bad iovec array", b->path);
	}
	r = block_check(b, op, offset, len, err);
	if (r < 0)
		return r;
	if (block_needs_bounce(b, iov, iovcnt)) {
		void *buf = block_bounce_alloc(b, iov, iovcnt, len, write);
		if (!buf)
			return tern_errorf(err, -ENOMEM, "%s: no memory for a bounce buffer",
					   b->path);
		struct iovec v = { buf, (size_t)len };
		r = write ? b->ops->pwritev(b, &v, 1, offset, err) : b->ops->preadv(b, &v, 1, offset, err);
		if (r == 0 && !write)
			block_bounce_copy_out(buf, iov, iovcnt, len);
		free(buf);
	} else {
		r = write ? b->ops->pwritev(b, iov, iovcnt, offset, err)
			  : b->ops->preadv(b, iov, iovcnt, offset, err);
	}
	block_account(b, op, offset, len, t0, r);
	return r;
}

int tern_block_preadv(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		      struct tern_error *err)
{
	return rw(b, false, iov, iovcnt, offset, err);
}

int tern_block_pwritev(struct tern_block *b, const struct iovec *iov, int iovcnt,
		       uint64_t offset, struct tern_error *err)
{
	return rw(b, true, iov, iovcnt, offset, err);
}

int tern_block_flush(struct tern_block *b, struct tern_error *err)
{
	uint64_t t0 = block_now_ns();
	if (!b->writable)
		return 0; /* nothing was written: nothing to make stable */
	int r = b->ops->flush(b, err);
	block_account(b, TERN_BLOCK_OP_FLUSH, 0, 0, t0, r);
	return r;
}

int tern_block_write_zeroes(struct tern_block *b, uint64_t offset, uint64_t len, bool may_unmap,
			    struct tern_error *err)
{
	uint64_t t0 = block_now_ns();
	int r = block_check(b, TERN_BLOCK_OP_WRITE_ZEROES, offset, len, err);
	if (r < 0)
		return r;
	r = b->ops->write_zeroes(b, offset, len, may_unmap, err);
	block_account(b, TERN_BLOCK_OP_WRITE_ZEROES, offset, len, t0, r);
	return r;
}

int tern_block_discard(struct tern_block *b, uint64_t offset, uint64_t len,
		       struct tern_error *err)
{
	uint64_t t0 = block_now_ns();
	int r = block_check(b, TERN_BLOCK_OP_DISCARD, offset, len, err);
	if (r < 0)
		return r;
	r = b->ops->discard(b, offset, len, err);
	block_account(b, TERN_BLOCK_OP_DISCARD, offset, len, t0, r);
	return r;
}

/* ------------------------------------------------------------------ open */

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
	       : S_ISSOCK(m) ? "a socket" : "not a file";
}

/* The descriptor b uses: its own open of the path, or a duplicate of
 * opts->fd whose O_DIRECT flag is set to match the cache mode. */
static int get_fd(const struct tern_block_opts *o, const char *path, struct tern_error *err)
{
	bool direct = o->cache == TERN_BLOCK_CACHE_NONE;
	int fd;
	if (o->from_fd) {
		int fl = fcntl(o->fd, F_GETFL);
		if (fl < 0)
			return tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
		if (o->writable && (fl & O_ACCMODE) != O_RDWR)
			return tern_errorf(err, -EBADF, "%s: the descriptor is not open for reading "
					   "and writing; open it O_RDWR to write to the image", path);
		fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
		if (!!(fl & O_DIRECT) != direct &&
		    fcntl(fd, F_SETFL, direct ? fl | O_DIRECT : fl & ~O_DIRECT) < 0) {
			int e = errno;
			close(fd);
			return tern_errorf(err, -e, "%s: cannot %s O_DIRECT (cache=%s): %s", path,
					   direct ? "set" : "clear", direct ? "none" : "writeback",
					   strerror(e));
		}
		return fd;
	}
	/* O_NONBLOCK: a FIFO is refused below rather than waited on. */
	fd = open(path, (o->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
				(direct ? O_DIRECT : 0));
	if (fd < 0 && errno == EINVAL && direct)
		return tern_errorf(err, -EINVAL, "%s: the file system does not support O_DIRECT; "
				   "use cache=writeback", path);
	if (fd < 0)
		return tern_errorf(err, -errno, "opening %s: %s", path, strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* O_DIRECT's alignment for memory, offsets and lengths; 4096 when the host
 * does not say (safe everywhere). */
static unsigned probe_align(int fd, const struct stat *st)
{
	unsigned a = 0;
	if (S_ISBLK(st->st_mode)) {
		int ss = 0;
		if (ioctl(fd, BLKSSZGET, &ss) == 0 && ss > 0)
			a = (unsigned)ss;
	} else {
		struct statx sx;
		if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
		    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align)
			a = sx.stx_dio_mem_align > sx.stx_dio_offset_align ? sx.stx_dio_mem_align
									    : sx.stx_dio_offset_align;
	}
	if (!a || a & (a - 1) || a > 65536)
		a = 4096;
	return a < TERN_BLOCK_SECTOR ? TERN_BLOCK_SECTOR : a;
}

static int probe_format(struct tern_block *b, enum tern_block_format *fmt, struct tern_error *err)
{
	void *buf;
	if (posix_memalign(&buf, 4096, 4096))
		return tern_errorf(err, -ENOMEM, "out of memory");
	ssize_t n = pread(b->fd, buf, 4096, 0);
	int e = errno;
	bool qcow2 = n >= 4 && memcmp(buf, "QFI\xfb", 4) == 0;
	free(buf);
	if (n < 0)
		return tern_errorf(err, -e, "%s: reading its first sector: %s", b->path, strerror(e));
	*fmt = qcow2 ? TERN_BLOCK_FORMAT_QCOW2 : TERN_BLOCK_FORMAT_RAW;
	return 0;
}

int tern_block_open(const struct tern_block_opts *o, struct tern_block **out,
		    struct tern_error *err)
{
	const char *path = o->path ? o->path : "(image fd)";
	if (o->force_share && o->writable)
		return tern_errorf(err, -EINVAL, "%s: force-share is for read-only opens", path);
	if (o->direct_align && (o->direct_align & (o->direct_align - 1) ||
				o->direct_align < TERN_BLOCK_SECTOR || o->direct_align > 65536))
		return tern_errorf(err, -EINVAL, "%s: direct_align %u is not a power of two "
				   "from 512 to 65536", path, o->direct_align);
	struct tern_block *b = calloc(1, sizeof(*b));
	struct tern_block_counters *c = calloc(1, sizeof(*c));
	char *p = strdup(path);
	if (!b || !c || !p) {
		free(b);
		free(c);
		free(p);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	b->counters = c;
	b->path = p;
	b->writable = o->writable;
	b->cache = o->cache;
	b->align = 1;
	b->fd = get_fd(o, path, err);
	int r = b->fd < 0 ? b->fd : 0;
	bool locked = false;
	struct stat st;
	if (r == 0 && fstat(b->fd, &st) < 0)
		r = tern_errorf(err, -errno, "%s: %s", path, strerror(errno));
	if (r == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		r = tern_errorf(err, -EINVAL, "%s is not a disk image (it is %s): give a regular "
				"file or a block device", path, file_kind(st.st_mode));
	enum tern_block_format fmt = o->format;
	if (r == 0 && fmt == TERN_BLOCK_FORMAT_AUTO)
		r = probe_format(b, &fmt, err);
	/* Locked before anything but the magic is read. */
	if (r == 0 && !o->force_share &&
	    (r = block_lock(b->fd, path, o->writable, fmt == TERN_BLOCK_FORMAT_QCOW2, err)) == 0)
		locked = true;
	b->is_device = r == 0 && S_ISBLK(st.st_mode);
	if (r == 0 && b->cache == TERN_BLOCK_CACHE_NONE)
		b->align = o->direct_align ? o->direct_align : probe_align(b->fd, &st);
	if (r == 0)
		r = fmt == TERN_BLOCK_FORMAT_QCOW2 ? block_qcow2_open(b, err) : block_raw_open(b, err);
	if (r < 0) {
		if (locked)
			block_unlock(b->fd);
		if (b->fd >= 0)
			close(b->fd);
		pthread_mutex_destroy(&c->lock);
		free(c);
		free(p);
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

int tern_block_close(struct tern_block *b, struct tern_error *err)
{
	if (!b)
		return 0;
	int r = 0;
	if (b->writable)
		r = b->ops->flush(b, err);
	int c = b->ops->close(b, r < 0 ? NULL : err);
	if (r == 0)
		r = c;
	block_unlock(b->fd);
	close(b->fd);
	pthread_mutex_destroy(&b->counters->lock);
	free(b->counters);
	free(b->path);
	free(b);
	return r;
}
