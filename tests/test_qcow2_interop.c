/*
 * tern-img and libtern's qcow2 engine against Debian's qemu-img and
 * qemu-io: each tool's images pass the other's check, data written by one
 * reads back identically through the other, snapshots made by one are
 * listed, applied and deleted by the other, compressed and backing images
 * read right.  Skipped when qemu-img is not installed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/shell.h"
#include "tern/qcow2.h"
#include "tmpdir_support.h"


static bool need_qemu(void)
{
	if (harness_have("qemu-img") && harness_have("qemu-io"))
		return true;
	print_message("qemu-img/qemu-io not installed\n");
	return false;
}

/* Run a command that must succeed. */
static char *run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char *out = NULL;
	int rc = harness_sh(&out, "cd '%s' && %s", test_dir, cmd);
	if (rc != 0)
		fail_msg("`%s` exited %d:\n%s", cmd, rc, out ? out : "");
	return out;
}

static void run_quiet(const char *cmd)
{
	free(run("%s", cmd));
}

static int run_status(const char *cmd)
{
	return harness_sh(NULL, "cd '%s' && %s", test_dir, cmd);
}

#define TI harness_tern_img()

/* Written by libtern at three cluster sizes and refcount widths: qemu-img
 * checks them clean and converts them to the same bytes. */
static void tern_written_qemu_reads(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	static const struct { unsigned cb, rb; } configs[] = { { 16, 16 }, { 9, 64 }, { 21, 4 } };
	for (size_t c = 0; c < 3; c++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/t.qcow2", test_dir);
		struct tern_error err = { { 0 } };
		struct tern_qcow2_create_opts co = { .size = 48 << 20, .cluster_bits = configs[c].cb,
						     .refcount_bits = configs[c].rb };
		assert_int_equal(tern_qcow2_create(path, &co, &err), 0);
		struct tern_qcow2_open_opts o = { .writable = true };
		struct tern_qcow2 *q;
		assert_int_equal(tern_qcow2_open(path, &o, &q, &err), 0);
		uint8_t *raw = calloc(1, 48 << 20), *buf = malloc(3 << 20);
		uint64_t seed = c + 1;
		for (int i = 0; i < 60; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t off = (seed >> 20) % (45 << 20), len = 1 + (seed >> 7) % (3 << 20);
			memset(buf, (int)(seed >> 56) | 1, len);
			assert_int_equal(tern_qcow2_write(q, buf, off, len, &err), 0);
			memcpy(raw + off, buf, len);
		}
		assert_int_equal(tern_qcow2_close(q, &err), 0);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		fclose(f);
		char rawpath[512];
		snprintf(rawpath, sizeof(rawpath), "%s/model.raw", test_dir);
		f = fopen(rawpath, "w");
		fwrite(raw, 1, 48 << 20, f);
		fclose(f);
		run_quiet("qemu-img check t.qcow2");
		run_quiet("qemu-img convert -O raw t.qcow2 q.raw && cmp q.raw model.raw");
		run_quiet("qemu-img compare -f qcow2 -F raw t.qcow2 model.raw");
		free(raw);
		free(buf);
	}
}

/* Written by qemu-io: tern reads the same bytes, tern-img converts to the
 * same raw image as qemu-img, and tern-img check agrees it is clean. */
static void qemu_written_tern_reads(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	run_quiet("qemu-img create -q -f qcow2 -o cluster_size=4096 q.qcow2 64M");
	run_quiet("qemu-io -c 'write -P 0x11 0 5M' -c 'write -P 0x22 33M 123k' "
		  "-c 'write -z 1M 64k' -c 'discard 2M 128k' -c 'write -P 0x33 63M 1M' q.qcow2");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "%s check q.qcow2 && %s convert -O raw q.qcow2 t.raw && "
		 "qemu-img convert -O raw q.qcow2 q.raw && cmp t.raw q.raw", TI, TI);
	run_quiet(cmd);
	/* tern-img converts raw to qcow2; qemu-img sees the same disk. */
	snprintf(cmd, sizeof(cmd), "%s convert -f raw -O qcow2 -o cluster_size=65536 t.raw back.qcow2 "
		 "&& qemu-img check back.qcow2 && qemu-img compare -F raw back.qcow2 q.raw", TI);
	run_quiet(cmd);
}

static void snapshots_by_tern_used_by_qemu(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "%s create s.qcow2 16M", TI);
	run_quiet(cmd);
	run_quiet("qemu-io -c 'write -P 0xa1 0 4M' s.qcow2");
	snprintf(cmd, sizeof(cmd), "%s snapshot -c first s.qcow2", TI);
	run_quiet(cmd);
	run_quiet("qemu-io -c 'write -P 0xb2 1M 2M' s.qcow2");
	snprintf(cmd, sizeof(cmd), "%s snapshot -c second s.qcow2", TI);
	run_quiet(cmd);
	run_quiet("qemu-img check s.qcow2");
	char *list = run("qemu-img snapshot -l s.qcow2");
	assert_non_null(strstr(list, "first"));
	assert_non_null(strstr(list, "second"));
	free(list);
	/* qemu reads each snapshot's data as tern wrote it... */
	run_quiet("qemu-img convert -l snapshot.name=first -O raw s.qcow2 first.raw && "
		  "qemu-io -f raw -c 'read -P 0xa1 0 4M' first.raw | grep -q 'read 4194304'");
	run_quiet("qemu-img convert -l snapshot.name=second -O raw s.qcow2 second.raw && "
		  "qemu-io -f raw -c 'read -P 0xb2 1M 2M' second.raw | grep -q 'read 2097152'");
	/* ...applies and deletes them, and the image stays clean for both. */
	run_quiet("qemu-img snapshot -a first s.qcow2 && qemu-img compare -F raw s.qcow2 first.raw");
	run_quiet("qemu-img snapshot -d first s.qcow2 && qemu-img check s.qcow2");
	snprintf(cmd, sizeof(cmd), "%s check s.qcow2 && %s snapshot -l s.qcow2 | grep -q second && "
		 "! %s snapshot -l s.qcow2 | grep -q first", TI, TI, TI);
	run_quiet(cmd);
}

static void snapshots_by_qemu_used_by_tern(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	char cmd[2048];
	run_quiet("qemu-img create -q -f qcow2 -o cluster_size=16384 p.qcow2 16M && "
		  "qemu-io -c 'write -P 0x5c 0 3M' p.qcow2 && qemu-img snapshot -c qa p.qcow2 && "
		  "qemu-io -c 'write -P 0x6d 512k 1M' p.qcow2 && qemu-img snapshot -c qb p.qcow2 && "
		  "qemu-io -c 'write -P 0x7e 0 64k' p.qcow2 && qemu-img convert -O raw p.qcow2 now.raw && "
		  "qemu-img convert -l snapshot.name=qa -O raw p.qcow2 qa.raw");
	snprintf(cmd, sizeof(cmd), "%s snapshot -l p.qcow2 | grep -q qa && %s snapshot -l p.qcow2 | grep -q qb",
		 TI, TI);
	run_quiet(cmd);
	/* tern applies qa: the disk is qa's data; qemu agrees and checks clean. */
	snprintf(cmd, sizeof(cmd), "%s snapshot -a qa p.qcow2 && %s convert -O raw p.qcow2 t.raw && "
		 "cmp t.raw qa.raw && qemu-img check p.qcow2", TI, TI);
	run_quiet(cmd);
	snprintf(cmd, sizeof(cmd), "%s snapshot -d qb p.qcow2 && %s snapshot -d qa p.qcow2 && "
		 "qemu-img check p.qcow2 && qemu-img compare -F raw p.qcow2 qa.raw && "
		 "test -z \"$(qemu-img snapshot -l p.qcow2)\"", TI, TI);
	run_quiet(cmd);
	/* Written after the deletes: COPIED flags are right, writes go in place. */
	run_quiet("qemu-io -c 'write -P 0x11 0 1M' p.qcow2 && qemu-img check p.qcow2");
}

static void preallocated_both_ways(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "%s create -o preallocation=metadata m.qcow2 3G && "
		 "qemu-img check m.qcow2 && qemu-img map --output=json m.qcow2 | grep -q '\"data\": true' && "
		 "%s snapshot -c x m.qcow2 && qemu-img check m.qcow2 && %s snapshot -d x m.qcow2 && "
		 "qemu-img check m.qcow2", TI, TI, TI);
	run_quiet(cmd);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 -o preallocation=metadata n.qcow2 3G && "
		 "%s check n.qcow2 && %s snapshot -c y n.qcow2 && qemu-img check n.qcow2 && "
		 "qemu-io -c 'write -P 0x44 1G 1M' n.qcow2 && %s snapshot -a y n.qcow2 && "
		 "qemu-img check n.qcow2 && qemu-io -c 'read -P 0 1G 1M' n.qcow2 | grep -q 'read 1048576'",
		 TI, TI, TI);
	run_quiet(cmd);
}

static void compressed_and_backing_read(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	char cmd[2048];
	run_quiet("qemu-img create -q -f qcow2 src.qcow2 8M && "
		  "qemu-io -c 'write -P 0x61 0 3M' -c 'write -P 0x62 5M 100k' src.qcow2 && "
		  "qemu-img convert -O raw src.qcow2 src.raw && "
		  "qemu-img convert -c -O qcow2 src.qcow2 zlib.qcow2 && "
		  "qemu-img convert -c -O qcow2 -o compression_type=zstd src.qcow2 zstd.qcow2");
	snprintf(cmd, sizeof(cmd), "%s convert -O raw zlib.qcow2 a.raw && cmp a.raw src.raw && "
		 "%s convert -O raw zstd.qcow2 b.raw && cmp b.raw src.raw && %s check zstd.qcow2",
		 TI, TI, TI);
	run_quiet(cmd);
	/* Writing into a compressed cluster copies it out first. */
	char path[512];
	snprintf(path, sizeof(path), "%s/zlib.qcow2", test_dir);
	struct tern_error err = { { 0 } };
	struct tern_qcow2_open_opts o = { .writable = true };
	struct tern_qcow2 *q;
	assert_int_equal(tern_qcow2_open(path, &o, &q, &err), 0);
	uint8_t b = 0x99;
	assert_int_equal(tern_qcow2_write(q, &b, 4096 + 7, 1, &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	run_quiet("qemu-img check zlib.qcow2 && qemu-io -c 'read -P 0x61 0 4103' "
		  "-c 'read -P 0x99 4103 1' -c 'read -P 0x61 4104 60k' zlib.qcow2 | grep -c 'read ' | grep -q 3");
	/* An overlay on a qcow2 backing file: tern reads through and copies
	 * partial clusters on write. */
	snprintf(cmd, sizeof(cmd), "%s create -b src.qcow2 -F qcow2 over.qcow2 && "
		 "qemu-img info over.qcow2 | grep -q 'backing file: src.qcow2'", TI);
	run_quiet(cmd);
	snprintf(path, sizeof(path), "%s/over.qcow2", test_dir);
	assert_int_equal(tern_qcow2_open(path, &o, &q, &err), 0);
	uint8_t buf[100];
	memset(buf, 0x70, sizeof(buf));
	assert_int_equal(tern_qcow2_write(q, buf, 1000, sizeof(buf), &err), 0);
	assert_int_equal(tern_qcow2_write_zeroes(q, 5 << 20, 65536, &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	run_quiet("qemu-img check over.qcow2 && qemu-io -c 'read -P 0x61 0 1000' -c 'read -P 0x70 1000 100' "
		  "-c 'read -P 0x61 1100 2M' -c 'read -P 0 5M 64k' -c 'read -P 0x62 5184k 36k' over.qcow2 "
		  "| grep -c '^read ' | grep -q 5");
	/* A raw backing file. */
	snprintf(cmd, sizeof(cmd), "%s create -b src.raw -F raw over2.qcow2 && %s convert -O raw over2.qcow2 c.raw "
		 "&& cmp c.raw src.raw", TI, TI);
	run_quiet(cmd);
}

/* Version 2 images (compat=0.10): no zero flag, refcounts 16 bits; tern
 * writes, zeroes and snapshots them and qemu-img agrees. */
static void version2_images(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	run_quiet("qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 8M && "
		  "qemu-io -c 'write -P 0x21 0 1M' v2.qcow2");
	char path[512];
	snprintf(path, sizeof(path), "%s/v2.qcow2", test_dir);
	struct tern_error err = { { 0 } };
	struct tern_qcow2_open_opts o = { .writable = true };
	struct tern_qcow2 *q;
	assert_int_equal(tern_qcow2_open(path, &o, &q, &err), 0);
	uint8_t buf[70000];
	memset(buf, 0x43, sizeof(buf));
	assert_int_equal(tern_qcow2_write(q, buf, 3 << 20, sizeof(buf), &err), 0);
	assert_int_equal(tern_qcow2_write_zeroes(q, 0, 65536, &err), 0);
	assert_int_equal(tern_qcow2_snapshot_create(q, "v2snap", &err), 0);
	assert_int_equal(tern_qcow2_write(q, buf, 65536, 4096, &err), 0);
	assert_int_equal(tern_qcow2_close(q, &err), 0);
	run_quiet("qemu-img check v2.qcow2 && qemu-img info v2.qcow2 | grep -q 'compat: 0.10' && "
		  "qemu-io -c 'read -P 0 0 64k' -c 'read -P 0x43 64k 4k' -c 'read -P 0x21 68k 956k' "
		  "-c 'read -P 0x43 3M 70000' v2.qcow2 | grep -c '^read ' | grep -q 4 && "
		  "qemu-img snapshot -l v2.qcow2 | grep -q v2snap");
}

/* An image left dirty by a writer with lazy refcounts (its refcounts may be
 * too low): opening it for writing rebuilds them and clears the bit. */
static void dirty_lazy_refcounts_repaired(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	run_quiet("qemu-img create -q -f qcow2 -o lazy_refcounts=on d.qcow2 8M && "
		  "qemu-io -c 'write -P 0x31 0 128k' d.qcow2");
	/* As a crash would leave it: dirty bit set, the data clusters'
	 * refcounts (clusters 5 and 6, block at 0x20000) never written. */
	run_quiet("printf '\\000\\000\\000\\000' | dd of=d.qcow2 bs=1 seek=$((0x20000 + 10)) "
		  "conv=notrunc status=none && "
		  "printf '\\001' | dd of=d.qcow2 bs=1 seek=79 conv=notrunc status=none");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s check d.qcow2 >/dev/null", TI);
	assert_int_equal(run_status(cmd), 2); /* refcounts too low, as left */
	snprintf(cmd, sizeof(cmd), "%s snapshot -c after-crash d.qcow2 && qemu-img check d.qcow2 && "
		 "qemu-io -c 'read -P 0x31 0 128k' d.qcow2 | grep -q 'read 131072' && "
		 "%s info --output=json d.qcow2 | grep -q '\"dirty-flag\": false' && "
		 "qemu-img info d.qcow2 | grep -q 'lazy refcounts: true'", TI, TI);
	run_quiet(cmd);
}

static void check_exit_codes_and_repair(void **state)
{
	(void)state;
	if (!need_qemu())
		skip();
	char cmd[2048];
	/* A leak: a refcount for a cluster nothing references.  qemu-img's
	 * layout puts the refcount block at 0x20000 (16-bit entries) and uses
	 * clusters 0..5; the file grows by two clusters and cluster 6 gets
	 * refcount 1. */
	run_quiet("qemu-img create -q -f qcow2 l.qcow2 8M && qemu-io -c 'write -P 1 0 64k' l.qcow2 && "
		  "truncate -s $((0x80000)) l.qcow2");
	run_quiet("printf '\\000\\001' | dd of=l.qcow2 bs=1 seek=$((0x20000 + 12)) conv=notrunc status=none");
	assert_int_equal(run_status("qemu-img check l.qcow2 >/dev/null"), 3);
	snprintf(cmd, sizeof(cmd), "%s check l.qcow2 >/dev/null", TI);
	assert_int_equal(run_status(cmd), 3);
	snprintf(cmd, sizeof(cmd), "%s check -r leaks l.qcow2 && qemu-img check l.qcow2", TI);
	run_quiet(cmd);
	/* A refcount too low is corruption (exit 2); -r all repairs it.  The
	 * repair above moved the refcount block: find it through the header.
	 * Cluster 4 is the L2 table. */
	run_quiet("rt=$(od -An -tx8 --endian=big -j48 -N8 l.qcow2 | tr -d ' ') && "
		  "rb=$(od -An -tx8 --endian=big -j$((0x$rt)) -N8 l.qcow2 | tr -d ' ') && "
		  "printf '\\000\\000' | dd of=l.qcow2 bs=1 seek=$((0x$rb + 2 * 4)) conv=notrunc status=none");
	snprintf(cmd, sizeof(cmd), "%s check l.qcow2 >/dev/null", TI);
	assert_int_equal(run_status(cmd), 2);
	snprintf(cmd, sizeof(cmd), "%s check -r all l.qcow2 && qemu-img check l.qcow2 && "
		 "qemu-io -c 'read -P 1 0 64k' l.qcow2 | grep -q 'read 65536'", TI);
	run_quiet(cmd);
	char *out = NULL;
	snprintf(cmd, sizeof(cmd), "%s info --output=json l.qcow2", TI);
	out = run("%s", cmd);
	assert_non_null(strstr(out, "\"virtual-size\": 8388608"));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s snapshot -a nosuch l.qcow2", TI);
	assert_int_equal(run_status(cmd), 1);
	snprintf(cmd, sizeof(cmd), "%s create -o cluster_size=3000 bad.qcow2 1M", TI);
	assert_int_equal(run_status(cmd), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tern_written_qemu_reads),
		cmocka_unit_test(qemu_written_tern_reads),
		cmocka_unit_test(snapshots_by_tern_used_by_qemu),
		cmocka_unit_test(snapshots_by_qemu_used_by_tern),
		cmocka_unit_test(preallocated_both_ways),
		cmocka_unit_test(compressed_and_backing_read),
		cmocka_unit_test(version2_images),
		cmocka_unit_test(dirty_lazy_refcounts_repaired),
		cmocka_unit_test(check_exit_codes_and_repair),
	};
	return cmocka_run_group_tests_name("qcow2_interop", tests, test_dir_setup, test_dir_teardown);
}
