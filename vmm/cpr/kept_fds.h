/*
 * The fds a live update carries over, kept in the VM's fd store (see
 * tern/fdstore.h) from the moment they are opened until they are closed,
 * so the store is the one list of them.  A kept fd is not close-on-exec:
 * cpr-exec needs it in the new program, and tern starts no other programs.
 * A NULL store keeps nothing (tests, tools).
 */
#ifndef VMM_KEPT_FDS_H
#define VMM_KEPT_FDS_H

#include <stdint.h>

#include "tern/fdstore.h"

/* Names of the kept fds, by owner. */
#define KEPT_RAM_MEMFD "ram/memfd"
#define KEPT_MEMSLOT_REGION "memslot/region" /* id: the memslot */
#define KEPT_SERIAL_LISTEN "serial/listen"
#define KEPT_SERIAL_CLIENT "serial/client"
#define KEPT_SERIAL_OUT "serial/out"
#define KEPT_SERIAL_IN "serial/in"
#define KEPT_QMP_LISTEN "qmp/listen"
#define KEPT_QMP_CLIENT "qmp/client"
#define KEPT_BANK_DOORBELL "ioeventfd-bank/doorbell"
#define KEPT_BANK_EPOLL "ioeventfd-bank/epoll"

/* Record fd under (name, id) and let it live through exec. */
int kept_fd_add(struct tern_fdstore *s, const char *name, uint32_t id, int fd);
/* Take (name, id) out of the store (the caller closes the fd). */
void kept_fd_forget(struct tern_fdstore *s, const char *name, uint32_t id);
/* The fd kept under (name, id) by the process before an update, or -1. */
int kept_fd_find(const struct tern_fdstore *s, const char *name, uint32_t id);

#endif
