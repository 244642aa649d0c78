/*
 * AVX-512 byte-difference masks.  256 bytes at a time: the XORs of four
 * 64-byte blocks are ORed together (one ternary-logic op) and tested once,
 * so identical stretches cost loads and nothing else; only a block that
 * differs has its four masks built.
 */
#include <immintrin.h>

#include "diff.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,bmi2")))

AVX512 static int diff_avx512(const uint8_t *old, const uint8_t *new_, size_t len, uint64_t *mask)
{
	uint64_t any = 0;
	size_t i = 0, w = 0;
	for (; i + 256 <= len; i += 256, w += 4) {
		__m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(old + i), _mm512_loadu_si512(new_ + i));
		__m512i x1 = _mm512_xor_si512(_mm512_loadu_si512(old + i + 64),
					      _mm512_loadu_si512(new_ + i + 64));
		__m512i x2 = _mm512_xor_si512(_mm512_loadu_si512(old + i + 128),
					      _mm512_loadu_si512(new_ + i + 128));
		__m512i x3 = _mm512_xor_si512(_mm512_loadu_si512(old + i + 192),
					      _mm512_loadu_si512(new_ + i + 192));
		__m512i all = _mm512_or_si512(_mm512_ternarylogic_epi64(x0, x1, x2, 0xfe), x3);
		if (_mm512_test_epi64_mask(all, all) == 0) {
			_mm256_storeu_si256((__m256i *)(mask + w), _mm256_setzero_si256());
			continue;
		}
		mask[w] = _mm512_test_epi8_mask(x0, x0);
		mask[w + 1] = _mm512_test_epi8_mask(x1, x1);
		mask[w + 2] = _mm512_test_epi8_mask(x2, x2);
		mask[w + 3] = _mm512_test_epi8_mask(x3, x3);
		any = 1;
	}
	for (; i + 64 <= len; i += 64, w++) {
		mask[w] = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(old + i), _mm512_loadu_si512(new_ + i));
		any |= mask[w];
	}
	if (i < len) {
		__mmask64 tail = _bzhi_u64(~0ULL, (unsigned)(len - i));
		mask[w] = _mm512_mask_cmpneq_epi8_mask(tail, _mm512_maskz_loadu_epi8(tail, old + i),
						       _mm512_maskz_loadu_epi8(tail, new_ + i));
		any |= mask[w];
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
