/* The VM-wide KVM state; see kvm_state.h. */
#include "kvm/kvm_state.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

#include "tern/crc32c.h"

/* KVM reports the APIC ID of whichever host CPU answered; each vCPU gets
 * its own in those fields anyway, so they are left out. */
static uint32_t cpuid_fingerprint(const struct kvm *kvm)
{
	uint32_t crc = 0;
	for (uint32_t i = 0; i < kvm->cpuid->nent; i++) {
		struct kvm_cpuid_entry2 e = kvm->cpuid->entries[i];
		if (e.function == 1)
			e.ebx &= 0x00ffffffu;
		else if (e.function == 0xb || e.function == 0x1f)
			e.edx = 0;
		crc = tern_crc32c(crc, &e, sizeof e);
	}
	return crc;
}

static int get_chip(struct kvm *kvm, uint32_t id, struct kvm_irqchip *c, struct tern_error *err)
{
	memset(c, 0, sizeof *c);
	c->chip_id = id;
	if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, c) < 0)
		return tern_errorf(err, -errno, "KVM_GET_IRQCHIP %u: %s", id, strerror(errno));
	return 0;
}

int kvm_vm_state_get(struct kvm *kvm, struct kvm_vm_state *s, struct tern_error *err)
{
	memset(s, 0, sizeof *s);
	int rc;
	if ((rc = get_chip(kvm, KVM_IRQCHIP_PIC_MASTER, &s->pic_master, err)) < 0 ||
	    (rc = get_chip(kvm, KVM_IRQCHIP_PIC_SLAVE, &s->pic_slave, err)) < 0 ||
	    (rc = get_chip(kvm, KVM_IRQCHIP_IOAPIC, &s->ioapic, err)) < 0)
		return rc;
	if (ioctl(kvm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return tern_errorf(err, -errno, "KVM_GET_PIT2: %s", strerror(errno));
	struct kvm_clock_data clock = { 0 };
	if (ioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return tern_errorf(err, -errno, "KVM_GET_CLOCK: %s", strerror(errno));
	s->clock_ns = clock.clock;
	s->cpuid_crc = cpuid_fingerprint(kvm);
	return 0;
}

static int put_chip(struct kvm *kvm, uint32_t id, const struct kvm_irqchip *in,
		    struct tern_error *err)
{
	struct kvm_irqchip c = *in;
	c.chip_id = id; /* by position, whatever the stream said */
	if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &c) < 0)
		return tern_errorf(err, -errno, "KVM refused the incoming interrupt controller "
				   "%u: %s", id, strerror(errno));
	return 0;
}

int kvm_vm_state_put(struct kvm *kvm, const struct kvm_vm_state *s, struct tern_error *err)
{
	if (s->cpuid_crc != cpuid_fingerprint(kvm))
		return tern_errorf(err, -EINVAL, "the source gave its vCPUs a different CPUID "
				   "than this host would: the hosts' CPUs or KVMs differ");
	int rc;
	if ((rc = put_chip(kvm, KVM_IRQCHIP_PIC_MASTER, &s->pic_master, err)) < 0 ||
	    (rc = put_chip(kvm, KVM_IRQCHIP_PIC_SLAVE, &s->pic_slave, err)) < 0 ||
	    (rc = put_chip(kvm, KVM_IRQCHIP_IOAPIC, &s->ioapic, err)) < 0)
		return rc;
	struct kvm_pit_state2 pit = s->pit;
	if (ioctl(kvm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return tern_errorf(err, -errno, "KVM refused the incoming PIT state: %s",
				   strerror(errno));
	return 0;
}

int kvm_clock_put(struct kvm *kvm, uint64_t clock_ns, struct tern_error *err)
{
	struct kvm_clock_data clock = { .clock = clock_ns };
	if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return tern_errorf(err, -errno, "KVM_SET_CLOCK: %s", strerror(errno));
	return 0;
}

static const struct tern_vmstate_field fields[] = {
	TERN_VMS_FIELD_BUFFER(struct kvm_vm_state, pic_master, 0),
	TERN_VMS_FIELD_BUFFER(struct kvm_vm_state, pic_slave, 0),
	TERN_VMS_FIELD_BUFFER(struct kvm_vm_state, ioapic, 0),
	TERN_VMS_FIELD_BUFFER(struct kvm_vm_state, pit, 0),
	TERN_VMS_FIELD_U64(struct kvm_vm_state, clock_ns, 0),
	TERN_VMS_FIELD_U32(struct kvm_vm_state, cpuid_crc, 0),
	TERN_VMS_FIELD_END,
};

const struct tern_vmstate_desc kvm_vm_state_desc = {
	.name = "kvm-vm",
	.size = sizeof(struct kvm_vm_state),
	.version = 1,
	.min_version = 1,
	.fields = fields,
};

/* ------------------------------------------------------------ registry */

static int kvm_state_save(void *holder, void *obj, struct tern_error *err)
{
	return kvm_vm_state_get(holder, obj, err);
}

static int kvm_state_load(void *holder, const void *obj, struct tern_error *err)
{
	return kvm_vm_state_put(holder, obj, err);
}

/* The clock goes last, once every vCPU has its state. */
static int kvm_state_finish(void *holder, const void *obj, struct tern_error *err)
{
	const struct kvm_vm_state *s = obj;
	return kvm_clock_put(holder, s->clock_ns, err);
}

VM_STATE_TYPE(kvm_state_type) = {
	.name = "kvm",
	.desc = &kvm_vm_state_desc,
	.carry = VM_CARRY_ALL,
	.save = kvm_state_save,
	.load = kvm_state_load,
	.finish = kvm_state_finish,
};
