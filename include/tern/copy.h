/* Copying a page into memory that will not be read soon (a destination's
 * guest RAM during a migration): streaming stores skip reading each target
 * line into the cache first, halving the memory traffic.  AVX2 where the
 * CPU has it, memcpy otherwise. */
#ifndef TERN_COPY_H
#define TERN_COPY_H

#include <stddef.h>

/* dst 32-byte aligned, len a multiple of 128 for the fast path. */
void tern_copy_stream(void *dst, const void *src, size_t len);
/* Make every streamed copy visible before anything that follows. */
void tern_copy_fence(void);

#endif
