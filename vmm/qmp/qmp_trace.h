/*
 * A record of tern's QMP traffic, for tests: with TERN_QMP_TRACE=FILE in
 * the environment, each QMP server appends to FILE, one JSON object a
 * line, its greeting, every request's command name with the reply it got,
 * and every event (tests/test_qmp_schema.c checks them against QEMU's
 * schema).  Off, it costs one test per message.
 *
 *   {"pid": P, "greeting": {...}}
 *   {"pid": P, "execute": NAME or null, "reply": {...}}
 *   {"pid": P, "event": {"event": NAME, "data": ..., "timestamp": ...}}
 *
 * Every line is one write(2) to a file opened O_APPEND, so the terns of a
 * test (source, destination, the new one of a live update) may share it.
 */
#ifndef VMM_QMP_TRACE_H
#define VMM_QMP_TRACE_H

#include <jansson.h>

struct qmp_server;

/* Open $TERN_QMP_TRACE, if set (a failure to open it is said once on
 * stderr and tracing stays off). */
void qmp_trace_open(struct qmp_server *s);
void qmp_trace_close(struct qmp_server *s);
/* One line {"pid", key: msg} (and "execute": name when key is "reply"). */
void qmp_trace(struct qmp_server *s, const char *key, const char *name, const json_t *msg);

#endif
