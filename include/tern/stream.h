/*
 * The migration stream (docs/migration-stream.md): frames with CRC-32C
 * checks carrying page, state and control records.  The writer builds
 * frames and hands them to a transport; the reader verifies each frame
 * before it parses a record, and checks every record against the HELLO
 * it began with.
 */
#ifndef TERN_STREAM_H
#define TERN_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tern/error.h"

#define TERN_STREAM_VERSION 1
#define TERN_STREAM_PAGE 4096
#define TERN_STREAM_FRAME_MAX (1u << 20)
#define TERN_STREAM_FRAME_HEADER 20
#define TERN_STREAM_MAX_RANGES 64
#define TERN_STREAM_NAME_MAX 64

enum tern_record_type {
	TERN_REC_HELLO = 0x01,
	TERN_REC_ZERO = 0x02,
	TERN_REC_ZERO_RUN = 0x03,
	TERN_REC_RAW = 0x04,
	TERN_REC_XBZRLE = 0x05,
	TERN_REC_SECTION = 0x06,
	TERN_REC_SYNC = 0x07,
	TERN_REC_END = 0x08,
	TERN_REC_BLOCKS = 0x09,
	TERN_REC_READY = 0x10,
	TERN_REC_FAILED = 0x11,
	TERN_REC_GO = 0x12,
};

/* HELLO flag: delta records (XBZRLE, BLOCKS) may follow. */
#define TERN_STREAM_XBZRLE_FLAG 1u
#define TERN_STREAM_BLOCK 64 /* BLOCKS: a page is 64 blocks of 64 bytes */

/* Moving bytes: a channel, or memory in tests and fuzzers. */
struct tern_io {
	void *opaque;
	/* Write every byte of iov[0 .. n) or fail (-errno). */
	int (*writev)(void *opaque, const struct iovec *iov, int n);
	/* Read exactly len bytes: 0, -ENODATA at a clean end of input before
	 * the first byte, -EPIPE when the input ends partway, or another
	 * -errno. */
	int (*read)(void *opaque, void *buf, size_t len);
};

struct tern_range {
	uint64_t gpa, size;
};

struct tern_stream_hello {
	uint32_t version, page_size, flags, ranges;
	struct tern_range range[TERN_STREAM_MAX_RANGES];
};

struct tern_stream_writer {
	const struct tern_io *io;
	uint8_t *frame; /* header, then payload */
	size_t len;     /* payload bytes so far */
	uint32_t seq;
	uint64_t next_gfn; /* after the previous page record */
	int have_prev;
	uint64_t bytes;    /* handed to the transport, headers included */
	uint64_t pages, sections;
	int error;         /* sticky: the first failure */
};

int tern_stream_writer_init(struct tern_stream_writer *w, const struct tern_io *io);
void tern_stream_writer_destroy(struct tern_stream_writer *w);
int tern_stream_hello(struct tern_stream_writer *w, const struct tern_stream_hello *h);
int tern_stream_zero(struct tern_stream_writer *w, uint64_t gfn);
int tern_stream_zero_run(struct tern_stream_writer *w, uint64_t gfn, uint64_t count);
/* Copies the page into the frame (so the check covers exactly what is sent). */
int tern_stream_raw(struct tern_stream_writer *w, uint64_t gfn, const uint8_t *page);
int tern_stream_xbzrle(struct tern_stream_writer *w, uint64_t gfn, const uint8_t *delta,
		       size_t len);
/* The blocks of `page` whose bits are set in `mask` (bit i: bytes
 * 64 i .. 64 i + 63); the others the destination keeps.  mask != 0. */
int tern_stream_blocks(struct tern_stream_writer *w, uint64_t gfn, uint64_t mask,
		       const uint8_t *page);
int tern_stream_section(struct tern_stream_writer *w, const char *name, const uint8_t *data,
			size_t len);
/* SYNC, then the frame is sent. */
int tern_stream_sync(struct tern_stream_writer *w, uint64_t iteration);
/* END, then the frame is sent. */
int tern_stream_end(struct tern_stream_writer *w);
/* A one-record control frame (READY, GO; FAILED with a message). */
int tern_stream_control(struct tern_stream_writer *w, enum tern_record_type type,
			const char *message);
/* Send what is buffered as a frame. */
int tern_stream_flush(struct tern_stream_writer *w);

struct tern_record {
	enum tern_record_type type;
	uint64_t gfn, count;  /* pages: first page, how many (1 but for ZERO_RUN) */
	const uint8_t *data;  /* RAW page, XBZRLE delta, BLOCKS blocks, SECTION object,
			       * FAILED message */
	uint64_t mask;        /* BLOCKS: which blocks data holds, in order */
	size_t len;
	char name[TERN_STREAM_NAME_MAX + 1];
	uint64_t iteration;           /* SYNC */
	uint64_t end_pages, end_sections; /* END */
};

struct tern_stream_reader {
	const struct tern_io *io;
	uint8_t *frame;
	size_t len, at;    /* the verified payload being parsed */
	uint32_t seq;      /* expected next frame */
	int started;       /* HELLO seen */
	int ended;         /* END seen */
	int control;       /* a reply channel: no HELLO, control records only */
	int file;          /* set by the caller: the input is a file, so ending
			    * early means the file is incomplete, not a broken link */
	struct tern_stream_hello hello;
	uint64_t next_gfn;
	int have_prev;
	uint64_t bytes, pages, sections;
};

int tern_stream_reader_init(struct tern_stream_reader *r, const struct tern_io *io);
/* A reader for the reply direction (READY, FAILED, GO). */
int tern_stream_reader_init_control(struct tern_stream_reader *r, const struct tern_io *io);
void tern_stream_reader_destroy(struct tern_stream_reader *r);
/*
 * The next record, verified.  Returns 0, or a negative errno with a message
 * saying what was wrong (a damaged or truncated frame, a record that does
 * not fit, a page outside the ranges, anything after END).  rec->data
 * points into the reader's frame, valid until the next call.
 */
int tern_stream_read(struct tern_stream_reader *r, struct tern_record *rec,
		     struct tern_error *err);
/*
 * After END, on input that ends with the stream (a file, or a pipe whose
 * writer has closed): 0 when the input ends right there, else -EBADMSG
 * with a message (a stream ends at its END; bytes after it mean the input
 * is not the stream that was written).  Reads; call it only where a read
 * cannot block.
 */
int tern_stream_expect_eof(struct tern_stream_reader *r, struct tern_error *err);

#endif
