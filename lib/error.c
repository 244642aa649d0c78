/* Error messages for people; see include/tern/error.h. */
#include "tern/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tern_errorf(struct tern_error *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

void tern_error_prefix(struct tern_error *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	char prefix[TERN_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* "prefix: message", cut to the buffer. */
	size_t plen = strlen(prefix);
	memcpy(prefix + plen, ": ", 3);
	plen += 2;
	size_t room = sizeof err->msg - 1;
	size_t mlen = strnlen(err->msg, room);
	if (plen >= room) {
		memcpy(err->msg, prefix, room);
		err->msg[room] = '\0';
		return;
	}
	if (mlen > room - plen)
		mlen = room - plen;
	memmove(err->msg + plen, err->msg, mlen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen + mlen] = '\0';
}
