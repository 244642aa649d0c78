/* Live update, what both modes share on both sides: the state, the
 * update's steps, loading and reporting; see cpr.h. */
#include "cpr/cpr.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpr/cpr_internal.h"
#include "cpr/cpr_settings.h"
#include "cpr/cpr_blob.h"
#include "run.h"
#include "machine/vm_state.h"

struct cpr_process cpr = { .conn = -1, .state_fd = -1, .previous_fd = -1, .guardian_fd = -1,
			   .old_vm_fd = -1, .old_mm = { .pidfd = -1 } };

/* ------------------------------------------------------------ the old process */

static int put_section(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	return cpr_blob_section(ctx, name, data, len);
}

static enum vm_carrier carrier_of(enum vm_migration_mode mode)
{
	return mode == MIG_MODE_CPR_EXEC ? VM_CARRY_CPR_EXEC : VM_CARRY_CPR_TRANSFER;
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
	for (unsigned i = 0; i < r->ndevices; i++)
		snprintf(h.device[h.ndevices++], sizeof h.device[0], "%s", r->devices[i].spec);
	snprintf(h.serial, sizeof h.serial, "%s", r->cfg.serial ? r->cfg.serial : "stdio");
	snprintf(h.qmp, sizeof h.qmp, "%s", r->qmp_spec);
	h.guest_paused = (uint32_t)paused;
	h.stop_ns = stop_ns;
	h.saved_ns = cpr_mono_ns();
	h.fds = r->fds;
	int rc = cpr_blob_begin(out, &h);
	if (rc < 0)
		return tern_errorf(err, rc, "saving the update's state: %s", strerror(-rc));
	/* Everything the machine registered: devices, vCPUs, QMP clients... */
	if ((rc = vm_state_save(&r->vm.states, carrier_of(mode), VM_STATE_PART_ALL, put_section,
				out, err)) < 0)
		return rc;
	if (rc == 0)
		rc = cpr_blob_finish(out);
	return rc < 0 ? tern_errorf(err, rc, "saving the update's state: %s", strerror(-rc)) : 0;
}

/* The update did not happen: the guest is ours and runs on as it was. */
static void update_failed(struct runner *r, const struct tern_error *err, int stopped,
			  int paused)
{
	struct vm_migration *m = &r->mig;
	m->cpr.status = TERN_MIG_FAILED;
	snprintf(m->cpr.error, sizeof m->cpr.error, "%s", err->msg);
	if (stopped && paused)
		vm_set_state(&r->vm, VM_STATE_PAUSED);
	else if (stopped)
		vm_resume(&r->vm);
	if (m->on_status != NULL)
		m->on_status(m->status_opaque, TERN_MIG_FAILED);
}

/* Stop the guest, save the state and hand it over (sock: cpr-transfer's
 * connection to the new tern, which this closes). */
static void stop_and_update(struct runner *r, int sock)
{
	struct vm_migration *m = &r->mig;
	struct tern_error err = { .msg = "" };
	if (r->have_qmp)
		qmp_server_flush(&r->qmp, 1000); /* migrate's reply first */
	int paused = vm_get_state(&r->vm) == VM_STATE_PAUSED;
	uint64_t stop_ns = cpr_mono_ns();
	struct tern_buf blob = { 0 };
	vm_pause_to(&r->vm, VM_STATE_FINISH_MIGRATE);
	int rc = build_state(r, m->cpr.mode, stop_ns, paused, &blob, &err);
	uint64_t deadline_ns = stop_ns + (uint64_t)m->cpr_timeout_ms * 1000000ULL;
	if (rc == 0 && m->cpr.mode == MIG_MODE_CPR_EXEC)
		rc = cpr_exec_update(r, &blob, stop_ns, &err); /* returns only on failure */
	else if (rc == 0)
		rc = cpr_transfer_update(r, sock, &blob, deadline_ns, &err);
	else if (sock >= 0)
		close(sock);
	tern_buf_free(&blob);
	if (rc == 0) { /* the new process runs the guest: leave, sharing nothing more */
		m->cpr.status = TERN_MIG_COMPLETED;
		r->handed_over = 1;
		r->qmp.handed_over = 1;
		r->vm.serial.handed_over = 1;
		chardev_discard_output(&r->vm.serial); /* the new tern delivers it */
		vm_request_exit(&r->vm, VM_EXIT_QUIT, 0, "the guest moved to a new tern");
		return;
	}
	update_failed(r, &err, 1, paused);
}

static void exec_now(void *opaque)
{
	stop_and_update(opaque, -1);
}

/* cpr-transfer: the new tern holds the RAM (or could not be reached). */
static void transfer_ready(struct runner *r, int sock, struct tern_error *err)
{
	if (sock < 0)
		update_failed(r, err, 0, 0);
	else
		stop_and_update(r, sock);
}

void cpr_cancel_pending(void)
{
	cpr_transfer_cancel();
}

int cpr_start(void *runner, const char *uri, struct tern_error *err)
{
	struct runner *r = runner;
	struct vm_migration *m = &r->mig;
	if (m->mode == MIG_MODE_CPR_EXEC && m->cpr_exec_argv[0] == NULL)
		return tern_errorf(err, -EINVAL, "cpr-exec needs cpr-exec-command (set it with "
				   "migrate-set-parameters): the new tern to run");
	int rc = vm_state_check(&r->vm.states, carrier_of(m->mode), err);
	if (rc < 0)
		return rc; /* before anything stops */
	if (m->mode == MIG_MODE_CPR_TRANSFER) {
		if (strncmp(uri, "unix:", 5) != 0 || uri[5] == '\0' ||
		    strlen(uri + 5) >= sizeof cpr.path)
			return tern_errorf(err, -EINVAL, "cpr-transfer goes over a unix socket: use "
					   "unix:PATH, where `tern run --incoming cpr:unix:PATH` "
					   "waits");
		/* The guest runs and QMP is served while the new tern maps the RAM. */
		rc = cpr_transfer_begin(r, uri + 5, transfer_ready);
	} else {
		rc = loop_post(&r->loop, exec_now, r);
	}
	if (rc < 0)
		return tern_errorf(err, rc, "cannot start the update: %s", strerror(-rc));
	memset(&m->cpr, 0, sizeof m->cpr);
	m->cpr.used = 1;
	m->cpr.status = TERN_MIG_ACTIVE;
	m->cpr.mode = m->mode;
	return 0;
}

/* ------------------------------------------------------------ the new process */

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
	for (unsigned i = 0; i < h->ndevices; i++)
		r->cfg.device[i] = h->device[i];
	r->cfg.ndevices = h->ndevices;
	r->cfg.kernel_name = "tern-guest";
	r->cfg.kvm_ready = r->have_kvm_ready ? &r->kvm_ready : NULL;
	r->cfg.defer_pit_reinject = !r->have_kvm_ready; /* cpr-exec: off the stop */
	r->cfg.defer_dirty_sets = 1; /* made in cpr_resumed, off the stop */
	snprintf(r->qmp_spec, sizeof r->qmp_spec, "%s", h->qmp);
	tern_fdstore_free(r->fds);
	r->fds = h->fds;
}

int cpr_take_state(struct runner *r, struct tern_error *err)
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

int cpr_apply(struct runner *r, struct tern_error *err)
{
	const struct cpr_blob_in *in = r->cpr_in;
	enum vm_migration_mode mode = strcmp(in->hdr.mode, "cpr-exec") == 0 ? MIG_MODE_CPR_EXEC
									 : MIG_MODE_CPR_TRANSFER;
	struct vm_state_in st;
	if (vm_state_in_init(&st, &r->vm.states, carrier_of(mode)) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = 0;
	for (unsigned i = 0; i < in->sections && rc == 0; i++) {
		const struct cpr_section *s = &in->section[i];
		rc = vm_state_load_section(&st, s->name, s->data, s->len, err);
	}
	if (rc == 0)
		rc = vm_state_apply(&st, err);
	vm_state_in_free(&st);
	if (rc < 0)
		return rc;
	r->vm.state = in->hdr.guest_paused ? VM_STATE_PAUSED : VM_STATE_PRELAUNCH;
	if (cpr.conn >= 0)
		return cpr_transfer_ready(err);
	return cpr.exec_mode ? cpr_exec_take(err) : 0;
}

void cpr_resumed(struct runner *r)
{
	const struct cpr_header *h = &r->cpr_in->hdr;
	uint64_t now = cpr_mono_ns();
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
		snprintf(c->error, sizeof c->error, "the update did not complete (%s); "
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
	devices_resumed(r->devices, r->ndevices);
	/* The update is over: what a fallback needed goes. */
	if (cpr.exec_mode)
		cpr_exec_finish();
	else
		free(cpr.blob);
	cpr.blob = NULL;
}

_Noreturn void cpr_failed(struct runner *r, const struct tern_error *err)
{
	if (cpr.exec_mode) {
		cpr_exec_fall_back(r, err); /* returns only if there is nothing to go back to */
	} else if (cpr.conn >= 0) {
		char line[TERN_ERROR_MAX + 8];
		int n = snprintf(line, sizeof line, "ERR %s", err->msg);
		for (int i = 4; i < n; i++)
			if (line[i] == '\n')
				line[i] = ' ';
		cpr_write_all(cpr.conn, line, strlen(line));
		cpr_write_all(cpr.conn, "\n", 1);
		fprintf(stderr, "tern: the live update failed, the old tern keeps the guest: %s\n",
			err->msg);
		_exit(TERN_EXIT_START_FAILED);
	}
	if (cpr.guardian_fd >= 0 || cpr.take_refused)
		fprintf(stderr, "tern: the live update failed: %s; the guardian resumes the "
			"guest\n", err->msg);
	else
		fprintf(stderr, "tern: the live update failed and the guest cannot resume: %s\n",
			err->msg);
	_exit(TERN_EXIT_START_FAILED);
}
