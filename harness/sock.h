/* Unix-socket helpers for tests and benchmarks. */
#ifndef HARNESS_SOCK_H
#define HARNESS_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "qmp/qmp_client.h" /* unix_connect_retry */

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

/* Attach to the serial socket at path of a tern started with
 * --serial unix:PATH,server (which waits for its client before it boots)
 * and read until `line` appears, *at then just past it, so that what
 * follows on that line is complete.  The connected fd (t reads it), or -1
 * with nothing left open. */
int guest_serial_attach(const char *path, struct text_stream *t, const char *line, long *at);

/* The built-in guest's serial commands, on its serial socket t (its
 * output read from *at on, which moves past the answer): the word at a
 * guest-physical address (all ones where no memory is), and a store of
 * one.  0, or -1 when the guest did not answer. */
int guest_peek(struct text_stream *t, long *at, uint64_t addr, uint64_t *value);
int guest_poke(struct text_stream *t, long *at, uint64_t addr, uint64_t value);

#endif
