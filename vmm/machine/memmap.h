/*
 * The VM's guest memory map: tern's memslot map (lib/memslots/) kept in
 * step with KVM's memslots.  Guest RAM's slots are registered at creation;
 * memory regions added at run time (QMP memslot-add) get a memfd each and
 * can be moved, made read-only and removed again.  Main thread for
 * updates; any thread may read guest memory through the map.
 */
#ifndef VMM_MEMMAP_H
#define VMM_MEMMAP_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"
#include "tern/fdstore.h"
#include "machine/vm_state.h"
#include "tern/memslots.h"
#include "tern/vmstate.h"

struct vm;

struct hot_region {
	uint32_t slot;
	int memfd;
	uint8_t *host;
	uint64_t size;
};

struct vm_memmap {
	struct tern_memslots *map;
	unsigned ram_slots; /* ids below this are guest RAM, fixed for the VM's life */
	struct hot_region *hot;
	unsigned nhot, hot_cap;
	struct tern_fdstore *store; /* keeps the regions' memfds (may be NULL) */
};

/* Build the map from vm->ram and register every slot with KVM; the
 * regions added later keep their memfds in store. */
int memmap_init(struct vm *vm, struct tern_fdstore *store, struct tern_error *err);
void memmap_destroy(struct vm *vm);

/* Runtime regions: page-aligned, memfd-backed, zero-filled.  Errors leave
 * the map, KVM and the guest as they were. */
int memmap_add_region(struct vm *vm, uint64_t gpa, uint64_t size, int readonly, uint32_t *slot,
		      struct tern_error *err);
int memmap_remove_region(struct vm *vm, uint32_t slot, struct tern_error *err);
int memmap_move_region(struct vm *vm, uint32_t slot, uint64_t gpa, struct tern_error *err);
int memmap_set_readonly(struct vm *vm, uint32_t slot, int readonly, struct tern_error *err);

/*
 * A live update carries the runtime regions: their memfds in the fd store,
 * and this section with each one's slot, flags, address and size.  The new
 * tern maps each kept memfd and registers it where it was, before the
 * guest runs.  Load checks the whole section, and that it names exactly
 * the regions the store holds, before it adds any; should KVM refuse one,
 * those added go again, but their memfds stay kept (a fallback needs them).
 */
#define MEMMAP_REGIONS_SECTION "memory-regions"
#define MEMMAP_REGIONS_MAX 65536
extern const struct vm_state_type memmap_regions_type;
/* Register that section in the VM's state registry. */
int memmap_register_state(struct vm *vm, struct tern_error *err);

/* Copy between guest memory at gpa (which may span slots) and buf; -EFAULT
 * when some byte is in no slot. */
int memmap_access(struct vm *vm, uint64_t gpa, void *buf, size_t len, int write);

#endif
