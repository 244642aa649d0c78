/* Point lookups in a tree of disjoint ranges; see rangetree.h. */
#include <immintrin.h>
#include <pthread.h>

#include "rangetree.h"

/* The descent, given how to count a node's starts <= x. */
#define FIND_WITH(count_le)                                                   \
	const struct rt_node *n = t->root;                                    \
	if (n == NULL)                                                        \
		return NULL;                                                  \
	for (;;) {                                                            \
		unsigned below = count_le(n, x);                              \
		if (below == 0)                                               \
			return NULL;                                          \
		if (n->leaf)                                                  \
			return x < n->end[below - 1] ? n->ptr[below - 1] : NULL; \
		n = n->ptr[below - 1];                                        \
	}

static inline unsigned count_le_portable(const struct rt_node *n, uint64_t x)
{
	unsigned below = 0;
	for (unsigned i = 0; i < n->count; i++)
		below += n->start[i] <= x;
	return below;
}

void *rangetree_find_portable(const struct rangetree *t, uint64_t x)
{
	FIND_WITH(count_le_portable)
}

/* All FANOUT slots at once, masking those past count (stale, not cleared). */
__attribute__((target("avx2"))) static inline unsigned count_le_avx2(const struct rt_node *n,
								    uint64_t x)
{
	const __m256i bias = _mm256_set1_epi64x(INT64_MIN); /* unsigned order */
	const __m256i key = _mm256_xor_si256(_mm256_set1_epi64x((long long)x), bias);
	const __m256i count = _mm256_set1_epi64x(n->count);
	__m256i index = _mm256_setr_epi64x(0, 1, 2, 3);
	const __m256i four = _mm256_set1_epi64x(4);
	__m256i below = _mm256_setzero_si256();
	for (unsigned i = 0; i < RANGETREE_FANOUT; i += 4) {
		__m256i start = _mm256_loadu_si256((const __m256i *)&n->start[i]);
		__m256i above = _mm256_cmpgt_epi64(_mm256_xor_si256(start, bias), key);
		__m256i live = _mm256_cmpgt_epi64(count, index);
		below = _mm256_sub_epi64(below, _mm256_andnot_si256(above, live));
		index = _mm256_add_epi64(index, four);
	}
	__m128i half = _mm_add_epi64(_mm256_castsi256_si128(below), _mm256_extracti128_si256(below, 1));
	return (unsigned)(_mm_cvtsi128_si64(half) + _mm_extract_epi64(half, 1));
}

__attribute__((target("avx2"))) void *rangetree_find_avx2(const struct rangetree *t, uint64_t x)
{
	FIND_WITH(count_le_avx2)
}

/* Unsigned compares straight into mask registers, eight keys at a time. */
__attribute__((target("avx512f"))) static inline unsigned count_le_avx512(const struct rt_node *n,
									 uint64_t x)
{
	const __m512i key = _mm512_set1_epi64((long long)x);
	_Static_assert(RANGETREE_FANOUT == 32, "one 32-bit mask per node");
	uint32_t le = _mm512_cmple_epu64_mask(_mm512_loadu_si512(&n->start[0]), key) |
		      (uint32_t)_mm512_cmple_epu64_mask(_mm512_loadu_si512(&n->start[8]), key) << 8 |
		      (uint32_t)_mm512_cmple_epu64_mask(_mm512_loadu_si512(&n->start[16]), key) << 16 |
		      (uint32_t)_mm512_cmple_epu64_mask(_mm512_loadu_si512(&n->start[24]), key) << 24;
	uint32_t live = n->count >= 32 ? UINT32_MAX : (1u << n->count) - 1;
	return (unsigned)__builtin_popcount(le & live);
}

__attribute__((target("avx512f"))) void *rangetree_find_avx512(const struct rangetree *t,
							       uint64_t x)
{
	FIND_WITH(count_le_avx512)
}

static rangetree_find_fn *best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		best = rangetree_find_avx512;
	else if (__builtin_cpu_supports("avx2"))
		best = rangetree_find_avx2;
	else
		best = rangetree_find_portable;
}

rangetree_find_fn *rangetree_find_best(void)
{
	pthread_once(&once, choose);
	return best;
}
