/* libFuzzer target: XBZRLE deltas from an untrusted peer, and encoding of
 * arbitrary page pairs (which must decode back). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/xbzrle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGE 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As a delta applied to a page (sized by the first byte). */
	if (size < 1)
		return 0;
	size_t len = 1 + data[0] % PAGE;
	uint8_t *page = malloc(len); /* exactly sized: ASan sees any overrun */
	memset(page, 0xee, len);
	int n = tern_xbzrle_decode(data + 1, size - 1, page, len);
	if (n > (int)len)
		abort();
	free(page);

	/* As two pages: the encoding must decode to the new one. */
	if (size < 2)
		return 0;
	size_t half = (size - 1) / 2;
	if (half == 0 || half > TERN_XBZRLE_MAX_LEN)
		return 0;
	const uint8_t *old = data + 1, *new_ = data + 1 + half;
	uint8_t *enc = malloc(2 * half + 16), *copy = malloc(half);
	int e = tern_xbzrle_encode(old, new_, half, enc, 2 * half + 16);
	if (e < 0)
		abort(); /* a buffer of twice the page always suffices */
	memcpy(copy, old, half);
	if (e > 0 && tern_xbzrle_decode(enc, (size_t)e, copy, half) < 0)
		abort();
	if (memcmp(copy, new_, half) != 0)
		abort();
	free(enc);
	free(copy);
	return 0;
}
