/* Migration sources and destinations of QEMU and tern; see mig_vmm.h. */
#include "mig_vmm.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "env.h"
#include "qemu.h"

#define QMP_START_MS 30000

const char *const mig_vmm_names[MIG_VMMS] = { "qemu", "tern" };

/* The first line of text in s, printable ASCII only (a VMM's output may
 * hold anything), at most len - 1 bytes. */
static void first_line(const char *s, char *out, size_t len)
{
	size_t n = 0;
	while (*s == '\n' || *s == '\r' || *s == ' ')
		s++;
	for (; *s != '\0' && *s != '\n' && n + 1 < len; s++)
		out[n++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
	out[n] = '\0';
}

/* Why a VMM did not come up: its own words if it said any. */
static void explain(struct mig_vm *vm, const char *role, const char *what, char *why,
		    size_t len)
{
	char said[200];
	first_line(proc_output(&vm->proc), said, sizeof said);
	if (proc_exited(&vm->proc))
		snprintf(why, len, "the %s exited (status %d)%s%s", role, vm->proc.status,
			 said[0] ? ": " : "", said);
	else
		snprintf(why, len, "the %s %s%s%s", role, what, said[0] ? "; it said: " : "", said);
}

static int spawn(struct mig_vm *vm, const struct mig_vm_spec *s)
{
	char memory[32], serial[320], qmp[340];
	const char *argv[40];
	int n = 0;
	snprintf(serial, sizeof serial, "file:%s", vm->serial_path);
	if (s->vmm == MIG_QEMU) {
		snprintf(memory, sizeof memory, "%u", s->memory_mib);
		snprintf(qmp, sizeof qmp, "unix:%s,server=on,wait=off", vm->qmp_path);
		const char *cpu = harness_qemu_cpu();
		const char *base[] = { "/usr/bin/env", "qemu-system-x86_64", "-enable-kvm", "-cpu",
				       cpu ? cpu : "host", "-smp", "1", "-m", memory, "-display",
				       "none", "-nodefaults", "-no-reboot", "-serial", serial, "-qmp",
				       qmp, "-kernel", harness_guest_elf() };
		for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
			argv[n++] = base[i];
		if (s->incoming != NULL) {
			argv[n++] = "-incoming";
			argv[n++] = s->incoming;
		} else {
			argv[n++] = "-append";
			argv[n++] = s->append;
			if (s->prealloc)
				argv[n++] = "-mem-prealloc";
		}
	} else {
		snprintf(memory, sizeof memory, "%uM", s->memory_mib);
		snprintf(qmp, sizeof qmp, "unix:%s", vm->qmp_path);
		const char *base[] = { harness_tern(), "run", "--memory", memory, "--serial", serial,
				       "--qmp", qmp };
		for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
			argv[n++] = base[i];
		if (s->incoming != NULL) {
			argv[n++] = "--incoming";
			argv[n++] = s->incoming;
		} else {
			argv[n++] = "--append";
			argv[n++] = s->append;
			if (s->prealloc)
				argv[n++] = "--mem-prealloc";
		}
	}
	argv[n] = NULL;
	return proc_spawn(&vm->proc, (char *const *)argv, 0);
}

int mig_vm_start(struct mig_vm *vm, const char *dir, const char *role,
		 const struct mig_vm_spec *spec, char *why, size_t why_len)
{
	memset(vm, 0, sizeof *vm);
	vm->q.fd = -1;
	snprintf(vm->qmp_path, sizeof vm->qmp_path, "%s/%s.qmp", dir, role);
	snprintf(vm->serial_path, sizeof vm->serial_path, "%s/%s.log", dir, role);
	if (spawn(vm, spec) != 0) {
		snprintf(why, why_len, "cannot run %s", spec->vmm == MIG_QEMU ? "qemu-system-x86_64"
									: harness_tern());
		return -1;
	}
	/* Wait for the socket while watching the process, so that a VMM
	 * that died is noticed at once; then its greeting may take a while
	 * (QEMU greets only after -mem-prealloc), and EOF ends that wait. */
	double deadline = deadline_ms(QMP_START_MS);
	struct stat st;
	while (stat(vm->qmp_path, &st) != 0 && !proc_exited(&vm->proc) && now_ms() < deadline) {
		proc_output(&vm->proc);
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
	if (!proc_exited(&vm->proc) && qmp_connect(&vm->q, vm->qmp_path, 1, QMP_START_MS) == 0)
		return 0;
	qmp_close(&vm->q);
	explain(vm, role, "did not answer on QMP within 30 s", why, why_len);
	return -1;
}

void mig_vm_end(struct mig_vm *vm)
{
	if (vm->q.fd >= 0)
		qmp_close(&vm->q);
	vm->q.fd = -1;
	if (vm->proc.pid > 0) {
		proc_kill(&vm->proc, SIGKILL);
		proc_wait(&vm->proc, 10000);
	}
	proc_free(&vm->proc);
}

int mig_vm_wait_serial(struct mig_vm *vm, const char *needle, int timeout_ms)
{
	double deadline = deadline_ms(timeout_ms);
	while (now_ms() < deadline && !proc_exited(&vm->proc)) {
		FILE *f = fopen(vm->serial_path, "r");
		if (f != NULL) {
			char line[512];
			int found = 0;
			while (!found && fgets(line, sizeof line, f) != NULL)
				found = strstr(line, needle) != NULL;
			fclose(f);
			if (found)
				return 0;
		}
		proc_output(&vm->proc); /* keep its stdout pipe from filling */
		struct timespec nap = { 0, 20000000 };
		nanosleep(&nap, NULL);
	}
	return -1;
}

int mig_vm_incoming(struct mig_vm *vm, const char *uri, char *why, size_t why_len)
{
	json_t *r = qmp_execute(&vm->q, "migrate-incoming", json_pack("{s:s}", "uri", uri), 10000);
	int ok = qmp_return(r) != NULL;
	if (!ok) {
		const char *desc = json_string_value(json_object_get(json_object_get(r, "error"),
								      "desc"));
		snprintf(why, why_len, "migrate-incoming on the destination: %s",
			 desc ? desc : "no answer");
	}
	json_decref(r);
	return ok ? 0 : -1;
}

const char *mig_qemu_version(const struct mig_vm *vm, char *buf, size_t len)
{
	json_t *v = json_object_get(json_object_get(json_object_get(vm->q.greeting, "QMP"),
						    "version"), "qemu");
	if (v == NULL)
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%lld.%lld.%lld",
			 (long long)json_integer_value(json_object_get(v, "major")),
			 (long long)json_integer_value(json_object_get(v, "minor")),
			 (long long)json_integer_value(json_object_get(v, "micro")));
	return buf;
}

unsigned long long mig_mem_available_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (f == NULL)
		return 0;
	char line[128];
	unsigned long long kib = 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib / 1024;
}
