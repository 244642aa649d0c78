/*
 * The main thread's event loop: file descriptors with callbacks, run with
 * poll().  Sources may be added and removed from inside callbacks; other
 * threads hand work to the loop's thread with loop_post.
 */
#ifndef VMM_LOOP_H
#define VMM_LOOP_H

#include <poll.h>
#include <pthread.h>
#include <stdint.h>

typedef void (*loop_fn)(void *opaque, int fd, short revents);

struct loop_source {
	int fd;
	short events;
	loop_fn fn;
	void *opaque;
	uint64_t id; /* 0 = free slot */
};

struct loop_call;

struct loop {
	pthread_t owner;          /* the thread that runs it */
	pthread_mutex_t post_lock;
	struct loop_call *posted, **posted_tail;
	int wake_fd;              /* eventfd: something was posted */
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

/* Any thread: run fn(opaque) on the loop's thread soon, in the order
 * posted.  0, or -errno (nothing will run). */
int loop_post(struct loop *l, void (*fn)(void *opaque), void *opaque);
/* Is the caller the loop's thread? */
int loop_is_owner(const struct loop *l);

/* Wait up to timeout_ms (-1: forever) and dispatch; returns 0 or -errno. */
int loop_run_once(struct loop *l, int timeout_ms);

#endif
