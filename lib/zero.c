/* Zero-buffer check; see include/tern/zero.h. */
#include "tern/zero.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static bool zero_portable(const uint8_t *p, size_t len)
{
	size_t i = 0;
	uint64_t acc = 0;
	for (; i + 64 <= len; i += 64) {
		uint64_t w[8];
		memcpy(w, p + i, 64);
		acc |= w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
		if (acc)
			return false;
	}
	for (; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

__attribute__((target("avx2"))) static bool zero_avx2(const uint8_t *p, size_t len)
{
	size_t i = 0;
	for (; i + 128 <= len; i += 128) {
		__m256i a = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(p + i)),
					    _mm256_loadu_si256((const __m256i *)(p + i + 32)));
		__m256i b = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(p + i + 64)),
					    _mm256_loadu_si256((const __m256i *)(p + i + 96)));
		a = _mm256_or_si256(a, b);
		if (!_mm256_testz_si256(a, a))
			return false;
	}
	return zero_portable(p + i, len - i);
}

__attribute__((target("avx512f"))) static bool zero_avx512(const uint8_t *p, size_t len)
{
	size_t i = 0;
	for (; i + 256 <= len; i += 256) {
		__m512i a = _mm512_ternarylogic_epi64(_mm512_loadu_si512(p + i),
						      _mm512_loadu_si512(p + i + 64),
						      _mm512_loadu_si512(p + i + 128), 0xfe);
		a = _mm512_or_si512(a, _mm512_loadu_si512(p + i + 192));
		if (_mm512_test_epi64_mask(a, a))
			return false;
	}
	return zero_portable(p + i, len - i);
}

static bool (*zero_fn)(const uint8_t *, size_t);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		zero_fn = zero_avx512;
	else if (__builtin_cpu_supports("avx2"))
		zero_fn = zero_avx2;
	else
		zero_fn = zero_portable;
}

bool tern_is_zero(const void *buf, size_t len)
{
	pthread_once(&once, choose);
	return zero_fn(buf, len);
}
