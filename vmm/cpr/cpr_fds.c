/* cpr-transfer's fd passing; see cpr_fds.h. */
#include "cpr/cpr_fds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int collect_fd(void *ctx, const char *name, uint32_t id, int fd)
{
	(void)name;
	(void)id;
	struct cpr_fd_list *l = ctx;
	if (l->n == l->cap)
		return -ENOSPC;
	l->fd[l->n++] = fd;
	return 0;
}

/* Batches of fds, each message carrying the sender's numbers for them. */
int cpr_fds_send(int sock, const struct cpr_fd_list *l)
{
	for (uint32_t at = 0; at < l->n; at += FDS_PER_MESSAGE) {
		uint32_t k = l->n - at < FDS_PER_MESSAGE ? l->n - at : FDS_PER_MESSAGE;
		int32_t numbers[FDS_PER_MESSAGE];
		for (uint32_t i = 0; i < k; i++)
			numbers[i] = l->fd[at + i];
		union {
			char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
			struct cmsghdr align;
		} control;
		memset(&control, 0, sizeof control);
		struct iovec iov = { numbers, k * sizeof numbers[0] };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				      .msg_controllen = CMSG_SPACE(sizeof(int) * k) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * k);
		memcpy(CMSG_DATA(c), &l->fd[at], sizeof(int) * k);
		ssize_t n;
		do
			n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)iov.iov_len)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

int cpr_fds_collect(const struct tern_fdstore *s, struct cpr_fd_list *l, struct tern_error *err)
{
	l->n = 0;
	l->cap = tern_fdstore_count(s);
	l->fd = malloc((l->cap ? l->cap : 1) * sizeof *l->fd);
	if (l->fd == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	if (tern_fdstore_walk(s, collect_fd, l) != 0)
		return tern_errorf(err, -EIO, "the fd store changed while it was sent");
	return 0;
}

void cpr_fd_list_free(struct cpr_fd_list *l)
{
	free(l->fd);
	l->fd = NULL;
}

static int by_sender(const void *a, const void *b)
{
	const struct cpr_fd_pair *x = a, *y = b;
	return (x->sender > y->sender) - (x->sender < y->sender);
}

int cpr_fds_receive(int sock, struct cpr_fd_pair *pair, uint32_t n, struct tern_error *err)
{
	for (uint32_t at = 0; at < n;) {
		int32_t numbers[FDS_PER_MESSAGE];
		union {
			char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
			struct cmsghdr align;
		} control;
		struct iovec iov = { numbers, sizeof numbers };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				      .msg_controllen = sizeof control.buf };
		ssize_t got;
		do
			got = recvmsg(sock, &msg, 0); /* the fds stay open across a later exec */
		while (got < 0 && errno == EINTR);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		if (got <= 0 || c == NULL || c->cmsg_level != SOL_SOCKET ||
		    c->cmsg_type != SCM_RIGHTS || (msg.msg_flags & MSG_CTRUNC))
			return tern_errorf(err, -EBADMSG, "the fds did not all arrive (%u of %u)", at,
					   n);
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[FDS_PER_MESSAGE];
		memcpy(fds, CMSG_DATA(c), k * sizeof(int));
		if ((size_t)got != k * sizeof(int32_t) || k > n - at) {
			for (size_t i = 0; i < k; i++)
				close(fds[i]);
			return tern_errorf(err, -EBADMSG, "a batch of fds does not match its list");
		}
		for (size_t i = 0; i < k; i++) {
			pair[at + i].sender = numbers[i];
			pair[at + i].local = fds[i];
		}
		at += (uint32_t)k;
	}
	return 0;
}

struct remap {
	struct tern_fdstore *fds;
	const struct cpr_fd_pair *pair;
	uint32_t n;
	struct tern_error *err;
};

static int remap_entry(void *ctx, const char *name, uint32_t id, int fd)
{
	struct remap *m = ctx;
	struct cpr_fd_pair key = { .sender = fd };
	const struct cpr_fd_pair *p = bsearch(&key, m->pair, m->n, sizeof *p, by_sender);
	if (p == NULL)
		return tern_errorf(m->err, -EBADMSG, "kept fd %s/%u was not sent", name, id);
	tern_fdstore_update(m->fds, name, id, p->local); /* the value only: the walk goes on */
	return 0;
}

int cpr_fds_remap(struct tern_fdstore *s, struct cpr_fd_pair *pair, uint32_t n,
		  struct tern_error *err)
{
	qsort(pair, n, sizeof *pair, by_sender);
	struct remap m = { s, pair, n, err };
	return tern_fdstore_walk(s, remap_entry, &m);
}
