/*
 * The engine's host I/O: counted reads and writes of flat buffers and of
 * iovecs, and sync.
 *
 * On an O_DIRECT descriptor (cache=none) every request must be aligned in
 * memory, offset and length.  The engine's hot buffers (cache tables, the
 * scratch cluster, the decompression buffers) are allocated aligned; what
 * is not aligned (header and L1 entry updates, compressed clusters, guest
 * buffers, clusters smaller than the alignment) goes through a bounce
 * buffer, read-modify-write for writes.  That is safe only because the
 * engine is its file's one writer and runs one call at a time (qcow2.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "image.h"

void qiov_init(struct qiov *c, const struct iovec *iov, int cnt, struct iovec *tmp)
{
	c->iov = iov;
	c->cnt = cnt;
	c->skip = 0;
	c->tmp = tmp;
}

void qiov_advance(struct qiov *c, size_t n)
{
	while (c->cnt > 0 && (n || c->iov->iov_len == c->skip)) {
		size_t avail = c->iov->iov_len - c->skip;
		if (n < avail) {
			c->skip += n;
			return;
		}
		n -= avail;
		c->iov++;
		c->cnt--;
		c->skip = 0;
	}
}

int qiov_slice(const struct qiov *c, size_t n, struct iovec *out)
{
	int k = 0;
	size_t skip = c->skip;
	for (int i = 0; i < c->cnt && n; i++) {
		size_t avail = c->iov[i].iov_len - skip;
		if (!avail) {
			skip = 0;
			continue;
		}
		size_t take = avail < n ? avail : n;
		out[k].iov_base = (uint8_t *)c->iov[i].iov_base + skip;
		out[k].iov_len = take;
		k++;
		n -= take;
		skip = 0;
	}
	return k;
}

/* Calls fn(part, len, arg) over the next n bytes of the cursor. */
static void qiov_each(const struct qiov *c, size_t n, void (*fn)(void *, size_t, void *),
		      void *arg)
{
	size_t skip = c->skip;
	for (int i = 0; i < c->cnt && n; i++) {
		size_t take = c->iov[i].iov_len - skip < n ? c->iov[i].iov_len - skip : n;
		fn((uint8_t *)c->iov[i].iov_base + skip, take, arg);
		n -= take;
		skip = 0;
	}
}

static void gather_one(void *part, size_t len, void *arg)
{
	uint8_t **p = arg;
	memcpy(*p, part, len);
	*p += len;
}

static void scatter_one(void *part, size_t len, void *arg)
{
	const uint8_t **p = arg;
	memcpy(part, *p, len);
	*p += len;
}

static void zero_one(void *part, size_t len, void *arg)
{
	(void)arg;
	memset(part, 0, len);
}

void qiov_gather(const struct qiov *c, void *buf, size_t n)
{
	uint8_t *p = buf;
	qiov_each(c, n, gather_one, &p);
}

void qiov_scatter(const struct qiov *c, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	qiov_each(c, n, scatter_one, &p);
}

void qiov_zero(const struct qiov *c, size_t n)
{
	qiov_each(c, n, zero_one, NULL);
}

void *qcow2_alloc_aligned(size_t len)
{
	void *p;
	return posix_memalign(&p, 4096, len ? len : 1) ? NULL : p;
}

/* preadv of n bytes from the cursor until done; past the end of the file
 * (sparse or truncated) reads zeros. */
int qcow2_fd_preadv(int fd, const struct qiov *c, size_t n, uint64_t off, struct tern_error *err)
{
	struct qiov cur = *c;
	size_t done = 0;
	while (done < n) {
		int k = qiov_slice(&cur, n - done, cur.tmp);
		ssize_t got = preadv(fd, cur.tmp, k > IOV_MAX ? IOV_MAX : k, (off_t)(off + done));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return tern_errorf(err, -errno, "reading %zu bytes at 0x%" PRIx64 ": %s", n,
					   off, strerror(errno));
		}
		if (got == 0) {
			qiov_zero(&cur, n - done);
			break;
		}
		done += (size_t)got;
		qiov_advance(&cur, (size_t)got);
	}
	return 0;
}

static int fd_pwritev(int fd, const struct qiov *c, size_t n, uint64_t off, struct tern_error *err)
{
	struct qiov cur = *c;
	size_t done = 0;
	while (done < n) {
		int k = qiov_slice(&cur, n - done, cur.tmp);
		ssize_t put = pwritev(fd, cur.tmp, k > IOV_MAX ? IOV_MAX : k, (off_t)(off + done));
		if (put < 0) {
			if (errno == EINTR)
				continue;
			return tern_errorf(err, -errno, "writing %zu bytes at 0x%" PRIx64 ": %s", n,
					   off, strerror(errno));
		}
		if (put == 0)
			return tern_errorf(err, -EIO, "writing %zu bytes at 0x%" PRIx64 ": no progress",
					   n, off);
		done += (size_t)put;
		qiov_advance(&cur, (size_t)put);
	}
	return 0;
}

/* Whether n bytes from the cursor at `off` may go to an O_DIRECT fd as they are. */
static bool direct_ok(struct tern_qcow2 *q, const struct qiov *c, size_t n, uint64_t off)
{
	uint64_t a = q->align - 1;
	if (!q->direct)
		return true;
	if ((off | n) & a)
		return false;
	size_t skip = c->skip;
	for (int i = 0; i < c->cnt && n; i++) {
		size_t take = c->iov[i].iov_len - skip < n ? c->iov[i].iov_len - skip : n;
		if (((uintptr_t)c->iov[i].iov_base + skip) & a || take & a)
			return false;
		n -= take;
		skip = 0;
	}
	return true;
}

/* An aligned bounce buffer covering [off, off+n): *start is its file offset. */
static uint8_t *bounce_for(struct tern_qcow2 *q, uint64_t off, size_t n, uint64_t *start,
			   size_t *len)
{
	*start = off & ~(uint64_t)(q->align - 1);
	uint64_t end = (off + n + q->align - 1) & ~(uint64_t)(q->align - 1);
	*len = (size_t)(end - *start);
	return qcow2_alloc_aligned(*len);
}

static int read_flat(int fd, void *buf, size_t n, uint64_t off, struct tern_error *err)
{
	struct iovec v = { buf, n }, tmp;
	struct qiov c;
	qiov_init(&c, &v, 1, &tmp);
	return qcow2_fd_preadv(fd, &c, n, off, err);
}

int qcow2_preadv(struct tern_qcow2 *q, const struct qiov *c, size_t n, uint64_t off,
		 struct tern_error *err)
{
	if (direct_ok(q, c, n, off))
		return qcow2_fd_preadv(q->fd, c, n, off, err);
	uint64_t start;
	size_t len;
	uint8_t *b = bounce_for(q, off, n, &start, &len);
	if (!b)
		return tern_errorf(err, -ENOMEM, "out of memory for a bounce buffer");
	int r = read_flat(q->fd, b, len, start, err);
	if (r == 0)
		qiov_scatter(c, b + (off - start), n);
	free(b);
	return r;
}

int qcow2_pwritev(struct tern_qcow2 *q, const struct qiov *c, size_t n, uint64_t off, bool meta,
		  struct tern_error *err)
{
	int r;
	if (direct_ok(q, c, n, off)) {
		r = fd_pwritev(q->fd, c, n, off, err);
	} else {
		uint64_t start;
		size_t len;
		uint8_t *b = bounce_for(q, off, n, &start, &len);
		if (!b)
			return tern_errorf(err, -ENOMEM, "out of memory for a bounce buffer");
		/* The partial blocks at either end keep what the file holds. */
		r = 0;
		if (start < off)
			r = read_flat(q->fd, b, q->align, start, err);
		if (r == 0 && off + n < start + len && (len > q->align || start == off))
			r = read_flat(q->fd, b + len - q->align, q->align, start + len - q->align, err);
		if (r == 0) {
			qiov_gather(c, b + (off - start), n);
			struct iovec v = { b, len }, tmp;
			struct qiov bc;
			qiov_init(&bc, &v, 1, &tmp);
			r = fd_pwritev(q->fd, &bc, len, start, err);
		}
		free(b);
	}
	if (r < 0)
		return r;
	q->unsynced = true;
	q->stats.bytes_written += n;
	if (meta)
		q->stats.metadata_bytes_written += n;
	if (off + n > q->file_size)
		q->file_size = off + n;
	return 0;
}

int qcow2_pread(struct tern_qcow2 *q, void *buf, size_t len, uint64_t off, struct tern_error *err)
{
	struct iovec v = { buf, len }, tmp;
	struct qiov c;
	qiov_init(&c, &v, 1, &tmp);
	return qcow2_preadv(q, &c, len, off, err);
}

int qcow2_pwrite(struct tern_qcow2 *q, const void *buf, size_t len, uint64_t off, bool meta,
		 struct tern_error *err)
{
	struct iovec v = { (void *)buf, len }, tmp;
	struct qiov c;
	qiov_init(&c, &v, 1, &tmp);
	return qcow2_pwritev(q, &c, len, off, meta, err);
}

int qcow2_sync(struct tern_qcow2 *q, struct tern_error *err)
{
	if (!q->unsynced)
		return 0;
	q->unsynced = false;
	q->stats.syncs++;
	if (fdatasync(q->fd) < 0)
		return tern_errorf(err, -errno, "fdatasync: %s", strerror(errno));
	return 0;
}
