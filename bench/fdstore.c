/*
 * Seed 000's table in one run: N lookups over N fds, for the list QEMU's
 * CPR used (bench/baselines/cpr_fd_list.c), the GHashTable that replaced
 * it (bench/baselines/glib/cpr_fd_ghash.c) and tern's fd store, at 540,
 * 2,870, 7,530, 100,000 and 1,000,000 fds.
 *
 *   fdstore [--reps N] [--csv] [--shuffle] [--kernel avx512|sse2]
 *
 * Keys look like a VM's: device paths with an id per queue or vector
 * ("vfio-pci/0000:3b:00.1/irqfd", 7).  Every structure holds the same keys
 * and looks them all up once, in the order they were added (as a new
 * process finds its devices' fds, creating the devices in the same order),
 * or with --shuffle in one random order.  Above 7,530 fds the
 * list's total is estimated from a sample of its lookups (it is
 * quadratic: the full run would take minutes); such rows say "est.".
 * Median of N repetitions (default 5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/rng.h"
#include "../harness/stats.h"
#include "baselines/cpr_fd_list.h"
#include "baselines/glib/cpr_fd_ghash.h"
#include "tern/fdstore.h"

#define MAX_REPS 15
#define LIST_FULL_MAX 7530
#define LIST_SAMPLE_VISITS 50000000.0

static const unsigned counts[] = { 540, 2870, 7530, 100000, 1000000 };

struct key {
	char name[TERN_FDSTORE_NAME_MAX];
	int id;
};

static volatile long sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Key i: device i / 16 of four kinds, id i % 16 (a queue or vector). */
static void make_key(unsigned i, struct key *k)
{
	unsigned dev = i / 16;
	k->id = (int)(i % 16);
	switch (dev % 4) {
	case 0:
		snprintf(k->name, sizeof k->name, "vfio-pci/0000:%02x:%02x.%x/irqfd",
			 (dev >> 8) & 0xff, (dev >> 3) & 0x1f, dev & 7);
		break;
	case 1:
		snprintf(k->name, sizeof k->name, "vhost-net/net%u/tap", dev);
		break;
	case 2:
		snprintf(k->name, sizeof k->name, "virtio-blk/disk%u/ioeventfd", dev);
		break;
	default:
		snprintf(k->name, sizeof k->name, "ram-block/mem%u", dev);
		break;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "fdstore bench: %s\n", what);
	exit(1);
}

/* Every lookup must have found its fd: the fds of the keys sought sum to this. */
static void check(long got, long expect)
{
	if (got != expect)
		die("a lookup returned the wrong fd");
	sink += got;
}

struct row {
	double list_ns, ghash_ns, tern_ns; /* whole N lookups */
	int list_estimated;
};

static int shuffle;

static void run(unsigned n, unsigned reps, struct row *out)
{
	struct key *keys = malloc((size_t)n * sizeof *keys);
	unsigned *order = malloc((size_t)n * sizeof *order);
	if (keys == NULL || order == NULL)
		die("out of memory");
	uint64_t rng = n;
	for (unsigned i = 0; i < n; i++) {
		make_key(i, &keys[i]);
		order[i] = i;
	}
	for (unsigned i = n - 1; shuffle && i > 0; i--) {
		unsigned j = (unsigned)(harness_splitmix(&rng) % (i + 1));
		unsigned t = order[i];
		order[i] = order[j];
		order[j] = t;
	}

	struct cpr_fd_list list = { 0 };
	struct cpr_fd_ghash *ghash = cpr_fd_ghash_new();
	struct tern_fdstore *store = tern_fdstore_new();
	if (ghash == NULL || store == NULL)
		die("out of memory");
	for (unsigned i = 0; i < n; i++) {
		if (cpr_fd_list_save(&list, keys[i].name, keys[i].id, (int)i) < 0 ||
		    cpr_fd_ghash_save(ghash, keys[i].name, keys[i].id, (int)i) < 0 ||
		    tern_fdstore_add(store, keys[i].name, (uint32_t)keys[i].id, (int)i, NULL) < 0)
			die("building the tables failed");
	}

	double list_t[MAX_REPS], ghash_t[MAX_REPS], tern_t[MAX_REPS];
	unsigned list_lookups = n;
	if (n > LIST_FULL_MAX) {
		list_lookups = (unsigned)(LIST_SAMPLE_VISITS / (n / 2.0));
		out->list_estimated = 1;
	}
	/* Each structure runs all its repetitions in a row: the first warms the
	 * caches for the rest, and the list's long scans do not evict the
	 * others' tables. */
	long expect = (long)n * (n - 1) / 2, list_expect = 0;
	for (unsigned i = 0; i < list_lookups; i++)
		list_expect += order[i];
	for (unsigned r = 0; r < reps; r++) {
		long acc = 0;
		double t0 = now_ns();
		for (unsigned i = 0; i < n; i++) {
			const struct key *k = &keys[order[i]];
			acc += tern_fdstore_find(store, k->name, (uint32_t)k->id);
		}
		tern_t[r] = now_ns() - t0;
		check(acc, expect);
	}
	for (unsigned r = 0; r < reps; r++) {
		long acc = 0;
		double t0 = now_ns();
		for (unsigned i = 0; i < n; i++) {
			const struct key *k = &keys[order[i]];
			acc += cpr_fd_ghash_find(ghash, k->name, k->id);
		}
		ghash_t[r] = now_ns() - t0;
		check(acc, expect);
	}
	for (unsigned r = 0; r < reps; r++) {
		long acc = 0;
		double t0 = now_ns();
		for (unsigned i = 0; i < list_lookups; i++) {
			const struct key *k = &keys[order[i]];
			acc += cpr_fd_list_find(&list, k->name, k->id);
		}
		list_t[r] = (now_ns() - t0) * ((double)n / list_lookups);
		check(acc, list_expect);
	}
	out->list_ns = harness_median(list_t, (int)reps);
	out->ghash_ns = harness_median(ghash_t, (int)reps);
	out->tern_ns = harness_median(tern_t, (int)reps);

	cpr_fd_list_free(&list);
	cpr_fd_ghash_free(ghash);
	tern_fdstore_free(store);
	free(keys);
	free(order);
}

int main(int argc, char **argv)
{
	unsigned reps = 5;
	int csv = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			reps = (unsigned)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--csv") == 0) {
			csv = 1;
		} else if (strcmp(argv[i], "--shuffle") == 0) {
			shuffle = 1;
		} else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) {
			const char *kernel = argv[++i];
			if (tern_fdstore_use_kernel(kernel) < 0) {
				fprintf(stderr, "fdstore: kernel %s is unknown or not on this CPU\n",
					kernel);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: fdstore [--reps N (1..%d)] [--csv] [--shuffle] "
					"[--kernel avx512|sse2]\n", MAX_REPS);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "fdstore: --reps must be 1..%d\n", MAX_REPS);
		return 2;
	}
	if (csv)
		printf("fds,list_ms,ghash_ms,tern_ms,list_ns,ghash_ns,tern_ns,list_estimated\n");
	else
		printf("N lookups over N fds (device-path names, %s order), median of %u; "
		       "tern's %s kernel\n"
		       "%9s %12s %12s %10s | %9s %9s %9s | %10s %10s\n",
		       shuffle ? "shuffled" : "insertion", reps, tern_fdstore_kernel(), "fds", "list ms", "GHash ms", "tern ms", "list ns", "GHash ns",
		       "tern ns", "GHash/tern", "list/tern");
	for (unsigned c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		unsigned n = counts[c];
		struct row r = { 0 };
		run(n, reps, &r);
		if (csv) {
			printf("%u,%.3f,%.3f,%.3f,%.1f,%.1f,%.1f,%d\n", n, r.list_ns / 1e6,
			       r.ghash_ns / 1e6, r.tern_ns / 1e6, r.list_ns / n, r.ghash_ns / n,
			       r.tern_ns / n, r.list_estimated);
			continue;
		}
		printf("%9u %12.3f %12.3f %10.3f | %9.1f %9.1f %9.1f | %9.1fx %9.0fx%s\n", n,
		       r.list_ns / 1e6, r.ghash_ns / 1e6, r.tern_ns / 1e6, r.list_ns / n,
		       r.ghash_ns / n, r.tern_ns / n, r.ghash_ns / r.tern_ns, r.list_ns / r.tern_ns,
		       r.list_estimated ? "  (list est.)" : "");
		fflush(stdout);
	}
	return 0;
}
