/* See shell.h. */
#include "shell.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int harness_sh(char **out, const char *fmt, ...)
{
	char *cmd = NULL, *full = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || asprintf(&full, "( %s ) 2>&1", cmd) < 0) {
		free(cmd);
		return -1;
	}
	free(cmd);
	FILE *f = popen(full, "r");
	free(full);
	if (!f)
		return -1;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (cap - len < 2048) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	int status = pclose(f);
	if (buf)
		buf[len] = 0;
	if (out)
		*out = buf;
	else
		free(buf);
	if (status < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}
