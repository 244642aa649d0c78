/*
 * Finding a key's slot in the fd store's index: load the name as vectors,
 * hash it, probe.  This is every lookup's whole cost, so it is written
 * twice: with AVX-512 (one masked load, one compare per entry) and with
 * SSE2.  Both hash the same zero-padded name and id the same way, so
 * their hashes agree and a store never depends on which ran.
 */
#include "layout.h"

#include <errno.h>
#include <immintrin.h>
#include <string.h>

#ifndef __SSE2__
#error "the fd store compares names with SSE2 (every x86-64 has it)"
#endif

#define PAGE 4096
#define NAME_BYTES ((1ull << TERN_FDSTORE_NAME_MAX) - 1)

bool fdstore_wide;

static bool wide_supported(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("bmi");
}

/* Chosen once, before main: lookups then pay one predictable branch. */
static __attribute__((constructor)) void choose_kernel(void)
{
	fdstore_wide = wide_supported();
}

const char *tern_fdstore_kernel(void)
{
	return fdstore_wide ? "avx512" : "sse2";
}

int tern_fdstore_use_kernel(const char *name)
{
	if (strcmp(name, "sse2") == 0) {
		fdstore_wide = false;
		return 0;
	}
	if (strcmp(name, "avx512") != 0)
		return -ENOENT;
	if (!wide_supported())
		return -ENOTSUP;
	fdstore_wide = true;
	return 0;
}

/*
 * The hash of a padded name, as 16-byte lanes: each lane, keyed, has its
 * 32-bit halves multiplied lane by lane, added into an accumulator with
 * the lane's bytes themselves (so a product of zero loses nothing); the
 * id joins the folded sum, and one 64-bit multiply spreads it over the high
 * bits that choose the home slot.  A fourth lane of zeros (the 512-bit
 * kernel's) adds nothing: its key is zero too.
 */
_Alignas(64) static const uint64_t hash_key[8] = {
	0xa0761d6478bd642fULL, 0xe7037ed1a0b428dbULL, 0x8ebc6af09c88c6e3ULL,
	0x589965cc75374cc3ULL, 0x1d8e4e27c47d124fULL, 0xeb44accab455d165ULL,
};

static inline uint32_t hash_finish(__m128i acc, uint32_t id)
{
	uint64_t low = (uint64_t)_mm_cvtsi128_si64(acc);
	uint64_t high = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
	uint64_t h = (low ^ (high << 32 | high >> 32) ^ id) * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)(h >> 32);
}

/* Where a key is: its slot (see fdstore_locate) or -EINVAL, and its fd or
 * -ENOENT.  Returned in registers, so a lookup keeps nothing in memory. */
struct place {
	long slot;
	int fd;
};

static inline struct place place_key(struct fdstore_entry *key, const void *name, uint32_t id,
				     uint32_t hash, struct place p)
{
	if (key != NULL) {
		memcpy(key->name, name, sizeof key->name);
		key->id = id;
		key->fd = 0;
		key->hash = hash;
		key->unused = 0;
	}
	return p;
}

/* From slot *i on, the next slot whose tag is the hash's: its entry, or
 * NULL at the empty slot that ends the probe (*i is that slot then).  The
 * kernels differ only in how they compare the entry's key. */
static inline __attribute__((always_inline)) const struct fdstore_entry *
candidate(const struct tern_fdstore *s, uint32_t hash, size_t *i)
{
	uint32_t tag = fdstore_tag(hash);
	for (;; *i = (*i + 1) & fdstore_mask(s)) {
		uint32_t v = s->index[*i];
		if (v == 0)
			return NULL;
		if ((v & ~FDSTORE_POS_MASK) == tag)
			return &s->entry[(v & FDSTORE_POS_MASK) - 1];
	}
}

static inline struct place bad_name(void)
{
	return (struct place){ -EINVAL, -ENOENT };
}

/* ------------------------------------------------------------ AVX-512 */

#define WIDE __attribute__((target("avx512f,avx512bw,bmi")))

/* The `readable` bytes at name, the rest zero.  The load may cover bytes
 * past the string (never past its page: the mask stops there, and a masked
 * byte cannot fault); they are masked off unseen, as strlen's reads are.
 * Address sanitizing would call the read out of bounds; it is not. */
WIDE __attribute__((no_sanitize_address)) static inline __m512i load_wide(const char *name,
									  __mmask64 readable)
{
	return _mm512_maskz_loadu_epi8(readable, name);
}

WIDE static struct place locate_wide_copied(const struct tern_fdstore *s, const char *name,
					    uint32_t id, struct fdstore_entry *key);

WIDE static inline __attribute__((always_inline)) struct place
locate_wide(const struct tern_fdstore *s, const char *name, uint32_t id, struct fdstore_entry *key)
{
	if (name == NULL)
		return bad_name();
	size_t room = PAGE - ((uintptr_t)name & (PAGE - 1));
	__mmask64 readable = room >= 64 ? ~0ull : (1ull << room) - 1;
	__m512i raw = load_wide(name, readable);
	__mmask64 nul = _mm512_mask_testn_epi8_mask(readable & NAME_BYTES, raw, raw);
	if (nul == 0) /* too long, or running on into the next page */
		return room < TERN_FDSTORE_NAME_MAX ? locate_wide_copied(s, name, id, key)
						    : bad_name();
	if (nul & 1)
		return bad_name();
	__m512i q = _mm512_maskz_mov_epi8(_blsmsk_u64(nul), raw); /* through the first NUL */

	__m512i keyed = _mm512_xor_si512(q, _mm512_load_si512(hash_key));
	__m512i acc = _mm512_add_epi64(
		_mm512_mul_epu32(keyed, _mm512_shuffle_epi32(keyed, _MM_PERM_CDAB)),
		_mm512_shuffle_epi32(q, _MM_PERM_BADC));
	__m256i half = _mm256_add_epi64(_mm512_castsi512_si256(acc),
					_mm512_extracti64x4_epi64(acc, 1));
	uint32_t hash = hash_finish(
		_mm_add_epi64(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1)), id);

	size_t i = fdstore_home(s, hash);
	const struct fdstore_entry *e;
	while ((e = candidate(s, hash, &i)) != NULL &&
	       (_mm512_mask_cmpneq_epi8_mask(NAME_BYTES, q, _mm512_load_si512(e)) != 0 ||
		e->id != id))
		i = (i + 1) & fdstore_mask(s);
	int fd = e != NULL ? e->fd : -ENOENT;
	if (key == NULL)
		return (struct place){ (long)i, fd };
	_Alignas(64) char padded[64];
	_mm512_store_si512(padded, q);
	return place_key(key, padded, id, hash, (struct place){ (long)i, fd });
}

/* A name that runs on into the next page, copied where one load takes it. */
WIDE __attribute__((noinline, cold)) static struct place
locate_wide_copied(const struct tern_fdstore *s, const char *name, uint32_t id,
		   struct fdstore_entry *key)
{
	_Alignas(64) char copy[64] = { 0 };
	memcpy(copy, name, strnlen(name, TERN_FDSTORE_NAME_MAX));
	return locate_wide(s, copy, id, key); /* aligned: no page end to meet */
}

WIDE long fdstore_locate_wide(const struct tern_fdstore *s, const char *name, uint32_t id,
			      struct fdstore_entry *key)
{
	return locate_wide(s, name, id, key).slot;
}

WIDE int fdstore_find_wide(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	return locate_wide(s, name, id, NULL).fd;
}

/* ------------------------------------------------------------ SSE2 */

/* The NAME_MAX bytes at name, which may run past the string but never past
 * its page (the caller checks): as load_wide. */
__attribute__((no_sanitize_address)) static inline void load_narrow(const char *name, __m128i v[3])
{
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
		v[i] = _mm_loadu_si128((const __m128i *)(name + 16 * i));
}

static inline int narrow_matches(const struct fdstore_entry *e, const __m128i q[3], uint32_t id)
{
	const __m128i *name = (const __m128i *)e->name;
	__m128i same = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(_mm_load_si128(name), q[0]),
						   _mm_cmpeq_epi8(_mm_load_si128(name + 1), q[1])),
				     _mm_cmpeq_epi8(_mm_load_si128(name + 2), q[2]));
	return _mm_movemask_epi8(same) == 0xffff && e->id == id;
}

/* Locate, given a name whose NAME_MAX bytes may be read. */
static inline __attribute__((always_inline)) struct place
locate_narrow_readable(const struct tern_fdstore *s, const char *name, uint32_t id,
		       struct fdstore_entry *key)
{
	__m128i q[3];
	load_narrow(name, q);
	const __m128i zero = _mm_setzero_si128();
	uint64_t nul = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q[0], zero)) |
		       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q[1], zero)) << 16 |
		       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q[2], zero)) << 32;
	if ((nul & 1) != 0 || nul == 0) /* empty, or no NUL within NAME_MAX */
		return bad_name();
	/* Keep the bytes before the first NUL, under a mask of len 0xff bytes. */
#define FF8 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
	static const uint8_t ones_then_zeros[2 * TERN_FDSTORE_NAME_MAX] = { FF8, FF8, FF8,
									  FF8, FF8, FF8 };
#undef FF8
	const uint8_t *keep = ones_then_zeros + TERN_FDSTORE_NAME_MAX - __builtin_ctzll(nul);
	__m128i acc = _mm_setzero_si128();
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {
		q[i] = _mm_and_si128(q[i], _mm_loadu_si128((const __m128i *)keep + i));
		__m128i keyed = _mm_xor_si128(q[i], _mm_load_si128((const __m128i *)hash_key + i));
		__m128i high_halves = _mm_shuffle_epi32(keyed, _MM_SHUFFLE(2, 3, 0, 1));
		acc = _mm_add_epi64(acc, _mm_mul_epu32(keyed, high_halves));
		acc = _mm_add_epi64(acc, _mm_shuffle_epi32(q[i], _MM_SHUFFLE(1, 0, 3, 2)));
	}
	uint32_t hash = hash_finish(acc, id);

	size_t i = fdstore_home(s, hash);
	const struct fdstore_entry *e;
	while ((e = candidate(s, hash, &i)) != NULL && !narrow_matches(e, q, id))
		i = (i + 1) & fdstore_mask(s);
	int fd = e != NULL ? e->fd : -ENOENT;
	return place_key(key, q, id, hash, (struct place){ (long)i, fd });
}

/* A name that ends near its page's end, copied where it may be read whole. */
static __attribute__((noinline, cold)) struct place
locate_narrow_copied(const struct tern_fdstore *s, const char *name, uint32_t id,
		     struct fdstore_entry *key)
{
	char copy[TERN_FDSTORE_NAME_MAX] = { 0 };
	memcpy(copy, name, strnlen(name, TERN_FDSTORE_NAME_MAX));
	return locate_narrow_readable(s, copy, id, key);
}

static inline __attribute__((always_inline)) struct place
locate_narrow(const struct tern_fdstore *s, const char *name, uint32_t id,
	      struct fdstore_entry *key)
{
	if (name == NULL)
		return bad_name();
	if (((uintptr_t)name & (PAGE - 1)) > PAGE - TERN_FDSTORE_NAME_MAX)
		return locate_narrow_copied(s, name, id, key);
	return locate_narrow_readable(s, name, id, key);
}

long fdstore_locate_narrow(const struct tern_fdstore *s, const char *name, uint32_t id,
			   struct fdstore_entry *key)
{
	return locate_narrow(s, name, id, key).slot;
}

int fdstore_find_narrow(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	return locate_narrow(s, name, id, NULL).fd;
}
