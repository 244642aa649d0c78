/*
 * Child processes for tests and benchmarks: spawn with captured output,
 * wait for text to appear, wait for exit with a deadline, kill.
 */
#ifndef HARNESS_PROC_H
#define HARNESS_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct proc {
	pid_t pid;
	int out_fd;   /* stdout and stderr, merged */
	int in_fd;    /* the child's stdin, or -1 */
	char *out;
	size_t out_len, out_cap;
	int exited, status; /* status: exit code, or 128 + signal */
};

/* Spawn argv (argv[0] is a path).  With want_stdin, the child's stdin is a
 * pipe (proc.in_fd); otherwise /dev/null.  Returns 0 or -errno. */
int proc_spawn(struct proc *p, char *const argv[], int want_stdin);
/* Collect output until `needle` appears after `from` (byte offset), the
 * child exits, or timeout.  Returns the offset just past the needle, or -1. */
long proc_wait_for(struct proc *p, const char *needle, size_t from, int timeout_ms);
/* Wait for exit; returns the status, or -1 on timeout (the child is killed). */
int proc_wait(struct proc *p, int timeout_ms);
void proc_kill(struct proc *p, int sig);
/* Nonzero once the child has exited (reaped, status set); never waits. */
int proc_exited(struct proc *p);
/* Everything captured so far (NUL-terminated). */
const char *proc_output(struct proc *p);
void proc_free(struct proc *p);

/* Milliseconds on a monotonic clock. */
double now_ms(void);
/* $TERN_TEST_TIME_SCALE (a whole number, default 1): how many times slower
 * everything runs here, as under tests/kvm-nested. */
int time_scale(void);
/* now_ms() + timeout_ms, stretched time_scale() times.  Every wait the
 * tests make ends at one of these. */
double deadline_ms(int timeout_ms);

#endif
