/* Serial backends; see chardev.h. */
#include "devices/chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cpr/kept_fds.h"

/* Writes to stdio are at most this large after POLLOUT, so that a pipe or
 * terminal left in blocking mode (we do not change the caller's stdio
 * flags) accepts them without blocking. */
#define STDIO_WRITE_CHUNK 4096

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
		else if ((olen == 8 && strncmp(o, "wait=off", 8) == 0) ||
			 (olen == 6 && strncmp(o, "nowait", 6) == 0))
			c->wait_for_client = 0;
		else if (olen == 7 && strncmp(o, "wait=on", 7) == 0)
			c->wait_for_client = 1;
		else
			return tern_errorf(err, -EINVAL, "unknown serial socket option '%.*s' "
					   "(known: server, wait=on, wait=off)", (int)olen, o);
	}
	if (!server)
		return tern_errorf(err, -EINVAL, "serial 'unix:%s' needs ',server': tern listens "
				   "and a client connects", path);
	memcpy(c->path, path, plen + 1);
	int kept = kept_fd_find(c->store, KEPT_SERIAL_LISTEN, 0);
	if (kept >= 0) { /* after a live update: the same socket, its client too */
		c->listen_fd = kept;
		c->wait_for_client = 0;
		int client = kept_fd_find(c->store, KEPT_SERIAL_CLIENT, 0);
		if (client >= 0)
			c->in_fd = c->out_fd = client;
		return 0;
	}
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
	c->listen_fd = fd;
	if (kept_fd_add(c->store, KEPT_SERIAL_LISTEN, 0, fd) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	return 0;
}

int chardev_open(struct chardev *c, const char *spec, struct tern_fdstore *store,
		 struct tern_error *err)
{
	memset(c, 0, sizeof *c);
	c->store = store;
	pthread_mutex_init(&c->lock, NULL);
	c->in_fd = c->out_fd = c->listen_fd = -1;
	c->in_handle = c->out_handle = c->listen_handle = c->wake_handle = -1;
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0)
		return tern_errorf(err, -errno, "eventfd: %s", strerror(errno));
	if (strcmp(spec, "null") == 0) {
		c->kind = CHARDEV_NULL;
		return 0;
	}
	if (strcmp(spec, "stdio") == 0) {
		c->kind = CHARDEV_STDIO;
		c->in_fd = kept_fd_find(store, KEPT_SERIAL_IN, 0);
		c->out_fd = kept_fd_find(store, KEPT_SERIAL_OUT, 0);
		if (c->out_fd < 0) {
			c->in_fd = STDIN_FILENO;
			c->out_fd = STDOUT_FILENO;
			if (kept_fd_add(store, KEPT_SERIAL_IN, 0, c->in_fd) < 0 ||
			    kept_fd_add(store, KEPT_SERIAL_OUT, 0, c->out_fd) < 0)
				return tern_errorf(err, -ENOMEM, "out of memory");
		}
		return 0;
	}
	if (strncmp(spec, "file:", 5) == 0) {
		c->kind = CHARDEV_FILE;
		c->out_fd = kept_fd_find(store, KEPT_SERIAL_OUT, 0);
		if (c->out_fd >= 0)
			return 0;
		c->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (c->out_fd < 0)
			return tern_errorf(err, -errno, "cannot open serial file %s: %s", spec + 5,
					   strerror(errno));
		if (kept_fd_add(store, KEPT_SERIAL_OUT, 0, c->out_fd) < 0)
			return tern_errorf(err, -ENOMEM, "out of memory");
		return 0;
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		c->kind = CHARDEV_UNIX_SERVER;
		return open_unix_server(c, spec + 5, err);
	}
	return tern_errorf(err, -EINVAL, "unknown serial backend '%s' (use stdio, file:PATH, "
			   "unix:PATH,server or null)", spec);
}

/* ------------------------------------------------------------- output */

size_t chardev_write(struct chardev *c, const uint8_t *data, size_t len)
{
	pthread_mutex_lock(&c->lock);
	if (c->out_fd < 0) { /* nobody to tell: discard, as QEMU does */
		pthread_mutex_unlock(&c->lock);
		return len;
	}
	size_t n = 0;
	for (; n < len && c->out_len < CHARDEV_OUT_CAPACITY; n++) {
		c->out[(c->out_head + c->out_len) % CHARDEV_OUT_CAPACITY] = data[n];
		c->out_len++;
	}
	int wake = n > 0 && !c->woken;
	if (wake)
		c->woken = 1;
	pthread_mutex_unlock(&c->lock);
	if (wake) {
		uint64_t one = 1;
		ssize_t w = write(c->wake_fd, &one, sizeof one);
		(void)w; /* a pending count already wakes the loop */
	}
	return n;
}

size_t chardev_copy_output(struct chardev *c, uint8_t *buf, size_t cap)
{
	pthread_mutex_lock(&c->lock);
	size_t n = 0;
	for (; n < cap && n < c->out_len; n++)
		buf[n] = c->out[(c->out_head + n) % CHARDEV_OUT_CAPACITY];
	pthread_mutex_unlock(&c->lock);
	return n;
}

void chardev_discard_output(struct chardev *c)
{
	pthread_mutex_lock(&c->lock);
	c->out_len = 0;
	pthread_mutex_unlock(&c->lock);
}

size_t chardev_write_room(struct chardev *c)
{
	pthread_mutex_lock(&c->lock);
	size_t room = c->out_fd < 0 ? CHARDEV_OUT_CAPACITY : CHARDEV_OUT_CAPACITY - c->out_len;
	pthread_mutex_unlock(&c->lock);
	return room;
}

static void drop_client(struct chardev *c);

/* Main thread: write what the backend takes now; returns -1 if the client
 * went away. */
static int drain(struct chardev *c)
{
	for (;;) {
		pthread_mutex_lock(&c->lock);
		size_t chunk = c->out_len;
		if (c->out_head + chunk > CHARDEV_OUT_CAPACITY)
			chunk = CHARDEV_OUT_CAPACITY - c->out_head;
		if (c->kind == CHARDEV_STDIO && chunk > STDIO_WRITE_CHUNK)
			chunk = STDIO_WRITE_CHUNK;
		const uint8_t *start = c->out + c->out_head;
		int fd = c->out_fd;
		if (chunk == 0 || fd < 0) {
			c->out_len = fd < 0 ? 0 : c->out_len;
			c->woken = 0;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		pthread_mutex_unlock(&c->lock);
		/* Only this thread consumes, so [start, start + chunk) is stable. */
		ssize_t n = c->kind == CHARDEV_UNIX_SERVER
				    ? send(fd, start, chunk, MSG_NOSIGNAL | MSG_DONTWAIT)
				    : write(fd, start, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			if (c->kind == CHARDEV_UNIX_SERVER)
				return -1;
			/* stdout closed or a full disk: the output is lost. */
			pthread_mutex_lock(&c->lock);
			c->out_len = 0;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		pthread_mutex_lock(&c->lock);
		c->out_head = (c->out_head + (size_t)n) % CHARDEV_OUT_CAPACITY;
		c->out_len -= (size_t)n;
		pthread_mutex_unlock(&c->lock);
		if (c->kind == CHARDEV_STDIO && (size_t)n == chunk)
			return 0; /* at most one chunk per POLLOUT */
	}
}

static void update_out_events(struct chardev *c)
{
	if (c->out_handle < 0)
		return;
	pthread_mutex_lock(&c->lock);
	int waiting = c->out_len > 0;
	pthread_mutex_unlock(&c->lock);
	loop_set_events(c->loop, c->out_handle, waiting ? POLLOUT : 0);
}

static void on_output_ready(void *opaque, int fd, short revents)
{
	(void)fd;
	struct chardev *c = opaque;
	if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
		if (c->kind == CHARDEV_UNIX_SERVER) {
			drop_client(c);
			return;
		}
	}
	if (drain(c) < 0) {
		drop_client(c);
		return;
	}
	update_out_events(c);
}

static void on_wake(void *opaque, int fd, short revents)
{
	(void)revents;
	struct chardev *c = opaque;
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof v);
	(void)n;
	pthread_mutex_lock(&c->lock);
	c->woken = 0;
	pthread_mutex_unlock(&c->lock);
	update_out_events(c); /* drain when the backend can take it */
}

void chardev_flush(struct chardev *c, int timeout_ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (drain(c) < 0)
			return;
		pthread_mutex_lock(&c->lock);
		int left = c->out_fd >= 0 && c->out_len > 0;
		pthread_mutex_unlock(&c->lock);
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (!left || ms >= timeout_ms)
			return;
		struct pollfd pfd = { .fd = c->out_fd, .events = POLLOUT };
		poll(&pfd, 1, 10);
	}
}

/* ------------------------------------------------------------- input */

static void on_input(void *opaque, int fd, short revents);

/* Main thread only. */
static void drop_client(struct chardev *c)
{
	if (c->kind != CHARDEV_UNIX_SERVER || c->in_fd < 0)
		return;
	if (c->in_handle >= 0)
		loop_remove(c->loop, c->in_handle);
	if (c->out_handle >= 0)
		loop_remove(c->loop, c->out_handle);
	c->in_handle = c->out_handle = -1;
	pthread_mutex_lock(&c->lock);
	kept_fd_forget(c->store, KEPT_SERIAL_CLIENT, 0);
	close(c->in_fd);
	c->in_fd = c->out_fd = -1;
	c->out_len = 0;
	pthread_mutex_unlock(&c->lock);
	c->pending_len = c->pending_off = 0;
}

static void adopt_client(struct chardev *c, int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	drop_client(c); /* a new client replaces the old one */
	kept_fd_add(c->store, KEPT_SERIAL_CLIENT, 0, fd);
	pthread_mutex_lock(&c->lock);
	c->in_fd = c->out_fd = fd;
	pthread_mutex_unlock(&c->lock);
	if (c->loop != NULL) {
		c->in_handle = loop_add(c->loop, fd, POLLIN, on_input, c);
		c->out_handle = loop_add(c->loop, fd, 0, on_output_ready, c);
	}
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
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (client >= 0)
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
	/* Take no more than the UART takes now: what is read stays here only
	 * for a moment, while unread input stays in the socket, which a live
	 * update keeps. */
	size_t room = c->room != NULL ? c->room(c->opaque) : sizeof c->pending;
	if (room == 0)
		return;
	ssize_t n = read(fd, c->pending, room < sizeof c->pending ? room : sizeof c->pending);
	if (n > 0) {
		c->pending_len = (size_t)n;
		deliver_pending(c);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == 0 || (revents & (POLLHUP | POLLERR))) {
		if (c->kind == CHARDEV_UNIX_SERVER) {
			drop_client(c);
		} else if (c->in_handle >= 0) { /* end of stdin: output goes on */
			loop_remove(c->loop, c->in_handle);
			c->in_handle = -1;
		}
	}
}

int chardev_attach(struct chardev *c, struct loop *loop,
		   size_t (*receive)(void *, const uint8_t *, size_t), size_t (*room)(void *),
		   void *opaque)
{
	c->loop = loop;
	c->receive = receive;
	c->room = room;
	c->opaque = opaque;
	c->wake_handle = loop_add(loop, c->wake_fd, POLLIN, on_wake, c);
	if (c->wake_handle < 0)
		return (int)c->wake_handle;
	if (c->listen_fd >= 0)
		c->listen_handle = loop_add(loop, c->listen_fd, POLLIN, on_accept, c);
	if (c->in_fd >= 0)
		c->in_handle = loop_add(loop, c->in_fd, POLLIN, on_input, c);
	if (c->out_fd >= 0)
		c->out_handle = loop_add(loop, c->out_fd, 0, on_output_ready, c);
	return 0;
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

void chardev_close(struct chardev *c)
{
	if (c->kind == CHARDEV_UNIX_SERVER) {
		if (c->in_fd >= 0)
			close(c->in_fd);
		if (c->listen_fd >= 0) {
			close(c->listen_fd);
			if (!c->handed_over) /* the socket lives on in the new process */
				unlink(c->path);
		}
	} else if (c->kind == CHARDEV_FILE && c->out_fd >= 0) {
		close(c->out_fd);
	}
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	c->listen_fd = c->out_fd = c->in_fd = c->wake_fd = -1;
	pthread_mutex_destroy(&c->lock);
}

/* ------------------------------------------------------------ registry */

/* Output the guest wrote that the old process had not delivered yet: the
 * new one delivers it.  Copied, not taken, so a failed update keeps it. */
struct serial_out_state {
	uint32_t len;
	uint8_t *bytes;
};

static const struct tern_vmstate_field serial_out_fields[] = {
	TERN_VMS_FIELD_VARRAY_PTR(struct serial_out_state, bytes, len, U8, CHARDEV_OUT_CAPACITY, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc serial_out_desc = {
	.name = "serial-out",
	.size = sizeof(struct serial_out_state),
	.version = 1,
	.min_version = 1,
	.fields = serial_out_fields,
};

static int serial_out_save(void *holder, void *obj, struct tern_error *err)
{
	struct serial_out_state *st = obj;
	st->bytes = malloc(CHARDEV_OUT_CAPACITY);
	if (st->bytes == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	st->len = (uint32_t)chardev_copy_output(holder, st->bytes, CHARDEV_OUT_CAPACITY);
	return 0;
}

static int serial_out_load(void *holder, const void *obj, struct tern_error *err)
{
	(void)err;
	const struct serial_out_state *st = obj;
	chardev_write(holder, st->bytes, st->len);
	return 0;
}

static void serial_out_release(void *obj)
{
	struct serial_out_state *st = obj;
	free(st->bytes);
}

/* A migration's source delivers its own output. */
static const char *serial_out_stays(void *holder, enum vm_carrier carrier)
{
	(void)holder;
	(void)carrier;
	return NULL;
}

VM_STATE_TYPE(chardev_output_type) = {
	.name = "serial-out",
	.desc = &serial_out_desc,
	.carry = VM_CARRY_LIVE_UPDATE,
	.save = serial_out_save,
	.load = serial_out_load,
	.release = serial_out_release,
	.blocked = serial_out_stays,
};
