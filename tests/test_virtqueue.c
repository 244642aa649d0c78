/* The split virtqueue against a reference driver (tests/virtq_model.h):
 * guest memory lookups, start checks, random add/pop/push/flush/reap
 * sequences with and without EVENT_IDX and indirect tables, 16-bit index
 * wraparound, notification rules, state save/load, two threads.  Hostile
 * drivers are in test_virtqueue_hostile.c. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

#include "virtq_model.h"

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13; /* xorshift64 */
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static void guest_mem_lookups(void **state)
{
	(void)state;
	static uint8_t a[4096], b[4096];
	struct tern_guest_range r[2] = { { 0x1000, 4096, a }, { 0x2000, 4096, b } };
	struct tern_guest_mem m = { r, 2, NULL, NULL };
	assert_int_equal(tern_guest_mem_check(&m, NULL), 0);
	assert_ptr_equal(tern_guest_mem_map(&m, 0x1000, 4096), a);
	assert_ptr_equal(tern_guest_mem_map(&m, 0x2ff0, 16), b + 0xff0);
	assert_null(tern_guest_mem_map(&m, 0x1ff0, 32)); /* straddles two ranges */
	assert_null(tern_guest_mem_map(&m, 0x2ff0, 17)); /* past RAM's end */
	assert_null(tern_guest_mem_map(&m, 0xfff, 2));   /* starts below RAM */
	assert_null(tern_guest_mem_map(&m, 0x1000, 0));
	assert_null(tern_guest_mem_map(&m, UINT64_MAX, 1));
	void *h;
	assert_int_equal(tern_guest_mem_span(&m, 0x1ff0, 32, &h), 16); /* the rest in range 1 */
	assert_ptr_equal(h, a + 0xff0);
	assert_int_equal(tern_guest_mem_span(&m, 0x3000, 1, &h), 0);
	struct tern_error err;
	struct tern_guest_range bad[2] = { { 0x2000, 4096, a }, { 0x1000, 4096, b } };
	m.ranges = bad;
	assert_int_equal(tern_guest_mem_check(&m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "out of order"));
	bad[0] = (struct tern_guest_range){ UINT64_MAX - 10, 100, a };
	m.count = 1;
	assert_int_equal(tern_guest_mem_check(&m, &err), -EINVAL);
	assert_null(tern_vq_new(&m, 16));
}

static void start_checks(void **state)
{
	(void)state;
	struct model *m = m_new(16, 0, 0);
	struct tern_vq *vq = tern_vq_new(&m->mem, 256);
	assert_non_null(vq);
	assert_null(tern_vq_new(&m->mem, 65536));
	struct tern_error err;
	struct tern_vq_config c = m_config(m), b[13];
	const char *msg[13];
	for (int i = 0; i < 13; i++)
		b[i] = c;
	const uint64_t v1 = TERN_VIRTIO_BIT(TERN_VIRTIO_F_VERSION_1);
	b[0].size = 0, msg[0] = "power of two";
	b[1].size = 12, msg[1] = "power of two";
	b[2].size = 512, msg[2] = "power of two"; /* above this queue's max */
	b[3].desc = 8, msg[3] = "aligned";
	b[4].avail += 1, msg[4] = "aligned";
	b[5].used += 2, msg[5] = "aligned";
	b[6].desc = m->ram - 128, msg[6] = "guest RAM";
	b[7].used = m->ram, msg[7] = "guest RAM";
	b[8].used = m->split - 64, msg[8] = "guest RAM"; /* over both ranges */
	b[9].features &= ~v1, msg[9] = "VERSION_1";
	b[10].features |= TERN_VIRTIO_BIT(TERN_VIRTIO_F_RING_PACKED), msg[10] = "PACKED";
	b[11].features |= TERN_VIRTIO_BIT(TERN_VIRTIO_F_IN_ORDER), msg[11] = "IN_ORDER";
	b[12].avail = UINT64_MAX - 1, msg[12] = "guest RAM";
	for (int i = 0; i < 13; i++) {
		assert_int_equal(tern_vq_start(vq, &b[i], &err), -EINVAL);
		if (strstr(err.msg, msg[i]) == NULL)
			fail_msg("case %d: %s", i, err.msg);
		assert_false(tern_vq_started(vq));
	}
	assert_int_equal(tern_vq_start(vq, &c, &err), 0);
	assert_true(tern_vq_started(vq));
	assert_false(tern_vq_broken(vq));
	tern_vq_free(vq);
	m_free(m);
}

struct held {
	struct tern_vq_elem e;
	struct iovec iov[2 * M_MAXSEG];
	uint64_t gpa[2 * M_MAXSEG];
};

static void elem_init(struct held *h)
{
	h->e = (struct tern_vq_elem){ .iov = h->iov, .gpa = h->gpa, .max = 2 * M_MAXSEG };
}

/* Changed bytes of the used ring were marked dirty; start afresh.  Used
 * elements are marked when flushed, so look only when all are. */
static void check_used_dirty(struct model *m, uint8_t *snap, uint16_t pushed)
{
	uint64_t n = TERN_VQ_USED_BYTES(m->size);
	if (m_r16(m, m->used + 2) != pushed)
		return;
	for (uint64_t i = 0; i < n; i++)
		if (*m_host(m, m->used + i) != snap[i] && !m->dirty[m->used + i])
			fail_msg("used ring byte %llu changed without a dirty mark",
				 (unsigned long long)i);
	memcpy(snap, m_host(m, m->used), n);
	memset(m->dirty + m->used, 0, n);
}

/* One random run: the device sees what the driver posted, the driver gets
 * back what the device pushed, in order, notifications as the spec says,
 * no kick lost, and nothing written outside the buffers. */
static void random_run(uint16_t size, uint64_t features, uint16_t start, unsigned steps)
{
	struct model *m = m_new(size, features, start);
	struct tern_vq *vq = tern_vq_new(&m->mem, size);
	struct tern_vq_state st = { .features = m->features, .desc = m->desc, .avail = m->avail,
				    .used = m->used, .size = size, .last_avail_idx = start,
				    .used_idx = start, .started = true, .notify = true };
	struct tern_vq_config cfg = m_config(m);
	bool resumed = start != 0; /* else a fresh start at 0 */
	assert_int_equal(resumed ? tern_vq_set_state(vq, &st, NULL) : tern_vq_start(vq, &cfg, NULL), 0);
	struct held *held = calloc(size, sizeof *held);
	static uint16_t push_id[65536];
	static uint32_t push_len[65536];
	uint16_t pushed = start, reaped_check = start;
	unsigned nheld = 0;
	uint8_t *snap = malloc(TERN_VQ_USED_BYTES(size));
	memcpy(snap, m_host(m, m->used), TERN_VQ_USED_BYTES(size));
	bool asleep = false, notify_on = true, first_flush = resumed;
	bool event_idx = features & TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	for (unsigned step = 0; step < steps || nheld != 0 || m->last_used != m->avail_idx; step++) {
		bool draining = step >= steps;
		static const unsigned mix[10] = { 0, 0, 0, 2, 2, 4, 5, 5, 6, 7 };
		unsigned op = draining ? 2 + step % 6 : mix[rnd() % 10];
		if (op <= 1) {
			for (unsigned k = 1 + rnd() % 3; k > 0; k--)
				m_add_random(m, rnd);
			if (m->pending != 0) {
				bool kick = m_publish(m);
				if (asleep && !kick)
					fail_msg("step %u: a kick was lost", step);
				asleep = asleep && !kick;
			}
		} else if (op <= 3) {
			for (unsigned k = 1 + rnd() % 4; k > 0 && nheld < size; k--) {
				elem_init(&held[nheld]);
				int r = tern_vq_pop(vq, &held[nheld].e);
				if (r < 0)
					fail_msg("step %u: pop %d: %s", step, r, tern_vq_broken_reason(vq));
				if (r == 0) {
					assert_false(asleep && m->avail_idx != m->next_pop);
					if (!notify_on && (notify_on = true, tern_vq_set_notify(vq, true)))
						continue; /* buffers came meanwhile */
					asleep = true;
					break;
				}
				struct tern_vq_elem *e = &held[nheld++].e;
				m_check_pop(m, e);
				for (unsigned i = 0; i < e->out_num; i++) /* the driver's bytes */
					assert_memory_equal(e->iov[i].iov_base, m->shadow + e->gpa[i],
							    e->iov[i].iov_len);
			}
			check_used_dirty(m, snap, pushed);
		} else if (op == 4) {
			if (!draining) {
				tern_vq_set_notify(vq, false);
				notify_on = false;
				asleep = false;
			}
		} else if (op == 5) {
			for (unsigned k = 1 + rnd() % 3; k > 0 && nheld != 0; k--) {
				unsigned i = rnd() % nheld;
				struct tern_vq_elem *e = &held[i].e;
				uint32_t w = rnd() % 3 == 0 ? e->in_len : rnd() % (e->in_len + 1);
				m_device_write(m, e, w);
				assert_int_equal(tern_vq_push(vq, e, w), 0);
				m_check_written_dirty(m, e->head, w);
				push_id[pushed] = e->head;
				push_len[pushed++] = w;
				held[i] = held[--nheld];
				held[i].e.iov = held[i].iov, held[i].e.gpa = held[i].gpa;
			}
		} else if (op == 6) {
			uint16_t old = m_r16(m, m->used + 2);
			bool n = tern_vq_flush(vq), want;
			uint16_t now = m_r16(m, m->used + 2);
			assert_int_equal(now, pushed);
			if (old == now) {
				want = false;
			} else if (event_idx) {
				uint16_t ev = m_r16(m, m->avail + 4 + 2ULL * size);
				want = first_flush;
				for (uint16_t i = old; i != now; i++)
					want = want || i == ev;
				first_flush = false;
			} else {
				want = !(m_r16(m, m->avail) & TERN_VRING_AVAIL_F_NO_INTERRUPT);
			}
			if (n != want)
				fail_msg("step %u: flush %u..%u said %d, the spec %d", step, old, now, n, want);
			check_used_dirty(m, snap, pushed);
		} else {
			uint16_t id;
			uint32_t len;
			while (m_reap(m, &id, &len) == 1) {
				assert_int_equal(id, push_id[reaped_check]);
				assert_int_equal(len, push_len[reaped_check++]);
			}
			/* The driver's next wish for interrupts. */
			if (event_idx)
				m_w16(m, m->avail + 4 + 2ULL * size, (uint16_t)(m->last_used + rnd() % 4));
			else
				m_w16(m, m->avail, rnd() % 2 ? TERN_VRING_AVAIL_F_NO_INTERRUPT : 0);
		}
		if (step % 64 == 0)
			m_check_ram(m);
		assert_false(tern_vq_broken(vq));
		assert_true(step < steps + 100000); /* the drain ends */
	}
	m_check_ram(m);
	assert_int_equal(reaped_check, pushed);
	assert_int_equal(m->next_pop, m->avail_idx);
	assert_int_equal(tern_vq_inflight(vq), 0);
	free(snap);
	free(held);
	tern_vq_free(vq);
	m_free(m);
}

static void random_sequences(void **state)
{
	(void)state;
	const uint16_t sizes[] = { 1, 2, 16, 64, 256 };
	const uint64_t ind = TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC);
	const uint64_t ev = TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	const uint64_t feats[] = { 0, ind, ev, ind | ev };
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
		for (size_t f = 0; f < 4; f++) {
			rng_state = 0x9e3779b97f4a7c15ULL * (s * 4 + f + 1);
			random_run(sizes[s], feats[f], 0, 3000);
		}
}

/* Indices that wrap at 2^16: resume near 65535, and run a small queue
 * through more than 65536 requests. */
static void index_wraparound(void **state)
{
	(void)state;
	const uint64_t both = TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC) |
			      TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX);
	const uint16_t starts[] = { 65535, 65530, 65500, 65535 - 100 };
	for (size_t i = 0; i < 4; i++) {
		rng_state = 77 + i;
		random_run(i < 2 ? 4 : 64, i % 2 ? both : 0, starts[i], 1500);
	}
	rng_state = 5;
	random_run(2, both, 0, 150000);
}

/* The two notification directions, case by case. */
static void notification_rules(void **state)
{
	(void)state;
	for (int event_idx = 0; event_idx < 2; event_idx++) {
		uint64_t f = event_idx ? TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX) : 0;
		struct model *m = m_new(16, f, 0);
		struct tern_vq *vq = tern_vq_new(&m->mem, 16);
		struct tern_vq_config c = m_config(m);
		assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
		uint64_t used_event = m->avail + 4 + 32, avail_event = m->used + 4 + 128;
		struct held h;
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq, &h.e), 0); /* empty: with EVENT_IDX, kick at 0 */
		if (event_idx)
			assert_int_equal(m_r16(m, avail_event), 0);
		for (int i = 0; i < 4; i++)
			m_add_simple(m);
		assert_true(m_publish(m));
		tern_vq_set_notify(vq, false);
		assert_int_equal(m_r16(m, m->used), event_idx ? 0 : TERN_VRING_USED_F_NO_NOTIFY);
		m_add_simple(m);
		assert_int_equal(m_publish(m), false); /* suppressed */
		assert_true(tern_vq_set_notify(vq, true)); /* 5 wait */
		assert_int_equal(m_r16(m, m->used), 0);
		if (event_idx)
			assert_int_equal(m_r16(m, avail_event), 0);
		/* Used side: push two, and ask for an interrupt after the second. */
		for (int i = 0; i < 2; i++) {
			elem_init(&h);
			assert_int_equal(tern_vq_pop(vq, &h.e), 1);
			assert_int_equal(tern_vq_push(vq, &h.e, 0), 0);
		}
		m_w16(m, used_event, 1);
		m_w16(m, m->avail, TERN_VRING_AVAIL_F_NO_INTERRUPT);
		assert_int_equal(tern_vq_flush(vq), event_idx); /* entry 1 was used_event */
		assert_false(tern_vq_flush(vq));               /* nothing new */
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq, &h.e), 1);
		assert_int_equal(tern_vq_push(vq, &h.e, 0), 0);
		m_w16(m, m->avail, 0);
		assert_int_equal(tern_vq_flush(vq), !event_idx); /* used_event 1 is behind */
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq, &h.e), 1);
		assert_int_equal(tern_vq_push(vq, &h.e, 0), 0);
		m_w16(m, used_event, 3);
		assert_true(tern_vq_flush(vq));
		/* Device bugs are refused, not written. */
		assert_int_equal(tern_vq_push(vq, &h.e, 0), -EINVAL); /* nothing in flight */
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq, &h.e), 1);
		assert_int_equal(tern_vq_push(vq, &h.e, h.e.in_len + 1), -EINVAL);
		assert_int_equal(tern_vq_inflight(vq), 1);
		tern_vq_free(vq);
		m_free(m);
	}
}

/* The driver adds a chain just as the device asks for kicks (the write
 * of avail_event or used->flags), before the device looks again: the
 * device must find it, as the driver's kick decision saw the old value. */
static void add_now(struct model *m, uint64_t gpa)
{
	if (gpa != m->used && gpa != m->used + 4 + 8ULL * m->size)
		return;
	m->on_dirty = NULL;
	m_add_simple(m);
	m_publish(m);
}

static void kick_races(void **state)
{
	(void)state;
	for (int event_idx = 0; event_idx < 2; event_idx++) {
		uint64_t f = event_idx ? TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX) : 0;
		struct model *m = m_new(8, f, 0);
		struct tern_vq *vq = tern_vq_new(&m->mem, 8);
		struct tern_vq_config c = m_config(m);
		assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
		struct held h;
		if (event_idx) { /* pop on an empty ring writes avail_event */
			m->on_dirty = add_now;
			elem_init(&h);
			assert_int_equal(tern_vq_pop(vq, &h.e), 1);
			assert_null(m->on_dirty);
		}
		tern_vq_set_notify(vq, false);
		m->on_dirty = add_now;
		assert_true(tern_vq_set_notify(vq, true));
		assert_null(m->on_dirty);
		tern_vq_free(vq);
		m_free(m);
	}
}

/* Save, carry through vmstate, resume on a new queue, go on. */
static void state_roundtrip(void **state)
{
	(void)state;
	uint64_t f = TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX) | TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC);
	struct model *m = m_new(16, f, 0);
	struct tern_vq *vq = tern_vq_new(&m->mem, 16);
	struct tern_vq_config c = m_config(m);
	assert_int_equal(tern_vq_start(vq, &c, NULL), 0);
	for (int i = 0; i < 5; i++)
		m_add_simple(m);
	m_publish(m);
	struct held h;
	struct tern_vq_state s;
	struct tern_error err;
	for (int i = 0; i < 3; i++) {
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq, &h.e), 1);
		m_check_pop(m, &h.e);
		assert_int_equal(tern_vq_get_state(vq, &s, &err), -EBUSY); /* in flight */
		assert_int_equal(tern_vq_push(vq, &h.e, 0), 0);
		assert_int_equal(tern_vq_get_state(vq, &s, &err), -EBUSY); /* not flushed */
		tern_vq_flush(vq);
	}
	tern_vq_set_notify(vq, false);
	assert_int_equal(tern_vq_get_state(vq, &s, &err), 0);
	assert_int_equal(s.last_avail_idx, 3);
	assert_int_equal(s.used_idx, 3);
	assert_false(s.notify);
	struct tern_buf buf = { 0 };
	assert_int_equal(tern_vmstate_save(&tern_vq_state_desc, &s, &buf), 0);
	struct tern_vq_state t = { 0 };
	assert_int_equal(tern_vmstate_load(&tern_vq_state_desc, &t, buf.data, buf.len, &err), 0);
	assert_memory_equal(&s, &t, sizeof s);
	struct tern_vq *vq2 = tern_vq_new(&m->mem, 16);
	assert_int_equal(tern_vq_set_state(vq2, &t, &err), 0);
	assert_true(tern_vq_set_notify(vq2, true)); /* two were waiting */
	for (int i = 0; i < 2; i++) {
		elem_init(&h);
		assert_int_equal(tern_vq_pop(vq2, &h.e), 1);
		m_check_pop(m, &h.e);
		assert_int_equal(tern_vq_push(vq2, &h.e, 0), 0);
	}
	assert_true(tern_vq_flush(vq2)); /* the first flush after a resume notifies */
	assert_int_equal(m_r16(m, m->used + 2), 5);
	/* Shapes no queue has are refused by the loader. */
	struct tern_vq_state bad[4] = { s, s, s, s };
	bad[0].size = 12;
	bad[1].used = 2;
	bad[2].last_avail_idx = 4; /* one in flight */
	bad[3].size = 32;          /* more than this queue's 16 */
	for (int i = 0; i < 4; i++) {
		buf.len = 0;
		assert_int_equal(tern_vmstate_save(&tern_vq_state_desc, &bad[i], &buf), 0);
		int r = tern_vmstate_load(&tern_vq_state_desc, &t, buf.data, buf.len, &err);
		if (i < 3)
			assert_int_equal(r, -EINVAL);
		assert_int_equal(tern_vq_set_state(vq2, &bad[i], &err), -EINVAL);
		assert_false(tern_vq_started(vq2));
	}
	tern_buf_free(&buf);
	tern_vq_free(vq);
	tern_vq_free(vq2);
	m_free(m);
}

/* Two threads: a driver and a device, notifications suppressed both ways;
 * a lost kick or interrupt stalls one side, which the timeouts catch. */
struct duo {
	struct model *m;
	struct tern_vq *vq;
	sem_t kick, irq;
	int stop, errors;
};

static int wait_sem(sem_t *s)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 20;
	return sem_timedwait(s, &t);
}

static void *device_thread(void *arg)
{
	struct duo *d = arg;
	struct held h;
	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		tern_vq_set_notify(d->vq, false);
		int r, n = 0;
		for (elem_init(&h); (r = tern_vq_pop(d->vq, &h.e)) == 1; elem_init(&h), n++) {
			if (h.e.in_num == 0 || h.e.in_len == 0)
				__atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
			*(uint8_t *)h.e.iov[h.e.out_num].iov_base = (uint8_t)(h.e.head ^ 0x5a);
			if (tern_vq_push(d->vq, &h.e, 1) != 0)
				__atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
			if (n % 3 == 2 && tern_vq_flush(d->vq))
				sem_post(&d->irq);
		}
		if (r < 0)
			__atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
		if (tern_vq_flush(d->vq))
			sem_post(&d->irq);
		if (!tern_vq_set_notify(d->vq, true) && wait_sem(&d->kick) != 0)
			__atomic_add_fetch(&d->errors, 1000, __ATOMIC_RELAXED); /* a lost kick */
	}
	return NULL;
}

static void two_threads(void **state)
{
	(void)state;
	for (int event_idx = 0; event_idx < 2; event_idx++) {
		uint64_t f = TERN_VIRTIO_BIT(TERN_VIRTIO_F_INDIRECT_DESC) |
			     (event_idx ? TERN_VIRTIO_BIT(TERN_VIRTIO_F_EVENT_IDX) : 0);
		struct duo d = { .m = m_new(64, f, 0) };
		d.m->mem.mark_dirty = NULL; /* the shadow is the driver's alone here */
		d.m->unchecked = true;
		d.m->need_writable = true;
		d.vq = tern_vq_new(&d.m->mem, 64);
		struct tern_vq_config c = m_config(d.m);
		assert_int_equal(tern_vq_start(d.vq, &c, NULL), 0);
		sem_init(&d.kick, 0, 0);
		sem_init(&d.irq, 0, 0);
		pthread_t t;
		pthread_create(&t, NULL, device_thread, &d);
		struct model *m = d.m;
		unsigned posted = 0, done = 0, total = 100000;
		rng_state = 99;
		while (done < total) {
			unsigned added = 0;
			while (posted < total && posted - done < 48 && m_add_random(m, rnd))
				posted++, added++;
			if (m->pending != 0 && m_publish(m))
				sem_post(&d.kick);
			uint16_t id;
			uint32_t len;
			unsigned got = 0;
			while (m_reap(m, &id, &len) == 1) {
				const struct m_chain *ch = &m->chain[id];
				unsigned w = 0;
				while (!ch->seg[w].w)
					w++;
				assert_int_equal(len, 1);
				assert_int_equal(*m_host(m, ch->seg[w].gpa), (uint8_t)(id ^ 0x5a));
				got++, done++;
			}
			if (!event_idx) /* interrupts off while busy */
				m_w16(m, m->avail, TERN_VRING_AVAIL_F_NO_INTERRUPT);
			if (got != 0 || added != 0)
				continue;
			/* Nothing to do: ask for an interrupt, look again, sleep. */
			if (event_idx)
				m_w16(m, m->avail + 4 + 2ULL * 64, m->last_used);
			else
				m_w16(m, m->avail, 0);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			uint16_t idx = le16toh(__atomic_load_n((uint16_t *)(void *)m_host(m, m->used + 2),
							       __ATOMIC_ACQUIRE));
			if (idx == m->last_used && wait_sem(&d.irq) != 0)
				fail_msg("an interrupt was lost (%u of %u done)", done, total);
		}
		__atomic_store_n(&d.stop, 1, __ATOMIC_RELEASE);
		sem_post(&d.kick);
		pthread_join(t, NULL);
		assert_int_equal(d.errors, 0);
		sem_destroy(&d.kick);
		sem_destroy(&d.irq);
		tern_vq_free(d.vq);
		m_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(guest_mem_lookups),
		cmocka_unit_test(start_checks),
		cmocka_unit_test(random_sequences),
		cmocka_unit_test(index_wraparound),
		cmocka_unit_test(notification_rules),
		cmocka_unit_test(kick_races),
		cmocka_unit_test(state_roundtrip),
		cmocka_unit_test(two_threads),
	};
	return cmocka_run_group_tests_name("virtqueue", tests, NULL, NULL);
}
