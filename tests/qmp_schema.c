/* Checking QMP values against a QEMU's introspected schema; see qmp_schema.h. */
#include "qmp_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qmp_schema {
	json_t *entities; /* the array from query-qmp-schema */
	json_t *by_name;  /* name -> entity (borrowed from entities) */
	json_t *allow;    /* allowed unknown member -> count */
};

struct qmp_schema *qmp_schema_new(json_t *entities)
{
	if (!json_is_array(entities))
		return NULL;
	struct qmp_schema *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->entities = json_incref(entities);
	s->by_name = json_object();
	s->allow = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(entities, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		if (name != NULL)
			json_object_set(s->by_name, name, e);
	}
	return s;
}

void qmp_schema_free(struct qmp_schema *s)
{
	if (s == NULL)
		return;
	json_decref(s->by_name);
	json_decref(s->entities);
	json_decref(s->allow);
	free(s);
}

json_t *qmp_schema_entity(const struct qmp_schema *s, const char *name)
{
	return json_object_get(s->by_name, name);
}

const char *qmp_schema_type_of(const struct qmp_schema *s, const char *entity, const char *which)
{
	return json_string_value(json_object_get(qmp_schema_entity(s, entity), which));
}

static const char *meta(const json_t *e)
{
	const char *m = json_string_value(json_object_get(e, "meta-type"));
	return m != NULL ? m : "";
}

json_t *qmp_schema_members(const struct qmp_schema *s, const char *type)
{
	json_t *e = qmp_schema_entity(s, type);
	if (strcmp(meta(e), "object") != 0)
		return NULL;
	json_t *names = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(e, "members"), i, m)
		json_array_append(names, json_object_get(m, "name"));
	return names;
}

json_t *qmp_schema_enum_values(const struct qmp_schema *s, const char *type)
{
	json_t *e = qmp_schema_entity(s, type);
	if (strcmp(meta(e), "enum") != 0)
		return NULL;
	return json_deep_copy(json_object_get(e, "values"));
}

void qmp_schema_allow(struct qmp_schema *s, const char *member)
{
	json_object_set_new(s->allow, member, json_integer(0));
}

json_t *qmp_schema_allowed(const struct qmp_schema *s)
{
	return s->allow;
}

/* ---------------------------------------------------------------- checking */

struct walk {
	struct qmp_schema *s;
	char *why;
	size_t len;
	char path[512];
};

static int bad(struct walk *w, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (w->why != NULL && w->len > 0)
		snprintf(w->why, w->len, "%s%s%s", w->path, w->path[0] ? ": " : "", msg);
	return -1;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static int check(struct walk *w, const char *type, const json_t *v);

static int builtin(struct walk *w, const json_t *e, const json_t *v)
{
	const char *jt = json_string_value(json_object_get(e, "json-type"));
	int ok;
	if (jt == NULL)
		return bad(w, "builtin without a json-type");
	if (strcmp(jt, "int") == 0)
		ok = json_is_integer(v);
	else if (strcmp(jt, "number") == 0)
		ok = json_is_number(v);
	else if (strcmp(jt, "string") == 0)
		ok = json_is_string(v);
	else if (strcmp(jt, "boolean") == 0)
		ok = json_is_boolean(v);
	else if (strcmp(jt, "null") == 0)
		ok = json_is_null(v);
	else if (strcmp(jt, "value") == 0)
		ok = 1;
	else
		return bad(w, "unknown builtin json-type '%s'", jt);
	return ok ? 0 : bad(w, "%s where the schema wants %s", json_kind(v), jt);
}

static int enumeration(struct walk *w, const json_t *e, const json_t *v)
{
	if (!json_is_string(v))
		return bad(w, "%s where the schema wants an enum string", json_kind(v));
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(e, "values"), i, x)
		if (json_equal(x, v))
			return 0;
	return bad(w, "'%s' is not one of the enum's values", json_string_value(v));
}

static int array(struct walk *w, const json_t *e, const json_t *v)
{
	if (!json_is_array(v))
		return bad(w, "%s where the schema wants an array", json_kind(v));
	const char *elem = json_string_value(json_object_get(e, "element-type"));
	size_t plen = strlen(w->path), i;
	json_t *x;
	json_array_foreach(v, i, x) {
		snprintf(w->path + plen, sizeof w->path - plen, "[%zu]", i);
		if (check(w, elem, x) < 0)
			return -1;
	}
	w->path[plen] = '\0';
	return 0;
}

static int alternate(struct walk *w, const json_t *e, const json_t *v)
{
	size_t i;
	json_t *m;
	char saved[sizeof w->path];
	memcpy(saved, w->path, sizeof saved);
	json_array_foreach(json_object_get(e, "members"), i, m) {
		char *why = w->why;
		w->why = NULL; /* a branch that does not fit says nothing */
		int rc = check(w, json_string_value(json_object_get(m, "type")), v);
		w->why = why;
		memcpy(w->path, saved, sizeof saved);
		if (rc == 0)
			return 0;
	}
	return bad(w, "%s fits none of the alternate's branches", json_kind(v));
}

/* The members of an object type, and of the variant its tag selects. */
static int collect_members(struct walk *w, const json_t *e, const json_t *v, json_t *into)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(e, "members"), i, m)
		json_array_append(into, m);
	const char *tag = json_string_value(json_object_get(e, "tag"));
	if (tag == NULL)
		return 0;
	const json_t *tv = json_object_get(v, tag);
	if (tv == NULL)
		return 0; /* reported as a missing member */
	json_array_foreach(json_object_get(e, "variants"), i, m) {
		if (!json_equal(json_object_get(m, "case"), tv))
			continue;
		json_t *ve = qmp_schema_entity(w->s, json_string_value(json_object_get(m, "type")));
		if (ve == NULL)
			return bad(w, "the schema's variant type for '%s' is missing", tag);
		return collect_members(w, ve, v, into);
	}
	return 0; /* a tag value with no variant: the enum check reports it */
}

static int object(struct walk *w, const json_t *e, const json_t *v)
{
	if (!json_is_object(v))
		return bad(w, "%s where the schema wants an object", json_kind(v));
	json_t *members = json_array();
	int rc = collect_members(w, e, v, members);
	size_t plen = strlen(w->path), i;
	json_t *m;
	json_array_foreach(members, i, m) {
		if (rc < 0)
			break;
		const char *name = json_string_value(json_object_get(m, "name"));
		const json_t *mv = json_object_get(v, name);
		if (mv == NULL) {
			if (json_object_get(m, "default") == NULL) /* absent: required */
				rc = bad(w, "lacks required member '%s'", name);
			continue;
		}
		snprintf(w->path + plen, sizeof w->path - plen, "%s%s", plen ? "." : "", name);
		rc = check(w, json_string_value(json_object_get(m, "type")), mv);
		w->path[plen] = '\0';
	}
	const char *key;
	const json_t *mv;
	json_object_foreach((json_t *)v, key, mv) {
		if (rc < 0)
			break;
		int known = 0;
		json_array_foreach(members, i, m)
			known |= strcmp(json_string_value(json_object_get(m, "name")), key) == 0;
		if (known || strncmp(key, "x-", 2) == 0)
			continue;
		json_t *count = json_object_get(w->s->allow, key);
		if (count != NULL)
			json_integer_set(count, json_integer_value(count) + 1);
		else
			rc = bad(w, "has member '%s', which the schema does not know (tern's own "
				 "members start with x-)", key);
	}
	json_decref(members);
	return rc;
}

static int check(struct walk *w, const char *type, const json_t *v)
{
	if (type == NULL)
		return bad(w, "the schema names no type");
	const json_t *e = qmp_schema_entity(w->s, type);
	if (e == NULL)
		return bad(w, "the schema has no type '%s'", type);
	const char *m = meta(e);
	if (strcmp(m, "builtin") == 0)
		return builtin(w, e, v);
	if (strcmp(m, "enum") == 0)
		return enumeration(w, e, v);
	if (strcmp(m, "array") == 0)
		return array(w, e, v);
	if (strcmp(m, "alternate") == 0)
		return alternate(w, e, v);
	if (strcmp(m, "object") == 0)
		return object(w, e, v);
	return bad(w, "'%s' is a %s, not a type", type, m);
}

int qmp_schema_check(struct qmp_schema *s, const char *type, const json_t *v, char *why,
		     size_t len)
{
	struct walk w = { .s = s, .why = why, .len = len };
	if (why != NULL && len > 0)
		why[0] = '\0';
	return check(&w, type, v);
}

int qmp_schema_check_return(struct qmp_schema *s, const char *command, const json_t *ret,
			    char *why, size_t len)
{
	const json_t *e = qmp_schema_entity(s, command);
	if (e == NULL || strcmp(meta(e), "command") != 0)
		return 0;
	const char *type = json_string_value(json_object_get(e, "ret-type"));
	return qmp_schema_check(s, type, ret, why, len) < 0 ? -1 : 1;
}

int qmp_schema_check_event(struct qmp_schema *s, const char *event, const json_t *data,
			   char *why, size_t len)
{
	const json_t *e = qmp_schema_entity(s, event);
	if (e == NULL || strcmp(meta(e), "event") != 0)
		return 0;
	const char *type = json_string_value(json_object_get(e, "arg-type"));
	if (type == NULL) {
		if (data == NULL)
			return 1;
		snprintf(why, len, "the event has no data in the schema, but data came");
		return -1;
	}
	json_t *none = data == NULL ? json_object() : NULL;
	int rc = qmp_schema_check(s, type, data != NULL ? data : none, why, len);
	json_decref(none);
	return rc < 0 ? -1 : 1;
}

int qmp_schema_check_error(const json_t *error, char *why, size_t len)
{
	/* QEMU's QapiErrorClass (qapi/error.json); not in the introspection. */
	static const char *const classes[] = { "GenericError", "CommandNotFound",
					       "DeviceNotActive", "DeviceNotFound",
					       "KVMMissingCap", NULL };
	const char *cls = json_string_value(json_object_get(error, "class"));
	if (!json_is_object(error) || cls == NULL ||
	    !json_is_string(json_object_get(error, "desc")) || json_object_size(error) != 2) {
		snprintf(why, len, "an error is {\"class\": CLASS, \"desc\": TEXT}");
		return -1;
	}
	for (const char *const *c = classes; *c != NULL; c++)
		if (strcmp(*c, cls) == 0)
			return 0;
	snprintf(why, len, "error class '%s' is not one of QEMU's", cls);
	return -1;
}

/* ---------------------------------------------------------------- traces */

static void count(json_t *map, const char *key)
{
	json_t *n = json_object_get(map, key);
	if (n != NULL)
		json_integer_set(n, json_integer_value(n) + 1);
	else
		json_object_set_new(map, key, json_integer(1));
}

static void failed(struct qmp_trace_report *r, const char *what, const char *why)
{
	char key[768];
	snprintf(key, sizeof key, "%s: %s", what, why);
	count(r->failed, key);
	r->failures++;
}

/* The greeting: its version as query-version's, its capabilities as
 * qmp_capabilities' "enable" takes them. */
static int check_greeting(struct qmp_schema *s, const json_t *g, char *why, size_t len)
{
	const json_t *qmp = json_object_get(g, "QMP");
	const char *vt = qmp_schema_type_of(s, "query-version", "ret-type");
	if (!json_is_object(qmp) || json_object_size(qmp) != 2) {
		snprintf(why, len, "the greeting is {\"QMP\": {\"version\", \"capabilities\"}}");
		return -1;
	}
	if (qmp_schema_check(s, vt, json_object_get(qmp, "version"), why, len) < 0)
		return -1;
	const char *at = qmp_schema_type_of(s, "qmp_capabilities", "arg-type");
	json_t *e = qmp_schema_entity(s, at);
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(e, "members"), i, m)
		if (strcmp(json_string_value(json_object_get(m, "name")), "enable") == 0)
			return qmp_schema_check(s, json_string_value(json_object_get(m, "type")),
						json_object_get(qmp, "capabilities"), why, len);
	snprintf(why, len, "the schema's qmp_capabilities has no 'enable'");
	return -1;
}

static void check_line(struct qmp_schema *s, json_t *line, struct qmp_trace_report *r)
{
	char why[600];
	const json_t *g = json_object_get(line, "greeting");
	const json_t *reply = json_object_get(line, "reply");
	const json_t *ev = json_object_get(line, "event");
	if (g != NULL) {
		if (check_greeting(s, g, why, sizeof why) < 0)
			failed(r, "greeting", why);
		else
			r->greetings++;
		return;
	}
	if (reply != NULL) {
		const char *cmd = json_string_value(json_object_get(line, "execute"));
		const json_t *error = json_object_get(reply, "error");
		const json_t *ret = json_object_get(reply, "return");
		if (error != NULL) {
			if (qmp_schema_check_error(error, why, sizeof why) < 0)
				failed(r, cmd != NULL ? cmd : "(no command)", why);
			else
				r->errors++;
			return;
		}
		if (cmd == NULL || ret == NULL) {
			failed(r, cmd != NULL ? cmd : "(no command)", "a reply without return or error");
			return;
		}
		int rc = qmp_schema_check_return(s, cmd, ret, why, sizeof why);
		if (rc < 0) {
			failed(r, cmd, why);
		} else if (rc == 0) {
			r->skipped_replies++;
			count(r->skipped, cmd);
		} else {
			r->replies++;
		}
		return;
	}
	const char *name = json_string_value(json_object_get(ev, "event"));
	const json_t *ts = json_object_get(ev, "timestamp");
	if (name == NULL || !json_is_integer(json_object_get(ts, "seconds")) ||
	    !json_is_integer(json_object_get(ts, "microseconds"))) {
		failed(r, "event", "an event is {\"event\", \"data\", \"timestamp\": {\"seconds\", "
		       "\"microseconds\"}}");
		return;
	}
	int rc = qmp_schema_check_event(s, name, json_object_get(ev, "data"), why, sizeof why);
	if (rc < 0) {
		failed(r, name, why);
	} else if (rc == 0) {
		r->skipped_events++;
		count(r->skipped, name);
	} else {
		r->events++;
	}
}

int qmp_schema_check_trace(struct qmp_schema *s, const char *path, struct qmp_trace_report *r)
{
	memset(r, 0, sizeof *r);
	r->skipped = json_object();
	r->failed = json_object();
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		failed(r, path, "cannot be read");
		return -1;
	}
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&buf, &cap, f)) > 0) {
		json_t *line = json_loadb(buf, (size_t)n, 0, NULL);
		if (!json_is_object(line))
			failed(r, "trace", "a line that is no JSON object");
		else
			check_line(s, line, r);
		json_decref(line);
	}
	free(buf);
	fclose(f);
	return 0;
}

void qmp_trace_report_print(const struct qmp_trace_report *r, const struct qmp_schema *s,
			    const char *what)
{
	printf("    %s: %lu replies, %lu events, %lu errors and %lu greetings valid against QEMU's "
	       "schema; %lu replies and %lu events of commands and events QEMU does not have "
	       "skipped; %lu invalid\n", what, r->replies, r->events, r->errors, r->greetings,
	       r->skipped_replies, r->skipped_events, r->failures);
	const char *key;
	json_t *v;
	if (json_object_size(r->skipped) > 0) {
		printf("    skipped:");
		json_object_foreach(r->skipped, key, v)
			printf(" %s (%lld)", key, (long long)json_integer_value(v));
		printf("\n");
	}
	int any = 0;
	json_object_foreach(qmp_schema_allowed(s), key, v)
		if (json_integer_value(v) > 0) {
			printf("%s %s (%lld)", any ? "" : "    members of later QEMUs, allowed:", key,
			       (long long)json_integer_value(v));
			any = 1;
		}
	if (any)
		printf("\n");
	json_object_foreach(r->failed, key, v)
		printf("    INVALID (%lld times): %s\n", (long long)json_integer_value(v), key);
}

void qmp_trace_report_free(struct qmp_trace_report *r)
{
	json_decref(r->skipped);
	json_decref(r->failed);
	r->skipped = r->failed = NULL;
}
