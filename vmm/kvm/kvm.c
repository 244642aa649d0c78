/* KVM system and VM ioctls; see kvm.h. */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CPUID_MAX_ENTRIES 256
/* Pages KVM needs for real-mode emulation on Intel; placed in the PCI hole,
 * below the 0xfec00000 IOAPIC like QEMU does. */
#define KVM_TSS_ADDR 0xfeffd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL

/* Linux 6.8's memory-region ioctl, missing from older headers (Debian 12
 * ships 6.1's); tern uses it where the running kernel offers it. */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

static const char *kvm_device(void)
{
	const char *path = getenv("TERN_KVM_DEVICE");
	return path != NULL && *path != '\0' ? path : "/dev/kvm";
}

int kvm_open(struct kvm *kvm, struct tern_error *err)
{
	memset(kvm, 0, sizeof *kvm);
	kvm->sys_fd = kvm->vm_fd = -1;
	const char *path = kvm_device();
	kvm->sys_fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->sys_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return tern_errorf(err, -e, "%s does not exist: this machine offers no KVM. "
					   "Enable virtualization in the firmware and load kvm_intel "
					   "or kvm_amd, or use a host with (nested) KVM", path);
		if (e == EACCES || e == EPERM)
			return tern_errorf(err, -e, "no permission to open %s: add your user to the "
					   "'kvm' group (usermod -aG kvm $USER, then log in again) "
					   "or run tern as root", path);
		return tern_errorf(err, -e, "cannot open %s: %s", path, strerror(e));
	}
	int version = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		kvm_close(kvm);
		return tern_errorf(err, -ENOTSUP, "%s speaks KVM API %d, tern needs %d", path,
				   version, KVM_API_VERSION);
	}
	kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->vcpu_mmap_size <= 0) {
		kvm_close(kvm);
		return tern_errorf(err, -ENOTSUP, "KVM did not report the vCPU mmap size");
	}
	int slots = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	kvm->max_memslots = slots > 0 ? (unsigned)slots : 32;
	kvm->has_memory_region2 = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) > 0;
	kvm->has_readonly_mem = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	int vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (vcpus <= 0)
		vcpus = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	kvm->max_vcpus = vcpus > 0 ? (unsigned)vcpus : 1;
	int xsave2 = ioctl(kvm->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	kvm->xsave_size = xsave2 > (int)sizeof(struct kvm_xsave) ? xsave2 : (int)sizeof(struct kvm_xsave);

	kvm->cpuid = calloc(1, sizeof *kvm->cpuid + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (kvm->cpuid == NULL) {
		kvm_close(kvm);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	kvm->cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm->sys_fd, KVM_GET_SUPPORTED_CPUID, kvm->cpuid) < 0) {
		int e = errno;
		kvm_close(kvm);
		return tern_errorf(err, -e, "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
	}
	return 0;
}

int kvm_check_extension(struct kvm *kvm, long cap)
{
	int fd = kvm->vm_fd >= 0 ? kvm->vm_fd : kvm->sys_fd;
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
	return r < 0 ? 0 : r;
}

/* Lost ticks are not replayed: a guest that slept through ticks with
 * interrupts off should not wake up to a storm of them. */
static int disable_pit_reinject(int vm_fd)
{
	struct kvm_reinject_control reinject = { .pit_reinject = 0 };
	return ioctl(vm_fd, KVM_REINJECT_CONTROL, &reinject);
}

int kvm_create_vm(struct kvm *kvm, struct tern_error *err)
{
	kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0)
		return tern_errorf(err, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	if (fcntl(kvm->vm_fd, F_SETFD, FD_CLOEXEC) < 0)
		return tern_errorf(err, -errno, "fcntl on the VM fd: %s", strerror(errno));
	if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		return tern_errorf(err, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return tern_errorf(err, -errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	return 0;
}

int kvm_create_irqchip(struct kvm *kvm, struct tern_error *err)
{
	if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return tern_errorf(err, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	/* The speaker port (0x61) carries PIT channel 2's gate and output, which
	 * guests use to calibrate their clocks. */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return tern_errorf(err, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	if (!kvm->defer_reinject && disable_pit_reinject(kvm->vm_fd) < 0)
		return tern_errorf(err, -errno, "KVM_REINJECT_CONTROL: %s", strerror(errno));
	return 0;
}

static void *reinject_thread(void *opaque)
{
	disable_pit_reinject(((struct kvm *)opaque)->vm_fd);
	return NULL;
}

void kvm_disable_pit_reinject_later(struct kvm *kvm)
{
	if (kvm->reinject_thread_started)
		return;
	if (pthread_create(&kvm->reinject_thread, NULL, reinject_thread, kvm) == 0)
		kvm->reinject_thread_started = 1;
	else
		disable_pit_reinject(kvm->vm_fd);
}

void kvm_close(struct kvm *kvm)
{
	if (kvm->reinject_thread_started) {
		pthread_join(kvm->reinject_thread, NULL);
		kvm->reinject_thread_started = 0;
	}
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->sys_fd >= 0)
		close(kvm->sys_fd);
	free(kvm->cpuid);
	kvm->cpuid = NULL;
	kvm->vm_fd = kvm->sys_fd = -1;
}

int kvm_set_memslot(struct kvm *kvm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		    uint32_t flags, struct tern_error *err)
{
	int rc;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (kvm->has_memory_region2) {
		struct kvm_userspace_memory_region2 region = {
			.slot = slot,
			.flags = flags,
			.guest_phys_addr = gpa,
			.memory_size = size,
			.userspace_addr = (uint64_t)(uintptr_t)host,
		};
		rc = ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &region);
	} else {
		struct kvm_userspace_memory_region region = {
			.slot = slot,
			.flags = flags,
			.guest_phys_addr = gpa,
			.memory_size = size,
			.userspace_addr = (uint64_t)(uintptr_t)host,
		};
		rc = ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	kvm->memslot_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
				      (t1.tv_nsec - t0.tv_nsec));
	if (rc < 0)
		return tern_errorf(err, -errno, "KVM_SET_USER_MEMORY_REGION%s slot %u at 0x%llx "
				   "(0x%llx bytes): %s", kvm->has_memory_region2 ? "2" : "", slot,
				   (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
	return 0;
}

int kvm_set_irq_line(struct kvm *kvm, unsigned irq, int level)
{
	struct kvm_irq_level line = { .irq = irq, .level = (uint32_t)level };
	return ioctl(kvm->vm_fd, KVM_IRQ_LINE, &line) < 0 ? -errno : 0;
}
