/* The migration stream: records round-trip; any damaged byte, any
 * truncation, records out of place or outside guest memory are refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/memio.h"
#include "tern/stream.h"

static const struct tern_stream_hello hello = {
	.version = TERN_STREAM_VERSION,
	.page_size = TERN_STREAM_PAGE,
	.flags = TERN_STREAM_XBZRLE_FLAG,
	.ranges = 2,
	.range = { { 0, 64 << 20 }, { 4ULL << 30, 16 << 20 } },
};

static uint8_t page[TERN_STREAM_PAGE];

/* A stream with every kind of record; returns it in m. */
static void sample(struct memio *m, size_t raw_pages)
{
	memio_init(m);
	struct tern_stream_writer w;
	assert_int_equal(tern_stream_writer_init(&w, &m->io), 0);
	for (size_t i = 0; i < sizeof page; i++)
		page[i] = (uint8_t)(i * 13);
	assert_int_equal(tern_stream_hello(&w, &hello), 0);
	assert_int_equal(tern_stream_zero(&w, 5), 0);
	assert_int_equal(tern_stream_raw(&w, 6, page), 0); /* continues 5 */
	assert_int_equal(tern_stream_zero_run(&w, 100, 50), 0);
	const uint8_t delta[] = { 0x00, 0x02, 0xaa, 0xbb };
	assert_int_equal(tern_stream_xbzrle(&w, 150, delta, sizeof delta), 0); /* continues */
	assert_int_equal(tern_stream_blocks(&w, 151, (1ULL << 0) | (1ULL << 63), page), 0);
	assert_int_equal(tern_stream_blocks(&w, 151, 0, page), -EINVAL);
	for (size_t i = 0; i < raw_pages; i++) /* enough to span frames */
		assert_int_equal(tern_stream_raw(&w, (4ULL << 30) / 4096 + i, page), 0);
	assert_int_equal(tern_stream_sync(&w, 3), 0);
	const uint8_t state[] = { 1, 2, 3 };
	assert_int_equal(tern_stream_section(&w, "cpu/0", state, sizeof state), 0);
	assert_int_equal(tern_stream_end(&w), 0);
	tern_stream_writer_destroy(&w);
}

/* Read the whole stream; 0 when it ends well, else the first error. */
static int read_all(const uint8_t *data, size_t len, size_t *records, struct tern_error *err)
{
	struct memio m;
	memio_init_reader(&m, data, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	struct tern_record rec;
	int rc;
	*records = 0;
	while ((rc = tern_stream_read(&r, &rec, err)) == 0) {
		(*records)++;
		if (rec.type == TERN_REC_END)
			break;
	}
	tern_stream_reader_destroy(&r);
	return rc;
}

static void round_trip(void **state)
{
	(void)state;
	struct memio m;
	sample(&m, 300); /* 300 pages: more than one 1 MiB frame */
	struct memio in;
	memio_init_reader(&in, m.data, m.len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &in.io), 0);
	struct tern_record rec;
	struct tern_error err;
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_HELLO);
	assert_int_equal(r.hello.ranges, 2);
	assert_int_equal(r.hello.range[1].gpa, 4ULL << 30);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_ZERO);
	assert_int_equal(rec.gfn, 5);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_RAW);
	assert_int_equal(rec.gfn, 6);
	assert_memory_equal(rec.data, page, sizeof page);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_ZERO_RUN);
	assert_int_equal(rec.count, 50);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_XBZRLE);
	assert_int_equal(rec.gfn, 150);
	assert_int_equal(rec.len, 4);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_BLOCKS);
	assert_int_equal(rec.gfn, 151);
	assert_int_equal(rec.mask, (1ULL << 0) | (1ULL << 63));
	assert_int_equal(rec.len, 128);
	assert_memory_equal(rec.data, page, 64);
	assert_memory_equal(rec.data + 64, page + 4032, 64);
	for (size_t i = 0; i < 300; i++) {
		assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
		assert_int_equal(rec.type, TERN_REC_RAW);
		assert_int_equal(rec.gfn, (4ULL << 30) / 4096 + i);
	}
	assert_true(r.seq >= 2); /* it did span frames */
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_SYNC);
	assert_int_equal(rec.iteration, 3);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_SECTION);
	assert_string_equal(rec.name, "cpu/0");
	assert_int_equal(rec.len, 3);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_END);
	assert_int_equal(rec.end_pages, 1 + 1 + 50 + 1 + 1 + 300);
	assert_int_equal(tern_stream_read(&r, &rec, &err), -EBADMSG); /* nothing after END */
	tern_stream_reader_destroy(&r);
	memio_free(&m);
}

static void every_damaged_byte_detected(void **state)
{
	(void)state;
	struct memio m;
	sample(&m, 2);
	uint8_t *copy = malloc(m.len);
	struct tern_error err;
	size_t records;
	for (size_t i = 0; i < m.len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			memcpy(copy, m.data, m.len);
			copy[i] ^= (uint8_t)(1u << bit);
			if (read_all(copy, m.len, &records, &err) == 0)
				fail_msg("flipping bit %u of byte %zu went unnoticed", bit, i);
		}
	}
	free(copy);
	memio_free(&m);
}

static void every_truncation_detected(void **state)
{
	(void)state;
	struct memio m;
	sample(&m, 300);
	struct tern_error err;
	size_t records;
	assert_int_equal(read_all(m.data, m.len, &records, &err), 0);
	for (size_t n = 0; n < m.len; n += n < 4096 ? 1 : 997) {
		int rc = read_all(m.data, n, &records, &err);
		if (rc == 0)
			fail_msg("a stream cut at %zu of %zu bytes was accepted", n, m.len);
	}
	assert_non_null(strstr(err.msg, "cut short") ?: strstr(err.msg, "without its END"));
	memio_free(&m);
}

/* Build a one-frame stream from raw payload bytes (valid frame checks). */
static void frame_of(struct memio *m, const uint8_t *payload, size_t len)
{
	memio_init(m);
	struct tern_stream_writer w;
	tern_stream_writer_init(&w, &m->io);
	memcpy(w.frame + TERN_STREAM_FRAME_HEADER, payload, len);
	w.len = len;
	tern_stream_flush(&w);
	tern_stream_writer_destroy(&w);
}

static void expect_refused(const uint8_t *payload, size_t len, const char *words)
{
	struct memio m;
	frame_of(&m, payload, len);
	struct tern_error err = { .msg = "" };
	size_t records;
	int rc = read_all(m.data, m.len, &records, &err);
	if (rc == 0 || strstr(err.msg, words) == NULL)
		fail_msg("payload refused with '%s' (rc %d), expected '%s'", err.msg, rc, words);
	memio_free(&m);
}

static size_t hello_bytes(uint8_t *p, uint32_t flags)
{
	struct memio m;
	memio_init(&m);
	struct tern_stream_writer w;
	tern_stream_writer_init(&w, &m.io);
	struct tern_stream_hello h = hello;
	h.flags = flags;
	tern_stream_hello(&w, &h);
	size_t n = w.len;
	memcpy(p, w.frame + TERN_STREAM_FRAME_HEADER, n);
	tern_stream_writer_destroy(&w);
	memio_free(&m);
	return n;
}

static void records_out_of_place(void **state)
{
	(void)state;
	uint8_t p[256];
	size_t h = hello_bytes(p, 0);
	const uint8_t zero_first[] = { TERN_REC_ZERO, 1 };
	expect_refused(zero_first, sizeof zero_first, "does not begin with HELLO");

	memcpy(p + h, (uint8_t[]){ TERN_REC_ZERO, 0x80, 0x80, 0x80, 0x04 }, 5); /* page 64 MiB */
	expect_refused(p, h + 5, "outside the guest's memory");
	/* 16,384 pages from page 1: one past the 64 MiB range */
	memcpy(p + h, (uint8_t[]){ TERN_REC_ZERO_RUN, 0x01, 0x80, 0x80, 0x01 }, 5);
	expect_refused(p, h + 5, "outside the guest's memory");
	memcpy(p + h, (uint8_t[]){ TERN_REC_XBZRLE, 0x01, 0x01, 0x00, 0x00 }, 5);
	expect_refused(p, h + 5, "did not announce deltas");
	memcpy(p + h, (uint8_t[]){ TERN_REC_BLOCKS, 0x01, 1, 0, 0, 0, 0, 0, 0, 0 }, 10);
	expect_refused(p, h + 10, "did not announce deltas");
	size_t hx = hello_bytes(p, TERN_STREAM_XBZRLE_FLAG);
	memcpy(p + hx, (uint8_t[]){ TERN_REC_BLOCKS, 0x01, 0, 0, 0, 0, 0, 0, 0, 0 }, 10);
	expect_refused(p, hx + 10, "no blocks");
	memcpy(p + hx, (uint8_t[]){ TERN_REC_BLOCKS, 0x01, 3, 0, 0, 0, 0, 0, 0, 0, 0xaa }, 11);
	expect_refused(p, hx + 11, "runs past the end of its frame"); /* 2 blocks, 1 byte */
	memcpy(p + hx, (uint8_t[]){ TERN_REC_BLOCKS, 0x01, 3, 0, 0 }, 5);
	expect_refused(p, hx + 5, "runs past the end of its frame"); /* mask cut short */
	h = hello_bytes(p, 0);
	memcpy(p + h, (uint8_t[]){ TERN_REC_ZERO | 0x80 }, 1);
	expect_refused(p, h + 1, "continues nothing");
	memcpy(p + h, (uint8_t[]){ TERN_REC_RAW, 0x01, 0xaa }, 3);
	expect_refused(p, h + 3, "runs past the end of its frame");
	memcpy(p + h, (uint8_t[]){ TERN_REC_HELLO }, 1);
	expect_refused(p, h + 1, "a second HELLO");
	memcpy(p + h, (uint8_t[]){ TERN_REC_END, 0x00, 0x00, TERN_REC_ZERO, 0x01 }, 5);
	expect_refused(p, h + 5, "records after END");
	memcpy(p + h, (uint8_t[]){ TERN_REC_END, 0x07, 0x00 }, 3);
	expect_refused(p, h + 3, "END counts");
	memcpy(p + h, (uint8_t[]){ TERN_REC_SECTION, 0x02, 'a', '\n', 0, 0, 0, 0 }, 8);
	expect_refused(p, h + 8, "not printable");
	memcpy(p + h, (uint8_t[]){ TERN_REC_SECTION, 0x01, 'a', 0xff, 0xff, 0xff, 0x7f }, 7);
	expect_refused(p, h + 7, "runs past the end");
	memcpy(p + h, (uint8_t[]){ 0x33 }, 1);
	expect_refused(p, h + 1, "unknown record type");
	p[1] = 'X'; /* bad magic in HELLO */
	expect_refused(p, h, "not a tern migration stream");
}

static void replies(void **state)
{
	(void)state;
	struct memio m;
	memio_init(&m);
	struct tern_stream_writer w;
	tern_stream_writer_init(&w, &m.io);
	assert_int_equal(tern_stream_control(&w, TERN_REC_READY, NULL), 0);
	assert_int_equal(tern_stream_control(&w, TERN_REC_FAILED, "no room for cpu/1"), 0);
	tern_stream_writer_destroy(&w);
	struct memio in;
	memio_init_reader(&in, m.data, m.len);
	struct tern_stream_reader r;
	tern_stream_reader_init_control(&r, &in.io);
	struct tern_record rec;
	struct tern_error err;
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_READY);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_FAILED);
	assert_int_equal(rec.len, 17);
	assert_memory_equal(rec.data, "no room for cpu/1", 17);
	assert_int_equal(tern_stream_read(&r, &rec, &err), -EPIPE);
	tern_stream_reader_destroy(&r);
	memio_free(&m);
}

/* Read to END as from a file (or not); then what tern_stream_expect_eof
 * says of what follows. */
static int read_then_eof(const uint8_t *data, size_t len, int file, struct tern_error *err)
{
	struct memio m;
	memio_init_reader(&m, data, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	r.file = file;
	struct tern_record rec;
	int rc;
	while ((rc = tern_stream_read(&r, &rec, err)) == 0 && rec.type != TERN_REC_END)
		;
	if (rc == 0)
		rc = tern_stream_expect_eof(&r, err);
	tern_stream_reader_destroy(&r);
	return rc;
}

/* Nothing may follow END; input cut short says so in the words of what it
 * is (a file: incomplete; a link: broken), never as an errno. */
static void nothing_after_end(void **state)
{
	(void)state;
	struct memio m;
	sample(&m, 2);
	struct tern_error err = { .msg = "" };
	assert_int_equal(read_then_eof(m.data, m.len, 1, &err), 0);
	uint8_t *longer = malloc(m.len + 1);
	assert_non_null(longer);
	memcpy(longer, m.data, m.len);
	longer[m.len] = 0;
	assert_int_equal(read_then_eof(longer, m.len + 1, 1, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "the file continues after the stream's END"));
	assert_int_equal(read_then_eof(longer, m.len + 1, 0, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "continues after the stream's END"));
	free(longer);
	for (size_t cut = 1; cut < m.len; cut += 97) {
		assert_int_equal(read_then_eof(m.data, m.len - cut, 1, &err), -EPIPE);
		if (strstr(err.msg, "the file ends before the stream's END") == NULL ||
		    strstr(err.msg, "Broken pipe") != NULL)
			fail_msg("cut by %zu: %s", cut, err.msg);
		assert_int_equal(read_then_eof(m.data, m.len - cut, 0, &err), -EPIPE);
		if (strstr(err.msg, "the sender stopped or the link broke") == NULL ||
		    strstr(err.msg, "Broken pipe") != NULL)
			fail_msg("cut by %zu: %s", cut, err.msg);
	}
	memio_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(every_damaged_byte_detected),
		cmocka_unit_test(every_truncation_detected),
		cmocka_unit_test(records_out_of_place),
		cmocka_unit_test(replies),
		cmocka_unit_test(nothing_after_end),
	};
	return cmocka_run_group_tests_name("stream", tests, NULL, NULL);
}
