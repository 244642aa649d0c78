/*
 * QMP commands for the guest memory map, in the spirit of QEMU's memory
 * hotplug: add a memfd-backed region at a guest address, move it, make it
 * read-only or writable, remove it; list every memslot.
 */
#include "qmp/memslots_qmp.h"

#include <errno.h>

#include "qmp/vm_qmp.h"

#define PAGE 4096ULL

/* Changes wait while a migration walks the memory map, and while a
 * destination waits for its RAM. */
static int may_change(struct vm_qmp *q, struct tern_error *err)
{
	if (q->mig != NULL && vm_migration_busy(q->mig))
		return tern_errorf(err, -EBUSY, "a migration is in progress: the memory map "
				   "cannot change until it ends");
	if (vm_get_state(q->vm) == VM_STATE_INMIGRATE)
		return tern_errorf(err, -EBUSY, "the VM is waiting for an incoming migration");
	return 0;
}

static int slot_arg(json_t *args, uint32_t *slot, struct tern_error *err)
{
	json_int_t v = json_integer_value(json_object_get(args, "slot"));
	if (v < 0 || v > UINT32_MAX)
		return tern_errorf(err, -EINVAL, "slot must be a memslot id");
	*slot = (uint32_t)v;
	return 0;
}

/* A change to an existing slot: allowed now, and which slot. */
static int slot_request(struct vm_qmp *q, json_t *args, uint32_t *slot, struct tern_error *err)
{
	int rc = may_change(q, err);
	return rc < 0 ? rc : slot_arg(args, slot, err);
}

static int addr_arg(json_t *args, const char *name, uint64_t *out, struct tern_error *err)
{
	json_int_t v = json_integer_value(json_object_get(args, name));
	if (v < 0)
		return tern_errorf(err, -EINVAL, "%s must not be negative", name);
	*out = (uint64_t)v;
	return 0;
}

static int cmd_memslot_add(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	struct vm_qmp *q = opaque;
	uint64_t addr = 0, size = 0;
	int rc = may_change(q, err);
	if (rc == 0)
		rc = addr_arg(args, "addr", &addr, err);
	if (rc == 0)
		rc = addr_arg(args, "size", &size, err);
	if (rc < 0)
		return rc;
	json_t *ro = json_object_get(args, "read-only");
	uint32_t slot = 0;
	rc = memmap_add_region(q->vm, addr, size, ro && json_is_true(ro), &slot, err);
	if (rc == 0)
		*ret = json_pack("{s:i}", "slot", (json_int_t)slot);
	return rc;
}

static int cmd_memslot_del(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	uint32_t slot = 0;
	int rc = slot_request(q, args, &slot, err);
	return rc < 0 ? rc : memmap_remove_region(q->vm, slot, err);
}

static int cmd_memslot_move(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	uint32_t slot = 0;
	uint64_t addr = 0;
	int rc = slot_request(q, args, &slot, err);
	if (rc == 0)
		rc = addr_arg(args, "addr", &addr, err);
	return rc < 0 ? rc : memmap_move_region(q->vm, slot, addr, err);
}

static int cmd_memslot_set_read_only(void *opaque, json_t *args, json_t **ret,
				     struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	uint32_t slot = 0;
	int rc = slot_request(q, args, &slot, err);
	if (rc < 0)
		return rc;
	return memmap_set_readonly(q->vm, slot, json_is_true(json_object_get(args, "read-only")),
				   err);
}

static int cmd_query_memslots(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_qmp *q = opaque;
	json_t *list = json_array();
	struct tern_memslots_view v;
	tern_memslots_read_begin(q->vm->memmap.map, &v);
	struct tern_memslots_iter it;
	for (const struct tern_memslot *s = tern_memslots_first(&v, &it); s;
	     s = tern_memslots_next(&it))
		json_array_append_new(
			list, json_pack("{s:i, s:I, s:I, s:b, s:b, s:s}", "slot", (json_int_t)s->id,
					"addr", (json_int_t)(s->gfn * PAGE), "size",
					(json_int_t)(s->pages * PAGE), "read-only",
					(s->flags & TERN_MEMSLOT_READONLY) != 0, "dirty-log",
					(s->flags & TERN_MEMSLOT_DIRTY_LOG) != 0, "kind",
					s->id < q->vm->memmap.ram_slots ? "ram" : "added"));
	tern_memslots_read_end(&v);
	*ret = list;
	return 0;
}

static const struct qmp_arg add_args[] = {
	{ "addr", QMP_INT, 0 },
	{ "size", QMP_INT, 0 },
	{ "read-only", QMP_BOOL, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg slot_args[] = {
	{ "slot", QMP_INT, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg move_args[] = {
	{ "slot", QMP_INT, 0 },
	{ "addr", QMP_INT, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg read_only_args[] = {
	{ "slot", QMP_INT, 0 },
	{ "read-only", QMP_BOOL, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command memslot_commands[] = {
	{ "memslot-add", cmd_memslot_add, add_args },
	{ "memslot-del", cmd_memslot_del, slot_args },
	{ "memslot-move", cmd_memslot_move, move_args },
	{ "memslot-set-read-only", cmd_memslot_set_read_only, read_only_args },
	{ "query-memslots", cmd_query_memslots, NULL },
	{ NULL, NULL, NULL },
};

int memslots_qmp_register(struct qmp_server *s, struct vm_qmp *q)
{
	return qmp_server_add_commands(s, memslot_commands, q);
}
