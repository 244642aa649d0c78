/* The guest's command line: key=value words, parsed in ring 3. */
#ifndef GUEST_PARAMS_H
#define GUEST_PARAMS_H

#include <stdint.h>

enum workload {
	WORKLOAD_IDLE,
	WORKLOAD_RANDOM,
	WORKLOAD_SEQUENTIAL,
	WORKLOAD_HOTCOLD,
	WORKLOAD_SPARSE,
};

struct params {
	enum workload workload;
	uint64_t ws_bytes;    /* working set; 0 = all memory the guest has */
	uint32_t bytes;       /* bytes written per page write (8..4096) */
	uint64_t rate;        /* page writes per second, 0 = unlimited */
	uint64_t writes;      /* run length in page writes, 0 = not set */
	uint64_t seconds;     /* run length in seconds, 0 = not set */
	uint64_t seed;
	uint32_t hot_percent;   /* hotcold: share of pages that are hot */
	uint32_t hot_share;     /* hotcold: share of writes to the hot pages */
	uint32_t report_seconds; /* progress line interval, 0 = none */
	int verify_at_end;
	int fill;               /* write every working-set page once before the run */
};

/* Fills *p; on error prints what was wrong and returns -1. */
int params_parse(const char *cmdline, struct params *p);
const char *workload_name(enum workload w);

#endif
