/*
 * Dirty tracking through KVM, dirty log and dirty ring: the guest writes a
 * known set of pages and tern's dirty sets hold exactly that set in the
 * working set (nothing missed, nothing invented); a ring far smaller than
 * the pages written still loses nothing; tern's own writes are marked;
 * calc-dirty-rate measures a rate-limited guest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp/qmp_client.h"
#include "../harness/sock.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define WS_PAGES 16384 /* ws=64M */

struct guest {
	struct tern_vm vm;
	struct qmp_conn q;
	struct text_stream serial;
	int fd;
	uint64_t ws_gpa;
	long at;
};

static void boot(struct guest *g, const char *mode, const char *ring, const char *append)
{
	char ser[256], spec[300];
	assert_int_equal(tern_vm_prepare(&g->vm), 0);
	tern_vm_path(&g->vm, "serial.sock", ser, sizeof ser);
	snprintf(spec, sizeof spec, "unix:%s,server", ser);
	assert_int_equal(tern_vm_start(&g->vm, "--memory", "256M", "--dirty-tracking", mode,
				       "--dirty-ring-size", ring, "--serial", spec, "--append", append,
				       NULL),
			 0);
	g->fd = guest_serial_attach(ser, &g->serial, "ws_gpa=0x", &g->at);
	assert_true(g->fd >= 0);
	g->ws_gpa = strtoull(g->serial.buf + g->at, NULL, 16);
	assert_int_equal(qmp_connect(&g->q, g->vm.qmp_path, 1, 10000), 0);
}

static void shut_down(struct guest *g)
{
	assert_int_equal(qmp_do(&g->q, "quit", NULL, NULL, 5000), 0);
	assert_int_equal(proc_wait(&g->vm.proc, 10000), 0);
	qmp_close(&g->q);
	text_stream_free(&g->serial);
	close(g->fd);
	tern_vm_end(&g->vm);
}

/* Dirty pages of the working set, as a 0/1 map, and the total elsewhere. */
static void dirty_in_ws(struct guest *g, uint8_t *map, uint64_t *outside)
{
	json_t *r = qmp_execute(&g->q, "x-query-dirty-pages",
				json_pack("{s:I,s:I}", "gpa", (json_int_t)g->ws_gpa, "size",
					  (json_int_t)WS_PAGES * 4096),
				10000);
	json_t *ret = qmp_return(r);
	assert_non_null(ret);
	memset(map, 0, WS_PAGES);
	size_t i;
	json_t *run;
	uint64_t pages = 0;
	json_array_foreach(json_object_get(ret, "runs"), i, run) {
		uint64_t gpa = (uint64_t)json_integer_value(json_array_get(run, 0));
		uint64_t n = (uint64_t)json_integer_value(json_array_get(run, 1));
		for (uint64_t k = 0; k < n; k++) {
			uint64_t page = (gpa - g->ws_gpa) / 4096 + k;
			assert_true(page < WS_PAGES);
			map[page] = 1;
			pages++;
		}
	}
	assert_int_equal(pages, (uint64_t)json_integer_value(json_object_get(ret, "pages")));
	*outside = (uint64_t)json_integer_value(json_object_get(ret, "total")) - pages;
	json_decref(r);
}

static void exact_set(const char *mode, const char *ring)
{
	struct guest g;
	boot(&g, mode, ring, "workload=idle ws=64M");
	assert_int_equal(qmp_do(&g.q, "x-dirty-tracking", json_pack("{s:b}", "enable", 1), NULL,
				5000),
			 0);
	uint8_t *map = malloc(WS_PAGES), *want = calloc(WS_PAGES, 1);
	uint64_t outside;
	dirty_in_ws(&g, map, &outside);
	for (unsigned p = 0; p < WS_PAGES; p++)
		assert_int_equal(map[p], 0); /* an idle guest writes no working-set page */

	/* 6000 pages, every third: far more than a 256-entry ring holds. */
	const char cmd[] = "write 100 6000 3\n";
	assert_int_equal(send(g.fd, cmd, sizeof cmd - 1, 0), (ssize_t)sizeof cmd - 1);
	g.at = text_stream_wait(&g.serial, (size_t)g.at, "wrote 6000 pages", 20000);
	assert_true(g.at > 0);
	for (unsigned i = 0; i < 6000; i++)
		want[(100 + i * 3) % WS_PAGES] = 1;
	dirty_in_ws(&g, map, &outside);
	for (unsigned p = 0; p < WS_PAGES; p++)
		if (map[p] != want[p])
			fail_msg("%s: working-set page %u is %s in tern's dirty set", mode, p,
				 want[p] ? "missing" : "wrongly");
	/* Outside the working set only the guest's own bookkeeping (the
	 * version array, its stack and kernel data) is written. */
	if (outside > 64)
		fail_msg("%s: %llu dirty pages outside the working set", mode,
			 (unsigned long long)outside);

	/* Writes tern makes to guest memory count too. */
	json_t *r = qmp_execute(&g.q, "x-corrupt-guest-memory",
				json_pack("{s:I}", "gpa", (json_int_t)(g.ws_gpa + 2 * 4096)), 5000);
	assert_non_null(qmp_return(r));
	json_decref(r);
	dirty_in_ws(&g, map, &outside);
	assert_int_equal(map[2], 1);
	free(map);
	free(want);
	shut_down(&g);
}

static void log_mode_sees_exactly_what_was_written(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	exact_set("log", "4096");
}

static void small_ring_loses_nothing(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	exact_set("ring", "256");
}

static void calc_dirty_rate_measures(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	static const char *const modes[] = { "log", "ring" };
	for (unsigned m = 0; m < 2; m++) {
		struct guest g;
		/* 12,800 fresh pages a second over 256 MiB: 50 MB/s. */
		boot(&g, modes[m], "4096", "workload=sequential ws=200M rate=12800");
		json_t *r = qmp_execute(&g.q, "query-dirty-rate", NULL, 5000);
		assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
				    "unstarted");
		json_decref(r);
		r = qmp_execute(&g.q, "calc-dirty-rate",
				json_pack("{s:i,s:s}", "calc-time", 1, "mode", "page-sampling"), 5000);
		assert_non_null(json_object_get(r, "error"));
		json_decref(r);
		const char *wrong = m == 0 ? "dirty-ring" : "dirty-bitmap";
		r = qmp_execute(&g.q, "calc-dirty-rate",
				json_pack("{s:i,s:s}", "calc-time", 1, "mode", wrong), 5000);
		assert_non_null(json_object_get(r, "error"));
		json_decref(r);
		r = qmp_execute(&g.q, "calc-dirty-rate", json_pack("{s:i}", "calc-time", 0), 5000);
		assert_non_null(json_object_get(r, "error"));
		json_decref(r);

		assert_int_equal(qmp_do(&g.q, "calc-dirty-rate", json_pack("{s:i}", "calc-time", 2),
					NULL, 5000),
				 0);
		r = qmp_execute(&g.q, "query-dirty-rate", NULL, 5000);
		assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")),
				    "measuring");
		json_decref(r);
		sleep(3);
		r = qmp_execute(&g.q, "query-dirty-rate", NULL, 5000);
		for (double end = deadline_ms(2000);
		     strcmp(json_string_value(json_object_get(qmp_return(r), "status")),
			    "measuring") == 0 && now_ms() < end;) {
			json_decref(r);
			usleep(100000);
			r = qmp_execute(&g.q, "query-dirty-rate", NULL, 5000);
		}
		json_t *ret = qmp_return(r);
		assert_string_equal(json_string_value(json_object_get(ret, "status")), "measured");
		assert_int_equal(json_integer_value(json_object_get(ret, "calc-time")), 2);
		json_int_t rate = json_integer_value(json_object_get(ret, "dirty-rate"));
		/* Where the CPU is emulated (time_scale() > 1), the guest paces its
		 * writes by a clock that disagrees with the host's: a rate, no more. */
		if (time_scale() > 1 ? rate <= 0 : rate < 25 || rate > 75)
			fail_msg("%s: measured %lld MB/s for a guest dirtying 50 MB/s", modes[m],
				 (long long)rate);
		if (m == 1)
			assert_int_equal(json_array_size(json_object_get(ret, "vcpu-dirty-rate")), 1);
		json_decref(r);
		shut_down(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(log_mode_sees_exactly_what_was_written),
		cmocka_unit_test(small_ring_loses_nothing),
		cmocka_unit_test(calc_dirty_rate_measures),
	};
	return cmocka_run_group_tests_name("dirty_kvm", tests, NULL, NULL);
}
