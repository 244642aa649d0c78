/* Running the tern binary; see tern.h. */
#include "tern.h"

#include <errno.h>
#include <stdarg.h>

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
