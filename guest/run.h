/* State of one workload run in ring 3. */
#ifndef GUEST_RUN_H
#define GUEST_RUN_H

#include <stdint.h>

#include "guest.h"
#include "params.h"
#include "pattern.h"

struct run {
	struct params p;
	struct pattern pattern;
	const struct boot_info *boot;
	uint32_t *version;  /* one entry per working-set page */
	uint8_t *ws;        /* the working set, page-aligned */
	uint64_t ws_offset; /* window offset of the working set */
	uint64_t pages;
	uint64_t hot_pages;
	uint64_t writes;    /* page writes done */
	uint64_t rng;
	uint64_t cursor;
	uint64_t start_tsc, end_tsc;
	int stop_requested;
	unsigned line_len;
	char line[128];
};

void fill_working_set(struct run *r);
void run_workload(struct run *r);
/* Write working-set page `page` once more (its next version). */
void write_page(struct run *r, uint64_t page);
/* Check every page against its version; prints the result and returns the
 * number of bad pages. */
uint64_t verify_memory(struct run *r, const char *why);
/* Read and execute serial commands that are waiting. */
void poll_commands(struct run *r);
void print_status(const struct run *r);

#endif
