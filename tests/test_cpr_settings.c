/* The migration settings a live update carries (vmm/cpr/cpr_settings.c),
 * through the very QMP handlers a new tern applies them with, no VM
 * needed: a round trip, hostile sections refused with nothing changed
 * (capabilities put back when the parameters fail), and random damage to
 * a good section either applied whole or refused whole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/rng.h"
#include "cpr/cpr_settings.h"
#include "migration/vm_migration.h"
#include "qmp/migration_qmp.h"

/* A QMP server with the migration commands of a VM that does not run. */
struct settings_host {
	struct qmp_server server;
	struct vm_migration mig;
};

static void host_init(struct settings_host *h)
{
	memset(h, 0, sizeof *h);
	h->server.listen_fd = -1;
	tern_mig_params_default(&h->mig.params);
	h->mig.cpr_timeout_ms = CPR_TIMEOUT_DEFAULT_MS;
	assert_int_equal(migration_qmp_register(&h->server, &h->mig), 0);
}

static void host_free(struct settings_host *h)
{
	for (unsigned i = 0; h->mig.cpr_exec_argv[i] != NULL; i++)
		free(h->mig.cpr_exec_argv[i]);
}

static int call(struct settings_host *h, const char *cmd, json_t *args, json_t **ret)
{
	struct tern_error err = { .msg = "" };
	json_t *none = args == NULL ? json_object() : NULL;
	json_t *out = NULL;
	int rc = qmp_server_call(&h->server, cmd, args != NULL ? args : none, &out, &err);
	json_decref(none);
	json_decref(args);
	if (ret != NULL)
		*ret = out;
	else
		json_decref(out);
	return rc;
}

/* What the query commands say, as one object. */
static json_t *settings(struct settings_host *h)
{
	json_t *caps = NULL, *params = NULL;
	assert_int_equal(call(h, "query-migrate-capabilities", NULL, &caps), 0);
	assert_int_equal(call(h, "query-migrate-parameters", NULL, &params), 0);
	return json_pack("{s:o,s:o}", "capabilities", caps, "parameters", params);
}

static int load(struct settings_host *h, const char *text, size_t len, struct tern_error *err)
{
	return cpr_settings_load(&h->server, (const uint8_t *)text, len, err);
}

/* Settings no fresh tern has: every capability and parameter changed. */
static void set_unusual(struct settings_host *h)
{
	assert_int_equal(call(h, "migrate-set-capabilities",
			      json_pack("{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b}]}", "capabilities",
					"capability", "xbzrle", "state", 1,
					"capability", "auto-converge", "state", 1,
					"capability", "events", "state", 1),
			      NULL),
			 0);
	assert_int_equal(call(h, "migrate-set-parameters",
			      json_pack("{s:i,s:I,s:I,s:i,s:i,s:i,s:s,s:[s,s,s],s:i}",
					"downtime-limit", 123, "max-bandwidth", (json_int_t)777777,
					"xbzrle-cache-size", (json_int_t)(8 << 20),
					"cpu-throttle-initial", 11, "cpu-throttle-increment", 7,
					"max-cpu-throttle", 55, "mode", "cpr-exec",
					"cpr-exec-command", "/usr/bin/tern", "run", "--quiet",
					"x-cpr-timeout", 1234),
			      NULL),
			 0);
	/* QEMU's that change nothing here are carried all the same. */
	assert_int_equal(call(h, "migrate-set-parameters",
			      json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:b,s:i,s:i,s:b,s:I,s:i,s:i,s:[],"
					"s:s,s:n}",
					"announce-initial", 51, "announce-max", 551,
					"announce-rounds", 6, "announce-step", 101,
					"compress-level", 2, "compress-threads", 9,
					"compress-wait-thread", 0, "decompress-threads", 3,
					"x-checkpoint-delay", 20001, "block-incremental", 1,
					"max-postcopy-bandwidth", (json_int_t)1 << 40,
					"multifd-zlib-level", 2, "multifd-zstd-level", 2,
					"block-bitmap-mapping", "tls-creds", "", "tls-authz"),
			      NULL),
			 0);
}

static char *saved_section(struct settings_host *h, size_t *len)
{
	struct tern_buf b = { 0 };
	struct tern_error err = { .msg = "" };
	assert_int_equal(cpr_settings_save(&h->server, &b, &err), 0);
	char *text = malloc(b.len + 1);
	assert_non_null(text);
	memcpy(text, b.data, b.len);
	text[b.len] = '\0';
	*len = b.len;
	tern_buf_free(&b);
	return text;
}

static void round_trip(void **state)
{
	(void)state;
	struct settings_host old, fresh;
	host_init(&old);
	host_init(&fresh);
	set_unusual(&old);
	size_t len;
	char *text = saved_section(&old, &len);
	json_t *want = settings(&old), *before = settings(&fresh);
	assert_false(json_equal(want, before));
	struct tern_error err = { .msg = "" };
	assert_int_equal(load(&fresh, text, len, &err), 0);
	json_t *got = settings(&fresh);
	assert_true(json_equal(want, got));
	json_decref(want);
	json_decref(before);
	json_decref(got);
	free(text);
	host_free(&old);
	host_free(&fresh);
}

/* Each refused, with a reason, leaving every setting as it was. */
static void hostile_sections_change_nothing(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{}",
		"null",
		"{\"capabilities\": [], \"parameters\": {}, \"more\": 1}",
		"{\"capabilities\": {}, \"parameters\": {}}",
		"{\"capabilities\": [], \"parameters\": []}",
		"{\"capabilities\": [], \"capabilities\": [], \"parameters\": {}}",
		"{\"capabilities\": [{\"capability\": \"xbzrle\"}], \"parameters\": {}}",
		"{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": 1}], \"parameters\": {}}",
		"{\"capabilities\": [{\"capability\": \"teleport\", \"state\": true}], "
		"\"parameters\": {}}",
		"{\"capabilities\": [{\"capability\": \"postcopy-ram\", \"state\": true}], "
		"\"parameters\": {}}",
		"{\"capabilities\": [7], \"parameters\": {}}",
		"{\"capabilities\": [], \"parameters\": {\"downtime-limit\": -1}}",
		"{\"capabilities\": [], \"parameters\": {\"max-cpu-throttle\": 100}}",
		"{\"capabilities\": [], \"parameters\": {\"xbzrle-cache-size\": 1}}",
		"{\"capabilities\": [], \"parameters\": {\"max-bandwidth\": \"fast\"}}",
		"{\"capabilities\": [], \"parameters\": {\"mode\": 5}}",
		"{\"capabilities\": [], \"parameters\": {\"mode\": \"cpr-later\"}}",
		"{\"capabilities\": [], \"parameters\": {\"cpr-exec-command\": [\"\"]}}",
		"{\"capabilities\": [], \"parameters\": {\"cpr-exec-command\": [1]}}",
		"{\"capabilities\": [], \"parameters\": {\"cpr-exec-command\": \"tern\"}}",
		"{\"capabilities\": [], \"parameters\": {\"x-cpr-timeout\": 0}}",
		"{\"capabilities\": [], \"parameters\": {\"x-cpr-timeout\": 3600001}}",
		"{\"capabilities\": [], \"parameters\": {\"x-cpr-timeout\": \"5s\"}}",
		"{\"capabilities\": [], \"parameters\": {\"teleport\": 1}}",
		"{\"capabilities\": [], \"parameters\": {\"tls-creds\": \"tls0\"}}",
		"{\"capabilities\": [], \"parameters\": {\"multifd-channels\": 2}}",
		"{\"capabilities\": [], \"parameters\": {\"announce-step\": 0}}",
		"{\"capabilities\": [], \"parameters\": {\"compress-wait-thread\": 1}}",
		"{\"capabilities\": [], \"parameters\": {\"block-bitmap-mapping\": [{}]}}",
		"{\"capabilities\": [{\"capability\": \"multifd\", \"state\": true}], "
		"\"parameters\": {}}",
		/* Good capabilities, bad parameters: the capabilities go back. */
		"{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": false}, "
		"{\"capability\": \"events\", \"state\": false}], "
		"\"parameters\": {\"downtime-limit\": 99999999999}}",
		"{\"capabilities\": [{\"capability\": \"auto-converge\", \"state\": false}], "
		"\"parameters\": {\"downtime-limit\": 5, \"mode\": \"sideways\"}}",
	};
	struct settings_host h;
	host_init(&h);
	set_unusual(&h);
	json_t *before = settings(&h);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tern_error err = { .msg = "" };
		if (load(&h, bad[i], strlen(bad[i]), &err) >= 0)
			fail_msg("section %zu was taken: %s", i, bad[i]);
		assert_true(err.msg[0] != '\0');
		json_t *now = settings(&h);
		if (!json_equal(before, now))
			fail_msg("section %zu changed the settings: %s", i, bad[i]);
		json_decref(now);
	}
	/* Far too long, and an exec command of too many words. */
	size_t big = 65537;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, ' ', big);
	struct tern_error err = { .msg = "" };
	assert_true(load(&h, text, big, &err) < 0);
	int n = snprintf(text, big, "{\"capabilities\": [], \"parameters\": "
			 "{\"cpr-exec-command\": [\"tern\"");
	for (int i = 0; i < CPR_EXEC_ARGS_MAX; i++)
		n += snprintf(text + n, big - (size_t)n, ", \"a%d\"", i);
	n += snprintf(text + n, big - (size_t)n, "]}}");
	assert_true(load(&h, text, (size_t)n, &err) < 0);
	json_t *now = settings(&h);
	assert_true(json_equal(before, now));
	json_decref(now);
	free(text);
	json_decref(before);
	host_free(&h);
}

/* What an older tern carried (its eight parameters and three
 * capabilities) loads into this one: the rest keep their defaults. */
static void older_section_loads(void **state)
{
	(void)state;
	static const char old[] =
		"{\"capabilities\": [{\"capability\": \"xbzrle\", \"state\": true}, "
		"{\"capability\": \"auto-converge\", \"state\": false}, "
		"{\"capability\": \"events\", \"state\": true}], \"parameters\": "
		"{\"downtime-limit\": 123, \"max-bandwidth\": 777, \"xbzrle-cache-size\": 8388608, "
		"\"cpu-throttle-initial\": 11, \"cpu-throttle-increment\": 7, "
		"\"max-cpu-throttle\": 55, \"mode\": \"normal\", \"cpr-exec-command\": [], "
		"\"x-cpr-timeout\": 1234}}";
	struct settings_host h, fresh;
	host_init(&h);
	host_init(&fresh);
	struct tern_error err = { .msg = "" };
	assert_int_equal(load(&h, old, strlen(old), &err), 0);
	json_t *got = settings(&h), *defaults = settings(&fresh);
	json_t *p = json_object_get(got, "parameters"), *d = json_object_get(defaults, "parameters");
	assert_int_equal(json_integer_value(json_object_get(p, "downtime-limit")), 123);
	assert_int_equal(json_integer_value(json_object_get(p, "x-cpr-timeout")), 1234);
	assert_true(h.mig.params.xbzrle && h.mig.events);
	static const char *const untouched[] = { "announce-initial", "compress-level",
						 "multifd-channels", "tls-creds",
						 "x-checkpoint-delay" };
	for (size_t i = 0; i < sizeof untouched / sizeof untouched[0]; i++)
		assert_true(json_equal(json_object_get(p, untouched[i]),
				       json_object_get(d, untouched[i])));
	json_decref(got);
	json_decref(defaults);
	host_free(&h);
	host_free(&fresh);
}

/* A good section with bytes flipped, cut short or spliced: every result
 * is all or nothing, and nothing crashes (run under ASan as well). */
static void damaged_sections_all_or_nothing(void **state)
{
	(void)state;
	struct settings_host src;
	host_init(&src);
	set_unusual(&src);
	size_t len;
	char *good = saved_section(&src, &len);
	static const char alphabet[] = "{}[]\",:0123456789-etrufalsn x\\";
	uint64_t seed = 0x5e771;
	unsigned taken = 0, refused = 0;
	for (int round = 0; round < 3000; round++) {
		char *text = malloc(len + 1);
		assert_non_null(text);
		memcpy(text, good, len + 1);
		size_t n = len;
		unsigned flips = 1 + (unsigned)(harness_splitmix(&seed) % 4);
		for (unsigned f = 0; f < flips; f++) {
			uint64_t r = harness_splitmix(&seed);
			size_t at = (size_t)(r % len);
			if (r >> 62 == 0)
				n = at; /* cut short */
			else
				text[at] = alphabet[(r >> 8) % (sizeof alphabet - 1)];
		}
		struct settings_host h;
		host_init(&h);
		json_t *before = settings(&h);
		struct tern_error err = { .msg = "" };
		int rc = load(&h, text, n, &err);
		json_t *now = settings(&h);
		if (rc < 0) {
			refused++;
			if (!json_equal(before, now))
				fail_msg("a refused section changed the settings: %.*s", (int)n, text);
		} else {
			taken++;
		}
		json_decref(before);
		json_decref(now);
		host_free(&h);
		free(text);
	}
	assert_true(refused > 100); /* the damage reached the checks */
	assert_true(taken > 0);     /* and some of it was harmless */
	free(good);
	host_free(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(hostile_sections_change_nothing),
		cmocka_unit_test(older_section_loads),
		cmocka_unit_test(damaged_sections_all_or_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
