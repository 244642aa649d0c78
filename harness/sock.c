/* Unix-socket helpers; see sock.h. */
#include "sock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

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
	double deadline = deadline_ms(timeout_ms);
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

/* Send a serial command and wait for the line of its answer. */
static int guest_command(struct text_stream *t, long *at, const char *cmd, const char *answer)
{
	size_t len = strlen(cmd);
	if (write(t->fd, cmd, len) != (ssize_t)len)
		return -1;
	long got = text_stream_wait_line(t, (size_t)*at, answer, 20000);
	if (got < 0)
		return -1;
	*at = got;
	return 0;
}

int guest_serial_attach(const char *path, struct text_stream *t, const char *line, long *at)
{
	int fd = unix_connect_retry(path, 10000);
	if (fd < 0)
		return -1;
	text_stream_init(t, fd);
	*at = text_stream_wait_line(t, 0, line, 20000);
	if (*at < 0) {
		text_stream_free(t);
		close(fd);
		return -1;
	}
	return fd;
}

int guest_peek(struct text_stream *t, long *at, uint64_t addr, uint64_t *value)
{
	char cmd[64], answer[64];
	snprintf(cmd, sizeof cmd, "peek 0x%llx\n", (unsigned long long)addr);
	snprintf(answer, sizeof answer, "peek 0x%llx = 0x", (unsigned long long)addr);
	if (guest_command(t, at, cmd, answer) < 0)
		return -1;
	*value = strtoull(t->buf + *at, NULL, 16);
	return 0;
}

int guest_poke(struct text_stream *t, long *at, uint64_t addr, uint64_t value)
{
	char cmd[80], answer[64];
	snprintf(cmd, sizeof cmd, "poke 0x%llx 0x%llx\n", (unsigned long long)addr,
		 (unsigned long long)value);
	snprintf(answer, sizeof answer, "poke 0x%llx done", (unsigned long long)addr);
	return guest_command(t, at, cmd, answer);
}
