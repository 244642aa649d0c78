/*
 * XBZRLE encode and decode throughput and encoded size, for pages with
 * identical content, 1 byte changed, 1%, 10%, 25%, 50% of bytes changed at
 * random places, a few contiguous changed runs, and an entirely new page;
 * against memcmp and memcpy of the same pages (the machine's limit) and a
 * straightforward byte-at-a-time encoder of the same format (QEMU's
 * canonical encoding).
 *
 *   xbzrle [--reps N] [--csv]
 *
 * 64 page-aligned page pairs (512 KiB, cache-resident) per case; GB/s of page bytes
 * processed; median of N runs (default 7).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness/stats.h"
#include "../harness/xbzrle_ref.h"
#include "tern/xbzrle.h"

#include "../harness/rng.h"

#define PAGE 4096
#define PAIRS 64
#define MAX_REPS 31

static uint64_t rng = 7;

static uint64_t rnd(void)
{
	return harness_splitmix(&rng);
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

struct bufs {
	uint8_t *old, *new_, *enc, *out;
	int enc_len[PAIRS];
};

/* Make new_ from old: `permille` of bytes changed at random, or runs. */
static void make_case(struct bufs *b, int kind)
{
	for (size_t i = 0; i < (size_t)PAIRS * PAGE; i++)
		b->old[i] = (uint8_t)rnd();
	memcpy(b->new_, b->old, (size_t)PAIRS * PAGE);
	for (int p = 0; p < PAIRS; p++) {
		uint8_t *n = b->new_ + (size_t)p * PAGE;
		switch (kind) {
		case 0: break;                                     /* identical */
		case 1: n[rnd() % PAGE] ^= 0x5a; break;            /* one byte */
		case 2: case 3: case 4: case 5: {                  /* 1, 10, 25, 50% */
			static const unsigned pct[] = { 0, 0, 1, 10, 25, 50 };
			for (unsigned c = 0; c < PAGE * pct[kind] / 100; c++)
				n[rnd() % PAGE] ^= (uint8_t)(1 + rnd() % 255);
			break;
		}
		case 6: /* a few contiguous runs */
			for (int r = 0; r < 4; r++) {
				size_t at = rnd() % (PAGE - 64);
				for (size_t i = at; i < at + 64; i++)
					n[i] ^= 0xff;
			}
			break;
		default: /* a new page */
			for (size_t i = 0; i < PAGE; i++)
				n[i] ^= (uint8_t)(1 + rnd() % 255);
		}
	}
}

/* GB/s of page bytes for one pass over all pairs. */
static double rate(double ns)
{
	return (double)PAIRS * PAGE / ns;
}

int main(int argc, char **argv)
{
	int reps = 7, csv = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = 1;
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--reps N] [--csv]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS)
		reps = 7;
	static const char *const cases[] = { "identical", "1 byte", "1%", "10%", "25%", "50%",
					     "4 runs", "new page" };
	struct bufs b;
	/* Page-aligned, as guest RAM and the page cache are. */
	b.old = aligned_alloc(PAGE, (size_t)PAIRS * PAGE);
	b.new_ = aligned_alloc(PAGE, (size_t)PAIRS * PAGE);
	b.enc = aligned_alloc(PAGE, (size_t)PAIRS * 2 * PAGE);
	b.out = aligned_alloc(PAGE, (size_t)PAIRS * PAGE);
	char kernel[32];
	snprintf(kernel, sizeof kernel, "%s", tern_xbzrle_kernel());
	if (csv)
		printf("case,tern_bytes,canonical_bytes,encode_gbps,encode_portable_gbps,"
		       "bytewise_gbps,decode_gbps,memcmp_gbps,memcpy_gbps\n");
	else
		printf("XBZRLE on 4 KiB pages, %d pairs per case, median of %d; tern's kernel here: %s\n"
		       "(bytes: mean encoded size, -1 = did not fit a page: sent raw)\n\n"
		       "%-10s %9s %9s | %9s %9s %9s | %9s | %9s %9s\n",
		       PAIRS, reps, kernel, "case", "tern B", "canon B", "encode", "portable",
		       "bytewise", "decode", "memcmp", "memcpy");
	for (int k = 0; k < 8; k++) {
		make_case(&b, k);
		double enc[MAX_REPS], port[MAX_REPS], ref[MAX_REPS], dec[MAX_REPS], cmp[MAX_REPS],
			cpy[MAX_REPS];
		double tern_bytes = 0, canon_bytes = 0;
		volatile int sink = 0;
		for (int r = 0; r < reps; r++) {
			double t0 = now_ns();
			for (int p = 0; p < PAIRS; p++)
				b.enc_len[p] = tern_xbzrle_encode(b.old + (size_t)p * PAGE,
								  b.new_ + (size_t)p * PAGE, PAGE,
								  b.enc + (size_t)p * 2 * PAGE, PAGE);
			double t1 = now_ns();
			tern_xbzrle_use_kernel("portable");
			for (int p = 0; p < PAIRS; p++)
				sink += tern_xbzrle_encode(b.old + (size_t)p * PAGE, b.new_ + (size_t)p * PAGE,
							   PAGE, b.out + (size_t)(p % 2) * PAGE, PAGE);
			tern_xbzrle_use_kernel(kernel);
			double t2 = now_ns();
			canon_bytes = 0;
			for (int p = 0; p < PAIRS; p++) {
				int n = xbzrle_ref_encode(b.old + (size_t)p * PAGE, b.new_ + (size_t)p * PAGE,
							  PAGE, b.out + (size_t)(p % 2) * PAGE, PAGE);
				canon_bytes += n;
			}
			double t3 = now_ns();
			memcpy(b.out, b.old, (size_t)PAIRS * PAGE);
			double t4 = now_ns();
			for (int p = 0; p < PAIRS; p++)
				if (b.enc_len[p] > 0)
					sink += tern_xbzrle_decode(b.enc + (size_t)p * 2 * PAGE,
								   (size_t)b.enc_len[p],
								   b.out + (size_t)p * PAGE, PAGE);
			double t5 = now_ns();
			for (int p = 0; p < PAIRS; p++)
				sink += memcmp(b.old + (size_t)p * PAGE, b.new_ + (size_t)p * PAGE, PAGE);
			double t6 = now_ns();
			for (int p = 0; p < PAIRS; p++)
				memcpy(b.out + (size_t)p * PAGE, b.new_ + (size_t)p * PAGE, PAGE);
			double t7 = now_ns();
			enc[r] = rate(t1 - t0);
			port[r] = rate(t2 - t1);
			ref[r] = rate(t3 - t2);
			dec[r] = rate(t5 - t4);
			cmp[r] = rate(t6 - t5);
			cpy[r] = rate(t7 - t6);
		}
		tern_bytes = 0;
		for (int p = 0; p < PAIRS; p++)
			tern_bytes += b.enc_len[p] < 0 ? 0 : b.enc_len[p];
		if (b.enc_len[0] < 0)
			tern_bytes = -1; /* did not fit: sent raw */
		(void)sink;
		if (csv) {
			printf("%s,%.0f,%.0f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f\n", cases[k],
			       tern_bytes / PAIRS, canon_bytes / PAIRS, harness_median(enc, reps),
			       harness_median(port, reps), harness_median(ref, reps), harness_median(dec, reps),
			       harness_median(cmp, reps), harness_median(cpy, reps));
			continue;
		}
		char decode[32] = "        -";
		if (tern_bytes > 0) /* identical or new pages: nothing to decode */
			snprintf(decode, sizeof decode, "%6.2f GB/s", harness_median(dec, reps));
		printf("%-10s %9.0f %9.0f | %6.2f GB/s %6.2f %9.2f | %11s | %6.2f %9.2f\n", cases[k],
		       tern_bytes < 0 ? -1.0 : tern_bytes / PAIRS, canon_bytes / PAIRS,
		       harness_median(enc, reps), harness_median(port, reps), harness_median(ref, reps), decode,
		       harness_median(cmp, reps), harness_median(cpy, reps));
	}
	if (!csv)
		printf("\nencode: tern with its kernel; portable: tern's portable kernel; bytewise: "
		       "a byte-at-a-time encoder of\nthe same format (QEMU's canonical output, canon "
		       "B).  decode: applying tern's deltas.  memcmp\nstops at the first difference, "
		       "so only its identical-page figure is a bound for encoding.\n");
	free(b.old);
	free(b.new_);
	free(b.enc);
	free(b.out);
	return 0;
}
