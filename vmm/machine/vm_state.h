/*
 * The machine's state, besides RAM, as migration stream sections:
 *
 *   "machine" the machine's shape (its vCPU count), sent first, right
 *             after HELLO, so a destination of another shape refuses
 *             before any RAM is sent (optional: older sources lack it)
 *   "kvm"     interrupt controllers, PIT, kvmclock, CPUID fingerprint
 *   "cpu/N"   vCPU N, one per vCPU
 *   "uart"    the serial port (the exit port keeps no state)
 *
 * The destination checks each section as it arrives and keeps it; only
 * when every one is in does it hand them to KVM and the devices.
 */
#ifndef VMM_VM_STATE_H
#define VMM_VM_STATE_H

#include "kvm/kvm_state.h"
#include "tern/error.h"
#include "tern/stream.h"
#include "devices/uart.h"
#include "kvm/vcpu_state.h"

struct vm;

/* Source, before any page: the "machine" section. */
int vm_state_save_shape(struct vm *vm, struct tern_stream_writer *w, struct tern_error *err);
/* Source, vCPUs stopped: append every other section. */
int vm_state_save(struct vm *vm, struct tern_stream_writer *w, struct tern_error *err);
/* The same, handing each section to fn (0 or -errno). */
typedef int (*vm_state_sink)(void *ctx, const char *name, const uint8_t *data, size_t len);
int vm_state_save_to(struct vm *vm, vm_state_sink fn, void *ctx, struct tern_error *err);

/* Destination: what has arrived. */
struct vm_state_in {
	unsigned vcpus;
	struct vcpu_state *cpu;
	unsigned char *have_cpu;
	struct kvm_vm_state kvm;
	int have_kvm;
	struct uart_state uart;
	int have_uart;
	int have_shape;
};

int vm_state_in_init(struct vm_state_in *in, unsigned vcpus);
void vm_state_in_free(struct vm_state_in *in);
/* Check and keep one section; a name not listed above, a second copy of
 * one, or contents that do not load are refused. */
int vm_state_load_section(struct vm_state_in *in, const char *name, const uint8_t *data,
			  size_t len, struct tern_error *err);
/* Every section is in: give the state to KVM and the devices. */
int vm_state_apply(struct vm *vm, const struct vm_state_in *in, struct tern_error *err);

#endif
