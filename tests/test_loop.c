/* The main loop: dispatch, and sources removed from inside callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "../vmm/loop.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(removal_inside_callback),
		cmocka_unit_test(events_zero_means_not_polled),
	};
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
