/* QMP sessions on tern and on QEMU for test_qmp_schema; see qmp_flows.h. */
#include "qmp_flows.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/migrate.h"
#include "../harness/tern.h"
#include "cpr_support.h"
#include "kvm_skip.h"
#include "qemu_qmp.h"

#define T_MS 10000

static json_t *tern_events;

/* A QMP peer: a tern or a QEMU, source or `--incoming defer` destination. */
struct side {
	int qemu;
	struct qemu_qmp qm;
	struct tern_vm vm;
	struct qmp_conn tq;
	struct qmp_conn *q;
};

static int side_start(struct side *s, int qemu, const char *dir, const char *name, int defer)
{
	memset(s, 0, sizeof *s);
	s->qemu = qemu;
	s->tq.fd = -1;
	if (qemu) {
		const char *args[] = { "-machine", "pc", "-m", "64", "-accel", "tcg",
				       defer ? "-incoming" : NULL, "defer", NULL };
		char why[300];
		if (qemu_qmp_start(&s->qm, dir, name, args, why, sizeof why) < 0) {
			print_message("    QEMU: %s\n", why);
			return -1;
		}
		s->q = &s->qm.q;
		return 0;
	}
	/* The device gives x-query-ioeventfd-bank something to show. */
	int rc = defer ? tern_vm_start(&s->vm, "--memory", "64M", "--device", "ioeventfd-bank,count=4",
				       "--incoming", "defer", NULL)
		       : tern_vm_start(&s->vm, "--memory", "64M", "--device", "ioeventfd-bank,count=4",
				       "--append", "workload=random ws=4M rate=20000", NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(qmp_connect(&s->tq, s->vm.qmp_path, 1, T_MS), 0);
	s->q = &s->tq;
	return 0;
}

static void side_end(struct side *s)
{
	if (s->qemu) {
		qemu_qmp_end(&s->qm);
		return;
	}
	if (s->tq.fd >= 0)
		qmp_close(&s->tq);
	tern_vm_end(&s->vm);
}

/* A command that must succeed: its return value (a new reference). */
static json_t *ok(struct qmp_conn *q, const char *cmd, json_t *args)
{
	json_t *r = qmp_execute(q, cmd, args, T_MS);
	json_t *ret = json_incref(qmp_return(r));
	if (ret == NULL) {
		char *text = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;
		fail_msg("%s: %s", cmd, text != NULL ? text : "no answer");
	}
	json_decref(r);
	return ret;
}

static void run(struct qmp_conn *q, const char *cmd, json_t *args)
{
	json_decref(ok(q, cmd, args));
}

/* The MIGRATION statuses (and MIGRATION_PASS numbers) q has received,
 * after waiting settle_ms for stragglers; taken out of q's events. */
static json_t *take_events(struct qmp_conn *q, int settle_ms, json_t *passes)
{
	double until = now_ms() + settle_ms;
	for (double left; (left = until - now_ms()) > 0;) {
		json_t *m = qmp_read(q, (int)left);
		if (m == NULL)
			break;
		if (json_object_get(m, "event") != NULL)
			json_array_append(q->events, m);
		json_decref(m);
	}
	json_t *statuses = json_array();
	for (size_t i = 0; i < json_array_size(q->events);) {
		json_t *ev = json_array_get(q->events, i);
		const char *name = json_string_value(json_object_get(ev, "event"));
		json_t *data = json_object_get(ev, "data");
		if (strcmp(name, "MIGRATION") == 0)
			json_array_append(statuses, json_object_get(data, "status"));
		else if (strcmp(name, "MIGRATION_PASS") == 0 && passes != NULL)
			json_array_append(passes, json_object_get(data, "pass"));
		if (strcmp(name, "MIGRATION") == 0 || strcmp(name, "MIGRATION_PASS") == 0)
			json_array_remove(q->events, i);
		else
			i++;
	}
	return statuses;
}

static void events_on(struct qmp_conn *q)
{
	run(q, "migrate-set-capabilities",
	    json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "events", "state", 1));
}

static void bandwidth(struct qmp_conn *q, long long bytes_per_second)
{
	run(q, "migrate-set-parameters", json_pack("{s:I}", "max-bandwidth", bytes_per_second));
}

/* Poll query-migrate until it says `want` (or ends otherwise). */
static json_t *wait_for(struct qmp_conn *q, const char *want)
{
	double deadline = deadline_ms(60000);
	while (now_ms() < deadline) {
		json_t *info = ok(q, "query-migrate", NULL);
		const char *s = mig_status(info);
		if (strcmp(s, want) == 0 || strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
		    strcmp(s, "cancelled") == 0)
			return info;
		json_decref(info);
		struct timespec nap = { 0, 20 * 1000000 };
		nanosleep(&nap, NULL);
	}
	fail_msg("query-migrate never said %s", want);
	return NULL;
}

/* A `--incoming defer` destination listening on tcp:127.0.0.1:0; its port
 * from query-migrate's socket-address. */
static int listen_deferred(struct side *d, int qemu, const char *dir, const char *name, char *uri,
			   size_t len)
{
	if (side_start(d, qemu, dir, name, 1) < 0)
		return -1;
	events_on(d->q);
	run(d->q, "migrate-incoming", json_pack("{s:s}", "uri", "tcp:127.0.0.1:0"));
	json_t *info = ok(d->q, "query-migrate", NULL);
	json_t *a = json_array_get(json_object_get(info, "socket-address"), 0);
	const char *port = json_string_value(json_object_get(a, "port"));
	if (port == NULL || strcmp(port, "0") == 0)
		fail_msg("the destination's query-migrate has no port: %s",
			 json_dumps(info, JSON_COMPACT));
	assert_string_equal(json_string_value(json_object_get(a, "type")), "inet");
	assert_string_equal(json_string_value(json_object_get(a, "host")), "127.0.0.1");
	snprintf(uri, len, "tcp:127.0.0.1:%s", port);
	json_decref(info);
	return 0;
}

/* The cases, on src (running, events on); record[CASE] = what happened.
 * The destination of the last (completed) one is left in *done. */
static int migration_cases(struct side *src, int qemu, const char *dir, json_t *record,
			   struct side *done)
{
	struct qmp_conn *q = src->q;
	char uri[64];
	json_decref(take_events(q, 0, NULL));
	/* A URI nobody can use: an error, and the migration failed. */
	json_t *r = qmp_execute(q, "migrate", json_pack("{s:s}", "uri", "bogus:x"), T_MS);
	assert_non_null(json_object_get(r, "error"));
	json_decref(r);
	json_t *seq = take_events(q, 300, NULL);
	json_t *info = ok(q, "query-migrate", NULL);
	json_array_append_new(seq, json_pack("{s:s}", "query-migrate", mig_status(info)));
	json_decref(info);
	json_object_set_new(record, "source: bad URI", seq);
	/* A port nobody listens on. */
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	run(q, "migrate", json_pack("{s:s}", "uri", uri));
	json_decref(wait_for(q, "failed"));
	json_object_set_new(record, "source: closed port", take_events(q, 300, NULL));
	/* Cancelled while active. */
	struct side d1;
	if (listen_deferred(&d1, qemu, dir, "cancel-dst", uri, sizeof uri) < 0)
		return -1;
	bandwidth(q, qemu ? 100000 : 1 << 20);
	run(q, "migrate", json_pack("{s:s}", "uri", uri));
	json_decref(wait_for(q, "active"));
	run(q, "migrate_cancel", NULL);
	info = wait_for(q, "cancelled");
	assert_string_equal(mig_status(info), "cancelled");
	json_decref(info);
	json_object_set_new(record, "source: cancel", take_events(q, 300, NULL));
	json_object_set_new(record, "destination: cancel", take_events(d1.q, 2000, NULL));
	side_end(&d1);
	/* One that completes, watched from both sides. */
	if (listen_deferred(done, qemu, dir, "dst", uri, sizeof uri) < 0)
		return -1;
	bandwidth(q, 1LL << 30);
	run(q, "migrate", json_pack("{s:s}", "uri", uri));
	double deadline = deadline_ms(60000);
	for (;;) {
		json_decref(ok(done->q, "query-migrate", NULL));
		info = ok(q, "query-migrate", NULL);
		if (strcmp(mig_status(info), "active") != 0 && strcmp(mig_status(info), "setup") != 0)
			break;
		assert_true(now_ms() < deadline);
		json_decref(info);
		struct timespec nap = { 0, 5 * 1000000 };
		nanosleep(&nap, NULL);
	}
	if (strcmp(mig_status(info), "completed") != 0)
		fail_msg("the migration did not complete: %s", json_dumps(info, JSON_COMPACT));
	json_t *dinfo = wait_for(done->q, "completed");
	assert_string_equal(mig_status(dinfo), "completed");
	json_decref(dinfo);
	json_t *passes = json_array();
	json_object_set_new(record, "source: completed", take_events(q, 300, passes));
	json_object_set_new(record, "destination: completed", take_events(done->q, 1000, NULL));
	/* MIGRATION_PASS at every dirty sync: 1, 2, ... dirty-sync-count. */
	long long syncs = mig_number(info, "ram.dirty-sync-count");
	int counted = syncs > 0 && json_array_size(passes) == (size_t)syncs;
	for (size_t i = 0; counted && i < json_array_size(passes); i++)
		counted = json_integer_value(json_array_get(passes, i)) == (json_int_t)i + 1;
	json_object_set_new(record, "source: a pass per sync", json_pack("[b]", counted));
	json_decref(passes);
	json_decref(info);
	return 0;
}

json_t *qmp_flows_qemu_events(const char *dir)
{
	struct side src, dst;
	if (side_start(&src, 1, dir, "src", 0) < 0)
		return NULL;
	events_on(src.q);
	json_t *record = json_object();
	if (migration_cases(&src, 1, dir, record, &dst) < 0) {
		json_decref(record);
		record = NULL;
	} else {
		side_end(&dst);
	}
	side_end(&src);
	return record;
}

json_t *qmp_flows_tern_events(void)
{
	return json_incref(tern_events);
}

/* ------------------------------------------------------------ tern alone */

/* Negotiation, its errors, and every query command. */
static void every_query(struct side *s)
{
	struct qmp_conn *q = s->q;
	static const char *const bad[] = {
		"{\"execute\": \"no-such-command\"}\n", "{\"execute\": \"qmp_capabilities\"}\n",
		"{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}}\n", "{nonsense}\n",
		"{\"execute\": 1}\n", "{\"execute\": \"migrate-incoming\"}\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(qmp_send_raw(q, bad[i], strlen(bad[i])), 0);
		json_t *r = qmp_read(q, T_MS);
		if (json_object_get(r, "error") == NULL)
			fail_msg("%s got %s", bad[i], r ? json_dumps(r, JSON_COMPACT) : "nothing");
		json_decref(r);
	}
	static const char *const queries[] = {
		"query-version", "query-status", "query-kvm", "query-commands", "query-migrate",
		"query-migrate-capabilities", "query-migrate-parameters", "query-dirty-rate",
		"query-memslots", "x-query-fdstore", "x-query-ioeventfd-bank",
	};
	for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++)
		run(q, queries[i], NULL);
	run(q, "x-dirty-tracking", json_pack("{s:b}", "enable", 1));
	run(q, "x-query-dirty-pages", json_pack("{s:i,s:i}", "gpa", 0, "size", 1 << 20));
	run(q, "x-dirty-tracking", json_pack("{s:b}", "enable", 0));
	run(q, "calc-dirty-rate", json_pack("{s:i}", "calc-time", 1));
	run(q, "query-dirty-rate", NULL);
	struct timespec nap = { 1, 300 * 1000000 };
	nanosleep(&nap, NULL);
	json_t *rate = ok(q, "query-dirty-rate", NULL);
	assert_string_equal(json_string_value(json_object_get(rate, "status")), "measured");
	json_decref(rate);
	run(q, "stop", NULL);
	run(q, "x-query-vm-state", NULL);
	run(q, "query-status", NULL);
	run(q, "cont", NULL);
}

/* The parameters as libvirt sends them, and every one tern shows sent
 * back to it. */
static void settings(struct qmp_conn *q)
{
	run(q, "migrate-set-parameters", json_pack("{s:s,s:s,s:n}", "tls-creds", "",
						   "tls-hostname", "", "tls-authz"));
	json_t *all = ok(q, "query-migrate-parameters", NULL);
	run(q, "migrate-set-parameters", all);
	json_t *caps = ok(q, "query-migrate-capabilities", NULL);
	run(q, "migrate-set-capabilities", json_pack("{s:o}", "capabilities", caps));
	json_t *r = qmp_execute(q, "migrate-set-parameters", json_pack("{s:i}", "multifd-channels",
									 4), T_MS);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "class")),
			    "GenericError");
	json_decref(r);
}

/* A completed source's figures: precopy and downtime bytes add up. */
static void check_bytes(struct qmp_conn *q)
{
	json_t *info = ok(q, "query-migrate", NULL);
	long long sent = mig_number(info, "ram.transferred");
	long long pre = mig_number(info, "ram.precopy-bytes");
	long long down = mig_number(info, "ram.downtime-bytes");
	if (!(pre > 0 && down > 0 && pre + down == sent))
		fail_msg("precopy-bytes %lld + downtime-bytes %lld != transferred %lld", pre, down,
			 sent);
	json_decref(info);
}

void qmp_flows_run(const char *dir, const char *tern_path)
{
	SKIP_WITHOUT_KVM();
	json_decref(tern_events);
	tern_events = NULL;
	struct side src, dst, restored;
	side_start(&src, 0, dir, "src", 0);
	assert_true(proc_wait_for(&src.vm.proc, "tern-guest: start", 0, 20000) > 0);
	every_query(&src);
	settings(src.q);
	events_on(src.q);
	json_t *record = json_object();
	assert_int_equal(migration_cases(&src, 0, dir, record, &dst), 0);
	check_bytes(src.q);
	/* The guest runs on dst now: save it to a file ... */
	char path[300], uri[320];
	snprintf(path, sizeof path, "%s/saved", dir);
	unlink(path);
	snprintf(uri, sizeof uri, "file:%s", path);
	run(dst.q, "migrate", json_pack("{s:s}", "uri", uri));
	json_t *info = wait_for(dst.q, "completed");
	assert_string_equal(mig_status(info), "completed");
	json_decref(info);
	json_object_set_new(record, "tern: file source", take_events(dst.q, 300, NULL));
	/* ... and restore it from there. */
	side_start(&restored, 0, dir, "restored", 1);
	events_on(restored.q);
	run(restored.q, "migrate-incoming", json_pack("{s:s}", "uri", uri));
	info = wait_for(restored.q, "completed");
	assert_string_equal(mig_status(info), "completed");
	json_decref(info);
	json_object_set_new(record, "tern: file destination", take_events(restored.q, 300, NULL));
	run(restored.q, "query-status", NULL);
	/* A live update of the restored tern, answering on the same socket. */
	cpr_set_mode(restored.q, "cpr-exec", tern_path);
	run(restored.q, "migrate", json_pack("{s:s}", "uri", "cpr:"));
	info = cpr_wait_update(restored.q);
	assert_string_equal(mig_status(info), "completed");
	json_decref(info);
	run(restored.q, "query-migrate-parameters", NULL);
	run(restored.q, "query-status", NULL);
	run(restored.q, "quit", NULL);
	assert_int_equal(proc_wait(&restored.vm.proc, T_MS), 0);
	side_end(&restored);
	side_end(&dst);
	run(src.q, "quit", NULL);
	side_end(&src);
	tern_events = record;
}
