/* Running the tern binary; see tern.h. */
#include "tern.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"

#define MAX_ARGS 64

int tern_spawnv(struct proc *p, int want_stdin, const char *const *args)
{
	char *argv[MAX_ARGS + 2];
	int n = 0;
	argv[n++] = (char *)harness_tern();
	for (; args[n - 1] != NULL; n++) {
		if (n > MAX_ARGS)
			return -E2BIG;
		argv[n] = (char *)args[n - 1];
	}
	argv[n] = NULL;
	return proc_spawn(p, argv, want_stdin);
}

int tern_vm_prepare(struct tern_vm *vm)
{
	memset(vm, 0, sizeof *vm);
	vm->dir = harness_tmpdir();
	if (vm->dir == NULL)
		return -errno;
	tern_vm_path(vm, "qmp.sock", vm->qmp_path, sizeof vm->qmp_path);
	return 0;
}

int tern_vm_startv(struct tern_vm *vm, const char *const *extra)
{
	if (vm->dir == NULL) {
		const char *netns = vm->netns; /* set by the caller on a zeroed vm */
		int rc = tern_vm_prepare(vm);
		if (rc < 0)
			return rc;
		vm->netns = netns;
	}
	char spec[300];
	snprintf(spec, sizeof spec, "unix:%s", vm->qmp_path);
	const char *args[MAX_ARGS + 8];
	int n = 0;
	if (vm->netns != NULL) {
		const char *wrap[] = { "ip", "netns", "exec", vm->netns, harness_tern() };
		for (size_t i = 0; i < sizeof wrap / sizeof wrap[0]; i++)
			args[n++] = wrap[i];
	} else {
		args[n++] = harness_tern();
	}
	args[n++] = "run";
	args[n++] = "--qmp";
	args[n++] = spec;
	for (int i = 0; n < MAX_ARGS && extra[i] != NULL; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	/* proc_spawn runs argv[0] as a path: find ip on PATH by hand. */
	if (vm->netns != NULL)
		args[0] = access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
	return proc_spawn(&vm->proc, (char *const *)args, 0);
}

int tern_vm_start(struct tern_vm *vm, ...)
{
	const char *args[MAX_ARGS + 1];
	int n = 0;
	va_list ap;
	va_start(ap, vm);
	for (const char *a; n < MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return tern_vm_startv(vm, args);
}

const char *tern_vm_path(const struct tern_vm *vm, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", vm->dir, name);
	return buf;
}

void tern_vm_end(struct tern_vm *vm)
{
	proc_free(&vm->proc);
	harness_rmtree(vm->dir);
	free(vm->dir);
	vm->dir = NULL;
}

int tern_spawn(struct proc *p, int want_stdin, ...)
{
	const char *args[MAX_ARGS + 1];
	int n = 0;
	va_list ap;
	va_start(ap, want_stdin);
	for (const char *a; n < MAX_ARGS && (a = va_arg(ap, const char *)) != NULL;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return tern_spawnv(p, want_stdin, args);
}
