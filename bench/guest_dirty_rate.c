/*
 * The built-in guest's page-dirtying rate per workload, and the time from
 * starting the VMM to the guest's first instruction in ring 3, under tern
 * and under QEMU with KVM (the baseline), interleaved in one run.
 *
 *   guest_dirty_rate [--reps N] [--seconds S] [--ws SIZE] [--csv]
 *
 * The rate is what the guest counts (page writes per second): over its
 * whole run, and "steady" from its 1-second status line to the end, which
 * leaves out most of the first-touch cost of fresh RAM.  Boot time is
 * measured by this program from spawning the VMM to reading the guest's
 * "ring 3 reached" line on the serial console.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/stats.h"
#include "../harness/env.h"
#include "../harness/proc.h"
#include "../harness/qemu.h"

enum { VMM_QEMU, VMM_TERN, VMM_TERN_PREALLOC, VMMS };
static const char *const vmm_names[VMMS] = { "qemu-kvm", "tern", "tern-prealloc" };
static const char *const workloads[] = { "idle", "random", "sequential", "hotcold", "sparse" };
#define WORKLOADS (sizeof workloads / sizeof workloads[0])
#define MAX_REPS 31

struct sample {
	double rate, steady, boot_ms;
};

static double field(const char *line, const char *key)
{
	const char *p = line ? strstr(line, key) : NULL;
	return p ? strtod(p + strlen(key), NULL) : NAN;
}

static int run_once(int vmm, const char *workload, int seconds, const char *ws, struct sample *s)
{
	char append[256];
	snprintf(append, sizeof append, "workload=%s ws=%s seconds=%d report=1 verify=0", workload,
		 ws, seconds);
	char *argv[32];
	int n = 0;
	if (vmm == VMM_QEMU) {
		const char *cpu = harness_qemu_cpu();
		if (cpu == NULL)
			return -1;
		char *const qemu[] = { "/usr/bin/env", "qemu-system-x86_64", "-enable-kvm",
					      "-cpu", (char *)cpu, "-m", "512", "-display", "none",
					      "-nodefaults", "-no-reboot", "-serial", "stdio",
					      "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
					      "-kernel" };
		for (; n < (int)(sizeof qemu / sizeof qemu[0]); n++)
			argv[n] = qemu[n];
		argv[n++] = (char *)harness_guest_elf();
		argv[n++] = "-append";
	} else {
		argv[n++] = (char *)harness_tern();
		argv[n++] = "run";
		argv[n++] = "--memory";
		argv[n++] = "512M";
		if (vmm == VMM_TERN_PREALLOC)
			argv[n++] = "--mem-prealloc";
		argv[n++] = "--append";
	}
	argv[n++] = append;
	argv[n] = NULL;

	struct proc p;
	double t0 = now_ms();
	if (proc_spawn(&p, argv, 0) != 0)
		return -1;
	long at = proc_wait_for(&p, "tern-guest: ring 3 reached", 0, 60000);
	s->boot_ms = now_ms() - t0;
	int status = proc_wait(&p, (seconds + 60) * 1000);
	const char *out = proc_output(&p);
	const char *done = strstr(out, "tern-guest: done");
	const char *first = strstr(out, "tern-guest: status");
	int ok = at > 0 && done != NULL && status == (vmm == VMM_QEMU ? 1 : 0);
	if (!ok)
		fprintf(stderr, "%s %s failed (status %d):\n%s\n", vmm_names[vmm], workload, status,
			out);
	s->rate = field(done, "rate=");
	double w1 = field(first, "writes="), t1 = field(first, "elapsed_ms=");
	double w2 = field(done, "writes="), t2 = field(done, "elapsed_ms=");
	s->steady = first && t2 > t1 ? (w2 - w1) * 1000.0 / (t2 - t1) : NAN;
	proc_free(&p);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	int reps = 3, seconds = 4, csv = 0;
	const char *ws = "64M";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--ws") == 0 && i + 1 < argc)
			ws = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--reps N] [--seconds S] [--ws SIZE] [--csv]\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || seconds < 2) {
		fprintf(stderr, "--reps must be 1..%d and --seconds at least 2\n", MAX_REPS);
		return 2;
	}
	char why[256];
	if (!harness_kvm_usable(why, sizeof why)) {
		fprintf(stderr, "guest_dirty_rate needs KVM: %s\n", why);
		return 1;
	}
	int have_qemu = harness_have("qemu-system-x86_64") && harness_qemu_cpu() != NULL;
	if (have_qemu)
		fprintf(stderr, "qemu runs with -cpu %s\n", harness_qemu_cpu());
	else
		fprintf(stderr, "qemu: not installed, or starts with no -cpu model here (tried host, "
			"host,-arch-capabilities, max, qemu64): no QEMU column\n");
	static struct sample samples[WORKLOADS][VMMS][MAX_REPS];
	for (int r = 0; r < reps; r++)
		for (unsigned w = 0; w < WORKLOADS; w++)
			for (int v = 0; v < VMMS; v++) {
				struct sample *s = &samples[w][v][r];
				*s = (struct sample){ NAN, NAN, NAN };
				if ((v != VMM_QEMU || have_qemu) && run_once(v, workloads[w], seconds, ws, s) != 0)
					return 1;
			}

	double med[WORKLOADS][VMMS][3];
	for (unsigned w = 0; w < WORKLOADS; w++)
		for (int v = 0; v < VMMS; v++) {
			double a[MAX_REPS], b[MAX_REPS], c[MAX_REPS];
			for (int r = 0; r < reps; r++) {
				a[r] = samples[w][v][r].rate;
				b[r] = samples[w][v][r].steady;
				c[r] = samples[w][v][r].boot_ms;
			}
			med[w][v][0] = harness_median(a, reps);
			med[w][v][1] = harness_median(b, reps);
			med[w][v][2] = harness_median(c, reps);
		}

	if (csv) {
		printf("workload,vmm,rate_pages_per_s,steady_pages_per_s,boot_to_ring3_ms\n");
		for (unsigned w = 0; w < WORKLOADS; w++)
			for (int v = 0; v < VMMS; v++)
				printf("%s,%s,%.0f,%.0f,%.1f\n", workloads[w], vmm_names[v], med[w][v][0],
				       med[w][v][1], med[w][v][2]);
		return 0;
	}
	printf("guest page-dirtying rate, built-in guest, ws=%s, %d s runs, median of %d, "
	       "interleaved\n\n", ws, seconds, reps);
	printf("%-11s %-14s %14s %14s %16s\n", "workload", "vmm", "rate (pg/s)", "steady (pg/s)",
	       "boot->ring3 (ms)");
	for (unsigned w = 0; w < WORKLOADS; w++) {
		for (int v = 0; v < VMMS; v++)
			printf("%-11s %-14s %14.0f %14.0f %16.1f\n", workloads[w], vmm_names[v],
			       med[w][v][0], med[w][v][1], med[w][v][2]);
		if (have_qemu && med[w][VMM_QEMU][1] > 0)
			printf("%-11s %-14s %13.2fx %13.2fx %15.2fx\n", "", "tern/qemu",
			       med[w][VMM_TERN][0] / med[w][VMM_QEMU][0],
			       med[w][VMM_TERN][1] / med[w][VMM_QEMU][1],
			       med[w][VMM_TERN][2] / med[w][VMM_QEMU][2]);
	}
	printf("\nrate: guest-counted page writes per second over the whole run; steady: from the "
	       "guest's 1 s\nstatus line to the end; boot->ring3: spawn to the guest's first "
	       "ring-3 line on the console.\n");
	return 0;
}
