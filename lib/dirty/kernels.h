/* Bit-extraction kernels of the dirty set, one table per instruction set;
 * every table gives identical results (the tests compare them). */
#ifndef LIB_DIRTY_KERNELS_H
#define LIB_DIRTY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

struct dirty_kernels {
	const char *name;
	/* Store base + 64 * i + b for every set bit b of words[i], i < n, in
	 * order; return the count.  May store up to TERN_DIRTY_SLACK entries
	 * past it. */
	size_t (*emit)(const uint64_t *words, size_t n, uint64_t base, uint64_t *out);
	/* The same, exchanging each non-zero word with 0 as it is read
	 * (atomically unless `exclusive`). */
	size_t (*emit_take)(uint64_t *words, size_t n, uint64_t base, uint64_t *out, int exclusive);
	/* The same for values vals[i] (a snapshot), each emitted with base
	 * 64 * idx[i]; idx ascending. */
	size_t (*emit_values)(const uint64_t *vals, const uint64_t *idx, size_t n, uint64_t *out);
	/* The same for the words words[idx[i]], i < n (idx ascending), each
	 * emitted with base 64 * idx[i]: gathers, so the loads overlap. */
	size_t (*emit_indexed)(const uint64_t *words, const uint64_t *idx, size_t n, uint64_t *out);
	size_t (*take_indexed)(uint64_t *words, const uint64_t *idx, size_t n, uint64_t *out,
			       int exclusive);
	/* Read words[idx[i]] into vals[i] for i = 0, 1, ... while no word has
	 * `dense` or more bits and their bits stay within cap; returns how
	 * many were read, their bits in *bits.  (Summary words of a run.) */
	size_t (*gather_run)(const uint64_t *words, const uint64_t *idx, size_t n, uint64_t *vals,
			     size_t cap, unsigned dense, size_t *bits);
	/* Copy n entries to dst with stores that bypass the caches where the
	 * CPU has them (for output far larger than the caches), and make them
	 * visible (a fence) before returning. */
	void (*stream_copy)(uint64_t *dst, const uint64_t *src, size_t n);
	/* Set bits in words[0 .. n). */
	uint64_t (*popcount)(const uint64_t *words, size_t n);
	/* The first i in [from, n) with words[i] != 0, or n. */
	size_t (*next_nonzero)(const uint64_t *words, size_t from, size_t n);
	/* Nonzero if this CPU can run the table. */
	int (*supported)(void);
};

extern const struct dirty_kernels dirty_kernels_portable;
extern const struct dirty_kernels dirty_kernels_avx2;
extern const struct dirty_kernels dirty_kernels_avx512;

/* The table in use. */
const struct dirty_kernels *dirty_kernels(void);

/* Set when the CPU has POPCNT (nearly every x86-64 since 2008); otherwise
 * the compiler's portable routine (a function call on baseline x86-64). */
extern int dirty_have_popcnt;

static inline unsigned dirty_popcount(uint64_t w)
{
	if (__builtin_expect(dirty_have_popcnt, 1)) {
		uint64_t n;
		__asm__("popcnt %1, %0" : "=r"(n) : "rm"(w) : "cc");
		return (unsigned)n;
	}
	return (unsigned)__builtin_popcountll(w);
}

/* One word's bits, portably: four unconditional stores cover the common
 * sparse case without a data-dependent branch; denser words loop. */
static inline uint64_t *dirty_emit_word(uint64_t w, uint64_t base, uint64_t *out)
{
	const uint64_t top = 1ULL << 63; /* keeps ctz defined once w runs out */
	uint64_t *end = out + dirty_popcount(w);
	do {
		out[0] = base + (uint64_t)__builtin_ctzll(w | top);
		w &= w - 1;
		out[1] = base + (uint64_t)__builtin_ctzll(w | top);
		w &= w - 1;
		out[2] = base + (uint64_t)__builtin_ctzll(w | top);
		w &= w - 1;
		out[3] = base + (uint64_t)__builtin_ctzll(w | top);
		w &= w - 1;
		out += 4;
	} while (out < end);
	return end;
}

static inline uint64_t dirty_load_word(const uint64_t *word)
{
	return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static inline size_t dirty_gather_run(const uint64_t *words, const uint64_t *idx, size_t n,
				      uint64_t *vals, size_t cap, unsigned dense, size_t *bits)
{
	size_t total = 0, i = 0;
	for (; i < n; i++) {
		uint64_t v = dirty_load_word(&words[idx[i]]);
		unsigned c = dirty_popcount(v);
		if (c >= dense || total + c > cap)
			break;
		vals[i] = v;
		total += c;
	}
	*bits = total;
	return i;
}

/* The portable indexed emitters; the other tables reuse them. */
static inline size_t dirty_emit_values(const uint64_t *vals, const uint64_t *idx, size_t n,
				       uint64_t *out)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = dirty_emit_word(vals[i], idx[i] * 64, o);
	return (size_t)(o - out);
}

static inline size_t dirty_emit_indexed(const uint64_t *words, const uint64_t *idx, size_t n,
					uint64_t *out)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = dirty_emit_word(dirty_load_word(&words[idx[i]]), idx[i] * 64, o);
	return (size_t)(o - out);
}

static inline uint64_t dirty_take_word(uint64_t *word, int exclusive);

static inline size_t dirty_take_indexed(uint64_t *words, const uint64_t *idx, size_t n,
					uint64_t *out, int exclusive)
{
	uint64_t *o = out;
	for (size_t i = 0; i < n; i++)
		o = dirty_emit_word(dirty_take_word(&words[idx[i]], exclusive), idx[i] * 64, o);
	return (size_t)(o - out);
}

static inline uint64_t dirty_take_word(uint64_t *word, int exclusive)
{
	if (exclusive) {
		uint64_t w = *word;
		if (w)
			*word = 0;
		return w;
	}
	return __atomic_exchange_n(word, 0, __ATOMIC_SEQ_CST);
}

#endif
