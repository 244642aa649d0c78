/* The QMP protocol: requests checked and run, replies built; see qmp.h. */
#include "qmp/qmp.h"
#include "qmp/qmp_trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Descriptions may quote the client's own bytes (jansson's parse errors
 * do), which need not be valid UTF-8: anything but printable ASCII becomes
 * '?', so the reply is always valid JSON. */
json_t *qmp_error_reply(const char *cls, const char *desc)
{
	char safe[512];
	size_t i = 0;
	for (; desc[i] != '\0' && i + 1 < sizeof safe; i++)
		safe[i] = (unsigned char)desc[i] >= 0x20 && (unsigned char)desc[i] < 0x7f ? desc[i] : '?';
	safe[i] = '\0';
	return json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", safe);
}

static const char *type_name(enum qmp_arg_type t)
{
	static const char *const names[] = {
		[QMP_INT] = "integer", [QMP_BOOL] = "boolean", [QMP_STR] = "string",
		[QMP_NUMBER] = "number", [QMP_OBJECT] = "object", [QMP_ANY] = "any",
	};
	return names[t];
}

static int type_matches(enum qmp_arg_type t, const json_t *v)
{
	switch (t) {
	case QMP_INT: return json_is_integer(v);
	case QMP_BOOL: return json_is_boolean(v);
	case QMP_STR: return json_is_string(v);
	case QMP_NUMBER: return json_is_number(v);
	case QMP_OBJECT: return json_is_object(v);
	case QMP_ANY: return 1;
	}
	return 0;
}

/* Check arguments against the command's declaration, QEMU's wording. */
static json_t *check_args(const struct qmp_command *cmd, json_t *args)
{
	char desc[256];
	const char *key;
	json_t *value;
	json_object_foreach(args, key, value) {
		const struct qmp_arg *a = cmd->args;
		while (a != NULL && a->name != NULL && strcmp(a->name, key) != 0)
			a++;
		if (a == NULL || a->name == NULL) {
			snprintf(desc, sizeof desc, "Parameter '%s' is unexpected", key);
			return qmp_error_reply("GenericError", desc);
		}
		if (!type_matches(a->type, value)) {
			snprintf(desc, sizeof desc, "Invalid parameter type for '%s', expected: %s",
				 key, type_name(a->type));
			return qmp_error_reply("GenericError", desc);
		}
	}
	for (const struct qmp_arg *a = cmd->args; a != NULL && a->name != NULL; a++) {
		if (!a->optional && json_object_get(args, a->name) == NULL) {
			snprintf(desc, sizeof desc, "Parameter '%s' is missing", a->name);
			return qmp_error_reply("GenericError", desc);
		}
	}
	return NULL;
}

static const struct qmp_command *find_command(const struct qmp_server *s, const char *name,
					      void **opaque)
{
	for (unsigned t = 0; t < s->tables; t++)
		for (const struct qmp_command *c = s->table[t].cmds; c->name != NULL; c++)
			if (strcmp(c->name, name) == 0) {
				*opaque = s->table[t].opaque;
				return c;
			}
	return NULL;
}

int qmp_server_call(struct qmp_server *s, const char *name, json_t *args, json_t **ret,
		    struct tern_error *err)
{
	void *opaque = NULL;
	const struct qmp_command *cmd = find_command(s, name, &opaque);
	if (cmd == NULL)
		return tern_errorf(err, -ENOENT, "The command %s has not been found", name);
	json_t *bad = check_args(cmd, args);
	if (bad != NULL) {
		int rc = tern_errorf(err, -EINVAL, "%s: %s", name,
				     json_string_value(json_object_get(json_object_get(bad, "error"),
								       "desc")));
		json_decref(bad);
		return rc;
	}
	*ret = NULL;
	int rc = cmd->fn(opaque, args, ret, err);
	if (rc < 0) {
		json_decref(*ret);
		*ret = NULL;
	}
	return rc;
}

static json_t *execute(struct qmp_server *s, int *negotiated, const char *name, json_t *args)
{
	char desc[300];
	if (strcmp(name, "qmp_capabilities") == 0) {
		if (*negotiated)
			return qmp_error_reply("CommandNotFound",
					   "Capabilities negotiation is already complete, command "
					   "ignored");
		json_t *enable = args ? json_object_get(args, "enable") : NULL;
		if (enable != NULL && (!json_is_array(enable) || json_array_size(enable) != 0))
			return qmp_error_reply("GenericError",
					   "This server offers no QMP capabilities to enable");
		*negotiated = 1;
		return json_pack("{s:{}}", "return");
	}
	if (!*negotiated)
		return qmp_error_reply("CommandNotFound",
				   "Expecting capabilities negotiation with 'qmp_capabilities'");
	void *opaque = NULL;
	const struct qmp_command *cmd = find_command(s, name, &opaque);
	if (cmd == NULL) {
		snprintf(desc, sizeof desc, "The command %.200s has not been found", name);
		return qmp_error_reply("CommandNotFound", desc);
	}
	json_t *empty = NULL;
	if (args == NULL)
		args = empty = json_object();
	json_t *bad = check_args(cmd, args);
	if (bad != NULL) {
		json_decref(empty);
		return bad;
	}
	json_t *ret = NULL;
	struct tern_error err = { .msg = "" };
	int rc = cmd->fn(opaque, args, &ret, &err);
	json_decref(empty);
	if (rc < 0) {
		json_decref(ret);
		return qmp_error_reply("GenericError", err.msg[0] ? err.msg : strerror(-rc));
	}
	return json_pack("{s:o}", "return", ret != NULL ? ret : json_object());
}

json_t *qmp_handle_text(struct qmp_server *s, int *negotiated, const char *text, size_t len)
{
	json_error_t jerr;
	char desc[300];
	json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (req == NULL) {
		snprintf(desc, sizeof desc, "JSON parse error, %s", jerr.text);
		json_t *reply = qmp_error_reply("GenericError", desc);
		qmp_trace(s, "reply", NULL, reply);
		return reply;
	}
	json_t *reply = NULL;
	if (!json_is_object(req)) {
		reply = qmp_error_reply("GenericError", "QMP input must be a JSON object");
		goto out;
	}
	json_t *id = json_object_get(req, "id");
	json_t *exec = json_object_get(req, "execute");
	json_t *args = json_object_get(req, "arguments");
	const char *key;
	json_t *value;
	json_object_foreach(req, key, value) {
		if (strcmp(key, "execute") != 0 && strcmp(key, "arguments") != 0 &&
		    strcmp(key, "id") != 0) {
			snprintf(desc, sizeof desc, "QMP input member '%.200s' is unexpected", key);
			reply = qmp_error_reply("GenericError", desc);
			goto with_id;
		}
	}
	if (exec == NULL)
		reply = qmp_error_reply("GenericError", "QMP input lacks member 'execute'");
	else if (!json_is_string(exec))
		reply = qmp_error_reply("GenericError", "QMP input member 'execute' must be a string");
	else if (args != NULL && !json_is_object(args))
		reply = qmp_error_reply("GenericError",
				    "QMP input member 'arguments' must be an object");
	else
		reply = execute(s, negotiated, json_string_value(exec), args);
with_id:
	if (reply != NULL && id != NULL)
		json_object_set(reply, "id", id);
out:
	qmp_trace(s, "reply", json_is_object(req) ? json_string_value(json_object_get(req, "execute"))
						  : NULL, reply);
	json_decref(req);
	return reply;
}

int qmp_server_add_commands(struct qmp_server *s, const struct qmp_command *cmds, void *opaque)
{
	if (s->tables == QMP_MAX_TABLES)
		return -ENOSPC;
	s->table[s->tables].cmds = cmds;
	s->table[s->tables].opaque = opaque;
	s->tables++;
	return 0;
}

json_t *qmp_server_command_list(const struct qmp_server *s)
{
	json_t *list = json_array();
	json_array_append_new(list, json_pack("{s:s}", "name", "qmp_capabilities"));
	for (unsigned t = 0; t < s->tables; t++)
		for (const struct qmp_command *c = s->table[t].cmds; c->name != NULL; c++)
			json_array_append_new(list, json_pack("{s:s}", "name", c->name));
	return list;
}
