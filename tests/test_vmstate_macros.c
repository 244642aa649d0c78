/*
 * The field macros of include/tern/vmstate.h check each member's C type
 * when the table is compiled: a table that would save a uint64_t as a u32
 * (or a pointer as a buffer, a count that is not a uint32_t, ...) must not
 * build, and the right one must.  Each case is a small translation unit
 * handed to the compiler that builds tern (TERN_CC, as the Makefile
 * passes it; and clang too, which builds the fuzzers, when it is there)
 * with -fsyntax-only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tmpdir_support.h"

#ifndef TERN_CC
#define TERN_CC "cc"
#endif
#ifndef TERN_INCLUDE_DIR
#define TERN_INCLUDE_DIR "include"
#endif

/* What every case shares: a structure with one member of each kind. */
static const char prologue[] =
	"#include <stdbool.h>\n"
	"#include <stddef.h>\n"
	"#include <stdint.h>\n"
	"#include \"tern/vmstate.h\"\n"
	"struct inner { uint32_t a; };\n"
	"extern const struct tern_vmstate_desc inner_desc;\n"
	"extern const struct tern_vmstate_hash hash;\n"
	"struct table;\n"
	"struct s {\n"
	"	uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;\n"
	"	int32_t i32; int64_t i64; bool flag;\n"
	"	uint8_t bytes[12]; char name[16]; struct inner in;\n"
	"	uint32_t words[4]; struct inner ins[3];\n"
	"	uint32_t n; uint64_t n64; uint8_t rx[32]; struct inner many[8];\n"
	"	uint32_t len; uint8_t *data; uint64_t *wide; struct inner *list;\n"
	"	struct table *table;\n"
	"};\n"
	"const struct tern_vmstate_field fields[] = {\n";
static const char epilogue[] = "	TERN_VMS_FIELD_END,\n};\n";

/* The compiler's status for the prologue, `body`, the epilogue; its
 * diagnostics in out (NUL-terminated). */
static int compile(const char *cc, const char *body, char *out, size_t outlen)
{
	char src[512], log[512], cmd[2048];
	snprintf(src, sizeof src, "%s/case.c", test_dir);
	snprintf(log, sizeof log, "%s/case.log", test_dir);
	FILE *f = fopen(src, "w");
	assert_non_null(f);
	fprintf(f, "%s%s%s", prologue, body, epilogue);
	fclose(f);
	snprintf(cmd, sizeof cmd, "%s -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only "
		 "-I'%s' '%s' >'%s' 2>&1", cc, TERN_INCLUDE_DIR, src, log);
	int status = system(cmd);
	assert_int_not_equal(status, -1);
	out[0] = '\0';
	f = fopen(log, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int have(const char *cc)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s --version >/dev/null 2>&1", cc);
	return system(cmd) == 0;
}

static void each_compiler(void (*fn)(const char *cc))
{
	fn(TERN_CC);
	if (strcmp(TERN_CC, "clang") != 0 && have("clang"))
		fn("clang");
}

static char diag[16384];

static void builds(const char *cc, const char *body)
{
	if (compile(cc, body, diag, sizeof diag) != 0)
		fail_msg("%s refused a table that is right:\n%s\n%s", cc, body, diag);
}

/* Refused, saying `why` (the static assertion's text) where given. */
static void refused(const char *cc, const char *body, const char *why)
{
	if (compile(cc, body, diag, sizeof diag) == 0)
		fail_msg("%s built a table that is wrong:\n%s", cc, body);
	if (why != NULL && strstr(diag, why) == NULL)
		fail_msg("%s refused\n%s\nbut did not say \"%s\":\n%s", cc, body, why, diag);
}

/* ------------------------------------------------------------ cases */

static void u32_on_u64_one(const char *cc)
{
	refused(cc, "	TERN_VMS_FIELD_U32(struct s, u64, 0),\n",
		"vmstate field u64: TERN_VMS_U32 on a member that is not a U32 (uint32_t)");
	builds(cc, "	TERN_VMS_FIELD_U32(struct s, u32, 0),\n");
	builds(cc, "	TERN_VMS_FIELD_U64(struct s, u64, 0),\n");
}

static void u32_on_u64(void **state)
{
	(void)state;
	each_compiler(u32_on_u64_one);
}

/* Every macro, on the member it is for. */
static void every_macro_builds_one(const char *cc)
{
	builds(cc, "	TERN_VMS_FIELD_U8(struct s, u8, 0),\n"
		   "	TERN_VMS_FIELD_U16(struct s, u16, 0),\n"
		   "	TERN_VMS_FIELD_U32_AS(\"wire-name\", struct s, u32, 2),\n"
		   "	TERN_VMS_FIELD_U64(struct s, u64, 0),\n"
		   "	TERN_VMS_FIELD_I32(struct s, i32, 0),\n"
		   "	TERN_VMS_FIELD_I64(struct s, i64, 0),\n"
		   "	TERN_VMS_FIELD_BOOL(struct s, flag, 0),\n"
		   "	TERN_VMS_FIELD_BUFFER(struct s, bytes, 0),\n"
		   "	TERN_VMS_FIELD_BUFFER(struct s, in, 0),\n"
		   "	TERN_VMS_FIELD_STRING(struct s, name, 0),\n"
		   "	TERN_VMS_FIELD_STRUCT(struct s, in, &inner_desc, 0),\n"
		   "	TERN_VMS_FIELD_ARRAY(struct s, words, U32, 0),\n"
		   "	TERN_VMS_FIELD_ARRAY_STRUCT(struct s, ins, &inner_desc, 0),\n"
		   "	TERN_VMS_FIELD_VARRAY(struct s, rx, n, U8, 0),\n"
		   "	TERN_VMS_FIELD_VARRAY_STRUCT(struct s, many, n, &inner_desc, 0),\n"
		   "	TERN_VMS_FIELD_VARRAY_PTR(struct s, data, len, U8, 4096, 0),\n"
		   "	TERN_VMS_FIELD_VARRAY_PTR(struct s, wide, len, U64, 16, 0),\n"
		   "	TERN_VMS_FIELD_VARRAY_PTR_STRUCT(struct s, list, len, &inner_desc, 9, 0),\n"
		   "	TERN_VMS_FIELD_HASH(struct s, table, &hash, 0),\n");
}

static void every_macro_builds(void **state)
{
	(void)state;
	each_compiler(every_macro_builds_one);
}

/* And each refuses the members it is not for. */
static void wrong_members_one(const char *cc)
{
	static const struct {
		const char *body, *why;
	} cases[] = {
		{ "TERN_VMS_FIELD_U64(struct s, u32, 0)", "TERN_VMS_U64 on a member" },
		{ "TERN_VMS_FIELD_U8(struct s, flag, 0)", "TERN_VMS_U8 on a member" },
		{ "TERN_VMS_FIELD_BOOL(struct s, u8, 0)", "TERN_VMS_BOOL on a member" },
		{ "TERN_VMS_FIELD_I32(struct s, u32, 0)", "TERN_VMS_I32 on a member" },
		{ "TERN_VMS_FIELD_U16(struct s, u32, 0)", "TERN_VMS_U16 on a member" },
		{ "TERN_VMS_FIELD_BUFFER(struct s, data, 0)", "a buffer is an array, struct" },
		{ "TERN_VMS_FIELD_BUFFER(struct s, u64, 0)", "a buffer is an array, struct" },
		{ "TERN_VMS_FIELD_STRING(struct s, bytes, 0)", "a string is a char array" },
		{ "TERN_VMS_FIELD_STRUCT(struct s, bytes, &inner_desc, 0)", "not a struct" },
		{ "TERN_VMS_FIELD_ARRAY(struct s, words, U64, 0)", "not an array of U64" },
		{ "TERN_VMS_FIELD_ARRAY(struct s, data, U8, 0)", "not an array of U8" },
		{ "TERN_VMS_FIELD_ARRAY_STRUCT(struct s, words, &inner_desc, 0)", NULL },
		{ "TERN_VMS_FIELD_VARRAY(struct s, rx, n64, U8, 0)",
		  "vmstate field rx: its count n64 is not a uint32_t" },
		{ "TERN_VMS_FIELD_VARRAY(struct s, words, n, U8, 0)", "not an array of U8" },
		{ "TERN_VMS_FIELD_VARRAY_STRUCT(struct s, many, n64, &inner_desc, 0)",
		  "its count n64 is not a uint32_t" },
		{ "TERN_VMS_FIELD_VARRAY_PTR(struct s, wide, len, U8, 16, 0)", "not a pointer to U8" },
		{ "TERN_VMS_FIELD_VARRAY_PTR(struct s, rx, len, U8, 16, 0)", "not a pointer to U8" },
		{ "TERN_VMS_FIELD_VARRAY_PTR(struct s, data, n64, U8, 16, 0)", "is not a uint32_t" },
		{ "TERN_VMS_FIELD_VARRAY_PTR_STRUCT(struct s, many, len, &inner_desc, 8, 0)",
		  "not a pointer to structs" },
		{ "TERN_VMS_FIELD_VARRAY_PTR_STRUCT(struct s, data, len, &inner_desc, 8, 0)",
		  "not a pointer to structs" },
		{ "TERN_VMS_FIELD_HASH(struct s, u64, &hash, 0)", "a hash table field is a pointer" },
		{ "TERN_VMS_FIELD_HASH(struct s, bytes, &hash, 0)", "a hash table field is a pointer" },
		{ "TERN_VMS_FIELD_U32(struct s, no_such_member, 0)", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char body[512];
		snprintf(body, sizeof body, "	%s,\n", cases[i].body);
		refused(cc, body, cases[i].why);
	}
}

static void wrong_members(void **state)
{
	(void)state;
	each_compiler(wrong_members_one);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(u32_on_u64),
		cmocka_unit_test(every_macro_builds),
		cmocka_unit_test(wrong_members),
	};
	return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
