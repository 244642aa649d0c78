/*
 * Dirty-page tracking of guest RAM through KVM, into one libtern dirty set
 * per memslot.  Two mechanisms, chosen when the VM is created:
 *
 *   log   KVM_GET_DIRTY_LOG per memslot, with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
 *         (initially all set; pages are write-protected again with
 *         KVM_CLEAR_DIRTY_LOG, in chunks, only after they were harvested)
 *   ring  a ring of dirty pages per vCPU (KVM_CAP_DIRTY_LOG_RING_ACQ_REL
 *         where offered), harvested by whoever syncs and by the vCPU
 *         itself when its ring fills up, then KVM_RESET_DIRTY_RINGS
 *
 * Writes tern itself makes to guest memory are marked as well.
 */
#ifndef VMM_DIRTY_TRACKER_H
#define VMM_DIRTY_TRACKER_H

#include <pthread.h>
#include <stdint.h>

#include "tern/dirty.h"
#include "tern/error.h"

struct vm;
struct vcpu;

enum dirty_mode { DIRTY_MODE_LOG, DIRTY_MODE_RING };

#define DIRTY_RING_DEFAULT_ENTRIES 4096
#define DIRTY_RING_MIN_ENTRIES 256 /* 4 KiB of 16-byte entries */

struct dirty_tracker {
	struct vm *vm;
	enum dirty_mode mode;
	int manual_protect;      /* log: KVM leaves clearing to us */
	uint32_t ring_entries;   /* ring: entries per vCPU */
	pthread_mutex_t lock;    /* start, stop, sync */
	int active;
	unsigned slots;
	struct tern_dirty **set; /* one per memslot */
	uint64_t *bitmap;        /* log: room for the largest slot */
	uint64_t syncs;
	uint64_t harvested;      /* ring entries, since start */
};

/* Before any vCPU exists: choose and enable the mechanism. */
int dirty_tracker_init(struct dirty_tracker *t, struct vm *vm, enum dirty_mode mode,
		       uint32_t ring_entries, struct tern_error *err);
/* After the memslots exist: one set per slot, all or (on -ENOMEM) none.
 * Until then nothing can be tracked (dirty_tracker_start refuses), and
 * every loop over t->slots sees none; a live update makes them after the
 * guest resumes, out of its stop. */
int dirty_tracker_attach_slots(struct dirty_tracker *t, struct tern_error *err);
void dirty_tracker_destroy(struct dirty_tracker *t);

/* Begin tracking every memslot; the sets start empty and every page is
 * write-protected, so only writes from now on show up. */
int dirty_tracker_start(struct dirty_tracker *t, struct tern_error *err);
/* Bring what KVM knows into the sets. */
int dirty_tracker_sync(struct dirty_tracker *t, struct tern_error *err);
void dirty_tracker_stop(struct dirty_tracker *t);
/* tern wrote [gpa, gpa + len) of guest RAM. */
void dirty_tracker_mark(struct dirty_tracker *t, uint64_t gpa, uint64_t len);
uint64_t dirty_tracker_count(struct dirty_tracker *t);

/* A vCPU's ring: map it at creation, harvest it (any thread). */
int dirty_ring_map(struct dirty_tracker *t, struct vcpu *v, struct tern_error *err);
uint64_t dirty_ring_harvest(struct dirty_tracker *t, struct vcpu *v);
/* Tell KVM the harvested entries may be reused. */
void dirty_ring_reset(struct dirty_tracker *t);

const char *dirty_mode_name(enum dirty_mode mode);

#endif
