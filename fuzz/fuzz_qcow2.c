/* libFuzzer target: a qcow2 image from an untrusted source.  The input is
 * the image file: header and extensions, refcount table and blocks, L1 and
 * L2 tables, snapshot table.  It is opened, read, mapped, checked, written
 * and snapshotted, then repaired with check -r all; every failure must be a
 * clean error, and a repair that says it fixed everything must leave an
 * image the next check calls clean. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tern/qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_around(struct tern_qcow2 *q)
{
	struct tern_qcow2_info info;
	tern_qcow2_get_info(q, &info);
	uint8_t buf[8192];
	uint64_t step = info.size / 16 + 1;
	for (uint64_t off = 0; off < info.size && off < 64 * step; off += step) {
		size_t n = info.size - off < sizeof(buf) ? (size_t)(info.size - off) : sizeof(buf);
		tern_qcow2_read(q, buf, off, n, NULL);
		uint64_t len = info.size - off, host;
		enum tern_qcow2_status st;
		tern_qcow2_block_status(q, off, &len, &st, &host, NULL);
	}
	for (uint32_t i = 0; i < tern_qcow2_snapshot_count(q); i++) {
		struct tern_qcow2_snapshot_info si;
		tern_qcow2_snapshot_get(q, i, &si);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct tern_qcow2 *q;
	struct tern_qcow2_open_opts ro = { .no_backing = true, .l2_cache_bytes = 64 << 10,
					   .refcount_cache_bytes = 64 << 10 };
	if (tern_qcow2_open(path, &ro, &q, NULL) == 0) {
		read_around(q);
		struct tern_qcow2_check res = { 0 };
		tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &res, NULL);
		tern_qcow2_close(q, NULL);
	}
	struct tern_qcow2_open_opts rw = ro;
	rw.writable = true;
	if (tern_qcow2_open(path, &rw, &q, NULL) == 0) {
		uint8_t buf[4096];
		memset(buf, 0xa5, sizeof(buf));
		tern_qcow2_write(q, buf, 0, sizeof(buf), NULL);
		if (tern_qcow2_snapshot_create(q, "fuzz", NULL) == 0)
			tern_qcow2_write(q, buf, 512, 100, NULL);
		tern_qcow2_discard(q, 0, 1 << 20, NULL);
		read_around(q);
		tern_qcow2_close(q, NULL);
	}
	struct tern_qcow2_open_opts fix = rw;
	fix.skip_repair = true;
	if (tern_qcow2_open(path, &fix, &q, NULL) == 0) {
		struct tern_qcow2_check res = { 0 };
		if (tern_qcow2_check(q, TERN_QCOW2_REPAIR_ALL, &res, NULL) == 0 &&
		    res.corruptions == res.corruptions_fixed && res.leaks == res.leaks_fixed) {
			struct tern_qcow2_check again = { 0 };
			if (tern_qcow2_check(q, TERN_QCOW2_REPAIR_NONE, &again, NULL) == 0 &&
			    (again.corruptions || again.leaks))
				abort(); /* repaired, yet not clean */
		}
		tern_qcow2_close(q, NULL);
	}
	close(fd);
	return 0;
}
