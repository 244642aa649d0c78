/* QEMU under QMP for tests; see qemu_qmp.h. */
#include "qemu_qmp.h"
#include "qmp_schema.h"
#include "tmpdir_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 48

int qemu_qmp_start(struct qemu_qmp *qm, const char *dir, const char *name,
		   const char *const *args, char *why, size_t len)
{
	memset(qm, 0, sizeof *qm);
	qm->q.fd = -1;
	snprintf(qm->sock, sizeof qm->sock, "%s/%s.sock", dir, name);
	unlink(qm->sock);
	char spec[300];
	snprintf(spec, sizeof spec, "unix:%s,server=on,wait=off", qm->sock);
	const char *argv[MAX_ARGS + 10] = { "/usr/bin/env", "qemu-system-x86_64", "-nodefaults",
					    "-display", "none", "-qmp", spec };
	int n = 7;
	for (int i = 0; args != NULL && args[i] != NULL && n < MAX_ARGS; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0) {
		snprintf(why, len, "qemu-system-x86_64 is not installed");
		return -1;
	}
	if (proc_spawn(&qm->proc, (char *const *)argv, 0) != 0) {
		snprintf(why, len, "qemu-system-x86_64 did not start");
		return -1;
	}
	if (qmp_connect(&qm->q, qm->sock, 1, 10000 * time_scale()) < 0) {
		proc_kill(&qm->proc, 9);
		proc_wait(&qm->proc, 5000);
		snprintf(why, len, "QEMU's QMP socket did not answer: %.200s", proc_output(&qm->proc));
		proc_free(&qm->proc);
		qm->proc.pid = 0;
		return -1;
	}
	return 0;
}

void qemu_qmp_end(struct qemu_qmp *qm)
{
	if (qm->q.fd >= 0)
		qmp_close(&qm->q);
	qm->q.fd = -1;
	if (qm->proc.pid > 0) {
		if (!proc_exited(&qm->proc))
			proc_kill(&qm->proc, 9);
		proc_wait(&qm->proc, 5000);
		proc_free(&qm->proc);
	}
	qm->proc.pid = 0;
	unlink(qm->sock);
}

void qemu_qmp_version(const struct qemu_qmp *qm, char *buf, size_t len)
{
	json_t *v = json_object_get(json_object_get(json_object_get(qm->q.greeting, "QMP"),
						    "version"), "qemu");
	snprintf(buf, len, "%lld.%lld.%lld",
		 (long long)json_integer_value(json_object_get(v, "major")),
		 (long long)json_integer_value(json_object_get(v, "minor")),
		 (long long)json_integer_value(json_object_get(v, "micro")));
}

json_t *qemu_qmp_schema(const char *dir, char *version, size_t vlen, char *why, size_t len)
{
	struct qemu_qmp qm;
	const char *args[] = { "-machine", "none", NULL };
	if (qemu_qmp_start(&qm, dir, "schema", args, why, len) < 0)
		return NULL;
	if (version != NULL)
		qemu_qmp_version(&qm, version, vlen);
	json_t *r = qmp_execute(&qm.q, "query-qmp-schema", NULL, 20000 * time_scale());
	json_t *schema = json_incref(qmp_return(r));
	json_decref(r);
	if (schema == NULL)
		snprintf(why, len, "QEMU did not answer query-qmp-schema");
	qemu_qmp_end(&qm);
	return schema;
}

struct qmp_schema *qemu_qmp_schema_for_tern(const char *dir, char *version, size_t vlen,
					    char *why, size_t len)
{
	json_t *entities = qemu_qmp_schema(dir, version, vlen, why, len);
	if (entities == NULL)
		return NULL;
	struct qmp_schema *s = qmp_schema_new(entities);
	json_decref(entities);
	if (s == NULL) {
		snprintf(why, len, "QEMU's query-qmp-schema is not a list");
		return NULL;
	}
	qmp_schema_allow(s, "mode");
	qmp_schema_allow(s, "cpr-exec-command");
	return s;
}

struct qmp_schema *qemu_schema;
char qemu_schema_version[32], qemu_schema_why[300];

void qemu_qmp_schema_setup(void)
{
	qemu_schema = qemu_qmp_schema_for_tern(test_dir, qemu_schema_version,
					       sizeof qemu_schema_version, qemu_schema_why,
					       sizeof qemu_schema_why);
}

void qemu_qmp_schema_teardown(void)
{
	qmp_schema_free(qemu_schema);
	qemu_schema = NULL;
}
