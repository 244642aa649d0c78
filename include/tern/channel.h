/*
 * Migration channels: where a stream goes and comes from.
 *
 *   tcp:HOST:PORT   the source connects; the destination listens (HOST may
 *                   be empty or 0 for every address)
 *   unix:PATH       the same over a unix socket
 *   file:PATH       the source writes a file; the destination reads it
 *   fd:N            an inherited file descriptor (a socket goes both ways)
 *
 * Writes honour a bandwidth limit; cancellation (from any thread) makes
 * blocked reads and writes fail at once.
 */
#ifndef TERN_CHANNEL_H
#define TERN_CHANNEL_H

#include <stdint.h>
#include <sys/types.h>

#include "tern/error.h"
#include "tern/stream.h"

struct tern_channel {
	int fd;
	int two_way;       /* replies can come back (a socket) */
	int is_file;       /* a regular file: the stream ends where the file does */
	int owns_fd;
	/* Source, file:PATH: the path, and whether this channel created the
	 * file (and which file it made), so that a failed stream is removed
	 * rather than left to look like a saved guest. */
	char *path;
	int created;
	dev_t created_dev;
	ino_t created_ino;
	uint64_t limit;    /* bytes per second, 0: unlimited */
	uint64_t next_send_ns; /* limited: when the next write may start */
	int cancelled;
	int stall_ms;      /* > 0: a read or write that waits this long fails */
	int stalled;       /* one did (-ETIMEDOUT) */
	uint64_t written, read;
	struct tern_io io; /* reads and writes through this channel */
};

/* Source side: connect or create. */
int tern_channel_connect(struct tern_channel *ch, const char *uri, struct tern_error *err);

/* Destination side: listen (tcp, unix) and accept one peer, or open (file,
 * fd).  tern_channel_listen gives a listening fd (or -1 when the URI needs
 * no listening) so the caller can report it before blocking in accept. */
int tern_channel_listen(const char *uri, int *listen_fd, struct tern_error *err);
int tern_channel_accept(struct tern_channel *ch, const char *uri, int listen_fd,
			struct tern_error *err);

/* Any thread, any time. */
void tern_channel_set_limit(struct tern_channel *ch, uint64_t bytes_per_second);
/* On a socket: a read or write that can make no progress for stall_ms
 * (the peer sends nothing, or takes nothing in) fails with -ETIMEDOUT and
 * sets ch->stalled; 0: wait as long as it takes (the default).  Set by
 * the thread that reads and writes. */
void tern_channel_set_stall(struct tern_channel *ch, int stall_ms);
/* Any thread: fail every blocked and future read or write. */
void tern_channel_cancel(struct tern_channel *ch);
/* Wait up to timeout_ms for bytes to read: 1 ready, 0 timeout, -errno. */
int tern_channel_wait_readable(struct tern_channel *ch, int timeout_ms);
/* After telling a two-way peer we give up: stop writing and swallow what
 * it still sends until it hangs up (or timeout_ms), so closing does not
 * reset the connection before the peer has read why. */
void tern_channel_linger(struct tern_channel *ch, int timeout_ms);
/*
 * The stream written to this channel failed or was cancelled: a file the
 * channel created is removed, and err (if not NULL) gets "; nothing was
 * kept" added; a file:PATH that stays (it existed before, is not a
 * regular file, or cannot be removed) gets err saying it is incomplete.
 * Not for sockets, pipes or fd:N: nothing is added.  Never unlinks a file
 * it did not create.
 */
void tern_channel_abandon(struct tern_channel *ch, struct tern_error *err);
void tern_channel_close(struct tern_channel *ch);

#endif
