/*
 * Baseline: QEMU's CPR fd registry before seed 000, a list searched from
 * its head on every lookup (QLIST_INSERT_HEAD on save, a walk comparing
 * name length, name and id on find), re-expressed here.
 */
#ifndef BASELINE_CPR_FD_LIST_H
#define BASELINE_CPR_FD_LIST_H

#include <stdint.h>

struct cpr_fd_list_entry {
	char *name;
	int namelen;
	int id;
	int fd;
	struct cpr_fd_list_entry *next;
};

struct cpr_fd_list {
	struct cpr_fd_list_entry *head;
};

int cpr_fd_list_save(struct cpr_fd_list *l, const char *name, int id, int fd);
int cpr_fd_list_find(const struct cpr_fd_list *l, const char *name, int id);
void cpr_fd_list_free(struct cpr_fd_list *l);

#endif
