/* Guest RAM layout, memfd backing and memslot split; see ram.h. */
#include "machine/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpr/kept_fds.h"

#define PAGE 4096ULL
#define GIB (1ULL << 30)

static uint64_t ram_offset_of(const struct guest_ram *ram, uint64_t gpa)
{
	return gpa < RAM_LOW_LIMIT ? gpa : ram->low_size + (gpa - RAM_HIGH_BASE);
}

/* Split [gpa, gpa + size) into `n` page-aligned slots of nearly equal size. */
static void split_region(struct guest_ram *ram, uint64_t gpa, uint64_t size, unsigned n)
{
	uint64_t pages = size / PAGE;
	uint64_t at = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t end = pages * (i + 1) / n * PAGE;
		struct ram_slot *s = &ram->slot[ram->slots];
		s->id = ram->slots++;
		s->gpa = gpa + at;
		s->size = end - at;
		s->offset = ram_offset_of(ram, gpa + at);
		at = end;
	}
}

/* The memfd a previous process kept (a live update), checked, or a new one. */
static int open_memfd(struct guest_ram *ram, struct tern_fdstore *store, int *adopted,
		      struct tern_error *err)
{
	int fd = kept_fd_find(store, KEPT_RAM_MEMFD, 0);
	*adopted = fd >= 0;
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != ram->size)
			return tern_errorf(err, -EINVAL, "the kept guest RAM (fd %d) is not a memfd "
					   "of %llu bytes", fd, (unsigned long long)ram->size);
		ram->memfd = fd;
		return 0;
	}
	ram->memfd = memfd_create("tern-ram", MFD_CLOEXEC);
	if (ram->memfd < 0)
		return tern_errorf(err, -errno, "memfd_create for guest RAM: %s", strerror(errno));
	if (ftruncate(ram->memfd, (off_t)ram->size) < 0)
		return tern_errorf(err, -errno, "sizing guest RAM to %llu MiB: %s",
				   (unsigned long long)(ram->size >> 20), strerror(errno));
	if (kept_fd_add(store, KEPT_RAM_MEMFD, 0, ram->memfd) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	return 0;
}

int ram_create(struct guest_ram *ram, uint64_t size, unsigned slots, unsigned max_slots,
	       int prealloc, struct tern_fdstore *store, struct tern_error *err)
{
	memset(ram, 0, sizeof *ram);
	ram->memfd = -1;
	if (size < RAM_MIN)
		return tern_errorf(err, -EINVAL, "--memory %llu MiB is too small: the guest needs "
				   "at least %llu MiB", (unsigned long long)(size >> 20),
				   (unsigned long long)(RAM_MIN >> 20));
	if (size % PAGE != 0)
		return tern_errorf(err, -EINVAL, "--memory must be a multiple of 4 KiB");
	long host_pages = sysconf(_SC_PHYS_PAGES);
	uint64_t host_bytes = host_pages > 0 ? (uint64_t)host_pages * PAGE : UINT64_MAX;
	if (size > host_bytes)
		return tern_errorf(err, -ENOMEM, "--memory %llu MiB does not fit: this host has "
				   "%llu MiB of RAM; choose a smaller size",
				   (unsigned long long)(size >> 20),
				   (unsigned long long)(host_bytes >> 20));
	ram->size = size;
	ram->low_size = size < RAM_LOW_LIMIT ? size : RAM_LOW_LIMIT;
	ram->high_size = size - ram->low_size;
	if (slots == 0)
		slots = (unsigned)((size + GIB - 1) / GIB);
	unsigned regions = ram->high_size ? 2 : 1;
	if (slots < regions)
		slots = regions;
	if (slots > max_slots)
		return tern_errorf(err, -EINVAL, "--memslots %u is more than KVM allows here (%u)",
				   slots, max_slots);
	if ((uint64_t)slots > size / PAGE)
		return tern_errorf(err, -EINVAL, "--memslots %u is more than the %llu pages of RAM",
				   slots, (unsigned long long)(size / PAGE));

	int adopted;
	int rc = open_memfd(ram, store, &adopted, err);
	ram->memfd_adopted = adopted;
	if (rc < 0) {
		ram_destroy(ram);
		return rc;
	}
	/* Kept RAM is mapped, never copied nor populated: its pages are there. */
	void *host = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_SHARED | (prealloc && !adopted ? MAP_POPULATE : 0), ram->memfd, 0);
	if (host == MAP_FAILED) {
		int e = errno;
		ram_destroy(ram);
		return tern_errorf(err, -e, "mapping %llu MiB of guest RAM: %s",
				   (unsigned long long)(size >> 20), strerror(e));
	}
	ram->host = host;
	ram->slot = calloc(slots, sizeof *ram->slot);
	if (ram->slot == NULL) {
		ram_destroy(ram);
		return tern_errorf(err, -ENOMEM, "out of memory for %u memslots", slots);
	}
	/* Share the slots between the regions in proportion to their size. */
	unsigned high_slots = 0;
	if (ram->high_size) {
		high_slots = (unsigned)((uint64_t)slots * ram->high_size / size);
		if (high_slots == 0)
			high_slots = 1;
		if (high_slots == slots)
			high_slots = slots - 1;
	}
	split_region(ram, 0, ram->low_size, slots - high_slots);
	if (high_slots)
		split_region(ram, RAM_HIGH_BASE, ram->high_size, high_slots);
	return 0;
}

void ram_destroy(struct guest_ram *ram)
{
	if (ram->host != NULL)
		munmap(ram->host, ram->size);
	if (ram->memfd >= 0 && !ram->memfd_adopted) /* a kept one stays for a fallback */
		close(ram->memfd);
	free(ram->slot);
	memset(ram, 0, sizeof *ram);
	ram->memfd = -1;
}

void *ram_host(const struct guest_ram *ram, uint64_t gpa, uint64_t len)
{
	if (gpa < RAM_LOW_LIMIT) {
		if (gpa > ram->low_size || len > ram->low_size - gpa)
			return NULL;
	} else {
		if (gpa < RAM_HIGH_BASE || gpa - RAM_HIGH_BASE > ram->high_size ||
		    len > ram->high_size - (gpa - RAM_HIGH_BASE))
			return NULL;
	}
	return ram->host + ram_offset_of(ram, gpa);
}

int ram_slot_of(const struct guest_ram *ram, uint64_t gpa)
{
	/* Slots are in ascending guest-physical order. */
	unsigned lo = 0, hi = ram->slots;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct ram_slot *s = &ram->slot[mid];
		if (gpa < s->gpa)
			hi = mid;
		else if (gpa - s->gpa >= s->size)
			lo = mid + 1;
		else
			return (int)mid;
	}
	return -1;
}

unsigned ram_memory_map(const struct guest_ram *ram, struct tern_memory_range *map)
{
	unsigned n = 0;
	map[n++] = (struct tern_memory_range){ 0, 0x9fc00, TERN_E820_RAM };
	map[n++] = (struct tern_memory_range){ 0x9fc00, 0x400, TERN_E820_RESERVED };
	map[n++] = (struct tern_memory_range){ 0xf0000, 0x10000, TERN_E820_RESERVED };
	map[n++] = (struct tern_memory_range){ 0x100000, ram->low_size - 0x100000, TERN_E820_RAM };
	if (ram->high_size)
		map[n++] = (struct tern_memory_range){ RAM_HIGH_BASE, ram->high_size, TERN_E820_RAM };
	return n;
}
