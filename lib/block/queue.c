/*
 * A disk's I/O queue: requests go in from any thread (a vCPU's, or the
 * I/O thread's own callbacks), run off it, and complete on the disk's I/O
 * thread, one callback at a time, with either engine:
 *
 *  - io_uring (uring.c): the I/O thread turns raw reads, writes and
 *    flushes into submissions and reaps their completions; whatever the
 *    ring cannot do (qcow2, whose engine is synchronous; zeroes and
 *    discards, fallocate or ioctl calls) it runs itself.
 *  - threads: N workers run each request with the synchronous calls
 *    (preadv/pwritev) and hand it to the I/O thread through an eventfd,
 *    which runs the callbacks.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "queue_int.h"

bool queue_on_io_thread(const struct tern_block_queue *q)
{
	return pthread_equal(pthread_self(), q->io_thread);
}

static void kick(struct tern_block_queue *q)
{
	uint64_t one = 1;
	while (write(q->kick_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

void tern_block_submit(struct tern_block_queue *q, struct tern_block_req **reqs, unsigned n)
{
	if (!n)
		return;
	for (unsigned i = 0; i + 1 < n; i++)
		reqs[i]->next = reqs[i + 1];
	reqs[n - 1]->next = NULL;
	pthread_mutex_lock(&q->lock);
	*q->pending_tail = reqs[0];
	q->pending_tail = &reqs[n - 1]->next;
	q->submitted += n;
	bool wake = q->uring && q->sleeping;
	if (wake)
		q->sleeping = false;
	if (!q->uring)
		n > 1 ? pthread_cond_broadcast(&q->work) : pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	if (wake)
		kick(q);
}

struct tern_block_req *queue_take_pending(struct tern_block_queue *q)
{
	pthread_mutex_lock(&q->lock);
	struct tern_block_req *r = q->pending;
	q->pending = NULL;
	q->pending_tail = &q->pending;
	pthread_mutex_unlock(&q->lock);
	return r;
}

int queue_req_begin(struct tern_block_queue *q, struct tern_block_req *req)
{
	struct tern_block *b = q->b;
	req->start_ns = block_now_ns();
	req->bounce = NULL;
	req->done_bytes = 0;
	if (req->op == TERN_BLOCK_OP_READ || req->op == TERN_BLOCK_OP_WRITE) {
		uint64_t len;
		if (block_iov_len(req->iov, req->iovcnt, &len) < 0) {
			req->start_ns = 0;
			return -EINVAL;
		}
		req->len = len;
	}
	int r = block_check(b, req->op, req->offset, req->len, NULL);
	if (r < 0) {
		req->start_ns = 0; /* counted as invalid, not as failed */
		return r;
	}
	if ((req->op == TERN_BLOCK_OP_READ || req->op == TERN_BLOCK_OP_WRITE) &&
	    block_needs_bounce(b, req->iov, req->iovcnt)) {
		req->bounce = block_bounce_alloc(b, req->iov, req->iovcnt, req->len,
						 req->op == TERN_BLOCK_OP_WRITE);
		if (!req->bounce)
			return -ENOMEM;
		req->bounce_iov.iov_base = req->bounce;
		req->bounce_iov.iov_len = (size_t)req->len;
	}
	return 0;
}

int queue_req_exec(struct tern_block_queue *q, struct tern_block_req *req)
{
	struct tern_block *b = q->b;
	const struct iovec *iov = req->bounce ? &req->bounce_iov : req->iov;
	int cnt = req->bounce ? 1 : req->iovcnt;
	switch (req->op) {
	case TERN_BLOCK_OP_READ:
		return b->ops->preadv(b, iov, cnt, req->offset, NULL);
	case TERN_BLOCK_OP_WRITE:
		return b->ops->pwritev(b, iov, cnt, req->offset, NULL);
	case TERN_BLOCK_OP_FLUSH:
		return b->ops->flush(b, NULL);
	case TERN_BLOCK_OP_WRITE_ZEROES:
		return b->ops->write_zeroes(b, req->offset, req->len, req->may_unmap, NULL);
	case TERN_BLOCK_OP_DISCARD:
		return b->ops->discard(b, req->offset, req->len, NULL);
	}
	return -EINVAL;
}

void queue_req_end(struct tern_block_queue *q, struct tern_block_req *req, int ret)
{
	if (req->bounce) {
		if (ret == 0 && req->op == TERN_BLOCK_OP_READ)
			block_bounce_copy_out(req->bounce, req->iov, req->iovcnt, req->len);
		free(req->bounce);
		req->bounce = NULL;
	}
	if (req->start_ns)
		block_account(q->b, req->op, req->offset, req->len, req->start_ns, ret);
	req->done(req, ret);
	pthread_mutex_lock(&q->lock);
	if (++q->completed == q->submitted)
		pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------- threads */

static void *worker(void *arg)
{
	struct tern_block_queue *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->pending && !q->stop)
			pthread_cond_wait(&q->work, &q->lock);
		struct tern_block_req *req = q->pending;
		if (!req)
			break;
		q->pending = req->next;
		if (!q->pending)
			q->pending_tail = &q->pending;
		pthread_mutex_unlock(&q->lock);
		int r = queue_req_begin(q, req);
		if (r == 0)
			r = queue_req_exec(q, req);
		req->done_bytes = (size_t)r; /* the result rides along to the I/O thread */
		pthread_mutex_lock(&q->lock);
		bool was_empty = !q->done;
		req->next = NULL;
		*q->done_tail = req;
		q->done_tail = &req->next;
		if (was_empty) {
			pthread_mutex_unlock(&q->lock);
			kick(q);
			pthread_mutex_lock(&q->lock);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* The thread pool's I/O thread: callbacks, and the watched fd. */
static void *pool_thread(void *arg)
{
	struct tern_block_queue *q = arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = q->kick_fd, .events = POLLIN },
				       { .fd = q->watch_fd, .events = POLLIN } };
		if (poll(p, q->ready && q->watch_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			q->ready(q->ready_opaque);
		if (!(p[0].revents & POLLIN))
			continue;
		uint64_t v;
		if (read(q->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		pthread_mutex_lock(&q->lock);
		struct tern_block_req *req = q->done;
		q->done = NULL;
		q->done_tail = &q->done;
		bool stop = q->stop && q->completed == q->submitted && !req;
		pthread_mutex_unlock(&q->lock);
		if (stop)
			break;
		while (req) {
			struct tern_block_req *next = req->next;
			queue_req_end(q, req, (int)(ssize_t)req->done_bytes);
			req = next;
		}
	}
	return NULL;
}

/* ----------------------------------------------------------- lifecycle */

const char *tern_block_queue_engine(const struct tern_block_queue *q)
{
	return q->uring ? "io_uring" : "threads";
}

static void queue_free(struct tern_block_queue *q)
{
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->idle);
	pthread_cond_destroy(&q->work);
	free(q->workers);
	free(q);
}

int tern_block_queue_create(struct tern_block *b, const struct tern_block_queue_opts *o,
			    struct tern_block_queue **out, struct tern_error *err)
{
	static const struct tern_block_queue_opts defaults = { .watch_fd = -1 };
	if (!o)
		o = &defaults;
	struct tern_block_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return tern_errorf(err, -ENOMEM, "out of memory");
	q->b = b;
	q->depth = o->depth ? o->depth : 128;
	q->watch_fd = o->ready ? o->watch_fd : -1;
	q->ready = o->ready;
	q->ready_opaque = o->ready_opaque;
	q->pending_tail = &q->pending;
	q->done_tail = &q->done;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->idle, NULL);
	pthread_cond_init(&q->work, NULL);
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0) {
		int e = errno;
		queue_free(q);
		return tern_errorf(err, -e, "eventfd: %s", strerror(e));
	}
	enum tern_block_engine engine = o->engine;
	if (engine == TERN_BLOCK_ENGINE_DEFAULT)
		engine = TERN_BLOCK_ENGINE_URING;
	/* A kernel (or a seccomp filter) that refuses io_uring gets threads. */
	q->uring = engine == TERN_BLOCK_ENGINE_URING && uring_setup(q) == 0;
	int r = 0;
	if (!q->uring) {
		q->nworkers = o->threads ? o->threads : 8;
		q->workers = calloc(q->nworkers, sizeof(*q->workers));
		if (!q->workers)
			r = -ENOMEM;
	}
	if (r == 0)
		r = -pthread_create(&q->io_thread, NULL, q->uring ? uring_thread : pool_thread, q);
	bool io_started = r == 0;
	unsigned started = 0;
	for (; r == 0 && !q->uring && started < q->nworkers; started++)
		r = -pthread_create(&q->workers[started], NULL, worker, q);
	if (r < 0) {
		if (io_started) {
			pthread_mutex_lock(&q->lock);
			q->stop = true;
			pthread_cond_broadcast(&q->work);
			pthread_mutex_unlock(&q->lock);
			kick(q);
		}
		for (unsigned i = 0; i < started; i++)
			pthread_join(q->workers[i], NULL);
		if (io_started)
			pthread_join(q->io_thread, NULL);
		if (q->uring)
			uring_teardown(q);
		queue_free(q);
		return tern_errorf(err, r, "starting the disk's I/O thread: %s", strerror(-r));
	}
	*out = q;
	return 0;
}

void tern_block_queue_drain(struct tern_block_queue *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->completed != q->submitted)
		pthread_cond_wait(&q->idle, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

void tern_block_queue_destroy(struct tern_block_queue *q)
{
	if (!q)
		return;
	tern_block_queue_drain(q);
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->lock);
	kick(q);
	for (unsigned i = 0; i < q->nworkers; i++)
		pthread_join(q->workers[i], NULL);
	pthread_join(q->io_thread, NULL);
	if (q->uring)
		uring_teardown(q);
	queue_free(q);
}
