/*
 * Golden files (tests/golden/, README.txt there): migration streams and
 * live-update states that earlier releases wrote, and what this code
 * promises about them.
 *
 * Written by tern 1d2d644, before the state registry (mig-*.tmf, cpr-*.bin):
 *  - every stream reads whole, with the records README.txt lists, and its
 *    sections (machine, kvm, cpu/N, uart kept their wire format) decode
 *    into a registry of the machine's shape, as a destination's would;
 *  - each loads into a fresh `tern run --incoming file:PATH` whose guest
 *    resumes mid-run, finishes and verifies its memory with the checksum
 *    of a run that was never migrated -- but for mig-ioeventfd-bank.tmf
 *    into a destination with the bank: that stream lacks the bank's ring
 *    counts (1d2d644 did not migrate them), so such a destination refuses
 *    it saying so and never runs the guest (without the bank it loads);
 *  - the live-update states are format 1, which this code refuses
 *    (-EPROTO, "format 1, saved by a tern older than this one").
 *
 * Written by this code, tern 6e8fb68 (mig2-*.tmf, cpr2-*.bin), for the
 * releases after it: the stream carries the bank's rings into the destination, and the
 * format-2 states parse, every section decoding as the registry type of
 * its name.  A later release keeps these checks, changing only what its
 * README.txt says it refuses.
 */
#include <errno.h>
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
#include "../harness/env.h"
#include "../harness/memio.h"
#include "../harness/tern.h"
#include "cpr/cpr_settings.h"
#include "cpr/cpr_blob.h"
#include "devices/chardev.h"
#include "devices/ioeventfd_bank.h"
#include "devices/uart.h"
#include "kvm/kvm_state.h"
#include "kvm/vcpu_state.h"
#include "kvm_skip.h"
#include "machine/memmap.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"
#include "qmp/qmp.h"
#include "qmp/qmp_client.h"
#include "tern/crc32c.h"
#include "tern/stream.h"
#include "tern/vmstate.h"

/* ---------------------------------------------------------------- the files */

/* The golden directory: $TERN_GOLDEN_DIR, or tests/golden from the
 * repository root (where tests/run runs the programs). */
static const char *golden_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("TERN_GOLDEN_DIR");
	snprintf(buf, len, "%s/%s", dir != NULL && dir[0] != '\0' ? dir : "tests/golden", name);
	return buf;
}

static uint8_t *slurp_path(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	if (in == NULL)
		fail_msg("%s: %s (run from the repository root, or set TERN_GOLDEN_DIR)", path,
			 strerror(errno));
	assert_int_equal(fseek(in, 0, SEEK_END), 0);
	long n = ftell(in);
	assert_true(n >= 0);
	rewind(in);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
	buf[n] = '\0'; /* text files read as strings */
	fclose(in);
	*len = (size_t)n;
	return buf;
}

static uint8_t *slurp(const char *name, size_t *len)
{
	char path[512];
	uint8_t *buf = slurp_path(golden_path(name, path, sizeof path), len);
	assert_true(*len > 0);
	return buf;
}

/* Space-separated words of `list`, one by one. */
static int next_word(const char **list, char *word, size_t room)
{
	const char *p = *list;
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, " ");
	if (n == 0)
		return 0;
	assert_true(n < room);
	memcpy(word, p, n);
	word[n] = '\0';
	*list = p + n;
	return 1;
}

static uint64_t le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#define BANK_DOORBELLS 4
/* The doorbells the guests of the bank files rang: 0, 2, 2, 3. */
static const uint64_t bank_rings[BANK_DOORBELLS] = { 1, 0, 2, 1 };

/* ---------------------------------------------------------------- a machine to decode into */

/* A struct vm with the shape a destination of `vcpus` vCPUs (and a bank
 * of `bank` doorbells) has, its registry built as vm_create and the
 * runner build theirs for a migration (vm.c: register_state; run.c:
 * add_bank).  None of the holders is real: only the shape, which is
 * checked as it arrives (VM_STATE_EARLY), is ever handed one; nothing
 * here calls vm_state_apply. */
struct fake_machine {
	struct vm *vm;
	struct ioeventfd_bank bank;
};

static void fake_machine_init(struct fake_machine *f, unsigned vcpus, unsigned bank)
{
	memset(f, 0, sizeof *f);
	f->vm = calloc(1, sizeof *f->vm);
	assert_non_null(f->vm);
	struct vm *vm = f->vm;
	vm->vcpus = vcpus;
	vm->vcpu = calloc(vcpus, sizeof *vm->vcpu);
	assert_non_null(vm->vcpu);
	struct tern_error err = { .msg = "" };
	struct vm_state_registry *reg = &vm->states;
	assert_int_equal(vm_state_register(reg, &machine_shape_type, -1, vm, &err), 0);
	assert_int_equal(vm_state_register(reg, &kvm_state_type, -1, &vm->kvm, &err), 0);
	for (unsigned i = 0; i < vcpus; i++)
		assert_int_equal(vm_state_register(reg, &vcpu_state_type, (int)i, &vm->vcpu[i], &err),
				 0);
	assert_int_equal(vm_state_register(reg, &uart_state_type, -1, &vm->uart, &err), 0);
	if (bank) {
		f->bank.count = bank;
		f->bank.base = IOEVENTFD_BANK_BASE;
		assert_int_equal(vm_state_register(reg, &ioeventfd_bank_type, -1, &f->bank, &err), 0);
	}
}

static void fake_machine_free(struct fake_machine *f)
{
	vm_state_registry_free(&f->vm->states);
	free(f->vm->vcpu);
	free(f->vm);
	f->vm = NULL;
}

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
	{ "mig2-ioeventfd-bank.tmf", 1, BANK_DOORBELLS, 0,
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

/* The bank's section, given to a bank that is only its ring counts (its
 * load hook touches nothing else): the rings the source's guest rang. */
static void bank_section_has_the_rings(const char *file, const uint8_t *data, size_t len)
{
	uint64_t rings[BANK_DOORBELLS] = { 0 };
	struct ioeventfd_bank b = { .count = BANK_DOORBELLS, .base = IOEVENTFD_BANK_BASE,
				    .rings = rings };
	struct tern_error err = { .msg = "" };
	if (vm_state_load_one(&ioeventfd_bank_type, &b, data, len, &err) < 0)
		fail_msg("%s: ioeventfd-bank: %s", file, err.msg);
	for (unsigned i = 0; i < BANK_DOORBELLS; i++)
		if (rings[i] != bank_rings[i])
			fail_msg("%s: doorbell %u rang %llu times, its guest rang it %llu times", file,
				 i, (unsigned long long)rings[i], (unsigned long long)bank_rings[i]);
	/* A bank of another size refuses them, saying what differs. */
	b.count = BANK_DOORBELLS - 1;
	assert_true(vm_state_load_one(&ioeventfd_bank_type, &b, data, len, &err) < 0);
	assert_non_null(strstr(err.msg, "4 doorbells at 0xe0000000, this bank has 3"));
}

/* Read a whole stream as a destination would, count its records, and
 * decode each section into a registry of the source's shape. */
static void stream_reads_whole(const struct golden_stream *g)
{
	size_t len;
	uint8_t *buf = slurp(g->file, &len);
	struct memio m;
	memio_init_reader(&m, buf, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	r.file = 1;
	struct fake_machine f;
	fake_machine_init(&f, g->vcpus, g->bank);
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
				bank_section_has_the_rings(g->file, rec.data, rec.len);
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
	fake_machine_free(&f);
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
	uint8_t *buf = slurp("mig-2vcpu.tmf", &len);
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
	struct fake_machine f;
	fake_machine_init(&f, 1, 0);
	struct vm_state_in in;
	assert_int_equal(vm_state_in_init(&in, &f.vm->states, VM_CARRY_FILE), 0);
	assert_true(vm_state_load_section(&in, rec.name, rec.data, rec.len, &err) < 0);
	print_message("    mig-2vcpu.tmf into 1 vCPU: %s\n", err.msg);
	assert_non_null(strstr(err.msg, "the source has 2 vCPUs, this guest 1"));
	vm_state_in_free(&in);
	fake_machine_free(&f);
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
	{ "mig-ioeventfd-bank.tmf", "1", BANK_DOORBELLS, NULL,
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
		char *out = (char *)slurp_path(dst[i].out, &out_len);
		char *err = (char *)slurp_path(dst[i].err, &err_len);
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
	snprintf(bank, sizeof bank, "ioeventfd-bank,count=%u", BANK_DOORBELLS);
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
	json_t *mig = query(&q, "query-migrate");
	assert_string_equal(json_string_value(json_object_get(mig, "status")), "completed");
	json_decref(mig);
	json_t *b = query(&q, "x-query-ioeventfd-bank");
	char *text = json_dumps(b, JSON_COMPACT);
	print_message("    mig2-ioeventfd-bank.tmf: the destination's bank: %s\n", text);
	free(text);
	assert_int_equal(json_integer_value(json_object_get(b, "count")), BANK_DOORBELLS);
	assert_true(json_integer_value(json_object_get(b, "base")) == (json_int_t)IOEVENTFD_BANK_BASE);
	assert_int_equal(json_integer_value(json_object_get(b, "rings")), 4);
	for (uint32_t i = 0; i < BANK_DOORBELLS; i++)
		assert_int_equal(cpr_bank_rings(b, i), (json_int_t)bank_rings[i]);
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

/* ---------------------------------------------------------------- live-update states */

/* 1d2d644's, format 1: refused, untouched. */
static const char *const old_states[] = { "cpr-plain.bin", "cpr-ioeventfd-bank.bin",
					  "cpr-memslot.bin" };
#define NOLD (sizeof old_states / sizeof old_states[0])

#define PREAMBLE 24 /* "TERNCPR\0", format u32, crc32c u32, body length u64 */

static void old_states_are_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < NOLD; i++) {
		size_t len;
		uint8_t *blob = slurp(old_states[i], &len);
		/* An intact state of format 1: refused for its format alone. */
		assert_true(len > PREAMBLE);
		assert_memory_equal(blob, "TERNCPR", 8);
		assert_int_equal(le(blob + 8, 4), 1);
		assert_true(le(blob + 16, 8) == len - PREAMBLE);
		assert_true(tern_crc32c(0, blob + PREAMBLE, len - PREAMBLE) == le(blob + 12, 4));
		struct cpr_blob_in in;
		struct tern_error err = { .msg = "" };
		int rc = cpr_blob_parse(blob, len, &in, &err);
		print_message("    %s: %d (%s): %s\n", old_states[i], rc, strerror(-rc), err.msg);
		assert_int_equal(rc, -EPROTO);
		assert_non_null(strstr(err.msg, "format 1"));
		assert_non_null(strstr(err.msg, "older"));
		assert_non_null(strstr(err.msg, "loads formats 2 to 2"));
		assert_null(in.hdr.fds); /* nothing to free */
		assert_int_equal(in.sections, 0);
		cpr_blob_in_free(&in);
		free(blob);
	}
}

/* Why the format had to change: relabelled 2, a format-1 state's framing
 * still parses, but its memory-regions section (a format of its own in
 * format 1) is not the vmstate object this code's type expects. */
static void format_1_sections_are_not_format_2(void **state)
{
	(void)state;
	size_t len;
	uint8_t *blob = slurp("cpr-plain.bin", &len);
	blob[8] = 2; /* the checksum covers the body only */
	struct cpr_blob_in in;
	struct tern_error err = { .msg = "" };
	if (cpr_blob_parse(blob, len, &in, &err) < 0)
		fail_msg("cpr-plain.bin relabelled 2: %s", err.msg);
	int found = 0;
	for (unsigned i = 0; i < in.sections; i++) {
		if (strcmp(in.section[i].name, "memory-regions") != 0)
			continue;
		found = 1;
		void *obj = calloc(1, memmap_regions_type.desc->size);
		assert_non_null(obj);
		assert_true(tern_vmstate_load(memmap_regions_type.desc, obj, in.section[i].data,
					      in.section[i].len, &err) < 0);
		print_message("    cpr-plain.bin's memory-regions as format 2: %s\n", err.msg);
		free(obj);
	}
	assert_true(found);
	cpr_blob_in_free(&in);
	free(blob);
}

/* This code's, format 2. */
struct golden_cpr {
	const char *file;
	unsigned bank;
	const char *fds;      /* the fd store's names/ids, in its order */
	const char *sections; /* in blob order */
};

static const struct golden_cpr states[] = {
	{ "cpr2-plain.bin", 0, "ram/memfd/0 serial/in/0 serial/out/0 qmp/listen/0 qmp/client/0",
	  "machine memory-regions kvm cpu/0 uart serial-out migration-settings qmp-clients" },
	{ "cpr2-ioeventfd-bank.bin", BANK_DOORBELLS,
	  "ram/memfd/0 serial/in/0 serial/out/0 ioeventfd-bank/doorbell/0 "
	  "ioeventfd-bank/doorbell/1 ioeventfd-bank/doorbell/2 ioeventfd-bank/doorbell/3 "
	  "ioeventfd-bank/epoll/0 qmp/listen/0 qmp/client/0",
	  "machine memory-regions kvm cpu/0 uart serial-out ioeventfd-bank migration-settings "
	  "qmp-clients" },
};
#define NSTATES (sizeof states / sizeof states[0])

struct names {
	char text[1024];
};

static int list_fd(void *ctx, const char *name, uint32_t id, int fd)
{
	(void)fd; /* a number in a process long gone */
	struct names *n = ctx;
	size_t at = strlen(n->text);
	snprintf(n->text + at, sizeof n->text - at, "%s%s/%u", at ? " " : "", name, id);
	return 0;
}

/* The registry type of a section, by its name ("cpu/0": type "cpu"),
 * among every type linked into this program. */
static const struct vm_state_type *type_named(const char *section)
{
	size_t cursor = 0;
	const struct vm_state_type *found = NULL;
	for (const struct vm_state_type *t; (t = vm_state_types_next(&cursor)) != NULL;) {
		size_t n = strlen(t->name);
		if (strncmp(section, t->name, n) != 0 || (section[n] != '\0' && section[n] != '/'))
			continue;
		if (found != NULL)
			fail_msg("section %s: two types, %s and %s", section, found->name, t->name);
		found = t;
	}
	return found;
}

/* What each section's type is, so that the archive's objects that define
 * them are linked in (vm_state_types_next sees only those). */
static const struct {
	const char *section;
	const struct vm_state_type *type;
} state_types[] = {
	{ "machine", &machine_shape_type },
	{ "memory-regions", &memmap_regions_type },
	{ "kvm", &kvm_state_type },
	{ "cpu/0", &vcpu_state_type },
	{ "uart", &uart_state_type },
	{ "serial-out", &chardev_output_type },
	{ "ioeventfd-bank", &ioeventfd_bank_type },
	{ "migration-settings", &cpr_settings_type },
	{ "qmp-clients", &qmp_clients_type },
};

static void types_are_found_by_name(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof state_types / sizeof state_types[0]; i++)
		assert_ptr_equal(type_named(state_types[i].section), state_types[i].type);
	assert_ptr_equal(type_named("cpu/1023"), &vcpu_state_type);
	assert_null(type_named("cpux/0"));
	assert_null(type_named("machines"));
	assert_null(type_named("no-such-state"));
}

static size_t no_room(void *opaque)
{
	(void)opaque;
	return 0;
}

static size_t nowhere(void *opaque, const uint8_t *data, size_t len)
{
	(void)opaque;
	(void)data;
	return len;
}

static void no_irq(void *opaque, int level)
{
	(void)opaque;
	(void)level;
}

static const struct uart_backend no_backend = { nowhere, no_room, no_irq };

/* Decode one section as its type's object, and save it back: the same
 * bytes (every field understood, nothing left over). */
static void section_decodes(const char *file, const struct cpr_section *s)
{
	const struct vm_state_type *t = type_named(s->name);
	if (t == NULL)
		fail_msg("%s: section %s is of no type this tern has", file, s->name);
	struct tern_error err = { .msg = "" };
	void *obj = calloc(1, t->desc->size);
	assert_non_null(obj);
	if (tern_vmstate_load(t->desc, obj, s->data, s->len, &err) < 0)
		fail_msg("%s: section %s: %s", file, s->name, err.msg);
	struct tern_buf again = { 0 };
	assert_int_equal(tern_vmstate_save(t->desc, obj, &again), 0);
	if (again.len != s->len || memcmp(again.data, s->data, s->len) != 0)
		fail_msg("%s: section %s: %u bytes decode and save as %zu other bytes", file,
			 s->name, s->len, again.len);
	tern_buf_free(&again);
	if (t->release != NULL)
		t->release(obj);
	free(obj);
}

/* The JSON of migration-settings: after the object's name and version,
 * a u32 count of bytes (the type's one field), then the end of
 * subsections. */
static json_t *settings_json(const char *file, const struct cpr_section *s)
{
	const size_t head = 1 + strlen(CPR_SETTINGS_SECTION) + 4;
	assert_true(s->len >= head + 4 + 1);
	assert_int_equal(s->data[0], strlen(CPR_SETTINGS_SECTION));
	uint32_t n = (uint32_t)le(s->data + head, 4);
	assert_int_equal(s->len, head + 4 + n + 1);
	json_error_t jerr;
	json_t *js = json_loadb((const char *)s->data + head + 4, n, 0, &jerr);
	if (js == NULL)
		fail_msg("%s: migration-settings: %s", file, jerr.text);
	return js;
}

static void state_parses(const struct golden_cpr *g)
{
	size_t len;
	uint8_t *blob = slurp(g->file, &len);
	struct cpr_blob_in in;
	struct tern_error err = { .msg = "" };
	if (cpr_blob_parse(blob, len, &in, &err) < 0)
		fail_msg("%s: %s", g->file, err.msg);
	struct names fds = { "" }, secs = { "" };
	assert_int_equal(tern_fdstore_walk(in.hdr.fds, list_fd, &fds), 0);
	for (unsigned i = 0; i < in.sections; i++)
		snprintf(secs.text + strlen(secs.text), sizeof secs.text - strlen(secs.text), "%s%s",
			 i ? " " : "", in.section[i].name);
	print_message("    %s: %zu bytes, format %u; %s, %llu MiB, %u vCPU, %u memslot(s), "
		      "dirty_mode %u, %u device(s) %s, serial %s, qmp %s, paused %u; fds: %s; "
		      "sections: %s\n",
		      g->file, len, (unsigned)le(blob + 8, 4), in.hdr.mode,
		      (unsigned long long)(in.hdr.memory >> 20), in.hdr.vcpus, in.hdr.memslots,
		      in.hdr.dirty_mode, in.hdr.ndevices, in.hdr.ndevices ? in.hdr.device[0] : "",
		      in.hdr.serial, in.hdr.qmp, in.hdr.guest_paused, fds.text, secs.text);
	assert_int_equal(le(blob + 8, 4), 2); /* the format this code writes */
	assert_string_equal(in.hdr.mode, "cpr-exec");
	assert_true(in.hdr.memory == 16ULL << 20);
	assert_int_equal(in.hdr.vcpus, 1);
	assert_int_equal(in.hdr.memslots, 1);
	assert_int_equal(in.hdr.dirty_mode, 0);
	/* The devices as given on the command line, built again from these. */
	assert_int_equal(in.hdr.ndevices, g->bank ? 1 : 0);
	if (g->bank) {
		char spec[DEVICE_SPEC_MAX];
		snprintf(spec, sizeof spec, "ioeventfd-bank,count=%u", (unsigned)g->bank);
		assert_string_equal(in.hdr.device[0], spec);
	}
	assert_string_equal(in.hdr.serial, "stdio");
	assert_int_equal(strncmp(in.hdr.qmp, "unix:", 5), 0);
	assert_int_equal(in.hdr.guest_paused, 0);
	assert_true(in.hdr.stop_ns <= in.hdr.saved_ns);
	if (strcmp(fds.text, g->fds) != 0)
		fail_msg("%s: fds '%s', README.txt says '%s'", g->file, fds.text, g->fds);
	if (strcmp(secs.text, g->sections) != 0)
		fail_msg("%s: sections '%s', README.txt says '%s'", g->file, secs.text, g->sections);

	/* Every section is a vmstate object of the registry type of its name. */
	for (unsigned i = 0; i < in.sections; i++)
		section_decodes(g->file, &in.section[i]);

	/* Those whose holders a test can make, handed to one. */
	const char *list = g->sections;
	char name[64];
	while (next_word(&list, name, sizeof name)) {
		const struct cpr_section *s = NULL;
		for (unsigned i = 0; i < in.sections; i++)
			if (strcmp(in.section[i].name, name) == 0)
				s = &in.section[i];
		assert_non_null(s);
		if (strcmp(name, "machine") == 0) {
			/* The shape: one vCPU, and a machine of two refuses it. */
			struct fake_machine f;
			fake_machine_init(&f, 1, 0);
			if (vm_state_load_one(&machine_shape_type, f.vm, s->data, s->len, &err) < 0)
				fail_msg("%s: machine: %s", g->file, err.msg);
			f.vm->vcpus = 2;
			assert_true(vm_state_load_one(&machine_shape_type, f.vm, s->data, s->len,
						      &err) < 0);
			assert_non_null(strstr(err.msg, "the source has 1 vCPU, this guest 2"));
			fake_machine_free(&f);
		} else if (strcmp(name, "uart") == 0) {
			struct uart u;
			uart_init(&u, &no_backend, NULL);
			if (vm_state_load_one(&uart_state_type, &u, s->data, s->len, &err) < 0)
				fail_msg("%s: uart: %s", g->file, err.msg);
			assert_int_equal(u.rx_count, 0); /* nothing typed and unread */
			uart_destroy(&u);
		} else if (strcmp(name, "ioeventfd-bank") == 0) {
			bank_section_has_the_rings(g->file, s->data, s->len);
		} else if (strcmp(name, "migration-settings") == 0) {
			/* As the query commands return them. */
			json_t *js = settings_json(g->file, s);
			json_t *params = json_object_get(js, "parameters");
			assert_string_equal(json_string_value(json_object_get(params, "mode")),
					    "cpr-exec");
			json_t *cmd = json_object_get(params, "cpr-exec-command");
			assert_int_equal(json_array_size(cmd), 3);
			assert_non_null(strstr(json_string_value(json_array_get(cmd, 1)),
					       "capture_cpr_state.py"));
			assert_true(json_is_array(json_object_get(js, "capabilities")));
			json_decref(js);
		}
	}
	cpr_blob_in_free(&in);
	free(blob);
}

static void new_states_parse_and_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < NSTATES; i++)
		state_parses(&states[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(streams_read_whole),
		cmocka_unit_test(a_stream_of_another_shape_is_refused_on_arrival),
		cmocka_unit_test(streams_load_and_run_or_are_refused),
		cmocka_unit_test_teardown(bank_stream_brings_the_rings, end_leftover),
		cmocka_unit_test(old_states_are_refused),
		cmocka_unit_test(format_1_sections_are_not_format_2),
		cmocka_unit_test(types_are_found_by_name),
		cmocka_unit_test(new_states_parse_and_decode),
	};
	return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
