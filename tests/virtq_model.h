/*
 * A reference virtio driver for the virtqueue tests: it lays out a split
 * ring in "guest RAM" (an mmap with PROT_NONE guard pages around it and
 * between its two ranges), posts chains with direct and indirect
 * descriptors, kicks by the spec's rule, and reaps used elements.  It
 * keeps `shadow`, what RAM must hold: every driver write and every device
 * write the test expects goes there too, so any other write shows up.
 * Dirty marks are recorded per byte and must lie inside the used ring or
 * a writable buffer of a chain the device holds.
 */
#ifndef TERN_TESTS_VIRTQ_MODEL_H
#define TERN_TESTS_VIRTQ_MODEL_H

#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "tern/virtqueue.h"

#define M_FN static __attribute__((unused))
#define M_PAGE 4096u
#define M_RINGS 0x10000u /* ring area: desc at 0, then avail, then used */
#define M_ARENA 4608u    /* per head: a chain's buffers and indirect table */
#define M_ARENAS (M_RINGS + 3072u) /* head 0's arena holds a page boundary */
#define M_MAXSEG 8
#define M_QMAX 1024

struct m_seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

struct m_chain {
	struct m_seg seg[M_MAXSEG];
	unsigned nseg, ndesc;
	uint16_t desc[M_MAXSEG];  /* ring table entries it holds */
	bool posted, popped;
};

struct model {
	uint8_t *map;
	size_t map_len;
	uint8_t *host_a, *host_b; /* gpa [0, split) and [split, ram) */
	uint64_t ram, split;
	uint8_t *shadow, *dirty;
	struct tern_guest_range range[2];
	struct tern_guest_mem mem;
	uint16_t size;
	uint64_t features;
	uint64_t desc, avail, used;
	uint16_t avail_idx, pending, last_used;
	uint16_t freelist[M_QMAX];
	unsigned nfree;
	struct m_chain chain[M_QMAX];
	uint16_t fifo[65536]; /* heads in avail order, indexed by avail idx */
	uint16_t next_pop;
	bool dirty_strict; /* a dirty mark outside the allowed areas fails */
	bool unchecked;    /* the device's pops are not checked (threaded tests) */
	bool need_writable; /* random chains always have a writable part */
	/* Called after each dirty mark: a driver acting at that instant. */
	void (*on_dirty)(struct model *m, uint64_t gpa);
};

M_FN uint8_t *m_host(struct model *m, uint64_t gpa)
{
	assert_true(gpa < m->ram);
	return gpa < m->split ? m->host_a + gpa : m->host_b + (gpa - m->split);
}

/* Driver writes: RAM and shadow alike. */
M_FN void m_write(struct model *m, uint64_t gpa, const void *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*m_host(m, gpa + i) = ((const uint8_t *)src)[i];
		m->shadow[gpa + i] = ((const uint8_t *)src)[i];
	}
}

/* Ring fields are 2-aligned: one store, so a device thread never reads
 * half of one. */
M_FN void m_w16(struct model *m, uint64_t gpa, uint16_t v)
{
	assert_true(gpa % 2 == 0);
	__atomic_store_n((uint16_t *)(void *)m_host(m, gpa), htole16(v), __ATOMIC_RELAXED);
	m->shadow[gpa] = (uint8_t)v;
	m->shadow[gpa + 1] = (uint8_t)(v >> 8);
}

M_FN uint16_t m_r16(struct model *m, uint64_t gpa)
{
	return (uint16_t)(*m_host(m, gpa) | *m_host(m, gpa + 1) << 8);
}

M_FN uint32_t m_r32(struct model *m, uint64_t gpa)
{
	return (uint32_t)m_r16(m, gpa) | (uint32_t)m_r16(m, gpa + 2) << 16;
}

M_FN void m_wdesc(struct model *m, uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	uint8_t d[16];
	for (int k = 0; k < 8; k++)
		d[k] = (uint8_t)(addr >> (8 * k));
	for (int k = 0; k < 4; k++)
		d[8 + k] = (uint8_t)(len >> (8 * k));
	d[12] = (uint8_t)flags, d[13] = (uint8_t)(flags >> 8);
	d[14] = (uint8_t)next, d[15] = (uint8_t)(next >> 8);
	m_write(m, table + 16ULL * i, d, 16);
}

M_FN uint64_t m_canary(uint64_t gpa)
{
	return (uint8_t)((gpa * 0x9e3779b1u) >> 13) | 1;
}

/* Dirty marks must name RAM, and (when strict) the used ring or a
 * writable buffer of a chain the device popped and has not given back. */
M_FN void m_mark_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
	struct model *m = ctx;
	assert_true(len != 0 && gpa < m->ram && len <= m->ram - gpa);
	bool ok = gpa >= m->used && gpa + len <= m->used + TERN_VQ_USED_BYTES(m->size);
	for (unsigned h = 0; !ok && h < m->size; h++)
		for (unsigned s = 0; !ok && s < m->chain[h].nseg; s++) {
			const struct m_seg *g = &m->chain[h].seg[s];
			ok = m->chain[h].popped && g->w && gpa >= g->gpa && gpa + len <= g->gpa + g->len;
		}
	if (m->dirty_strict && !ok)
		fail_msg("dirty mark 0x%llx+0x%llx outside the used ring and the writable buffers",
			 (unsigned long long)gpa, (unsigned long long)len);
	memset(m->dirty + gpa, 1, len);
	if (m->on_dirty != NULL)
		m->on_dirty(m, gpa);
}

/* A ring of `size` at indices `start` (written into the ring as a driver
 * resuming there would find it). */
M_FN struct model *m_new(uint16_t size, uint64_t features, uint16_t start)
{
	struct model *m = calloc(1, sizeof *m);
	assert_non_null(m);
	m->size = size;
	m->features = features | TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1);
	m->ram = (M_ARENAS + (uint64_t)size * M_ARENA + M_PAGE - 1) / M_PAGE * M_PAGE;
	/* Split RAM in two ranges at a page where a low head's buffers lie
	 * (arena offsets 512 .. 1536; its table is below), when there is one. */
	m->split = m->ram;
	for (uint64_t p = (M_ARENAS + M_PAGE - 1) / M_PAGE * M_PAGE; p < m->ram; p += M_PAGE)
		if ((p - M_ARENAS) % M_ARENA >= 512 && (p - M_ARENAS) % M_ARENA <= 1536) {
			m->split = p;
			break;
		}
	m->map_len = m->ram + 3 * M_PAGE;
	m->map = mmap(NULL, m->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m->map != MAP_FAILED);
	m->host_a = m->map + M_PAGE;
	m->host_b = m->host_a + m->split + M_PAGE;
	assert_int_equal(mprotect(m->host_a, m->split, PROT_READ | PROT_WRITE), 0);
	if (m->split < m->ram)
		assert_int_equal(mprotect(m->host_b, m->ram - m->split, PROT_READ | PROT_WRITE), 0);
	m->shadow = malloc(m->ram);
	m->dirty = calloc(1, m->ram);
	assert_non_null(m->shadow);
	for (uint64_t g = 0; g < m->ram; g++)
		*m_host(m, g) = m->shadow[g] = (uint8_t)m_canary(g);
	m->range[0] = (struct tern_guest_range){ 0, m->split, m->host_a };
	m->range[1] = (struct tern_guest_range){ m->split, m->ram - m->split, m->host_b };
	m->mem = (struct tern_guest_mem){ m->range, m->split < m->ram ? 2 : 1, m_mark_dirty, m };
	m->desc = 0;
	m->avail = TERN_VQ_DESC_BYTES(size);
	m->used = (m->avail + TERN_VQ_AVAIL_BYTES(size) + 3) / 4 * 4;
	/* The driver zeroes the rings; the used idx is as the device left it. */
	uint8_t zero[16] = { 0 };
	for (uint64_t g = m->avail; g < m->used + TERN_VQ_USED_BYTES(size); g += 2)
		m_write(m, g, zero, 2);
	m_w16(m, m->avail + 2, start);
	m_w16(m, m->used + 2, start);
	m->avail_idx = m->last_used = m->next_pop = start;
	for (unsigned i = 0; i < size; i++)
		m->freelist[m->nfree++] = (uint16_t)(size - 1 - i);
	m->dirty_strict = true;
	return m;
}

M_FN void m_free(struct model *m)
{
	munmap(m->map, m->map_len);
	free(m->shadow);
	free(m->dirty);
	free(m);
}

M_FN struct tern_vq_config m_config(const struct model *m)
{
	return (struct tern_vq_config){ .size = m->size, .desc = m->desc, .avail = m->avail,
					.used = m->used, .features = m->features };
}

M_FN bool m_has(const struct model *m, int bit)
{
	return m->features & TERN_VIRTIO_BIT(bit);
}

/* RAM must equal the shadow outside the used ring. */
M_FN void m_check_ram(struct model *m)
{
	uint64_t ue = m->used + TERN_VQ_USED_BYTES(m->size);
	for (uint64_t g = 0; g < m->ram; g++) {
		if (g == m->used)
			g = ue;
		if (g < m->ram && *m_host(m, g) != m->shadow[g])
			fail_msg("guest RAM at 0x%llx changed outside the buffers",
				 (unsigned long long)g);
	}
}

/* Put entry `head` in the avail ring, unpublished. */
M_FN void m_avail_add(struct model *m, uint16_t head)
{
	uint16_t at = (uint16_t)(m->avail_idx + m->pending);
	m_w16(m, m->avail + 4 + 2ULL * (at & (m->size - 1)), head);
	m->fifo[at] = head;
	m->pending++;
}

/* Publish what was added; returns whether the driver must kick. */
M_FN bool m_publish(struct model *m)
{
	uint16_t old = m->avail_idx, now = (uint16_t)(old + m->pending);
	__atomic_store_n((uint16_t *)(void *)m_host(m, m->avail + 2), htole16(now),
			 __ATOMIC_RELEASE);
	m->shadow[m->avail + 2] = (uint8_t)now;
	m->shadow[m->avail + 3] = (uint8_t)(now >> 8);
	m->avail_idx = now;
	m->pending = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (m_has(m, TERN_VIRTIO_F_EVENT_IDX)) {
		uint16_t ev = m_r16(m, m->used + 4 + 8ULL * m->size);
		return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	}
	return !(m_r16(m, m->used) & TERN_VRING_USED_F_NO_NOTIFY);
}

/* Random chain shapes: rnd is the test's generator. */
typedef uint32_t (*m_rand_fn)(void);

/* Post a random chain (direct, indirect, or direct then indirect); false
 * when there are not enough free descriptors. */
M_FN bool m_add_random(struct model *m, m_rand_fn rnd)
{
	unsigned nout = rnd() % 4, nin = rnd() % 4 + m->need_writable;
	if (nout + nin == 0)
		nout = 1;
	unsigned nseg = nout + nin;
	bool ind = m_has(m, TERN_VIRTIO_F_INDIRECT_DESC) && rnd() % 3 == 0;
	unsigned ndirect = ind ? rnd() % nseg : nseg; /* then one naming the table */
	if (ind && nseg - ndirect > m->size) /* a table holds at most `size` too */
		ndirect = nseg - m->size;
	unsigned ndesc = ndirect + ind;
	if (ndesc > m->nfree || (!ind && nseg > m->size))
		return false;
	uint16_t d[M_MAXSEG + 1];
	for (unsigned i = 0; i < ndesc; i++)
		d[i] = m->freelist[--m->nfree];
	struct m_chain *c = &m->chain[d[0]];
	assert_false(c->posted);
	memset(c, 0, sizeof *c);
	c->nseg = nseg;
	c->ndesc = ndesc;
	memcpy(c->desc, d, ndesc * sizeof d[0]);
	uint64_t arena = M_ARENAS + (uint64_t)d[0] * M_ARENA, table = arena + 8 * (rnd() % 2);
	uint64_t at = arena + 256;
	for (unsigned s = 0; s < nseg; s++) {
		at += 1 + rnd() % 16; /* canaries between buffers */
		uint32_t len = 1 + rnd() % 400;
		c->seg[s] = (struct m_seg){ at, len, s >= nout };
		for (uint32_t k = 0; k < len; k++) {
			uint8_t v = (uint8_t)rnd();
			m_write(m, at + k, &v, 1);
		}
		at += len;
	}
	assert_true(at <= arena + M_ARENA);
	for (unsigned s = 0; s < nseg; s++) {
		const struct m_seg *g = &c->seg[s];
		uint16_t w = g->w ? TERN_VRING_DESC_F_WRITE : 0;
		if (s < ndirect) /* next: the following segment or the table's descriptor */
			m_wdesc(m, m->desc, d[s], g->gpa, g->len,
				(uint16_t)(w | (s + 1 < ndesc ? TERN_VRING_DESC_F_NEXT : 0)),
				s + 1 < ndesc ? d[s + 1] : (uint16_t)rnd());
		else
			m_wdesc(m, table, s - ndirect, g->gpa, g->len,
				(uint16_t)(w | (s + 1 < nseg ? TERN_VRING_DESC_F_NEXT : 0)),
				(uint16_t)(s - ndirect + 1));
	}
	if (ind) /* WRITE on the descriptor naming a table is to be ignored */
		m_wdesc(m, m->desc, d[ndirect], table, 16 * (nseg - ndirect),
			(uint16_t)(TERN_VRING_DESC_F_INDIRECT | (rnd() % 2 ? TERN_VRING_DESC_F_WRITE : 0)),
			(uint16_t)rnd());
	c->posted = true;
	m_avail_add(m, d[0]);
	return true;
}

/* Post a direct chain: 16 readable bytes, then 16 writable. */
M_FN uint16_t m_add_simple(struct model *m)
{
	assert_true(m->nfree >= 2);
	uint16_t d0 = m->freelist[--m->nfree], d1 = m->freelist[--m->nfree];
	struct m_chain *c = &m->chain[d0];
	assert_false(c->posted);
	uint64_t at = M_ARENAS + (uint64_t)d0 * M_ARENA + 100;
	*c = (struct m_chain){ .seg = { { at, 16, false }, { at + 20, 16, true } }, .nseg = 2,
			       .ndesc = 2, .desc = { d0, d1 }, .posted = true };
	m_wdesc(m, m->desc, d0, at, 16, TERN_VRING_DESC_F_NEXT, d1);
	m_wdesc(m, m->desc, d1, at + 20, 16, TERN_VRING_DESC_F_WRITE, 0);
	m_avail_add(m, d0);
	return d0;
}

/* The device popped e: it must be the next chain in avail order, with
 * exactly its buffers (split where RAM's ranges meet), reads first. */
M_FN void m_check_pop(struct model *m, const struct tern_vq_elem *e)
{
	assert_int_equal(e->head, m->fifo[m->next_pop]);
	m->next_pop++;
	struct m_chain *c = &m->chain[e->head];
	assert_true(c->posted && !c->popped);
	c->popped = true;
	unsigned k = 0;
	uint32_t out = 0, in = 0;
	for (unsigned s = 0; s < c->nseg; s++) {
		const struct m_seg *g = &c->seg[s];
		uint64_t gpa = g->gpa, left = g->len;
		while (left != 0) {
			uint64_t n = gpa < m->split && gpa + left > m->split ? m->split - gpa : left;
			assert_true(k < e->out_num + e->in_num);
			assert_int_equal(e->gpa[k], gpa);
			assert_ptr_equal(e->iov[k].iov_base, m_host(m, gpa));
			assert_int_equal(e->iov[k].iov_len, n);
			assert_int_equal(k >= e->out_num, g->w);
			gpa += n, left -= n, k++;
		}
		*(g->w ? &in : &out) += g->len;
	}
	assert_int_equal(k, e->out_num + e->in_num);
	assert_int_equal(e->out_len, out);
	assert_int_equal(e->in_len, in);
}

/* The device writes `written` bytes of pattern into e's writable part. */
M_FN void m_device_write(struct model *m, const struct tern_vq_elem *e, uint32_t written)
{
	const struct m_chain *c = &m->chain[e->head];
	uint32_t left = written, pos = 0;
	for (unsigned i = e->out_num; left != 0 && i < e->out_num + e->in_num; i++) {
		uint32_t n = e->iov[i].iov_len < left ? (uint32_t)e->iov[i].iov_len : left;
		for (uint32_t b = 0; b < n; b++)
			((uint8_t *)e->iov[i].iov_base)[b] = (uint8_t)(e->head * 7 + pos + b);
		pos += n, left -= n;
	}
	/* What the model expects, from its own record of the chain. */
	left = written, pos = 0;
	for (unsigned s = 0; left != 0 && s < c->nseg; s++) {
		if (!c->seg[s].w)
			continue;
		uint32_t n = c->seg[s].len < left ? c->seg[s].len : left;
		for (uint32_t b = 0; b < n; b++)
			m->shadow[c->seg[s].gpa + b] = (uint8_t)(e->head * 7 + pos + b);
		pos += n, left -= n;
	}
}

/* After push: the written bytes are marked dirty. */
M_FN void m_check_written_dirty(struct model *m, uint16_t head, uint32_t written)
{
	const struct m_chain *c = &m->chain[head];
	for (unsigned s = 0; written != 0 && s < c->nseg; s++) {
		if (!c->seg[s].w)
			continue;
		uint32_t n = c->seg[s].len < written ? c->seg[s].len : written;
		for (uint32_t b = 0; b < n; b++)
			assert_true(m->dirty[c->seg[s].gpa + b]);
		written -= n;
	}
}

/* The driver reaps one used element (0 when none): its id and len. */
M_FN int m_reap(struct model *m, uint16_t *id, uint32_t *len)
{
	uint16_t idx = le16toh(__atomic_load_n((uint16_t *)(void *)m_host(m, m->used + 2),
					       __ATOMIC_ACQUIRE));
	if (idx == m->last_used)
		return 0;
	uint64_t el = m->used + 4 + 8ULL * (m->last_used & (m->size - 1));
	*id = (uint16_t)m_r32(m, el);
	*len = m_r32(m, el + 4);
	m->last_used++;
	assert_true(*id < m->size);
	struct m_chain *c = &m->chain[*id];
	assert_true(c->posted && (c->popped || m->unchecked));
	for (unsigned i = c->ndesc; i-- > 0;)
		m->freelist[m->nfree++] = c->desc[i];
	c->posted = c->popped = false;
	return 1;
}

#endif
