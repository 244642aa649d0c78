/* Owner-only listening unix sockets; see unix_listen.h. */
#include "qmp/unix_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK_NAME "s"

int unix_listen_private(const char *what, const char *path, int backlog, struct tern_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path)
		return tern_errorf(err, -ENAMETOOLONG, "%s path %s is longer than %zu characters",
				   what, path, sizeof addr.sun_path - 1);
	/* Beside path, so that the rename stays on one filesystem. */
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".tern-sock-XXXXXX");
	else
		snprintf(dir, sizeof dir, "%.*s/.tern-sock-XXXXXX", (int)(slash - path), path);
	if (mkdtemp(dir) == NULL || chmod(dir, 0700) < 0) /* 0700 even under an odd umask */
		return tern_errorf(err, -errno, "cannot listen on %s %s: cannot create a directory "
				   "beside it: %s (its directory must exist and tern must be able "
				   "to write to it)", what, path, strerror(errno));
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = dfd < 0 || fd < 0 ? -errno : 0;
	/* Through /proc where the private directory's name is too long. */
	if (strlen(dir) + sizeof "/" SOCK_NAME <= sizeof addr.sun_path)
		snprintf(addr.sun_path, sizeof addr.sun_path, "%s/" SOCK_NAME, dir);
	else
		snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/" SOCK_NAME, dfd);
	int bound = rc == 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
	if (rc == 0 && (!bound || fchmodat(dfd, SOCK_NAME, 0600, 0) < 0 || listen(fd, backlog) < 0 ||
			renameat(dfd, SOCK_NAME, AT_FDCWD, path) < 0))
		rc = -errno;
	if (rc < 0 && bound)
		unlinkat(dfd, SOCK_NAME, 0);
	rmdir(dir);
	if (dfd >= 0)
		close(dfd);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return tern_errorf(err, rc, "cannot listen on %s %s: %s", what, path, strerror(-rc));
	}
	return fd;
}
