/* The QMP protocol: negotiation, request validation, arguments, errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/sock.h"
#include "../vmm/qmp.h"

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

/* What the old process leaves of a server it hands over: its memory, not
 * the sockets, which the new one serves. */
static void abandon(struct qmp_server *s)
{
	for (unsigned i = 0; i < QMP_MAX_CLIENTS; i++) {
		qmp_framer_destroy(&s->client[i].framer);
		free(s->client[i].out);
	}
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
	qmp_server_save_clients(&old, &saved);
	assert_false(saved.failed);
	/* The new process adopts the same sockets from the fd store. */
	assert_int_equal(qmp_server_open(&new, spec, &new_loop, store, &err), 0);
	qmp_server_add_commands(&new, commands, &calls);
	struct tern_buf wrong = { 0 };
	tern_buf_u32(&wrong, 1); /* one client, where two were passed on */
	assert_int_equal(qmp_server_load_clients(&new, wrong.data, wrong.len, &err), -EBADMSG);
	assert_int_equal(qmp_server_load_clients(&new, saved.data, saved.len - 1, &err),
			 -EBADMSG);
	assert_int_equal(qmp_server_load_clients(&new, saved.data, saved.len, &err), 0);

	say(&a, &new_loop, "2, \"name\": \"x\"}}\r\n");
	expect_reply(&a, &at_a, "{\"return\":{\"n\":42,\"name\":\"x\"}}");
	say(&b, &new_loop, "{\"execute\": \"echo\", \"arguments\": {\"n\": 1}}\r\n");
	expect_reply(&b, &at_b, "qmp_capabilities");

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(negotiation_first, setup),
		cmocka_unit_test_setup(arguments_checked, setup),
		cmocka_unit_test_setup(malformed_requests, setup),
		cmocka_unit_test_setup(id_echoed_on_errors, setup),
		cmocka_unit_test_setup(command_list, setup),
		cmocka_unit_test(clients_carried_across_an_update),
	};
	return cmocka_run_group_tests_name("qmp", tests, NULL, NULL);
}
