/* Baseline: the list fd registry; see cpr_fd_list.h. */
#include "cpr_fd_list.h"

#include <stdlib.h>
#include <string.h>

int cpr_fd_list_save(struct cpr_fd_list *l, const char *name, int id, int fd)
{
	struct cpr_fd_list_entry *e = malloc(sizeof *e);
	if (e == NULL || (e->name = strdup(name)) == NULL) {
		free(e);
		return -1;
	}
	e->namelen = (int)strlen(name);
	e->id = id;
	e->fd = fd;
	e->next = l->head;
	l->head = e;
	return 0;
}

int cpr_fd_list_find(const struct cpr_fd_list *l, const char *name, int id)
{
	int namelen = (int)strlen(name);
	for (const struct cpr_fd_list_entry *e = l->head; e != NULL; e = e->next)
		if (e->id == id && e->namelen == namelen && strncmp(e->name, name, namelen) == 0)
			return e->fd;
	return -1;
}

void cpr_fd_list_free(struct cpr_fd_list *l)
{
	while (l->head != NULL) {
		struct cpr_fd_list_entry *e = l->head;
		l->head = e->next;
		free(e->name);
		free(e);
	}
}
