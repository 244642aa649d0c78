/*
 * Live update (CPR): replace the running tern with a new binary under a
 * running guest.  Guest RAM stays in its memfd and is never copied; the
 * vCPU and device state and the fd store move; see docs/cpr.md.
 *
 *   cpr-exec      the running tern execs cpr-exec-command under a guardian
 *                 (tern/cprguard.h) that holds the state and every fd; the
 *                 new tern fetches the state from it ($TERN_CPR_GUARDIAN)
 *                 and asks it before it resumes.  A new tern that cannot load
 *                 the state execs the previous binary, which resumes; a
 *                 program that ends, or does not take the guest within
 *                 x-cpr-timeout, is stopped and the guardian resumes it.
 *   cpr-transfer  a new `tern run --incoming cpr:unix:PATH` receives the
 *                 state and every fd (SCM_RIGHTS) over the socket; the old
 *                 one commits only when the new one is ready, else resumes.
 */
#ifndef VMM_CPR_H
#define VMM_CPR_H

#include "runner.h"
#include "tern/error.h"

/* vm_migration's hook: start an update in the mode set (main thread). */
int cpr_start(void *runner, const char *uri, struct tern_error *err);

/* An update whose new tern is still being reached ends (the VM exits). */
void cpr_cancel_pending(void);

/* New process: is this an exec'ed update? */
int cpr_exec_pending(void);
/* New process: take in the state (and fds) and fill r->cfg, r->fds, r->cpr_in. */
int cpr_receive_exec(struct runner *r, struct tern_error *err);
int cpr_receive_transfer(struct runner *r, const char *path, struct tern_error *err);
/* The VM is built from the state: load vCPU and device state; for
 * cpr-transfer, agree with the old process that this one takes over. */
int cpr_apply(struct runner *r, struct tern_error *err);
/* The guest runs again: finish the report, register doorbells with KVM. */
void cpr_resumed(struct runner *r);
/* The update cannot complete here: fall back (cpr-exec) or tell the old
 * process (cpr-transfer); never returns. */
_Noreturn void cpr_failed(struct runner *r, const struct tern_error *err);

#endif
