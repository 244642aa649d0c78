/*
 * AVX2 kernels.  AVX2 has no compress instruction, so words are emitted
 * with the scalar routine, here compiled for hardware POPCNT and TZCNT;
 * zero-word skipping and counting use 256-bit vectors.
 */
#include <immintrin.h>

#include "kernels.h"

#define AVX2 __attribute__((target("avx2,popcnt,bmi,bmi2")))

AVX2 static size_t emit_avx2(const uint64_t *words, size_t n, uint64_t base, uint64_t *out)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = dirty_emit_word(words[i], base + 64 * i, o);
	return (size_t)(o - out);
}

AVX2 static size_t emit_take_avx2(uint64_t *words, size_t n, uint64_t base, uint64_t *out,
				  int exclusive)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++) {
		if (words[i] == 0)
			continue;
		o = dirty_emit_word(dirty_take_word(&words[i], exclusive), base + 64 * i, o);
	}
	return (size_t)(o - out);
}

AVX2 static size_t emit_values_avx2(const uint64_t *vals, const uint64_t *idx, size_t n,
				    uint64_t *out)
{
	return dirty_emit_values(vals, idx, n, out);
}

AVX2 static size_t emit_indexed_avx2(const uint64_t *words, const uint64_t *idx, size_t n,
				     uint64_t *out)
{
	return dirty_emit_indexed(words, idx, n, out);
}

AVX2 static size_t take_indexed_avx2(uint64_t *words, const uint64_t *idx, size_t n,
				     uint64_t *out, int exclusive)
{
	return dirty_take_indexed(words, idx, n, out, exclusive);
}

AVX2 static size_t gather_run_avx2(const uint64_t *words, const uint64_t *idx, size_t n,
				   uint64_t *vals, size_t cap, unsigned dense, size_t *bits)
{
	return dirty_gather_run(words, idx, n, vals, cap, dense, bits);
}

AVX2 static void stream_copy_avx2(uint64_t *dst, const uint64_t *src, size_t n)
{
	size_t i = 0;
	for (; i < n && ((uintptr_t)(dst + i) & 31) != 0; i++)
		dst[i] = src[i];
	for (; i + 4 <= n; i += 4)
		_mm256_stream_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
	for (; i < n; i++)
		dst[i] = src[i];
	_mm_sfence();
}

AVX2 static uint64_t popcount_avx2(const uint64_t *words, size_t n)
{
	uint64_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += (uint64_t)_mm_popcnt_u64(words[i]);
	return c;
}

AVX2 static size_t next_nonzero_avx2(const uint64_t *words, size_t from, size_t n)
{
	while (from < n && (from & 3) != 0) {
		if (words[from] != 0)
			return from;
		from++;
	}
	for (; from + 4 <= n; from += 4) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(words + from));
		__m256i zero = _mm256_cmpeq_epi64(v, _mm256_setzero_si256());
		unsigned mask = (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(zero));
		if (mask != 0xf)
			return from + (size_t)__builtin_ctz(~mask & 0xf);
	}
	while (from < n && words[from] == 0)
		from++;
	return from;
}

static int supported_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
	       __builtin_cpu_supports("popcnt");
}

const struct dirty_kernels dirty_kernels_avx2 = {
	.name = "avx2",
	.emit = emit_avx2,
	.emit_take = emit_take_avx2,
	.emit_values = emit_values_avx2,
	.gather_run = gather_run_avx2,
	.stream_copy = stream_copy_avx2,
	.emit_indexed = emit_indexed_avx2,
	.take_indexed = take_indexed_avx2,
	.popcount = popcount_avx2,
	.next_nonzero = next_nonzero_avx2,
	.supported = supported_avx2,
};
