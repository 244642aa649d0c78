/* Command-line parsing for tern's commands (no side effects; testable). */
#ifndef VMM_CLI_H
#define VMM_CLI_H

#include <stdint.h>

#include "devices/devices.h"
#include "kvm/dirty_tracker.h"
#include "tern/error.h"

#define CLI_APPEND_MAX 4096

struct run_options {
	uint64_t memory;
	unsigned vcpus;
	unsigned memslots;
	const char *kernel; /* NULL: the built-in guest */
	char append[CLI_APPEND_MAX];
	const char *serial;
	const char *qmp;
	int start_paused;
	int mem_prealloc;
	enum dirty_mode dirty_mode;
	uint32_t dirty_ring_entries;
	const char *incoming; /* a migration URI to load the guest from, or "defer" */
	int lazy_incoming;    /* do not populate RAM ahead of an incoming migration */
	const char *device[VM_MAX_DEVICES]; /* --device NAME,OPTIONS */
	unsigned ndevices;
	/* --drive OPTIONS, as the device spec it stands for (virtio-blk-pci,OPTIONS) */
	char drive_spec[VM_MAX_DEVICES][DEVICE_SPEC_MAX];
	int help;
	/* A cpr-exec's new tern whose command line could not be run: why (the
	 * update then falls back to the previous binary). */
	const char *cpr_refusal;
};

/* Parse `tern run` options (argv[0] is "run").  Returns 0 or -EINVAL with
 * a message that names the option and what to do. */
int cli_parse_run(int argc, char **argv, struct run_options *o, struct tern_error *err);
extern const char cli_run_usage[];

/* The built-in guest's workloads, for --workload. */
int cli_known_workload(const char *name);

#endif
