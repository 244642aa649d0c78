/* Guest RAM layout, memslot split and address translation (no KVM). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "machine/ram.h"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static void check_slots_cover(const struct guest_ram *ram)
{
	uint64_t low = 0, high = 0, offset = 0;
	for (unsigned i = 0; i < ram->slots; i++) {
		const struct ram_slot *s = &ram->slot[i];
		assert_int_equal(s->id, i);
		assert_true(s->size > 0 && s->size % 4096 == 0);
		assert_int_equal(s->offset, offset); /* memfd offsets are contiguous */
		offset += s->size;
		if (s->gpa < RAM_LOW_LIMIT) {
			assert_int_equal(s->gpa, low);
			low += s->size;
		} else {
			assert_int_equal(s->gpa, RAM_HIGH_BASE + high);
			high += s->size;
		}
	}
	assert_int_equal(low, ram->low_size);
	assert_int_equal(high, ram->high_size);
}

static void small_ram_one_slot(void **state)
{
	(void)state;
	struct guest_ram ram;
	assert_int_equal(ram_create(&ram, 64 * MIB, 0, 32764, 0, NULL, NULL), 0);
	assert_int_equal(ram.slots, 1);
	assert_int_equal(ram.low_size, 64 * MIB);
	check_slots_cover(&ram);
	struct stat st;
	assert_int_equal(fstat(ram.memfd, &st), 0);
	assert_int_equal(st.st_size, 64 * MIB);
	ram_destroy(&ram);
}

static void many_slots(void **state)
{
	(void)state;
	struct guest_ram ram;
	assert_int_equal(ram_create(&ram, 64 * MIB, 1000, 32764, 0, NULL, NULL), 0);
	assert_int_equal(ram.slots, 1000);
	check_slots_cover(&ram);
	ram_destroy(&ram);
}

static void ram_above_4g(void **state)
{
	(void)state;
	struct guest_ram ram;
	/* The memfd is sparse: 5 GiB costs nothing until touched. */
	assert_int_equal(ram_create(&ram, 5 * GIB, 0, 32764, 0, NULL, NULL), 0);
	assert_int_equal(ram.low_size, 3 * GIB);
	assert_int_equal(ram.high_size, 2 * GIB);
	assert_int_equal(ram.slots, 5);
	check_slots_cover(&ram);

	assert_ptr_equal(ram_host(&ram, 0, 4096), ram.host);
	assert_ptr_equal(ram_host(&ram, RAM_HIGH_BASE, 1), ram.host + 3 * GIB);
	assert_null(ram_host(&ram, RAM_LOW_LIMIT - 4096, 8192)); /* runs into the hole */
	assert_null(ram_host(&ram, RAM_LOW_LIMIT, 1));           /* in the hole */
	assert_null(ram_host(&ram, RAM_HIGH_BASE + 2 * GIB, 1)); /* past the end */
	assert_null(ram_host(&ram, UINT64_MAX - 10, 100));      /* overflow */
	assert_non_null(ram_host(&ram, RAM_HIGH_BASE + 2 * GIB - 1, 1));

	struct tern_memory_range map[8];
	unsigned n = ram_memory_map(&ram, map);
	assert_int_equal(n, 5);
	assert_int_equal(map[3].addr, 1 * MIB);
	assert_int_equal(map[3].len, 3 * GIB - MIB);
	assert_int_equal(map[4].addr, RAM_HIGH_BASE);
	assert_int_equal(map[4].type, TERN_E820_RAM);
	ram_destroy(&ram);
}

static void refusals(void **state)
{
	(void)state;
	struct guest_ram ram;
	struct tern_error err;
	assert_int_equal(ram_create(&ram, 1 * MIB, 0, 32764, 0, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too small"));
	assert_int_equal(ram_create(&ram, 64 * MIB + 1, 0, 32764, 0, NULL, &err), -EINVAL);
	assert_int_equal(ram_create(&ram, 1ULL << 50, 0, 32764, 0, NULL, &err), -ENOMEM);
	assert_non_null(strstr(err.msg, "does not fit"));
	assert_int_equal(ram_create(&ram, 64 * MIB, 40000, 32764, 0, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "more than KVM allows"));
	assert_int_equal(ram_create(&ram, 16 * MIB, 5000, 32764, 0, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "pages of RAM"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(small_ram_one_slot),
		cmocka_unit_test(many_slots),
		cmocka_unit_test(ram_above_4g),
		cmocka_unit_test(refusals),
	};
	return cmocka_run_group_tests_name("ram", tests, NULL, NULL);
}
