/*
 * tern's QMP held to QEMU 7.2's own schema, fetched from a running QEMU
 * (query-qmp-schema): the checker itself (bad values fail), QEMU's own
 * replies pass it, and every greeting, reply and event tern produces in a
 * representative run (negotiation, every query command, a live migration
 * to a `--incoming defer` destination, cancel, failures, file:, cpr-exec)
 * is valid, its MIGRATION events in the sequence QEMU 7.2 emits in the
 * same cases (tests/qmp_flows.c).  Commands QEMU does not have are skipped
 * but counted.
 *
 *   test_qmp_schema --check-trace FILE   checks a TERN_QMP_TRACE file (the
 *                                        whole suite's: tests/run)
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

#include "cpr_support.h"
#include "qemu_qmp.h"
#include "qmp_flows.h"
#include "qmp_schema.h"
#include "tmpdir_support.h"

static const char *trace_to_check;

static int group_setup(void **state)
{
	if (test_dir_setup(state) != 0 || cpr_setup(state) != 0)
		return -1;
	qemu_qmp_schema_setup();
	if (qemu_schema != NULL)
		printf("    checking against the schema of QEMU %s\n", qemu_schema_version);
	return 0;
}

static int group_teardown(void **state)
{
	qemu_qmp_schema_teardown();
	return test_dir_teardown(state);
}

/* ------------------------------------------------------------ the checker */

/* A schema of every kind of entity, in QEMU's introspection format. */
static const char small_schema[] =
	"[{\"name\":\"int\",\"meta-type\":\"builtin\",\"json-type\":\"int\"},"
	"{\"name\":\"str\",\"meta-type\":\"builtin\",\"json-type\":\"string\"},"
	"{\"name\":\"bool\",\"meta-type\":\"builtin\",\"json-type\":\"boolean\"},"
	"{\"name\":\"number\",\"meta-type\":\"builtin\",\"json-type\":\"number\"},"
	"{\"name\":\"null\",\"meta-type\":\"builtin\",\"json-type\":\"null\"},"
	"{\"name\":\"any\",\"meta-type\":\"builtin\",\"json-type\":\"value\"},"
	"{\"name\":\"0\",\"meta-type\":\"object\",\"members\":[]},"
	"{\"name\":\"1\",\"meta-type\":\"enum\",\"values\":[\"on\",\"off\"]},"
	"{\"name\":\"[int]\",\"meta-type\":\"array\",\"element-type\":\"int\"},"
	"{\"name\":\"2\",\"meta-type\":\"object\",\"members\":["
	" {\"name\":\"n\",\"type\":\"int\"},{\"name\":\"r\",\"type\":\"number\",\"default\":null},"
	" {\"name\":\"s\",\"type\":\"str\",\"default\":null},"
	" {\"name\":\"e\",\"type\":\"1\",\"default\":null},"
	" {\"name\":\"l\",\"type\":\"[int]\",\"default\":null},"
	" {\"name\":\"a\",\"type\":\"3\",\"default\":null},"
	" {\"name\":\"v\",\"type\":\"any\",\"default\":null},"
	" {\"name\":\"u\",\"type\":\"4\",\"default\":null}]},"
	"{\"name\":\"3\",\"meta-type\":\"alternate\",\"members\":[{\"type\":\"str\"},{\"type\":\"null\"}]},"
	"{\"name\":\"4\",\"meta-type\":\"object\",\"members\":[{\"name\":\"kind\",\"type\":\"5\"}],"
	" \"tag\":\"kind\",\"variants\":[{\"case\":\"inet\",\"type\":\"6\"},{\"case\":\"unix\",\"type\":\"7\"}]},"
	"{\"name\":\"5\",\"meta-type\":\"enum\",\"values\":[\"inet\",\"unix\"]},"
	"{\"name\":\"6\",\"meta-type\":\"object\",\"members\":[{\"name\":\"port\",\"type\":\"str\"}]},"
	"{\"name\":\"7\",\"meta-type\":\"object\",\"members\":[{\"name\":\"path\",\"type\":\"str\"}]},"
	"{\"name\":\"query-thing\",\"meta-type\":\"command\",\"arg-type\":\"0\",\"ret-type\":\"2\"},"
	"{\"name\":\"THING\",\"meta-type\":\"event\",\"arg-type\":\"2\"},"
	"{\"name\":\"BARE\",\"meta-type\":\"event\"}]";

static void expect(struct qmp_schema *s, const char *type, const char *value, int valid,
		   const char *why_has)
{
	char why[600];
	json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	int rc = qmp_schema_check(s, type, v, why, sizeof why);
	json_decref(v);
	if (valid && rc != 0)
		fail_msg("%s should be valid as %s: %s", value, type, why);
	if (!valid && rc == 0)
		fail_msg("%s should not be valid as %s", value, type);
	if (!valid && why_has != NULL && strstr(why, why_has) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", value, why, why_has);
}

static void checker_on_a_small_schema(void **state)
{
	(void)state;
	json_t *e = json_loads(small_schema, 0, NULL);
	assert_non_null(e);
	struct qmp_schema *s = qmp_schema_new(e);
	json_decref(e);
	qmp_schema_allow(s, "later");
	expect(s, "2", "{\"n\": 1}", 1, NULL);
	expect(s, "2", "{\"n\": 1, \"r\": 2, \"s\": \"x\", \"e\": \"on\", \"l\": [1, 2], \"a\": null,"
		       " \"v\": [{}], \"u\": {\"kind\": \"unix\", \"path\": \"/p\"}}", 1, NULL);
	expect(s, "2", "{\"n\": 1, \"a\": \"text\", \"r\": 2.5}", 1, NULL);
	expect(s, "2", "{\"n\": 1, \"x-tern\": {\"anything\": 1}}", 1, NULL);
	expect(s, "2", "{\"n\": 1, \"later\": 2}", 1, NULL);
	assert_int_equal(json_integer_value(json_object_get(qmp_schema_allowed(s), "later")), 1);
	expect(s, "2", "{}", 0, "lacks required member 'n'");
	expect(s, "2", "{\"n\": \"1\"}", 0, "n: a string where the schema wants int");
	expect(s, "2", "{\"n\": 1.5}", 0, "n: a number");
	expect(s, "2", "{\"n\": 1, \"r\": \"fast\"}", 0, "r:");
	expect(s, "2", "{\"n\": 1, \"e\": \"maybe\"}", 0, "'maybe' is not one of the enum's values");
	expect(s, "2", "{\"n\": 1, \"l\": [1, \"2\"]}", 0, "l[1]");
	expect(s, "2", "{\"n\": 1, \"l\": 3}", 0, "wants an array");
	expect(s, "2", "{\"n\": 1, \"a\": 5}", 0, "fits none of the alternate's branches");
	expect(s, "2", "{\"n\": 1, \"u\": {\"kind\": \"unix\", \"port\": \"1\"}}", 0,
	       "lacks required member 'path'");
	expect(s, "2", "{\"n\": 1, \"u\": {\"kind\": \"unix\", \"path\": \"/p\", \"port\": \"1\"}}",
	       0, "'port'");
	expect(s, "2", "{\"n\": 1, \"u\": {\"kind\": \"vsock\"}}", 0, "u.kind");
	expect(s, "2", "{\"n\": 1, \"u\": {\"path\": \"/p\"}}", 0, "'kind'");
	expect(s, "2", "{\"n\": 1, \"mode\": 1}", 0, "has member 'mode'");
	expect(s, "2", "[]", 0, "wants an object");
	expect(s, "9", "1", 0, "no type '9'");
	char why[600];
	json_t *good = json_pack("{s:i}", "n", 1), *empty = json_object();
	assert_int_equal(qmp_schema_check_return(s, "query-thing", good, why, sizeof why), 1);
	assert_int_equal(qmp_schema_check_return(s, "query-thing", empty, why, sizeof why), -1);
	assert_int_equal(qmp_schema_check_return(s, "x-query-mine", good, why, sizeof why), 0);
	assert_int_equal(qmp_schema_check_event(s, "THING", good, why, sizeof why), 1);
	assert_int_equal(qmp_schema_check_event(s, "THING", NULL, why, sizeof why), -1);
	assert_int_equal(qmp_schema_check_event(s, "BARE", NULL, why, sizeof why), 1);
	assert_int_equal(qmp_schema_check_event(s, "BARE", good, why, sizeof why), -1);
	assert_int_equal(qmp_schema_check_event(s, "X_MINE", NULL, why, sizeof why), 0);
	json_t *err = json_pack("{s:s,s:s}", "class", "GenericError", "desc", "no");
	assert_int_equal(qmp_schema_check_error(err, why, sizeof why), 0);
	json_object_set_new(err, "class", json_string("TernError"));
	assert_int_equal(qmp_schema_check_error(err, why, sizeof why), -1);
	json_decref(err);
	json_decref(good);
	json_decref(empty);
	qmp_schema_free(s);
}

/* A query-migrate reply of a completed migration, as QEMU 7.2 gives it. */
static json_t *completed_reply(void)
{
	return json_pack("{s:s,s:i,s:i,s:i,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:i,s:i,s:i,s:i,"
			 "s:i,s:i,s:i,s:i,s:i}}",
			 "status", "completed", "setup-time", 1, "downtime", 3, "total-time", 11,
			 "ram", "transferred", 603263, "remaining", 0, "total", 67641344,
			 "duplicate", 16403, "skipped", 0, "normal", 111, "normal-bytes", 454656,
			 "dirty-pages-rate", 0, "mbps", 572.1, "dirty-sync-count", 2,
			 "postcopy-requests", 0, "page-size", 4096, "multifd-bytes", 0,
			 "pages-per-second", 0, "precopy-bytes", 603263, "downtime-bytes", 0,
			 "postcopy-bytes", 0, "dirty-sync-missed-zero-copy", 0);
}

static void expect_reply(const char *cmd, json_t *ret, int valid, const char *why_has)
{
	char why[600];
	int rc = qmp_schema_check_return(qemu_schema, cmd, ret, why, sizeof why);
	char *text = json_dumps(ret, JSON_COMPACT);
	if (valid && rc != 1)
		fail_msg("%s %s: %s", cmd, text, why);
	if (!valid && rc != -1)
		fail_msg("%s %s should be invalid", cmd, text);
	if (!valid && why_has != NULL && strstr(why, why_has) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", cmd, why, why_has);
	free(text);
	json_decref(ret);
}

static void checker_on_qemus_schema(void **state)
{
	(void)state;
	NEED_SCHEMA();
	expect_reply("query-migrate", completed_reply(), 1, NULL);
	expect_reply("query-migrate", json_object(), 1, NULL);
	json_t *r = completed_reply();
	json_object_del(json_object_get(r, "ram"), "multifd-bytes"); /* what tern gave */
	expect_reply("query-migrate", r, 0, "ram: lacks required member 'multifd-bytes'");
	r = completed_reply();
	json_object_set_new(r, "status", json_string("finished"));
	expect_reply("query-migrate", r, 0, "status: 'finished'");
	r = completed_reply();
	json_object_set_new(json_object_get(r, "ram"), "mbps", json_string("fast"));
	expect_reply("query-migrate", r, 0, "ram.mbps");
	r = completed_reply();
	json_object_set_new(r, "bogus", json_true());
	expect_reply("query-migrate", r, 0, "'bogus'");
	r = completed_reply();
	json_object_set_new(r, "x-tern", json_true());
	expect_reply("query-migrate", r, 1, NULL);
	expect_reply("query-migrate",
		     json_pack("{s:[{s:s,s:s,s:s,s:b}]}", "socket-address", "type", "inet", "host",
			       "127.0.0.1", "port", "4444", "ipv4", 1), 1, NULL);
	expect_reply("query-migrate",
		     json_pack("{s:[{s:s,s:s,s:i}]}", "socket-address", "type", "inet", "host",
			       "127.0.0.1", "port", 4444), 0, "socket-address[0].port");
	expect_reply("query-migrate", json_pack("{s:[{s:s,s:s}]}", "socket-address", "type", "unix",
						"host", "/x"), 0, "socket-address[0]");
	expect_reply("query-status", json_pack("{s:s,s:b,s:b}", "status", "running", "running", 1,
					       "singlestep", 0), 1, NULL);
	expect_reply("query-status", json_pack("{s:s,s:b,s:b}", "status", "walking", "running", 1,
					       "singlestep", 0), 0, "walking");
	char why[600];
	json_t *device = json_pack("{s:s}", "status", "device"), *empty = json_object();
	assert_int_equal(qmp_schema_check_event(qemu_schema, "MIGRATION", device, why, sizeof why), 1);
	assert_int_equal(qmp_schema_check_event(qemu_schema, "MIGRATION_PASS", empty, why, sizeof why),
			 -1);
	json_decref(device);
	json_decref(empty);
	assert_int_equal(qmp_schema_check_event(qemu_schema, "STOP", NULL, why, sizeof why), 1);
}

/* No false alarms: what QEMU itself answers is valid. */
static void qemus_own_replies_are_valid(void **state)
{
	(void)state;
	NEED_SCHEMA();
	static const char *const cmds[] = {
		"query-version", "query-status", "query-kvm", "query-commands", "query-migrate",
		"query-migrate-parameters", "query-migrate-capabilities", "query-name",
		"query-uuid", "query-target", "query-machines", "query-cpus-fast",
		"query-dirty-rate", "query-chardev", "query-memory-size-summary",
	};
	struct qemu_qmp qm;
	char why[600];
	const char *args[] = { "-machine", "none", NULL };
	assert_int_equal(qemu_qmp_start(&qm, test_dir, "own", args, why, sizeof why), 0);
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		json_t *r = qmp_execute(&qm.q, cmds[i], NULL, 10000);
		if (qmp_return(r) == NULL)
			fail_msg("QEMU's %s: %s", cmds[i], r ? json_dumps(r, JSON_COMPACT) : "nothing");
		if (qmp_schema_check_return(qemu_schema, cmds[i], qmp_return(r), why, sizeof why) != 1)
			fail_msg("QEMU's own %s is invalid: %s", cmds[i], why);
		json_decref(r);
	}
	json_t *g = json_object_get(qm.q.greeting, "QMP");
	assert_int_equal(qmp_schema_check(qemu_schema, qmp_schema_type_of(qemu_schema, "query-version",
								   "ret-type"),
					  json_object_get(g, "version"), why, sizeof why), 0);
	qemu_qmp_end(&qm);
}

/* ------------------------------------------------------------ tern's own */

static void check_trace(const char *path, const char *what, int must_have_migration)
{
	struct qmp_trace_report r;
	assert_int_equal(qmp_schema_check_trace(qemu_schema, path, &r), 0);
	qmp_trace_report_print(&r, qemu_schema, what);
	unsigned long failures = r.failures;
	if (must_have_migration)
		assert_true(r.events > 0 && r.replies > 0 && r.greetings > 0);
	qmp_trace_report_free(&r);
	if (failures > 0)
		fail_msg("%lu replies or events are not valid against QEMU %s's schema", failures,
			 qemu_schema_version);
}

static void tern_traffic_is_valid(void **state)
{
	(void)state;
	NEED_SCHEMA();
	char trace[512];
	snprintf(trace, sizeof trace, "%s/qmp-trace.jsonl", test_dir);
	unlink(trace);
	setenv("TERN_QMP_TRACE", trace, 1); /* for the terns this test starts */
	qmp_flows_run(test_dir, cpr_tern_path);
	check_trace(trace, "tern's replies and events in this test", 1);
}

/* Every MIGRATION event sequence tern emits is QEMU 7.2's in the same case. */
static void migration_events_match_qemu(void **state)
{
	(void)state;
	NEED_SCHEMA();
	json_t *qemu = qmp_flows_qemu_events(test_dir);
	if (qemu == NULL)
		skip();
	json_t *tern = qmp_flows_tern_events();
	if (tern == NULL) {
		print_message("    skipped: tern's flows did not run (no KVM?)\n");
		json_decref(qemu);
		skip();
	}
	const char *key;
	json_t *want;
	json_object_foreach(qemu, key, want) {
		json_t *got = json_object_get(tern, key);
		char *w = json_dumps(want, JSON_COMPACT), *g = json_dumps(got, JSON_ENCODE_ANY);
		printf("    %-22s QEMU %s, tern %s\n", key, w, g);
		if (!json_equal(want, got))
			fail_msg("%s: QEMU emits %s, tern %s", key, w, g);
		free(w);
		free(g);
	}
	json_decref(qemu);
	json_decref(tern);
}

static void suite_trace_is_valid(void **state)
{
	(void)state;
	NEED_SCHEMA();
	check_trace(trace_to_check, "the whole suite's replies and events", 0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--check-trace") == 0) {
		trace_to_check = argv[2];
		const struct CMUnitTest tests[] = { cmocka_unit_test(suite_trace_is_valid) };
		return cmocka_run_group_tests(tests, group_setup, group_teardown);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checker_on_a_small_schema),
		cmocka_unit_test(checker_on_qemus_schema),
		cmocka_unit_test(qemus_own_replies_are_valid),
		cmocka_unit_test(tern_traffic_is_valid),
		cmocka_unit_test(migration_events_match_qemu),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
