/* An address-space keeper; see include/tern/mmkeeper.h. */
#include "tern/mmkeeper.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keeper_child.h"


/* The keeper's whole life: a few system calls, nothing of the process's
 * data (which its exec leaves behind, still mapped as the keeper keeps it).
 * Returning ends the child with a plain exit system call (glibc's clone),
 * never exit(3), whose handlers belong to the process.  No sanitizer: this
 * runs on a stack the sanitizers' runtime knows nothing of. */
__attribute__((no_sanitize("address", "undefined"))) static int keeper_main(void *arg)
{
	long parent = (long)(intptr_t)arg;
	syscall(SYS_prctl, PR_SET_PDEATHSIG, (long)SIGKILL, 0L, 0L, 0L);
	if (syscall(SYS_getppid) != parent)
		return 0; /* the parent died before PDEATHSIG was set */
	for (;;)
		syscall(SYS_pause); /* every signal is blocked: only SIGKILL ends this */
}

int tern_mm_keeper_start(struct tern_mm_keeper *k)
{
	k->pidfd = -1;
	k->stack = NULL;
	void *stack = mmap(NULL, KEEPER_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	/* The child starts with the signal mask of this thread: all blocked, so
	 * no handler of the process ever runs on the keeper. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* Its name, too, from birth: a new program that adopts it looks for the
	 * name at once, perhaps before the keeper has run at all. */
	char name[16] = "";
	prctl(PR_GET_NAME, name);
	prctl(PR_SET_NAME, KEEPER_NAME);
	int pidfd = -1;
	pid_t pid = clone(keeper_main, (uint8_t *)stack + KEEPER_STACK,
			  CLONE_VM | CLONE_PIDFD | SIGCHLD, (void *)(intptr_t)getpid(), &pidfd);
	int saved = errno;
	prctl(PR_SET_NAME, name);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		munmap(stack, KEEPER_STACK);
		return -saved;
	}
	k->pidfd = pidfd;
	k->stack = stack;
	return 0;
}

/* The pid behind a pidfd of ours, or -1. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	long pid = -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "Pid: %ld", &pid) == 1)
			break;
	fclose(f);
	return pid > 0 ? (pid_t)pid : -1;
}

static int is_keeper(pid_t pid)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	int ok = fgets(comm, sizeof comm, f) != NULL && strcmp(comm, KEEPER_NAME "\n") == 0;
	fclose(f);
	return ok;
}

int tern_mm_keeper_adopt(struct tern_mm_keeper *k, int fd)
{
	k->pidfd = -1;
	k->stack = NULL;
	if (fd < 0)
		return -EBADF;
	/* Only a pidfd passes, and only of a child of this process: reaping it
	 * is then ours, and its pid cannot be reused before we do. */
	siginfo_t info = { 0 };
	if (waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD ? -ECHILD : -EBADF;
	pid_t pid = pidfd_pid(fd);
	/* A keeper that has already exited (info.si_pid set) is still reaped. */
	if (pid < 0 || (info.si_pid == 0 && !is_keeper(pid)))
		return -ECHILD;
	k->pidfd = fd;
	return 0;
}

int tern_mm_keeper_release(struct tern_mm_keeper *k)
{
	if (k->pidfd < 0)
		return 0;
	/* The keeper tears the address space down as it exits: let that
	 * yield to everything else, the guest's vCPUs first. */
	pid_t pid = pidfd_pid(k->pidfd);
	if (pid > 0)
		setpriority(PRIO_PROCESS, (id_t)pid, 19);
	int rc = 0;
	if (pidfd_send_signal(k->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		rc = -errno;
	while (rc == 0) {
		siginfo_t info;
		if (waitid(P_PIDFD, (id_t)k->pidfd, &info, WEXITED) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != ECHILD) /* ECHILD: SIGCHLD is ignored, so it reaped itself */
			rc = -errno;
		break;
	}
	close(k->pidfd);
	k->pidfd = -1;
	if (k->stack != NULL)
		munmap(k->stack, KEEPER_STACK);
	k->stack = NULL;
	return rc;
}
