/*
 * cpr-exec to programs that do not take the guest, one after another in
 * one running guest: a missing or unrunnable file, a tern that refuses its
 * command line or cannot load the state, programs that are not tern
 * (/bin/false, /bin/true), wrappers that break the environment or sleep
 * past x-cpr-timeout, and terns that crash or hang right after taking in
 * the state.  After each the guest runs on -- in the previous binary, in
 * the guardian's process, or in a new tern that did take it -- verifies
 * its memory, answers on its QMP socket, and its VMM holds no more fds
 * than before.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "cpr_support.h"
#include "kvm_skip.h"

#define TIMEOUT_MS 2000 /* x-cpr-timeout for these updates (stretched by time_scale) */

/* One row of the table: cpr-exec-command, and what query-migrate says. */
struct hostile {
	const char *what;
	/* "@" is this build's tern, "%" a file in the VM's directory, "#" twice
	 * x-cpr-timeout in seconds */
	const char *argv[6];
	const char *says;    /* in error-desc; NULL: the update completes */
};

static const struct hostile table[] = {
	{ "a missing file", { "/nonexistent/tern", "run" }, "cannot run" },
	{ "a directory", { "%dir", "run" }, "cannot run" },
	{ "a file without x", { "%nox", "run" }, "cannot run" },
	{ "a bad ELF", { "%badelf", "run" }, "cannot run" },
	{ "a bad shebang", { "%shebang", "run" }, "cannot run" },
	{ "tern run --no-such-option", { "@", "run", "--no-such-option" },
	  "refused its command line" },
	{ "tern frobnicate", { "@", "frobnicate" }, "`tern frobnicate`, not `tern run`" },
	{ "bare tern", { "@" }, "`tern`, not `tern run`" },
	{ "/bin/false", { "/bin/false" }, "exited with status 1 before it took the guest" },
	{ "/bin/true", { "/bin/true" }, "exited with status 0 before it took the guest" },
	{ "TERN_CPR_STATE=999", { "/bin/sh", "-c", "TERN_CPR_STATE=999 exec \"$0\" run", "@" },
	  NULL },
	{ "TERN_CPR_STATE unset", { "/bin/sh", "-c", "unset TERN_CPR_STATE; exec \"$0\" run", "@" },
	  NULL },
	{ "the guardian unset", { "/bin/sh", "-c", "unset TERN_CPR_GUARDIAN; exec \"$0\" run", "@" },
	  "did not take the guest within" },
	{ "an empty environment", { "/usr/bin/env", "-i", "@", "run" },
	  "did not take the guest within" },
	{ "a wrapper that sleeps past the bound", { "/bin/sh", "-c", "sleep \"$1\"; exec \"$0\" run", "@", "#" },
	  "did not take the guest within" },
	{ "tern-cpr-next", { "@-cpr-next", "run" }, "the previous binary resumed it" },
	{ "a tern that crashes after taking the state", { "@-cpr-crash", "run" },
	  "before it took the guest" },
	{ "a tern that hangs after taking the state", { "@-cpr-hang", "run" },
	  "did not take the guest within" },
	{ "this tern", { "@", "run" }, NULL },
};

/* The files some rows run, in the VM's directory. */
static void make_files(const struct tern_vm *vm)
{
	char path[300];
	mkdir(tern_vm_path(vm, "dir", path, sizeof path), 0755);
	static const struct {
		const char *name, *text;
		mode_t mode;
	} files[] = {
		{ "nox", "#!/bin/sh\nexit 0\n", 0644 },
		{ "badelf", "\177ELF\2\1\1 this is not an executable", 0755 },
		{ "shebang", "#!/nonexistent/interpreter\n", 0755 },
	};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		tern_vm_path(vm, files[i].name, path, sizeof path);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, files[i].mode);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, files[i].text, strlen(files[i].text)),
				 (ssize_t)strlen(files[i].text));
		close(fd);
		chmod(path, files[i].mode);
	}
}

static void set_command(struct qmp_conn *q, const struct tern_vm *vm, const struct hostile *h)
{
	json_t *cmd = json_array();
	for (int i = 0; i < 6 && h->argv[i] != NULL; i++) {
		char arg[PATH_MAX + 64];
		if (h->argv[i][0] == '#')
			snprintf(arg, sizeof arg, "%d", 2 * TIMEOUT_MS * time_scale() / 1000);
		else if (h->argv[i][0] == '@')
			snprintf(arg, sizeof arg, "%s%s", cpr_tern_path, h->argv[i] + 1);
		else if (h->argv[i][0] == '%')
			tern_vm_path(vm, h->argv[i] + 1, arg, sizeof arg);
		else
			snprintf(arg, sizeof arg, "%s", h->argv[i]);
		json_array_append_new(cmd, json_string(arg));
	}
	json_t *args = json_pack("{s:s,s:o,s:i}", "mode", "cpr-exec", "cpr-exec-command", cmd,
				 "x-cpr-timeout", TIMEOUT_MS * time_scale());
	assert_int_equal(qmp_do(q, "migrate-set-parameters", args, NULL, 10000), 0);
}

/* Does process pid hold an fd whose "dev:ino" is ident? */
static int holds_file(const char *pid, const char *ident)
{
	char dir[300];
	snprintf(dir, sizeof dir, "/proc/%s/fd", pid);
	DIR *d = opendir(dir);
	int held = 0;
	struct dirent *e;
	while (d != NULL && !held && (e = readdir(d)) != NULL) {
		char path[600], mine[64];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) < 0)
			continue;
		snprintf(mine, sizeof mine, "%llu:%llu", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		held = strcmp(mine, ident) == 0;
	}
	if (d != NULL)
		closedir(d);
	return held;
}

static int is_keeper(const char *pid)
{
	char path[300], comm[64] = "";
	snprintf(path, sizeof path, "/proc/%s/comm", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	int keeper = fgets(comm, sizeof comm, f) != NULL && strcmp(comm, "tern-mm-keeper\n") == 0;
	fclose(f);
	return keeper;
}

/* The one process (keepers aside) holding the guest's RAM memfd (ram is
 * its identity): the VMM, which after a fallback by the guardian is no
 * longer the process the test started.  0 while there is not exactly one. */
static pid_t vmm_pid(const char *ram)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	pid_t pid = 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || !holds_file(e->d_name, ram) ||
		    is_keeper(e->d_name))
			continue;
		pid = (pid_t)atoi(e->d_name);
		n++;
	}
	closedir(d);
	return n == 1 ? pid : 0;
}

static int count_fds(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The VMM as last seen: after a fallback by the guardian it is no child of
 * this test, so a failed test ends it here (the group's teardown). */
static pid_t last_vmm;

static int end_last_vmm(void **state)
{
	(void)state;
	if (last_vmm > 0)
		kill(last_vmm, SIGKILL);
	return 0;
}

/* The signals the VMM's main thread blocks (a guardian blocks them all:
 * its fallback must not pass that on). */
static unsigned long long blocked_signals(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	unsigned long long mask = 0;
	while (fgets(line, sizeof line, f) != NULL)
		sscanf(line, "SigBlk: %llx", &mask);
	fclose(f);
	return mask;
}

/* The VMM settles after an update (the old VM and the guardian go in a
 * thread): its fd count once it stops changing. */
static int settled_fds(const char *ram, pid_t *pid)
{
	int last = -1;
	for (int i = 0; i < 100 * time_scale(); i++) {
		*pid = vmm_pid(ram);
		if (*pid > 0)
			last_vmm = *pid;
		int n = *pid > 0 ? count_fds(*pid) : -1;
		if (n >= 0 && n == last && i >= 5)
			return n;
		last = n;
		usleep(50000);
	}
	fail_msg("the VMM holding the RAM memfd %s did not settle", ram);
	return -1;
}

static void guest_verifies(struct cpr_guest *g)
{
	assert_int_equal(send(g->fd, "verify\n", 7, 0), 7);
	g->at = text_stream_wait(&g->serial, (size_t)g->at, "verify ok (command)",
				 30000 * time_scale());
	assert_true(g->at >= 0);
}

static void hostile_programs_never_lose_the_guest(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct cpr_guest g;
	struct qmp_conn q;
	char ser[256], spec[300];
	memset(&g, 0, sizeof g);
	assert_int_equal(tern_vm_prepare(&g.vm), 0);
	make_files(&g.vm);
	tern_vm_path(&g.vm, "serial.sock", ser, sizeof ser);
	snprintf(spec, sizeof spec, "unix:%s,server", ser);
	assert_int_equal(tern_vm_start(&g.vm, "--memory", "64M", "--serial", spec, "--append",
				       "workload=random ws=16M rate=20000 seed=5", NULL),
			 0);
	g.fd = guest_serial_attach(ser, &g.serial, "tern-guest: start", &g.at);
	assert_true(g.fd >= 0);
	assert_int_equal(qmp_connect(&q, g.vm.qmp_path, 1, 10000), 0);

	/* The baseline: a VMM that itself came from a cpr-exec. */
	cpr_update_by_exec(&q);
	json_t *ids = cpr_identities(&q, g.vm.proc.pid);
	char ram[96];
	snprintf(ram, sizeof ram, "%s", cpr_memfd_identity(ids));
	json_decref(ids);
	pid_t pid;
	int fds = settled_fds(ram, &pid);
	unsigned long long blocked = blocked_signals(pid);

	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct hostile *h = &table[i];
		print_message("cpr-exec to %s\n", h->what);
		set_command(&q, &g.vm, h);
		assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000),
				 0);
		json_t *r = mig_wait(&q, 20, 30000, NULL, NULL);
		if (r == NULL)
			fail_msg("%s: the update did not end", h->what);
		const char *status = json_string_value(json_object_get(r, "status"));
		const char *why = json_string_value(json_object_get(r, "error-desc"));
		print_message("  %s%s%s\n", status, why ? ": " : "", why ? why : "");
		if (h->says == NULL)
			assert_string_equal(status, "completed");
		else if (strcmp(status, "failed") != 0 || why == NULL || strstr(why, h->says) == NULL)
			fail_msg("%s: %s '%s', not failed saying '%s'", h->what, status,
				 why ? why : "", h->says);
		json_decref(r);

		/* Running, verified, and answering a new QMP client too. */
		json_t *st = cpr_query(&q, "query-status");
		assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
		json_decref(st);
		guest_verifies(&g);
		struct qmp_conn fresh;
		assert_int_equal(qmp_connect(&fresh, g.vm.qmp_path, 1, 10000), 0);
		st = cpr_query(&fresh, "query-status");
		assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
		json_decref(st);
		qmp_close(&fresh);

		pid_t now;
		int n = settled_fds(ram, &now);
		if (n != fds)
			fail_msg("%s: the VMM (pid %d) holds %d fds, %d before", h->what, (int)now, n,
				 fds);
		if (blocked_signals(now) != blocked)
			fail_msg("%s: the VMM blocks signals %llx, %llx before", h->what,
				 blocked_signals(now), blocked);
		cpr_expect_keeper_released(now);
		pid = now;
	}

	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	qmp_close(&q);
	for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
		usleep(50000);
	last_vmm = 0;
	text_stream_free(&g.serial);
	close(g.fd);
	tern_vm_end(&g.vm);
}

/* cpr-transfer to a socket where nothing answers: the guest runs and QMP
 * is served while the old tern waits for the RAM to be mapped, and the
 * update then fails with the guest running as before. */
static void qmp_is_served_while_the_new_tern_is_reached(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct cpr_guest g;
	struct qmp_conn q;
	cpr_boot_idle(&g, "4", &q);
	char path[100];
	tern_vm_path(&g.vm, "silent.sock", path, sizeof path);
	int silent = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	assert_int_equal(bind(silent, (struct sockaddr *)&addr, sizeof addr), 0);
	assert_int_equal(listen(silent, 1), 0); /* and never accepts */
	cpr_transfer(&q, path);
	for (int i = 0; i < 3; i++) {
		json_t *r = qmp_execute(&q, "query-migrate", NULL, 2000 * time_scale());
		if (r == NULL)
			fail_msg("QMP did not answer while the update waited for the new tern");
		assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
				    "active");
		json_decref(r);
		json_t *st = cpr_query(&q, "query-status");
		assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
		json_decref(st);
		usleep(300000);
	}
	json_t *r = mig_wait(&q, 50, 30000, NULL, NULL);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
	assert_non_null(strstr(json_string_value(json_object_get(r, "error-desc")),
			       "did not take the RAM"));
	json_decref(r);
	cpr_ring(&g, 1); /* the guest answers */
	close(silent);
	cpr_end_guest(&g, &q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_programs_never_lose_the_guest),
		cmocka_unit_test(qmp_is_served_while_the_new_tern_is_reached),
	};
	return cmocka_run_group_tests(tests, cpr_setup, end_last_vmm);
}
