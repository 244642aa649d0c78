/*
 * The guest memory map: memslots, each a run of guest frames backed by
 * host memory, found by id in O(1), by guest frame in O(log n) (with a
 * last-hit fast path) and by host address in O(log n + k).  Up to the
 * 32,764 slots KVM offers (seed 003: KVM replaced its sorted array and
 * id_to_index, which made every update O(n), with an id hash, a gfn tree
 * and an hva interval tree kept in two sets swapped on update).
 *
 * Concurrency: one writer at a time (writers serialize on an internal
 * lock); any number of readers (vCPU threads, the migration thread) that
 * never block and never see a half-applied update.  The map keeps two
 * copies (left-right): a writer changes the copy no reader uses, publishes
 * it, waits until readers have left the other copy, then replays the same
 * changes there.  A reader brackets its lookups with read_begin/read_end;
 * slot pointers it gets are valid until its read_end.
 */
#ifndef TERN_MEMSLOTS_H
#define TERN_MEMSLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

#define TERN_MEMSLOT_PAGE_SIZE 4096u
/* Guest frames end at 2^40: addresses below 2^52, x86-64's widest. */
#define TERN_MEMSLOT_GFN_LIMIT (1ULL << 40)

#define TERN_MEMSLOT_READONLY (1u << 0)  /* guest writes exit to the VMM */
#define TERN_MEMSLOT_DIRTY_LOG (1u << 1) /* KVM logs written pages */
#define TERN_MEMSLOT_FLAGS (TERN_MEMSLOT_READONLY | TERN_MEMSLOT_DIRTY_LOG)

struct tern_memslot {
	uint32_t id;
	uint32_t flags;
	uint64_t gfn;   /* first guest frame */
	uint64_t pages; /* frames of TERN_MEMSLOT_PAGE_SIZE */
	uint8_t *host;  /* host address of the first frame (page aligned) */
	int fd;         /* the memfd backing it, or -1 */
	uint64_t fd_offset;
};

struct tern_memslots;
struct tern_memslot_set;

/* A map for slot ids 0 .. max_slots - 1 (1 .. 65,536); NULL without memory. */
struct tern_memslots *tern_memslots_new(uint32_t max_slots);
void tern_memslots_free(struct tern_memslots *m);
uint32_t tern_memslots_max(const struct tern_memslots *m);

/*
 * Updates.  Each is atomic for readers; a failed one changes nothing.
 * Errors: -EINVAL (bad id, size, alignment, flags), -EEXIST (id in use),
 * -ENOENT (no such slot), -EBUSY (guest ranges would overlap), -ENOMEM.
 */
int tern_memslots_add(struct tern_memslots *m, const struct tern_memslot *slot,
		      struct tern_error *err);
int tern_memslots_remove(struct tern_memslots *m, uint32_t id, struct tern_error *err);
int tern_memslots_move(struct tern_memslots *m, uint32_t id, uint64_t gfn,
		       struct tern_error *err);
int tern_memslots_set_flags(struct tern_memslots *m, uint32_t id, uint32_t flags,
			    struct tern_error *err);

/* Group updates: readers see all of them at commit, or none before.
 * Nests; the outermost commit publishes.  Holds the writer lock between. */
void tern_memslots_begin(struct tern_memslots *m);
void tern_memslots_commit(struct tern_memslots *m);

/* Readers. */
struct tern_memslots_view {
	const struct tern_memslot_set *set;
	struct tern_memslots *map;
	unsigned indicator;
};

void tern_memslots_read_begin(struct tern_memslots *m, struct tern_memslots_view *v);
void tern_memslots_read_end(struct tern_memslots_view *v);

uint32_t tern_memslots_count(const struct tern_memslots_view *v);
const struct tern_memslot *tern_memslots_find_id(const struct tern_memslots_view *v, uint32_t id);
/* The slot holding guest frame gfn, or NULL. */
const struct tern_memslot *tern_memslots_find_gfn(const struct tern_memslots_view *v, uint64_t gfn);
/* Slots whose host range holds addr (aliases overlap): the first `max`, in
 * host-address order, go to out[]; returns how many there are. */
size_t tern_memslots_find_hva(const struct tern_memslots_view *v, const void *addr,
			      const struct tern_memslot **out, size_t max);

/* Slots in guest-frame order. */
struct tern_memslots_iter {
	const void *leaf;
	unsigned index;
};
const struct tern_memslot *tern_memslots_first(const struct tern_memslots_view *v,
					       struct tern_memslots_iter *it);
const struct tern_memslot *tern_memslots_next(struct tern_memslots_iter *it);

/* Check both copies' structure and that they agree; 0 or -EUCLEAN.  Takes
 * the writer lock.  For tests. */
int tern_memslots_check(struct tern_memslots *m);

#endif
