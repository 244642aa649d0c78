/*
 * An address space of device ranges: port I/O (16-bit) and MMIO (64-bit
 * guest-physical) are each one of these.  A range [base, base + len) has
 * read and write callbacks; accesses are 1, 2, 4 or 8 bytes, values are
 * little-endian in a uint64_t, the offset is from the range's base.  An
 * access that no range holds whole is unclaimed: reads return all ones,
 * writes are dropped, as on a PC.
 *
 * Threads: vCPU threads dispatch at once; ranges are registered on the
 * main thread at creation, and at run time by the guest itself (a PCI BAR
 * moves when a vCPU programs it).  A rwlock guards the table: a lookup
 * holds it for one bisection and copies its range out, then calls the
 * device without it, so a callback may change any space (even its own)
 * and a registration never waits for a device.  So a callback may still
 * run just after its range went: a range's opaque must outlive the space
 * (devices live as long as the VM).  Lookups are O(log n).
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

#define BUS_MAX_ACCESS 8

typedef uint64_t bus_read_fn(void *opaque, uint64_t offset, unsigned size);
typedef void bus_write_fn(void *opaque, uint64_t offset, unsigned size, uint64_t value);

struct bus_range {
	uint64_t base, len;
	bus_read_fn *read;   /* NULL: reads all ones */
	bus_write_fn *write; /* NULL: writes dropped */
	void *opaque;
	const char *name;    /* for errors */
};

struct bus_space {
	const char *name;   /* "port I/O", "MMIO" */
	uint64_t limit;     /* addresses end here (0: 2^64) */
	pthread_rwlock_t lock;
	/* Sorted by base, disjoint: a bisection finds a range in O(log n).
	 * lib/memslots' range tree does that too, but it is private to the
	 * memslot map and built for 32k slots and overlapping host ranges; a
	 * bus holds tens of ranges that change only when a BAR moves, and an
	 * array is one cache-friendly search that a reader copies out of. */
	struct bus_range *range;
	size_t count, cap;
};

/* limit: the first address past the space (0x10000 for ports, 0 for all
 * of 2^64). */
int bus_init(struct bus_space *s, const char *name, uint64_t limit);
void bus_destroy(struct bus_space *s);

/* -EINVAL (empty, or past the limit), -EBUSY (overlaps a range), -ENOMEM. */
int bus_register(struct bus_space *s, const struct bus_range *r, struct tern_error *err);
/* Remove the range that starts at base; -ENOENT when none does. */
int bus_unregister(struct bus_space *s, uint64_t base);
/* The range holding addr, copied to *out; 0 or -ENOENT. */
int bus_find(struct bus_space *s, uint64_t addr, struct bus_range *out);
size_t bus_count(struct bus_space *s);

/* One access: 1 if a range took it, 0 if unclaimed (a read gives all ones
 * of `size` bytes). */
int bus_read(struct bus_space *s, uint64_t addr, unsigned size, uint64_t *value);
int bus_write(struct bus_space *s, uint64_t addr, unsigned size, uint64_t value);
/* The same on the bytes of KVM's run page (little-endian). */
void bus_access(struct bus_space *s, uint64_t addr, uint8_t *data, unsigned size, int is_write);

#endif
