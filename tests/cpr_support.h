/* What the live-update tests share (tests/cpr_support.c). */
#ifndef TESTS_CPR_SUPPORT_H
#define TESTS_CPR_SUPPORT_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "../harness/sock.h"
#include "../harness/tern.h"
#include "qmp/qmp_client.h"

#define CPR_BANK_BASE 0xe0000000ULL /* the ioeventfd-bank's doorbells */

/* This build's tern, and tern-cpr-next (a tern whose state version no
 * tern writes), as absolute paths; cpr_setup (a group setup) fills them. */
extern char cpr_tern_path[PATH_MAX], cpr_next_path[PATH_MAX + 16];
int cpr_setup(void **state);

/* A command's return value (a new reference), or NULL. */
json_t *cpr_query(struct qmp_conn *q, const char *cmd);
/* {"name/id": identity} for every kept fd of the process behind q (but
 * QMP clients, which come and go with the test's connections): an
 * eventfd's id, or a file's device and inode. */
json_t *cpr_identities(struct qmp_conn *q, pid_t pid);
/* The RAM memfd's identity in a cpr_identities map. */
const char *cpr_memfd_identity(json_t *ids);

void cpr_set_mode(struct qmp_conn *q, const char *mode, const char *exec_program);
/* query-migrate until the update is no longer active; its final report. */
json_t *cpr_wait_update(struct qmp_conn *q);
/* The report says completed in `mode`, nothing copied, and where the
 * memslots were registered (regions: how many were added at run time). */
void cpr_expect_completed(json_t *report, const char *mode, int regions);
/* No address-space keeper is left a child of pid (it is released once
 * the guest runs again). */
void cpr_expect_keeper_released(pid_t pid);

/* A new `PROGRAM run --incoming cpr:unix:SOCK`, waiting for the guest. */
void cpr_spawn_new(struct proc *p, const char *program, const char *sock);
/* Start a cpr-transfer to the tern waiting on sock. */
void cpr_transfer(struct qmp_conn *q, const char *sock);

/* An idle guest with a serial socket, to ring doorbells through. */
struct cpr_guest {
	struct tern_vm vm;
	struct text_stream serial;
	int fd;
	long at;
	int regions; /* memory regions added at run time */
};

/* Boot an idle guest with `doorbells` doorbells, its serial client, and q
 * connected to its QMP socket. */
void cpr_boot_idle(struct cpr_guest *g, const char *doorbells, struct qmp_conn *q);
/* Update the guest's tern by cpr-exec; it completes. */
void cpr_update_by_exec(struct qmp_conn *q);
/* Move the guest to a new tern by cpr-transfer: the old one leaves, q
 * reaches the new one, and the update completed. */
void cpr_update_by_transfer(struct cpr_guest *g, struct qmp_conn *q);
void cpr_end_guest(struct cpr_guest *g, struct qmp_conn *q);

/* The guest's serial peek and poke, and a doorbell rung by a poke. */
void cpr_poke(struct cpr_guest *g, uint64_t addr, uint64_t value);
uint64_t cpr_peek(struct cpr_guest *g, uint64_t addr);
void cpr_ring(struct cpr_guest *g, uint32_t doorbell);
/* Doorbell `doorbell`'s rings in an x-query-ioeventfd-bank reply. */
json_int_t cpr_bank_rings(json_t *bank, uint32_t doorbell);

#endif
