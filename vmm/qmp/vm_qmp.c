/* QMP commands on the VM: status, run control, and a debug command. */
#include "qmp/vm_qmp.h"
#include "qmp/memslots_qmp.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
	enum vm_state st = vm_get_state(q->vm);
	*ret = json_pack("{s:s,s:b,s:b}", "status", vm_run_state_name(st), "singlestep", 0, "running",
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
	switch (vm_get_state(q->vm)) {
	case VM_STATE_SHUTDOWN:
		return tern_errorf(err, -EINVAL, "the VM has shut down and cannot continue");
	case VM_STATE_INMIGRATE:
		return 0; /* it runs as soon as the migration is in, as with QEMU */
	case VM_STATE_FINISH_MIGRATE:
		return tern_errorf(err, -EBUSY, "a migration is switching over; if it fails the "
				   "guest runs on here by itself");
	default:
		vm_resume(q->vm);
		return 0;
	}
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

static int cmd_calc_dirty_rate(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	if (q->mig != NULL && vm_migration_busy(q->mig))
		return tern_errorf(err, -EBUSY, "a migration is using dirty-page tracking");
	json_int_t seconds = json_integer_value(json_object_get(args, "calc-time"));
	if (seconds < 1 || seconds > 60)
		return tern_errorf(err, -EINVAL, "calc-time must be 1 .. 60 seconds");
	const char *mode = json_string_value(json_object_get(args, "mode"));
	const char *ours = dirty_mode_name(q->vm->dirty.mode);
	if (mode != NULL && strcmp(mode, "page-sampling") == 0)
		return tern_errorf(err, -ENOTSUP, "tern measures the dirty rate with KVM dirty "
				   "tracking, not by sampling: use mode %s", ours);
	if (mode != NULL && strcmp(mode, ours) != 0)
		return tern_errorf(err, -EINVAL, "this VM tracks dirty pages with %s (tern run "
				   "--dirty-tracking %s); use mode %s", ours,
				   q->vm->dirty.mode == DIRTY_MODE_RING ? "ring" : "log", ours);
	return dirty_rate_start(&q->rate, (unsigned)seconds, err);
}

static int cmd_query_dirty_rate(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)args;
	(void)err;
	struct vm_qmp *q = opaque;
	*ret = dirty_rate_info(&q->rate);
	return 0;
}

/* Debug: start or stop dirty tracking by hand (tests use it). */
static int cmd_x_dirty_tracking(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)ret;
	struct vm_qmp *q = opaque;
	if (q->rate.status == DIRTY_RATE_MEASURING)
		return tern_errorf(err, -EBUSY, "a dirty-rate measurement is running");
	if (q->mig != NULL && vm_migration_busy(q->mig))
		return tern_errorf(err, -EBUSY, "a migration is using dirty-page tracking");
	if (json_is_true(json_object_get(args, "enable")))
		return dirty_tracker_start(&q->vm->dirty, err);
	dirty_tracker_stop(&q->vm->dirty);
	return 0;
}

#define DIRTY_QUERY_MAX (1ULL << 30)

/* Debug: the dirty pages of [gpa, gpa + size), as [first-gpa, pages] runs,
 * after bringing in what KVM knows. */
static int cmd_x_query_dirty_pages(void *opaque, json_t *args, json_t **ret,
				   struct tern_error *err)
{
	struct vm_qmp *q = opaque;
	struct dirty_tracker *t = &q->vm->dirty;
	json_int_t gpa = json_integer_value(json_object_get(args, "gpa"));
	json_int_t size = json_integer_value(json_object_get(args, "size"));
	if (gpa < 0 || size < 1 || (uint64_t)size > DIRTY_QUERY_MAX)
		return tern_errorf(err, -EINVAL, "gpa must be >= 0 and size 1 .. 1 GiB");
	if (!t->active)
		return tern_errorf(err, -EINVAL, "dirty tracking is off");
	int rc = dirty_tracker_sync(t, err);
	if (rc < 0)
		return rc;
	uint64_t first = (uint64_t)gpa / 4096, end = ((uint64_t)gpa + (uint64_t)size + 4095) / 4096;
	json_t *runs = json_array();
	uint64_t run_start = 0, run_len = 0, pages = 0;
	uint64_t buf[4096];
	for (unsigned s = 0; s < t->slots; s++) {
		const struct ram_slot *slot = &q->vm->ram.slot[s];
		uint64_t base = slot->gpa / 4096, n = slot->size / 4096;
		if (base >= end || base + n <= first)
			continue;
		struct tern_dirty_cursor c = { first > base ? first - base : 0 };
		while (c.page < n) {
			size_t got = tern_dirty_compact(t->set[s], &c, buf, 4096, 0);
			for (size_t i = 0; i < got; i++) {
				uint64_t page = base + buf[i];
				if (page < first || page >= end)
					continue;
				pages++;
				if (run_len && page == run_start + run_len) {
					run_len++;
					continue;
				}
				if (run_len)
					json_array_append_new(runs, json_pack("[I,I]", (json_int_t)(run_start * 4096),
									      (json_int_t)run_len));
				run_start = page;
				run_len = 1;
			}
			if (got == 0 || base + buf[got - 1] >= end)
				break;
		}
	}
	if (run_len)
		json_array_append_new(runs, json_pack("[I,I]", (json_int_t)(run_start * 4096),
						      (json_int_t)run_len));
	*ret = json_pack("{s:o,s:I,s:I}", "runs", runs, "pages", (json_int_t)pages, "total",
			 (json_int_t)dirty_tracker_count(t));
	return 0;
}

static const struct qmp_arg calc_dirty_rate_args[] = {
	{ "calc-time", QMP_INT, 0 },
	{ "sample-pages", QMP_INT, 1 },
	{ "mode", QMP_STR, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg x_dirty_tracking_args[] = {
	{ "enable", QMP_BOOL, 0 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_arg x_query_dirty_pages_args[] = {
	{ "gpa", QMP_INT, 0 },
	{ "size", QMP_INT, 0 },
	{ NULL, QMP_ANY, 0 },
};

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
	{ "calc-dirty-rate", cmd_calc_dirty_rate, calc_dirty_rate_args },
	{ "query-dirty-rate", cmd_query_dirty_rate, NULL },
	{ "x-corrupt-guest-memory", cmd_x_corrupt, corrupt_args },
	{ "x-dirty-tracking", cmd_x_dirty_tracking, x_dirty_tracking_args },
	{ "x-query-dirty-pages", cmd_x_query_dirty_pages, x_query_dirty_pages_args },
	{ NULL, NULL, NULL },
};

struct posted_event {
	struct vm_qmp *q;
	enum vm_event event;
};

static void send_vm_event(struct vm_qmp *q, enum vm_event event)
{
	qmp_server_event(q->server, event == VM_EVENT_STOP ? "STOP" : "RESUME", NULL);
}

static void deliver_vm_event(void *opaque)
{
	struct posted_event *e = opaque;
	send_vm_event(e->q, e->event);
	free(e);
}

/* STOP and RESUME: at once on the main thread (before a command's reply,
 * as QEMU), posted to it from others (migration threads). */
static void on_vm_event(void *opaque, enum vm_event event)
{
	struct vm_qmp *q = opaque;
	if (loop_is_owner(q->loop)) {
		send_vm_event(q, event);
		return;
	}
	struct posted_event *e = malloc(sizeof *e);
	if (e == NULL)
		return;
	*e = (struct posted_event){ q, event };
	if (loop_post(q->loop, deliver_vm_event, e) < 0)
		free(e);
}

int vm_qmp_register(struct qmp_server *s, struct vm_qmp *q)
{
	q->server = s;
	q->loop = s->loop;
	dirty_rate_init(&q->rate, q->vm, q->loop);
	q->vm->on_event = on_vm_event;
	q->vm->event_opaque = q;
	int rc = qmp_server_add_commands(s, vm_commands, q);
	return rc < 0 ? rc : memslots_qmp_register(s, q);
}

void vm_qmp_destroy(struct vm_qmp *q)
{
	dirty_rate_destroy(&q->rate);
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
	case VM_EXIT_INCOMING_FAILED: reason = "host-error"; break;
	case VM_EXIT_NONE: break;
	}
	qmp_server_event(q->server, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", guest, "reason",
							  reason));
}
