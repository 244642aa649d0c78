/*
 * The migration engine without KVM: a fake guest (plain memory, a writer
 * thread standing in for the vCPUs) migrates over a socketpair into
 * another fake guest (files: test_migration_file.c).  Every test checks
 * that the destination holds exactly the source's memory, or that it
 * refused and never ran.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/fake_guest.h"
#include "mig_support.h"
#include "tern/migration.h"

/* ------------------------------------------------------------ tests */

static void migrates_a_running_guest(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	dst.cpu_state = 0;
	writer_start(&src, WRITE_FULL);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	struct tern_mig_stats ss, ds;
	migrate_live(&src, &dst, &p, &ss, &ds);
	check_arrived(&src, &dst, &ss);
	assert_true(src.writes > 0);
	/* Mostly zero memory goes as zero records; the rest whole. */
	assert_true(ss.duplicate > (LOW_SIZE + HIGH_SIZE) / PAGE / 2);
	assert_true(ss.normal >= 700);
	assert_int_equal(ss.xbzrle_pages, 0);
	assert_true(ss.transferred < (uint64_t)(ss.normal + 64) * (PAGE + 64) + (1u << 20));
	assert_true(ds.transferred > 0 && ds.transferred <= ss.transferred);
	assert_int_equal(ds.normal, ss.normal);
	fake_destroy(&src);
	fake_destroy(&dst);
}

/*
 * Seed 004's rule: the bulk stage fills no cache.  Pages rewritten after
 * every sync miss the first time (they were sent whole in the bulk stage,
 * uncached) and go as XBZRLE deltas after that.
 */
static void xbzrle_after_the_bulk_stage_only(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	src.per_sync = 100;
	src.sync_writes_until = 3; /* syncs 1, 2, 3 rewrite pages 0..99 */
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.xbzrle = 1;
	p.downtime_limit_ms = 0; /* switch over only when nothing is dirty */
	struct tern_mig_stats ss, ds;
	migrate_live(&src, &dst, &p, &ss, &ds);
	check_arrived(&src, &dst, &ss);
	assert_int_equal(ss.xbzrle_cache_miss, 100);
	/* The misses went as their changed blocks: the digests of the bulk
	 * stage knew what the destination held. */
	/* Pages 0..99: 67 held data in the bulk stage (so digests), 33 were
	 * zero and went whole. */
	assert_int_equal(ss.delta_pages, 67);
	assert_int_equal(ds.delta_pages, 67);
	assert_true(ss.delta_bytes <= 67 * 2 * 64); /* a 64-byte write spans 1 or 2 blocks */
	assert_int_equal(ss.xbzrle_pages, 200);
	assert_int_equal(ss.xbzrle_overflow, 0);
	assert_int_equal(ds.xbzrle_pages, 200);
	assert_true(ss.xbzrle_bytes < 200 * 200); /* 64 changed bytes a page */
	assert_true(ss.xbzrle_encoding_rate > 10.0);
	assert_true(ss.xbzrle_cache_miss_rate > 0.3 && ss.xbzrle_cache_miss_rate < 0.4);
	assert_int_equal(ss.dirty_sync_count, 5); /* 4 iterations and the last */
	assert_true(ss.xbzrle_cache_size > 0);
	fake_destroy(&src);
	fake_destroy(&dst);
}

/* A cache far smaller than the pages rewritten: the block digests carry
 * the deltas, and the destination still ends up with every byte. */
static void block_deltas_beyond_the_cache(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	src.per_sync = 1000;
	src.sync_writes_until = 3;
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.xbzrle = 1;
	p.xbzrle_cache_size = 64 * 4096; /* 64 pages */
	p.downtime_limit_ms = 0;
	struct tern_mig_stats ss, ds;
	migrate_live(&src, &dst, &p, &ss, &ds);
	check_arrived(&src, &dst, &ss);
	assert_true(ss.delta_pages >= 2000); /* most of 3 x 1000 rewrites */
	assert_int_equal(ds.delta_pages, ss.delta_pages);
	assert_true(ss.digest_bytes > 0);
	/* Far less than whole pages: about one block of 64 bytes each. */
	assert_true(ss.delta_bytes < ss.delta_pages * 3 * 64);
	fake_destroy(&src);
	fake_destroy(&dst);
}

/* On a slow link the bulk stage takes a while: pages the guest writes
 * before the bulk stage reaches them wait for the first iteration rather
 * than go twice. */
static void hot_pages_wait_for_the_first_iteration(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	src.ws_pages = 512;
	writer_start(&src, WRITE_FULL);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.max_bandwidth = 4u << 20; /* about 0.7 s for the pages with data */
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct dest_thread d;
	dest_start(&d, &dst, du);
	struct source_run s;
	source_start(&s, &src, &p, su);
	struct timespec nap = { 0, 400000000 }; /* the guest writes during the bulk stage */
	nanosleep(&nap, NULL);
	writer_stop(&src);
	dest_join(&d);
	source_join(&s);
	struct tern_mig_stats ss;
	tern_migration_get_stats(&s.m, &ss);
	if (d.rc != 0 || s.rc != 0)
		fail_msg("destination: %d %s; source: %d %s", d.rc, d.err.msg, s.rc, ss.error);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	close(sv[1]);
	check_arrived(&src, &dst, &ss);
	assert_true(ss.bulk_deferred > 100);
	assert_true(ss.dirty_sync_count > 3); /* syncs during the bulk stage too */
	fake_destroy(&src);
	fake_destroy(&dst);
}

static void xbzrle_with_a_running_guest(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	src.ws_pages = 64; /* a small, hot working set: cache hits */
	src.sync_writes_until = 20;
	src.per_sync = 32;
	writer_start(&src, WRITE_SPARSE);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.xbzrle = 1;
	p.downtime_limit_ms = 0; /* no switchover while the guest writes */
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct dest_thread d;
	dest_start(&d, &dst, du);
	struct source_run s;
	source_start(&s, &src, &p, su);
	/* Iterate against the writer a while, then quiet the guest so that
	 * nothing stays dirty and the migration completes.  However the
	 * threads are scheduled, the first syncs each find pages rewritten
	 * (sync-driven writes), so rounds after the bulk stage are certain. */
	struct timespec nap = { 0, 500000000 };
	nanosleep(&nap, NULL);
	writer_stop(&src);
	dest_join(&d);
	source_join(&s);
	struct tern_mig_stats ss;
	tern_migration_get_stats(&s.m, &ss);
	if (d.rc != 0 || s.rc != 0)
		fail_msg("destination: %d %s; source: %d %s", d.rc, d.err.msg, s.rc, ss.error);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	close(sv[1]);
	check_arrived(&src, &dst, &ss);
	assert_true(ss.dirty_sync_count > 3);
	assert_true(ss.xbzrle_pages > 0);
	assert_int_equal(d.st.xbzrle_pages, ss.xbzrle_pages);
	fake_destroy(&src);
	fake_destroy(&dst);
}

static void cancel_leaves_the_guest_running(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	/* Pages the zero check cannot skip, and a slow link: ~4 s of bulk. */
	for (uint64_t off = 0; off < LOW_SIZE; off += 64)
		src.reg[0].host[off] = 1;
	writer_start(&src, WRITE_SPARSE);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.max_bandwidth = 2u << 20;
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct dest_thread d;
	dest_start(&d, &dst, du);
	struct source_run s;
	source_start(&s, &src, &p, su);
	struct timespec nap = { 0, 600000000 };
	nanosleep(&nap, NULL);
	struct tern_mig_stats mid;
	tern_migration_get_stats(&s.m, &mid);
	assert_int_equal(mid.status, TERN_MIG_ACTIVE);
	assert_true(mid.transferred > 0);
	assert_true(mid.duplicate + mid.normal > 0);
	tern_migration_cancel(&s.m);
	source_join(&s);
	close(sv[0]); /* the source side is gone */
	dest_join(&d);
	struct tern_mig_stats ss;
	tern_migration_get_stats(&s.m, &ss);
	assert_int_equal(s.rc, -ECANCELED);
	assert_int_equal(ss.status, TERN_MIG_CANCELLED);
	assert_string_equal(ss.error, "cancelled");
	assert_int_equal(src.last_event, TERN_MIG_CANCELLED);
	/* The guest never stopped and still runs. */
	pthread_mutex_lock(&src.lock);
	uint64_t before = src.writes;
	pthread_mutex_unlock(&src.lock);
	nanosleep(&nap, NULL);
	pthread_mutex_lock(&src.lock);
	assert_false(src.stopped);
	assert_false(src.tracking);
	assert_true(src.writes > before);
	pthread_mutex_unlock(&src.lock);
	/* The destination saw a stream cut short and did not run. */
	assert_true(d.rc < 0);
	assert_false(dst.ran);
	assert_int_equal(d.st.status, TERN_MIG_FAILED);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	close(sv[1]);
	fake_destroy(&src);
	fake_destroy(&dst);
}

/* A destination of another size says why; the source keeps its guest. */
static void destination_refusal_reaches_the_source(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	dst.reg[1].size = HIGH_SIZE / 2;
	writer_start(&src, WRITE_FULL);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct source_run s;
	source_start(&s, &src, &p, su);
	struct tern_error err = { .msg = "" };
	struct tern_mig_stats ds, ss;
	int rc = dest_run(&dst, du, &ds, &err);
	close(sv[1]);
	source_join(&s);
	tern_migration_get_stats(&s.m, &ss);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "same --memory"));
	assert_false(dst.ran);
	assert_true(s.rc < 0);
	assert_int_equal(ss.status, TERN_MIG_FAILED);
	if (strstr(ss.error, "the destination refused the migration") == NULL ||
	    strstr(ss.error, "same --memory") == NULL)
		fail_msg("source error: %s", ss.error);
	pthread_mutex_lock(&src.lock);
	assert_false(src.stopped);
	pthread_mutex_unlock(&src.lock);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	dst.reg[1].size = HIGH_SIZE;
	fake_destroy(&src);
	fake_destroy(&dst);
}

/* A destination that hangs up mid-stream: the source fails and resumes. */
static void destination_gone(void **state)
{
	(void)state;
	struct fake src;
	fake_init(&src, 1);
	for (uint64_t off = 0; off < LOW_SIZE; off += 64)
		src.reg[0].host[off] = 1;
	writer_start(&src, WRITE_SPARSE);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.max_bandwidth = 4u << 20;
	int sv[2];
	char su[32], du[32];
	pair(sv, su, du);
	struct source_run s;
	source_start(&s, &src, &p, su);
	struct timespec nap = { 0, 200000000 };
	nanosleep(&nap, NULL);
	close(sv[1]);
	source_join(&s);
	struct tern_mig_stats ss;
	tern_migration_get_stats(&s.m, &ss);
	assert_true(s.rc < 0);
	assert_int_equal(ss.status, TERN_MIG_FAILED);
	assert_non_null(strstr(ss.error, "closed the connection"));
	pthread_mutex_lock(&src.lock);
	assert_false(src.stopped);
	pthread_mutex_unlock(&src.lock);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	fake_destroy(&src);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Reads what it is sent until the source hangs up; never answers. */
struct drain {
	int fd, hung_up;
};

static void *drain(void *arg)
{
	struct drain *d = arg;
	static char sink[65536];
	ssize_t n;
	while ((n = read(d->fd, sink, sizeof sink)) != 0)
		if (n < 0 && errno != EINTR)
			break;
	__atomic_store_n(&d->hung_up, n == 0, __ATOMIC_RELEASE);
	return NULL;
}

/* The source gave up on its destination at the end: failed, saying why,
 * its guest running again (once), well before the old 30 s. */
static void gave_up_in_time(struct source_run *s, struct fake *src, const struct timespec *t0)
{
	struct tern_mig_stats ss;
	tern_migration_get_stats(&s->m, &ss);
	assert_int_equal(s->rc, -ETIMEDOUT);
	assert_int_equal(ss.status, TERN_MIG_FAILED);
	assert_int_equal(src->last_event, TERN_MIG_FAILED);
	if (strstr(ss.error, "did not answer in time") == NULL)
		fail_msg("source error: %s", ss.error);
	if (seconds_since(t0) > 20)
		fail_msg("the source gave up only after %.1f s", seconds_since(t0));
	pthread_mutex_lock(&src->lock);
	assert_false(src->stopped);
	assert_int_equal(src->resumed, 1);
	uint64_t before = src->writes;
	pthread_mutex_unlock(&src->lock);
	struct timespec nap = { 0, 200000000 };
	nanosleep(&nap, NULL);
	pthread_mutex_lock(&src->lock);
	assert_true(src->writes > before); /* the guest runs on */
	pthread_mutex_unlock(&src->lock);
}

/* A guest writing away, a 50 ms downtime limit, and a socket pair to
 * migrate it over (su and du: the two ends as fd: URIs). */
static void busy_source_and_pair(struct fake *src, struct tern_mig_params *p, int sv[2],
				 char *su, char *du)
{
	fake_init(src, 1);
	writer_start(src, WRITE_SPARSE);
	tern_mig_params_default(p);
	p->downtime_limit_ms = 50;
	pair(sv, su, du);
}

/* A destination that takes the whole stream in and never answers: the
 * source's guest waits the downtime limit and a grace, not 30 s. */
static void silent_destination_is_given_up(void **state)
{
	(void)state;
	struct fake src;
	struct tern_mig_params p;
	int sv[2];
	char su[32], du[32];
	busy_source_and_pair(&src, &p, sv, su, du);
	struct drain d = { sv[1], 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, drain, &d), 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct source_run s;
	source_start(&s, &src, &p, su);
	source_join(&s);
	/* It hung up (the fd is not its to close): the destination hears at
	 * once that no GO will come. */
	for (int i = 0; i < 500 && !__atomic_load_n(&d.hung_up, __ATOMIC_ACQUIRE); i++) {
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
	int hung_up = __atomic_load_n(&d.hung_up, __ATOMIC_ACQUIRE);
	shutdown(sv[0], SHUT_RDWR); /* lets the drain end either way */
	pthread_join(t, NULL);
	assert_true(hung_up);
	gave_up_in_time(&s, &src, &t0);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	close(sv[1]);
	fake_destroy(&src);
}

/* A destination that is only slow says READY after the source gave up:
 * it gets no GO and never runs the guest, which runs at the source. */
static void slow_destination_never_runs_it_too(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&dst, 0);
	dst.finish_delay_ms = 3000; /* past 50 ms + the grace */
	struct tern_mig_params p;
	int sv[2];
	char su[32], du[32];
	busy_source_and_pair(&src, &p, sv, su, du);
	struct dest_thread d;
	dest_start(&d, &dst, du);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct source_run s;
	source_start(&s, &src, &p, su);
	source_join(&s);
	gave_up_in_time(&s, &src, &t0);
	dest_join(&d);
	assert_true(d.rc < 0);
	assert_true(dst.finished); /* it got everything, and was ready too late */
	assert_false(dst.ran);
	assert_int_equal(d.st.status, TERN_MIG_FAILED);
	if (strstr(d.err.msg, "the guest stays stopped here") == NULL)
		fail_msg("destination error: %s", d.err.msg);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	close(sv[0]);
	close(sv[1]);
	fake_destroy(&src);
	fake_destroy(&dst);
}

/* A guest that dirties more than the link carries converges only when
 * throttled; auto-converge does that, step by step, and lets go after. */
static void auto_converge_throttles(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 0);
	fake_init(&dst, 0);
	src.ws_pages = 1024;
	/* Each round dirties 1 MiB whatever the writer thread manages: more
	 * than 20 ms at 8 MiB/s, so only the throttle (writes stop at 50%)
	 * lets it converge. */
	src.per_sync = 256;
	src.sync_writes_until = UINT_MAX;
	writer_start(&src, WRITE_FULL);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.auto_converge = 1;
	p.max_bandwidth = 8u << 20;
	p.downtime_limit_ms = 20;
	struct tern_mig_stats ss, ds;
	migrate_live(&src, &dst, &p, &ss, &ds);
	check_arrived(&src, &dst, &ss);
	assert_true(src.max_throttle >= 50);
	assert_true(src.throttle_calls >= 4); /* 20, 30, 40, 50 */
	assert_int_equal(src.unthrottled, 1);
	assert_int_equal(ss.throttle_percent, 0);
	fake_destroy(&src);
	fake_destroy(&dst);
}

static void without_auto_converge_it_keeps_iterating(void **state)
{
	(void)state;
	struct fake src;
	fake_init(&src, 0);
	src.ws_pages = 1024;
	src.per_sync = 256; /* as above: 1 MiB a round never fits in 20 ms */
	src.sync_writes_until = UINT_MAX;
	writer_start(&src, WRITE_FULL);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.max_bandwidth = 8u << 20;
	p.downtime_limit_ms = 20;
	const char *path = temp_path("noconv");
	char uri[300];
	snprintf(uri, sizeof uri, "file:%s", path);
	struct source_run s;
	source_start(&s, &src, &p, uri);
	struct timespec nap = { 1, 500000000 };
	nanosleep(&nap, NULL);
	struct tern_mig_stats mid;
	tern_migration_get_stats(&s.m, &mid);
	assert_int_equal(mid.status, TERN_MIG_ACTIVE);
	assert_true(mid.dirty_sync_count >= 2);
	assert_true(mid.expected_downtime_ms > 20);
	assert_true(mid.remaining > 0);
	assert_int_equal(src.throttle_calls, 0);
	tern_migration_cancel(&s.m);
	source_join(&s);
	assert_int_equal(s.rc, -ECANCELED);
	assert_false(src.stopped);
	writer_stop(&src);
	tern_migration_destroy(&s.m);
	unlink(path);
	fake_destroy(&src);
}

static void bandwidth_limit_holds(void **state)
{
	(void)state;
	struct fake src, dst;
	fake_init(&src, 1);
	fake_init(&dst, 0);
	struct tern_mig_params p;
	tern_mig_params_default(&p);
	p.max_bandwidth = 8u << 20;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct tern_mig_stats ss, ds;
	migrate_live(&src, &dst, &p, &ss, &ds);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	check_arrived(&src, &dst, &ss);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* No faster than the limit allows (less one window of 100 ms). */
	double floor_s = (double)ss.transferred / (double)p.max_bandwidth - 0.1;
	if (s < floor_s)
		fail_msg("%llu bytes in %.3f s: faster than %llu B/s",
			 (unsigned long long)ss.transferred, s, (unsigned long long)p.max_bandwidth);
	fake_destroy(&src);
	fake_destroy(&dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(migrates_a_running_guest),
		cmocka_unit_test(xbzrle_after_the_bulk_stage_only),
		cmocka_unit_test(block_deltas_beyond_the_cache),
		cmocka_unit_test(hot_pages_wait_for_the_first_iteration),
		cmocka_unit_test(xbzrle_with_a_running_guest),
		cmocka_unit_test(cancel_leaves_the_guest_running),
		cmocka_unit_test(destination_refusal_reaches_the_source),
		cmocka_unit_test(destination_gone),
		cmocka_unit_test(silent_destination_is_given_up),
		cmocka_unit_test(slow_destination_never_runs_it_too),
		cmocka_unit_test(auto_converge_throttles),
		cmocka_unit_test(without_auto_converge_it_keeps_iterating),
		cmocka_unit_test(bandwidth_limit_holds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
