/*
 * Constants shared by the guest's assembly and C code: selectors, control
 * register bits, page-table bits, vectors, exit statuses.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define SEL_KCODE   0x08
#define SEL_KDATA   0x10
#define SEL_UDATA   (0x18 | 3)
#define SEL_UCODE   (0x20 | 3)
#define SEL_KCODE32 0x28
#define SEL_TSS     0x30

#define CR0_PE (1 << 0)
#define CR0_MP (1 << 1)
#define CR0_EM (1 << 2)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define CR4_OSFXSR (1 << 9)
#define CR4_OSXMMEXCPT (1 << 10)

#define EFER_LME (1 << 8)

#define PTE_P  0x001
#define PTE_W  0x002
#define PTE_U  0x004
#define PTE_PS 0x080

#define KERNEL_STACK_SIZE 16384
#define USER_STACK_SIZE 65536

/* Interrupt vectors: PIC master at 0x20, slave at 0x28. */
#define VEC_PIC_MASTER 0x20
#define VEC_PIC_SLAVE 0x28

/* The working-set window: all usable RAM above the kernel, mapped
 * virtually contiguous at 512 GiB (PML4 slot 1) with 2 MiB pages. */
#define WINDOW_VA 0x8000000000ULL
#define WINDOW_MAX_GIB 128

/* Exit statuses written to the exit port (0xf4). */
#define GUEST_EXIT_OK 0
#define GUEST_EXIT_VERIFY_FAILED 1
#define GUEST_EXIT_BAD_ARGS 2
#define GUEST_EXIT_EXCEPTION 3
#define GUEST_EXIT_NO_MEMORY 4
#define GUEST_EXIT_NO_LONG_MODE 5
#define GUEST_EXIT_BAD_BOOT 6

#endif
