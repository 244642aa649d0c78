/* Unix-socket helpers; see sock.h. */
#include "sock.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

int unix_connect_retry(const char *path, int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof addr.sun_path)
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, len + 1);
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (now_ms() > deadline)
			return -e;
		struct timespec nap = { 0, 10000000 };
		nanosleep(&nap, NULL);
	}
}

long text_stream_wait_line(struct text_stream *t, size_t from, const char *needle,
			   int timeout_ms)
{
	long at = text_stream_wait(t, from, needle, timeout_ms);
	if (at < 0 || text_stream_wait(t, (size_t)at, "\n", timeout_ms) < 0)
		return -1;
	return at;
}

void text_stream_init(struct text_stream *t, int fd)
{
	memset(t, 0, sizeof *t);
	t->fd = fd;
	t->cap = 4096;
	t->buf = calloc(1, t->cap);
}

void text_stream_free(struct text_stream *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

long text_stream_wait(struct text_stream *t, size_t from, const char *needle, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		if (from <= t->len) {
			char *hit = strstr(t->buf + from, needle);
			if (hit != NULL)
				return (long)(hit - t->buf) + (long)strlen(needle);
		}
		double left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left + 1) <= 0)
			continue;
		if (t->len + 4097 > t->cap) {
			char *b = realloc(t->buf, t->cap * 2);
			if (b == NULL)
				return -1;
			t->buf = b;
			t->cap *= 2;
		}
		ssize_t n = recv(t->fd, t->buf + t->len, 4096, 0);
		if (n <= 0)
			return -1;
		t->len += (size_t)n;
		t->buf[t->len] = '\0';
	}
}
