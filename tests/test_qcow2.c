/*
 * The qcow2 engine on its own: random writes, zeroes, discards and
 * snapshots against a plain-memory model; tiny caches; hostile headers and
 * tables refused; crash consistency with a writer killed at random moments.
 * (qemu-img, when present, checks the images too; test_qcow2_interop covers
 * the two tools against each other.)
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/rng.h"
#include "../harness/shell.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"

#define DISK (8u << 20)
#define MAX_SNAPS 4


static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", test_dir, name);
}

static struct tern_qcow2 *open_rw(const char *path, size_t l2_cache)
{
	struct tern_qcow2 *q = NULL;
	struct tern_error err = { { 0 } };
	struct tern_qcow2_open_opts o = { .writable = true, .l2_cache_bytes = l2_cache,
					  .refcount_cache_bytes = l2_cache };
	int r = tern_qcow2_open(path, &o, &q, &err);
	if (r < 0)
		fail_msg("open %s: %s", path, err.msg);
	return q;
}

static void expect_clean(struct tern_qcow2 *q, const char *path)
{
	struct tern_qcow2_check res = { 0 };
	struct tern_error err = { { 0 } };
	assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, &err), 0);
	if (res.corruptions || res.leaks)
		fail_msg("%s: %llu corruptions, %llu leaks", path,
			 (unsigned long long)res.corruptions, (unsigned long long)res.leaks);
}

static void expect_qemu_clean(const char *path)
{
	if (!harness_have("qemu-img"))
		return;
	char *out = NULL;
	int rc = harness_sh(&out, "qemu-img check '%s'", path);
	if (rc != 0)
		fail_msg("qemu-img check %s: exit %d\n%s", path, rc, out ? out : "");
	free(out);
}

static void verify(struct tern_qcow2 *q, const uint8_t *model, uint8_t *scratch)
{
	struct tern_error err = { { 0 } };
	int r = tern_qcow2_read(q, scratch, 0, DISK, &err);
	if (r < 0)
		fail_msg("read: %s", err.msg);
	for (size_t i = 0; i < DISK; i++)
		if (scratch[i] != model[i])
			fail_msg("byte %zu is 0x%02x, model has 0x%02x", i, scratch[i], model[i]);
}

/* Random operations on one image configuration, checked after every step. */
static void model_run(unsigned cluster_bits, unsigned refcount_bits, size_t cache, uint64_t seed)
{
	char path[512];
	path_in(path, sizeof(path), "model.qcow2");
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = DISK, .cluster_bits = cluster_bits,
					     .refcount_bits = refcount_bits };
	assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	struct tern_qcow2 *q = open_rw(path, cache);
	uint8_t *model = calloc(1, DISK), *scratch = malloc(DISK), *buf = malloc(1 << 20);
	uint8_t *snap_model[MAX_SNAPS] = { 0 };
	char snap_name[MAX_SNAPS][16] = { { 0 } };
	assert_non_null(model);
	for (int step = 0; step < 120; step++) {
		uint64_t op = harness_splitmix(&seed) % 100;
		uint64_t off = harness_splitmix(&seed) % DISK;
		uint64_t len = 1 + harness_splitmix(&seed) % (harness_splitmix(&seed) % 4 ? 70000 : 1000000);
		if (off + len > DISK)
			len = DISK - off;
		int r = 0;
		if (op < 55) {
			uint8_t fill = (uint8_t)harness_splitmix(&seed);
			for (uint64_t i = 0; i < len; i++)
				buf[i] = (uint8_t)(fill + i * 7);
			r = tern_qcow2_write(q, buf, off, len, &err);
			memcpy(model + off, buf, len);
		} else if (op < 65) {
			r = tern_qcow2_write_zeroes(q, off, len, &err);
			memset(model + off, 0, len);
		} else if (op < 72) {
			/* Discard releases whole clusters only; those read as zeros. */
			uint64_t cs = 1ull << cluster_bits;
			uint64_t a = (off + cs - 1) & ~(cs - 1), b = (off + len) & ~(cs - 1);
			r = tern_qcow2_discard(q, off, len, &err);
			if (b > a)
				memset(model + a, 0, b - a);
		} else if (op < 82) {
			int s = (int)(harness_splitmix(&seed) % MAX_SNAPS);
			if (snap_model[s]) {
				r = tern_qcow2_snapshot_delete(q, snap_name[s], &err);
				free(snap_model[s]);
				snap_model[s] = NULL;
			} else {
				snprintf(snap_name[s], sizeof(snap_name[s]), "s%d-%d", s, step);
				r = tern_qcow2_snapshot_create(q, snap_name[s], &err);
				snap_model[s] = malloc(DISK);
				memcpy(snap_model[s], model, DISK);
			}
		} else if (op < 90) {
			int s = (int)(harness_splitmix(&seed) % MAX_SNAPS);
			if (snap_model[s]) {
				r = tern_qcow2_snapshot_apply(q, snap_name[s], &err);
				memcpy(model, snap_model[s], DISK);
			}
		} else if (op < 95) {
			assert_int_equal(tern_qcow2_close(q, &err), 0);
			q = open_rw(path, cache);
		} else {
			r = tern_qcow2_flush(q, &err);
		}
		if (r < 0)
			fail_msg("step %d (op %llu): %s", step, (unsigned long long)op, err.msg);
		verify(q, model, scratch);
	}
	assert_int_equal(tern_qcow2_snapshot_count(q) <= MAX_SNAPS, 1);
	expect_clean(q, path);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	expect_qemu_clean(path);
	for (int s = 0; s < MAX_SNAPS; s++)
		free(snap_model[s]);
	free(model);
	free(scratch);
	free(buf);
}

static void random_operations_match_model(void **state)
{
	(void)state;
	model_run(16, 16, 0, 1);
	model_run(12, 64, 0, 2);
	model_run(9, 8, 0, 3);
	model_run(16, 32, 0, 4);
}

/* A cache of a handful of tables: every access evicts, write-back batches. */
static void tiny_caches(void **state)
{
	(void)state;
	model_run(12, 16, 4 << 12, 5);
	model_run(9, 16, 4 << 9, 6);
}

static void refcount_overflow_refused(void **state)
{
	(void)state;
	char path[512];
	path_in(path, sizeof(path), "narrow.qcow2");
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = 1 << 20, .refcount_bits = 1 };
	assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	struct tern_qcow2 *q = open_rw(path, 0);
	uint8_t data[4096];
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(tern_qcow2_write(q, data, 0, sizeof(data), &err), 0);
	int r = tern_qcow2_snapshot_create(q, "too-many", &err);
	assert_int_equal(r, -ERANGE);
	assert_non_null(strstr(err.msg, "refcount overflow"));
	assert_int_equal(tern_qcow2_snapshot_count(q), 0);
	uint8_t back[4096];
	assert_int_equal(tern_qcow2_read(q, back, 0, sizeof(back), &err), 0);
	assert_memory_equal(back, data, sizeof(data));
	expect_clean(q, path);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	expect_qemu_clean(path);
}

/* ------------------------------------------------------ hostile images */

static void put_be(uint8_t *p, int bytes, uint64_t v)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void patch(const char *path, uint64_t off, int bytes, uint64_t v)
{
	uint8_t b[8];
	put_be(b, bytes, v);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, (size_t)bytes, (off_t)off), bytes);
	close(fd);
}

static void make_base(const char *path)
{
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = 64 << 20 };
	assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	struct tern_qcow2 *q = open_rw(path, 0);
	uint8_t data[65536];
	memset(data, 0x42, sizeof(data));
	assert_int_equal(tern_qcow2_write(q, data, 0, sizeof(data), &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
}

struct mutation {
	const char *what;
	uint64_t off;
	int bytes;
	uint64_t value;
};

/* Layout of an image tern creates: header, reftable at 0x10000, refblock
 * at 0x20000, L1 at 0x30000, first L2 at 0x40000. */
static const struct mutation header_mutations[] = {
	{ "bad magic", 0, 4, 0x12345678 },
	{ "version 4", 4, 4, 4 },
	{ "cluster bits 8", 20, 4, 8 },
	{ "cluster bits 22", 20, 4, 22 },
	{ "encrypted", 32, 4, 1 },
	{ "L1 size absurd", 36, 4, 0x10000000 },
	{ "L1 too small for the disk", 36, 4, 0 },
	{ "L1 offset unaligned", 40, 8, 0x30008 },
	{ "L1 offset past the end", 40, 8, 0x7000000000 },
	{ "L1 inside the header", 40, 8, 0 },
	{ "refcount table of 0 clusters", 56, 4, 0 },
	{ "refcount table huge", 56, 4, 0x100000 },
	{ "refcount table past the end", 48, 8, 0x7000000000 },
	{ "refcount table overlapping L1", 48, 8, 0x30000 },
	{ "too many snapshots", 60, 4, 0x7fffffff },
	{ "snapshot table unaligned", 60, 4, 1 },
	{ "unknown incompatible feature", 72, 8, 1ull << 40 },
	{ "external data file", 72, 8, 1ull << 2 },
	{ "extended L2", 72, 8, 1ull << 4 },
	{ "refcount order 7", 96, 4, 7 },
	{ "header length past the cluster", 100, 4, 0x20000 },
	{ "header length short", 100, 4, 64 },
	{ "backing name past the header", 8, 8, 0xfff0 },
	{ "virtual size absurd", 24, 8, 1ull << 62 },
};

static void hostile_headers_refused(void **state)
{
	(void)state;
	char path[512];
	path_in(path, sizeof(path), "hostile.qcow2");
	for (size_t i = 0; i < sizeof(header_mutations) / sizeof(header_mutations[0]); i++) {
		const struct mutation *m = &header_mutations[i];
		make_base(path);
		if (!strcmp(m->what, "snapshot table unaligned"))
			patch(path, 64, 8, 0x30001);
		if (!strcmp(m->what, "backing name past the header"))
			patch(path, 16, 4, 100);
		patch(path, m->off, m->bytes, m->value);
		struct tern_qcow2 *q = NULL;
		struct tern_error err = { { 0 } };
		struct tern_qcow2_open_opts o = { .writable = true };
		int r = tern_qcow2_open(path, &o, &q, &err);
		if (r >= 0)
			fail_msg("%s: opened", m->what);
		assert_true(strlen(err.msg) > 0);
		print_message("refused (%s): %s\n", m->what, err.msg);
	}
}

static void hostile_tables_refused(void **state)
{
	(void)state;
	char path[512];
	path_in(path, sizeof(path), "tables.qcow2");
	struct tern_error err = { { 0 } };
	uint8_t buf[65536];

	/* L1 entry past the end of the file: reads fail, nothing crashes. */
	make_base(path);
	patch(path, 0x30000, 8, 0x8000007000000000ull);
	struct tern_qcow2 *q = open_rw(path, 0);
	assert_int_equal(tern_qcow2_read(q, buf, 0, 512, &err), -EUCLEAN);
	assert_int_equal(tern_qcow2_write(q, buf, 0, 512, &err), -EUCLEAN);
	tern_qcow2_close(q, NULL);

	/* L2 entry unaligned. */
	make_base(path);
	patch(path, 0x40000, 8, 0x8000000000050200ull);
	q = open_rw(path, 0);
	assert_int_equal(tern_qcow2_read(q, buf, 0, 512, &err), -EUCLEAN);
	tern_qcow2_close(q, NULL);

	/* L2 entry pointing at the L1 table: a write there would destroy
	 * metadata, so it is refused; the L1 table is untouched. */
	make_base(path);
	patch(path, 0x40000, 8, 0x8000000000030000ull);
	q = open_rw(path, 0);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(tern_qcow2_write(q, buf, 0, 4096, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "overlaps metadata"));
	tern_qcow2_close(q, NULL);
	int fd = open(path, O_RDONLY);
	uint8_t l1[8];
	assert_int_equal(pread(fd, l1, 8, 0x30000), 8);
	close(fd);
	assert_int_equal(l1[7], 0x00);
	assert_int_equal(l1[5], 0x04); /* still 0x...40000 */

	/* Refcount block past the end of the file. */
	make_base(path);
	patch(path, 0x10000, 8, 0x7000000000ull);
	struct tern_qcow2_open_opts o = { .writable = true };
	assert_int_equal(tern_qcow2_open(path, &o, &q, &err), -EUCLEAN);

	/* A refcount that would go below zero is corruption, found by check. */
	make_base(path);
	patch(path, 0x20000 + 2 * 5, 2, 0); /* cluster 5: the data cluster */
	q = open_rw(path, 0);
	struct tern_qcow2_check res = { 0 };
	assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, &err), 0);
	assert_true(res.corruptions > 0);
	assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_ALL, &res, &err), 0);
	assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, &err), 0);
	assert_int_equal(res.corruptions, 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	expect_qemu_clean(path);

	/* A hostile snapshot table: id length past the table. */
	make_base(path);
	q = open_rw(path, 0);
	assert_int_equal(tern_qcow2_snapshot_create(q, "s", &err), 0);
	tern_qcow2_close(q, NULL);
	fd = open(path, O_RDONLY);
	uint8_t hdr[72];
	assert_int_equal(pread(fd, hdr, 72, 0), 72);
	close(fd);
	uint64_t snap_off = 0;
	for (int i = 0; i < 8; i++)
		snap_off = snap_off << 8 | hdr[64 + i];
	patch(path, snap_off + 12, 2, 0xffff);
	patch(path, snap_off + 36, 4, 0x10000);
	assert_true(tern_qcow2_open(path, &o, &q, &err) < 0);
}

/* -------------------------------------------------- crash consistency */

static void crash_writer(const char *path, uint64_t seed)
{
	struct tern_error err;
	struct tern_qcow2_open_opts o = { .writable = true, .l2_cache_bytes = 8 << 12,
					  .refcount_cache_bytes = 4 << 12 };
	struct tern_qcow2 *q;
	if (tern_qcow2_open(path, &o, &q, &err) < 0)
		_exit(2);
	uint8_t buf[200000];
	memset(buf, (int)seed, sizeof(buf));
	for (int i = 0;; i++) {
		uint64_t op = harness_splitmix(&seed) % 100;
		uint64_t off = harness_splitmix(&seed) % (DISK - sizeof(buf));
		uint64_t len = 1 + harness_splitmix(&seed) % sizeof(buf);
		int r;
		if (op < 70)
			r = tern_qcow2_write(q, buf, off, len, &err);
		else if (op < 78)
			r = tern_qcow2_discard(q, off, len, &err);
		else if (op < 85)
			r = tern_qcow2_write_zeroes(q, off, len, &err);
		else if (op < 92) {
			char name[32];
			snprintf(name, sizeof(name), "c%llx-%d", (unsigned long long)seed, i);
			r = tern_qcow2_snapshot_create(q, name, &err);
			if (r == 0 && tern_qcow2_snapshot_count(q) > 3) {
				struct tern_qcow2_snapshot_info si;
				tern_qcow2_snapshot_get(q, 0, &si);
				r = tern_qcow2_snapshot_delete(q, si.id, &err);
			}
		} else if (op < 95 && tern_qcow2_snapshot_count(q)) {
			struct tern_qcow2_snapshot_info si;
			tern_qcow2_snapshot_get(q, 0, &si);
			r = tern_qcow2_snapshot_apply(q, si.id, &err);
		} else {
			r = tern_qcow2_flush(q, &err);
		}
		if (r < 0) {
			fprintf(stderr, "writer: op %llu: %s\n", (unsigned long long)op, err.msg);
			_exit(3);
		}
	}
}

static void crash_at_random_points_never_corrupts(void **state)
{
	(void)state;
	char path[512];
	path_in(path, sizeof(path), "crash.qcow2");
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = DISK, .cluster_bits = 12 };
	assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	uint64_t seed = 42, leaks_seen = 0;
	int rounds = 40;
	for (int round = 0; round < rounds; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			crash_writer(path, harness_splitmix(&seed) + (uint64_t)round);
		struct timespec ts = { 0, (long)(1000000 + harness_splitmix(&seed) % 60000000) };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: the writer stopped by itself (status %d)", round,
				 WEXITSTATUS(status));
		/* Never corrupt: qemu-img sees at most leaks, tern agrees. */
		if (harness_have("qemu-img")) {
			char *out = NULL;
			int rc = harness_sh(&out, "qemu-img check '%s'", path);
			if (rc != 0 && rc != 3)
				fail_msg("round %d: qemu-img check exit %d\n%s", round, rc, out);
			free(out);
		}
		struct tern_qcow2_open_opts o = { .writable = true };
		struct tern_qcow2 *q;
		if (tern_qcow2_open(path, &o, &q, &err) < 0)
			fail_msg("round %d: %s", round, err.msg);
		struct tern_qcow2_check res = { 0 };
		assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, &err), 0);
		if (res.corruptions)
			fail_msg("round %d: %llu corruptions", round, (unsigned long long)res.corruptions);
		leaks_seen += res.leaks;
		/* Repair leaks now and then, as an operator would. */
		if (round % 4 == 3)
			assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_LEAKS, &res, &err), 0);
		assert_int_equal(tern_qcow2_close(q, &err), 0);
	}
	print_message("%d kills, %llu leaked clusters seen, no corruption\n", rounds,
		      (unsigned long long)leaks_seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_operations_match_model),
		cmocka_unit_test(tiny_caches),
		cmocka_unit_test(refcount_overflow_refused),
		cmocka_unit_test(hostile_headers_refused),
		cmocka_unit_test(hostile_tables_refused),
		cmocka_unit_test(crash_at_random_points_never_corrupts),
	};
	return cmocka_run_group_tests_name("qcow2", tests, test_dir_setup, test_dir_teardown);
}
