/* Guest RAM populated ahead of use; see ram_prefault.h. */
#include "machine/ram_prefault.h"

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
	p->horizon = UINT64_MAX; /* no page has arrived: all of it */
	p->done = calloc((p->chunks + 63) / 64, sizeof *p->done);
	if (p->done == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->moved, NULL);
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

/* The next chunk the thread may populate, at or after c; p->chunks when it
 * is to stop.  Waits while the window holds nothing more. */
static uint64_t next_chunk(struct ram_prefault *p, uint64_t c)
{
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (c < p->floor) /* behind the loader: written, or zero */
			c = p->floor;
		if (p->stop || c >= p->chunks) {
			c = p->chunks;
			break;
		}
		if (c < p->horizon)
			break;
		pthread_cond_wait(&p->moved, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return c;
}

static void *prefault_main(void *arg)
{
	struct ram_prefault *p = arg;
	for (uint64_t c = next_chunk(p, 0); c < p->chunks; c = next_chunk(p, c + 1))
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
	/* The window only moves forward: later rounds revisit written chunks. */
	pthread_mutex_lock(&p->lock);
	if (p->horizon == UINT64_MAX || last + 1 + RAM_PREFAULT_WINDOW > p->horizon)
		p->horizon = last + 1 + RAM_PREFAULT_WINDOW;
	if (first > p->floor)
		p->floor = first;
	pthread_cond_signal(&p->moved);
	pthread_mutex_unlock(&p->lock);
	for (uint64_t c = first; c <= last && c < p->chunks; c++)
		if (claim(p, c))
			populate(p, c);
}

uint64_t ram_prefault_count(struct ram_prefault *p)
{
	uint64_t n = 0;
	for (uint64_t i = 0; p->done != NULL && i < (p->chunks + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(__atomic_load_n(&p->done[i], __ATOMIC_RELAXED));
	return n;
}

void ram_prefault_destroy(struct ram_prefault *p)
{
	if (p->done == NULL)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_signal(&p->moved);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
		p->running = 0;
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->moved);
	free(p->done);
	p->done = NULL;
}
