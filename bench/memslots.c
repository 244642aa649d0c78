/*
 * Seed 003's measurements in one run, modelled on the kernel's
 * memslot_perf_test: tern's memslot map against a model of KVM's old
 * memslot array (bench/baselines/kvm_memslot_array.c: sorted array,
 * id_to_index, a full copy per update), at 10, 100, 1k, 8k and 32,764
 * slots; then the same updates through real KVM ioctls.
 *
 *   memslots [--reps N] [--csv] [--no-kvm] [--max-slots N] [--only tern|array]
 *
 * Operations: create all slots (one published update each), delete all
 * (in id order), delete in eight chunks taken from the middle outwards (one
 * update per slot, as KVM's ioctl makes them), the same chunks as one
 * update each (tern's transactions; the array copies once per chunk and
 * deletes from its tail, its best case), move one slot (away and back),
 * random gfn lookups, gfn lookups that hit the last-used slot, random hva
 * lookups.  Each slot is 8 pages; slot i sits at gfn 8i and
 * host page 8i of one reserved mapping that is never touched.  Median of
 * N repetitions (default 3).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../harness/stats.h"
#include "kvm/kvm.h"

#include "baselines/kvm_memslot_array.h"
#include "tern/memslots.h"

#include "../harness/rng.h"

#define SLOT_PAGES 8
#define MOVES 1000
#define LOOKUPS 1000000
#define MAX_REPS 15
#define KVM_SLOTS_MAX 32764

static const unsigned counts[] = { 10, 100, 1000, 8192, 32764 };
enum op { CREATE, DELETE, DELETE_CHUNKS, DELETE_BATCHED, MOVE, GFN_RANDOM, GFN_LAST_HIT,
	  HVA_RANDOM, OPS };
static const char *const op_name[OPS] = { "create", "delete", "delete_chunks", "delete_batched",
					  "move", "gfn_lookup", "gfn_last_hit", "hva_lookup" };
/* Chunks of one eighth of the slots, deleted from the middle outwards. */
#define CHUNKS 8
static const unsigned chunk_order[CHUNKS] = { 3, 4, 2, 5, 1, 6, 0, 7 };

struct result {
	double total_ns[MAX_REPS];
	double ops;
};

static uint8_t *host_base;
static uint64_t *random_gfn, *random_hva;
static volatile uint64_t sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng = 12345;

static uint64_t rnd(void)
{
	return harness_splitmix(&rng);
}

static struct tern_memslot tern_slot(unsigned i)
{
	return (struct tern_memslot){ .id = i, .gfn = (uint64_t)i * SLOT_PAGES, .pages = SLOT_PAGES,
				      .host = host_base + (uint64_t)i * SLOT_PAGES * 4096, .fd = -1 };
}

static void fail(const char *what, int rc)
{
	fprintf(stderr, "memslots: %s failed (%d)\n", what, rc);
	exit(1);
}

static void prepare_lookups(unsigned n)
{
	for (unsigned i = 0; i < LOOKUPS; i++) {
		random_gfn[i] = rnd() % ((uint64_t)n * SLOT_PAGES);
		random_hva[i] = (uint64_t)(uintptr_t)host_base + rnd() % ((uint64_t)n * SLOT_PAGES * 4096);
	}
}

/* ------------------------------------------------------------ tern */

/* All n slots again, untimed (one transaction). */
static void tern_refill(struct tern_memslots *m, unsigned n)
{
	tern_memslots_begin(m);
	for (unsigned i = 0; i < n; i++) {
		struct tern_memslot s = tern_slot(i);
		tern_memslots_add(m, &s, NULL);
	}
	tern_memslots_commit(m);
}

static void tern_rep(unsigned n, int rep, struct result *r)
{
	struct tern_memslots *m = tern_memslots_new(KVM_SLOTS_MAX);
	int rc;
	double t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		struct tern_memslot s = tern_slot(i);
		if ((rc = tern_memslots_add(m, &s, NULL)) < 0)
			fail("tern add", rc);
	}
	r[CREATE].total_ns[rep] = now_ns() - t0;
	r[CREATE].ops = n;

	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	uint64_t sum = 0;
	t0 = now_ns();
	for (unsigned i = 0; i < LOOKUPS; i++)
		sum += tern_memslots_find_gfn(&v, random_gfn[i])->id;
	r[GFN_RANDOM].total_ns[rep] = now_ns() - t0;
	r[GFN_RANDOM].ops = LOOKUPS;
	uint64_t base = (uint64_t)(n / 2) * SLOT_PAGES;
	t0 = now_ns();
	for (unsigned i = 0; i < LOOKUPS; i++)
		sum += tern_memslots_find_gfn(&v, base + (i & (SLOT_PAGES - 1)))->id;
	r[GFN_LAST_HIT].total_ns[rep] = now_ns() - t0;
	r[GFN_LAST_HIT].ops = LOOKUPS;
	t0 = now_ns();
	for (unsigned i = 0; i < LOOKUPS; i++) {
		const struct tern_memslot *hit;
		sum += tern_memslots_find_hva(&v, (void *)(uintptr_t)random_hva[i], &hit, 1);
	}
	r[HVA_RANDOM].total_ns[rep] = now_ns() - t0;
	r[HVA_RANDOM].ops = LOOKUPS;
	tern_memslots_read_end(&v);
	sink += sum;

	uint32_t mover = n / 2;
	uint64_t away = (uint64_t)(n + 1) * SLOT_PAGES, home = (uint64_t)mover * SLOT_PAGES;
	t0 = now_ns();
	for (unsigned i = 0; i < MOVES; i++) {
		if ((rc = tern_memslots_move(m, mover, away, NULL)) < 0 ||
		    (rc = tern_memslots_move(m, mover, home, NULL)) < 0)
			fail("tern move", rc);
	}
	r[MOVE].total_ns[rep] = now_ns() - t0;
	r[MOVE].ops = 2 * MOVES;

	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		if ((rc = tern_memslots_remove(m, i, NULL)) < 0)
			fail("tern remove", rc);
	r[DELETE].total_ns[rep] = now_ns() - t0;
	r[DELETE].ops = n;

	unsigned chunk = (n + CHUNKS - 1) / CHUNKS;
	for (int batched = 0; batched < 2; batched++) {
		tern_refill(m, n);
		t0 = now_ns();
		for (unsigned c = 0; c < CHUNKS; c++) {
			unsigned first = chunk_order[c] * chunk;
			if (batched)
				tern_memslots_begin(m);
			for (unsigned i = first; i < n && i < first + chunk; i++)
				if ((rc = tern_memslots_remove(m, i, NULL)) < 0)
					fail("tern chunk remove", rc);
			if (batched)
				tern_memslots_commit(m);
		}
		r[batched ? DELETE_BATCHED : DELETE_CHUNKS].total_ns[rep] = now_ns() - t0;
		r[batched ? DELETE_BATCHED : DELETE_CHUNKS].ops = n;
	}
	tern_memslots_free(m);
}

/* ------------------------------------------------------------ array */

static void array_rep(unsigned n, int rep, struct result *r)
{
	struct array_map m;
	if (array_map_init(&m, KVM_SLOTS_MAX) < 0)
		fail("array init", -ENOMEM);
	int rc;
	double t0 = now_ns();
	for (unsigned i = 0; i < n; i++) {
		struct tern_memslot s = tern_slot(i);
		if ((rc = array_create(&m, i, s.gfn, s.pages, (uint64_t)(uintptr_t)s.host)) < 0)
			fail("array create", rc);
	}
	r[CREATE].total_ns[rep] = now_ns() - t0;
	r[CREATE].ops = n;

	uint64_t sum = 0;
	t0 = now_ns();
	for (unsigned i = 0; i < LOOKUPS; i++)
		sum += array_find_gfn(&m, random_gfn[i])->id;
	r[GFN_RANDOM].total_ns[rep] = now_ns() - t0;
	r[GFN_RANDOM].ops = LOOKUPS;
	uint64_t base = (uint64_t)(n / 2) * SLOT_PAGES;
	t0 = now_ns();
	for (unsigned i = 0; i < LOOKUPS; i++)
		sum += array_find_gfn(&m, base + (i & (SLOT_PAGES - 1)))->id;
	r[GFN_LAST_HIT].total_ns[rep] = now_ns() - t0;
	r[GFN_LAST_HIT].ops = LOOKUPS;
	/* A walk over every slot: fewer lookups at large counts, same per-op. */
	unsigned hva_lookups = n > 1000 ? 20000 : LOOKUPS / 10;
	t0 = now_ns();
	for (unsigned i = 0; i < hva_lookups; i++) {
		const struct array_slot *hit;
		sum += array_find_hva(&m, random_hva[i], &hit);
	}
	r[HVA_RANDOM].total_ns[rep] = now_ns() - t0;
	r[HVA_RANDOM].ops = hva_lookups;
	sink += sum;

	uint32_t mover = n / 2;
	uint64_t away = (uint64_t)(n + 1) * SLOT_PAGES, home = (uint64_t)mover * SLOT_PAGES;
	unsigned moves = n > 1000 ? MOVES / 10 : MOVES;
	t0 = now_ns();
	for (unsigned i = 0; i < moves; i++)
		if ((rc = array_move(&m, mover, away)) < 0 || (rc = array_move(&m, mover, home)) < 0)
			fail("array move", rc);
	r[MOVE].total_ns[rep] = now_ns() - t0;
	r[MOVE].ops = 2 * moves;

	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		if ((rc = array_delete(&m, i)) < 0)
			fail("array delete", rc);
	r[DELETE].total_ns[rep] = now_ns() - t0;
	r[DELETE].ops = n;

	uint32_t *ids = malloc(n * sizeof *ids);
	for (unsigned i = 0; i < n; i++)
		ids[i] = i;
	unsigned chunk = (n + CHUNKS - 1) / CHUNKS;
	for (int batched = 0; batched < 2; batched++) {
		for (unsigned i = n; i-- > 0;) { /* refill, highest gfn first: no shifting */
			struct tern_memslot s = tern_slot(i);
			array_create(&m, i, s.gfn, s.pages, (uint64_t)(uintptr_t)s.host);
		}
		t0 = now_ns();
		for (unsigned c = 0; c < CHUNKS; c++) {
			unsigned first = chunk_order[c] * chunk;
			unsigned count = first >= n ? 0 : n - first < chunk ? n - first : chunk;
			if (batched && count)
				rc = array_delete_many(&m, ids + first, count);
			for (unsigned i = first; !batched && i < first + count; i++)
				rc = array_delete(&m, i);
			if (rc < 0)
				fail("array chunk delete", rc);
		}
		r[batched ? DELETE_BATCHED : DELETE_CHUNKS].total_ns[rep] = now_ns() - t0;
		r[batched ? DELETE_BATCHED : DELETE_CHUNKS].ops = n;
	}
	free(ids);
	array_map_free(&m);
}

/* ------------------------------------------------------------ KVM */

enum kvm_op { KVM_CREATE, KVM_MOVE, KVM_DELETE, KVM_OPS };
static const char *const kvm_op_name[KVM_OPS] = { "create", "move", "delete" };

/* One rep of KVM_SET_USER_MEMORY_REGION(2) calls on a fresh VM; 0 or -errno. */
static int kvm_rep(unsigned n, int rep, struct result *r)
{
	struct kvm kvm;
	struct tern_error err;
	int rc = kvm_open(&kvm, &err);
	if (rc == 0)
		rc = kvm_create_vm(&kvm, &err);
	if (rc == 0) /* a VM as tern runs one */
		rc = kvm_create_irqchip(&kvm, &err);
	if (rc < 0) {
		fprintf(stderr, "memslots: KVM part skipped: %s\n", err.msg);
		kvm_close(&kvm);
		return rc;
	}
	if (n > kvm.max_memslots) {
		kvm_close(&kvm);
		return -ERANGE;
	}
	const uint64_t bytes = SLOT_PAGES * 4096;
	double t0 = now_ns();
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = kvm_set_memslot(&kvm, i, i * bytes, bytes, host_base + i * bytes, 0, &err);
	r[KVM_CREATE].total_ns[rep] = now_ns() - t0;
	r[KVM_CREATE].ops = n;
	unsigned mover = n / 2, moves = 100;
	t0 = now_ns();
	for (unsigned i = 0; i < moves && rc == 0; i++) {
		void *host = host_base + mover * bytes;
		rc = kvm_set_memslot(&kvm, mover, (uint64_t)(n + 1) * bytes, bytes, host, 0, &err);
		if (rc == 0)
			rc = kvm_set_memslot(&kvm, mover, mover * bytes, bytes, host, 0, &err);
	}
	r[KVM_MOVE].total_ns[rep] = now_ns() - t0;
	r[KVM_MOVE].ops = 2 * moves;
	t0 = now_ns();
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = kvm_set_memslot(&kvm, i, i * bytes, 0, host_base + i * bytes, 0, &err);
	r[KVM_DELETE].total_ns[rep] = now_ns() - t0;
	r[KVM_DELETE].ops = n;
	if (rc < 0)
		fprintf(stderr, "memslots: %s\n", err.msg);
	kvm_close(&kvm);
	return rc;
}

/* ------------------------------------------------------------ output */

static double median_of(struct result *r, int reps)
{
	double copy[MAX_REPS];
	memcpy(copy, r->total_ns, sizeof copy);
	return harness_median(copy, reps);
}

static void csv_row(unsigned n, const char *op, const char *impl, struct result *r, int reps)
{
	double total = median_of(r, reps);
	printf("%u,%s,%s,%.0f,%.2f\n", n, op, impl, total, total / r->ops);
}

static void usage(void)
{
	fprintf(stderr, "usage: memslots [--reps N] [--csv] [--no-kvm] [--max-slots N] "
			"[--only tern|array]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int reps = 3;
	bool csv = false, with_kvm = true;
	unsigned max_slots = KVM_SLOTS_MAX;
	const char *only = NULL; /* profiling one side */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--csv") == 0)
			csv = true;
		else if (strcmp(argv[i], "--no-kvm") == 0)
			with_kvm = false;
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--max-slots") == 0 && i + 1 < argc)
			max_slots = (unsigned)atoi(argv[++i]);
		else
			usage();
	}
	if (reps < 1 || reps > MAX_REPS)
		usage();
	size_t span = (size_t)(KVM_SLOTS_MAX + 2) * SLOT_PAGES * 4096;
	host_base = mmap(NULL, span, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	random_gfn = malloc(LOOKUPS * sizeof *random_gfn);
	random_hva = malloc(LOOKUPS * sizeof *random_hva);
	if (host_base == MAP_FAILED || !random_gfn || !random_hva)
		fail("setup", -ENOMEM);

	if (csv)
		printf("slots,op,impl,total_ns,ns_per_op\n");
	else
		printf("memslot map: tern against KVM's old array (model), median of %d\n\n"
		       "%6s  %-14s %14s %14s %10s\n",
		       reps, "slots", "op", "array ns/op", "tern ns/op", "array/tern");
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		unsigned n = counts[c];
		if (n > max_slots)
			continue;
		prepare_lookups(n);
		struct result tern[OPS] = { 0 }, array[OPS] = { 0 };
		for (int rep = 0; rep < reps; rep++) { /* interleaved */
			if (only == NULL || strcmp(only, "tern") == 0)
				tern_rep(n, rep, tern);
			if (only == NULL || strcmp(only, "array") == 0)
				array_rep(n, rep, array);
		}
		for (int op = 0; op < OPS; op++) {
			if (csv) {
				csv_row(n, op_name[op], "array", &array[op], reps);
				csv_row(n, op_name[op], "tern", &tern[op], reps);
				continue;
			}
			double a = median_of(&array[op], reps) / array[op].ops;
			double t = median_of(&tern[op], reps) / tern[op].ops;
			printf("%6u  %-14s %14.1f %14.1f %9.1fx\n", n, op_name[op], a, t, a / t);
		}
		if (!csv) {
			double total = (median_of(&tern[CREATE], reps) + median_of(&tern[DELETE], reps)) / 1e6;
			printf("%6u  %-14s %14s %11.2f ms\n\n", n, "create+delete", "", total);
		}
	}

	if (with_kvm) {
		if (!csv)
			printf("the same updates through KVM ioctls (KVM_SET_USER_MEMORY_REGION%s)\n"
			       "%6s  %-14s %14s %14s\n",
			       "2 where offered", "slots", "op", "total ms", "us/op");
		for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
			unsigned n = counts[c];
			if (n > max_slots)
				continue;
			struct result k[KVM_OPS] = { 0 };
			int rc = 0;
			for (int rep = 0; rep < reps && rc == 0; rep++)
				rc = kvm_rep(n, rep, k);
			if (rc < 0)
				break;
			for (int op = 0; op < KVM_OPS; op++) {
				if (csv) {
					csv_row(n, kvm_op_name[op], "kvm", &k[op], reps);
					continue;
				}
				double total = median_of(&k[op], reps);
				printf("%6u  %-14s %14.2f %14.2f\n", n, kvm_op_name[op], total / 1e6,
				       total / k[op].ops / 1e3);
			}
		}
	}
	munmap(host_base, span);
	free(random_gfn);
	free(random_hva);
	return 0;
}
