/*
 * The content model: every page's bytes are a function of
 * (seed, page, version), so memory can be verified after any history.
 *
 *   version 0   the page was never written: all zero
 *   version v   a base pattern of (seed, page) with `words` stamp words of
 *               (seed, page, v) spread evenly over the page
 *
 * A page's first write stores the whole page; later writes store only the
 * stamp words, which is what makes the sparse workload delta-friendly.
 */
#ifndef GUEST_PATTERN_H
#define GUEST_PATTERN_H

#include <stdint.h>

#define PAGE_SIZE 4096
#define PAGE_WORDS (PAGE_SIZE / 8)

struct pattern {
	uint64_t seed;
	unsigned words;  /* stamp words per write, 1..PAGE_WORDS */
	unsigned stride; /* distance between stamp words */
};

void pattern_init(struct pattern *pt, uint64_t seed, uint32_t bytes_per_write);
/* Store version `version` (>= 1) of `page` into `dst`, which holds version-1. */
void pattern_write(const struct pattern *pt, uint64_t *dst, uint64_t page, uint32_t version);
/* Compare `src` with the expected content; returns the first bad word or -1.
 * Adds the page's hash into *hash either way. */
int pattern_check(const struct pattern *pt, const uint64_t *src, uint64_t page, uint32_t version,
		  uint64_t *hash);

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#endif
