/*
 * Popping a request: from the next avail entry, walk the chain (and at
 * most one indirect table) into the caller's vectors.  Every check a
 * hostile driver can fail breaks the queue here, before last_avail moves,
 * and nothing in this file writes guest memory except avail_event.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "vq.h"

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* One read of a descriptor the driver may be rewriting: the copy is what
 * gets checked and used (the fence keeps the compiler from reading the
 * guest's copy again).  Indirect tables need not be 16-aligned. */
static struct desc read_desc(const uint8_t *p)
{
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} raw;
	memcpy(&raw, p, sizeof raw);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return (struct desc){ le64toh(raw.addr), le32toh(raw.len), le16toh(raw.flags),
			      le16toh(raw.next) };
}

/* Where the walk is, for messages: "chain 3, descriptor 5" or "chain 3,
 * descriptor 2 of the indirect table in descriptor 5". */
struct where {
	uint16_t head;
	uint32_t i, via;
	bool indirect;
	char text[80];
};

static const char *at(struct where *w)
{
	if (w->indirect)
		snprintf(w->text, sizeof w->text, "chain %u, descriptor %" PRIu32 " of the indirect "
			 "table in descriptor %" PRIu32, w->head, w->i, w->via);
	else
		snprintf(w->text, sizeof w->text, "chain %u, descriptor %" PRIu32, w->head, w->i);
	return w->text;
}

/* Append one buffer to the vectors, split at range boundaries. */
static int add_buffer(struct tern_vq *vq, struct tern_vq_elem *e, struct where *w,
		      const struct desc *d, uint64_t *total)
{
	bool writable = d->flags & TERN_VRING_DESC_F_WRITE;
	if (d->len == 0)
		return vq_break(vq, "%s has length 0", at(w));
	if (!writable && e->in_num != 0)
		return vq_break(vq, "%s is device-readable after a device-writable one",
				at(w));
	*total += d->len;
	if (*total > UINT32_MAX)
		return vq_break(vq, "%s takes the chain past 4 GiB", at(w));
	if (d->addr > UINT64_MAX - (d->len - 1))
		return vq_break(vq, "%s (0x%" PRIx64 "+0x%" PRIx32 ") wraps past 2^64",
				at(w), d->addr, d->len);
	uint64_t gpa = d->addr, left = d->len;
	while (left != 0) {
		void *host;
		uint64_t n = tern_guest_mem_span(vq->mem, gpa, left, &host);
		if (n == 0)
			return vq_break(vq, "%s (0x%" PRIx64 "+0x%" PRIx32 ") is not all in "
					"guest RAM (0x%" PRIx64 " is outside)", at(w),
					d->addr, d->len, gpa);
		unsigned k = e->out_num + e->in_num;
		if (k == e->max)
			return vq_break(vq, "%s needs more than the device's %u segments",
					at(w), e->max);
		e->iov[k] = (struct iovec){ .iov_base = host, .iov_len = (size_t)n };
		e->gpa[k] = gpa;
		if (writable)
			e->in_num++;
		else
			e->out_num++;
		gpa += n;
		left -= n;
	}
	if (writable)
		e->in_len += d->len;
	else
		e->out_len += d->len;
	return 0;
}

/* Switch the walk to the indirect table d names. */
static int enter_indirect(struct tern_vq *vq, struct where *w, const struct desc *d,
			  const uint8_t **table, uint32_t *entries)
{
	if (!vq->indirect)
		return vq_break(vq, "%s is indirect, but VIRTIO_F_INDIRECT_DESC was not "
				"negotiated", at(w));
	if (w->indirect)
		return vq_break(vq, "%s is indirect inside an indirect table (nesting is "
				"not allowed)", at(w));
	if (d->flags & TERN_VRING_DESC_F_NEXT)
		return vq_break(vq, "%s has both INDIRECT and NEXT", at(w));
	if (d->len == 0 || d->len % TERN_VQ_DESC_SIZE != 0)
		return vq_break(vq, "%s names an indirect table of %" PRIu32 " bytes, not "
				"a positive multiple of 16", at(w), d->len);
	*table = tern_guest_mem_map(vq->mem, d->addr, d->len);
	if (*table == NULL)
		return vq_break(vq, "%s names an indirect table (0x%" PRIx64 "+0x%" PRIx32
				") not inside one range of guest RAM", at(w), d->addr,
				d->len);
	*entries = d->len / TERN_VQ_DESC_SIZE;
	w->via = w->i;
	w->indirect = true;
	w->i = 0;
	return 0;
}

/*
 * A chain is at most `size` descriptors in the ring's table, and at most
 * min(table entries, size) in an indirect one (Linux puts up to the queue
 * size there, plus the one descriptor naming the table): past that it
 * loops, or is longer than the spec allows.
 */
static int walk(struct tern_vq *vq, struct tern_vq_elem *e)
{
	const uint8_t *table = vq->desc;
	uint32_t entries = vq->size, walked = 0;
	struct where w = { .head = e->head, .i = e->head };
	uint64_t total = 0;
	for (;;) {
		uint32_t limit = entries < vq->size ? entries : vq->size;
		if (walked++ == limit)
			return vq_break(vq, "chain %u is longer than %" PRIu32 " descriptors%s (a "
					"loop?)", e->head, limit,
					w.indirect ? " in its indirect table" : "");
		struct desc d = read_desc(table + (size_t)w.i * TERN_VQ_DESC_SIZE);
		if (d.flags & TERN_VRING_DESC_F_INDIRECT) {
			int r = enter_indirect(vq, &w, &d, &table, &entries);
			if (r < 0)
				return r;
			walked = 0;
			continue;
		}
		int r = add_buffer(vq, e, &w, &d, &total);
		if (r < 0)
			return r;
		if (!(d.flags & TERN_VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= entries)
			return vq_break(vq, "%s has next %u, past the table's %" PRIu32
					" entries", at(&w), d.next, entries);
		w.i = d.next;
	}
}

/* Read the driver's avail idx: > 0 when entries wait, 0 when empty. */
static int refresh(struct tern_vq *vq)
{
	uint16_t idx = vq_load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
	if (idx == vq->last_avail && vq->notify && vq->event_idx &&
	    (!vq->event_set || vq->event != idx)) {
		/* Empty: ask for a kick at the next entry, then look again in
		 * case the driver added one before it could see the request. */
		vq_store16(vq->used + USED_RING(vq->size), idx, __ATOMIC_RELAXED);
		tern_guest_mem_dirty(vq->mem, vq->used_gpa + USED_RING(vq->size), 2);
		vq->event = idx;
		vq->event_set = true;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		idx = vq_load16(vq->avail + AVAIL_IDX, __ATOMIC_ACQUIRE);
	}
	uint16_t ahead = (uint16_t)(idx - vq->last_avail);
	if (ahead > vq->size)
		return vq_break(vq, "the driver's avail idx jumped to %u, %u entries past %u: "
				"more than the queue's %u", idx, ahead, vq->last_avail, vq->size);
	vq->avail_seen = idx;
	return ahead != 0;
}

int tern_vq_pop(struct tern_vq *vq, struct tern_vq_elem *e)
{
	if (!vq->started)
		return 0;
	if (vq->broken)
		return -EPROTO;
	if (e == NULL || e->iov == NULL || e->gpa == NULL || e->max == 0)
		return -EINVAL;
	if (vq->last_avail == vq->avail_seen) {
		int r = refresh(vq);
		if (r <= 0)
			return r;
	}
	/* A driver reuses a chain's descriptors only once it is used, so it
	 * can never have more than `size` chains the driver cannot see back. */
	uint16_t outstanding = (uint16_t)(vq->last_avail - vq->used_pub);
	if (outstanding >= vq->size)
		return vq_break(vq, "the driver made more than %u buffers available at once",
				vq->size);
	uint16_t slot = vq->last_avail & (uint16_t)(vq->size - 1);
	uint16_t head = vq_load16(vq->avail + AVAIL_RING(slot), __ATOMIC_RELAXED);
	if (head >= vq->size)
		return vq_break(vq, "avail entry %u names descriptor %u, past the queue's %u",
				vq->last_avail, head, vq->size);
	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	int r = walk(vq, e);
	if (r < 0)
		return r;
	vq->last_avail++;
	vq->inflight++;
	return 1;
}
