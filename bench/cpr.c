/*
 * Live-update downtime: an idle built-in guest with 1 GiB and 16 GiB of
 * RAM and an ioeventfd-bank of 0, 540, 2,870 and 7,530 fds, updated with
 * cpr-exec and with cpr-transfer, against a copying live migration of the
 * same guest to a new tern over a unix socket (what an update costs
 * without CPR; 1 GiB only, as it needs the RAM twice, and with every page
 * written once).  Downtime is stop to resume, as the new tern reports it in
 * query-migrate, with its parts; "memslots" is the part of the load
 * spent in KVM's memslot ioctls (it grows with RAM where KVM shadows guest
 * pages), and the last column the downtime without it.  Then the same
 * without fds for a guest that has touched all of its RAM (tern maps it
 * all at start, --mem-prealloc, as KVM does when a guest touches it):
 * cpr-exec's exec would unmap every page of it inside the stop, which an
 * address-space keeper moves after the resume.  Median of N updates
 * (default 3).
 *
 *   cpr [--reps N] [--sizes 1,16] [--fds 0,540,2870,7530] [--no-copy] [--no-touched]
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "../harness/stats.h"
#include "../harness/tern.h"
#include "qmp/qmp_client.h"

#define MAX_REPS 15
#define MAX_LIST 8

static char tern_path[PATH_MAX];

struct sample {
	double downtime, save, transfer, load, memslots, tern_part;
};

/* A command's return value (a new reference), or NULL. */
static json_t *query(struct qmp_conn *q, const char *cmd)
{
	json_t *reply = qmp_execute(q, cmd, NULL, 10000);
	json_t *ret = json_incref(qmp_return(reply));
	json_decref(reply);
	return ret;
}

static void die(const char *what)
{
	fprintf(stderr, "cpr bench: %s\n", what);
	exit(1);
}

static json_t *wait_done(struct qmp_conn *q)
{
	for (int tries = 0; tries < 1000; tries++) {
		json_t *r = query(q, "query-migrate");
		if (r == NULL)
			die("query-migrate failed");
		const char *s = json_string_value(json_object_get(r, "status"));
		if (s != NULL && strcmp(s, "active") != 0)
			return r;
		json_decref(r);
		usleep(10000);
	}
	die("the update did not end");
	return NULL;
}

static void take(json_t *r, struct sample *s)
{
	if (strcmp(json_string_value(json_object_get(r, "status")), "completed") != 0)
		die(json_string_value(json_object_get(r, "error-desc")));
	json_t *x = json_object_get(r, "x-cpr");
	s->downtime = json_integer_value(json_object_get(x, "downtime-us")) / 1000.0;
	s->save = json_integer_value(json_object_get(x, "save-us")) / 1000.0;
	s->transfer = json_integer_value(json_object_get(x, "transfer-us")) / 1000.0;
	s->load = json_integer_value(json_object_get(x, "load-us")) / 1000.0;
	s->memslots = json_integer_value(json_object_get(x, "memslots-us")) / 1000.0;
	s->tern_part = s->downtime - s->memslots;
}

static void set_mode(struct qmp_conn *q, const char *mode)
{
	json_t *args = json_pack("{s:s}", "mode", mode);
	if (strcmp(mode, "cpr-exec") == 0)
		json_object_set_new(args, "cpr-exec-command", json_pack("[s,s]", tern_path, "run"));
	if (qmp_do(q, "migrate-set-parameters", args, NULL, 10000) < 0)
		die("migrate-set-parameters");
}

/* The updates' guest idles on 8 MiB; the copied one has written all of
 * its RAM once (a copying migration of never-touched RAM sends nothing). */
#define UPDATE_GUEST "workload=idle ws=8M"
#define COPY_GUEST "workload=idle ws=0 fill=1"

/* touched: tern maps all of RAM at start (--mem-prealloc), as KVM leaves
 * it once a guest has touched all its memory. */
static int start_vm(struct tern_vm *vm, unsigned gib, unsigned fds, const char *guest,
		    int touched)
{
	char mem[16], dev[64];
	snprintf(mem, sizeof mem, "%uG", gib);
	snprintf(dev, sizeof dev, "ioeventfd-bank,count=%u", fds);
	const char *args[12] = { "--memory", mem, "--serial", "null", "--append", guest };
	unsigned n = 6;
	if (fds > 0) {
		args[n++] = "--device";
		args[n++] = dev;
	}
	if (touched)
		args[n++] = "--mem-prealloc";
	args[n] = NULL;
	return tern_vm_startv(vm, args);
}

static void start_and_connect(struct tern_vm *vm, struct qmp_conn *q, unsigned gib,
			      unsigned fds, int touched)
{
	if (start_vm(vm, gib, fds, UPDATE_GUEST, touched) < 0)
		die("cannot start tern");
	if (qmp_connect(q, vm->qmp_path, 1, 30000) < 0)
		die("cannot reach QMP");
	sleep(1); /* the guest boots and settles */
}

static void stop_vm(struct tern_vm *vm, struct qmp_conn *q)
{
	qmp_do(q, "quit", NULL, NULL, 5000);
	qmp_close(q);
	proc_wait(&vm->proc, 30000);
	tern_vm_end(vm);
}

/* Update the guest once (the i-th time); vm and q then name the tern that
 * runs it. */
static void update_once(struct tern_vm *vm, struct qmp_conn *q, const char *mode, unsigned i,
			struct sample *out)
{
	set_mode(q, mode);
	if (strcmp(mode, "cpr-exec") == 0) {
		if (qmp_do(q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000) < 0)
			die("migrate");
	} else {
		char sock[256], spec[300], uri[300];
		char name[32];
		snprintf(name, sizeof name, "cpr%u.sock", i);
		tern_vm_path(vm, name, sock, sizeof sock);
		snprintf(spec, sizeof spec, "cpr:unix:%s", sock);
		snprintf(uri, sizeof uri, "unix:%s", sock);
		struct proc next;
		char *argv[] = { tern_path, "run", "--incoming", spec, NULL };
		if (proc_spawn(&next, argv, 0) < 0 ||
		    proc_wait_for(&next, "waiting for a live update", 0, 10000) < 0)
			die("cannot start the new tern");
		if (qmp_do(q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000) < 0)
			die("migrate");
		qmp_close(q);
		if (proc_wait(&vm->proc, 30000) != 0)
			die("the old tern did not leave");
		proc_free(&vm->proc);
		vm->proc = next;
		if (qmp_connect(q, vm->qmp_path, 1, 10000) < 0)
			die("cannot reach the new tern");
	}
	json_t *r = wait_done(q);
	take(r, &out[i]);
	json_decref(r);
}

/* reps updates in one mode: of one running guest, or (touched) each of a
 * new guest, since after an update only what the guest touches again is
 * mapped. */
static void run_updates(unsigned gib, unsigned fds, const char *mode, int touched,
			unsigned reps, struct sample *out)
{
	struct tern_vm vm = { 0 };
	struct qmp_conn q;
	for (unsigned i = 0; i < reps; i++) {
		if (i == 0 || touched)
			start_and_connect(&vm, &q, gib, fds, touched);
		update_once(&vm, &q, mode, i, out);
		if (i + 1 == reps || touched) {
			stop_vm(&vm, &q);
			memset(&vm, 0, sizeof vm);
		}
	}
}

/* The same guest moved by copying: a live migration to a new tern. */
static void run_copy(unsigned gib, unsigned reps, struct sample *out)
{
	for (unsigned i = 0; i < reps; i++) {
		struct tern_vm src = { 0 }, dst = { 0 };
		if (start_vm(&src, gib, 0, COPY_GUEST, 0) < 0)
			die("cannot start tern");
		char sock[256], uri[300], mem[16];
		tern_vm_path(&src, "mig.sock", sock, sizeof sock);
		snprintf(uri, sizeof uri, "unix:%s", sock);
		snprintf(mem, sizeof mem, "%uG", gib);
		if (mig_start_destination(&dst, uri, "--memory", mem, "--serial", "null", NULL) < 0)
			die("cannot start the destination");
		struct qmp_conn q;
		if (qmp_connect(&q, src.qmp_path, 1, 30000) < 0)
			die("cannot reach QMP");
		sleep(1 + gib); /* the guest fills its RAM */
		if (qmp_do(&q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000) < 0)
			die("migrate");
		json_t *r = mig_wait(&q, 20, 600000, NULL, NULL);
		if (r == NULL || strcmp(mig_status(r), "completed") != 0)
			die("the copying migration failed");
		out[i].downtime = (double)mig_number(r, "downtime");
		out[i].transfer = (double)mig_number(r, "total-time");
		out[i].save = out[i].load = 0;
		json_decref(r);
		qmp_close(&q);
		tern_vm_end(&src);
		tern_vm_end(&dst);
	}
}

static double median_of(const struct sample *s, unsigned n, size_t field)
{
	double v[MAX_REPS];
	for (unsigned i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&s[i] + field);
	return harness_median(v, (int)n);
}

static void print_row(const char *mode, unsigned gib, int touched, unsigned fds,
		      const struct sample *s, unsigned reps)
{
	printf("%-13s %5u GiB %8s %6u %10.2f %9.2f %11.2f %9.2f %9.2f %9.2f\n", mode, gib,
	       touched ? "all" : "8 MiB", fds,
	       median_of(s, reps, offsetof(struct sample, downtime)),
	       median_of(s, reps, offsetof(struct sample, save)),
	       median_of(s, reps, offsetof(struct sample, transfer)),
	       median_of(s, reps, offsetof(struct sample, load)),
	       median_of(s, reps, offsetof(struct sample, memslots)),
	       median_of(s, reps, offsetof(struct sample, tern_part)));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	unsigned reps = 3, sizes[MAX_LIST] = { 1, 16 }, nsizes = 2;
	unsigned fds[MAX_LIST] = { 0, 540, 2870, 7530 }, nfds = 4;
	int copy = 1, touched = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
			nsizes = harness_parse_list(argv[++i], sizes, MAX_LIST);
		else if (strcmp(argv[i], "--fds") == 0 && i + 1 < argc)
			nfds = harness_parse_list(argv[++i], fds, MAX_LIST);
		else if (strcmp(argv[i], "--no-copy") == 0)
			copy = 0;
		else if (strcmp(argv[i], "--no-touched") == 0)
			touched = 0;
		else {
			fprintf(stderr, "usage: cpr [--reps N] [--sizes GIB,...] [--fds N,...] "
					"[--no-copy] [--no-touched]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS)
		die("--reps must be 1..15");
	if (realpath(harness_tern(), tern_path) == NULL)
		die("build tern first (make)");
	char why[256];
	if (!harness_kvm_usable(why, sizeof why)) {
		printf("cpr bench: skipped: %s\n", why);
		return 0;
	}
	printf("live update of an idle guest, median of %u (ms); copy = live migration to a "
	       "new tern over a unix socket;\ntouched = the RAM the guest has touched (all: "
	       "--mem-prealloc, a new guest for each update)\n", reps);
	printf("%-13s %9s %8s %6s %10s %9s %11s %9s %9s %9s\n", "mode", "RAM", "touched", "fds",
	       "downtime", "save", "transfer", "load", "memslots", "- memslots");
	struct sample s[MAX_REPS];
	for (unsigned z = 0; z < nsizes; z++) {
		if (copy && sizes[z] <= 1) {
			run_copy(sizes[z], reps, s);
			printf("%-13s %5u GiB %8s %6u %10.2f %9s %11.2f %9s   (transfer = total "
			       "time)\n", "copy", sizes[z], "all", 0u,
			       median_of(s, reps, offsetof(struct sample, downtime)), "-",
			       median_of(s, reps, offsetof(struct sample, transfer)), "-");
		}
		for (unsigned f = 0; f < nfds; f++) {
			run_updates(sizes[z], fds[f], "cpr-exec", 0, reps, s);
			print_row("cpr-exec", sizes[z], 0, fds[f], s, reps);
			run_updates(sizes[z], fds[f], "cpr-transfer", 0, reps, s);
			print_row("cpr-transfer", sizes[z], 0, fds[f], s, reps);
		}
		for (int t = 0; touched && t < 2; t++) {
			const char *mode = t == 0 ? "cpr-exec" : "cpr-transfer";
			run_updates(sizes[z], 0, mode, 1, reps, s);
			print_row(mode, sizes[z], 1, 0, s, reps);
		}
	}
	return 0;
}
