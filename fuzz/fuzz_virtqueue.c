/*
 * libFuzzer target: a split virtqueue over guest RAM the fuzzer writes.
 *
 * Input: a 12-byte header choosing the queue (size, features, start
 * index, the avail idx, how RAM is split in two ranges with a hole between
 * them, the device's segment limit and habits), then guest RAM: the
 * descriptor table at 0, the avail ring after it, the used ring after
 * that, and whatever follows (buffers, indirect tables).  RAM is a
 * malloc'd block of exactly its size, so ASan sees any access past it.
 *
 * The device pops until the ring is empty or the queue breaks, writes
 * every writable byte it was given, pushes (some out of order), flushes,
 * and at the end saves its state and resumes a second queue from it.
 * Checked: every segment lies in RAM where its guest address says; every
 * dirty mark and every changed byte of RAM lies in the used ring or in a
 * writable buffer a popped chain named; a broken queue stays broken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 12
#define MAXSEG 24

struct ctx {
	uint8_t *ram;
	size_t ram_len;
	uint64_t split, hole; /* range B starts at gpa split + hole */
	struct tern_guest_range r[2];
	struct tern_guest_mem mem;
	uint64_t avail, used, used_len;
	uint8_t *before; /* RAM as the driver wrote it */
	uint16_t qsize;
	uint8_t *ok; /* per RAM byte: in the used ring or a writable buffer named so far */
};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_virtqueue: %s\n", what);
	abort();
}

/* Guest address of RAM offset `off`. */
static uint64_t gpa_of(const struct ctx *c, uint64_t off)
{
	return off < c->split ? off : off + c->hole;
}

static void on_dirty(void *p, uint64_t gpa, uint64_t len)
{
	struct ctx *c = p;
	void *host;
	if (tern_guest_mem_span(&c->mem, gpa, len, &host) != len)
		die("dirty mark outside one range of guest RAM");
	for (uint64_t i = 0; i < len; i++)
		if (!c->ok[(uint8_t *)host - c->ram + i])
			die("dirty mark outside the used ring and the writable buffers");
}

/* A popped request: each segment where its guest address maps; note the
 * writable ones; write all of them. */
static void take(struct ctx *c, const struct tern_vq_elem *e, uint8_t fill)
{
	if (e->out_num + e->in_num > e->max || e->out_num + e->in_num == 0)
		die("segment count");
	uint64_t in = 0, out = 0;
	for (unsigned k = 0; k < e->out_num + e->in_num; k++) {
		uint8_t *p = e->iov[k].iov_base;
		size_t n = e->iov[k].iov_len;
		if (n == 0 || p < c->ram || p > c->ram + c->ram_len || n > (size_t)(c->ram + c->ram_len - p))
			die("segment outside guest RAM");
		if (gpa_of(c, (uint64_t)(p - c->ram)) != e->gpa[k])
			die("segment's host address is not where its guest address maps");
		if (k < e->out_num) {
			out += n;
			continue;
		}
		in += n;
		memset(c->ok + (p - c->ram), 1, n);
		memset(p, fill, n);
	}
	if (in != e->in_len || out != e->out_len)
		die("lengths do not add up");
}

struct held {
	struct tern_vq_elem e;
	struct iovec iov[MAXSEG];
	uint64_t gpa[MAXSEG];
};

static void run(struct ctx *c, struct tern_vq *vq, const uint8_t *h, unsigned max)
{
	struct held held[8];
	unsigned nheld = 0, rounds = 0;
	for (;;) {
		struct held *x = &held[nheld];
		x->e = (struct tern_vq_elem){ .iov = x->iov, .gpa = x->gpa, .max = max };
		int r = tern_vq_pop(vq, &x->e);
		if (r < 0) {
			if (r != -EPROTO || !tern_vq_broken(vq) || tern_vq_broken_reason(vq)[0] == '\0')
				die("a failed pop must break the queue with a reason");
			if (tern_vq_pop(vq, &x->e) != -EPROTO || tern_vq_flush(vq))
				die("a broken queue must stay broken");
			break;
		}
		if (r == 0) {
			if ((h[5] & 0x40) && tern_vq_set_notify(vq, true) && rounds++ < 4)
				continue;
			if ((h[1] & 0x10) && rounds++ < 4) { /* the driver posts again */
				uint16_t idx;
				memcpy(&idx, c->ram + c->avail + 2, 2);
				idx = (uint16_t)(idx + 1 + h[10] % (c->qsize + 1u));
				memcpy(c->ram + c->avail + 2, &idx, 2);
				memcpy(c->before + c->avail + 2, &idx, 2);
				continue;
			}
			break;
		}
		take(c, &x->e, (uint8_t)(0xa0 + nheld));
		/* Hold up to a few, then complete them newest first. */
		if (++nheld == 1 + (h[5] & 7) || nheld == 8) {
			while (nheld > 0) {
				struct held *y = &held[--nheld];
				uint32_t w = (h[5] & 0x80) ? y->e.in_len : y->e.in_len / 2;
				if (tern_vq_push(vq, &y->e, w) != 0)
					die("push of a popped request failed");
			}
			if (h[5] & 0x10)
				tern_vq_flush(vq);
			if (h[5] & 0x20)
				tern_vq_set_notify(vq, (h[5] ^ nheld) & 1);
		}
	}
	while (nheld > 0) { /* late completions on a broken queue are counted */
		struct held *y = &held[--nheld];
		int r = tern_vq_push(vq, &y->e, y->e.in_len);
		if (r != 0 && !(r == -EPROTO && tern_vq_broken(vq)))
			die("late push");
	}
	tern_vq_flush(vq);
	if (tern_vq_inflight(vq) != 0)
		die("requests left in flight");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	const uint8_t *h = data;
	uint16_t qsize = (uint16_t)(1u << ((h[0] & 0x0f) % 6)); /* 1 .. 32 */
	uint64_t features = TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1);
	if (h[1] & 1)
		features |= TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC);
	if (h[1] & 2)
		features |= TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	uint16_t start = (uint16_t)(h[2] | h[3] << 8);
	unsigned max = 1 + h[4] % MAXSEG;
	uint64_t desc = 0, avail = TERN_VQ_DESC_BYTES(qsize);
	uint64_t used = (avail + TERN_VQ_AVAIL_BYTES(qsize) + 3) / 4 * 4;
	uint64_t rings = used + TERN_VQ_USED_BYTES(qsize);

	struct ctx c = { .avail = avail, .used = used, .used_len = TERN_VQ_USED_BYTES(qsize),
			 .qsize = qsize };
	c.ram_len = size - HDR > rings + 64 ? size - HDR : rings + 64;
	c.ram = malloc(c.ram_len);
	c.ok = calloc(1, c.ram_len);
	uint8_t *before = malloc(c.ram_len);
	if (c.ram == NULL || c.ok == NULL || before == NULL)
		abort();
	c.before = before;
	memset(c.ok + used, 1, c.used_len);
	memset(c.ram, 0, c.ram_len);
	memcpy(c.ram, data + HDR, size - HDR);
	/* The avail idx the driver published, up to 2 * size ahead; the used
	 * idx where the device left it. */
	uint16_t aidx = (uint16_t)(start + h[9] % (2u * qsize + 1));
	memcpy(c.ram + avail + 2, &aidx, 2);
	memcpy(c.ram + used + 2, &start, 2);
	memcpy(before, c.ram, c.ram_len);

	/* One range, or two with a hole between (after the rings). */
	c.split = c.ram_len;
	uint64_t tail = c.ram_len - rings;
	if ((h[0] & 0x80) && tail > 1) {
		c.split = rings + 1 + (uint64_t)(h[6] | h[7] << 8) % (tail - 1);
		c.hole = h[8] * 64ULL; /* 0: adjacent, buffers over both split in two */
	}
	c.r[0] = (struct tern_guest_range){ 0, c.split, c.ram };
	c.r[1] = (struct tern_guest_range){ c.split + c.hole, c.ram_len - c.split, c.ram + c.split };
	c.mem = (struct tern_guest_mem){ c.r, c.split < c.ram_len ? 2 : 1, on_dirty, &c };

	struct tern_vq *vq = tern_vq_new(&c.mem, 32), *vq2 = tern_vq_new(&c.mem, 32);
	if (vq == NULL || vq2 == NULL)
		die("tern_vq_new");
	struct tern_vq_state st = { .features = features, .desc = desc, .avail = avail, .used = used,
				    .size = qsize, .last_avail_idx = start, .used_idx = start,
				    .started = true, .notify = !(h[1] & 4) };
	struct tern_error err;
	if (tern_vq_set_state(vq, &st, &err) != 0)
		die(err.msg);
	run(&c, vq, h, max);

	/* Carry the state to a second queue (through vmstate) and go on. */
	struct tern_vq_state s, t = { 0 };
	if (tern_vq_get_state(vq, &s, &err) != 0)
		die(err.msg);
	struct tern_buf buf = { 0 };
	if (tern_vmstate_save(&tern_vq_state_desc, &s, &buf) != 0 ||
	    tern_vmstate_load(&tern_vq_state_desc, &t, buf.data, buf.len, &err) != 0 ||
	    tern_vq_set_state(vq2, &t, &err) != 0)
		die(err.msg);
	if (tern_vq_broken(vq2) != tern_vq_broken(vq))
		die("broken did not carry");
	tern_buf_free(&buf);
	if ((h[1] & 8) && !tern_vq_broken(vq2)) { /* the driver posts more */
		uint16_t more = (uint16_t)(aidx + h[10] % (qsize + 2u));
		memcpy(c.ram + avail + 2, &more, 2);
		memcpy(before + avail + 2, &more, 2);
		run(&c, vq2, h, max);
	}

	/* Nothing changed outside the used ring and the writable buffers. */
	for (size_t i = 0; i < c.ram_len; i++)
		if (c.ram[i] != before[i] && !c.ok[i])
			die("a byte changed outside the used ring and the writable buffers");
	tern_vq_free(vq);
	tern_vq_free(vq2);
	free(c.ok);
	free(before);
	free(c.ram);
	return 0;
}
