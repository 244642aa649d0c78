/*
 * The state a live update (CPR) hands to the new tern: what the machine
 * is (so the new process needs no options), the fd store, and the vCPU and
 * device state, in one checked blob:
 *
 *     "TERNCPR\0", format version u32, crc32c u32 of the body, body length u64,
 *     body: u32 length, the "cpr" vmstate object (machine, times, fd store as a hash
 *           table), then sections { name-length u8 (0 ends), name,
 *           length u32, bytes } (the migration stream's "kvm", "cpu/N",
 *           "uart", and "ioeventfd-bank", "serial-out")
 *
 * Guest RAM is not in it: the memfd is in the fd store.  A loader checks
 * the magic, version range, checksum and every length before using
 * anything.
 */
#ifndef VMM_CPR_BLOB_H
#define VMM_CPR_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "devices/devices.h"
#include "tern/error.h"
#include "tern/fdstore.h"
#include "tern/vmstate.h"

/* 2: every section is a vmstate object of the state registry (format 1
 * gave memory-regions, ioeventfd-bank, migration-settings and qmp-clients
 * formats of their own). */
#ifndef CPR_FORMAT_VERSION
#define CPR_FORMAT_VERSION 2
#endif
#ifndef CPR_FORMAT_MIN
#define CPR_FORMAT_MIN 2
#endif

#define CPR_SPEC_MAX 256
#define CPR_MAX_SECTIONS 4096
#define CPR_MAX_BYTES (1ULL << 32)

/* The machine and the update, as saved. */
struct cpr_header {
	char mode[16];        /* "cpr-exec" or "cpr-transfer" */
	uint64_t memory;
	uint32_t vcpus, memslots, dirty_mode, dirty_ring_entries;
	uint32_t ndevices;    /* --device specs, built again in this order */
	char device[VM_MAX_DEVICES][DEVICE_SPEC_MAX];
	char serial[CPR_SPEC_MAX];
	char qmp[CPR_SPEC_MAX];
	uint32_t guest_paused; /* the user had paused it: stay paused */
	uint64_t stop_ns;     /* CLOCK_MONOTONIC when the vCPUs stopped */
	uint64_t saved_ns;    /* ... and when this state was complete */
	struct tern_fdstore *fds;
};

/* The header's vmstate description (the "cpr" object; tools and tests
 * describe it beside the registered state). */
extern const struct tern_vmstate_desc cpr_header_desc;

struct cpr_section {
	char name[64];
	const uint8_t *data; /* into the blob */
	uint32_t len;
};

struct cpr_blob_in {
	struct cpr_header hdr;
	struct cpr_section *section;
	unsigned sections;
};

/* Saving: start with the header, add sections, then finish (which fills
 * in the checksum).  The header's fd store is saved as it is. */
int cpr_blob_begin(struct tern_buf *out, const struct cpr_header *hdr);
int cpr_blob_section(struct tern_buf *out, const char *name, const uint8_t *data, size_t len);
int cpr_blob_finish(struct tern_buf *out);

/* Parse an untrusted blob; in->hdr.fds is a new store the caller frees;
 * sections point into `blob`.  0 or -errno with a message. */
int cpr_blob_parse(const uint8_t *blob, size_t len, struct cpr_blob_in *in,
		   struct tern_error *err);
void cpr_blob_in_free(struct cpr_blob_in *in);

#endif
