/* Live migration of this VM; see migration.h. */
#include "migration/vm_migration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- shared */

static size_t ram_regions(struct vm *vm, struct tern_mig_region *out, size_t max, int dirty)
{
	const struct guest_ram *ram = &vm->ram;
	size_t n = 0;
	for (unsigned i = 0; i < ram->slots && n < max; i++, n++)
		out[n] = (struct tern_mig_region){
			.gpa = ram->slot[i].gpa,
			.size = ram->slot[i].size,
			.host = ram->host + ram->slot[i].offset,
			.dirty = dirty ? vm->dirty.set[i] : NULL,
		};
	return n;
}

struct status_event {
	struct vm_migration *m;
	enum tern_mig_status status;
	uint64_t pass; /* a MIGRATION_PASS rather than a status */
	unsigned gen;  /* m->event_gen when posted: a later migration drops it */
};

static int finished(enum tern_mig_status s)
{
	return s == TERN_MIG_COMPLETED || s == TERN_MIG_FAILED || s == TERN_MIG_CANCELLED;
}

/* With the events capability, as in QEMU (main thread).  migrate_cancel's
 * `cancelling` and the thread's `cancelled` are posted from two threads:
 * whichever comes first, cancelling goes out once, before cancelled, and
 * not at all after the end. */
static void emit_status(struct vm_migration *m, enum tern_mig_status status)
{
	if (status == TERN_MIG_CANCELLING &&
	    (m->last_event == TERN_MIG_CANCELLING || finished(m->last_event)))
		return;
	if (status == TERN_MIG_CANCELLED && m->last_event != TERN_MIG_CANCELLING)
		emit_status(m, TERN_MIG_CANCELLING);
	m->last_event = status;
	if (m->events && m->on_status != NULL)
		m->on_status(m->status_opaque, status);
}

static void deliver_status(void *opaque)
{
	struct status_event *e = opaque;
	int current = e->gen == e->m->event_gen; /* not a late one of an earlier migration */
	if (current && e->pass == 0)
		emit_status(e->m, e->status);
	else if (current && e->m->events && e->m->on_pass != NULL)
		e->m->on_pass(e->m->status_opaque, e->pass);
	free(e);
}

/* A migration thread's status change (or dirty sync) becomes a MIGRATION
 * (or MIGRATION_PASS) event on the main thread, in order. */
static void post_event(struct vm_migration *m, enum tern_mig_status status, uint64_t pass)
{
	struct status_event *e = malloc(sizeof *e);
	if (e == NULL)
		return;
	*e = (struct status_event){ m, status, pass, m->event_gen };
	if (loop_post(m->loop, deliver_status, e) < 0)
		free(e);
}

static void post_status(struct vm_migration *m, enum tern_mig_status status)
{
	post_event(m, status, 0);
}

/* ---------------------------------------------------------------- outgoing */

static size_t src_regions(void *o, struct tern_mig_region *out, size_t max)
{
	struct vm_migration *m = o;
	return ram_regions(m->vm, out, max, 1);
}

/* RAM never written is a hole in the memfd: no need to read it. */
static uint64_t src_next_data(void *o, size_t r, uint64_t offset)
{
	struct vm_migration *m = o;
	const struct guest_ram *ram = &m->vm->ram;
	const struct ram_slot *s = &ram->slot[r];
	if (ram->memfd < 0)
		return offset;
	off_t at = lseek(ram->memfd, (off_t)(s->offset + offset), SEEK_DATA);
	if (at < 0)
		return errno == ENXIO ? s->size : offset;
	uint64_t rel = (uint64_t)at - s->offset;
	return rel > s->size ? s->size : rel;
}

static int src_dirty_start(void *o, struct tern_error *err)
{
	struct vm_migration *m = o;
	return dirty_tracker_start(&m->vm->dirty, err);
}

static int src_dirty_sync(void *o, struct tern_error *err)
{
	struct vm_migration *m = o;
	int rc = dirty_tracker_sync(&m->vm->dirty, err);
	if (rc == 0) /* the engine counts it in dirty-sync-count likewise */
		post_event(m, TERN_MIG_NONE, ++m->passes);
	return rc;
}

static void src_dirty_stop(void *o)
{
	struct vm_migration *m = o;
	dirty_tracker_stop(&m->vm->dirty);
}

static int src_stop(void *o, struct tern_error *err)
{
	struct vm_migration *m = o;
	m->stopped_guest = vm_pause_to(m->vm, VM_STATE_FINISH_MIGRATE);
	if (vm_exit_requested(m->vm))
		return tern_errorf(err, -ESHUTDOWN, "the VM is shutting down");
	return 0;
}

static void src_resume(void *o)
{
	struct vm_migration *m = o;
	if (m->stopped_guest)
		vm_resume(m->vm);
	else if (vm_get_state(m->vm) == VM_STATE_FINISH_MIGRATE)
		vm_set_state(m->vm, VM_STATE_PAUSED); /* the user had paused it */
	m->stopped_guest = 0;
}

static void src_moved(void *o)
{
	struct vm_migration *m = o;
	vm_set_state(m->vm, VM_STATE_POSTMIGRATE); /* the guest lives on there */
}

/* A file is carried as a migration is, but a device may tell them apart. */
static enum vm_carrier carrier_of(const char *uri)
{
	return strncmp(uri, "file:", 5) == 0 ? VM_CARRY_FILE : VM_CARRY_MIGRATION;
}

static int src_save_state(void *o, struct tern_stream_writer *w, struct tern_error *err)
{
	struct vm_migration *m = o;
	/* A guest that asked to end (exit port, crash) ends here: its state
	 * is that of a machine going away, not one to carry on elsewhere. */
	if (vm_exit_requested(m->vm))
		return tern_errorf(err, -ESHUTDOWN, "the guest shut down during the migration");
	return vm_state_save_stream(&m->vm->states, carrier_of(m->out_uri), VM_STATE_PART_REST, w,
				    err);
}

static int src_save_setup(void *o, struct tern_stream_writer *w, struct tern_error *err)
{
	struct vm_migration *m = o;
	return vm_state_save_stream(&m->vm->states, carrier_of(m->out_uri), VM_STATE_PART_EARLY, w,
				    err);
}

static void src_throttle(void *o, unsigned percent)
{
	struct vm_migration *m = o;
	vm_set_throttle(m->vm, percent);
}

/* setup went out when migrate began, and QEMU 7.2 has no `device` event
 * unless pause-before-switchover (which tern does not offer) is on: the
 * stop happens while active. */
static void on_source_status(void *o, enum tern_mig_status status)
{
	if (status != TERN_MIG_SETUP && status != TERN_MIG_DEVICE)
		post_status(o, status);
}

static void on_dest_status(void *o, enum tern_mig_status status)
{
	post_status(o, status);
}

static const struct tern_mig_source_ops source_ops = {
	.regions = src_regions,
	.next_data = src_next_data,
	.dirty_start = src_dirty_start,
	.dirty_sync = src_dirty_sync,
	.dirty_stop = src_dirty_stop,
	.stop = src_stop,
	.resume = src_resume,
	.moved = src_moved,
	.save_setup = src_save_setup,
	.save_state = src_save_state,
	.throttle = src_throttle,
	.event = on_source_status,
};

static void out_finished(void *opaque)
{
	struct vm_migration *m = opaque;
	if (!m->out_thread)
		return; /* already joined by vm_migration_destroy */
	pthread_join(m->out_tid, NULL);
	m->out_thread = 0;
	tern_channel_close(&m->out_ch);
}

/* Record a failure that happened before the engine ran. */
static void out_fail_early(struct vm_migration *m, const struct tern_error *err)
{
	pthread_mutex_lock(&m->out.lock);
	m->out.stats.status = TERN_MIG_FAILED;
	snprintf(m->out.stats.error, sizeof m->out.stats.error, "%s", err->msg);
	pthread_mutex_unlock(&m->out.lock);
	post_status(m, TERN_MIG_FAILED);
}

static void *out_main(void *arg)
{
	struct vm_migration *m = arg;
	struct tern_error err = { .msg = "" };
	if (tern_channel_connect(&m->out_ch, m->out_uri, &err) < 0) {
		m->out_ch.fd = -1;
		out_fail_early(m, &err);
	} else if ((__atomic_store_n(&m->out.ch, &m->out_ch, __ATOMIC_SEQ_CST),
		    __atomic_load_n(&m->out.cancel, __ATOMIC_SEQ_CST))) {
		/* Published before the check: a cancel either sees the channel
		 * (and wakes it) or is seen here. */
		struct tern_error why = { .msg = "cancelled" };
		tern_channel_abandon(&m->out_ch, &why); /* a file just made is removed */
		pthread_mutex_lock(&m->out.lock);
		m->out.stats.status = TERN_MIG_CANCELLED;
		snprintf(m->out.stats.error, sizeof m->out.stats.error, "%s", why.msg);
		pthread_mutex_unlock(&m->out.lock);
		post_status(m, TERN_MIG_CANCELLED);
	} else {
		tern_migration_run(&m->out);
	}
	if (loop_post(m->loop, out_finished, m) < 0)
		fprintf(stderr, "tern: cannot reach the main loop to finish the migration\n");
	return NULL;
}

const char *vm_migration_mode_name(enum vm_migration_mode mode)
{
	static const char *const names[] = { "normal", "cpr-exec", "cpr-transfer" };
	return names[mode];
}

int vm_migration_may_start(struct vm_migration *m, struct tern_error *err)
{
	if (vm_migration_busy(m) || (m->cpr.used && m->cpr.status == TERN_MIG_ACTIVE))
		return tern_errorf(err, -EBUSY, "There's a migration process in progress");
	enum vm_state st = vm_get_state(m->vm);
	if (st == VM_STATE_INMIGRATE)
		return tern_errorf(err, -EBUSY, "Guest is waiting for an incoming migration");
	if (st == VM_STATE_SHUTDOWN || vm_exit_requested(m->vm))
		return tern_errorf(err, -EINVAL, "the VM has shut down");
	if (m->vm->dirty.active)
		return tern_errorf(err, -EBUSY, "dirty-page tracking is in use (calc-dirty-rate "
				   "or x-dirty-tracking): wait for it to end");
	if (m->vm->dirty.set == NULL)
		return tern_errorf(err, -ENOMEM, "dirty-page tracking is unavailable: its sets "
				   "could not be made (see tern's log)");
	return 0;
}

int vm_migration_start(struct vm_migration *m, const char *uri, struct tern_error *err)
{
	int rc = vm_migration_may_start(m, err);
	if (rc < 0)
		return rc;
	if (m->mode != MIG_MODE_NORMAL) {
		if (m->cpr_start == NULL)
			return tern_errorf(err, -ENOTSUP, "live update is not available here");
		return m->cpr_start(m->cpr_opaque, uri, err);
	}
	m->cpr.used = 0; /* query-migrate shows this migration now */
	/* A device that cannot go refuses now, before anything stops or
	 * begins (as QEMU's blockers: no event). */
	if ((rc = vm_state_check(&m->vm->states, carrier_of(uri), err)) < 0)
		return rc;
	if (m->out_used)
		tern_migration_destroy(&m->out);
	/* The engine has no channel until connected: a cancel meanwhile only
	 * sets the flag, which the thread checks once connected. */
	tern_migration_init(&m->out, &m->params, &source_ops, m, NULL);
	m->out.stats.status = TERN_MIG_SETUP;
	m->out_used = 1;
	m->stopped_guest = 0;
	m->passes = 0;
	m->event_gen++;
	emit_status(m, TERN_MIG_SETUP);
	/* As QEMU 7.2: a URI it cannot use is a migration that failed in
	 * setup (setup, then failed, and query-migrate says so). */
	if (strlen(uri) >= sizeof m->out_uri)
		rc = tern_errorf(err, -ENAMETOOLONG, "the URI is too long");
	else if (strncmp(uri, "tcp:", 4) != 0 && strncmp(uri, "unix:", 5) != 0 &&
		 strncmp(uri, "file:", 5) != 0 && strncmp(uri, "fd:", 3) != 0)
		rc = tern_errorf(err, -EINVAL, "unknown migration URI '%s' (use tcp:HOST:PORT, "
				 "unix:PATH, file:PATH or fd:N)", uri);
	if (rc == 0) {
		snprintf(m->out_uri, sizeof m->out_uri, "%s", uri);
		rc = pthread_create(&m->out_tid, NULL, out_main, m);
		if (rc != 0)
			rc = tern_errorf(err, -rc, "starting the migration thread: %s",
					 strerror(rc));
	}
	if (rc < 0) {
		m->out.stats.status = TERN_MIG_FAILED;
		snprintf(m->out.stats.error, sizeof m->out.stats.error, "%s", err->msg);
		emit_status(m, TERN_MIG_FAILED);
		return rc;
	}
	m->out_thread = 1;
	return 0;
}

void vm_migration_cancel(struct vm_migration *m)
{
	if (!m->out_used || !m->out_thread)
		return;
	struct tern_mig_stats before, after;
	tern_migration_get_stats(&m->out, &before);
	tern_migration_cancel(&m->out);
	tern_migration_get_stats(&m->out, &after);
	if (before.status != TERN_MIG_CANCELLING && after.status == TERN_MIG_CANCELLING)
		post_status(m, TERN_MIG_CANCELLING); /* after what the thread posted: in order */
}

void vm_migration_params_changed(struct vm_migration *m)
{
	if (m->out_used && m->out_thread)
		tern_migration_set_params(&m->out, &m->params);
}

/* ---------------------------------------------------------------- incoming */

static size_t dst_regions(void *o, struct tern_mig_region *out, size_t max)
{
	struct vm_migration *m = o;
	return ram_regions(m->vm, out, max, 0);
}

static void dst_populate(void *o, uint8_t *host, size_t len)
{
	struct vm_migration *m = o;
	ram_prefault_range(&m->prefault, host, len);
}

static int dst_load_section(void *o, const char *name, const uint8_t *data, size_t len,
			    struct tern_error *err)
{
	struct vm_migration *m = o;
	return vm_state_load_section(&m->state_in, name, data, len, err);
}

static int dst_finish(void *o, struct tern_error *err)
{
	struct vm_migration *m = o;
	return vm_state_apply(&m->state_in, err);
}

/* Run the guest, unless it was paused on the source or this tern was
 * started paused (then `cont` runs it, as QEMU's -S). */
static void dst_run(void *o)
{
	struct vm_migration *m = o;
	if (m->source_paused || m->start_paused)
		vm_set_state(m->vm, VM_STATE_PAUSED);
	else
		vm_resume(m->vm);
}

static const struct tern_mig_dest_ops dest_ops = {
	.regions = dst_regions,
	.populate = dst_populate,
	.load_section = dst_load_section,
	.finish = dst_finish,
	.run = dst_run,
	.event = on_dest_status,
};

static void in_finished(void *opaque)
{
	struct vm_migration *m = opaque;
	if (!m->in_thread)
		return;
	pthread_join(m->in_tid, NULL);
	m->in_thread = 0;
	tern_channel_close(&m->in_ch);
	vm_state_in_free(&m->state_in);
	ram_prefault_destroy(&m->prefault);
	if (m->on_incoming_done != NULL)
		m->on_incoming_done(m->done_opaque, m->in_rc, m->in_err.msg);
}

static void *in_main(void *arg)
{
	struct vm_migration *m = arg;
	m->in_err.msg[0] = '\0';
	int rc = tern_channel_accept(&m->in_ch, m->in_uri, m->in_listen_fd, &m->in_err);
	if (m->in_listen_fd >= 0) {
		close(m->in_listen_fd); /* one source per incoming migration */
		m->in_listen_fd = -1;
	}
	if (rc == 0) {
		__atomic_store_n(&m->in.ch, &m->in_ch, __ATOMIC_SEQ_CST);
		rc = tern_incoming_run(&m->in, &m->in_err);
	} else {
		m->in_ch.fd = -1;
		pthread_mutex_lock(&m->in.lock);
		m->in.stats.status = TERN_MIG_FAILED;
		snprintf(m->in.stats.error, sizeof m->in.stats.error, "%s", m->in_err.msg);
		pthread_mutex_unlock(&m->in.lock);
		post_status(m, TERN_MIG_FAILED);
	}
	m->in_rc = rc;
	if (loop_post(m->loop, in_finished, m) < 0)
		fprintf(stderr, "tern: cannot reach the main loop to finish the migration\n");
	return NULL;
}

int vm_migration_incoming(struct vm_migration *m, const char *uri, struct tern_error *err)
{
	if (vm_get_state(m->vm) != VM_STATE_INMIGRATE)
		return tern_errorf(err, -EINVAL, "'-incoming' was not specified on the command line");
	if (m->in_used)
		return tern_errorf(err, -EBUSY, "The incoming migration has already been started");
	if (strlen(uri) >= sizeof m->in_uri)
		return tern_errorf(err, -ENAMETOOLONG, "the URI is too long");
	int rc = vm_state_in_init(&m->state_in, &m->vm->states, carrier_of(uri));
	if (rc < 0)
		return tern_errorf(err, rc, "out of memory");
	/* RAM will be written: bring it in while the source gets going (if it
	 * did not begin when the destination was made). */
	if (m->prefault.done == NULL && (rc = vm_migration_prepare_incoming(m, err)) < 0) {
		vm_state_in_free(&m->state_in);
		return rc;
	}
	/* Listen now, so that the source may connect as soon as this returns. */
	if ((rc = tern_channel_listen(uri, &m->in_listen_fd, err)) < 0) {
		ram_prefault_destroy(&m->prefault);
		vm_state_in_free(&m->state_in);
		return rc;
	}
	m->in_addr_len = sizeof m->in_addr;
	if (m->in_listen_fd < 0 ||
	    getsockname(m->in_listen_fd, (struct sockaddr *)&m->in_addr, &m->in_addr_len) < 0)
		m->in_addr_len = 0;
	snprintf(m->in_uri, sizeof m->in_uri, "%s", uri);
	/* The stats lock exists before the loader does: query-migrate may ask. */
	tern_incoming_init(&m->in, &dest_ops, m, NULL);
	m->in.stats.status = TERN_MIG_SETUP;
	m->in_used = 1;
	emit_status(m, TERN_MIG_SETUP);
	rc = pthread_create(&m->in_tid, NULL, in_main, m);
	if (rc != 0) {
		if (m->in_listen_fd >= 0)
			close(m->in_listen_fd);
		m->in_listen_fd = -1;
		m->in.stats.status = TERN_MIG_FAILED;
		ram_prefault_destroy(&m->prefault);
		vm_state_in_free(&m->state_in);
		return tern_errorf(err, -rc, "starting the incoming migration thread: %s",
				   strerror(rc));
	}
	m->in_thread = 1;
	return 0;
}

int vm_migration_prepare_incoming(struct vm_migration *m, struct tern_error *err)
{
	int rc = ram_prefault_init(&m->prefault, &m->vm->ram, err);
	if (rc == 0 && m->prefault_ram)
		rc = ram_prefault_start(&m->prefault, err);
	if (rc < 0)
		ram_prefault_destroy(&m->prefault);
	return rc;
}

/* ---------------------------------------------------------------- common */

void vm_migration_init(struct vm_migration *m, struct vm *vm, struct loop *loop)
{
	memset(m, 0, sizeof *m);
	m->vm = vm;
	m->loop = loop;
	m->in_listen_fd = -1;
	m->out_ch.fd = -1;
	m->in_ch.fd = -1;
	m->prefault_ram = 1;
	m->cpr_timeout_ms = CPR_TIMEOUT_DEFAULT_MS;
	tern_mig_params_default(&m->params);
}

void vm_migration_destroy(struct vm_migration *m)
{
	for (unsigned i = 0; m->cpr_exec_argv[i] != NULL; i++) {
		free(m->cpr_exec_argv[i]);
		m->cpr_exec_argv[i] = NULL;
	}
	if (m->out_thread) {
		tern_migration_cancel(&m->out);
		pthread_join(m->out_tid, NULL);
		m->out_thread = 0;
		tern_channel_close(&m->out_ch);
	}
	if (m->out_used)
		tern_migration_destroy(&m->out);
	if (m->in_thread) {
		/* Wake it wherever it waits: accept, a read, the wait for GO. */
		if (m->in_listen_fd >= 0)
			shutdown(m->in_listen_fd, SHUT_RDWR);
		tern_channel_cancel(&m->in_ch);
		pthread_join(m->in_tid, NULL);
		m->in_thread = 0;
		tern_channel_close(&m->in_ch);
		vm_state_in_free(&m->state_in);
		ram_prefault_destroy(&m->prefault);
	}
	ram_prefault_destroy(&m->prefault); /* a destination that never got its stream */
	if (m->in_listen_fd >= 0)
		close(m->in_listen_fd);
	if (m->in_used)
		tern_incoming_destroy(&m->in);
}

int vm_migration_busy(struct vm_migration *m)
{
	struct tern_mig_stats s;
	if (m->out_used) {
		tern_migration_get_stats(&m->out, &s);
		if (s.status == TERN_MIG_SETUP || s.status == TERN_MIG_ACTIVE ||
		    s.status == TERN_MIG_DEVICE || s.status == TERN_MIG_CANCELLING)
			return 1;
	}
	return m->out_thread || m->in_thread;
}

int vm_migration_stats(struct vm_migration *m, struct tern_mig_stats *out, int *incoming)
{
	*incoming = 0;
	if (m->out_used) {
		tern_migration_get_stats(&m->out, out);
		return 1;
	}
	if (m->in_used) {
		tern_incoming_get_stats(&m->in, out);
		*incoming = 1;
		return 1;
	}
	return 0;
}
