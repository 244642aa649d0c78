/*
 * Golden live-update states (tests/golden/, README.txt there) that
 * earlier releases wrote, and what this code promises about them; the
 * golden migration streams are tests/test_golden_streams.c's.
 *
 * Written by tern 1d2d644, before the state registry (cpr-*.bin): they
 * are format 1, which this code refuses (-EPROTO, "format 1, saved by a
 * tern older than this one").
 *
 * Written by this code, tern 6e8fb68 (cpr2-*.bin), for the releases
 * after it: the format-2 states parse, every section decoding as the
 * registry type of its name.  A later release keeps these checks,
 * changing only what its README.txt says it refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "golden_support.h"
#include "cpr/cpr_settings.h"
#include "cpr/cpr_blob.h"
#include "devices/chardev.h"
#include "devices/ioeventfd_bank.h"
#include "devices/uart.h"
#include "kvm/kvm_state.h"
#include "kvm/vcpu_state.h"
#include "machine/memmap.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"
#include "qmp/qmp.h"
#include "tern/crc32c.h"
#include "tern/vmstate.h"

/* ---------------------------------------------------------------- reading */

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
		uint8_t *blob = golden_slurp(old_states[i], &len);
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
	uint8_t *blob = golden_slurp("cpr-plain.bin", &len);
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
	{ "cpr2-ioeventfd-bank.bin", GOLDEN_BANK_DOORBELLS,
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
	uint8_t *blob = golden_slurp(g->file, &len);
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
			struct golden_fake_machine f;
			golden_fake_machine_init(&f, GOLDEN_TYPES, 1, 0);
			if (vm_state_load_one(&machine_shape_type, f.vm, s->data, s->len, &err) < 0)
				fail_msg("%s: machine: %s", g->file, err.msg);
			f.vm->vcpus = 2;
			assert_true(vm_state_load_one(&machine_shape_type, f.vm, s->data, s->len,
						      &err) < 0);
			assert_non_null(strstr(err.msg, "the source has 1 vCPU, this guest 2"));
			golden_fake_machine_free(&f);
		} else if (strcmp(name, "uart") == 0) {
			struct uart u;
			uart_init(&u, &no_backend, NULL);
			if (vm_state_load_one(&uart_state_type, &u, s->data, s->len, &err) < 0)
				fail_msg("%s: uart: %s", g->file, err.msg);
			assert_int_equal(u.rx_count, 0); /* nothing typed and unread */
			uart_destroy(&u);
		} else if (strcmp(name, "ioeventfd-bank") == 0) {
			golden_bank_section_has_the_rings(GOLDEN_TYPES, g->file, s->data, s->len);
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
		cmocka_unit_test(old_states_are_refused),
		cmocka_unit_test(format_1_sections_are_not_format_2),
		cmocka_unit_test(types_are_found_by_name),
		cmocka_unit_test(new_states_parse_and_decode),
	};
	return cmocka_run_group_tests_name("golden_states", tests, NULL, NULL);
}
