/*
 * x-query-vm-state: what the state registry would carry, entry by entry,
 * with a digest of each saved object, so tests (and curious operators)
 * can see that a migration or update brought every piece across.
 */
#include "qmp/vm_state_qmp.h"

#include <errno.h>

#include "tern/crc32c.h"

static json_t *carriers(unsigned carry)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ VM_CARRY_MIGRATION, "migration" },
		{ VM_CARRY_FILE, "file" },
		{ VM_CARRY_CPR_EXEC, "cpr-exec" },
		{ VM_CARRY_CPR_TRANSFER, "cpr-transfer" },
	};
	json_t *list = json_array();
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (carry & names[i].bit)
			json_array_append_new(list, json_string(names[i].name));
	return list;
}

static int cmd_query_vm_state(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	struct vm *vm = opaque;
	/* A running vCPU's registers are a moving target (and KVM makes the
	 * reader wait for the vCPU): ask for a stopped guest. */
	if (vm_get_state(vm) == VM_STATE_RUNNING)
		return tern_errorf(err, -EBUSY, "x-query-vm-state needs the guest stopped (stop)");
	int rc = vm_state_quiesce(&vm->states, VM_CARRY_ALL, err);
	if (rc < 0)
		return rc;
	json_t *list = json_array();
	for (unsigned i = 0; i < vm->states.count; i++) {
		const struct vm_state_entry *e = &vm->states.entry[i];
		struct tern_buf b = { 0 };
		rc = vm_state_save_one(e->type, e->holder, &b, err);
		if (rc < 0) {
			tern_buf_free(&b);
			json_decref(list);
			return rc;
		}
		json_array_append_new(list, json_pack("{s:s,s:s,s:I,s:o,s:I,s:I}", "name", e->name,
						      "description", e->type->desc->name, "version",
						      (json_int_t)e->type->desc->version,
						      "carried-by", carriers(e->type->carry), "size",
						      (json_int_t)b.len, "crc32c",
						      (json_int_t)tern_crc32c(0, b.data, b.len)));
		tern_buf_free(&b);
	}
	*ret = list;
	return 0;
}

static const struct qmp_command state_commands[] = {
	{ "x-query-vm-state", cmd_query_vm_state, NULL },
	{ NULL, NULL, NULL },
};

int vm_state_qmp_register(struct qmp_server *server, struct vm *vm)
{
	return qmp_server_add_commands(server, state_commands, vm);
}
