/*
 * The cpr-exec guardian (tern/cprguard.h) without KVM: a child process
 * starts one and execs a program; the guardian's fallback is /bin/sh
 * writing down what it was given.  A program that exits, or hangs past the
 * deadline, is replaced by the fallback with the state and the reason; one
 * that takes the state (this test program again) and is told GO is not;
 * a failed exec takes the guest back; a take after the deadline is
 * refused; a forged fd is never written to.
 */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tern/cprguard.h"
#include "tmpdir_support.h"

#define STATE_TEXT "the state"

static char self[4096];

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void path_of(const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", test_dir, name);
}

/* In a child: start a guardian with `timeout_ms`, then exec argv (or,
 * with argv NULL, sleep past the deadline and try to take the guest).
 * The fallback writes the reason and the state into dir/<tag>. */
static pid_t guarded_exec(const char *tag, uint32_t timeout_ms, char *const *argv)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	int state = memfd_create("state", MFD_CLOEXEC);
	if (state < 0 || write(state, STATE_TEXT, strlen(STATE_TEXT)) != (ssize_t)strlen(STATE_TEXT))
		_exit(90);
	int sh = open("/bin/sh", O_RDONLY | O_CLOEXEC);
	static char script[8192], state_env[64], reason[600] = "REASON=";
	snprintf(script, sizeof script,
		 "{ echo \"$REASON\"; cat /proc/self/fd/$STATE; } > %s/%s.tmp && mv %s/%s.tmp %s/%s",
		 test_dir, tag, test_dir, tag, test_dir, tag);
	snprintf(state_env, sizeof state_env, "STATE=%d", state);
	static char *fb_argv[] = { "sh", "-c", script, NULL };
	static char *fb_envp[] = { "PATH=/usr/bin:/bin", state_env, reason, NULL };
	const struct tern_cpr_guard_spec spec = {
		.state_fd = state,
		.previous_fd = sh,
		.deadline_ns = mono_ns() + (uint64_t)timeout_ms * 1000000ULL,
		.timeout_ms = timeout_ms,
		.fallback_argv = fb_argv,
		.fallback_envp = fb_envp,
		.reason_at = reason + strlen("REASON="),
		.reason_room = sizeof reason - strlen("REASON="),
		.clear_cloexec = { state, -1, -1, -1 },
	};
	struct tern_mm_keeper k;
	int taker;
	if (sh < 0 || tern_cpr_guard_start(&k, &spec, &taker) < 0)
		_exit(91);
	char num[16];
	snprintf(num, sizeof num, "%d", taker);
	setenv("GUARD_FD", num, 1);
	fcntl(taker, F_SETFD, 0);
	if (argv == NULL) { /* too late */
		usleep((timeout_ms + 200) * 1000);
		_exit(tern_cpr_guard_take(taker, 1000) == -ECANCELED ? 0 : 92);
	}
	execv(argv[0], argv);
	/* The exec failed: the guest is ours again. */
	int rc = tern_cpr_guard_take(taker, 1000);
	tern_mm_keeper_release(&k);
	_exit(rc == 0 ? 93 : 94);
}

/* What the fallback wrote to dir/<tag>, waiting up to ms; NULL if nothing. */
static char *fallback_said(const char *tag, int ms)
{
	char path[256];
	path_of(tag, path, sizeof path);
	for (int i = 0; i < ms / 10; i++) {
		FILE *f = fopen(path, "r");
		if (f != NULL) {
			static char text[2048];
			size_t n = fread(text, 1, sizeof text - 1, f);
			fclose(f);
			text[n] = '\0';
			return text;
		}
		usleep(10000);
	}
	return NULL;
}

static int exit_status(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void a_program_that_exits_is_replaced(void **state)
{
	(void)state;
	char *argv[] = { "/bin/false", NULL };
	pid_t pid = guarded_exec("false", 10000, argv);
	assert_int_equal(WEXITSTATUS(exit_status(pid)), 1);
	const char *said = fallback_said("false", 5000);
	assert_non_null(said);
	assert_non_null(strstr(said, "exited with status 1 before it took the guest"));
	assert_non_null(strstr(said, STATE_TEXT));
}

static void a_program_that_hangs_is_stopped_and_replaced(void **state)
{
	(void)state;
	char *argv[] = { "/bin/sleep", "60", NULL };
	pid_t pid = guarded_exec("sleep", 300, argv);
	int status = exit_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	const char *said = fallback_said("sleep", 5000);
	assert_non_null(said);
	assert_non_null(strstr(said, "did not take the guest within 300 ms"));
	assert_non_null(strstr(said, STATE_TEXT));
}

static void a_taker_is_told_go_and_not_replaced(void **state)
{
	(void)state;
	char *argv[] = { self, "--take", NULL };
	pid_t pid = guarded_exec("taker", 10000, argv);
	assert_int_equal(WEXITSTATUS(exit_status(pid)), 0);
	assert_null(fallback_said("taker", 500));
}

static void a_failed_exec_takes_the_guest_back(void **state)
{
	(void)state;
	char *argv[] = { "/nonexistent/program", NULL };
	pid_t pid = guarded_exec("noexec", 10000, argv);
	assert_int_equal(WEXITSTATUS(exit_status(pid)), 93);
	assert_null(fallback_said("noexec", 500));
}

static void a_take_after_the_deadline_is_refused(void **state)
{
	(void)state;
	pid_t pid = guarded_exec("late", 100, NULL);
	int status = exit_status(pid);
	/* Refused, and then stopped by the guardian, which took over. */
	assert_true((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		    (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
	const char *said = fallback_said("late", 5000);
	assert_non_null(said);
	assert_non_null(strstr(said, "did not take the guest within 100 ms"));
}

static void a_forged_fd_is_not_written(void **state)
{
	(void)state;
	char path[256];
	path_of("forged", path, sizeof path);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	int s = -1, p = -1;
	assert_int_equal(tern_cpr_guard_fetch(fd, &s, &p, 100), -ENOTSOCK);
	assert_int_equal(tern_cpr_guard_take(fd, 100), -ENOTSOCK);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	close(fd);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(tern_cpr_guard_take(pipefd[1], 100), -ENOTSOCK);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* Run as the taker: fetch the state, check it, take the guest. */
static int take(void)
{
	const char *v = getenv("GUARD_FD");
	int fd = v != NULL ? atoi(v) : -1, state = -1, previous = -1;
	char text[64] = "";
	if (tern_cpr_guard_fetch(fd, &state, &previous, 2000) < 0 ||
	    pread(state, text, sizeof text - 1, 0) != (ssize_t)strlen(STATE_TEXT) ||
	    strcmp(text, STATE_TEXT) != 0)
		return 2;
	return tern_cpr_guard_take(fd, 2000) == 0 ? 0 : 3;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--take") == 0)
		return take();
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_program_that_exits_is_replaced),
		cmocka_unit_test(a_program_that_hangs_is_stopped_and_replaced),
		cmocka_unit_test(a_taker_is_told_go_and_not_replaced),
		cmocka_unit_test(a_failed_exec_takes_the_guest_back),
		cmocka_unit_test(a_take_after_the_deadline_is_refused),
		cmocka_unit_test(a_forged_fd_is_not_written),
	};
	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
