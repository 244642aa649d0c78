/* The tern command line: clear messages and non-zero exits for mistakes,
 * and actionable errors when KVM is missing or not allowed. */
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
#include "../harness/tern.h"
#include "kvm_skip.h"

/* Run tern with a NULL-terminated argument list; check the status and
 * that the output says `words`. */
static void expect(int status, const char *words, ...)
{
	const char *args[32];
	int n = 0;
	va_list ap;
	va_start(ap, words);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	struct proc p;
	assert_int_equal(tern_spawnv(&p, 0, args), 0);
	int got = proc_wait(&p, 30000);
	const char *out = proc_output(&p);
	if (got != status || strstr(out, words) == NULL)
		fail_msg("tern %s ...: status %d (expected %d), output:\n%s\n(expected '%s')",
			 args[0], got, status, out, words);
	proc_free(&p);
}

static void usage_and_version(void **state)
{
	(void)state;
	expect(2, "usage: tern COMMAND", NULL);
	expect(0, "usage: tern COMMAND", "--help", NULL);
	expect(0, "tern 0.", "--version", NULL);
	expect(0, "--workload NAME", "run", "--help", NULL);
	expect(2, "unknown command 'fly'", "fly", NULL);
	expect(2, "usage: tern guest-image FILE", "guest-image", NULL);
}

static void option_mistakes(void **state)
{
	(void)state;
	expect(2, "unknown option '--bogus'", "run", "--bogus", NULL);
	expect(2, "--memory", "run", "--memory", "lots", NULL);
	expect(2, "unknown workload 'dance'", "run", "--workload", "dance", NULL);
	expect(2, "needs a value", "run", "--kernel", NULL);
	expect(2, "--vcpus", "run", "--vcpus", "0", NULL);
}

static void setup_mistakes(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	expect(125, "cannot open kernel /nonexistent", "run", "--kernel", "/nonexistent", NULL);
	expect(125, "no multiboot header", "run", "--kernel", "/bin/true", NULL);
	expect(125, "does not fit", "run", "--memory", "100T", NULL);
	expect(125, "too small", "run", "--memory", "1M", NULL);
	expect(125, "unknown serial backend", "run", "--serial", "tcp:1", NULL);
	expect(125, "needs ',server'", "run", "--serial", "unix:/tmp/x", NULL);
	expect(125, "only unix:PATH", "run", "--qmp", "tcp:localhost:4444", NULL);
	expect(125, "cannot listen on QMP socket", "run", "--qmp", "unix:/nonexistent/dir/q", NULL);
	expect(125, "more than KVM allows", "run", "--memslots", "100000", NULL);
	/* The guest itself rejects what it does not understand. */
	expect(2, "bad argument 'frobs'", "run", "--append", "frobs=1", NULL);
	expect(4, "does not fit", "run", "--memory", "64M", "--append", "ws=1G", NULL);
}

static void no_kvm_explained(void **state)
{
	(void)state;
	setenv("TERN_KVM_DEVICE", "/nonexistent/kvm", 1);
	expect(125, "offers no KVM", "run", NULL);
	unsetenv("TERN_KVM_DEVICE");
}

static void no_permission_explained(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/kvm", F_OK) != 0 || !harness_have("setpriv")) {
		print_message("    skipped: needs root, /dev/kvm and setpriv to drop privileges\n");
		skip();
	}
	/* As an unprivileged user, /dev/kvm (mode 0660 root:kvm or 0600) is shut. */
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "setpriv --reuid=65534 --regid=65534 --clear-groups %s run 2>&1 | "
		 "grep -q \"no permission to open /dev/kvm: add your user to the 'kvm' group\"",
		 harness_tern());
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(usage_and_version),
		cmocka_unit_test(option_mistakes),
		cmocka_unit_test(setup_mistakes),
		cmocka_unit_test(no_kvm_explained),
		cmocka_unit_test(no_permission_explained),
	};
	return cmocka_run_group_tests_name("tern_cli", tests, NULL, NULL);
}
