/*
 * Serial backends, in the spirit of QEMU's chardevs:
 *   stdio                     the terminal (or pipes) tern runs on
 *   file:PATH                 output to a file, no input
 *   unix:PATH,server[,wait=on|off]
 *                             a unix socket a client connects to, both
 *                             directions; with wait=on (the default, as in
 *                             QEMU) the VM starts only once a client is there
 *   null                      nothing
 * Output comes from vCPU threads; input is read by the main loop.
 */
#ifndef VMM_CHARDEV_H
#define VMM_CHARDEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "tern/error.h"

enum chardev_kind { CHARDEV_NULL, CHARDEV_STDIO, CHARDEV_FILE, CHARDEV_UNIX_SERVER };

struct chardev {
	enum chardev_kind kind;
	pthread_mutex_t lock; /* guards out_fd against a disconnect mid-write */
	int in_fd, out_fd;
	int listen_fd;
	int wait_for_client;
	char path[108];
	struct loop *loop;
	int64_t in_handle, listen_handle;
	/* Where input goes; returns how many bytes were taken. */
	size_t (*receive)(void *opaque, const uint8_t *data, size_t len);
	size_t (*room)(void *opaque);
	void *opaque;
	uint8_t pending[256];
	size_t pending_len, pending_off;
};

int chardev_open(struct chardev *c, const char *spec, struct tern_error *err);
void chardev_close(struct chardev *c);
/* Block until a client connects when the spec asked to wait for one. */
int chardev_wait_for_client(struct chardev *c, struct tern_error *err);
void chardev_attach(struct chardev *c, struct loop *loop,
		    size_t (*receive)(void *, const uint8_t *, size_t), size_t (*room)(void *),
		    void *opaque);
/* Before each poll: read input only while the receiver has room. Returns
 * nonzero when input is held back (the caller polls again soon). */
int chardev_throttle(struct chardev *c);
void chardev_write(struct chardev *c, const uint8_t *data, size_t len);

#endif
