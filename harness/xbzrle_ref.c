/* Byte-at-a-time XBZRLE encoder (QEMU's canonical output). */
#include "xbzrle_ref.h"

static size_t put(uint8_t *p, size_t n)
{
	if (n < 0x80) {
		p[0] = (uint8_t)n;
		return 1;
	}
	p[0] = (uint8_t)((n & 0x7f) | 0x80);
	p[1] = (uint8_t)(n >> 7);
	return 2;
}

int xbzrle_ref_encode(const uint8_t *old, const uint8_t *new_, size_t len, uint8_t *dst,
		      size_t dst_len)
{
	size_t i = 0, d = 0;
	while (i < len) {
		size_t z = 0;
		while (i < len && old[i] == new_[i]) {
			i++;
			z++;
		}
		if (z == len)
			return 0;
		if (i == len)
			break;
		size_t n = 0, start = i;
		while (i < len && old[i] != new_[i]) {
			i++;
			n++;
		}
		if (d + (z < 0x80 ? 1 : 2) + (n < 0x80 ? 1 : 2) + n > dst_len)
			return -1;
		d += put(dst + d, z);
		d += put(dst + d, n);
		for (size_t k = 0; k < n; k++)
			dst[d++] = new_[start + k];
	}
	return (int)d;
}
