/* Block digests of pages sent; see include/tern/digests.h. */
#include "tern/digests.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define WORDS (TERN_DIGEST_BLOCK / 8)
#define CHUNK_PAGES 512 /* 2 MiB of guest RAM */

struct chunk {
	uint64_t valid[CHUNK_PAGES / 64];
	uint64_t digest[CHUNK_PAGES][TERN_DIGEST_BLOCKS];
};

struct tern_digests {
	uint64_t pages;
	size_t nchunks, max_chunks, used_chunks;
	struct chunk **chunk;
	uint64_t key_in[WORDS], key_out[WORDS]; /* key_out odd */
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct tern_digests *tern_digests_new(uint64_t pages, size_t max_bytes)
{
	struct tern_digests *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->pages = pages;
	d->nchunks = (size_t)((pages + CHUNK_PAGES - 1) / CHUNK_PAGES);
	d->max_chunks = max_bytes / sizeof(struct chunk);
	d->chunk = calloc(d->nchunks ? d->nchunks : 1, sizeof *d->chunk);
	if (d->chunk == NULL) {
		free(d);
		return NULL;
	}
	uint64_t seed;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)d;
	}
	for (int i = 0; i < WORDS; i++) {
		d->key_in[i] = splitmix(&seed);
		d->key_out[i] = splitmix(&seed) | 1;
	}
	return d;
}

void tern_digests_free(struct tern_digests *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nchunks; i++)
		free(d->chunk[i]);
	free(d->chunk);
	free(d);
}

/*
 * Each word is keyed and mixed by a bijection (xor, odd multiply,
 * xorshift), then weighted by an odd key and summed: one changed word
 * changes its term and so the sum; more than one cancel out only by chance.
 */
static void digest_page(const struct tern_digests *d, const uint8_t *content,
			uint64_t out[TERN_DIGEST_BLOCKS])
{
	for (int b = 0; b < TERN_DIGEST_BLOCKS; b++) {
		uint64_t w[WORDS];
		memcpy(w, content + b * TERN_DIGEST_BLOCK, sizeof w);
		uint64_t h = 0;
		for (int i = 0; i < WORDS; i++) {
			uint64_t x = (w[i] ^ d->key_in[i]) * 0x9e3779b97f4a7c15ULL;
			h += (x ^ (x >> 32)) * d->key_out[i];
		}
		out[b] = h;
	}
}

/* The chunk holding page, allocated if need be and within budget. */
static struct chunk *chunk_of(struct tern_digests *d, uint64_t page, int create)
{
	if (page >= d->pages)
		return NULL;
	struct chunk **c = &d->chunk[page / CHUNK_PAGES];
	if (*c == NULL && create && d->used_chunks < d->max_chunks) {
		*c = malloc(sizeof **c);
		if (*c != NULL) {
			memset((*c)->valid, 0, sizeof (*c)->valid);
			d->used_chunks++;
		}
	}
	return *c;
}

static int is_valid(const struct chunk *c, unsigned i)
{
	return (c->valid[i / 64] >> (i % 64)) & 1;
}

void tern_digests_record(struct tern_digests *d, uint64_t page, const uint8_t *content)
{
	struct chunk *c = chunk_of(d, page, 1);
	if (c == NULL)
		return;
	unsigned i = (unsigned)(page % CHUNK_PAGES);
	digest_page(d, content, c->digest[i]);
	c->valid[i / 64] |= 1ULL << (i % 64);
}

void tern_digests_drop(struct tern_digests *d, uint64_t page)
{
	struct chunk *c = chunk_of(d, page, 0);
	if (c != NULL) {
		unsigned i = (unsigned)(page % CHUNK_PAGES);
		c->valid[i / 64] &= ~(1ULL << (i % 64));
	}
}

int tern_digests_update(struct tern_digests *d, uint64_t page, const uint8_t *content,
			uint64_t *changed)
{
	struct chunk *c = chunk_of(d, page, 0);
	unsigned i = (unsigned)(page % CHUNK_PAGES);
	if (c == NULL || !is_valid(c, i))
		return -1;
	uint64_t now[TERN_DIGEST_BLOCKS], mask = 0;
	digest_page(d, content, now);
	for (int b = 0; b < TERN_DIGEST_BLOCKS; b++)
		mask |= (uint64_t)(now[b] != c->digest[i][b]) << b;
	memcpy(c->digest[i], now, sizeof now);
	*changed = mask;
	return 0;
}

size_t tern_digests_bytes(const struct tern_digests *d)
{
	return d->used_chunks * sizeof(struct chunk) + d->nchunks * sizeof *d->chunk;
}
