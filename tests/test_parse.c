/* Sizes and numbers as people write them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tern/parse.h"

static void sizes_with_suffixes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(tern_parse_size("512", 20, &v, NULL), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(tern_parse_size("512", 0, &v, NULL), 0);
	assert_int_equal(v, 512);
	assert_int_equal(tern_parse_size("4G", 20, &v, NULL), 0);
	assert_int_equal(v, 4ULL << 30);
	assert_int_equal(tern_parse_size("64k", 20, &v, NULL), 0);
	assert_int_equal(v, 64ULL << 10);
	assert_int_equal(tern_parse_size("2MiB", 0, &v, NULL), 0);
	assert_int_equal(v, 2ULL << 20);
	assert_int_equal(tern_parse_size("1T", 0, &v, NULL), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(tern_parse_size("7b", 20, &v, NULL), 0);
	assert_int_equal(v, 7);
}

static void bad_sizes_are_explained(void **state)
{
	(void)state;
	uint64_t v = 99;
	struct tern_error err;
	assert_int_equal(tern_parse_size("", 20, &v, &err), -EINVAL);
	assert_int_equal(tern_parse_size("G", 20, &v, &err), -EINVAL);
	assert_int_equal(tern_parse_size("12X", 20, &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "unknown suffix"));
	assert_int_equal(tern_parse_size("-1", 20, &v, &err), -EINVAL);
	assert_int_equal(tern_parse_size("99999999999999999999", 0, &v, &err), -ERANGE);
	assert_int_equal(tern_parse_size("17179869184T", 0, &v, &err), -ERANGE);
	assert_int_equal(v, 99); /* untouched on failure */
}

static void integers(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(tern_parse_u64("0", &v, NULL), 0);
	assert_int_equal(v, 0);
	assert_int_equal(tern_parse_u64("18446744073709551615", &v, NULL), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(tern_parse_u64("0x1F", &v, NULL), 0);
	assert_int_equal(v, 31);
	assert_int_equal(tern_parse_u64("18446744073709551616", &v, NULL), -ERANGE);
	assert_int_equal(tern_parse_u64("0x", &v, NULL), -EINVAL);
	assert_int_equal(tern_parse_u64("12a", &v, NULL), -EINVAL);
	assert_int_equal(tern_parse_u64("", &v, NULL), -EINVAL);
	assert_int_equal(tern_parse_u64(" 1", &v, NULL), -EINVAL);
}

static void error_prefix_keeps_message(void **state)
{
	(void)state;
	struct tern_error err;
	assert_int_equal(tern_errorf(&err, -ENOENT, "no file %s", "x"), -ENOENT);
	tern_error_prefix(&err, "kernel %d", 7);
	assert_string_equal(err.msg, "kernel 7: no file x");
	char long_msg[TERN_ERROR_MAX + 50];
	memset(long_msg, 'a', sizeof long_msg - 1);
	long_msg[sizeof long_msg - 1] = '\0';
	tern_errorf(&err, -1, "%s", long_msg);
	tern_error_prefix(&err, "p");
	assert_int_equal(strlen(err.msg), TERN_ERROR_MAX - 1);
	assert_memory_equal(err.msg, "p: aaa", 6);
	assert_int_equal(tern_errorf(NULL, -EIO, "ignored"), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes_with_suffixes),
		cmocka_unit_test(bad_sizes_are_explained),
		cmocka_unit_test(integers),
		cmocka_unit_test(error_prefix_keeps_message),
	};
	return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
