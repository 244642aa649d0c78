/*
 * Device writes into guest memory (dma_*) on a KVM VM with RAM and no
 * vCPUs: while dirty tracking is on, what a device writes is in tern's
 * dirty set (KVM's log never sees it); copies across memslots; ranges
 * outside guest memory, or writes into read-only memory, refused whole;
 * zero-copy maps inside one slot, marked at unmap.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvm_skip.h"
#include "machine/dma.h"
#include "machine/vm.h"

#define MIB (1ULL << 20)
#define PAGE 4096ULL

/* 64 MiB in two memslots of 32, dirty tracking through the log. */
static struct vm *make_vm(void)
{
	struct vm *vm = calloc(1, sizeof *vm);
	assert_non_null(vm);
	const struct vm_config cfg = { .memory = 64 * MIB, .memslots = 2, .vcpus = 1 };
	struct tern_error err = { .msg = "" };
	int rc = vm_prepare(vm, &cfg, &err);
	if (rc == 0)
		rc = dirty_tracker_init(&vm->dirty, vm, DIRTY_MODE_LOG, 0, &err);
	vm->dirty_ready = 1;
	if (rc == 0)
		rc = dirty_tracker_attach_slots(&vm->dirty, &err);
	if (rc < 0)
		fail_msg("making the VM: %s", err.msg);
	assert_int_equal(vm->ram.slots, 2);
	return vm;
}

static void free_vm(struct vm *vm)
{
	vm_destroy(vm);
	free(vm);
}

static int dirty(struct vm *vm, uint64_t gpa)
{
	int s = ram_slot_of(&vm->ram, gpa);
	assert_true(s >= 0);
	return tern_dirty_test(vm->dirty.set[s], (gpa - vm->ram.slot[s].gpa) / PAGE);
}

static void writes_are_marked_while_tracking(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	uint8_t buf[3 * PAGE];
	memset(buf, 0xa5, sizeof buf);
	/* Not tracking: written, nothing marked. */
	assert_int_equal(dma_write(vm, 0x10000, buf, 16), 0);
	assert_int_equal(dirty_tracker_count(&vm->dirty), 0);
	struct tern_error err;
	assert_int_equal(dirty_tracker_start(&vm->dirty, &err), 0);
	/* Two bytes across a page boundary: both pages. */
	assert_int_equal(dma_write(vm, 0x20000 - 1, buf, 2), 0);
	assert_true(dirty(vm, 0x1f000));
	assert_true(dirty(vm, 0x20000));
	assert_false(dirty(vm, 0x21000));
	/* Across the two memslots: the pages of both slots. */
	uint64_t edge = vm->ram.slot[1].gpa;
	assert_int_equal(dma_write(vm, edge - PAGE - 8, buf, 2 * PAGE), 0);
	assert_true(dirty(vm, edge - 2 * PAGE));
	assert_true(dirty(vm, edge - PAGE));
	assert_true(dirty(vm, edge));
	assert_int_equal(dirty_tracker_count(&vm->dirty), 5);
	uint8_t back[2 * PAGE];
	assert_int_equal(dma_read(vm, edge - PAGE - 8, back, sizeof back), 0);
	assert_memory_equal(back, buf, sizeof back);
	assert_memory_equal(vm->ram.host + vm->ram.slot[1].offset, buf, PAGE - 8);
	/* KVM's log knows nothing of them; a sync keeps them. */
	assert_int_equal(dirty_tracker_sync(&vm->dirty, &err), 0);
	assert_int_equal(dirty_tracker_count(&vm->dirty), 5);
	/* vm_write_guest (QMP's debug writes) goes the same way. */
	assert_int_equal(vm_write_guest(vm, 0x300000, buf, 1), 0);
	assert_true(dirty(vm, 0x300000));
	dirty_tracker_stop(&vm->dirty);
	free_vm(vm);
}

static void outside_guest_memory_refused(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	struct tern_error err;
	assert_int_equal(dirty_tracker_start(&vm->dirty, &err), 0);
	uint8_t buf[64];
	memset(buf, 0x11, sizeof buf);
	uint64_t end = 64 * MIB;
	assert_int_equal(dma_write(vm, end, buf, 1), -EFAULT);
	assert_int_equal(dma_read(vm, end, buf, 1), -EFAULT);
	assert_int_equal(dma_write(vm, 0xc0000000, buf, 8), -EFAULT); /* the PCI hole */
	assert_int_equal(dma_write(vm, UINT64_MAX - 8, buf, 32), -EFAULT); /* wraps */
	/* Running off the end: nothing copied, nothing marked. */
	assert_int_equal(dma_write(vm, end - 16, buf, 32), -EFAULT);
	static const uint8_t zero[16];
	assert_memory_equal(vm->ram.host + end - 16, zero, 16);
	assert_int_equal(dirty_tracker_count(&vm->dirty), 0);
	assert_int_equal(dma_write(vm, end - 16, buf, 16), 0); /* the last bytes are RAM */
	assert_int_equal(dma_write(vm, 0, buf, 0), 0);
	/* A read-only region reads, but takes no device writes. */
	if (!vm->kvm.has_readonly_mem) {
		print_message("    (this KVM has no read-only memory: that part skipped)\n");
		dirty_tracker_stop(&vm->dirty);
		free_vm(vm);
		return;
	}
	uint32_t slot;
	assert_int_equal(memmap_add_region(vm, 0x100000000ULL, 2 * MIB, 1, &slot, &err), 0);
	assert_int_equal(dma_read(vm, 0x100000000ULL, buf, 8), 0);
	assert_int_equal(dma_write(vm, 0x100000000ULL, buf, 8), -EFAULT);
	struct dma_mapping m;
	assert_int_equal(dma_map(vm, 0x100000000ULL, 8, 1, &m), -EFAULT);
	assert_int_equal(dma_map(vm, 0x100000000ULL, 8, 0, &m), 0);
	dma_unmap(&m, 0);
	dirty_tracker_stop(&vm->dirty);
	free_vm(vm);
}

static void maps_inside_one_slot(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	struct tern_error err;
	assert_int_equal(dirty_tracker_start(&vm->dirty, &err), 0);
	struct dma_mapping m;
	assert_int_equal(dma_map(vm, 0x5000, 2 * PAGE, 1, &m), 0);
	assert_ptr_equal(m.host, vm->ram.host + 0x5000);
	memset(m.host, 0x77, 2 * PAGE);
	assert_int_equal(dirty_tracker_count(&vm->dirty), 0); /* marked at unmap */
	dma_unmap(&m, 1);
	assert_true(dirty(vm, 0x5000));
	assert_true(dirty(vm, 0x6000));
	assert_int_equal(dirty_tracker_count(&vm->dirty), 2);
	/* A read mapping marks nothing. */
	assert_int_equal(dma_map(vm, 0x9000, PAGE, 0, &m), 0);
	dma_unmap(&m, 0);
	assert_int_equal(dirty_tracker_count(&vm->dirty), 2);
	/* Across slots, or outside RAM: refused. */
	uint64_t edge = vm->ram.slot[1].gpa;
	assert_int_equal(dma_map(vm, edge - PAGE, 2 * PAGE, 1, &m), -EFAULT);
	assert_int_equal(dma_map(vm, 64 * MIB, PAGE, 0, &m), -EFAULT);
	assert_int_equal(dma_map(vm, 0, 0, 0, &m), -EFAULT);
	dma_unmap(&m, 1); /* a failed map unmaps as nothing */
	assert_int_equal(dirty_tracker_count(&vm->dirty), 2);
	dirty_tracker_stop(&vm->dirty);
	free_vm(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writes_are_marked_while_tracking),
		cmocka_unit_test(outside_guest_memory_refused),
		cmocka_unit_test(maps_inside_one_slot),
	};
	return cmocka_run_group_tests_name("dma", tests, NULL, NULL);
}
