/*
 * What a migration destination pays to bring 1 GiB of guest RAM in, by
 * the ways it could: the candidates for vmm/machine/ram_prefault.c, measured on a
 * memfd mapped shared as tern's guest RAM is, no KVM needed.
 *
 *   dest_ram [--reps N] [--gib G]
 *
 *   touch             the loader writes each 4 KiB page through the mapping
 *                     (what a destination without prefault pays per page)
 *   populate          MADV_POPULATE_WRITE per 2 MiB (tern's prefault)
 *   populate x2       the same from two threads, each half of the RAM
 *   fallocate+pop     fallocate a 2 MiB chunk, then MADV_POPULATE_WRITE it
 *   pwrite            4 KiB pwrite()s into the memfd, nothing mapped
 *   then touch        after populate: what the loader's writes cost then
 *
 * Each figure is ms per GiB, the median of N runs, each on a new memfd.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../harness/stats.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096u
#define CHUNK (2u << 20)
#define MAX_REPS 15

enum way { TOUCH, POPULATE, POPULATE2, FALLOCATE_POP, PWRITE, THEN_TOUCH, WAYS };
static const char *const names[WAYS] = { "touch", "populate", "populate x2", "fallocate+pop",
					 "pwrite", "then touch" };

struct ram {
	int fd;
	uint8_t *p;
	size_t size;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int ram_new(struct ram *r, size_t size)
{
	r->size = size;
	r->fd = memfd_create("dest-ram", MFD_CLOEXEC);
	if (r->fd < 0 || ftruncate(r->fd, (off_t)size) < 0)
		return -1;
	r->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	return r->p == MAP_FAILED ? -1 : 0;
}

static void ram_free(struct ram *r)
{
	munmap(r->p, r->size);
	close(r->fd);
}

struct half {
	struct ram *r;
	size_t from, to;
};

static void *populate_range(void *arg)
{
	struct half *h = arg;
	for (size_t o = h->from; o < h->to; o += CHUNK)
		madvise(h->r->p + o, CHUNK, MADV_POPULATE_WRITE);
	return NULL;
}

/* The time one way takes over the whole of r, in ms. */
static double run(enum way w, struct ram *r)
{
	static uint8_t page[PAGE];
	memset(page, 0x5a, sizeof page);
	if (w == THEN_TOUCH) { /* populated first, not timed */
		struct half all = { r, 0, r->size };
		populate_range(&all);
	}
	double t0 = now_ms();
	switch (w) {
	case TOUCH:
	case THEN_TOUCH:
		for (size_t o = 0; o < r->size; o += PAGE)
			memcpy(r->p + o, page, PAGE);
		break;
	case POPULATE: {
		struct half all = { r, 0, r->size };
		populate_range(&all);
		break;
	}
	case POPULATE2: {
		struct half a = { r, 0, r->size / 2 }, b = { r, r->size / 2, r->size };
		pthread_t t;
		if (pthread_create(&t, NULL, populate_range, &b) != 0)
			return -1;
		populate_range(&a);
		pthread_join(t, NULL);
		break;
	}
	case FALLOCATE_POP:
		for (size_t o = 0; o < r->size; o += CHUNK) {
			fallocate(r->fd, 0, (off_t)o, CHUNK);
			madvise(r->p + o, CHUNK, MADV_POPULATE_WRITE);
		}
		break;
	case PWRITE:
		for (size_t o = 0; o < r->size; o += PAGE)
			if (pwrite(r->fd, page, PAGE, (off_t)o) != PAGE)
				return -1;
		break;
	case WAYS:
		break;
	}
	return now_ms() - t0;
}

int main(int argc, char **argv)
{
	int reps = 5, gib = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--gib") == 0 && i + 1 < argc)
			gib = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--reps N] [--gib G]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || gib < 1 || gib > 16) {
		fprintf(stderr, "--reps must be 1..%d and --gib 1..16\n", MAX_REPS);
		return 2;
	}
	double ms[WAYS][MAX_REPS];
	for (int k = 0; k < reps; k++)
		for (int w = 0; w < WAYS; w++) { /* interleaved */
			struct ram r;
			if (ram_new(&r, (size_t)gib << 30) < 0) {
				perror("dest_ram: memfd");
				return 1;
			}
			ms[w][k] = run((enum way)w, &r) / gib;
			ram_free(&r);
		}
	printf("bringing guest RAM in on a migration destination: ms per GiB, median of %d "
	       "(%d GiB memfd, 4 KiB pages)\n", reps, gib);
	double touch = harness_median(ms[TOUCH], reps);
	printf("%-16s %10s %10s\n", "way", "ms/GiB", "vs touch");
	for (int w = 0; w < WAYS; w++) {
		double m = harness_median(ms[w], reps);
		printf("%-16s %10.1f %9.2fx\n", names[w], m, m / touch);
	}
	return 0;
}
