/* The fd store: random operations against a reference model, the vmstate
 * hash-table round trip, and malformed saved tables refused whole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "../harness/rng.h"
#include "tern/fdstore.h"
#include "tern/vmstate.h"

/* ------------------------------------------------------------ model */

#define MODEL_MAX 4096

struct model_entry {
	char name[TERN_FDSTORE_NAME_MAX];
	uint32_t id;
	int fd;
	int live;
};

struct model {
	struct model_entry e[MODEL_MAX];
	unsigned n;
};

static struct model_entry *model_find(struct model *m, const char *name, uint32_t id)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->e[i].live && m->e[i].id == id && strcmp(m->e[i].name, name) == 0)
			return &m->e[i];
	return NULL;
}

static unsigned model_count(const struct model *m)
{
	unsigned c = 0;
	for (unsigned i = 0; i < m->n; i++)
		c += m->e[i].live;
	return c;
}

/* Names that collide in prefix and length, as real ones do, and random ones. */
static void random_name(uint64_t *rng, char *out)
{
	static const char *const pool[] = {
		"ram/memfd", "qmp/client", "qmp/listen", "serial/client", "ioeventfd-bank/doorbell",
		"vfio_container_for_group", "vhost-net/tap", "a", "ab",
		"a-name-of-forty-seven-bytes-right-at-the-limit!",
	};
	uint64_t r = harness_splitmix(rng);
	if (r % 4 != 0) {
		strcpy(out, pool[(r >> 8) % (sizeof pool / sizeof pool[0])]);
		return;
	}
	size_t len = 1 + (r >> 16) % (TERN_FDSTORE_NAME_MAX - 1);
	for (size_t i = 0; i < len; i++)
		out[i] = (char)('!' + harness_splitmix(rng) % 90);
	out[len] = '\0';
}

struct walk_check {
	struct model *m;
	unsigned seen;
	int bad;
};

static int check_entry(void *ctx, const char *name, uint32_t id, int fd)
{
	struct walk_check *w = ctx;
	struct model_entry *e = model_find(w->m, name, id);
	if (e == NULL || e->fd != fd)
		w->bad++;
	w->seen++;
	return 0;
}

/* Both lookup kernels where the CPU has them, each op on either: they must
 * agree on every answer, and on the hashes a store keeps. */
static void random_operations(void **state)
{
	(void)state;
	const char *start = tern_fdstore_kernel();
	int both = tern_fdstore_use_kernel("avx512") == 0;
	if (!both)
		print_message("fd store: no AVX-512 here; the SSE2 kernel alone\n");
	struct model *m = calloc(1, sizeof *m);
	struct tern_fdstore *s = tern_fdstore_new();
	assert_non_null(m);
	assert_non_null(s);
	uint64_t rng = 42;
	char name[TERN_FDSTORE_NAME_MAX];
	for (unsigned op = 0; op < 200000; op++) {
		if (both)
			assert_int_equal(tern_fdstore_use_kernel(op % 3 ? "avx512" : "sse2"), 0);
		random_name(&rng, name);
		uint32_t id = (uint32_t)(harness_splitmix(&rng) % 64);
		struct model_entry *e = model_find(m, name, id);
		unsigned what = (unsigned)(harness_splitmix(&rng) % 10);
		if (what < 4) { /* add */
			int fd = (int)(harness_splitmix(&rng) % 100000);
			int rc = tern_fdstore_add(s, name, id, fd, NULL);
			if (e != NULL) {
				assert_int_equal(rc, -EEXIST);
			} else if (m->n < MODEL_MAX) {
				assert_int_equal(rc, 0);
				struct model_entry *n = &m->e[m->n++];
				strcpy(n->name, name);
				n->id = id;
				n->fd = fd;
				n->live = 1;
			} else {
				tern_fdstore_remove(s, name, id);
			}
		} else if (what < 7) { /* find */
			assert_int_equal(tern_fdstore_find(s, name, id), e ? e->fd : -ENOENT);
		} else if (what < 9) { /* remove */
			assert_int_equal(tern_fdstore_remove(s, name, id), e ? e->fd : -ENOENT);
			if (e != NULL)
				e->live = 0;
		} else { /* update */
			int fd = (int)(harness_splitmix(&rng) % 100000);
			assert_int_equal(tern_fdstore_update(s, name, id, fd), e ? e->fd : -ENOENT);
			if (e != NULL)
				e->fd = fd;
		}
		if (op % 1000 == 0) {
			/* Compact the model so it never fills. */
			unsigned k = 0;
			for (unsigned i = 0; i < m->n; i++)
				if (m->e[i].live)
					m->e[k++] = m->e[i];
			m->n = k;
			assert_int_equal(tern_fdstore_count(s), model_count(m));
			struct walk_check w = { .m = m };
			assert_int_equal(tern_fdstore_walk(s, check_entry, &w), 0);
			assert_int_equal(w.bad, 0);
			assert_int_equal(w.seen, model_count(m));
			for (unsigned i = 0; i < m->n; i++)
				assert_int_equal(tern_fdstore_find(s, m->e[i].name, m->e[i].id),
						 m->e[i].fd);
		}
	}
	tern_fdstore_free(s);
	free(m);
	assert_int_equal(tern_fdstore_use_kernel(start), 0);
}

static void kernels_named(void **state)
{
	(void)state;
	const char *start = tern_fdstore_kernel();
	assert_int_equal(tern_fdstore_use_kernel("sse2"), 0);
	assert_string_equal(tern_fdstore_kernel(), "sse2");
	assert_int_equal(tern_fdstore_use_kernel("avx2"), -ENOENT);
	int rc = tern_fdstore_use_kernel("avx512");
	assert_true(rc == 0 || rc == -ENOTSUP);
	assert_string_equal(tern_fdstore_kernel(), rc == 0 ? "avx512" : "sse2");
	assert_int_equal(tern_fdstore_use_kernel(start), 0);
}

static void names_and_fds_checked(void **state)
{
	(void)state;
	struct tern_fdstore *s = tern_fdstore_new();
	struct tern_error err;
	char longest[TERN_FDSTORE_NAME_MAX], too_long[TERN_FDSTORE_NAME_MAX + 1];
	memset(longest, 'x', sizeof longest - 1);
	longest[sizeof longest - 1] = '\0';
	memset(too_long, 'x', sizeof too_long - 1);
	too_long[sizeof too_long - 1] = '\0';
	assert_int_equal(tern_fdstore_add(s, longest, 1, 3, &err), 0);
	assert_int_equal(tern_fdstore_find(s, longest, 1), 3);
	assert_int_equal(tern_fdstore_add(s, too_long, 1, 3, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "1 to 47 bytes"));
	assert_int_equal(tern_fdstore_add(s, "", 1, 3, &err), -EINVAL);
	assert_int_equal(tern_fdstore_add(s, "x", 1, -1, &err), -EINVAL);
	assert_int_equal(tern_fdstore_find(s, too_long, 1), -ENOENT);
	assert_int_equal(tern_fdstore_find(s, longest, 2), -ENOENT);
	/* Grows through many sizes and finds everything after. */
	char name[32];
	for (uint32_t i = 0; i < 100000; i++) {
		snprintf(name, sizeof name, "dev%u/fd", i % 97);
		assert_int_equal(tern_fdstore_add(s, name, i, (int)i, NULL), 0);
	}
	for (uint32_t i = 0; i < 100000; i++) {
		snprintf(name, sizeof name, "dev%u/fd", i % 97);
		assert_int_equal(tern_fdstore_find(s, name, i), (int)i);
	}
	assert_int_equal(tern_fdstore_count(s), 100001);
	tern_fdstore_free(s);
}

/* ------------------------------------------------------------ vmstate */

struct holder {
	char label[16];
	struct tern_fdstore *fds;
};

static const struct tern_vmstate_field holder_fields[] = {
	{ .name = "label", .type = TERN_VMS_STRING, .offset = offsetof(struct holder, label),
	  .size = 16 },
	{ .name = "fds", .type = TERN_VMS_HASH, .offset = offsetof(struct holder, fds),
	  .hash = &tern_fdstore_hash },
	{ 0 },
};

static const struct tern_vmstate_desc holder_desc = {
	.name = "holder",
	.size = sizeof(struct holder),
	.version = 1,
	.min_version = 1,
	.fields = holder_fields,
};

static int copy_entry(void *ctx, const char *name, uint32_t id, int fd)
{
	return tern_fdstore_find(ctx, name, id) == fd ? 0 : 1;
}

static void round_trip(void **state)
{
	(void)state;
	struct holder h = { .label = "cpr", .fds = tern_fdstore_new() };
	char name[40];
	for (uint32_t i = 0; i < 7530; i++) {
		snprintf(name, sizeof name, "ioeventfd-bank/doorbell");
		assert_int_equal(tern_fdstore_add(h.fds, name, i, (int)(i + 10), NULL), 0);
	}
	assert_int_equal(tern_fdstore_add(h.fds, "ram/memfd", 0, 5, NULL), 0);
	struct tern_buf b = { 0 };
	assert_int_equal(tern_vmstate_save(&holder_desc, &h, &b), 0);

	struct tern_fdstore *before = tern_fdstore_new();
	tern_fdstore_add(before, "old", 0, 1, NULL);
	struct holder g = { .label = "x", .fds = before };
	struct tern_error err;
	assert_int_equal(tern_vmstate_load(&holder_desc, &g, b.data, b.len, &err), 0);
	assert_string_equal(g.label, "cpr");
	assert_ptr_not_equal(g.fds, before); /* a new table took the old one's place */
	assert_int_equal(tern_fdstore_count(g.fds), 7531);
	assert_int_equal(tern_fdstore_walk(h.fds, copy_entry, g.fds), 0);
	assert_int_equal(tern_fdstore_walk(g.fds, copy_entry, h.fds), 0);

	/* An empty store and a NULL one both save as zero entries. */
	struct holder e = { .label = "", .fds = NULL };
	struct tern_buf eb = { 0 };
	assert_int_equal(tern_vmstate_save(&holder_desc, &e, &eb), 0);
	assert_int_equal(tern_vmstate_load(&holder_desc, &g, eb.data, eb.len, &err), 0);
	assert_int_equal(tern_fdstore_count(g.fds), 0);
	tern_buf_free(&eb);
	tern_buf_free(&b);
	tern_fdstore_free(h.fds);
	tern_fdstore_free(g.fds);
}

/* Hand-built saved tables, so every field can be made wrong. */
static void put_object_header(struct tern_buf *b, const char *name)
{
	tern_buf_u8(b, (uint8_t)strlen(name));
	tern_buf_put(b, name, strlen(name));
	tern_buf_u32(b, 1);
}

static void put_entry_name_len(struct tern_buf *b, const char *name, size_t name_len,
			       uint32_t id, int32_t fd)
{
	put_object_header(b, "fd-key");
	tern_buf_u8(b, (uint8_t)name_len);
	tern_buf_put(b, name, name_len);
	tern_buf_u32(b, id);
	tern_buf_u8(b, 0);
	put_object_header(b, "fd");
	tern_buf_u32(b, (uint32_t)fd);
	tern_buf_u8(b, 0);
}

static void put_entry(struct tern_buf *b, const char *name, uint32_t id, int32_t fd)
{
	put_entry_name_len(b, name, strlen(name), id, fd);
}

static void put_holder_start(struct tern_buf *b, uint32_t count)
{
	put_object_header(b, "holder");
	tern_buf_u8(b, 3);
	tern_buf_put(b, "cpr", 3);
	tern_buf_u32(b, count);
}

/* Refused with `code` and `needle`; the holder keeps its old store whole. */
static void expect_refused(const struct tern_buf *b, int code, const char *needle)
{
	struct tern_fdstore *old = tern_fdstore_new();
	tern_fdstore_add(old, "kept", 7, 70, NULL);
	struct holder h = { .label = "old", .fds = old };
	struct tern_error err = { .msg = "" };
	int rc = tern_vmstate_load(&holder_desc, &h, b->data, b->len, &err);
	if (rc != code || strstr(err.msg, needle) == NULL)
		fail_msg("got %d '%s', expected %d with '%s'", rc, err.msg, code, needle);
	assert_ptr_equal(h.fds, old);
	assert_string_equal(h.label, "old");
	assert_int_equal(tern_fdstore_count(old), 1);
	assert_int_equal(tern_fdstore_find(old, "kept", 7), 70);
	tern_fdstore_free(old);
}

static void malformed_tables_refused(void **state)
{
	(void)state;
	struct tern_buf b = { 0 };

	/* A well-formed table loads (the hand encoding is right). */
	put_holder_start(&b, 2);
	put_entry(&b, "a", 1, 3);
	put_entry(&b, "a", 2, 4);
	tern_buf_u8(&b, 0);
	struct holder ok = { .label = "", .fds = NULL };
	struct tern_error err;
	assert_int_equal(tern_vmstate_load(&holder_desc, &ok, b.data, b.len, &err), 0);
	assert_int_equal(tern_fdstore_find(ok.fds, "a", 2), 4);
	tern_fdstore_free(ok.fds);

	/* Every proper prefix is truncated. */
	for (size_t len = 0; len < b.len; len++) {
		struct tern_buf p = { .data = b.data, .len = len };
		struct holder h = { .label = "old", .fds = NULL };
		assert_true(tern_vmstate_load(&holder_desc, &h, p.data, p.len, &err) < 0);
		assert_null(h.fds);
	}
	tern_buf_free(&b);

	put_holder_start(&b, 2); /* a key twice */
	put_entry(&b, "a", 1, 3);
	put_entry(&b, "a", 1, 4);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "already in the table");
	tern_buf_free(&b);

	put_holder_start(&b, 3); /* more claimed than present */
	put_entry(&b, "a", 1, 3);
	put_entry(&b, "b", 1, 4);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "expected state 'fd-key'");
	tern_buf_free(&b);

	put_holder_start(&b, 1); /* fewer claimed than present */
	put_entry(&b, "a", 1, 3);
	put_entry(&b, "b", 1, 4);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "bad marker");
	tern_buf_free(&b);

	put_holder_start(&b, 0xffffffffu); /* hostile count */
	put_entry(&b, "a", 1, 3);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "entries");
	tern_buf_free(&b);

	char big[255];
	memset(big, 'n', sizeof big);
	put_holder_start(&b, 1); /* a name longer than a key holds */
	put_entry_name_len(&b, big, sizeof big, 1, 3);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "at most 47 fit");
	tern_buf_free(&b);

	put_holder_start(&b, 1); /* a NUL inside a name */
	put_entry_name_len(&b, "a\0b", 3, 1, 3);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "NUL");
	tern_buf_free(&b);

	put_holder_start(&b, 1); /* an empty name */
	put_entry_name_len(&b, "", 0, 1, 3);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "empty name");
	tern_buf_free(&b);

	put_holder_start(&b, 1); /* not an fd */
	put_entry(&b, "a", 1, -5);
	tern_buf_u8(&b, 0);
	expect_refused(&b, -EBADMSG, "fd -5");
	tern_buf_free(&b);

	put_holder_start(&b, 1); /* a string length past the input */
	put_object_header(&b, "fd-key");
	tern_buf_u8(&b, 200);
	tern_buf_put(&b, "short and then some more bytes", 30);
	expect_refused(&b, -EBADMSG, "input ends inside");
	tern_buf_free(&b);

	/* A table that fails after a good one: both new tables go, the old stay. */
	put_holder_start(&b, 1);
	put_entry(&b, "a", 1, 3);
	tern_buf_u8(&b, 9);
	expect_refused(&b, -EBADMSG, "bad marker 0x09");
	tern_buf_free(&b);
}

/* Names that end at a page's last byte, before a page that cannot be read:
 * the store must find them without reading past them. */
static void names_at_a_page_end(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, 3 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	assert_ptr_not_equal(map, MAP_FAILED);
	assert_int_equal(mprotect(map + 2 * page, (size_t)page, PROT_NONE), 0);
	const char *start = tern_fdstore_kernel();
	static const char *const kernels[] = { "sse2", "avx512" };
	for (size_t k = 0; k < 2; k++) {
		if (tern_fdstore_use_kernel(kernels[k]) < 0)
			continue;
		struct tern_fdstore *s = tern_fdstore_new();
		assert_non_null(s);
		for (size_t len = 1; len < TERN_FDSTORE_NAME_MAX; len++) {
			char *name = map + 2 * page - (len + 1);
			for (size_t i = 0; i < len; i++)
				name[i] = (char)('a' + (len + i) % 26);
			name[len] = '\0';
			assert_int_equal(tern_fdstore_add(s, name, 7, (int)len, NULL), 0);
			char copy[TERN_FDSTORE_NAME_MAX];
			memcpy(copy, name, len + 1);
			assert_int_equal(tern_fdstore_find(s, copy, 7), (int)len);
			assert_int_equal(tern_fdstore_find(s, name, 7), (int)len);
		}
		/* Names that run on across a page boundary into a readable page. */
		for (size_t before = 1; before < TERN_FDSTORE_NAME_MAX; before++) {
			char *name = map + page - before;
			for (size_t i = 0; i < 40; i++)
				name[i] = (char)('A' + (before + i) % 26);
			name[40] = '\0';
			assert_int_equal(tern_fdstore_add(s, name, (uint32_t)before, (int)before, NULL), 0);
			char copy[TERN_FDSTORE_NAME_MAX];
			memcpy(copy, name, 41);
			assert_int_equal(tern_fdstore_find(s, copy, (uint32_t)before), (int)before);
			assert_int_equal(tern_fdstore_find(s, name, (uint32_t)before), (int)before);
		}
		tern_fdstore_free(s);
	}
	assert_int_equal(tern_fdstore_use_kernel(start), 0);
	munmap(map, 3 * (size_t)page);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_operations),
		cmocka_unit_test(names_and_fds_checked),
		cmocka_unit_test(names_at_a_page_end),
		cmocka_unit_test(kernels_named),
		cmocka_unit_test(round_trip),
		cmocka_unit_test(malformed_tables_refused),
	};
	return cmocka_run_group_tests_name("fdstore", tests, NULL, NULL);
}
