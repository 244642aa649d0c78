/*
 * tests/vmstate.desc describes every state tern saves (vmm/machine/vm_state_describe.h).
 * The build's description must be the checked-in one: a description that
 * changed without a new version fails, naming the section and the old
 * version; one that changed with a new version fails asking for the file
 * to be regenerated (`make vmstate-desc`), so any change to a wire form
 * is seen and versioned on purpose.  The comparison is shown to fail on
 * descriptions modified in each of those ways.
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

#include "kvm/vcpu_state.h"
#include "devices/uart.h"
#include "machine/vm_state.h"
#include "machine/vm_state_describe.h"
#include "tern/vmstate.h"

#define BUMP "changed without a version bump"
#define UPDATE "update tests/vmstate.desc: run make vmstate-desc"

/* The build's description, NUL-terminated. */
static char *built(void)
{
	struct tern_buf b = { 0 };
	struct tern_error err = { .msg = "" };
	if (vm_state_describe(&b, &err) < 0)
		fail_msg("describing the build's state: %s", err.msg);
	tern_buf_u8(&b, 0);
	assert_false(b.failed);
	return (char *)b.data;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: %s (run from the repository root, or set TERN_VMSTATE_DESC)", path,
			 strerror(errno));
	struct tern_buf b = { 0 };
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		tern_buf_put(&b, chunk, n);
	fclose(f);
	tern_buf_u8(&b, 0);
	assert_false(b.failed);
	return (char *)b.data;
}

static void checked_in_is_the_build(void **state)
{
	(void)state;
	const char *path = getenv("TERN_VMSTATE_DESC");
	char *file = read_file(path != NULL && path[0] != '\0' ? path : "tests/vmstate.desc");
	char *text = built();
	struct tern_error err = { .msg = "" };
	if (tern_vmstate_desc_compare(file, text, &err) != 0)
		fail_msg("%s", err.msg);
	free(file);
	free(text);
}

/* Every type linked in has its section (and the CPR header its own). */
static void every_type_is_described(void **state)
{
	(void)state;
	char *text = built();
	size_t cursor = 0, n = 0;
	for (const struct vm_state_type *t; (t = vm_state_types_next(&cursor)) != NULL; n++) {
		char want[128];
		snprintf(want, sizeof want, "\nsection %s\n", t->name);
		if (strstr(text, want) == NULL)
			fail_msg("state type %s is not described", t->name);
		struct tern_error err = { .msg = "" };
		if (tern_vmstate_desc_check(t->desc, &err) != 0)
			fail_msg("state type %s: %s", t->name, err.msg);
	}
	assert_true(n >= 9); /* machine kvm cpu uart serial-out memory-regions ... */
	assert_non_null(strstr(text, "\nsection cpr-header\n"));
	assert_non_null(strstr(text, "\nsection cpu\n\tinstances numbered (cpu/0, cpu/1, ...)\n"));
	free(text);
}

static void sections_find_their_types(void **state)
{
	(void)state;
	assert_ptr_equal(vm_state_type_find("cpu/0"), &vcpu_state_type);
	assert_ptr_equal(vm_state_type_find("cpu/17"), &vcpu_state_type);
	assert_ptr_equal(vm_state_type_find("uart"), &uart_state_type);
	assert_null(vm_state_type_find("cpu"));
	assert_null(vm_state_type_find("cpu/"));
	assert_null(vm_state_type_find("cpu/1x"));
	assert_null(vm_state_type_find("uart/0"));
	assert_null(vm_state_type_find("uartx"));
	assert_null(vm_state_type_find(""));
}

/* ------------------------------------------------------------ comparing */

static const char base[] =
	"# a comment\n"
	"\n"
	"section one\n"
	"\tinstances one (one)\n"
	"\tcarry migration file\n"
	"\tflags none\n"
	"\tdesc top version 3 min 1\n"
	"\t\tfield a u32\n"
	"\t\tfield inner struct in\n"
	"\tdesc in version 2 min 1\n"
	"\t\tfield x u8\n"
	"\n"
	"section two\n"
	"\tinstances numbered (two/0, two/1, ...)\n"
	"\tcarry cpr-exec\n"
	"\tflags early\n"
	"\tdesc two version 1 min 1\n"
	"\t\tfield b varray max 16 of u8\n";

/* base with `from` (which must be in it) replaced by `to`. */
static char *edited(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	if (at == NULL)
		fail_msg("'%s' is not in the description", from);
	size_t head = (size_t)(at - text), nf = strlen(from), nt = strlen(to);
	char *s = malloc(strlen(text) - nf + nt + 1);
	assert_non_null(s);
	memcpy(s, text, head);
	memcpy(s + head, to, nt);
	strcpy(s + head + nt, at + nf);
	return s;
}

/* Comparing base (checked in) with base edited (built) says `says`. */
static void expect(const char *from, const char *to, const char *says)
{
	char *now = edited(base, from, to);
	struct tern_error err = { .msg = "" };
	int rc = tern_vmstate_desc_compare(base, now, &err);
	if (says == NULL) {
		if (rc != 0)
			fail_msg("'%s' -> '%s': refused: %s", from, to, err.msg);
	} else if (rc != -EPROTO || strstr(err.msg, says) == NULL) {
		fail_msg("'%s' -> '%s': expected \"%s\", got %d \"%s\"", from, to, says, rc,
			 err.msg);
	}
	free(now);
}

static void unchanged_passes(void **state)
{
	(void)state;
	struct tern_error err = { .msg = "" };
	assert_int_equal(tern_vmstate_desc_compare(base, base, &err), 0);
	char *text = built();
	assert_int_equal(tern_vmstate_desc_compare(text, text, &err), 0);
	free(text);
}

static void change_without_bump_fails(void **state)
{
	(void)state;
	/* A field of the section's own description: its version is 3. */
	expect("\t\tfield a u32\n", "\t\tfield a u64\n", "section one " BUMP " (from 3)");
	expect("\t\tfield a u32\n", "\t\tfield a u32\n\t\tfield c u8\n",
	       "section one " BUMP " (from 3)");
	expect("\t\tfield a u32\n", "", "section one " BUMP " (from 3)");
	expect("\t\tfield a u32\n", "\t\tfield a u32 since 3\n", "section one " BUMP " (from 3)");
	expect("\tdesc top version 3 min 1\n", "\tdesc top version 3 min 2\n",
	       "section one " BUMP " (from 3)");
	/* Renamed: the name is on the wire too. */
	expect("\tdesc top version 3 min 1\n", "\tdesc top2 version 3 min 1\n",
	       "section one " BUMP " (from 3)");
	/* A description it reaches has a version of its own, 2. */
	expect("\t\tfield x u8\n", "\t\tfield x u16\n", "section one " BUMP " (from 2)");
	expect("\t\tfield x u8\n", "\t\tfield x u16\n", "in description in, 'field x u8' is now "
	       "'field x u16'");
	expect("\t\tfield b varray max 16 of u8\n", "\t\tfield b varray max 15 of u8\n",
	       "section two " BUMP " (from 1)");
}

static void change_with_bump_asks_to_regenerate(void **state)
{
	(void)state;
	expect("\tdesc top version 3 min 1\n\t\tfield a u32\n",
	       "\tdesc top version 4 min 1\n\t\tfield a u64\n", UPDATE);
	expect("\tdesc in version 2 min 1\n\t\tfield x u8\n",
	       "\tdesc in version 3 min 1\n\t\tfield x u8\n\t\tfield y u8 since 3\n", UPDATE);
	/* Not wire forms: how it is carried, and sections that come or go. */
	expect("\tcarry migration file\n", "\tcarry migration\n", UPDATE);
	expect("\tflags early\n", "\tflags none\n", UPDATE);
	expect("\t\tfield b varray max 16 of u8\n",
	       "\t\tfield b varray max 16 of u8\n\nsection three\n\tinstances one (three)\n"
	       "\tcarry file\n\tflags none\n\tdesc three version 1 min 1\n", UPDATE);
	expect("\nsection two\n", "\nsection deux\n", UPDATE);
	expect("# a comment\n", "# another comment\n", UPDATE);
	expect("# a comment\n", "# a comment\n\n\n", UPDATE);
}

/* On the real description: a field added to any section's description
 * without a new version is caught, naming that section; with one, the
 * file must be regenerated. */
static void every_real_section_is_watched(void **state)
{
	(void)state;
	char *text = built();
	unsigned sections = 0;
	for (const char *s = strstr(text, "\nsection "); s != NULL; s = strstr(s + 1, "\nsection ")) {
		char name[128], line[300];
		assert_int_equal(sscanf(s, "\nsection %127s", name), 1);
		const char *d = strstr(s, "\n\tdesc ");
		assert_non_null(d);
		const char *eol = strchr(d + 1, '\n');
		assert_non_null(eol);
		size_t len = (size_t)(eol + 1 - (d + 1));
		assert_true(len < sizeof line);
		memcpy(line, d + 1, len);
		line[len] = '\0';
		char dname[128];
		unsigned version, min;
		assert_int_equal(sscanf(line, "\tdesc %127s version %u min %u", dname, &version, &min),
				 3);

		char added[400], bumped[400], want[300];
		snprintf(added, sizeof added, "%s\t\tfield tern_new_field u32\n", line);
		snprintf(bumped, sizeof bumped, "\tdesc %s version %u min %u\n\t\tfield tern_new_field "
			 "u32 since %u\n", dname, version + 1, min, version + 1);
		struct tern_error err = { .msg = "" };
		/* The line must be this section's: edit from the section on. */
		size_t head = (size_t)(d + 1 - text);
		char *cut = strdup(text);
		assert_non_null(cut);
		cut[head] = '\0';
		char *tail = edited(text + head, line, added);
		char *now = malloc(strlen(cut) + strlen(tail) + 1);
		assert_non_null(now);
		strcpy(now, cut);
		strcat(now, tail);
		snprintf(want, sizeof want, "section %s " BUMP " (from %u)", name, version);
		if (tern_vmstate_desc_compare(text, now, &err) != -EPROTO || !strstr(err.msg, want))
			fail_msg("adding a field to %s: expected \"%s\", got \"%s\"", name, want,
				 err.msg);
		free(tail);
		free(now);

		tail = edited(text + head, line, bumped);
		now = malloc(strlen(cut) + strlen(tail) + 1);
		assert_non_null(now);
		strcpy(now, cut);
		strcat(now, tail);
		if (tern_vmstate_desc_compare(text, now, &err) != -EPROTO || !strstr(err.msg, UPDATE))
			fail_msg("adding a field to %s with a new version: got \"%s\"", name,
				 err.msg);
		free(tail);
		free(now);
		free(cut);
		sections++;
	}
	assert_true(sections >= 10);
	free(text);
}

/* ------------------------------------------------------------ checking */

struct inner {
	uint32_t a;
};
struct outer {
	uint32_t n;
	struct inner in;
	uint64_t wide;
};

static const struct tern_vmstate_field inner_fields[] = {
	TERN_VMS_FIELD_U32(struct inner, a, 0),
	TERN_VMS_FIELD_END,
};
static const struct tern_vmstate_desc inner_desc = {
	.name = "inner", .size = sizeof(struct inner), .version = 1, .min_version = 1,
	.fields = inner_fields,
};
/* A description of another structure than the member's. */
static const struct tern_vmstate_desc wrong_size_desc = {
	.name = "inner", .size = sizeof(struct outer), .version = 1, .min_version = 1,
	.fields = inner_fields,
};

static void refused(const struct tern_vmstate_field *fields, uint32_t version, const char *says)
{
	const struct tern_vmstate_desc d = {
		.name = "outer", .size = sizeof(struct outer), .version = version, .min_version = 1,
		.fields = fields,
	};
	struct tern_error err = { .msg = "" };
	int rc = tern_vmstate_desc_check(&d, &err);
	if (rc != -EINVAL || strstr(err.msg, says) == NULL)
		fail_msg("expected \"%s\", got %d \"%s\"", says, rc, err.msg);
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_describe(&d, 0, &b, &err), -EINVAL);
	tern_buf_free(&b);
}

static void bad_descriptions_are_refused(void **state)
{
	(void)state;
	const struct tern_vmstate_field good[] = {
		TERN_VMS_FIELD_U32(struct outer, n, 0),
		TERN_VMS_FIELD_STRUCT(struct outer, in, &inner_desc, 0),
		TERN_VMS_FIELD_U64(struct outer, wide, 2),
		TERN_VMS_FIELD_END,
	};
	const struct tern_vmstate_desc d = {
		.name = "outer", .size = sizeof(struct outer), .version = 2, .min_version = 1,
		.fields = good,
	};
	struct tern_error err = { .msg = "" };
	assert_int_equal(tern_vmstate_desc_check(&d, &err), 0);
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_describe(&d, 0, &b, &err), 0);
	tern_buf_u8(&b, 0);
	assert_string_equal((char *)b.data, "desc outer version 2 min 1\n"
			    "\tfield n u32\n"
			    "\tfield in struct inner\n"
			    "\tfield wide u64 since 2\n"
			    "desc inner version 1 min 1\n"
			    "\tfield a u32\n");
	tern_buf_free(&b);

	refused(good, 1, "outer.wide: since version 2, after the description's 1");
	const struct tern_vmstate_field wrong_sub[] = {
		TERN_VMS_FIELD_STRUCT(struct outer, in, &wrong_size_desc, 0),
		TERN_VMS_FIELD_END,
	};
	refused(wrong_sub, 1, "outer.in: a structure of 4 bytes described by inner, of 16");
	const struct tern_vmstate_field twice[] = {
		TERN_VMS_FIELD_U32(struct outer, n, 0),
		TERN_VMS_FIELD_U32_AS("n", struct outer, in.a, 0),
		TERN_VMS_FIELD_END,
	};
	refused(twice, 1, "outer: two fields are named n");
	const struct tern_vmstate_field outside[] = {
		{ .name = "far", .type = TERN_VMS_U64, .offset = sizeof(struct outer) - 4 },
		TERN_VMS_FIELD_END,
	};
	refused(outside, 1, "outer.far: 8 bytes at 12, outside its structure of 16");
	const struct tern_vmstate_field no_count[] = {
		{ .name = "v", .type = TERN_VMS_VARRAY, .elem = TERN_VMS_U8, .count = 4,
		  .count_offset = sizeof(struct outer) },
		TERN_VMS_FIELD_END,
	};
	refused(no_count, 1, "outer.v: its count at 16 is outside");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checked_in_is_the_build),
		cmocka_unit_test(every_type_is_described),
		cmocka_unit_test(sections_find_their_types),
		cmocka_unit_test(unchanged_passes),
		cmocka_unit_test(change_without_bump_fails),
		cmocka_unit_test(change_with_bump_asks_to_regenerate),
		cmocka_unit_test(every_real_section_is_watched),
		cmocka_unit_test(bad_descriptions_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
