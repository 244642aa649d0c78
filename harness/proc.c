/* Child processes with captured output; see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int time_scale(void)
{
	static int scale;
	if (scale == 0) {
		const char *s = getenv("TERN_TEST_TIME_SCALE");
		long v = s != NULL ? strtol(s, NULL, 10) : 1;
		scale = v >= 1 && v <= 100 ? (int)v : 1;
	}
	return scale;
}

double deadline_ms(int timeout_ms)
{
	return now_ms() + (double)timeout_ms * time_scale();
}

int proc_spawn(struct proc *p, char *const argv[], int want_stdin)
{
	memset(p, 0, sizeof *p);
	p->in_fd = -1;
	int out[2], in[2] = { -1, -1 };
	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	if (want_stdin && pipe2(in, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(out[0]);
		close(out[1]);
		return -e;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(want_stdin ? in[0] : null, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(out[1], STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(out[1]);
	if (want_stdin) {
		close(in[0]);
		p->in_fd = in[1];
	}
	p->pid = pid;
	p->out_fd = out[0];
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	p->out_cap = 4096;
	p->out = calloc(1, p->out_cap);
	return p->out ? 0 : -ENOMEM;
}

/* Read what is available, waiting up to timeout_ms; returns -1 at EOF. */
static int pump(struct proc *p, int timeout_ms)
{
	if (p->out_fd < 0)
		return -1;
	struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	for (;;) {
		if (p->out_len + 4097 > p->out_cap) {
			char *b = realloc(p->out, p->out_cap * 2);
			if (b == NULL)
				return -1;
			p->out = b;
			p->out_cap *= 2;
		}
		ssize_t n = read(p->out_fd, p->out + p->out_len, 4096);
		if (n > 0) {
			p->out_len += (size_t)n;
			p->out[p->out_len] = '\0';
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		close(p->out_fd);
		p->out_fd = -1;
		return -1;
	}
}

long proc_wait_for(struct proc *p, const char *needle, size_t from, int timeout_ms)
{
	double deadline = deadline_ms(timeout_ms);
	for (;;) {
		if (from <= p->out_len) {
			const char *hit = strstr(p->out + from, needle);
			if (hit != NULL)
				return (long)(hit - p->out) + (long)strlen(needle);
		}
		double left = deadline - now_ms();
		if (left <= 0)
			return -1;
		if (pump(p, left > 100 ? 100 : (int)left + 1) < 0 && p->out_fd < 0) {
			const char *hit = from <= p->out_len ? strstr(p->out + from, needle) : NULL;
			return hit ? (long)(hit - p->out) + (long)strlen(needle) : -1;
		}
	}
}

static int reap(struct proc *p, int options)
{
	if (p->exited)
		return 1;
	int st;
	pid_t r = waitpid(p->pid, &st, options);
	if (r != p->pid)
		return 0;
	p->exited = 1;
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 1;
}

int proc_wait(struct proc *p, int timeout_ms)
{
	double deadline = deadline_ms(timeout_ms);
	while (!reap(p, WNOHANG)) {
		double left = deadline - now_ms();
		if (left <= 0) {
			kill(p->pid, SIGKILL);
			reap(p, 0);
			pump(p, 0);
			return -1;
		}
		if (pump(p, left > 20 ? 20 : (int)left + 1) < 0) {
			struct timespec nap = { 0, 2000000 };
			nanosleep(&nap, NULL);
		}
	}
	/* Drain what the child left in the pipe (a grandchild may hold it
	 * open, so stop when nothing more arrives). */
	size_t before;
	do {
		before = p->out_len;
	} while (pump(p, 50) == 0 && p->out_len != before);
	return p->status;
}

int proc_exited(struct proc *p)
{
	return p->pid > 0 && reap(p, WNOHANG);
}

void proc_kill(struct proc *p, int sig)
{
	if (!p->exited && p->pid > 0)
		kill(p->pid, sig);
}

const char *proc_output(struct proc *p)
{
	pump(p, 0);
	return p->out;
}

void proc_free(struct proc *p)
{
	if (!p->exited && p->pid > 0) {
		kill(p->pid, SIGKILL);
		reap(p, 0);
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->in_fd >= 0)
		close(p->in_fd);
	free(p->out);
	memset(p, 0, sizeof *p);
	p->out_fd = p->in_fd = -1;
}
