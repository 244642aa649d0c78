/*
 * Live migration of this VM: libtern's precopy engine and loader wired to
 * KVM (guest RAM, dirty tracking, vCPU and device state), each in a thread
 * of its own while the main loop keeps serving QMP and the serial port.
 *
 * Outgoing: vm_migration_start connects to the URI and migrates; the guest
 * runs meanwhile.  On success the source stays stopped in `postmigrate`;
 * on failure or cancel it runs on as before.
 *
 * Incoming: a VM created with `incoming` waits in `inmigrate`;
 * vm_migration_incoming listens on (or opens) the URI and loads what
 * arrives.  The guest runs only when the whole stream was good and the
 * source said GO; otherwise `done` hears why and the guest never ran.
 */
#ifndef VMM_VM_MIGRATION_H
#define VMM_VM_MIGRATION_H

#include <pthread.h>
#include <sys/socket.h>

#include "loop.h"
#include "machine/ram_prefault.h"
#include "tern/migration.h"
#include "machine/vm.h"
#include "machine/vm_state.h"
#include "cpr/cpr_types.h"

struct vm_migration {
	struct vm *vm;
	struct loop *loop;
	enum vm_migration_mode mode;
	char *cpr_exec_argv[CPR_EXEC_ARGS_MAX + 1]; /* cpr-exec-command, NULL-terminated */
	uint32_t cpr_timeout_ms;  /* x-cpr-timeout */
	struct cpr_report cpr;
	/* Starts a live update, for migrate in a cpr mode: the runner's
	 * cpr_start, installed by run.c, because live update (cpr/) stands on
	 * the whole runner and this layer must not depend on it. */
	int (*cpr_start)(void *opaque, const char *uri, struct tern_error *err);
	void *cpr_opaque;
	/* For the next migration (migrate-set-capabilities / -parameters). */
	struct tern_mig_params params;
	int events;        /* capability "events": send MIGRATION events */
	int prefault_ram;  /* incoming: populate all RAM in the background (default) */
	/* Hear MIGRATION and MIGRATION_PASS events (main thread), as QEMU 7.2
	 * emits them: setup when migrate or migrate-incoming begins (a bad URI
	 * too: then failed), no device, cancelling, and a pass at every dirty
	 * sync (its dirty-sync-count). */
	void (*on_status)(void *opaque, enum tern_mig_status status);
	void (*on_pass)(void *opaque, uint64_t pass);
	void *status_opaque;
	enum tern_mig_status last_event; /* the last MIGRATION status (sent or not) */
	unsigned event_gen; /* which migration posted events belong to */
	/* QEMU's migration parameters and capabilities that tern takes and
	 * shows but that change nothing here (no TLS, compression or network
	 * card to announce): vmm/qmp/migration_params_qmp.c keeps them, by
	 * its own index, each with its bit in `set` (unset: the default). */
	struct vm_migration_stored {
		uint64_t set;
		int64_t value[40];
	} stored;
	/* Hears how an incoming migration ended (main thread); 0 = running. */
	void (*on_incoming_done)(void *opaque, int rc, const char *error);
	void *done_opaque;

	/* outgoing */
	int out_used;       /* `out` holds a migration (running or finished) */
	int out_thread;     /* its thread is still to be joined */
	pthread_t out_tid;
	struct tern_migration out;
	struct tern_channel out_ch;
	char out_uri[256];
	int stopped_guest;  /* switchover paused a running guest */
	uint64_t passes;    /* dirty syncs of this migration (MIGRATION_PASS) */

	/* incoming */
	int start_paused;   /* --paused: the loaded guest waits for cont */
	int source_paused;  /* the source's guest was paused (run-state) */
	int in_used;
	int in_thread;
	pthread_t in_tid;
	struct tern_incoming in;
	struct tern_channel in_ch;
	int in_listen_fd;
	char in_uri[256];
	/* Where it listens (query-migrate's socket-address); 0: nowhere. */
	struct sockaddr_storage in_addr;
	socklen_t in_addr_len;
	struct vm_state_in state_in;
	struct ram_prefault prefault;
	int in_rc;
	struct tern_error in_err;
};

void vm_migration_init(struct vm_migration *m, struct vm *vm, struct loop *loop);
const char *vm_migration_mode_name(enum vm_migration_mode mode);
/* The reasons no migration or update may start now, as an error; else 0. */
int vm_migration_may_start(struct vm_migration *m, struct tern_error *err);
/* Cancels what runs and waits for it (main thread). */
void vm_migration_destroy(struct vm_migration *m);

/* Is a migration (either way) under way? */
int vm_migration_busy(struct vm_migration *m);
/* What query-migrate shows: the outgoing migration, or else the incoming
 * one; 0 when there has been none. */
int vm_migration_stats(struct vm_migration *m, struct tern_mig_stats *out, int *incoming);

int vm_migration_start(struct vm_migration *m, const char *uri, struct tern_error *err);
void vm_migration_cancel(struct vm_migration *m);
/* migrate-set-parameters while one runs: the limits change at once. */
void vm_migration_params_changed(struct vm_migration *m);

int vm_migration_incoming(struct vm_migration *m, const char *uri, struct tern_error *err);
/* A destination just made (--incoming URI or defer): start allocating
 * guest RAM in the background now, so that a stream that comes right after
 * migrate-incoming (as libvirt sends it) finds as much of it as possible. */
int vm_migration_prepare_incoming(struct vm_migration *m, struct tern_error *err);

/* run_state.c: whether the guest ran, for the destination to follow. */
extern const struct vm_state_type vm_run_state_type;

#endif
