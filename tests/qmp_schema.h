/*
 * Checking QMP replies and events against a QEMU's own schema, as its
 * query-qmp-schema describes it (QEMU's introspection format): objects
 * with members (optional ones carry "default"), flat unions (a tag member
 * and variants), enums, arrays "[T]", alternates, builtins (int, str, bool,
 * number, null, any), commands' ret-type and events' arg-type.
 *
 * A member the schema does not know is an error unless its name starts
 * with "x-" (tern's own extras, as QEMU marks its unstable ones) or it was
 * allowed by name (qmp_schema_allow: names a later QEMU has).  A missing
 * required member, a wrong JSON type and an unknown enum value are errors.
 * The schema itself is fetched at test time from a running QEMU
 * (tests/qemu_qmp.h), never stored in the project.
 */
#ifndef TESTS_QMP_SCHEMA_H
#define TESTS_QMP_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

struct qmp_schema;

/* From query-qmp-schema's return value (an array of entities; the schema
 * keeps its own reference).  NULL if it is not one. */
struct qmp_schema *qmp_schema_new(json_t *entities);
void qmp_schema_free(struct qmp_schema *s);

/* An entity by name (a command, an event, or a type), borrowed; NULL if
 * none. */
json_t *qmp_schema_entity(const struct qmp_schema *s, const char *name);
/* A command's argument or return type name, an event's argument type name
 * ("arg-type" / "ret-type"), NULL if none. */
const char *qmp_schema_type_of(const struct qmp_schema *s, const char *entity, const char *which);
/* The names of an object type's members (a new array of strings), and of
 * an enum's values; NULL when `type` is not such a type. */
json_t *qmp_schema_members(const struct qmp_schema *s, const char *type);
json_t *qmp_schema_enum_values(const struct qmp_schema *s, const char *type);

/* Let an unknown member of this name pass wherever it appears; every time
 * it does is counted (qmp_schema_allowed). */
void qmp_schema_allow(struct qmp_schema *s, const char *member);
/* {"name": count, ...} of allowed unknown members met so far (borrowed). */
json_t *qmp_schema_allowed(const struct qmp_schema *s);

/* 0 when v is valid as `type`, else -1 and why ("ram: lacks required
 * member 'multifd-bytes'"). */
int qmp_schema_check(struct qmp_schema *s, const char *type, const json_t *v, char *why,
		     size_t len);
/* A command's "return" value: 1 valid, 0 the schema has no such command
 * (not checked), -1 invalid (why). */
int qmp_schema_check_return(struct qmp_schema *s, const char *command, const json_t *ret,
			    char *why, size_t len);
/* An event's "data" (NULL: the event had none): 1, 0 or -1 likewise. */
int qmp_schema_check_event(struct qmp_schema *s, const char *event, const json_t *data,
			   char *why, size_t len);
/* An error reply's "error" member: {"class": one of QEMU's QapiErrorClass
 * names, "desc": a string}; 0 or -1. */
int qmp_schema_check_error(const json_t *error, char *why, size_t len);

/* What a TERN_QMP_TRACE file (vmm/qmp/qmp_trace.h) held, checked. */
struct qmp_trace_report {
	unsigned long greetings, replies, errors, events; /* valid */
	unsigned long skipped_replies, skipped_events;   /* not in the schema */
	unsigned long failures;
	json_t *skipped; /* {"name": count} of the commands and events skipped */
	json_t *failed;  /* {"command or event: why": count} */
};

/* Check every line of a trace: the greeting (query-version's type, and
 * qmp_capabilities' capability names), replies (return values by their
 * command, errors as QEMU's), events.  0, or -1 if the file cannot be read
 * (why in the report's failed).  Free the report with
 * qmp_trace_report_free. */
int qmp_schema_check_trace(struct qmp_schema *s, const char *path, struct qmp_trace_report *r);
void qmp_trace_report_print(const struct qmp_trace_report *r, const struct qmp_schema *s,
			    const char *what);
void qmp_trace_report_free(struct qmp_trace_report *r);

#endif
