/* Live update, both modes, both sides; see cpr.h. */
#include "cpr.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tern/mmkeeper.h"

#include "cpr_fds.h"
#include "cpr_ram.h"
#include "cpr_settings.h"
#include "kept_fds.h"
#include "cpr_state.h"
#include "vm_state.h"

#define ENV_STATE "TERN_CPR_STATE"
#define ENV_PREVIOUS "TERN_CPR_PREVIOUS"
#define ENV_FALLBACK "TERN_CPR_FALLBACK"
#define ENV_OLD_VM "TERN_CPR_OLD_VM"
#define ENV_OLD_MM "TERN_CPR_OLD_MM"
#define HANDSHAKE_TIMEOUT_MS 10000
#define QMP_CLIENTS_SECTION "qmp-clients"

extern char **environ;

/* What one process knows of the update under way (one per process). */
static struct {
	char path[108];   /* cpr-transfer: the new process's socket */
	int conn;         /* cpr-transfer: the socket between the two */
	int state_fd;     /* cpr-exec: the state memfd, until the guest runs */
	int previous_fd;  /* cpr-exec: the binary to fall back to */
	int old_vm_fd;    /* cpr-exec: the old KVM VM, closed once the guest runs */
	struct tern_mm_keeper old_mm; /* cpr-exec: the old address space, released then too */
	uint8_t *blob;
	size_t blob_len;
	int exec_mode;
} cpr = { .conn = -1, .state_fd = -1, .previous_fd = -1, .old_vm_fd = -1,
	    .old_mm = { .pidfd = -1 } };

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const void *data, size_t len)
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

static int read_all(int fd, void *data, size_t len)
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

/* One line from the peer (up to len - 1 bytes), waiting at most timeout_ms. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t at = 0;
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
	while (at + 1 < len) {
		uint64_t now = mono_ns();
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

/* ------------------------------------------------------------ the old process */

static int put_section(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	return cpr_blob_section(ctx, name, data, len);
}

/* Append b (saved with status rc) to out as section name, then empty b
 * for the next one. */
static int put_saved(struct tern_buf *out, const char *name, struct tern_buf *b, int rc)
{
	if (rc == 0)
		rc = b->failed ? -ENOMEM : cpr_blob_section(out, name, b->data, b->len);
	tern_buf_free(b);
	return rc;
}

static int build_state(struct runner *r, enum vm_migration_mode mode, uint64_t stop_ns,
		       int paused, struct tern_buf *out, struct tern_error *err)
{
	struct cpr_header h = { 0 };
	snprintf(h.mode, sizeof h.mode, "%s", vm_migration_mode_name(mode));
	h.memory = r->cfg.memory;
	h.vcpus = r->cfg.vcpus;
	h.memslots = r->vm.ram.slots;
	h.dirty_mode = r->cfg.dirty_mode;
	h.dirty_ring_entries = r->cfg.dirty_ring_entries;
	h.bank = r->have_bank ? r->bank.count : 0;
	snprintf(h.serial, sizeof h.serial, "%s", r->cfg.serial ? r->cfg.serial : "stdio");
	snprintf(h.qmp, sizeof h.qmp, "%s", r->qmp_spec);
	h.guest_paused = (uint32_t)paused;
	h.stop_ns = stop_ns;
	h.saved_ns = mono_ns();
	h.fds = r->fds;
	int rc = cpr_blob_begin(out, &h);
	if (rc < 0)
		return tern_errorf(err, rc, "saving the update's state: %s", strerror(-rc));
	if ((rc = vm_state_save_to(&r->vm, put_section, out, err)) < 0)
		return rc;
	struct tern_buf b = { 0 };
	/* Always, so that kept region memfds are always accounted for. */
	rc = memmap_save_regions(&r->vm, &b);
	rc = put_saved(out, MEMMAP_REGIONS_SECTION, &b, rc);
	if (rc == 0 && r->have_bank) {
		rc = ioeventfd_bank_save(&r->bank, &b);
		rc = put_saved(out, "ioeventfd-bank", &b, rc);
	}
	if (rc == 0 && r->have_qmp) {
		int settings = cpr_settings_save(&r->qmp, &b, err);
		rc = put_saved(out, CPR_SETTINGS_SECTION, &b, settings);
		if (settings < 0)
			return settings; /* err says why */
	}
	if (rc == 0 && r->have_qmp) { /* what clients sent that no request consumed yet */
		qmp_server_save_clients(&r->qmp, &b);
		rc = put_saved(out, QMP_CLIENTS_SECTION, &b, 0);
	}
	uint8_t *pending = malloc(CHARDEV_OUT_CAPACITY);
	if (rc == 0 && pending == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		size_t n = chardev_take_output(&r->vm.serial, pending, CHARDEV_OUT_CAPACITY);
		if (n > 0)
			rc = cpr_blob_section(out, "serial-out", pending, n);
	}
	free(pending);
	if (rc == 0)
		rc = cpr_blob_finish(out);
	return rc < 0 ? tern_errorf(err, rc, "saving the update's state: %s", strerror(-rc)) : 0;
}

static void set_env_fd(const char *name, int fd)
{
	char num[16];
	snprintf(num, sizeof num, "%d", fd);
	setenv(name, num, 1);
}

/* Exec unmaps every page of the old address space before the new program
 * starts, and the guest has touched its RAM through it: 13-19 ms per GiB
 * here (bench/cpr_exec), inside the stop.  A keeper holds the old address space instead, and the
 * new tern releases it once the guest runs.  Without one, exec just pays. */
static void keep_address_space(struct tern_mm_keeper *k)
{
	if (tern_mm_keeper_start(k) < 0)
		return;
	if (fcntl(k->pidfd, F_SETFD, 0) < 0) /* unknown to the new tern, it would linger */
		tern_mm_keeper_release(k);
	else
		set_env_fd(ENV_OLD_MM, k->pidfd);
}

/* Returns only on failure, with the guest still ours. */
static int update_by_exec(struct runner *r, const struct tern_buf *blob, struct tern_error *err)
{
	char *const *argv = r->mig.cpr_exec_argv;
	int state_fd = memfd_create("tern-cpr-state", 0); /* not close-on-exec: it must pass */
	if (state_fd < 0)
		return tern_errorf(err, -errno, "memfd for the state: %s", strerror(errno));
	int rc = 0;
	size_t done = 0;
	while (rc == 0 && done < blob->len) {
		ssize_t n = write(state_fd, blob->data + done, blob->len - done);
		if (n <= 0)
			rc = tern_errorf(err, -errno, "writing the state: %s", strerror(errno));
		else
			done += (size_t)n;
	}
	int self_fd = open("/proc/self/exe", O_RDONLY); /* the fallback, even if replaced on disk */
	if (rc == 0 && self_fd < 0)
		rc = tern_errorf(err, -errno, "opening this tern's binary: %s", strerror(errno));
	if (rc == 0) {
		set_env_fd(ENV_STATE, state_fd);
		set_env_fd(ENV_PREVIOUS, self_fd);
		unsetenv(ENV_FALLBACK);
		/* Closing the VM fd at exec would tear the old VM down (its memslots,
		 * thousands of ioeventfds) before the new tern runs: keep it open
		 * through exec and let the new tern close it once the guest runs. */
		int vm_fd = r->vm.kvm.vm_fd;
		if (fcntl(vm_fd, F_SETFD, 0) == 0)
			set_env_fd(ENV_OLD_VM, vm_fd);
		struct tern_mm_keeper keeper; /* a child of the thread that execs: PDEATHSIG follows it */
		keep_address_space(&keeper);
		execv(argv[0], argv);
		rc = tern_errorf(err, -errno, "cannot run %s: %s", argv[0], strerror(errno));
		tern_mm_keeper_release(&keeper); /* quick: the address space is still in use */
		fcntl(vm_fd, F_SETFD, FD_CLOEXEC);
		unsetenv(ENV_STATE);
		unsetenv(ENV_PREVIOUS);
		unsetenv(ENV_OLD_VM);
		unsetenv(ENV_OLD_MM);
	}
	close(state_fd);
	if (self_fd >= 0)
		close(self_fd);
	return rc;
}

/* Reach the new tern and offer it the RAM, while the guest runs: it maps
 * the RAM and registers memslots now rather than in the stop.  The socket,
 * or -errno with the guest untouched. */
static int transfer_connect(struct runner *r, const char *path, struct tern_error *err)
{
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return tern_errorf(err, -errno, "socket: %s", strerror(errno));
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	const struct cpr_ram_offer offer = { .memory = r->vm.ram.size,
					     .memslots = r->vm.ram.slots,
					     .memfd = r->vm.ram.memfd };
	char line[300];
	int rc = 0;
	if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
		rc = tern_errorf(err, -errno, "cannot reach the new tern at %s: %s", path,
				 strerror(errno));
	else if ((rc = cpr_ram_send(sock, &offer)) < 0)
		rc = tern_errorf(err, rc, "offering the RAM to the new tern: %s", strerror(-rc));
	else if ((rc = read_line(sock, line, sizeof line, HANDSHAKE_TIMEOUT_MS)) < 0)
		rc = tern_errorf(err, rc, "the new tern did not take the RAM: %s", strerror(-rc));
	else if (strcmp(line, "MAPPED") != 0)
		rc = tern_errorf(err, -EPROTO, "the new tern could not map the RAM: %s",
				 strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
	if (rc < 0) {
		close(sock);
		return rc;
	}
	return sock;
}

/* 0: the new process has the guest; else the old one keeps it.  Closes sock. */
static int update_by_transfer(struct runner *r, int sock, const struct tern_buf *blob,
			      struct tern_error *err)
{
	struct cpr_fd_list l;
	int rc = cpr_fds_collect(r->fds, &l, err);
	if (rc == 0) {
		struct tern_buf head = { 0 };
		tern_buf_u64(&head, blob->len);
		tern_buf_u32(&head, l.n);
		rc = head.failed ? -ENOMEM : write_all(sock, head.data, head.len);
		tern_buf_free(&head);
		if (rc == 0)
			rc = write_all(sock, blob->data, blob->len);
		if (rc == 0)
			rc = cpr_fds_send(sock, &l);
		if (rc < 0)
			rc = tern_errorf(err, rc, "sending the state to the new tern: %s",
					 strerror(-rc));
	}
	cpr_fd_list_free(&l);
	char line[300];
	if (rc == 0 && (rc = read_line(sock, line, sizeof line, HANDSHAKE_TIMEOUT_MS)) < 0)
		rc = tern_errorf(err, rc, "the new tern did not answer: %s", strerror(-rc));
	if (rc == 0 && strcmp(line, "READY") != 0)
		rc = tern_errorf(err, -EPROTO, "the new tern could not take the guest: %s",
				 strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
	/* The point of no return: once GO is out, the guest is the new one's. */
	if (rc == 0 && (rc = write_all(sock, "GO\n", 3)) < 0)
		rc = tern_errorf(err, rc, "the new tern went away before it took the guest");
	close(sock);
	return rc;
}

static void do_update(void *opaque)
{
	struct runner *r = opaque;
	struct vm_migration *m = &r->mig;
	struct tern_error err = { .msg = "" };
	if (r->have_qmp)
		qmp_server_flush(&r->qmp, 1000); /* migrate's reply first */
	int paused = vm_get_state(&r->vm) == VM_STATE_PAUSED;
	int sock = -1, rc = 0;
	if (m->cpr.mode == MIG_MODE_CPR_TRANSFER)
		rc = sock = transfer_connect(r, cpr.path, &err);
	uint64_t stop_ns = mono_ns();
	struct tern_buf blob = { 0 };
	if (rc >= 0) {
		vm_pause_to(&r->vm, VM_STATE_FINISH_MIGRATE);
		rc = build_state(r, m->cpr.mode, stop_ns, paused, &blob, &err);
	}
	if (rc == 0 && m->cpr.mode == MIG_MODE_CPR_EXEC)
		rc = update_by_exec(r, &blob, &err); /* returns only on failure */
	else if (rc == 0)
		rc = update_by_transfer(r, sock, &blob, &err);
	else if (sock >= 0)
		close(sock);
	tern_buf_free(&blob);
	if (rc == 0) { /* the new process runs the guest: leave, sharing nothing more */
		m->cpr.status = TERN_MIG_COMPLETED;
		r->handed_over = 1;
		r->qmp.handed_over = 1;
		r->vm.serial.handed_over = 1;
		vm_request_exit(&r->vm, VM_EXIT_QUIT, 0, "the guest moved to a new tern");
		return;
	}
	m->cpr.status = TERN_MIG_FAILED;
	snprintf(m->cpr.error, sizeof m->cpr.error, "%s", err.msg);
	if (paused)
		vm_set_state(&r->vm, VM_STATE_PAUSED);
	else
		vm_resume(&r->vm);
	if (m->on_status != NULL)
		m->on_status(m->status_opaque, TERN_MIG_FAILED);
}

int cpr_start(void *runner, const char *uri, struct tern_error *err)
{
	struct runner *r = runner;
	struct vm_migration *m = &r->mig;
	if (m->mode == MIG_MODE_CPR_EXEC && m->cpr_exec_argv[0] == NULL)
		return tern_errorf(err, -EINVAL, "cpr-exec needs cpr-exec-command (set it with "
				   "migrate-set-parameters): the new tern to run");
	if (m->mode == MIG_MODE_CPR_TRANSFER) {
		if (strncmp(uri, "unix:", 5) != 0 || uri[5] == '\0' ||
		    strlen(uri + 5) >= sizeof cpr.path)
			return tern_errorf(err, -EINVAL, "cpr-transfer goes over a unix socket: use "
					   "unix:PATH, where `tern run --incoming cpr:unix:PATH` "
					   "waits");
		snprintf(cpr.path, sizeof cpr.path, "%s", uri + 5);
	}
	if (loop_post(&r->loop, do_update, r) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	memset(&m->cpr, 0, sizeof m->cpr);
	m->cpr.used = 1;
	m->cpr.status = TERN_MIG_ACTIVE;
	m->cpr.mode = m->mode;
	return 0;
}

/* ------------------------------------------------------------ the new process */

int cpr_exec_pending(void)
{
	return getenv(ENV_STATE) != NULL;
}

static int env_fd(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	return *end == '\0' && fd >= 0 && fd < (1 << 24) ? (int)fd : -1;
}

/* Take the machine's shape from the state. */
static void config_from(struct runner *r, const struct cpr_header *h)
{
	memset(&r->cfg, 0, sizeof r->cfg);
	r->cfg.memory = h->memory;
	r->cfg.vcpus = h->vcpus;
	r->cfg.memslots = h->memslots;
	r->cfg.dirty_mode = (enum dirty_mode)h->dirty_mode;
	r->cfg.dirty_ring_entries = h->dirty_ring_entries;
	r->cfg.serial = h->serial;
	r->cfg.incoming = 1;
	r->cfg.ioeventfd_bank = h->bank;
	r->cfg.kernel_name = "tern-guest";
	r->cfg.kvm_ready = r->have_kvm_ready ? &r->kvm_ready : NULL;
	r->cfg.defer_pit_reinject = !r->have_kvm_ready; /* cpr-exec: off the stop */
	r->cfg.defer_dirty_sets = 1; /* made in cpr_resumed, off the stop */
	snprintf(r->qmp_spec, sizeof r->qmp_spec, "%s", h->qmp);
	tern_fdstore_free(r->fds);
	r->fds = h->fds;
}

static int take_state(struct runner *r, struct tern_error *err)
{
	struct cpr_blob_in *in = calloc(1, sizeof *in);
	if (in == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = cpr_blob_parse(cpr.blob, cpr.blob_len, in, err);
	if (rc < 0) {
		free(in);
		return rc;
	}
	r->cpr_in = in;
	config_from(r, &in->hdr);
	return 0;
}

static int check_open(void *ctx, const char *name, uint32_t id, int fd)
{
	struct tern_error *err = ctx;
	if (fcntl(fd, F_GETFD) < 0)
		return tern_errorf(err, -EBADF, "kept fd %s/%u (%d) did not live through exec", name,
				   id, fd);
	return 0;
}

/* The old VM's fd, if the environment names one that is really a KVM VM. */
static int old_vm_fd(void)
{
	int fd = env_fd(ENV_OLD_VM);
	char link[64], target[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = fd >= 0 ? readlink(link, target, sizeof target - 1) : -1;
	if (n < 0)
		return -1;
	target[n] = '\0';
	return strcmp(target, "anon_inode:kvm-vm") == 0 ? fd : -1;
}

int cpr_receive_exec(struct runner *r, struct tern_error *err)
{
	cpr.exec_mode = 1;
	cpr.state_fd = env_fd(ENV_STATE);
	cpr.previous_fd = env_fd(ENV_PREVIOUS);
	cpr.old_vm_fd = old_vm_fd();
	/* Only our own keeper child is taken: a forged fd is left alone. */
	tern_mm_keeper_adopt(&cpr.old_mm, env_fd(ENV_OLD_MM));
	r->cpr_fallback = getenv(ENV_FALLBACK) != NULL;
	r->cpr_fallback_error = getenv(ENV_FALLBACK);
	struct stat st;
	if (cpr.state_fd < 0 || fstat(cpr.state_fd, &st) < 0 || st.st_size <= 0 ||
	    (uint64_t)st.st_size > CPR_MAX_BYTES)
		return tern_errorf(err, -EBADF, "$%s does not name a live-update state", ENV_STATE);
	cpr.blob_len = (size_t)st.st_size;
	void *p = mmap(NULL, cpr.blob_len, PROT_READ, MAP_PRIVATE, cpr.state_fd, 0);
	if (p == MAP_FAILED)
		return tern_errorf(err, -errno, "reading the state: %s", strerror(errno));
	cpr.blob = p;
	r->cpr_received_ns = mono_ns();
	r->cpr_memslot_ns = r->vm.kvm.memslot_ns;
	int rc = take_state(r, err);
	if (rc == 0)
		rc = tern_fdstore_walk(r->fds, check_open, err);
	return rc;
}

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
	int rc = cpr_ram_receive(conn, &offer, HANDSHAKE_TIMEOUT_MS, err);
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
	if (rc == 0 && (rc = write_all(conn, "MAPPED\n", 7)) < 0)
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
	rc = read_all(conn, head, sizeof head);
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
	if ((rc = read_all(conn, cpr.blob, cpr.blob_len)) < 0)
		rc = tern_errorf(err, rc, "reading the update: %s", strerror(-rc));
	if (rc == 0)
		rc = cpr_fds_receive(conn, pair, nfds, err);
	r->cpr_received_ns = mono_ns();
	r->cpr_memslot_ns = r->vm.kvm.memslot_ns;
	if (rc == 0)
		rc = take_state(r, err);
	if (rc == 0)
		rc = cpr_fds_remap(r->fds, pair, nfds, err);
	if (rc == 0)
		rc = adopt_prepared_ram(r, err);
	free(pair);
	return rc;
}

int cpr_apply(struct runner *r, struct tern_error *err)
{
	const struct cpr_blob_in *in = r->cpr_in;
	struct vm_state_in st;
	if (vm_state_in_init(&st, r->vm.vcpus) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = 0, have_bank = 0, have_clients = 0, have_regions = 0;
	for (unsigned i = 0; i < in->sections && rc == 0; i++) {
		const struct cpr_section *s = &in->section[i];
		if (strcmp(s->name, MEMMAP_REGIONS_SECTION) == 0) {
			rc = memmap_load_regions(&r->vm, s->data, s->len, err);
			have_regions = 1;
		} else if (strcmp(s->name, "ioeventfd-bank") == 0) {
			rc = r->have_bank && !have_bank
				     ? ioeventfd_bank_load(&r->bank, s->data, s->len, err)
				     : tern_errorf(err, -EINVAL, "an ioeventfd-bank state this "
						   "machine has no place for");
			have_bank = 1;
		} else if (strcmp(s->name, CPR_SETTINGS_SECTION) == 0) {
			rc = r->have_qmp ? cpr_settings_load(&r->qmp, s->data, s->len, err)
					 : tern_errorf(err, -EINVAL, "migration settings for a "
						       "machine without QMP");
		} else if (strcmp(s->name, QMP_CLIENTS_SECTION) == 0) {
			rc = r->have_qmp && !have_clients
				     ? qmp_server_load_clients(&r->qmp, s->data, s->len, err)
				     : tern_errorf(err, -EINVAL, "QMP clients this machine has no "
						   "place for");
			have_clients = 1;
		} else if (strcmp(s->name, "serial-out") == 0) {
			chardev_write(&r->vm.serial, s->data, s->len);
		} else {
			rc = vm_state_load_section(&st, s->name, s->data, s->len, err);
		}
	}
	static const uint8_t no_regions[4];
	if (rc == 0 && !have_regions) /* then no region memfd may have come either */
		rc = memmap_load_regions(&r->vm, no_regions, sizeof no_regions, err);
	if (rc == 0 && r->have_bank && !have_bank)
		rc = tern_errorf(err, -EINVAL, "the state has no ioeventfd-bank section");
	if (rc == 0)
		rc = vm_state_apply(&r->vm, &st, err);
	vm_state_in_free(&st);
	if (rc < 0)
		return rc;
	r->vm.state = in->hdr.guest_paused ? VM_STATE_PAUSED : VM_STATE_PRELAUNCH;
	if (cpr.conn < 0)
		return 0;
	/* cpr-transfer: ready; the guest is ours only when the old one says GO. */
	char line[16];
	if ((rc = write_all(cpr.conn, "READY\n", 6)) < 0 ||
	    (rc = read_line(cpr.conn, line, sizeof line, HANDSHAKE_TIMEOUT_MS)) < 0)
		return tern_errorf(err, rc, "the old tern did not hand the guest over");
	if (strcmp(line, "GO") != 0)
		return tern_errorf(err, -EPROTO, "the old tern did not hand the guest over");
	close(cpr.conn);
	cpr.conn = -1;
	return 0;
}

/* What the old program left to tear down after a cpr-exec. */
struct leftovers {
	int vm_fd;
	struct tern_mm_keeper mm;
};

static void *retire_thread(void *opaque)
{
	struct leftovers *l = opaque;
	if (l->vm_fd >= 0)
		close(l->vm_fd);
	tern_mm_keeper_release(&l->mm);
	free(l);
	return NULL;
}

/* The old VM goes away (KVM frees its memslots and devices), and then the
 * old address space (every page the guest touched through it), while the
 * guest already runs in the new one. */
static void retire_in_background(int vm_fd, struct tern_mm_keeper mm)
{
	/* Passed through exec to get here; a later update must not pass them on. */
	if (vm_fd >= 0)
		fcntl(vm_fd, F_SETFD, FD_CLOEXEC);
	if (mm.pidfd >= 0)
		fcntl(mm.pidfd, F_SETFD, FD_CLOEXEC);
	struct leftovers *l = malloc(sizeof *l);
	if (l == NULL) {
		if (vm_fd >= 0)
			close(vm_fd);
		tern_mm_keeper_release(&mm);
		return;
	}
	*l = (struct leftovers){ .vm_fd = vm_fd, .mm = mm };
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, retire_thread, l) != 0)
		retire_thread(l);
	pthread_attr_destroy(&attr);
}

void cpr_resumed(struct runner *r)
{
	const struct cpr_header *h = &r->cpr_in->hdr;
	uint64_t now = mono_ns();
	struct cpr_report *c = &r->mig.cpr;
	memset(c, 0, sizeof *c);
	c->used = 1;
	c->mode = strcmp(h->mode, "cpr-exec") == 0 ? MIG_MODE_CPR_EXEC : MIG_MODE_CPR_TRANSFER;
	c->downtime_us = (now - h->stop_ns) / 1000;
	c->save_us = (h->saved_ns - h->stop_ns) / 1000;
	c->transfer_us = r->cpr_received_ns > h->saved_ns ? (r->cpr_received_ns - h->saved_ns) / 1000
							   : 0;
	c->load_us = (now - r->cpr_received_ns) / 1000;
	c->memslots_us = (r->vm.kvm.memslot_ns - r->cpr_memslot_ns) / 1000;
	c->fds = tern_fdstore_count(r->fds);
	c->address_space_kept = cpr.old_mm.pidfd >= 0;
	c->state_bytes = cpr.blob_len;
	c->status = TERN_MIG_COMPLETED;
	if (r->cpr_fallback) {
		c->status = TERN_MIG_FAILED;
		snprintf(c->error, sizeof c->error, "the new tern could not take the guest (%s); "
			 "the previous binary resumed it", r->cpr_fallback_error);
	}
	if (r->vm.kvm.defer_reinject)
		kvm_disable_pit_reinject_later(&r->vm.kvm);
	/* The dirty-page sets, a millisecond per 16 GiB of zeroing, are made now
	 * rather than in the stop: nothing tracks dirty pages until a QMP command
	 * asks, and commands run only after this (an update is refused while
	 * tracking is on, so none was on before it). */
	struct tern_error dirty_err;
	if (dirty_tracker_attach_slots(&r->vm.dirty, &dirty_err) < 0)
		fprintf(stderr, "tern: %s: migration and calc-dirty-rate are unavailable\n",
			dirty_err.msg);
	if (r->have_bank) {
		struct tern_error err;
		if (ioeventfd_bank_register(&r->bank, r->vm.kvm.vm_fd, 1, &err) < 0)
			fprintf(stderr, "tern: %s (doorbells go through the VMM)\n", err.msg);
	}
	/* The update is over: what a fallback needed goes. */
	if (cpr.old_vm_fd >= 0 || cpr.old_mm.pidfd >= 0)
		retire_in_background(cpr.old_vm_fd, cpr.old_mm);
	cpr.old_vm_fd = -1;
	cpr.old_mm = (struct tern_mm_keeper){ .pidfd = -1 };
	if (cpr.exec_mode) {
		munmap(cpr.blob, cpr.blob_len);
		close(cpr.state_fd);
		if (cpr.previous_fd >= 0)
			close(cpr.previous_fd);
		unsetenv(ENV_STATE);
		unsetenv(ENV_PREVIOUS);
		unsetenv(ENV_FALLBACK);
		unsetenv(ENV_OLD_VM);
		unsetenv(ENV_OLD_MM);
	} else {
		free(cpr.blob);
	}
	cpr.blob = NULL;
	cpr.state_fd = cpr.previous_fd = -1;
}

_Noreturn void cpr_failed(struct runner *r, const struct tern_error *err)
{
	if (cpr.exec_mode && !r->cpr_fallback && cpr.previous_fd >= 0 && cpr.state_fd >= 0) {
		/* Back to the binary that saved the state: it knows how to load it. */
		fprintf(stderr, "tern: the live update failed: %s; going back to the previous "
			"binary\n", err->msg);
		setenv(ENV_FALLBACK, err->msg, 1);
		char *argv[] = { "tern", "run", NULL };
		fexecve(cpr.previous_fd, argv, environ);
		fprintf(stderr, "tern: cannot run the previous binary: %s\n", strerror(errno));
	} else if (cpr.conn >= 0) {
		char line[TERN_ERROR_MAX + 8];
		int n = snprintf(line, sizeof line, "ERR %s", err->msg);
		for (int i = 4; i < n; i++)
			if (line[i] == '\n')
				line[i] = ' ';
		write_all(cpr.conn, line, strlen(line));
		write_all(cpr.conn, "\n", 1);
		fprintf(stderr, "tern: the live update failed, the old tern keeps the guest: %s\n",
			err->msg);
		_exit(125);
	}
	fprintf(stderr, "tern: the live update failed and the guest cannot resume: %s\n",
		err->msg);
	_exit(125);
}
