/*
 * The "machine" state: the VM's shape, which a destination must match
 * before it takes any RAM (guest RAM's ranges are in HELLO).  Sent first,
 * right after HELLO, so that a destination of another shape refuses at
 * once rather than after all the RAM, when a vCPU's state is missing.
 * Optional: sources older than it do not send it.
 */
#include "machine/vm_shape.h"

#include <errno.h>
#include <stddef.h>

#include "machine/vm.h"

struct machine_shape {
	uint32_t vcpus;
};

static const struct tern_vmstate_field machine_shape_fields[] = {
	TERN_VMS_FIELD_U32(struct machine_shape, vcpus, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc machine_shape_desc = {
	.name = "machine",
	.size = sizeof(struct machine_shape),
	.version = 1,
	.min_version = 1,
	.fields = machine_shape_fields,
};

static int shape_save(void *holder, void *obj, struct tern_error *err)
{
	(void)err;
	const struct vm *vm = holder;
	struct machine_shape *shape = obj;
	shape->vcpus = vm->vcpus;
	return 0;
}

static int shape_check(void *holder, const void *obj, struct tern_error *err)
{
	const struct vm *vm = holder;
	const struct machine_shape *shape = obj;
	if (shape->vcpus != vm->vcpus)
		return tern_errorf(err, -EINVAL, "the source has %u vCPU%s, this guest %u: start "
				   "the destination with the source's --vcpus", shape->vcpus,
				   shape->vcpus == 1 ? "" : "s", vm->vcpus);
	return 0;
}

VM_STATE_TYPE(machine_shape_type) = {
	.name = "machine",
	.desc = &machine_shape_desc,
	.carry = VM_CARRY_ALL,
	.flags = VM_STATE_EARLY | VM_STATE_OPTIONAL,
	.save = shape_save,
	.load = shape_check,
};
