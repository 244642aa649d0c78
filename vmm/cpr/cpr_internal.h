/*
 * Inside live update: what cpr.c (the state and the steps both modes
 * share), cpr_exec.c and cpr_transfer.c share.  Not for the rest
 * of the VMM, which sees only cpr/cpr.h.
 */
#ifndef VMM_CPR_INTERNAL_H
#define VMM_CPR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "runner.h"
#include "tern/mmkeeper.h"
#include "tern/vmstate.h"

#define CPR_HANDSHAKE_TIMEOUT_MS 10000

/* What one process knows of the update under way (one per process). */
struct cpr_process {
	char path[108];   /* cpr-transfer: the new process's socket */
	int conn;         /* cpr-transfer: the socket between the two */
	int state_fd;     /* cpr-exec: the state memfd, until the guest runs */
	int previous_fd;  /* cpr-exec: the binary to fall back to */
	int guardian_fd;  /* cpr-exec: the guardian's socket, until it said GO */
	int taken;        /* cpr-exec: the guardian said GO: the guest is ours */
	int take_refused; /* cpr-exec: too late, the guardian falls back */
	int old_vm_fd;    /* cpr-exec: the old KVM VM, closed once the guest runs */
	struct tern_mm_keeper old_mm; /* cpr-exec: the old address space, released then too */
	uint8_t *blob;
	size_t blob_len;
	int exec_mode;
};
extern struct cpr_process cpr;

uint64_t cpr_mono_ns(void);
int cpr_write_all(int fd, const void *data, size_t len);
int cpr_read_all(int fd, void *data, size_t len);
/* One line from the peer (up to len - 1 bytes), waiting at most timeout_ms. */
int cpr_read_line(int fd, char *buf, size_t len, int timeout_ms);
/* The fd number in environment variable name, or -1. */
int cpr_env_fd(const char *name);
void cpr_set_env_fd(const char *name, int fd);

/* The new process's common step: parse the state and take the machine's
 * shape, store and settings from it. */
int cpr_take_state(struct runner *r, struct tern_error *err);

/* cpr-exec, old process: exec cpr-exec-command with the state under a
 * guardian; returns only on failure, with the guest still ours. */
int cpr_exec_update(struct runner *r, const struct tern_buf *blob, uint64_t stop_ns,
		    struct tern_error *err);
/* cpr-exec, new process: may this process resume the guest?  (Asks the
 * guardian, where there is one.) */
int cpr_exec_take(struct tern_error *err);
/* cpr-exec, new process: the guest runs: release what a fallback needed. */
void cpr_exec_finish(void);
/* cpr-exec, new process: fall back to the previous binary (returns only
 * if there is none to run). */
void cpr_exec_fall_back(struct runner *r, const struct tern_error *err);

/* Where tests make a new tern crash or hang (cpr_fault.c). */
void cpr_fault_point(void);

/* cpr-transfer, old process: reach the new tern and offer the RAM, in a
 * thread while the guest runs; then `ready` runs on the main loop with the
 * socket (or a negative errno and err). */
int cpr_transfer_begin(struct runner *r, const char *path,
		       void (*ready)(struct runner *r, int sock, struct tern_error *err));
/* ... then, in the stop: hand over (0) or keep the guest.  Closes sock. */
int cpr_transfer_update(struct runner *r, int sock, const struct tern_buf *blob,
			uint64_t deadline_ns, struct tern_error *err);
/* cpr-transfer, new process: the state is loaded; may it resume? */
int cpr_transfer_ready(struct tern_error *err);
/* Join a transfer's connecting thread that is still running (exit). */
void cpr_transfer_cancel(void);

#endif
