/*
 * The range map behind port I/O and MMIO: overlaps refused, unclaimed
 * accesses float high, 1/2/4/8-byte accesses with offsets and masks,
 * boundaries (range ends, the top of the space), many ranges, and
 * lookups racing registrations.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus/bus.h"

struct dev {
	uint64_t last_offset, last_value;
	unsigned last_size, writes, reads;
	uint64_t value; /* what reads return */
};

static uint64_t dev_read(void *opaque, uint64_t offset, unsigned size)
{
	struct dev *d = opaque;
	d->last_offset = offset;
	d->last_size = size;
	d->reads++;
	return d->value;
}

static void dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct dev *d = opaque;
	d->last_offset = offset;
	d->last_size = size;
	d->last_value = value;
	d->writes++;
}

static struct bus_range range(uint64_t base, uint64_t len, struct dev *d)
{
	return (struct bus_range){ .base = base, .len = len, .read = dev_read, .write = dev_write,
				   .opaque = d, .name = "test" };
}

static void overlaps_refused(void **state)
{
	(void)state;
	struct bus_space s;
	struct dev d = { 0 };
	assert_int_equal(bus_init(&s, "MMIO", 0), 0);
	struct bus_range r = range(0x1000, 0x100, &d);
	assert_int_equal(bus_register(&s, &r, NULL), 0);
	const uint64_t clash[][2] = {
		{ 0x1000, 0x100 }, { 0x1000, 1 },   { 0x10ff, 1 },     { 0xf00, 0x101 },
		{ 0x1080, 0x200 }, { 0x0, 0x10000 }, { 0x1010, 0x10 },
	};
	for (unsigned i = 0; i < sizeof clash / sizeof clash[0]; i++) {
		struct bus_range c = range(clash[i][0], clash[i][1], &d);
		struct tern_error err;
		assert_int_equal(bus_register(&s, &c, &err), -EBUSY);
		assert_non_null(strstr(err.msg, "overlaps"));
	}
	/* Neighbours on both sides touch but do not overlap. */
	struct bus_range below = range(0xf00, 0x100, &d), above = range(0x1100, 0x100, &d);
	assert_int_equal(bus_register(&s, &below, NULL), 0);
	assert_int_equal(bus_register(&s, &above, NULL), 0);
	assert_int_equal(bus_count(&s), 3);
	struct bus_range empty = range(0x5000, 0, &d);
	assert_int_equal(bus_register(&s, &empty, NULL), -EINVAL);
	struct bus_range wraps = range(UINT64_MAX - 10, 100, &d);
	assert_int_equal(bus_register(&s, &wraps, NULL), -EINVAL);
	assert_int_equal(bus_unregister(&s, 0x1001), -ENOENT);
	assert_int_equal(bus_unregister(&s, 0x1000), 0);
	assert_int_equal(bus_unregister(&s, 0x1000), -ENOENT);
	assert_int_equal(bus_register(&s, &r, NULL), 0); /* its room is free again */
	bus_destroy(&s);
}

static void unclaimed_reads_all_ones(void **state)
{
	(void)state;
	struct bus_space s;
	struct dev d = { .value = 0x1234 };
	assert_int_equal(bus_init(&s, "port I/O", 0x10000), 0);
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	static const uint64_t expect[] = { 0xff, 0xffff, 0xffffffff, UINT64_MAX };
	for (unsigned i = 0; i < 4; i++) {
		uint64_t v = 0;
		assert_int_equal(bus_read(&s, 0x80, sizes[i], &v), 0);
		assert_true(v == expect[i]);
		assert_int_equal(bus_write(&s, 0x80, sizes[i], 0), 0);
	}
	/* As KVM's run page sees it: the bytes read as 0xff, nothing past. */
	uint8_t data[8] = { 0 };
	bus_access(&s, 0x80, data, 2, 0);
	assert_int_equal(data[0], 0xff);
	assert_int_equal(data[1], 0xff);
	assert_int_equal(data[2], 0);
	/* A range without a read callback reads all ones too, but claims it. */
	struct bus_range wo = { .base = 0x90, .len = 4, .write = dev_write, .opaque = &d };
	assert_int_equal(bus_register(&s, &wo, NULL), 0);
	uint64_t v = 0;
	assert_int_equal(bus_read(&s, 0x90, 4, &v), 1);
	assert_true(v == 0xffffffff);
	assert_int_equal(bus_write(&s, 0x90, 1, 0x5a), 1);
	assert_int_equal(d.last_value, 0x5a);
	bus_destroy(&s);
}

static void sizes_offsets_and_masks(void **state)
{
	(void)state;
	struct bus_space s;
	struct dev d = { .value = 0x1122334455667788ULL };
	assert_int_equal(bus_init(&s, "MMIO", 0), 0);
	struct bus_range r = range(0xfeb00000, 0x1000, &d);
	assert_int_equal(bus_register(&s, &r, NULL), 0);
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	static const uint64_t masked[] = { 0x88, 0x7788, 0x55667788, 0x1122334455667788ULL };
	for (unsigned i = 0; i < 4; i++) {
		uint64_t v;
		assert_int_equal(bus_read(&s, 0xfeb00010 + sizes[i], sizes[i], &v), 1);
		assert_true(v == masked[i]);
		assert_int_equal(d.last_offset, 0x10 + sizes[i]);
		assert_int_equal(d.last_size, sizes[i]);
		assert_int_equal(bus_write(&s, 0xfeb00020, sizes[i], UINT64_MAX), 1);
		assert_true(d.last_value == (sizes[i] == 8 ? UINT64_MAX : (1ULL << (8 * sizes[i])) - 1));
	}
	/* Little-endian bytes in and out. */
	uint8_t data[8] = { 0x01, 0x02, 0x03, 0x04 };
	bus_access(&s, 0xfeb00100, data, 4, 1);
	assert_true(d.last_value == 0x04030201);
	memset(data, 0, sizeof data);
	bus_access(&s, 0xfeb00100, data, 8, 0);
	assert_int_equal(data[0], 0x88);
	assert_int_equal(data[7], 0x11);
	/* No such size: unclaimed. */
	uint64_t v;
	assert_int_equal(bus_read(&s, 0xfeb00000, 3, &v), 0);
	assert_int_equal(bus_write(&s, 0xfeb00000, 16, 0), 0);
	bus_destroy(&s);
}

static void boundaries(void **state)
{
	(void)state;
	struct bus_space ports, mmio;
	struct dev d = { .value = 7 };
	assert_int_equal(bus_init(&ports, "port I/O", 0x10000), 0);
	assert_int_equal(bus_init(&mmio, "MMIO", 0), 0);
	struct bus_range r = range(0x3f8, 8, &d);
	assert_int_equal(bus_register(&ports, &r, NULL), 0);
	uint64_t v;
	assert_int_equal(bus_read(&ports, 0x3f7, 1, &v), 0);
	assert_int_equal(bus_read(&ports, 0x3f8, 1, &v), 1);
	assert_int_equal(bus_read(&ports, 0x3ff, 1, &v), 1);
	assert_int_equal(d.last_offset, 7);
	assert_int_equal(bus_read(&ports, 0x400, 1, &v), 0);
	/* An access must lie in one range whole. */
	assert_int_equal(bus_read(&ports, 0x3fe, 4, &v), 0);
	assert_true(v == 0xffffffff);
	assert_int_equal(bus_read(&ports, 0x3f6, 4, &v), 0);
	assert_int_equal(bus_read(&ports, 0x3fc, 4, &v), 1);
	/* The port space ends at 0xffff. */
	struct bus_range top = range(0xfff0, 0x10, &d), past = range(0xfff0, 0x11, &d);
	assert_int_equal(bus_register(&ports, &past, NULL), -EINVAL);
	assert_int_equal(bus_register(&ports, &top, NULL), 0);
	assert_int_equal(bus_read(&ports, 0xffff, 1, &v), 1);
	assert_int_equal(bus_read(&ports, 0xffff, 2, &v), 0);
	/* MMIO reaches the last byte of 2^64. */
	struct bus_range high = range(UINT64_MAX - 0xfff, 0x1000, &d);
	assert_int_equal(bus_register(&mmio, &high, NULL), 0);
	assert_int_equal(bus_read(&mmio, UINT64_MAX - 7, 8, &v), 1);
	assert_int_equal(d.last_offset, 0xff8);
	assert_int_equal(bus_read(&mmio, UINT64_MAX - 3, 8, &v), 0); /* wraps */
	assert_int_equal(bus_read(&mmio, 0, 1, &v), 0);
	bus_destroy(&ports);
	bus_destroy(&mmio);
}

#define MANY 2000

static void many_ranges(void **state)
{
	(void)state;
	struct bus_space s;
	assert_int_equal(bus_init(&s, "MMIO", 0), 0);
	struct dev *d = calloc(MANY, sizeof *d);
	unsigned *order = malloc(MANY * sizeof *order);
	for (unsigned i = 0; i < MANY; i++)
		order[i] = i;
	srand(18);
	for (unsigned i = MANY - 1; i > 0; i--) { /* registered in random order */
		unsigned j = (unsigned)rand() % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned k = 0; k < MANY; k++) {
		unsigned i = order[k];
		d[i].value = i;
		/* Ranges of 0x100 at every 0x1000, and odd sizes between them. */
		struct bus_range r = range(0x100000000ULL + i * 0x1000ULL, i % 7 + 1, &d[i]);
		assert_int_equal(bus_register(&s, &r, NULL), 0);
	}
	assert_int_equal(bus_count(&s), MANY);
	for (unsigned i = 0; i < MANY; i++) {
		uint64_t v, base = 0x100000000ULL + i * 0x1000ULL;
		assert_int_equal(bus_read(&s, base + i % 7, 1, &v), 1);
		assert_int_equal(v, i & 0xff);
		assert_int_equal(bus_read(&s, base + i % 7 + 1, 1, &v), 0);
	}
	for (unsigned i = 0; i < MANY; i += 2)
		assert_int_equal(bus_unregister(&s, 0x100000000ULL + i * 0x1000ULL), 0);
	for (unsigned i = 0; i < MANY; i++) {
		uint64_t v;
		assert_int_equal(bus_read(&s, 0x100000000ULL + i * 0x1000ULL, 1, &v), i % 2);
	}
	assert_int_equal(bus_count(&s), MANY / 2);
	free(order);
	free(d);
	bus_destroy(&s);
}

/* A callback may change its own space: the lookup's lock is not held. */
struct mover {
	struct bus_space *s;
	uint64_t base;
};

static void move_self(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)offset;
	(void)size;
	struct mover *m = opaque;
	assert_int_equal(bus_unregister(m->s, m->base), 0);
	m->base = value;
	struct bus_range r = { .base = value, .len = 8, .write = move_self, .opaque = m };
	assert_int_equal(bus_register(m->s, &r, NULL), 0);
}

static void callback_changes_its_space(void **state)
{
	(void)state;
	struct bus_space s;
	assert_int_equal(bus_init(&s, "MMIO", 0), 0);
	struct mover m = { &s, 0x1000 };
	struct bus_range r = { .base = 0x1000, .len = 8, .write = move_self, .opaque = &m };
	assert_int_equal(bus_register(&s, &r, NULL), 0);
	assert_int_equal(bus_write(&s, 0x1000, 8, 0x2000), 1);
	struct bus_range found;
	assert_int_equal(bus_find(&s, 0x1000, &found), -ENOENT);
	assert_int_equal(bus_find(&s, 0x2004, &found), 0);
	assert_int_equal(found.base, 0x2000);
	bus_destroy(&s);
}

/* Safe from many threads at once. */
static uint64_t counted_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)offset;
	(void)size;
	struct dev *d = opaque;
	__atomic_fetch_add(&d->reads, 1, __ATOMIC_RELAXED);
	return d->value;
}

struct race {
	struct bus_space *s;
	struct dev *fixed;
	int stop;
	unsigned misses;
};

static void *reader(void *arg)
{
	struct race *r = arg;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint64_t v;
		if (bus_read(r->s, 0x8000, 4, &v) != 1 || v != 0xabcd)
			__atomic_fetch_add(&r->misses, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* vCPU threads dispatch while ranges come and go (a BAR moving). */
static void lookups_race_registrations(void **state)
{
	(void)state;
	struct bus_space s;
	assert_int_equal(bus_init(&s, "MMIO", 0), 0);
	struct dev fixed = { .value = 0xabcd }, other = { 0 };
	struct bus_range r = { .base = 0x8000, .len = 0x100, .read = counted_read, .opaque = &fixed };
	assert_int_equal(bus_register(&s, &r, NULL), 0);
	struct race race = { .s = &s, .fixed = &fixed };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &race), 0);
	while (__atomic_load_n(&fixed.reads, __ATOMIC_RELAXED) < 1000)
		; /* both readers under way */
	for (unsigned i = 0; i < 20000; i++) {
		struct bus_range o = range(0x1000 + (i % 5) * 0x1000, 0x100, &other);
		assert_int_equal(bus_register(&s, &o, NULL), 0);
		assert_int_equal(bus_unregister(&s, o.base), 0);
	}
	__atomic_store_n(&race.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(race.misses, 0);
	bus_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(overlaps_refused),
		cmocka_unit_test(unclaimed_reads_all_ones),
		cmocka_unit_test(sizes_offsets_and_masks),
		cmocka_unit_test(boundaries),
		cmocka_unit_test(many_ranges),
		cmocka_unit_test(callback_changes_its_space),
		cmocka_unit_test(lookups_race_registrations),
	};
	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
