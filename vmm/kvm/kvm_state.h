/*
 * The VM-wide state KVM holds for tern, saved and restored for
 * migration: the interrupt controllers (both PICs, the IOAPIC), the PIT,
 * the kvmclock, and a fingerprint of the CPUID the vCPUs were given (a
 * guest must not wake up on a CPU that differs from the one it booted on).
 */
#ifndef VMM_KVM_STATE_H
#define VMM_KVM_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "tern/error.h"
#include "machine/vm_state.h"
#include "tern/vmstate.h"

struct kvm_vm_state {
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	uint64_t clock_ns;     /* kvmclock when the guest stopped */
	uint32_t cpuid_crc;    /* CRC-32C of the CPUID entries */
};

extern const struct tern_vmstate_desc kvm_vm_state_desc;

int kvm_vm_state_get(struct kvm *kvm, struct kvm_vm_state *s, struct tern_error *err);
/* Everything but the clock, which is set as the guest resumes. */
int kvm_vm_state_put(struct kvm *kvm, const struct kvm_vm_state *s, struct tern_error *err);
int kvm_clock_put(struct kvm *kvm, uint64_t clock_ns, struct tern_error *err);

/* Its entry in the state registry (machine/vm_state.h). */
extern const struct vm_state_type kvm_state_type;

#endif
