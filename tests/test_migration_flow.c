/*
 * Live migration in the flow libvirt drives: the destination started with
 * `--incoming defer`, `migrate-incoming` sent to it just before `migrate`
 * to the source, with no time in between for the destination to get
 * ready.  The built-in guest has filled 1 GiB (a quarter of that where the
 * CPU is emulated) and writes on through the migration; on the
 * destination it finishes its run, verifies all of its memory, and prints
 * the checksum of a run that was never migrated.  With and without XBZRLE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "../harness/tern.h"
#include "qmp/qmp_client.h"
#include "kvm_skip.h"

#define MEMORY "1280M"

/* A 1 GiB buffer filled first, then about 4 s of sparse writes. */
static void guest_args(char *buf, size_t len)
{
	int emulated = time_scale() > 1;
	snprintf(buf, len, "workload=sparse ws=%s fill=1 writes=%d rate=50000 seed=7",
		 emulated ? "256M" : "1G", 200000 * time_scale());
}

static uint64_t reference_checksum(void)
{
	static uint64_t sum;
	static int have;
	if (have)
		return sum;
	char append[128];
	guest_args(append, sizeof append);
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--memory", MEMORY, "--mem-prealloc", "--append",
				       append, NULL),
			 0);
	assert_int_equal(proc_wait(&vm.proc, 120000), 0);
	assert_int_equal(harness_guest_checksum(proc_output(&vm.proc), &sum), 0);
	tern_vm_end(&vm);
	have = 1;
	return sum;
}

static void migrate_as_libvirt_does(int xbzrle)
{
	char append[128], uri[64];
	guest_args(append, sizeof append);
	uint64_t want = reference_checksum();
	struct tern_vm src = { 0 }, dst = { 0 };
	assert_int_equal(tern_vm_start(&dst, "--memory", MEMORY, "--incoming", "defer", NULL), 0);
	struct qmp_conn dq, q;
	assert_int_equal(qmp_connect(&dq, dst.qmp_path, 1, 10000), 0);
	assert_int_equal(tern_vm_start(&src, "--memory", MEMORY, "--mem-prealloc", "--append",
				       append, NULL),
			 0);
	assert_true(proc_wait_for(&src.proc, "tern-guest: filled", 0, 120000) > 0);
	assert_int_equal(qmp_connect(&q, src.qmp_path, 1, 10000), 0);
	assert_int_equal(mig_set_capabilities(&q, xbzrle, 0, 1), 0);
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	assert_int_equal(qmp_do(&dq, "migrate-incoming", json_pack("{s:s}", "uri", uri), NULL,
				10000),
			 0);
	assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
	json_t *info = mig_wait(&q, 20, 120000, NULL, NULL);
	if (info == NULL || strcmp(mig_status(info), "completed") != 0)
		fail_msg("the migration did not complete: %s",
			 info ? json_dumps(info, 0) : "no answer");
	if (xbzrle)
		assert_non_null(json_object_get(info, "xbzrle-cache"));
	json_decref(info);
	qmp_close(&dq);
	int status = proc_wait(&dst.proc, 120000);
	const char *out = proc_output(&dst.proc);
	if (status != 0 || strstr(out, "verify ok (end)") == NULL)
		fail_msg("destination exited %d:\n%s", status, out);
	uint64_t sum;
	assert_int_equal(harness_guest_checksum(out, &sum), 0);
	if (sum != want)
		fail_msg("checksum 0x%llx after migration, 0x%llx without", (unsigned long long)sum,
			 (unsigned long long)want);
	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	qmp_close(&q);
	proc_wait(&src.proc, 10000);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

static void plain(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	migrate_as_libvirt_does(0);
}

static void with_xbzrle(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	migrate_as_libvirt_does(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain),
		cmocka_unit_test(with_xbzrle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
