/*
 * Live update (CPR) of what a guest holds besides its RAM, with the
 * built-in guest: thousands of kept fds arriving as the same open files
 * and the doorbells still ringing; dirty-page tracking on the new tern;
 * memory regions added at run time, with their contents and flags.
 */
#include <limits.h>
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
#include "kvm_skip.h"

#define DOORBELLS 3000

/* Dirty-page tracking works on the updated tern (its sets are made after
 * the resume): a one-second dirty-rate measurement completes. */
static void expect_dirty_tracking(struct qmp_conn *q)
{
	assert_int_equal(qmp_do(q, "calc-dirty-rate", json_pack("{s:i}", "calc-time", 1), NULL,
				5000),
			 0);
	for (int tries = 0; tries < 100; tries++) {
		json_t *r = cpr_query(q, "query-dirty-rate");
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


static json_t *bank_when_registered(struct qmp_conn *q)
{
	for (int tries = 0; tries < 500; tries++) {
		json_t *b = cpr_query(q, "x-query-ioeventfd-bank");
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
	struct cpr_guest g;
	char count[16];
	snprintf(count, sizeof count, "%u", DOORBELLS);
	struct qmp_conn q;
	cpr_boot_idle(&g, count, &q);
	cpr_ring(&g, 7); /* before: the count must move with the device */
	json_t *before = cpr_identities(&q, g.vm.proc.pid);
	assert_true(json_object_size(before) >= DOORBELLS + 2);

	cpr_update_by_transfer(&g, &q);
	json_t *after = cpr_identities(&q, g.vm.proc.pid);
	assert_true(json_equal(before, after)); /* every fd is the same open file */

	/* The serial client moved too: the same connection rings doorbells. */
	cpr_ring(&g, 0);
	json_t *b = bank_when_registered(&q);
	cpr_ring(&g, 1);
	cpr_ring(&g, DOORBELLS / 2);
	cpr_ring(&g, DOORBELLS - 1);
	cpr_ring(&g, DOORBELLS - 1);
	json_decref(b);
	b = cpr_query(&q, "x-query-ioeventfd-bank");
	assert_int_equal(cpr_bank_rings(b, 7), 1);
	assert_int_equal(cpr_bank_rings(b, 0), 1);
	assert_int_equal(cpr_bank_rings(b, 1), 1);
	assert_int_equal(cpr_bank_rings(b, DOORBELLS / 2), 1);
	assert_int_equal(cpr_bank_rings(b, DOORBELLS - 1), 2);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 6);
	json_decref(b);

	/* And once more by exec: the same process, the same files. */
	cpr_update_by_exec(&q);
	json_t *again = cpr_identities(&q, g.vm.proc.pid);
	assert_true(json_equal(before, again));
	cpr_ring(&g, 2);
	b = cpr_query(&q, "x-query-ioeventfd-bank");
	assert_int_equal(cpr_bank_rings(b, 2), 1);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 7);
	json_decref(b);
	json_decref(again);
	json_decref(after);
	json_decref(before);
	cpr_end_guest(&g, &q);
}

/* After an update in either mode, dirty-page tracking (whose sets the new
 * tern makes once the guest runs) measures the guest, which lives on. */
static void dirty_tracking_after_updates(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct cpr_guest g;
	struct qmp_conn q;
	cpr_boot_idle(&g, "4", &q);
	cpr_update_by_exec(&q);
	expect_dirty_tracking(&q);
	cpr_update_by_transfer(&g, &q);
	expect_dirty_tracking(&q);
	cpr_ring(&g, 1); /* the guest answers */
	cpr_end_guest(&g, &q);
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
	json_t *list = cpr_query(q, "query-memslots"), *out = json_array(), *e;
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

static void expect_regions(struct cpr_guest *g, struct qmp_conn *q, json_t *want_regions,
			   json_t *want_fds)
{
	json_t *regions = added_regions(q), *fds = cpr_identities(q, g->vm.proc.pid);
	assert_true(json_equal(regions, want_regions));
	assert_true(json_equal(fds, want_fds)); /* the region memfds among them */
	json_decref(regions);
	json_decref(fds);
	assert_true(cpr_peek(g, REGION_A + 8) == 0x1122334455667788ULL);
	assert_true(cpr_peek(g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
	cpr_poke(g, REGION_B + 16, 1); /* still read-only: dropped */
	assert_true(cpr_peek(g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
}

static void added_regions_come_through_updates(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct cpr_guest g;
	struct qmp_conn q;
	cpr_boot_idle(&g, "4", &q);
	json_int_t a = add_region(&q, REGION_A), b = add_region(&q, REGION_B);
	g.regions = 2;
	cpr_poke(&g, REGION_A + 8, 0x1122334455667788ULL);
	cpr_poke(&g, REGION_B + 16, 0x99aabbccddeeff00ULL);
	assert_int_equal(qmp_do(&q, "memslot-set-read-only",
				json_pack("{s:I,s:b}", "slot", (json_int_t)b, "read-only", 1), NULL,
				10000),
			 0);
	json_t *regions = added_regions(&q), *fds = cpr_identities(&q, g.vm.proc.pid);
	assert_int_equal(json_array_size(regions), 2);
	char key[64];
	snprintf(key, sizeof key, "memslot/region/%lld", (long long)a);
	assert_non_null(json_object_get(fds, key));

	cpr_update_by_exec(&q);
	expect_regions(&g, &q, regions, fds);
	cpr_update_by_transfer(&g, &q);
	expect_regions(&g, &q, regions, fds);

	/* The new tern can remove one: its memfd leaves the store, and the
	 * guest finds no memory there. */
	assert_int_equal(qmp_do(&q, "memslot-del", json_pack("{s:I}", "slot", (json_int_t)a), NULL,
				10000),
			 0);
	json_t *now = cpr_identities(&q, g.vm.proc.pid);
	assert_null(json_object_get(now, key));
	json_decref(now);
	g.regions = 1;
	assert_true(cpr_peek(&g, REGION_A + 8) == UINT64_MAX);
	cpr_update_by_exec(&q);
	assert_true(cpr_peek(&g, REGION_B + 16) == 0x99aabbccddeeff00ULL);
	json_decref(regions);
	json_decref(fds);
	cpr_end_guest(&g, &q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(thousands_of_fds_arrive_and_ring),
		cmocka_unit_test(dirty_tracking_after_updates),
		cmocka_unit_test(added_regions_come_through_updates),
	};
	return cmocka_run_group_tests_name("cpr_devices", tests, cpr_setup, NULL);
}
