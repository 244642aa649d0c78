/*
 * What a carrier or a destination refuses, and what it leaves running:
 * a device that a carrier cannot take (a memory region added at run
 * time) refuses it before the guest stops, naming itself, while a live
 * update carries it; a destination whose devices differ from the
 * source's refuses the stream, naming the device, and the source keeps
 * its guest; a destination started --paused takes the guest and waits
 * for cont.
 */
#include <errno.h>
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

#define REGION 0x40000000ULL /* 1 GiB: above the guest's RAM */
#define REGION_SIZE (2ULL << 20)

/* ------------------------------------------------------------ 1. blockers */

/* An event of this name has arrived on q (kept while waiting for replies). */
static int saw_event(struct qmp_conn *q, const char *name)
{
	size_t i;
	json_t *ev;
	json_array_foreach(q->events, i, ev)
		if (strcmp(json_string_value(json_object_get(ev, "event")), name) == 0)
			return 1;
	return 0;
}

/* `migrate` to uri is refused at once, naming the entry that blocks it;
 * the guest never stopped. */
static void expect_refused(struct device_guest *g, const char *uri, const char *entry)
{
	json_t *r = qmp_execute(&g->q, "migrate", json_pack("{s:s}", "uri", uri), 10000);
	const char *desc = device_error_desc(r);
	if (desc == NULL || strstr(desc, entry) == NULL || strstr(desc, "memslot-del") == NULL)
		fail_msg("migrate %s: wanted a refusal naming %s (and what to do), got %s", uri,
			 entry, desc ? desc : "success");
	json_decref(r);
	device_expect_status(g, "running");
	assert_false(saw_event(&g->q, "STOP"));
	json_t *info = cpr_query(&g->q, "query-migrate");
	assert_non_null(info);
	if (strcmp(mig_status(info), "") != 0 && strcmp(mig_status(info), "completed") != 0) {
		char *text = json_dumps(info, 0);
		fail_msg("a refused migrate left query-migrate at %s", text);
	}
	json_decref(info);
}

static void blocked_carriers_refuse_before_the_stop(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	unsigned rings[DEVICE_DOORBELLS] = { 0 };
	struct device_guest src, dst;
	device_boot(&src, DEVICE_BANK);
	device_ring(&src, 4);
	rings[4]++;
	char uri[64], path[256], file_uri[300];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	device_destination(&dst, DEVICE_BANK, uri); /* listening all along */
	tern_vm_path(&src.vm, "saved.tern", path, sizeof path);
	snprintf(file_uri, sizeof file_uri, "file:%s", path);

	json_t *r = qmp_execute(&src.q, "memslot-add",
				json_pack("{s:I,s:I}", "addr", (json_int_t)REGION, "size",
					  (json_int_t)REGION_SIZE),
				10000);
	json_t *slot = json_object_get(qmp_return(r), "slot");
	assert_true(json_is_integer(slot));
	json_int_t region = json_integer_value(slot);
	json_decref(r);
	assert_int_equal(guest_poke(&src.serial, &src.at, REGION + 64, 0x5eed), 0);

	/* A live migration and a file each refuse the region, naming it;
	 * nothing stopped, no file was made, and the guest answers. */
	expect_refused(&src, uri, "memory-regions");
	expect_refused(&src, file_uri, "memory-regions");
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	device_ring(&src, 4);
	rings[4]++;
	device_expect_rings(&src, rings, "refused migrations");

	/* A live update carries it (the same memfd, at the same place). */
	cpr_set_mode(&src.q, "cpr-exec", cpr_tern_path);
	assert_int_equal(qmp_do(&src.q, "migrate", json_pack("{s:s}", "uri", "cpr:"), NULL, 10000),
			 0);
	r = cpr_wait_update(&src.q);
	cpr_expect_completed(r, "cpr-exec", 1);
	json_decref(r);
	device_expect_status(&src, "running");
	uint64_t value = 0;
	assert_int_equal(guest_peek(&src.serial, &src.at, REGION + 64, &value), 0);
	assert_true(value == 0x5eed);
	cpr_set_mode(&src.q, "normal", NULL);
	json_array_clear(src.q.events); /* the update stopped the guest; from here on, no more */
	expect_refused(&src, uri, "memory-regions"); /* and it still blocks them */

	/* Once it is gone, the migration goes through, the doorbells with it. */
	assert_int_equal(qmp_do(&src.q, "memslot-del", json_pack("{s:I}", "slot", region), NULL,
				10000),
			 0);
	assert_int_equal(qmp_do(&src.q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
	device_expect_completed(&src);
	device_expect_completed(&dst);
	device_expect_status(&dst, "running");
	device_expect_rings(&dst, rings, "the migration after memslot-del");
	device_ring(&dst, 7); /* the guest answers there */
	rings[7]++;
	device_expect_rings(&dst, rings, "the migrated guest");
	device_end_guest(&src);
	device_end_guest(&dst);
}

/* ------------------------------------------------------------ 2. mismatched devices */

/* A migration from src to a destination with other devices: the
 * destination refuses, saying `why`, and ends; src runs on. */
static void expect_mismatch(struct device_guest *src, const char *dst_device, const char *why)
{
	struct device_guest dst;
	char uri[64];
	snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
	device_destination(&dst, dst_device, uri);
	assert_int_equal(qmp_do(&src->q, "migrate", json_pack("{s:s}", "uri", uri), NULL, 10000), 0);
	json_t *r = device_migration_end(src);
	const char *desc = json_string_value(json_object_get(r, "error-desc"));
	if (strcmp(mig_status(r), "failed") != 0 || desc == NULL || strstr(desc, why) == NULL) {
		char *text = json_dumps(r, 0);
		fail_msg("wanted a failure saying '%s': %s", why, text);
	}
	json_decref(r);
	device_expect_status(src, "running");
	int status = proc_wait(&dst.vm.proc, 20000);
	assert_true(status != 0 && status != -1);
	if (strstr(proc_output(&dst.vm.proc), why) == NULL)
		fail_msg("the destination did not say '%s':\n%s", why, proc_output(&dst.vm.proc));
	device_end_guest(&dst);
}

/* A running guest into a destination started --paused: it arrives and
 * waits for cont, as with QEMU's -S; an unpaused one runs it. */
static void a_paused_destination_waits_for_cont(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	for (int paused = 1; paused >= 0; paused--) {
		struct device_guest src, dst;
		device_boot(&src, NULL);
		device_start_paused = paused;
		device_destination(&dst, NULL, "defer");
		device_start_paused = 0;
		char uri[64];
		snprintf(uri, sizeof uri, "tcp:127.0.0.1:%d", harness_free_tcp_port());
		assert_int_equal(qmp_do(&dst.q, "migrate-incoming", json_pack("{s:s}", "uri", uri),
					NULL, 10000), 0);
		assert_int_equal(qmp_do(&src.q, "migrate", json_pack("{s:s}", "uri", uri), NULL,
					10000), 0);
		device_expect_completed(&src);
		device_expect_completed(&dst);
		device_expect_status(&dst, paused ? "paused" : "running");
		if (paused)
			device_cont(&dst);
		device_expect_status(&dst, "running");
		device_end_guest(&src);
		device_end_guest(&dst);
	}
}

static void mismatched_devices_are_refused(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	unsigned rings[DEVICE_DOORBELLS] = { 0, 2, 0, 0, 0, 0, 1, 0 };
	char memory[256];

	/* A source with the bank, a destination without one. */
	struct device_guest a;
	device_boot(&a, DEVICE_BANK);
	for (unsigned d = 0; d < DEVICE_DOORBELLS; d++)
		for (unsigned k = 0; k < rings[d]; k++)
			device_ring(&a, d);
	device_verify(&a, memory, sizeof memory);
	expect_mismatch(&a, NULL, "ioeventfd-bank");
	device_expect_rings(&a, rings, "a refused migration");
	device_ring(&a, 3);
	rings[3]++;
	device_expect_rings(&a, rings, "the guest that stayed");
	device_expect_same_memory(&a, memory, "a refused migration");
	device_end_guest(&a);

	/* A source without it, a destination with one. */
	struct device_guest b;
	device_boot(&b, NULL);
	device_verify(&b, memory, sizeof memory);
	expect_mismatch(&b, DEVICE_BANK, "the stream ended without the ioeventfd-bank state");
	device_expect_same_memory(&b, memory, "a refused migration");
	device_end_guest(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(blocked_carriers_refuse_before_the_stop,
					  device_end_leftovers),
		cmocka_unit_test_teardown(a_paused_destination_waits_for_cont,
					  device_end_leftovers),
		cmocka_unit_test_teardown(mismatched_devices_are_refused, device_end_leftovers),
	};
	return cmocka_run_group_tests_name("device_blockers", tests, cpr_setup, NULL);
}
