/* Streaming page copies; see include/tern/copy.h. */
#include "tern/copy.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

__attribute__((target("avx2"))) static void copy_avx2(uint8_t *dst, const uint8_t *src,
						       size_t len)
{
	for (size_t i = 0; i < len; i += 128) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
		__m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
		__m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
		__m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
		_mm256_stream_si256((__m256i *)(dst + i), a);
		_mm256_stream_si256((__m256i *)(dst + i + 32), b);
		_mm256_stream_si256((__m256i *)(dst + i + 64), c);
		_mm256_stream_si256((__m256i *)(dst + i + 96), d);
	}
}

static int have_avx2;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	__builtin_cpu_init();
	have_avx2 = __builtin_cpu_supports("avx2");
}

void tern_copy_stream(void *dst, const void *src, size_t len)
{
	pthread_once(&once, choose);
	if (have_avx2 && ((uintptr_t)dst & 31) == 0 && len % 128 == 0)
		copy_avx2(dst, src, len);
	else
		memcpy(dst, src, len);
}

void tern_copy_fence(void)
{
	_mm_sfence();
}
