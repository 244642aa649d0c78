/* The main loop: dispatch, sources removed from inside callbacks, work
 * posted from other threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

struct ctx {
	struct loop *loop;
	int64_t other;
	int hits_a, hits_b;
};

static void on_a(void *opaque, int fd, short revents)
{
	struct ctx *c = opaque;
	char b;
	assert_true(revents & POLLIN);
	assert_int_equal(read(fd, &b, 1), 1);
	c->hits_a++;
	loop_remove(c->loop, c->other); /* b is ready too, but must not run */
}

static void on_b(void *opaque, int fd, short revents)
{
	(void)fd;
	(void)revents;
	struct ctx *c = opaque;
	c->hits_b++;
}

static void removal_inside_callback(void **state)
{
	(void)state;
	struct loop l;
	loop_init(&l);
	int pa[2], pb[2];
	assert_int_equal(pipe(pa), 0);
	assert_int_equal(pipe(pb), 0);
	struct ctx c = { .loop = &l };
	assert_true(loop_add(&l, pa[0], POLLIN, on_a, &c) > 0);
	c.other = loop_add(&l, pb[0], POLLIN, on_b, &c);
	assert_int_equal(write(pa[1], "x", 1), 1);
	assert_int_equal(write(pb[1], "y", 1), 1);
	assert_int_equal(loop_run_once(&l, 1000), 0);
	assert_int_equal(c.hits_a, 1);
	assert_int_equal(c.hits_b, 0);
	assert_int_equal(loop_run_once(&l, 0), 0); /* removed for good */
	assert_int_equal(c.hits_b, 0);
	loop_destroy(&l);
	close(pa[0]), close(pa[1]), close(pb[0]), close(pb[1]);
}

static void events_zero_means_not_polled(void **state)
{
	(void)state;
	struct loop l;
	loop_init(&l);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct ctx c = { .loop = &l };
	int64_t h = loop_add(&l, p[0], POLLIN, on_b, &c);
	assert_int_equal(write(p[1], "y", 1), 1);
	loop_set_events(&l, h, 0);
	assert_int_equal(loop_run_once(&l, 0), 0);
	assert_int_equal(c.hits_b, 0);
	loop_set_events(&l, h, POLLIN);
	assert_int_equal(loop_run_once(&l, 0), 0);
	assert_int_equal(c.hits_b, 1);
	/* Many sources: the table grows. */
	for (int i = 0; i < 100; i++)
		assert_true(loop_add(&l, p[0], 0, on_b, &c) > 0);
	loop_destroy(&l);
	close(p[0]), close(p[1]);
}

struct posted {
	struct loop *loop;
	int order[65];
	int n;
	int on_owner;
};

struct post_arg {
	struct posted *p;
	int value;
};

static struct post_arg args[64];

static void record(void *opaque)
{
	struct post_arg *a = opaque;
	a->p->order[a->p->n++] = a->value;
	a->p->on_owner += loop_is_owner(a->p->loop);
}

static void *poster(void *opaque)
{
	struct posted *p = opaque;
	assert_false(loop_is_owner(p->loop));
	for (int i = 0; i < 64; i++) {
		args[i] = (struct post_arg){ p, i };
		assert_int_equal(loop_post(p->loop, record, &args[i]), 0);
	}
	return NULL;
}

static void work_posted_from_another_thread_runs_in_order(void **state)
{
	(void)state;
	struct loop l;
	loop_init(&l);
	struct posted p = { .loop = &l };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, poster, &p), 0);
	pthread_join(t, NULL);
	assert_int_equal(p.n, 0); /* nothing runs until the loop does */
	assert_int_equal(loop_run_once(&l, 1000), 0);
	assert_int_equal(p.n, 64);
	assert_int_equal(p.on_owner, 64);
	for (int i = 0; i < 64; i++)
		assert_int_equal(p.order[i], i);
	/* Work still queued at the end runs when the loop goes away. */
	args[0].value = 99;
	assert_int_equal(loop_post(&l, record, &args[0]), 0);
	loop_destroy(&l);
	assert_int_equal(p.n, 65);
	assert_int_equal(p.order[64], 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(removal_inside_callback),
		cmocka_unit_test(events_zero_means_not_polled),
		cmocka_unit_test(work_posted_from_another_thread_runs_in_order),
	};
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
