/*
 * libFuzzer target: a QMP byte stream from an untrusted client, through
 * the framer and the protocol handler, delivered in pieces of a size the
 * input's first byte chooses.  Every reply must be a well-formed QMP reply.
 * Besides an echo command, the server has the migration capabilities and
 * parameters (vmm/qmp/migration_params_qmp.c, on a VM that does not run):
 * whatever the input set, what the query commands then show must be taken
 * back by the set commands unchanged (a live update carries the settings
 * that way).  The same input is then loaded as a framer's state saved by a
 * live update, and as a live update's whole qmp-clients section.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/migration_params_qmp.h"
#include "qmp/qmp.h"
#include "qmp/qmp_framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmd_echo(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)opaque;
	(void)err;
	*ret = json_deep_copy(args);
	return 0;
}

static const struct qmp_arg echo_args[] = {
	{ "n", QMP_INT, 0 },
	{ "s", QMP_STR, 1 },
	{ "b", QMP_BOOL, 1 },
	{ "o", QMP_OBJECT, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command commands[] = {
	{ "echo", cmd_echo, echo_args },
	{ NULL, NULL, NULL },
};

/* What migration_params_qmp.c needs of vm_migration.c: a VM that does
 * not migrate. */
int vm_migration_busy(struct vm_migration *m)
{
	(void)m;
	return 0;
}

void vm_migration_params_changed(struct vm_migration *m)
{
	(void)m;
}

const char *vm_migration_mode_name(enum vm_migration_mode mode)
{
	static const char *const names[] = { "normal", "cpr-exec", "cpr-transfer" };
	return names[mode];
}

static json_t *call(struct qmp_server *s, const char *cmd, json_t *args)
{
	json_t *ret = NULL;
	struct tern_error err;
	json_t *none = args == NULL ? json_object() : NULL;
	int rc = qmp_server_call(s, cmd, args != NULL ? args : none, &ret, &err);
	json_decref(none);
	json_decref(args);
	if (rc < 0)
		abort(); /* the query commands, or their output taken back, failed */
	return ret != NULL ? ret : json_object();
}

/* What the queries show, set again, changes nothing. */
static void settings_round_trip(struct qmp_server *s)
{
	json_t *caps = call(s, "query-migrate-capabilities", NULL);
	json_t *params = call(s, "query-migrate-parameters", NULL);
	json_decref(call(s, "migrate-set-capabilities", json_pack("{s:O}", "capabilities", caps)));
	json_decref(call(s, "migrate-set-parameters", json_incref(params)));
	json_t *caps2 = call(s, "query-migrate-capabilities", NULL);
	json_t *params2 = call(s, "query-migrate-parameters", NULL);
	if (!json_equal(caps, caps2) || !json_equal(params, params2))
		abort();
	json_decref(caps);
	json_decref(caps2);
	json_decref(params);
	json_decref(params2);
}

static void check_reply(json_t *r)
{
	if (r == NULL || !json_is_object(r))
		abort();
	json_t *e = json_object_get(r, "error");
	if (json_object_get(r, "return") == NULL &&
	    (e == NULL || !json_is_string(json_object_get(e, "class")) ||
	     !json_is_string(json_object_get(e, "desc"))))
		abort();
	json_decref(r);
}

/* The same bytes as a framer's state a live update carried (the
 * qmp-framer vmstate object): if it loads and is taken, the framer holds
 * no whole request and frames what follows as any framer would. */
static void saved_framer(const uint8_t *data, size_t size)
{
	struct qmp_framer_state st = { 0 };
	struct tern_error err;
	if (tern_vmstate_load(&qmp_framer_state_desc, &st, data, size, &err) != 0) {
		if (st.unread != NULL)
			abort(); /* a refused state left an allocation behind */
		return;
	}
	struct qmp_framer f;
	int rc = qmp_framer_put_state(&f, &st);
	free(st.unread);
	if (rc != 0)
		return;
	const char *text;
	size_t len;
	if (qmp_framer_next(&f, &text, &len) != QMP_FRAME_NONE) /* nothing whole was left */
		abort();
	if (qmp_framer_push(&f, (const char *)data, size) != 0)
		abort();
	while (qmp_framer_next(&f, &text, &len) != QMP_FRAME_NONE)
		;
	qmp_framer_destroy(&f);
}

/* And as the qmp-clients section of a live update, for a server to which
 * three clients were passed on (slots 0, 3 and 15; the loader never
 * touches their sockets). */
static void saved_clients(const uint8_t *data, size_t size)
{
	struct qmp_server server;
	memset(&server, 0, sizeof server);
	server.timer_fd = -1; /* no negotiation timer to arm */
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++)
		server.client[i].fd = i == 0 || i == 3 || i == 15 ? 100 + (int)i : -1;
	struct tern_error err;
	int rc = vm_state_load_one(&qmp_clients_type, &server, data, size, &err);
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		struct qmp_client *c = &server.client[i];
		if (c->fd < 0 && (c->framer.buf != NULL || c->negotiated))
			abort(); /* a slot with no client was written */
		if (rc < 0 && (c->framer.buf != NULL || c->negotiated))
			abort(); /* a refused section changed a client */
		const char *text;
		size_t len;
		if (qmp_framer_next(&c->framer, &text, &len) != QMP_FRAME_NONE)
			abort(); /* a whole request was carried */
		qmp_framer_destroy(&c->framer);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t chunk = (size_t)data[0] % 64 + 1;
	int negotiated = data[0] >> 7;
	data++;
	size--;
	struct qmp_server server;
	memset(&server, 0, sizeof server);
	qmp_server_add_commands(&server, commands, NULL);
	struct vm_migration mig;
	memset(&mig, 0, sizeof mig);
	tern_mig_params_default(&mig.params);
	mig.cpr_timeout_ms = CPR_TIMEOUT_DEFAULT_MS;
	migration_params_qmp_register(&server, &mig);
	struct qmp_framer f;
	qmp_framer_init(&f);
	for (size_t at = 0; at < size; at += chunk) {
		size_t n = size - at < chunk ? size - at : chunk;
		if (qmp_framer_push(&f, (const char *)data + at, n) != 0)
			abort();
		const char *text;
		size_t len;
		enum qmp_frame fr;
		while ((fr = qmp_framer_next(&f, &text, &len)) != QMP_FRAME_NONE) {
			if (fr == QMP_FRAME_TEXT) {
				if (len == 0 || len > QMP_MAX_MESSAGE + 1)
					abort();
				check_reply(qmp_handle_text(&server, &negotiated, text, len));
			}
		}
	}
	qmp_framer_destroy(&f);
	settings_round_trip(&server);
	for (unsigned i = 0; mig.cpr_exec_argv[i] != NULL; i++)
		free(mig.cpr_exec_argv[i]);
	saved_framer(data, size);
	saved_clients(data, size);
	return 0;
}
