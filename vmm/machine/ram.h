/*
 * Guest RAM: one memfd, mapped shared (CPR maps the same pages in a new
 * process), laid out like QEMU's pc machine: RAM from 0 up to 3 GiB, the
 * rest from 4 GiB, the hole between left for devices.  The RAM is split
 * into KVM memslots.
 */
#ifndef VMM_RAM_H
#define VMM_RAM_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"
#include "tern/fdstore.h"
#include "tern/multiboot.h"

#define RAM_LOW_LIMIT (3ULL << 30)
#define RAM_HIGH_BASE (4ULL << 30)
#define RAM_MIN (16ULL << 20)

struct ram_slot {
	uint32_t id;
	uint64_t gpa;
	uint64_t size;
	uint64_t offset; /* in the memfd */
};

struct guest_ram {
	int memfd;
	int memfd_adopted; /* taken over from the process before a live update */
	uint8_t *host;
	uint64_t size;
	uint64_t low_size, high_size;
	unsigned slots;
	struct ram_slot *slot;
};

/* Create `size` bytes of RAM split into `slots` memslots (0: one per GiB).
 * With prealloc, every page is allocated now rather than on first touch
 * (which is far cheaper for the host than faulting pages in one by one).
 * The memfd is kept in `store`; one a previous process kept there (a live
 * update) is mapped as it is instead. */
int ram_create(struct guest_ram *ram, uint64_t size, unsigned slots, unsigned max_slots,
	       int prealloc, struct tern_fdstore *store, struct tern_error *err);
void ram_destroy(struct guest_ram *ram);

/* Host address of [gpa, gpa + len) if it lies wholly in RAM, else NULL. */
void *ram_host(const struct guest_ram *ram, uint64_t gpa, uint64_t len);

/* The memslot holding gpa, or -1. */
int ram_slot_of(const struct guest_ram *ram, uint64_t gpa);

/* The E820 map the guest sees; returns the number of entries (<= 6). */
unsigned ram_memory_map(const struct guest_ram *ram, struct tern_memory_range *map);

#endif
