/* Embeds the built-in guest; GUEST_ELF is set by the Makefile. */
	.section .rodata
	.balign 16
	.globl tern_builtin_guest, tern_builtin_guest_end
tern_builtin_guest:
	.incbin GUEST_ELF
tern_builtin_guest_end:
	.section .note.GNU-stack, "", @progbits
