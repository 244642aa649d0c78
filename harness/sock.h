/* Unix-socket helpers for tests and benchmarks. */
#ifndef HARNESS_SOCK_H
#define HARNESS_SOCK_H

#include <stddef.h>

#include "../vmm/qmp_client.h" /* unix_connect_retry */

/* Text arriving on a socket, kept whole so tests can search it. */
struct text_stream {
	int fd;
	char *buf;
	size_t len, cap;
};

void text_stream_init(struct text_stream *t, int fd);
void text_stream_free(struct text_stream *t);
/* Receive until `needle` appears at or after `from`; returns the offset
 * just past it, or -1 on timeout or EOF. */
long text_stream_wait(struct text_stream *t, size_t from, const char *needle, int timeout_ms);
/* Like text_stream_wait, and also wait for the rest of that line, so that
 * a number after the needle is complete.  Returns the offset past needle. */
long text_stream_wait_line(struct text_stream *t, size_t from, const char *needle,
			   int timeout_ms);

#endif
