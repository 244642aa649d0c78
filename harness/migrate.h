/* Live migrations between tern processes, for tests and benchmarks. */
#ifndef HARNESS_MIGRATE_H
#define HARNESS_MIGRATE_H

#include <jansson.h>

#include "qmp/qmp_client.h"
#include "tern.h"

/* A TCP port nobody listens on right now (on 127.0.0.1), or -1. */
int harness_free_tcp_port(void);

/* migrate-set-capabilities for xbzrle, auto-converge and events. */
int mig_set_capabilities(struct qmp_conn *q, int xbzrle, int auto_converge, int events);
/* Poll query-migrate every poll_ms until the status is completed, failed or
 * cancelled; returns the last query-migrate result (caller frees), or NULL
 * on timeout.  on_progress, if set, sees every result on the way. */
json_t *mig_wait(struct qmp_conn *q, int poll_ms, int timeout_ms,
		 void (*on_progress)(json_t *info, void *opaque), void *opaque);
/* The status string of a query-migrate result ("" if none). */
const char *mig_status(json_t *info);
/* A number in a query-migrate result: "ram.normal", "downtime", ... */
long long mig_number(json_t *info, const char *path);

/* A destination: `tern run --incoming URI [ARGS...]`, NULL-terminated. */
int mig_start_destination(struct tern_vm *vm, const char *uri, ...);

#endif
