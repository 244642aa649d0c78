/* The output buffer and the bounded reader; see include/tern/buf.h. */
#include "tern/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ buffers */

void tern_buf_free(struct tern_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void tern_buf_put(struct tern_buf *b, const void *data, size_t len)
{
	if (b->failed || len == 0)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (d == NULL) {
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void tern_buf_u8(struct tern_buf *b, uint8_t v)
{
	tern_buf_put(b, &v, 1);
}

void tern_buf_u32(struct tern_buf *b, uint32_t v)
{
	uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	tern_buf_put(b, le, 4);
}

void tern_buf_u64(struct tern_buf *b, uint64_t v)
{
	tern_buf_u32(b, (uint32_t)v);
	tern_buf_u32(b, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------ reading */

int tern_read_bytes(struct tern_reader *r, void *out, size_t n)
{
	if (n > r->len - r->at)
		return -ENODATA;
	memcpy(out, r->p + r->at, n);
	r->at += n;
	return 0;
}

int tern_read_u8(struct tern_reader *r, uint8_t *v)
{
	return tern_read_bytes(r, v, 1);
}

int tern_read_u32(struct tern_reader *r, uint32_t *v)
{
	uint8_t b[4];
	int rc = tern_read_bytes(r, b, 4);
	if (rc == 0)
		*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return rc;
}

int tern_read_u64(struct tern_reader *r, uint64_t *v)
{
	uint32_t lo, hi;
	int rc = tern_read_u32(r, &lo);
	if (rc == 0)
		rc = tern_read_u32(r, &hi);
	if (rc == 0)
		*v = (uint64_t)hi << 32 | lo;
	return rc;
}

int tern_array_grow(void *items, size_t *cap, size_t count, size_t size, size_t first)
{
	if (count < *cap)
		return 0;
	size_t want = *cap ? *cap * 2 : first;
	if (want < *cap || (size && want > SIZE_MAX / size))
		return -ENOMEM;
	void *old;
	memcpy(&old, items, sizeof old);
	void *grown = realloc(old, want * size);
	if (grown == NULL)
		return -ENOMEM;
	memcpy(items, &grown, sizeof grown);
	*cap = want;
	return 0;
}
