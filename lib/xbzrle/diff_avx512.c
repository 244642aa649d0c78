/* AVX-512 byte-difference masks: one compare yields a word of the mask. */
#include <immintrin.h>

#include "diff.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,bmi2")))

AVX512 static int diff_avx512(const uint8_t *old, const uint8_t *new_, size_t len, uint64_t *mask)
{
	__mmask64 any = 0;
	size_t w = 0;
	for (; (w + 1) * 64 <= len; w++) {
		__mmask64 m = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(old + w * 64),
						      _mm512_loadu_si512(new_ + w * 64));
		mask[w] = m;
		any |= m;
	}
	if (w * 64 < len) {
		__mmask64 tail = _bzhi_u64(~0ULL, (unsigned)(len - w * 64));
		__mmask64 m = _mm512_mask_cmpneq_epi8_mask(tail, _mm512_maskz_loadu_epi8(tail, old + w * 64),
							   _mm512_maskz_loadu_epi8(tail, new_ + w * 64));
		mask[w] = m;
		any |= m;
	}
	return any != 0;
}

static int supported_avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("bmi2");
}

const struct xbzrle_diff xbzrle_diff_avx512 = { "avx512", diff_avx512, supported_avx512 };
