/*
 * Live migration, tern against QEMU on the same guest, in the flow users
 * (and libvirt) use: the built-in guest migrated QEMU->QEMU with
 * qemu-system-x86_64 -enable-kvm -kernel, and tern->tern, over loopback
 * TCP, with the same workload and the same settings, interleaved in one run.
 *
 *   migration [--reps N] [--scenario NAME[,NAME...]] [--csv]
 *
 * Two flows, side by side:
 *   users   once the source is ready, the destination is started with
 *           -incoming defer (tern: --incoming defer), QMP-connected, given
 *           migrate-incoming, and at its reply the source gets migrate
 *           (libvirt's order: nothing waits between the two)
 *   ahead   the destination is started first, given migrate-incoming at
 *           once, and migrate goes when the source is ready, at least
 *           AHEAD_MS later (time a destination may spend getting ready)
 *
 * Scenarios (1280 MiB VMs unless said otherwise, 1 vCPU):
 *   idle      an idle guest whose 1 GiB buffer holds data, unlimited bandwidth
 *   sparse    64-byte writes at 50k pages/s over 256 MiB, XBZRLE, 128 MiB/s
 *   full      whole-page rewrites at 20k pages/s over 256 MiB, 128 MiB/s
 *   wild      sparse writes as fast as the guest goes over the whole 1 GiB,
 *             unlimited bandwidth
 *   idle-4g   an idle 4 GiB guest, all of its RAM holding data, unlimited
 *   idle-16g  an idle 16 GiB guest with 2 GiB of data, the rest never
 *             written, unlimited; its sources are not preallocated, since a
 *             source and a destination of 16 GiB each do not fit in 24 GiB
 *
 * Settings common to both: downtime limit 300 ms, XBZRLE cache 64 MiB (both
 * defaults); 128 MiB/s is QEMU's default bandwidth limit (tern's default is
 * none) and "unlimited" is 1 TiB/s for both.  Sources preallocate guest RAM
 * (except idle-16g), so that filling the buffer takes seconds, not tens of
 * them, here; destinations run with their defaults.  A run that would not
 * fit in the memory available now is not run, and says so.  A migration
 * that has not converged after 60 s is cancelled and counted as not
 * converged, with the bytes and pages it had sent by then.  Each figure
 * is the median of N runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/env.h"
#include "../harness/mig_table.h"
#include "../harness/mig_vmm.h"
#include "../harness/migrate.h"
#include "../harness/proc.h"
#include "../harness/qemu.h"
#include "../harness/stats.h"

#define CONVERGE_MS 60000
#define AHEAD_MS 3000
#define UNLIMITED (1ll << 40)
/* Room left beside a source and a destination (page tables, the VMMs
 * themselves, everyone else on this machine). */
#define MEMORY_SPARE_MIB 1024

static const struct scenario scenarios[] = {
	{ "idle", "idle guest, 1 GiB of data, 1280 MiB VM, unlimited bandwidth", NULL,
	  "workload=idle ws=1G fill=1 seed=1", 1280, 1024, 1, 0, UNLIMITED },
	{ "sparse", "64-byte writes, 50k pages/s over 256 MiB, XBZRLE, 128 MiB/s", NULL,
	  "workload=sparse ws=256M fill=1 rate=50000 seed=2", 1280, 256, 1, 1, 128ll << 20 },
	{ "full", "whole-page rewrites, 20k pages/s over 256 MiB, 128 MiB/s", NULL,
	  "workload=random ws=256M fill=1 rate=20000 seed=3", 1280, 256, 1, 0, 128ll << 20 },
	{ "wild", "sparse writes, unthrottled, over 1 GiB, unlimited bandwidth", NULL,
	  "workload=sparse ws=1G fill=1 seed=4", 1280, 1024, 1, 0, UNLIMITED },
	{ "idle-4g", "idle 4 GiB guest, all its RAM holds data, unlimited bandwidth", NULL,
	  "workload=idle ws=0 fill=1 seed=5", 4096, 4096, 1, 0, UNLIMITED },
	{ "idle-16g", "idle 16 GiB guest, 2 GiB of data, the rest never written, unlimited bandwidth",
	  "sources not preallocated: a full 16 GiB on both sides would need 32 GiB",
	  "workload=idle ws=2G fill=1 seed=6", 16384, 2048, 0, 0, UNLIMITED },
};
#define SCENARIOS (sizeof scenarios / sizeof scenarios[0])
_Static_assert(SCENARIOS <= MAX_SCENARIOS, "struct results holds MAX_SCENARIOS");

static struct results res;

static double number(json_t *info, const char *path)
{
	long long v = mig_number(info, path);
	return v < 0 ? NAN : (double)v;
}

static double realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void nap_ms(double ms)
{
	if (ms <= 0)
		return;
	struct timespec t = { (time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6) };
	nanosleep(&t, NULL);
}

/* The final query-migrate, filled in: QEMU says completed a moment before
 * it has filled in the times. */
static json_t *settle(struct qmp_conn *q, json_t *info)
{
	for (int tries = 0; number(info, "total-time") <= 0 && tries < 50; tries++) {
		nap_ms(20);
		json_t *r = qmp_execute(q, "query-migrate", NULL, 10000);
		if (qmp_return(r) != NULL) {
			json_decref(info);
			info = json_incref(qmp_return(r));
		}
		json_decref(r);
	}
	return info;
}

/* The source's figures into out[]. */
static void record(int vmm, const struct scenario *s, json_t *info, int converged,
		   double out[METRICS])
{
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
		out[M_DELTA] = vmm == MIG_TERN ? number(info, "x-block-delta.pages") : 0;
	}
}

static void keep_last(json_t *info, void *opaque)
{
	json_t **last = opaque;
	json_decref(*last);
	*last = json_incref(info);
}

/* Migrate from src to dst (which listens on uri); t_incoming is when
 * migrate-incoming was sent.  0, or -1 with why. */
static int migrate(int vmm, const struct scenario *s, struct mig_vm *src, struct mig_vm *dst,
		   const char *uri, double t_incoming, double t_dst_start, double out[METRICS],
		   char *why, size_t len)
{
	double t_migrate = realtime_ms();
	out[M_GAP] = now_ms() - t_incoming;
	if (qmp_do(&src->q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000) != 0) {
		snprintf(why, len, "the source refused migrate");
		return -1;
	}
	json_t *last = NULL;
	json_t *info = mig_wait(&src->q, 20, CONVERGE_MS, keep_last, &last);
	int converged = info != NULL && strcmp(mig_status(info), "completed") == 0;
	if (info == NULL) { /* not converged in time: cancel */
		qmp_do(&src->q, "migrate_cancel", NULL, NULL, 10000);
		info = mig_wait(&src->q, 20, 30000, NULL, NULL);
		/* What it had sent by then: a cancelled QEMU says nothing. */
		if (info != NULL && strcmp(mig_status(info), "cancelled") == 0 && last != NULL) {
			json_decref(info);
			info = json_incref(last);
		}
	}
	json_decref(last);
	if (info == NULL) {
		snprintf(why, len, "the source gave no final status");
		return -1;
	}
	if (!converged && strcmp(mig_status(info), "cancelled") != 0 &&
	    strcmp(mig_status(info), "active") != 0) {
		const char *desc = json_string_value(json_object_get(info, "error-desc"));
		snprintf(why, len, "the migration %s: %s", mig_status(info), desc ? desc : "?");
		json_decref(info);
		return -1;
	}
	if (converged)
		info = settle(&src->q, info);
	record(vmm, s, info, converged, out);
	json_decref(info);
	/* Until the guest runs on the destination, on the events' clock. */
	json_t *ev = converged ? qmp_wait_event(&dst->q, "RESUME", 30000) : NULL;
	json_t *ts = json_object_get(ev, "timestamp");
	if (ts != NULL) {
		double t_run = (double)json_integer_value(json_object_get(ts, "seconds")) * 1e3 +
			       (double)json_integer_value(json_object_get(ts, "microseconds")) / 1e3;
		out[M_RUNNING] = t_run - t_migrate;
		if (t_dst_start > 0)
			out[M_FROM_START] = t_run - t_dst_start;
	}
	json_decref(ev);
	return 0;
}

static int configure(struct qmp_conn *q, const struct scenario *s)
{
	json_t *caps = json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability", "xbzrle",
				 "state", s->xbzrle, "capability", "events", "state", 1);
	json_t *params = json_pack("{s:I,s:I,s:I}", "max-bandwidth", (json_int_t)s->bandwidth,
				   "downtime-limit", (json_int_t)300, "xbzrle-cache-size",
				   (json_int_t)(64 << 20));
	return qmp_do(q, "migrate-set-capabilities", caps, NULL, 10000) != 0 ||
			       qmp_do(q, "migrate-set-parameters", params, NULL, 10000) != 0
		       ? -1
		       : 0;
}

/* One migration of scenario s by one VMM in one flow.  0, or -1 with why
 * (started set when the VMM came up at all). */
static int run_once(int vmm, const struct scenario *s, int flow, double out[METRICS],
		    int *started, char *why, size_t len)
{
	for (int m = 0; m < METRICS; m++)
		out[m] = NAN;
	char *dir = harness_tmpdir();
	if (dir == NULL) {
		snprintf(why, len, "cannot make a temporary directory");
		return -1;
	}
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	const struct mig_vm_spec dspec = { vmm, s->memory_mib, NULL, "defer", 0 };
	const struct mig_vm_spec sspec = { vmm, s->memory_mib, s->append, NULL, s->prealloc };
	struct mig_vm src = { .q.fd = -1 }, dst = { .q.fd = -1 };
	double t_incoming = 0, t_dst_start = 0;
	int rc = -1;
	if (flow == FLOW_AHEAD) {
		if (mig_vm_start(&dst, dir, "destination", &dspec, why, len) != 0)
			goto out;
		t_incoming = now_ms();
		if (mig_vm_incoming(&dst, uri, why, len) != 0)
			goto out;
	}
	if (mig_vm_start(&src, dir, "source", &sspec, why, len) != 0)
		goto out;
	*started = 1;
	if (vmm == MIG_QEMU && res.qemu_version[0] == '\0')
		mig_qemu_version(&src, res.qemu_version, sizeof res.qemu_version);
	if (mig_vm_wait_serial(&src, "tern-guest: filled", 300000) != 0) {
		snprintf(why, len, "the source's guest did not fill its buffer in 300 s");
		goto out;
	}
	nap_ms(1000); /* the workload runs a while before the migration starts */
	if (configure(&src.q, s) != 0) {
		snprintf(why, len, "the source refused the migration settings");
		goto out;
	}
	if (flow == FLOW_USERS) {
		t_dst_start = realtime_ms();
		if (mig_vm_start(&dst, dir, "destination", &dspec, why, len) != 0)
			goto out;
		t_incoming = now_ms();
		if (mig_vm_incoming(&dst, uri, why, len) != 0)
			goto out;
	} else {
		nap_ms(t_incoming + AHEAD_MS - now_ms());
	}
	rc = migrate(vmm, s, &src, &dst, uri, t_incoming, t_dst_start, out, why, len);
out:
	mig_vm_end(&src);
	mig_vm_end(&dst);
	harness_rmtree(dir);
	free(dir);
	return rc;
}

/* Does a source and a destination of s fit in memory now?  Both
 * destinations may come to hold all of guest RAM (tern's allocates it
 * ahead; QEMU's, what the stream writes). */
static int fits(const struct scenario *s, char *why, size_t len)
{
	unsigned long long need = (s->prealloc ? s->memory_mib : s->data_mib) + s->memory_mib +
				  MEMORY_SPARE_MIB,
			   have = mig_mem_available_mib();
	if (have == 0 || have >= need)
		return 1;
	snprintf(why, len, "not run: a source and a destination need about %.1f GiB, %.1f GiB "
		 "is available", (double)need / 1024, (double)have / 1024);
	return 0;
}

static int chosen(const char *list, const char *name)
{
	if (list == NULL)
		return 1;
	size_t n = strlen(name);
	for (const char *p = list; *p != '\0';) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p += len + (comma ? 1 : 0);
	}
	return 0;
}

static int known(const char *list)
{
	for (const char *p = list; *p != '\0';) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int found = 0;
		for (size_t s = 0; s < SCENARIOS; s++)
			found |= strlen(scenarios[s].name) == len &&
				 strncmp(p, scenarios[s].name, len) == 0;
		if (!found) {
			fprintf(stderr, "--scenario: no scenario '%.*s' (there are idle, sparse, full, "
				"wild, idle-4g, idle-16g)\n", (int)len, p);
			return 0;
		}
		p += len + (comma ? 1 : 0);
	}
	return 1;
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
			fprintf(stderr, "usage: %s [--reps N] [--scenario NAME[,NAME...]] [--csv]\n"
				"scenarios: idle, sparse, full, wild, idle-4g, idle-16g (default: all)\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "--reps must be 1..%d\n", MAX_REPS);
		return 2;
	}
	if (only != NULL && !known(only))
		return 2;
	char why[512];
	if (!harness_kvm_usable(why, sizeof why)) {
		fprintf(stderr, "migration needs KVM: %s\n", why);
		return 1;
	}
	int have[MIG_VMMS] = { 1, 1 };
	res.qemu_cpu = harness_have("qemu-system-x86_64") ? harness_qemu_cpu() : NULL;
	if (!harness_have("qemu-system-x86_64")) {
		fprintf(stderr, "qemu: qemu-system-x86_64 is not installed (Debian: "
			"qemu-system-x86): no QEMU columns\n");
		have[MIG_QEMU] = 0;
	} else if (res.qemu_cpu == NULL) {
		fprintf(stderr, "qemu: starts with no -cpu model on this host (tried host, "
			"host,-arch-capabilities, max, qemu64): no QEMU columns\n");
		have[MIG_QEMU] = 0;
	} else {
		fprintf(stderr, "qemu runs with -cpu %s\n", res.qemu_cpu);
	}
	int ever_started[MIG_VMMS] = { 0, 0 };
	/* Interleaved: every scenario, both flows and VMMs, each repetition;
	 * which pair goes first rotates. */
	for (int r = 0; r < reps; r++)
		for (size_t s = 0; s < SCENARIOS; s++) {
			const struct scenario *sc = &scenarios[s];
			if (!chosen(only, sc->name))
				continue;
			res.wanted[s] = 1;
			for (int k = 0; k < FLOWS * MIG_VMMS; k++) {
				int pair = (k + r) % (FLOWS * MIG_VMMS);
				int flow = pair / MIG_VMMS, v = pair % MIG_VMMS;
				if (!have[v])
					continue;
				if (!fits(sc, res.skipped[s], sizeof res.skipped[s])) {
					fprintf(stderr, "  %s %s %s rep %d: %s\n", sc->name,
						flow_names[flow], mig_vmm_names[v], r + 1,
						res.skipped[s]);
					continue;
				}
				double m[METRICS];
				int started = 0;
				if (run_once(v, sc, flow, m, &started, why, sizeof why) != 0) {
					fprintf(stderr, "  %s %s %s rep %d: %s\n", sc->name,
						flow_names[flow], mig_vmm_names[v], r + 1, why);
					if (!started && !ever_started[v]) {
						fprintf(stderr, "%s: cannot start here: no %s columns\n",
							mig_vmm_names[v], mig_vmm_names[v]);
						have[v] = 0;
					}
					continue;
				}
				ever_started[v] = 1;
				int *n = &res.got[s][flow][v];
				for (int i = 0; i < METRICS; i++)
					res.samples[s][flow][v][i][*n] = m[i];
				(*n)++;
				if (m[M_CONVERGED] > 0)
					fprintf(stderr, "  %s %s %s rep %d: total %.0f ms, running on the "
						"destination after %.0f ms, downtime %.0f ms, %.0f MiB\n",
						sc->name, flow_names[flow], mig_vmm_names[v], r + 1,
						m[M_TOTAL], m[M_RUNNING], m[M_DOWNTIME], m[M_BYTES]);
				else
					fprintf(stderr, "  %s %s %s rep %d: not converged in %d s (%.0f "
						"MiB sent)\n", sc->name, flow_names[flow],
						mig_vmm_names[v], r + 1, CONVERGE_MS / 1000, m[M_BYTES]);
			}
		}
	res.reps = reps;
	res.scenarios = scenarios;
	res.count = SCENARIOS;
	res.ahead_ms = AHEAD_MS;
	if (csv)
		table_csv(&res);
	else
		table_print(&res);
	return 0;
}
