/*
 * The KVM interrupt helpers on a VM with an irqchip and no vCPUs: irqfds
 * (edge and resampled) assigned and deassigned, ioeventfds for MMIO and
 * ports with and without datamatch, and the GSI routing table with MSI
 * routes added, updated, removed and committed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvm_skip.h"
#include "machine/vm.h"

static struct vm *make_vm(void)
{
	struct vm *vm = calloc(1, sizeof *vm);
	assert_non_null(vm);
	const struct vm_config cfg = { .memory = 16ULL << 20 };
	struct tern_error err = { .msg = "" };
	if (vm_prepare(vm, &cfg, &err) < 0)
		fail_msg("making the VM: %s", err.msg);
	return vm;
}

static void free_vm(struct vm *vm)
{
	vm_destroy(vm);
	free(vm);
}

static void irqfds(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	int fd = vm->kvm.vm_fd;
	int e = eventfd(0, EFD_CLOEXEC), resample = eventfd(0, EFD_CLOEXEC);
	struct tern_error err;
	assert_int_equal(kvm_irqfd_assign(fd, e, 5, -1, &err), 0);
	assert_int_equal(kvm_irqfd_assign(fd, e, 5, -1, &err), -EBUSY); /* once per fd */
	assert_non_null(strstr(err.msg, "KVM_IRQFD"));
	uint64_t one = 1;
	assert_int_equal(write(e, &one, sizeof one), sizeof one); /* KVM takes it */
	assert_int_equal(kvm_irqfd_deassign(fd, e, 5, &err), 0);
	if (kvm_check_extension(&vm->kvm, KVM_CAP_IRQFD_RESAMPLE)) {
		assert_int_equal(kvm_irqfd_assign(fd, e, 10, resample, &err), 0);
		assert_int_equal(kvm_irqfd_deassign(fd, e, 10, &err), 0);
	}
	close(e);
	close(resample);
	free_vm(vm);
}

static void ioeventfds(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	int fd = vm->kvm.vm_fd;
	int e = eventfd(0, EFD_CLOEXEC);
	struct tern_error err;
	const struct kvm_ioevent mmio = { .addr = 0xe0000000, .len = 8, .fd = e };
	const struct kvm_ioevent match = { .addr = 0xe0000010, .len = 4, .fd = e,
					   .datamatch = 1, .data = 3 };
	const struct kvm_ioevent match2 = { .addr = 0xe0000010, .len = 4, .fd = e,
					    .datamatch = 1, .data = 4 };
	const struct kvm_ioevent port = { .addr = 0x510, .len = 2, .fd = e, .pio = 1 };
	assert_int_equal(kvm_ioeventfd_assign(fd, &mmio, &err), 0);
	assert_int_equal(kvm_ioeventfd_assign(fd, &mmio, &err), -EEXIST);
	/* Two datamatches at one address are two doorbells. */
	assert_int_equal(kvm_ioeventfd_assign(fd, &match, &err), 0);
	assert_int_equal(kvm_ioeventfd_assign(fd, &match2, &err), 0);
	assert_int_equal(kvm_ioeventfd_assign(fd, &port, &err), 0);
	assert_int_equal(kvm_ioeventfd_deassign(fd, &match, &err), 0);
	assert_int_equal(kvm_ioeventfd_deassign(fd, &match, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "deassign"));
	assert_int_equal(kvm_ioeventfd_deassign(fd, &match2, &err), 0);
	assert_int_equal(kvm_ioeventfd_deassign(fd, &port, &err), 0);
	assert_int_equal(kvm_ioeventfd_deassign(fd, &mmio, &err), 0);
	const struct kvm_ioevent odd = { .addr = 0xe0000000, .len = 3, .fd = e };
	assert_int_equal(kvm_ioeventfd_assign(fd, &odd, &err), -EINVAL);
	close(e);
	free_vm(vm);
}

static void gsi_routing(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct vm *vm = make_vm();
	struct gsi_routes r;
	struct tern_error err;
	assert_int_equal(gsi_routes_init(&r, &vm->kvm, &err), 0);
	/* KVM's default: 24 IOAPIC pins, 16 PIC pins. */
	assert_int_equal(gsi_routes_count(&r), 40);
	assert_int_equal(gsi_routes_commit(&r, &err), 0); /* nothing changed */
	int a = gsi_route_add_msi(&r, 0xfee00000, 0x4041, &err);
	int b = gsi_route_add_msi(&r, 0xfee01000, 0x4042, &err);
	assert_int_equal(a, GSI_IRQCHIP_PINS);
	assert_int_equal(b, GSI_IRQCHIP_PINS + 1);
	assert_int_equal(gsi_routes_commit(&r, &err), 0);
	/* An irqfd on an MSI route, as virtio's queues will have. */
	int e = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(kvm_irqfd_assign(vm->kvm.vm_fd, e, (uint32_t)b, -1, &err), 0);
	assert_int_equal(gsi_route_update_msi(&r, (uint32_t)b, 0xfee00000, 0x4051), 0);
	assert_int_equal(gsi_route_update_msi(&r, 5, 0xfee00000, 0x4051), -ENOENT); /* a pin */
	assert_int_equal(gsi_route_remove_msi(&r, (uint32_t)a), 0);
	assert_int_equal(gsi_route_remove_msi(&r, (uint32_t)a), -ENOENT);
	assert_int_equal(gsi_routes_commit(&r, &err), 0);
	assert_int_equal(gsi_routes_count(&r), 41);
	/* A freed GSI is handed out again. */
	assert_int_equal(gsi_route_add_msi(&r, 0xfee00000, 0x4061, &err), a);
	assert_int_equal(gsi_routes_commit(&r, &err), 0);
	assert_int_equal(kvm_irqfd_deassign(vm->kvm.vm_fd, e, (uint32_t)b, &err), 0);
	close(e);
	gsi_routes_destroy(&r);
	free_vm(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(irqfds),
		cmocka_unit_test(ioeventfds),
		cmocka_unit_test(gsi_routing),
	};
	return cmocka_run_group_tests_name("kvm_irq", tests, NULL, NULL);
}
