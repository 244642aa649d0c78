/*
 * Split virtqueues, device side (virtio 1.x, "Split Virtqueues"): the ring
 * layout Linux's virtio_pci modern driver and QEMU's virtio-blk-pci use.
 * Packed virtqueues (VIRTIO_F_RING_PACKED) are out of scope, and so are
 * legacy (pre-1.0) drivers and VIRTIO_F_IN_ORDER: a queue refuses to start
 * with those negotiated.  No KVM here: guest memory is reached through
 * struct tern_guest_mem, which the VMM fills from its RAM map and tests
 * fill with malloc'd memory.  See docs/virtqueue.md.
 *
 * The driver is not trusted.  Any violation of the ring protocol found
 * while popping (a loop, an index or address out of range, a zero or
 * overflowing length, a device-readable descriptor after a device-writable
 * one, a nested indirect table, the avail index running more than the
 * queue size ahead) *breaks* the queue: it returns -EPROTO from then on,
 * writes nothing more into guest memory, and keeps a message saying what
 * the driver did.  That is virtio's DEVICE_NEEDS_RESET: the transport sets
 * the status bit and notifies the driver; only a reset (tern_vq_reset, then
 * tern_vq_start) clears it.  The device never writes outside the used ring
 * and the device-writable buffers the driver named.
 *
 * Threads.  One queue is driven by one I/O thread, which alone calls pop,
 * push, flush and set_notify.  start, reset and set_state are called while
 * that thread leaves the queue alone (the driver configures a queue from a
 * vCPU thread while it is disabled; a reset or a live update quiesces the
 * I/O thread first); the hand-over to the I/O thread (an eventfd, a mutex)
 * must order memory, which every such mechanism does.  The queue takes no
 * lock.  The guest memory's range list must not change while a queue that
 * uses it is started.
 *
 * Nothing on the pop/push path allocates: the caller supplies the vectors.
 */
#ifndef TERN_VIRTQUEUE_H
#define TERN_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tern/error.h"
#include "tern/vmstate.h"

/* Feature bit numbers (virtio 1.x, "Reserved Feature Bits"). */
#define TERN_VIRTIO_F_INDIRECT_DESC 28
#define TERN_VIRTIO_F_EVENT_IDX 29
#define TERN_VIRTIO_F_VERSION_1 32
#define TERN_VIRTIO_F_RING_PACKED 34 /* refused */
#define TERN_VIRTIO_F_IN_ORDER 35    /* refused */
#define TERN_VIRTIO_BIT(n) (1ULL << (n))

/* Ring layout, for drivers written in tests. */
#define TERN_VRING_DESC_F_NEXT 1
#define TERN_VRING_DESC_F_WRITE 2
#define TERN_VRING_DESC_F_INDIRECT 4
#define TERN_VRING_AVAIL_F_NO_INTERRUPT 1
#define TERN_VRING_USED_F_NO_NOTIFY 1
#define TERN_VQ_MAX_SIZE 32768
#define TERN_VQ_DESC_SIZE 16
#define TERN_VQ_DESC_BYTES(size) (16ULL * (size))
#define TERN_VQ_AVAIL_BYTES(size) (6ULL + 2ULL * (size))
#define TERN_VQ_USED_BYTES(size) (6ULL + 8ULL * (size))

/* ------------------------------------------------------------ guest memory */

/* Guest RAM as host-mapped ranges: gpa .. gpa+len-1 is at host .. host+len-1. */
struct tern_guest_range {
	uint64_t gpa;
	uint64_t len;
	void *host;
};

struct tern_guest_mem {
	const struct tern_guest_range *ranges; /* sorted by gpa, disjoint */
	size_t count;
	/* Called for every byte the device writes into guest memory (used
	 * ring, device-writable buffers), after the write, so that migration
	 * sees it.  NULL when nothing tracks dirty memory. */
	void (*mark_dirty)(void *ctx, uint64_t gpa, uint64_t len);
	void *ctx;
};

/* 0, or -EINVAL with a message: empty or wrapping ranges, NULL host
 * pointers, ranges out of order or overlapping. */
int tern_guest_mem_check(const struct tern_guest_mem *m, struct tern_error *err);

/* The host address of gpa .. gpa+len-1 when all of it lies in one range
 * (no copy), else NULL: ranges outside RAM or straddling a range's end
 * are refused.  len 0 is refused too. */
void *tern_guest_mem_map(const struct tern_guest_mem *m, uint64_t gpa, uint64_t len);

/* How much of gpa .. gpa+len-1, from gpa on, lies in the one range that
 * holds gpa (1 .. len), with its host address in *host; 0 when gpa is
 * outside RAM.  A buffer over two adjacent ranges takes two calls. */
uint64_t tern_guest_mem_span(const struct tern_guest_mem *m, uint64_t gpa, uint64_t len,
			     void **host);

static inline void tern_guest_mem_dirty(const struct tern_guest_mem *m, uint64_t gpa,
					uint64_t len)
{
	if (m->mark_dirty != NULL && len != 0)
		m->mark_dirty(m->ctx, gpa, len);
}

/* ------------------------------------------------------------ the queue */

struct tern_vq;

/* What the driver configured: the three parts' guest-physical addresses
 * (descriptor area, driver area, device area), the size it chose, and the
 * features negotiated for the device (bits other than the ones above are
 * the device's business and ignored here). */
struct tern_vq_config {
	uint16_t size; /* a power of two, 1 .. the queue's max_size (at most 32768) */
	uint64_t desc, avail, used; /* aligned to 16, 2, 4 */
	uint64_t features;
};

/* A stopped queue of at most max_size (1 .. 32768) entries over `mem`,
 * which must outlive it.  NULL on bad arguments or no memory. */
struct tern_vq *tern_vq_new(const struct tern_guest_mem *mem, uint32_t max_size);
void tern_vq_free(struct tern_vq *vq);

/* Start the queue (the driver wrote queue_enable = 1) at indices 0.  0, or
 * -EINVAL with a message saying what is wrong with the configuration (the
 * queue stays stopped): a size that is not a power of two or is too large,
 * misaligned parts, a part not inside one range of guest RAM, VERSION_1
 * not negotiated, or PACKED / IN_ORDER negotiated. */
int tern_vq_start(struct tern_vq *vq, const struct tern_vq_config *cfg, struct tern_error *err);

/* Back to stopped, not broken, indices 0.  The device must have finished
 * (or dropped) every request it popped: nothing may be pushed after. */
void tern_vq_reset(struct tern_vq *vq);

bool tern_vq_started(const struct tern_vq *vq);
bool tern_vq_broken(const struct tern_vq *vq);
/* What the driver did to break the queue ("" when it is not broken). */
const char *tern_vq_broken_reason(const struct tern_vq *vq);
/* Popped and not yet pushed. */
uint32_t tern_vq_inflight(const struct tern_vq *vq);

/*
 * One request.  The caller points iov and gpa at arrays of `max` entries
 * before popping; pop fills iov[0 .. out_num) with the device-readable
 * segments, then iov[out_num .. out_num + in_num) with the device-writable
 * ones, and gpa[i] with each segment's guest address.  A descriptor over
 * two adjacent ranges of guest RAM takes two segments, so max = queue size
 * + the number of ranges is enough for any chain a correct driver makes.
 * Zero-length descriptors are an error (as in QEMU: Linux never makes
 * them, and a chain of them would cost work for no bytes).
 */
struct tern_vq_elem {
	struct iovec *iov; /* caller's */
	uint64_t *gpa;     /* caller's */
	unsigned max;      /* entries in iov and gpa, at least 1 */
	unsigned out_num, in_num;
	uint32_t out_len, in_len; /* bytes; a chain holds at most 4 GiB - 1 in all */
	uint16_t head;            /* the chain's id, given back by push */
};

/* The next request: 1 with *e filled, 0 when the ring is empty (or the
 * queue is stopped), -EPROTO when the queue is or just became broken,
 * -EINVAL for a bad elem (no vectors).  Reads the avail index with acquire
 * ordering, so the descriptors the driver wrote before it are seen.  When
 * it finds the ring empty with notifications enabled and EVENT_IDX on, it
 * sets avail_event so the driver's next buffer kicks. */
int tern_vq_pop(struct tern_vq *vq, struct tern_vq_elem *e);

/* Hand a popped request back: `written` bytes (at most e->in_len) were
 * written from the start of its device-writable part.  Marks those bytes
 * dirty and writes the used element, which the driver sees only at the
 * next flush.  Requests may be pushed in any order.  0; -EINVAL for a
 * device bug (nothing in flight, written > in_len: nothing is written);
 * -EPROTO on a broken queue (counted as done, nothing written). */
int tern_vq_push(struct tern_vq *vq, const struct tern_vq_elem *e, uint32_t written);

/* Publish the used elements pushed since the last flush (used idx, with
 * release ordering: the elements and buffers first) and say whether the
 * driver wants a notification for them: with EVENT_IDX, when the used
 * index passed used_event; without, unless the driver set
 * VRING_AVAIL_F_NO_INTERRUPT.  Nothing new, or a broken queue: false. */
bool tern_vq_flush(struct tern_vq *vq);

/* Ask for (enable) or stop asking for (!enable) driver notifications:
 * VRING_USED_F_NO_NOTIFY without EVENT_IDX, avail_event with it.  On
 * enable, returns true when buffers are already waiting (the driver may
 * have added them before it saw the change: pop them, the kick will not
 * come); false otherwise. */
bool tern_vq_set_notify(struct tern_vq *vq, bool enable);

/* ------------------------------------------------------------ state */

/*
 * What resumes a queue elsewhere (live migration, live update).  The rings
 * themselves are guest memory and travel with it.  In-flight requests are
 * not carried: the device completes (pushes and flushes) every request
 * before its state is saved, so last_avail_idx == used_idx unless broken.
 * A stopped queue saves all zero; its transport carries the addresses the
 * driver wrote before enabling it.
 */
struct tern_vq_state {
	uint64_t features;
	uint64_t desc, avail, used;
	uint16_t size;
	uint16_t last_avail_idx; /* next avail entry the device takes */
	uint16_t used_idx;       /* used idx as published */
	bool started;
	bool broken;
	bool notify; /* driver notifications enabled (tern_vq_set_notify) */
};

/* Its vmstate description ("virtqueue", version 1); its post_load
 * rejects shapes no queue can have.  Devices put it in their own state as
 * a TERN_VMS_STRUCT (or an array of them). */
extern const struct tern_vmstate_desc tern_vq_state_desc;

/* Fill *s.  -EBUSY with a message while requests are in flight or pushed
 * and not flushed. */
int tern_vq_get_state(const struct tern_vq *vq, struct tern_vq_state *s, struct tern_error *err);

/* Reset the queue and resume it from *s: 0, or -EINVAL with a message (the
 * queue is then stopped).  After resuming a started queue, the device
 * should call tern_vq_set_notify(vq, notify) and pop once, as if kicked:
 * a kick may have been lost in the move. */
int tern_vq_set_state(struct tern_vq *vq, const struct tern_vq_state *s, struct tern_error *err);

#endif
