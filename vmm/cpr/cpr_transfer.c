/* cpr-transfer, both sides: a new `tern run --incoming cpr:unix:PATH`
 * takes the guest over a unix socket; see cpr.h and docs/cpr.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cpr/cpr.h"
#include "cpr/cpr_fds.h"
#include "cpr/cpr_internal.h"
#include "cpr/cpr_ram.h"
#include "cpr/cpr_blob.h"
#include "cpr/kept_fds.h"

/* ------------------------------------------------------------ the old process */

/* The connection, made in a thread so that the main loop serves QMP while
 * the new tern maps the RAM (it may take seconds, or never answer). */
static struct {
	pthread_mutex_t lock;
	pthread_t tid;
	int running;   /* tid is to be joined */
	int cancelled; /* the VM is going away: `ready` must not run */
	int sock;      /* while connecting, for a cancel to shut it down */
	int rc;
	struct tern_error err;
	struct runner *r;
	void (*ready)(struct runner *r, int sock, struct tern_error *err);
} job = { .lock = PTHREAD_MUTEX_INITIALIZER, .sock = -1 };

/* Reach the new tern and offer it the RAM: it maps it and registers the
 * memslots now rather than in the stop.  The socket, or -errno. */
static int transfer_connect(struct runner *r, const char *path, struct tern_error *err)
{
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return tern_errorf(err, -errno, "socket: %s", strerror(errno));
	pthread_mutex_lock(&job.lock);
	job.sock = sock;
	int cancelled = job.cancelled;
	pthread_mutex_unlock(&job.lock);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	const struct cpr_ram_offer offer = { .memory = r->vm.ram.size,
					     .memslots = r->vm.ram.slots,
					     .memfd = r->vm.ram.memfd };
	char line[300];
	int rc = 0;
	if (cancelled)
		rc = tern_errorf(err, -ECANCELED, "the VM is shutting down");
	else if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
		rc = tern_errorf(err, -errno, "cannot reach the new tern at %s: %s", path,
				 strerror(errno));
	else if ((rc = cpr_ram_send(sock, &offer)) < 0)
		rc = tern_errorf(err, rc, "offering the RAM to the new tern: %s", strerror(-rc));
	else if ((rc = cpr_read_line(sock, line, sizeof line, CPR_HANDSHAKE_TIMEOUT_MS)) < 0)
		rc = tern_errorf(err, rc, "the new tern did not take the RAM: %s", strerror(-rc));
	else if (strcmp(line, "MAPPED") != 0)
		rc = tern_errorf(err, -EPROTO, "the new tern could not map the RAM: %s",
				 strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
	pthread_mutex_lock(&job.lock);
	job.sock = -1;
	pthread_mutex_unlock(&job.lock);
	if (rc < 0) {
		close(sock);
		return rc;
	}
	return sock;
}

static void connected(void *opaque)
{
	(void)opaque;
	pthread_mutex_lock(&job.lock);
	int cancelled = job.cancelled, running = job.running;
	job.running = 0;
	pthread_mutex_unlock(&job.lock);
	if (running)
		pthread_join(job.tid, NULL);
	if (cancelled) {
		if (job.rc >= 0)
			close(job.rc);
		return;
	}
	job.ready(job.r, job.rc, &job.err);
}

static void *connect_thread(void *opaque)
{
	(void)opaque;
	job.err.msg[0] = '\0';
	job.rc = transfer_connect(job.r, cpr.path, &job.err);
	if (loop_post(&job.r->loop, connected, NULL) < 0)
		fprintf(stderr, "tern: cannot reach the main loop to finish the live update\n");
	return NULL;
}

int cpr_transfer_begin(struct runner *r, const char *path,
		       void (*ready)(struct runner *r, int sock, struct tern_error *err))
{
	snprintf(cpr.path, sizeof cpr.path, "%s", path);
	job.r = r;
	job.ready = ready;
	job.cancelled = 0;
	int rc = pthread_create(&job.tid, NULL, connect_thread, NULL);
	if (rc != 0)
		return -rc;
	job.running = 1;
	return 0;
}

void cpr_transfer_cancel(void)
{
	pthread_mutex_lock(&job.lock);
	int running = job.running;
	job.cancelled = 1;
	job.running = 0;
	if (job.sock >= 0)
		shutdown(job.sock, SHUT_RDWR); /* wakes the thread's wait */
	pthread_mutex_unlock(&job.lock);
	if (running)
		pthread_join(job.tid, NULL);
}

int cpr_transfer_update(struct runner *r, int sock, const struct tern_buf *blob,
			uint64_t deadline_ns, struct tern_error *err)
{
	struct cpr_fd_list l;
	int rc = cpr_fds_collect(r->fds, &l, err);
	if (rc == 0) {
		struct tern_buf head = { 0 };
		tern_buf_u64(&head, blob->len);
		tern_buf_u32(&head, l.n);
		rc = head.failed ? -ENOMEM : cpr_write_all(sock, head.data, head.len);
		tern_buf_free(&head);
		if (rc == 0)
			rc = cpr_write_all(sock, blob->data, blob->len);
		if (rc == 0)
			rc = cpr_fds_send(sock, &l);
		if (rc < 0)
			rc = tern_errorf(err, rc, "sending the state to the new tern: %s",
					 strerror(-rc));
	}
	cpr_fd_list_free(&l);
	/* The guest is stopped: wait no longer than x-cpr-timeout allows. */
	uint64_t now = cpr_mono_ns();
	int wait_ms = now < deadline_ns ? (int)((deadline_ns - now) / 1000000ULL) + 1 : 1;
	char line[300];
	if (rc == 0) {
		int got = cpr_read_line(sock, line, sizeof line, wait_ms);
		if (got == -ETIMEDOUT)
			rc = tern_errorf(err, got, "the new tern did not take the guest within "
					 "x-cpr-timeout (%u ms)", r->mig.cpr_timeout_ms);
		else if (got < 0)
			rc = tern_errorf(err, got, "the new tern did not answer: %s",
					 strerror(-got));
	}
	if (rc == 0 && strcmp(line, "READY") != 0)
		rc = tern_errorf(err, -EPROTO, "the new tern could not take the guest: %s",
				 strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
	/* The point of no return: once GO is out, the guest is the new one's. */
	if (rc == 0 && (rc = cpr_write_all(sock, "GO\n", 3)) < 0)
		rc = tern_errorf(err, rc, "the new tern went away before it took the guest");
	close(sock);
	return rc;
}

/* ------------------------------------------------------------ the new process */

static int accept_update(const char *path, int signal_fd, struct tern_error *err)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path)
		return tern_errorf(err, -ENAMETOOLONG, "socket path too long");
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	unlink(path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1) < 0)
		return tern_errorf(err, -errno, "cannot listen on %s: %s", path, strerror(errno));
	fprintf(stderr, "tern: waiting for a live update on %s\n", path);
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = signal_fd, .events = POLLIN } };
	int rc;
	do
		rc = poll(p, 2, -1);
	while (rc < 0 && errno == EINTR);
	int conn = -1;
	if (p[0].revents & POLLIN)
		conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	unlink(path);
	if (conn < 0)
		return tern_errorf(err, -EINTR, "no live update arrived");
	return conn;
}

/* Map the RAM the old tern offers and register it with KVM while the guest
 * still runs there; "MAPPED" lets the old tern stop it. */
static int prepare_ram(struct runner *r, int conn, struct tern_error *err)
{
	struct cpr_ram_offer offer;
	int rc = cpr_ram_receive(conn, &offer, CPR_HANDSHAKE_TIMEOUT_MS, err);
	if (rc < 0)
		return rc;
	struct tern_fdstore *ahead = tern_fdstore_new();
	/* Kept as every RAM memfd is: open across a later cpr-exec. */
	if (ahead == NULL || kept_fd_add(ahead, KEPT_RAM_MEMFD, 0, offer.memfd) < 0) {
		tern_fdstore_free(ahead);
		close(offer.memfd);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	const struct vm_config cfg = { .memory = offer.memory, .memslots = offer.memslots,
				       .fds = ahead, .kvm_ready = &r->kvm_ready };
	rc = vm_prepare(&r->vm, &cfg, err); /* the memfd is the RAM's now */
	tern_fdstore_free(ahead);
	if (rc == 0 && (rc = cpr_write_all(conn, "MAPPED\n", 7)) < 0)
		rc = tern_errorf(err, rc, "the old tern went away: %s", strerror(-rc));
	return rc;
}

/* The store names the RAM memfd again, as sent with the state: it must be
 * the memory mapped ahead, whose fd then takes its place. */
static int adopt_prepared_ram(struct runner *r, struct tern_error *err)
{
	int sent = tern_fdstore_find(r->fds, KEPT_RAM_MEMFD, 0);
	struct stat a, b;
	if (sent < 0 || fstat(sent, &a) < 0 || fstat(r->vm.ram.memfd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return tern_errorf(err, -EBADMSG, "the state's guest RAM is not the RAM offered "
				   "before it");
	close(sent);
	tern_fdstore_update(r->fds, KEPT_RAM_MEMFD, 0, r->vm.ram.memfd);
	return 0;
}

int cpr_receive_transfer(struct runner *r, const char *path, struct tern_error *err)
{
	/* Creating a KVM VM takes milliseconds: do it before the guest stops. */
	int rc = kvm_open(&r->kvm_ready, err);
	if (rc == 0)
		rc = kvm_create_vm(&r->kvm_ready, err);
	if (rc < 0)
		return rc;
	r->have_kvm_ready = 1;
	int conn = accept_update(path, r->signal_fd, err);
	if (conn < 0)
		return conn;
	cpr.conn = conn;
	if ((rc = prepare_ram(r, conn, err)) < 0)
		return rc;
	uint8_t head[12];
	rc = cpr_read_all(conn, head, sizeof head);
	if (rc < 0)
		return tern_errorf(err, rc, "reading the update: %s", strerror(-rc));
	struct tern_reader hr = { head, sizeof head, 0 };
	uint64_t len;
	uint32_t nfds;
	tern_read_u64(&hr, &len);
	tern_read_u32(&hr, &nfds);
	if (len == 0 || len > CPR_MAX_BYTES || nfds > TERN_FDSTORE_MAX_ENTRIES)
		return tern_errorf(err, -EBADMSG, "an update of %llu bytes and %u fds is not one "
				   "tern sends", (unsigned long long)len, nfds);
	cpr.blob = malloc((size_t)len);
	struct cpr_fd_pair *pair = malloc((nfds ? nfds : 1) * sizeof *pair);
	if (cpr.blob == NULL || pair == NULL) {
		free(pair);
		return tern_errorf(err, -ENOMEM, "out of memory for the update");
	}
	cpr.blob_len = (size_t)len;
	if ((rc = cpr_read_all(conn, cpr.blob, cpr.blob_len)) < 0)
		rc = tern_errorf(err, rc, "reading the update: %s", strerror(-rc));
	if (rc == 0)
		rc = cpr_fds_receive(conn, pair, nfds, err);
	r->cpr_received_ns = cpr_mono_ns();
	r->cpr_memslot_ns = r->vm.kvm.memslot_ns;
	if (rc == 0)
		rc = cpr_take_state(r, err);
	if (rc == 0)
		rc = cpr_fds_remap(r->fds, pair, nfds, err);
	if (rc == 0)
		rc = adopt_prepared_ram(r, err);
	free(pair);
	return rc;
}


/* The state is loaded: ready; the guest is ours only when the old one says GO. */
int cpr_transfer_ready(struct tern_error *err)
{
	char line[16];
	int rc;
	if ((rc = cpr_write_all(cpr.conn, "READY\n", 6)) < 0 ||
	    (rc = cpr_read_line(cpr.conn, line, sizeof line, CPR_HANDSHAKE_TIMEOUT_MS)) < 0)
		return tern_errorf(err, rc, "the old tern did not hand the guest over");
	if (strcmp(line, "GO") != 0)
		return tern_errorf(err, -EPROTO, "the old tern did not hand the guest over");
	close(cpr.conn);
	cpr.conn = -1;
	return 0;
}
