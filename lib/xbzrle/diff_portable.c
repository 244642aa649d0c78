/* Portable byte-difference masks: eight bytes at a time. */
#include <string.h>

#include "diff.h"

/* One bit per byte of x that is non-zero, gathered into the low 8 bits. */
static unsigned nonzero_bytes(uint64_t x)
{
	const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
	uint64_t high = (x | ((x & low7) + low7)) & ~low7; /* 0x80 where non-zero */
	return (unsigned)(((high >> 7) * 0x0102040810204080ULL) >> 56);
}

static int diff_portable(const uint8_t *old, const uint8_t *new_, size_t len, uint64_t *mask)
{
	uint64_t any = 0;
	size_t words = (len + 63) / 64;
	for (size_t w = 0; w < words; w++) {
		uint64_t m = 0;
		size_t base = w * 64, n = len - base < 64 ? len - base : 64;
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			uint64_t a, b;
			memcpy(&a, old + base + i, 8);
			memcpy(&b, new_ + base + i, 8);
			m |= (uint64_t)nonzero_bytes(a ^ b) << i;
		}
		for (; i < n; i++)
			m |= (uint64_t)(old[base + i] != new_[base + i]) << i;
		mask[w] = m;
		any |= m;
	}
	return any != 0;
}

static int always(void)
{
	return 1;
}

const struct xbzrle_diff xbzrle_diff_portable = { "portable", diff_portable, always };
