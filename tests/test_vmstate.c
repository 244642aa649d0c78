/* vmstate: round trips, versions, subsections, and every malformed input
 * class refused without touching the object. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/vmstate.h"

struct point {
	int32_t x, y;
};

struct thing {
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	int64_t e;
	bool flag;
	char tag[8];
	uint32_t fixed[3];
	uint32_t npoints;
	struct point points[4];
	struct point origin;
	uint64_t added_in_v2;
	uint32_t extra; /* only in a subsection */
};

static const struct tern_vmstate_field point_fields[] = {
	{ .name = "x", .type = TERN_VMS_I32, .offset = offsetof(struct point, x) },
	{ .name = "y", .type = TERN_VMS_I32, .offset = offsetof(struct point, y) },
	{ 0 },
};

static const struct tern_vmstate_desc point_desc = {
	.name = "point", .size = sizeof(struct point), .version = 1, .min_version = 1,
	.fields = point_fields,
};

static bool extra_needed(const void *obj)
{
	return ((const struct thing *)obj)->extra != 0;
}

static const struct tern_vmstate_field extra_fields[] = {
	{ .name = "extra", .type = TERN_VMS_U32, .offset = offsetof(struct thing, extra) },
	{ 0 },
};

static const struct tern_vmstate_desc extra_desc = {
	.name = "thing/extra", .size = sizeof(struct thing), .version = 1, .min_version = 1,
	.fields = extra_fields,
};

static int thing_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct thing *t = obj;
	if (t->c == 0xdeadbeef)
		return tern_errorf(err, -EINVAL, "c may not be 0xdeadbeef");
	return 0;
}

static const struct tern_vmstate_field thing_fields[] = {
	{ .name = "a", .type = TERN_VMS_U8, .offset = offsetof(struct thing, a) },
	{ .name = "b", .type = TERN_VMS_U16, .offset = offsetof(struct thing, b) },
	{ .name = "c", .type = TERN_VMS_U32, .offset = offsetof(struct thing, c) },
	{ .name = "d", .type = TERN_VMS_U64, .offset = offsetof(struct thing, d) },
	{ .name = "e", .type = TERN_VMS_I64, .offset = offsetof(struct thing, e) },
	{ .name = "flag", .type = TERN_VMS_BOOL, .offset = offsetof(struct thing, flag) },
	{ .name = "tag", .type = TERN_VMS_BUFFER, .offset = offsetof(struct thing, tag), .size = 8 },
	{ .name = "fixed", .type = TERN_VMS_ARRAY, .offset = offsetof(struct thing, fixed),
	  .count = 3, .elem = TERN_VMS_U32 },
	{ .name = "points", .type = TERN_VMS_VARRAY, .offset = offsetof(struct thing, points),
	  .count = 4, .count_offset = offsetof(struct thing, npoints), .elem = TERN_VMS_STRUCT,
	  .size = sizeof(struct point), .sub = &point_desc },
	{ .name = "origin", .type = TERN_VMS_STRUCT, .offset = offsetof(struct thing, origin),
	  .size = sizeof(struct point), .sub = &point_desc },
	{ .name = "added_in_v2", .type = TERN_VMS_U64, .offset = offsetof(struct thing, added_in_v2),
	  .since = 2 },
	{ 0 },
};

static const struct tern_vmstate_subsection thing_subsections[] = {
	{ &extra_desc, extra_needed },
	{ 0 },
};

static const struct tern_vmstate_desc thing_v2 = {
	.name = "thing", .size = sizeof(struct thing), .version = 2, .min_version = 1,
	.fields = thing_fields, .subsections = thing_subsections, .post_load = thing_post_load,
};

/* The same description as an older tern had it: version 1, no subsection. */
static const struct tern_vmstate_desc thing_v1 = {
	.name = "thing", .size = sizeof(struct thing), .version = 1, .min_version = 1,
	.fields = thing_fields,
};

static struct thing sample(void)
{
	struct thing t = {
		.a = 0xa5, .b = 0xbeef, .c = 0x12345678, .d = 0x1122334455667788ULL, .e = -42,
		.flag = true, .tag = "tern", .fixed = { 1, 2, 3 }, .npoints = 2,
		.points = { { 1, -1 }, { 2, -2 } }, .origin = { 7, 8 }, .added_in_v2 = 99,
		.extra = 5,
	};
	return t;
}

static void round_trip(void **state)
{
	(void)state;
	struct thing t = sample(), u;
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_save(&thing_v2, &t, &b), 0);
	memset(&u, 0, sizeof u);
	struct tern_error err;
	assert_int_equal(tern_vmstate_load(&thing_v2, &u, b.data, b.len, &err), 0);
	assert_memory_equal(&t, &u, sizeof t);
	tern_buf_free(&b);

	t.extra = 0; /* subsection not needed: not saved, absent is fine */
	assert_int_equal(tern_vmstate_save(&thing_v2, &t, &b), 0);
	memset(&u, 0, sizeof u);
	assert_int_equal(tern_vmstate_load(&thing_v2, &u, b.data, b.len, &err), 0);
	assert_memory_equal(&t, &u, sizeof t);
	tern_buf_free(&b);
}

static void older_version_loads(void **state)
{
	(void)state;
	struct thing t = sample(), u;
	t.extra = 0;
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_save(&thing_v1, &t, &b), 0); /* no added_in_v2 */
	memset(&u, 0, sizeof u);
	u.added_in_v2 = 1234; /* a default the caller set */
	struct tern_error err;
	assert_int_equal(tern_vmstate_load(&thing_v2, &u, b.data, b.len, &err), 0);
	assert_int_equal(u.added_in_v2, 1234);
	assert_int_equal(u.d, t.d);
	tern_buf_free(&b);

	/* A newer stream does not load into an older tern. */
	t = sample();
	assert_int_equal(tern_vmstate_save(&thing_v2, &t, &b), 0);
	assert_int_equal(tern_vmstate_load(&thing_v1, &u, b.data, b.len, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "version 2"));
	tern_buf_free(&b);
}

/* Fails, with a message containing `words`, and leaves the object alone. */
static void expect_refused(const uint8_t *in, size_t len, int code, const char *words)
{
	struct thing u, before;
	memset(&u, 0x3c, sizeof u);
	before = u;
	struct tern_error err = { .msg = "" };
	int rc = tern_vmstate_load(&thing_v2, &u, in, len, &err);
	if (rc != code || strstr(err.msg, words) == NULL)
		fail_msg("got %d '%s', expected %d with '%s'", rc, err.msg, code, words);
	assert_memory_equal(&u, &before, sizeof u);
}

static size_t find(const struct tern_buf *b, const void *needle, size_t n)
{
	for (size_t i = 0; i + n <= b->len; i++)
		if (memcmp(b->data + i, needle, n) == 0)
			return i;
	fail_msg("needle not found");
	return 0;
}

static void malformed_refused(void **state)
{
	(void)state;
	struct thing t = sample();
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_save(&thing_v2, &t, &b), 0);
	uint8_t *m = malloc(b.len + 8);

	/* Every prefix is truncated. */
	for (size_t n = 0; n < b.len; n++)
		expect_refused(b.data, n, -EBADMSG, "ends inside");

	memcpy(m, b.data, b.len); /* trailing bytes */
	m[b.len] = 0;
	expect_refused(m, b.len + 1, -EBADMSG, "left over");

	memcpy(m, b.data, b.len); /* wrong name */
	m[1] = 'T';
	expect_refused(m, b.len, -EBADMSG, "expected state 'thing'");

	memcpy(m, b.data, b.len); /* version too new */
	m[6] = 3;
	expect_refused(m, b.len, -EPROTO, "version 3");
	memcpy(m, b.data, b.len); /* version too old */
	m[6] = 0;
	expect_refused(m, b.len, -EPROTO, "version 0");

	memcpy(m, b.data, b.len); /* a boolean that is neither 0 nor 1 */
	size_t flag_at = find(&b, "tern", 4) - 1;
	m[flag_at] = 2;
	expect_refused(m, b.len, -EBADMSG, "boolean");

	memcpy(m, b.data, b.len); /* more elements than fit */
	uint8_t count[10] = { 2, 0, 0, 0, 5, 'p', 'o', 'i', 'n', 't' };
	size_t count_at = find(&b, count, sizeof count);
	m[count_at] = 5;
	expect_refused(m, b.len, -EBADMSG, "at most 4 fit");
	m[count_at + 3] = 0xff; /* a hostile count */
	expect_refused(m, b.len, -EBADMSG, "at most 4 fit");

	memcpy(m, b.data, b.len); /* an unknown subsection */
	size_t sub_at = find(&b, "thing/extra", 11);
	m[sub_at + 6] = 'X';
	expect_refused(m, b.len, -EPROTO, "unknown subsection");

	memcpy(m, b.data, b.len); /* bad markers: the end, and a subsection's */
	m[b.len - 1] = 7;
	expect_refused(m, b.len, -EBADMSG, "bad marker 0x07");
	memcpy(m, b.data, b.len);
	m[sub_at - 2] = 9;
	expect_refused(m, b.len, -EBADMSG, "bad marker 0x09");

	/* Well formed but meaningless: post_load says no. */
	t.c = 0xdeadbeef;
	tern_buf_free(&b);
	assert_int_equal(tern_vmstate_save(&thing_v2, &t, &b), 0);
	expect_refused(b.data, b.len, -EINVAL, "deadbeef");
	free(m);
	tern_buf_free(&b);
}

/* Elements behind a pointer: a list of records with a nested list each. */
struct item {
	uint32_t id;
	uint32_t nbytes;
	uint8_t *bytes;
};

struct items {
	uint32_t count;
	struct item *item;
};

static const struct tern_vmstate_field item_fields[] = {
	{ .name = "id", .type = TERN_VMS_U32, .offset = offsetof(struct item, id) },
	{ .name = "bytes", .type = TERN_VMS_VARRAY_PTR, .offset = offsetof(struct item, bytes),
	  .count = 64, .count_offset = offsetof(struct item, nbytes), .elem = TERN_VMS_U8 },
	{ 0 },
};

static const struct tern_vmstate_desc item_desc = {
	.name = "item", .size = sizeof(struct item), .version = 1, .min_version = 1,
	.fields = item_fields,
};

static const struct tern_vmstate_field items_fields[] = {
	{ .name = "items", .type = TERN_VMS_VARRAY_PTR, .offset = offsetof(struct items, item),
	  .count = 8, .count_offset = offsetof(struct items, count), .elem = TERN_VMS_STRUCT,
	  .size = sizeof(struct item), .sub = &item_desc },
	{ 0 },
};

static const struct tern_vmstate_desc items_desc = {
	.name = "items", .size = sizeof(struct items), .version = 1, .min_version = 1,
	.fields = items_fields,
};

static void items_free(struct items *it)
{
	for (uint32_t i = 0; it->item != NULL && i < it->count; i++)
		free(it->item[i].bytes);
	free(it->item);
}

static void arrays_behind_pointers(void **state)
{
	(void)state;
	uint8_t a[] = { 1, 2, 3 }, b[] = { 9 };
	struct item list[] = { { 7, 3, a }, { 8, 1, b }, { 9, 0, NULL } };
	struct items src = { 3, list }, dst = { 0 };
	struct tern_buf out = { 0 };
	struct tern_error err;
	assert_int_equal(tern_vmstate_save(&items_desc, &src, &out), 0);
	assert_int_equal(tern_vmstate_load(&items_desc, &dst, out.data, out.len, &err), 0);
	assert_int_equal(dst.count, 3);
	assert_int_equal(dst.item[0].id, 7);
	assert_memory_equal(dst.item[0].bytes, a, 3);
	assert_int_equal(dst.item[1].bytes[0], 9);
	assert_int_equal(dst.item[2].nbytes, 0);
	items_free(&dst);
	/* Every truncation is refused and frees what it had made (ASan). */
	for (size_t cut = 0; cut < out.len; cut++) {
		struct items t = { 0 };
		assert_true(tern_vmstate_load(&items_desc, &t, out.data, cut, &err) < 0);
		assert_null(t.item);
	}
	/* More than the field allows, or than the input could hold. */
	struct items big = { 9, list };
	struct tern_buf refused = { 0 };
	assert_int_equal(tern_vmstate_save(&items_desc, &big, &refused), -EOVERFLOW);
	tern_buf_free(&refused);
	size_t at = 1 + strlen("items") + 4; /* the count follows the header */
	out.data[at] = 7; /* seven items claimed, three there */
	struct items t = { 0 };
	assert_int_equal(tern_vmstate_load(&items_desc, &t, out.data, out.len, &err), -EBADMSG);
	assert_null(t.item);
	out.data[at] = 0xff; /* and 255: past the field's 8 */
	assert_int_equal(tern_vmstate_load(&items_desc, &t, out.data, out.len, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "at most 8"));
	tern_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(older_version_loads),
		cmocka_unit_test(malformed_refused),
		cmocka_unit_test(arrays_behind_pointers),
	};
	return cmocka_run_group_tests_name("vmstate", tests, NULL, NULL);
}
