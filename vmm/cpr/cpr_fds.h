/*
 * cpr-transfer's fd passing: every fd of the store over a unix socket
 * (SCM_RIGHTS, FDS_PER_MESSAGE a message, each batch with the sender's
 * numbers for its fds), and on the new side the loaded store mapped from
 * the sender's numbers onto the fds that arrived.
 */
#ifndef VMM_CPR_FDS_H
#define VMM_CPR_FDS_H

#include <stdint.h>

#include "tern/error.h"
#include "tern/fdstore.h"

#define FDS_PER_MESSAGE 250

/* The store's fds in walk order, as they are sent. */
struct cpr_fd_list {
	int *fd;
	uint32_t n, cap;
};

int cpr_fds_collect(const struct tern_fdstore *s, struct cpr_fd_list *l, struct tern_error *err);
void cpr_fd_list_free(struct cpr_fd_list *l);
/* 0 or -errno. */
int cpr_fds_send(int sock, const struct cpr_fd_list *l);

/* One fd that arrived: its number in the sender and here. */
struct cpr_fd_pair {
	int32_t sender;
	int local;
};

/* Receive exactly n fds into pair[0..n). */
int cpr_fds_receive(int sock, struct cpr_fd_pair *pair, uint32_t n, struct tern_error *err);
/* Point every entry of a store loaded from the sender at the fd that
 * arrived for it (sorts pair); an entry whose fd was not sent is refused. */
int cpr_fds_remap(struct tern_fdstore *s, struct cpr_fd_pair *pair, uint32_t n,
		  struct tern_error *err);

#endif
