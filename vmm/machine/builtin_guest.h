/* The built-in guest, a multiboot ELF32 kernel embedded at build time. */
#ifndef VMM_BUILTIN_GUEST_H
#define VMM_BUILTIN_GUEST_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t tern_builtin_guest[];
extern const uint8_t tern_builtin_guest_end[];

static inline size_t tern_builtin_guest_size(void)
{
	return (size_t)(tern_builtin_guest_end - tern_builtin_guest);
}

#endif
