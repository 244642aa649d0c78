/* Hostile drivers: each malformed ring breaks the queue with a message,
 * and guest RAM (canaries everywhere, guard pages around it and between
 * its two ranges) is left exactly as the driver wrote it: no byte of the
 * used ring or any buffer written, nothing marked dirty.  A few limits
 * are checked from the accepting side too (a chain of exactly the
 * allowed length or size is popped). */
#include <errno.h>

#include "virtq_model.h"

#define SIZE 8
#define IND TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC)

/* Buffers and tables, away from the rings. */
static uint64_t buf(unsigned i)
{
	return M_ARENAS + 0x100 + 0x40ULL * i;
}

/* The whole of RAM, used ring included, as the driver left it. */
static void check_untouched(struct model *m)
{
	m_check_ram(m);
	for (uint64_t g = m->used; g < m->used + TERN_VQ_USED_BYTES(m->size); g++)
		assert_int_equal(*m_host(m, g), m->shadow[g]);
	for (uint64_t g = 0; g < m->ram; g++)
		assert_false(m->dirty[g]);
}

/* Pop from a ring built by `build`: it must break, saying `why`. */
static void expect_broken(struct model *m, struct tern_vq *vq, unsigned max, const char *why)
{
	struct iovec iov[16];
	uint64_t gpa[16];
	struct tern_vq_elem e = { .iov = iov, .gpa = gpa, .max = max };
	int r = tern_vq_pop(vq, &e);
	if (r != -EPROTO)
		fail_msg("pop gave %d, not -EPROTO (expected \"%s\")", r, why);
	assert_true(tern_vq_broken(vq));
	if (strstr(tern_vq_broken_reason(vq), why) == NULL)
		fail_msg("reason \"%s\" does not say \"%s\"", tern_vq_broken_reason(vq), why);
	/* Broken stays broken, and writes nothing more. */
	e.max = 16;
	assert_int_equal(tern_vq_pop(vq, &e), -EPROTO);
	assert_false(tern_vq_flush(vq));
	assert_false(tern_vq_set_notify(vq, true));
	assert_false(tern_vq_set_notify(vq, false));
	/* A device's late completion is counted, not written. */
	int late = tern_vq_inflight(vq) != 0 ? -EPROTO : -EINVAL;
	assert_int_equal(tern_vq_push(vq, &e, 0), late);
	check_untouched(m);
	/* A reset clears it. */
	tern_vq_reset(vq);
	assert_false(tern_vq_broken(vq));
	assert_string_equal(tern_vq_broken_reason(vq), "");
}

struct bad {
	const char *name, *why;
	uint64_t features;
	unsigned max; /* the device's segments (0: 16) */
	void (*build)(struct model *m);
};

#define D(i, addr, len, flags, next) m_wdesc(m, m->desc, i, addr, len, flags, next)
#define T(table, i, addr, len, flags, next) m_wdesc(m, table, i, addr, len, flags, next)
#define N TERN_VRING_DESC_F_NEXT
#define W TERN_VRING_DESC_F_WRITE
#define I TERN_VRING_DESC_F_INDIRECT

static void one(struct model *m, uint16_t head)
{
	m_avail_add(m, head);
	m_publish(m);
}

static void self_loop(struct model *m) { D(0, buf(0), 16, N, 0); one(m, 0); }
static void two_loop(struct model *m) { D(0, buf(0), 16, N, 1); D(1, buf(1), 16, N, 0); one(m, 0); }
static void ind_loop(struct model *m)
{
	D(0, buf(0), 32, I, 0);
	T(buf(0), 0, buf(2), 8, N, 1);
	T(buf(0), 1, buf(3), 8, N, 0);
	one(m, 0);
}
static void head_past(struct model *m) { one(m, SIZE); }
static void head_far(struct model *m) { one(m, 0xffff); }
static void next_past(struct model *m) { D(0, buf(0), 16, N, SIZE); one(m, 0); }
static void ind_next_past(struct model *m)
{
	D(0, buf(0), 32, I, 0);
	T(buf(0), 0, buf(2), 8, N, 1);
	T(buf(0), 1, buf(3), 8, N, 2);
	one(m, 0);
}
static void outside(struct model *m) { D(0, m->ram + 16, 16, 0, 0); one(m, 0); }
static void straddle_end(struct model *m) { D(0, m->ram - 8, 16, W, 0); one(m, 0); }
static void wraps(struct model *m) { D(0, UINT64_MAX - 7, 16, W, 0); one(m, 0); }
static void huge_len(struct model *m) { D(0, buf(0), 0xffffffffu, W, 0); one(m, 0); }
static void zero_len(struct model *m) { D(0, buf(0), 16, N, 1); D(1, buf(1), 0, W, 0); one(m, 0); }
static void w_then_r(struct model *m) { D(0, buf(0), 16, W | N, 1); D(1, buf(1), 16, 0, 0); one(m, 0); }
static void w_then_ind_r(struct model *m)
{
	D(0, buf(0), 16, W | N, 1);
	D(1, buf(2), 16, I, 0);
	T(buf(2), 0, buf(4), 8, 0, 0);
	one(m, 0);
}
static void nested(struct model *m)
{
	D(0, buf(0), 16, I, 0);
	T(buf(0), 0, buf(2), 16, I, 0);
	T(buf(2), 0, buf(4), 8, 0, 0);
	one(m, 0);
}
static void ind_and_next(struct model *m)
{
	D(0, buf(0), 16, I | N, 1);
	T(buf(0), 0, buf(2), 8, 0, 0);
	D(1, buf(3), 8, W, 0);
	one(m, 0);
}
static void ind_unnegotiated(struct model *m)
{
	D(0, buf(0), 16, I, 0);
	T(buf(0), 0, buf(2), 8, 0, 0);
	one(m, 0);
}
static void ind_len0(struct model *m) { D(0, buf(0), 0, I, 0); one(m, 0); }
static void ind_len24(struct model *m) { D(0, buf(0), 24, I, 0); T(buf(0), 0, buf(2), 8, 0, 0); one(m, 0); }
static void ind_outside(struct model *m) { D(0, m->ram - 16, 32, I, 0); one(m, 0); }
static void ind_across(struct model *m) /* a table over both ranges */
{
	D(0, m->split - 16, 32, I, 0);
	one(m, 0);
}
static void ind_too_long(struct model *m) /* SIZE + 1 in one table */
{
	D(0, buf(0), 16 * (SIZE + 1), I, 0);
	for (unsigned i = 0; i <= SIZE; i++)
		T(buf(0), i, buf(4) + 8 * i, 8, i < SIZE ? N : 0, (uint16_t)(i + 1));
	one(m, 0);
}
static void jump(struct model *m) /* avail idx SIZE + 1 ahead */
{
	for (unsigned i = 0; i <= SIZE; i++)
		m_avail_add(m, 0);
	D(0, buf(0), 8, 0, 0);
	m_publish(m);
}
static void too_many_segments(struct model *m) /* 3 for a device that takes 2 */
{
	D(0, buf(0), 8, N, 1);
	D(1, buf(1), 8, N, 2);
	D(2, buf(2), 8, W, 0);
	one(m, 0);
}

static const struct bad cases[] = {
	{ "self loop", "longer than 8", 0, 0, self_loop },
	{ "two-descriptor loop", "longer than 8", 0, 0, two_loop },
	{ "loop in an indirect table", "longer than 2 descriptors in its indirect", IND, 0, ind_loop },
	{ "head = size", "names descriptor 8, past the queue", 0, 0, head_past },
	{ "head 0xffff", "names descriptor 65535", 0, 0, head_far },
	{ "next = size", "has next 8, past the table's 8", 0, 0, next_past },
	{ "next past an indirect table", "has next 2, past the table's 2", IND, 0, ind_next_past },
	{ "buffer outside RAM", "not all in guest RAM", 0, 0, outside },
	{ "buffer over RAM's end", "not all in guest RAM", 0, 0, straddle_end },
	{ "buffer wrapping 2^64", "wraps past 2^64", 0, 0, wraps },
	{ "length 4 GiB - 1", "not all in guest RAM", 0, 0, huge_len },
	{ "zero length", "descriptor 1 has length 0", 0, 0, zero_len },
	{ "writable then readable", "device-readable after a device-writable", 0, 0, w_then_r },
	{ "writable then readable in a table", "device-readable after", IND, 0, w_then_ind_r },
	{ "nested indirect", "nesting", IND, 0, nested },
	{ "INDIRECT with NEXT", "both INDIRECT and NEXT", IND, 0, ind_and_next },
	{ "indirect not negotiated", "INDIRECT_DESC was not negotiated", 0, 0, ind_unnegotiated },
	{ "indirect table of 0 bytes", "of 0 bytes, not a positive multiple of 16", IND, 0, ind_len0 },
	{ "indirect table of 24 bytes", "of 24 bytes", IND, 0, ind_len24 },
	{ "indirect table over RAM's end", "not inside one range", IND, 0, ind_outside },
	{ "indirect table over two ranges", "not inside one range", IND, 0, ind_across },
	{ "indirect chain longer than the queue", "longer than 8 descriptors in its indirect", IND, 0,
	  ind_too_long },
	{ "avail idx jumps size + 1", "9 entries past", 0, 0, jump },
	{ "more segments than the device takes", "more than the device's 2 segments", 0, 2,
	  too_many_segments },
};

static void hostile_rings(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const uint16_t starts[] = { 0, 65533 };
		for (int s = 0; s < 2; s++) {
			print_message("%s (indices from %u)\n", cases[i].name, starts[s]);
			struct model *m = m_new(SIZE, cases[i].features, starts[s]);
			assert_int_equal(m->mem.count, 2);
			struct tern_vq *vq = tern_vq_new(&m->mem, SIZE);
			struct tern_vq_state st = { .features = m->features, .desc = m->desc,
						    .avail = m->avail, .used = m->used, .size = SIZE,
						    .last_avail_idx = starts[s], .used_idx = starts[s],
						    .started = true, .notify = true };
			assert_int_equal(tern_vq_set_state(vq, &st, NULL), 0);
			cases[i].build(m);
			expect_broken(m, vq, cases[i].max ? cases[i].max : 16, cases[i].why);
			tern_vq_free(vq);
			m_free(m);
		}
	}
}

/* A driver that reposts chains it has not had back: the device refuses
 * the (size+1)th outstanding one, but takes exactly `size`. */
static void too_many_outstanding(void **state)
{
	(void)state;
	struct model *m = m_new(SIZE, 0, 0);
	struct tern_vq *vq = tern_vq_new(&m->mem, SIZE);
	struct tern_vq_config c = m_config(m);
	assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
	D(0, buf(0), 8, W, 0);
	for (unsigned i = 0; i < SIZE; i++)
		m_avail_add(m, 0); /* the same chain, 8 times: only the ring's fullness matters */
	m_publish(m);
	struct iovec iov[4];
	uint64_t gpa[4];
	struct tern_vq_elem e = { .iov = iov, .gpa = gpa, .max = 4 };
	for (unsigned i = 0; i < SIZE; i++)
		assert_int_equal(tern_vq_pop(vq, &e), 1);
	assert_int_equal(tern_vq_pop(vq, &e), 0);
	m_avail_add(m, 0);
	m_publish(m);
	expect_broken(m, vq, 4, "more than 8 buffers available at once");
	tern_vq_free(vq);
	m_free(m);
}

/* Limits from the accepting side: an indirect chain of exactly `size`
 * descriptors, a chain of 4 GiB - 1 bytes (in a PROT_NONE range the test
 * never touches), and one byte more refused. */
static void limits_accepted(void **state)
{
	(void)state;
	struct model *m = m_new(SIZE, IND, 0);
	size_t big = 1ULL << 33;
	void *far = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(far != MAP_FAILED);
	struct tern_guest_range r[3] = { m->range[0], m->range[1], { 1ULL << 40, big, far } };
	m->mem.ranges = r;
	m->mem.count = 3;
	struct tern_vq *vq = tern_vq_new(&m->mem, SIZE);
	struct tern_vq_config c = m_config(m);
	assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
	D(0, buf(0), 16 * SIZE, I, 0);
	for (unsigned i = 0; i < SIZE; i++)
		T(buf(0), i, buf(4) + 8 * i, 8, i + 1 < SIZE ? N : 0, (uint16_t)(i + 1));
	D(1, 1ULL << 40, 0xfffffff0u, N, 2);
	D(2, (1ULL << 40) + 0x100000000ULL, 15, W, 0);
	one(m, 0);
	one(m, 1);
	struct iovec iov[16];
	uint64_t gpa[16];
	struct tern_vq_elem e = { .iov = iov, .gpa = gpa, .max = 16 };
	assert_int_equal(tern_vq_pop(vq, &e), 1);
	assert_int_equal(e.out_num, SIZE);
	assert_int_equal(e.out_len, 8 * SIZE);
	assert_int_equal(tern_vq_pop(vq, &e), 1);
	assert_int_equal(e.out_len, 0xfffffff0u);
	assert_int_equal(e.in_len, 15);
	assert_ptr_equal(iov[1].iov_base, (uint8_t *)far + 0x100000000ULL);
	D(2, (1ULL << 40) + 0x100000000ULL, 16, W, 0); /* 4 GiB exactly */
	one(m, 1);
	expect_broken(m, vq, 16, "past 4 GiB");
	tern_vq_free(vq);
	munmap(far, big);
	m_free(m);
}

/* Device mistakes are refused without breaking the queue. */
static void device_mistakes(void **state)
{
	(void)state;
	struct model *m = m_new(SIZE, 0, 0);
	struct tern_vq *vq = tern_vq_new(&m->mem, SIZE);
	struct tern_vq_config c = m_config(m);
	assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
	m_add_simple(m);
	m_publish(m);
	struct iovec iov[4];
	uint64_t gpa[4];
	struct tern_vq_elem e = { .iov = iov, .gpa = gpa, .max = 0 };
	assert_int_equal(tern_vq_pop(vq, &e), -EINVAL);
	e.gpa = NULL, e.max = 4;
	assert_int_equal(tern_vq_pop(vq, &e), -EINVAL);
	assert_false(tern_vq_broken(vq));
	tern_vq_reset(vq); /* a stopped queue is empty */
	e.gpa = gpa;
	assert_int_equal(tern_vq_pop(vq, &e), 0);
	assert_int_equal(tern_vq_push(vq, &e, 0), -EINVAL);
	assert_false(tern_vq_flush(vq));
	check_untouched(m);
	tern_vq_free(vq);
	m_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_rings),
		cmocka_unit_test(too_many_outstanding),
		cmocka_unit_test(limits_accepted),
		cmocka_unit_test(device_mistakes),
	};
	return cmocka_run_group_tests_name("virtqueue_hostile", tests, NULL, NULL);
}
