/*
 * AVX-512 kernels.  A word's set-bit positions come out of one VPCOMPRESSB
 * (VBMI2) on the byte vector 0..63; they are widened eight at a time to
 * 64-bit page numbers.  Every word goes through the same straight-line
 * code, zero or not, so dense regions run without branch mispredictions.
 */
#include <immintrin.h>

#include "kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi2,avx512vpopcntdq,avx512cd,popcnt,bmi,bmi2")))

AVX512 static inline uint64_t *emit_word(uint64_t w, uint64_t base, uint64_t *out,
					  __m512i positions)
{
	unsigned n = (unsigned)_mm_popcnt_u64(w);
	__m512i bytes = _mm512_maskz_compress_epi8(w, positions);
	__m512i b = _mm512_set1_epi64((long long)base);
	__m128i q0 = _mm512_castsi512_si128(bytes);
	_mm512_storeu_si512(out, _mm512_add_epi64(_mm512_cvtepu8_epi64(q0), b));
	if (n > 8) {
		_mm512_storeu_si512(out + 8, _mm512_add_epi64(_mm512_cvtepu8_epi64(_mm_srli_si128(q0, 8)), b));
		if (n > 16) {
			__m128i q1 = _mm512_extracti32x4_epi32(bytes, 1);
			_mm512_storeu_si512(out + 16, _mm512_add_epi64(_mm512_cvtepu8_epi64(q1), b));
			_mm512_storeu_si512(out + 24, _mm512_add_epi64(_mm512_cvtepu8_epi64(_mm_srli_si128(q1, 8)), b));
			if (n > 32) {
				__m128i q2 = _mm512_extracti32x4_epi32(bytes, 2);
				__m128i q3 = _mm512_extracti32x4_epi32(bytes, 3);
				_mm512_storeu_si512(out + 32, _mm512_add_epi64(_mm512_cvtepu8_epi64(q2), b));
				_mm512_storeu_si512(out + 40, _mm512_add_epi64(_mm512_cvtepu8_epi64(_mm_srli_si128(q2, 8)), b));
				_mm512_storeu_si512(out + 48, _mm512_add_epi64(_mm512_cvtepu8_epi64(q3), b));
				_mm512_storeu_si512(out + 56, _mm512_add_epi64(_mm512_cvtepu8_epi64(_mm_srli_si128(q3, 8)), b));
			}
		}
	}
	return out + n;
}

AVX512 static __m512i byte_positions(void)
{
	return _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47,
			       46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30,
			       29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
			       12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
}

AVX512 static size_t emit_avx512(const uint64_t *words, size_t n, uint64_t base, uint64_t *out)
{
	const __m512i positions = byte_positions();
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = emit_word(words[i], base + 64 * i, o, positions);
	return (size_t)(o - out);
}

AVX512 static size_t emit_take_avx512(uint64_t *words, size_t n, uint64_t base, uint64_t *out,
				      int exclusive)
{
	const __m512i positions = byte_positions();
	uint64_t *o = out;
	if (exclusive) {
		for (size_t i = 0; i < n; i++) {
			o = emit_word(words[i], base + 64 * i, o, positions);
			words[i] = 0;
		}
	} else {
		for (size_t i = 0; i < n; i++)
			if (words[i] != 0)
				o = emit_word(dirty_take_word(&words[i], 0), base + 64 * i, o,
					      positions);
	}
	return (size_t)(o - out);
}

/* Eight words vw with indices vi: when each holds exactly one bit, as most
 * words of a sparse set do, the pages come straight from vector arithmetic
 * (the bit's index is 63 - lzcnt); otherwise word by word. */
AVX512 static inline uint64_t *emit_eight(__m512i vw, __m512i vi, uint64_t *o, __m512i positions)
{
	__m512i count = _mm512_popcnt_epi64(vw);
	__m512i top = _mm512_add_epi64(_mm512_slli_epi64(vi, 6), _mm512_set1_epi64(63));
	__mmask8 single = _mm512_cmpeq_epi64_mask(count, _mm512_set1_epi64(1));
	if (single == 0xff) {
		_mm512_storeu_si512(o, _mm512_sub_epi64(top, _mm512_lzcnt_epi64(vw)));
		return o + 8;
	}
	if (_mm512_cmple_epu64_mask(count, _mm512_set1_epi64(2)) == 0xff) {
		/* Every word has at most two bits: the first and second bit of
		 * each, interleaved, then compressed by which of them exist. */
		__m512i low1 = _mm512_and_si512(vw, _mm512_sub_epi64(_mm512_setzero_si512(), vw));
		__m512i rest = _mm512_xor_si512(vw, low1);
		__m512i low2 = _mm512_and_si512(rest, _mm512_sub_epi64(_mm512_setzero_si512(), rest));
		__m512i first = _mm512_sub_epi64(top, _mm512_lzcnt_epi64(low1));
		__m512i second = _mm512_sub_epi64(top, _mm512_lzcnt_epi64(low2));
		__m512i lo = _mm512_permutex2var_epi64(first, _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0),
						       second);
		__m512i hi = _mm512_permutex2var_epi64(first, _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4),
						       second);
		unsigned has1 = _mm512_cmpge_epu64_mask(count, _mm512_set1_epi64(1));
		unsigned has2 = _mm512_cmpge_epu64_mask(count, _mm512_set1_epi64(2));
		__mmask8 mlo = (__mmask8)(_pdep_u32(has1 & 0xf, 0x55) | _pdep_u32(has2 & 0xf, 0xaa));
		__mmask8 mhi = (__mmask8)(_pdep_u32(has1 >> 4, 0x55) | _pdep_u32(has2 >> 4, 0xaa));
		_mm512_storeu_si512(o, _mm512_maskz_compress_epi64(mlo, lo));
		o += _mm_popcnt_u32(mlo);
		_mm512_storeu_si512(o, _mm512_maskz_compress_epi64(mhi, hi));
		return o + _mm_popcnt_u32(mhi);
	}
	uint64_t w[8], x[8];
	_mm512_storeu_si512(w, vw);
	_mm512_storeu_si512(x, vi);
	for (unsigned k = 0; k < 8; k++)
		o = emit_word(w[k], x[k] * 64, o, positions);
	return o;
}

AVX512 static size_t emit_values_avx512(const uint64_t *vals, const uint64_t *idx, size_t n,
					uint64_t *out)
{
	const __m512i positions = byte_positions();
	uint64_t *o = out;
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		o = emit_eight(_mm512_loadu_si512(vals + i), _mm512_loadu_si512(idx + i), o, positions);
	for (; i < n; i++)
		o = emit_word(vals[i], idx[i] * 64, o, positions);
	return (size_t)(o - out);
}

AVX512 static size_t emit_indexed_avx512(const uint64_t *words, const uint64_t *idx, size_t n,
					 uint64_t *out)
{
	const __m512i positions = byte_positions();
	uint64_t *o = out;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m512i vi = _mm512_loadu_si512(idx + i);
		o = emit_eight(_mm512_i64gather_epi64(vi, (const void *)words, 8), vi, o, positions);
	}
	for (; i < n; i++)
		o = emit_word(dirty_load_word(&words[idx[i]]), idx[i] * 64, o, positions);
	return (size_t)(o - out);
}

AVX512 static size_t take_indexed_avx512(uint64_t *words, const uint64_t *idx, size_t n,
					 uint64_t *out, int exclusive)
{
	const __m512i positions = byte_positions();
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = emit_word(dirty_take_word(&words[idx[i]], exclusive), idx[i] * 64, o, positions);
	return (size_t)(o - out);
}

AVX512 static size_t gather_run_avx512(const uint64_t *words, const uint64_t *idx, size_t n,
				       uint64_t *vals, size_t cap, unsigned dense, size_t *bits)
{
	size_t total = 0, i = 0;
	for (; i + 8 <= n; i += 8) {
		__m512i vw = _mm512_i64gather_epi64(_mm512_loadu_si512(idx + i), (const void *)words, 8);
		__m512i count = _mm512_popcnt_epi64(vw);
		if (_mm512_cmpge_epu64_mask(count, _mm512_set1_epi64(dense)) != 0)
			break;
		size_t sum = (size_t)_mm512_reduce_add_epi64(count);
		if (total + sum > cap)
			break;
		_mm512_storeu_si512(vals + i, vw);
		total += sum;
	}
	size_t rest;
	i += dirty_gather_run(words, idx + i, n - i, vals + i, cap - total, dense, &rest);
	*bits = total + rest;
	return i;
}

AVX512 static void stream_copy_avx512(uint64_t *dst, const uint64_t *src, size_t n)
{
	size_t i = 0;
	for (; i < n && ((uintptr_t)(dst + i) & 63) != 0; i++)
		dst[i] = src[i];
	for (; i + 8 <= n; i += 8)
		_mm512_stream_si512((void *)(dst + i), _mm512_loadu_si512(src + i));
	for (; i < n; i++)
		dst[i] = src[i];
	_mm_sfence();
}

AVX512 static uint64_t popcount_avx512(const uint64_t *words, size_t n)
{
	__m512i acc = _mm512_setzero_si512();
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_loadu_si512(words + i)));
	uint64_t c = (uint64_t)_mm512_reduce_add_epi64(acc);
	for (; i < n; i++)
		c += (uint64_t)_mm_popcnt_u64(words[i]);
	return c;
}

AVX512 static size_t next_nonzero_avx512(const uint64_t *words, size_t from, size_t n)
{
	while (from < n && (from & 7) != 0) {
		if (words[from] != 0)
			return from;
		from++;
	}
	for (; from + 8 <= n; from += 8) {
		__m512i v = _mm512_loadu_si512(words + from);
		__mmask8 nz = _mm512_test_epi64_mask(v, v);
		if (nz)
			return from + (size_t)__builtin_ctz(nz);
	}
	while (from < n && words[from] == 0)
		from++;
	return from;
}

static int supported_avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi2") &&
	       __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512cd") &&
	       __builtin_cpu_supports("bmi2");
}

const struct dirty_kernels dirty_kernels_avx512 = {
	.name = "avx512",
	.emit = emit_avx512,
	.emit_take = emit_take_avx512,
	.emit_values = emit_values_avx512,
	.gather_run = gather_run_avx512,
	.stream_copy = stream_copy_avx512,
	.emit_indexed = emit_indexed_avx512,
	.take_indexed = take_indexed_avx512,
	.popcount = popcount_avx512,
	.next_nonzero = next_nonzero_avx512,
	.supported = supported_avx512,
};
