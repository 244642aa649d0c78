/* poll()-based event loop; see loop.h. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct loop_call {
	void (*fn)(void *opaque);
	void *opaque;
	struct loop_call *next;
};

/* Run what other threads posted, in order. */
static void run_posted(void *opaque, int fd, short revents)
{
	(void)revents;
	struct loop *l = opaque;
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof v);
	(void)n; /* the list below is the truth, the counter only wakes us */
	pthread_mutex_lock(&l->post_lock);
	struct loop_call *c = l->posted;
	l->posted = NULL;
	l->posted_tail = &l->posted;
	pthread_mutex_unlock(&l->post_lock);
	while (c != NULL) {
		struct loop_call *next = c->next;
		c->fn(c->opaque);
		free(c);
		c = next;
	}
}

void loop_init(struct loop *l)
{
	memset(l, 0, sizeof *l);
	l->next_id = 1;
	l->owner = pthread_self();
	pthread_mutex_init(&l->post_lock, NULL);
	l->posted_tail = &l->posted;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd >= 0 && loop_add(l, l->wake_fd, POLLIN, run_posted, l) < 0) {
		close(l->wake_fd);
		l->wake_fd = -1;
	}
}

void loop_destroy(struct loop *l)
{
	/* Posted work still runs: it may free what it was handed. */
	if (l->wake_fd >= 0) {
		run_posted(l, l->wake_fd, POLLIN);
		close(l->wake_fd);
	}
	pthread_mutex_destroy(&l->post_lock);
	free(l->sources);
	free(l->pollfds);
	free(l->poll_ids);
	memset(l, 0, sizeof *l);
	l->wake_fd = -1;
}

int loop_post(struct loop *l, void (*fn)(void *opaque), void *opaque)
{
	if (l->wake_fd < 0)
		return -EBADF;
	struct loop_call *c = malloc(sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	*c = (struct loop_call){ fn, opaque, NULL };
	pthread_mutex_lock(&l->post_lock);
	*l->posted_tail = c;
	l->posted_tail = &c->next;
	pthread_mutex_unlock(&l->post_lock);
	uint64_t one = 1;
	ssize_t n = write(l->wake_fd, &one, sizeof one);
	(void)n; /* a saturated counter wakes the loop all the same */
	return 0;
}

int loop_is_owner(const struct loop *l)
{
	return pthread_equal(pthread_self(), l->owner);
}

static struct loop_source *find(struct loop *l, int64_t handle)
{
	for (unsigned i = 0; i < l->count; i++)
		if (l->sources[i].id == (uint64_t)handle)
			return &l->sources[i];
	return NULL;
}

int64_t loop_add(struct loop *l, int fd, short events, loop_fn fn, void *opaque)
{
	unsigned slot = 0;
	while (slot < l->count && l->sources[slot].id != 0)
		slot++;
	if (slot == l->count) {
		if (l->count == l->capacity) {
			unsigned cap = l->capacity ? l->capacity * 2 : 16;
			struct loop_source *s = realloc(l->sources, cap * sizeof *s);
			if (s == NULL)
				return -ENOMEM;
			l->sources = s;
			struct pollfd *p = realloc(l->pollfds, cap * sizeof *p);
			if (p == NULL)
				return -ENOMEM;
			l->pollfds = p;
			uint64_t *ids = realloc(l->poll_ids, cap * sizeof *ids);
			if (ids == NULL)
				return -ENOMEM;
			l->poll_ids = ids;
			l->capacity = cap;
		}
		l->count++;
	}
	uint64_t id = l->next_id++;
	l->sources[slot] = (struct loop_source){ fd, events, fn, opaque, id };
	return (int64_t)id;
}

void loop_set_events(struct loop *l, int64_t handle, short events)
{
	struct loop_source *s = find(l, handle);
	if (s != NULL)
		s->events = events;
}

void loop_remove(struct loop *l, int64_t handle)
{
	struct loop_source *s = find(l, handle);
	if (s != NULL)
		s->id = 0;
}

int loop_timer_fd(unsigned ms)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct itimerspec when = {
		.it_value = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 },
	};
	if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0)
		when.it_value.tv_nsec = 1;
	if (timerfd_settime(fd, 0, &when, NULL) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	nfds_t n = 0;
	for (unsigned i = 0; i < l->count; i++) {
		const struct loop_source *s = &l->sources[i];
		if (s->id == 0 || s->events == 0)
			continue;
		l->pollfds[n] = (struct pollfd){ .fd = s->fd, .events = s->events };
		l->poll_ids[n] = s->id;
		n++;
	}
	int ready = poll(l->pollfds, n, timeout_ms);
	if (ready < 0)
		return errno == EINTR ? 0 : -errno;
	for (nfds_t i = 0; i < n && ready > 0; i++) {
		if (l->pollfds[i].revents == 0)
			continue;
		ready--;
		/* A callback may have removed this source, or reused its slot. */
		struct loop_source *s = find(l, (int64_t)l->poll_ids[i]);
		if (s != NULL)
			s->fn(s->opaque, s->fd, l->pollfds[i].revents);
	}
	return 0;
}
