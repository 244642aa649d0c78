/*
 * Golden migration streams (tests/golden/, README.txt there) that
 * earlier releases wrote, and what this code promises about them; the
 * golden live-update states are tests/test_golden_states.c's.
 *
 * Written by tern 1d2d644, before the state registry (mig-*.tmf):
 *  - every stream reads whole, with the records README.txt lists, and its
 *    sections (machine, kvm, cpu/N, uart kept their wire format) decode
 *    into a registry of the machine's shape, as a destination's would;
 *  - each loads into a fresh `tern run --incoming file:PATH` whose guest
 *    resumes mid-run, finishes and verifies its memory with the checksum
 *    of a run that was never migrated -- but for mig-ioeventfd-bank.tmf
 *    into a destination with the bank: that stream lacks the bank's ring
 *    counts (1d2d644 did not migrate them), so such a destination refuses
 *    it saying so and never runs the guest (without the bank it loads).
 *
 * Written by this code, tern 6e8fb68 (mig2-*.tmf), for the releases
 * after it: the stream carries the bank's rings into the destination.  A
 * later release keeps these checks, changing only what its README.txt
 * says it refuses.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cpr_support.h"
#include "golden_support.h"
#include "../harness/env.h"
#include "../harness/memio.h"
#include "../harness/migrate.h"
#include "../harness/tern.h"
#include "devices/ioeventfd_bank.h"
#include "kvm_skip.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"
#include "qmp/qmp_client.h"
#include "tern/stream.h"

/* ---------------------------------------------------------------- streams */

struct golden_stream {
	const char *file;
	unsigned vcpus;
	unsigned bank;        /* the source's ioeventfd-bank doorbells */
	int delta;            /* HELLO's delta flag, and XBZRLE and BLOCKS records in it */
	const char *records;  /* the record counts README.txt lists (but HELLO and END: 1) */
	const char *sections; /* in stream order */
};

static const struct golden_stream streams[] = {
	{ "mig-1vcpu.tmf", 1, 0, 0, "ZERO 1, ZERO_RUN 7, RAW 85, SYNC 1, SECTION 4",
	  "machine kvm cpu/0 uart" },
	{ "mig-2vcpu.tmf", 2, 0, 0, "ZERO 1, ZERO_RUN 7, RAW 108, SYNC 1, SECTION 5",
	  "machine kvm cpu/0 cpu/1 uart" },
	{ "mig-paused.tmf", 1, 0, 0, "ZERO 1, ZERO_RUN 7, RAW 85, SYNC 1, SECTION 4",
	  "machine kvm cpu/0 uart" },
	{ "mig-xbzrle.tmf", 1, 0, 1,
	  "ZERO 1, ZERO_RUN 7, RAW 85, XBZRLE 96, BLOCKS 68, SYNC 3, SECTION 4",
	  "machine kvm cpu/0 uart" },
	/* 1d2d644 migrated no ioeventfd-bank state: the stream is a plain one,
	 * though its source had the bank (README.txt). */
	{ "mig-ioeventfd-bank.tmf", 1, 0, 0, "ZERO 1, ZERO_RUN 7, RAW 85, SYNC 1, SECTION 4",
	  "machine kvm cpu/0 uart" },
	/* This code's: the bank's ring counts travel, after the devices. */
	{ "mig2-ioeventfd-bank.tmf", 1, GOLDEN_BANK_DOORBELLS, 0,
	  "ZERO 1, ZERO_RUN 7, RAW 87, SYNC 1, SECTION 5",
	  "machine kvm cpu/0 uart ioeventfd-bank" },
};
#define NSTREAMS (sizeof streams / sizeof streams[0])

static const char *const record_names[] = {
	[TERN_REC_ZERO] = "ZERO", [TERN_REC_ZERO_RUN] = "ZERO_RUN", [TERN_REC_RAW] = "RAW",
	[TERN_REC_XBZRLE] = "XBZRLE", [TERN_REC_BLOCKS] = "BLOCKS", [TERN_REC_SYNC] = "SYNC",
	[TERN_REC_SECTION] = "SECTION",
};
/* In the order README.txt lists them. */
static const enum tern_record_type record_order[] = {
	TERN_REC_ZERO, TERN_REC_ZERO_RUN, TERN_REC_RAW, TERN_REC_XBZRLE,
	TERN_REC_BLOCKS, TERN_REC_SYNC, TERN_REC_SECTION,
};


/* Read a whole stream as a destination would, count its records, and
 * decode each section into a registry of the source's shape. */
static void stream_reads_whole(const struct golden_stream *g)
{
	size_t len;
	uint8_t *buf = golden_slurp(g->file, &len);
	struct memio m;
	memio_init_reader(&m, buf, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	r.file = 1;
	struct golden_fake_machine f;
	golden_fake_machine_init(&f, GOLDEN_TYPES, g->vcpus, g->bank);
	struct vm_state_in in;
	assert_int_equal(vm_state_in_init(&in, &f.vm->states, VM_CARRY_FILE), 0);
	uint64_t counts[256] = { 0 }, pages = 0;
	char names[256] = "";
	struct tern_error err = { .msg = "" };
	struct tern_record rec;
	do {
		if (tern_stream_read(&r, &rec, &err) < 0)
			fail_msg("%s: %s", g->file, err.msg);
		counts[rec.type & 0xff]++;
		if (rec.type == TERN_REC_ZERO || rec.type == TERN_REC_ZERO_RUN ||
		    rec.type == TERN_REC_RAW || rec.type == TERN_REC_XBZRLE ||
		    rec.type == TERN_REC_BLOCKS)
			pages += rec.count;
		if (rec.type == TERN_REC_SECTION) {
			snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
				 names[0] ? " " : "", rec.name);
			if (vm_state_load_section(&in, rec.name, rec.data, rec.len, &err) < 0)
				fail_msg("%s: section %s: %s", g->file, rec.name, err.msg);
			if (strcmp(rec.name, "ioeventfd-bank") == 0)
				golden_bank_section_has_the_rings(GOLDEN_TYPES, g->file, rec.data,
								  rec.len);
		}
	} while (rec.type != TERN_REC_END);
	if (tern_stream_expect_eof(&r, &err) < 0)
		fail_msg("%s: %s", g->file, err.msg);
	char records[256] = "";
	for (size_t i = 0; i < sizeof record_order / sizeof record_order[0]; i++)
		if (counts[record_order[i]] != 0)
			snprintf(records + strlen(records), sizeof records - strlen(records),
				 "%s%s %llu", records[0] ? ", " : "", record_names[record_order[i]],
				 (unsigned long long)counts[record_order[i]]);
	print_message("    %s: %zu bytes; HELLO v%u flags %u, %u range(s) of %llu MiB; %s; "
		      "%llu pages, END; sections: %s\n",
		      g->file, len, r.hello.version, r.hello.flags, r.hello.ranges,
		      (unsigned long long)(r.hello.range[0].size >> 20), records,
		      (unsigned long long)r.pages, names);
	/* A 16 MiB guest whose every page is sent at least once. */
	assert_int_equal(r.hello.version, 1);
	assert_int_equal(r.hello.page_size, 4096);
	assert_int_equal(r.hello.ranges, 1);
	assert_true(r.hello.range[0].gpa == 0 && r.hello.range[0].size == 16ULL << 20);
	assert_true(pages >= 4096);
	assert_int_equal(counts[TERN_REC_HELLO], 1);
	assert_int_equal(counts[TERN_REC_END], 1);
	assert_int_equal(r.hello.flags, g->delta ? TERN_STREAM_XBZRLE_FLAG : 0);
	if (strcmp(records, g->records) != 0)
		fail_msg("%s: records '%s', README.txt says '%s'", g->file, records, g->records);
	if (strcmp(names, g->sections) != 0)
		fail_msg("%s: sections '%s', README.txt says '%s'", g->file, names, g->sections);
	/* Every entry of the destination's registry has its state, decoded;
	 * the shape alone was handed to its holder (and matched). */
	for (unsigned i = 0; i < f.vm->states.count; i++) {
		const struct vm_state_entry *e = &f.vm->states.entry[i];
		if (in.obj[i] == NULL)
			fail_msg("%s: no %s state", g->file, e->name);
		assert_int_equal(in.applied[i], e->type == &machine_shape_type);
	}
	/* A second copy of any section is refused. */
	assert_true(vm_state_load_section(&in, "uart", NULL, 0, &err) < 0);
	assert_non_null(strstr(err.msg, "arrived twice"));
	vm_state_in_free(&in);
	golden_fake_machine_free(&f);
	tern_stream_reader_destroy(&r);
	free(buf);
}

static void streams_read_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < NSTREAMS; i++)
		stream_reads_whole(&streams[i]);
}

/* mig-2vcpu.tmf's shape, on arrival, refuses a machine of one vCPU, as
 * README.txt says, before any of the RAM that follows it. */
static void a_stream_of_another_shape_is_refused_on_arrival(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = golden_slurp("mig-2vcpu.tmf", &len);
	struct memio m;
	memio_init_reader(&m, buf, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	r.file = 1;
	struct tern_error err = { .msg = "" };
	struct tern_record rec;
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_HELLO);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_SECTION); /* the shape: right after HELLO */
	assert_string_equal(rec.name, "machine");
	struct golden_fake_machine f;
	golden_fake_machine_init(&f, GOLDEN_TYPES, 1, 0);
	struct vm_state_in in;
	assert_int_equal(vm_state_in_init(&in, &f.vm->states, VM_CARRY_FILE), 0);
	assert_true(vm_state_load_section(&in, rec.name, rec.data, rec.len, &err) < 0);
	print_message("    mig-2vcpu.tmf into 1 vCPU: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "the source has 2 vCPUs, this guest 1"));
	vm_state_in_free(&in);
	golden_fake_machine_free(&f);
	tern_stream_reader_destroy(&r);
	free(buf);
}

/* ---------------------------------------------------------------- loading into tern */

#define RANDOM_SUM "0x39306818e8972a5d" /* workload=random ws=256K writes=3000 seed=7 */
#define SPARSE_SUM "0xb78eae0020bb0b62" /* workload=sparse ws=256K writes=8000 seed=7 */
#define IDLE_SUM "0x1543718d17d06ae9"   /* workload=idle ws=256K fill=1 seed=7 */

struct golden_load {
	const char *file;
	const char *vcpus;
	unsigned bank;        /* the destination's --device ioeventfd-bank,count= */
	const char *checksum; /* verify ok (end) there; NULL: it must refuse the stream */
	const char *refusal;  /* ... saying this on stderr */
};

static const struct golden_load loads[] = {
	{ "mig-1vcpu.tmf", "1", 0, RANDOM_SUM, NULL },
	{ "mig-2vcpu.tmf", "2", 0, RANDOM_SUM, NULL },
	{ "mig-paused.tmf", "1", 0, RANDOM_SUM, NULL },
	{ "mig-xbzrle.tmf", "1", 0, SPARSE_SUM, NULL },
	/* The bank's rings are not in it: a destination without the bank
	 * takes it, one with the bank refuses it (no state is better than a
	 * wrong one), and the guest never runs there. */
	{ "mig-ioeventfd-bank.tmf", "1", 0, RANDOM_SUM, NULL },
	{ "mig-ioeventfd-bank.tmf", "1", GOLDEN_BANK_DOORBELLS, NULL,
	  "the stream ended without the ioeventfd-bank state" },
	{ "mig-2vcpu.tmf", "1", 0, NULL, "the source has 2 vCPUs, this guest 1" },
	/* This code's bank stream needs the bank. */
	{ "mig2-ioeventfd-bank.tmf", "1", 0, NULL,
	  "state ioeventfd-bank: the source has a device of kind ioeventfd-bank" },
};
#define NLOADS (sizeof loads / sizeof loads[0])

/* A destination whose stdout (the guest's serial) and stderr (tern's
 * messages) are kept apart, in files under dir. */
struct split_proc {
	pid_t pid;
	char out[600], err[600];
};

static void split_spawn(struct split_proc *p, const char *dir, unsigned n,
			const char *const *args)
{
	snprintf(p->out, sizeof p->out, "%s/dst%u.out", dir, n);
	snprintf(p->err, sizeof p->err, "%s/dst%u.err", dir, n);
	const char *argv[32];
	unsigned argc = 0;
	argv[argc++] = harness_tern();
	for (; args[argc - 1] != NULL && argc < 31; argc++)
		argv[argc] = args[argc - 1];
	argv[argc] = NULL;
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

/* The exit status (or 128 + signal); the child is killed at the deadline. */
static int split_wait(struct split_proc *p, double deadline)
{
	int status;
	for (;;) {
		pid_t got = waitpid(p->pid, &status, WNOHANG);
		if (got == p->pid)
			break;
		assert_int_equal(got, 0);
		if (now_ms() > deadline) {
			kill(p->pid, SIGKILL);
			assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
			break;
		}
		usleep(5000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Every load at once (each guest has at most 1.5 s of its run left;
 * refusals come before any guest runs). */
static void streams_load_and_run_or_are_refused(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *dir = harness_tmpdir();
	assert_non_null(dir);
	struct split_proc dst[NLOADS];
	for (size_t i = 0; i < NLOADS; i++) {
		const struct golden_load *g = &loads[i];
		char path[512], uri[520], bank[48];
		snprintf(uri, sizeof uri, "file:%s", golden_path(g->file, path, sizeof path));
		snprintf(bank, sizeof bank, "ioeventfd-bank,count=%u", g->bank);
		const char *with_bank[] = { "run", "--memory", "16M", "--vcpus", g->vcpus,
					    "--device", bank, "--incoming", uri, NULL };
		const char *without[] = { "run", "--memory", "16M", "--vcpus", g->vcpus,
					  "--incoming", uri, NULL };
		split_spawn(&dst[i], dir, (unsigned)i, g->bank ? with_bank : without);
	}
	double deadline = deadline_ms(30000);
	int failed = 0;
	for (size_t i = 0; i < NLOADS; i++) {
		const struct golden_load *g = &loads[i];
		int status = split_wait(&dst[i], deadline);
		size_t out_len, err_len;
		char *out = (char *)golden_slurp_path(dst[i].out, &out_len);
		char *err = (char *)golden_slurp_path(dst[i].err, &err_len);
		char what[96];
		snprintf(what, sizeof what, "%s into --vcpus %s%s", g->file, g->vcpus,
			 g->bank ? " with the bank" : "");
		const char *ok = strstr(out, "tern-guest: verify ok (end)");
		if (g->checksum != NULL) {
			char want[64];
			snprintf(want, sizeof want, "checksum=%s", g->checksum);
			/* It resumed the saved guest mid-run: nothing booted here. */
			int booted = strstr(out, "tern-guest: start") != NULL;
			if (status != 0 || ok == NULL || strstr(ok, want) == NULL || booted) {
				print_error("%s: the destination exited %d, wanted verify ok (end) "
					    "%s%s:\n%s%s\n",
					    what, status, want, booted ? " (and no fresh boot)" : "",
					    out, err);
				failed++;
			} else {
				print_message("    %s: loaded; the guest ran to its end: verify ok, "
					      "%s\n", what, want);
			}
		} else {
			/* Refused with 125 (cli.md), saying why on stderr; the guest
			 * never ran here. */
			if (status != 125 || strstr(err, g->refusal) == NULL || ok != NULL ||
			    strstr(out, "tern-guest:") != NULL) {
				print_error("%s: the destination exited %d, wanted 125 with '%s' on "
					    "stderr and no guest output; stdout:\n%s\nstderr:\n%s\n",
					    what, status, g->refusal, out, err);
				failed++;
			} else {
				print_message("    %s: refused (exit 125, the guest never ran): %s", what,
					      err);
			}
		}
		free(out);
		free(err);
	}
	harness_rmtree(dir);
	free(dir);
	assert_int_equal(failed, 0);
}

/* This code's bank stream: the destination's doorbells have the rings the
 * source's had, and the idle guest it brings, stopped there by serial
 * "stop", verifies with the source's checksum. */

static json_t *query(struct qmp_conn *q, const char *cmd)
{
	json_t *reply = qmp_execute(q, cmd, NULL, 10000);
	json_t *ret = json_incref(qmp_return(reply));
	if (ret == NULL) {
		char *text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
		print_error("%s: %s\n", cmd, text != NULL ? text : "no reply");
		free(text);
		json_decref(reply);
		fail();
	}
	json_decref(reply);
	return ret;
}

/* What a failed check leaves behind: an idle guest runs until stopped. */
static struct {
	struct proc *proc;
	char *dir;
} leftover;

static int end_leftover(void **state)
{
	(void)state;
	if (leftover.proc != NULL)
		proc_free(leftover.proc); /* killed first if it still runs */
	if (leftover.dir != NULL) {
		harness_rmtree(leftover.dir);
		free(leftover.dir);
	}
	memset(&leftover, 0, sizeof leftover);
	return 0;
}

static void bank_stream_brings_the_rings(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *dir = harness_tmpdir();
	assert_non_null(dir);
	leftover.dir = dir;
	char path[512], uri[520], qmp_path[600], spec[610], bank[48];
	snprintf(uri, sizeof uri, "file:%s",
		 golden_path("mig2-ioeventfd-bank.tmf", path, sizeof path));
	snprintf(qmp_path, sizeof qmp_path, "%s/qmp.sock", dir);
	snprintf(spec, sizeof spec, "unix:%s", qmp_path);
	snprintf(bank, sizeof bank, "ioeventfd-bank,count=%u", GOLDEN_BANK_DOORBELLS);
	static struct proc p;
	assert_int_equal(tern_spawn(&p, 1, "run", "--memory", "16M", "--vcpus", "1", "--device",
				    bank, "--incoming", uri, "--qmp", spec, NULL),
			 0);
	leftover.proc = &p;
	struct qmp_conn q;
	assert_int_equal(qmp_connect(&q, qmp_path, 1, 10000 * time_scale()), 0);
	double deadline = deadline_ms(20000);
	for (;;) {
		json_t *st = query(&q, "query-status");
		int running = strcmp(json_string_value(json_object_get(st, "status")), "running") == 0;
		json_decref(st);
		if (running)
			break;
		if (proc_exited(&p) || now_ms() > deadline)
			fail_msg("the destination did not load the stream:\n%s", proc_output(&p));
		usleep(10000);
	}
	/* As QEMU, the guest runs first and the migration is completed after. */
	json_t *mig = mig_wait(&q, 10, 10000, NULL, NULL);
	assert_non_null(mig);
	assert_string_equal(json_string_value(json_object_get(mig, "status")), "completed");
	json_decref(mig);
	json_t *b = query(&q, "x-query-ioeventfd-bank");
	char *text = json_dumps(b, JSON_COMPACT);
	print_message("    mig2-ioeventfd-bank.tmf: the destination's bank: %s\n", text);
	free(text);
	assert_int_equal(json_integer_value(json_object_get(b, "count")), GOLDEN_BANK_DOORBELLS);
	assert_true(json_integer_value(json_object_get(b, "base")) == (json_int_t)IOEVENTFD_BANK_BASE);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 4);
	for (uint32_t i = 0; i < GOLDEN_BANK_DOORBELLS; i++)
		assert_int_equal(cpr_bank_rings(b, i), (json_int_t)golden_bank_rings[i]);
	json_decref(b);
	qmp_close(&q);

	assert_int_equal(write(p.in_fd, "stop\n", 5), 5);
	int status = proc_wait(&p, 30000);
	const char *out = proc_output(&p);
	const char *ok = strstr(out, "tern-guest: verify ok (end)");
	if (status != 0 || ok == NULL || strstr(ok, "checksum=" IDLE_SUM) == NULL ||
	    strstr(out, "tern-guest: start") != NULL)
		fail_msg("the destination exited %d, wanted verify ok (end) checksum=%s and no "
			 "fresh boot:\n%s",
			 status, IDLE_SUM, out);
	print_message("    mig2-ioeventfd-bank.tmf: the guest stopped there: verify ok, "
		      "checksum=%s\n", IDLE_SUM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(streams_read_whole),
		cmocka_unit_test(a_stream_of_another_shape_is_refused_on_arrival),
		cmocka_unit_test(streams_load_and_run_or_are_refused),
		cmocka_unit_test_teardown(bank_stream_brings_the_rings, end_leftover),
	};
	return cmocka_run_group_tests_name("golden_streams", tests, NULL, NULL);
}
