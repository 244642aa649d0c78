/*
 * Corrupt images and hostile backing files: the qcow2 engine and tern-img
 * refuse to write to an image whose metadata overlaps or whose refcounts
 * say a table is free, mark it corrupt (so qemu-img refuses it too), and
 * `check -r all` repairs what can be repaired and refuses the rest without
 * touching the image.  Backing files that are not regular files, loops of
 * backing files and chains that are too deep are refused instead of hanging
 * or recursing.  (qemu-img, when installed, checks every outcome.)
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

#include "../harness/env.h"
#include "../harness/shell.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"


static bool have_qemu(void)
{
	return harness_have("qemu-img") && harness_have("qemu-io");
}

static void patch(const char *path, uint64_t off, int bytes, uint64_t v)
{
	uint8_t b[8];
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, (size_t)bytes, (off_t)off), bytes);
	close(fd);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	uint8_t *b = malloc(*len + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

/* Only the header's incompatible-feature field (the corrupt bit) changed. */
static void expect_only_corrupt_bit(const char *path, const uint8_t *before, size_t len)
{
	size_t now_len;
	uint8_t *now = slurp(path, &now_len);
	assert_int_equal(now_len, len);
	for (size_t i = 0; i < len; i++)
		if (now[i] != before[i] && !(i >= 72 && i < 80))
			fail_msg("%s: byte 0x%zx changed (0x%02x -> 0x%02x)", path, i, before[i], now[i]);
	if (!(now[79] & 2))
		fail_msg("%s: the corrupt bit is not set", path);
	free(now);
}

/* tern's layout for a 64 MiB image with 64 KiB written at 0: header,
 * refcount table at 0x10000, refcount block at 0x20000, L1 at 0x30000, the
 * L2 table at 0x40000 (cluster 4), the data at 0x50000. */
static void make_base(const char *path)
{
	struct tern_error err = { { 0 } };
	struct tern_qcow2_create_opts co = { .size = 64 << 20 };
	assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
	struct tern_qcow2_open_opts o = { .writable = true };
	struct tern_qcow2 *q;
	assert_int_equal(tern_qcow2_open(path, &o, &q, &err), 0);
	uint8_t data[65536];
	memset(data, 0x42, sizeof(data));
	assert_int_equal(tern_qcow2_write(q, data, 0, sizeof(data), &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
}

struct corruption {
	const char *what;
	uint64_t off;
	int bytes;
	uint64_t value;
	bool repairable;
};

static const struct corruption corruptions[] = {
	{ "L2 table with refcount 0", 0x20000 + 2 * 4, 2, 0, true },
	{ "data cluster with refcount 0", 0x20000 + 2 * 5, 2, 0, true },
	{ "L1 entry pointing at the header", 0x30000, 8, 0x8000000000000000ull, true },
	{ "L1 entry pointing at the refcount table", 0x30000, 8, 0x8000000000010000ull, false },
	{ "L1 entry pointing at the L1 table", 0x30000, 8, 0x8000000000030000ull, false },
	{ "data cluster that is the L1 table", 0x40000, 8, 0x8000000000030000ull, false },
	{ "data cluster that is a refcount block", 0x40000, 8, 0x8000000000020000ull, false },
};
#define NCORRUPTIONS (sizeof(corruptions) / sizeof(corruptions[0]))

static void make_corrupt(const char *path, const struct corruption *c)
{
	make_base(path);
	patch(path, c->off, c->bytes, c->value);
}

/* Through the library: check calls each image corrupt, and neither a write
 * nor a snapshot goes through; the image is marked corrupt and nothing
 * else in it changes. */
static void corrupt_images_refuse_writes(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/c.qcow2", test_dir);
	for (size_t i = 0; i < NCORRUPTIONS; i++) {
		const struct corruption *c = &corruptions[i];
		for (int op = 0; op < 2; op++) {
			make_corrupt(path, c);
			size_t len;
			uint8_t *before = slurp(path, &len);
			struct tern_error err = { { 0 } };
			struct tern_qcow2 *q;
			struct tern_qcow2_open_opts ro = { .no_backing = true };
			assert_int_equal(tern_qcow2_open(path, &ro, &q, &err), 0);
			struct tern_qcow2_check res = { 0 };
			assert_int_equal(tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, &err), 0);
			if (!res.corruptions)
				fail_msg("%s: check found no corruption", c->what);
			tern_qcow2_close(q, NULL);

			struct tern_qcow2_open_opts rw = { .writable = true };
			int r = tern_qcow2_open(path, &rw, &q, &err);
			if (r == 0) {
				uint8_t buf[4096];
				memset(buf, 0xee, sizeof(buf));
				r = op == 0 ? tern_qcow2_write(q, buf, 0, sizeof(buf), &err)
					    : tern_qcow2_snapshot_create(q, "s", &err);
				tern_qcow2_close(q, NULL);
			}
			if (r != -EUCLEAN)
				fail_msg("%s: %s gave %d, not -EUCLEAN (%s)", c->what,
					 op ? "snapshot" : "write", r, err.msg);
			if (!strstr(err.msg, "check -r all"))
				fail_msg("%s: the error does not say what to do: %s", c->what, err.msg);
			print_message("%s: %s\n", c->what, err.msg);
			expect_only_corrupt_bit(path, before, len);
			free(before);
		}
		/* Marked corrupt: QEMU refuses to write it too. */
		if (have_qemu()) {
			char *out = NULL;
			assert_int_not_equal(test_dir_sh(&out, "qemu-io -c 'write 0 4k' c.qcow2"), 0);
			free(out);
			assert_int_equal(test_dir_sh(&out, "qemu-img info c.qcow2 | grep -q 'corrupt: true'"), 0);
			free(out);
		}
	}
}

/* tern-img check -r all: repairs what it can (qemu-img check agrees after),
 * refuses overlapping metadata with exit 2 and leaves the image as it was,
 * marked corrupt. */
static void check_repairs_or_refuses(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/r.qcow2", test_dir);
	const char *ti = harness_tern_img();
	for (size_t i = 0; i < NCORRUPTIONS; i++) {
		const struct corruption *c = &corruptions[i];
		make_corrupt(path, c);
		size_t len;
		uint8_t *before = slurp(path, &len);
		char *out = NULL;
		assert_int_equal(test_dir_sh(&out, "%s check r.qcow2", ti), 2);
		free(out);
		int rc = test_dir_sh(&out, "%s check -r all r.qcow2", ti);
		print_message("%s: check -r all exit %d\n%s", c->what, rc, out);
		if (c->repairable) {
			if (rc != 0)
				fail_msg("%s: not repaired (exit %d)", c->what, rc);
			free(out);
			assert_int_equal(test_dir_sh(&out, "%s check r.qcow2 && %s snapshot -c s r.qcow2 && "
					    "%s check r.qcow2", ti, ti, ti), 0);
			if (have_qemu()) {
				free(out);
				if (test_dir_sh(&out, "qemu-img check r.qcow2 && qemu-io -c 'write 1M 4k' r.qcow2 && "
				       "qemu-img check r.qcow2") != 0)
					fail_msg("%s: qemu-img disagrees after the repair:\n%s", c->what, out);
			}
		} else {
			if (rc != 2)
				fail_msg("%s: check -r all exit %d, not 2", c->what, rc);
			if (!strstr(out, "cannot be repaired"))
				fail_msg("%s: no word on what could not be repaired", c->what);
			expect_only_corrupt_bit(path, before, len);
			if (have_qemu()) {
				free(out);
				assert_int_equal(test_dir_sh(&out, "qemu-img info r.qcow2 | grep -q 'corrupt: true'"), 0);
			}
		}
		free(out);
		free(before);
	}
}

/* An image marked corrupt (by QEMU or by tern) with nothing else wrong:
 * writes are refused until check -r all clears the bit. */
static void corrupt_bit_cleared_by_repair(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/b.qcow2", test_dir);
	make_base(path);
	patch(path, 79, 1, 2);
	struct tern_error err = { { 0 } };
	struct tern_qcow2 *q;
	struct tern_qcow2_open_opts rw = { .writable = true };
	assert_int_equal(tern_qcow2_open(path, &rw, &q, &err), -EUCLEAN);
	assert_non_null(strstr(err.msg, "check -r all"));
	char *out = NULL;
	assert_int_equal(test_dir_sh(&out, "%s check -r all b.qcow2", harness_tern_img()), 0);
	free(out);
	assert_int_equal(tern_qcow2_open(path, &rw, &q, &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	if (have_qemu()) {
		assert_int_equal(test_dir_sh(&out, "qemu-img info b.qcow2 | grep -q 'corrupt: false' && "
				    "qemu-io -c 'write 0 4k' b.qcow2 && qemu-img check b.qcow2"), 0);
		free(out);
	}
}

/* A verb given an image whose backing file is `backing`: exits 1 within
 * the timeout (never hangs) and says `words`. */
static void expect_refused(const char *verb, const char *image, const char *words)
{
	char *out = NULL;
	int rc = test_dir_sh(&out, "timeout 20 %s %s %s </dev/null", harness_tern_img(), verb, image);
	if (rc != 1 || !strstr(out, words))
		fail_msg("tern-img %s %s: exit %d (want 1, saying '%s'):\n%s", verb, image, rc, words,
			 out ? out : "");
	print_message("%s %s: %s", verb, image, out);
	free(out);
}

static void overlay(const char *name, const char *backing, const char *fmt)
{
	char *out = NULL;
	if (test_dir_sh(&out, "rm -f %s && %s create -b %s -F %s %s 1M", name, harness_tern_img(), backing, fmt,
	       name) != 0)
		fail_msg("create %s: %s", name, out);
	free(out);
}

static void hostile_backing_files_refused(void **state)
{
	(void)state;
	char *out = NULL;
	assert_int_equal(test_dir_sh(&out, "mkfifo fifo && mkdir -p adir"), 0);
	free(out);
	overlay("f1.qcow2", "fifo", "raw");
	overlay("f2.qcow2", "fifo", "qcow2");
	overlay("d.qcow2", "adir", "raw");
	overlay("n.qcow2", "/dev/null", "raw");
	overlay("self.qcow2", "self.qcow2", "qcow2");
	overlay("a.qcow2", "b.qcow2", "qcow2");
	overlay("b.qcow2", "a.qcow2", "qcow2");
	const char *verbs[] = { "convert -O raw", "info --backing-chain" };
	for (int v = 0; v < 2; v++) {
		char verb[64];
		snprintf(verb, sizeof(verb), "%s", verbs[v]);
		char f1[64], f2[64], d[64], n[64], self[64], a[64];
		bool conv = v == 0;
		snprintf(f1, sizeof(f1), "f1.qcow2%s", conv ? " o.raw" : "");
		snprintf(f2, sizeof(f2), "f2.qcow2%s", conv ? " o.raw" : "");
		snprintf(d, sizeof(d), "d.qcow2%s", conv ? " o.raw" : "");
		snprintf(n, sizeof(n), "n.qcow2%s", conv ? " o.raw" : "");
		snprintf(self, sizeof(self), "self.qcow2%s", conv ? " o.raw" : "");
		snprintf(a, sizeof(a), "a.qcow2%s", conv ? " o.raw" : "");
		expect_refused(verb, f1, "not a regular file");
		expect_refused(verb, f2, "not a regular file");
		expect_refused(verb, d, "not a regular file");
		expect_refused(verb, n, "not a regular file");
		expect_refused(verb, self, "loop");
		expect_refused(verb, a, "loop");
	}
	/* The image itself a FIFO: refused too, not waited on. */
	expect_refused("info", "fifo", "not a regular file");
	expect_refused("check", "fifo", "not a regular file");
	/* A chain of 17 overlays is too deep; 16 are fine. */
	assert_int_equal(test_dir_sh(&out, "%s create c0.qcow2 1M", harness_tern_img()), 0);
	free(out);
	for (int i = 1; i <= 17; i++) {
		char name[32], back[32];
		snprintf(name, sizeof(name), "c%d.qcow2", i);
		snprintf(back, sizeof(back), "c%d.qcow2", i - 1);
		overlay(name, back, "qcow2");
	}
	assert_int_equal(test_dir_sh(&out, "%s convert -O raw c16.qcow2 o.raw", harness_tern_img()), 0);
	free(out);
	expect_refused("convert -O raw", "c17.qcow2 o.raw", "deeper than 16");
}

/* info does not open the backing file (as qemu-img info does not), so a
 * missing or hostile one does not stop it; --backing-chain follows it. */
static void info_does_not_follow_backing(void **state)
{
	(void)state;
	char *out = NULL;
	const char *ti = harness_tern_img();
	assert_int_equal(test_dir_sh(&out, "rm -f base.qcow2 top.qcow2 && %s create base.qcow2 1M && "
			    "%s create -b base.qcow2 -F qcow2 top.qcow2 && mv base.qcow2 gone.qcow2",
			    ti, ti), 0);
	free(out);
	assert_int_equal(test_dir_sh(&out, "timeout 20 %s info top.qcow2", ti), 0);
	assert_non_null(strstr(out, "backing file: base.qcow2"));
	free(out);
	assert_int_equal(test_dir_sh(&out, "timeout 20 %s snapshot -c s top.qcow2 && %s snapshot -l top.qcow2 "
			    "&& %s map top.qcow2", ti, ti, ti), 0);
	free(out);
	assert_int_equal(test_dir_sh(&out, "timeout 20 %s info --backing-chain top.qcow2", ti), 1);
	free(out);
	assert_int_equal(test_dir_sh(&out, "mv gone.qcow2 base.qcow2 && %s info --backing-chain top.qcow2", ti),
			 0);
	if (!strstr(out, "image: top.qcow2") || !strstr(out, "image: base.qcow2"))
		fail_msg("the chain is not listed:\n%s", out);
	free(out);
	assert_int_equal(test_dir_sh(&out, "%s info --backing-chain --output=json top.qcow2 | "
			    "grep -c '\"filename\"' | grep -qx 2", ti), 0);
	free(out);
	if (have_qemu()) {
		assert_int_equal(test_dir_sh(&out, "qemu-img info --backing-chain top.qcow2 | grep -c '^image:' | "
				    "grep -qx 2"), 0);
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corrupt_images_refuse_writes),
		cmocka_unit_test(check_repairs_or_refuses),
		cmocka_unit_test(corrupt_bit_cleared_by_repair),
		cmocka_unit_test(hostile_backing_files_refused),
		cmocka_unit_test(info_does_not_follow_backing),
	};
	return cmocka_run_group_tests_name("qcow2_corrupt", tests, test_dir_setup, test_dir_teardown);
}
