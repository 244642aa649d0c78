/*
 * The built-in guest is a real multiboot kernel: the very file tern embeds
 * boots under qemu-system-x86_64 -kernel (TCG here, so no KVM is needed)
 * and prints the same checksum as under tern for the same workload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define QEMU "qemu-system-x86_64"

static char *dir;
static char guest_path[512];

static int setup(void **state)
{
	(void)state;
	dir = harness_tmpdir();
	snprintf(guest_path, sizeof guest_path, "%s/guest.elf", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	harness_rmtree(dir);
	free(dir);
	return 0;
}

static uint64_t checksum_of(struct proc *p, int expect_status, const char *what)
{
	int status = proc_wait(p, 120000);
	uint64_t sum;
	if (status != expect_status || harness_guest_checksum(proc_output(p), &sum) != 0)
		fail_msg("%s ended with %d (expected %d):\n%s", what, status, expect_status,
			 proc_output(p));
	proc_free(p);
	return sum;
}

static void guest_image_is_the_built_guest(void **state)
{
	(void)state;
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "guest-image", guest_path, NULL), 0);
	assert_int_equal(proc_wait(&p, 10000), 0);
	proc_free(&p);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", guest_path, harness_guest_elf());
	assert_int_equal(system(cmd), 0);
}

static void same_checksum_under_qemu_and_tern(void **state)
{
	(void)state;
	if (!harness_have(QEMU)) {
		print_message("    skipped: %s is not installed (apt-get install qemu-system-x86)\n",
			      QEMU);
		skip();
	}
	SKIP_WITHOUT_KVM();
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "guest-image", guest_path, NULL), 0);
	assert_int_equal(proc_wait(&p, 10000), 0);
	proc_free(&p);

	static const char *const runs[] = {
		"workload=idle seconds=1 seed=4",
		"workload=random ws=4M writes=20000 seed=4",
		"workload=sequential ws=4M writes=20000 seed=4",
		"workload=hotcold ws=4M writes=20000 seed=4",
		"workload=sparse ws=4M writes=40000 seed=4 bytes=24",
	};
	for (unsigned i = 0; i < sizeof runs / sizeof runs[0]; i++) {
		char *qemu[] = { QEMU, "-kernel", guest_path, "-append", (char *)runs[i], "-m", "128",
				 "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
				 "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", NULL };
		char qemu_path[] = "/usr/bin/env";
		char *argv[20] = { qemu_path };
		for (unsigned k = 0; qemu[k] != NULL; k++)
			argv[k + 1] = qemu[k];
		assert_int_equal(proc_spawn(&p, argv, 0), 0);
		/* isa-debug-exit turns the guest's 0 into QEMU's exit status 1. */
		uint64_t q = checksum_of(&p, 1, "qemu");
		assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "128M", "--kernel", guest_path,
					    "--append", runs[i], NULL),
				 0);
		uint64_t t = checksum_of(&p, 0, "tern");
		if (q != t)
			fail_msg("'%s': qemu checksum %016llx, tern %016llx", runs[i],
				 (unsigned long long)q, (unsigned long long)t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(guest_image_is_the_built_guest),
		cmocka_unit_test(same_checksum_under_qemu_and_tern),
	};
	return cmocka_run_group_tests_name("qemu_compat", tests, setup, teardown);
}
