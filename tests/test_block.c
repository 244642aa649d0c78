/*
 * libtern's block backends against an in-memory reference: raw files and
 * qcow2 images, cache=writeback and cache=none, aligned and unaligned
 * buffers, random reads, writes, zeroes, discards and flushes; the
 * requests they must refuse; the counters; locks between two terns.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "block_support.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"

#define MiB (1ull << 20)

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", test_dir, name);
}

static void make_raw(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void make_qcow2(const char *path, uint64_t size, unsigned cluster_bits)
{
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = size, .cluster_bits = cluster_bits };
	if (tern_qcow2_create(path, &co, &err))
		fail_msg("create: %s", err.msg);
}

static struct tern_block *open_block(const char *path, bool writable, enum tern_block_cache cache)
{
	struct tern_block_opts o = { .path = path, .fd = -1, .writable = writable, .cache = cache };
	struct tern_block *b = NULL;
	struct tern_error err = { { 0 } };
	if (tern_block_open(&o, &b, &err))
		fail_msg("open %s: %s", path, err.msg);
	return b;
}

static void close_block(struct tern_block *b)
{
	struct tern_error err = { { 0 } };
	if (tern_block_close(b, &err))
		fail_msg("close: %s", err.msg);
}

/* Random I/O through b, then again after closing and reopening. */
static void exercise(const char *path, enum tern_block_cache cache, bool unaligned, uint64_t seed)
{
	struct tern_block *b = open_block(path, true, cache);
	struct block_model m;
	block_model_init(&m, tern_block_size(b));
	struct block_io_opts o = { .ops = 400, .unaligned = unaligned, .discards = true,
				   .max_len = 256 << 10 };
	block_random_io(b, &m, seed, &o);
	close_block(b);
	b = open_block(path, false, cache);
	block_verify_all(b, &m);
	close_block(b);
	block_model_free(&m);
}

static void raw_random_io(void **state)
{
	(void)state;
	char path[512];
	path_of(path, sizeof(path), "r.raw");
	for (int cache = 0; cache < 2; cache++)
		for (int odd = 0; odd < 2; odd++) {
			make_raw(path, 8 * MiB);
			exercise(path, (enum tern_block_cache)cache, odd, 1 + (uint64_t)(cache * 2 + odd));
		}
}

static void qcow2_random_io(void **state)
{
	(void)state;
	char path[512];
	path_of(path, sizeof(path), "q.qcow2");
	static const unsigned bits[] = { 9, 12, 16, 21 };
	for (size_t i = 0; i < 4; i++)
		for (int cache = 0; cache < 2; cache++) {
			make_qcow2(path, 8 * MiB + 3 * 512, bits[i]);
			exercise(path, (enum tern_block_cache)cache, (i + (size_t)cache) & 1,
				 100 + i * 2 + (uint64_t)cache);
		}
}

/* Requests that are refused, and counted as QEMU counts them. */
static void hostile_requests(void **state)
{
	(void)state;
	char path[512];
	path_of(path, sizeof(path), "h.raw");
	make_raw(path, 1 * MiB);
	struct tern_block *b = open_block(path, true, TERN_BLOCK_CACHE_WRITEBACK);
	struct tern_error err = { { 0 } };
	uint8_t buf[4096] = { 0 };
	struct iovec v = { buf, 4096 };
	assert_int_equal(tern_block_preadv(b, &v, 1, 1 * MiB, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "past the disk's end"));
	assert_int_equal(tern_block_preadv(b, &v, 1, 1 * MiB - 512, &err), -EINVAL);
	assert_int_equal(tern_block_preadv(b, &v, 1, UINT64_MAX - 511, &err), -EINVAL);
	assert_int_equal(tern_block_pwritev(b, &v, 1, 100, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not sector-aligned"));
	struct iovec odd = { buf, 1000 };
	assert_int_equal(tern_block_preadv(b, &odd, 1, 0, &err), -EINVAL);
	assert_int_equal(tern_block_preadv(b, &v, -1, 0, &err), -EINVAL);
	assert_int_equal(tern_block_discard(b, 512, 1 * MiB, &err), -EINVAL);
	assert_int_equal(tern_block_write_zeroes(b, 0, 2 * MiB, false, &err), -EINVAL);
	assert_int_equal(tern_block_preadv(b, &v, 1, 0, &err), 0);
	assert_int_equal(tern_block_pwritev(b, &v, 1, 4096, &err), 0);
	assert_int_equal(tern_block_write_zeroes(b, 0, 4096, true, &err), 0);
	assert_int_equal(tern_block_discard(b, 8192, 8192, &err), 0);
	assert_int_equal(tern_block_flush(b, &err), 0);
	struct tern_block_stats s;
	tern_block_get_stats(b, &s);
	assert_int_equal(s.invalid_rd_operations, 5);
	assert_int_equal(s.invalid_wr_operations, 2);
	assert_int_equal(s.invalid_unmap_operations, 1);
	assert_int_equal(s.rd_operations, 1);
	assert_int_equal(s.rd_bytes, 4096);
	assert_int_equal(s.wr_operations, 2); /* write zeroes count as writes */
	assert_int_equal(s.wr_bytes, 8192);
	assert_int_equal(s.wr_highest_offset, 8192);
	assert_int_equal(s.unmap_operations, 1);
	assert_int_equal(s.unmap_bytes, 8192);
	assert_int_equal(s.flush_operations, 1);
	assert_true(s.idle_time_ns >= 0);
	close_block(b);

	/* Read-only: writes refused. */
	b = open_block(path, false, TERN_BLOCK_CACHE_WRITEBACK);
	assert_int_equal(tern_block_pwritev(b, &v, 1, 0, &err), -EROFS);
	assert_int_equal(tern_block_discard(b, 0, 512, &err), -EROFS);
	close_block(b);

	/* Not images: a directory, a FIFO; a missing file. */
	struct tern_block_opts o = { .path = test_dir, .fd = -1 };
	assert_int_equal(tern_block_open(&o, &b, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "directory"));
	char fifo[512];
	path_of(fifo, sizeof(fifo), "fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	o.path = fifo;
	assert_int_equal(tern_block_open(&o, &b, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "FIFO"));
	o.path = "/nonexistent/disk.img";
	assert_int_equal(tern_block_open(&o, &b, &err), -ENOENT);
	o.path = path;
	o.writable = true;
	o.force_share = true;
	assert_int_equal(tern_block_open(&o, &b, &err), -EINVAL);
}

/* cache=none: aligned buffers go straight to O_DIRECT, others bounce;
 * offsets aligned to 512 but not to the host's block are refused on raw
 * images (documented) and taken by qcow2. */
static void direct_alignment(void **state)
{
	(void)state;
	char raw[512], q[512];
	path_of(raw, sizeof(raw), "d.raw");
	path_of(q, sizeof(q), "d.qcow2");
	make_raw(raw, 1 * MiB);
	make_qcow2(q, 1 * MiB, 16);
	for (int fmt = 0; fmt < 2; fmt++) {
		struct tern_block_opts o = { .path = fmt ? q : raw, .fd = -1, .writable = true,
					     .cache = TERN_BLOCK_CACHE_NONE, .direct_align = 4096 };
		struct tern_block *b;
		struct tern_error err = { { 0 } };
		if (tern_block_open(&o, &b, &err))
			fail_msg("%s", err.msg);
		assert_int_equal(b->align, 4096);
		assert_true(fcntl(b->fd, F_GETFL) & O_DIRECT);
		uint8_t *mem = aligned_alloc(4096, 3 * 4096);
		for (int i = 0; i < 3 * 4096; i++)
			mem[i] = (uint8_t)(i * 7 + fmt);
		struct iovec aligned = { mem, 4096 }, unaligned[2] = { { mem + 1, 100 },
								       { mem + 101, 8192 - 100 } };
		assert_int_equal(tern_block_pwritev(b, &aligned, 1, 0, &err), 0);
		assert_int_equal(tern_block_pwritev(b, unaligned, 2, 8192, &err), 0);
		uint8_t *back = aligned_alloc(4096, 4 * 4096);
		struct iovec rb[2] = { { back + 3, 4096 }, { back + 3 + 4096, 8192 } };
		assert_int_equal(tern_block_preadv(b, rb, 2, 4096, &err), 0);
		assert_true(back[3 + 4095] == 0); /* 4096..8191 was never written */
		assert_memory_equal(back + 3 + 4096, mem + 1, 8192);
		struct iovec sector = { mem, 512 };
		int r = tern_block_pwritev(b, &sector, 1, 512, &err);
		if (fmt == 0) {
			assert_int_equal(r, -EINVAL);
			assert_non_null(strstr(err.msg, "4096-byte direct I/O blocks"));
		} else {
			assert_int_equal(r, 0); /* the engine read-modify-writes */
			struct iovec all = { back, 4096 };
			assert_int_equal(tern_block_preadv(b, &all, 1, 0, &err), 0);
			assert_memory_equal(back, mem, 512);
			assert_memory_equal(back + 512, mem, 512);
			assert_memory_equal(back + 1024, mem + 1024, 4096 - 1024);
		}
		free(mem);
		free(back);
		close_block(b);
	}
	/* The alignment the host reports, when not forced. */
	struct tern_block *b = open_block(raw, false, TERN_BLOCK_CACHE_NONE);
	assert_true(b->align >= 512 && !(b->align & (b->align - 1)));
	close_block(b);
}

static void open_from_fd(void **state)
{
	(void)state;
	char path[512];
	path_of(path, sizeof(path), "fd.qcow2");
	make_qcow2(path, 4 * MiB, 16);
	int fd = open(path, O_RDONLY);
	struct tern_block_opts o = { .path = "fd.qcow2", .from_fd = true, .fd = fd,
				     .writable = true };
	struct tern_block *b;
	struct tern_error err = { { 0 } };
	assert_int_equal(tern_block_open(&o, &b, &err), -EBADF);
	close(fd);
	fd = open(path, O_RDWR);
	assert_int_equal(tern_block_open(&o, &b, &err), 0);
	assert_string_equal(b->ops->name, "qcow2");
	assert_int_equal(tern_block_size(b), 4 * MiB);
	struct block_model m;
	block_model_init(&m, 4 * MiB);
	struct block_io_opts io = { .ops = 100, .discards = true };
	block_random_io(b, &m, 7, &io);
	close_block(b);
	/* The caller's descriptor is still its own. */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	b = open_block(path, false, TERN_BLOCK_CACHE_WRITEBACK);
	block_verify_all(b, &m);
	close_block(b);
	block_model_free(&m);
}

/* Two terns: one writer at a time; readers only without a writer. */
static void locks_between_terns(void **state)
{
	(void)state;
	char path[512];
	path_of(path, sizeof(path), "l.qcow2");
	make_qcow2(path, 1 * MiB, 16);
	struct tern_block *w = open_block(path, true, TERN_BLOCK_CACHE_WRITEBACK), *b;
	struct tern_error err = { { 0 } };
	struct tern_block_opts o = { .path = path, .fd = -1, .writable = true };
	assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "Failed to get \"write\" lock"));
	o.writable = false;
	assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "Failed to get shared \"write\" lock"));
	assert_non_null(strstr(err.msg, "force-share"));
	o.force_share = true;
	assert_int_equal(tern_block_open(&o, &b, &err), 0);
	close_block(b);
	close_block(w);
	o.force_share = false;
	struct tern_block *r1, *r2;
	assert_int_equal(tern_block_open(&o, &r1, &err), 0);
	assert_int_equal(tern_block_open(&o, &r2, &err), 0);
	o.writable = true;
	assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "Failed to get \"write\" lock"));
	close_block(r1);
	close_block(r2);
	assert_int_equal(tern_block_open(&o, &b, &err), 0);
	close_block(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(raw_random_io),
		cmocka_unit_test(qcow2_random_io),
		cmocka_unit_test(hostile_requests),
		cmocka_unit_test(direct_alignment),
		cmocka_unit_test(open_from_fd),
		cmocka_unit_test(locks_between_terns),
	};
	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
