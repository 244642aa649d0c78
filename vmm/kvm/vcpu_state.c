/* A vCPU's state out of KVM and back; see vcpu_state.h. */
#include "kvm/vcpu_state.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "machine/vm.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0

/* MSRs KVM does not list but keeps per vCPU: the MTRRs. */
static const uint32_t extra_msrs[] = {
	0x2ff,                                            /* MTRRdefType */
	0x250, 0x258, 0x259,                              /* fixed-range MTRRs */
	0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
	0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, /* variable */
	0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
};

/* struct kvm_msrs with room for the entries (its layout, spelled out). */
struct msr_buf {
	uint32_t nmsrs, pad;
	struct kvm_msr_entry entry[VCPU_MSRS_MAX];
};

/* Does KVM let the host read this MSR and write the same value back? */
static int msr_round_trips(struct vcpu *v, uint32_t index)
{
	struct msr_buf b = { .nmsrs = 1, .entry[0].index = index };
	if (ioctl(v->fd, KVM_GET_MSRS, &b) != 1)
		return 0;
	return ioctl(v->fd, KVM_SET_MSRS, &b) == 1;
}

static int has_msr(const struct kvm *kvm, uint32_t index)
{
	for (unsigned i = 0; i < kvm->nmsrs; i++)
		if (kvm->msr_index[i] == index)
			return 1;
	return 0;
}

static void consider(struct kvm *kvm, struct vcpu *v, uint32_t index)
{
	if (kvm->nmsrs < VCPU_MSRS_MAX && !has_msr(kvm, index) && msr_round_trips(v, index))
		kvm->msr_index[kvm->nmsrs++] = index;
}

int vcpu_msrs_probe(struct vm *vm, struct vcpu *v, struct tern_error *err)
{
	struct kvm *kvm = &vm->kvm;
	struct kvm_msr_list probe = { .nmsrs = 0 };
	/* E2BIG with the count, then the list. */
	if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return tern_errorf(err, -errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	struct kvm_msr_list *list = calloc(1, sizeof *list + probe.nmsrs * sizeof(uint32_t));
	if (list == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int e = errno;
		free(list);
		return tern_errorf(err, -e, "KVM_GET_MSR_INDEX_LIST: %s", strerror(e));
	}
	kvm->nmsrs = 0;
	for (uint32_t i = 0; i < list->nmsrs; i++)
		consider(kvm, v, list->indices[i]);
	for (size_t i = 0; i < sizeof extra_msrs / sizeof extra_msrs[0]; i++)
		consider(kvm, v, extra_msrs[i]);
	free(list);
	return 0;
}

static int get(struct vcpu *v, unsigned long req, void *arg, const char *what,
	       struct tern_error *err)
{
	if (ioctl(v->fd, req, arg) < 0)
		return tern_errorf(err, -errno, "vCPU %u: %s: %s", v->index, what, strerror(errno));
	return 0;
}

int vcpu_state_get(struct vcpu *v, struct vcpu_state *s, struct tern_error *err)
{
	const struct kvm *kvm = &v->vm->kvm;
	memset(s, 0, sizeof *s);
	int rc;
	if ((rc = get(v, KVM_GET_REGS, &s->regs, "KVM_GET_REGS", err)) < 0 ||
	    (rc = get(v, KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS", err)) < 0 ||
	    (rc = get(v, KVM_GET_XCRS, &s->xcrs, "KVM_GET_XCRS", err)) < 0 ||
	    (rc = get(v, KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS", err)) < 0 ||
	    (rc = get(v, KVM_GET_MP_STATE, &s->mp_state, "KVM_GET_MP_STATE", err)) < 0 ||
	    (rc = get(v, KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC", err)) < 0 ||
	    (rc = get(v, KVM_GET_DEBUGREGS, &s->debugregs, "KVM_GET_DEBUGREGS", err)) < 0)
		return rc;
	if (kvm->xsave_size > VCPU_XSAVE_MAX)
		return tern_errorf(err, -E2BIG, "vCPU %u: its XSAVE area (%d bytes) exceeds %d",
				   v->index, kvm->xsave_size, VCPU_XSAVE_MAX);
	s->xsave_len = (uint32_t)kvm->xsave_size;
	unsigned long xsave_req = kvm->xsave_size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2
										  : KVM_GET_XSAVE;
	if ((rc = get(v, xsave_req, s->xsave, "KVM_GET_XSAVE", err)) < 0)
		return rc;
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;

	struct msr_buf b = { .nmsrs = kvm->nmsrs };
	for (unsigned i = 0; i < kvm->nmsrs; i++)
		b.entry[i].index = kvm->msr_index[i];
	int n = ioctl(v->fd, KVM_GET_MSRS, &b);
	if (n != (int)kvm->nmsrs)
		return tern_errorf(err, n < 0 ? -errno : -EIO, "vCPU %u: KVM_GET_MSRS read %d of "
				   "%u MSRs", v->index, n, kvm->nmsrs);
	s->nmsrs = kvm->nmsrs;
	for (unsigned i = 0; i < kvm->nmsrs; i++)
		s->msrs[i] = (struct vcpu_msr){ b.entry[i].index, b.entry[i].data };
	return 0;
}

static int put(struct vcpu *v, unsigned long req, const void *arg, const char *what,
	       struct tern_error *err)
{
	if (ioctl(v->fd, req, arg) < 0)
		return tern_errorf(err, -errno, "vCPU %u: KVM refused the incoming %s: %s",
				   v->index, what, strerror(errno));
	return 0;
}

/* The MSRs, all but (deadline == 0) or only (deadline == 1) the TSC
 * deadline, which must follow the LAPIC (loading the LAPIC resets it). */
static int put_msrs(struct vcpu *v, const struct vcpu_state *s, int deadline,
		    struct tern_error *err)
{
	struct msr_buf b = { .nmsrs = 0 };
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		if ((s->msrs[i].index == MSR_IA32_TSC_DEADLINE) != deadline)
			continue;
		if (!has_msr(&v->vm->kvm, s->msrs[i].index))
			return tern_errorf(err, -EINVAL, "vCPU %u: MSR 0x%x is not one this host's KVM "
					   "migrates", v->index, s->msrs[i].index);
		b.entry[b.nmsrs++] = (struct kvm_msr_entry){ .index = s->msrs[i].index,
								   .data = s->msrs[i].data };
	}
	if (b.nmsrs == 0)
		return 0;
	int n = ioctl(v->fd, KVM_SET_MSRS, &b);
	if (n < 0)
		return tern_errorf(err, -errno, "vCPU %u: KVM_SET_MSRS: %s", v->index, strerror(errno));
	if (n != (int)b.nmsrs)
		return tern_errorf(err, -EINVAL, "vCPU %u: KVM refused MSR 0x%x = 0x%llx", v->index,
				   b.entry[n].index, (unsigned long long)b.entry[n].data);
	return 0;
}

int vcpu_state_put(struct vcpu *v, const struct vcpu_state *s, struct tern_error *err)
{
	const struct kvm *kvm = &v->vm->kvm;
	if (s->xsave_len != (uint32_t)kvm->xsave_size)
		return tern_errorf(err, -EINVAL, "vCPU %u: the source's XSAVE area is %u bytes, "
				   "this host's %d: the CPUs differ", v->index, s->xsave_len,
				   kvm->xsave_size);
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (s->tsc_khz != 0 && khz > 0 && (uint32_t)khz != s->tsc_khz &&
	    ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0)
		return tern_errorf(err, -errno, "vCPU %u: the source's TSC runs at %u kHz, this "
				   "host's at %d kHz, and KVM cannot scale it: %s", v->index,
				   s->tsc_khz, khz, strerror(errno));
	/* KVM wants a buffer of its full XSAVE size. */
	struct kvm_xsave *xsave = aligned_alloc(64, (size_t)kvm->xsave_size);
	if (xsave == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	memcpy(xsave, s->xsave, (size_t)kvm->xsave_size);
	/* QEMU's order: registers, FPU state, XCRs, special registers (they
	 * set the APIC base), MSRs, MP state, LAPIC, the TSC deadline, events,
	 * debug registers. */
	int rc;
	if ((rc = put(v, KVM_SET_REGS, &s->regs, "registers", err)) < 0 ||
	    (rc = put(v, KVM_SET_XSAVE, xsave, "XSAVE state", err)) < 0 ||
	    (rc = put(v, KVM_SET_XCRS, &s->xcrs, "XCRs", err)) < 0 ||
	    (rc = put(v, KVM_SET_SREGS, &s->sregs, "special registers", err)) < 0 ||
	    (rc = put_msrs(v, s, 0, err)) < 0 ||
	    (rc = put(v, KVM_SET_MP_STATE, &s->mp_state, "MP state", err)) < 0 ||
	    (rc = put(v, KVM_SET_LAPIC, &s->lapic, "local APIC", err)) < 0 ||
	    (rc = put_msrs(v, s, 1, err)) < 0 ||
	    (rc = put(v, KVM_SET_VCPU_EVENTS, &s->events, "pending events", err)) < 0 ||
	    (rc = put(v, KVM_SET_DEBUGREGS, &s->debugregs, "debug registers", err)) < 0) {
		free(xsave);
		return rc;
	}
	free(xsave);
	return 0;
}

/* ---------------------------------------------------------------- vmstate */

static const struct tern_vmstate_field msr_fields[] = {
	TERN_VMS_FIELD_U32(struct vcpu_msr, index, 0),
	TERN_VMS_FIELD_U64(struct vcpu_msr, data, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc msr_desc = {
	.name = "msr",
	.size = sizeof(struct vcpu_msr),
	.version = 1,
	.min_version = 1,
	.fields = msr_fields,
};

/* What KVM would take but no CPU has: reject before it gets that far. */
static int vcpu_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct vcpu_state *s = obj;
	if (s->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return tern_errorf(err, -EINVAL, "%u XCRs, at most %d exist", s->xcrs.nr_xcrs,
				   KVM_MAX_XCRS);
	if (s->mp_state.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
		return tern_errorf(err, -EINVAL, "MP state %u is not one KVM knows",
				   s->mp_state.mp_state);
	if (s->xsave_len < sizeof(struct kvm_xsave))
		return tern_errorf(err, -EINVAL, "an XSAVE area of %u bytes is too small",
				   s->xsave_len);
	for (uint32_t i = 0; i < s->nmsrs; i++)
		for (uint32_t j = 0; j < i; j++)
			if (s->msrs[i].index == s->msrs[j].index)
				return tern_errorf(err, -EINVAL, "MSR 0x%x appears twice",
						   s->msrs[i].index);
	return 0;
}

/* KVM's structures travel as their bytes. */
static const struct tern_vmstate_field vcpu_fields[] = {
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, regs, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, sregs, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, xcrs, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, events, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, mp_state, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, lapic, 0),
	TERN_VMS_FIELD_BUFFER(struct vcpu_state, debugregs, 0),
	TERN_VMS_FIELD_U32(struct vcpu_state, tsc_khz, 0),
	TERN_VMS_FIELD_VARRAY_STRUCT(struct vcpu_state, msrs, nmsrs, &msr_desc, 0),
	TERN_VMS_FIELD_VARRAY(struct vcpu_state, xsave, xsave_len, U8, 0),
	TERN_VMS_FIELD_END,
};

const struct tern_vmstate_desc vcpu_state_desc = {
	.name = "x86-vcpu",
	.size = sizeof(struct vcpu_state),
	.version = 1,
	.min_version = 1,
	.fields = vcpu_fields,
	.post_load = vcpu_post_load,
};

static int cpu_save(void *holder, void *obj, struct tern_error *err)
{
	return vcpu_state_get(holder, obj, err);
}

static int cpu_load(void *holder, const void *obj, struct tern_error *err)
{
	return vcpu_state_put(holder, obj, err);
}

VM_STATE_TYPE(vcpu_state_type) = {
	.name = "cpu",
	.desc = &vcpu_state_desc,
	.carry = VM_CARRY_ALL,
	.flags = VM_STATE_NUMBERED,
	.save = cpu_save,
	.load = cpu_load,
};
