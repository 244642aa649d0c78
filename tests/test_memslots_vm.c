/*
 * The memory map under a real KVM guest: a guest split over every memslot
 * KVM offers runs and verifies with the same checksum as with one slot;
 * regions added, moved, made read-only and removed over QMP are seen by
 * the guest (peek/poke on the serial port) as they should be; bad requests
 * come back as QMP errors while the guest keeps running.
 */
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
#include <jansson.h>

#include "../harness/sock.h"
#include "../harness/tern.h"
#include "qmp/qmp_client.h"
#include "kvm_skip.h"

#define RUN_ARGS "workload=random ws=64M writes=100000"

/* The checksum a finished run printed, or "" if it did not verify. */
static void run_checksum(const char *memslots, char *sum, size_t len)
{
	struct proc p;
	assert_int_equal(tern_spawn(&p, 0, "run", "--memory", "256M", "--memslots", memslots,
				    "--append", RUN_ARGS, NULL),
			 0);
	assert_int_equal(proc_wait(&p, 120000), 0);
	const char *out = proc_output(&p);
	const char *at = strstr(out, "verify ok (end)");
	assert_non_null(at);
	at = strstr(at, "checksum=");
	assert_non_null(at);
	snprintf(sum, len, "%.*s", (int)strcspn(at, "\n"), at);
	proc_free(&p);
}

static void every_memslot_kvm_offers(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char one[64], many[64], all[64];
	run_checksum("1", one, sizeof one);
	run_checksum("1000", many, sizeof many);
	run_checksum("32764", all, sizeof all);
	assert_string_equal(one, many);
	assert_string_equal(one, all);
}

struct guest {
	struct tern_vm vm;
	struct qmp_conn q;
	struct text_stream serial;
	int fd;
	long at;
};

static void boot(struct guest *g)
{
	char ser[256], spec[300];
	memset(g, 0, sizeof *g);
	assert_int_equal(tern_vm_prepare(&g->vm), 0);
	tern_vm_path(&g->vm, "serial.sock", ser, sizeof ser);
	snprintf(spec, sizeof spec, "unix:%s,server", ser);
	assert_int_equal(tern_vm_start(&g->vm, "--memory", "256M", "--serial", spec, "--append",
				       "workload=idle", NULL),
			 0);
	g->fd = guest_serial_attach(ser, &g->serial, "tern-guest: start", &g->at);
	assert_true(g->fd >= 0);
	assert_int_equal(qmp_connect(&g->q, g->vm.qmp_path, 1, 10000), 0);
}

static void shut_down(struct guest *g)
{
	assert_int_equal(qmp_do(&g->q, "quit", NULL, NULL, 5000), 0);
	proc_wait(&g->vm.proc, 10000);
	qmp_close(&g->q);
	text_stream_free(&g->serial);
	close(g->fd);
	tern_vm_end(&g->vm);
}

/* Ask the guest for the word at addr. */
static uint64_t peek(struct guest *g, uint64_t addr)
{
	uint64_t value = 0;
	assert_int_equal(guest_peek(&g->serial, &g->at, addr, &value), 0);
	return value;
}

static void poke(struct guest *g, uint64_t addr, uint64_t value)
{
	assert_int_equal(guest_poke(&g->serial, &g->at, addr, value), 0);
}

/* A QMP command that must fail; returns its error text (static). */
static const char *qmp_refused(struct guest *g, const char *cmd, json_t *args)
{
	static char desc[512];
	json_t *r = qmp_execute(&g->q, cmd, args, 5000);
	assert_non_null(r);
	json_t *e = json_object_get(r, "error");
	assert_non_null(e);
	snprintf(desc, sizeof desc, "%s", json_string_value(json_object_get(e, "desc")));
	json_decref(r);
	return desc;
}

static json_int_t add_region(struct guest *g, uint64_t addr, uint64_t size)
{
	json_t *r = qmp_execute(&g->q, "memslot-add",
				json_pack("{s:I, s:I}", "addr", (json_int_t)addr, "size",
					  (json_int_t)size),
				5000);
	json_t *ret = qmp_return(r);
	assert_non_null(ret);
	json_int_t slot = json_integer_value(json_object_get(ret, "slot"));
	json_decref(r);
	return slot;
}

static void assert_running(struct guest *g)
{
	json_t *r = qmp_execute(&g->q, "query-status", NULL, 5000);
	assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")), "running");
	json_decref(r);
}

#define A 0x40000000ULL /* 1 GiB: above the 256 MiB of RAM */
#define B 0x50000000ULL
#define NOTHING 0xffffffffffffffffULL

static void regions_added_moved_and_removed_at_run_time(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct guest g;
	boot(&g);
	assert_int_equal(peek(&g, A), NOTHING); /* no memory there yet */

	json_int_t slot = add_region(&g, A, 2 << 20);
	assert_true(slot >= 1);
	assert_int_equal(peek(&g, A), 0); /* fresh memory reads zero */
	poke(&g, A + 8, 0x1122334455667788ULL);
	assert_int_equal(peek(&g, A + 8), 0x1122334455667788ULL);

	/* Moved: the contents go along; the old address is empty. */
	assert_int_equal(qmp_do(&g.q, "memslot-move",
				json_pack("{s:I, s:I}", "slot", slot, "addr", (json_int_t)B), NULL,
				5000),
			 0);
	assert_int_equal(peek(&g, B + 8), 0x1122334455667788ULL);
	assert_int_equal(peek(&g, A + 8), NOTHING);

	/* Read-only: guest writes are dropped; writable again: they stick. */
	assert_int_equal(qmp_do(&g.q, "memslot-set-read-only",
				json_pack("{s:I, s:b}", "slot", slot, "read-only", 1), NULL, 5000),
			 0);
	poke(&g, B + 8, 0xdeadbeef);
	assert_int_equal(peek(&g, B + 8), 0x1122334455667788ULL);
	assert_int_equal(qmp_do(&g.q, "memslot-set-read-only",
				json_pack("{s:I, s:b}", "slot", slot, "read-only", 0), NULL, 5000),
			 0);
	poke(&g, B + 8, 0xdeadbeef);
	assert_int_equal(peek(&g, B + 8), 0xdeadbeef);

	/* The map lists it. */
	json_t *r = qmp_execute(&g.q, "query-memslots", NULL, 5000);
	json_t *list = qmp_return(r);
	assert_true(json_array_size(list) >= 2);
	json_t *last = json_array_get(list, json_array_size(list) - 1);
	assert_int_equal(json_integer_value(json_object_get(last, "slot")), slot);
	assert_int_equal(json_integer_value(json_object_get(last, "addr")), (json_int_t)B);
	assert_string_equal(json_string_value(json_object_get(last, "kind")), "added");
	json_decref(r);

	/* Refusals, each with the VM still running. */
	assert_non_null(strstr(qmp_refused(&g, "memslot-add",
					   json_pack("{s:I, s:I}", "addr", (json_int_t)0x100000,
						     "size", (json_int_t)4096)),
			       "overlaps memslot 0"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-add",
					   json_pack("{s:I, s:I}", "addr", (json_int_t)B + 4096,
						     "size", (json_int_t)4096)),
			       "overlaps"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-add",
					   json_pack("{s:I, s:I}", "addr", (json_int_t)A + 100,
						     "size", (json_int_t)4096)),
			       "multiples of 4 KiB"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-add",
					   json_pack("{s:I, s:I}", "addr", (json_int_t)1 << 52,
						     "size", (json_int_t)4096)),
			       "beyond"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-move",
					   json_pack("{s:I, s:I}", "slot", slot, "addr",
						     (json_int_t)0)),
			       "overlaps"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-del", json_pack("{s:i}", "slot", 0)),
			       "guest RAM"));
	assert_non_null(strstr(qmp_refused(&g, "memslot-del", json_pack("{s:i}", "slot", 999)),
			       "no memslot 999"));
	assert_non_null(strstr(qmp_refused(&g, "migrate", json_pack("{s:s}", "uri", "file:/dev/null")),
			       "memslot-del"));
	assert_running(&g);
	assert_int_equal(peek(&g, B + 8), 0xdeadbeef);

	/* Removed: gone for the guest; the id is free again. */
	assert_int_equal(qmp_do(&g.q, "memslot-del", json_pack("{s:I}", "slot", slot), NULL, 5000),
			 0);
	assert_int_equal(peek(&g, B + 8), NOTHING);
	assert_int_equal(add_region(&g, A, 4096), slot);
	assert_int_equal(peek(&g, A + 8), 0);
	assert_running(&g);
	shut_down(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_memslot_kvm_offers),
		cmocka_unit_test(regions_added_moved_and_removed_at_run_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
