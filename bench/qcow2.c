/*
 * Seed 002's table in one run: internal snapshots of qcow2 images created
 * with preallocation=metadata at 64 GiB, 256 GiB, 1 TiB and 2 TiB, for
 * qemu-img with its default caches, qemu-img with an L2 cache covering the
 * whole disk, and tern-img, side by side.
 *
 *   qcow2 [--reps N] [--sizes 64G,256G,1T,2T] [--dir DIR]
 *
 * Each tool gets its own image, made by `qemu-img create` (sparse files;
 * sizes whose metadata does not fit on the disk are skipped).  A
 * repetition is `snapshot -c`, `snapshot -l`, `snapshot -d`, `check`;
 * times are wall-clock medians of N repetitions (default 3) with the page
 * cache warm.  fdatasync calls and bytes written by `snapshot -c` are
 * counted by an LD_PRELOAD shim (bench/preload/iocount.c) in both tools;
 * "must change" is the metadata a snapshot has to rewrite: every L2 table
 * and refcount block (all gain a reference) and the L1 table copy.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../harness/env.h"
#include "../harness/proc.h"
#include "../harness/shell.h"
#include "../harness/stats.h"
#include "tern/parse.h"

#define MAX_REPS 9
#define MAX_SIZES 8

enum tool { QEMU_DEFAULT, QEMU_FULL_CACHE, TERN, TOOLS };
static const char *tool_names[TOOLS] = { "qemu-img", "qemu-img full L2", "tern-img" };
enum op { OP_CREATE, OP_LIST, OP_DELETE, OP_CHECK, OPS };

struct result {
	double ms[OPS][MAX_REPS];
	uint64_t syncs, bytes; /* of the last snapshot -c */
	int failed;
};

static char iocount_so[4096];

/* The command line for one operation of one tool on `img`. */
static void command(char *buf, size_t len, enum tool t, enum op op, const char *img,
		    uint64_t size, int rep)
{
	const char *verb[OPS] = { "snapshot -c", "snapshot -l", "snapshot -d", "check" };
	char name[32] = "";
	if (op == OP_CREATE || op == OP_DELETE)
		snprintf(name, sizeof(name), " s%d", rep);
	if (t == TERN) {
		snprintf(buf, len, "%s %s%s %s", harness_tern_img(), verb[op], name, img);
	} else if (t == QEMU_DEFAULT) {
		snprintf(buf, len, "qemu-img %s%s %s", verb[op], name, img);
	} else {
		/* 8 bytes of L2 entry per cluster of disk (64 KiB clusters). */
		uint64_t l2 = size / 8192 + (1 << 20);
		snprintf(buf, len, "qemu-img %s%s --image-opts driver=qcow2,file.filename=%s,"
			 "l2-cache-size=%" PRIu64 ",refcount-cache-size=%" PRIu64, verb[op], name, img,
			 l2, l2 / 4);
	}
}

static int run_timed(const char *cmd, const char *counts, double *ms, uint64_t *syncs,
		     uint64_t *bytes)
{
	char *out = NULL;
	double t0 = now_ms();
	int rc = counts ? harness_sh(&out, "LD_PRELOAD=%s IOCOUNT_FILE=%s %s", iocount_so, counts, cmd)
			: harness_sh(&out, "%s", cmd);
	*ms = now_ms() - t0;
	/* check exits 3 for leaks: still a completed check. */
	if (rc != 0 && rc != 3) {
		fprintf(stderr, "qcow2 bench: `%s` exited %d:\n%s", cmd, rc, out ? out : "");
		free(out);
		return -1;
	}
	free(out);
	if (counts) {
		FILE *f = fopen(counts, "r");
		unsigned long long s = 0, b = 0;
		if (f) {
			if (fscanf(f, "%llu %llu", &s, &b) != 2)
				s = b = 0;
			fclose(f);
		}
		*syncs = s;
		*bytes = b;
	}
	return 0;
}

static void run_tool(enum tool t, const char *dir, uint64_t size, int reps, struct result *res)
{
	char img[4096], cmd[8192], counts[4096];
	snprintf(img, sizeof(img), "%s/bench-%d.qcow2", dir, (int)t);
	snprintf(counts, sizeof(counts), "%s/counts", dir);
	if (harness_sh(NULL, "qemu-img create -q -f qcow2 -o preallocation=metadata %s %" PRIu64,
		       img, size) != 0) {
		res->failed = 1;
		return;
	}
	/* The page cache is warm: create just wrote the metadata. */
	for (int rep = 0; rep < reps && !res->failed; rep++) {
		for (int op = 0; op < OPS && !res->failed; op++) {
			command(cmd, sizeof(cmd), t, (enum op)op, img, size, rep);
			uint64_t s = 0, b = 0;
			if (run_timed(cmd, op == OP_CREATE ? counts : NULL, &res->ms[op][rep], &s, &b) < 0)
				res->failed = 1;
			if (op == OP_CREATE) {
				res->syncs = s;
				res->bytes = b;
			}
		}
	}
	unlink(img);
	unlink(counts);
}

/* Metadata a snapshot must rewrite, for a 64 KiB-cluster, 16-bit image. */
static uint64_t must_change(uint64_t size)
{
	uint64_t cs = 65536, clusters = size / cs;
	uint64_t l2 = (clusters + 8191) / 8192;
	uint64_t refblocks = (clusters + l2 + 32767) / 32768;
	uint64_t l1 = (l2 * 8 + cs - 1) / cs;
	return (l2 + refblocks + l1) * cs;
}

static int parse_sizes(char *s, uint64_t *sizes)
{
	int n = 0;
	for (char *tok = strtok(s, ","); tok && n < MAX_SIZES; tok = strtok(NULL, ",")) {
		struct tern_error err;
		if (tern_parse_size(tok, 0, &sizes[n], &err) < 0) {
			fprintf(stderr, "qcow2 bench: %s\n", err.msg);
			exit(2);
		}
		n++;
	}
	return n;
}

static void human(uint64_t size, char *buf, size_t len)
{
	if (size >= (1ull << 40))
		snprintf(buf, len, "%" PRIu64 " TiB", size >> 40);
	else
		snprintf(buf, len, "%" PRIu64 " GiB", size >> 30);
}

int main(int argc, char **argv)
{
	int reps = 3;
	char sizes_arg[256] = "64G,256G,1T,2T";
	const char *dir = "/var/tmp";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
			snprintf(sizes_arg, sizeof(sizes_arg), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: qcow2 [--reps N] [--sizes 64G,1T,...] [--dir DIR]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS)
		reps = 3;
	if (!harness_have("qemu-img")) {
		fprintf(stderr, "qcow2 bench: qemu-img is not installed (Debian: qemu-utils)\n");
		return 1;
	}
	snprintf(iocount_so, sizeof(iocount_so), "%s/bench/iocount.so", harness_build_dir());
	char *abs = realpath(iocount_so, NULL);
	if (abs) {
		snprintf(iocount_so, sizeof(iocount_so), "%s", abs);
		free(abs);
	}
	uint64_t sizes[MAX_SIZES];
	int nsizes = parse_sizes(sizes_arg, sizes);
	printf("qcow2 internal snapshots, preallocation=metadata, 64 KiB clusters; median of %d; ms\n\n",
	       reps);
	printf("%-8s %-17s %9s %8s %9s %9s | %6s %10s %10s\n", "size", "tool", "snap -c", "snap -l",
	       "snap -d", "check", "syncs", "MiB wrote", "must chg");
	for (int si = 0; si < nsizes; si++) {
		uint64_t size = sizes[si];
		struct statvfs vfs;
		uint64_t need = must_change(size) * 4 * TOOLS;
		if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
			printf("%-8s skipped: %s has too little free space\n", "", dir);
			continue;
		}
		char label[32];
		human(size, label, sizeof(label));
		double med[TOOLS][OPS];
		for (int t = 0; t < TOOLS; t++) {
			struct result res = { 0 };
			run_tool((enum tool)t, dir, size, reps, &res);
			if (res.failed) {
				printf("%-8s %-17s failed\n", label, tool_names[t]);
				for (int op = 0; op < OPS; op++)
					med[t][op] = 0;
				continue;
			}
			for (int op = 0; op < OPS; op++)
				med[t][op] = harness_median(res.ms[op], reps);
			printf("%-8s %-17s %9.1f %8.1f %9.1f %9.1f | %6" PRIu64 " %10.1f %10.1f\n", label,
			       tool_names[t], med[t][OP_CREATE], med[t][OP_LIST], med[t][OP_DELETE],
			       med[t][OP_CHECK], res.syncs, (double)res.bytes / (1 << 20),
			       (double)must_change(size) / (1 << 20));
			fflush(stdout);
		}
		if (med[TERN][OP_CREATE] > 0)
			printf("%-8s %-17s %8.1fx %7.1fx %8.1fx %8.1fx   (qemu-img default / tern-img)\n", label,
			       "speed-up", med[QEMU_DEFAULT][OP_CREATE] / med[TERN][OP_CREATE],
			       med[QEMU_DEFAULT][OP_LIST] / med[TERN][OP_LIST],
			       med[QEMU_DEFAULT][OP_DELETE] / med[TERN][OP_DELETE],
			       med[QEMU_DEFAULT][OP_CHECK] / med[TERN][OP_CHECK]);
		if (med[TERN][OP_CREATE] > 0)
			printf("%-8s %-17s %8.1fx %7.1fx %8.1fx %8.1fx   (qemu-img full L2 / tern-img)\n\n",
			       label, "", med[QEMU_FULL_CACHE][OP_CREATE] / med[TERN][OP_CREATE],
			       med[QEMU_FULL_CACHE][OP_LIST] / med[TERN][OP_LIST],
			       med[QEMU_FULL_CACHE][OP_DELETE] / med[TERN][OP_DELETE],
			       med[QEMU_FULL_CACHE][OP_CHECK] / med[TERN][OP_CHECK]);
	}
	return 0;
}
