/* VM construction, run state and teardown; see vm.h. */
#include "machine/vm.h"
#include "devices/ioeventfd_bank.h"
#include "kvm/kvm_state.h"
#include "kvm/vcpu_state.h"
#include "machine/dma.h"
#include "machine/vm_shape.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define COM1_BASE 0x3f8
#define COM1_IRQ 4
#define DEBUG_EXIT_PORT 0xf4

static const char *const state_names[] = {
	[VM_STATE_PRELAUNCH] = "prelaunch",
	[VM_STATE_RUNNING] = "running",
	[VM_STATE_PAUSED] = "paused",
	[VM_STATE_SHUTDOWN] = "shutdown",
	[VM_STATE_INMIGRATE] = "inmigrate",
	[VM_STATE_FINISH_MIGRATE] = "finish-migrate",
	[VM_STATE_POSTMIGRATE] = "postmigrate",
};

const char *vm_run_state_name(enum vm_state state)
{
	return state_names[state];
}

static size_t serial_transmit(void *opaque, const uint8_t *data, size_t len)
{
	struct vm *vm = opaque;
	return chardev_write(&vm->serial, data, len);
}

static size_t serial_tx_room(void *opaque)
{
	struct vm *vm = opaque;
	return chardev_write_room(&vm->serial);
}

static void serial_set_irq(void *opaque, int level)
{
	struct vm *vm = opaque;
	kvm_set_irq_line(&vm->kvm, COM1_IRQ, level);
}

static uint64_t serial_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)size;
	struct vm *vm = opaque;
	return uart_read(&vm->uart, (unsigned)offset);
}

static void serial_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)size;
	struct vm *vm = opaque;
	uart_write(&vm->uart, (unsigned)offset, (uint8_t)value);
}

/* Like QEMU's isa-debug-exit, but the guest's value is tern's exit status
 * as is (QEMU exits with value * 2 + 1). */
static void debug_exit_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)offset;
	(void)size;
	struct vm *vm = opaque;
	char detail[64];
	snprintf(detail, sizeof detail, "the guest exited with status %u", (unsigned)(value & 0xff));
	vm_request_exit(vm, VM_EXIT_GUEST, (int)(value & 0xff), detail);
}

/* The address spaces, the PCI host bridge and the interrupt routes. */
static int add_buses(struct vm *vm, struct tern_error *err)
{
	if (bus_init(&vm->pio, "port I/O", 0x10000) < 0 || bus_init(&vm->mmio, "MMIO", 0) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = gsi_routes_init(&vm->irq, &vm->kvm, err);
	if (rc == 0)
		rc = pci_host_init(&vm->pci, &vm->pio, &vm->mmio, err);
	/* The doorbells of an ioeventfd bank stay where they always were
	 * (their address is in its live-update state): BARs go around them. */
	if (rc == 0 && pci_hole_reserve(&vm->pci.hole, IOEVENTFD_BANK_BASE, IOEVENTFD_BANK_WINDOW) < 0)
		rc = tern_errorf(err, -ENOMEM, "out of memory");
	return rc;
}

static int add_devices(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	static const struct uart_backend com1 = {
		.transmit = serial_transmit,
		.tx_room = serial_tx_room,
		.set_irq = serial_set_irq,
	};
	int rc = chardev_open(&vm->serial, cfg->serial ? cfg->serial : "stdio", cfg->fds, err);
	uart_init(&vm->uart, &com1, vm);
	vm->devices_ready = 1;
	if (rc < 0 || (rc = add_buses(vm, err)) < 0)
		return rc;
	const struct bus_range ranges[] = {
		{ .base = COM1_BASE, .len = 8, .read = serial_read, .write = serial_write,
		  .opaque = vm, .name = "COM1" },
		{ .base = DEBUG_EXIT_PORT, .len = 4, .write = debug_exit_write, .opaque = vm,
		  .name = "the exit port" },
	};
	for (unsigned i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if ((rc = bus_register(&vm->pio, &ranges[i], err)) < 0)
			return rc;
	/* Firmware's part, for PCI devices added above (the built-in guest
	 * does not enumerate PCI). */
	return pci_host_assign_bars(&vm->pci, err);
}

/* The machine's own state; devices and the runner add theirs. */
static int register_state(struct vm *vm, struct tern_error *err)
{
	struct vm_state_registry *reg = &vm->states;
	int rc = vm_state_register(reg, &machine_shape_type, -1, vm, err);
	if (rc == 0)
		rc = memmap_register_state(vm, err);
	if (rc == 0)
		rc = vm_state_register(reg, &kvm_state_type, -1, &vm->kvm, err);
	for (unsigned i = 0; i < vm->vcpus && rc == 0; i++)
		rc = vm_state_register(reg, &vcpu_state_type, (int)i, &vm->vcpu[i], err);
	if (rc == 0)
		rc = vm_state_register(reg, &pci_host_state_type, -1, &vm->pci, err);
	if (rc == 0)
		rc = pci_register_state(&vm->pci.bridge, reg, err);
	if (rc == 0)
		rc = vm_state_register(reg, &uart_state_type, -1, &vm->uart, err);
	if (rc == 0)
		rc = vm_state_register(reg, &chardev_output_type, -1, &vm->serial, err);
	return rc;
}

static int map_ram(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	int rc = ram_create(&vm->ram, cfg->memory, cfg->memslots, vm->kvm.max_memslots,
			    cfg->mem_prealloc, cfg->fds, err);
	if (rc < 0)
		return rc;
	return memmap_init(vm, cfg->fds, err);
}

int vm_prepare(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	memset(vm, 0, sizeof *vm);
	vm->kvm.sys_fd = vm->kvm.vm_fd = -1;
	vm->ram.memfd = -1;
	vm->notify_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->state = VM_STATE_PRELAUNCH;
	vm->prepared = 1;

	int rc = 0;
	if (cfg->kvm_ready != NULL) /* made ahead of time: a VM costs KVM milliseconds */
		vm->kvm = *cfg->kvm_ready;
	else
		rc = kvm_open(&vm->kvm, err);
	if (rc < 0)
		return rc;
	vm->kvm.defer_reinject = cfg->defer_pit_reinject;
	if (cfg->kvm_ready == NULL && (rc = kvm_create_vm(&vm->kvm, err)) < 0)
		return rc;
	if ((rc = map_ram(vm, cfg, err)) < 0)
		return rc;
	return kvm_create_irqchip(&vm->kvm, err);
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	int rc = 0;
	if (!vm->prepared)
		rc = vm_prepare(vm, cfg, err);
	else if (vm->ram.size != cfg->memory || vm->ram.slots != cfg->memslots)
		rc = tern_errorf(err, -EINVAL, "the machine has %llu MiB of RAM in %u memslots, "
				 "the RAM made ready for it %llu MiB in %u",
				 (unsigned long long)(cfg->memory >> 20), cfg->memslots,
				 (unsigned long long)(vm->ram.size >> 20), vm->ram.slots);
	if (rc < 0)
		return rc;
	vm->memmap.store = cfg->fds; /* the store prepared RAM had may be gone by now */
	if (cfg->vcpus == 0 || cfg->vcpus > vm->kvm.max_vcpus)
		return tern_errorf(err, -EINVAL, "--vcpus %u: KVM here allows 1..%u", cfg->vcpus,
				   vm->kvm.max_vcpus);
	/* The dirty ring must be enabled before any vCPU exists. */
	rc = dirty_tracker_init(&vm->dirty, vm, cfg->dirty_mode,
				cfg->dirty_ring_entries ? cfg->dirty_ring_entries
							: DIRTY_RING_DEFAULT_ENTRIES,
				err);
	vm->dirty_ready = 1;
	if (rc < 0)
		return rc;
	if (!cfg->defer_dirty_sets && (rc = dirty_tracker_attach_slots(&vm->dirty, err)) < 0)
		return rc;
	if ((rc = add_devices(vm, cfg, err)) < 0)
		return rc;
	vm->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->notify_fd < 0)
		return tern_errorf(err, -errno, "eventfd: %s", strerror(errno));
	vm->vcpu = calloc(cfg->vcpus, sizeof *vm->vcpu);
	if (vm->vcpu == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < cfg->vcpus; i++) {
		vm->vcpu[i].fd = -1;
		vm->vcpu[i].vm = vm;
	}
	for (unsigned i = 0; i < cfg->vcpus; i++) {
		if ((rc = vcpu_create(vm, &vm->vcpu[i], i, err)) < 0)
			return rc;
		vm->vcpus++;
		if ((rc = dirty_ring_map(&vm->dirty, &vm->vcpu[i], err)) < 0)
			return rc;
	}
	if ((rc = vcpu_msrs_probe(vm, &vm->vcpu[0], err)) < 0 || (rc = register_state(vm, err)) < 0)
		return rc;
	if (cfg->incoming) {
		vm->state = VM_STATE_INMIGRATE;
		return 0;
	}
	return boot_multiboot(vm, cfg, err);
}

int vm_start(struct vm *vm, struct tern_error *err)
{
	vcpu_install_kick_signal();
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = vm->state != VM_STATE_PRELAUNCH && vm->state != VM_STATE_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	if (vm->state == VM_STATE_PRELAUNCH)
		vm->state = VM_STATE_RUNNING;
	for (unsigned i = 0; i < vm->vcpus; i++) {
		struct vcpu *v = &vm->vcpu[i];
		pthread_mutex_lock(&vm->lock);
		vm->running_threads++;
		pthread_mutex_unlock(&vm->lock);
		int rc = pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (rc != 0) {
			pthread_mutex_lock(&vm->lock);
			vm->running_threads--;
			pthread_mutex_unlock(&vm->lock);
			return tern_errorf(err, -rc, "starting vCPU %u: %s", i, strerror(rc));
		}
		v->thread_started = 1;
	}
	return 0;
}

int vm_pause_to(struct vm *vm, enum vm_state to)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_SHUTDOWN || vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	if (vm->state != VM_STATE_RUNNING) {
		if (vm->state == VM_STATE_PAUSED) /* stopped by the user: now for `to` */
			vm->state = to;
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	/* The state changes first: a second pauser finds it stopped. */
	vm->state = to;
	vm->pause_requested = 1;
	pthread_cond_broadcast(&vm->cond); /* ends throttle naps */
	for (unsigned i = 0; i < vm->vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
	while (vm->parked < vm->running_threads && vm->pause_requested && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	if (vm->on_event != NULL)
		vm->on_event(vm->event_opaque, VM_EVENT_STOP);
	return 1;
}

int vm_quiesce(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int hold = vm->state == VM_STATE_RUNNING && !vm->stopping && !vm->pause_requested;
	if (hold) {
		vm->pause_requested = 1;
		for (unsigned i = 0; i < vm->vcpus; i++)
			vcpu_kick(&vm->vcpu[i]);
		while (vm->parked < vm->running_threads && vm->pause_requested && !vm->stopping)
			pthread_cond_wait(&vm->cond, &vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	return hold;
}

void vm_unquiesce(struct vm *vm, int held)
{
	if (!held)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = 0;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_pause(struct vm *vm)
{
	vm_pause_to(vm, VM_STATE_PAUSED);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STATE_RUNNING || vm->state == VM_STATE_SHUTDOWN || vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->pause_requested = 0;
	vm->state = VM_STATE_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (vm->on_event != NULL)
		vm->on_event(vm->event_opaque, VM_EVENT_RESUME);
}

void vm_set_state(struct vm *vm, enum vm_state state)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_STATE_SHUTDOWN)
		vm->state = state;
	pthread_mutex_unlock(&vm->lock);
}

enum vm_state vm_get_state(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	enum vm_state s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

void vm_request_exit(struct vm *vm, enum vm_exit_cause cause, int status, const char *detail)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->exit_cause == VM_EXIT_NONE) {
		vm->exit_cause = cause;
		vm->exit_status = status;
		snprintf(vm->exit_detail, sizeof vm->exit_detail, "%s", detail);
	}
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	uint64_t one = 1;
	ssize_t n = write(vm->notify_fd, &one, sizeof one);
	(void)n; /* a full counter already wakes the main loop */
}

void vm_stop_threads(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_RELEASE);
	vm->state = VM_STATE_SHUTDOWN;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->vcpus; i++)
		if (vm->vcpu[i].thread_started)
			vcpu_kick(&vm->vcpu[i]);
	for (unsigned i = 0; i < vm->vcpus; i++) {
		if (vm->vcpu[i].thread_started) {
			pthread_join(vm->vcpu[i].thread, NULL);
			vm->vcpu[i].thread_started = 0;
		}
	}
}

void vm_destroy(struct vm *vm)
{
	vm_stop_threads(vm);
	vm_set_throttle(vm, 0);
	for (unsigned i = 0; i < vm->vcpus; i++)
		vcpu_destroy(&vm->vcpu[i]);
	free(vm->vcpu);
	if (vm->dirty_ready)
		dirty_tracker_destroy(&vm->dirty);
	vm->vcpu = NULL;
	if (vm->devices_ready) {
		chardev_close(&vm->serial);
		uart_destroy(&vm->uart);
	}
	pci_host_destroy(&vm->pci);
	gsi_routes_destroy(&vm->irq);
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	memmap_destroy(vm);
	ram_destroy(&vm->ram);
	vm_state_registry_free(&vm->states);
	kvm_close(&vm->kvm);
	if (vm->notify_fd >= 0)
		close(vm->notify_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}

int vm_write_guest(struct vm *vm, uint64_t gpa, const void *data, size_t len)
{
	return dma_write(vm, gpa, data, len);
}

int vm_read_guest(struct vm *vm, uint64_t gpa, void *data, size_t len)
{
	return dma_read(vm, gpa, data, len);
}
