/* KVM glue: the system and VM file descriptors and the ioctls on them.
 * KVM ioctls appear only in vmm/. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

#include "tern/error.h"

#define KVM_MIGRATED_MSRS_MAX 96

struct kvm {
	int sys_fd;
	int vm_fd;
	int vcpu_mmap_size;
	unsigned max_memslots;
	unsigned max_vcpus;
	int has_memory_region2; /* KVM_SET_USER_MEMORY_REGION2 (Linux 6.8) */
	int has_readonly_mem;
	struct kvm_cpuid2 *cpuid; /* what KVM supports, the base for every vCPU */
	int xsave_size;           /* bytes of a vCPU's XSAVE area */
	/* MSRs a vCPU's state carries: KVM reads and writes them (probed). */
	uint32_t msr_index[KVM_MIGRATED_MSRS_MAX];
	unsigned nmsrs;
	/* Turning PIT tick reinjection off waits for a KVM SRCU grace period
	 * (up to tens of ms here): a live update sets defer_reinject and does
	 * it in a thread once the guest runs. */
	int defer_reinject;
	int reinject_thread_started;
	pthread_t reinject_thread;
	/* Time spent in memslot ioctls: KVM's own cost, which a live update
	 * reports apart (it grows with RAM where KVM shadows guest pages). */
	uint64_t memslot_ns;
};

/* Open /dev/kvm (or $TERN_KVM_DEVICE) with an actionable error. */
int kvm_open(struct kvm *kvm, struct tern_error *err);
/* Create the VM (TSS and identity-map addresses set, no devices yet). */
int kvm_create_vm(struct kvm *kvm, struct tern_error *err);
/* Add the in-kernel irqchip and PIT, before any vCPU.  Register the RAM's
 * memslots first: once an irqchip exists, KVM's first memslot change waits
 * for a grace period (5-10 ms here), which a VM made in a live update's
 * stop cannot afford. */
int kvm_create_irqchip(struct kvm *kvm, struct tern_error *err);
/* Turn PIT reinjection off in a thread (kvm_close waits for it). */
void kvm_disable_pit_reinject_later(struct kvm *kvm);
void kvm_close(struct kvm *kvm);

int kvm_set_memslot(struct kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		    uint32_t flags, struct tern_error *err);
int kvm_set_irq_line(struct kvm *kvm, unsigned irq, int level);
int kvm_check_extension(struct kvm *kvm, long cap);

#endif
