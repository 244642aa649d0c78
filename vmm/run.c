/* `tern run`: build the VM, serve QMP and the serial port from the main
 * loop, and turn how the VM ended into tern's exit status. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/builtin_guest.h"
#include "cpr/cpr.h"
#include "cpr/cpr_settings.h"
#include "cpr/cpr_blob.h"
#include "qmp/cpr_qmp.h"
#include "qmp/migration_qmp.h"
#include "qmp/vm_state_qmp.h"
#include "runner.h"

#define KERNEL_MAX_BYTES (512u << 20)
#define THROTTLED_POLL_MS 10


static int read_kernel(const char *path, uint8_t **out, size_t *len, struct tern_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tern_errorf(err, -errno, "cannot open kernel %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > KERNEL_MAX_BYTES) {
		close(fd);
		return tern_errorf(err, -EINVAL, "kernel %s must be a regular file of 1 byte to "
				   "%u MiB", path, KERNEL_MAX_BYTES >> 20);
	}
	uint8_t *buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		close(fd);
		return tern_errorf(err, -ENOMEM, "out of memory reading kernel %s", path);
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			return tern_errorf(err, -e, "reading kernel %s: %s", path, strerror(e));
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static void on_signal(void *opaque, int fd, short revents)
{
	(void)revents;
	struct runner *r = opaque;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof si) != sizeof si)
		return;
	char detail[64];
	snprintf(detail, sizeof detail, "terminating on signal %u (%s)", si.ssi_signo,
		 strsignal((int)si.ssi_signo));
	vm_request_exit(&r->vm, VM_EXIT_SIGNAL, (int)si.ssi_signo, detail);
}

static void on_notify(void *opaque, int fd, short revents)
{
	(void)opaque;
	(void)revents;
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof v);
	(void)n; /* the exit cause is in the VM; the loop condition sees it */
}

static size_t serial_receive(void *opaque, const uint8_t *data, size_t len)
{
	struct vm *vm = opaque;
	return uart_receive(&vm->uart, data, len);
}

static size_t serial_room(void *opaque)
{
	struct vm *vm = opaque;
	return uart_rx_room(&vm->uart);
}

static int exit_status(const struct vm *vm)
{
	switch (vm->exit_cause) {
	case VM_EXIT_GUEST:
		if (vm->exit_status != 0)
			fprintf(stderr, "tern: %s\n", vm->exit_detail);
		return vm->exit_status;
	case VM_EXIT_QUIT:
		return 0;
	case VM_EXIT_SIGNAL:
		fprintf(stderr, "tern: %s\n", vm->exit_detail);
		return 128 + vm->exit_status;
	case VM_EXIT_CRASH:
		fprintf(stderr, "tern: the guest crashed: %s\n", vm->exit_detail);
		return TERN_EXIT_GUEST_CRASHED;
	case VM_EXIT_INCOMING_FAILED:
		fprintf(stderr, "tern: the incoming migration failed: %s\n", vm->exit_detail);
		return TERN_EXIT_START_FAILED;
	case VM_EXIT_NONE:
		break;
	}
	return TERN_EXIT_GUEST_CRASHED;
}

/* A destination whose migration failed has no guest to run: like QEMU,
 * it ends, saying why. */
static void on_incoming_done(void *opaque, int rc, const char *error)
{
	struct runner *r = opaque;
	if (rc < 0)
		vm_request_exit(&r->vm, VM_EXIT_INCOMING_FAILED, 0, error);
}

/* The machine of a cold start, from the options. */
static int config_from_options(struct runner *r, const struct run_options *o, uint8_t **kernel,
			       struct tern_error *err)
{
	r->cfg = (struct vm_config){
		.memory = o->memory,
		.vcpus = o->vcpus,
		.memslots = o->memslots,
		.append = o->append,
		.serial = o->serial,
		.start_paused = o->start_paused,
		.mem_prealloc = o->mem_prealloc,
		.dirty_mode = o->dirty_mode,
		.dirty_ring_entries = o->dirty_ring_entries,
		.incoming = o->incoming != NULL,
		.fds = r->fds,
	};
	memcpy(r->cfg.device, o->device, sizeof r->cfg.device);
	r->cfg.ndevices = o->ndevices;
	snprintf(r->qmp_spec, sizeof r->qmp_spec, "%s", o->qmp ? o->qmp : "");
	if (o->kernel != NULL) {
		int rc = read_kernel(o->kernel, kernel, &r->cfg.kernel_len, err);
		if (rc < 0)
			return rc;
		r->cfg.kernel = *kernel;
		r->cfg.kernel_name = o->kernel;
	} else {
		r->cfg.kernel = tern_builtin_guest;
		r->cfg.kernel_len = tern_builtin_guest_size();
		r->cfg.kernel_name = "tern-guest";
	}
	return 0;
}

static int add_devices(struct runner *r, struct tern_error *err)
{
	const struct device_env env = { .vm = &r->vm, .loop = &r->loop, .fds = r->fds,
					.live_update = r->cpr_in != NULL };
	return devices_create(&env, r->cfg.device, r->cfg.ndevices, r->devices, &r->ndevices, err);
}

/* Build the VM from r->cfg and serve it: a cold start, or the new side of
 * a live update (r->cpr_in). */
static int setup(struct runner *r, const char *incoming, int lazy_incoming,
		 struct tern_error *err)
{
	r->cfg.fds = r->fds;
	int rc = vm_create(&r->vm, &r->cfg, err);
	if (rc < 0)
		return rc;
	if ((rc = add_devices(r, err)) < 0)
		return rc;
	if (r->cfg.start_paused && incoming == NULL)
		r->vm.state = VM_STATE_PAUSED;
	vm_migration_init(&r->mig, &r->vm, &r->loop);
	r->mig.on_incoming_done = on_incoming_done;
	r->mig.done_opaque = r;
	r->mig.prefault_ram = !lazy_incoming;
	r->mig.cpr_start = cpr_start;
	r->mig.cpr_opaque = r;
	r->mig.start_paused = r->cfg.start_paused;
	if ((rc = vm_state_register(&r->vm.states, &vm_run_state_type, -1, &r->mig, err)) < 0)
		return rc;
	r->have_mig = 1;
	/* A destination allocates RAM from the start, also while it waits in
	 * defer: the stream may follow migrate-incoming at once. */
	if (incoming != NULL && (rc = vm_migration_prepare_incoming(&r->mig, err)) < 0)
		return rc;

	if (loop_add(&r->loop, r->vm.notify_fd, POLLIN, on_notify, r) < 0 ||
	    loop_add(&r->loop, r->signal_fd, POLLIN, on_signal, r) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	if (r->qmp_spec[0] != '\0') {
		if ((rc = qmp_server_open(&r->qmp, r->qmp_spec, &r->loop, r->fds, err)) < 0)
			return rc;
		r->have_qmp = 1;
		r->vm_qmp = (struct vm_qmp){ .vm = &r->vm, .mig = &r->mig };
		if ((rc = vm_qmp_register(&r->qmp, &r->vm_qmp)) < 0 ||
		    (rc = migration_qmp_register(&r->qmp, &r->mig)) < 0 ||
		    (rc = cpr_qmp_register(&r->qmp, r)) < 0 ||
		    (rc = vm_state_qmp_register(&r->qmp, &r->vm)) < 0)
			return tern_errorf(err, rc, "registering QMP commands");
		/* A live update carries the settings and the clients. */
		if ((rc = vm_state_register(&r->vm.states, &cpr_settings_type, -1, &r->qmp, err)) < 0 ||
		    (rc = vm_state_register(&r->vm.states, &qmp_clients_type, -1, &r->qmp, err)) < 0)
			return rc;
	}
	if (r->cpr_in == NULL && (rc = chardev_wait_for_client(&r->vm.serial, err)) < 0)
		return rc;
	if ((rc = chardev_attach(&r->vm.serial, &r->loop, serial_receive, serial_room, &r->vm)) < 0)
		return tern_errorf(err, rc, "out of memory");
	if (r->cpr_in != NULL && (rc = cpr_apply(r, err)) < 0)
		return rc;
	if ((rc = vm_start(&r->vm, err)) < 0)
		return rc;
	if (r->cpr_in != NULL)
		cpr_resumed(r);
	if (incoming != NULL && strcmp(incoming, "defer") != 0 &&
	    (rc = vm_migration_incoming(&r->mig, incoming, err)) < 0)
		tern_error_prefix(err, "--incoming %s", incoming);
	return rc;
}

/* Where the machine comes from: options, or a live update's state. */
static int start(struct runner *r, const struct run_options *o, struct tern_error *err)
{
	uint8_t *kernel = NULL;
	int rc;
	if (cpr_exec_pending()) { /* exec'ed by a live update: there is no going back */
		rc = cpr_receive_exec(r, err);
		if (rc == 0 && o->cpr_refusal != NULL)
			rc = tern_errorf(err, -EINVAL, "the new tern refused its command line: %s",
					 o->cpr_refusal);
		if (rc == 0)
			rc = setup(r, NULL, 0, err);
		if (rc < 0)
			cpr_failed(r, err);
		return 0;
	}
	if (o->incoming != NULL && strncmp(o->incoming, "cpr:unix:", 9) == 0) {
		rc = cpr_receive_transfer(r, o->incoming + 9, err);
		if (rc == 0)
			rc = setup(r, NULL, 0, err);
		if (rc < 0)
			cpr_failed(r, err); /* the old tern hears why and keeps the guest */
		return rc;
	}
	rc = config_from_options(r, o, &kernel, err);
	if (rc == 0)
		rc = setup(r, o->incoming, o->lazy_incoming, err);
	free(kernel);
	return rc;
}

int run_main(const struct run_options *o)
{
	struct runner *r = calloc(1, sizeof *r);
	if (r == NULL || (r->fds = tern_fdstore_new()) == NULL) {
		fprintf(stderr, "tern: out of memory\n");
		free(r);
		return TERN_EXIT_START_FAILED;
	}
	/* Devices may hold many fds (an ioeventfd-bank): allow what the hard limit does. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	/* SIGINT/SIGTERM arrive through a signalfd; every thread blocks them. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A migration file that reaches RLIMIT_FSIZE must fail the migration
	 * (EFBIG) and leave the guest running, not end the VM. */
	signal(SIGXFSZ, SIG_IGN);
	r->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	loop_init(&r->loop);
	struct tern_error err = { .msg = "" };
	int status;
	if (r->signal_fd < 0) {
		fprintf(stderr, "tern: signalfd: %s\n", strerror(errno));
		status = TERN_EXIT_START_FAILED;
	} else if (start(r, o, &err) < 0) {
		fprintf(stderr, "tern: %s\n", err.msg);
		status = TERN_EXIT_START_FAILED;
	} else {
		while (!vm_exit_requested(&r->vm)) {
			int held = chardev_throttle(&r->vm.serial);
			loop_run_once(&r->loop, held ? THROTTLED_POLL_MS : -1);
		}
		vm_stop_threads(&r->vm);
		cpr_cancel_pending();
		vm_migration_destroy(&r->mig); /* cancels one under way */
		r->have_mig = 0;
		if (r->handed_over) { /* the new tern speaks to the clients now */
			status = 0;
		} else {
			loop_run_once(&r->loop, 0); /* events the threads posted go out first */
			chardev_flush(&r->vm.serial, 1000);
			if (r->have_qmp) {
				vm_qmp_shutdown_event(&r->vm_qmp);
				qmp_server_flush(&r->qmp, 1000);
			}
			status = exit_status(&r->vm);
		}
	}
	if (r->have_qmp) {
		qmp_server_close(&r->qmp);
		vm_qmp_destroy(&r->vm_qmp);
	}
	if (r->have_mig)
		vm_migration_destroy(&r->mig);
	devices_destroy(r->devices, r->ndevices);
	vm_destroy(&r->vm);
	loop_destroy(&r->loop);
	if (r->signal_fd >= 0)
		close(r->signal_fd);
	if (r->cpr_in != NULL) { /* its store is r->fds */
		free(r->cpr_in->section);
		free((void *)r->cpr_in);
	}
	tern_fdstore_free(r->fds);
	free(r);
	return status;
}
