/* TERN_QMP_TRACE: a record of QMP traffic for tests; see qmp_trace.h. */
#include "qmp/qmp_trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmp/qmp.h"

void qmp_trace_open(struct qmp_server *s)
{
	s->tracing = 0;
	const char *path = getenv("TERN_QMP_TRACE");
	if (path == NULL || path[0] == '\0')
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tern: TERN_QMP_TRACE=%s: %s (not tracing QMP)\n", path,
			strerror(errno));
		return;
	}
	s->trace_fd = fd;
	s->tracing = 1;
}

void qmp_trace_close(struct qmp_server *s)
{
	if (!s->tracing)
		return;
	close(s->trace_fd);
	s->tracing = 0;
}

void qmp_trace(struct qmp_server *s, const char *key, const char *name, const json_t *msg)
{
	if (s == NULL || !s->tracing || msg == NULL)
		return;
	json_t *line = json_pack("{s:I,s:O}", "pid", (json_int_t)getpid(), key, (json_t *)msg);
	if (line == NULL)
		return;
	if (strcmp(key, "reply") == 0)
		json_object_set_new(line, "execute", name != NULL ? json_string(name) : json_null());
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (text == NULL)
		return;
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps leaves room for its NUL: this replaces it */
	ssize_t w = write(s->trace_fd, text, n + 1);
	(void)w; /* a trace that cannot be written is no reason to fail a command */
	free(text);
}
