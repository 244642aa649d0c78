/*
 * The I/O queue's state, shared by its core (queue.c: submission,
 * completion, the thread-pool engine) and the io_uring engine (uring.c).
 */
#ifndef TERN_BLOCK_QUEUE_INT_H
#define TERN_BLOCK_QUEUE_INT_H

#include <liburing.h>

#include "block_int.h"

struct tern_block_queue {
	struct tern_block *b;
	bool uring;
	unsigned depth;
	pthread_t io_thread;
	int kick_fd; /* eventfd: wakes the I/O thread */
	int watch_fd;
	void (*ready)(void *opaque);
	void *ready_opaque;

	pthread_mutex_t lock;
	pthread_cond_t idle; /* completed caught up with submitted */
	pthread_cond_t work; /* workers: pending is not empty, or stop */
	struct tern_block_req *pending, **pending_tail; /* submitted, not started */
	struct tern_block_req *done, **done_tail;	/* threads: finished by a worker */
	uint64_t submitted, completed;
	bool sleeping; /* io_uring: the I/O thread waits; a submission must kick */
	bool stop;

	pthread_t *workers;
	unsigned nworkers;

	struct io_uring ring;
	unsigned inflight;
	bool fixed_file; /* the image's fd is registered as file 0 */
	bool no_nowait_read, no_nowait_write; /* RWF_NOWAIT refused */
	uint64_t kick_buf;
};

/* Take every pending request, in order (NULL if none). */
struct tern_block_req *queue_take_pending(struct tern_block_queue *q);
/* Check, bounce, start the clock: 0, or the error to complete with. */
int queue_req_begin(struct tern_block_queue *q, struct tern_block_req *req);
/* Run a begun request here, synchronously. */
int queue_req_exec(struct tern_block_queue *q, struct tern_block_req *req);
/* Unbounce, account, run the callback, count it completed. */
void queue_req_end(struct tern_block_queue *q, struct tern_block_req *req, int ret);
bool queue_on_io_thread(const struct tern_block_queue *q);

/* io_uring engine (uring.c): set-up (0, or -errno when the kernel says
 * no), the I/O thread's loop, tear-down. */
int uring_setup(struct tern_block_queue *q);
void *uring_thread(void *arg);
void uring_teardown(struct tern_block_queue *q);

#endif
