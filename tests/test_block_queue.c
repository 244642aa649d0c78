/*
 * The disk's I/O queue, both engines: many requests from several threads
 * at once, each completion once, on the I/O thread, one at a time, with
 * the right data; refusals through the queue; a watched eventfd whose
 * handler submits from the I/O thread; destroy with requests in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/rng.h"
#include "tern/block.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"

#define MiB (1ull << 20)
#define THREADS 4
#define PER_ROUND 48
#define ROUNDS 6
#define BLK 4096

/* One submitter thread's requests and what it saw complete. */
struct submitter {
	struct tern_block_queue *q;
	uint64_t base; /* its own region of the disk */
	int id;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int outstanding;
	int bad; /* completions that broke a rule */
	struct tern_block_req req[PER_ROUND + 2];
	struct iovec iov[PER_ROUND][2];
	uint8_t *buf, *ref;
	int expect[PER_ROUND + 2];
};

static atomic_int inside;	/* callbacks running right now */
static pthread_t io_thread_seen;
static atomic_int io_thread_set, wrong_thread;

static void done(struct tern_block_req *req, int ret)
{
	struct submitter *s = req->opaque;
	if (atomic_fetch_add(&inside, 1) != 0) {
		print_error("callbacks overlap\n");
		s->bad++;
	}
	pthread_t self = pthread_self();
	if (!atomic_exchange(&io_thread_set, 1))
		io_thread_seen = self;
	else if (!pthread_equal(self, io_thread_seen))
		atomic_store(&wrong_thread, 1);
	int i = (int)(req - s->req);
	if (ret != s->expect[i]) {
		print_error("request %d (op %d): %d, expected %d\n", i, req->op, ret, s->expect[i]);
		s->bad++;
	}
	atomic_fetch_sub(&inside, 1);
	pthread_mutex_lock(&s->lock);
	if (--s->outstanding == 0)
		pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void wait_all(struct submitter *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->outstanding)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static void submit_round(struct submitter *s, int n)
{
	struct tern_block_req *list[PER_ROUND + 2];
	for (int i = 0; i < n; i++)
		list[i] = &s->req[i];
	pthread_mutex_lock(&s->lock);
	s->outstanding = n;
	pthread_mutex_unlock(&s->lock);
	tern_block_submit(s->q, list, (unsigned)n);
	wait_all(s);
}

static void *submit_thread(void *arg)
{
	struct submitter *s = arg;
	uint64_t rng = (uint64_t)s->id * 77 + 1;
	for (int round = 0; round < ROUNDS; round++) {
		/* Writes to distinct blocks (two iovecs each, one at an odd
		 * address), a flush, and a request past the end. */
		for (int i = 0; i < PER_ROUND; i++) {
			uint8_t *p = s->buf + (size_t)i * (BLK + 64) + (i & 1);
			uint64_t blk = (uint64_t)((i * 7 + round) % PER_ROUND);
			for (int j = 0; j < BLK; j++)
				p[j] = (uint8_t)harness_splitmix(&rng);
			memcpy(s->ref + blk * BLK, p, BLK);
			s->iov[i][0] = (struct iovec){ p, 1024 };
			s->iov[i][1] = (struct iovec){ p + 1024, BLK - 1024 };
			s->req[i] = (struct tern_block_req){ .op = TERN_BLOCK_OP_WRITE,
							     .offset = s->base + blk * BLK,
							     .iov = s->iov[i], .iovcnt = 2,
							     .done = done, .opaque = s };
			s->expect[i] = 0;
		}
		s->req[PER_ROUND] = (struct tern_block_req){ .op = TERN_BLOCK_OP_FLUSH, .done = done,
							     .opaque = s };
		s->expect[PER_ROUND] = 0;
		s->req[PER_ROUND + 1] = (struct tern_block_req){ .op = TERN_BLOCK_OP_READ,
								 .offset = 1ull << 40,
								 .iov = s->iov[0], .iovcnt = 1,
								 .done = done, .opaque = s };
		s->expect[PER_ROUND + 1] = -EINVAL;
		submit_round(s, PER_ROUND + 2);
		/* Zero a few, read everything back. */
		for (int i = 0; i < 4; i++) {
			uint64_t blk = harness_splitmix(&rng) % PER_ROUND;
			memset(s->ref + blk * BLK, 0, BLK);
			s->req[0] = (struct tern_block_req){ .op = TERN_BLOCK_OP_WRITE_ZEROES,
							     .offset = s->base + blk * BLK, .len = BLK,
							     .done = done, .opaque = s };
			s->expect[0] = 0;
			submit_round(s, 1);
		}
		memset(s->buf, 0xee, (size_t)PER_ROUND * (BLK + 64));
		for (int i = 0; i < PER_ROUND; i++) {
			uint8_t *p = s->buf + (size_t)i * (BLK + 64) + (i & 1);
			s->iov[i][0] = (struct iovec){ p, 512 };
			s->iov[i][1] = (struct iovec){ p + 512, BLK - 512 };
			s->req[i] = (struct tern_block_req){ .op = TERN_BLOCK_OP_READ,
							     .offset = s->base + (uint64_t)i * BLK,
							     .iov = s->iov[i], .iovcnt = 2,
							     .done = done, .opaque = s };
			s->expect[i] = 0;
		}
		submit_round(s, PER_ROUND);
		for (int i = 0; i < PER_ROUND; i++)
			if (memcmp(s->buf + (size_t)i * (BLK + 64) + (i & 1), s->ref + (size_t)i * BLK,
				   BLK)) {
				print_error("round %d: block %d differs\n", round, i);
				s->bad++;
			}
	}
	return NULL;
}

static struct tern_block *open_image(const char *name, bool qcow2, enum tern_block_cache cache)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", test_dir, name);
	struct tern_error err = { { 0 } };
	if (qcow2) {
		struct tern_qcow2_create_opts co = { .size = 8 * MiB };
		assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	} else {
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(ftruncate(fd, 8 * MiB), 0);
		close(fd);
	}
	struct tern_block_opts o = { .path = path, .fd = -1, .writable = true, .cache = cache };
	struct tern_block *b;
	if (tern_block_open(&o, &b, &err))
		fail_msg("%s", err.msg);
	return b;
}

static void many_requests(void **state)
{
	(void)state;
	static const struct {
		bool qcow2;
		enum tern_block_cache cache;
	} images[] = { { false, TERN_BLOCK_CACHE_WRITEBACK },
		       { false, TERN_BLOCK_CACHE_NONE },
		       { true, TERN_BLOCK_CACHE_WRITEBACK },
		       { true, TERN_BLOCK_CACHE_NONE } };
	for (int engine = TERN_BLOCK_ENGINE_URING; engine <= TERN_BLOCK_ENGINE_THREADS; engine++)
		for (size_t im = 0; im < 4; im++) {
			struct tern_block *b = open_image("m.img", images[im].qcow2, images[im].cache);
			struct tern_block_queue_opts qo = { .engine = (enum tern_block_engine)engine,
							    .depth = 32, .threads = 4, .watch_fd = -1 };
			struct tern_block_queue *q;
			struct tern_error err = { { 0 } };
			if (tern_block_queue_create(b, &qo, &q, &err))
				fail_msg("%s", err.msg);
			if (engine == TERN_BLOCK_ENGINE_THREADS)
				assert_string_equal(tern_block_queue_engine(q), "threads");
			print_message("%s %s cache=%s\n", tern_block_queue_engine(q), b->ops->name,
				      images[im].cache ? "none" : "writeback");
			atomic_store(&io_thread_set, 0);
			atomic_store(&wrong_thread, 0);
			static struct submitter subs[THREADS];
			pthread_t t[THREADS];
			for (int i = 0; i < THREADS; i++) {
				struct submitter *s = &subs[i];
				memset(s, 0, sizeof(*s));
				s->q = q;
				s->id = i;
				s->base = (uint64_t)i * 2 * MiB;
				pthread_mutex_init(&s->lock, NULL);
				pthread_cond_init(&s->cond, NULL);
				s->buf = malloc((size_t)PER_ROUND * (BLK + 64));
				s->ref = calloc(PER_ROUND, BLK);
				assert_int_equal(pthread_create(&t[i], NULL, submit_thread, s), 0);
			}
			for (int i = 0; i < THREADS; i++) {
				pthread_join(t[i], NULL);
				assert_int_equal(subs[i].bad, 0);
				assert_false(pthread_equal(io_thread_seen, t[i]));
				free(subs[i].buf);
				free(subs[i].ref);
			}
			assert_false(atomic_load(&wrong_thread));
			tern_block_queue_destroy(q);
			struct tern_block_stats st;
			tern_block_get_stats(b, &st);
			assert_int_equal(st.rd_operations, THREADS * ROUNDS * PER_ROUND);
			assert_int_equal(st.invalid_rd_operations, THREADS * ROUNDS);
			assert_int_equal(st.wr_operations, THREADS * ROUNDS * (PER_ROUND + 4));
			assert_int_equal(st.flush_operations, THREADS * ROUNDS);
			assert_int_equal(tern_block_close(b, &err), 0);
		}
}

/* The watched eventfd: its handler runs on the I/O thread and submits. */
struct watch {
	struct tern_block_queue *q;
	int efd;
	struct tern_block_req req;
	uint8_t buf[4096];
	struct iovec iov;
	atomic_int reads, ready_calls;
};

static void watch_done(struct tern_block_req *req, int ret)
{
	struct watch *w = req->opaque;
	assert_int_equal(ret, 0);
	atomic_fetch_add(&w->reads, 1);
}

static void watch_ready(void *opaque)
{
	struct watch *w = opaque;
	uint64_t v;
	if (read(w->efd, &v, sizeof(v)) != sizeof(v))
		return;
	atomic_fetch_add(&w->ready_calls, 1);
	w->iov = (struct iovec){ w->buf, sizeof(w->buf) };
	w->req = (struct tern_block_req){ .op = TERN_BLOCK_OP_READ, .offset = 4096, .iov = &w->iov,
					  .iovcnt = 1, .done = watch_done, .opaque = w };
	struct tern_block_req *list[] = { &w->req };
	tern_block_submit(w->q, list, 1);
}

static void watched_fd(void **state)
{
	(void)state;
	for (int engine = TERN_BLOCK_ENGINE_URING; engine <= TERN_BLOCK_ENGINE_THREADS; engine++) {
		struct tern_block *b = open_image("w.img", false, TERN_BLOCK_CACHE_WRITEBACK);
		static struct watch w;
		memset(&w, 0, sizeof(w));
		w.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct tern_block_queue_opts qo = { .engine = (enum tern_block_engine)engine,
						    .watch_fd = w.efd, .ready = watch_ready,
						    .ready_opaque = &w };
		struct tern_error err = { { 0 } };
		assert_int_equal(tern_block_queue_create(b, &qo, &w.q, &err), 0);
		for (int i = 1; i <= 20; i++) {
			uint64_t one = 1;
			assert_int_equal(write(w.efd, &one, 8), 8);
			for (int spin = 0; atomic_load(&w.reads) < i && spin < 5000; spin++)
				usleep(1000);
			assert_int_equal(atomic_load(&w.reads), i);
		}
		tern_block_queue_destroy(w.q);
		close(w.efd);
		assert_int_equal(tern_block_close(b, &err), 0);
	}
}

static atomic_int finished;
static void count_done(struct tern_block_req *req, int ret)
{
	(void)req;
	assert_int_equal(ret, 0);
	atomic_fetch_add(&finished, 1);
}

/* Destroy waits for what is in flight; drain before a qcow2 snapshot. */
static void destroy_in_flight(void **state)
{
	(void)state;
	for (int engine = TERN_BLOCK_ENGINE_URING; engine <= TERN_BLOCK_ENGINE_THREADS; engine++) {
		struct tern_block *b = open_image("d.qcow2", true, TERN_BLOCK_CACHE_WRITEBACK);
		struct tern_block_queue_opts qo = { .engine = (enum tern_block_engine)engine,
						    .watch_fd = -1 };
		struct tern_block_queue *q;
		struct tern_error err = { { 0 } };
		assert_int_equal(tern_block_queue_create(b, &qo, &q, &err), 0);
		enum { N = 300 };
		static struct tern_block_req reqs[N];
		static struct tern_block_req *list[N];
		static uint8_t data[65536];
		struct iovec v = { data, sizeof(data) };
		atomic_store(&finished, 0);
		for (int i = 0; i < N; i++) {
			reqs[i] = (struct tern_block_req){ .op = i % 3 ? TERN_BLOCK_OP_WRITE
								       : TERN_BLOCK_OP_READ,
							   .offset = (uint64_t)(i % 100) * 65536,
							   .iov = &v, .iovcnt = 1, .done = count_done };
			list[i] = &reqs[i];
		}
		tern_block_submit(q, list, N / 2);
		tern_block_queue_drain(q);
		assert_int_equal(atomic_load(&finished), N / 2);
		tern_block_qcow2_lock(b);
		assert_int_equal(tern_qcow2_snapshot_create(tern_block_qcow2(b), "s1", &err), 0);
		tern_block_qcow2_unlock(b);
		tern_block_submit(q, list + N / 2, N - N / 2);
		tern_block_queue_destroy(q);
		assert_int_equal(atomic_load(&finished), N);
		assert_int_equal(tern_block_close(b, &err), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(many_requests),
		cmocka_unit_test(watched_fd),
		cmocka_unit_test(destroy_in_flight),
	};
	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
