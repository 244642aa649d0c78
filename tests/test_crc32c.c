/* CRC-32C: the standard check value, the instruction path against the table
 * path at every length and alignment around its block sizes, chaining. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/crc32c.h"

uint32_t tern_crc32c_portable(uint32_t crc, const void *data, size_t len);

static void check_value(void **state)
{
	(void)state;
	assert_int_equal(tern_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(tern_crc32c_portable(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(tern_crc32c(0, "", 0), 0);
	uint8_t zeros[32] = { 0 };
	assert_int_equal(tern_crc32c(0, zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
	uint8_t ones[32];
	memset(ones, 0xff, sizeof ones);
	assert_int_equal(tern_crc32c(0, ones, 32), 0x62a8ab43u);
}

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
	uint8_t *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		b[i] = (uint8_t)(seed >> 56);
	}
	return b;
}

static void instruction_matches_table(void **state)
{
	(void)state;
	const size_t max = 3 * 8192 * 2 + 3 * 256 * 2 + 64;
	uint8_t *b = random_bytes(max + 16, 7);
	/* Every length up to a few short blocks, then around the long ones. */
	for (size_t len = 0; len < 3 * 256 * 3; len++)
		for (size_t off = 0; off < 8; off += 3)
			assert_int_equal(tern_crc32c(0, b + off, len),
					 tern_crc32c_portable(0, b + off, len));
	const size_t edges[] = { 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 + 3 * 256 + 7,
				 2 * 3 * 8192, max };
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		for (size_t off = 0; off < 16; off += 5)
			assert_int_equal(tern_crc32c(0x1234, b + off, edges[i]),
					 tern_crc32c_portable(0x1234, b + off, edges[i]));
	free(b);
}

static void chains(void **state)
{
	(void)state;
	uint8_t *b = random_bytes(100000, 9);
	uint32_t whole = tern_crc32c(0, b, 100000);
	for (size_t cut = 0; cut <= 100000; cut += 9973)
		assert_int_equal(tern_crc32c(tern_crc32c(0, b, cut), b + cut, 100000 - cut), whole);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(check_value),
		cmocka_unit_test(instruction_matches_table),
		cmocka_unit_test(chains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
