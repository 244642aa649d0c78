/*
 * Serial backends, in the spirit of QEMU's chardevs:
 *   stdio                     the terminal (or pipes) tern runs on
 *   file:PATH                 output to a file, no input
 *   unix:PATH,server[,wait=on|off]
 *                             a unix socket a client connects to, both
 *                             directions; with wait=on (the default, as in
 *                             QEMU) the VM starts only once a client is there
 *   null                      nothing
 *
 * Output from vCPU threads goes into a buffer that the main loop drains;
 * while the buffer is full the UART reports its transmitter busy, so a
 * slow client slows the guest's printing down instead of blocking a vCPU.
 * Output with no client connected is discarded, as in QEMU.
 */
#ifndef VMM_CHARDEV_H
#define VMM_CHARDEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "tern/error.h"
#include "machine/vm_state.h"
#include "tern/fdstore.h"

#define CHARDEV_OUT_CAPACITY 65536

enum chardev_kind { CHARDEV_NULL, CHARDEV_STDIO, CHARDEV_FILE, CHARDEV_UNIX_SERVER };

struct chardev {
	enum chardev_kind kind;
	int in_fd, out_fd; /* for a socket, both are the client */
	int listen_fd;
	int wait_for_client;
	struct tern_fdstore *store; /* keeps its fds (may be NULL) */
	int handed_over;            /* a live update took the socket: leave its path */
	char path[108];
	struct loop *loop;
	int64_t in_handle, out_handle, listen_handle, wake_handle;
	/* Input: where it goes and how much fits. */
	size_t (*receive)(void *opaque, const uint8_t *data, size_t len);
	size_t (*room)(void *opaque);
	void *opaque;
	uint8_t pending[256];
	size_t pending_len, pending_off;
	/* Output, filled by vCPU threads under `lock`, drained by the loop. */
	pthread_mutex_t lock;
	uint8_t out[CHARDEV_OUT_CAPACITY];
	size_t out_head, out_len;
	int wake_fd; /* eventfd: output waiting */
	int woken;   /* a wake-up is in flight */
};

/* With a store, the fds are kept there, and fds a previous process kept
 * there are taken up instead of opening new ones. */
int chardev_open(struct chardev *c, const char *spec, struct tern_fdstore *store,
		 struct tern_error *err);
void chardev_close(struct chardev *c);
/* Block until a client connects when the spec asked to wait for one. */
int chardev_wait_for_client(struct chardev *c, struct tern_error *err);
int chardev_attach(struct chardev *c, struct loop *loop,
		   size_t (*receive)(void *, const uint8_t *, size_t), size_t (*room)(void *),
		   void *opaque);
/* Main loop, before each poll: read input only while the receiver has
 * room.  Returns nonzero when input is held back (poll again soon). */
int chardev_throttle(struct chardev *c);

/* Any thread: queue output; returns how much was taken (less when full). */
size_t chardev_write(struct chardev *c, const uint8_t *data, size_t len);
size_t chardev_write_room(struct chardev *c);
/* Copy what is queued and not yet written, leaving it queued. */
size_t chardev_copy_output(struct chardev *c, uint8_t *buf, size_t cap);
/* Forget it: a live update handed it to the new process. */
void chardev_discard_output(struct chardev *c);
/* That output as a state type (a live update carries it), holder a chardev. */
extern const struct vm_state_type chardev_output_type;
/* Main thread, at exit: deliver queued output, waiting up to timeout_ms. */
void chardev_flush(struct chardev *c, int timeout_ms);

#endif
