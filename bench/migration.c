/*
 * Live migration, tern against QEMU on the same guest: the built-in guest
 * (a 1 GiB buffer in a 1280 MiB VM, 1 vCPU) migrated QEMU->QEMU with
 * qemu-system-x86_64 -enable-kvm -kernel, and tern->tern, over loopback
 * TCP, with the same workload and the same settings, interleaved in one run.
 *
 *   migration [--reps N] [--scenario NAME] [--csv]
 *
 * Scenarios:
 *   idle    an idle guest whose 1 GiB buffer holds data, unlimited bandwidth
 *   sparse  64-byte writes at 50k pages/s over 256 MiB, XBZRLE, 128 MiB/s
 *   full    whole-page rewrites at 20k pages/s over 256 MiB, 128 MiB/s
 *   wild    sparse writes as fast as the guest goes over the whole 1 GiB,
 *           unlimited bandwidth
 *
 * Settings common to both: downtime limit 300 ms, XBZRLE cache 64 MiB (both
 * defaults); 128 MiB/s is QEMU's default bandwidth limit (tern's default is
 * none) and "unlimited" is 1 TiB/s for both.  Both sources preallocate
 * guest RAM (so that filling the buffer takes a second, not ten, on this
 * machine); both destinations run with their defaults.  A migration that has
 * not converged after 60 s is cancelled and counted as not converged.
 * Each figure is the median of N runs.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "../harness/proc.h"
#include "../harness/qemu.h"
#include "../harness/stats.h"
#include "../harness/tern.h"
#include "../vmm/qmp_client.h"

#define MEMORY_MIB "1280"
#define CONVERGE_MS 60000
#define MAX_REPS 15
#define UNLIMITED (1ll << 40)

struct scenario {
	const char *name, *what, *append;
	int xbzrle;
	long long bandwidth;
};

static const struct scenario scenarios[] = {
	{ "idle", "idle guest, 1 GiB of data, unlimited bandwidth",
	  "workload=idle ws=1G fill=1 seed=1", 0, UNLIMITED },
	{ "sparse", "64-byte writes, 50k pages/s over 256 MiB, XBZRLE, 128 MiB/s",
	  "workload=sparse ws=256M fill=1 rate=50000 seed=2", 1, 128ll << 20 },
	{ "full", "whole-page rewrites, 20k pages/s over 256 MiB, 128 MiB/s",
	  "workload=random ws=256M fill=1 rate=20000 seed=3", 0, 128ll << 20 },
	{ "wild", "sparse writes, unthrottled, over 1 GiB, unlimited bandwidth",
	  "workload=sparse ws=1G fill=1 seed=4", 0, UNLIMITED },
};
#define SCENARIOS (sizeof scenarios / sizeof scenarios[0])

enum { QEMU, TERN, VMMS };
static const char *const vmm_names[VMMS] = { "qemu", "tern" };

/* What one migration measured; NAN where the VMM did not say. */
enum metric {
	M_TOTAL, M_DOWNTIME, M_SETUP, M_BYTES, M_ZERO, M_NORMAL, M_XBZRLE, M_MISS, M_OVERFLOW,
	M_DELTA, M_SYNCS, M_CONVERGED, METRICS
};
static const char *const metric_names[METRICS] = {
	"total time ms", "downtime ms", "setup time ms", "transferred MiB", "zero pages",
	"whole pages", "xbzrle pages", "xbzrle cache misses", "xbzrle overflows",
	"block-delta pages", "dirty syncs", "converged",
};

struct side {
	struct proc proc;
	char qmp[300];
};

/* Spawn a source (uri NULL) or a destination of either VMM. */
static int spawn(int vmm, const char *dir, const char *role, const struct scenario *s,
		 const char *uri, struct side *out)
{
	char serial[320], qmp_spec[340];
	snprintf(out->qmp, sizeof out->qmp, "%s/%s.qmp", dir, role);
	snprintf(serial, sizeof serial, "file:%s/%s.log", dir, role);
	const char *argv[40];
	int n = 0;
	if (vmm == QEMU) {
		snprintf(qmp_spec, sizeof qmp_spec, "unix:%s,server=on,wait=off", out->qmp);
		const char *base[] = { "/usr/bin/env", "qemu-system-x86_64", "-enable-kvm", "-cpu",
				       harness_qemu_cpu(), "-smp", "1", "-m", MEMORY_MIB, "-display", "none",
				       "-nodefaults", "-no-reboot", "-serial", serial, "-qmp",
				       qmp_spec, "-kernel", harness_guest_elf(), "-append",
				       s->append };
		for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
			argv[n++] = base[i];
		if (uri != NULL) {
			argv[n++] = "-incoming";
			argv[n++] = uri;
		} else {
			argv[n++] = "-mem-prealloc";
		}
	} else {
		snprintf(qmp_spec, sizeof qmp_spec, "unix:%s", out->qmp);
		const char *base[] = { harness_tern(), "run", "--memory", MEMORY_MIB "M", "--serial",
				       serial, "--qmp", qmp_spec };
		for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
			argv[n++] = base[i];
		if (uri != NULL) {
			argv[n++] = "--incoming";
			argv[n++] = uri;
		} else {
			argv[n++] = "--mem-prealloc";
			argv[n++] = "--append";
			argv[n++] = s->append;
		}
	}
	argv[n] = NULL;
	return proc_spawn(&out->proc, (char *const *)argv, 0);
}

/* Wait until the source guest's serial log says its buffer is full. */
static int wait_filled(const char *dir, int timeout_ms)
{
	char path[320];
	snprintf(path, sizeof path, "%s/source.log", dir);
	double deadline = deadline_ms(timeout_ms);
	while (now_ms() < deadline) {
		FILE *f = fopen(path, "r");
		if (f != NULL) {
			char line[512];
			int found = 0;
			while (!found && fgets(line, sizeof line, f) != NULL)
				found = strstr(line, "tern-guest: filled") != NULL;
			fclose(f);
			if (found)
				return 0;
		}
		struct timespec nap = { 0, 50000000 };
		nanosleep(&nap, NULL);
	}
	return -1;
}

static double number(json_t *info, const char *path)
{
	long long v = mig_number(info, path);
	return v < 0 ? NAN : (double)v;
}

static int run_once(int vmm, const struct scenario *s, double out[METRICS])
{
	for (int m = 0; m < METRICS; m++)
		out[m] = NAN;
	char *dir = harness_tmpdir();
	if (dir == NULL)
		return -1;
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	struct side dst = { 0 }, src = { 0 };
	struct qmp_conn q = { .fd = -1 }, dq = { .fd = -1 };
	int rc = -1;
	if (spawn(vmm, dir, "destination", s, uri, &dst) != 0 ||
	    qmp_connect(&dq, dst.qmp, 1, 30000) != 0 || spawn(vmm, dir, "source", s, NULL, &src) != 0 ||
	    qmp_connect(&q, src.qmp, 1, 30000) != 0 || wait_filled(dir, 120000) != 0) {
		fprintf(stderr, "%s %s: could not start the VMs\n", vmm_names[vmm], s->name);
		if (src.proc.pid > 0)
			fprintf(stderr, "%s\n", proc_output(&src.proc));
		goto out;
	}
	sleep(1); /* the workload runs a while before the migration starts */
	json_t *caps = json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability", "xbzrle",
				 "state", s->xbzrle, "capability", "events", "state", 1);
	json_t *params = json_pack("{s:I,s:I,s:I}", "max-bandwidth", (json_int_t)s->bandwidth,
				   "downtime-limit", (json_int_t)300, "xbzrle-cache-size",
				   (json_int_t)(64 << 20));
	if (qmp_do(&q, "migrate-set-capabilities", caps, NULL, 10000) != 0 ||
	    qmp_do(&q, "migrate-set-parameters", params, NULL, 10000) != 0 ||
	    qmp_do(&q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000) != 0) {
		fprintf(stderr, "%s %s: could not start the migration\n", vmm_names[vmm], s->name);
		goto out;
	}
	json_t *info = mig_wait(&q, 20, CONVERGE_MS, NULL, NULL);
	int converged = info != NULL && strcmp(mig_status(info), "completed") == 0;
	if (info == NULL) { /* not converged in time: cancel */
		qmp_do(&q, "migrate_cancel", NULL, NULL, 10000);
		info = mig_wait(&q, 20, 30000, NULL, NULL);
	}
	if (info == NULL) {
		fprintf(stderr, "%s %s: no final status\n", vmm_names[vmm], s->name);
		goto out;
	}
	if (!converged && strcmp(mig_status(info), "cancelled") != 0)
		fprintf(stderr, "%s %s: migration %s: %s\n", vmm_names[vmm], s->name,
			mig_status(info), json_string_value(json_object_get(info, "error-desc")));
	/* QEMU says completed a moment before it has filled in the times. */
	for (int tries = 0; converged && number(info, "total-time") <= 0 && tries < 50; tries++) {
		struct timespec nap = { 0, 20000000 };
		nanosleep(&nap, NULL);
		json_t *r = qmp_execute(&q, "query-migrate", NULL, 10000);
		if (qmp_return(r) != NULL) {
			json_decref(info);
			info = json_incref(qmp_return(r));
		}
		json_decref(r);
	}
	out[M_CONVERGED] = converged;
	if (converged) {
		out[M_TOTAL] = number(info, "total-time");
		out[M_DOWNTIME] = number(info, "downtime");
		out[M_SETUP] = number(info, "setup-time");
	}
	out[M_BYTES] = number(info, "ram.transferred") / (1 << 20);
	out[M_ZERO] = number(info, "ram.duplicate");
	out[M_NORMAL] = number(info, "ram.normal");
	out[M_SYNCS] = number(info, "ram.dirty-sync-count");
	if (s->xbzrle) {
		out[M_XBZRLE] = number(info, "xbzrle-cache.pages");
		out[M_MISS] = number(info, "xbzrle-cache.cache-miss");
		out[M_OVERFLOW] = number(info, "xbzrle-cache.overflow");
		out[M_DELTA] = vmm == TERN ? number(info, "x-block-delta.pages") : 0;
	}
	json_decref(info);
	rc = 0;
out:
	if (q.fd >= 0)
		qmp_close(&q);
	if (dq.fd >= 0)
		qmp_close(&dq);
	proc_kill(&src.proc, SIGKILL);
	proc_kill(&dst.proc, SIGKILL);
	proc_wait(&src.proc, 10000);
	proc_wait(&dst.proc, 10000);
	proc_free(&src.proc);
	proc_free(&dst.proc);
	harness_rmtree(dir);
	free(dir);
	return rc;
}

static void print_value(double v)
{
	if (isnan(v))
		printf(" %14s", "-");
	else
		printf(" %14.0f", v);
}

int main(int argc, char **argv)
{
	int reps = 3, csv = 0;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--reps N] [--scenario idle|sparse|full|wild] [--csv]\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "--reps must be 1..%d\n", MAX_REPS);
		return 2;
	}
	char why[256];
	if (!harness_kvm_usable(why, sizeof why)) {
		fprintf(stderr, "migration needs KVM: %s\n", why);
		return 1;
	}
	if (!harness_have("qemu-system-x86_64")) {
		fprintf(stderr, "migration needs qemu-system-x86_64 (Debian: qemu-system-x86)\n");
		return 1;
	}
	const char *cpu = harness_qemu_cpu();
	if (cpu == NULL)
		fprintf(stderr, "qemu: starts with no -cpu model on this host (tried host, "
			"host,-arch-capabilities, max, qemu64): no QEMU column\n");
	static double samples[SCENARIOS][VMMS][METRICS][MAX_REPS];
	int got[SCENARIOS][VMMS] = { { 0 } };
	/* Interleaved: every scenario, both VMMs, each repetition; the VMM
	 * that goes first alternates. */
	for (int r = 0; r < reps; r++)
		for (size_t s = 0; s < SCENARIOS; s++) {
			if (only != NULL && strcmp(only, scenarios[s].name) != 0)
				continue;
			for (int k = 0; k < VMMS; k++) {
				int v = (k + r) % VMMS;
				if (v == QEMU && cpu == NULL)
					continue;
				double m[METRICS];
				if (run_once(v, &scenarios[s], m) != 0)
					continue;
				for (int i = 0; i < METRICS; i++)
					samples[s][v][i][got[s][v]] = m[i];
				got[s][v]++;
				fprintf(stderr, "  %s %s rep %d: total %.0f ms, downtime %.0f ms, %.0f MiB\n",
					scenarios[s].name, vmm_names[v], r + 1, m[M_TOTAL],
					m[M_DOWNTIME], m[M_BYTES]);
			}
		}
	if (csv)
		printf("scenario,vmm,runs,total_ms,downtime_ms,setup_ms,transferred_mib,zero_pages,"
		       "whole_pages,xbzrle_pages,xbzrle_misses,xbzrle_overflows,block_delta_pages,"
		       "dirty_syncs,converged_runs\n");
	else
		printf("live migration, tern against QEMU %s (-cpu %s), built-in guest, %s MiB VM, "
		       "loopback TCP, median of %d\n", "7.2", cpu ? cpu : "none starts", MEMORY_MIB,
		       reps);
	for (size_t s = 0; s < SCENARIOS; s++) {
		if (only != NULL && strcmp(only, scenarios[s].name) != 0)
			continue;
		double med[VMMS][METRICS];
		for (int v = 0; v < VMMS; v++)
			for (int i = 0; i < METRICS; i++) {
				/* Medians over the runs that have the figure. */
				double vals[MAX_REPS];
				int n = 0;
				for (int k = 0; k < got[s][v]; k++)
					if (!isnan(samples[s][v][i][k]))
						vals[n++] = samples[s][v][i][k];
				med[v][i] = i == M_CONVERGED ? n ? 0 : NAN : harness_median(vals, n);
				if (i == M_CONVERGED)
					for (int k = 0; k < n; k++)
						med[v][i] += vals[k];
			}
		if (csv) {
			for (int v = 0; v < VMMS; v++) {
				printf("%s,%s,%d", scenarios[s].name, vmm_names[v], got[s][v]);
				for (int i = 0; i < METRICS; i++)
					printf(isnan(med[v][i]) ? "," : ",%.0f", med[v][i]);
				printf("\n");
			}
			continue;
		}
		printf("\n%s: %s\n", scenarios[s].name, scenarios[s].what);
		printf("  %-22s %14s %14s %14s\n", "", "qemu", "tern", "tern/qemu");
		for (int i = 0; i < METRICS; i++) {
			if (!scenarios[s].xbzrle && (i == M_XBZRLE || i == M_MISS || i == M_OVERFLOW ||
						     i == M_DELTA))
				continue;
			printf("  %-22s", metric_names[i]);
			if (i == M_CONVERGED) {
				printf(" %11.0f/%-2d %11.0f/%-2d\n", med[QEMU][i], got[s][QEMU],
				       med[TERN][i], got[s][TERN]);
				continue;
			}
			print_value(med[QEMU][i]);
			print_value(med[TERN][i]);
			if (med[QEMU][i] > 0 && !isnan(med[TERN][i]))
				printf(" %13.2fx", med[TERN][i] / med[QEMU][i]);
			printf("\n");
		}
	}
	return 0;
}
