/*
 * Split virtqueue, device side: start and reset, push and flush of used
 * elements, notification suppression both ways.  Popping is in pop.c, the
 * state a migration carries in state.c; the names are in vq.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "vq.h"

int vq_break(struct tern_vq *vq, const char *fmt, ...)
{
	if (!vq->broken) { /* the first violation is the one worth reading */
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vq->why.msg, sizeof vq->why.msg, fmt, ap);
		va_end(ap);
		vq->broken = true;
	}
	return -EPROTO;
}

struct tern_vq *tern_vq_new(const struct tern_guest_mem *mem, uint32_t max_size)
{
	if (mem == NULL || max_size == 0 || max_size > TERN_VQ_MAX_SIZE ||
	    tern_guest_mem_check(mem, NULL) < 0)
		return NULL;
	struct tern_vq *vq = calloc(1, sizeof *vq);
	if (vq == NULL)
		return NULL;
	vq->mem = mem;
	vq->max_size = max_size;
	return vq;
}

void tern_vq_free(struct tern_vq *vq)
{
	free(vq);
}

void tern_vq_reset(struct tern_vq *vq)
{
	const struct tern_guest_mem *mem = vq->mem;
	uint32_t max_size = vq->max_size;
	memset(vq, 0, sizeof *vq);
	vq->mem = mem;
	vq->max_size = max_size;
}

/* Map one part of the ring; NULL with a message.  The host address needs
 * host_align for the atomics on ring fields (descriptors are copied). */
static void *map_part(const struct tern_vq *vq, const char *what, uint64_t gpa, uint64_t len,
		      unsigned align, unsigned host_align, struct tern_error *err)
{
	if (gpa % align != 0) {
		tern_errorf(err, -EINVAL, "the %s at 0x%" PRIx64 " is not %u-byte aligned", what, gpa,
			    align);
		return NULL;
	}
	void *host = tern_guest_mem_map(vq->mem, gpa, len);
	if (host == NULL)
		tern_errorf(err, -EINVAL, "the %s at 0x%" PRIx64 " (%" PRIu64 " bytes) is not inside "
			    "one range of guest RAM", what, gpa, len);
	else if ((uintptr_t)host % host_align != 0) /* RAM is page-mapped: never */
		tern_errorf(err, -EINVAL, "the %s's host mapping %p is not %u-byte aligned", what,
			    host, host_align);
	return host != NULL && (uintptr_t)host % host_align == 0 ? host : NULL;
}

int tern_vq_start(struct tern_vq *vq, const struct tern_vq_config *c, struct tern_error *err)
{
	tern_vq_reset(vq);
	if (c->size == 0 || (c->size & (c->size - 1)) != 0 || c->size > vq->max_size)
		return tern_errorf(err, -EINVAL, "queue size %u is not a power of two from 1 to %"
				   PRIu32, c->size, vq->max_size);
	if (!(c->features & TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1)))
		return tern_errorf(err, -EINVAL, "the driver did not negotiate VIRTIO_F_VERSION_1: "
				   "legacy virtio is not supported, use a virtio 1.x driver");
	if (c->features & (TERN_VIRTIO_BIT(TERN_VIRTIO_F_RING_PACKED) |
			   TERN_VIRTIO_BIT(TERN_VIRTIO_F_IN_ORDER)))
		return tern_errorf(err, -EINVAL, "VIRTIO_F_RING_PACKED and VIRTIO_F_IN_ORDER are not "
				   "supported: the device must not offer them");
	const uint8_t *desc = map_part(vq, "descriptor table", c->desc,
				       TERN_VQ_DESC_BYTES(c->size), 16, 1, err);
	const uint8_t *avail = desc == NULL ? NULL : map_part(vq, "avail ring", c->avail,
							       TERN_VQ_AVAIL_BYTES(c->size), 2, 2, err);
	uint8_t *used = avail == NULL ? NULL : map_part(vq, "used ring", c->used,
							 TERN_VQ_USED_BYTES(c->size), 4, 4, err);
	if (used == NULL)
		return -EINVAL;
	vq->size = c->size;
	vq->features = c->features;
	vq->event_idx = c->features & TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	vq->indirect = c->features & TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC);
	vq->desc_gpa = c->desc;
	vq->avail_gpa = c->avail;
	vq->used_gpa = c->used;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->notify = true; /* the driver zeroed used->flags: kicks are on */
	vq->signalled_valid = true;
	vq->started = true;
	return 0;
}

bool tern_vq_started(const struct tern_vq *vq)
{
	return vq->started;
}

bool tern_vq_broken(const struct tern_vq *vq)
{
	return vq->broken;
}

const char *tern_vq_broken_reason(const struct tern_vq *vq)
{
	return vq->broken ? vq->why.msg : "";
}

uint32_t tern_vq_inflight(const struct tern_vq *vq)
{
	return vq->inflight;
}

/* Mark the first `written` bytes of e's device-writable part dirty. */
static void mark_written(const struct tern_vq *vq, const struct tern_vq_elem *e,
			 uint32_t written)
{
	for (unsigned i = e->out_num; written != 0 && i < e->out_num + e->in_num; i++) {
		uint64_t n = e->iov[i].iov_len < written ? e->iov[i].iov_len : written;
		tern_guest_mem_dirty(vq->mem, e->gpa[i], n);
		written -= (uint32_t)n;
	}
}

int tern_vq_push(struct tern_vq *vq, const struct tern_vq_elem *e, uint32_t written)
{
	if (!vq->started || vq->inflight == 0 || written > e->in_len)
		return -EINVAL;
	vq->inflight--;
	if (vq->broken)
		return -EPROTO;
	mark_written(vq, e, written);
	uint8_t *el = vq->used + USED_RING(vq->used_next & (uint16_t)(vq->size - 1));
	vq_store32(el, e->head);
	vq_store32(el + 4, written);
	vq->used_next++;
	return 0;
}

/* Mark used elements from..to-1 (ring positions, free-running) dirty. */
static void mark_used(const struct tern_vq *vq, uint16_t from, uint16_t to)
{
	uint32_t n = (uint16_t)(to - from), first = from & (uint16_t)(vq->size - 1);
	if (n > vq->size) /* pushed past a lap unflushed: all of them changed */
		n = vq->size;
	uint32_t run = n < vq->size - first ? n : vq->size - first;
	tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_RING(first), 8ULL * run);
	tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_RING(0), 8ULL * (n - run));
}

/* The driver asks for a notification when the used idx passes used_event:
 * that is, when one of the entries old .. new-1 is used_event. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool tern_vq_flush(struct tern_vq *vq)
{
	if (!vq->started || vq->broken || vq->used_next == vq->used_pub)
		return false;
	uint16_t old = vq->used_pub, now = vq->used_next;
	/* Release: the elements and the buffers they name before the idx. */
	vq_store16(vq->used + USED_IDX, now, __ATOMIC_RELEASE);
	mark_used(vq, old, now);
	tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_IDX, 2);
	vq->used_pub = now;
	/* The idx store before the read of the driver's wishes, as the driver
	 * orders its read of idx after writing them: else both may miss. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		uint16_t event = vq_load16(vq->avail + AVAIL_RING(vq->size), __ATOMIC_RELAXED);
		bool valid = vq->signalled_valid;
		vq->signalled_valid = true;
		return !valid || need_event(event, now, old);
	}
	return !(vq_load16(vq->avail + AVAIL_FLAGS, __ATOMIC_RELAXED) &
		 TERN_VRING_AVAIL_F_NO_INTERRUPT);
}

bool tern_vq_set_notify(struct tern_vq *vq, bool enable)
{
	if (!vq->started || vq->broken)
		return false;
	vq->notify = enable;
	if (!vq->event_idx) {
		/* With EVENT_IDX the device must leave used->flags at 0. */
		uint16_t flags = enable ? 0 : TERN_VRING_USED_F_NO_NOTIFY;
		if (!vq->flags_set || vq->flags != flags) {
			vq_store16(vq->used + USED_FLAGS, flags, __ATOMIC_RELAXED);
			tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_FLAGS, 2);
			vq->flags = flags;
			vq->flags_set = true;
		}
	} else if (enable && (!vq->event_set || vq->event != vq->avail_seen)) {
		/* Disabling needs no write: the driver kicks at most once more. */
		vq_store16(vq->used + USED_RING(vq->size), vq->avail_seen, __ATOMIC_RELAXED);
		tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_RING(vq->size), 2);
		vq->event = vq->avail_seen;
		vq->event_set = true;
	}
	if (!enable)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* as in flush, the other way */
	return vq->last_avail != vq->avail_seen ||
	       vq_load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE) != vq->last_avail;
}
