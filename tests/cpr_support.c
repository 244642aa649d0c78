/*
 * What the live-update tests share: the fds a tern keeps, as seen from
 * outside; updates by cpr-exec and cpr-transfer and their reports; an
 * idle guest to ring doorbells and peek at memory through its serial port.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "cpr_support.h"

char cpr_tern_path[PATH_MAX], cpr_next_path[PATH_MAX + 16];

int cpr_setup(void **state)
{
	(void)state;
	if (realpath(harness_tern(), cpr_tern_path) == NULL)
		return -1;
	snprintf(cpr_next_path, sizeof cpr_next_path, "%s-cpr-next", cpr_tern_path);
	return 0;
}

json_t *cpr_query(struct qmp_conn *q, const char *cmd)
{
	json_t *reply = qmp_execute(q, cmd, NULL, 10000);
	json_t *ret = json_incref(qmp_return(reply));
	json_decref(reply);
	return ret;
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

json_t *cpr_identities(struct qmp_conn *q, pid_t pid)
{
	json_t *list = cpr_query(q, "x-query-fdstore");
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

void cpr_set_mode(struct qmp_conn *q, const char *mode, const char *exec_program)
{
	json_t *args = json_pack("{s:s}", "mode", mode);
	if (exec_program != NULL)
		json_object_set_new(args, "cpr-exec-command", json_pack("[s,s]", exec_program, "run"));
	assert_int_equal(qmp_do(q, "migrate-set-parameters", args, NULL, 10000), 0);
}

json_t *cpr_wait_update(struct qmp_conn *q)
{
	json_t *r = mig_wait(q, 20, 10000, NULL, NULL);
	if (r == NULL)
		fail_msg("the update did not end");
	return r;
}

void cpr_expect_completed(json_t *report, const char *mode, int regions)
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

/* The keeper is killed at the lowest priority: give its teardown time. */
void cpr_expect_keeper_released(pid_t pid)
{
	for (int i = 0; i < 500 && has_keeper(pid); i++)
		usleep(20000);
	assert_false(has_keeper(pid));
}

const char *cpr_memfd_identity(json_t *ids)
{
	return json_string_value(json_object_get(ids, "ram/memfd/0"));
}

void cpr_spawn_new(struct proc *p, const char *program, const char *sock)
{
	char spec[300];
	snprintf(spec, sizeof spec, "cpr:unix:%s", sock);
	char *argv[] = { (char *)program, "run", "--incoming", spec, NULL };
	assert_int_equal(proc_spawn(p, argv, 0), 0);
	assert_true(proc_wait_for(p, "waiting for a live update", 0, 10000) >= 0);
}

void cpr_transfer(struct qmp_conn *q, const char *sock)
{
	cpr_set_mode(q, "cpr-transfer", NULL);
	char uri[300];
	snprintf(uri, sizeof uri, "unix:%s", sock);
	assert_int_equal(qmp_do(q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
}

void cpr_boot_idle(struct cpr_guest *g, const char *doorbells, struct qmp_conn *q)
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
	g->fd = guest_serial_attach(ser, &g->serial, "tern-guest: start", &g->at);
	assert_true(g->fd >= 0);
	assert_int_equal(qmp_connect(q, g->vm.qmp_path, 1, 10000), 0);
}

void cpr_update_by_exec(struct qmp_conn *q)
{
	cpr_set_mode(q, "cpr-exec", cpr_tern_path);
	assert_int_equal(qmp_do(q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	json_t *r = cpr_wait_update(q);
	cpr_expect_completed(r, "cpr-exec", 0);
	json_decref(r);
}

void cpr_update_by_transfer(struct cpr_guest *g, struct qmp_conn *q)
{
	char sock[256];
	tern_vm_path(&g->vm, "cpr.sock", sock, sizeof sock);
	struct proc next;
	cpr_spawn_new(&next, cpr_tern_path, sock);
	cpr_transfer(q, sock);
	qmp_close(q);
	assert_int_equal(proc_wait(&g->vm.proc, 20000), 0); /* the old tern leaves */
	proc_free(&g->vm.proc);
	g->vm.proc = next;
	assert_int_equal(qmp_connect(q, g->vm.qmp_path, 1, 10000), 0);
	json_t *r = cpr_wait_update(q);
	cpr_expect_completed(r, "cpr-transfer", g->regions);
	json_decref(r);
}

void cpr_end_guest(struct cpr_guest *g, struct qmp_conn *q)
{
	assert_int_equal(qmp_do(q, "quit", NULL, NULL, 5000), 0);
	qmp_close(q);
	proc_wait(&g->vm.proc, 10000);
	text_stream_free(&g->serial);
	close(g->fd);
	tern_vm_end(&g->vm);
}

void cpr_poke(struct cpr_guest *g, uint64_t addr, uint64_t value)
{
	assert_int_equal(guest_poke(&g->serial, &g->at, addr, value), 0);
}

uint64_t cpr_peek(struct cpr_guest *g, uint64_t addr)
{
	uint64_t value = 0;
	assert_int_equal(guest_peek(&g->serial, &g->at, addr, &value), 0);
	return value;
}

void cpr_ring(struct cpr_guest *g, uint32_t doorbell)
{
	cpr_poke(g, CPR_BANK_BASE + 8ULL * doorbell, 1);
}


json_int_t cpr_bank_rings(json_t *bank, uint32_t doorbell)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(bank, "doorbells"), i, e)
		if (json_integer_value(json_object_get(e, "index")) == doorbell)
			return json_integer_value(json_object_get(e, "rings"));
	return 0;
}
