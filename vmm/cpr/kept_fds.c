/* Kept fds; see kept_fds.h. */
#include "cpr/kept_fds.h"

#include <errno.h>
#include <fcntl.h>

int kept_fd_add(struct tern_fdstore *s, const char *name, uint32_t id, int fd)
{
	if (s == NULL)
		return 0;
	int rc = tern_fdstore_add(s, name, id, fd, NULL);
	if (rc == 0 && fcntl(fd, F_SETFD, 0) < 0)
		rc = -EBADF;
	return rc;
}

void kept_fd_forget(struct tern_fdstore *s, const char *name, uint32_t id)
{
	if (s != NULL)
		tern_fdstore_remove(s, name, id);
}

int kept_fd_find(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	if (s == NULL)
		return -1;
	int fd = tern_fdstore_find(s, name, id);
	return fd >= 0 ? fd : -1;
}
