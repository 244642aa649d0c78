/*
 * A QMP server on a unix socket, speaking QEMU's protocol: a greeting,
 * capabilities negotiation, {"execute", "arguments", "id"} requests
 * answered with {"return"} or {"error": {"class", "desc"}}, and
 * asynchronous events.  Several clients may be connected at once; input
 * from them is untrusted and never hurts the VM.
 */
#ifndef VMM_QMP_H
#define VMM_QMP_H

#include <jansson.h>
#include <stdint.h>

#include "loop.h"
#include "machine/vm_state.h"
#include "qmp/qmp_framer.h"
#include "tern/error.h"
#include "tern/fdstore.h"

#define QMP_MAX_CLIENTS 16
#define QMP_MAX_OUTPUT (4u << 20)
#define QMP_NEGOTIATE_MS 10000 /* from connecting to qmp_capabilities */

enum qmp_arg_type { QMP_INT, QMP_BOOL, QMP_STR, QMP_NUMBER, QMP_OBJECT, QMP_ANY };

struct qmp_arg {
	const char *name;
	enum qmp_arg_type type;
	int optional;
};

/* A handler returns 0 with *ret set (or NULL for {}), or a negative errno
 * with a message in *err, sent as a GenericError. */
typedef int (*qmp_handler)(void *opaque, json_t *args, json_t **ret, struct tern_error *err);

struct qmp_command {
	const char *name;
	qmp_handler fn;
	const struct qmp_arg *args; /* terminated by a NULL name; NULL: none */
};

struct qmp_client {
	int fd;
	int64_t handle;
	int negotiated;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC: dropped if not negotiated by then */
	struct qmp_framer framer;
	char *out;
	size_t out_len, out_cap;
};

#define QMP_MAX_TABLES 8

struct qmp_server {
	int listen_fd;
	struct tern_fdstore *store; /* keeps the socket and clients (may be NULL) */
	int handed_over;            /* a live update took the socket: leave its path */
	char path[108];
	struct loop *loop;
	int64_t listen_handle;
	int timer_fd; /* fires at the first negotiation deadline; -1: none */
	int64_t timer_handle;
	unsigned negotiate_ms; /* QMP_NEGOTIATE_MS; tests shorten it */
	struct qmp_client client[QMP_MAX_CLIENTS];
	int tracing, trace_fd; /* TERN_QMP_TRACE (qmp_trace.h) */
	unsigned tables;
	struct {
		const struct qmp_command *cmds;
		void *opaque;
	} table[QMP_MAX_TABLES];
};

/* spec: "unix:PATH" (listening, mode 0600: unix_listen_private).  The
 * socket and clients are kept in `store`; those a previous process kept
 * there (a live update) are served as they are.  A client that has not
 * negotiated within negotiate_ms is dropped, and those negotiating hold at
 * most QMP_MAX_CLIENTS - 1 slots (docs/qmp.md). */
int qmp_server_open(struct qmp_server *s, const char *spec, struct loop *loop,
		    struct tern_fdstore *store, struct tern_error *err);
void qmp_server_close(struct qmp_server *s);
/* A table of commands (ending with a NULL name), each called with opaque;
 * -ENOSPC past QMP_MAX_TABLES tables. */
int qmp_server_add_commands(struct qmp_server *s, const struct qmp_command *cmds, void *opaque);

/*
 * Every subject's commands come in through a function of one shape, in
 * vmm/qmp/SUBJECT_qmp.c:
 *
 *     int SUBJECT_qmp_register(struct qmp_server *s, struct CONTEXT *ctx);
 *
 * the server first, then the one object the commands act on: it is their
 * opaque, and the subject's events go to s.  0, or a negative errno.
 *
 *     vm_qmp_register         struct vm_qmp (vm_qmp.h): status, run control;
 *                             it registers memslots_qmp_register's too
 *     migration_qmp_register  struct vm_migration: migrate, its settings
 *     cpr_qmp_register        struct runner: what a live update carries
 *
 * The context is the subject's own object, typed: a wrong one does not
 * compile (a void * would), and nothing needs a common function type, as
 * no table of registrations exists.  It is not struct runner throughout
 * so that a subject can be served without a whole tern around it: the
 * tests register migration's commands on a bare server (test_cpr_settings).
 */
/* Send an event to every client past negotiation; takes `data`'s reference. */
void qmp_server_event(struct qmp_server *s, const char *name, json_t *data);
/* Try hard (up to timeout_ms) to deliver queued output, e.g. before exit. */
void qmp_server_flush(struct qmp_server *s, int timeout_ms);
/* Names of every command, for query-commands. */
json_t *qmp_server_command_list(const struct qmp_server *s);
/* Run a command as a client would (arguments checked against its
 * declaration, args an object): its return value in *ret (may be NULL), or
 * a negative errno with the message in *err. */
int qmp_server_call(struct qmp_server *s, const char *name, json_t *args, json_t **ret,
		    struct tern_error *err);

/* A live update carries each connected client's slot, whether it had
 * negotiated, and what it sent that no request has consumed yet (its
 * framer's state): this state type, holder a qmp_server. */
extern const struct vm_state_type qmp_clients_type;

/* {"error": {"class": cls, "desc": desc}}, desc made printable ASCII. */
json_t *qmp_error_reply(const char *cls, const char *desc);

/* Handle one request text and return the reply (NULL for none); exposed
 * for tests and fuzzing. */
json_t *qmp_handle_text(struct qmp_server *s, int *negotiated, const char *text, size_t len);

#endif
