/* virtio-pci modern transport: capabilities, common config, notify, ISR,
 * MSI-X; see virtio_pci.h. */
#include "devices/virtio_pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MSIX_CTRL_ENABLE 0x8000u
#define MSIX_CTRL_MASKALL 0x4000u

static bool msix_on(struct virtio_pci *vp, bool *maskall)
{
	uint32_t ctrl = pci_config_get(&vp->pci, (unsigned)vp->msix_cap + 2, 2);
	*maskall = (ctrl & MSIX_CTRL_MASKALL) != 0;
	return (ctrl & MSIX_CTRL_ENABLE) != 0;
}

/* Called with msix_lock held. */
static void deliver(struct virtio_pci *vp, unsigned vector, unsigned isr_bit)
{
	bool maskall;
	if (msix_on(vp, &maskall)) {
		if (vector >= VIRTIO_PCI_MAX_VECTORS)
			return; /* NO_VECTOR with MSI-X on: the driver wants none */
		struct msix_entry *e = &vp->msix[vector];
		if (maskall || (e->ctrl & 1)) {
			vp->pba |= 1ULL << vector; /* sent when unmasked */
			return;
		}
		if (vp->raise != NULL)
			vp->raise(vp->raise_opaque, vector, (uint64_t)e->addr_hi << 32 | e->addr_lo,
				  e->data);
		return;
	}
	vp->isr |= (uint8_t)isr_bit;
	if (vp->raise != NULL)
		vp->raise(vp->raise_opaque, VIRTIO_NO_VECTOR, 0, 0);
}

void virtio_pci_notify(struct virtio_pci *vp, unsigned q)
{
	pthread_mutex_lock(&vp->msix_lock);
	deliver(vp, vp->q[q].msix_vector, 1);
	pthread_mutex_unlock(&vp->msix_lock);
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->msix_lock);
	vp->config_gen++;
	deliver(vp, vp->msix_config, 2);
	pthread_mutex_unlock(&vp->msix_lock);
}

void virtio_pci_needs_reset(struct virtio_pci *vp)
{
	/* Status is a byte: a torn read is impossible, and the vCPU's lock
	 * would deadlock against a reset draining this very thread. */
	__atomic_or_fetch(&vp->status, VIRTIO_S_NEEDS_RESET, __ATOMIC_SEQ_CST);
	virtio_pci_config_changed(vp);
}

bool virtio_pci_driver_ok(struct virtio_pci *vp)
{
	return (__atomic_load_n(&vp->status, __ATOMIC_ACQUIRE) & VIRTIO_S_DRIVER_OK) != 0;
}

static void doorbell(struct virtio_pci *vp, unsigned q, bool on)
{
	if (vp->doorbell != NULL)
		vp->doorbell(vp->doorbell_opaque, q, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q,
			     on);
}

static void reset_locked(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < vp->num_queues; i++)
		if (vp->q[i].enable)
			doorbell(vp, i, false);
	if (vp->ops->quiesce != NULL)
		vp->ops->quiesce(vp->dev);
	pthread_mutex_lock(vp->vq_lock);
	for (unsigned i = 0; i < vp->num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		tern_vq_reset(q->vq);
		q->size = vp->queue_max; /* the maximum again after a reset */
		q->enable = 0;
		q->msix_vector = VIRTIO_NO_VECTOR;
		q->desc = q->avail = q->used = 0;
	}
	pthread_mutex_unlock(vp->vq_lock);
	pthread_mutex_lock(&vp->msix_lock);
	vp->isr = 0;
	vp->msix_config = VIRTIO_NO_VECTOR;
	pthread_mutex_unlock(&vp->msix_lock);
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_sel = 0;
	__atomic_store_n(&vp->status, 0, __ATOMIC_RELEASE);
}

static void write_status(struct virtio_pci *vp, uint8_t v)
{
	if (v == 0) {
		reset_locked(vp);
		return;
	}
	uint8_t old = vp->status;
	/* FEATURES_OK only sticks for a subset of ours that has VERSION_1. */
	if ((v & VIRTIO_S_FEATURES_OK) && !(old & VIRTIO_S_FEATURES_OK)) {
		uint64_t f = vp->driver_features;
		if ((f & ~vp->host_features) != 0 ||
		    !(f & TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_S_FEATURES_OK;
	}
	v = (uint8_t)(v | (old & VIRTIO_S_NEEDS_RESET));
	__atomic_store_n(&vp->status, v, __ATOMIC_RELEASE);
}

static void enable_queue(struct virtio_pci *vp, struct virtio_pci_queue *q, unsigned idx)
{
	if (q->enable || !(vp->status & VIRTIO_S_FEATURES_OK))
		return;
	struct tern_vq_config cfg = {
		.size = q->size,
		.desc = q->desc,
		.avail = q->avail,
		.used = q->used,
		.features = vp->driver_features,
	};
	struct tern_error e = {0};
	pthread_mutex_lock(vp->vq_lock);
	int rc = tern_vq_start(q->vq, &cfg, &e);
	pthread_mutex_unlock(vp->vq_lock);
	if (rc < 0) {
		/* A configuration no queue can have: the driver must reset. */
		virtio_pci_needs_reset(vp);
		return;
	}
	q->enable = 1;
	doorbell(vp, idx, true);
	if (vp->ops->queue_started != NULL)
		vp->ops->queue_started(vp->dev, idx);
}

static uint64_t common_read(struct virtio_pci *vp, unsigned off, unsigned size)
{
	struct virtio_pci_queue *q = vp->queue_sel < vp->num_queues ? &vp->q[vp->queue_sel] : NULL;
	uint64_t v = 0;
	switch (off) {
	case 0x00: v = vp->dfselect; break;
	case 0x04: v = vp->dfselect < 2 ? (uint32_t)(vp->host_features >> (32 * vp->dfselect)) : 0; break;
	case 0x08: v = vp->gfselect; break;
	case 0x0c: v = vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect)) : 0; break;
	case 0x10: v = vp->msix_config; break;
	case 0x12: v = vp->num_queues; break;
	case 0x14: v = __atomic_load_n(&vp->status, __ATOMIC_ACQUIRE); break;
	case 0x15: v = __atomic_load_n(&vp->config_gen, __ATOMIC_ACQUIRE); break;
	case 0x16: v = vp->queue_sel; break;
	case 0x18: v = q ? q->size : 0; break;
	case 0x1a: v = q ? q->msix_vector : VIRTIO_NO_VECTOR; break;
	case 0x1c: v = q ? q->enable : 0; break;
	case 0x1e: v = q ? vp->queue_sel : 0; break;
	case 0x20: v = q ? q->desc : 0; break;
	case 0x24: v = q ? q->desc >> 32 : 0; break;
	case 0x28: v = q ? q->avail : 0; break;
	case 0x2c: v = q ? q->avail >> 32 : 0; break;
	case 0x30: v = q ? q->used : 0; break;
	case 0x34: v = q ? q->used >> 32 : 0; break;
	default: return 0;
	}
	if (size == 8 && (off == 0x20 || off == 0x28 || off == 0x30))
		return v;
	return size >= 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void set_half(uint64_t *a, bool high, uint64_t v, unsigned size)
{
	if (size == 8 && !high) {
		*a = v;
		return;
	}
	if (high)
		*a = (*a & 0xffffffffULL) | (v & 0xffffffffULL) << 32;
	else
		*a = (*a & ~0xffffffffULL) | (v & 0xffffffffULL);
}

static void common_write(struct virtio_pci *vp, unsigned off, unsigned size, uint64_t v)
{
	unsigned sel = vp->queue_sel;
	struct virtio_pci_queue *q = sel < vp->num_queues ? &vp->q[sel] : NULL;
	/* Queue registers are fixed once the queue is enabled. */
	bool qw = q != NULL && !q->enable;
	switch (off) {
	case 0x00: vp->dfselect = (uint32_t)v; break;
	case 0x08: vp->gfselect = (uint32_t)v; break;
	case 0x0c:
		if (vp->gfselect < 2 && !(vp->status & VIRTIO_S_FEATURES_OK)) {
			unsigned sh = 32 * vp->gfselect;
			vp->driver_features = (vp->driver_features & ~(0xffffffffULL << sh)) |
					      ((v & 0xffffffffULL) << sh);
		}
		break;
	case 0x10:
		pthread_mutex_lock(&vp->msix_lock);
		vp->msix_config = v < VIRTIO_PCI_MAX_VECTORS ? (uint16_t)v : VIRTIO_NO_VECTOR;
		pthread_mutex_unlock(&vp->msix_lock);
		break;
	case 0x14: write_status(vp, (uint8_t)v); break;
	case 0x16: vp->queue_sel = (uint16_t)v; break;
	case 0x18:
		/* A smaller power of two than the maximum is the driver's choice;
		 * tern_vq_start refuses the others. */
		if (qw && v != 0)
			q->size = (uint16_t)v;
		break;
	case 0x1a:
		if (q != NULL) {
			pthread_mutex_lock(&vp->msix_lock);
			q->msix_vector = v < VIRTIO_PCI_MAX_VECTORS ? (uint16_t)v : VIRTIO_NO_VECTOR;
			pthread_mutex_unlock(&vp->msix_lock);
		}
		break;
	case 0x1c:
		if (q != NULL && v == 1)
			enable_queue(vp, q, sel);
		break;
	case 0x20: case 0x24: if (qw) set_half(&q->desc, off == 0x24, v, size); break;
	case 0x28: case 0x2c: if (qw) set_half(&q->avail, off == 0x2c, v, size); break;
	case 0x30: case 0x34: if (qw) set_half(&q->used, off == 0x34, v, size); break;
	default: break;
	}
}

static void msix_write(struct virtio_pci *vp, unsigned off, unsigned size, uint64_t v);

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
	struct virtio_pci *vp = opaque;
	unsigned off = (unsigned)offset;
	uint64_t v = 0;
	if (off < VIRTIO_PCI_COMMON_LEN) {
		pthread_mutex_lock(&vp->lock);
		v = common_read(vp, off, size);
		pthread_mutex_unlock(&vp->lock);
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		pthread_mutex_lock(&vp->msix_lock);
		v = vp->isr; /* reading clears it, and lowers INTx */
		vp->isr = 0;
		pthread_mutex_unlock(&vp->msix_lock);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off + size <= VIRTIO_PCI_DEVICE_OFF + vp->config_len) {
		v = vp->ops->config_read(vp->dev, off - VIRTIO_PCI_DEVICE_OFF, size);
	} else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF &&
		   off + size <= VIRTIO_PCI_MSIX_TABLE_OFF + 16 * VIRTIO_PCI_MAX_VECTORS) {
		unsigned at = off - VIRTIO_PCI_MSIX_TABLE_OFF;
		pthread_mutex_lock(&vp->msix_lock);
		const uint32_t *w = &vp->msix[at / 16].addr_lo;
		v = w[(at % 16) / 4];
		if (size == 8 && (at % 16) / 4 < 3)
			v |= (uint64_t)w[(at % 16) / 4 + 1] << 32;
		pthread_mutex_unlock(&vp->msix_lock);
	} else if (off >= VIRTIO_PCI_MSIX_PBA_OFF && off + size <= VIRTIO_PCI_MSIX_PBA_OFF + 8) {
		pthread_mutex_lock(&vp->msix_lock);
		v = vp->pba >> (8 * (off - VIRTIO_PCI_MSIX_PBA_OFF));
		pthread_mutex_unlock(&vp->msix_lock);
	}
	return size >= 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void bar_write(void *opaque, uint64_t offset, unsigned size, uint64_t v)
{
	struct virtio_pci *vp = opaque;
	unsigned off = (unsigned)offset;
	if (off < VIRTIO_PCI_COMMON_LEN) {
		pthread_mutex_lock(&vp->lock);
		common_write(vp, off, size, v);
		pthread_mutex_unlock(&vp->lock);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off + size <= VIRTIO_PCI_DEVICE_OFF + vp->config_len) {
		if (vp->ops->config_write != NULL)
			vp->ops->config_write(vp->dev, off - VIRTIO_PCI_DEVICE_OFF, size, v);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFF &&
		   off < VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * vp->num_queues) {
		/* Without an ioeventfd (tests, or before it is assigned). */
		unsigned q = (off - VIRTIO_PCI_NOTIFY_OFF) / VIRTIO_PCI_NOTIFY_MULT;
		if (vp->q[q].enable)
			vp->ops->kick(vp->dev, q);
	} else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF &&
		   off + size <= VIRTIO_PCI_MSIX_TABLE_OFF + 16 * VIRTIO_PCI_MAX_VECTORS) {
		msix_write(vp, off - VIRTIO_PCI_MSIX_TABLE_OFF, size, v);
	}
}

/* Send what was pending and is no longer masked. Called with msix_lock. */
static void msix_flush_pending(struct virtio_pci *vp)
{
	bool maskall;
	if (!msix_on(vp, &maskall) || maskall)
		return;
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		if ((vp->pba >> i & 1) && !(vp->msix[i].ctrl & 1)) {
			vp->pba &= ~(1ULL << i);
			deliver(vp, i, 0);
		}
}

static void msix_write(struct virtio_pci *vp, unsigned at, unsigned size, uint64_t v)
{
	pthread_mutex_lock(&vp->msix_lock);
	for (unsigned done = 0; done < size; done += 4) {
		unsigned a = at + done;
		uint32_t *w = &vp->msix[a / 16].addr_lo + (a % 16) / 4;
		uint32_t x = (uint32_t)(v >> (8 * done));
		if ((a % 16) / 4 == 3)
			x &= 1; /* only the mask bit is writable */
		*w = x;
	}
	msix_flush_pending(vp);
	pthread_mutex_unlock(&vp->msix_lock);
}

static void msix_cap_write(void *opaque, struct pci_device *d, unsigned at, unsigned size,
			   uint32_t value)
{
	(void)d, (void)at, (void)size, (void)value;
	struct virtio_pci *vp = opaque;
	pthread_mutex_lock(&vp->msix_lock);
	msix_flush_pending(vp);
	pthread_mutex_unlock(&vp->msix_lock);
}

static const struct pci_cap_ops msix_cap_ops = {.write = msix_cap_write};

static int add_vendor_cap(struct virtio_pci *vp, uint8_t type, uint32_t off, uint32_t len,
			  struct tern_error *err)
{
	unsigned caplen = type == VIRTIO_PCI_CAP_NOTIFY ? 20 : 16;
	int at = pci_add_capability(&vp->pci, PCI_CAP_ID_VENDOR, caplen, NULL, NULL, err);
	if (at < 0)
		return at;
	unsigned c = (unsigned)at;
	pci_config_set(&vp->pci, c + 2, 1, caplen);
	pci_config_set(&vp->pci, c + 3, 1, type);
	pci_config_set(&vp->pci, c + 4, 1, VIRTIO_PCI_BAR);
	pci_config_set(&vp->pci, c + 8, 4, off);
	pci_config_set(&vp->pci, c + 12, 4, len);
	if (type == VIRTIO_PCI_CAP_NOTIFY)
		pci_config_set(&vp->pci, c + 16, 4, VIRTIO_PCI_NOTIFY_MULT);
	return 0;
}

int virtio_pci_init(struct virtio_pci *vp, uint16_t device_id, uint32_t class_code,
		    uint64_t host_features, unsigned num_queues, unsigned queue_max,
		    unsigned config_len, const struct tern_guest_mem *mem,
		    const struct virtio_pci_ops *ops, void *dev, pthread_mutex_t *vq_lock,
		    struct tern_error *err)
{
	if (num_queues == 0 || num_queues > VIRTIO_PCI_MAX_QUEUES || config_len > 0x1000)
		return tern_errorf(err, -EINVAL, "virtio-pci: %u queues, %u config bytes", num_queues,
				   config_len);
	memset(vp, 0, sizeof *vp);
	/* Subsystem 1af4:1100, what QEMU gives its virtio functions. */
	struct pci_device_info info = {
		.name = "virtio-pci",
		.vendor = VIRTIO_PCI_VENDOR,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + device_id),
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.subsys = 0x1100,
		.class_code = class_code,
		.revision = 1,
		.int_pin = 1,
	};
	pci_device_init(&vp->pci, &info);
	vp->ops = ops;
	vp->dev = dev;
	vp->vq_lock = vq_lock;
	vp->host_features = host_features | TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1);
	vp->num_queues = (uint16_t)num_queues;
	vp->queue_max = (uint16_t)queue_max;
	vp->config_len = config_len;
	vp->msix_config = VIRTIO_NO_VECTOR;
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->msix_lock, NULL);
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		vp->msix[i].ctrl = 1; /* masked at reset, as the PCI spec says */
	int rc;
	for (unsigned i = 0; i < num_queues; i++) {
		vp->q[i].size = (uint16_t)queue_max;
		vp->q[i].msix_vector = VIRTIO_NO_VECTOR;
		vp->q[i].vq = tern_vq_new(mem, queue_max);
		if (vp->q[i].vq == NULL) {
			rc = tern_errorf(err, -ENOMEM, "virtio-pci: no memory for queue %u", i);
			goto fail;
		}
	}
	rc = pci_set_bar(&vp->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE,
			 PCI_BAR_64 | PCI_BAR_PREFETCH, bar_read, bar_write, vp, err);
	if (rc < 0)
		goto fail;
	if ((rc = add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON, VIRTIO_PCI_COMMON_OFF,
				 VIRTIO_PCI_COMMON_LEN, err)) < 0 ||
	    (rc = add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY, VIRTIO_PCI_NOTIFY_OFF,
				 VIRTIO_PCI_NOTIFY_MULT * num_queues, err)) < 0 ||
	    (rc = add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR, VIRTIO_PCI_ISR_OFF, 1, err)) < 0 ||
	    (rc = add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE, VIRTIO_PCI_DEVICE_OFF,
				 config_len ? config_len : 4, err)) < 0)
		goto fail;
	rc = pci_add_capability(&vp->pci, PCI_CAP_ID_MSIX, 12, &msix_cap_ops, vp, err);
	if (rc < 0)
		goto fail;
	vp->msix_cap = rc;
	unsigned c = (unsigned)rc;
	pci_config_set(&vp->pci, c + 2, 2, VIRTIO_PCI_MAX_VECTORS - 1);
	pci_config_set_wmask(&vp->pci, c + 2, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	pci_config_set(&vp->pci, c + 4, 4, VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR);
	pci_config_set(&vp->pci, c + 8, 4, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);
	return 0;
fail:
	virtio_pci_destroy(vp);
	return rc;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
		tern_vq_free(vp->q[i].vq);
		vp->q[i].vq = NULL;
	}
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->msix_lock);
}
