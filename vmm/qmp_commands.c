/* QMP commands on the VM: status, run control, and a debug command. */
#include "qmp_commands.h"

#include <errno.h>
#include <stdint.h>

#include "version.h"

#define CORRUPT_MAX 4096

static int cmd_query_version(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)opaque;
	(void)args;
	(void)err;
	*ret = json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", TERN_VERSION_MAJOR, "minor",
			 TERN_VERSION_MINOR, "micro", TERN_VERSION_MICRO, "package",
			 "tern " TERN_VERSION);
	return 0;
}

static int cmd_query_status(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_qmp *q = opaque;
	enum vm_state st = q->vm->state;
	*ret = json_pack("{s:s,s:b,s:b}", "status", vm_state_name(st), "singlestep", 0, "running",
			 st == VM_STATE_RUNNING);
	return 0;
}

static int cmd_query_kvm(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)opaque;
	(void)args;
	(void)err;
	*ret = json_pack("{s:b,s:b}", "enabled", 1, "present", 1);
	return 0;
}

static int cmd_stop(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)ret;
	(void)err;
	struct vm_qmp *q = opaque;
	vm_pause(q->vm);
	return 0;
}

static int cmd_cont(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)ret;
	struct vm_qmp *q = opaque;
	if (q->vm->state == VM_STATE_SHUTDOWN)
		return tern_errorf(err, -EINVAL, "the VM has shut down and cannot continue");
	vm_resume(q->vm);
	return 0;
}

static int cmd_quit(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)ret;
	(void)err;
	struct vm_qmp *q = opaque;
	vm_request_exit(q->vm, VM_EXIT_QUIT, 0, "quit requested over QMP");
	return 0;
}

static int cmd_query_commands(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_qmp *q = opaque;
	*ret = qmp_server_command_list(q->server);
	return 0;
}

/* Debug only: flip bytes of guest RAM, so tests can show that the guest's
 * verification catches a damaged page. */
static int cmd_x_corrupt(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	json_int_t gpa = json_integer_value(json_object_get(args, "gpa"));
	json_t *size_arg = json_object_get(args, "size");
	json_int_t size = size_arg ? json_integer_value(size_arg) : 1;
	if (gpa < 0 || size < 1 || size > CORRUPT_MAX)
		return tern_errorf(err, -EINVAL, "gpa must be >= 0 and size 1..%d", CORRUPT_MAX);
	uint8_t buf[CORRUPT_MAX];
	if (vm_read_guest(q->vm, (uint64_t)gpa, buf, (size_t)size) < 0)
		return tern_errorf(err, -EFAULT, "0x%llx..+%lld is not guest RAM",
				   (unsigned long long)gpa, (long long)size);
	for (json_int_t i = 0; i < size; i++)
		buf[i] ^= 0xff;
	return vm_write_guest(q->vm, (uint64_t)gpa, buf, (size_t)size);
}

static const struct qmp_arg corrupt_args[] = {
	{ "gpa", QMP_INT, 0 },
	{ "size", QMP_INT, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command vm_commands[] = {
	{ "query-version", cmd_query_version, NULL },
	{ "query-status", cmd_query_status, NULL },
	{ "query-kvm", cmd_query_kvm, NULL },
	{ "query-commands", cmd_query_commands, NULL },
	{ "stop", cmd_stop, NULL },
	{ "cont", cmd_cont, NULL },
	{ "quit", cmd_quit, NULL },
	{ "x-corrupt-guest-memory", cmd_x_corrupt, corrupt_args },
	{ NULL, NULL, NULL },
};

static void on_vm_event(void *opaque, enum vm_event event)
{
	struct vm_qmp *q = opaque;
	qmp_server_event(q->server, event == VM_EVENT_STOP ? "STOP" : "RESUME", NULL);
}

int vm_qmp_register(struct vm_qmp *q, struct vm *vm, struct qmp_server *server)
{
	q->vm = vm;
	q->server = server;
	vm->on_event = on_vm_event;
	vm->event_opaque = q;
	return qmp_server_add_commands(server, vm_commands, q);
}

void vm_qmp_shutdown_event(struct vm_qmp *q)
{
	const char *reason = "none";
	int guest = 0;
	switch (q->vm->exit_cause) {
	case VM_EXIT_GUEST: reason = "guest-shutdown"; guest = 1; break;
	case VM_EXIT_QUIT: reason = "host-qmp-quit"; break;
	case VM_EXIT_SIGNAL: reason = "host-signal"; break;
	case VM_EXIT_CRASH: reason = "guest-panic"; guest = 1; break;
	case VM_EXIT_NONE: break;
	}
	qmp_server_event(q->server, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", guest, "reason",
							  reason));
}
