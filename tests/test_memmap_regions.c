/* The memory-regions section a live update carries (vmm/machine/memmap.c), loaded
 * into a VM whose KVM refuses every memslot (it has no VM fd), so no
 * /dev/kvm is needed: hostile sections are refused before anything is
 * mapped, a refusal by KVM leaves nothing behind, and either way every
 * kept memfd stays open and in the store (a fallback still needs it).
 * Regions that do come through a real update: test_cpr_devices. */
#include <errno.h>
#include <fcntl.h>
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
#include "cpr/kept_fds.h"
#include "machine/memmap.h"
#include "machine/vm.h"

#define MIB (1ULL << 20)
#define RAM_BYTES (64 * MIB)
#define MAX_SLOTS 64

struct host {
	struct vm vm;
	struct tern_fdstore *store;
	void *ram;
	int kept[8];
	unsigned nkept;
};

static void host_init(struct host *h)
{
	memset(h, 0, sizeof *h);
	h->vm.kvm.vm_fd = -1; /* KVM refuses every memslot */
	h->vm.kvm.has_readonly_mem = 1;
	h->store = tern_fdstore_new();
	assert_non_null(h->store);
	struct vm_memmap *mm = &h->vm.memmap;
	mm->map = tern_memslots_new(MAX_SLOTS);
	assert_non_null(mm->map);
	mm->store = h->store;
	mm->ram_slots = 1;
	h->ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(h->ram != MAP_FAILED);
	struct tern_memslot ram = { .id = 0, .gfn = 0, .pages = RAM_BYTES / 4096, .host = h->ram,
				    .fd = -1 };
	assert_int_equal(tern_memslots_add(mm->map, &ram, NULL), 0);
}

/* A region's memfd of `bytes`, kept for `slot` as the old tern left it. */
static void keep(struct host *h, uint32_t slot, uint64_t bytes)
{
	int fd = memfd_create("region", 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)bytes), 0);
	assert_int_equal(kept_fd_add(h->store, KEPT_MEMSLOT_REGION, slot, fd), 0);
	h->kept[h->nkept++] = fd;
}

/* Nothing was mapped, and every kept memfd is still open and kept. */
static void expect_untouched(struct host *h)
{
	assert_int_equal(h->vm.memmap.nhot, 0);
	struct tern_memslots_view v;
	tern_memslots_read_begin(h->vm.memmap.map, &v);
	for (uint32_t id = 1; id < MAX_SLOTS; id++)
		assert_null(tern_memslots_find_id(&v, id));
	tern_memslots_read_end(&v);
	assert_int_equal(tern_fdstore_count(h->store), h->nkept);
	for (unsigned i = 0; i < h->nkept; i++)
		assert_true(fcntl(h->kept[i], F_GETFD) >= 0);
}

static void host_free(struct host *h)
{
	for (unsigned i = 0; i < h->nkept; i++)
		close(h->kept[i]);
	tern_fdstore_free(h->store);
	tern_memslots_free(h->vm.memmap.map);
	free(h->vm.memmap.hot);
	munmap(h->ram, RAM_BYTES);
}

struct entry {
	uint32_t slot, flags;
	uint64_t gpa, size;
};

/* A vmstate object's header: its name and version. */
static void put_header(struct tern_buf *b, const char *name)
{
	tern_buf_u8(b, (uint8_t)strlen(name));
	tern_buf_put(b, name, strlen(name));
	tern_buf_u32(b, 1);
}

/* The section as the wire has it, written by hand so that counts and
 * lengths can lie. */
static void put_section(struct tern_buf *b, uint32_t count, const struct entry *e, unsigned n)
{
	put_header(b, "memory-regions");
	tern_buf_u32(b, count);
	for (unsigned i = 0; i < n; i++) {
		put_header(b, "memory-region");
		tern_buf_u32(b, e[i].slot);
		tern_buf_u32(b, e[i].flags);
		tern_buf_u64(b, e[i].gpa);
		tern_buf_u64(b, e[i].size);
		tern_buf_u8(b, 0);
	}
	tern_buf_u8(b, 0);
}

static int load_bytes(struct vm *vm, const uint8_t *data, size_t len, struct tern_error *err)
{
	return vm_state_load_one(&memmap_regions_type, vm, data, len, err);
}

static int load(struct host *h, const struct tern_buf *b, char *why, size_t why_len)
{
	struct tern_error err = { .msg = "" };
	int rc = load_bytes(&h->vm, b->data, b->len, &err);
	snprintf(why, why_len, "%s", err.msg);
	return rc;
}

struct hostile {
	const char *what;
	struct entry e[2];
	unsigned n;
	int count_delta;   /* count field minus n */
	int truncate;      /* bytes cut off the end */
	uint32_t kept_slot[2];
	uint64_t kept_size[2];
	unsigned nkept;
	const char *says;
};

#define R(slot, flags, gpa, size) { slot, flags, gpa, size }
#define GIB (1ULL << 30)

static const struct hostile hostile[] = {
	{ "truncated count", { { 0 } }, 0, 0, 4, { 0 }, { 0 }, 0, "input ends" },
	{ "truncated entry", { R(1, 0, GIB, 2 * MIB) }, 1, 0, 3, { 1 }, { 2 * MIB }, 1,
	  "input ends" },
	{ "trailing bytes", { R(1, 0, GIB, 2 * MIB) }, 1, 0, -8, { 1 }, { 2 * MIB }, 1,
	  "left over" },
	{ "more described than kept", { R(1, 0, GIB, 2 * MIB), R(2, 0, 2 * GIB, 2 * MIB) }, 2, 0, 0,
	  { 1 }, { 2 * MIB }, 1, "described" },
	{ "a kept memfd undescribed", { R(1, 0, GIB, 2 * MIB) }, 1, 0, 0, { 1, 2 },
	  { 2 * MIB, 2 * MIB }, 2, "described" },
	{ "hostile count", { R(1, 0, GIB, 2 * MIB) }, 1, 0x7fffffff, 0, { 1 }, { 2 * MIB }, 1,
	  "input holds fewer" },
	{ "no memfd for the slot", { R(3, 0, GIB, 2 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "no memfd" },
	{ "guest RAM's slot", { R(0, 0, GIB, 2 * MIB) }, 1, 0, 0, { 0 }, { 2 * MIB }, 1,
	  "not one a region" },
	{ "slot beyond KVM's", { R(MAX_SLOTS, 0, GIB, 2 * MIB) }, 1, 0, 0, { MAX_SLOTS },
	  { 2 * MIB }, 1, "not one a region" },
	{ "unknown flags", { R(1, 0x80, GIB, 2 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1, "flags" },
	{ "dirty-log flag", { R(1, TERN_MEMSLOT_DIRTY_LOG, GIB, 2 * MIB) }, 1, 0, 0, { 1 },
	  { 2 * MIB }, 1, "flags" },
	{ "unaligned address", { R(1, 0, GIB + 512, 2 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "multiples of 4 KiB" },
	{ "empty region", { R(1, 0, GIB, 0) }, 1, 0, 0, { 1 }, { 0 }, 1, "multiples of 4 KiB" },
	{ "beyond 2^52", { R(1, 0, (1ULL << 52) - 4096, 2 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "2^52" },
	{ "size wraps", { R(1, 0, GIB, UINT64_MAX - 4095) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "2^52" },
	{ "memfd of another size", { R(1, 0, GIB, 4 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "not 4194304 bytes" },
	{ "the same slot twice", { R(1, 0, GIB, 2 * MIB), R(1, 0, 2 * GIB, 2 * MIB) }, 2, 0, 0,
	  { 1, 5 }, { 2 * MIB, 2 * MIB }, 2, "twice" },
	{ "over guest RAM", { R(1, 0, 32 * MIB, 2 * MIB) }, 1, 0, 0, { 1 }, { 2 * MIB }, 1,
	  "overlap" },
	{ "over each other", { R(1, 0, GIB, 4 * MIB), R(2, 0, GIB + 2 * MIB, 2 * MIB) }, 2, 0, 0,
	  { 1, 2 }, { 4 * MIB, 2 * MIB }, 2, "" },
};

static void hostile_sections_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
		const struct hostile *c = &hostile[i];
		struct host h;
		host_init(&h);
		for (unsigned k = 0; k < c->nkept; k++)
			keep(&h, c->kept_slot[k], c->kept_size[k]);
		struct tern_buf b = { 0 };
		put_section(&b, c->n + (uint32_t)c->count_delta, c->e, c->n);
		if (c->truncate > 0)
			b.len = b.len > (size_t)c->truncate ? b.len - (size_t)c->truncate : 0;
		else if (c->truncate < 0)
			tern_buf_u64(&b, 0);
		char why[TERN_ERROR_MAX];
		int rc = load(&h, &b, why, sizeof why);
		if (rc >= 0 || strstr(why, c->says) == NULL)
			fail_msg("%s: rc %d, '%s' (wanted '%s')", c->what, rc, why, c->says);
		expect_untouched(&h);
		tern_buf_free(&b);
		host_free(&h);
	}
}

/* A good section that KVM refuses: nothing is left mapped, and the
 * memfds stay kept for the binary that falls back. */
static void kvm_refusal_leaves_nothing(void **state)
{
	(void)state;
	struct host h;
	host_init(&h);
	keep(&h, 1, 2 * MIB);
	keep(&h, 2, 4 * MIB);
	struct entry e[] = { R(1, 0, GIB, 2 * MIB), R(2, TERN_MEMSLOT_READONLY, 2 * GIB, 4 * MIB) };
	struct tern_buf b = { 0 };
	put_section(&b, 2, e, 2);
	char why[TERN_ERROR_MAX];
	assert_true(load(&h, &b, why, sizeof why) < 0);
	assert_non_null(strstr(why, "memory regions"));
	expect_untouched(&h);
	tern_buf_free(&b);
	host_free(&h);
}

/* No regions described and none kept: nothing to do; the same with one
 * kept is refused (a state without the section carries no regions). */
static void empty_sections(void **state)
{
	(void)state;
	struct host h;
	host_init(&h);
	struct tern_buf b = { 0 };
	put_section(&b, 0, NULL, 0);
	char why[TERN_ERROR_MAX];
	assert_int_equal(load(&h, &b, why, sizeof why), 0);
	expect_untouched(&h);
	keep(&h, 7, 2 * MIB);
	assert_true(load(&h, &b, why, sizeof why) < 0);
	expect_untouched(&h);
	tern_buf_free(&b);
	host_free(&h);
}

static size_t below(uint64_t *rng, size_t n)
{
	return (size_t)(harness_splitmix(rng) % n);
}

/* Random damage to a good section: refused, never a crash or a leak. */
static void damaged_sections_refused(void **state)
{
	(void)state;
	uint64_t rng = 0x5ec7;
	struct entry e[] = { R(1, 0, GIB, 2 * MIB), R(2, TERN_MEMSLOT_READONLY, 2 * GIB, 4 * MIB) };
	struct tern_buf good = { 0 };
	put_section(&good, 2, e, 2);
	for (int round = 0; round < 3000; round++) {
		struct host h;
		host_init(&h);
		keep(&h, 1, 2 * MIB);
		keep(&h, 2, 4 * MIB);
		uint8_t bytes[256];
		size_t len = good.len;
		memcpy(bytes, good.data, len);
		for (int flips = 1 + (int)below(&rng, 4); flips > 0; flips--)
			bytes[below(&rng, len)] ^= (uint8_t)(1u << below(&rng, 8));
		if (below(&rng, 4) == 0)
			len = below(&rng, len);
		struct tern_error err;
		assert_true(load_bytes(&h.vm, bytes, len, &err) < 0);
		expect_untouched(&h);
		host_free(&h);
	}
	tern_buf_free(&good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_sections_refused),
		cmocka_unit_test(kvm_refusal_leaves_nothing),
		cmocka_unit_test(empty_sections),
		cmocka_unit_test(damaged_sections_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
