/*
 * The disk's I/O engines side by side: io_uring against the thread pool,
 * both behind tern_block_queue, and the host's plain synchronous calls as
 * the baseline, on one image file, for raw and qcow2 images, cache=none
 * and cache=writeback:
 *
 *   block_backend [--dir DIR] [--size MIB] [--reps N] [--secs S] [--quick]
 *
 * Workloads: 4 KiB random reads and writes at queue depth 1 and 32, 1 MiB
 * sequential reads and writes at depth 1.  A queue keeps its depth by
 * submitting the next request from each completion (on the I/O thread,
 * as a virtio-blk device does when it finds more requests in its ring).
 * "sync" is a loop of pread/pwrite on the image's descriptor (raw) or of
 * tern_block_preadv/pwritev (qcow2) in the benchmark's thread, always at
 * depth 1: what one vCPU thread doing its own I/O would get.  Each figure
 * is the median of N runs (default 5) of S seconds (0.25); the image
 * (default 256 MiB, in $TMPDIR or /tmp) is written whole first, so qcow2
 * writes overwrite allocated clusters.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness/rng.h"
#include "../harness/stats.h"
#include "tern/block.h"
#include "tern/qcow2.h"

#define MAX_QD 32
#define MAX_REPS 15

struct workload {
	const char *name;
	uint64_t bs;
	unsigned qd;
	bool write, seq;
};

static const struct workload workloads[] = {
	{ "4k randread QD1", 4096, 1, false, false },	{ "4k randwrite QD1", 4096, 1, true, false },
	{ "4k randread QD32", 4096, 32, false, false }, { "4k randwrite QD32", 4096, 32, true, false },
	{ "1M seqread QD1", 1 << 20, 1, false, true },	{ "1M seqwrite QD1", 1 << 20, 1, true, true },
};

enum engine { SYNC, URING, THREADS, ENGINES };
static const char *const engine_names[ENGINES] = { "sync", "io_uring", "threads" };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct run;
struct slot {
	struct tern_block_req req;
	struct iovec iov;
	struct run *run;
};

struct run {
	const struct workload *w;
	struct tern_block_queue *q;
	uint64_t size, rng, next_seq, ops;
	double deadline;
	atomic_int errors;
	struct slot slots[MAX_QD];
};

/* Only the I/O thread (or, before it starts, the submitter) calls this. */
static uint64_t next_offset(struct run *r)
{
	uint64_t blocks = r->size / r->w->bs;
	if (!r->w->seq)
		return harness_splitmix(&r->rng) % blocks * r->w->bs;
	uint64_t off = r->next_seq;
	r->next_seq = (r->next_seq + r->w->bs) % (blocks * r->w->bs);
	return off;
}

static void prepare(struct run *r, struct slot *s)
{
	s->req.op = r->w->write ? TERN_BLOCK_OP_WRITE : TERN_BLOCK_OP_READ;
	s->req.offset = next_offset(r);
	s->req.iov = &s->iov;
	s->req.iovcnt = 1;
}

static void completed(struct tern_block_req *req, int ret)
{
	struct slot *s = req->opaque;
	struct run *r = s->run;
	if (ret < 0)
		atomic_fetch_add(&r->errors, 1);
	r->ops++;
	if (now_s() < r->deadline) {
		prepare(r, s);
		struct tern_block_req *one = &s->req;
		tern_block_submit(r->q, &one, 1);
	}
}

static double run_queue(struct tern_block *b, struct tern_block_queue *q, const struct workload *w,
			uint8_t *bufs, double secs, uint64_t seed)
{
	static struct run r;
	memset(&r, 0, sizeof(r));
	r.w = w;
	r.q = q;
	r.size = tern_block_size(b);
	r.rng = seed;
	r.next_seq = (seed % (r.size / w->bs)) * w->bs;
	struct tern_block_req *list[MAX_QD];
	for (unsigned i = 0; i < w->qd; i++) {
		struct slot *s = &r.slots[i];
		s->run = &r;
		s->iov = (struct iovec){ bufs + (size_t)i * w->bs, w->bs };
		s->req.done = completed;
		s->req.opaque = s;
		prepare(&r, s);
		list[i] = &s->req;
	}
	double t0 = now_s();
	r.deadline = t0 + secs;
	tern_block_submit(q, list, w->qd);
	tern_block_queue_drain(q);
	double t = now_s() - t0;
	if (atomic_load(&r.errors))
		fprintf(stderr, "block_backend: %d requests failed\n", atomic_load(&r.errors));
	return (double)r.ops / t;
}

static double run_sync(struct tern_block *b, const struct workload *w, uint8_t *buf, double secs,
		       uint64_t seed)
{
	struct run r = { .w = w, .size = tern_block_size(b), .rng = seed };
	r.next_seq = (seed % (r.size / w->bs)) * w->bs;
	bool raw = !tern_block_qcow2(b);
	struct iovec v = { buf, w->bs };
	double t0 = now_s(), end = t0 + secs;
	uint64_t ops = 0;
	do {
		uint64_t off = next_offset(&r);
		ssize_t n;
		if (raw)
			n = w->write ? pwrite(b->fd, buf, w->bs, (off_t)off)
				     : pread(b->fd, buf, w->bs, (off_t)off);
		else
			n = w->write ? tern_block_pwritev(b, &v, 1, off, NULL)
				     : tern_block_preadv(b, &v, 1, off, NULL);
		if (n < 0) {
			fprintf(stderr, "block_backend: sync I/O failed: %s\n", strerror(errno));
			exit(1);
		}
		ops++;
	} while (now_s() < end);
	return (double)ops / (now_s() - t0);
}

static void fill(const char *path, bool qcow2, uint64_t size)
{
	struct tern_error err = { { 0 } };
	if (qcow2) {
		struct tern_qcow2_create_opts co = { .size = size };
		if (tern_qcow2_create(path, &co, &err)) {
			fprintf(stderr, "block_backend: %s\n", err.msg);
			exit(1);
		}
	} else {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
			fprintf(stderr, "block_backend: %s: %s\n", path, strerror(errno));
			exit(1);
		}
		close(fd);
	}
	struct tern_block_opts o = { .path = path, .fd = -1, .writable = true };
	struct tern_block *b;
	if (tern_block_open(&o, &b, &err)) {
		fprintf(stderr, "block_backend: %s\n", err.msg);
		exit(1);
	}
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	uint64_t rng = 5;
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20) / 8; i++)
			((uint64_t *)buf)[i] = harness_splitmix(&rng);
		struct iovec v = { buf, 1 << 20 };
		if (tern_block_pwritev(b, &v, 1, off, &err)) {
			fprintf(stderr, "block_backend: %s\n", err.msg);
			exit(1);
		}
	}
	free(buf);
	if (tern_block_close(b, &err)) {
		fprintf(stderr, "block_backend: %s\n", err.msg);
		exit(1);
	}
}

/* Read the image once, so writeback runs start from a warm page cache. */
static void warm(struct tern_block *b, uint8_t *buf)
{
	struct iovec v = { buf, 1 << 20 };
	for (uint64_t off = 0; off < tern_block_size(b); off += 1 << 20)
		if (tern_block_preadv(b, &v, 1, off, NULL) < 0)
			exit(1);
}

static void print_rate(const struct workload *w, double iops)
{
	if (w->bs >= (1 << 20))
		printf(" %9.0f MiB/s", iops * (double)w->bs / (1 << 20));
	else
		printf(" %9.0f IOPS ", iops);
}

int main(int argc, char **argv)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uint64_t size_mib = 256;
	int reps = 5;
	double secs = 0.25;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			size_mib = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--quick") == 0) {
			reps = 3;
			secs = 0.1;
			size_mib = 64;
		} else {
			fprintf(stderr, "usage: %s [--dir DIR] [--size MIB] [--reps N] [--secs S] "
				"[--quick]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || size_mib < 4 || secs <= 0) {
		fprintf(stderr, "block_backend: --reps 1..%d, --size at least 4, --secs > 0\n",
			MAX_REPS);
		return 2;
	}
	uint64_t size = size_mib << 20;
	uint8_t *bufs = aligned_alloc(4096, (size_t)MAX_QD << 20);
	memset(bufs, 0x5a, (size_t)MAX_QD << 20);
	printf("block backends: a %llu MiB image in %s, median of %d runs of %.2f s each;\n"
	       "sync = pread/pwrite (raw) or tern_block_preadv/pwritev (qcow2) in one thread, "
	       "always QD1\n\n%-18s %-6s %-9s %15s %15s %15s %9s %9s\n",
	       (unsigned long long)size_mib, dir, reps, secs, "workload", "format", "cache",
	       "sync", "io_uring", "threads", "uring/thr", "uring/sync");
	for (int fmt = 0; fmt < 2; fmt++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/tern-block-bench-%d.%s", dir, (int)getpid(),
			 fmt ? "qcow2" : "raw");
		fill(path, fmt, size);
		for (int cache = 1; cache >= 0; cache--) {
			struct tern_block_opts o = { .path = path, .fd = -1, .writable = true,
						     .cache = (enum tern_block_cache)cache };
			struct tern_block *b;
			struct tern_error err = { { 0 } };
			if (tern_block_open(&o, &b, &err)) {
				fprintf(stderr, "block_backend: %s\n", err.msg);
				return 1;
			}
			if (cache == TERN_BLOCK_CACHE_WRITEBACK)
				warm(b, bufs);
			struct tern_block_queue *q[ENGINES] = { NULL };
			for (int e = URING; e <= THREADS; e++) {
				struct tern_block_queue_opts qo = {
					.engine = e == URING ? TERN_BLOCK_ENGINE_URING
							     : TERN_BLOCK_ENGINE_THREADS,
					.watch_fd = -1 };
				if (tern_block_queue_create(b, &qo, &q[e], &err)) {
					fprintf(stderr, "block_backend: %s\n", err.msg);
					return 1;
				}
			}
			if (strcmp(tern_block_queue_engine(q[URING]), "io_uring") != 0)
				printf("(io_uring is not available here: its column runs threads)\n");
			for (size_t wi = 0; wi < sizeof(workloads) / sizeof(workloads[0]); wi++) {
				const struct workload *w = &workloads[wi];
				double v[ENGINES][MAX_REPS], med[ENGINES];
				/* Interleaved, so drift in the host hits every engine alike. */
				for (int rep = 0; rep < reps; rep++)
					for (int e = 0; e < ENGINES; e++) {
						uint64_t seed = 1000 * wi + (uint64_t)rep + 1;
						v[e][rep] = e == SYNC ? run_sync(b, w, bufs, secs, seed)
								      : run_queue(b, q[e], w, bufs, secs,
										  seed);
					}
				for (int e = 0; e < ENGINES; e++)
					med[e] = harness_median(v[e], reps);
				printf("%-18s %-6s %-9s", w->name, fmt ? "qcow2" : "raw",
				       cache ? "none" : "writeback");
				for (int e = 0; e < ENGINES; e++)
					print_rate(w, med[e]);
				printf(" %8.2fx %8.2fx\n", med[URING] / med[THREADS],
				       med[URING] / med[SYNC]);
				fflush(stdout);
			}
			for (int e = URING; e <= THREADS; e++)
				tern_block_queue_destroy(q[e]);
			if (tern_block_close(b, &err)) {
				fprintf(stderr, "block_backend: %s\n", err.msg);
				return 1;
			}
		}
		unlink(path);
	}
	free(bufs);
	(void)engine_names;
	return 0;
}
