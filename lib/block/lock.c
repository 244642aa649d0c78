/*
 * Image locking that QEMU understands.
 *
 * QEMU (block/file-posix.c) describes what a user of an image does and
 * lets others do with permission bits: consistent read, write, write
 * unchanged, resize (bits 0..3).  It holds a shared OFD lock on byte
 * 100 + bit for each permission it has, and on byte 200 + bit for each it
 * does not share.  A newcomer takes its own bytes, then tests (F_OFD_GETLK)
 * byte 200 + bit for each permission it wants (someone refuses to share
 * it) and byte 100 + bit for each it will not share (someone has it).
 * Holders are never exclusive, so readers coexist.
 *
 * What tern takes is what a QEMU VM's virtio-blk disk takes (share-rw
 * off), as qemu-io shows on QEMU 7.2:
 *
 *   qcow2 writer  has consistent read, write, resize  shares neither write nor resize
 *   qcow2 reader  has consistent read                 the same
 *   raw writer    has consistent read, write          does not share write
 *   raw reader    has consistent read                 the same
 *
 * (the qcow2 driver adds resize and unshares it on its file).  So each
 * side refuses the other as QEMU refuses itself: `qemu-img info` of a
 * qcow2 image tern writes fails with "Failed to get shared "write" lock",
 * and tern refuses an image a QEMU writer holds.  Backing files get the
 * qcow2 reader's locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "block_int.h"

enum {
	PERM_CONSISTENT_READ = 1 << 0,
	PERM_WRITE = 1 << 1,
	PERM_WRITE_UNCHANGED = 1 << 2,
	PERM_RESIZE = 1 << 3,
	PERM_BITS = 4,
};
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200

static const char *const perm_names[PERM_BITS] = { "consistent read", "write", "write unchanged",
						   "resize" };

static int set_lock(int fd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	for (;;) {
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* 1 when another open file description holds a lock on the byte. */
static int byte_held(int fd, off_t off)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1 };
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

void block_unlock(int fd)
{
	set_lock(fd, F_UNLCK, LOCK_PERM_BASE, PERM_BITS);
	set_lock(fd, F_UNLCK, LOCK_SHARED_BASE, PERM_BITS);
}

int block_lock(int fd, const char *path, bool writable, bool qcow2, struct tern_error *err)
{
	unsigned resize = qcow2 ? PERM_RESIZE : 0;
	unsigned perm = PERM_CONSISTENT_READ | (writable ? PERM_WRITE | resize : 0);
	unsigned unshared = PERM_WRITE | resize;
	int r = 0;
	for (unsigned i = 0; i < PERM_BITS && r == 0; i++) {
		if (perm & (1u << i))
			r = set_lock(fd, F_RDLCK, LOCK_PERM_BASE + i, 1);
		if (r == 0 && unshared & (1u << i))
			r = set_lock(fd, F_RDLCK, LOCK_SHARED_BASE + i, 1);
	}
	if (r < 0) {
		block_unlock(fd);
		return tern_errorf(err, r,
				   "%s: cannot take QEMU's image locks (fcntl F_OFD_SETLK: %s); the "
				   "file system may not support OFD locks", path, strerror(-r));
	}
	/* Taken first, tested second, as QEMU does: two openers racing
	 * each see the other's bytes. */
	/* QEMU's order: first what we want, then what we will not share. */
	for (unsigned i = 0; i < PERM_BITS && r == 0; i++) {
		int held = perm & (1u << i) ? byte_held(fd, LOCK_SHARED_BASE + i) : 0;
		if (held > 0)
			r = tern_errorf(err, -EBUSY,
					"%s: Failed to get \"%s\" lock: another process (QEMU, "
					"qemu-img or another tern) has the image open and does not "
					"share \"%s\"; stop it first", path, perm_names[i],
					perm_names[i]);
		else if (held < 0)
			r = tern_errorf(err, held, "%s: testing QEMU's image locks: %s", path,
					strerror(-held));
	}
	for (unsigned i = 0; i < PERM_BITS && r == 0; i++) {
		int held = unshared & (1u << i) ? byte_held(fd, LOCK_PERM_BASE + i) : 0;
		if (held > 0)
			r = tern_errorf(err, -EBUSY,
					"%s: Failed to get shared \"%s\" lock: another process (QEMU, "
					"qemu-img or another tern) has the image open for %s; stop it "
					"first%s", path, perm_names[i],
					i == 1 ? "writing" : perm_names[i],
					writable ? "" : ", or open it with force-share (qemu-img's -U)");
		else if (held < 0)
			r = tern_errorf(err, held, "%s: testing QEMU's image locks: %s", path,
					strerror(-held));
	}
	if (r < 0)
		block_unlock(fd);
	return r;
}

int block_lock_backing(void *opaque, int fd, const char *path, struct tern_error *err)
{
	(void)opaque;
	return block_lock(fd, path, false, true, err);
}
