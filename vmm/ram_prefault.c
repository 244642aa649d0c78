/* Guest RAM populated ahead of use; see ram_prefault.h. */
#include "ram_prefault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int ram_prefault_init(struct ram_prefault *p, struct guest_ram *ram, struct tern_error *err)
{
	memset(p, 0, sizeof *p);
	p->ram = ram;
	p->chunks = (ram->size + RAM_PREFAULT_CHUNK - 1) / RAM_PREFAULT_CHUNK;
	p->done = calloc((p->chunks + 63) / 64, sizeof *p->done);
	if (p->done == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	return 0;
}

/* Claim a chunk: 1 if the caller is the one to populate it. */
static int claim(struct ram_prefault *p, uint64_t chunk)
{
	uint64_t bit = 1ULL << (chunk % 64);
	return !(__atomic_fetch_or(&p->done[chunk / 64], bit, __ATOMIC_ACQ_REL) & bit);
}

static void populate(struct ram_prefault *p, uint64_t chunk)
{
	uint64_t off = chunk * RAM_PREFAULT_CHUNK;
	uint64_t len = p->ram->size - off < RAM_PREFAULT_CHUNK ? p->ram->size - off
							     : RAM_PREFAULT_CHUNK;
	/* Best effort: a page that fails here is faulted in when written. */
	madvise(p->ram->host + off, len, MADV_POPULATE_WRITE);
}

static void *prefault_main(void *arg)
{
	struct ram_prefault *p = arg;
	for (uint64_t c = 0; c < p->chunks && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE); c++)
		if (claim(p, c))
			populate(p, c);
	return NULL;
}

int ram_prefault_start(struct ram_prefault *p, struct tern_error *err)
{
	int rc = pthread_create(&p->thread, NULL, prefault_main, p);
	if (rc != 0)
		return tern_errorf(err, -rc, "starting the RAM prefault thread: %s", strerror(rc));
	p->running = 1;
	return 0;
}

void ram_prefault_range(struct ram_prefault *p, const uint8_t *host, uint64_t len)
{
	if (p->done == NULL || len == 0)
		return;
	uint64_t first = (uint64_t)(host - p->ram->host) / RAM_PREFAULT_CHUNK;
	uint64_t last = ((uint64_t)(host - p->ram->host) + len - 1) / RAM_PREFAULT_CHUNK;
	for (uint64_t c = first; c <= last && c < p->chunks; c++)
		if (claim(p, c))
			populate(p, c);
}

void ram_prefault_destroy(struct ram_prefault *p)
{
	if (p->running) {
		__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
		pthread_join(p->thread, NULL);
		p->running = 0;
	}
	free(p->done);
	p->done = NULL;
}
