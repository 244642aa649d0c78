/* A cpr-exec guardian; see include/tern/cprguard.h. */
#include "tern/cprguard.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "keeper_child.h"

/* The guardian runs where no sanitizer runtime knows its stack, and after
 * an exec that killed every other thread wherever it was (holding locks):
 * no libc, no instrumentation. */
#define GUARD_CODE __attribute__((no_sanitize("address", "undefined"), noinline))

#define MSG_STATE "STATE"
#define MSG_TAKE "TAKE"
#define MSG_GO "GO"
#define MSG_NO "NO"
#define MSG_MAX 16

/* The guardian's own copy of what it needs, at the bottom of its stack
 * mapping (its stack grows down from the top). */
struct guard {
	struct tern_cpr_guard_spec spec;
	int sock;       /* its end of the guardian socket */
	int taker_copy; /* the taker's end, as the clone copied it: closed at once */
	int watched;    /* pidfd of the process that execs */
	long pid;       /* ... and its pid, for messages and /proc */
	sigset_t mask;  /* the signal mask of the thread that execs, for the fallback */
};

GUARD_CODE static long raw6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

GUARD_CODE static long raw3(long n, long a, long b, long c)
{
	return raw6(n, a, b, c, 0, 0, 0);
}

GUARD_CODE static uint64_t guard_now(void)
{
	struct timespec ts;
	ts.tv_sec = 0;
	ts.tv_nsec = 0;
	raw3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A bounded string being built (volatile: no loop becomes a libc call). */
struct text {
	volatile char *p;
	size_t room, at;
};

GUARD_CODE static void put_str(struct text *t, const char *s)
{
	while (*s != '\0' && t->at + 1 < t->room)
		t->p[t->at++] = *s++;
	if (t->room > 0)
		t->p[t->at] = '\0';
}

GUARD_CODE static void put_num(struct text *t, unsigned long v)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < 23);
	char one[2] = { 0, 0 };
	while (n > 0) {
		one[0] = digits[--n];
		put_str(t, one);
	}
}

GUARD_CODE static int same(const char *a, long alen, const char *b)
{
	long i = 0;
	for (; i < alen && b[i] != '\0'; i++)
		if (a[i] != b[i])
			return 0;
	return i == alen && b[i] == '\0';
}

GUARD_CODE static void say(struct guard *g, const char *msg)
{
	long n = 0;
	while (msg[n] != '\0')
		n++;
	raw6(SYS_sendto, g->sock, (long)msg, n, MSG_NOSIGNAL, 0, 0);
}

/* The state and the previous binary, to a taker. */
GUARD_CODE static void send_state(struct guard *g)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} c;
	char text[] = MSG_STATE;
	struct iovec iov;
	iov.iov_base = text;
	iov.iov_len = sizeof text - 1;
	struct msghdr m;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = c.buf;
	m.msg_controllen = sizeof c.buf;
	m.msg_flags = 0;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(2 * sizeof(int));
	int *fds = (int *)(void *)CMSG_DATA(h);
	fds[0] = g->spec.state_fd;
	fds[1] = g->spec.previous_fd;
	raw3(SYS_sendmsg, g->sock, (long)&m, MSG_NOSIGNAL);
}

/* The wait status of the watched process if it is a zombie (its parent has
 * not reaped it yet): /proc/PID/stat's 52nd field.  -1 if unknown. */
GUARD_CODE static long zombie_status(struct guard *g)
{
	char path[48];
	struct text t = { path, sizeof path, 0 };
	put_str(&t, "/proc/");
	put_num(&t, (unsigned long)g->pid);
	put_str(&t, "/stat");
	long fd = raw6(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return -1;
	char buf[1024];
	long n = raw3(SYS_read, fd, (long)buf, sizeof buf - 1);
	raw3(SYS_close, fd, 0, 0);
	if (n <= 0)
		return -1;
	long close_paren = -1;
	for (long i = 0; i < n; i++)
		if (buf[i] == ')')
			close_paren = i;
	/* ") S ..." : field 3 is the state, 52 the exit code */
	if (close_paren < 0 || close_paren + 2 >= n || buf[close_paren + 2] != 'Z')
		return -1;
	int field = 3;
	long i = close_paren + 2;
	for (; i < n && field < 52; i++)
		if (buf[i] == ' ')
			field++;
	long v = -1;
	for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = (v < 0 ? 0 : v * 10) + (buf[i] - '0');
	return v;
}

/* Linux 6.15's PIDFD_GET_INFO (not in every header yet): the exit status
 * of a process that has been reaped. */
struct pidfd_exit_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t ids[11];
	int32_t exit_code;
};
#define PIDFD_INFO_EXIT_BIT (1ULL << 3)
#define PIDFD_GET_INFO_IOCTL 0xc040ff0bUL /* _IOWR(0xff, 11, 64 bytes) */

GUARD_CODE static long reaped_status(struct guard *g)
{
	struct pidfd_exit_info info;
	volatile char *p = (volatile char *)&info;
	for (size_t i = 0; i < sizeof info; i++)
		p[i] = 0;
	info.mask = PIDFD_INFO_EXIT_BIT;
	if (raw3(SYS_ioctl, g->watched, (long)PIDFD_GET_INFO_IOCTL, (long)&info) < 0 ||
	    (info.mask & PIDFD_INFO_EXIT_BIT) == 0)
		return -1;
	return info.exit_code;
}

/* The wait status of the process that exec'd, whether its parent has
 * reaped it yet or not (it may between the two looks: look again). */
GUARD_CODE static long exit_status_of(struct guard *g)
{
	long status = -1;
	for (int i = 0; i < 3 && status < 0; i++)
		if ((status = reaped_status(g)) < 0)
			status = zombie_status(g);
	return status;
}

GUARD_CODE static const char *signal_name(long sig)
{
	switch (sig) {
	case SIGSEGV: return " (SIGSEGV)";
	case SIGABRT: return " (SIGABRT)";
	case SIGKILL: return " (SIGKILL)";
	case SIGTERM: return " (SIGTERM)";
	case SIGBUS: return " (SIGBUS)";
	case SIGILL: return " (SIGILL)";
	default: return "";
	}
}

/* Run the previous binary with the state; returns only if that fails. */
GUARD_CODE static _Noreturn void fall_back(struct guard *g)
{
	/* The guardian blocks everything; the previous binary starts as the
	 * old one ran (signals sent meanwhile are still pending for it). */
	raw6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&g->mask, 0, _NSIG / 8, 0, 0);
	for (unsigned i = 0; i < sizeof g->spec.clear_cloexec / sizeof g->spec.clear_cloexec[0]; i++)
		if (g->spec.clear_cloexec[i] >= 0)
			raw3(SYS_fcntl, g->spec.clear_cloexec[i], F_SETFD, 0);
	raw6(SYS_execveat, g->spec.previous_fd, (long)"", (long)g->spec.fallback_argv,
	     (long)g->spec.fallback_envp, AT_EMPTY_PATH, 0);
	static const char msg[] = "tern: the live update's guardian cannot run the previous "
				  "binary: the guest is lost\n";
	raw3(SYS_write, 2, (long)msg, sizeof msg - 1);
	for (;;)
		raw3(SYS_exit, 125, 0, 0);
}

GUARD_CODE static struct text reason_text(struct guard *g)
{
	struct text t = { g->spec.reason_at, g->spec.reason_room, 0 };
	put_str(&t, "cpr-exec-command (pid ");
	put_num(&t, (unsigned long)g->pid);
	put_str(&t, ") ");
	return t;
}

/* The process that exec'd ended and no one took the guest. */
GUARD_CODE static _Noreturn void ended(struct guard *g)
{
	struct text t = reason_text(g);
	long status = exit_status_of(g);
	if (status >= 0 && (status & 0x7f) == 0) {
		put_str(&t, "exited with status ");
		put_num(&t, (unsigned long)((status >> 8) & 0xff));
	} else if (status > 0) {
		put_str(&t, "was killed by signal ");
		put_num(&t, (unsigned long)(status & 0x7f));
		put_str(&t, signal_name(status & 0x7f));
	} else {
		put_str(&t, "ended");
	}
	put_str(&t, " before it took the guest");
	fall_back(g);
}

/* The bound passed: stop the process that exec'd, wait until it is gone
 * (it may not run the guest while we do), and take over. */
GUARD_CODE static _Noreturn void expire(struct guard *g)
{
	raw6(SYS_pidfd_send_signal, g->watched, SIGKILL, 0, 0, 0, 0);
	for (;;) {
		struct pollfd p;
		p.fd = g->watched;
		p.events = POLLIN;
		p.revents = 0;
		if (raw3(SYS_poll, (long)&p, 1, -1) > 0 && p.revents != 0)
			break;
	}
	struct text t = reason_text(g);
	put_str(&t, "did not take the guest within ");
	put_num(&t, g->spec.timeout_ms);
	put_str(&t, " ms (x-cpr-timeout): the guardian stopped it");
	fall_back(g);
}

GUARD_CODE static int guard_main(void *arg)
{
	struct guard *g = arg;
	raw3(SYS_close, g->taker_copy, 0, 0);
	int sock_open = 1, taken = 0;
	for (;;) {
		uint64_t now = guard_now();
		if (!taken && now >= g->spec.deadline_ns)
			expire(g);
		struct pollfd p[2];
		p[0].fd = g->watched;
		p[0].events = POLLIN;
		p[0].revents = 0;
		p[1].fd = g->sock;
		p[1].events = POLLIN;
		p[1].revents = 0;
		long timeout = taken ? -1 : (long)((g->spec.deadline_ns - now) / 1000000ULL) + 1;
		if (raw3(SYS_poll, (long)p, sock_open ? 2 : 1, timeout) <= 0)
			continue;
		if (p[0].revents != 0) {
			if (taken) /* the guest was the taker's: nothing left to guard */
				for (;;)
					raw3(SYS_exit, 0, 0, 0);
			ended(g);
		}
		if (!sock_open || p[1].revents == 0)
			continue;
		char m[MSG_MAX];
		long n = raw6(SYS_recvfrom, g->sock, (long)m, sizeof m, MSG_DONTWAIT, 0, 0);
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n <= 0) { /* the taker's end is closed: only the process's end is left */
			raw3(SYS_close, g->sock, 0, 0);
			sock_open = 0;
		} else if (same(m, n, MSG_STATE)) {
			send_state(g);
		} else if (same(m, n, MSG_TAKE)) {
			if (guard_now() >= g->spec.deadline_ns) {
				say(g, MSG_NO);
				expire(g);
			}
			say(g, MSG_GO);
			taken = 1; /* from now on only a keeper of the address space */
			raw3(SYS_close, g->sock, 0, 0);
			sock_open = 0;
		}
	}
}

int tern_cpr_guard_start(struct tern_mm_keeper *k, const struct tern_cpr_guard_spec *spec,
			 int *taker_fd)
{
	k->pidfd = -1;
	k->stack = NULL;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	int rc = 0;
	int watched = (int)syscall(SYS_pidfd_open, getpid(), 0); /* close-on-exec */
	void *stack = MAP_FAILED;
	if (watched < 0)
		rc = -errno;
	else if ((stack = mmap(NULL, KEEPER_STACK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0)) == MAP_FAILED)
		rc = -errno;
	if (rc < 0) {
		if (watched >= 0)
			close(watched);
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	struct guard *g = stack;
	g->spec = *spec;
	g->sock = sv[1];
	g->taker_copy = sv[0];
	g->watched = watched;
	g->pid = (long)getpid();
	/* As a keeper: every signal blocked from birth, named from birth. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	g->mask = old;
	char name[16] = "";
	prctl(PR_GET_NAME, name);
	prctl(PR_SET_NAME, KEEPER_NAME);
	int pidfd = -1;
	pid_t pid = clone(guard_main, (uint8_t *)stack + KEEPER_STACK,
			  CLONE_VM | CLONE_PIDFD | SIGCHLD, g, &pidfd);
	int saved = errno;
	prctl(PR_SET_NAME, name);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	close(watched);
	if (pid < 0) {
		munmap(stack, KEEPER_STACK);
		close(sv[0]);
		return -saved;
	}
	k->pidfd = pidfd;
	k->stack = stack;
	*taker_fd = sv[0];
	return 0;
}

/* Is fd a guardian socket (a unix seqpacket socket), not some other fd a
 * forged environment names? */
static int is_guard_socket(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return 0;
	len = sizeof domain;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return 0;
	return type == SOCK_SEQPACKET && domain == AF_UNIX;
}

/* Send msg and receive one answer (and up to two fds) within timeout_ms:
 * its length, or -errno. */
static ssize_t ask(int fd, const char *msg, char *answer, size_t room, int *fds,
		   int timeout_ms)
{
	if (!is_guard_socket(fd))
		return -ENOTSOCK;
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		return -errno;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return rc < 0 ? -errno : -ETIMEDOUT;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} c;
	struct iovec iov = { .iov_base = answer, .iov_len = room };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			    .msg_controllen = sizeof c.buf };
	ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	int got = 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int one;
			memcpy(&one, CMSG_DATA(h) + i * sizeof(int), sizeof one);
			if (fds != NULL && got < 2)
				fds[got++] = one;
			else
				close(one);
		}
	}
	if (n == 0)
		return -EPIPE;
	if (fds != NULL && got != 2) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return n;
}

int tern_cpr_guard_fetch(int taker_fd, int *state_fd, int *previous_fd, int timeout_ms)
{
	char answer[MSG_MAX];
	int fds[2];
	ssize_t n = ask(taker_fd, MSG_STATE, answer, sizeof answer, fds, timeout_ms);
	if (n < 0)
		return (int)n;
	if ((size_t)n != strlen(MSG_STATE) || memcmp(answer, MSG_STATE, (size_t)n) != 0) {
		close(fds[0]);
		close(fds[1]);
		return -EPROTO;
	}
	*state_fd = fds[0];
	*previous_fd = fds[1];
	return 0;
}

int tern_cpr_guard_take(int taker_fd, int timeout_ms)
{
	char answer[MSG_MAX];
	ssize_t n = ask(taker_fd, MSG_TAKE, answer, sizeof answer, NULL, timeout_ms);
	if (n < 0)
		return (int)n;
	if ((size_t)n == strlen(MSG_GO) && memcmp(answer, MSG_GO, (size_t)n) == 0)
		return 0;
	if ((size_t)n == strlen(MSG_NO) && memcmp(answer, MSG_NO, (size_t)n) == 0)
		return -ECANCELED;
	return -EPROTO;
}
