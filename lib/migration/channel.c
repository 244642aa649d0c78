/* Migration channels; see include/tern/channel.h. */
#include "tern/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BURST_NS 10000000ull /* credit an idle limited link may keep */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Bandwidth limit: a write of n bytes books n / limit seconds after the
 * previous booking (an idle link keeps no more than a short burst of
 * credit), goes out, and then waits until its booking ends.  Exact over
 * any period, even for frames larger than a second's worth, and a write
 * returns only once its bytes are paid for, so the sender's own measure of
 * its bandwidth is right.  0 when unlimited, else the end of the booking.
 */
static uint64_t book(struct tern_channel *ch, size_t n)
{
	uint64_t limit = __atomic_load_n(&ch->limit, __ATOMIC_RELAXED);
	if (limit == 0)
		return 0;
	uint64_t t = now_ns();
	uint64_t from = ch->next_send_ns + BURST_NS > t ? ch->next_send_ns : t - BURST_NS;
	ch->next_send_ns = from + (uint64_t)n * 1000000000ull / limit;
	return ch->next_send_ns;
}

static int wait_until(struct tern_channel *ch, uint64_t deadline_ns)
{
	for (;;) {
		if (__atomic_load_n(&ch->cancelled, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		uint64_t t = now_ns();
		if (t >= deadline_ns)
			return 0;
		uint64_t left = deadline_ns - t;
		struct timespec nap = { 0, (long)(left < 10000000 ? left : 10000000) };
		nanosleep(&nap, NULL);
	}
}

/* With a stall limit: wait until fd can move bytes (events), at most
 * stall_ms; 0, or -ETIMEDOUT (the peer made no progress). */
static int wait_progress(struct tern_channel *ch, short events)
{
	if (ch->stall_ms <= 0)
		return 0;
	struct pollfd p = { .fd = ch->fd, .events = events };
	int r;
	do
		r = poll(&p, 1, ch->stall_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		ch->stalled = 1;
		return -ETIMEDOUT;
	}
	return r < 0 ? -errno : 0;
}

static int ch_writev(void *opaque, const struct iovec *iov_in, int n)
{
	struct tern_channel *ch = opaque;
	struct iovec iov[16];
	if (n > 16)
		return -EINVAL;
	memcpy(iov, iov_in, (size_t)n * sizeof *iov);
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	uint64_t paid_at = book(ch, total);
	int first = 0;
	while (first < n) {
		if (__atomic_load_n(&ch->cancelled, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		int rc = wait_progress(ch, POLLOUT);
		if (rc < 0)
			return rc;
		/* A peer that went away must be an error, not SIGPIPE. */
		struct msghdr msg = { .msg_iov = iov + first, .msg_iovlen = (size_t)(n - first) };
		int flags = MSG_NOSIGNAL | (ch->stall_ms > 0 ? MSG_DONTWAIT : 0);
		ssize_t w = ch->two_way ? sendmsg(ch->fd, &msg, flags)
					: writev(ch->fd, iov + first, n - first);
		if (w < 0) {
			if (errno == EINTR || (errno == EAGAIN && ch->stall_ms > 0))
				continue;
			return __atomic_load_n(&ch->cancelled, __ATOMIC_ACQUIRE) ? -ECANCELED : -errno;
		}
		ch->written += (uint64_t)w;
		size_t done = (size_t)w;
		while (first < n && done >= iov[first].iov_len)
			done -= iov[first++].iov_len;
		if (first < n) {
			iov[first].iov_base = (uint8_t *)iov[first].iov_base + done;
			iov[first].iov_len -= done;
		}
	}
	return paid_at ? wait_until(ch, paid_at) : 0;
}

static int ch_read(void *opaque, void *buf, size_t len)
{
	struct tern_channel *ch = opaque;
	size_t got = 0;
	while (got < len) {
		if (__atomic_load_n(&ch->cancelled, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		int rc = wait_progress(ch, POLLIN);
		if (rc < 0)
			return rc;
		ssize_t r = read(ch->fd, (uint8_t *)buf + got, len - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return __atomic_load_n(&ch->cancelled, __ATOMIC_ACQUIRE) ? -ECANCELED : -errno;
		}
		if (r == 0)
			return got == 0 ? -ENODATA : -EPIPE;
		got += (size_t)r;
		ch->read += (uint64_t)r;
	}
	return 0;
}

static void init(struct tern_channel *ch, int fd, int owns)
{
	memset(ch, 0, sizeof *ch);
	ch->fd = fd;
	ch->owns_fd = owns;
	int type;
	socklen_t len = sizeof type;
	ch->two_way = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
	struct stat st;
	ch->is_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	/* The last frames and the READY/GO replies are small and each waits
	 * for the other side: Nagle would add a delayed ACK to the downtime. */
	int one = 1;
	if (ch->two_way)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly off TCP */
	ch->io = (struct tern_io){ ch, ch_writev, ch_read };
}

/* "HOST:PORT" (HOST may be bracketed IPv6, empty or 0). */
static int split_host_port(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	size_t n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int tcp_socket(const char *spec, int listening, struct tern_error *err)
{
	char host[256], port[32];
	if (split_host_port(spec, host, sizeof host, port, sizeof port) < 0)
		return tern_errorf(err, -EINVAL, "'tcp:%s': expected tcp:HOST:PORT", spec);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = listening ? AI_PASSIVE : 0 };
	struct addrinfo *res = NULL;
	const char *h = host[0] == '\0' || (listening && strcmp(host, "0") == 0) ? NULL : host;
	int gai = getaddrinfo(h, port, &hints, &res);
	if (gai != 0)
		return tern_errorf(err, -EHOSTUNREACH, "'tcp:%s': %s", spec, gai_strerror(gai));
	int fd = -1, e = 0;
	for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		if (listening)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		int rc = listening ? bind(fd, a->ai_addr, a->ai_addrlen) : connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc == 0 && listening)
			rc = listen(fd, 1);
		if (rc < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return tern_errorf(err, -e, "cannot %s tcp:%s: %s", listening ? "listen on" : "connect to",
				   spec, strerror(e));
	return fd;
}

static int unix_socket(const char *path, int listening, struct tern_error *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) == 0 || strlen(path) >= sizeof a.sun_path)
		return tern_errorf(err, -EINVAL, "'unix:%s': path must be 1..%zu characters", path,
				   sizeof a.sun_path - 1);
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tern_errorf(err, -errno, "socket: %s", strerror(errno));
	int rc;
	if (listening) {
		unlink(path);
		rc = bind(fd, (struct sockaddr *)&a, sizeof a);
		if (rc == 0)
			rc = listen(fd, 1);
	} else {
		rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (rc < 0) {
		int e = errno;
		close(fd);
		return tern_errorf(err, -e, "cannot %s unix:%s: %s", listening ? "listen on" : "connect to",
				   path, strerror(e));
	}
	return fd;
}

static int parse_fd(const char *s, struct tern_error *err)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || n < 0 || n > 1 << 20 || fcntl((int)n, F_GETFD) < 0)
		return tern_errorf(err, -EBADF, "'fd:%s' is not an open file descriptor", s);
	return (int)n;
}

/*
 * Source, file:PATH.  A file that is not there is created (O_EXCL, so it
 * is known to be ours: a failed stream may remove it); one that is there
 * is written over, and never removed.
 */
static int file_create(struct tern_channel *ch, const char *path, struct tern_error *err)
{
	int fd = -1, created = 0;
	for (int tries = 0; fd < 0 && tries < 3; tries++) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			created = 1;
		else if (errno == EEXIST)
			fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT && errno != EEXIST)
			break; /* ENOENT: removed in between (or a dangling link): again */
	}
	if (fd < 0 && (errno == ENOENT || errno == EEXIST)) /* as before: not ours to remove */
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return tern_errorf(err, -errno, "cannot create %s: %s", path, strerror(errno));
	struct stat st;
	char *copy = strdup(path);
	if (copy == NULL || fstat(fd, &st) < 0) {
		int e = copy == NULL ? ENOMEM : errno;
		free(copy);
		if (created)
			unlink(path);
		close(fd);
		return tern_errorf(err, -e, "cannot create %s: %s", path, strerror(e));
	}
	init(ch, fd, 1);
	ch->path = copy;
	ch->created = created;
	ch->created_dev = st.st_dev;
	ch->created_ino = st.st_ino;
	return 0;
}

/* Add to a message already in err (cut to its buffer). */
static void error_append(struct tern_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void error_append(struct tern_error *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	size_t n = strnlen(err->msg, sizeof err->msg);
	if (n >= sizeof err->msg - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
	va_end(ap);
}

void tern_channel_abandon(struct tern_channel *ch, struct tern_error *err)
{
	if (ch->path == NULL)
		return;
	/* The path must still name the file this channel made: never
	 * remove one that took its place. */
	struct stat st;
	int ours = ch->created && stat(ch->path, &st) == 0 && S_ISREG(st.st_mode) &&
		   st.st_dev == ch->created_dev && st.st_ino == ch->created_ino;
	if (ours && unlink(ch->path) == 0)
		error_append(err, "; nothing was kept (%s, which this migration created, was "
			     "removed)", ch->path);
	else if (ours)
		error_append(err, "; %s is incomplete and could not be removed (%s): do not "
			     "restore from it", ch->path, strerror(errno));
	else if (!ch->created)
		error_append(err, "; what was written to %s is incomplete (it existed before, so "
			     "it was left in place): do not restore from it", ch->path);
	else
		error_append(err, "; %s is not the file this migration wrote, so it was left in "
			     "place: what was written is incomplete", ch->path);
	free(ch->path);
	ch->path = NULL;
}

int tern_channel_connect(struct tern_channel *ch, const char *uri, struct tern_error *err)
{
	int fd;
	int owns = 1;
	if (strncmp(uri, "tcp:", 4) == 0)
		fd = tcp_socket(uri + 4, 0, err);
	else if (strncmp(uri, "unix:", 5) == 0)
		fd = unix_socket(uri + 5, 0, err);
	else if (strncmp(uri, "file:", 5) == 0)
		return file_create(ch, uri + 5, err);
	else if (strncmp(uri, "fd:", 3) == 0) {
		fd = parse_fd(uri + 3, err);
		owns = 0;
	} else {
		return tern_errorf(err, -EINVAL, "unknown migration URI '%s' (use tcp:HOST:PORT, "
				   "unix:PATH, file:PATH or fd:N)", uri);
	}
	if (fd < 0)
		return fd;
	init(ch, fd, owns);
	return 0;
}

int tern_channel_listen(const char *uri, int *listen_fd, struct tern_error *err)
{
	*listen_fd = -1;
	int fd;
	if (strncmp(uri, "tcp:", 4) == 0)
		fd = tcp_socket(uri + 4, 1, err);
	else if (strncmp(uri, "unix:", 5) == 0)
		fd = unix_socket(uri + 5, 1, err);
	else if (strncmp(uri, "file:", 5) == 0 || strncmp(uri, "fd:", 3) == 0)
		return 0; /* nothing to listen on */
	else
		return tern_errorf(err, -EINVAL, "unknown migration URI '%s' (use tcp:HOST:PORT, "
				   "unix:PATH, file:PATH or fd:N)", uri);
	if (fd < 0)
		return fd;
	*listen_fd = fd;
	return 0;
}

int tern_channel_accept(struct tern_channel *ch, const char *uri, int listen_fd,
			struct tern_error *err)
{
	if (strncmp(uri, "file:", 5) == 0) {
		int fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return tern_errorf(err, -errno, "cannot open %s: %s", uri + 5, strerror(errno));
		init(ch, fd, 1);
		return 0;
	}
	if (strncmp(uri, "fd:", 3) == 0) {
		int fd = parse_fd(uri + 3, err);
		if (fd < 0)
			return fd;
		init(ch, fd, 0);
		return 0;
	}
	int fd;
	do
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return tern_errorf(err, -errno, "accepting the migration connection: %s",
				   strerror(errno));
	init(ch, fd, 1);
	return 0;
}

void tern_channel_set_limit(struct tern_channel *ch, uint64_t bytes_per_second)
{
	__atomic_store_n(&ch->limit, bytes_per_second, __ATOMIC_RELAXED);
}

void tern_channel_set_stall(struct tern_channel *ch, int stall_ms)
{
	ch->stall_ms = stall_ms;
}

void tern_channel_cancel(struct tern_channel *ch)
{
	__atomic_store_n(&ch->cancelled, 1, __ATOMIC_RELEASE);
	if (ch->fd >= 0)
		shutdown(ch->fd, SHUT_RDWR); /* wakes a thread blocked on it */
}

int tern_channel_wait_readable(struct tern_channel *ch, int timeout_ms)
{
	struct pollfd p = { .fd = ch->fd, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

void tern_channel_linger(struct tern_channel *ch, int timeout_ms)
{
	if (!ch->two_way)
		return;
	shutdown(ch->fd, SHUT_WR);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
	uint8_t sink[4096];
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t left = deadline - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		if (left <= 0 || tern_channel_wait_readable(ch, (int)left) <= 0)
			return;
		ssize_t r = read(ch->fd, sink, sizeof sink);
		if (r <= 0 && !(r < 0 && errno == EINTR))
			return;
	}
}

void tern_channel_close(struct tern_channel *ch)
{
	if (ch->fd >= 0 && ch->owns_fd)
		close(ch->fd);
	ch->fd = -1;
	free(ch->path);
	ch->path = NULL;
}
