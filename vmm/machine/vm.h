/*
 * A virtual machine: KVM, guest RAM, devices, vCPU threads and the run
 * state that QMP and the command line control.
 *
 * Threads: the main thread owns the VM and runs the event loop; each vCPU
 * has a thread that runs KVM_RUN and emulates the devices it touches.
 * vCPU threads ask the main thread to end the VM with vm_request_exit().
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/chardev.h"
#include "devices/devices.h"
#include "kvm/dirty_tracker.h"
#include "bus/bus.h"
#include "bus/pci.h"
#include "kvm/irq.h"
#include "kvm/kvm.h"
#include "machine/memmap.h"
#include "machine/ram.h"
#include "machine/vm_state.h"
#include "tern/error.h"
#include "devices/uart.h"

struct vm_config {
	int defer_pit_reinject; /* a live update: see struct kvm */
	int defer_dirty_sets;   /* a live update: the caller attaches them after the resume */
	uint64_t memory;
	unsigned vcpus;
	unsigned memslots;     /* 0: one per GiB */
	int mem_prealloc;
	const char *kernel_name; /* shown to the guest as argv[0] */
	const uint8_t *kernel;
	size_t kernel_len;
	const char *append;
	const char *serial;
	int start_paused;
	enum dirty_mode dirty_mode;
	uint32_t dirty_ring_entries;
	int incoming;          /* RAM and state will come from a migration: boot nothing */
	const char *device[VM_MAX_DEVICES]; /* --device specs, built by the runner */
	unsigned ndevices;
	struct tern_fdstore *fds; /* keeps the fds a live update carries (may be NULL) */
	const struct kvm *kvm_ready; /* a KVM VM already created (kvm_open, kvm_create_vm) */
};

/* QEMU's RunState names where they mean the same. */
enum vm_state {
	VM_STATE_PRELAUNCH,
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_SHUTDOWN,
	VM_STATE_INMIGRATE,      /* waiting for an incoming migration */
	VM_STATE_FINISH_MIGRATE, /* stopped for a migration's last pages and state */
	VM_STATE_POSTMIGRATE,    /* stopped: the guest has moved elsewhere */
};

enum vm_exit_cause {
	VM_EXIT_NONE,
	VM_EXIT_GUEST,   /* the guest wrote a status to the exit port */
	VM_EXIT_QUIT,    /* QMP quit */
	VM_EXIT_SIGNAL,  /* SIGINT / SIGTERM */
	VM_EXIT_CRASH,   /* triple fault, KVM internal error, failed entry */
	VM_EXIT_INCOMING_FAILED, /* the migration this VM waited for did not arrive whole */
};

enum vm_event { VM_EVENT_STOP, VM_EVENT_RESUME };

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	int thread_started;
	/* The dirty ring (DIRTY_MODE_RING), harvested under ring_lock. */
	int exit_pending;      /* the last exit completes at the next KVM_RUN */
	uint64_t throttle_ns;  /* auto-converge: sit out this long before running */
	struct kvm_dirty_gfn *ring;
	uint32_t ring_next;
	uint64_t ring_harvested;
	pthread_mutex_t ring_lock;
};

struct vm {
	struct kvm kvm;
	struct guest_ram ram;
	struct vm_memmap memmap;
	struct vm_state_registry states; /* what migration and live update carry */
	/* Devices: port I/O and MMIO ranges, PCI, interrupt routes (bus.md). */
	struct bus_space pio, mmio;
	struct pci_host pci;
	struct gsi_routes irq;
	struct uart uart;
	struct chardev serial;
	int prepared;      /* vm_prepare has run */
	int devices_ready; /* serial and UART set up (for teardown) */
	struct dirty_tracker dirty;
	int dirty_ready;
	unsigned vcpus;
	struct vcpu *vcpu;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_requested;
	unsigned parked;   /* vCPU threads waiting while paused */
	unsigned running_threads;
	int stopping;      /* vCPU threads must leave */
	enum vm_state state;
	enum vm_exit_cause exit_cause;
	int exit_status;
	char exit_detail[256];
	int notify_fd;     /* eventfd: a vCPU asked the main thread to act */

	/* vm_throttle.c */
	pthread_t throttle_thread;
	int throttle_thread_running;
	unsigned throttle_percent; /* under lock */

	void (*on_event)(void *opaque, enum vm_event event);
	void *event_opaque;
};

/*
 * The part of vm_create that needs only the RAM's shape (cfg->memory,
 * memslots, mem_prealloc, fds, kvm_ready, defer_pit_reinject): the KVM VM,
 * the RAM mapped and registered, the irqchip.  Registering memslots costs
 * KVM about 0.5 ms per GiB here, so a live update by transfer prepares the
 * new VM while the guest still runs; vm_create then finishes it, checking
 * the RAM's shape against cfg.
 */
int vm_prepare(struct vm *vm, const struct vm_config *cfg, struct tern_error *err);
/* Build the whole VM (after vm_prepare, or from nothing). */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct tern_error *err);
/* Start the vCPU threads (paused when cfg->start_paused). */
int vm_start(struct vm *vm, struct tern_error *err);
/*
 * Stop or continue all vCPUs; synchronous, any thread.  vm_pause_to stops
 * a running guest and puts the VM in `to` (1); a guest the user paused only
 * changes to `to`, other states stay (0).  vm_resume runs it from any
 * stopped state but shutdown.  The VM's on_event hears of real stops and
 * resumes.
 */
void vm_pause(struct vm *vm);
int vm_pause_to(struct vm *vm, enum vm_state to);
void vm_resume(struct vm *vm);
/* Main thread: hold the vCPUs out of the guest for a moment, with no state
 * change or event (a memslot change KVM cannot make in place); returns
 * whether it held them, for vm_unquiesce. */
int vm_quiesce(struct vm *vm);
void vm_unquiesce(struct vm *vm, int held);
void vm_set_state(struct vm *vm, enum vm_state state);
enum vm_state vm_get_state(struct vm *vm);
/* Auto-converge: keep the vCPUs out of the guest `percent` of the time
 * (0: not at all).  Any thread. */
int vm_set_throttle(struct vm *vm, unsigned percent);
/* Any thread: ask for the VM to end; the first cause wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_cause cause, int status, const char *detail);
/* Any thread: has the VM been asked to end? */
static inline int vm_exit_requested(const struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE);
}
/* Main thread: stop and join the vCPU threads. */
void vm_stop_threads(struct vm *vm);
void vm_destroy(struct vm *vm);
const char *vm_run_state_name(enum vm_state state);

/* Guest memory from the VMM (debug commands): dma_write and dma_read
 * (machine/dma.h), so what is written is marked dirty. */
int vm_write_guest(struct vm *vm, uint64_t gpa, const void *data, size_t len);
int vm_read_guest(struct vm *vm, uint64_t gpa, void *data, size_t len);

/* vcpu.c */
int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index, struct tern_error *err);
void vcpu_destroy(struct vcpu *v);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *v);
void vcpu_install_kick_signal(void);

/* boot.c: load a multiboot kernel and set the boot vCPU's registers. */
int boot_multiboot(struct vm *vm, const struct vm_config *cfg, struct tern_error *err);

#endif
