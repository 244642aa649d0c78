/*
 * A straightforward byte-at-a-time XBZRLE encoder producing QEMU's
 * canonical encoding (a run of changed bytes ends at the first unchanged
 * one).  The reference for tests and the baseline for benchmarks.
 */
#ifndef HARNESS_XBZRLE_REF_H
#define HARNESS_XBZRLE_REF_H

#include <stddef.h>
#include <stdint.h>

int xbzrle_ref_encode(const uint8_t *old, const uint8_t *new_, size_t len, uint8_t *dst,
		      size_t dst_len);

#endif
