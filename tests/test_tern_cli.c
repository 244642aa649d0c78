/* The tern command line: clear messages and non-zero exits for mistakes,
 * actionable errors when KVM is missing or not allowed, and the figures
 * `tern migrate` closes with. */
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

/* A number after `label` in tern migrate's table ("  total time   913 ms"):
 * the first number on that line, with the unit word after it in unit. */
static double table_number(const char *out, const char *label, char *unit, size_t unit_len)
{
	const char *at = strstr(out, label);
	if (at == NULL)
		fail_msg("no '%s' in tern migrate's output:\n%s", label, out);
	double v;
	char word[16] = "";
	if (sscanf(at + strlen(label), " %lf %15s", &v, word) < 1)
		fail_msg("no number after '%s' in:\n%s", label, out);
	snprintf(unit, unit_len, "%s", word);
	return v;
}

static double bytes_of(double v, const char *unit)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	for (int i = 0; i < 5; i++, v *= 1024)
		if (strcmp(unit, units[i]) == 0)
			return v;
	fail_msg("unknown unit '%s'", unit);
	return 0;
}

/* tern migrate moves a small guest and closes with its figures; the
 * bandwidth is the average while sending, transferred over total time
 * less setup (it once printed tern's planning estimate: 0.36 Gbit/s for
 * 277 MiB in 1.3 s). */
static void migrate_command_figures(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm src = { 0 }, dst = { 0 };
	char uri[300], path[256], qmp[300], unit[16];
	assert_int_equal(tern_vm_prepare(&dst), 0);
	snprintf(uri, sizeof uri, "unix:%s", tern_vm_path(&dst, "mig.sock", path, sizeof path));
	/* Sparse writes with XBZRLE: rounds that send little, after which
	 * tern's estimate of the link was well below the average. */
	assert_int_equal(mig_start_destination(&dst, uri, "--memory", "256M", NULL), 0);
	assert_int_equal(tern_vm_start(&src, "--memory", "256M", "--append",
				       "workload=sparse ws=128M fill=1 rate=50000 seed=7", NULL), 0);
	if (proc_wait_for(&src.proc, "tern-guest: filled", 0, 30000) < 0)
		fail_msg("the source's guest did not fill its memory:\n%s", proc_output(&src.proc));
	snprintf(qmp, sizeof qmp, "unix:%s", src.qmp_path);
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "migrate", "-q", "--xbzrle", "--qmp", qmp, uri, NULL), 0);
	int status = proc_wait(&p, 60000);
	const char *out = proc_output(&p);
	if (status != 0 || strstr(out, "migration completed") == NULL)
		fail_msg("tern migrate exited %d:\n%s", status, out);
	double total = table_number(out, "total time", unit, sizeof unit);
	double setup = table_number(out, "setup time", unit, sizeof unit);
	double bytes = table_number(out, "transferred", unit, sizeof unit);
	bytes = bytes_of(bytes, unit);
	assert_true(bytes >= 128e6 && total > setup);
	double gbps = table_number(out, "bandwidth", unit, sizeof unit);
	assert_string_equal(unit, "Gbit/s");
	/* The table's bytes are rounded to three figures, its times to 1 ms. */
	double expect = bytes * 8 / (total - setup) / 1e6;
	if (gbps < expect * 0.9 - 0.01 || gbps > expect * 1.1 + 0.01)
		fail_msg("bandwidth %.2f Gbit/s, but %.0f bytes in %.0f ms less %.0f ms of setup "
			 "is %.2f Gbit/s:\n%s", gbps, bytes, total, setup, expect, out);
	assert_non_null(strstr(out, "last measured rate"));
	proc_free(&p);
	tern_vm_end(&src);
	tern_vm_end(&dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(usage_and_version),
		cmocka_unit_test(option_mistakes),
		cmocka_unit_test(setup_mistakes),
		cmocka_unit_test(no_kvm_explained),
		cmocka_unit_test(no_permission_explained),
		cmocka_unit_test(migrate_command_figures),
	};
	return cmocka_run_group_tests_name("tern_cli", tests, NULL, NULL);
}
