/* The migration stream's writer; see include/tern/stream.h and
 * docs/migration-stream.md. */
#include "tern/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream_wire.h"
#include "tern/crc32c.h"

/* ------------------------------------------------------------ writing */

int tern_stream_writer_init(struct tern_stream_writer *w, const struct tern_io *io)
{
	memset(w, 0, sizeof *w);
	w->io = io;
	w->frame = malloc(TERN_STREAM_FRAME_HEADER + TERN_STREAM_FRAME_MAX);
	return w->frame ? 0 : -ENOMEM;
}

void tern_stream_writer_destroy(struct tern_stream_writer *w)
{
	free(w->frame);
	w->frame = NULL;
}

int tern_stream_flush(struct tern_stream_writer *w)
{
	if (w->error)
		return w->error;
	if (w->len == 0)
		return 0;
	uint8_t *h = w->frame;
	put32(h, FRAME_MAGIC);
	put32(h + 4, w->seq);
	put32(h + 8, (uint32_t)w->len);
	put32(h + 12, tern_crc32c(0, h + TERN_STREAM_FRAME_HEADER, w->len));
	put32(h + 16, tern_crc32c(0, h, 16));
	struct iovec iov = { h, TERN_STREAM_FRAME_HEADER + w->len };
	int rc = w->io->writev(w->io->opaque, &iov, 1);
	if (rc < 0)
		return w->error = rc;
	w->bytes += iov.iov_len;
	w->seq++;
	w->len = 0;
	return 0;
}

/* Room for a record of n bytes in the frame being built. */
static uint8_t *reserve(struct tern_stream_writer *w, size_t n)
{
	if (w->error)
		return NULL;
	if (w->len + n > TERN_STREAM_FRAME_MAX && tern_stream_flush(w) < 0)
		return NULL;
	return w->frame + TERN_STREAM_FRAME_HEADER + w->len;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

/* The type byte and page address of a page record; returns bytes used. */
static size_t put_page_head(struct tern_stream_writer *w, uint8_t *p, uint8_t type, uint64_t gfn)
{
	if (w->have_prev && gfn == w->next_gfn) {
		p[0] = (uint8_t)(type | CONTINUE);
		return 1;
	}
	p[0] = type;
	return 1 + put_varint(p + 1, gfn);
}

static int page_record(struct tern_stream_writer *w, uint8_t type, uint64_t gfn,
		       uint64_t count, const uint8_t *data, size_t len, int with_len)
{
	uint8_t *p = reserve(w, 1 + 10 + 10 + 2 + len);
	if (p == NULL)
		return w->error ? w->error : -ENOMEM;
	size_t n = put_page_head(w, p, type, gfn);
	if (type == TERN_REC_ZERO_RUN)
		n += put_varint(p + n, count);
	if (with_len) {
		p[n++] = (uint8_t)len;
		p[n++] = (uint8_t)(len >> 8);
	}
	if (len)
		memcpy(p + n, data, len);
	w->len += n + len;
	w->next_gfn = gfn + count;
	w->have_prev = 1;
	w->pages += count;
	return 0;
}

int tern_stream_hello(struct tern_stream_writer *w, const struct tern_stream_hello *h)
{
	if (h->ranges == 0 || h->ranges > TERN_STREAM_MAX_RANGES)
		return -EINVAL;
	uint8_t *p = reserve(w, 1 + 8 + 16 + 16 * (size_t)h->ranges);
	if (p == NULL)
		return w->error;
	size_t n = 0;
	p[n++] = TERN_REC_HELLO;
	memcpy(p + n, HELLO_MAGIC, 8);
	n += 8;
	put32(p + n, h->version);
	put32(p + n + 4, h->page_size);
	put32(p + n + 8, h->flags);
	put32(p + n + 12, h->ranges);
	n += 16;
	for (uint32_t i = 0; i < h->ranges; i++) {
		put32(p + n, (uint32_t)h->range[i].gpa);
		put32(p + n + 4, (uint32_t)(h->range[i].gpa >> 32));
		put32(p + n + 8, (uint32_t)h->range[i].size);
		put32(p + n + 12, (uint32_t)(h->range[i].size >> 32));
		n += 16;
	}
	w->len += n;
	return 0;
}

int tern_stream_zero(struct tern_stream_writer *w, uint64_t gfn)
{
	return page_record(w, TERN_REC_ZERO, gfn, 1, NULL, 0, 0);
}

int tern_stream_zero_run(struct tern_stream_writer *w, uint64_t gfn, uint64_t count)
{
	if (count == 0)
		return 0;
	if (count == 1)
		return tern_stream_zero(w, gfn);
	return page_record(w, TERN_REC_ZERO_RUN, gfn, count, NULL, 0, 0);
}

int tern_stream_raw(struct tern_stream_writer *w, uint64_t gfn, const uint8_t *page)
{
	return page_record(w, TERN_REC_RAW, gfn, 1, page, TERN_STREAM_PAGE, 0);
}

int tern_stream_xbzrle(struct tern_stream_writer *w, uint64_t gfn, const uint8_t *delta,
		       size_t len)
{
	if (len == 0 || len > TERN_STREAM_PAGE)
		return -EINVAL;
	return page_record(w, TERN_REC_XBZRLE, gfn, 1, delta, len, 1);
}

int tern_stream_blocks(struct tern_stream_writer *w, uint64_t gfn, uint64_t mask,
		       const uint8_t *page)
{
	if (mask == 0)
		return -EINVAL;
	size_t len = (size_t)__builtin_popcountll(mask) * TERN_STREAM_BLOCK;
	uint8_t *p = reserve(w, 1 + 10 + 8 + len);
	if (p == NULL)
		return w->error ? w->error : -ENOMEM;
	size_t n = put_page_head(w, p, TERN_REC_BLOCKS, gfn);
	put32(p + n, (uint32_t)mask);
	put32(p + n + 4, (uint32_t)(mask >> 32));
	n += 8;
	for (uint64_t m = mask; m != 0; m &= m - 1) {
		memcpy(p + n, page + (size_t)__builtin_ctzll(m) * TERN_STREAM_BLOCK, TERN_STREAM_BLOCK);
		n += TERN_STREAM_BLOCK;
	}
	w->len += n;
	w->next_gfn = gfn + 1;
	w->have_prev = 1;
	w->pages++;
	return 0;
}

int tern_stream_section(struct tern_stream_writer *w, const char *name, const uint8_t *data,
			size_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > TERN_STREAM_NAME_MAX || len > TERN_STREAM_FRAME_MAX - 1 - 1 - nlen - 4)
		return -EINVAL;
	uint8_t *p = reserve(w, 1 + 1 + nlen + 4 + len);
	if (p == NULL)
		return w->error;
	p[0] = TERN_REC_SECTION;
	p[1] = (uint8_t)nlen;
	memcpy(p + 2, name, nlen);
	put32(p + 2 + nlen, (uint32_t)len);
	memcpy(p + 6 + nlen, data, len);
	w->len += 6 + nlen + len;
	w->sections++;
	return 0;
}

static int varint_record(struct tern_stream_writer *w, uint8_t type, uint64_t a, uint64_t b,
			 int two)
{
	uint8_t *p = reserve(w, 1 + 20);
	if (p == NULL)
		return w->error;
	size_t n = 0;
	p[n++] = type;
	n += put_varint(p + n, a);
	if (two)
		n += put_varint(p + n, b);
	w->len += n;
	return 0;
}

int tern_stream_sync(struct tern_stream_writer *w, uint64_t iteration)
{
	/* An iteration's pages leave now, not with the next iteration's. */
	int rc = varint_record(w, TERN_REC_SYNC, iteration, 0, 0);
	return rc < 0 ? rc : tern_stream_flush(w);
}

int tern_stream_end(struct tern_stream_writer *w)
{
	int rc = varint_record(w, TERN_REC_END, w->pages, w->sections, 1);
	return rc < 0 ? rc : tern_stream_flush(w);
}

int tern_stream_control(struct tern_stream_writer *w, enum tern_record_type type,
			const char *message)
{
	size_t mlen = message ? strlen(message) : 0;
	if (mlen > 0xffff)
		mlen = 0xffff;
	uint8_t *p = reserve(w, 3 + mlen);
	if (p == NULL)
		return w->error;
	p[0] = (uint8_t)type;
	size_t n = 1;
	if (type == TERN_REC_FAILED) {
		p[1] = (uint8_t)mlen;
		p[2] = (uint8_t)(mlen >> 8);
		memcpy(p + 3, message, mlen);
		n = 3 + mlen;
	}
	w->len += n;
	return tern_stream_flush(w);
}
