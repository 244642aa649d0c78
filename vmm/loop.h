/*
 * The main thread's event loop: file descriptors with callbacks, run with
 * poll().  Sources may be added and removed from inside callbacks.
 */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <poll.h>
#include <stdint.h>

typedef void (*loop_fn)(void *opaque, int fd, short revents);

struct loop_source {
	int fd;
	short events;
	loop_fn fn;
	void *opaque;
	uint64_t id; /* 0 = free slot */
};

struct loop {
	struct loop_source *sources;
	unsigned count, capacity;
	uint64_t next_id;
	struct pollfd *pollfds;
	uint64_t *poll_ids;
};

void loop_init(struct loop *l);
void loop_destroy(struct loop *l);
/* Returns a handle for loop_set_events/loop_remove, or a negative errno. */
int64_t loop_add(struct loop *l, int fd, short events, loop_fn fn, void *opaque);
void loop_set_events(struct loop *l, int64_t handle, short events);
void loop_remove(struct loop *l, int64_t handle);
/* A timerfd that becomes readable once, after ms milliseconds (poll it
 * like any source; close it when done).  Returns the fd or -errno. */
int loop_timer_fd(unsigned ms);

/* Wait up to timeout_ms (-1: forever) and dispatch; returns 0 or -errno. */
int loop_run_once(struct loop *l, int timeout_ms);

#endif
