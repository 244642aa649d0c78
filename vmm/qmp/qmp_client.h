/* A QMP client (jansson), for tern's own commands that drive a running VM
 * (tern migrate, tern qmp) and for tests and benchmarks. */
#ifndef VMM_QMP_CLIENT_H
#define VMM_QMP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

/* Connect to a unix socket, retrying until it exists; fd or -errno. */
int unix_connect_retry(const char *path, int timeout_ms);

struct qmp_conn {
	int fd;
	char *buf;
	size_t len, cap;
	json_t *events; /* events received while waiting for replies */
	json_t *greeting;
};

/* Connect (retrying until the socket appears or timeout), read the greeting
 * and, if negotiate, send qmp_capabilities.  Returns 0 or -errno. */
int qmp_connect(struct qmp_conn *c, const char *path, int negotiate, int timeout_ms);
/* The socket's path in a QMP spec: "unix:PATH" or a bare PATH. */
const char *qmp_socket_path(const char *spec);
void qmp_close(struct qmp_conn *c);
int qmp_send_raw(struct qmp_conn *c, const char *data, size_t len);
/* Next message, or NULL on timeout/EOF. */
json_t *qmp_read(struct qmp_conn *c, int timeout_ms);
/* Execute and return the whole reply ({"return"} or {"error"}); events
 * that arrive first are kept.  args may be NULL; its reference is taken. */
json_t *qmp_execute(struct qmp_conn *c, const char *cmd, json_t *args, int timeout_ms);
/* The "return" member of a successful reply (borrowed), or NULL. */
json_t *qmp_return(json_t *reply);
/* Wait for an event by name (already received or new); caller frees. */
json_t *qmp_wait_event(struct qmp_conn *c, const char *name, int timeout_ms);
/* Execute a command that must succeed and, unless `event` is NULL, wait
 * for that event as well.  Returns 0, or -1 if either did not happen. */
int qmp_do(struct qmp_conn *c, const char *cmd, json_t *args, const char *event,
	   int timeout_ms);

#endif
