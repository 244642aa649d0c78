/* The QMP server: its socket, its clients, events; see qmp.h. */
#include "qmp/qmp.h"
#include "cpr/kept_fds.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "qmp/qmp_trace.h"
#include "qmp/unix_listen.h"
#include "version.h"

/* ---------------------------------------------------------------- clients */

static void client_close(struct qmp_server *s, struct qmp_client *c)
{
	if (c->fd < 0)
		return;
	kept_fd_forget(s->store, KEPT_QMP_CLIENT, (uint32_t)(c - s->client));
	loop_remove(s->loop, c->handle);
	close(c->fd);
	qmp_framer_destroy(&c->framer);
	free(c->out);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static void client_flush(struct qmp_server *s, struct qmp_client *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				client_close(s, c);
			break;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	if (c->fd >= 0)
		loop_set_events(s->loop, c->handle, (short)(POLLIN | (c->out_len ? POLLOUT : 0)));
}

/* Queue a message (takes the reference); a client that lets too much
 * pile up is disconnected rather than allowed to stall tern. */
static void client_send(struct qmp_server *s, struct qmp_client *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(msg);
	if (text == NULL)
		return;
	size_t n = strlen(text);
	if (c->out_len + n + 2 > QMP_MAX_OUTPUT) {
		free(text);
		client_close(s, c);
		return;
	}
	if (c->out_len + n + 2 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + n + 2)
			cap *= 2;
		char *b = realloc(c->out, cap);
		if (b == NULL) {
			free(text);
			client_close(s, c);
			return;
		}
		c->out = b;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, text, n);
	memcpy(c->out + c->out_len + n, "\r\n", 2);
	c->out_len += n + 2;
	free(text);
	client_flush(s, c);
}

static json_t *too_large_reply(enum qmp_frame f)
{
	char desc[200];
	if (f == QMP_FRAME_TOO_DEEP)
		snprintf(desc, sizeof desc, "JSON parse error, request nested more than %u levels "
			 "deep (skipped to where it closes or its line ends)", QMP_MAX_NESTING);
	else
		snprintf(desc, sizeof desc, "JSON parse error, request larger than %u MiB (skipped "
			 "to where it closes or its line ends)", QMP_MAX_MESSAGE >> 20);
	return qmp_error_reply("GenericError", desc);
}

static void on_client(void *opaque, int fd, short revents)
{
	struct qmp_server *s = opaque;
	struct qmp_client *c = NULL;
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++)
		if (s->client[i].fd == fd)
			c = &s->client[i];
	if (c == NULL)
		return;
	if (revents & POLLOUT)
		client_flush(s, c);
	if (c->fd < 0 || !(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		client_close(s, c);
		return;
	}
	if (qmp_framer_push(&c->framer, buf, (size_t)n) < 0) {
		client_close(s, c);
		return;
	}
	const char *text;
	size_t len;
	enum qmp_frame f;
	while (c->fd >= 0 && (f = qmp_framer_next(&c->framer, &text, &len)) != QMP_FRAME_NONE) {
		json_t *reply;
		if (f == QMP_FRAME_TEXT) {
			reply = qmp_handle_text(s, &c->negotiated, text, len);
		} else {
			reply = too_large_reply(f);
			qmp_trace(s, "reply", NULL, reply);
		}
		if (reply != NULL)
			client_send(s, c, reply);
	}
}

static int listen_on(struct qmp_server *s, struct tern_error *err);

/* --------------------------------------------------- waiting to negotiate */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The timer fires at the first deadline of a client still negotiating. */
static void arm_deadline(struct qmp_server *s)
{
	uint64_t first = 0;
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		const struct qmp_client *c = &s->client[i];
		if (c->fd >= 0 && !c->negotiated && (first == 0 || c->deadline_ns < first))
			first = c->deadline_ns;
	}
	if (s->timer_fd < 0)
		return;
	struct itimerspec when = {
		.it_value = { (time_t)(first / 1000000000u), (long)(first % 1000000000u) },
	};
	timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &when, NULL); /* all zero: disarmed */
}

static void drop_waiting(struct qmp_server *s, struct qmp_client *c, const char *why)
{
	char desc[300];
	snprintf(desc, sizeof desc, "QMP client dropped: %s; send qmp_capabilities right after "
		 "connecting", why);
	client_send(s, c, qmp_error_reply("GenericError", desc)); /* may close it already */
	client_close(s, c);
}

static void on_deadline(void *opaque, int fd, short revents)
{
	(void)revents;
	struct qmp_server *s = opaque;
	uint64_t ticks;
	ssize_t n = read(fd, &ticks, sizeof ticks);
	(void)n;
	char why[100];
	snprintf(why, sizeof why, "it did not negotiate within %u ms of connecting",
		 s->negotiate_ms);
	uint64_t now = mono_ns();
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &s->client[i];
		if (c->fd >= 0 && !c->negotiated && c->deadline_ns <= now)
			drop_waiting(s, c, why);
	}
	arm_deadline(s);
}

/*
 * Where a new connection goes.  Clients still negotiating may hold at most
 * QMP_MAX_CLIENTS - 1 slots, so a newcomer always finds room unless every
 * slot is held by a negotiated client: when no slot is free, or the
 * negotiating clients hold their share, the one of them nearest its
 * deadline gives up its slot.  A newcomer is thus dropped before it
 * negotiates only by its deadline or when QMP_MAX_CLIENTS - 1 newer
 * connections arrive first.  NULL: 16 negotiated clients, refuse.
 */
static struct qmp_client *slot_for_newcomer(struct qmp_server *s)
{
	struct qmp_client *free_slot = NULL, *oldest = NULL;
	unsigned waiting = 0;
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &s->client[i];
		if (c->fd < 0) {
			free_slot = free_slot != NULL ? free_slot : c;
		} else if (!c->negotiated) {
			waiting++;
			if (oldest == NULL || c->deadline_ns < oldest->deadline_ns)
				oldest = c;
		}
	}
	if (free_slot != NULL && waiting < QMP_MAX_CLIENTS - 1)
		return free_slot;
	if (oldest == NULL)
		return NULL;
	drop_waiting(s, oldest, "it had not negotiated when a newer client needed its slot (at "
		     "most 15 may be negotiating at once)");
	return oldest;
}

static int client_start(struct qmp_server *s, struct qmp_client *c, int cfd)
{
	memset(c, 0, sizeof *c);
	c->fd = cfd;
	qmp_framer_init(&c->framer);
	c->handle = loop_add(s->loop, cfd, POLLIN, on_client, s);
	if (c->handle < 0 || kept_fd_add(s->store, KEPT_QMP_CLIENT, (uint32_t)(c - s->client),
					  cfd) < 0) {
		if (c->handle >= 0)
			loop_remove(s->loop, c->handle);
		qmp_framer_destroy(&c->framer);
		c->fd = -1;
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------ live update */

struct client_state {
	uint32_t slot;
	bool negotiated;
	struct qmp_framer_state framer;
};

struct clients_state {
	uint32_t count;
	struct client_state *client;
};

static const struct tern_vmstate_field client_fields[] = {
	TERN_VMS_FIELD_U32(struct client_state, slot, 0),
	TERN_VMS_FIELD_BOOL(struct client_state, negotiated, 0),
	TERN_VMS_FIELD_STRUCT(struct client_state, framer, &qmp_framer_state_desc, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc client_desc = {
	.name = "qmp-client",
	.size = sizeof(struct client_state),
	.version = 1,
	.min_version = 1,
	.fields = client_fields,
};

static const struct tern_vmstate_field clients_fields[] = {
	TERN_VMS_FIELD_VARRAY_PTR_STRUCT_AS("clients", struct clients_state, client, count,
					    &client_desc, QMP_MAX_CLIENTS, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc clients_desc = {
	.name = "qmp-clients",
	.size = sizeof(struct clients_state),
	.version = 1,
	.min_version = 1,
	.fields = clients_fields,
};

static void clients_release(void *obj)
{
	struct clients_state *st = obj;
	for (uint32_t i = 0; st->client != NULL && i < st->count; i++)
		free(st->client[i].framer.unread);
	free(st->client);
}

static int clients_save(void *holder, void *obj, struct tern_error *err)
{
	const struct qmp_server *s = holder;
	struct clients_state *st = obj;
	st->client = calloc(QMP_MAX_CLIENTS, sizeof *st->client);
	if (st->client == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < QMP_MAX_CLIENTS; i++) {
		const struct qmp_client *c = &s->client[i];
		if (c->fd < 0)
			continue;
		struct client_state *cs = &st->client[st->count++];
		cs->slot = i;
		cs->negotiated = c->negotiated;
		if (qmp_framer_get_state(&c->framer, &cs->framer) < 0)
			return tern_errorf(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* The clients qmp_server_open adopted get back what they had: one entry
 * for each, all checked before anything changes; a client that had not
 * negotiated gets a fresh negotiate_ms. */
static int clients_load(void *holder, const void *obj, struct tern_error *err)
{
	struct qmp_server *s = holder;
	const struct clients_state *st = obj;
	struct qmp_framer framer[QMP_MAX_CLIENTS];
	uint8_t negotiated[QMP_MAX_CLIENTS], seen[QMP_MAX_CLIENTS] = { 0 };
	uint32_t adopted = 0;
	int rc = 0;
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++)
		adopted += s->client[i].fd >= 0;
	if (st->count != adopted)
		rc = tern_errorf(err, -EBADMSG, "QMP clients: the state describes a different "
				 "number of clients than were passed on");
	for (uint32_t k = 0; k < st->count && rc == 0; k++) {
		const struct client_state *cs = &st->client[k];
		uint32_t slot = cs->slot;
		if (slot >= QMP_MAX_CLIENTS || seen[slot] || s->client[slot].fd < 0) {
			rc = tern_errorf(err, -EBADMSG, "QMP clients: entry %u names no client "
					 "passed on, or one twice", k);
			break;
		}
		if ((rc = qmp_framer_put_state(&framer[slot], &cs->framer)) < 0) {
			tern_errorf(err, rc, "QMP clients: the unread input of client %u is not "
				    "an unfinished request", slot);
			break;
		}
		seen[slot] = 1;
		negotiated[slot] = cs->negotiated;
	}
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		if (!seen[i])
			continue;
		if (rc < 0) {
			qmp_framer_destroy(&framer[i]);
			continue;
		}
		qmp_framer_destroy(&s->client[i].framer);
		s->client[i].framer = framer[i];
		s->client[i].negotiated = negotiated[i];
		/* Deadlines are not carried: a client still negotiating gets its
		 * time afresh. */
		s->client[i].deadline_ns = mono_ns() + (uint64_t)s->negotiate_ms * 1000000;
	}
	if (rc == 0)
		arm_deadline(s);
	return rc;
}

/* A migration leaves the clients with the source: nothing is lost. */
static const char *clients_stay(void *holder, enum vm_carrier carrier)
{
	(void)holder;
	(void)carrier;
	return NULL;
}

VM_STATE_TYPE(qmp_clients_type) = {
	.name = "qmp-clients",
	.desc = &clients_desc,
	.carry = VM_CARRY_LIVE_UPDATE,
	.save = clients_save,
	.load = clients_load,
	.release = clients_release,
	.blocked = clients_stay,
};

/* After a live update: the listening socket and the clients the previous
 * process served, past negotiation (their greeting was sent) unless the
 * state says otherwise (qmp_server_load_clients). */
static int adopt_kept(struct qmp_server *s, int listen_fd)
{
	s->listen_fd = listen_fd;
	for (uint32_t i = 0; i < QMP_MAX_CLIENTS; i++) {
		int fd = kept_fd_find(s->store, KEPT_QMP_CLIENT, i);
		if (fd < 0)
			continue;
		tern_fdstore_remove(s->store, KEPT_QMP_CLIENT, i); /* client_start keeps it again */
		if (client_start(s, &s->client[i], fd) < 0)
			return -ENOMEM;
		s->client[i].negotiated = 1;
	}
	return 0;
}

static void on_accept(void *opaque, int fd, short revents)
{
	(void)revents;
	struct qmp_server *s = opaque;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0)
		return;
	struct qmp_client *c = slot_for_newcomer(s);
	if (c == NULL) {
		static const char busy[] = "{\"error\": {\"class\": \"GenericError\", \"desc\": "
					   "\"too many QMP clients: 16 have negotiated; try "
					   "again once one has left\"}}\r\n";
		ssize_t w = send(cfd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		close(cfd);
		return;
	}
	if (client_start(s, c, cfd) < 0) {
		close(cfd);
		return;
	}
	c->deadline_ns = mono_ns() + (uint64_t)s->negotiate_ms * 1000000;
	arm_deadline(s);
	json_t *greeting = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version", "qemu",
				     "major", TERN_VERSION_MAJOR, "minor", TERN_VERSION_MINOR,
				     "micro", TERN_VERSION_MICRO, "package", "tern " TERN_VERSION,
				     "capabilities");
	qmp_trace(s, "greeting", NULL, greeting);
	client_send(s, c, greeting);
}

int qmp_server_open(struct qmp_server *s, const char *spec, struct loop *loop,
		    struct tern_fdstore *store, struct tern_error *err)
{
	memset(s, 0, sizeof *s);
	s->listen_fd = s->timer_fd = -1;
	s->store = store;
	s->loop = loop;
	s->negotiate_ms = QMP_NEGOTIATE_MS;
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++)
		s->client[i].fd = -1;
	if (strncmp(spec, "unix:", 5) != 0)
		return tern_errorf(err, -EINVAL, "--qmp '%s': only unix:PATH is supported", spec);
	const char *path = spec + 5;
	size_t plen = strcspn(path, ",");
	if (path[plen] == ',') {
		/* Accept QEMU's ",server" and ",wait=off": tern always listens. */
		const char *opts = path + plen;
		if (strcmp(opts, ",server") != 0 && strcmp(opts, ",server,wait=off") != 0 &&
		    strcmp(opts, ",server,nowait") != 0)
			return tern_errorf(err, -EINVAL, "--qmp: unknown options '%s' (tern always "
					   "listens; use unix:PATH)", opts + 1);
	}
	if (plen == 0 || plen >= sizeof s->path)
		return tern_errorf(err, -EINVAL, "--qmp socket path must be 1..%zu characters",
				   sizeof s->path - 1);
	memcpy(s->path, path, plen);
	s->path[plen] = '\0';
	int kept = kept_fd_find(store, KEPT_QMP_LISTEN, 0);
	if (kept >= 0) {
		if (adopt_kept(s, kept) < 0)
			return tern_errorf(err, -ENOMEM, "out of memory");
	} else if ((kept = listen_on(s, err)) < 0) {
		return kept;
	}
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->timer_fd < 0)
		return tern_errorf(err, -errno, "QMP negotiation timer: %s", strerror(errno));
	s->timer_handle = loop_add(loop, s->timer_fd, POLLIN, on_deadline, s);
	s->listen_handle = loop_add(loop, s->listen_fd, POLLIN, on_accept, s);
	if (s->timer_handle < 0 || s->listen_handle < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	qmp_trace_open(s);
	return 0;
}

static int listen_on(struct qmp_server *s, struct tern_error *err)
{
	int fd = unix_listen_private("QMP socket", s->path, QMP_MAX_CLIENTS, err);
	if (fd < 0)
		return fd;
	s->listen_fd = fd;
	if (kept_fd_add(s->store, KEPT_QMP_LISTEN, 0, s->listen_fd) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	return 0;
}

void qmp_server_close(struct qmp_server *s)
{
	qmp_trace_close(s);
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++)
		client_close(s, &s->client[i]);
	if (s->timer_fd >= 0) {
		loop_remove(s->loop, s->timer_handle);
		close(s->timer_fd);
		s->timer_fd = -1;
	}
	if (s->listen_fd >= 0) {
		loop_remove(s->loop, s->listen_handle);
		close(s->listen_fd);
		if (!s->handed_over) /* the socket lives on in the new process */
			unlink(s->path);
		s->listen_fd = -1;
	}
}

void qmp_server_event(struct qmp_server *s, const char *name, json_t *data)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (s->tracing) {
		json_t *ev = json_pack("{s:{s:I,s:I},s:s}", "timestamp", "seconds",
				       (json_int_t)ts.tv_sec, "microseconds",
				       (json_int_t)(ts.tv_nsec / 1000), "event", name);
		if (data != NULL)
			json_object_set(ev, "data", data);
		qmp_trace(s, "event", name, ev);
		json_decref(ev);
	}
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &s->client[i];
		if (c->fd < 0 || !c->negotiated)
			continue;
		json_t *ev = json_pack("{s:{s:I,s:I},s:s}", "timestamp", "seconds",
				       (json_int_t)ts.tv_sec, "microseconds",
				       (json_int_t)(ts.tv_nsec / 1000), "event", name);
		if (data != NULL)
			json_object_set(ev, "data", data);
		client_send(s, c, ev);
	}
	json_decref(data);
}

void qmp_server_flush(struct qmp_server *s, int timeout_ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int pending = 0;
		for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
			struct qmp_client *c = &s->client[i];
			if (c->fd >= 0 && c->out_len > 0) {
				client_flush(s, c);
				pending |= c->fd >= 0 && c->out_len > 0;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (!pending || ms >= timeout_ms)
			return;
		struct timespec nap = { 0, 1000000 };
		nanosleep(&nap, NULL);
	}
}
