/*
 * The split virtqueue's insides, shared by virtqueue.c (start, push,
 * flush, notifications), pop.c (walking chains) and state.c.
 *
 * Names used here:
 *
 *  desc, avail, used  the three parts in guest memory (descriptor table,
 *            driver area, device area); *_gpa their guest addresses, the
 *            bare names their host addresses, mapped once at start.
 *  last_avail  the next avail ring entry the device takes (free-running,
 *            wraps at 2^16 like every index here).
 *  avail_seen  the driver's avail idx as last read; entries between
 *            last_avail and it are known and need no read of idx.
 *  used_next   where the next pushed element goes; used_pub the used idx
 *            the driver can see (published by flush).
 *  inflight  popped and not pushed.
 *  notify    whether the device wants kicks (set_notify).
 *  event     avail_event as last written (event_set: written since start).
 *
 * Guest memory is little-endian (VERSION_1 is required) and shared with a
 * driver that may change it at any time: each field is read once into a
 * local and checked there.
 */
#ifndef TERN_LIB_VIRTIO_VQ_H
#define TERN_LIB_VIRTIO_VQ_H

#include <endian.h>
#include <string.h>

#include "tern/virtqueue.h"

struct tern_vq {
	const struct tern_guest_mem *mem;
	uint32_t max_size;

	/* Fixed while started. */
	bool started, event_idx, indirect;
	uint16_t size;
	uint64_t features, desc_gpa, avail_gpa, used_gpa;
	const uint8_t *desc, *avail;
	uint8_t *used;

	/* The I/O thread's. */
	uint16_t last_avail, avail_seen, used_next, used_pub, event;
	uint32_t inflight;
	bool broken, notify, event_set, flags_set, signalled_valid;
	uint16_t flags; /* used->flags as last written, when flags_set */
	struct tern_error why;
};

/* Offsets inside the parts. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING(i) (4 + 2 * (size_t)(i))
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING(i) (4 + 8 * (size_t)(i))

/* Aligned 16- and 32-bit ring fields (start checks the host alignment). */
static inline uint16_t vq_load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, order));
}

static inline void vq_store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), order);
}

static inline void vq_store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, htole32(v), __ATOMIC_RELAXED);
}

/* Mark the queue broken with a message; returns -EPROTO. */
int vq_break(struct tern_vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
