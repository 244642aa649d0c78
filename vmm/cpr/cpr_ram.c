/* cpr-transfer's RAM offer; see cpr_ram.h. */
#include "cpr/cpr_ram.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/ram.h"
#include "tern/vmstate.h"

#define MAGIC "TERNRAM1"
#define OFFER_BYTES (8 + 8 + 4)
#define MAX_MEMORY (1ULL << 46) /* 64 TiB: far beyond any host here, below any overflow */
#define MAX_MEMSLOTS 32768

int cpr_ram_send(int sock, const struct cpr_ram_offer *offer)
{
	uint8_t msg[OFFER_BYTES];
	struct tern_buf b = { 0 };
	tern_buf_put(&b, MAGIC, 8);
	tern_buf_u64(&b, offer->memory);
	tern_buf_u32(&b, offer->memslots);
	if (b.failed || b.len != sizeof msg) {
		tern_buf_free(&b);
		return -ENOMEM;
	}
	memcpy(msg, b.data, sizeof msg);
	tern_buf_free(&b);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof control);
	struct iovec iov = { msg, sizeof msg };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof control.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &offer->memfd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof msg ? 0 : n < 0 ? -errno : -EIO;
}

/* Every fd a message carried, closed. */
static void close_passed(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			close(fd);
		}
	}
}

int cpr_ram_receive(int sock, struct cpr_ram_offer *offer, int timeout_ms,
		    struct tern_error *err)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int rc;
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return tern_errorf(err, -ETIMEDOUT, "the old tern sent no RAM offer");
	uint8_t msg[OFFER_BYTES];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { msg, sizeof msg };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof control.buf };
	ssize_t got;
	do
		got = recvmsg(sock, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	struct cmsghdr *c = got > 0 ? CMSG_FIRSTHDR(&m) : NULL;
	int one_fd = c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		     c->cmsg_len == CMSG_LEN(sizeof(int)) && CMSG_NXTHDR(&m, c) == NULL &&
		     !(m.msg_flags & MSG_CTRUNC);
	if (got != (ssize_t)sizeof msg || !one_fd || memcmp(msg, MAGIC, 8) != 0) {
		if (got > 0)
			close_passed(&m);
		return tern_errorf(err, -EBADMSG, "the old tern's first message is not a RAM offer");
	}
	struct tern_reader r = { msg + 8, sizeof msg - 8, 0 };
	tern_read_u64(&r, &offer->memory);
	tern_read_u32(&r, &offer->memslots);
	memcpy(&offer->memfd, CMSG_DATA(c), sizeof(int));
	struct stat st;
	if (offer->memory < RAM_MIN || offer->memory > MAX_MEMORY || offer->memory % 4096 != 0 ||
	    offer->memslots == 0 || offer->memslots > MAX_MEMSLOTS)
		rc = tern_errorf(err, -EBADMSG, "a RAM offer of %llu bytes in %u memslots is not "
				 "one tern makes", (unsigned long long)offer->memory,
				 offer->memslots);
	else if (fstat(offer->memfd, &st) < 0 || !S_ISREG(st.st_mode) ||
		 (uint64_t)st.st_size < offer->memory)
		rc = tern_errorf(err, -EBADMSG, "the RAM offered is not a memfd of %llu MiB",
				 (unsigned long long)(offer->memory >> 20));
	if (rc < 0) {
		close(offer->memfd);
		offer->memfd = -1;
		return rc;
	}
	return 0;
}
