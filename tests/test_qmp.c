/* The QMP protocol: negotiation, request validation, arguments, errors. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/proc.h"
#include "../harness/sock.h"
#include "qmp/qmp.h"

static int calls;

static int cmd_echo(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)err;
	calls++;
	assert_ptr_equal(opaque, &calls);
	*ret = json_deep_copy(args);
	return 0;
}

static int cmd_fail(void *opaque, json_t *args, json_t **ret, struct tern_error *err)
{
	(void)opaque;
	(void)args;
	(void)ret;
	return tern_errorf(err, -EBUSY, "the thing is busy; try later");
}

static const struct qmp_arg echo_args[] = {
	{ "n", QMP_INT, 0 },
	{ "flag", QMP_BOOL, 1 },
	{ "name", QMP_STR, 1 },
	{ NULL, QMP_ANY, 0 },
};

static const struct qmp_command commands[] = {
	{ "echo", cmd_echo, echo_args },
	{ "fail", cmd_fail, NULL },
	{ NULL, NULL, NULL },
};

struct fixture {
	struct qmp_server server;
	int negotiated;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof f);
	qmp_server_add_commands(&f.server, commands, &calls);
	*state = &f;
	calls = 0;
	return 0;
}

static json_t *ask(struct fixture *f, const char *text)
{
	return qmp_handle_text(&f->server, &f->negotiated, text, strlen(text));
}

static void expect_error(struct fixture *f, const char *text, const char *cls, const char *desc)
{
	json_t *r = ask(f, text);
	json_t *e = json_object_get(r, "error");
	if (e == NULL)
		fail_msg("'%s' did not fail", text);
	assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
	const char *d = json_string_value(json_object_get(e, "desc"));
	if (strstr(d, desc) == NULL)
		fail_msg("'%s' failed with '%s', expected '%s'", text, d, desc);
	json_decref(r);
}

static void negotiation_first(void **state)
{
	struct fixture *f = *state;
	expect_error(f, "{\"execute\":\"echo\",\"arguments\":{\"n\":1}}", "CommandNotFound",
		     "Expecting capabilities negotiation");
	assert_int_equal(calls, 0);
	json_t *r = ask(f, "{\"execute\":\"qmp_capabilities\",\"id\":\"a\"}");
	assert_non_null(json_object_get(r, "return"));
	assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
	json_decref(r);
	expect_error(f, "{\"execute\":\"qmp_capabilities\"}", "CommandNotFound", "already complete");
}

static void arguments_checked(void **state)
{
	struct fixture *f = *state;
	f->negotiated = 1;
	json_t *r = ask(f, "{\"execute\":\"echo\",\"arguments\":{\"n\":5,\"flag\":true},\"id\":9}");
	assert_int_equal(calls, 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "n")), 5);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
	json_decref(r);
	expect_error(f, "{\"execute\":\"echo\"}", "GenericError", "Parameter 'n' is missing");
	expect_error(f, "{\"execute\":\"echo\",\"arguments\":{\"n\":\"5\"}}", "GenericError",
		     "Invalid parameter type for 'n', expected: integer");
	expect_error(f, "{\"execute\":\"echo\",\"arguments\":{\"n\":1,\"flag\":1}}", "GenericError",
		     "expected: boolean");
	expect_error(f, "{\"execute\":\"echo\",\"arguments\":{\"n\":1,\"zz\":1}}", "GenericError",
		     "Parameter 'zz' is unexpected");
	expect_error(f, "{\"execute\":\"fail\",\"arguments\":{\"x\":1}}", "GenericError",
		     "Parameter 'x' is unexpected");
	assert_int_equal(calls, 1); /* none of the bad ones ran */
}

static void malformed_requests(void **state)
{
	struct fixture *f = *state;
	f->negotiated = 1;
	expect_error(f, "{\"execute\":", "GenericError", "JSON parse error");
	expect_error(f, "nonsense", "GenericError", "JSON parse error");
	expect_error(f, "[1]", "GenericError", "must be a JSON object");
	expect_error(f, "{}", "GenericError", "lacks member 'execute'");
	expect_error(f, "{\"execute\":1}", "GenericError", "'execute' must be a string");
	expect_error(f, "{\"execute\":\"echo\",\"arguments\":[]}", "GenericError",
		     "'arguments' must be an object");
	expect_error(f, "{\"execute\":\"echo\",\"extra\":1}", "GenericError",
		     "member 'extra' is unexpected");
	expect_error(f, "{\"execute\":\"nope\"}", "CommandNotFound",
		     "The command nope has not been found");
	expect_error(f, "{\"execute\":\"x\",\"execute\":\"y\"}", "GenericError", "duplicate");
	expect_error(f, "{\"execute\":\"fail\"}", "GenericError", "busy; try later");
	/* A parse error quoting bytes that are not UTF-8 still gets a reply
	 * (found by fuzz_qmp). */
	expect_error(f, "\"\\\xdf\x82\xdf\x91\xa4\xa2\xdd\x33", "GenericError", "JSON parse error");
}

static void id_echoed_on_errors(void **state)
{
	struct fixture *f = *state;
	f->negotiated = 1;
	json_t *r = ask(f, "{\"execute\":\"nope\",\"id\":[1,2]}");
	assert_non_null(json_object_get(r, "error"));
	assert_int_equal(json_array_size(json_object_get(r, "id")), 2);
	json_decref(r);
}

static void command_list(void **state)
{
	struct fixture *f = *state;
	json_t *list = qmp_server_command_list(&f->server);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
			    "qmp_capabilities");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "name")),
			    "fail");
	json_decref(list);
}

/* ------------------------------------------------------------ live update */

/* Run the server's loop until it has nothing more to do for a while. */
static void pump(struct loop *l)
{
	for (int i = 0; i < 10; i++)
		loop_run_once(l, 20);
}

/* A client sends text and the server's loop runs. */
static void say(struct text_stream *client, struct loop *l, const char *text)
{
	size_t n = strlen(text);
	assert_int_equal(write(client->fd, text, n), (ssize_t)n);
	pump(l);
}

static long expect_reply(struct text_stream *t, size_t *from, const char *needle)
{
	long at = text_stream_wait(t, *from, needle, 2000);
	if (at < 0)
		fail_msg("no '%s' in '%.*s'", needle, (int)t->len, t->buf);
	*from = (size_t)at;
	return at;
}

/* What the old process leaves of a server it hands over: its memory and
 * its own timer, not the sockets, which the new one serves. */
static void abandon(struct qmp_server *s)
{
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		qmp_framer_destroy(&s->client[i].framer);
		free(s->client[i].out);
	}
	close(s->timer_fd);
}

/* Has the server closed fd?  What it sent first is read into t. */
static int closed_by_peer(struct text_stream *t, int timeout_ms)
{
	double deadline = deadline_ms(timeout_ms);
	while (now_ms() < deadline) {
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if (t->len + 4097 > t->cap) {
			t->cap *= 2;
			t->buf = realloc(t->buf, t->cap);
			assert_non_null(t->buf);
		}
		ssize_t n = recv(t->fd, t->buf + t->len, 4096, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (n > 0) {
			t->len += (size_t)n;
			t->buf[t->len] = '\0';
		}
	}
	return 0;
}

/* A client halfway through a request and one that never negotiated keep
 * both through an update: the request completes as sent, and the other
 * still has to negotiate.  A state that does not match is refused. */
static void clients_carried_across_an_update(void **state)
{
	(void)state;
	char *dir = harness_tmpdir();
	char spec[300];
	snprintf(spec, sizeof spec, "unix:%s/qmp.sock", dir);
	struct tern_fdstore *store = tern_fdstore_new();
	struct loop old_loop, new_loop;
	loop_init(&old_loop);
	loop_init(&new_loop);
	struct qmp_server old, new;
	struct tern_error err = { .msg = "" };
	assert_int_equal(qmp_server_open(&old, spec, &old_loop, store, &err), 0);
	qmp_server_add_commands(&old, commands, &calls);
	struct text_stream a, b;
	size_t at_a = 0, at_b = 0;
	text_stream_init(&a, unix_connect_retry(spec + 5, 2000));
	pump(&old_loop);
	text_stream_init(&b, unix_connect_retry(spec + 5, 2000));
	pump(&old_loop);
	expect_reply(&a, &at_a, "\"QMP\"");
	expect_reply(&b, &at_b, "\"QMP\"");
	say(&a, &old_loop, "{\"execute\": \"qmp_capabilities\"}\r\n");
	expect_reply(&a, &at_a, "\"return\"");
	say(&a, &old_loop, "{\"execute\": \"echo\", \"arguments\": {\"n\": 4");

	struct tern_buf saved = { 0 };
	assert_int_equal(vm_state_save_one(&qmp_clients_type, &old, &saved, &err), 0);
	/* The new process adopts the same sockets from the fd store. */
	assert_int_equal(qmp_server_open(&new, spec, &new_loop, store, &err), 0);
	qmp_server_add_commands(&new, commands, &calls);
	new.negotiate_ms = 300 * (unsigned)time_scale(); /* set before the load, which starts it */
	struct tern_buf wrong = { 0 };
	tern_buf_u8(&wrong, 11);
	tern_buf_put(&wrong, "qmp-clients", 11);
	tern_buf_u32(&wrong, 1);
	tern_buf_u32(&wrong, 0); /* no client, where two were passed on */
	tern_buf_u8(&wrong, 0);
	assert_int_equal(vm_state_load_one(&qmp_clients_type, &new, wrong.data, wrong.len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "different number"));
	assert_int_equal(vm_state_load_one(&qmp_clients_type, &new, saved.data, saved.len - 1,
					   &err), -EBADMSG);
	assert_int_equal(vm_state_load_one(&qmp_clients_type, &new, saved.data, saved.len, &err),
			 0);

	say(&a, &new_loop, "2, \"name\": \"x\"}}\r\n");
	expect_reply(&a, &at_a, "{\"return\":{\"n\":42,\"name\":\"x\"}}");
	say(&b, &new_loop, "{\"execute\": \"echo\", \"arguments\": {\"n\": 1}}\r\n");
	expect_reply(&b, &at_b, "qmp_capabilities");
	/* b's time to negotiate runs again in the new process, and ends. */
	int dropped = 0;
	for (int i = 0; i < 500 && !dropped; i++) {
		pump(&new_loop);
		dropped = text_stream_wait(&b, at_b, "did not negotiate", 1) >= 0;
	}
	assert_true(dropped);
	assert_true(closed_by_peer(&b, 5000));
	say(&a, &new_loop, "{\"execute\": \"echo\", \"arguments\": {\"n\": 7}}\r\n");
	expect_reply(&a, &at_a, "{\"return\":{\"n\":7}}");

	close(a.fd);
	close(b.fd);
	text_stream_free(&a);
	text_stream_free(&b);
	tern_buf_free(&saved);
	tern_buf_free(&wrong);
	abandon(&old);
	new.handed_over = 0;
	qmp_server_close(&new);
	loop_destroy(&old_loop);
	loop_destroy(&new_loop);
	tern_fdstore_free(store);
	harness_rmtree(dir);
	free(dir);
}

/* ------------------------------------------------ a server on its own thread */

struct bg {
	struct loop loop;
	struct qmp_server s;
	char *dir;
	char path[300];
	pthread_t thread;
	atomic_int stop;
};

static void *bg_run(void *arg)
{
	struct bg *b = arg;
	while (!atomic_load(&b->stop))
		loop_run_once(&b->loop, 20);
	return NULL;
}

/* negotiate_ms 0: the default. */
static void bg_open(struct bg *b, unsigned negotiate_ms)
{
	memset(b, 0, sizeof *b);
	b->dir = harness_tmpdir();
	assert_non_null(b->dir);
	snprintf(b->path, sizeof b->path, "%s/qmp.sock", b->dir);
	char spec[310];
	snprintf(spec, sizeof spec, "unix:%s", b->path);
	loop_init(&b->loop);
	struct tern_error err = { .msg = "" };
	if (qmp_server_open(&b->s, spec, &b->loop, NULL, &err) < 0)
		fail_msg("%s", err.msg);
	if (negotiate_ms != 0)
		b->s.negotiate_ms = negotiate_ms;
	qmp_server_add_commands(&b->s, commands, &calls);
	assert_int_equal(pthread_create(&b->thread, NULL, bg_run, b), 0);
}

static void bg_close(struct bg *b)
{
	atomic_store(&b->stop, 1);
	pthread_join(b->thread, NULL);
	qmp_server_close(&b->s);
	loop_destroy(&b->loop);
	harness_rmtree(b->dir);
	free(b->dir);
}

static int echo_works(struct qmp_conn *q, int n)
{
	json_t *r = qmp_execute(q, "echo", json_pack("{s:i}", "n", n), 5000);
	int ok = json_integer_value(json_object_get(qmp_return(r), "n")) == n;
	json_decref(r);
	return ok;
}

/* A connection that sends nothing; its greeting is read. */
static void idle_connect(struct text_stream *t, const char *path)
{
	text_stream_init(t, unix_connect_retry(path, 5000));
	assert_true(t->fd >= 0);
	assert_true(text_stream_wait(t, 0, "\"QMP\"", 5000) >= 0);
}

/* A request nested too deeply that never closes ends with its line: its
 * error names the nesting, and what follows is answered. */
static void deep_request_then_normal_replies(void **state)
{
	(void)state;
	struct bg b;
	bg_open(&b, 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, b.path, 1, 5000), 0);
	size_t depth = QMP_MAX_NESTING + 100;
	char *deep = malloc(depth + 2);
	memset(deep, '[', depth);
	memcpy(deep + depth, "\r\n", 2);
	assert_int_equal(qmp_send_raw(&q, deep, depth + 2), 0);
	free(deep);
	json_t *r = qmp_read(&q, 5000);
	const char *desc = json_string_value(json_object_get(json_object_get(r, "error"), "desc"));
	if (desc == NULL || strstr(desc, "nested more than 1024 levels") == NULL)
		fail_msg("the deep request got '%s'", desc ? desc : "no error");
	json_decref(r);
	assert_true(echo_works(&q, 3));
	assert_true(echo_works(&q, 4));
	qmp_close(&q);
	bg_close(&b);
}

/* A client that does not negotiate in time is told so and dropped; one
 * that did stays. */
static void idle_clients_dropped(void **state)
{
	(void)state;
	struct bg b;
	bg_open(&b, 500 * (unsigned)time_scale());
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, b.path, 1, 5000), 0);
	struct text_stream idle;
	idle_connect(&idle, b.path);
	assert_true(closed_by_peer(&idle, 10000));
	if (strstr(idle.buf, "did not negotiate within") == NULL)
		fail_msg("dropped without a word: '%s'", idle.buf);
	assert_true(echo_works(&q, 5)); /* connected before it, still here */
	close(idle.fd);
	text_stream_free(&idle);
	qmp_close(&q);
	bg_close(&b);
}

/* Clients that never negotiate cannot lock others out: at most 15 of them
 * hold slots, and a newcomer takes the place of the oldest.  Negotiated
 * clients are never pushed out; only 16 of them fill the server. */
static void idle_clients_do_not_lock_others_out(void **state)
{
	(void)state;
	struct bg b;
	bg_open(&b, 0); /* the default deadline, far beyond this test */
	enum { IDLE = 20 };
	struct text_stream idle[IDLE];
	for (int i = 0; i < IDLE; i++)
		idle_connect(&idle[i], b.path);
	struct qmp_conn q[QMP_MAX_CLIENTS + 1];
	assert_int_equal(qmp_connect(&q[0], b.path, 1, 5000), 0);
	assert_true(echo_works(&q[0], 1));
	/* The first ones made room, told why; the last ones wait on. */
	assert_true(closed_by_peer(&idle[0], 5000));
	if (strstr(idle[0].buf, "needed its slot") == NULL)
		fail_msg("dropped without a word: '%s'", idle[0].buf);
	for (int i = 1; i < QMP_MAX_CLIENTS; i++)
		assert_int_equal(qmp_connect(&q[i], b.path, 1, 5000), 0);
	for (int i = 0; i < QMP_MAX_CLIENTS; i++)
		assert_true(echo_works(&q[i], i));
	/* Every idle one has gone by now, and 16 negotiated clients are full. */
	for (int i = 0; i < IDLE; i++) {
		assert_true(closed_by_peer(&idle[i], 5000));
		close(idle[i].fd);
		text_stream_free(&idle[i]);
	}
	struct text_stream extra;
	text_stream_init(&extra, unix_connect_retry(b.path, 5000));
	assert_true(text_stream_wait(&extra, 0, "too many QMP clients", 5000) >= 0);
	close(extra.fd);
	text_stream_free(&extra);
	/* Once one has left (and the server has seen it go), another gets in. */
	qmp_close(&q[3]);
	double deadline = deadline_ms(5000);
	int rc;
	while ((rc = qmp_connect(&q[QMP_MAX_CLIENTS], b.path, 1, 5000)) < 0 && now_ms() < deadline)
		qmp_close(&q[QMP_MAX_CLIENTS]);
	assert_int_equal(rc, 0);
	assert_true(echo_works(&q[QMP_MAX_CLIENTS], 9));
	for (int i = 0; i <= QMP_MAX_CLIENTS; i++)
		if (i != 3)
			qmp_close(&q[i]);
	bg_close(&b);
}

/* The socket is its owner's alone (0600) whatever the umask, replaces what
 * a previous run left, and leaves nothing else beside it; also where its
 * path is too long to be bound from the private directory directly. */
static void socket_is_owners_only(void **state)
{
	(void)state;
	char *dir = harness_tmpdir();
	char sub[300], path[300], spec[310];
	snprintf(sub, sizeof sub, "%s/", dir);
	while (strlen(sub) < 90)
		strcat(sub, "d");
	assert_int_equal(mkdir(sub, 0755), 0);
	mode_t old_umask = umask(0);
	for (int pass = 0; pass < 2; pass++) {
		const char *where = pass == 0 ? dir : sub;
		snprintf(path, sizeof path, "%s/q.sock", where);
		FILE *stale = fopen(path, "w");
		assert_non_null(stale);
		fclose(stale);
		snprintf(spec, sizeof spec, "unix:%s", path);
		struct loop l;
		loop_init(&l);
		struct qmp_server s;
		struct tern_error err = { .msg = "" };
		if (qmp_server_open(&s, spec, &l, NULL, &err) < 0)
			fail_msg("%s: %s", path, err.msg);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISSOCK(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0600);
		DIR *d = opendir(where);
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 &&
			    strcmp(e->d_name, "..") != 0)
				fail_msg("left behind: %s/%s", where, e->d_name);
		closedir(d);
		struct text_stream t;
		text_stream_init(&t, unix_connect_retry(path, 5000));
		assert_true(t.fd >= 0);
		pump(&l);
		assert_true(text_stream_wait(&t, 0, "\"QMP\"", 5000) >= 0);
		close(t.fd);
		text_stream_free(&t);
		qmp_server_close(&s);
		loop_destroy(&l);
	}
	umask(old_umask);
	harness_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(negotiation_first, setup),
		cmocka_unit_test_setup(arguments_checked, setup),
		cmocka_unit_test_setup(malformed_requests, setup),
		cmocka_unit_test_setup(id_echoed_on_errors, setup),
		cmocka_unit_test_setup(command_list, setup),
		cmocka_unit_test(clients_carried_across_an_update),
		cmocka_unit_test(deep_request_then_normal_replies),
		cmocka_unit_test(idle_clients_dropped),
		cmocka_unit_test(idle_clients_do_not_lock_others_out),
		cmocka_unit_test(socket_is_owners_only),
	};
	return cmocka_run_group_tests_name("qmp", tests, NULL, NULL);
}
