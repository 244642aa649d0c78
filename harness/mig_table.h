/*
 * bench/migration's results and their tables: the figures of every run,
 * by scenario, flow and VMM, printed as medians side by side with ratios
 * tern/qemu, or as CSV.
 */
#ifndef HARNESS_MIG_TABLE_H
#define HARNESS_MIG_TABLE_H

#include "mig_vmm.h"

#define MAX_REPS 15
#define MAX_SCENARIOS 8

struct scenario {
	const char *name, *what, *note, *append; /* note: a second line, or NULL */
	unsigned memory_mib, data_mib; /* the VM, and what its guest writes */
	int prealloc;                  /* sources allocate all guest RAM at start */
	int xbzrle;
	long long bandwidth;           /* max-bandwidth, bytes per second */
};

enum { FLOW_USERS, FLOW_AHEAD, FLOWS };
extern const char *const flow_names[FLOWS];

/* What one migration measured; NAN where the VMM did not say. */
enum metric {
	M_TOTAL, M_RUNNING, M_FROM_START, M_DOWNTIME, M_SETUP, M_GAP, M_BYTES, M_ZERO, M_NORMAL, M_XBZRLE,
	M_MISS, M_OVERFLOW, M_DELTA, M_SYNCS, M_CONVERGED, METRICS
};

struct results {
	const struct scenario *scenarios;
	size_t count;
	int reps, ahead_ms;
	const char *qemu_cpu;  /* NULL: QEMU did not run */
	char qemu_version[32]; /* from its QMP greeting */
	int wanted[MAX_SCENARIOS];
	char skipped[MAX_SCENARIOS][160]; /* why a scenario was not run, if it was not */
	int got[MAX_SCENARIOS][FLOWS][MIG_VMMS];
	double samples[MAX_SCENARIOS][FLOWS][MIG_VMMS][METRICS][MAX_REPS];
};

void table_print(const struct results *r);
void table_csv(const struct results *r);

#endif
