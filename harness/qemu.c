/* QEMU as a baseline; see qemu.h. */
#include "qemu.h"

#include <stddef.h>

#include "proc.h"

#define PROBE_MS 1500

/* Does QEMU start a (stopped) KVM machine with this CPU?  The MSR abort
 * comes at machine creation, well inside PROBE_MS. */
static int starts(const char *cpu)
{
	char *argv[] = { "/usr/bin/env", "qemu-system-x86_64", "-enable-kvm", "-cpu",
			 (char *)cpu, "-S", "-m", "64", "-display", "none", "-nodefaults",
			 "-monitor", "none", "-serial", "none", NULL };
	struct proc p;
	if (proc_spawn(&p, argv, 0) != 0)
		return 0;
	int alive = proc_wait(&p, PROBE_MS) == -1; /* killed at the deadline: it ran */
	proc_free(&p);
	return alive;
}

const char *harness_qemu_cpu(void)
{
	static const char *const models[] = { "host", "host,-arch-capabilities", "max", "qemu64" };
	static int probed;
	static const char *chosen;
	if (!probed) {
		probed = 1;
		for (size_t i = 0; chosen == NULL && i < sizeof models / sizeof models[0]; i++)
			if (starts(models[i]))
				chosen = models[i];
	}
	return chosen;
}
