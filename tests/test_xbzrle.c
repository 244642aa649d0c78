/*
 * XBZRLE: QEMU's documented example byte for byte; round trips on random
 * and adversarial pages (runs around the 1-byte/2-byte length boundary,
 * changes at the first and last byte, output exactly at the limit); never
 * larger than QEMU's canonical encoding; every kernel identical; malformed
 * input refused without writing out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/xbzrle_ref.h"
#include "tern/xbzrle.h"

#include "../harness/rng.h"

#define PAGE 4096

static const char *const kernels[] = { "portable", "avx2", "avx512" };

static uint64_t rng = 42;

static uint64_t rnd(void)
{
	return harness_splitmix(&rng);
}

/* Encode with every kernel (all must agree), decode onto a copy of old,
 * compare with new; and never larger than the canonical encoding. */
static void round_trip(const uint8_t *old, const uint8_t *new_, size_t len)
{
	uint8_t enc[3 * TERN_XBZRLE_MAX_LEN], first[3 * TERN_XBZRLE_MAX_LEN];
	uint8_t ref[3 * TERN_XBZRLE_MAX_LEN];
	int n0 = -2;
	for (unsigned k = 0; k < 3; k++) {
		if (tern_xbzrle_use_kernel(kernels[k]) != 0)
			continue;
		int n = tern_xbzrle_encode(old, new_, len, enc, sizeof enc);
		assert_true(n >= 0);
		if (n0 == -2) {
			n0 = n;
			memcpy(first, enc, (size_t)n);
		} else {
			assert_int_equal(n, n0);
			assert_memory_equal(enc, first, (size_t)n);
		}
	}
	int canonical = xbzrle_ref_encode(old, new_, len, ref, sizeof ref);
	assert_true(canonical >= 0);
	assert_true(n0 <= canonical);
	assert_int_equal(n0 == 0, canonical == 0);
	uint8_t *page = malloc(len);
	memcpy(page, old, len);
	if (n0 > 0) {
		int covered = tern_xbzrle_decode(first, (size_t)n0, page, len);
		assert_true(covered > 0 && (size_t)covered <= len);
	}
	assert_memory_equal(page, new_, len);
	/* The canonical encoding decodes to the same page (both directions
	 * of compatibility). */
	memcpy(page, old, len);
	if (canonical > 0)
		assert_true(tern_xbzrle_decode(ref, (size_t)canonical, page, len) > 0);
	assert_memory_equal(page, new_, len);
	/* Exactly at the limit it fits; one byte less, it does not. */
	if (n0 > 0) {
		assert_int_equal(tern_xbzrle_encode(old, new_, len, enc, (size_t)n0), n0);
		assert_int_equal(tern_xbzrle_encode(old, new_, len, enc, (size_t)n0 - 1), -1);
	}
	free(page);
}

static void qemu_documented_example(void **state)
{
	(void)state;
	uint8_t old[PAGE] = { 0 }, new_[PAGE] = { 0 };
	const uint8_t o[] = { 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
			      0x10, 0x11, 0x12, 0x13, 0x68, 0x00, 0x00, 0x6b, 0x00, 0x6d };
	const uint8_t n[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
			      0x0c, 0x0d, 0x0e, 0x0f, 0x68, 0x00, 0x00, 0x67, 0x00, 0x69 };
	memcpy(old + 1001, o, sizeof o);
	memcpy(new_ + 1001, n, sizeof n);
	const uint8_t encoded[24] = { 0xe9, 0x07, 0x0f, 0x01, 0x02, 0x03, 0x04, 0x05,
				      0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
				      0x0e, 0x0f, 0x03, 0x01, 0x67, 0x01, 0x01, 0x69 };
	uint8_t page[PAGE];
	memcpy(page, old, PAGE);
	assert_int_equal(tern_xbzrle_decode(encoded, sizeof encoded, page, PAGE), 1022);
	assert_memory_equal(page, new_, PAGE);
	/* The canonical encoder gives the documented bytes; tern's joins the
	 * lone unchanged 00 into one run and saves a byte. */
	uint8_t enc[64];
	assert_int_equal(xbzrle_ref_encode(old, new_, PAGE, enc, sizeof enc), 24);
	assert_memory_equal(enc, encoded, 24);
	int n23 = tern_xbzrle_encode(old, new_, PAGE, enc, sizeof enc);
	assert_int_equal(n23, 23);
	const uint8_t tail[] = { 0x03, 0x03, 0x67, 0x00, 0x69 };
	assert_memory_equal(enc + 18, tail, sizeof tail);
	round_trip(old, new_, PAGE);
}

static void identical_and_edges(void **state)
{
	(void)state;
	uint8_t old[PAGE], new_[PAGE], enc[2 * PAGE];
	for (size_t i = 0; i < PAGE; i++)
		old[i] = (uint8_t)rnd();
	memcpy(new_, old, PAGE);
	assert_int_equal(tern_xbzrle_encode(old, new_, PAGE, enc, sizeof enc), 0);
	new_[0] ^= 1; /* first byte: zero run of 0 at the start */
	round_trip(old, new_, PAGE);
	memcpy(new_, old, PAGE);
	new_[PAGE - 1] ^= 0x80; /* last byte */
	round_trip(old, new_, PAGE);
	memset(new_, 0, PAGE); /* a whole new page */
	for (size_t i = 0; i < PAGE; i++)
		new_[i] = (uint8_t)(old[i] + 1);
	round_trip(old, new_, PAGE);
	assert_int_equal(tern_xbzrle_encode(old, new_, PAGE, enc, PAGE), -1); /* overflow */
	assert_int_equal(tern_xbzrle_encode(old, new_, 0, enc, PAGE), -1);
	assert_int_equal(tern_xbzrle_encode(old, new_, TERN_XBZRLE_MAX_LEN + 1, enc, PAGE), -1);
}

/* Runs of every length around 127/128 (where a length needs a second
 * byte), and around 16383 (the longest), zero and changed, at every
 * alignment around a 64-byte word. */
static void run_length_boundaries(void **state)
{
	(void)state;
	static uint8_t old[TERN_XBZRLE_MAX_LEN], new_[TERN_XBZRLE_MAX_LEN];
	for (size_t i = 0; i < sizeof old; i++)
		old[i] = (uint8_t)rnd();
	for (size_t start = 0; start < 70; start += 3)
		for (size_t run = 120; run <= 136; run++) {
			memcpy(new_, old, PAGE);
			for (size_t i = start; i < start + run; i++)
				new_[i] = (uint8_t)~old[i];
			round_trip(old, new_, PAGE);
			/* A changed page with an unchanged hole of `run` bytes. */
			for (size_t i = 0; i < PAGE; i++)
				new_[i] = i >= start && i < start + run ? old[i] : (uint8_t)~old[i];
			round_trip(old, new_, PAGE);
		}
	/* The longest page: one long zero run, one long changed run. */
	memcpy(new_, old, sizeof old);
	new_[sizeof old - 1] ^= 1;
	round_trip(old, new_, sizeof old);
	for (size_t i = 0; i < sizeof old; i++)
		new_[i] = (uint8_t)~old[i];
	round_trip(old, new_, sizeof old);
}

static void random_pages(void **state)
{
	(void)state;
	uint8_t old[PAGE], new_[PAGE];
	for (int round = 0; round < 3000; round++) {
		for (size_t i = 0; i < PAGE; i++)
			old[i] = (uint8_t)(rnd() % 4); /* small alphabet: equal by chance */
		memcpy(new_, old, PAGE);
		unsigned mode = (unsigned)(round % 5);
		size_t changes = mode == 0 ? 1 : mode == 1 ? 40 : mode == 2 ? 410 : 2000;
		if (mode == 4) { /* a few contiguous runs */
			for (int r = 0; r < 4; r++) {
				size_t at = rnd() % PAGE, n = rnd() % 300;
				for (size_t i = at; i < PAGE && i < at + n; i++)
					new_[i] = (uint8_t)rnd();
			}
		} else {
			for (size_t c = 0; c < changes; c++)
				new_[rnd() % PAGE] = (uint8_t)rnd();
		}
		size_t len = round % 7 == 0 ? 1 + rnd() % PAGE : PAGE; /* odd lengths too */
		round_trip(old, new_, len);
	}
}

static void malformed_refused(void **state)
{
	(void)state;
	uint8_t page[64];
	memset(page, 0xaa, sizeof page);
	struct {
		const uint8_t bytes[8];
		size_t len;
	} bad[] = {
		{ { 0x01 }, 1 },                         /* truncated: one byte */
		{ { 0x00, 0x00 }, 2 },                   /* empty changed run */
		{ { 0x00, 0x02, 0x11 }, 3 },             /* changed run past src */
		{ { 0x00, 0x01, 0x11, 0x00, 0x01, 0x22 }, 6 }, /* empty zero run after the start */
		{ { 0x40, 0x01, 0x11 }, 3 },             /* runs to byte 65 of 64 */
		{ { 0x3f, 0x02, 0x11, 0x22 }, 4 },       /* changed run past dst */
		{ { 0x80, 0x80, 0x01, 0x01, 0x11 }, 5 }, /* 3-byte length */
		{ { 0x00, 0x81, 0x80, 0x11 }, 4 },       /* 3-byte changed length */
		{ { 0x00, 0x01, 0x11, 0x01 }, 4 },       /* trailing half record */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t copy[64];
		memcpy(copy, page, sizeof copy);
		if (tern_xbzrle_decode(bad[i].bytes, bad[i].len, copy, sizeof copy) != -1)
			fail_msg("malformed input %zu accepted", i);
	}
	uint8_t ok[] = { 0x00, 0x01, 0x11, 0x3e, 0x01, 0x22 };
	assert_int_equal(tern_xbzrle_decode(ok, sizeof ok, page, sizeof page), 64);
	assert_int_equal(page[0], 0x11);
	assert_int_equal(page[63], 0x22);
	assert_int_equal(tern_xbzrle_decode(ok, 0, page, sizeof page), 0); /* nothing to do */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qemu_documented_example),
		cmocka_unit_test(identical_and_edges),
		cmocka_unit_test(run_length_boundaries),
		cmocka_unit_test(random_pages),
		cmocka_unit_test(malformed_refused),
	};
	int rc = cmocka_run_group_tests_name("xbzrle", tests, NULL, NULL);
	return rc;
}
