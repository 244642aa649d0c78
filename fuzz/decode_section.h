/*
 * For the fuzz targets that load migration streams and live-update
 * states: one section decoded as a destination's registry would check it,
 * by the registered state type of its name ("cpu/3": the type "cpu"),
 * but without a holder (a fuzzer has no VM): tern_vmstate_load into a
 * fresh object, then the type's release.  An object that loaded must save
 * back to the very bytes it came from (where every description involved
 * has a single version and no subsections, so nothing is left out).
 */
#ifndef FUZZ_DECODE_SECTION_H
#define FUZZ_DECODE_SECTION_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

/* 0, or the load's -errno (a name no type has: -ENOENT). */
int fuzz_decode_section(const char *name, const uint8_t *data, size_t len,
			struct tern_error *err);

#endif
