/*
 * Migration between two "hosts": source and destination each in a network
 * namespace of their own, joined by a veth pair whose source end is shaped
 * with tc to 1 Gbit/s or 10 Gbit/s.  The guest verifies its memory on the
 * destination; max-bandwidth caps the rate below the link's; the downtime
 * limit holds the switchover back until what is left fits it.
 *
 * Needs root, ip and tc; skipped otherwise.  The namespaces (and with them
 * the veth pair) are removed after each test.
 */
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

#include "../harness/env.h"
#include "../harness/migrate.h"
#include "qmp/qmp_client.h"
#include "../harness/tern.h"
#include "kvm_skip.h"

#define PORT "4444"

struct hosts {
	char ns_src[32], ns_dst[32], if_src[16], if_dst[16];
	char ip_src[32], ip_dst[32];
	int up;
};

static struct hosts hosts;

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void teardown_hosts(void)
{
	if (!hosts.up)
		return;
	sh("ip netns del %s 2>/dev/null", hosts.ns_src); /* takes its veth end along */
	sh("ip netns del %s 2>/dev/null", hosts.ns_dst);
	hosts.up = 0;
}

/* Two namespaces, a veth pair, the source's end shaped to `rate`. */
static int setup_hosts(const char *rate)
{
	int id = (int)getpid();
	snprintf(hosts.ns_src, sizeof hosts.ns_src, "tern-%d-src", id);
	snprintf(hosts.ns_dst, sizeof hosts.ns_dst, "tern-%d-dst", id);
	snprintf(hosts.if_src, sizeof hosts.if_src, "tv%da", id % 1000000);
	snprintf(hosts.if_dst, sizeof hosts.if_dst, "tv%db", id % 1000000);
	int a = 200 + id % 50, b = (id / 50) % 250;
	snprintf(hosts.ip_src, sizeof hosts.ip_src, "10.%d.%d.1", a, b);
	snprintf(hosts.ip_dst, sizeof hosts.ip_dst, "10.%d.%d.2", a, b);
	hosts.up = 1;
	if (sh("ip netns add %s", hosts.ns_src) || sh("ip netns add %s", hosts.ns_dst) ||
	    sh("ip link add %s netns %s type veth peer name %s netns %s", hosts.if_src,
	       hosts.ns_src, hosts.if_dst, hosts.ns_dst) ||
	    sh("ip -n %s addr add %s/24 dev %s", hosts.ns_src, hosts.ip_src, hosts.if_src) ||
	    sh("ip -n %s addr add %s/24 dev %s", hosts.ns_dst, hosts.ip_dst, hosts.if_dst) ||
	    sh("ip -n %s link set %s up", hosts.ns_src, hosts.if_src) ||
	    sh("ip -n %s link set %s up", hosts.ns_dst, hosts.if_dst) ||
	    sh("ip netns exec %s tc qdisc add dev %s root tbf rate %s burst %s latency 100ms",
	       hosts.ns_src, hosts.if_src, rate, strcmp(rate, "1gbit") == 0 ? "1mb" : "10mb")) {
		teardown_hosts();
		return -1;
	}
	return 0;
}

/* Root, ip and tc for the namespaces (KVM is checked first), and a CPU
 * that is not emulated: these tests are about rates and downtimes. */
static int can_make_hosts(void)
{
	if (time_scale() > 1) {
		print_message("skipped: rates and downtimes mean nothing where the CPU is "
			      "emulated (TERN_TEST_TIME_SCALE > 1)\n");
		return 0;
	}
	if (geteuid() != 0 || !harness_have("ip") || !harness_have("tc")) {
		print_message("skipped: network namespaces need root, ip and tc (iproute2)\n");
		return 0;
	}
	return 1;
}

static int teardown(void **state)
{
	(void)state;
	teardown_hosts();
	return 0;
}

struct pair {
	struct tern_vm src, dst;
	struct qmp_conn q;
	char uri[64];
};

/* Destination listening in its namespace, source running `append`. */
static void start_pair(struct pair *p, const char *append)
{
	memset(p, 0, sizeof *p);
	p->dst.netns = hosts.ns_dst;
	p->src.netns = hosts.ns_src;
	snprintf(p->uri, sizeof p->uri, "tcp:%s:%s", hosts.ip_dst, PORT);
	assert_int_equal(mig_start_destination(&p->dst, p->uri, "--memory", "256M", NULL), 0);
	struct qmp_conn dq;
	assert_int_equal(qmp_connect(&dq, p->dst.qmp_path, 1, 10000), 0);
	qmp_close(&dq);
	assert_int_equal(tern_vm_start(&p->src, "--memory", "256M", "--append", append, NULL), 0);
	assert_true(proc_wait_for(&p->src.proc, "tern-guest: start", 0, 20000) > 0);
	struct timespec fill = { 1, 0 }; /* the working set fills */
	nanosleep(&fill, NULL);
	assert_int_equal(qmp_connect(&p->q, p->src.qmp_path, 1, 10000), 0);
	assert_int_equal(mig_set_capabilities(&p->q, 0, 0, 1), 0);
}

static void set_parameter(struct qmp_conn *q, const char *name, long long value)
{
	assert_int_equal(qmp_do(q, "migrate-set-parameters",
				json_pack("{s:I}", name, (json_int_t)value), NULL, 5000), 0);
}

static json_t *run_migration(struct pair *p)
{
	assert_int_equal(qmp_do(&p->q, "migrate", json_pack("{s:s}", "uri", p->uri), NULL, 5000),
			 0);
	json_t *info = mig_wait(&p->q, 50, 60000, NULL, NULL);
	if (info == NULL)
		fail_msg("query-migrate gave no answer or no end; the source said:\n%s\n"
			 "the destination said:\n%s", proc_output(&p->src.proc),
			 proc_output(&p->dst.proc));
	if (strcmp(mig_status(info), "completed") != 0)
		fail_msg("migration ended %s", json_dumps(info, 0));
	return info;
}

/* The guest finishes its run on the destination with its memory intact. */
static void end_pair(struct pair *p)
{
	int status = proc_wait(&p->dst.proc, 60000);
	if (status != 0 || strstr(proc_output(&p->dst.proc), "verify ok (end)") == NULL)
		fail_msg("destination exited %d:\n%s", status, proc_output(&p->dst.proc));
	assert_int_equal(qmp_do(&p->q, "quit", NULL, NULL, 5000), 0);
	assert_int_equal(proc_wait(&p->src.proc, 10000), 0);
	qmp_close(&p->q);
	tern_vm_end(&p->src);
	tern_vm_end(&p->dst);
}

/* Not faster than `bytes_per_second` allows (less a little for bursts). */
static void check_rate(json_t *info, double bytes_per_second)
{
	double bytes = (double)mig_number(info, "ram.transferred");
	double ms = (double)mig_number(info, "total-time");
	double floor_ms = bytes / bytes_per_second * 1000.0 * 0.9 - 100;
	double mbps = json_real_value(json_object_get(json_object_get(info, "ram"), "mbps"));
	if (ms < floor_ms)
		fail_msg("%.0f bytes in %.0f ms at %.0f Mbit/s: faster than %.0f bytes/s allow", bytes,
			 ms, mbps, bytes_per_second);
	/* A completed migration's mbps is its average, as QEMU gives it (so
	 * the time above bounds it too). */
	double average = bytes * 8 / 1000 / (ms - (double)mig_number(info, "setup-time"));
	if (mbps < average * 0.99 || mbps > average * 1.01)
		fail_msg("mbps %.1f, but %.0f bytes in %.0f ms average %.1f", mbps, bytes, ms, average);
}

static void one_gigabit(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!can_make_hosts())
		skip();
	assert_int_equal(setup_hosts("1gbit"), 0);
	struct pair p;
	/* A sweep at 80 MB/s: all 64 MiB written, and less than the link carries. */
	start_pair(&p, "workload=sequential ws=64M rate=20000 seconds=6 seed=2");
	json_t *info = run_migration(&p);
	assert_true(mig_number(info, "ram.normal") > 16384); /* the working set went */
	check_rate(info, 125e6);
	json_decref(info);
	end_pair(&p);
}

static void ten_gigabit_capped_by_max_bandwidth(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!can_make_hosts())
		skip();
	assert_int_equal(setup_hosts("10gbit"), 0);
	struct pair p;
	start_pair(&p, "workload=sequential ws=64M rate=20000 seconds=6 seed=3");
	set_parameter(&p.q, "max-bandwidth", 100ll << 20);
	json_t *info = run_migration(&p);
	check_rate(info, (double)(100ll << 20));
	json_decref(info);
	json_t *r = qmp_execute(&p.q, "query-migrate-parameters", NULL, 5000);
	assert_int_equal(json_integer_value(json_object_get(qmp_return(r), "max-bandwidth")),
			 100ll << 20);
	json_decref(r);
	end_pair(&p);
}

/* A guest that dirties far more than 1 Gbit/s carries: with a 50 ms limit
 * the source keeps iterating (the guest runs on); a limit that fits what
 * is left lets it switch over. */
static void downtime_limit_holds_back_switchover(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!can_make_hosts())
		skip();
	assert_int_equal(setup_hosts("1gbit"), 0);
	struct pair p;
	start_pair(&p, "workload=random ws=32M rate=100000 seconds=8 seed=4");
	set_parameter(&p.q, "downtime-limit", 50);
	assert_int_equal(qmp_do(&p.q, "migrate", json_pack("{s:s}", "uri", p.uri), NULL, 5000), 0);
	struct timespec wait = { 2, 500000000 };
	nanosleep(&wait, NULL);
	json_t *r = qmp_execute(&p.q, "query-migrate", NULL, 5000);
	json_t *info = qmp_return(r);
	assert_string_equal(mig_status(info), "active");
	assert_true(mig_number(info, "ram.dirty-sync-count") >= 2);
	if (mig_number(info, "expected-downtime") <= 50)
		fail_msg("expected downtime %lld ms, yet still iterating",
			 mig_number(info, "expected-downtime"));
	json_decref(r);
	r = qmp_execute(&p.q, "query-status", NULL, 5000);
	assert_string_equal(json_string_value(json_object_get(qmp_return(r), "status")), "running");
	json_decref(r);

	set_parameter(&p.q, "downtime-limit", 2000);
	info = mig_wait(&p.q, 50, 30000, NULL, NULL);
	assert_non_null(info);
	assert_string_equal(mig_status(info), "completed");
	long long downtime = mig_number(info, "downtime");
	if (downtime < 0 || downtime > 2000)
		fail_msg("downtime %lld ms with a 2000 ms limit", downtime);
	json_decref(info);
	end_pair(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(one_gigabit, teardown),
		cmocka_unit_test_teardown(ten_gigabit_capped_by_max_bandwidth, teardown),
		cmocka_unit_test_teardown(downtime_limit_holds_back_switchover, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
