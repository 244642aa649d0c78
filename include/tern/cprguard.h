/*
 * A guardian for cpr-exec: an address-space keeper (mmkeeper.h) that also
 * makes sure that whatever program the exec runs, the machine the old
 * program held comes back unless a new tern has taken it.
 *
 * The old program starts the guardian in the stop, just before it execs.
 * The guardian is a child sharing the old address space (CLONE_VM, so the
 * exec does not tear it down) with a copy of the old fd table (so every
 * fd the state names stays open whatever the new program closes).  It
 * waits for one of three things:
 *
 *   - a taker (the new tern, or the old one whose exec failed) asks over
 *     the guardian socket for the state ("STATE": the state fd and the
 *     previous binary's fd come back by SCM_RIGHTS) and then to take the
 *     guest ("TAKE"): before the deadline the guardian answers "GO" and from
 *     then on only keeps the address space until it is released (or the
 *     process it watches ends); after the deadline it answers "NO";
 *   - the process that exec'd ends (it was not tern, refused its arguments,
 *     crashed) before anyone took the guest;
 *   - the deadline passes: the guardian kills that process and waits until
 *     it is gone.
 *
 * In the last two cases the guardian itself execs the previous binary with
 * the state (the fallback), so the guest runs on, in the guardian's pid.
 * A guest is never run twice: the guardian falls back only when no one was
 * told GO and the process that could have been told is dead.
 *
 * The guardian makes raw system calls only (it runs on a stack of its own,
 * in an address space whose other threads an exec kills wherever they
 * were), and blocks every signal but SIGKILL.  Linux x86-64.
 */
#ifndef TERN_CPRGUARD_H
#define TERN_CPRGUARD_H

#include <stddef.h>
#include <stdint.h>

#include "tern/mmkeeper.h"

struct tern_cpr_guard_spec {
	int state_fd;          /* handed to a taker; kept open for the fallback */
	int previous_fd;       /* the binary to fall back to (an fd of it) */
	uint64_t deadline_ns;  /* CLOCK_MONOTONIC: no GO after this */
	uint32_t timeout_ms;   /* the bound the deadline came from, for messages */
	/* The fallback runs previous_fd with these (they must stay valid until
	 * the guardian is released: the guardian reads them in place).  envp
	 * holds reason_at's string: the guardian writes, after its '=', why it
	 * fell back (reason_room bytes at most, with the NUL). */
	char *const *fallback_argv;
	char *const *fallback_envp;
	char *reason_at;
	size_t reason_room;
	int clear_cloexec[4];  /* fds the fallback must inherit (-1: none) */
};

/* Start a guardian for the calling process, from the thread that will
 * exec.  k is its keeper handle (pidfd close-on-exec: clear the flag to
 * pass it); *taker_fd the socket a taker speaks to it on (close-on-exec
 * too).  0, or -errno with nothing started. */
int tern_cpr_guard_start(struct tern_mm_keeper *k, const struct tern_cpr_guard_spec *spec,
			 int *taker_fd);

/* A taker: the state and previous-binary fds (close-on-exec), within
 * timeout_ms.  0 or -errno. */
int tern_cpr_guard_fetch(int taker_fd, int *state_fd, int *previous_fd, int timeout_ms);

/* A taker: may it resume the guest?  0 (GO: it is the taker's now),
 * -ECANCELED (too late: the guardian is falling back), or another -errno
 * (no guardian answered: do not resume either). */
int tern_cpr_guard_take(int taker_fd, int timeout_ms);

#endif
