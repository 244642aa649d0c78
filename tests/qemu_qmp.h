/*
 * QEMU under QMP, for tests that hold tern to what QEMU does: its schema
 * (query-qmp-schema) and its behaviour side by side with tern's.
 */
#ifndef TESTS_QEMU_QMP_H
#define TESTS_QEMU_QMP_H

#include <jansson.h>
#include <stddef.h>

#include "../harness/proc.h"
#include "qmp/qmp_client.h"

struct qemu_qmp {
	struct proc proc;
	struct qmp_conn q; /* negotiated */
	char sock[256];
};

/* Start `qemu-system-x86_64 -nodefaults -display none -qmp unix:DIR/NAME.sock
 * ARGS...` (ARGS NULL-terminated, e.g. "-machine", "none") and connect to
 * it.  0, or -1 with why (no QEMU here, or it did not start). */
int qemu_qmp_start(struct qemu_qmp *qm, const char *dir, const char *name,
		   const char *const *args, char *why, size_t len);
void qemu_qmp_end(struct qemu_qmp *qm);
/* "7.2.22" and the like, from the greeting. */
void qemu_qmp_version(const struct qemu_qmp *qm, char *buf, size_t len);

/* QEMU's query-qmp-schema (`-machine none`: no KVM needed), or NULL with
 * why; its version in version[] if not NULL. */
json_t *qemu_qmp_schema(const char *dir, char *version, size_t vlen, char *why, size_t len);

/* The same, as a checker (tests/qmp_schema.h) that lets through the two
 * parameters tern has from later QEMUs: `mode` (QEMU 8.2's) and
 * `cpr-exec-command` (QEMU 10's), counted where they appear. */
struct qmp_schema;
struct qmp_schema *qemu_qmp_schema_for_tern(const char *dir, char *version, size_t vlen,
					    char *why, size_t len);

/* For test programs checking against it: the schema of the group (NULL
 * when QEMU could not give one, and why), fetched in test_dir (which
 * must exist) by qemu_qmp_schema_setup, freed by its teardown. */
extern struct qmp_schema *qemu_schema;
extern char qemu_schema_version[32], qemu_schema_why[300];
void qemu_qmp_schema_setup(void);
void qemu_qmp_schema_teardown(void);
/* In a test: skip it, saying why, when there is no schema. */
#define NEED_SCHEMA()                                                                   \
	do {                                                                            \
		if (qemu_schema == NULL) {                                              \
			print_message("    skipped: no QEMU schema: %s\n", qemu_schema_why); \
			skip();                                                         \
		}                                                                       \
	} while (0)

#endif
