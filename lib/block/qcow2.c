/*
 * qcow2 images on libtern's engine.  The engine is single-threaded, so
 * every call into it holds this image's lock: whichever threads the
 * requests come from (the I/O thread, thread-pool workers, the main
 * thread for a snapshot), one runs at a time.  The engine opens the image
 * on the block device's own descriptor (so the locks taken on it are the
 * image's), bounces what O_DIRECT cannot take, and orders its metadata
 * write-back itself: a flush writes refcount blocks, then L2 tables, then
 * fdatasyncs.
 */
#include <errno.h>
#include <stdlib.h>

#include "block_int.h"
#include "tern/qcow2.h"

struct qimg {
	struct tern_qcow2 *q;
	pthread_mutex_t lock;
};

/* Calls read leave(b, engine_call(enter(b), ...)): the engine runs between. */
static struct tern_qcow2 *enter(struct tern_block *b)
{
	struct qimg *s = b->priv;
	pthread_mutex_lock(&s->lock);
	return s->q;
}

static int leave(struct tern_block *b, int r)
{
	pthread_mutex_unlock(&((struct qimg *)b->priv)->lock);
	return r;
}

static int q_preadv(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		    struct tern_error *err)
{
	return leave(b, tern_qcow2_readv(enter(b), iov, iovcnt, offset, err));
}

static int q_pwritev(struct tern_block *b, const struct iovec *iov, int iovcnt, uint64_t offset,
		     struct tern_error *err)
{
	return leave(b, tern_qcow2_writev(enter(b), iov, iovcnt, offset, err));
}

static int q_flush(struct tern_block *b, struct tern_error *err)
{
	return leave(b, tern_qcow2_flush(enter(b), err));
}

/* Whole clusters become zero clusters (an allocation the image owns is
 * kept, marked zero); partial ones are written with zeros. */
static int q_write_zeroes(struct tern_block *b, uint64_t offset, uint64_t len, bool may_unmap,
			  struct tern_error *err)
{
	(void)may_unmap;
	return leave(b, tern_qcow2_write_zeroes(enter(b), offset, len, err));
}

static int q_discard(struct tern_block *b, uint64_t offset, uint64_t len, struct tern_error *err)
{
	return leave(b, tern_qcow2_discard(enter(b), offset, len, err));
}

static int q_close(struct tern_block *b, struct tern_error *err)
{
	struct qimg *s = b->priv;
	int r = tern_qcow2_close(s->q, err);
	pthread_mutex_destroy(&s->lock);
	free(s);
	b->priv = NULL;
	return r;
}

static const struct tern_block_ops qcow2_ops = {
	.name = "qcow2",
	.preadv = q_preadv,
	.pwritev = q_pwritev,
	.flush = q_flush,
	.write_zeroes = q_write_zeroes,
	.discard = q_discard,
	.close = q_close,
};

int block_qcow2_open(struct tern_block *b, struct tern_error *err)
{
	if (b->is_device)
		return tern_errorf(err, -EINVAL, "%s: qcow2 images on block devices are not "
				   "supported; open it as raw or copy it to a file", b->path);
	struct qimg *s = calloc(1, sizeof(*s));
	if (!s)
		return tern_errorf(err, -ENOMEM, "out of memory");
	struct tern_qcow2_open_opts o = {
		.writable = b->writable,
		.direct_align = b->align > 1 ? b->align : 0,
		.backing_opened = block_lock_backing,
	};
	int r = tern_qcow2_open_fd(b->fd, b->path, &o, &s->q, err);
	if (r < 0) {
		free(s);
		return r;
	}
	struct tern_qcow2_info info;
	tern_qcow2_get_info(s->q, &info);
	pthread_mutex_init(&s->lock, NULL);
	b->size = info.size;
	b->priv = s;
	b->ops = &qcow2_ops;
	return 0;
}

struct tern_qcow2 *tern_block_qcow2(struct tern_block *b)
{
	return b->ops == &qcow2_ops ? ((struct qimg *)b->priv)->q : NULL;
}

void tern_block_qcow2_lock(struct tern_block *b)
{
	if (b->ops == &qcow2_ops)
		pthread_mutex_lock(&((struct qimg *)b->priv)->lock);
}

void tern_block_qcow2_unlock(struct tern_block *b)
{
	if (b->ops == &qcow2_ops)
		pthread_mutex_unlock(&((struct qimg *)b->priv)->lock);
}
