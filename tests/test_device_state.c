/*
 * Every piece of state the machine registers (vmm/machine/vm_state.h)
 * survives every way of carrying a VM (issue 18): one guest, given
 * state that differs from a fresh machine's in every entry, goes through
 * a live migration (to a destination started with `--incoming defer`, as
 * libvirt starts one), `migrate file:` and a restore from that file, a
 * cpr-exec and a cpr-transfer; before and after each, with the guest
 * stopped, x-query-vm-state gives each entry's size and crc32c, and every
 * entry that carrier carries must come out as it went in.  Serial input
 * tern has read but the UART could not take yet must survive a live
 * update.  What a carrier or a destination refuses is
 * tests/test_device_blockers.c's.
 */
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

#include "../harness/migrate.h"
#include "cpr_support.h"
#include "device_support.h"
#include "kvm_skip.h"

/* ------------------------------------------------------------ what a hop must keep */

/*
 * The same entries on both sides of a hop, and each one the carrier
 * carries as it was -- but for what legitimately moves:
 *
 * - "kvm" (the guest's clock, the irqchip) and "cpu/N" (registers, MSRs,
 *   the TSC): the vCPUs run until the stop and the clock goes on; the
 *   guest's own verification of its memory after every hop, and its
 *   answering on the serial port at all, covers them.
 *
 * Everything else, including qmp-clients (the slots, negotiation and the
 * unread input of each client, this test's own connection included: it
 * has no unread input while its x-query-vm-state runs), must be byte for
 * byte the same.
 */
static void expect_carried(json_t *before, json_t *after, const char *carrier, const char *hop)
{
	const char *name;
	json_t *b;
	json_object_foreach(before, name, b) {
		json_t *a = json_object_get(after, name);
		if (a == NULL)
			fail_msg("%s: entry %s is missing after it", hop, name);
		/* The same type on both sides. */
		assert_string_equal(json_string_value(json_object_get(b, "description")),
				    json_string_value(json_object_get(a, "description")));
		assert_int_equal(device_number(b, "version"), device_number(a, "version"));
		assert_true(json_equal(json_object_get(b, "carried-by"),
				       json_object_get(a, "carried-by")));
		if (!device_carried_by(b, carrier) || strcmp(name, "kvm") == 0 ||
		    strncmp(name, "cpu/", 4) == 0)
			continue;
		if (device_number(b, "size") != device_number(a, "size") ||
		    device_number(b, "crc32c") != device_number(a, "crc32c"))
			fail_msg("%s did not carry %s: %lld bytes crc32c 0x%08llx before, %lld bytes "
				 "crc32c 0x%08llx after",
				 hop, name, device_number(b, "size"), device_number(b, "crc32c"),
				 device_number(a, "size"), device_number(a, "crc32c"));
	}
	json_object_foreach(after, name, b)
		if (json_object_get(before, name) == NULL)
			fail_msg("%s: entry %s appeared", hop, name);
}

/* Migration settings away from every default (docs/migration.md). */
static void set_settings(struct device_guest *g)
{
	assert_int_equal(qmp_do(&g->q, "migrate-set-parameters",
				json_pack("{s:i,s:I,s:I,s:i,s:i,s:i,s:i}", "downtime-limit", 123,
					  "max-bandwidth", (json_int_t)3 << 30, "xbzrle-cache-size",
					  (json_int_t)80 << 20, "cpu-throttle-initial", 31,
					  "cpu-throttle-increment", 17, "max-cpu-throttle", 77,
					  "x-cpr-timeout", 9000),
				NULL, 10000),
			 0);
	assert_int_equal(mig_set_capabilities(&g->q, 1, 0, 1), 0); /* xbzrle, events */
}

static json_t *settings(struct device_guest *g)
{
	return json_pack("{s:o,s:o}", "parameters", cpr_query(&g->q, "query-migrate-parameters"),
			 "capabilities", cpr_query(&g->q, "query-migrate-capabilities"));
}

/* A second QMP client that has sent half a command: what it had sent is
 * unread input of the QMP server, the qmp-clients entry's to carry. */
#define HALF_SENT "{\"execute\": \"query-st"
#define HALF_REST "atus\"}\n"

static void half_client(struct device_guest *g, struct qmp_conn *c)
{
	assert_int_equal(qmp_connect(c, g->vm.qmp_path, 1, 10000), 0);
	assert_int_equal(qmp_send_raw(c, HALF_SENT, strlen(HALF_SENT)), 0);
}

/* Its command, finished now, is answered as the one it began. */
static void half_client_finishes(struct qmp_conn *c)
{
	assert_int_equal(qmp_send_raw(c, HALF_REST, strlen(HALF_REST)), 0);
	json_t *r;
	while ((r = qmp_read(c, 10000)) != NULL && json_object_get(r, "event") != NULL)
		json_decref(r);
	if (r == NULL || !json_is_string(json_object_get(qmp_return(r), "status")))
		fail_msg("the half-sent command was not answered as query-status");
	json_decref(r);
}

/* While the guest is stopped, bytes typed on its serial port wait in the
 * UART's receive FIFO (device state); a guest command, so that once the
 * guest runs again it shows they arrived.  Returns x-query-vm-state with
 * them in. */
#define TYPED "status\n"

static json_t *type_while_stopped(struct device_guest *g)
{
	json_t *st = device_vm_state(g);
	long long size = device_number(json_object_get(st, "uart"), "size");
	assert_int_equal(write(g->fd, TYPED, strlen(TYPED)), (ssize_t)strlen(TYPED));
	for (int tries = 0; tries < 500; tries++) {
		json_decref(st);
		st = device_vm_state(g);
		if (device_number(json_object_get(st, "uart"), "size") ==
		    size + (long long)strlen(TYPED))
			return st;
		usleep(2000);
	}
	fail_msg("what was typed on the serial port never reached the UART");
	return NULL;
}

/* A new tern waiting for g's cpr-transfer, g set to that mode and stopped;
 * uri is where to send the update. */
static void begin_transfer(struct device_guest *g, struct proc *next, char *uri, size_t len)
{
	char sock[256];
	tern_vm_path(&g->vm, "cpr.sock", sock, sizeof sock);
	snprintf(uri, len, "unix:%s", sock);
	cpr_spawn_new(next, cpr_tern_path, sock);
	device_track(next->pid);
	cpr_set_mode(&g->q, "cpr-transfer", NULL);
	device_stop(g);
}

/* ------------------------------------------------------------ 1. every entry, every carrier */

static const char *const expected_entries[] = {
	"machine", "kvm", "cpu/0", "uart", "serial-out", "memory-regions", "ioeventfd-bank",
	"migration-settings", "qmp-clients",
};

static void every_entry_survives_every_carrier(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	unsigned rings[DEVICE_DOORBELLS] = { 3, 1, 0, 7, 2, 0, 5, 4 };
	struct device_guest src;
	device_boot(&src, DEVICE_BANK);

	/* Non-default state everywhere: doorbells rung (some several times,
	 * some never), pages written, migration settings, a client with a
	 * command half sent; the UART as the guest set it up, and before each
	 * hop a command typed into its receive FIFO while the guest is
	 * stopped. */
	for (unsigned d = 0; d < DEVICE_DOORBELLS; d++)
		for (unsigned k = 0; k < rings[d]; k++)
			device_ring(&src, d);
	device_say(&src, "write 0 300 7\n", "tern-guest: wrote 300 pages");
	char memory[256];
	device_verify(&src, memory, sizeof memory);
	set_settings(&src);
	struct qmp_conn half;
	half_client(&src, &half);

	/* Refused while the guest runs. */
	json_t *r = qmp_execute(&src.q, "x-query-vm-state", NULL, 10000);
	assert_non_null(device_error_desc(r));
	json_decref(r);

	device_stop(&src);
	json_t *before = type_while_stopped(&src);
	for (size_t i = 0; i < sizeof expected_entries / sizeof expected_entries[0]; i++)
		if (json_object_get(before, expected_entries[i]) == NULL)
			fail_msg("no %s entry", expected_entries[i]);
	/* The device was added once and every carrier takes it. */
	json_t *bank = json_object_get(before, "ioeventfd-bank");
	assert_true(device_carried_by(bank, "migration") && device_carried_by(bank, "file") &&
		    device_carried_by(bank, "cpr-exec") && device_carried_by(bank, "cpr-transfer"));
	device_expect_rings(&src, rings, "before");

	/* Hop 1: a live migration, the destination in defer as libvirt does. */
	struct device_guest d1;
	device_destination(&d1, DEVICE_BANK, "defer");
	device_expect_status(&d1, "inmigrate");
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	assert_int_equal(qmp_do(&d1.q, "migrate-incoming", json_pack("{s:s}", "uri", uri), NULL,
				10000),
			 0);
	assert_int_equal(qmp_do(&src.q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
	device_expect_completed(&src);
	device_expect_status(&src, "postmigrate");
	device_expect_completed(&d1);
	/* The source had the guest paused: so has the destination (QEMU's
	 * run state), with what was typed still in the UART. */
	device_expect_status(&d1, "paused");
	json_t *after = device_vm_state(&d1);
	expect_carried(before, after, "migration", "the live migration");
	device_cont(&d1);
	device_serial_expect(&d1, "tern-guest: status "); /* what was typed reached the guest */
	device_expect_rings(&d1, rings, "the live migration");
	json_decref(before);
	json_decref(after);
	qmp_close(&half); /* it stays with the source, which ends */
	device_end_guest(&src);
	device_cont(&d1);
	device_expect_same_memory(&d1, memory, "the live migration");
	/* A migration leaves the settings with its source, as QEMU does. */
	json_t *params = cpr_query(&d1.q, "query-migrate-parameters");
	assert_int_equal(json_integer_value(json_object_get(params, "downtime-limit")), 300);
	json_decref(params);
	device_ring(&d1, 2);
	rings[2]++;

	/* Hop 2: to a file, and a new tern restored from it. */
	struct device_guest d2;
	memset(&d2, 0, sizeof d2);
	assert_int_equal(tern_vm_prepare(&d2.vm), 0);
	char path[256], file_uri[300];
	tern_vm_path(&d2.vm, "saved.tern", path, sizeof path);
	snprintf(file_uri, sizeof file_uri, "file:%s", path);
	device_stop(&d1);
	before = type_while_stopped(&d1);
	assert_int_equal(qmp_do(&d1.q, "migrate", json_pack("{s:s}", "uri", file_uri), NULL, 10000),
			 0);
	device_expect_completed(&d1);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	device_end_guest(&d1);
	device_start_tern(&d2, DEVICE_BANK, file_uri);
	device_expect_completed(&d2);
	device_expect_status(&d2, "paused"); /* as it was saved */
	after = device_vm_state(&d2);
	expect_carried(before, after, "file", "migrate file: and its restore");
	device_cont(&d2);
	device_serial_expect(&d2, "tern-guest: status ");
	device_stop(&d2);
	device_expect_rings(&d2, rings, "migrate file: and its restore");
	json_decref(before);
	json_decref(after);
	device_cont(&d2);
	device_expect_same_memory(&d2, memory, "migrate file: and its restore");
	device_ring(&d2, 5);
	rings[5]++;
	device_say(&d2, "write 1 20 5\n", "tern-guest: wrote 20 pages");
	device_verify(&d2, memory, sizeof memory);

	/* Hop 3: cpr-exec.  The migrations left the settings behind, so they
	 * are set again here, and a client half-sends a command. */
	set_settings(&d2);
	cpr_set_mode(&d2.q, "cpr-exec", cpr_tern_path);
	half_client(&d2, &half);
	device_stop(&d2);
	before = type_while_stopped(&d2);
	json_t *set_before = settings(&d2);
	assert_int_equal(qmp_do(&d2.q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000),
			 0);
	r = cpr_wait_update(&d2.q);
	cpr_expect_completed(r, "cpr-exec", 0);
	json_decref(r);
	device_expect_status(&d2, "paused"); /* an update keeps a paused guest paused */
	after = device_vm_state(&d2);
	expect_carried(before, after, "cpr-exec", "cpr-exec");
	device_expect_rings(&d2, rings, "cpr-exec");
	json_t *set_after = settings(&d2);
	assert_true(json_equal(set_before, set_after));
	json_decref(set_before);
	json_decref(set_after);
	json_decref(before);
	json_decref(after);
	device_cont(&d2);
	device_serial_expect(&d2, "tern-guest: status "); /* what was typed reached the guest */
	device_expect_same_memory(&d2, memory, "cpr-exec");
	device_ring(&d2, 0);
	rings[0]++;

	/* Hop 4: cpr-transfer to a new tern; both QMP connections and the
	 * serial client go with it. */
	char cpr_uri[300];
	struct proc next;
	begin_transfer(&d2, &next, cpr_uri, sizeof cpr_uri);
	before = type_while_stopped(&d2);
	set_before = settings(&d2);
	assert_int_equal(qmp_do(&d2.q, "migrate", json_pack("{s:s}", "uri", cpr_uri), NULL, 10000),
			 0);
	assert_int_equal(proc_wait(&d2.vm.proc, 20000), 0); /* the old tern leaves */
	device_expect_clean(&d2.vm.proc);
	proc_free(&d2.vm.proc);
	d2.vm.proc = next;
	r = cpr_wait_update(&d2.q);
	cpr_expect_completed(r, "cpr-transfer", 0);
	json_decref(r);
	device_expect_status(&d2, "paused");
	after = device_vm_state(&d2);
	expect_carried(before, after, "cpr-transfer", "cpr-transfer");
	device_expect_rings(&d2, rings, "cpr-transfer");
	set_after = settings(&d2);
	assert_true(json_equal(set_before, set_after));
	json_decref(set_before);
	json_decref(set_after);
	json_decref(before);
	json_decref(after);
	device_cont(&d2);
	device_serial_expect(&d2, "tern-guest: status ");
	device_expect_same_memory(&d2, memory, "cpr-transfer");
	device_ring(&d2, 1);
	rings[1]++;
	device_expect_rings(&d2, rings, "after the last hop");
	half_client_finishes(&half);
	qmp_close(&half);
	device_end_guest(&d2);
}

/* ------------------------------------------------------------ 2. typed input beyond the FIFO */

/* Fill the stopped guest's empty UART receive FIFO (UART_RX_CAPACITY,
 * 4096 bytes) with empty lines and type a command after them, at a place
 * where the serial backend has read it from the socket but the FIFO
 * cannot take it. */
#define FIFO_BYTES 4096

static void type_past_a_full_fifo(struct device_guest *g)
{
	static char lines[FIFO_BYTES + 256];
	memset(lines, '\n', sizeof lines);
	json_t *st = device_vm_state(g);
	long long empty = device_number(json_object_get(st, "uart"), "size");
	json_decref(st);
	/* 100 bytes first, so that the backend's 256-byte reads no longer
	 * end where the FIFO does. */
	assert_int_equal(write(g->fd, lines, 100), 100);
	size_t n = FIFO_BYTES - 100;
	memcpy(lines + n, "status\n", 7);
	n += 7 + 93;
	for (int tries = 0;; tries++) {
		st = device_vm_state(g);
		long long size = device_number(json_object_get(st, "uart"), "size");
		json_decref(st);
		if (size == empty + 100)
			break;
		if (tries == 500)
			fail_msg("what was typed on the serial port never reached the UART");
		usleep(2000);
	}
	assert_int_equal(write(g->fd, lines, n), (ssize_t)n);
	for (int tries = 0;; tries++) {
		st = device_vm_state(g);
		long long size = device_number(json_object_get(st, "uart"), "size");
		json_decref(st);
		if (size == empty + FIFO_BYTES)
			break;
		if (tries == 500)
			fail_msg("the UART's receive FIFO never filled");
		usleep(2000);
	}
	usleep(50000); /* and the backend has read what it will */
}

/*
 * A live update keeps the serial socket, and whatever its client typed
 * must reach the guest after it -- also what tern had read from the
 * socket and not yet handed to the UART because its FIFO was full.
 * (The serial backend reads no more than the UART takes at once, so what
 * the guest has not taken stays in the socket.)
 */
static void typed_input_survives_live_updates(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct device_guest g;
	device_boot(&g, NULL);
	device_stop(&g);
	type_past_a_full_fifo(&g);
	cpr_set_mode(&g.q, "cpr-exec", cpr_tern_path);
	assert_int_equal(qmp_do(&g.q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000), 0);
	json_t *r = cpr_wait_update(&g.q);
	cpr_expect_completed(r, "cpr-exec", 0);
	json_decref(r);
	device_cont(&g);
	device_serial_expect(&g, "tern-guest: status "); /* after a cpr-exec */
	device_say(&g, "help\n", "tern-guest: commands:"); /* the FIFO is empty again */

	char cpr_uri[300];
	struct proc next;
	begin_transfer(&g, &next, cpr_uri, sizeof cpr_uri);
	type_past_a_full_fifo(&g);
	assert_int_equal(qmp_do(&g.q, "migrate", json_pack("{s:s}", "uri", cpr_uri), NULL, 10000),
			 0);
	assert_int_equal(proc_wait(&g.vm.proc, 20000), 0);
	device_expect_clean(&g.vm.proc);
	proc_free(&g.vm.proc);
	g.vm.proc = next;
	r = cpr_wait_update(&g.q);
	cpr_expect_completed(r, "cpr-transfer", 0);
	json_decref(r);
	device_cont(&g);
	device_serial_expect(&g, "tern-guest: status "); /* after a cpr-transfer */
	device_end_guest(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(every_entry_survives_every_carrier, device_end_leftovers),
		cmocka_unit_test_teardown(typed_input_survives_live_updates, device_end_leftovers),
	};
	return cmocka_run_group_tests_name("device_state", tests, cpr_setup, NULL);
}
