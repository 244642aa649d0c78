/* CRC-32C; see include/tern/crc32c.h. */
#include "tern/crc32c.h"

#include <nmmintrin.h>
#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
}

/* Slicing by eight: eight table lookups per eight bytes. */
static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= crc;
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		      table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		      table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

/* One instruction per eight bytes (about 8 bytes a cycle, far above any
 * link a migration runs over). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
							  size_t len)
{
	uint64_t c = crc;
	while (len >= 32) {
		uint64_t a, b, d, e;
		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		memcpy(&d, p + 16, 8);
		memcpy(&e, p + 24, 8);
		c = _mm_crc32_u64(c, a);
		c = _mm_crc32_u64(c, b);
		c = _mm_crc32_u64(c, d);
		c = _mm_crc32_u64(c, e);
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		uint64_t a;
		memcpy(&a, p, 8);
		c = _mm_crc32_u64(c, a);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len-- > 0)
		c32 = _mm_crc32_u8(c32, *p++);
	return c32;
}

uint32_t tern_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&init_once, init);
	crc = ~crc;
	crc = have_sse42 ? crc_hw(crc, data, len) : crc_table(crc, data, len);
	return ~crc;
}

/* The table path, for tests that compare it with the instruction. */
uint32_t tern_crc32c_portable(uint32_t crc, const void *data, size_t len);
uint32_t tern_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&init_once, init);
	return ~crc_table(~crc, data, len);
}
