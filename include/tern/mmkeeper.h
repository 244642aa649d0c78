/*
 * An address-space keeper: it makes an execve cost the same whatever the
 * process has mapped.
 *
 * execve unmaps the old address space page by page before the new program
 * runs, so a VMM that execs itself (cpr-exec) under a guest that has
 * touched its RAM pays for every populated page inside the guest's stop:
 * 13-19 ms per GiB here (bench/cpr_exec).  A keeper is a tiny child process
 * sharing that address space (CLONE_VM, not a thread).  While it lives,
 * exec only drops a reference to the old address space.  The new program
 * releases the keeper once the guest runs again, and the teardown happens
 * then, at low priority, in the keeper's exit.
 *
 * The keeper blocks every signal but SIGKILL, makes a few system calls and
 * then waits, and dies with the thread that started it (PR_SET_PDEATHSIG;
 * should that thread be gone before the keeper sets it, the keeper sees a
 * stranger as its parent and exits), so it never outlives the program it
 * serves.  It is known by a pidfd: a new program adopts only a pidfd of its
 * own child, so a forged number in its environment cannot make it kill
 * another process.  Linux only (CLONE_PIDFD: 5.2 and later).
 */
#ifndef TERN_MMKEEPER_H
#define TERN_MMKEEPER_H

struct tern_mm_keeper {
	int pidfd;   /* -1: none */
	void *stack; /* its stack, in the address space it keeps; NULL once adopted */
};

/* Start a keeper of the caller's address space, from the thread that will
 * exec.  The pidfd is close-on-exec: clear the flag to pass it.  0, or
 * -errno with k->pidfd = -1 (an exec then simply pays for the teardown). */
int tern_mm_keeper_start(struct tern_mm_keeper *k);

/* After exec: take the keeper whose pidfd the old program passed.  0;
 * -EBADF when fd is not a pidfd, -ECHILD when it is not this process's
 * running child (the fd is then left alone and k->pidfd = -1). */
int tern_mm_keeper_adopt(struct tern_mm_keeper *k, int fd);

/* Kill the keeper at the lowest priority and wait until it is gone, which
 * is when the address space it kept has been torn down (hundreds of ms for
 * a large one: call it off any path that waits on it).  0 or -errno; the
 * pidfd is closed either way and k->pidfd = -1.  Nothing without a keeper. */
int tern_mm_keeper_release(struct tern_mm_keeper *k);

#endif
