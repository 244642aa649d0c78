/*
 * Bringing guest RAM in ahead of use, 2 MiB at a time.  A memfd's pages
 * faulted in one by one cost several times what one populate call for the
 * whole chunk does, and on a migration's destination every page with data
 * is about to be written.
 *
 * A background thread populates RAM in address order.  While the
 * destination waits for the stream it may populate all of it (the time is
 * free).  Once pages arrive it stays within a window ahead of the furthest
 * chunk the loader has written: the loader populates each chunk it reaches
 * first itself, the thread the next ones meanwhile, and RAM the stream only
 * says is zero (most of a big, mostly idle guest) is never allocated.
 */
#ifndef VMM_RAM_PREFAULT_H
#define VMM_RAM_PREFAULT_H

#include <pthread.h>
#include <stdint.h>

#include "machine/ram.h"
#include "tern/error.h"

#define RAM_PREFAULT_CHUNK (2ULL << 20)
/* How far ahead of the loader the thread may go, in chunks (64 MiB). */
#define RAM_PREFAULT_WINDOW 32

struct ram_prefault {
	struct guest_ram *ram;
	uint64_t chunks;
	uint64_t *done;   /* one bit per chunk, set atomically */
	pthread_mutex_t lock;
	pthread_cond_t moved;
	uint64_t floor, horizon; /* under lock: the thread works in [floor, horizon) */
	pthread_t thread;
	int running, stop;
};

int ram_prefault_init(struct ram_prefault *p, struct guest_ram *ram, struct tern_error *err);
/* Populate chunks in the background, from the start. */
int ram_prefault_start(struct ram_prefault *p, struct tern_error *err);
/* Any thread (the loader): the chunks under [host, host + len) now, unless
 * done; the thread's window moves on past them. */
void ram_prefault_range(struct ram_prefault *p, const uint8_t *host, uint64_t len);
/* Chunks populated so far (for tests and reports). */
uint64_t ram_prefault_count(struct ram_prefault *p);
/* Stop the thread (if any) and free. */
void ram_prefault_destroy(struct ram_prefault *p);

#endif
