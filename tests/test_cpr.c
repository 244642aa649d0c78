/*
 * Live update (CPR) end to end with the built-in guest: cpr-exec and
 * cpr-transfer, three times in a row each, the guest finishing with the
 * checksum of a run that was never updated; guest RAM never copied (the
 * same memfd); thousands of kept fds arriving as the same open files and
 * the doorbells still ringing; updates to a binary that cannot load the
 * state leaving the guest running.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/sock.h"
#include "../harness/tern.h"
#include "../vmm/qmp_client.h"
#include "tern/vmstate.h"
#include "kvm_skip.h"

#define WORKLOAD "workload=random ws=8M writes=250000 rate=50000 seed=9"
#define UPDATES 3
#define DOORBELLS 3000
#define BANK_BASE 0xe0000000ULL

static char tern_path[PATH_MAX], next_path[PATH_MAX + 16];

/* A command's return value (a new reference), or NULL. */
static json_t *query(struct qmp_conn *q, const char *cmd)
{
	json_t *reply = qmp_execute(q, cmd, NULL, 10000);
	json_t *ret = json_incref(qmp_return(reply));
	json_decref(reply);
	return ret;
}

static int setup(void **state)
{
	(void)state;
	if (realpath(harness_tern(), tern_path) == NULL)
		return -1;
	snprintf(next_path, sizeof next_path, "%s-cpr-next", tern_path);
	return 0;
}

static uint64_t reference_checksum(void)
{
	static uint64_t sum;
	static int have;
	if (have)
		return sum;
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "64M", "--append", WORKLOAD, NULL),
			 0);
	assert_int_equal(proc_wait(&p, 60000), 0);
	assert_int_equal(harness_guest_checksum(proc_output(&p), &sum), 0);
	proc_free(&p);
	have = 1;
	return sum;
}

/* What a kept fd is, from outside the process: its eventfd's id, or its
 * device and inode. */
static void fd_identity(pid_t pid, int fd, char *out, size_t len)
{
	char path[64], info[512];
	snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, fd);
	int f = open(path, O_RDONLY);
	assert_true(f >= 0);
	ssize_t n = read(f, info, sizeof info - 1);
	close(f);
	assert_true(n > 0);
	info[n] = '\0';
	const char *id = strstr(info, "eventfd-id:");
	if (id != NULL) {
		snprintf(out, len, "eventfd %lld", strtoll(id + 11, NULL, 10));
		return;
	}
	struct stat st;
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
	assert_int_equal(stat(path, &st), 0);
	snprintf(out, len, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
}

/* {"name/id": identity} for every kept fd of the process behind q (but
 * QMP clients, which come and go with the test's connections). */
static json_t *identities(struct qmp_conn *q, pid_t pid)
{
	json_t *list = query(q, "x-query-fdstore");
	assert_non_null(list);
	json_t *map = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) {
		char key[96], ident[96];
		const char *name = json_string_value(json_object_get(e, "name"));
		if (strcmp(name, "qmp/client") == 0)
			continue;
		snprintf(key, sizeof key, "%s/%lld", name,
			 (long long)json_integer_value(json_object_get(e, "id")));
		fd_identity(pid, (int)json_integer_value(json_object_get(e, "fd")), ident,
			    sizeof ident);
		json_object_set_new(map, key, json_string(ident));
	}
	json_decref(list);
	return map;
}

static void set_mode(struct qmp_conn *q, const char *mode, const char *exec_program)
{
	json_t *args = json_pack("{s:s}", "mode", mode);
	if (exec_program != NULL)
		json_object_set_new(args, "cpr-exec-command", json_pack("[s,s]", exec_program, "run"));
	assert_int_equal(qmp_do(q, "migrate-set-parameters", args, NULL, 10000), 0);
}

/* Migration settings an operator set before update i ... */
static void set_settings(struct qmp_conn *q, int i)
{
	assert_int_equal(qmp_do(q, "migrate-set-parameters",
				json_pack("{s:i,s:i,s:i}", "max-bandwidth", 1000000 + i,
					  "downtime-limit", 100 + i, "max-cpu-throttle", 50 + i),
				NULL, 10000),
			 0);
	assert_int_equal(qmp_do(q, "migrate-set-capabilities",
				json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "xbzrle",
					  "state", i % 2 == 0),
				NULL, 10000),
			 0);
}

/* ... are the new tern's after it. */
static void expect_settings(struct qmp_conn *q, int i, const char *mode)
{
	json_t *p = query(q, "query-migrate-parameters");
	assert_int_equal(json_integer_value(json_object_get(p, "max-bandwidth")), 1000000 + i);
	assert_int_equal(json_integer_value(json_object_get(p, "downtime-limit")), 100 + i);
	assert_int_equal(json_integer_value(json_object_get(p, "max-cpu-throttle")), 50 + i);
	assert_string_equal(json_string_value(json_object_get(p, "mode")), mode);
	json_decref(p);
	json_t *caps = query(q, "query-migrate-capabilities");
	size_t k;
	json_t *c;
	int seen = 0;
	json_array_foreach(caps, k, c) {
		if (strcmp(json_string_value(json_object_get(c, "capability")), "xbzrle") != 0)
			continue;
		assert_int_equal(json_is_true(json_object_get(c, "state")), i % 2 == 0);
		seen = 1;
	}
	assert_true(seen);
	json_decref(caps);
}

/* query-migrate until the update is no longer active; its final report. */
static json_t *wait_update(struct qmp_conn *q)
{
	for (int tries = 0; tries < 500; tries++) {
		json_t *r = query(q, "query-migrate");
		assert_non_null(r);
		const char *status = json_string_value(json_object_get(r, "status"));
		if (status != NULL && strcmp(status, "active") != 0)
			return r;
		json_decref(r);
		usleep(20000);
	}
	fail_msg("the update did not end");
	return NULL;
}

/* regions: how many memory regions were added at run time. */
static void expect_completed(json_t *report, const char *mode, int regions)
{
	assert_string_equal(json_string_value(json_object_get(report, "status")), "completed");
	assert_string_equal(json_string_value(json_object_get(report, "mode")), mode);
	json_t *x = json_object_get(report, "x-cpr");
	assert_non_null(x);
	assert_int_equal(json_integer_value(json_object_get(x, "ram-bytes-copied")), 0);
	assert_true(json_integer_value(json_object_get(x, "downtime-us")) > 0);
	/* KVM's memslot registration: inside the stop after an exec (a KVM VM
	 * belongs to one mm), before it in cpr-transfer (the RAM offer), but
	 * for regions added at run time, which the state brings. */
	json_t *memslots = json_object_get(x, "memslots-us");
	assert_true(json_is_integer(memslots));
	if (strcmp(mode, "cpr-exec") == 0 || regions > 0)
		assert_true(json_integer_value(memslots) > 0 &&
			    json_integer_value(memslots) <=
				    json_integer_value(json_object_get(x, "load-us")));
	else
		assert_int_equal(json_integer_value(memslots), 0);
	/* cpr-exec's exec left the old address space to a keeper. */
	json_t *kept = json_object_get(x, "address-space-kept");
	assert_true(json_is_boolean(kept));
	assert_int_equal(json_is_true(kept), strcmp(mode, "cpr-exec") == 0);
}

/* Is a child of pid an address-space keeper? */
static int has_keeper(pid_t pid)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		char path[300], line[256], comm[64] = "";
		long ppid = -1;
		snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
		FILE *f = fopen(path, "r");
		while (f != NULL && fgets(line, sizeof line, f) != NULL) {
			sscanf(line, "Name: %63s", comm);
			sscanf(line, "PPid: %ld", &ppid);
		}
		if (f != NULL)
			fclose(f);
		found = ppid == (long)pid && strcmp(comm, "tern-mm-keeper") == 0;
	}
	closedir(d);
	return found;
}

/* Dirty-page tracking works on the updated tern (its sets are made after
 * the resume): a one-second dirty-rate measurement completes. */
static void expect_dirty_tracking(struct qmp_conn *q)
{
	assert_int_equal(qmp_do(q, "calc-dirty-rate", json_pack("{s:i}", "calc-time", 1), NULL,
				5000),
			 0);
	for (int tries = 0; tries < 100; tries++) {
		json_t *r = query(q, "query-dirty-rate");
		assert_non_null(r);
		int done = strcmp(json_string_value(json_object_get(r, "status")), "measured") == 0;
		if (done)
			assert_true(json_is_integer(json_object_get(r, "dirty-rate")));
		json_decref(r);
		if (done)
			return;
		usleep(50000);
	}
	fail_msg("the dirty rate was never measured after the update");
}

/* Once the guest runs again, the keeper is released (at the lowest
 * priority, so give its teardown time): none is left behind. */
static void expect_keeper_released(pid_t pid)
{
	for (int i = 0; i < 500 && has_keeper(pid); i++)
		usleep(20000);
	assert_false(has_keeper(pid));
}

static const char *memfd_identity(json_t *ids)
{
	return json_string_value(json_object_get(ids, "ram/memfd/0"));
}

static void cpr_exec_three_times(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	uint64_t want = reference_checksum();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_start(&vm, "--memory", "64M", "--append", WORKLOAD, "--device",
				       "ioeventfd-bank,count=540", NULL),
			 0);
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
	json_t *before = identities(&q, vm.proc.pid);
	char ram[96];
	snprintf(ram, sizeof ram, "%s", memfd_identity(before));
	for (int i = 0; i < UPDATES; i++) {
		set_mode(&q, "cpr-exec", tern_path);
		set_settings(&q, i);
		assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL,
					10000),
				 0);
		/* The same QMP connection, now served by the new program. */
		json_t *r = wait_update(&q);
		expect_completed(r, "cpr-exec", 0);
		expect_settings(&q, i, "cpr-exec");
		assert_true(json_integer_value(json_object_get(json_object_get(r, "x-cpr"),
							       "fds")) >= 540);
		json_decref(r);
		json_t *after = identities(&q, vm.proc.pid);
		assert_true(json_equal(before, after)); /* every fd, and the RAM memfd */
		assert_string_equal(memfd_identity(after), ram);
		json_decref(after);
		expect_keeper_released(vm.proc.pid);
	}
	json_decref(before);
	qmp_close(&q);
	assert_int_equal(proc_wait(&vm.proc, 60000), 0);
	uint64_t got;
	assert_int_equal(harness_guest_checksum(proc_output(&vm.proc), &got), 0);
	assert_true(got == want);
	tern_vm_end(&vm);
}

/* A new `tern run --incoming cpr:unix:...` waiting for the guest. */
static void spawn_new(struct proc *p, const char *program, const char *sock)
{
	char spec[300];
	snprintf(spec, sizeof spec, "cpr:unix:%s", sock);
	char *argv[] = { (char *)program, "run", "--incoming", spec, NULL };
	assert_int_equal(proc_spawn(p, argv, 0), 0);
	assert_true(proc_wait_for(p, "waiting for a live update", 0, 10000) >= 0);
}

static void transfer(struct qmp_conn *q, const char *sock)
{
	set_mode(q, "cpr-transfer", NULL);
	char uri[300];
	snprintf(uri, sizeof uri, "unix:%s", sock);
	assert_int_equal(qmp_do(q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
}

static void cpr_transfer_three_times(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	uint64_t want = reference_checksum();
	struct tern_vm vm = { 0 };
	assert_int_equal(tern_vm_prepare(&vm), 0);
	char log[256], serial[300], sock[256];
	tern_vm_path(&vm, "serial.log", log, sizeof log);
	snprintf(serial, sizeof serial, "file:%s", log);
	assert_int_equal(tern_vm_start(&vm, "--memory", "64M", "--serial", serial, "--append",
				       WORKLOAD, NULL),
			 0);
	struct proc old = vm.proc, next;
	for (int i = 0; i < UPDATES; i++) {
		char name[32];
		snprintf(name, sizeof name, "cpr%d.sock", i);
		tern_vm_path(&vm, name, sock, sizeof sock);
		spawn_new(&next, tern_path, sock);
		struct qmp_conn q;
		assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
		json_t *before = identities(&q, old.pid);
		set_settings(&q, i);
		transfer(&q, sock);
		qmp_close(&q);
		assert_int_equal(proc_wait(&old, 20000), 0); /* the old tern leaves */
		proc_free(&old);
		assert_int_equal(qmp_connect(&q, vm.qmp_path, 1, 10000), 0);
		json_t *r = wait_update(&q);
		expect_completed(r, "cpr-transfer", 0);
		json_decref(r);
		expect_settings(&q, i, "cpr-transfer");
		json_t *after = identities(&q, next.pid);
		assert_true(json_equal(before, after));
		assert_non_null(memfd_identity(after));
		json_decref(before);
		json_decref(after);
		qmp_close(&q);
		old = next;
	}
	assert_int_equal(proc_wait(&old, 60000), 0);
	vm.proc = old; /* tern_vm_end frees the last one */
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	uint64_t got;
	assert_int_equal(harness_guest_checksum(text, &got), 0);
	assert_true(got == want);
	tern_vm_end(&vm);
}

/* An idle guest with a serial socket, to ring doorbells through. */
struct guest {
	struct tern_vm vm;
	struct text_stream serial;
	int fd;
	long at;
	int regions; /* memory regions added at run time */
};

/* An idle guest with `doorbells` doorbells, its serial client, and q
 * connected to its QMP socket. */
static void boot_idle(struct guest *g, const char *doorbells, struct qmp_conn *q)
{
	char ser[256], spec[300], dev[64];
	memset(g, 0, sizeof *g);
	assert_int_equal(tern_vm_prepare(&g->vm), 0);
	tern_vm_path(&g->vm, "serial.sock", ser, sizeof ser);
	snprintf(spec, sizeof spec, "unix:%s,server", ser);
	snprintf(dev, sizeof dev, "ioeventfd-bank,count=%s", doorbells);
	assert_int_equal(tern_vm_start(&g->vm, "--memory", "64M", "--serial", spec, "--device", dev,
				       "--append", "workload=idle ws=8M", NULL),
			 0);
	g->fd = unix_connect_retry(ser, 10000);
	assert_true(g->fd >= 0);
	text_stream_init(&g->serial, g->fd);
	g->at = text_stream_wait_line(&g->serial, 0, "tern-guest: start", 20000);
	assert_true(g->at > 0);
	assert_int_equal(qmp_connect(q, g->vm.qmp_path, 1, 10000), 0);
}

/* Update the guest's tern by cpr-exec; it completes. */
static void update_by_exec(struct qmp_conn *q)
{
	set_mode(q, "cpr-exec", tern_path);
	assert_int_equal(qmp_do(q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	json_t *r = wait_update(q);
	expect_completed(r, "cpr-exec", 0);
	json_decref(r);
}

/* Move the guest to a new tern by cpr-transfer: the old one leaves, q
 * reaches the new one, and the update completed. */
static void update_by_transfer(struct guest *g, struct qmp_conn *q)
{
	char sock[256];
	tern_vm_path(&g->vm, "cpr.sock", sock, sizeof sock);
	struct proc next;
	spawn_new(&next, tern_path, sock);
	transfer(q, sock);
	qmp_close(q);
	assert_int_equal(proc_wait(&g->vm.proc, 20000), 0); /* the old tern leaves */
	proc_free(&g->vm.proc);
	g->vm.proc = next;
	assert_int_equal(qmp_connect(q, g->vm.qmp_path, 1, 10000), 0);
	json_t *r = wait_update(q);
	expect_completed(r, "cpr-transfer", g->regions);
	json_decref(r);
}

static void end_guest(struct guest *g, struct qmp_conn *q)
{
	assert_int_equal(qmp_do(q, "quit", NULL, NULL, 5000), 0);
	qmp_close(q);
	proc_wait(&g->vm.proc, 10000);
	text_stream_free(&g->serial);
	close(g->fd);
	tern_vm_end(&g->vm);
}

static void poke(struct guest *g, uint64_t addr, uint64_t value)
{
	assert_int_equal(guest_poke(&g->serial, &g->at, addr, value), 0);
}

static uint64_t peek(struct guest *g, uint64_t addr)
{
	uint64_t value = 0;
	assert_int_equal(guest_peek(&g->serial, &g->at, addr, &value), 0);
	return value;
}

static void ring(struct guest *g, uint32_t doorbell)
{
	poke(g, BANK_BASE + 8ULL * doorbell, 1);
}

static json_int_t rings_of(json_t *bank, uint32_t doorbell)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(bank, "doorbells"), i, e)
		if (json_integer_value(json_object_get(e, "index")) == doorbell)
			return json_integer_value(json_object_get(e, "rings"));
	return 0;
}

static json_t *bank_when_registered(struct qmp_conn *q)
{
	for (int tries = 0; tries < 500; tries++) {
		json_t *b = query(q, "x-query-ioeventfd-bank");
		assert_non_null(b);
		if (json_integer_value(json_object_get(b, "kvm-registered")) ==
		    json_integer_value(json_object_get(b, "count")))
			return b;
		json_decref(b);
		usleep(20000);
	}
	fail_msg("the doorbells were never all registered with KVM");
	return NULL;
}

static void thousands_of_fds_arrive_and_ring(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct guest g;
	char count[16];
	snprintf(count, sizeof count, "%u", DOORBELLS);
	struct qmp_conn q;
	boot_idle(&g, count, &q);
	ring(&g, 7); /* before: the count must move with the device */
	json_t *before = identities(&q, g.vm.proc.pid);
	assert_true(json_object_size(before) >= DOORBELLS + 2);

	update_by_transfer(&g, &q);
	json_t *after = identities(&q, g.vm.proc.pid);
	assert_true(json_equal(before, after)); /* every fd is the same open file */

	/* The serial client moved too: the same connection rings doorbells. */
	ring(&g, 0);
	json_t *b = bank_when_registered(&q);
	ring(&g, 1);
	ring(&g, DOORBELLS / 2);
	ring(&g, DOORBELLS - 1);
	ring(&g, DOORBELLS - 1);
	json_decref(b);
	b = query(&q, "x-query-ioeventfd-bank");
	assert_int_equal(rings_of(b, 7), 1);
	assert_int_equal(rings_of(b, 0), 1);
	assert_int_equal(rings_of(b, 1), 1);
	assert_int_equal(rings_of(b, DOORBELLS / 2), 1);
	assert_int_equal(rings_of(b, DOORBELLS - 1), 2);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 6);
	json_decref(b);

	/* And once more by exec: the same process, the same files. */
	update_by_exec(&q);
	json_t *again = identities(&q, g.vm.proc.pid);
	assert_true(json_equal(before, again));
	ring(&g, 2);
	b = query(&q, "x-query-ioeventfd-bank");
	assert_int_equal(rings_of(b, 2), 1);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 7);
	json_decref(b);
	json_decref(again);
	json_decref(after);
	json_decref(before);
	end_guest(&g, &q);
}

static void expect_failed_and_running(struct qmp_conn *q, struct guest *g, const char *needle)
{
	json_t *r = wait_update(q);
	assert_string_equal(json_string_value(json_object_get(r, "status")), "failed");
	const char *why = json_string_value(json_object_get(r, "error-desc"));
	if (why == NULL || strstr(why, needle) == NULL)
		fail_msg("error-desc '%s' does not say '%s'", why ? why : "", needle);
	json_decref(r);
	json_t *st = query(q, "query-status");
	assert_string_equal(json_string_value(json_object_get(st, "status")), "running");
	json_decref(st);
	ring(g, 3); /* and the guest answers */
}

/* After an update in either mode, dirty-page tracking (whose sets the new
 * tern makes once the guest runs) measures the guest, which lives on. */
static void dirty_tracking_after_updates(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct guest g;
	struct qmp_conn q;
	boot_idle(&g, "4", &q);
	update_by_exec(&q);
	expect_dirty_tracking(&q);
	update_by_transfer(&g, &q);
	expect_dirty_tracking(&q);
	ring(&g, 1); /* the guest answers */
	end_guest(&g, &q);
}

/* Regions added at run time (memslot-add) come through updates in both
 * modes: the same memfds, at the same addresses, with their contents and
 * read-only flag, and they can still be changed afterwards. */
#define REGION_A 0x40000000ULL /* 1 GiB: above the 64 MiB of RAM */
#define REGION_B 0x40400000ULL
#define REGION_SIZE (2ULL << 20)

static json_int_t add_region(struct qmp_conn *q, uint64_t addr)
{
	json_t *r = qmp_execute(q, "memslot-add",
				json_pack("{s:I,s:I}", "addr", (json_int_t)addr, "size",
					  (json_int_t)REGION_SIZE),
				10000);
	json_t *slot = json_object_get(qmp_return(r), "slot");
	assert_true(json_is_integer(slot));
	json_int_t id = json_integer_value(slot);
	json_decref(r);
	return id;
}

/* The regions query-memslots lists as added, as "addr:size:read-only". */
static json_t *added_regions(struct qmp_conn *q)
{
	json_t *list = query(q, "query-memslots"), *out = json_array(), *e;
	size_t i;
	json_array_foreach(list, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "kind")), "added") != 0)
			continue;
		char text[96];
		snprintf(text, sizeof text, "%lld:%lld:%d",
			 (long long)json_integer_value(json_object_get(e, "addr")),
			 (long long)json_integer_value(json_object_get(e, "size")),
			 json_is_true(json_object_get(e, "read-only")));
		json_array_append_new(out, json_string(text));
	}
	json_decref(list);
	return out;
}

static void expect_regions(struct guest *g, struct qmp_conn *q, json_t *want_regions,
			   json_t *want_fds)
{
	json_t *regions = added_regions(q), *fds = identities(q, g->vm.proc.pid);
	assert_true(json_equal(regions, want_regions));
	assert_true(json_equal(fds, want_fds)); /* the region memfds among them */
	json_decref(regions);
	json_decref(fds);
	assert_true(peek(g, REGION_A + 8) == 0x1122334455667788ULL);
	assert_true(peek(g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
	poke(g, REGION_B + 16, 1); /* still read-only: dropped */
	assert_true(peek(g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
}

static void added_regions_come_through_updates(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct guest g;
	struct qmp_conn q;
	boot_idle(&g, "4", &q);
	json_int_t a = add_region(&q, REGION_A), b = add_region(&q, REGION_B);
	g.regions = 2;
	poke(&g, REGION_A + 8, 0x1122334455667788ULL);
	poke(&g, REGION_B + 16, 0x99aabbccddeeff00ULL);
	assert_int_equal(qmp_do(&q, "memslot-set-read-only",
				json_pack("{s:I,s:b}", "slot", (json_int_t)b, "read-only", 1), NULL,
				10000),
			 0);
	json_t *regions = added_regions(&q), *fds = identities(&q, g.vm.proc.pid);
	assert_int_equal(json_array_size(regions), 2);
	char key[64];
	snprintf(key, sizeof key, "memslot/region/%lld", (long long)a);
	assert_non_null(json_object_get(fds, key));

	update_by_exec(&q);
	expect_regions(&g, &q, regions, fds);
	update_by_transfer(&g, &q);
	expect_regions(&g, &q, regions, fds);

	/* The new tern can remove one: its memfd leaves the store, and the
	 * guest finds no memory there. */
	assert_int_equal(qmp_do(&q, "memslot-del", json_pack("{s:I}", "slot", (json_int_t)a), NULL,
				10000),
			 0);
	json_t *now = identities(&q, g.vm.proc.pid);
	assert_null(json_object_get(now, key));
	json_decref(now);
	g.regions = 1;
	assert_true(peek(&g, REGION_A + 8) == UINT64_MAX);
	update_by_exec(&q);
	assert_true(peek(&g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
	json_decref(regions);
	json_decref(fds);
	end_guest(&g, &q);
}

static void failed_updates_keep_the_guest(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct guest g;
	struct qmp_conn q;
	boot_idle(&g, "16", &q);

	/* cpr-transfer to a tern that cannot load this state: the old resumes. */
	char sock[256];
	tern_vm_path(&g.vm, "cpr.sock", sock, sizeof sock);
	struct proc next;
	spawn_new(&next, next_path, sock);
	transfer(&q, sock);
	expect_failed_and_running(&q, &g, "loads 99 to 99");
	assert_int_equal(proc_wait(&next, 10000), 125);
	proc_free(&next);

	/* cpr-exec of a program that is not there: caught before exec. */
	set_mode(&q, "cpr-exec", "/nonexistent/tern");
	assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	expect_failed_and_running(&q, &g, "cannot run /nonexistent/tern");

	/* cpr-exec of a tern that cannot load it: it execs this binary back. */
	set_mode(&q, "cpr-exec", next_path);
	assert_int_equal(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	expect_failed_and_running(&q, &g, "the previous binary resumed it");
	expect_keeper_released(g.vm.proc.pid); /* passed on to the previous binary */

	/* Refused up front: a transfer not over a unix socket, exec with no program. */
	set_mode(&q, "cpr-transfer", NULL);
	json_t *e = qmp_execute(&q, "migrate", json_pack("{s:s}", "uri", "tcp:127.0.0.1:1"), 10000);
	assert_non_null(json_object_get(e, "error"));
	json_decref(e);
	e = qmp_execute(&q, "migrate-set-parameters", json_pack("{s:s}", "mode", "cpr-later"),
			10000);
	assert_non_null(json_object_get(e, "error"));
	json_decref(e);

	end_guest(&g, &q);
}

/* Bytes and at most one fd, as one message. */
static void send_raw(int sock, const void *data, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof control);
	struct iovec iov = { (void *)data, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		m.msg_control = control.buf;
		m.msg_controllen = sizeof control.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	assert_int_equal(sendmsg(sock, &m, MSG_NOSIGNAL), (ssize_t)len);
}

/* A new tern waiting for an update is offered RAM it must refuse: it says
 * why and ends, having taken nothing. */
static void hostile_ram_offers_refused(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *dir = harness_tmpdir();
	assert_non_null(dir);
	char sock[128];
	snprintf(sock, sizeof sock, "%s/cpr.sock", dir);
	int ram = memfd_create("offer", MFD_CLOEXEC);
	assert_true(ram >= 0 && ftruncate(ram, 16 << 20) == 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	struct {
		const char *magic;
		uint64_t memory;
		uint32_t memslots;
		int fd;
		const char *why;
	} offers[] = {
		{ "TERNRAM0", 16 << 20, 1, ram, "not a RAM offer" },
		{ "TERNRAM1", 16 << 20, 1, -1, "not a RAM offer" },
		{ "TERNRAM1", 1 << 20, 1, ram, "is not one tern makes" },
		{ "TERNRAM1", 16 << 20, 0, ram, "is not one tern makes" },
		{ "TERNRAM1", 64 << 20, 1, ram, "is not a memfd of 64 MiB" },
		{ "TERNRAM1", 16 << 20, 1, pipefd[0], "is not a memfd" },
	};
	for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
		struct proc next;
		spawn_new(&next, tern_path, sock);
		int c = unix_connect_retry(sock, 10000);
		assert_true(c >= 0);
		struct tern_buf b = { 0 };
		tern_buf_put(&b, offers[i].magic, 8);
		tern_buf_u64(&b, offers[i].memory);
		tern_buf_u32(&b, offers[i].memslots);
		send_raw(c, b.data, b.len, offers[i].fd);
		tern_buf_free(&b);
		char reply[512] = "";
		ssize_t n = recv(c, reply, sizeof reply - 1, MSG_WAITALL);
		reply[n > 0 ? n : 0] = '\0';
		if (strncmp(reply, "ERR ", 4) != 0 || strstr(reply, offers[i].why) == NULL)
			fail_msg("offer %zu: the reply '%s' does not say '%s'", i, reply,
				 offers[i].why);
		assert_int_equal(proc_wait(&next, 10000), 125);
		proc_free(&next);
		close(c);
	}
	close(ram);
	close(pipefd[0]);
	close(pipefd[1]);
	harness_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cpr_exec_three_times),
		cmocka_unit_test(cpr_transfer_three_times),
		cmocka_unit_test(thousands_of_fds_arrive_and_ring),
		cmocka_unit_test(dirty_tracking_after_updates),
		cmocka_unit_test(added_regions_come_through_updates),
		cmocka_unit_test(failed_updates_keep_the_guest),
		cmocka_unit_test(hostile_ram_offers_refused),
	};
	return cmocka_run_group_tests_name("cpr", tests, setup, NULL);
}
