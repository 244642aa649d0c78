/* A QMP client; see qmp_client.h. */
#include "qmp/qmp_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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

int qmp_connect(struct qmp_conn *c, const char *path, int negotiate, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->events = json_array();
	c->fd = unix_connect_retry(path, timeout_ms);
	if (c->fd < 0)
		return c->fd;
	/* Negotiate with the connection, not a round trip later: a server
	 * crowded by clients that never negotiate keeps one that has. */
	static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\r\n";
	if (negotiate && qmp_send_raw(c, caps, sizeof caps - 1) < 0)
		return -EPROTO;
	c->greeting = qmp_read(c, timeout_ms);
	if (c->greeting == NULL || json_object_get(c->greeting, "QMP") == NULL)
		return -EPROTO;
	if (negotiate) {
		json_t *r = qmp_read(c, timeout_ms); /* no event comes before it */
		int ok = qmp_return(r) != NULL;
		json_decref(r);
		if (!ok)
			return -EPROTO;
	}
	return 0;
}

void qmp_close(struct qmp_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	json_decref(c->events);
	json_decref(c->greeting);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

int qmp_send_raw(struct qmp_conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

json_t *qmp_read(struct qmp_conn *c, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl != NULL) {
			size_t line = (size_t)(nl - c->buf) + 1;
			json_t *msg = json_loadb(c->buf, line, 0, NULL);
			memmove(c->buf, c->buf + line, c->len - line);
			c->len -= line;
			if (msg != NULL)
				return msg;
			continue;
		}
		double left = deadline - now_ms();
		if (left <= 0 || c->fd < 0)
			return NULL;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left + 1) <= 0)
			continue;
		if (c->len + 4096 > c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b = realloc(c->buf, cap);
			if (b == NULL)
				return NULL;
			c->buf = b;
			c->cap = cap;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, 4096, 0);
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
}

json_t *qmp_execute(struct qmp_conn *c, const char *cmd, json_t *args, int timeout_ms)
{
	json_t *req = json_pack("{s:s}", "execute", cmd);
	if (args != NULL)
		json_object_set_new(req, "arguments", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	int rc = qmp_send_raw(c, text, strlen(text));
	free(text);
	if (rc < 0)
		return NULL;
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		double left = deadline - now_ms();
		json_t *msg = qmp_read(c, left > 0 ? (int)left : 0);
		if (msg == NULL)
			return NULL;
		if (json_object_get(msg, "event") != NULL) {
			json_array_append_new(c->events, msg);
			continue;
		}
		return msg;
	}
}

json_t *qmp_return(json_t *reply)
{
	return reply ? json_object_get(reply, "return") : NULL;
}

int qmp_do(struct qmp_conn *c, const char *cmd, json_t *args, const char *event,
	   int timeout_ms)
{
	json_t *r = qmp_execute(c, cmd, args, timeout_ms);
	int ok = qmp_return(r) != NULL;
	json_decref(r);
	if (ok && event != NULL) {
		json_t *ev = qmp_wait_event(c, event, timeout_ms);
		ok = ev != NULL;
		json_decref(ev);
	}
	return ok ? 0 : -1;
}

json_t *qmp_wait_event(struct qmp_conn *c, const char *name, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		size_t i;
		json_t *ev;
		json_array_foreach(c->events, i, ev) {
			if (strcmp(json_string_value(json_object_get(ev, "event")), name) == 0) {
				json_incref(ev);
				json_array_remove(c->events, i);
				return ev;
			}
		}
		double left = deadline - now_ms();
		if (left <= 0)
			return NULL;
		json_t *msg = qmp_read(c, (int)left);
		if (msg == NULL)
			return NULL;
		if (json_object_get(msg, "event") != NULL)
			json_array_append_new(c->events, msg);
		else
			json_decref(msg);
	}
}

const char *qmp_socket_path(const char *spec)
{
	return strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec;
}
