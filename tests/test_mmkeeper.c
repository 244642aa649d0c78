/* The address-space keeper: it holds the old address space through a real
 * exec, the new program adopts and releases it, it refuses what is not its
 * own keeper, it ignores signals and dies with its parent.
 *
 * test_mmkeeper --after-exec is the program the exec test runs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/mmkeeper.h"

#define RAM_NAME "tern-test-ram"
#define RAM_SIZE (64u << 20)
#define PAGE 4096u

static pid_t pid_of(int pidfd)
{
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
	FILE *f = fopen(path, "r");
	long pid = -1;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "Pid: %ld", &pid) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return (pid_t)pid;
}

/* Does /proc/PID/maps (0: self) name the test's RAM? */
static int maps_ram(pid_t pid)
{
	char path[64], line[512];
	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/maps");
	else
		snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
	FILE *f = fopen(path, "r");
	int found = 0;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		found |= strstr(line, "memfd:" RAM_NAME) != NULL;
	if (f != NULL)
		fclose(f);
	return found;
}

/* The signals a process blocks, from /proc/PID/status. */
static uint64_t blocked_signals(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	FILE *f = fopen(path, "r");
	unsigned long long mask = 0;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "SigBlk: %llx", &mask) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return mask;
}

static uint64_t sigbit(int sig)
{
	return 1ULL << (sig - 1);
}

static uint8_t pattern(size_t page)
{
	return (uint8_t)(page * 131 + 7);
}

/* ------------------------------------------------------------ after the exec */

static int fail_after_exec(const char *what)
{
	fprintf(stderr, "after exec: %s\n", what);
	return 1;
}

/* The new program: adopt the keeper, find the old address space alive in
 * it and not in ours, the RAM's contents intact, then release it. */
static int after_exec(void)
{
	int kfd = atoi(getenv("TEST_KEEPER_FD"));
	int ram = atoi(getenv("TEST_RAM_FD"));
	struct tern_mm_keeper k;
	if (tern_mm_keeper_adopt(&k, kfd) != 0)
		return fail_after_exec("the keeper's pidfd was refused");
	pid_t pid = pid_of(k.pidfd);
	if (pid <= 0 || !maps_ram(pid))
		return fail_after_exec("the keeper does not hold the old address space");
	if (maps_ram(0))
		return fail_after_exec("the old mapping is in the new address space");
	uint64_t want = sigbit(SIGINT) | sigbit(SIGTERM) | sigbit(SIGHUP) | sigbit(SIGCHLD);
	if ((blocked_signals(pid) & want) != want)
		return fail_after_exec("the keeper does not block signals");
	uint8_t *p = mmap(NULL, RAM_SIZE, PROT_READ, MAP_SHARED, ram, 0);
	if (p == MAP_FAILED)
		return fail_after_exec("cannot map the RAM again");
	for (size_t i = 0; i < RAM_SIZE / PAGE; i++)
		if (p[i * PAGE] != pattern(i) || p[i * PAGE + PAGE - 1] != pattern(i))
			return fail_after_exec("the RAM changed");
	munmap(p, RAM_SIZE);
	if (tern_mm_keeper_release(&k) != 0 || k.pidfd != -1)
		return fail_after_exec("release failed");
	siginfo_t info;
	if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG) == 0 || errno != ECHILD)
		return fail_after_exec("the keeper was not reaped");
	return 0;
}

/* ------------------------------------------------------------ tests */

static void keeps_the_address_space_through_exec(void **state)
{
	(void)state;
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int ram = memfd_create(RAM_NAME, 0);
		if (ram < 0 || ftruncate(ram, RAM_SIZE) < 0)
			_exit(2);
		uint8_t *p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
		if (p == MAP_FAILED)
			_exit(2);
		for (size_t i = 0; i < RAM_SIZE / PAGE; i++)
			memset(p + i * PAGE, pattern(i), PAGE);
		struct tern_mm_keeper k;
		if (tern_mm_keeper_start(&k) != 0 || fcntl(k.pidfd, F_SETFD, 0) < 0)
			_exit(3);
		char num[16];
		snprintf(num, sizeof num, "%d", k.pidfd);
		setenv("TEST_KEEPER_FD", num, 1);
		snprintf(num, sizeof num, "%d", ram);
		setenv("TEST_RAM_FD", num, 1);
		execl("/proc/self/exe", "test_mmkeeper", "--after-exec", (char *)NULL);
		_exit(4);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void start_and_release_without_exec(void **state)
{
	(void)state;
	struct tern_mm_keeper k;
	assert_int_equal(tern_mm_keeper_start(&k), 0);
	assert_true(k.pidfd >= 0);
	assert_true(fcntl(k.pidfd, F_GETFD) & FD_CLOEXEC);
	pid_t pid = pid_of(k.pidfd);
	assert_true(pid > 0);
	/* Named from birth, whether or not it has run yet (adopt looks for the
	 * name), and this thread has its own name back. */
	char path[64], comm[32] = "";
	snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof comm, f));
	fclose(f);
	assert_string_equal(comm, "tern-mm-keeper\n");
	char mine[16] = "";
	prctl(PR_GET_NAME, mine);
	assert_string_not_equal(mine, "tern-mm-keeper");
	assert_true(maps_ram(pid) == maps_ram(0)); /* one address space */
	/* Blocked, so pending, never delivered: the keeper lives on. */
	assert_int_equal(pidfd_send_signal(k.pidfd, SIGTERM, NULL, 0), 0);
	uint64_t want = sigbit(SIGINT) | sigbit(SIGTERM) | sigbit(SIGQUIT) | sigbit(SIGUSR1);
	assert_true((blocked_signals(pid) & want) == want);
	siginfo_t info = { 0 };
	assert_int_equal(waitid(P_PIDFD, (id_t)k.pidfd, &info, WEXITED | WNOHANG | WNOWAIT), 0);
	assert_int_equal(info.si_pid, 0);
	assert_int_equal(tern_mm_keeper_release(&k), 0);
	assert_int_equal(k.pidfd, -1);
	assert_null(k.stack);
	assert_int_equal(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(tern_mm_keeper_release(&k), 0); /* nothing left to release */
}

/* Wait (at most 5 s) for a child of ours to end; how it ended. */
static siginfo_t wait_gone(pid_t pid)
{
	siginfo_t info = { 0 };
	for (int i = 0; i < 500; i++) {
		memset(&info, 0, sizeof info);
		if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid)
			return info;
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
	fail_msg("process %ld did not end", (long)pid);
	return info;
}

/* A child that starts a keeper, tells its pid and then ends (drop) or waits. */
static pid_t keeper_parent(int drop, pid_t *keeper)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct tern_mm_keeper k;
		pid_t kp = tern_mm_keeper_start(&k) == 0 ? pid_of(k.pidfd) : -1;
		if (write(pipefd[1], &kp, sizeof kp) != sizeof kp)
			_exit(1);
		if (drop)
			_exit(0);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], keeper, sizeof *keeper), (ssize_t)sizeof *keeper);
	close(pipefd[0]);
	assert_true(*keeper > 0);
	return child;
}

static void dies_with_its_parent(void **state)
{
	(void)state;
	pid_t keeper;
	pid_t parent = keeper_parent(1, &keeper);
	siginfo_t info = wait_gone(parent);
	assert_int_equal(info.si_code, CLD_EXITED);
	/* Orphaned, it comes to us (a subreaper) and ends: killed by its
	 * PDEATHSIG, or, when its parent was gone before it could set that,
	 * by seeing a stranger as its parent.  A keeper that lived on would
	 * hold the address space for ever. */
	info = wait_gone(keeper);
	if (info.si_code == CLD_KILLED)
		assert_int_equal(info.si_status, SIGKILL);
	else if (info.si_code == CLD_EXITED)
		assert_int_equal(info.si_status, 0);
	else
		fail_msg("the keeper ended with code %d", info.si_code);
}

static void adopt_refuses_what_is_not_a_keeper(void **state)
{
	(void)state;
	struct tern_mm_keeper k;
	assert_int_equal(tern_mm_keeper_adopt(&k, -1), -EBADF);
	int devnull = open("/dev/null", O_RDONLY);
	assert_int_equal(tern_mm_keeper_adopt(&k, devnull), -EBADF);
	assert_int_equal(k.pidfd, -1);
	close(devnull);
	/* This process: not a child of its own. */
	int self = pidfd_open(getpid(), 0);
	assert_int_equal(tern_mm_keeper_adopt(&k, self), -ECHILD);
	close(self);
	/* A child that is not a keeper: left alone. */
	pid_t other = fork();
	assert_true(other >= 0);
	if (other == 0) {
		for (;;)
			pause();
	}
	int ofd = pidfd_open(other, 0);
	assert_int_equal(tern_mm_keeper_adopt(&k, ofd), -ECHILD);
	siginfo_t info = { 0 };
	assert_int_equal(waitid(P_PID, (id_t)other, &info, WEXITED | WNOHANG | WNOWAIT), 0);
	assert_int_equal(info.si_pid, 0);
	/* Another process's keeper: not ours to kill. */
	pid_t keeper;
	pid_t parent = keeper_parent(0, &keeper);
	int kfd = pidfd_open(keeper, 0);
	assert_int_equal(tern_mm_keeper_adopt(&k, kfd), -ECHILD);
	assert_int_equal(kill(keeper, 0), 0);
	kill(parent, SIGKILL);
	kill(other, SIGKILL);
	wait_gone(parent);
	wait_gone(other);
	wait_gone(keeper); /* its PDEATHSIG, and we are its subreaper */
	close(ofd);
	close(kfd);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--after-exec") == 0)
		return after_exec();
	/* Orphaned keepers come to this process, so tests can see them end. */
	prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_the_address_space_through_exec),
		cmocka_unit_test(start_and_release_without_exec),
		cmocka_unit_test(dies_with_its_parent),
		cmocka_unit_test(adopt_refuses_what_is_not_a_keeper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
