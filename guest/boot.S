/*
 * Multiboot v1 entry of the built-in guest.
 *
 * The loader (tern or QEMU's -kernel) enters here in 32-bit protected mode
 * with paging off, EAX = 0x2BADB002 and EBX = the multiboot information.
 * This file switches to long mode with a 4 GiB identity map and calls
 * kernel_main() (ring 0, C).  It also holds the interrupt entry points.
 *
 * Ring-0 code is ~1000x slower on the paravirtualized KVM this project is
 * developed on, so everything here is kept to a few hundred instructions.
 */
#include "layout.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-aligned modules, memory information */

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	mov	%eax, boot_magic
	mov	%ebx, boot_mbi
	mov	$boot_stack_top, %esp
	lgdt	gdt_desc
	ljmp	$SEL_KCODE32, $1f
1:	mov	$SEL_KDATA, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs

	/* Long mode available? */
	mov	$0x80000000, %eax
	cpuid
	cmp	$0x80000001, %eax
	jb	no_long_mode
	mov	$0x80000001, %eax
	cpuid
	bt	$29, %edx
	jnc	no_long_mode

	/* Identity-map 0..4 GiB with 2 MiB pages, user-accessible: pml4[0] ->
	 * pdpt_low, pdpt_low[0..3] -> pd_low (4 pages, 2048 entries). */
	mov	$pd_low, %edi
	mov	$(PTE_P | PTE_W | PTE_U | PTE_PS), %eax
	xor	%edx, %edx
	mov	$2048, %ecx
2:	mov	%eax, (%edi)
	mov	%edx, 4(%edi)
	add	$0x200000, %eax
	adc	$0, %edx
	add	$8, %edi
	dec	%ecx
	jnz	2b

	mov	$pdpt_low, %edi
	mov	$(pd_low + (PTE_P | PTE_W | PTE_U)), %eax
	mov	%eax, 0(%edi)
	add	$4096, %eax
	mov	%eax, 8(%edi)
	add	$4096, %eax
	mov	%eax, 16(%edi)
	add	$4096, %eax
	mov	%eax, 24(%edi)
	movl	$(pdpt_low + (PTE_P | PTE_W | PTE_U)), pml4

	/* PAE + SSE state, CR3, EFER.LME, then paging on. */
	mov	$(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	mov	%eax, %cr4
	mov	$pml4, %eax
	mov	%eax, %cr3
	mov	$0xC0000080, %ecx
	rdmsr
	or	$EFER_LME, %eax
	wrmsr
	mov	%cr0, %eax
	and	$~(CR0_EM), %eax
	or	$(CR0_PG | CR0_MP | CR0_PE), %eax
	mov	%eax, %cr0
	ljmp	$SEL_KCODE, $long_mode

no_long_mode:
	/* Say why on COM1 and leave through the exit port. */
	mov	$msg_no_lm, %esi
	mov	$0x3f8, %dx
3:	lodsb
	test	%al, %al
	jz	4f
	out	%al, %dx
	jmp	3b
4:	mov	$GUEST_EXIT_NO_LONG_MODE, %al
	mov	$0xf4, %dx
	out	%al, %dx
	hlt
	jmp	4b

	.code64
long_mode:
	mov	$SEL_KDATA, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	xor	%eax, %eax
	mov	%ax, %fs
	mov	%ax, %gs
	mov	$boot_stack_top, %rsp
	mov	boot_magic(%rip), %edi
	mov	boot_mbi(%rip), %esi
	call	kernel_main
5:	hlt
	jmp	5b

/*
 * enter_user(entry, stack, arg): iretq to ring 3 with interrupts off;
 * ring 3 runs with IF=0 and only takes interrupts inside the sleep call.
 */
	.globl enter_user
enter_user:
	mov	%rdx, %rax
	pushq	$SEL_UDATA
	pushq	%rsi
	pushq	$0x2
	pushq	$SEL_UCODE
	pushq	%rdi
	mov	%rax, %rdi
	mov	$SEL_UDATA, %ax
	mov	%ax, %ds
	mov	%ax, %es
	iretq

/*
 * Exceptions: push a uniform frame and call fatal_exception(vector, frame).
 * Vectors with an error code: 8, 10-14, 17, 21, 29, 30.
 */
.macro EXC_NOERR n
	.globl exc\n
exc\n:
	pushq	$0
	pushq	$\n
	jmp	exc_common
.endm
.macro EXC_ERR n
	.globl exc\n
exc\n:
	pushq	$\n
	jmp	exc_common
.endm
EXC_NOERR 0
EXC_NOERR 1
EXC_NOERR 2
EXC_NOERR 3
EXC_NOERR 4
EXC_NOERR 5
EXC_NOERR 6
EXC_NOERR 7
EXC_ERR   8
EXC_NOERR 9
EXC_ERR   10
EXC_ERR   11
EXC_ERR   12
EXC_ERR   14
EXC_NOERR 15
EXC_NOERR 16
EXC_ERR   17
EXC_NOERR 18
EXC_NOERR 19
EXC_NOERR 20
EXC_ERR   21

exc_common:
	mov	%rsp, %rdi
	and	$~15, %rsp
	call	fatal_exception
6:	hlt
	jmp	6b

/* Hardware interrupts from the PICs: acknowledge and return. */
	.globl irq_master
irq_master:
	push	%rax
	mov	$0x20, %al
	out	%al, $0x20
	pop	%rax
	iretq

	.globl irq_slave
irq_slave:
	push	%rax
	mov	$0x20, %al
	out	%al, $0xa0
	out	%al, $0x20
	pop	%rax
	iretq

/*
 * #GP.  A HLT in ring 3 is the guest's one system call, "sleep until the
 * next interrupt": it faults here and is performed in ring 0.  (INT n from
 * user mode becomes #UD on the paravirtualized KVM and SYSCALL does not
 * change privilege there; a fault is the door that works everywhere.)
 * STI's one-instruction shadow makes the HLT atomic with enabling
 * interrupts.  Entry stack: error code, RIP, CS, RFLAGS, RSP, SS.
 *
 * Ring 3 drives its ports through the TSS's all-zero I/O bitmap, the one
 * door the paravirtualized KVM honours.  QEMU's TCG (KVM nested on its
 * emulated SVM) consults the bitmap only while TR is an *available* TSS,
 * and a migrated vCPU arrives with TR busy, as KVM reports it: there the
 * IN or OUT faults, and ring 3 gets IOPL=3 and tries it again.
 */
	.globl exc13
exc13:
	push	%rax
	testb	$3, 24(%rsp)		/* from ring 3? */
	jz	1f
	mov	16(%rsp), %rax		/* faulting RIP */
	cmpb	$0xf4, (%rax)		/* HLT */
	je	3f
	cmpb	$0x66, (%rax)		/* operand-size prefix */
	jne	2f
	inc	%rax
2:	movb	(%rax), %al
	andb	$0xf4, %al		/* E4-E7, EC-EF: IN or OUT */
	cmpb	$0xe4, %al
	jne	1f
	mov	32(%rsp), %rax		/* RFLAGS */
	and	$0x3000, %eax
	cmp	$0x3000, %eax		/* IOPL=3 already: a real fault */
	je	1f
	orq	$0x3000, 32(%rsp)
	pop	%rax
	add	$8, %rsp		/* drop the error code */
	iretq
3:	incq	16(%rsp)		/* resume after the HLT */
	pop	%rax
	add	$8, %rsp		/* drop the error code */
	sti
	hlt
	cli
	iretq
1:	pop	%rax
	pushq	$13
	jmp	exc_common

	.section .rodata
msg_no_lm:
	.asciz "tern-guest: this CPU has no long mode; the guest needs x86-64\n"

	.section .data
	.balign 16
gdt:
	.quad 0                         /* null */
	.quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cff2000000ffff        /* 0x18 user data (DPL 3) */
	.quad 0x00affa000000ffff        /* 0x20 user code, 64-bit (DPL 3) */
	.quad 0x00cf9a000000ffff        /* 0x28 kernel code, 32-bit */
	.globl gdt_tss
gdt_tss:
	.quad 0, 0                      /* 0x30 TSS, filled by kernel_main */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.section .bss
	.balign 4
boot_magic:	.long 0
boot_mbi:	.long 0
	.balign 4096
	.globl pml4, pdpt_low, pd_low
pml4:		.skip 4096
pdpt_low:	.skip 4096
pd_low:		.skip 4 * 4096
	.balign 16
boot_stack:	.skip KERNEL_STACK_SIZE
	.globl boot_stack_top
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
