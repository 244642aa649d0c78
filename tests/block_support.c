/* The reference disk and the random I/O of the block tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/rng.h"
#include "block_support.h"

#define SECTOR TERN_BLOCK_SECTOR

void block_model_init(struct block_model *m, uint64_t size)
{
	m->size = size;
	m->data = calloc(1, size);
	m->maybe_zero = calloc(1, size / SECTOR + 1);
	assert_non_null(m->data);
	assert_non_null(m->maybe_zero);
}

void block_model_free(struct block_model *m)
{
	free(m->data);
	free(m->maybe_zero);
}

void block_model_write(struct block_model *m, uint64_t off, const uint8_t *buf, uint64_t len)
{
	memcpy(m->data + off, buf, len);
	memset(m->maybe_zero + off / SECTOR, 0, len / SECTOR);
}

void block_model_zero(struct block_model *m, uint64_t off, uint64_t len)
{
	memset(m->data + off, 0, len);
	memset(m->maybe_zero + off / SECTOR, 0, len / SECTOR);
}

void block_model_discard(struct block_model *m, uint64_t off, uint64_t len)
{
	memset(m->maybe_zero + off / SECTOR, 1, len / SECTOR);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

bool block_model_check(struct block_model *m, uint64_t off, const uint8_t *buf, uint64_t len)
{
	for (uint64_t s = 0; s < len; s += SECTOR) {
		uint64_t at = off + s;
		if (memcmp(m->data + at, buf + s, SECTOR) == 0) {
			m->maybe_zero[at / SECTOR] = 0;
			continue;
		}
		if (m->maybe_zero[at / SECTOR] && all_zero(buf + s, SECTOR)) {
			memset(m->data + at, 0, SECTOR);
			m->maybe_zero[at / SECTOR] = 0;
			continue;
		}
		print_error("sector at 0x%llx differs from the reference\n", (unsigned long long)at);
		return false;
	}
	return true;
}

/* Split len bytes at p into at most 8 iovecs; with `odd`, at any byte. */
static int split(uint8_t *p, uint64_t len, bool odd, uint64_t *rng, struct iovec *v)
{
	int n = 1 + (int)(harness_splitmix(rng) % 8);
	uint64_t left = len;
	int k = 0;
	for (; k < n - 1 && left > SECTOR; k++) {
		uint64_t cut = harness_splitmix(rng) % left;
		if (!odd)
			cut &= ~(uint64_t)(SECTOR - 1);
		if (!cut)
			break;
		v[k].iov_base = p;
		v[k].iov_len = cut;
		p += cut;
		left -= cut;
	}
	v[k].iov_base = p;
	v[k].iov_len = left;
	return k + 1;
}

static void pick(struct block_model *m, const struct block_io_opts *o, uint64_t *rng,
		 uint64_t *off, uint64_t *len)
{
	uint64_t sectors = m->size / SECTOR, max = o->max_len ? o->max_len / SECTOR : 128;
	uint64_t r = harness_splitmix(rng);
	uint64_t n = r % 8 == 0 ? 1 + harness_splitmix(rng) % max : 1 + harness_splitmix(rng) % 16;
	if (n > sectors)
		n = sectors;
	*off = harness_splitmix(rng) % (sectors - n + 1) * SECTOR;
	*len = n * SECTOR;
}

void block_random_io(struct tern_block *b, struct block_model *m, uint64_t seed,
		     const struct block_io_opts *o)
{
	uint64_t rng = seed, max = o->max_len ? o->max_len : 128 * SECTOR;
	uint8_t *mem = malloc(max + 4096 + 1);
	assert_non_null(mem);
	struct tern_error err = { { 0 } };
	for (int i = 0; i < o->ops; i++) {
		uint64_t off, len, kind = harness_splitmix(&rng) % 10;
		pick(m, o, &rng, &off, &len);
		uint8_t *buf = mem + (o->unaligned ? 1 + harness_splitmix(&rng) % 511 : 0);
		buf = o->unaligned ? buf : (uint8_t *)(((uintptr_t)mem + 4095) & ~(uintptr_t)4095);
		struct iovec v[8];
		int cnt = split(buf, len, o->unaligned, &rng, v);
		if (kind < 4) {
			for (uint64_t j = 0; j < len; j++)
				buf[j] = (uint8_t)(harness_splitmix(&rng) >> 3 | 1);
			int r = tern_block_pwritev(b, v, cnt, off, &err);
			if (r)
				fail_msg("write: %s", err.msg);
			block_model_write(m, off, buf, len);
		} else if (kind < 7 || !o->discards) {
			memset(buf, 0xee, len);
			int r = tern_block_preadv(b, v, cnt, off, &err);
			if (r)
				fail_msg("read: %s", err.msg);
			if (!block_model_check(m, off, buf, len))
				fail_msg("op %d: read 0x%llx+0x%llx differs", i, (unsigned long long)off,
					 (unsigned long long)len);
		} else if (kind == 7) {
			int r = tern_block_write_zeroes(b, off, len, harness_splitmix(&rng) & 1, &err);
			if (r)
				fail_msg("write zeroes: %s", err.msg);
			block_model_zero(m, off, len);
		} else if (kind == 8) {
			int r = tern_block_discard(b, off, len, &err);
			if (r)
				fail_msg("discard: %s", err.msg);
			block_model_discard(m, off, len);
		} else {
			int r = tern_block_flush(b, &err);
			if (r)
				fail_msg("flush: %s", err.msg);
		}
	}
	free(mem);
	block_verify_all(b, m);
}

void block_verify_all(struct tern_block *b, struct block_model *m)
{
	uint64_t chunk = 1 << 20;
	uint8_t *buf = aligned_alloc(4096, chunk);
	assert_non_null(buf);
	struct tern_error err = { { 0 } };
	for (uint64_t off = 0; off < m->size; off += chunk) {
		uint64_t n = m->size - off < chunk ? m->size - off : chunk;
		struct iovec v = { buf, n };
		if (tern_block_preadv(b, &v, 1, off, &err))
			fail_msg("read: %s", err.msg);
		if (!block_model_check(m, off, buf, n))
			fail_msg("the disk differs from the reference in 0x%llx+0x%llx",
				 (unsigned long long)off, (unsigned long long)n);
	}
	free(buf);
}

void block_model_save(struct block_model *m, const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(m->data, 1, m->size, f), m->size);
	fclose(f);
}
