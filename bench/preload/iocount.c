/*
 * An LD_PRELOAD shim that counts what a process asks of the disk: fsync and
 * fdatasync calls and bytes passed to pwrite/pwritev.  bench/qcow2 loads it
 * into qemu-img and tern-img alike, so both are counted the same way; the
 * totals go to the file named by $IOCOUNT_FILE at exit.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_uint_fast64_t syncs, written;

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev2_fn)(int, const struct iovec *, int, off_t, int);
typedef int (*sync_fn)(int);

#define REAL(name, type) \
	static type real_##name; \
	if (!real_##name) \
		real_##name = (type)dlsym(RTLD_NEXT, #name)

static void add(ssize_t r)
{
	if (r > 0)
		atomic_fetch_add(&written, (uint64_t)r);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite, pwrite_fn);
	ssize_t r = real_pwrite(fd, buf, n, off);
	add(r);
	return r;
}

/* On x86-64 the 64-bit-offset names are the same functions. */
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	REAL(pwritev, pwritev_fn);
	ssize_t r = real_pwritev(fd, iov, cnt, off);
	add(r);
	return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
	__attribute__((alias("pwritev")));

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags);
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	REAL(pwritev2, pwritev2_fn);
	ssize_t r = real_pwritev2(fd, iov, cnt, off, flags);
	add(r);
	return r;
}

int fdatasync(int fd);
int fdatasync(int fd)
{
	REAL(fdatasync, sync_fn);
	atomic_fetch_add(&syncs, 1);
	return real_fdatasync(fd);
}

int fsync(int fd);
int fsync(int fd)
{
	REAL(fsync, sync_fn);
	atomic_fetch_add(&syncs, 1);
	return real_fsync(fd);
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("IOCOUNT_FILE");
	if (!path)
		return;
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "%llu %llu\n", (unsigned long long)atomic_load(&syncs),
		(unsigned long long)atomic_load(&written));
	fclose(f);
}
