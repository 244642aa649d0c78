/*
 * Bytes out and bytes in: a growable output buffer and a bounded reader
 * over untrusted input, both little-endian.  vmstate saves into the one
 * and its custom fields read with the other; code that writes a format
 * of its own (the QMP framer's saved state, live update's handshake)
 * uses them without vmstate.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable output buffer, zero-initialised to start empty.  `failed`
 * records an allocation failure: later puts do nothing, and the writer
 * checks it once at the end instead of after every put. */
struct tern_buf {
	uint8_t *data;
	size_t len, cap;
	int failed;
};

void tern_buf_free(struct tern_buf *b);
void tern_buf_put(struct tern_buf *b, const void *data, size_t len);
void tern_buf_u8(struct tern_buf *b, uint8_t v);
void tern_buf_u32(struct tern_buf *b, uint32_t v);
void tern_buf_u64(struct tern_buf *b, uint64_t v);

/* Room for one more element of a growable array: the array at *items
 * (items is the address of its pointer) holds `count` elements of `size`
 * bytes in room for *cap; when it is full the room doubles, from `first`.
 * 0, or -ENOMEM with the array as it was. */
int tern_array_grow(void *items, size_t *cap, size_t count, size_t size, size_t first);

/* A bounded reader over untrusted bytes p[at .. len), for custom fields
 * and streams: each read returns 0, or -ENODATA when the input ends
 * before what it asks for (it never reads past len). */
struct tern_reader {
	const uint8_t *p;
	size_t len, at;
};

int tern_read_bytes(struct tern_reader *r, void *out, size_t n);
int tern_read_u8(struct tern_reader *r, uint8_t *v);
int tern_read_u32(struct tern_reader *r, uint32_t *v);
int tern_read_u64(struct tern_reader *r, uint64_t *v);

#endif
