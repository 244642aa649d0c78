/*
 * The exec inside a cpr-exec, without KVM.  A VMM whose guest has touched
 * its RAM has every page of it mapped in its own page tables (KVM faults
 * guest pages in through them), and exec unmaps them all before the new
 * program runs, while the guest is stopped.  This measures that exec for a
 * process holding 1, 4 and 16 GiB of such RAM (a memfd, shared, every page
 * written and mapped), and one holding none, for what any exec costs here:
 *
 *   plain  execs in place, as QEMU's cpr-exec does (execvp) and tern did;
 *   tern   starts an address-space keeper first (lib/mmkeeper.c) and execs.
 *
 * "exec" is the time from just before the keeper starts (plain: before
 * execv) to the new program's first instruction of main: the part of a
 * cpr-exec's downtime that the exec itself costs.  "release" is the new
 * program's release of the keeper, which tears the old address space down
 * after the guest runs again (off the stop; it is the work plain exec does
 * inside it).  Median of N (default 5).
 *
 *   cpr_exec [--reps N] [--sizes 0,1,4,16]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness/stats.h"
#include "tern/mmkeeper.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MAX_REPS 15
#define MAX_SIZES 8
#define CHILD_ARG "--after-exec"

struct result {
	double exec_ms, release_ms;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "cpr_exec bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The new program: how long the exec took, and the keeper's release. */
static int after_exec(void)
{
	struct result r = { .exec_ms = now_ms() - atof(getenv("BENCH_T0")), .release_ms = 0 };
	int out = atoi(getenv("BENCH_OUT"));
	const char *keeper = getenv("BENCH_KEEPER");
	if (keeper != NULL) {
		struct tern_mm_keeper k;
		if (tern_mm_keeper_adopt(&k, atoi(keeper)) != 0)
			return 3;
		double t = now_ms();
		if (tern_mm_keeper_release(&k) != 0)
			return 4;
		r.release_ms = now_ms() - t;
	}
	return write(out, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 5;
}

static void set_env_int(const char *name, long v)
{
	char num[32];
	snprintf(num, sizeof num, "%ld", v);
	setenv(name, num, 1);
}

/* One exec of a process that maps all of ram (size bytes), with or
 * without a keeper. */
static struct result one_exec(int ram, size_t size, int keep)
{
	int pipefd[2];
	if (pipe(pipefd) < 0)
		die("pipe");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pipefd[0]);
		void *p = size ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0) : NULL;
		if (p == MAP_FAILED || (size && madvise(p, size, MADV_POPULATE_WRITE) < 0))
			_exit(2);
		set_env_int("BENCH_OUT", pipefd[1]);
		double t0 = now_ms();
		if (keep) {
			struct tern_mm_keeper k;
			if (tern_mm_keeper_start(&k) < 0 || fcntl(k.pidfd, F_SETFD, 0) < 0)
				_exit(2);
			set_env_int("BENCH_KEEPER", k.pidfd);
		}
		char t[64];
		snprintf(t, sizeof t, "%.6f", t0);
		setenv("BENCH_T0", t, 1);
		execl("/proc/self/exe", "cpr_exec", CHILD_ARG, (char *)NULL);
		_exit(2);
	}
	close(pipefd[1]);
	struct result r;
	ssize_t n = read(pipefd[0], &r, sizeof r);
	close(pipefd[0]);
	int status;
	waitpid(child, &status, 0);
	if (n != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "cpr_exec bench: the exec'd program failed (status %d)\n", status);
		exit(1);
	}
	return r;
}

/* A memfd of gib GiB, every page written once, as a guest would leave it
 * (0: none, for what any exec costs here). */
static int guest_ram(unsigned gib, size_t *size)
{
	*size = (size_t)gib << 30;
	int fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)*size) < 0)
		die("memfd");
	if (*size == 0)
		return fd;
	void *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || madvise(p, *size, MADV_POPULATE_WRITE) < 0)
		die("filling the RAM");
	munmap(p, *size);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], CHILD_ARG) == 0)
		return after_exec();
	unsigned reps = 5, sizes[MAX_SIZES] = { 0, 1, 4, 16 }, nsizes = 4;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
			nsizes = harness_parse_list(argv[++i], sizes, MAX_SIZES);
		else {
			fprintf(stderr, "usage: cpr_exec [--reps N] [--sizes GIB,...]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "cpr_exec bench: --reps must be 1..%d\n", MAX_REPS);
		return 2;
	}
	printf("exec of a VMM holding guest RAM the guest has touched, median of %u (ms)\n", reps);
	printf("plain = exec in place (QEMU's cpr-exec); tern = address-space keeper, then exec\n");
	printf("%8s %12s %12s %10s | %14s\n", "RAM", "plain exec", "tern exec", "plain/tern",
	       "tern release");
	for (unsigned z = 0; z < nsizes; z++) {
		size_t size;
		int ram = guest_ram(sizes[z], &size);
		double plain[MAX_REPS], tern[MAX_REPS], release[MAX_REPS];
		for (unsigned i = 0; i < reps; i++) { /* interleaved: both see the same machine */
			plain[i] = one_exec(ram, size, 0).exec_ms;
			struct result r = one_exec(ram, size, 1);
			tern[i] = r.exec_ms;
			release[i] = r.release_ms;
		}
		close(ram);
		double p = harness_median(plain, (int)reps), t = harness_median(tern, (int)reps);
		printf("%4u GiB %12.2f %12.2f %9.1fx | %14.2f\n", sizes[z], p, t, p / t,
		       harness_median(release, (int)reps));
		fflush(stdout);
	}
	return 0;
}
