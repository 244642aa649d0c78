/* AVX2 byte-difference masks: 32 bytes per compare. */
#include <immintrin.h>

#include "diff.h"

#define AVX2 __attribute__((target("avx2")))

AVX2 static int diff_avx2(const uint8_t *old, const uint8_t *new_, size_t len, uint64_t *mask)
{
	uint64_t any = 0;
	size_t w = 0;
	for (; (w + 1) * 64 <= len; w++) {
		const uint8_t *a = old + w * 64, *b = new_ + w * 64;
		__m256i e0 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)a),
					       _mm256_loadu_si256((const __m256i *)b));
		__m256i e1 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(a + 32)),
					       _mm256_loadu_si256((const __m256i *)(b + 32)));
		uint64_t eq = (uint32_t)_mm256_movemask_epi8(e0) |
			      (uint64_t)(uint32_t)_mm256_movemask_epi8(e1) << 32;
		mask[w] = ~eq;
		any |= ~eq;
	}
	if (w * 64 < len) {
		uint64_t m = 0;
		for (size_t i = w * 64; i < len; i++)
			m |= (uint64_t)(old[i] != new_[i]) << (i - w * 64);
		mask[w] = m;
		any |= m;
	}
	return any != 0;
}

static int supported_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
}

const struct xbzrle_diff xbzrle_diff_avx2 = { "avx2", diff_avx2, supported_avx2 };
