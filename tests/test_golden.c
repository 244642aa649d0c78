/*
 * Golden files (tests/golden/, README.txt there): migration streams and
 * live-update states written by tern 1d2d644, before the state formats
 * moved to a device/state registry.  With that release's code this test
 * proves they are what README.txt says: every stream reads to its END with
 * the records and sections listed, every section loads with the machine's
 * state descriptions, and each loads into a fresh `tern run --incoming
 * file:PATH` whose guest finishes its run there and verifies all of its
 * memory with the checksum of a run that was never migrated; every
 * live-update state parses with cpr_blob_parse and holds the header, fds
 * and sections listed.  Later releases keep the files and change what
 * this test expects only where README.txt says a file is refused.
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

#include "../harness/env.h"
#include "../harness/memio.h"
#include "../harness/tern.h"
#include "cpr/cpr_state.h"
#include "kvm_skip.h"
#include "machine/vm_state.h"
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

static uint8_t *slurp(const char *name, size_t *len)
{
	char path[512];
	golden_path(name, path, sizeof path);
	FILE *in = fopen(path, "rb");
	if (in == NULL)
		fail_msg("%s: %s (run from the repository root, or set TERN_GOLDEN_DIR)", path,
			 strerror(errno));
	assert_int_equal(fseek(in, 0, SEEK_END), 0);
	long n = ftell(in);
	assert_true(n > 0);
	rewind(in);
	uint8_t *buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
	fclose(in);
	*len = (size_t)n;
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

/* ---------------------------------------------------------------- streams */

struct golden_stream {
	const char *file;
	const char *vcpus;
	unsigned bank;        /* the destination's --device ioeventfd-bank,count= */
	int delta;            /* HELLO's delta flag, and XBZRLE and BLOCKS records in it */
	const char *checksum; /* verify ok (end) on the destination */
	const char *sections; /* in stream order */
};

#define RANDOM_SUM "0x39306818e8972a5d" /* workload=random ws=256K writes=3000 seed=7 */
#define SPARSE_SUM "0xb78eae0020bb0b62" /* workload=sparse ws=256K writes=8000 seed=7 */

static const struct golden_stream streams[] = {
	{ "mig-1vcpu.tmf", "1", 0, 0, RANDOM_SUM, "machine kvm cpu/0 uart" },
	{ "mig-2vcpu.tmf", "2", 0, 0, RANDOM_SUM, "machine kvm cpu/0 cpu/1 uart" },
	{ "mig-paused.tmf", "1", 0, 0, RANDOM_SUM, "machine kvm cpu/0 uart" },
	{ "mig-xbzrle.tmf", "1", 0, 1, SPARSE_SUM, "machine kvm cpu/0 uart" },
	/* This release migrates no ioeventfd-bank state: the stream is a
	 * plain one (see README.txt). */
	{ "mig-ioeventfd-bank.tmf", "1", 4, 0, RANDOM_SUM, "machine kvm cpu/0 uart" },
};
#define NSTREAMS (sizeof streams / sizeof streams[0])

/* Read a whole stream as a destination would, count its records and load
 * each section as the machine's state. */
static void stream_reads_whole(const struct golden_stream *g)
{
	size_t len;
	uint8_t *buf = slurp(g->file, &len);
	struct memio m;
	memio_init_reader(&m, buf, len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &m.io), 0);
	r.file = 1;
	unsigned vcpus = (unsigned)atoi(g->vcpus);
	struct vm_state_in in;
	assert_int_equal(vm_state_in_init(&in, vcpus), 0);
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
		}
	} while (rec.type != TERN_REC_END);
	if (tern_stream_expect_eof(&r, &err) < 0)
		fail_msg("%s: %s", g->file, err.msg);
	print_message("    %s: %zu bytes; HELLO v%u flags %u, %u range(s) of %llu MiB; records: "
		      "ZERO %llu, ZERO_RUN %llu, RAW %llu, XBZRLE %llu, BLOCKS %llu, SECTION %llu, "
		      "SYNC %llu; %llu page records, END; sections: %s\n",
		      g->file, len, r.hello.version, r.hello.flags, r.hello.ranges,
		      (unsigned long long)(r.hello.range[0].size >> 20),
		      (unsigned long long)counts[TERN_REC_ZERO],
		      (unsigned long long)counts[TERN_REC_ZERO_RUN],
		      (unsigned long long)counts[TERN_REC_RAW],
		      (unsigned long long)counts[TERN_REC_XBZRLE],
		      (unsigned long long)counts[TERN_REC_BLOCKS],
		      (unsigned long long)counts[TERN_REC_SECTION],
		      (unsigned long long)counts[TERN_REC_SYNC], (unsigned long long)r.pages, names);
	/* A 16 MiB guest whose every page is sent at least once. */
	assert_int_equal(r.hello.version, 1);
	assert_int_equal(r.hello.page_size, 4096);
	assert_int_equal(r.hello.ranges, 1);
	assert_true(r.hello.range[0].gpa == 0 && r.hello.range[0].size == 16ULL << 20);
	assert_true(pages >= 4096);
	assert_true(counts[TERN_REC_RAW] > 64); /* the working set, the guest's own pages */
	assert_true(counts[TERN_REC_SYNC] >= 1);
	assert_int_equal(counts[TERN_REC_HELLO], 1);
	assert_int_equal(counts[TERN_REC_END], 1);
	assert_int_equal(r.hello.flags, g->delta ? TERN_STREAM_XBZRLE_FLAG : 0);
	if (g->delta)
		assert_true(counts[TERN_REC_XBZRLE] > 0 && counts[TERN_REC_BLOCKS] > 0);
	else
		assert_true(counts[TERN_REC_XBZRLE] == 0 && counts[TERN_REC_BLOCKS] == 0);
	if (strcmp(names, g->sections) != 0)
		fail_msg("%s: sections '%s', README.txt says '%s'", g->file, names, g->sections);
	assert_true(in.have_shape && in.have_kvm && in.have_uart);
	for (unsigned i = 0; i < vcpus; i++)
		assert_true(in.have_cpu[i]);
	vm_state_in_free(&in);
	tern_stream_reader_destroy(&r);
	free(buf);
}

static void streams_read_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < NSTREAMS; i++)
		stream_reads_whole(&streams[i]);
}

/* Every stream loads into a fresh destination (all at once: each guest
 * has at most 1.5 s of its run left), whose guest finishes there, verifies
 * its memory and ends with the checksum of an unmigrated run. */
static void streams_load_and_run(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct proc dst[NSTREAMS];
	char uri[NSTREAMS][540], bank[NSTREAMS][48];
	for (size_t i = 0; i < NSTREAMS; i++) {
		const struct golden_stream *g = &streams[i];
		char path[512];
		snprintf(uri[i], sizeof uri[i], "file:%s", golden_path(g->file, path, sizeof path));
		snprintf(bank[i], sizeof bank[i], "ioeventfd-bank,count=%u", g->bank);
		if (g->bank)
			assert_int_equal(tern_spawn(&dst[i], 0, "run", "--memory", "16M", "--vcpus",
						    g->vcpus, "--device", bank[i], "--incoming",
						    uri[i], NULL),
					 0);
		else
			assert_int_equal(tern_spawn(&dst[i], 0, "run", "--memory", "16M", "--vcpus",
						    g->vcpus, "--incoming", uri[i], NULL),
					 0);
	}
	int failed = 0;
	for (size_t i = 0; i < NSTREAMS; i++) {
		const struct golden_stream *g = &streams[i];
		int status = proc_wait(&dst[i], 60000);
		const char *out = proc_output(&dst[i]);
		char want[64];
		snprintf(want, sizeof want, "checksum=%s", g->checksum);
		const char *ok = strstr(out, "tern-guest: verify ok (end)");
		/* It resumed the saved guest mid-run: nothing booted here. */
		int booted = strstr(out, "tern-guest: start") != NULL;
		if (status != 0 || ok == NULL || strstr(ok, want) == NULL || booted) {
			print_error("%s: the destination exited %d, wanted verify ok (end) %s%s:\n%s\n",
				    g->file, status, want, booted ? " (and no fresh boot)" : "", out);
			failed++;
		} else {
			print_message("    %s: loaded; the guest ran to its end: verify ok, %s\n",
				      g->file, want);
		}
		proc_free(&dst[i]);
	}
	assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------- live-update states */

struct golden_cpr {
	const char *file;
	unsigned bank;
	const char *fds;      /* the fd store's names/ids, in its order */
	const char *sections; /* in blob order */
};

static const struct golden_cpr states[] = {
	{ "cpr-plain.bin", 0, "ram/memfd/0 serial/in/0 serial/out/0 qmp/listen/0 qmp/client/0",
	  "kvm cpu/0 uart memory-regions migration-settings qmp-clients" },
	{ "cpr-ioeventfd-bank.bin", 4,
	  "ram/memfd/0 serial/in/0 serial/out/0 ioeventfd-bank/doorbell/0 "
	  "ioeventfd-bank/doorbell/1 ioeventfd-bank/doorbell/2 ioeventfd-bank/doorbell/3 "
	  "ioeventfd-bank/epoll/0 qmp/listen/0 qmp/client/0",
	  "kvm cpu/0 uart memory-regions ioeventfd-bank migration-settings qmp-clients" },
	{ "cpr-memslot.bin", 0,
	  "ram/memfd/0 serial/in/0 serial/out/0 qmp/listen/0 qmp/client/0 memslot/region/1",
	  "kvm cpu/0 uart memory-regions migration-settings qmp-clients" },
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

static const struct cpr_section *section(const struct cpr_blob_in *in, const char *name)
{
	for (unsigned i = 0; i < in->sections; i++)
		if (strcmp(in->section[i].name, name) == 0)
			return &in->section[i];
	fail_msg("no section %s", name);
	return NULL;
}

static uint64_t le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
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
	print_message("    %s: %zu bytes, format %u; %s, %llu MiB, %u vCPU, %u memslot(s), dirty_mode %u, "
		      "bank %u, serial %s, qmp %s, paused %u; fds: %s; sections: %s\n",
		      g->file, len, (unsigned)le(blob + 8, 4), in.hdr.mode,
		      (unsigned long long)(in.hdr.memory >> 20), in.hdr.vcpus, in.hdr.memslots,
		      in.hdr.dirty_mode, in.hdr.bank, in.hdr.serial, in.hdr.qmp, in.hdr.guest_paused, fds.text,
		      secs.text);
	assert_int_equal(le(blob + 8, 4), 1); /* the format this release writes */
	assert_string_equal(in.hdr.mode, "cpr-exec");
	assert_true(in.hdr.memory == 16ULL << 20);
	assert_int_equal(in.hdr.vcpus, 1);
	assert_int_equal(in.hdr.memslots, 1);
	assert_int_equal(in.hdr.dirty_mode, 0);
	assert_int_equal(in.hdr.bank, g->bank);
	assert_string_equal(in.hdr.serial, "stdio");
	assert_int_equal(strncmp(in.hdr.qmp, "unix:", 5), 0);
	assert_int_equal(in.hdr.guest_paused, 0);
	if (strcmp(fds.text, g->fds) != 0)
		fail_msg("%s: fds '%s', README.txt says '%s'", g->file, fds.text, g->fds);
	if (strcmp(secs.text, g->sections) != 0)
		fail_msg("%s: sections '%s', README.txt says '%s'", g->file, secs.text, g->sections);

	/* The machine's sections load as a migration's would. */
	struct vm_state_in vs;
	assert_int_equal(vm_state_in_init(&vs, in.hdr.vcpus), 0);
	const char *list = g->sections;
	char name[64];
	while (next_word(&list, name, sizeof name))
		if (strcmp(name, "kvm") == 0 || strcmp(name, "uart") == 0 ||
		    strncmp(name, "cpu/", 4) == 0) {
			const struct cpr_section *s = section(&in, name);
			if (vm_state_load_section(&vs, name, s->data, s->len, &err) < 0)
				fail_msg("%s: section %s: %s", g->file, name, err.msg);
		}
	assert_true(vs.have_kvm && vs.have_uart && vs.have_cpu[0]);
	vm_state_in_free(&vs);

	/* memory-regions: u32 count, then per region u32 slot, u32 flags,
	 * u64 address, u64 size. */
	const struct cpr_section *s = section(&in, "memory-regions");
	uint32_t regions = (uint32_t)le(s->data, 4);
	assert_int_equal(s->len, 4 + 24 * regions);
	if (strcmp(g->file, "cpr-memslot.bin") == 0) {
		assert_int_equal(regions, 1);
		assert_int_equal(le(s->data + 4, 4), 1);   /* memslot 1 */
		assert_int_equal(le(s->data + 8, 4), 1);   /* read-only */
		assert_true(le(s->data + 12, 8) == 0x40000000ULL);
		assert_true(le(s->data + 20, 8) == 2ULL << 20);
	} else {
		assert_int_equal(regions, 0);
	}
	/* ioeventfd-bank: u32 count, u64 base, u64 rings per doorbell. */
	if (g->bank) {
		s = section(&in, "ioeventfd-bank");
		assert_int_equal(s->len, 12 + 8 * g->bank);
		assert_int_equal(le(s->data, 4), g->bank);
		assert_true(le(s->data + 4, 8) == 0xe0000000ULL);
		static const uint64_t rings[4] = { 1, 0, 2, 1 };
		for (unsigned i = 0; i < 4; i++)
			assert_true(le(s->data + 12 + 8 * i, 8) == rings[i]);
	}
	/* qmp-clients: u32 count, then per client u32 slot, u8 negotiated, its
	 * framer: the one client that sent the migrate. */
	s = section(&in, "qmp-clients");
	assert_true(s->len > 9);
	assert_int_equal(le(s->data, 4), 1);
	assert_int_equal(s->data[8], 1);
	/* migration-settings: JSON, as the query commands return them. */
	s = section(&in, "migration-settings");
	json_error_t jerr;
	json_t *js = json_loadb((const char *)s->data, s->len, 0, &jerr);
	if (js == NULL)
		fail_msg("%s: migration-settings: %s", g->file, jerr.text);
	json_t *params = json_object_get(js, "parameters");
	assert_string_equal(json_string_value(json_object_get(params, "mode")), "cpr-exec");
	json_t *cmd = json_object_get(params, "cpr-exec-command");
	assert_int_equal(json_array_size(cmd), 3);
	assert_non_null(strstr(json_string_value(json_array_get(cmd, 1)), "capture_cpr_state.py"));
	assert_true(json_is_array(json_object_get(js, "capabilities")));
	json_decref(js);
	cpr_blob_in_free(&in);
	free(blob);
}

static void states_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < NSTATES; i++)
		state_parses(&states[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(streams_read_whole),
		cmocka_unit_test(streams_load_and_run),
		cmocka_unit_test(states_parse),
	};
	return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
