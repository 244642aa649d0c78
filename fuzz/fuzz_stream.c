/* libFuzzer target: a migration stream from an untrusted peer.  Whatever
 * the reader accepts must be consistent with its HELLO. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../harness/memio.h"
#include "tern/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memio m;
	memio_init_reader(&m, data, size);
	struct tern_stream_reader r;
	if (tern_stream_reader_init(&r, &m.io) != 0)
		return 0;
	struct tern_record rec;
	struct tern_error err;
	while (tern_stream_read(&r, &rec, &err) == 0) {
		if (rec.type == TERN_REC_RAW && rec.len != TERN_STREAM_PAGE)
			abort();
		if (rec.type == TERN_REC_XBZRLE && (rec.len == 0 || rec.len > TERN_STREAM_PAGE))
			abort();
		if ((rec.type == TERN_REC_ZERO || rec.type == TERN_REC_ZERO_RUN ||
		     rec.type == TERN_REC_RAW || rec.type == TERN_REC_XBZRLE)) {
			int inside = 0;
			for (uint32_t i = 0; i < r.hello.ranges; i++) {
				uint64_t first = r.hello.range[i].gpa / 4096;
				uint64_t n = r.hello.range[i].size / 4096;
				inside |= rec.gfn >= first && rec.gfn + rec.count <= first + n;
			}
			if (!inside)
				abort();
		}
		if (rec.type == TERN_REC_END)
			break;
	}
	tern_stream_reader_destroy(&r);
	return 0;
}
