/*
 * The machine's state registry: every piece of VM state that a live
 * migration, a live update or a saved file must carry is registered here
 * once, and all of them walk this one list.
 *
 * A *type* (struct vm_state_type, declared with VM_STATE_TYPE so that
 * tools and fuzzers find every one) says what the state looks like on the
 * wire (a vmstate description: named, versioned, typed fields), how to
 * take it from its holder and give it back, and which ways of carrying a
 * VM carry it.  An *entry* is one holder of that state on one VM: the UART,
 * vCPU 2 ("cpu/2"), the QMP server's clients.
 *
 * Saving walks the entries in registration order and sends each as one
 * section named after the entry.  Loading checks each section as it
 * arrives (a name this machine lacks, a second copy or a bad body is
 * refused) and keeps it; only when all are in does vm_state_apply hand
 * them to their holders, in registration order, then run every finish
 * hook: a half-loaded guest never runs.
 *
 * A mode that cannot carry an entry refuses to start, naming it (QEMU's
 * migration blockers), unless the entry's blocked hook says there is
 * nothing to lose right now.  Entries are registered on the main thread
 * while the VM is built; saving runs with the vCPUs stopped.
 */
#ifndef VMM_VM_STATE_H
#define VMM_VM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"
#include "tern/stream.h"
#include "tern/vmstate.h"

/* The ways a VM is carried elsewhere. */
enum vm_carrier {
	VM_CARRY_MIGRATION = 1u << 0,    /* live migration over a channel */
	VM_CARRY_FILE = 1u << 1,         /* migrate file:, and loading it back */
	VM_CARRY_CPR_EXEC = 1u << 2,     /* live update, same process */
	VM_CARRY_CPR_TRANSFER = 1u << 3, /* live update, to a new process */
};
#define VM_CARRY_LIVE_UPDATE (VM_CARRY_CPR_EXEC | VM_CARRY_CPR_TRANSFER)
#define VM_CARRY_ALL (VM_CARRY_MIGRATION | VM_CARRY_FILE | VM_CARRY_LIVE_UPDATE)

/* vm_state_type.flags */
#define VM_STATE_OPTIONAL 1u /* a destination accepts its absence (older sources) */
#define VM_STATE_EARLY 2u    /* sent before any RAM and loaded on arrival (the shape) */
#define VM_STATE_NUMBERED 4u /* one entry per instance, "name/N" (the vCPUs); else one */

struct vm_state_type {
	const char *name;                      /* the section's, or its prefix: "cpu" -> "cpu/N" */
	const struct tern_vmstate_desc *desc;  /* its wire form; obj is desc->size bytes */
	unsigned carry;                        /* the vm_carrier bits that carry it */
	unsigned flags;
	/* Optional, source, vCPUs stopped: finish what is in flight (a
	 * device's requests, rings waiting in eventfds), before any entry is
	 * saved, so that what is saved is all there is. */
	int (*quiesce)(void *holder, struct tern_error *err);
	/* Source: fill obj (zeroed) from the holder. */
	int (*save)(void *holder, void *obj, struct tern_error *err);
	/* Destination: give a checked obj to the holder (0 or -errno). */
	int (*load)(void *holder, const void *obj, struct tern_error *err);
	/* Optional: after every entry has loaded (the guest's clock, last). */
	int (*finish)(void *holder, const void *obj, struct tern_error *err);
	/* Optional: free what saving or loading allocated inside obj. */
	void (*release)(void *obj);
	/* Optional: for a carrier not in `carry`, NULL if nothing would be
	 * lost now, else why it cannot go; without it such carriers refuse. */
	const char *(*blocked)(void *holder, enum vm_carrier carrier);
	const char *why_not; /* the refusal when there is no blocked hook */
};

/* Declare a type where tools, tests and fuzzers find it (every type). */
#define VM_STATE_TYPE(ident)                                                              \
	const struct vm_state_type ident;                                                  \
	static const struct vm_state_type *const ident##_listed                            \
		__attribute__((used, section("tern_vm_state_types"), aligned(sizeof(void *)))) = \
			&ident;                                                            \
	const struct vm_state_type ident

/* Every type linked into this program, for walking with vm_state_types_next. */
const struct vm_state_type *vm_state_types_next(size_t *cursor);
/* The type of a section named `name` ("uart", "cpu/3"), or NULL. */
const struct vm_state_type *vm_state_type_find(const char *name);

#define VM_STATE_NAME_MAX 64

struct vm_state_entry {
	char name[VM_STATE_NAME_MAX];
	const struct vm_state_type *type;
	void *holder;
};

struct vm_state_registry {
	struct vm_state_entry *entry;
	unsigned count;
	size_t cap;
};

/* instance < 0: the entry is named `type->name`; else `type->name/instance`
 * (VM_STATE_NUMBERED types, and only they, take an instance). */
int vm_state_register(struct vm_state_registry *reg, const struct vm_state_type *type,
		      int instance, void *holder, struct tern_error *err);
void vm_state_registry_free(struct vm_state_registry *reg);
const struct vm_state_entry *vm_state_find(const struct vm_state_registry *reg, const char *name);

const char *vm_carrier_name(enum vm_carrier carrier);
/* 0 when `carrier` may carry every entry now; else the first blocker,
 * named, in err (-EOPNOTSUPP). */
int vm_state_check(const struct vm_state_registry *reg, enum vm_carrier carrier,
		   struct tern_error *err);

/* Hands one saved section to its destination (0 or -errno). */
typedef int (*vm_state_sink)(void *ctx, const char *name, const uint8_t *data, size_t len);
/* Quiesce every entry that one of `carriers` carries (vCPUs stopped). */
int vm_state_quiesce(const struct vm_state_registry *reg, unsigned carriers,
		     struct tern_error *err);
/* Which entries a save takes: the early ones (sent before RAM), the rest
 * (with the vCPUs stopped), or all (a live update's state). */
enum vm_state_part { VM_STATE_PART_EARLY, VM_STATE_PART_REST, VM_STATE_PART_ALL };
/* Source: every entry of `part` that `carrier` carries, after checking
 * that no entry blocks the carrier. */
int vm_state_save(const struct vm_state_registry *reg, enum vm_carrier carrier,
		  enum vm_state_part part, vm_state_sink sink, void *ctx, struct tern_error *err);
/* The same into a migration stream. */
int vm_state_save_stream(const struct vm_state_registry *reg, enum vm_carrier carrier,
			 enum vm_state_part part, struct tern_stream_writer *w,
			 struct tern_error *err);
/* One holder's state of type t, saved into out (inspection, tests). */
int vm_state_save_one(const struct vm_state_type *t, void *holder, struct tern_buf *out,
		      struct tern_error *err);

/* Load one section of type t straight into holder (tests, tools). */
int vm_state_load_one(const struct vm_state_type *t, void *holder, const uint8_t *data,
		      size_t len, struct tern_error *err);

/* Destination: what has arrived, one object per entry. */
struct vm_state_in {
	const struct vm_state_registry *reg;
	enum vm_carrier carrier;
	void **obj;             /* per entry: NULL until its section arrives */
	unsigned char *applied; /* per entry: handed to its holder (early ones at once) */
};

int vm_state_in_init(struct vm_state_in *in, const struct vm_state_registry *reg,
		     enum vm_carrier carrier);
void vm_state_in_free(struct vm_state_in *in);
/* Check and keep one section; a name this machine has no entry for, a
 * second copy, or a body that does not load is refused. */
int vm_state_load_section(struct vm_state_in *in, const char *name, const uint8_t *data,
			  size_t len, struct tern_error *err);
/* Every section is in: refuse if one the carrier carries is missing, then
 * give each to its holder and run the finish hooks. */
int vm_state_apply(struct vm_state_in *in, struct tern_error *err);

#endif
