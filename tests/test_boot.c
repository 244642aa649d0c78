/*
 * The VMM end to end on KVM: the built-in guest boots, runs every workload
 * to the end and verifies its memory; checksums are deterministic; stop and
 * cont do not change them; serial commands reach the guest; a corrupted
 * page is caught; SMP, many memslots and signals behave.
 */
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "qmp/qmp_client.h"
#include "../harness/sock.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define TIMEOUT_MS 60000

/* Run the built-in guest to the end; returns its checksum. */
static uint64_t run_guest(const char *append)
{
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "256M", "--append", append, NULL),
			 0);
	int status = proc_wait(&p, TIMEOUT_MS);
	if (status != 0 || strstr(proc_output(&p), "verify ok (end)") == NULL)
		fail_msg("guest '%s' ended with %d:\n%s", append, status, proc_output(&p));
	uint64_t sum;
	assert_int_equal(harness_guest_checksum(proc_output(&p), &sum), 0);
	proc_free(&p);
	return sum;
}

static void every_workload_runs_and_verifies(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	static const char *const runs[] = {
		"workload=idle seconds=1",
		"workload=random ws=8M writes=50000 seed=3",
		"workload=sequential ws=8M writes=50000 seed=3",
		"workload=hotcold ws=8M writes=50000 seed=3 hot=5 hotshare=95",
		"workload=sparse ws=8M writes=200000 seed=3",
		"workload=sparse ws=8M writes=50000 bytes=1 rate=100000",
	};
	for (unsigned i = 0; i < sizeof runs / sizeof runs[0]; i++) {
		struct proc p;
		assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "128M", "--append", runs[i],
					    NULL),
				 0);
		int status = proc_wait(&p, TIMEOUT_MS);
		const char *out = proc_output(&p);
		if (status != 0 || strstr(out, "verify ok (end)") == NULL)
			fail_msg("'%s' ended with status %d:\n%s", runs[i], status, out);
		assert_non_null(strstr(out, "tern-guest: ring 3 reached"));
		proc_free(&p);
	}
}

static void checksum_is_deterministic(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	const char *a = "workload=random ws=4M writes=40000 seed=11";
	uint64_t first = run_guest(a);
	uint64_t second = run_guest(a);
	assert_true(first == second);
	uint64_t other = run_guest("workload=random ws=4M writes=40000 seed=12");
	assert_true(other != first);
}

static void stop_and_cont_keep_the_checksum(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	const char *append = "workload=hotcold ws=16M writes=1500000 seed=5";
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--memory", "256M", "--append", append, NULL), 0);
	struct proc *p = &vm.proc;
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	assert_true(proc_wait_for(p, "tern-guest: start", 0, 10000) > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(qmp_do(&q, "stop", NULL, "STOP", 5000), 0);
		json_t *r = qmp_execute(&q, "query-status", NULL, 5000);
		assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
				    "paused");
		json_decref(r);
		usleep(100000);
		assert_int_equal(qmp_do(&q, "cont", NULL, "RESUME", 5000), 0);
		usleep(50000);
	}
	/* The pauses must have hit the run, not its end. */
	assert_null(strstr(proc_output(p), "tern-guest: done"));
	int status = proc_wait(p, TIMEOUT_MS);
	if (status != 0)
		fail_msg("status %d:\n%s", status, proc_output(p));
	uint64_t paused_sum;
	assert_int_equal(harness_guest_checksum(proc_output(p), &paused_sum), 0);
	qmp_close(&q);
	tern_vm_end(&vm);
	assert_true(paused_sum == run_guest(append));
}

static void serial_commands_and_corruption_caught(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm vm;
	char ser[256], ser_spec[300];
	assert_int_equal(tern_vm_prepare(&vm), 0);
	tern_vm_path(&vm, "serial.sock", ser, sizeof ser);
	snprintf(ser_spec, sizeof ser_spec, "unix:%s,server", ser);
	/* Sparse writes of one word per page: the rest of each page, once
	 * written, is never written again, so damage there stays. */
	assert_int_equal(tern_vm_start(&vm, "--memory", "128M", "--serial", ser_spec, "--append",
				       "workload=sparse ws=1M bytes=8 rate=2000", NULL),
			 0);
	struct proc *p = &vm.proc;
	struct text_stream t;
	long at;
	int fd = guest_serial_attach(ser, &t, "ws_gpa=0x", &at);
	assert_true(fd >= 0);
	uint64_t ws_gpa = strtoull(t.buf + at, NULL, 16);

	/* Wait until every page has been written once (256 pages). */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(send(fd, "status\n", 7, 0), 7);
		at = text_stream_wait(&t, (size_t)at, "status", 5000);
		assert_true(at > 0);
		long w = text_stream_wait_line(&t, (size_t)at, "writes=", 5000);
		assert_true(w > 0);
		if (strtoull(t.buf + w, NULL, 10) > 2000)
			break;
		usleep(100000);
	}
	assert_int_equal(send(fd, "verify\n", 7, 0), 7);
	at = text_stream_wait(&t, (size_t)at, "verify ok (command)", 10000);
	assert_true(at > 0);

	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	uint64_t target = ws_gpa + 7 * 4096 + 1000; /* page 7, inside its base pattern */
	json_t *r = qmp_execute(&q, "x-corrupt-guest-memory",
				json_pack("{s:I,s:i}", "gpa", (json_int_t)target, "size", 2), 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);
	assert_int_equal(send(fd, "verify\n", 7, 0), 7);
	at = text_stream_wait(&t, (size_t)at, "VERIFY FAILED (command) first bad page=7", 10000);
	if (at < 0)
		fail_msg("corruption not reported; the guest said:\n%s",
			 t.buf + (t.len > 600 ? t.len - 600 : 0));
	assert_int_equal(send(fd, "stop\n", 5, 0), 5);
	int status = proc_wait(p, TIMEOUT_MS);
	text_stream_wait(&t, (size_t)at, "\n\n", 100); /* collect the rest */
	if (status != 1) /* the guest's final verify fails too */
		fail_msg("tern ended with %d; it said:\n%s\nthe guest said:\n%s", status,
			 proc_output(p), t.buf + (t.len > 600 ? t.len - 600 : 0));
	text_stream_free(&t);
	close(fd);
	qmp_close(&q);
	tern_vm_end(&vm);
}

static void smp_and_many_memslots(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct proc p;
	/* 1000 slots of ~1 MiB: the working set crosses hundreds of them. */
	assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "1G", "--vcpus", "2", "--memslots",
				    "1000", "--append",
				    "workload=sequential ws=300M writes=80000 seed=2", NULL),
			 0);
	int status = proc_wait(&p, TIMEOUT_MS);
	if (status != 0 || strstr(proc_output(&p), "verify ok (end)") == NULL)
		fail_msg("status %d:\n%s", status, proc_output(&p));
	proc_free(&p);
}

static void signal_ends_cleanly(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--workload", "idle", NULL), 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	assert_true(proc_wait_for(&vm.proc, "tern-guest: start", 0, 10000) > 0);
	proc_kill(&vm.proc, SIGTERM);
	json_t *ev = qmp_wait_event(&q, "SHUTDOWN", 10000);
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "data"), "reason")),
			    "host-signal");
	json_decref(ev);
	assert_int_equal(proc_wait(&vm.proc, 10000), 128 + SIGTERM);
	assert_non_null(strstr(proc_output(&vm.proc), "terminating on signal 15"));
	assert_int_equal(access(vm.qmp_path, F_OK), -1); /* socket removed */
	qmp_close(&q);
	tern_vm_end(&vm);
}

static void paused_start_waits_for_cont(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "-S", "--append", "workload=random ws=1M writes=1000",
				       NULL),
			 0);
	struct proc *p = &vm.proc;
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	json_t *r = qmp_execute(&q, "query-status", NULL, 5000);
	assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")), "paused");
	json_decref(r);
	usleep(300000);
	assert_null(strstr(proc_output(p), "ring 3")); /* not a single instruction yet */
	r = qmp_execute(&q, "cont", NULL, 5000);
	json_decref(r);
	assert_int_equal(proc_wait(p, TIMEOUT_MS), 0);
	assert_non_null(strstr(proc_output(p), "verify ok (end)"));
	qmp_close(&q);
	tern_vm_end(&vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_workload_runs_and_verifies),
		cmocka_unit_test(checksum_is_deterministic),
		cmocka_unit_test(stop_and_cont_keep_the_checksum),
		cmocka_unit_test(serial_commands_and_corruption_caught),
		cmocka_unit_test(smp_and_many_memslots),
		cmocka_unit_test(signal_ends_cleanly),
		cmocka_unit_test(paused_start_waits_for_cont),
	};
	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
