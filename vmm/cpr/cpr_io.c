/* The byte and environment plumbing of live update; see cpr_internal.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cpr/cpr_internal.h"

uint64_t cpr_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int cpr_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cpr_read_all(int fd, void *data, size_t len)
{
	uint8_t *p = data;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cpr_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t at = 0;
	uint64_t deadline = cpr_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
	while (at + 1 < len) {
		uint64_t now = cpr_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, (int)((deadline - now) / 1000000ULL) + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = read(fd, buf + at, 1);
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		if (buf[at] == '\n')
			break;
		at++;
	}
	buf[at] = '\0';
	return 0;
}

int cpr_env_fd(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	return *end == '\0' && fd >= 0 && fd < (1 << 24) ? (int)fd : -1;
}

void cpr_set_env_fd(const char *name, int fd)
{
	char num[16];
	snprintf(num, sizeof num, "%d", fd);
	setenv(name, num, 1);
}
