/* Splitting a QMP byte stream into JSON texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../vmm/qmp_framer.h"

/* Feed `input` in pieces of `chunk` bytes; collect texts joined by '|'. */
static char *frame_all(const char *input, size_t chunk, int *too_large)
{
	struct qmp_framer f;
	qmp_framer_init(&f);
	size_t cap = strlen(input) * 2 + 64, used = 0;
	char *out = calloc(1, cap);
	*too_large = 0;
	size_t n = strlen(input);
	for (size_t at = 0; at < n; at += chunk) {
		size_t len = n - at < chunk ? n - at : chunk;
		assert_int_equal(qmp_framer_push(&f, input + at, len), 0);
		const char *text;
		size_t tlen;
		enum qmp_frame r;
		while ((r = qmp_framer_next(&f, &text, &tlen)) != QMP_FRAME_NONE) {
			if (r == QMP_FRAME_TOO_LARGE) {
				(*too_large)++;
				continue;
			}
			if (used + tlen + 2 > cap) {
				cap = (used + tlen + 2) * 2;
				out = realloc(out, cap);
			}
			memcpy(out + used, text, tlen);
			used += tlen;
			out[used++] = '|';
			out[used] = '\0';
		}
	}
	qmp_framer_destroy(&f);
	return out;
}

static void check(const char *input, const char *expect)
{
	for (size_t chunk = 1; chunk <= strlen(input) + 1; chunk++) {
		int big;
		char *got = frame_all(input, chunk, &big);
		if (strcmp(got, expect) != 0)
			fail_msg("chunk %zu: input '%s' framed as '%s', expected '%s'", chunk, input,
				 got, expect);
		assert_int_equal(big, 0);
		free(got);
	}
}

static void objects_and_arrays(void **state)
{
	(void)state;
	check("{\"execute\":\"stop\"}", "{\"execute\":\"stop\"}|");
	check("  {\"a\":1}\r\n{\"b\":[1,{\"c\":2}]}\n", "{\"a\":1}|{\"b\":[1,{\"c\":2}]}|");
	check("[1,2]{}", "[1,2]|{}|");
}

static void brackets_inside_strings(void **state)
{
	(void)state;
	check("{\"a\":\"}{][\"}", "{\"a\":\"}{][\"}|");
	check("{\"a\":\"\\\"}\"}", "{\"a\":\"\\\"}\"}|"); /* escaped quote */
	check("{\"a\":\"\\\\\"}{}", "{\"a\":\"\\\\\"}|{}|"); /* escaped backslash */
}

static void garbage_is_its_own_text(void **state)
{
	(void)state;
	check("garbage\n{\"x\":1}", "garbage|{\"x\":1}|");
	check("abc{\"x\":1}", "abc|{\"x\":1}|");
	check("} 42 ", "}|42|");
}

static void incomplete_text_waits(void **state)
{
	(void)state;
	int big;
	char *got = frame_all("{\"execute\":", 3, &big);
	assert_string_equal(got, "");
	free(got);
}

static void oversized_text_skipped_once(void **state)
{
	(void)state;
	size_t n = QMP_MAX_MESSAGE + 100;
	char *input = malloc(n + 32);
	input[0] = '{';
	input[1] = '"';
	memset(input + 2, 'a', n - 4);
	memcpy(input + n - 2, "\"}", 2);
	strcpy(input + n, "{\"ok\":1}");
	int big;
	char *got = frame_all(input, 65536, &big);
	assert_int_equal(big, 1);
	assert_string_equal(got, "{\"ok\":1}|"); /* resynchronised after it */
	free(got);
	free(input);
}

static void deep_nesting_skipped(void **state)
{
	(void)state;
	size_t depth = QMP_MAX_NESTING + 5;
	char *input = malloc(2 * depth + 16);
	memset(input, '[', depth);
	memset(input + depth, ']', depth);
	strcpy(input + 2 * depth, "{}");
	int big;
	char *got = frame_all(input, 100, &big);
	assert_int_equal(big, 1);
	assert_string_equal(got, "{}|");
	free(got);
	free(input);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(objects_and_arrays),
		cmocka_unit_test(brackets_inside_strings),
		cmocka_unit_test(garbage_is_its_own_text),
		cmocka_unit_test(incomplete_text_waits),
		cmocka_unit_test(oversized_text_skipped_once),
		cmocka_unit_test(deep_nesting_skipped),
	};
	return cmocka_run_group_tests_name("qmp_framer", tests, NULL, NULL);
}
