/*
 * A destination's background RAM allocation (vmm/machine/ram_prefault.c), on a
 * memfd without KVM: while no page has arrived it allocates all of RAM;
 * once the loader writes, it stays within its window ahead of the loader,
 * so RAM the stream never writes stays unallocated; the loader's own
 * chunks are always made present.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "machine/ram_prefault.h"

#define RAM_BYTES (512ULL << 20)
#define CHUNKS (RAM_BYTES / RAM_PREFAULT_CHUNK)

static void ram_make(struct guest_ram *ram)
{
	memset(ram, 0, sizeof *ram);
	ram->memfd = memfd_create("prefault-test", MFD_CLOEXEC);
	assert_true(ram->memfd >= 0);
	assert_int_equal(ftruncate(ram->memfd, (off_t)RAM_BYTES), 0);
	ram->size = RAM_BYTES;
	ram->host = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, ram->memfd, 0);
	assert_true(ram->host != MAP_FAILED);
}

static void ram_free(struct guest_ram *ram)
{
	munmap(ram->host, ram->size);
	close(ram->memfd);
}

static uint64_t allocated(const struct guest_ram *ram)
{
	struct stat st;
	assert_int_equal(fstat(ram->memfd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void nap_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
}

/* Until the count stops changing for a while (the thread waits). */
static uint64_t settled_count(struct ram_prefault *p)
{
	uint64_t last = UINT64_MAX;
	for (int i = 0; i < 600; i++) {
		uint64_t n = ram_prefault_count(p);
		if (n == last && i > 20)
			return n;
		last = n;
		nap_ms(10);
	}
	return last;
}

static void waiting_allocates_everything(void **state)
{
	(void)state;
	struct guest_ram ram;
	ram_make(&ram);
	struct ram_prefault p;
	struct tern_error err;
	assert_int_equal(ram_prefault_init(&p, &ram, &err), 0);
	assert_int_equal(ram_prefault_start(&p, &err), 0);
	assert_int_equal(settled_count(&p), CHUNKS);
	assert_true(allocated(&ram) >= RAM_BYTES);
	ram_prefault_destroy(&p);
	ram_free(&ram);
}

static void arrived_pages_bound_the_thread(void **state)
{
	(void)state;
	struct guest_ram ram;
	ram_make(&ram);
	struct ram_prefault p;
	struct tern_error err;
	assert_int_equal(ram_prefault_init(&p, &ram, &err), 0);
	/* Pages arrive before the thread runs: chunk 0, then chunk 100. */
	ram_prefault_range(&p, ram.host, 4096);
	assert_int_equal(ram_prefault_start(&p, &err), 0);
	uint64_t n = settled_count(&p);
	assert_true(n >= 1 && n <= 1 + RAM_PREFAULT_WINDOW);
	ram_prefault_range(&p, ram.host + 100 * RAM_PREFAULT_CHUNK + 8192, 4096);
	n = settled_count(&p);
	/* Chunks 0..window, then chunk 100 and the window after it; the zero
	 * run in between is never allocated. */
	assert_true(n <= 2 + 2 * RAM_PREFAULT_WINDOW);
	assert_true(n < CHUNKS);
	assert_true(allocated(&ram) <= n * RAM_PREFAULT_CHUNK);
	/* The loader's chunk is there once the call returns. */
	uint8_t vec[1];
	assert_int_equal(mincore(ram.host + 100 * RAM_PREFAULT_CHUNK, 4096, vec), 0);
	assert_true(vec[0] & 1);
	ram_prefault_destroy(&p);
	ram_prefault_destroy(&p); /* twice is harmless */
	ram_free(&ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(waiting_allocates_everything),
		cmocka_unit_test(arrived_pages_bound_the_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
