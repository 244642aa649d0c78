/*
 * "run-state": whether the guest was running when the source stopped it
 * (QEMU's globalstate), so that a guest paused on the source stays paused
 * on the destination.  A destination started with --paused (-S, as
 * libvirt starts them) stays paused too, and runs on `cont`.  Sources
 * older than this section sent a running guest; a live update carries the
 * same in its header.
 */
#include "migration/vm_migration.h"

#include <stdbool.h>
#include <stddef.h>

struct run_state {
	bool running;
};

static const struct tern_vmstate_field run_state_fields[] = {
	TERN_VMS_FIELD_BOOL(struct run_state, running, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc run_state_desc = {
	.name = "run-state",
	.size = sizeof(struct run_state),
	.version = 1,
	.min_version = 1,
	.fields = run_state_fields,
};

static int run_state_save(void *holder, void *obj, struct tern_error *err)
{
	(void)err;
	const struct vm_migration *m = holder;
	struct run_state *st = obj;
	st->running = m->stopped_guest; /* the switchover stopped a running guest */
	return 0;
}

static int run_state_load(void *holder, const void *obj, struct tern_error *err)
{
	(void)err;
	struct vm_migration *m = holder;
	const struct run_state *st = obj;
	m->source_paused = !st->running;
	return 0;
}

/* The header of a live update's state says it already. */
static const char *run_state_in_header(void *holder, enum vm_carrier carrier)
{
	(void)holder;
	(void)carrier;
	return NULL;
}

VM_STATE_TYPE(vm_run_state_type) = {
	.name = "run-state",
	.desc = &run_state_desc,
	.carry = VM_CARRY_MIGRATION | VM_CARRY_FILE,
	.flags = VM_STATE_OPTIONAL,
	.save = run_state_save,
	.load = run_state_load,
	.blocked = run_state_in_header,
};
