/*
 * A vCPU's architectural state as KVM holds it, saved and restored for
 * migration: general and special registers, FPU/SSE/AVX (XSAVE), XCRs,
 * the MSRs in use, pending events, MP state, the local APIC, debug
 * registers and the TSC frequency.  The vCPU must not be in KVM_RUN.
 */
#ifndef VMM_VCPU_STATE_H
#define VMM_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "tern/error.h"
#include "machine/vm_state.h"
#include "tern/vmstate.h"

struct vm;
struct vcpu;

#define VCPU_MSRS_MAX KVM_MIGRATED_MSRS_MAX
#define VCPU_XSAVE_MAX 16384

struct vcpu_msr {
	uint32_t index;
	uint64_t data;
};

struct vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs debugregs;
	uint32_t tsc_khz;
	uint32_t nmsrs;
	struct vcpu_msr msrs[VCPU_MSRS_MAX];
	uint32_t xsave_len;
	uint8_t xsave[VCPU_XSAVE_MAX] __attribute__((aligned(64)));
};

extern const struct tern_vmstate_desc vcpu_state_desc;

/* Once per VM, on a vCPU that has not run: which MSRs KVM lets tern read
 * and write back (they travel with the vCPU). */
int vcpu_msrs_probe(struct vm *vm, struct vcpu *v, struct tern_error *err);

int vcpu_state_get(struct vcpu *v, struct vcpu_state *s, struct tern_error *err);
int vcpu_state_put(struct vcpu *v, const struct vcpu_state *s, struct tern_error *err);

/* Its entry in the state registry (machine/vm_state.h). */
extern const struct vm_state_type vcpu_state_type;

#endif
