/*
 * Ring-0 setup: read the multiboot information, map all usable RAM into a
 * virtually contiguous window, install TSS and IDT, and drop to ring 3.
 * Everything here runs about a thousand times slower than ring 3 on a
 * paravirtualized KVM, so it stays short and runs once.
 */
#include <stddef.h>
#include <stdint.h>

#include "console.h"
#include "guest.h"
#include "io.h"

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002
#define MBI_MEMORY (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MMAP (1u << 6)
#define MMAP_AVAILABLE 1
#define TWO_MIB (2ULL << 20)

struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower;
	uint32_t mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count;
	uint32_t mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
};

struct multiboot_mmap_entry {
	uint32_t size;
	uint64_t addr;
	uint64_t len;
	uint32_t type;
} __attribute__((packed));

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iopb_offset;
	/* All ports allowed (zero bits): ring 3 drives COM1, the PIT, the PICs
	 * and the exit port.  RFLAGS.IOPL=3 is not honoured in user mode by
	 * the paravirtualized KVM; the bitmap is. */
	uint8_t iopb[8192];
	uint8_t iopb_end;
} __attribute__((packed));

struct idt_gate {
	uint64_t lo, hi;
};

extern uint64_t pml4[512];
extern uint64_t gdt_tss[2];
extern char boot_stack_top[];
extern char __kernel_end[];
extern void exc0(void), exc1(void), exc2(void), exc3(void), exc4(void), exc5(void),
	exc6(void), exc7(void), exc8(void), exc9(void), exc10(void), exc11(void),
	exc12(void), exc13(void), exc14(void), exc15(void), exc16(void), exc17(void),
	exc18(void), exc19(void), exc20(void), exc21(void);
extern void irq_master(void), irq_slave(void);
_Noreturn void enter_user(void (*entry)(struct boot_info *), void *stack, struct boot_info *arg);

static struct boot_info boot_info;
static struct tss tss;
static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint64_t pdpt_window[512] __attribute__((aligned(4096)));
static uint64_t pd_window[WINDOW_MAX_GIB][512] __attribute__((aligned(4096)));
static uint8_t user_stack[USER_STACK_SIZE] __attribute__((aligned(16)));

static _Noreturn void boot_fail(const char *why)
{
	console_printf("tern-guest: %s\n", why);
	guest_exit(GUEST_EXIT_BAD_BOOT);
}

static void copy_cmdline(const struct multiboot_info *mbi)
{
	if (!(mbi->flags & MBI_CMDLINE))
		return;
	const char *src = (const char *)(uintptr_t)mbi->cmdline;
	size_t i = 0;
	while (i + 1 < CMDLINE_MAX && src[i] != '\0') {
		boot_info.cmdline[i] = src[i];
		i++;
	}
	boot_info.cmdline[i] = '\0';
}

/* Map [phys, phys + bytes) at the window's current end, 2 MiB at a time. */
static void window_add(uint64_t phys, uint64_t bytes)
{
	if (boot_info.regions == WINDOW_REGIONS_MAX)
		return;
	uint64_t room = (uint64_t)WINDOW_MAX_GIB << 30;
	if (boot_info.window_bytes >= room)
		return;
	if (bytes > room - boot_info.window_bytes)
		bytes = room - boot_info.window_bytes;
	struct window_region *r = &boot_info.region[boot_info.regions++];
	r->window_offset = boot_info.window_bytes;
	r->phys = phys;
	r->bytes = bytes;
	for (uint64_t off = 0; off < bytes; off += TWO_MIB) {
		uint64_t slot = (boot_info.window_bytes + off) / TWO_MIB;
		pd_window[slot / 512][slot % 512] = (phys + off) | PTE_P | PTE_W | PTE_U | PTE_PS;
	}
	boot_info.window_bytes += bytes;
}

static void add_usable(uint64_t start, uint64_t len, uint64_t floor)
{
	uint64_t end = start + len;
	boot_info.ram_bytes += len;
	if (start < floor)
		start = floor;
	start = (start + TWO_MIB - 1) & ~(TWO_MIB - 1);
	end &= ~(TWO_MIB - 1);
	if (end > start)
		window_add(start, end - start);
}

static void build_window(const struct multiboot_info *mbi)
{
	uint64_t floor = ((uint64_t)(uintptr_t)__kernel_end + TWO_MIB - 1) & ~(TWO_MIB - 1);
	if (mbi->flags & MBI_MMAP) {
		uint32_t at = mbi->mmap_addr;
		uint32_t end = mbi->mmap_addr + mbi->mmap_length;
		while (at + sizeof(struct multiboot_mmap_entry) <= end) {
			const struct multiboot_mmap_entry *e = (const void *)(uintptr_t)at;
			if (e->type == MMAP_AVAILABLE)
				add_usable(e->addr, e->len, floor);
			at += e->size + sizeof(e->size);
		}
	} else if (mbi->flags & MBI_MEMORY) {
		add_usable(1ULL << 20, (uint64_t)mbi->mem_upper << 10, floor);
	} else {
		boot_fail("the loader gave no memory map");
	}
	for (unsigned g = 0; g < WINDOW_MAX_GIB; g++)
		if (pd_window[g][0] != 0)
			pdpt_window[g] = (uint64_t)(uintptr_t)pd_window[g] | PTE_P | PTE_W | PTE_U;
	pml4[WINDOW_VA >> 39] = (uint64_t)(uintptr_t)pdpt_window | PTE_P | PTE_W | PTE_U;
}

static void set_gate(unsigned vector, void (*handler)(void), unsigned dpl)
{
	uint64_t off = (uint64_t)(uintptr_t)handler;
	idt[vector].lo = (off & 0xffff) | ((uint64_t)SEL_KCODE << 16) |
			 ((uint64_t)(0x8e | (dpl << 5)) << 40) | ((off >> 16 & 0xffff) << 48);
	idt[vector].hi = off >> 32;
}

static void load_tss_and_idt(void)
{
	tss.rsp[0] = (uint64_t)(uintptr_t)boot_stack_top;
	tss.iopb_offset = offsetof(struct tss, iopb);
	tss.iopb_end = 0xff;
	uint64_t base = (uint64_t)(uintptr_t)&tss;
	uint64_t limit = sizeof tss - 1;
	gdt_tss[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		     ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
	gdt_tss[1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(SEL_TSS));

	void (*const exceptions[])(void) = {
		exc0,  exc1,  exc2,  exc3,  exc4,  exc5,  exc6,  exc7,  exc8,  exc9,  exc10,
		exc11, exc12, exc13, exc14, exc15, exc16, exc17, exc18, exc19, exc20, exc21,
	};
	for (unsigned v = 0; v < sizeof exceptions / sizeof exceptions[0]; v++)
		set_gate(v, exceptions[v], 0);
	for (unsigned v = 0; v < 8; v++) {
		set_gate(VEC_PIC_MASTER + v, irq_master, 0);
		set_gate(VEC_PIC_SLAVE + v, irq_slave, 0);
	}
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof idt - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void kernel_main(uint32_t magic, uint32_t mbi_addr);
void kernel_main(uint32_t magic, uint32_t mbi_addr)
{
	if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
		boot_fail("not started by a multiboot loader (bad magic in EAX)");
	const struct multiboot_info *mbi = (const void *)(uintptr_t)mbi_addr;
	copy_cmdline(mbi);
	build_window(mbi);
	load_tss_and_idt();
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
	enter_user(user_main, user_stack + sizeof user_stack, &boot_info);
}

struct exception_frame {
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

void fatal_exception(const struct exception_frame *f);
void fatal_exception(const struct exception_frame *f)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	console_printf("tern-guest: EXCEPTION vector=%llu error=0x%llx rip=0x%llx rsp=0x%llx "
		       "cr2=0x%llx cs=0x%llx\n",
		       (unsigned long long)f->vector, (unsigned long long)f->error,
		       (unsigned long long)f->rip, (unsigned long long)f->rsp,
		       (unsigned long long)cr2, (unsigned long long)f->cs);
	guest_exit(GUEST_EXIT_EXCEPTION);
}

uint64_t window_phys(const struct boot_info *info, uint64_t offset)
{
	for (unsigned i = 0; i < info->regions; i++) {
		const struct window_region *r = &info->region[i];
		if (offset >= r->window_offset && offset - r->window_offset < r->bytes)
			return r->phys + (offset - r->window_offset);
	}
	return UINT64_MAX;
}
