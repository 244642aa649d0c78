/*
 * Compressed clusters: where they are and how to inflate them (deflate
 * without a zlib header, as QEMU writes it, or zstd).
 */
#include <errno.h>
#include <zlib.h>
#include <zstd.h>

#include "image.h"

int qcow2_compressed_range(struct tern_qcow2 *q, uint64_t entry, uint64_t *host, uint64_t *bytes)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t off = entry & ((1ull << x) - 1);
	uint64_t sectors = ((entry >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	uint64_t len = sectors * 512 - (off & 511);
	if (off < q->cluster_size || off >= QCOW2_MAX_SIZE)
		return -EUCLEAN;
	*host = off;
	*bytes = len;
	return 0;
}

static int inflate_deflate(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	z_stream z = { 0 };
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)in_len;
	z.next_out = out;
	z.avail_out = (uInt)out_len;
	int r = inflate(&z, Z_FINISH);
	bool ok = (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) && z.avail_out == 0;
	inflateEnd(&z);
	return ok ? 0 : -EUCLEAN;
}

static int inflate_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!d)
		return -ENOMEM;
	ZSTD_inBuffer ib = { in, in_len, 0 };
	ZSTD_outBuffer ob = { out, out_len, 0 };
	int r = 0;
	while (ob.pos < ob.size) {
		size_t ret = ZSTD_decompressStream(d, &ob, &ib);
		if (ZSTD_isError(ret) || (ib.pos == ib.size && ob.pos < ob.size)) {
			r = -EUCLEAN;
			break;
		}
		if (ret == 0 && ob.pos < ob.size) {
			r = -EUCLEAN; /* a frame ended short of a cluster */
			break;
		}
	}
	ZSTD_freeDCtx(d);
	return r;
}

int qcow2_decompress(struct tern_qcow2 *q, uint64_t entry, struct tern_error *err)
{
	if (q->dbuf_entry == entry)
		return 0;
	uint64_t host, bytes;
	if (qcow2_compressed_range(q, entry, &host, &bytes) < 0)
		return tern_errorf(err, -EUCLEAN, "image is corrupt: invalid compressed cluster entry");
	int r = qcow2_pread(q, q->cbuf, bytes, host, err);
	if (r < 0)
		return r;
	r = q->h.compression_type == QCOW2_COMPRESSION_ZSTD
		    ? inflate_zstd(q->cbuf, bytes, q->dbuf, q->cluster_size)
		    : inflate_deflate(q->cbuf, bytes, q->dbuf, q->cluster_size);
	if (r < 0) {
		q->dbuf_entry = UINT64_MAX;
		return tern_errorf(err, r, "compressed cluster at 0x%llx does not decompress",
				   (unsigned long long)host);
	}
	q->dbuf_entry = entry;
	return 0;
}
