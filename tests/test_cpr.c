/*
 * Live update (CPR) end to end with the built-in guest: cpr-exec and
 * cpr-transfer, three times in a row each, the guest finishing with the
 * checksum of a run that was never updated; guest RAM never copied (the
 * same memfd); updates to a binary that cannot load the state leaving the
 * guest running; RAM offers a new tern must refuse.  (test_cpr_devices:
 * what the guest holds besides RAM.)
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "tern/vmstate.h"
#include "cpr_support.h"
#include "kvm_skip.h"

#define WORKLOAD "workload=random ws=8M writes=250000 rate=50000 seed=9"
#define UPDATES 3

static uint64_t reference_checksum(void)
{
	static uint64_t sum;
	static int have;
	if (have)
		return sum;
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "64M", "--append", WORKLOAD, NULL),
			 0);
	assert_int_equal(proc_wait(&p, 60000), 0);
	assert_int_equal(harness_guest_checksum(proc_output(&p), &sum), 0);
	proc_free(&p);
	have = 1;
	return sum;
}

/* Migration settings an operator set before update i ... */
static void set_settings(struct qmp_conn *q, int i)
{
	assert_int_equal(qmp_do(q, "migrate-set-parameters",
				json_pack("{s:i,s:i,s:i}", "max-bandwidth", 1000000 + i,
					  "downtime-limit", 100 + i, "max-cpu-throttle", 50 + i),
				NULL, 10000),
			 0);
	assert_int_equal(qmp_do(q, "migrate-set-capabilities",
				json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "xbzrle",
					  "state", i % 2 == 0),
				NULL, 10000),
			 0);
}

/* ... are the new tern's after it. */
static void expect_settings(struct qmp_conn *q, int i, const char *mode)
{
	json_t *p = cpr_query(q, "query-migrate-parameters");
	assert_int_equal(json_integer_value(json_object_get(p, "max-bandwidth")), 1000000 + i);
	assert_int_equal(json_integer_value(json_object_get(p, "downtime-limit")), 100 + i);
	assert_int_equal(json_integer_value(json_object_get(p, "max-cpu-throttle")), 50 + i);
	assert_string_equal(json_string_value(json_object_get(p, "mode")), mode);
	json_decref(p);
	json_t *caps = cpr_query(q, "query-migrate-capabilities");
	size_t k;
	json_t *c;
	int seen = 0;
	json_array_foreach(caps, k, c) {
		if (strcmp(json_string_value(json_object_get(c, "capability")), "xbzrle") != 0)
			continue;
		assert_int_equal(json_is_true(json_object_get(c, "state")), i % 2 == 0);
		seen = 1;
	}
	assert_true(seen);
	json_decref(caps);
}

static void cpr_exec_three_times(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	uint64_t want = reference_checksum();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--memory", "64M", "--append", WORKLOAD, "--device",
				       "ioeventfd-bank,count=540", NULL),
			 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	json_t *before = cpr_identities(&q, vm.proc.pid);
	char ram[96];
	snprintf(ram, sizeof ram, "%s", cpr_memfd_identity(before));
	for (int i = 0; i < UPDATES; i++) {
		cpr_set_mode(&q, "cpr-exec", cpr_tern_path);
		set_settings(&q, i);
		assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL,
					10000),
				 0);
		/* The same QMP connection, now served by the new program. */
		json_t *r = cpr_wait_update(&q);
		cpr_expect_completed(r, "cpr-exec", 0);
		expect_settings(&q, i, "cpr-exec");
		assert_true(json_integer_value(json_object_get(json_object_get(r, "x-cpr"),
							       "fds")) >= 540);
		json_decref(r);
		json_t *after = cpr_identities(&q, vm.proc.pid);
		assert_true(json_equal(before, after)); /* every fd, and the RAM memfd */
		assert_string_equal(cpr_memfd_identity(after), ram);
		json_decref(after);
		cpr_expect_keeper_released(vm.proc.pid);
	}
	json_decref(before);
	qmp_close(&q);
	assert_int_equal(proc_wait(&vm.proc, 60000), 0);
	uint64_t got;
	assert_int_equal(harness_guest_checksum(proc_output(&vm.proc), &got), 0);
	assert_true(got == want);
	tern_vm_end(&vm);
}

static void cpr_transfer_three_times(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	uint64_t want = reference_checksum();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_prepare(&vm), 0);
	char log[256], serial[300], sock[256];
	tern_vm_path(&vm, "serial.log", log, sizeof log);
	snprintf(serial, sizeof serial, "file:%s", log);
	assert_int_equal(tern_vm_start(&vm, "--memory", "64M", "--serial", serial, "--append",
				       WORKLOAD, NULL),
			 0);
	struct proc old = vm.proc, next;
	for (int i = 0; i < UPDATES; i++) {
		char name[32];
		snprintf(name, sizeof name, "cpr%d.sock", i);
		tern_vm_path(&vm, name, sock, sizeof sock);
		cpr_spawn_new(&next, cpr_tern_path, sock);
		struct qmp_conn q;
		assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
		json_t *before = cpr_identities(&q, old.pid);
		set_settings(&q, i);
		cpr_transfer(&q, sock);
		qmp_close(&q);
		assert_int_equal(proc_wait(&old, 20000), 0); /* the old tern leaves */
		proc_free(&old);
		assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
		json_t *r = cpr_wait_update(&q);
		cpr_expect_completed(r, "cpr-transfer", 0);
		json_decref(r);
		expect_settings(&q, i, "cpr-transfer");
		json_t *after = cpr_identities(&q, next.pid);
		assert_true(json_equal(before, after));
		assert_non_null(cpr_memfd_identity(after));
		json_decref(before);
		json_decref(after);
		qmp_close(&q);
		old = next;
	}
	assert_int_equal(proc_wait(&old, 60000), 0);
	vm.proc = old; /* tern_vm_end frees the last one */
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	uint64_t got;
	assert_int_equal(harness_guest_checksum(text, &got), 0);
	assert_true(got == want);
	tern_vm_end(&vm);
}

static void expect_failed_and_running(struct qmp_conn *q, struct cpr_guest *g, const char *needle)
{
	json_t *r = cpr_wait_update(q);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
	const char *why = json_string_value(json_object_get(r, "error-desc"));
	if (why == NULL || strstr(why, needle) == NULL)
		fail_msg("error-desc '%s' does not say '%s'", why ? why : "", needle);
	json_decref(r);
	json_t *st = cpr_query(q, "query-status");
	assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
	json_decref(st);
	cpr_ring(g, 3); /* and the guest answers */
}

static void failed_updates_keep_the_guest(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct cpr_guest g;
	struct qmp_conn q;
	cpr_boot_idle(&g, "16", &q);

	/* cpr-transfer to a tern that cannot load this state: the old resumes. */
	char sock[256];
	tern_vm_path(&g.vm, "cpr.sock", sock, sizeof sock);
	struct proc next;
	cpr_spawn_new(&next, cpr_next_path, sock);
	cpr_transfer(&q, sock);
	expect_failed_and_running(&q, &g, "loads formats 99 to 99");
	assert_int_equal(proc_wait(&next, 10000), 125);
	proc_free(&next);

	/* cpr-exec of a program that is not there: caught before exec. */
	cpr_set_mode(&q, "cpr-exec", "/nonexistent/tern");
	assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	expect_failed_and_running(&q, &g, "cannot run /nonexistent/tern");

	/* cpr-exec of a tern that cannot load it: it execs this binary back. */
	cpr_set_mode(&q, "cpr-exec", cpr_next_path);
	assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	expect_failed_and_running(&q, &g, "the previous binary resumed it");
	cpr_expect_keeper_released(g.vm.proc.pid); /* passed on to the previous binary */

	/* Refused up front: a transfer not over a unix socket, exec with no program. */
	cpr_set_mode(&q, "cpr-transfer", NULL);
	json_t *e = qmp_execute(&q, "migrate", json_pack("{s:s}", "uri", "tcp:127.0.0.1:1"), 10000);
	assert_non_null(json_object_get(e, "error"));
	json_decref(e);
	e = qmp_execute(&q, "migrate-set-parameters", json_pack("{s:s}", "mode", "cpr-later"),
			10000);
	assert_non_null(json_object_get(e, "error"));
	json_decref(e);

	cpr_end_guest(&g, &q);
}

/* Bytes and at most one fd, as one message. */
static void send_raw(int sock, const void *data, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof control);
	struct iovec iov = { (void *)data, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		m.msg_control = control.buf;
		m.msg_controllen = sizeof control.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	assert_int_equal(sendmsg(sock, &m, MSG_NOSIGNAL), (ssize_t)len);
}

/* A new tern waiting for an update is offered RAM it must refuse: it says
 * why and ends, having taken nothing. */
static void hostile_ram_offers_refused(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *dir = harness_tmpdir();
	assert_non_null(dir);
	char sock[128];
	snprintf(sock, sizeof sock, "%s/cpr.sock", dir);
	int ram = memfd_create("offer", MFD_CLOEXEC);
	assert_true(ram >= 0 && ftruncate(ram, 16 << 20) == 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	struct {
		const char *magic;
		uint64_t memory;
		uint32_t memslots;
		int fd;
		const char *why;
	} offers[] = {
		{ "TERNRAM0", 16 << 20, 1, ram, "not a RAM offer" },
		{ "TERNRAM1", 16 << 20, 1, -1, "not a RAM offer" },
		{ "TERNRAM1", 1 << 20, 1, ram, "is not one tern makes" },
		{ "TERNRAM1", 16 << 20, 0, ram, "is not one tern makes" },
		{ "TERNRAM1", 64 << 20, 1, ram, "is not a memfd of 64 MiB" },
		{ "TERNRAM1", 16 << 20, 1, pipefd[0], "is not a memfd" },
	};
	for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
		struct proc next;
		cpr_spawn_new(&next, cpr_tern_path, sock);
		int c = unix_connect_retry(sock, 10000);
		assert_true(c >= 0);
		struct tern_buf b = { 0 };
		tern_buf_put(&b, offers[i].magic, 8);
		tern_buf_u64(&b, offers[i].memory);
		tern_buf_u32(&b, offers[i].memslots);
		send_raw(c, b.data, b.len, offers[i].fd);
		tern_buf_free(&b);
		char reply[512] = "";
		ssize_t n = recv(c, reply, sizeof reply - 1, MSG_WAITALL);
		reply[n > 0 ? n : 0] = '\0';
		if (strncmp(reply, "ERR ", 4) != 0 || strstr(reply, offers[i].why) == NULL)
			fail_msg("offer %zu: the reply '%s' does not say '%s'", i, reply,
				 offers[i].why);
		assert_int_equal(proc_wait(&next, 10000), 125);
		proc_free(&next);
		close(c);
	}
	close(ram);
	close(pipefd[0]);
	close(pipefd[1]);
	harness_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cpr_exec_three_times),
		cmocka_unit_test(cpr_transfer_three_times),
		cmocka_unit_test(failed_updates_keep_the_guest),
		cmocka_unit_test(hostile_ram_offers_refused),
	};
	return cmocka_run_group_tests_name("cpr", tests, cpr_setup, NULL);
}
