/* The migration stream's reader: every frame verified before a record in
 * it is parsed; see include/tern/stream.h and docs/migration-stream.md. */
#include "tern/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream_wire.h"
#include "tern/crc32c.h"

static int reader_init(struct tern_stream_reader *r, const struct tern_io *io, int control)
{
	memset(r, 0, sizeof *r);
	r->io = io;
	r->control = control;
	r->frame = malloc(TERN_STREAM_FRAME_MAX);
	return r->frame ? 0 : -ENOMEM;
}

int tern_stream_reader_init(struct tern_stream_reader *r, const struct tern_io *io)
{
	return reader_init(r, io, 0);
}

int tern_stream_reader_init_control(struct tern_stream_reader *r, const struct tern_io *io)
{
	return reader_init(r, io, 1);
}

void tern_stream_reader_destroy(struct tern_stream_reader *r)
{
	free(r->frame);
	r->frame = NULL;
}

/*
 * The input ended before END: `where` says where (NULL: between frames).
 * A file that ends early was not written completely; a link that ends
 * early broke, or its sender stopped.
 */
static int ended_early(const struct tern_stream_reader *r, const char *where,
		       struct tern_error *err)
{
	if (r->file && where == NULL)
		return tern_errorf(err, -EPIPE, "the file ends before the stream's END (after %u "
				   "whole frames): it was not written completely; restore from a "
				   "save that completed", r->seq);
	if (r->file)
		return tern_errorf(err, -EPIPE, "the file ends before the stream's END (inside "
				   "frame %u's %s): it was not written completely; restore from a "
				   "save that completed", r->seq, where);
	if (where == NULL)
		return tern_errorf(err, -EPIPE, "the stream ended after %u frames without its END "
				   "record (the sender stopped or the link broke)", r->seq);
	return tern_errorf(err, -EPIPE, "frame %u: cut short in its %s (the sender stopped or "
			   "the link broke)", r->seq, where);
}

static int next_frame(struct tern_stream_reader *r, struct tern_error *err)
{
	uint8_t h[TERN_STREAM_FRAME_HEADER];
	int rc = r->io->read(r->io->opaque, h, sizeof h);
	if (rc == -ENODATA)
		return ended_early(r, NULL, err);
	if (rc == -EPIPE)
		return ended_early(r, "header", err);
	if (rc < 0)
		return tern_errorf(err, rc, "reading frame %u: %s", r->seq, strerror(-rc));
	if (get32(h) != FRAME_MAGIC)
		return tern_errorf(err, -EBADMSG, "frame %u: not a tern migration frame (bad magic "
				   "0x%08x)", r->seq, get32(h));
	if (tern_crc32c(0, h, 16) != get32(h + 16))
		return tern_errorf(err, -EBADMSG, "frame %u: damaged header (check mismatch)", r->seq);
	uint32_t seq = get32(h + 4), len = get32(h + 8);
	if (seq != r->seq)
		return tern_errorf(err, -EBADMSG, "frame %u arrived where frame %u was due: frames "
				   "were lost or reordered", seq, r->seq);
	if (len == 0 || len > TERN_STREAM_FRAME_MAX)
		return tern_errorf(err, -EBADMSG, "frame %u: payload length %u out of range", seq, len);
	rc = r->io->read(r->io->opaque, r->frame, len);
	if (rc == -ENODATA || rc == -EPIPE)
		return ended_early(r, "payload", err);
	if (rc < 0)
		return tern_errorf(err, rc, "frame %u: reading its payload: %s", seq, strerror(-rc));
	if (tern_crc32c(0, r->frame, len) != get32(h + 12))
		return tern_errorf(err, -EBADMSG, "frame %u: damaged payload (check mismatch); "
				   "nothing from it was used", seq);
	r->len = len;
	r->at = 0;
	r->seq++;
	r->bytes += sizeof h + len;
	return 0;
}

static int need(struct tern_stream_reader *r, size_t n, const char *what, struct tern_error *err)
{
	if (n > r->len - r->at)
		return tern_errorf(err, -EBADMSG, "frame %u: %s runs past the end of its frame",
				   r->seq - 1, what);
	return 0;
}

static int get_varint(struct tern_stream_reader *r, uint64_t *v, const char *what,
		      struct tern_error *err)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->at >= r->len)
			return need(r, 1, what, err);
		uint8_t b = r->frame[r->at++];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return tern_errorf(err, -EBADMSG, "frame %u: %s is not a valid number", r->seq - 1, what);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int read_hello(struct tern_stream_reader *r, struct tern_error *err)
{
	int rc = need(r, 8 + 16, "HELLO", err);
	if (rc < 0)
		return rc;
	const uint8_t *p = r->frame + r->at;
	if (memcmp(p, HELLO_MAGIC, 8) != 0)
		return tern_errorf(err, -EBADMSG, "not a tern migration stream (bad HELLO magic)");
	struct tern_stream_hello *h = &r->hello;
	h->version = get32(p + 8);
	h->page_size = get32(p + 12);
	h->flags = get32(p + 16);
	h->ranges = get32(p + 20);
	r->at += 24;
	if (h->version != TERN_STREAM_VERSION)
		return tern_errorf(err, -EPROTO, "stream version %u: this tern reads version %u",
				   h->version, TERN_STREAM_VERSION);
	if (h->page_size != TERN_STREAM_PAGE)
		return tern_errorf(err, -EPROTO, "page size %u: this tern uses %u", h->page_size,
				   TERN_STREAM_PAGE);
	if (h->ranges == 0 || h->ranges > TERN_STREAM_MAX_RANGES)
		return tern_errorf(err, -EBADMSG, "HELLO lists %u memory ranges", h->ranges);
	if ((rc = need(r, 16 * (size_t)h->ranges, "HELLO's ranges", err)) < 0)
		return rc;
	for (uint32_t i = 0; i < h->ranges; i++) {
		const uint8_t *q = r->frame + r->at + 16 * (size_t)i;
		h->range[i].gpa = get64(q);
		h->range[i].size = get64(q + 8);
		if (h->range[i].size == 0 || h->range[i].gpa % TERN_STREAM_PAGE != 0 ||
		    h->range[i].size % TERN_STREAM_PAGE != 0 ||
		    h->range[i].gpa / TERN_STREAM_PAGE + h->range[i].size / TERN_STREAM_PAGE > MAX_GFN)
			return tern_errorf(err, -EBADMSG, "HELLO range %u is not page-aligned or is "
					   "out of range", i);
	}
	r->at += 16 * (size_t)h->ranges;
	return 0;
}

/* Pages [gfn, gfn + count) all inside one declared range? */
static int in_ranges(const struct tern_stream_hello *h, uint64_t gfn, uint64_t count)
{
	for (uint32_t i = 0; i < h->ranges; i++) {
		uint64_t first = h->range[i].gpa / TERN_STREAM_PAGE;
		uint64_t n = h->range[i].size / TERN_STREAM_PAGE;
		if (gfn >= first && gfn - first < n && count <= n - (gfn - first))
			return 1;
	}
	return 0;
}

static int read_page_record(struct tern_stream_reader *r, uint8_t type, uint8_t kind,
			    struct tern_record *rec, struct tern_error *err)
{
	int rc;
	if (type & CONTINUE) {
		if (!r->have_prev)
			return tern_errorf(err, -EBADMSG, "frame %u: a page record continues nothing",
					   r->seq - 1);
		rec->gfn = r->next_gfn;
	} else if ((rc = get_varint(r, &rec->gfn, "a page number", err)) < 0) {
		return rc;
	}
	rec->count = 1;
	if (kind == TERN_REC_ZERO_RUN) {
		if ((rc = get_varint(r, &rec->count, "a zero-run length", err)) < 0)
			return rc;
		if (rec->count == 0 || rec->count > MAX_GFN)
			return tern_errorf(err, -EBADMSG, "frame %u: zero run of %llu pages", r->seq - 1,
					   (unsigned long long)rec->count);
	}
	if (rec->gfn > MAX_GFN || !in_ranges(&r->hello, rec->gfn, rec->count))
		return tern_errorf(err, -EBADMSG, "frame %u: page 0x%llx (+%llu) is outside the "
				   "guest's memory", r->seq - 1, (unsigned long long)rec->gfn,
				   (unsigned long long)rec->count);
	if (kind == TERN_REC_RAW) {
		rec->len = TERN_STREAM_PAGE;
	} else if (kind == TERN_REC_XBZRLE) {
		if ((rc = need(r, 2, "an XBZRLE length", err)) < 0)
			return rc;
		rec->len = (size_t)r->frame[r->at] | (size_t)r->frame[r->at + 1] << 8;
		r->at += 2;
		if (rec->len == 0 || rec->len > TERN_STREAM_PAGE)
			return tern_errorf(err, -EBADMSG, "frame %u: XBZRLE delta of %zu bytes",
					   r->seq - 1, rec->len);
	} else if (kind == TERN_REC_BLOCKS) {
		if ((rc = need(r, 8, "a block mask", err)) < 0)
			return rc;
		rec->mask = (uint64_t)get32(r->frame + r->at) |
			    (uint64_t)get32(r->frame + r->at + 4) << 32;
		r->at += 8;
		if (rec->mask == 0)
			return tern_errorf(err, -EBADMSG, "frame %u: BLOCKS record with no blocks",
					   r->seq - 1);
		rec->len = (size_t)__builtin_popcountll(rec->mask) * TERN_STREAM_BLOCK;
	}
	if ((rc = need(r, rec->len, "a page", err)) < 0)
		return rc;
	rec->data = r->frame + r->at;
	r->at += rec->len;
	r->next_gfn = rec->gfn + rec->count;
	r->have_prev = 1;
	r->pages += rec->count;
	return 0;
}

static int read_section(struct tern_stream_reader *r, struct tern_record *rec,
			struct tern_error *err)
{
	int rc = need(r, 1, "a section name", err);
	if (rc < 0)
		return rc;
	size_t nlen = r->frame[r->at++];
	if (nlen == 0 || nlen > TERN_STREAM_NAME_MAX)
		return tern_errorf(err, -EBADMSG, "frame %u: section name of %zu bytes", r->seq - 1,
				   nlen);
	if ((rc = need(r, nlen + 4, "a section header", err)) < 0)
		return rc;
	for (size_t i = 0; i < nlen; i++) {
		char c = (char)r->frame[r->at + i];
		if (c < 0x21 || c > 0x7e)
			return tern_errorf(err, -EBADMSG, "frame %u: section name is not printable",
					   r->seq - 1);
		rec->name[i] = c;
	}
	rec->name[nlen] = '\0';
	r->at += nlen;
	rec->len = get32(r->frame + r->at);
	r->at += 4;
	if ((rc = need(r, rec->len, "a section", err)) < 0)
		return rc;
	rec->data = r->frame + r->at;
	r->at += rec->len;
	r->sections++;
	return 0;
}

int tern_stream_read(struct tern_stream_reader *r, struct tern_record *rec,
		     struct tern_error *err)
{
	memset(rec, 0, sizeof *rec);
	if (r->ended)
		return tern_errorf(err, -EBADMSG, "read past the end of the stream");
	if (r->at == r->len) {
		int rc = next_frame(r, err);
		if (rc < 0)
			return rc;
	}
	uint8_t type = r->frame[r->at++];
	uint8_t kind = type & (uint8_t)~CONTINUE;
	rec->type = (enum tern_record_type)kind;
	if (r->control) {
		if (kind != TERN_REC_READY && kind != TERN_REC_FAILED && kind != TERN_REC_GO)
			return tern_errorf(err, -EBADMSG, "unexpected reply 0x%02x", type);
		if (kind == TERN_REC_FAILED) {
			int rc = need(r, 2, "a message length", err);
			if (rc < 0)
				return rc;
			rec->len = (size_t)r->frame[r->at] | (size_t)r->frame[r->at + 1] << 8;
			r->at += 2;
			if ((rc = need(r, rec->len, "a message", err)) < 0)
				return rc;
			rec->data = r->frame + r->at;
			r->at += rec->len;
		}
		return 0;
	}
	if (!r->started && kind != TERN_REC_HELLO)
		return tern_errorf(err, -EBADMSG, "the stream does not begin with HELLO (record "
				   "0x%02x first)", type);
	if (r->started && kind == TERN_REC_HELLO)
		return tern_errorf(err, -EBADMSG, "a second HELLO in frame %u", r->seq - 1);
	if ((type & CONTINUE) && kind != TERN_REC_ZERO && kind != TERN_REC_ZERO_RUN &&
	    kind != TERN_REC_RAW && kind != TERN_REC_XBZRLE && kind != TERN_REC_BLOCKS)
		return tern_errorf(err, -EBADMSG, "frame %u: bad record type 0x%02x", r->seq - 1, type);
	int rc;
	switch (kind) {
	case TERN_REC_HELLO:
		rc = read_hello(r, err);
		r->started = rc == 0;
		return rc;
	case TERN_REC_ZERO:
	case TERN_REC_ZERO_RUN:
	case TERN_REC_RAW:
	case TERN_REC_XBZRLE:
	case TERN_REC_BLOCKS:
		if ((kind == TERN_REC_XBZRLE || kind == TERN_REC_BLOCKS) &&
		    !(r->hello.flags & TERN_STREAM_XBZRLE_FLAG))
			return tern_errorf(err, -EBADMSG, "frame %u: a delta record, but HELLO did not "
					   "announce deltas", r->seq - 1);
		return read_page_record(r, type, kind, rec, err);
	case TERN_REC_SECTION:
		return read_section(r, rec, err);
	case TERN_REC_SYNC:
		return get_varint(r, &rec->iteration, "a SYNC iteration", err);
	case TERN_REC_END:
		if ((rc = get_varint(r, &rec->end_pages, "END's page count", err)) < 0 ||
		    (rc = get_varint(r, &rec->end_sections, "END's section count", err)) < 0)
			return rc;
		if (r->at != r->len)
			return tern_errorf(err, -EBADMSG, "frame %u: records after END", r->seq - 1);
		if (rec->end_pages != r->pages || rec->end_sections != r->sections)
			return tern_errorf(err, -EBADMSG, "END counts %llu pages and %llu sections; "
					   "%llu and %llu arrived", (unsigned long long)rec->end_pages,
					   (unsigned long long)rec->end_sections,
					   (unsigned long long)r->pages, (unsigned long long)r->sections);
		r->ended = 1;
		return 0;
	default:
		return tern_errorf(err, -EBADMSG, "frame %u: unknown record type 0x%02x", r->seq - 1,
				   type);
	}
}

int tern_stream_expect_eof(struct tern_stream_reader *r, struct tern_error *err)
{
	uint8_t b;
	int rc = r->io->read(r->io->opaque, &b, 1);
	if (rc == -ENODATA)
		return 0;
	if (rc < 0)
		return tern_errorf(err, rc, "after the stream's END: %s", strerror(-rc));
	return tern_errorf(err, -EBADMSG, "%s continues after the stream's END (frame %u): "
			   "nothing may follow END, so this is not the stream a tern wrote (it was "
			   "appended to or overwritten)",
			   r->file ? "the file" : "the input", r->seq - 1);
}
