/*
 * Multiboot boot, as QEMU's -kernel does it: load the image's segments,
 * put the information block in low memory, and start the boot vCPU in
 * 32-bit protected mode with EAX = 0x2BADB002 and EBX = the block.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "tern/multiboot.h"
#include "machine/vm.h"

/* The information block goes into conventional memory, below the EBDA. */
#define MBI_ADDR 0x9000u
#define MBI_LIMIT 0x9f000u

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int load_segments(struct vm *vm, const struct vm_config *cfg,
			 const struct tern_multiboot_image *img, struct tern_error *err)
{
	for (unsigned i = 0; i < img->segments; i++) {
		const struct tern_multiboot_segment *s = &img->segment[i];
		uint8_t *host = ram_host(&vm->ram, s->addr, s->mem_size);
		if (host == NULL)
			return tern_errorf(err, -ENOMEM, "kernel segment at 0x%x (%u bytes) is not "
					   "in guest RAM; give the VM more --memory", s->addr,
					   s->mem_size);
		if (overlaps(s->addr, s->mem_size, MBI_ADDR, MBI_LIMIT - MBI_ADDR))
			return tern_errorf(err, -EINVAL, "kernel segment at 0x%x overlaps the "
					   "multiboot information area 0x%x-0x%x", s->addr, MBI_ADDR,
					   MBI_LIMIT);
		memcpy(host, cfg->kernel + s->file_offset, s->file_size);
		memset(host + s->file_size, 0, s->mem_size - s->file_size);
	}
	return 0;
}

static int build_info(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	/* QEMU passes "<kernel> <append>"; guests skip the first word. */
	size_t len = strlen(cfg->kernel_name) + 1 + (cfg->append ? strlen(cfg->append) : 0) + 1;
	char *cmdline = malloc(len);
	if (cmdline == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	snprintf(cmdline, len, "%s%s%s", cfg->kernel_name, cfg->append ? " " : "",
		 cfg->append ? cfg->append : "");
	struct tern_memory_range map[8];
	unsigned n = ram_memory_map(&vm->ram, map);
	uint8_t *host = ram_host(&vm->ram, MBI_ADDR, MBI_LIMIT - MBI_ADDR);
	int rc = tern_multiboot_build_info(host, MBI_LIMIT - MBI_ADDR, MBI_ADDR, cmdline, map, n,
					   err);
	free(cmdline);
	return rc < 0 ? rc : 0;
}

/* Flat 4 GiB segments, protected mode without paging. */
static int set_boot_registers(struct vcpu *v, uint32_t entry, struct tern_error *err)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return tern_errorf(err, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_segment data = code;
	data.type = 0x3;
	data.selector = 0x18;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.cr0 = 0x11; /* PE, ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return tern_errorf(err, -errno, "KVM_SET_SREGS: %s", strerror(errno));
	struct kvm_regs regs = {
		.rip = entry,
		.rflags = 0x2,
		.rax = TERN_MULTIBOOT_BOOT_MAGIC,
		.rbx = MBI_ADDR,
	};
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return tern_errorf(err, -errno, "KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

int boot_multiboot(struct vm *vm, const struct vm_config *cfg, struct tern_error *err)
{
	struct tern_multiboot_image img;
	int rc = tern_multiboot_parse(cfg->kernel, cfg->kernel_len, &img, err);
	if (rc == 0)
		rc = load_segments(vm, cfg, &img, err);
	if (rc == 0)
		rc = build_info(vm, cfg, err);
	if (rc == 0)
		rc = set_boot_registers(&vm->vcpu[0], img.entry, err);
	if (rc < 0)
		tern_error_prefix(err, "kernel %s", cfg->kernel_name);
	return rc;
}
