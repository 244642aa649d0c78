/*
 * XBZRLE, the delta encoding of QEMU's live migration (docs/xbzrle.txt in
 * QEMU): alternating ULEB128 lengths of a run of unchanged bytes and a run
 * of changed bytes followed by the new bytes; a trailing unchanged run is
 * left out.  Wire compatible with QEMU in both directions.
 *
 * tern's encoder treats a single unchanged byte between changed ones as
 * changed (sending it costs one byte, splitting the run costs two or
 * three), so its output is never larger than QEMU's canonical encoding and
 * usually smaller; any conforming decoder accepts it.
 */
#ifndef TERN_XBZRLE_H
#define TERN_XBZRLE_H

#include <stddef.h>
#include <stdint.h>

/* Runs are 14-bit lengths on the wire, so pages are at most this long. */
#define TERN_XBZRLE_MAX_LEN 16383

/*
 * Encode how new_ differs from old (len bytes each) into dst.  Returns the
 * encoded length, 0 when the pages are equal, or -1 when the encoding does
 * not fit in dst_len bytes (or len is 0 or over TERN_XBZRLE_MAX_LEN): the
 * caller then sends the page whole.
 */
int tern_xbzrle_encode(const uint8_t *old, const uint8_t *new_, size_t len, uint8_t *dst,
		       size_t dst_len);

/*
 * Apply an encoded delta to dst (which holds the old page, dst_len bytes)
 * in place.  Returns the number of bytes the delta covers, or -1 when src
 * is malformed (bad lengths, runs past the page, truncated); dst is never
 * written out of bounds.  Accepts exactly what QEMU's decoder accepts.
 */
int tern_xbzrle_decode(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len);

/* The encoder's comparison kernel ("avx512", "avx2", "portable"), chosen
 * at run time; tern_xbzrle_use_kernel() forces one (tests, benchmarks):
 * 0, -ENOTSUP when this CPU cannot run it, -ENOENT for an unknown name. */
const char *tern_xbzrle_kernel(void);
int tern_xbzrle_use_kernel(const char *name);

#endif
