/* virtio-blk: requests from the virtqueue to the disk's I/O queue; see
 * virtio_blk.h. */
#include "devices/virtio_blk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct vblk_req {
	struct virtio_blk *vb;
	struct tern_vq_elem elem;
	struct tern_block_req br;
	uint8_t *status;
	unsigned ndata;
	struct iovec *data; /* the data part: after the header, before the status */
	/* iov, gpa and data arrays follow */
};

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct vblk_req *req_new(struct virtio_blk *vb)
{
	unsigned max = VBLK_QUEUE_SIZE + 8; /* a chain, split at range ends */
	struct vblk_req *r = malloc(sizeof *r + max * (2 * sizeof(struct iovec) + sizeof(uint64_t)));
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof *r);
	r->vb = vb;
	r->elem.iov = (struct iovec *)(r + 1);
	r->data = r->elem.iov + max;
	r->elem.gpa = (uint64_t *)(r->data + max);
	r->elem.max = max;
	return r;
}

/* Copy len bytes from offset `skip` of the iovecs into buf; bytes copied. */
static size_t iov_read(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	size_t got = 0;
	for (unsigned i = 0; i < n && got < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - skip;
		if (k > len - got)
			k = len - got;
		memcpy((uint8_t *)buf + got, (uint8_t *)iov[i].iov_base + skip, k);
		got += k;
		skip = 0;
	}
	return got;
}

/* r->data = bytes [skip, skip + len) of the iovecs. */
static void iov_slice(struct vblk_req *r, const struct iovec *iov, unsigned n, size_t skip,
		      size_t len)
{
	r->ndata = 0;
	for (unsigned i = 0; i < n && len > 0; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - skip;
		if (k > len)
			k = len;
		r->data[r->ndata].iov_base = (uint8_t *)iov[i].iov_base + skip;
		r->data[r->ndata++].iov_len = k;
		len -= k;
		skip = 0;
	}
}

static struct tern_vq *vq0(struct virtio_blk *vb)
{
	return vb->vp.q[0].vq;
}

/* Status, used element, and the request freed.  Under vq_lock. */
static void finish_locked(struct virtio_blk *vb, struct vblk_req *r, uint8_t status)
{
	*r->status = status;
	/* The whole writable part: data (IN, GET_ID) and the status byte. */
	tern_vq_push(vq0(vb), &r->elem, r->elem.in_len);
	vb->inflight--;
	free(r);
}

static void req_done(struct tern_block_req *br, int ret)
{
	struct vblk_req *r = br->opaque;
	struct virtio_blk *vb = r->vb;
	pthread_mutex_lock(&vb->vq_lock);
	finish_locked(vb, r, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	bool notify = tern_vq_flush(vq0(vb));
	pthread_mutex_unlock(&vb->vq_lock);
	if (notify)
		virtio_pci_notify(&vb->vp, 0);
}

static bool in_range(struct virtio_blk *vb, uint64_t sector, uint64_t bytes)
{
	uint64_t size = tern_block_size(vb->blk);
	return sector <= size / TERN_BLOCK_SECTOR && bytes <= size - sector * TERN_BLOCK_SECTOR;
}

/* Returns a status to finish with now, or -1 when r went to the disk. */
static int handle(struct virtio_blk *vb, struct vblk_req *r)
{
	struct tern_vq_elem *e = &r->elem;
	const struct iovec *out = e->iov, *in = e->iov + e->out_num;
	uint8_t hdr[16];
	iov_read(out, e->out_num, 0, hdr, sizeof hdr);
	uint32_t type = (uint32_t)get_le(hdr, 4);
	uint64_t sector = get_le(hdr + 8, 8);
	uint64_t f = vb->vp.driver_features;
	size_t in_data = e->in_len - 1, out_data = e->out_len - 16;
	struct tern_block_req *br = &r->br;
	memset(br, 0, sizeof *br);
	br->done = req_done;
	br->opaque = r;
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool wr = type == VIRTIO_BLK_T_OUT;
		size_t len = wr ? out_data : in_data;
		if (wr && vb->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (len % TERN_BLOCK_SECTOR != 0 || !in_range(vb, sector, len))
			return VIRTIO_BLK_S_IOERR;
		if (wr)
			iov_slice(r, out, e->out_num, 16, len);
		else
			iov_slice(r, in, e->in_num, 0, len);
		br->op = wr ? TERN_BLOCK_OP_WRITE : TERN_BLOCK_OP_READ;
		br->offset = sector * TERN_BLOCK_SECTOR;
		br->len = len;
		br->iov = r->data;
		br->iovcnt = (int)r->ndata;
		return -1;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (!(f & TERN_VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)))
			return VIRTIO_BLK_S_UNSUPP;
		br->op = TERN_BLOCK_OP_FLUSH;
		return -1;
	case VIRTIO_BLK_T_GET_ID: {
		iov_slice(r, in, e->in_num, 0, in_data < VBLK_ID_BYTES ? in_data : VBLK_ID_BYTES);
		size_t at = 0;
		for (unsigned i = 0; i < r->ndata; i++) {
			memcpy(r->data[i].iov_base, vb->id + at, r->data[i].iov_len);
			at += r->data[i].iov_len;
		}
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
		unsigned bit = wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;
		if (!(f & TERN_VIRTIO_BIT(bit)))
			return VIRTIO_BLK_S_UNSUPP;
		if (out_data != 16)
			/* max_discard_seg and max_write_zeroes_seg are 1 */
			return out_data % 16 == 0 && out_data != 0 ? VIRTIO_BLK_S_UNSUPP
								   : VIRTIO_BLK_S_IOERR;
		uint8_t seg[16];
		iov_read(out, e->out_num, 16, seg, sizeof seg);
		uint64_t s = get_le(seg, 8);
		uint32_t n = (uint32_t)get_le(seg + 8, 4), flags = (uint32_t)get_le(seg + 12, 4);
		if (flags & ~(wz ? 1u : 0u))
			return VIRTIO_BLK_S_UNSUPP;
		if (vb->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (n > VBLK_MAX_DISCARD_SECTORS || !in_range(vb, s, (uint64_t)n * TERN_BLOCK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		br->op = wz ? TERN_BLOCK_OP_WRITE_ZEROES : TERN_BLOCK_OP_DISCARD;
		br->offset = s * TERN_BLOCK_SECTOR;
		br->len = (uint64_t)n * TERN_BLOCK_SECTOR;
		br->may_unmap = (flags & 1) != 0;
		if (n == 0)
			return VIRTIO_BLK_S_OK;
		return -1;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Pop everything the driver posted: on the I/O thread. */
static void process(struct virtio_blk *vb)
{
	struct tern_block_req *sub[32];
	bool broken = false, notify = false;
	for (;;) {
		unsigned nsub = 0;
		pthread_mutex_lock(&vb->vq_lock);
		struct tern_vq *vq = vq0(vb);
		while (nsub < 32 && !vb->resetting && tern_vq_started(vq)) {
			struct vblk_req *r = req_new(vb);
			if (r == NULL)
				break; /* the next kick tries again */
			int rc = tern_vq_pop(vq, &r->elem);
			if (rc <= 0) {
				free(r);
				broken = rc == -EPROTO;
				break;
			}
			vb->inflight++;
			if (r->elem.out_len < 16 || r->elem.in_len < 1) {
				/* No header or no status byte: nothing to answer with. */
				tern_vq_push(vq, &r->elem, 0);
				vb->inflight--;
				free(r);
				continue;
			}
			const struct iovec *last = &r->elem.iov[r->elem.out_num + r->elem.in_num - 1];
			r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
			int st = handle(vb, r);
			if (st >= 0)
				finish_locked(vb, r, (uint8_t)st);
			else
				sub[nsub++] = &r->br;
		}
		notify |= tern_vq_flush(vq);
		pthread_mutex_unlock(&vb->vq_lock);
		if (nsub > 0)
			tern_block_submit(vb->bq, sub, nsub);
		if (nsub < 32)
			break;
	}
	if (notify)
		virtio_pci_notify(&vb->vp, 0);
	if (broken)
		virtio_pci_needs_reset(&vb->vp);
}

static void ready(void *opaque)
{
	struct virtio_blk *vb = opaque;
	uint64_t n;
	if (read(vb->kick_fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	process(vb);
}

static uint64_t config_read(void *dev, unsigned off, unsigned size)
{
	struct virtio_blk *vb = dev;
	return get_le(vb->config + off, size);
}

static void kick(void *dev, unsigned q)
{
	(void)q;
	struct virtio_blk *vb = dev;
	uint64_t one = 1;
	if (write(vb->kick_fd, &one, sizeof one) < 0) {
		/* the counter is at its maximum: a wakeup is pending anyway */
	}
}

void virtio_blk_quiesce(struct virtio_blk *vb)
{
	/* A request popped but not yet submitted escapes one drain: loop. */
	for (;;) {
		tern_block_queue_drain(vb->bq);
		pthread_mutex_lock(&vb->vq_lock);
		unsigned n = vb->inflight;
		pthread_mutex_unlock(&vb->vq_lock);
		if (n == 0)
			return;
		usleep(100);
	}
}

/* The driver resets the device: pop nothing more until a queue starts
 * again, so that nothing popped now is pushed on a queue reset under it. */
static void reset_quiesce(void *dev)
{
	struct virtio_blk *vb = dev;
	pthread_mutex_lock(&vb->vq_lock);
	vb->resetting = true;
	pthread_mutex_unlock(&vb->vq_lock);
	virtio_blk_quiesce(vb);
}

static void queue_started(void *dev, unsigned q)
{
	struct virtio_blk *vb = dev;
	pthread_mutex_lock(&vb->vq_lock);
	vb->resetting = false;
	pthread_mutex_unlock(&vb->vq_lock);
	kick(dev, q); /* pop once: buffers may be waiting */
}

static const struct virtio_pci_ops vblk_ops = {
	.config_read = config_read,
	.kick = kick,
	.quiesce = reset_quiesce,
	.queue_started = queue_started,
};

static void fill_config(struct virtio_blk *vb)
{
	uint8_t *c = vb->config;
	unsigned blk = vb->blk->align > TERN_BLOCK_SECTOR ? vb->blk->align : TERN_BLOCK_SECTOR;
	put_le(c + 0, tern_block_size(vb->blk) / TERN_BLOCK_SECTOR, 8);
	put_le(c + 12, VBLK_SEG_MAX, 4);
	put_le(c + 20, blk, 4);
	put_le(c + 34, 1, 2); /* num_queues */
	put_le(c + 36, VBLK_MAX_DISCARD_SECTORS, 4);
	put_le(c + 40, 1, 4);
	put_le(c + 44, blk / TERN_BLOCK_SECTOR, 4);
	put_le(c + 48, VBLK_MAX_DISCARD_SECTORS, 4);
	put_le(c + 52, 1, 4);
	c[56] = 1; /* write_zeroes_may_unmap */
}

int virtio_blk_init(struct virtio_blk *vb, const struct virtio_blk_opts *o, struct tern_error *err)
{
	memset(vb, 0, sizeof *vb);
	vb->blk = o->blk;
	vb->readonly = o->readonly || !o->blk->writable;
	if (o->id != NULL)
		memcpy(vb->id, o->id, strnlen(o->id, sizeof vb->id)); /* no NUL at 20 */
	fill_config(vb);
	uint64_t features = TERN_VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			    TERN_VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			    TERN_VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
			    TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC) |
			    TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	if (vb->readonly)
		features |= TERN_VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		features |= TERN_VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
			    TERN_VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	pthread_mutex_init(&vb->vq_lock, NULL);
	vb->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vb->kick_fd < 0) {
		int rc = tern_errorf(err, -errno, "virtio-blk: eventfd: %s", strerror(errno));
		pthread_mutex_destroy(&vb->vq_lock);
		return rc;
	}
	/* Class 0x010000 (SCSI storage), as QEMU's virtio-blk-pci. */
	int rc = virtio_pci_init(&vb->vp, VIRTIO_ID_BLOCK, 0x010000, features, 1, VBLK_QUEUE_SIZE,
				 VBLK_CONFIG_LEN, o->mem, &vblk_ops, vb, &vb->vq_lock, err);
	if (rc < 0)
		goto fail;
	struct tern_block_queue_opts qo = {
		.engine = o->engine,
		.watch_fd = vb->kick_fd,
		.ready = ready,
		.ready_opaque = vb,
	};
	rc = tern_block_queue_create(vb->blk, &qo, &vb->bq, err);
	if (rc < 0) {
		virtio_pci_destroy(&vb->vp);
		goto fail;
	}
	return 0;
fail:
	close(vb->kick_fd);
	pthread_mutex_destroy(&vb->vq_lock);
	return rc;
}

void virtio_blk_destroy(struct virtio_blk *vb)
{
	virtio_blk_quiesce(vb);
	tern_block_queue_destroy(vb->bq);
	virtio_pci_destroy(&vb->vp);
	close(vb->kick_fd);
	pthread_mutex_destroy(&vb->vq_lock);
}
