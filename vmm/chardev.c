/* Serial backends; see chardev.h. */
#include "chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_SEND_TIMEOUT_SEC 1

static int open_unix_server(struct chardev *c, const char *rest, struct tern_error *err)
{
	char path[sizeof c->path];
	const char *comma = strchr(rest, ',');
	size_t plen = comma ? (size_t)(comma - rest) : strlen(rest);
	if (plen == 0 || plen >= sizeof path)
		return tern_errorf(err, -EINVAL, "serial socket path must be 1..%zu characters",
				   sizeof path - 1);
	memcpy(path, rest, plen);
	path[plen] = '\0';
	int server = 0;
	c->wait_for_client = 1;
	for (const char *opt = comma; opt != NULL; opt = strchr(opt + 1, ',')) {
		const char *o = opt + 1;
		size_t olen = strcspn(o, ",");
		if (olen == 6 && strncmp(o, "server", 6) == 0)
			server = 1;
		else if (olen == 8 && strncmp(o, "wait=off", 8) == 0)
			c->wait_for_client = 0;
		else if (olen == 7 && strncmp(o, "wait=on", 7) == 0)
			c->wait_for_client = 1;
		else if (olen == 6 && strncmp(o, "nowait", 6) == 0)
			c->wait_for_client = 0;
		else
			return tern_errorf(err, -EINVAL, "unknown serial socket option '%.*s' "
					   "(known: server, wait=on, wait=off)", (int)olen, o);
	}
	if (!server)
		return tern_errorf(err, -EINVAL, "serial 'unix:%s' needs ',server': tern listens "
				   "and a client connects", path);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	memcpy(addr.sun_path, path, plen + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tern_errorf(err, -errno, "serial socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 4) < 0) {
		int e = errno;
		close(fd);
		return tern_errorf(err, -e, "cannot listen on serial socket %s: %s", path,
				   strerror(e));
	}
	memcpy(c->path, path, plen + 1);
	c->listen_fd = fd;
	return 0;
}

int chardev_open(struct chardev *c, const char *spec, struct tern_error *err)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
	c->in_fd = c->out_fd = c->listen_fd = -1;
	c->in_handle = c->listen_handle = -1;
	if (strcmp(spec, "null") == 0) {
		c->kind = CHARDEV_NULL;
		return 0;
	}
	if (strcmp(spec, "stdio") == 0) {
		c->kind = CHARDEV_STDIO;
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		return 0;
	}
	if (strncmp(spec, "file:", 5) == 0) {
		c->kind = CHARDEV_FILE;
		c->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (c->out_fd < 0)
			return tern_errorf(err, -errno, "cannot open serial file %s: %s", spec + 5,
					   strerror(errno));
		return 0;
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		c->kind = CHARDEV_UNIX_SERVER;
		return open_unix_server(c, spec + 5, err);
	}
	return tern_errorf(err, -EINVAL, "unknown serial backend '%s' (use stdio, file:PATH, "
			   "unix:PATH,server or null)", spec);
}

/* Main thread only: the client socket is in_fd; out_fd may already be -1
 * when a vCPU thread's write failed. */
static void drop_client_locked(struct chardev *c)
{
	if (c->kind != CHARDEV_UNIX_SERVER || c->in_fd < 0)
		return;
	if (c->loop != NULL && c->in_handle >= 0)
		loop_remove(c->loop, c->in_handle);
	c->in_handle = -1;
	close(c->in_fd);
	c->in_fd = c->out_fd = -1;
	c->pending_len = c->pending_off = 0;
}

void chardev_close(struct chardev *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->kind == CHARDEV_UNIX_SERVER) {
		drop_client_locked(c);
		if (c->listen_fd >= 0) {
			close(c->listen_fd);
			unlink(c->path);
		}
	} else if (c->kind == CHARDEV_FILE && c->out_fd >= 0) {
		close(c->out_fd);
	}
	c->listen_fd = c->out_fd = c->in_fd = -1;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
}

void chardev_write(struct chardev *c, const uint8_t *data, size_t len)
{
	pthread_mutex_lock(&c->lock);
	while (len > 0 && c->out_fd >= 0) {
		ssize_t n = c->kind == CHARDEV_UNIX_SERVER
				    ? send(c->out_fd, data, len, MSG_NOSIGNAL)
				    : write(c->out_fd, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			/* A client that stopped reading (send timeout) loses
			 * output; one that went away gets none until the main
			 * loop sees the hangup and closes it. */
			if (c->kind == CHARDEV_UNIX_SERVER && n < 0 && errno != EAGAIN)
				c->out_fd = -1;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static void on_input(void *opaque, int fd, short revents);

static void adopt_client(struct chardev *c, int fd)
{
	struct timeval tv = { .tv_sec = CLIENT_SEND_TIMEOUT_SEC };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	pthread_mutex_lock(&c->lock);
	drop_client_locked(c); /* a new client replaces the old one */
	c->in_fd = c->out_fd = fd;
	if (c->loop != NULL)
		c->in_handle = loop_add(c->loop, fd, POLLIN, on_input, c);
	pthread_mutex_unlock(&c->lock);
}

int chardev_wait_for_client(struct chardev *c, struct tern_error *err)
{
	if (c->kind != CHARDEV_UNIX_SERVER || !c->wait_for_client)
		return 0;
	fprintf(stderr, "tern: waiting for a client on serial socket %s\n", c->path);
	int fd;
	do
		fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return tern_errorf(err, -errno, "accepting on serial socket %s: %s", c->path,
				   strerror(errno));
	adopt_client(c, fd);
	return 0;
}

static void on_accept(void *opaque, int fd, short revents)
{
	(void)revents;
	struct chardev *c = opaque;
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (client < 0)
		return;
	/* Reads are polled; writes block (with a timeout) for backpressure. */
	fcntl(client, F_SETFL, fcntl(client, F_GETFL) & ~O_NONBLOCK);
	adopt_client(c, client);
}

static void deliver_pending(struct chardev *c)
{
	while (c->pending_off < c->pending_len) {
		size_t n = c->receive(c->opaque, c->pending + c->pending_off,
				      c->pending_len - c->pending_off);
		if (n == 0)
			return;
		c->pending_off += n;
	}
	c->pending_len = c->pending_off = 0;
}

static void on_input(void *opaque, int fd, short revents)
{
	struct chardev *c = opaque;
	deliver_pending(c);
	if (c->pending_len != 0)
		return;
	ssize_t n = read(fd, c->pending, sizeof c->pending);
	if (n > 0) {
		c->pending_len = (size_t)n;
		deliver_pending(c);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == 0 || (revents & (POLLHUP | POLLERR))) {
		pthread_mutex_lock(&c->lock);
		if (c->kind == CHARDEV_UNIX_SERVER) {
			drop_client_locked(c);
		} else if (c->in_handle >= 0) { /* end of stdin: output goes on */
			loop_remove(c->loop, c->in_handle);
			c->in_handle = -1;
		}
		pthread_mutex_unlock(&c->lock);
	}
}

void chardev_attach(struct chardev *c, struct loop *loop,
		    size_t (*receive)(void *, const uint8_t *, size_t), size_t (*room)(void *),
		    void *opaque)
{
	c->loop = loop;
	c->receive = receive;
	c->room = room;
	c->opaque = opaque;
	if (c->listen_fd >= 0)
		c->listen_handle = loop_add(loop, c->listen_fd, POLLIN, on_accept, c);
	if (c->in_fd >= 0)
		c->in_handle = loop_add(loop, c->in_fd, POLLIN, on_input, c);
}

int chardev_throttle(struct chardev *c)
{
	if (c->in_handle < 0)
		return 0;
	if (c->pending_len != 0)
		deliver_pending(c);
	int full = c->pending_len != 0 || c->room(c->opaque) == 0;
	loop_set_events(c->loop, c->in_handle, full ? 0 : POLLIN);
	return full;
}
