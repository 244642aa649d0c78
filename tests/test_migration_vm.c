/*
 * Live migration between two tern processes with the built-in guest: over
 * TCP, a unix socket and a file, for every workload, with and without
 * XBZRLE.  The guest, migrated mid-run, finishes on the destination,
 * verifies all of its memory there and prints the same checksum as a run
 * that was never migrated.  The source ends stopped in postmigrate.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "qmp/qmp_client.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define MEMORY "64M"

enum transport { TCP, UNIX_SOCKET, FILE_STREAM };

static const char *const workloads[] = { "idle", "random", "sequential", "hotcold", "sparse" };
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* About 0.8 s of work (longer where everything but the guest's paced
 * writes runs slower): long enough to migrate in the middle of it. */
static void guest_args(const char *workload, char *buf, size_t len)
{
	if (strcmp(workload, "idle") == 0)
		snprintf(buf, len, "workload=idle ws=8M seconds=%d seed=5", time_scale());
	else
		snprintf(buf, len, "workload=%s ws=8M writes=%d rate=150000 seed=5", workload,
			 120000 * time_scale());
}

static uint64_t reference[NWORKLOADS];
static int have_reference[NWORKLOADS];

/* The checksum of an unmigrated run (computed once per workload). */
static uint64_t reference_checksum(size_t w)
{
	if (have_reference[w])
		return reference[w];
	char append[128];
	guest_args(workloads[w], append, sizeof append);
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--memory", MEMORY, "--append", append, NULL), 0);
	assert_int_equal(proc_wait(&vm.proc, 30000), 0);
	assert_int_equal(harness_guest_checksum(proc_output(&vm.proc), &reference[w]), 0);
	tern_vm_end(&vm);
	have_reference[w] = 1;
	return reference[w];
}

static json_t *migrate(struct qmp_conn *q, const char *uri, struct proc *source)
{
	json_t *r = qmp_execute(q, "migrate", json_pack("{s:s}", "uri", uri), 10000);
	if (qmp_return(r) == NULL)
		fail_msg("migrate %s: %s", uri, json_dumps(r, 0));
	json_decref(r);
	json_t *info = mig_wait(q, 20, 60000, NULL, NULL);
	if (info == NULL) {
		int status = proc_wait(source, 1000);
		fail_msg("query-migrate gave no result (the source exited %d):\n%s", status,
			 proc_output(source));
	}
	return info;
}

static void check_completed(json_t *info, struct qmp_conn *src)
{
	if (strcmp(mig_status(info), "completed") != 0)
		fail_msg("migration ended %s", json_dumps(info, 0));
	assert_true(mig_number(info, "ram.total") == 64ll << 20);
	assert_true(mig_number(info, "ram.remaining") == 0);
	assert_true(mig_number(info, "ram.transferred") > 0);
	assert_true(mig_number(info, "ram.duplicate") > 0);
	assert_true(mig_number(info, "downtime") >= 0);
	assert_true(mig_number(info, "total-time") >= mig_number(info, "downtime"));
	/* The parts of the downtime add up to it (us against whole ms). */
	long long parts = 0;
	static const char *const part[] = { "stop-us", "sync-us", "pages-us", "state-us",
					    "handshake-us" };
	for (size_t i = 0; i < sizeof part / sizeof part[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "x-downtime.%s", part[i]);
		long long v = mig_number(info, path);
		assert_true(v >= 0);
		parts += v;
	}
	assert_true(parts / 1000 <= mig_number(info, "downtime") + 1);
	assert_true(parts / 1000 + 2 >= mig_number(info, "downtime"));
	json_t *r = qmp_execute(src, "query-status", NULL, 5000);
	assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
			    "postmigrate");
	json_decref(r);
}

/* The destination finishes the run: verified, with the reference checksum. */
static void check_destination(struct tern_vm *dst, size_t w)
{
	int status = proc_wait(&dst->proc, 60000);
	const char *out = proc_output(&dst->proc);
	if (status != 0 || strstr(out, "verify ok (end)") == NULL)
		fail_msg("destination exited %d:\n%s", status, out);
	uint64_t sum;
	assert_int_equal(harness_guest_checksum(out, &sum), 0);
	if (sum != reference_checksum(w))
		fail_msg("%s: checksum 0x%llx after migration, 0x%llx without", workloads[w],
			 (unsigned long long)sum, (unsigned long long)reference_checksum(w));
}

static void migrate_one(enum transport t, size_t w, int xbzrle)
{
	char append[128], uri[300], path[256];
	guest_args(workloads[w], append, sizeof append);
	struct tern_vm src = { 0 }, dst = { 0 };
	assert_int_equal(tern_vm_prepare(&dst), 0);
	switch (t) {
	case TCP:
		snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
		break;
	case UNIX_SOCKET:
		snprintf(uri, sizeof uri, "unix:%s", tern_vm_path(&dst, "migrate.sock", path,
								    sizeof path));
		break;
	case FILE_STREAM:
		snprintf(uri, sizeof uri, "file:%s", tern_vm_path(&dst, "guest.tmf", path,
								    sizeof path));
		break;
	}
	if (t != FILE_STREAM) {
		assert_int_equal(mig_start_destination(&dst, uri, "--memory", MEMORY, NULL), 0);
		struct qmp_conn dq;
		assert_int_equal(qmp_connect(&dq, dst.qmp_path, 1, 10000), 0); /* it listens */
		qmp_close(&dq);
	}
	assert_int_equal(tern_vm_start(&src, "--memory", MEMORY, "--append", append, NULL), 0);
	assert_true(proc_wait_for(&src.proc, "tern-guest: start", 0, 20000) > 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, src.qmp_path, 1, 10000), 0);
	assert_int_equal(mig_set_capabilities(&q, xbzrle, 0, 1), 0);
	/* A cache of an eighth of the working set: pages go by XBZRLE, by
	 * changed blocks and whole, all three. */
	if (xbzrle) /* and a slower link: the guest writes between its sends */
		assert_int_equal(qmp_do(&q, "migrate-set-parameters",
					json_pack("{s:i,s:i}", "xbzrle-cache-size", 1 << 20,
						  "max-bandwidth", 64 << 20), NULL, 5000), 0);
	struct timespec nap = { 0, 150000000 }; /* into the run */
	nanosleep(&nap, NULL);
	json_t *info = migrate(&q, uri, &src.proc);
	check_completed(info, &q);
	if (xbzrle)
		assert_non_null(json_object_get(info, "xbzrle-cache"));
	if (xbzrle && strcmp(workloads[w], "sparse") == 0) /* 64-byte writes: deltas */
		if (mig_number(info, "x-block-delta.pages") + mig_number(info, "xbzrle-cache.pages") <= 0)
			fail_msg("no deltas: %s", json_dumps(info, 0));
	json_decref(info);
	if (t == FILE_STREAM)
		assert_int_equal(mig_start_destination(&dst, uri, "--memory", MEMORY, NULL), 0);
	check_destination(&dst, w);
	/* The source keeps its stopped copy until told to quit. */
	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	assert_int_equal(proc_wait(&src.proc, 10000), 0);
	qmp_close(&q);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

static void every_workload(enum transport t, int xbzrle)
{
	SKIP_WITHOUT_KVM();
	for (size_t w = 0; w < NWORKLOADS; w++)
		migrate_one(t, w, xbzrle);
}

static void over_tcp(void **state)
{
	(void)state;
	every_workload(TCP, 0);
}

static void over_tcp_with_xbzrle(void **state)
{
	(void)state;
	every_workload(TCP, 1);
}

static void over_unix_socket(void **state)
{
	(void)state;
	every_workload(UNIX_SOCKET, 0);
}

static void over_unix_socket_with_xbzrle(void **state)
{
	(void)state;
	every_workload(UNIX_SOCKET, 1);
}

static void through_a_file(void **state)
{
	(void)state;
	every_workload(FILE_STREAM, 0);
}

static void through_a_file_with_xbzrle(void **state)
{
	(void)state;
	every_workload(FILE_STREAM, 1);
}

/* Bytes of the destination's guest RAM memfd that are allocated. */
static long long ram_allocated(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	assert_non_null(d);
	long long bytes = -1;
	struct dirent *e;
	while (bytes < 0 && (e = readdir(d)) != NULL) {
		char path[400], target[128];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, target, sizeof target - 1);
		struct stat st;
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, "/memfd:tern-ram", 15) == 0 && stat(path, &st) == 0)
			bytes = (long long)st.st_blocks * 512;
	}
	closedir(d);
	assert_true(bytes >= 0);
	return bytes;
}

/* A destination waiting in defer (as libvirt starts one) allocates its RAM
 * before migrate-incoming comes; with --incoming-lazy it does not. */
static void deferred_destination_allocates_while_it_waits(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm eager = { 0 }, lazy = { 0 };
	assert_int_equal(tern_vm_start(&eager, "--memory", "128M", "--incoming", "defer", NULL), 0);
	assert_int_equal(tern_vm_start(&lazy, "--memory", "128M", "--incoming", "defer",
				       "--incoming-lazy", NULL),
			 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, eager.qmp_path, 1, 10000), 0); /* it is up */
	qmp_close(&q);
	assert_int_equal(qmp_connect(&q, lazy.qmp_path, 1, 10000), 0);
	qmp_close(&q);
	double deadline = deadline_ms(20000);
	while (ram_allocated(eager.proc.pid) < (128LL << 20) && now_ms() < deadline)
		usleep(20000);
	assert_true(ram_allocated(eager.proc.pid) >= (128LL << 20));
	assert_true(ram_allocated(lazy.proc.pid) < (16LL << 20));
	tern_vm_end(&eager);
	tern_vm_end(&lazy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(over_tcp),
		cmocka_unit_test(over_tcp_with_xbzrle),
		cmocka_unit_test(over_unix_socket),
		cmocka_unit_test(over_unix_socket_with_xbzrle),
		cmocka_unit_test(through_a_file),
		cmocka_unit_test(through_a_file_with_xbzrle),
		cmocka_unit_test(deferred_destination_allocates_while_it_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
