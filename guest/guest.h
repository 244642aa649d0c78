/* What the ring-0 setup hands to the ring-3 program. */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include <stdint.h>

#include "layout.h"

#define CMDLINE_MAX 1024
#define WINDOW_REGIONS_MAX 16

/* A run of guest-physical RAM mapped into the window at window_offset. */
struct window_region {
	uint64_t window_offset;
	uint64_t phys;
	uint64_t bytes;
};

struct boot_info {
	char cmdline[CMDLINE_MAX];
	uint64_t ram_bytes;    /* usable RAM reported by the loader */
	uint64_t window_bytes; /* RAM mapped at WINDOW_VA */
	unsigned regions;
	struct window_region region[WINDOW_REGIONS_MAX];
};

/* Ring 3 entry point. */
_Noreturn void user_main(struct boot_info *info);

/* Guest-physical address of a window offset, for reports. */
uint64_t window_phys(const struct boot_info *info, uint64_t offset);

#endif
