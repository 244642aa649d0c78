/* Splitting a QMP byte stream into JSON texts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qmp/qmp_framer.h"

/* Texts (joined by '|'; "<big>" for one too large, "<deep>" for one nested
 * too deeply) from what f yields now, appended to *out. */
static void drain(struct qmp_framer *f, char **out, size_t *used, size_t *cap)
{
	const char *text;
	size_t len;
	enum qmp_frame r;
	while ((r = qmp_framer_next(f, &text, &len)) != QMP_FRAME_NONE) {
		if (r != QMP_FRAME_TEXT) {
			text = r == QMP_FRAME_TOO_DEEP ? "<deep>" : "<big>";
			len = strlen(text);
		}
		if (*used + len + 2 > *cap) {
			*cap = (*used + len + 2) * 2;
			*out = realloc(*out, *cap);
			assert_non_null(*out);
		}
		memcpy(*out + *used, text, len);
		*used += len;
		(*out)[(*used)++] = '|';
		(*out)[*used] = '\0';
	}
}

/* Feed `input` in pieces of `chunk` bytes; what drain makes of it. */
static char *frame_all(const char *input, size_t chunk)
{
	struct qmp_framer f;
	qmp_framer_init(&f);
	size_t cap = 64, used = 0;
	char *out = calloc(1, cap);
	size_t n = strlen(input);
	for (size_t at = 0; at < n; at += chunk) {
		size_t len = n - at < chunk ? n - at : chunk;
		assert_int_equal(qmp_framer_push(&f, input + at, len), 0);
		drain(&f, &out, &used, &cap);
	}
	qmp_framer_destroy(&f);
	return out;
}

static void check(const char *input, const char *expect)
{
	for (size_t chunk = 1; chunk <= strlen(input) + 1; chunk++) {
		char *got = frame_all(input, chunk);
		if (strcmp(got, expect) != 0)
			fail_msg("chunk %zu: input '%s' framed as '%s', expected '%s'", chunk, input,
				 got, expect);
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
	char *got = frame_all("{\"execute\":", 3);
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
	char *got = frame_all(input, 65536);
	assert_string_equal(got, "<big>|{\"ok\":1}|"); /* resynchronised after it */
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
	char *got = frame_all(input, 100);
	assert_string_equal(got, "<deep>|{}|");
	free(got);
	free(input);
}

/* ------------------------------------------------------------ live update */

/* A text past a limit that never closes ends with its line: what follows
 * is framed again (the probe's request nested deeper than 1024 that
 * swallowed every later command). */
static void unclosed_text_ends_with_its_line(void **state)
{
	(void)state;
	size_t depth = QMP_MAX_NESTING + 5;
	char *input = malloc(depth + 64);
	memset(input, '[', depth);
	strcpy(input + depth, "\r\n{\"execute\":\"x\"}\n");
	static const size_t chunks[] = { 1, 7, 1000, 1 << 20 };
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		char *got = frame_all(input, chunks[i]);
		if (strcmp(got, "<deep>|{\"execute\":\"x\"}|") != 0)
			fail_msg("chunk %zu: '%.100s'", chunks[i], got);
		free(got);
	}
	/* Still in a string when the limit passed: a raw line end cannot be
	 * inside a JSON string, so it ends the text too. */
	strcpy(input + depth, "\"a[{\n{\"execute\":\"y\"}");
	char *got = frame_all(input, 64);
	assert_string_equal(got, "<deep>|{\"execute\":\"y\"}|");
	free(got);
	free(input);
	size_t n = QMP_MAX_MESSAGE + 100;
	input = malloc(n + 64);
	memcpy(input, "{\"execute\":\"", 12);
	memset(input + 12, 'a', n - 12);
	strcpy(input + n, "\n{\"execute\":\"z\"}");
	got = frame_all(input, 65536);
	assert_string_equal(got, "<big>|{\"execute\":\"z\"}|");
	free(got);
	free(input);
}

/* Cut the stream at `cut`, carry the framer across as an update does, and
 * frame the rest: the same texts as one framer that saw it all. */
static void carried_at(const char *input, size_t n, size_t cut)
{
	struct qmp_framer whole, before, after;
	qmp_framer_init(&whole);
	qmp_framer_init(&before);
	size_t cap_w = 64, cap_c = 64, used_w = 0, used_c = 0;
	char *want = calloc(1, cap_w), *got = calloc(1, cap_c);
	assert_int_equal(qmp_framer_push(&whole, input, n), 0);
	drain(&whole, &want, &used_w, &cap_w);
	assert_int_equal(qmp_framer_push(&before, input, cut), 0);
	drain(&before, &got, &used_c, &cap_c);
	/* Through its wire form, as the update carries it. */
	struct qmp_framer_state st, back = { 0 };
	struct tern_buf saved = { 0 };
	struct tern_error err;
	assert_int_equal(qmp_framer_get_state(&before, &st), 0);
	assert_int_equal(tern_vmstate_save(&qmp_framer_state_desc, &st, &saved), 0);
	free(st.unread);
	qmp_framer_destroy(&before);
	assert_int_equal(tern_vmstate_load(&qmp_framer_state_desc, &back, saved.data, saved.len,
					   &err), 0);
	assert_int_equal(qmp_framer_put_state(&after, &back), 0);
	free(back.unread);
	assert_int_equal(qmp_framer_push(&after, input + cut, n - cut), 0);
	drain(&after, &got, &used_c, &cap_c);
	if (strcmp(want, got) != 0)
		fail_msg("cut at %zu: '%.200s' against '%.200s'", cut, got, want);
	qmp_framer_destroy(&whole);
	qmp_framer_destroy(&after);
	tern_buf_free(&saved);
	free(want);
	free(got);
}

static void carried_across_an_update(void **state)
{
	(void)state;
	static const char *const streams[] = {
		"{\"execute\": \"a\", \"arguments\": {\"s\": \"x}\\\"]y\"}} "
		"[1, [2, {}]]{\"execute\":\"b\"}\r\n",
		"bare words\tand {\"execute\": \"c\"} more ",
		"{\"id\": \"\\\\\", \"execute\": \"d\"}   ",
	};
	for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
		size_t n = strlen(streams[i]);
		for (size_t cut = 0; cut <= n; cut++)
			carried_at(streams[i], n, cut);
	}
	/* Inside a text being skipped (too large), in a string and out of one. */
	size_t n = QMP_MAX_MESSAGE + 4096;
	char *big = malloc(n + 32);
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[1] = '"';
	big[QMP_MAX_MESSAGE + 100] = '"';
	big[QMP_MAX_MESSAGE + 200] = '}';
	strcpy(big + n, "{\"execute\": \"e\"}");
	n += strlen(big + n);
	static const size_t cuts[] = { 10, QMP_MAX_MESSAGE + 50, QMP_MAX_MESSAGE + 150,
				       QMP_MAX_MESSAGE + 300 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
		carried_at(big, n, cuts[i]);
	free(big);
	/* Inside one nested too deeply that ends with its line. */
	size_t depth = QMP_MAX_NESTING + 10;
	char *deep = malloc(depth + 64);
	assert_non_null(deep);
	memset(deep, '[', depth);
	strcpy(deep + depth, "\"s\n{\"execute\": \"f\"}");
	n = strlen(deep);
	static const size_t deep_cuts[] = { QMP_MAX_NESTING, QMP_MAX_NESTING + 1,
					    QMP_MAX_NESTING + 5, QMP_MAX_NESTING + 11,
					    QMP_MAX_NESTING + 12, QMP_MAX_NESTING + 13 };
	for (size_t i = 0; i < sizeof deep_cuts / sizeof deep_cuts[0]; i++)
		carried_at(deep, n, deep_cuts[i]);
	free(deep);
}

/* A saved framer as its vmstate object: flags, depth, n, the bytes. */
static struct tern_buf saved_framer(uint8_t d, uint8_t b, uint8_t s, uint8_t e, uint32_t depth,
				    uint32_t n, const char *bytes)
{
	struct tern_buf buf = { 0 };
	tern_buf_u8(&buf, 10);
	tern_buf_put(&buf, "qmp-framer", 10);
	tern_buf_u32(&buf, 1);
	tern_buf_u8(&buf, d);
	tern_buf_u8(&buf, b);
	tern_buf_u8(&buf, s);
	tern_buf_u8(&buf, e);
	tern_buf_u32(&buf, depth);
	tern_buf_u32(&buf, n);
	tern_buf_put(&buf, bytes, strlen(bytes));
	tern_buf_u8(&buf, 0);
	return buf;
}

/* Load a saved framer as an update does: decode, then rebuild. */
static int load_saved(struct qmp_framer *f, const uint8_t *data, size_t len)
{
	struct qmp_framer_state st = { 0 };
	struct tern_error err;
	int rc = tern_vmstate_load(&qmp_framer_state_desc, &st, data, len, &err);
	if (rc == 0)
		rc = qmp_framer_put_state(f, &st);
	free(st.unread);
	return rc;
}

static void hostile_saved_framers_refused(void **state)
{
	(void)state;
	const struct {
		uint8_t d, b, s, e;
		uint32_t depth, n;
		const char *bytes;
	} bad[] = {
		{ 0, 0, 0, 0, 0, 2, "{}" },            /* a whole request left unread */
		{ 0, 0, 0, 0, 0, 4, "ab c" },          /* so is a bare word before a blank */
		{ 0, 0, 0, 0, 0, 9, "{" },             /* fewer bytes than it claims */
		{ 0, 0, 0, 0, 0, QMP_MAX_MESSAGE + 1, "" },
		{ 0, 1, 0, 0, 0, 1, "{" },             /* flags belong to discarding only */
		{ 0, 0, 0, 0, 3, 1, "{" },
		{ 2, 0, 0, 0, 0, 0, "" },
		{ 0, 0, 7, 0, 0, 0, "" },
		{ 1, 1, 0, 0, 0, 0, "" },              /* bracketed, closed already */
		{ 1, 0, 1, 0, 0, 0, "" },              /* a bare word has no strings */
		{ 1, 1, 0, 1, 1, 0, "" },              /* an escape outside a string */
		{ 1, 1, 0, 0, QMP_SKIP_MAX_DEPTH + 1, 0, "" },
		{ 1, 1, 0, 0, 1, 1, "x" },             /* skipped bytes are not kept */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tern_buf buf = saved_framer(bad[i].d, bad[i].b, bad[i].s, bad[i].e,
						   bad[i].depth, bad[i].n, bad[i].bytes);
		struct qmp_framer f;
		memset(&f, 0x5a, sizeof f);
		if (load_saved(&f, buf.data, buf.len) != -EBADMSG)
			fail_msg("saved framer %zu was taken", i);
		assert_int_equal(f.len, (size_t)0x5a5a5a5a5a5a5a5aULL); /* untouched */
		tern_buf_free(&buf);
	}
	struct tern_buf good = saved_framer(0, 0, 0, 0, 0, 3, "{\"a");
	struct qmp_framer f;
	assert_int_equal(load_saved(&f, good.data, good.len), 0);
	qmp_framer_destroy(&f);
	tern_buf_free(&good);
	for (size_t cut = 0; cut < 27; cut++) { /* every truncation of a good one */
		struct tern_buf buf = saved_framer(0, 0, 0, 0, 0, 3, "{\"a");
		assert_int_equal(load_saved(&f, buf.data, cut), -EBADMSG);
		tern_buf_free(&buf);
	}
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
		cmocka_unit_test(unclosed_text_ends_with_its_line),
		cmocka_unit_test(carried_across_an_update),
		cmocka_unit_test(hostile_saved_framers_refused),
	};
	return cmocka_run_group_tests_name("qmp_framer", tests, NULL, NULL);
}
