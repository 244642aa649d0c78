/*
 * Migration-stream frames for fuzzing: a fuzzer cannot forge CRC-32C
 * checks, so its input is a list of payloads, each prefixed with its length
 * (u16, little-endian), that become well-checked frames in order.  The
 * reverse turns a real stream into such input, for seeds.
 */
#ifndef HARNESS_FRAMES_H
#define HARNESS_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "memio.h"

/* Append to `out` the frames of the payloads in `in`. */
void frames_from_payloads(struct memio *out, const uint8_t *in, size_t len);
/* Append to `out` the payloads of the frames in `stream` (which must be
 * well formed, each payload under 64 KiB). */
int payloads_from_frames(struct memio *out, const uint8_t *stream, size_t len);

#endif
