/* Is a buffer all zeros?  (Zero pages go out as a few bytes, not 4 KiB.)
 * AVX-512 or AVX2 where the CPU has them, chosen at run time. */
#ifndef TERN_ZERO_H
#define TERN_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/* len a multiple of 64 for the fast paths; any length works. */
bool tern_is_zero(const void *buf, size_t len);

#endif
