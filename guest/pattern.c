/* Page content generation and checking; see pattern.h for the model. */
#include "pattern.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

void pattern_init(struct pattern *pt, uint64_t seed, uint32_t bytes_per_write)
{
	unsigned words = (bytes_per_write + 7) / 8;
	if (words < 1)
		words = 1;
	if (words > PAGE_WORDS)
		words = PAGE_WORDS;
	pt->seed = seed;
	pt->words = words;
	pt->stride = PAGE_WORDS / words;
}

static uint64_t base_key(const struct pattern *pt, uint64_t page)
{
	return mix64(pt->seed ^ mix64(page + 1));
}

static uint64_t stamp_key(const struct pattern *pt, uint64_t page, uint32_t version)
{
	return mix64(base_key(pt, page) + (uint64_t)version * GOLDEN + 0x632be59bd9b4e019ULL);
}

static inline uint64_t word_at(uint64_t key, unsigned i)
{
	return mix64(key + (uint64_t)(i + 1) * GOLDEN);
}

void pattern_write(const struct pattern *pt, uint64_t *dst, uint64_t page, uint32_t version)
{
	if (version == 1 && pt->words < PAGE_WORDS) {
		uint64_t bk = base_key(pt, page);
		for (unsigned i = 0; i < PAGE_WORDS; i++)
			dst[i] = word_at(bk, i);
	}
	uint64_t sk = stamp_key(pt, page, version);
	for (unsigned j = 0; j < pt->words; j++)
		dst[j * pt->stride] = word_at(sk, j);
}

/* Expected value of word i: stamp, base or zero. */
static inline uint64_t expected_word(const struct pattern *pt, uint64_t bk, uint64_t sk,
				     uint32_t version, unsigned i)
{
	if (version == 0)
		return 0;
	if (i % pt->stride == 0 && i / pt->stride < pt->words)
		return word_at(sk, i / pt->stride);
	return word_at(bk, i);
}

int pattern_check(const struct pattern *pt, const uint64_t *src, uint64_t page, uint32_t version,
		  uint64_t *hash)
{
	uint64_t bk = base_key(pt, page);
	uint64_t sk = stamp_key(pt, page, version);
	uint64_t h[4] = { *hash, *hash ^ GOLDEN, *hash + 1, *hash - 1 };
	int bad = -1;
	for (unsigned i = 0; i < PAGE_WORDS; i += 4) {
		for (unsigned k = 0; k < 4; k++) {
			uint64_t w = src[i + k];
			if (bad < 0 && w != expected_word(pt, bk, sk, version, i + k))
				bad = (int)(i + k);
			h[k] = (h[k] ^ w) * 0x100000001b3ULL;
		}
	}
	*hash = mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
	return bad;
}
