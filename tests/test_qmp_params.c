/*
 * The migration parameters and capabilities against QEMU 7.2's own lists
 * (its schema, fetched from a running QEMU): tern takes every name QEMU
 * takes, shows every one QEMU shows (valid against the schema), takes back
 * what it shows, keeps the values that change nothing here, refuses what
 * it cannot do with QEMU's error class and a reason, and QEMU takes what
 * tern shows.  No VM: the commands run on a bare server, as a live update
 * re-applies them (test_cpr_settings).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migration/vm_migration.h"
#include "qemu_qmp.h"
#include "qmp/migration_qmp.h"
#include "qmp_schema.h"
#include "tmpdir_support.h"

static int group_setup(void **state)
{
	if (test_dir_setup(state) != 0)
		return -1;
	qemu_qmp_schema_setup();
	return 0;
}

static int group_teardown(void **state)
{
	qemu_qmp_schema_teardown();
	return test_dir_teardown(state);
}

struct host {
	struct qmp_server server;
	struct vm_migration mig;
	int negotiated;
};

static void host_init(struct host *h)
{
	memset(h, 0, sizeof *h);
	h->server.listen_fd = -1;
	h->negotiated = 1;
	tern_mig_params_default(&h->mig.params);
	h->mig.cpr_timeout_ms = CPR_TIMEOUT_DEFAULT_MS;
	assert_int_equal(migration_qmp_register(&h->server, &h->mig), 0);
}

static void host_free(struct host *h)
{
	for (unsigned i = 0; h->mig.cpr_exec_argv[i] != NULL; i++)
		free(h->mig.cpr_exec_argv[i]);
}

/* The whole reply, as a client gets it; args' reference is taken. */
static json_t *call(struct host *h, const char *cmd, json_t *args)
{
	json_t *req = json_pack("{s:s}", "execute", cmd);
	if (args != NULL)
		json_object_set_new(req, "arguments", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	json_t *reply = qmp_handle_text(&h->server, &h->negotiated, text, strlen(text));
	free(text);
	assert_non_null(reply);
	return reply;
}

static json_t *query(struct host *h, const char *cmd)
{
	json_t *r = call(h, cmd, NULL);
	json_t *ret = json_incref(json_object_get(r, "return"));
	assert_non_null(ret);
	char why[600];
	if (qemu_schema != NULL && qmp_schema_check_return(qemu_schema, cmd, ret, why, sizeof why) != 1)
		fail_msg("%s is not valid against QEMU's schema: %s", cmd, why);
	json_decref(r);
	return ret;
}

static void accepted(struct host *h, const char *cmd, json_t *args)
{
	char *text = json_dumps(args, JSON_COMPACT);
	json_t *r = call(h, cmd, args);
	if (json_object_get(r, "return") == NULL)
		fail_msg("%s %s: %s", cmd, text, json_dumps(r, JSON_COMPACT));
	json_decref(r);
	free(text);
}

/* A type's members, by the command or event and which type of it. */
static json_t *members_of(const char *entity, const char *which)
{
	json_t *m = qmp_schema_members(qemu_schema, qmp_schema_type_of(qemu_schema, entity, which));
	assert_non_null(m);
	return m;
}

static void every_parameter_qemu_has(void **state)
{
	(void)state;
	NEED_SCHEMA();
	struct host h;
	host_init(&h);
	json_t *shown = query(&h, "query-migrate-parameters");
	json_t *names = members_of("query-migrate-parameters", "ret-type");
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n) {
		const char *name = json_string_value(n);
		if (json_object_get(shown, name) == NULL && strcmp(name, "block-bitmap-mapping") != 0)
			fail_msg("query-migrate-parameters lacks QEMU's '%s'", name);
	}
	printf("    query-migrate-parameters: %zu of QEMU 7.2's %zu (block-bitmap-mapping once "
	       "set, as QEMU), and tern's own\n", json_object_size(shown) - 3,
	       json_array_size(names));
	json_decref(names);
	/* Each of QEMU's names, set to what tern shows, is taken and changes
	 * nothing. */
	names = members_of("migrate-set-parameters", "arg-type");
	json_array_foreach(names, i, n) {
		const char *name = json_string_value(n);
		json_t *v = json_object_get(shown, name);
		accepted(&h, "migrate-set-parameters",
			 v != NULL ? json_pack("{s:O}", name, v) : json_pack("{s:[]}", name));
	}
	json_decref(names);
	json_t *again = query(&h, "query-migrate-parameters");
	assert_non_null(json_object_get(again, "block-bitmap-mapping"));
	json_object_del(again, "block-bitmap-mapping");
	assert_true(json_equal(shown, again));
	/* And all of it at once, as a live update re-applies it. */
	json_object_set_new(again, "block-bitmap-mapping", json_array());
	accepted(&h, "migrate-set-parameters", json_deep_copy(again));
	json_t *third = query(&h, "query-migrate-parameters");
	assert_true(json_equal(again, third));
	json_decref(third);
	json_decref(again);
	json_decref(shown);
	host_free(&h);
}

static void every_capability_qemu_has(void **state)
{
	(void)state;
	NEED_SCHEMA();
	struct host h;
	host_init(&h);
	/* migrate-set-capabilities' [MigrationCapabilityStatus]: its enum. */
	const char *at = qmp_schema_type_of(qemu_schema, "migrate-set-capabilities", "arg-type");
	json_t *m = json_array_get(json_object_get(qmp_schema_entity(qemu_schema, at), "members"), 0);
	const char *list = json_string_value(json_object_get(m, "type"));
	const char *item = json_string_value(json_object_get(qmp_schema_entity(qemu_schema, list),
							     "element-type"));
	json_t *fields = json_object_get(qmp_schema_entity(qemu_schema, item), "members");
	json_t *names = NULL;
	size_t i;
	json_array_foreach(fields, i, m)
		if (strcmp(json_string_value(json_object_get(m, "name")), "capability") == 0)
			names = qmp_schema_enum_values(qemu_schema, json_string_value(
								       json_object_get(m, "type")));
	assert_non_null(names);
	json_t *shown = query(&h, "query-migrate-capabilities");
	assert_int_equal(json_array_size(shown), json_array_size(names));
	json_t *n;
	json_array_foreach(names, i, n) {
		json_t *c = json_array_get(shown, i);
		assert_true(json_equal(json_object_get(c, "capability"), n));
		assert_true(json_is_false(json_object_get(c, "state")));
		accepted(&h, "migrate-set-capabilities",
			 json_pack("{s:[{s:O,s:b}]}", "capabilities", "capability", n, "state", 0));
	}
	printf("    query-migrate-capabilities: all %zu of QEMU 7.2's\n", json_array_size(names));
	accepted(&h, "migrate-set-capabilities",
		 json_pack("{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
			   "xbzrle", "state", 1, "capability", "auto-converge", "state", 1,
			   "capability", "events", "state", 1));
	json_t *on = query(&h, "query-migrate-capabilities");
	accepted(&h, "migrate-set-capabilities", json_pack("{s:O}", "capabilities", on));
	json_t *again = query(&h, "query-migrate-capabilities");
	assert_true(json_equal(on, again));
	assert_true(h.mig.params.xbzrle && h.mig.params.auto_converge && h.mig.events);
	json_decref(again);
	json_decref(on);
	json_decref(shown);
	json_decref(names);
	host_free(&h);
}

static void refused(struct host *h, const char *cmd, const char *args, const char *says)
{
	json_t *before = query(h, "query-migrate-parameters");
	json_t *caps_before = query(h, "query-migrate-capabilities");
	json_t *a = json_loads(args, 0, NULL);
	assert_non_null(a);
	json_t *r = call(h, cmd, a);
	json_t *e = json_object_get(r, "error");
	if (e == NULL)
		fail_msg("%s %s was taken", cmd, args);
	const char *desc = json_string_value(json_object_get(e, "desc"));
	assert_string_equal(json_string_value(json_object_get(e, "class")), "GenericError");
	if (strstr(desc, says) == NULL)
		fail_msg("%s %s: \"%s\" does not say \"%s\"", cmd, args, desc, says);
	json_decref(r);
	json_t *after = query(h, "query-migrate-parameters");
	json_t *caps_after = query(h, "query-migrate-capabilities");
	assert_true(json_equal(before, after));
	assert_true(json_equal(caps_before, caps_after));
	json_decref(before);
	json_decref(after);
	json_decref(caps_before);
	json_decref(caps_after);
}

static void what_tern_cannot_do_is_refused(void **state)
{
	(void)state;
	struct host h;
	host_init(&h);
	static const char *const caps[][2] = {
		{ "postcopy-ram", "postcopy" }, { "multifd", "one channel" },
		{ "compress", "does not compress" }, { "x-colo", "COLO" },
		{ "pause-before-switchover", "does not pause" }, { "block", "block migration" },
	};
	char args[300];
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		snprintf(args, sizeof args, "{\"capabilities\": [{\"capability\": \"events\", "
			 "\"state\": true}, {\"capability\": \"%s\", \"state\": true}]}",
			 caps[i][0]);
		refused(&h, "migrate-set-capabilities", args, caps[i][1]);
	}
	refused(&h, "migrate-set-capabilities",
		"{\"capabilities\": [{\"capability\": \"nosuch\", \"state\": false}]}",
		"does not accept value 'nosuch'");
	static const char *const params[][2] = {
		{ "{\"multifd-channels\": 2}", "one channel" },
		{ "{\"multifd-channels\": 0}", "range of 1 to 255" },
		{ "{\"tls-creds\": \"tls0\"}", "TLS" },
		{ "{\"tls-hostname\": \"dst.example\", \"downtime-limit\": 5}", "TLS" },
		{ "{\"tls-authz\": \"authz0\"}", "TLS" },
		{ "{\"tls-creds\": 5}", "string or null" },
		{ "{\"multifd-compression\": \"zstd\"}", "no multifd" },
		{ "{\"multifd-compression\": \"lz4\"}", "does not accept value 'lz4'" },
		{ "{\"cpu-throttle-tailslow\": true}", "tailslow" },
		{ "{\"throttle-trigger-threshold\": 60}", "more than half" },
		{ "{\"throttle-trigger-threshold\": 101}", "range of 1 to 100" },
		{ "{\"block-bitmap-mapping\": [{\"node-name\": \"a\", \"alias\": \"b\", "
		  "\"bitmaps\": []}]}", "no block dirty bitmaps" },
		{ "{\"block-bitmap-mapping\": {}}", "expected: array" },
		{ "{\"compress-level\": 10}", "range of 0 to 9" },
		{ "{\"announce-step\": 0}", "range of 1 to 10000" },
		{ "{\"x-checkpoint-delay\": -1}", "range of 0 to 4294967295" },
		{ "{\"compress-threads\": \"8\"}", "Invalid parameter type" },
		{ "{\"nosuch\": 1}", "Parameter 'nosuch' is unexpected" },
	};
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
		refused(&h, "migrate-set-parameters", params[i][0], params[i][1]);
	host_free(&h);
}

static void no_op_values_are_kept(void **state)
{
	(void)state;
	struct host h;
	host_init(&h);
	/* libvirt's on every migration: no TLS. */
	accepted(&h, "migrate-set-parameters",
		 json_pack("{s:s,s:s,s:n}", "tls-creds", "", "tls-hostname", "", "tls-authz"));
	json_t *want = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:i,s:i,s:b,s:I,s:i,s:i,s:i,s:s,"
				 "s:i,s:b}",
				 "announce-initial", 100, "announce-max", 600, "announce-rounds", 6,
				 "announce-step", 50, "compress-level", 5, "compress-threads", 4,
				 "compress-wait-thread", 0, "decompress-threads", 3,
				 "x-checkpoint-delay", 1000, "block-incremental", 1,
				 "max-postcopy-bandwidth", (json_int_t)12345, "multifd-zlib-level", 3,
				 "multifd-zstd-level", 7, "multifd-channels", 1,
				 "multifd-compression", "none", "throttle-trigger-threshold", 50,
				 "cpu-throttle-tailslow", 0);
	accepted(&h, "migrate-set-parameters", json_deep_copy(want));
	json_t *shown = query(&h, "query-migrate-parameters");
	const char *key;
	json_t *v;
	json_object_foreach(want, key, v)
		if (!json_equal(json_object_get(shown, key), v))
			fail_msg("'%s' was not kept", key);
	assert_string_equal(json_string_value(json_object_get(shown, "tls-authz")), "");
	json_decref(shown);
	json_decref(want);
	host_free(&h);
}

/* A client that copies tern's settings into QEMU is not refused. */
static void qemu_takes_terns_settings(void **state)
{
	(void)state;
	NEED_SCHEMA();
	struct host h;
	host_init(&h);
	json_t *params = query(&h, "query-migrate-parameters");
	json_t *caps = query(&h, "query-migrate-capabilities");
	json_object_del(params, "mode"); /* later QEMUs' and tern's own */
	json_object_del(params, "cpr-exec-command");
	json_object_del(params, "x-cpr-timeout");
	struct qemu_qmp qm;
	char why[300];
	const char *args[] = { "-machine", "none", NULL };
	assert_int_equal(qemu_qmp_start(&qm, test_dir, "takes", args, why, sizeof why), 0);
	json_t *qr = qmp_execute(&qm.q, "query-migrate-parameters", NULL, 10000);
	json_t *qemus = qmp_return(qr);
	const char *key;
	json_t *v;
	json_object_foreach(params, key, v) {
		json_t *q = json_object_get(qemus, key);
		if (!json_equal(q, v)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY), *b = json_dumps(q, JSON_ENCODE_ANY);
			printf("    default of %s: tern %s, QEMU %s\n", key, a, b);
			free(a);
			free(b);
		}
	}
	json_decref(qr);
	json_t *r = qmp_execute(&qm.q, "migrate-set-parameters", json_incref(params), 10000);
	if (qmp_return(r) == NULL)
		fail_msg("QEMU refuses tern's parameters: %s", json_dumps(r, JSON_COMPACT));
	json_decref(r);
	r = qmp_execute(&qm.q, "migrate-set-capabilities", json_pack("{s:O}", "capabilities", caps),
			10000);
	if (qmp_return(r) == NULL)
		fail_msg("QEMU refuses tern's capabilities: %s", json_dumps(r, JSON_COMPACT));
	json_decref(r);
	qemu_qmp_end(&qm);
	json_decref(params);
	json_decref(caps);
	host_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_parameter_qemu_has),
		cmocka_unit_test(every_capability_qemu_has),
		cmocka_unit_test(what_tern_cannot_do_is_refused),
		cmocka_unit_test(no_op_values_are_kept),
		cmocka_unit_test(qemu_takes_terns_settings),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
