/*
 * QMP against a running VM: every command; malformed input, oversized and
 * deeply nested requests, binary garbage and clients that vanish
 * mid-request are answered or survived, and the guest runs on unharmed.
 */
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
#include "qmp/qmp_client.h"
#include "../harness/sock.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

/* Boot a guest that runs for a while under QMP control. */
static void start_vm(struct tern_vm *vm, const char *append)
{
	memset(vm, 0, sizeof *vm);
	assert_int_equal(tern_vm_start(vm, "--memory", "128M", "--append", append, NULL), 0);
	assert_true(proc_wait_for(&vm->proc, "tern-guest: start", 0, 20000) > 0);
}

static const char *error_class(json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply, "error"), "class"));
}

static void every_command(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm f;
	start_vm(&f, "workload=random ws=4M rate=20000");
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, f.qmp_path, 1, 10000), 0);
	assert_non_null(json_object_get(json_object_get(q.greeting, "QMP"), "capabilities"));

	json_t *r = qmp_execute(&q, "query-version", NULL, 5000);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(qmp_return(r), "qemu"), "minor")), 1);
	assert_non_null(strstr(json_string_value(json_object_get(qmp_return(r), "package")), "tern"));
	json_decref(r);

	r = qmp_execute(&q, "query-kvm", NULL, 5000);
	assert_true(json_is_true(json_object_get(qmp_return(r), "enabled")));
	assert_true(json_is_true(json_object_get(qmp_return(r), "present")));
	json_decref(r);

	r = qmp_execute(&q, "query-commands", NULL, 5000);
	const char *want[] = { "qmp_capabilities", "query-version", "query-status", "query-kvm",
			       "query-commands", "stop", "cont", "quit", "x-corrupt-guest-memory" };
	for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
		int found = 0;
		size_t k;
		json_t *c;
		json_array_foreach(qmp_return(r), k, c)
			found |= strcmp(json_string_value(json_object_get(c, "name")), want[i]) == 0;
		if (!found)
			fail_msg("query-commands lacks %s", want[i]);
	}
	json_decref(r);

	r = qmp_execute(&q, "query-status", NULL, 5000);
	assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")), "running");
	assert_true(json_is_true(json_object_get(qmp_return(r), "running")));
	json_decref(r);

	r = qmp_execute(&q, "stop", NULL, 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);
	json_t *ev = qmp_wait_event(&q, "STOP", 5000);
	assert_non_null(json_object_get(json_object_get(ev, "timestamp"), "seconds"));
	json_decref(ev);
	assert_int_equal(qmp_do(&q, "stop", NULL, NULL, 5000), 0); /* already stopped: fine */
	assert_int_equal(qmp_do(&q, "cont", NULL, "RESUME", 5000), 0);

	r = qmp_execute(&q, "x-corrupt-guest-memory", json_pack("{s:I}", "gpa", (json_int_t)1 << 40),
			5000);
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	r = qmp_execute(&q, "x-corrupt-guest-memory", json_pack("{s:i,s:i}", "gpa", 0, "size", 0),
			5000);
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);

	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	ev = qmp_wait_event(&q, "SHUTDOWN", 5000);
	assert_non_null(ev);
	json_t *data = json_object_get(ev, "data");
	assert_string_equal(json_string_value(json_object_get(data, "reason")), "host-qmp-quit");
	assert_true(json_is_false(json_object_get(data, "guest")));
	json_decref(ev);
	assert_int_equal(proc_wait(&f.proc, 10000), 0);
	qmp_close(&q);
	tern_vm_end(&f);
}

/* Send raw bytes and expect one error reply of `cls`. */
static void expect_error(struct qmp_conn *q, const char *raw, size_t len, const char *cls)
{
	assert_int_equal(qmp_send_raw(q, raw, len), 0);
	json_t *r = qmp_read(q, 10000);
	while (r != NULL && json_object_get(r, "event") != NULL) {
		json_decref(r);
		r = qmp_read(q, 10000);
	}
	if (r == NULL || error_class(r) == NULL || strcmp(error_class(r), cls) != 0)
		fail_msg("'%.40s' did not give a %s error", raw, cls);
	json_decref(r);
}

static void abuse_does_not_hurt_the_vm(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm f;
	start_vm(&f, "workload=hotcold ws=8M writes=2500000 seed=9");
	struct qmp_conn q;

	/* Before negotiation only qmp_capabilities works. */
	assert_int_equal(qmp_connect(&q, f.qmp_path, 0, 10000), 0);
	expect_error(&q, "{\"execute\":\"query-status\"}", 26, "CommandNotFound");
	json_t *r = qmp_execute(&q, "qmp_capabilities", NULL, 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);

	const char *bad[] = {
		"garbage\n",
		"{\"execute\":\"query-status\",}",
		"{\"execute\":\"query-status\",\"arguments\":[1]}",
		"{\"execute\":\"no-such-command\"}",
		"{\"execute\":\"x-corrupt-guest-memory\",\"arguments\":{\"gpa\":\"0\"}}",
		"{\"execute\":\"x-corrupt-guest-memory\",\"arguments\":{}}",
		"{\"execute\":\"stop\",\"arguments\":{\"now\":true}}",
		"[\"execute\",\"quit\"]",
		"{\"execute\":\"quit\",\"execute\":\"stop\"}",
		"\"\\ud800\"\n",
	};
	const char *cls[] = { "GenericError", "GenericError", "GenericError", "CommandNotFound",
			      "GenericError", "GenericError", "GenericError", "GenericError",
			      "GenericError", "GenericError" };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_error(&q, bad[i], strlen(bad[i]), cls[i]);

	/* Binary garbage with NUL bytes and invalid UTF-8. */
	const char bin[] = "{\"execute\":\"\xff\xfe\x00\x01\"}";
	expect_error(&q, bin, sizeof bin - 1, "GenericError");

	/* A request too large, then one nested too deeply: one error each,
	 * and the stream resynchronises. */
	size_t big = (2u << 20) + 16;
	char *huge = malloc(big);
	memcpy(huge, "{\"execute\":\"", 12);
	memset(huge + 12, 'a', big - 14);
	memcpy(huge + big - 2, "\"}", 2);
	expect_error(&q, huge, big, "GenericError");
	free(huge);
	char deep[4200];
	memset(deep, '[', 2100);
	memset(deep + 2100, ']', 2100);
	expect_error(&q, deep, sizeof deep, "GenericError");
	r = qmp_execute(&q, "query-status", NULL, 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);
	/* One nested too deeply that never closes ends with its line. */
	memcpy(deep + 2100, "\r\n", 2);
	expect_error(&q, deep, 2102, "GenericError");
	r = qmp_execute(&q, "query-status", NULL, 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);
	qmp_close(&q);

	/* Clients that leave mid-request, or right after connecting. */
	for (int i = 0; i < 20; i++) {
		int fd = unix_connect_retry(f.qmp_path, 5000);
		assert_true(fd >= 0);
		if (i % 2)
			assert_int_equal(write(fd, "{\"execute\":\"qmp_capab", 21), 21);
		close(fd);
	}

	/* Several clients at once, all told about a stop. */
	struct qmp_conn a, b;
	assert_int_equal(qmp_connect(&a, f.qmp_path, 1, 10000), 0);
	assert_int_equal(qmp_connect(&b, f.qmp_path, 1, 10000), 0);
	assert_int_equal(qmp_do(&a, "stop", NULL, NULL, 5000), 0);
	json_t *ev = qmp_wait_event(&b, "STOP", 5000);
	assert_non_null(ev);
	json_decref(ev);
	assert_int_equal(qmp_do(&b, "cont", NULL, NULL, 5000), 0);
	ev = qmp_wait_event(&a, "RESUME", 5000);
	assert_non_null(ev);
	json_decref(ev);
	qmp_close(&a);
	qmp_close(&b);

	/* The guest finishes its run and its memory verifies. */
	int status = proc_wait(&f.proc, 60000);
	if (status != 0 || strstr(proc_output(&f.proc), "verify ok (end)") == NULL)
		fail_msg("status %d:\n%s", status, proc_output(&f.proc));
	tern_vm_end(&f);
}

static void clients_in_turn(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct tern_vm f;
	start_vm(&f, "workload=idle");
	for (int i = 0; i < 5; i++) {
		struct qmp_conn q;
		assert_int_equal(qmp_connect(&q, f.qmp_path, 1, 10000), 0);
		json_t *r = qmp_execute(&q, "query-status", NULL, 5000);
		assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
				    "running");
		json_decref(r);
		qmp_close(&q);
	}
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, f.qmp_path, 1, 10000), 0);
	assert_int_equal(qmp_do(&q, "quit", NULL, NULL, 5000), 0);
	assert_int_equal(proc_wait(&f.proc, 10000), 0);
	qmp_close(&q);
	tern_vm_end(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_command),
		cmocka_unit_test(abuse_does_not_hurt_the_vm),
		cmocka_unit_test(clients_in_turn),
	};
	return cmocka_run_group_tests_name("qmp_vm", tests, NULL, NULL);
}
