/*
 * Bringing guest RAM in ahead of use, 2 MiB at a time.  A memfd's pages
 * faulted in one by one cost several times what one populate call for the
 * whole chunk does, and on a migration's destination every page with data
 * is about to be written: while it waits for the stream (and while the
 * stream arrives), a background thread populates RAM, and the loader asks
 * for any chunk it reaches first.
 */
#ifndef VMM_RAM_PREFAULT_H
#define VMM_RAM_PREFAULT_H

#include <pthread.h>
#include <stdint.h>

#include "ram.h"
#include "tern/error.h"

#define RAM_PREFAULT_CHUNK (2ULL << 20)

struct ram_prefault {
	struct guest_ram *ram;
	uint64_t chunks;
	uint64_t *done;   /* one bit per chunk, set atomically */
	pthread_t thread;
	int running, stop;
};

int ram_prefault_init(struct ram_prefault *p, struct guest_ram *ram, struct tern_error *err);
/* Populate every chunk in the background, from the start. */
int ram_prefault_start(struct ram_prefault *p, struct tern_error *err);
/* Any thread: the chunks under [host, host + len) now, unless done. */
void ram_prefault_range(struct ram_prefault *p, const uint8_t *host, uint64_t len);
/* Stop the thread (if any) and free. */
void ram_prefault_destroy(struct ram_prefault *p);

#endif
