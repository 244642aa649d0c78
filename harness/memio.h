/* A tern_io over memory: writes append to a buffer, reads consume it. */
#ifndef HARNESS_MEMIO_H
#define HARNESS_MEMIO_H

#include <stddef.h>
#include <stdint.h>

#include "tern/stream.h"

struct memio {
	uint8_t *data;
	size_t len, cap, at;
	struct tern_io io;
};

void memio_init(struct memio *m);
/* Read from a fixed buffer (not copied). */
void memio_init_reader(struct memio *m, const uint8_t *data, size_t len);
void memio_free(struct memio *m);

#endif
