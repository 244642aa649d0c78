/*
 * What the stream's writer (stream.c) and reader (stream_read.c) agree on,
 * beyond include/tern/stream.h: frame and HELLO magic, the CONTINUE bit,
 * little-endian words.
 */
#ifndef TERN_MIGRATION_STREAM_WIRE_H
#define TERN_MIGRATION_STREAM_WIRE_H

#include <stdint.h>

#define FRAME_MAGIC 0x31464d54u /* "TMF1" */
#define CONTINUE 0x80u
#define HELLO_MAGIC "TERNMIG"   /* and its NUL: 8 bytes */
#define MAX_GFN (1ULL << 52)

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
