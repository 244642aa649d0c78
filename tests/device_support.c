/*
 * What the device-state tests share: terns started with a device or as
 * destinations, each tracked so that a failed test's teardown ends it; an
 * idle guest's serial commands and doorbells; the run state and the end
 * of a migration over QMP; what x-query-vm-state and
 * x-query-ioeventfd-bank say a tern holds.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/migrate.h"
#include "cpr_support.h"
#include "device_support.h"

#define MEMORY "64M"

/* ------------------------------------------------------------ teardown */

static pid_t spawned[32];
static unsigned nspawned;

void device_track(pid_t pid)
{
	if (nspawned < sizeof spawned / sizeof spawned[0])
		spawned[nspawned++] = pid;
}

int device_end_leftovers(void **state)
{
	(void)state;
	for (unsigned i = 0; i < nspawned; i++) {
		int st;
		if (waitpid(spawned[i], &st, WNOHANG) == 0) {
			kill(spawned[i], SIGKILL);
			waitpid(spawned[i], &st, 0);
		}
	}
	nspawned = 0;
	return 0;
}

int device_start_paused;

/* ------------------------------------------------------------ a guest */

void device_start_tern(struct device_guest *g, const char *device, const char *incoming)
{
	char ser[256], spec[300];
	if (g->vm.dir == NULL)
		assert_int_equal(tern_vm_prepare(&g->vm), 0);
	tern_vm_path(&g->vm, "serial.sock", ser, sizeof ser);
	snprintf(spec, sizeof spec, "unix:%s,server", ser);
	const char *args[16];
	int n = 0;
	args[n++] = "--memory";
	args[n++] = MEMORY;
	args[n++] = "--serial";
	args[n++] = spec;
	if (device != NULL) {
		args[n++] = "--device";
		args[n++] = device;
	}
	if (incoming != NULL) {
		args[n++] = "--incoming";
		args[n++] = incoming;
		if (device_start_paused)
			args[n++] = "--paused";
	} else {
		args[n++] = "--append";
		args[n++] = "workload=idle ws=8M";
	}
	args[n] = NULL;
	assert_int_equal(tern_vm_startv(&g->vm, args), 0);
	device_track(g->vm.proc.pid);
	/* tern waits for its serial client before it serves QMP. */
	if (incoming == NULL) {
		g->fd = guest_serial_attach(ser, &g->serial, "tern-guest: start", &g->at);
		assert_true(g->fd >= 0);
	} else { /* a destination: its guest prints nothing until it arrives */
		g->fd = unix_connect_retry(ser, 10000);
		assert_true(g->fd >= 0);
		text_stream_init(&g->serial, g->fd);
		g->at = 0;
	}
	assert_int_equal(qmp_connect(&g->q, g->vm.qmp_path, 1, 10000), 0);
}

void device_boot(struct device_guest *g, const char *device)
{
	memset(g, 0, sizeof *g);
	device_start_tern(g, device, NULL);
}

void device_destination(struct device_guest *g, const char *device, const char *incoming)
{
	memset(g, 0, sizeof *g);
	device_start_tern(g, device, incoming);
}

void device_expect_clean(struct proc *p)
{
	const char *out = proc_output(p);
	if (strstr(out, "Sanitizer") != NULL || strstr(out, "runtime error:") != NULL)
		fail_msg("tern (pid %d) reported:\n%s", (int)p->pid, out);
}

void device_end_guest(struct device_guest *g)
{
	if (!proc_exited(&g->vm.proc)) {
		assert_int_equal(qmp_do(&g->q, "quit", NULL, NULL, 5000), 0);
		int status = proc_wait(&g->vm.proc, 10000);
		if (status != 0)
			fail_msg("tern exited %d:\n%s", status, proc_output(&g->vm.proc));
	}
	qmp_close(&g->q);
	device_expect_clean(&g->vm.proc);
	text_stream_free(&g->serial);
	close(g->fd);
	tern_vm_end(&g->vm);
}

long device_say(struct device_guest *g, const char *cmd, const char *answer)
{
	size_t len = strlen(cmd);
	assert_int_equal(write(g->fd, cmd, len), (ssize_t)len);
	long got = text_stream_wait_line(&g->serial, (size_t)g->at, answer, 20000);
	if (got < 0)
		fail_msg("the guest did not answer '%.*s' with '%s'; it said:\n%s", (int)len - 1, cmd,
			 answer, g->serial.buf + g->at);
	g->at = got;
	return got;
}

void device_serial_expect(struct device_guest *g, const char *needle)
{
	long got = text_stream_wait_line(&g->serial, (size_t)g->at, needle, 20000);
	if (got < 0)
		fail_msg("the guest never said '%s'; it said:\n%s", needle, g->serial.buf + g->at);
	g->at = got;
}

void device_verify(struct device_guest *g, char *out, size_t len)
{
	long at = device_say(g, "verify\n", "(command)");
	const char *line = g->serial.buf + at - strlen("(command)");
	while (line > g->serial.buf && line[-1] != '\n')
		line--;
	if (strncmp(line, "tern-guest: verify ok (command)", 31) != 0)
		fail_msg("the guest's memory is not what it wrote: %.200s", line);
	const char *end = strchr(g->serial.buf + at, '\n');
	assert_non_null(end);
	snprintf(out, len, "%.*s", (int)(end - (g->serial.buf + at)), g->serial.buf + at);
}

void device_expect_same_memory(struct device_guest *g, const char *want, const char *hop)
{
	char got[256];
	device_verify(g, got, sizeof got);
	if (strcmp(got, want) != 0)
		fail_msg("%s: the guest verified%s, before it%s", hop, got, want);
}

void device_ring(struct device_guest *g, unsigned doorbell)
{
	assert_int_equal(guest_poke(&g->serial, &g->at, CPR_BANK_BASE + 8ULL * doorbell, 1), 0);
}

static const char *status_of(struct device_guest *g)
{
	static char s[32];
	json_t *r = cpr_query(&g->q, "query-status");
	assert_non_null(r);
	snprintf(s, sizeof s, "%s", json_string_value(json_object_get(r, "status")));
	json_decref(r);
	return s;
}

void device_expect_status(struct device_guest *g, const char *want)
{
	const char *s = status_of(g);
	if (strcmp(s, want) != 0)
		fail_msg("the guest is %s, not %s", s, want);
}

void device_stop(struct device_guest *g)
{
	assert_int_equal(qmp_do(&g->q, "stop", NULL, NULL, 10000), 0);
	device_expect_status(g, "paused");
}

void device_cont(struct device_guest *g)
{
	assert_int_equal(qmp_do(&g->q, "cont", NULL, NULL, 10000), 0);
	device_expect_status(g, "running");
}

const char *device_error_desc(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	return e != NULL ? json_string_value(json_object_get(e, "desc")) : NULL;
}

json_t *device_migration_end(struct device_guest *g)
{
	json_t *r = mig_wait(&g->q, 10, 30000, NULL, NULL);
	if (r == NULL)
		fail_msg("the migration did not end");
	return r;
}

void device_expect_completed(struct device_guest *g)
{
	json_t *r = device_migration_end(g);
	if (strcmp(mig_status(r), "completed") != 0) {
		char *text = json_dumps(r, 0);
		fail_msg("the migration did not complete: %s", text);
	}
	json_decref(r);
}

/* ------------------------------------------------------------ what it holds */

json_t *device_vm_state(struct device_guest *g)
{
	json_t *r = qmp_execute(&g->q, "x-query-vm-state", NULL, 10000);
	json_t *list = qmp_return(r);
	if (!json_is_array(list))
		fail_msg("x-query-vm-state: %s",
			 device_error_desc(r) ? device_error_desc(r) : "no answer");
	json_t *map = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		assert_non_null(name);
		assert_null(json_object_get(map, name)); /* one entry per name */
		json_object_set(map, name, e);
	}
	json_decref(r);
	return map;
}

int device_carried_by(json_t *entry, const char *carrier)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(entry, "carried-by"), i, c)
		if (strcmp(json_string_value(c), carrier) == 0)
			return 1;
	return 0;
}

long long device_number(json_t *entry, const char *key)
{
	return (long long)json_integer_value(json_object_get(entry, key));
}

void device_expect_rings(struct device_guest *g, const unsigned *want, const char *hop)
{
	json_t *b = cpr_query(&g->q, "x-query-ioeventfd-bank");
	assert_non_null(b);
	assert_int_equal(json_integer_value(json_object_get(b, "count")), DEVICE_DOORBELLS);
	unsigned got[DEVICE_DOORBELLS] = { 0 }, total = 0;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(b, "doorbells"), i, e) {
		json_int_t index = json_integer_value(json_object_get(e, "index"));
		assert_true(index >= 0 && index < DEVICE_DOORBELLS);
		got[index] = (unsigned)json_integer_value(json_object_get(e, "rings"));
	}
	for (unsigned d = 0; d < DEVICE_DOORBELLS; d++) {
		if (got[d] != want[d])
			fail_msg("%s: doorbell %u rang %u times, not %u", hop, d, got[d], want[d]);
		total += want[d];
	}
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), total);
	json_decref(b);
}
