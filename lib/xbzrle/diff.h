/* Byte-difference masks for the XBZRLE encoder: bit i of mask[i / 64] is
 * set when old[i] != new_[i].  One function per instruction set; all give
 * identical masks. */
#ifndef LIB_XBZRLE_DIFF_H
#define LIB_XBZRLE_DIFF_H

#include <stddef.h>
#include <stdint.h>

struct xbzrle_diff {
	const char *name;
	/* Fill mask[0 .. (len + 63) / 64); bits past len are zero.  Returns
	 * nonzero when any byte differs. */
	int (*diff)(const uint8_t *old, const uint8_t *new_, size_t len, uint64_t *mask);
	int (*supported)(void);
};

extern const struct xbzrle_diff xbzrle_diff_portable;
extern const struct xbzrle_diff xbzrle_diff_avx2;
extern const struct xbzrle_diff xbzrle_diff_avx512;

#endif
