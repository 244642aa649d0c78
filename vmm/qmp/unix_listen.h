/* A listening unix socket that only its owner may connect to. */
#ifndef VMM_UNIX_LISTEN_H
#define VMM_UNIX_LISTEN_H

#include "tern/error.h"

/*
 * Listen at path (shorter than sun_path) with mode 0600, whatever the
 * umask, replacing what is there (a socket a previous run left).  There is
 * no moment at which others could connect: the socket is bound in a fresh
 * 0700 directory beside path, given its mode there, then renamed into
 * place (fchmod does not work on a socket before bind, and chmod after
 * bind, or a umask around it, would leave a window or touch other
 * threads).  The fd (close-on-exec, non-blocking), or -errno with err
 * (`what`, e.g. "QMP socket", names it there).
 */
int unix_listen_private(const char *what, const char *path, int backlog,
			struct tern_error *err);

#endif
