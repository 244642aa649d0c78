/*
 * The io_uring engine: the disk's I/O thread owns one ring.  Raw reads,
 * writes and flushes become readv / writev / fsync(DATASYNC) submissions
 * on the image's registered descriptor (with cache=writeback, page-cache
 * hits and buffered writes are served inline first: try_nowait); qcow2
 * requests (the engine is synchronous), zeroes and discards run on the
 * I/O thread itself.  The ring also polls the kick eventfd (submissions
 * from other threads, sent only while the thread sleeps) and the watched
 * fd, so one wait covers everything.
 */
#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue_int.h"

int uring_setup(struct tern_block_queue *q)
{
	int r = io_uring_queue_init(q->depth + 4, &q->ring, 0);
	if (r < 0)
		return r;
	/* A registered file spares the kernel a descriptor look-up per request. */
	q->fixed_file = io_uring_register_files(&q->ring, &q->b->fd, 1) == 0;
	return 0;
}

void uring_teardown(struct tern_block_queue *q)
{
	io_uring_queue_exit(&q->ring);
}

static struct io_uring_sqe *sqe_of(struct tern_block_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

static void arm_poll(struct tern_block_queue *q, int fd, void *tag)
{
	struct io_uring_sqe *sqe = sqe_of(q);
	if (!sqe)
		return; /* cannot happen: the ring has room beyond depth */
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data(sqe, tag);
}

/*
 * cache=writeback: a read the page cache holds, or a write it takes
 * without waiting, is done at once with RWF_NOWAIT, sparing the ring's
 * round trip.  File systems that cannot start a buffered write without
 * blocking (ext4 refuses RWF_NOWAIT for them) would have io_uring hand
 * each write to a worker thread, five times slower than the copy itself
 * (docs/block.md); those writes are done here, plainly.  The price: while
 * the kernel throttles this writer for dirty pages, the disk's other
 * requests wait too.  Anything else (EAGAIN, a short transfer) goes to
 * the ring whole.
 */
static bool try_nowait(struct tern_block_queue *q, struct tern_block_req *req)
{
	bool write = req->op == TERN_BLOCK_OP_WRITE;
	if (q->b->cache != TERN_BLOCK_CACHE_WRITEBACK || (!write && q->no_nowait_read))
		return false;
	if (write && q->no_nowait_write) {
		queue_req_end(q, req, queue_req_exec(q, req));
		return true;
	}
	ssize_t n = write ? pwritev2(q->b->fd, req->iov, req->iovcnt, (off_t)req->offset, RWF_NOWAIT)
			  : preadv2(q->b->fd, req->iov, req->iovcnt, (off_t)req->offset, RWF_NOWAIT);
	if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
		if (write) {
			q->no_nowait_write = true;
			queue_req_end(q, req, queue_req_exec(q, req));
			return true;
		}
		q->no_nowait_read = true;
	}
	if (n < 0 || (uint64_t)n < req->len)
		return false;
	queue_req_end(q, req, 0);
	return true;
}

/* Start one begun request: on the ring, or here. */
static void start(struct tern_block_queue *q, struct tern_block_req *req)
{
	if (block_is_raw(q->b) && (req->op == TERN_BLOCK_OP_READ || req->op == TERN_BLOCK_OP_WRITE) &&
	    try_nowait(q, req))
		return;
	bool ring_op = block_is_raw(q->b) &&
		       (req->op == TERN_BLOCK_OP_READ || req->op == TERN_BLOCK_OP_WRITE ||
			req->op == TERN_BLOCK_OP_FLUSH);
	struct io_uring_sqe *sqe = ring_op ? sqe_of(q) : NULL;
	if (!sqe) {
		queue_req_end(q, req, queue_req_exec(q, req));
		return;
	}
	int fd = q->fixed_file ? 0 : q->b->fd;
	const struct iovec *iov = req->bounce ? &req->bounce_iov : req->iov;
	unsigned cnt = req->bounce ? 1 : (unsigned)req->iovcnt;
	if (req->op == TERN_BLOCK_OP_READ)
		io_uring_prep_readv(sqe, fd, iov, cnt, req->offset);
	else if (req->op == TERN_BLOCK_OP_WRITE)
		io_uring_prep_writev(sqe, fd, iov, cnt, req->offset);
	else
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	if (q->fixed_file)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, req);
	q->inflight++;
}

static void complete(struct tern_block_queue *q, struct tern_block_req *req, int res)
{
	q->inflight--;
	int ret = res < 0 ? res : 0;
	if (res == -EAGAIN || res == -EINTR ||
	    (res >= 0 && req->op != TERN_BLOCK_OP_FLUSH && (uint64_t)res < req->len))
		ret = queue_req_exec(q, req); /* short or refused: once more, the plain way */
	queue_req_end(q, req, ret);
}

void *uring_thread(void *arg)
{
	struct tern_block_queue *q = arg;
	struct tern_block_req *backlog = NULL, **tail = &backlog;
	void *kick_tag = &q->kick_fd, *watch_tag = &q->watch_fd;
	arm_poll(q, q->kick_fd, kick_tag);
	if (q->ready && q->watch_fd >= 0)
		arm_poll(q, q->watch_fd, watch_tag);
	for (;;) {
		struct tern_block_req *in = queue_take_pending(q);
		if (in) {
			*tail = in;
			while (in->next)
				in = in->next;
			tail = &in->next;
		}
		while (backlog && q->inflight < q->depth) {
			struct tern_block_req *req = backlog;
			backlog = req->next;
			if (!backlog)
				tail = &backlog;
			int r = queue_req_begin(q, req);
			if (r < 0)
				queue_req_end(q, req, r);
			else
				start(q, req);
		}
		io_uring_submit(&q->ring);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&q->ring, head, cqe)
		{
			void *tag = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			n++;
			if (tag == kick_tag) {
				uint64_t v;
				if (read(q->kick_fd, &v, sizeof(v)) < 0) {
					/* EAGAIN: an earlier read took it */
				}
				arm_poll(q, q->kick_fd, kick_tag);
			} else if (tag == watch_tag) {
				q->ready(q->ready_opaque);
				arm_poll(q, q->watch_fd, watch_tag);
			} else {
				complete(q, tag, res);
			}
		}
		io_uring_cq_advance(&q->ring, n);
		if (n || (backlog && q->inflight < q->depth))
			continue;
		pthread_mutex_lock(&q->lock);
		if (q->pending) {
			pthread_mutex_unlock(&q->lock);
			continue;
		}
		if (q->stop && !q->inflight && q->completed == q->submitted) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		q->sleeping = true;
		pthread_mutex_unlock(&q->lock);
		io_uring_wait_cqe(&q->ring, &cqe);
		pthread_mutex_lock(&q->lock);
		q->sleeping = false;
		pthread_mutex_unlock(&q->lock);
	}
	return NULL;
}
