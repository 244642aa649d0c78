/* XBZRLE encoding and decoding; see include/tern/xbzrle.h. */
#include "tern/xbzrle.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "diff.h"

#define MASK_WORDS ((TERN_XBZRLE_MAX_LEN + 63) / 64)

static const struct xbzrle_diff *const all_diffs[] = {
	&xbzrle_diff_avx512,
	&xbzrle_diff_avx2,
	&xbzrle_diff_portable,
};

static const struct xbzrle_diff *chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	for (size_t i = 0; i < sizeof all_diffs / sizeof all_diffs[0]; i++)
		if (all_diffs[i]->supported()) {
			__atomic_store_n(&chosen, all_diffs[i], __ATOMIC_RELEASE);
			return;
		}
}

static const struct xbzrle_diff *diff_kernel(void)
{
	const struct xbzrle_diff *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
	if (k != NULL)
		return k;
	pthread_once(&choose_once, choose);
	return __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
}

const char *tern_xbzrle_kernel(void)
{
	return diff_kernel()->name;
}

int tern_xbzrle_use_kernel(const char *name)
{
	diff_kernel();
	for (size_t i = 0; i < sizeof all_diffs / sizeof all_diffs[0]; i++) {
		if (strcmp(all_diffs[i]->name, name) != 0)
			continue;
		if (!all_diffs[i]->supported())
			return -ENOTSUP;
		__atomic_store_n(&chosen, all_diffs[i], __ATOMIC_RELEASE);
		return 0;
	}
	return -ENOENT;
}

/* A single unchanged byte with changed bytes on both sides joins the
 * changed run: sending it costs one byte, ending the run and starting
 * another costs at least two. */
static void absorb_single_gaps(uint64_t *m, size_t words)
{
	uint64_t prev_top = 0; /* bit 63 of the previous word, before merging */
	for (size_t w = 0; w < words; w++) {
		uint64_t cur = m[w];
		uint64_t left = cur << 1 | prev_top;                      /* byte i-1 changed */
		uint64_t right = cur >> 1 | (w + 1 < words ? m[w + 1] << 63 : 0); /* i+1 */
		prev_top = cur >> 63;
		m[w] = cur | (~cur & left & right);
	}
}

static size_t uleb_put(uint8_t *p, uint32_t n)
{
	if (n < 0x80) {
		p[0] = (uint8_t)n;
		return 1;
	}
	p[0] = (uint8_t)((n & 0x7f) | 0x80);
	p[1] = (uint8_t)(n >> 7);
	return 2;
}

static size_t uleb_len(uint32_t n)
{
	return n < 0x80 ? 1 : 2;
}

/* The first bit at or after pos that differs from `run` (0: find a set
 * bit, ~0: find a clear bit), or words * 64.  Bits past the page are clear. */
static inline size_t next_edge(const uint64_t *m, size_t words, size_t pos, uint64_t run)
{
	size_t w = pos >> 6;
	uint64_t x = (m[w] ^ run) & (~0ULL << (pos & 63));
	while (x == 0) {
		if (++w == words)
			return words * 64;
		x = m[w] ^ run;
	}
	return w * 64 + (size_t)__builtin_ctzll(x);
}

int tern_xbzrle_encode(const uint8_t *old, const uint8_t *new_, size_t len, uint8_t *dst,
		       size_t dst_len)
{
	if (len == 0 || len > TERN_XBZRLE_MAX_LEN)
		return -1;
	uint64_t mask[MASK_WORDS];
	size_t words = (len + 63) / 64;
	if (!diff_kernel()->diff(old, new_, len, mask))
		return 0;
	absorb_single_gaps(mask, words);
	size_t d = 0, pos = 0;
	for (;;) {
		size_t start = next_edge(mask, words, pos, 0); /* first changed byte */
		if (start >= len)
			break; /* the trailing unchanged run is left out */
		size_t end = next_edge(mask, words, start, ~0ULL);
		if (end > len)
			end = len;
		size_t zrun = start - pos, nzrun = end - start;
		size_t need = uleb_len((uint32_t)zrun) + uleb_len((uint32_t)nzrun) + nzrun;
		if (d + need > dst_len)
			return -1;
		d += uleb_put(dst + d, (uint32_t)zrun);
		d += uleb_put(dst + d, (uint32_t)nzrun);
		/* Short runs, the common case at high change rates, with one
		 * fixed-size copy when both buffers have 16 bytes to spare. */
		if (nzrun <= 16 && start + 16 <= len && d + 16 <= dst_len)
			memcpy(dst + d, new_ + start, 16);
		else
			memcpy(dst + d, new_ + start, nzrun);
		d += nzrun;
		pos = end;
	}
	return (int)d;
}

/* Returns the bytes used (1 or 2), or -1 for a length over 14 bits. */
static int uleb_get(const uint8_t *p, uint32_t *n)
{
	if (!(p[0] & 0x80)) {
		*n = p[0];
		return 1;
	}
	if (p[1] & 0x80)
		return -1;
	*n = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
	return 2;
}

int tern_xbzrle_decode(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len)
{
	size_t i = 0, d = 0;
	if (src_len > (size_t)0x7fffffff || dst_len > (size_t)0x7fffffff)
		return -1;
	while (i < src_len) {
		uint32_t count;
		/* A zero run: at least two bytes must follow; only the first may
		 * be empty. */
		if (src_len - i < 2)
			return -1;
		int used = uleb_get(src + i, &count);
		if (used < 0 || (i != 0 && count == 0))
			return -1;
		i += (size_t)used;
		d += count;
		if (d > dst_len)
			return -1;
		/* A changed run: never empty, its bytes inside both buffers. */
		if (src_len - i < 2)
			return -1;
		used = uleb_get(src + i, &count);
		if (used < 0 || count == 0)
			return -1;
		i += (size_t)used;
		if (d + count > dst_len || i + count > src_len)
			return -1;
		memcpy(dst + d, src + i, count);
		d += count;
		i += count;
	}
	return (int)d;
}
