/* Frames from fuzz input and back; see frames.h. */
#include "frames.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "tern/crc32c.h"
#include "tern/stream.h"

#define FRAME_MAGIC 0x31464d54u /* "TMF1", docs/migration-stream.md */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void append(struct memio *out, const void *data, size_t len)
{
	struct iovec v = { (void *)data, len };
	out->io.writev(out, &v, 1);
}

void frames_from_payloads(struct memio *out, const uint8_t *in, size_t len)
{
	uint32_t seq = 0;
	size_t at = 0;
	while (at + 2 <= len) {
		size_t n = (size_t)in[at] | (size_t)in[at + 1] << 8;
		at += 2;
		if (n > len - at)
			n = len - at;
		uint8_t h[TERN_STREAM_FRAME_HEADER];
		put32(h, FRAME_MAGIC);
		put32(h + 4, seq++);
		put32(h + 8, (uint32_t)n);
		put32(h + 12, tern_crc32c(0, in + at, n));
		put32(h + 16, tern_crc32c(0, h, 16));
		append(out, h, sizeof h);
		append(out, in + at, n);
		at += n;
	}
}

int payloads_from_frames(struct memio *out, const uint8_t *stream, size_t len)
{
	size_t at = 0;
	while (at + TERN_STREAM_FRAME_HEADER <= len) {
		uint32_t n = get32(stream + at + 8);
		if (n > 0xffff || n > len - at - TERN_STREAM_FRAME_HEADER)
			return -EINVAL;
		uint8_t prefix[2] = { (uint8_t)n, (uint8_t)(n >> 8) };
		append(out, prefix, 2);
		append(out, stream + at + TERN_STREAM_FRAME_HEADER, n);
		at += TERN_STREAM_FRAME_HEADER + n;
	}
	return at == len ? 0 : -EINVAL;
}
