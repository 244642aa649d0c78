/*
 * The block layer against Debian's qemu-img and qemu-io: qcow2 images
 * written through it pass `qemu-img check` and convert to the reference's
 * bytes; images qemu-img made (cluster sizes, a backing file, compressed
 * clusters) read back right; and image locks keep tern and QEMU from
 * writing one image together, both ways.  Skipped without qemu-img.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/proc.h"
#include "../harness/shell.h"
#include "block_support.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"

#define MiB (1ull << 20)

static bool need_qemu(void)
{
	if (harness_have("qemu-img") && harness_have("qemu-io"))
		return true;
	print_message("qemu-img/qemu-io not installed\n");
	return false;
}

#define MUST(...)                                                               \
	do {                                                                    \
		char *out_ = NULL;                                              \
		if (test_dir_sh(&out_, __VA_ARGS__) != 0)                                \
			fail_msg("command failed:\n%s", out_ ? out_ : "");      \
		free(out_);                                                     \
	} while (0)

static char *in_dir(const char *name)
{
	static char path[4][512];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, 512, "%s/%s", test_dir, name);
	return p;
}

static struct tern_block *open_block(const char *name, bool writable, enum tern_block_cache cache)
{
	struct tern_block_opts o = { .path = in_dir(name), .fd = -1, .writable = writable,
				     .cache = cache };
	struct tern_block *b = NULL;
	struct tern_error err = { { 0 } };
	if (tern_block_open(&o, &b, &err))
		fail_msg("open %s: %s", name, err.msg);
	return b;
}

static void close_block(struct tern_block *b)
{
	struct tern_error err = { { 0 } };
	if (tern_block_close(b, &err))
		fail_msg("close: %s", err.msg);
}

/* Written through the block layer at three cluster sizes, both caches. */
static void written_by_tern_checked_by_qemu(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	static const unsigned bits[] = { 9, 16, 21 };
	for (int i = 0; i < 3; i++) {
		struct tern_error err = { { 0 } };
		struct tern_qcow2_create_opts co = { .size = 16 * MiB, .cluster_bits = bits[i] };
		assert_int_equal(tern_qcow2_create(in_dir("t.qcow2"), &co, &err), 0);
		struct tern_block *b = open_block("t.qcow2", true, (enum tern_block_cache)(i & 1));
		struct block_model m;
		block_model_init(&m, 16 * MiB);
		struct block_io_opts o = { .ops = 300, .discards = true, .unaligned = i == 2,
					   .max_len = 512 << 10 };
		block_random_io(b, &m, 40 + (uint64_t)i, &o);
		close_block(b);
		block_model_save(&m, in_dir("model.raw"));
		MUST("qemu-img check t.qcow2");
		MUST("qemu-img convert -O raw t.qcow2 q.raw && cmp q.raw model.raw");
		block_model_free(&m);
	}
}

/* Read n bytes at off of raw file `name` into buf. */
static void read_file(const char *name, uint8_t *buf, uint64_t n)
{
	int fd = open(in_dir(name), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, n, 0), (ssize_t)n);
	close(fd);
}

/* The whole of image `img` through the block layer equals raw file `ref`. */
static void same_as(const char *img, const char *ref, uint64_t size, enum tern_block_cache cache)
{
	struct tern_block *b = open_block(img, false, cache);
	assert_int_equal(tern_block_size(b), size);
	struct block_model m;
	block_model_init(&m, size);
	read_file(ref, m.data, size);
	block_verify_all(b, &m);
	close_block(b);
	block_model_free(&m);
}

static void made_by_qemu_read_by_tern(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	static const char *const sizes[] = { "512", "4096", "65536", "2M" };
	for (int i = 0; i < 4; i++) {
		MUST("qemu-img create -q -f qcow2 -o cluster_size=%s q.qcow2 12M", sizes[i]);
		MUST("qemu-io -c 'write -P 0x11 0 3M' -c 'write -P 0x22 5M 123k' "
		     "-c 'write -z 1M 64k' -c 'discard 2M 128k' -c 'write -P 0x33 11M 1M' q.qcow2 "
		     ">/dev/null");
		MUST("qemu-img convert -O raw q.qcow2 q.raw");
		same_as("q.qcow2", "q.raw", 12 * MiB, (enum tern_block_cache)(i & 1));
	}
	/* A backing chain: raw base, qcow2 middle, qcow2 top. */
	MUST("qemu-img create -q -f raw base.raw 10M && "
	     "qemu-io -f raw -c 'write -P 0x44 0 10M' base.raw >/dev/null && "
	     "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 10M && "
	     "qemu-io -c 'write -P 0x55 1M 2M' mid.qcow2 >/dev/null && "
	     "qemu-img create -q -f qcow2 -o cluster_size=4096 -b mid.qcow2 -F qcow2 top.qcow2 12M "
	     "&& qemu-io -c 'write -P 0x66 2M 4k' -c 'write -z 4M 1M' top.qcow2 >/dev/null && "
	     "qemu-img convert -O raw top.qcow2 top.raw");
	same_as("top.qcow2", "top.raw", 12 * MiB, TERN_BLOCK_CACHE_WRITEBACK);
	same_as("top.qcow2", "top.raw", 12 * MiB, TERN_BLOCK_CACHE_NONE);
	/* Compressed clusters (deflate and zstd), then written over by tern. */
	MUST("qemu-img create -q -f raw src.raw 8M && "
	     "qemu-io -f raw -c 'write -P 0x77 0 3M' -c 'write -P 0x78 5M 1M' src.raw >/dev/null && "
	     "qemu-img convert -c -O qcow2 src.raw c.qcow2 && "
	     "qemu-img convert -c -O qcow2 -o compression_type=zstd,cluster_size=4096 src.raw "
	     "z.qcow2");
	MUST("qemu-img map --output=json c.qcow2 | grep -q '\"compressed\": true' || "
	     "qemu-img check c.qcow2 | grep -q compressed");
	same_as("c.qcow2", "src.raw", 8 * MiB, TERN_BLOCK_CACHE_NONE);
	same_as("z.qcow2", "src.raw", 8 * MiB, TERN_BLOCK_CACHE_WRITEBACK);
	struct tern_block *b = open_block("c.qcow2", true, TERN_BLOCK_CACHE_WRITEBACK);
	struct block_model m;
	block_model_init(&m, 8 * MiB);
	read_file("src.raw", m.data, 8 * MiB);
	struct block_io_opts o = { .ops = 150, .discards = true };
	block_random_io(b, &m, 9, &o);
	close_block(b);
	block_model_save(&m, in_dir("model.raw"));
	MUST("qemu-img check c.qcow2 && qemu-img convert -O raw c.qcow2 c.raw && cmp c.raw model.raw");
	block_model_free(&m);
}

/* Whether another process holds a lock on byte `off` of the file. */
static bool byte_locked(const char *name, off_t off)
{
	int fd = open(in_dir(name), O_RDONLY);
	assert_true(fd >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };
	assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
	close(fd);
	return fl.l_type != F_UNLCK;
}

/* qemu-io holding `name` (read-only with ro) until proc_kill. */
static void qemu_io_holds(struct proc *p, const char *name, const char *fmt, bool ro)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && exec qemu-io %s-f %s %s", test_dir, ro ? "-r " : "",
		 fmt, name);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	assert_int_equal(proc_spawn(p, argv, 1), 0);
	double end = deadline_ms(10000);
	while (!byte_locked(name, 100) && now_ms() < end)
		usleep(10000);
	if (!byte_locked(name, 100))
		fail_msg("qemu-io did not lock %s: %s", name, proc_output(p));
}

static void qemu_io_release(struct proc *p)
{
	close(p->in_fd); /* EOF: qemu-io quits */
	p->in_fd = -1;
	if (proc_wait(p, 10000) < 0)
		proc_kill(p, 9);
	proc_free(p);
}

static void expect_refused(const char *cmd, const char *needle)
{
	char *out = NULL;
	int rc = test_dir_sh(&out, "%s", cmd);
	if (rc == 0 || !out || !strstr(out, needle))
		fail_msg("`%s` exited %d, expected a refusal with '%s':\n%s", cmd, rc, needle,
			 out ? out : "");
	free(out);
}

static void locks_against_qemu(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	MUST("qemu-img create -q -f qcow2 img.qcow2 4M && qemu-img create -q -f raw img.raw 4M");
	const char *imgs[] = { "img.qcow2", "img.raw" };
	for (int i = 0; i < 2; i++) {
		const char *img = imgs[i], *fmt = i ? "raw" : "qcow2";
		char cmd[512];
		/* tern writes: qemu-io may not write; qemu-img info may not even
		 * look at a qcow2 image (its metadata could change under it),
		 * except with -U; raw images it reads, as next to QEMU's own writer. */
		struct tern_block *b = open_block(img, true, TERN_BLOCK_CACHE_WRITEBACK);
		snprintf(cmd, sizeof(cmd), "qemu-img info -f %s %s", fmt, img);
		if (i == 0)
			expect_refused(cmd, "Failed to get shared \"write\" lock");
		else
			MUST("%s >/dev/null", cmd);
		MUST("qemu-img info -U -f %s %s >/dev/null", fmt, img);
		snprintf(cmd, sizeof(cmd), "qemu-io -f %s -c 'write 0 512' %s", fmt, img);
		expect_refused(cmd, "Failed to get \"write\" lock");
		close_block(b);
		MUST("qemu-img info -f %s %s >/dev/null", fmt, img);
		MUST("%s >/dev/null", cmd);

		/* tern reads: qemu-img reads too, qemu-io may not write. */
		b = open_block(img, false, TERN_BLOCK_CACHE_NONE);
		MUST("qemu-img info -f %s %s >/dev/null", fmt, img);
		expect_refused(cmd, "Failed to get \"write\" lock");
		close_block(b);

		/* QEMU writes: tern may neither write nor read.  (qemu-io shares
		 * writing to a raw image, so there tern finds its write byte.) */
		struct proc p;
		qemu_io_holds(&p, img, fmt, false);
		struct tern_error err = { { 0 } };
		struct tern_block_opts o = { .path = in_dir(img), .fd = -1, .writable = true };
		assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
		assert_non_null(strstr(err.msg, i == 0 ? "Failed to get \"write\" lock"
						       : "Failed to get shared \"write\" lock"));
		o.writable = false;
		assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
		assert_non_null(strstr(err.msg, "Failed to get shared \"write\" lock"));
		o.force_share = true;
		assert_int_equal(tern_block_open(&o, &b, &err), 0);
		close_block(b);
		qemu_io_release(&p);

		/* QEMU reads: tern reads along, and writes only a raw image (a
		 * qcow2 reader does not share writing to its metadata). */
		qemu_io_holds(&p, img, fmt, true);
		o.force_share = false;
		assert_int_equal(tern_block_open(&o, &b, &err), 0);
		close_block(b);
		o.writable = true;
		if (i == 0) {
			assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
		} else {
			assert_int_equal(tern_block_open(&o, &b, &err), 0);
			close_block(b);
		}
		qemu_io_release(&p);
		assert_int_equal(tern_block_open(&o, &b, &err), 0);
		close_block(b);
	}
	/* A backing file QEMU writes to cannot back an image tern opens. */
	MUST("qemu-img create -q -f qcow2 -b img.qcow2 -F qcow2 over.qcow2");
	struct proc p;
	qemu_io_holds(&p, "img.qcow2", "qcow2", false);
	struct tern_block_opts o = { .path = in_dir("over.qcow2"), .fd = -1, .writable = true };
	struct tern_block *b;
	struct tern_error err = { { 0 } };
	assert_int_equal(tern_block_open(&o, &b, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "img.qcow2"));
	qemu_io_release(&p);
	assert_int_equal(tern_block_open(&o, &b, &err), 0);
	/* ... and while tern has it, QEMU does not write the backing file. */
	expect_refused("qemu-io -f qcow2 -c 'write 0 512' img.qcow2", "Failed to get \"write\" lock");
	close_block(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(written_by_tern_checked_by_qemu),
		cmocka_unit_test(made_by_qemu_read_by_tern),
		cmocka_unit_test(locks_against_qemu),
	};
	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
