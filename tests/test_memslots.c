/*
 * The memslot map: every lookup against a plain reference model through
 * random update sequences; boundaries; refusals; the full 32,764 slots;
 * transactions; readers racing a storm of updates.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tern/memslots.h"

#include "../harness/rng.h"

#define KVM_SLOTS 32764u

static uint64_t rng_state;

static uint64_t rnd(void)
{
	return harness_splitmix(&rng_state);
}

/* Host addresses are never dereferenced here: numbers in a pointer. */
static uint8_t *fake_host(uint64_t page)
{
	return (uint8_t *)(uintptr_t)(0x100000000ULL + page * TERN_MEMSLOT_PAGE_SIZE);
}

static struct tern_memslot slot_at(uint32_t id, uint64_t gfn, uint64_t pages, uint64_t host_page)
{
	return (struct tern_memslot){ .id = id, .gfn = gfn, .pages = pages,
				      .host = fake_host(host_page), .fd = -1 };
}

static const struct tern_memslot *gfn_lookup(struct tern_memslots *m, uint64_t gfn)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	const struct tern_memslot *s = tern_memslots_find_gfn(&v, gfn);
	tern_memslots_read_end(&v);
	return s; /* compared by address only: no writer runs meanwhile */
}

static void boundaries_and_refusals(void **state)
{
	(void)state;
	struct tern_memslots *m = tern_memslots_new(64);
	assert_non_null(m);
	struct tern_error err;
	struct tern_memslot a = slot_at(1, 100, 10, 0);     /* gfns 100..109 */
	struct tern_memslot b = slot_at(2, 110, 5, 100);    /* adjacent: 110..114 */
	struct tern_memslot c = slot_at(3, 200, 1, 200);    /* after a gap */
	assert_int_equal(tern_memslots_add(m, &a, &err), 0);
	assert_int_equal(tern_memslots_add(m, &b, &err), 0);
	assert_int_equal(tern_memslots_add(m, &c, &err), 0);

	assert_null(gfn_lookup(m, 99));
	assert_int_equal(gfn_lookup(m, 100)->id, 1);
	assert_int_equal(gfn_lookup(m, 109)->id, 1);
	assert_int_equal(gfn_lookup(m, 110)->id, 2);
	assert_int_equal(gfn_lookup(m, 114)->id, 2);
	assert_null(gfn_lookup(m, 115));
	assert_null(gfn_lookup(m, 199));
	assert_int_equal(gfn_lookup(m, 200)->id, 3);
	assert_null(gfn_lookup(m, 201));
	assert_null(gfn_lookup(m, 0));
	assert_null(gfn_lookup(m, UINT64_MAX));

	/* Overlaps, from each side and inside, are refused and change nothing. */
	struct tern_memslot bad = slot_at(4, 95, 6, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "overlaps memslot 1"));
	bad = slot_at(4, 114, 1, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EBUSY);
	bad = slot_at(4, 0, 1000, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EBUSY);
	bad = slot_at(4, 105, 1, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EBUSY);
	/* Ids: in use, beyond the limit; sizes and addresses. */
	bad = slot_at(1, 500, 1, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EEXIST);
	bad = slot_at(64, 500, 1, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "beyond the limit"));
	bad = slot_at(4, 500, 0, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EINVAL);
	bad = slot_at(4, TERN_MEMSLOT_GFN_LIMIT - 1, 2, 300);
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EINVAL);
	bad = slot_at(4, 500, 1, 300);
	bad.host += 1;
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EINVAL);
	bad = slot_at(4, 500, 1, 300);
	bad.flags = 0x80;
	assert_int_equal(tern_memslots_add(m, &bad, &err), -EINVAL);
	assert_int_equal(tern_memslots_remove(m, 9, &err), -ENOENT);
	assert_int_equal(tern_memslots_move(m, 9, 0, &err), -ENOENT);

	/* Moves: onto a neighbour refused; into the gap and across it allowed;
	 * over its own old range allowed. */
	assert_int_equal(tern_memslots_move(m, 2, 108, &err), -EBUSY);
	assert_int_equal(tern_memslots_move(m, 2, 195, &err), 0); /* 195..199 */
	assert_int_equal(gfn_lookup(m, 199)->id, 2);
	assert_null(gfn_lookup(m, 110));
	assert_int_equal(tern_memslots_move(m, 2, 196, &err), -EBUSY); /* would hit 200 */
	assert_int_equal(tern_memslots_move(m, 1, 103, &err), 0);     /* 103..112 */
	assert_int_equal(gfn_lookup(m, 112)->id, 1);
	assert_null(gfn_lookup(m, 102));
	assert_int_equal(tern_memslots_move(m, 1, 0, &err), 0);
	assert_int_equal(tern_memslots_move(m, 3, 10, &err), 0);
	assert_int_equal(gfn_lookup(m, 10)->id, 3);

	/* Flags: read-only, dirty logging; unknown bits refused. */
	assert_int_equal(tern_memslots_set_flags(m, 3, TERN_MEMSLOT_READONLY, &err), 0);
	assert_int_equal(gfn_lookup(m, 10)->flags, TERN_MEMSLOT_READONLY);
	assert_int_equal(tern_memslots_set_flags(m, 3, 0x40, &err), -EINVAL);
	assert_int_equal(gfn_lookup(m, 10)->flags, TERN_MEMSLOT_READONLY);

	/* Iteration goes in guest-frame order: 1 (0..9), 3 (10), 2 (195..199). */
	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	struct tern_memslots_iter it;
	const struct tern_memslot *s = tern_memslots_first(&v, &it);
	uint32_t order[3];
	unsigned n = 0;
	for (; s; s = tern_memslots_next(&it))
		order[n++] = s->id;
	assert_int_equal(n, 3);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 3);
	assert_int_equal(order[2], 2);
	assert_int_equal(tern_memslots_count(&v), 3);
	tern_memslots_read_end(&v);
	assert_int_equal(tern_memslots_check(m), 0);
	tern_memslots_free(m);
}

/* Aliases: host ranges overlap; an address finds every slot that maps it. */
static void host_address_lookups(void **state)
{
	(void)state;
	struct tern_memslots *m = tern_memslots_new(16);
	struct tern_memslot a = slot_at(0, 0, 100, 0);     /* host pages 0..99 */
	struct tern_memslot b = slot_at(1, 1000, 10, 50);  /* alias of 50..59 */
	struct tern_memslot c = slot_at(2, 2000, 100, 50); /* alias of 50..149 */
	struct tern_memslot d = slot_at(3, 3000, 1, 500);
	assert_int_equal(tern_memslots_add(m, &a, NULL), 0);
	assert_int_equal(tern_memslots_add(m, &b, NULL), 0);
	assert_int_equal(tern_memslots_add(m, &c, NULL), 0);
	assert_int_equal(tern_memslots_add(m, &d, NULL), 0);
	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	const struct tern_memslot *out[4];
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(49), out, 4), 1);
	assert_int_equal(out[0]->id, 0);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(55) + 17, out, 4), 3);
	assert_int_equal(out[0]->id, 0);
	assert_int_equal(out[1]->id, 1);
	assert_int_equal(out[2]->id, 2);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(55), out, 1), 3); /* counts all */
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(60), out, 4), 2);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(149) + 4095, out, 4), 1);
	assert_int_equal(out[0]->id, 2);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(150), out, 4), 0);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(500), out, 4), 1);
	assert_int_equal(tern_memslots_find_hva(&v, fake_host(501), out, 4), 0);
	assert_ptr_equal(tern_memslots_find_id(&v, 3)->host, fake_host(500));
	assert_null(tern_memslots_find_id(&v, 4));
	tern_memslots_read_end(&v);
	tern_memslots_free(m);
}

/* The reference: slots by id, looked up by linear scan. */
struct model {
	bool used[4096];
	struct tern_memslot slot[4096];
};

static void check_against(struct tern_memslots *m, const struct model *ref, uint32_t ids,
			  uint64_t gfn_space, uint64_t host_space)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	uint32_t count = 0;
	for (uint32_t id = 0; id < ids; id++) {
		const struct tern_memslot *s = tern_memslots_find_id(&v, id);
		if (!ref->used[id]) {
			assert_null(s);
			continue;
		}
		count++;
		assert_non_null(s);
		assert_int_equal(s->gfn, ref->slot[id].gfn);
		assert_int_equal(s->pages, ref->slot[id].pages);
		assert_int_equal(s->flags, ref->slot[id].flags);
		assert_ptr_equal(s->host, ref->slot[id].host);
		/* first and last frame, and just outside */
		assert_ptr_equal(tern_memslots_find_gfn(&v, s->gfn), s);
		assert_ptr_equal(tern_memslots_find_gfn(&v, s->gfn + s->pages - 1), s);
	}
	assert_int_equal(tern_memslots_count(&v), count);
	for (int probe = 0; probe < 200; probe++) {
		uint64_t gfn = rnd() % gfn_space;
		const struct tern_memslot *want = NULL;
		for (uint32_t id = 0; id < ids; id++)
			if (ref->used[id] && gfn - ref->slot[id].gfn < ref->slot[id].pages)
				want = tern_memslots_find_id(&v, id);
		assert_ptr_equal(tern_memslots_find_gfn(&v, gfn), want);

		uint8_t *addr = fake_host(0) + rnd() % (host_space * TERN_MEMSLOT_PAGE_SIZE);
		const struct tern_memslot *hits[64];
		size_t n = tern_memslots_find_hva(&v, addr, hits, 64);
		size_t expect = 0;
		for (uint32_t id = 0; id < ids; id++) {
			const struct tern_memslot *r = &ref->slot[id];
			if (!ref->used[id] || addr < r->host ||
			    addr >= r->host + r->pages * TERN_MEMSLOT_PAGE_SIZE)
				continue;
			expect++;
			bool listed = false;
			for (size_t i = 0; i < n && i < 64; i++)
				listed |= hits[i]->id == id;
			assert_true(listed);
		}
		assert_int_equal(n, expect);
	}
	/* Iteration: every slot once, ascending, disjoint. */
	struct tern_memslots_iter it;
	uint32_t seen = 0;
	uint64_t next_free = 0;
	for (const struct tern_memslot *s = tern_memslots_first(&v, &it); s;
	     s = tern_memslots_next(&it)) {
		assert_true(s->gfn >= next_free);
		next_free = s->gfn + s->pages;
		seen++;
	}
	assert_int_equal(seen, count);
	tern_memslots_read_end(&v);
}

static bool model_overlaps(const struct model *ref, uint32_t ids, uint32_t self, uint64_t gfn,
			   uint64_t pages)
{
	for (uint32_t id = 0; id < ids; id++)
		if (ref->used[id] && id != self && gfn < ref->slot[id].gfn + ref->slot[id].pages &&
		    ref->slot[id].gfn < gfn + pages)
			return true;
	return false;
}

static void random_operations(uint32_t ids, uint64_t gfn_space, int steps)
{
	struct model *ref = calloc(1, sizeof *ref);
	struct tern_memslots *m = tern_memslots_new(ids);
	assert_non_null(m);
	const uint64_t host_space = 4096;
	for (int step = 0; step < steps; step++) {
		uint32_t id = (uint32_t)(rnd() % ids);
		uint64_t gfn = rnd() % gfn_space;
		uint64_t pages = 1 + rnd() % (rnd() % 4 == 0 ? 256 : 8);
		int rc, want;
		switch (rnd() % 5) {
		case 0:
		case 1: { /* add */
			struct tern_memslot s = slot_at(id, gfn, pages, rnd() % (host_space - 256));
			s.flags = (uint32_t)(rnd() % 4);
			want = ref->used[id] ? -EEXIST
			       : model_overlaps(ref, ids, id, gfn, pages) ? -EBUSY : 0;
			rc = tern_memslots_add(m, &s, NULL);
			if (rc == 0) {
				ref->used[id] = true;
				ref->slot[id] = s;
			}
			break;
		}
		case 2: /* remove */
			want = ref->used[id] ? 0 : -ENOENT;
			rc = tern_memslots_remove(m, id, NULL);
			if (rc == 0)
				ref->used[id] = false;
			break;
		case 3: /* move */
			want = !ref->used[id] ? -ENOENT
			       : model_overlaps(ref, ids, id, gfn, ref->slot[id].pages) ? -EBUSY : 0;
			rc = tern_memslots_move(m, id, gfn, NULL);
			if (rc == 0)
				ref->slot[id].gfn = gfn;
			break;
		default: { /* flags */
			uint32_t flags = (uint32_t)(rnd() % 4);
			want = ref->used[id] ? 0 : -ENOENT;
			rc = tern_memslots_set_flags(m, id, flags, NULL);
			if (rc == 0)
				ref->slot[id].flags = flags;
			break;
		}
		}
		assert_int_equal(rc, want);
		if (step % 64 == 0 || step == steps - 1) {
			check_against(m, ref, ids, gfn_space, host_space);
			assert_int_equal(tern_memslots_check(m), 0);
		}
	}
	tern_memslots_free(m);
	free(ref);
}

static void random_against_model(void **state)
{
	(void)state;
	rng_state = 1;
	random_operations(32, 512, 3000);     /* crowded: many refusals */
	random_operations(4096, 1 << 20, 20000); /* deep trees: many splits, merges */
}

/* Every id KVM offers, in and out in several orders. */
static void all_slots(void **state)
{
	(void)state;
	struct tern_memslots *m = tern_memslots_new(KVM_SLOTS);
	struct tern_error err;
	for (uint32_t id = 0; id < KVM_SLOTS; id++) {
		struct tern_memslot s = slot_at(id, (uint64_t)id * 2, 2, (uint64_t)id * 2);
		assert_int_equal(tern_memslots_add(m, &s, &err), 0);
	}
	struct tern_memslot over = slot_at(KVM_SLOTS, 1ULL << 30, 1, 0);
	assert_int_equal(tern_memslots_add(m, &over, &err), -EINVAL);
	assert_int_equal(tern_memslots_check(m), 0);
	for (uint32_t id = 0; id < KVM_SLOTS; id += 97)
		assert_int_equal(gfn_lookup(m, (uint64_t)id * 2 + 1)->id, id);
	/* Remove from the middle outwards, then the rest backwards. */
	for (uint32_t id = KVM_SLOTS / 3; id < 2 * KVM_SLOTS / 3; id++)
		assert_int_equal(tern_memslots_remove(m, id, &err), 0);
	assert_int_equal(tern_memslots_check(m), 0);
	assert_null(gfn_lookup(m, (uint64_t)(KVM_SLOTS / 2) * 2));
	for (uint32_t id = KVM_SLOTS; id-- > 0;)
		if (id < KVM_SLOTS / 3 || id >= 2 * KVM_SLOTS / 3)
			assert_int_equal(tern_memslots_remove(m, id, &err), 0);
	assert_int_equal(tern_memslots_check(m), 0);
	assert_null(gfn_lookup(m, 1));
	tern_memslots_free(m);
}

/* ------------------------------------------------------- concurrency */

#define PAIRS 64
#define HOME(i) ((uint64_t)(i) * 100)
#define AWAY(i) (100000 + (uint64_t)(i) * 100)

struct race {
	struct tern_memslots *m;
	atomic_bool stop;
	atomic_ulong lookups, inconsistent;
};

/* Each pair (2i, 2i+1): exactly one of the two sits at HOME(i) at any
 * published moment, the other AWAY(i); the writer swaps them in one
 * transaction.  A reader finding none or both at HOME saw a torn update. */
static void *reader(void *arg)
{
	struct race *r = arg;
	uint64_t local_rng = (uint64_t)(uintptr_t)&local_rng;
	while (!atomic_load(&r->stop)) {
		local_rng = local_rng * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned i = (unsigned)(local_rng >> 33) % PAIRS;
		struct tern_memslots_view v;
		tern_memslots_read_begin(r->m, &v);
		const struct tern_memslot *home = tern_memslots_find_gfn(&v, HOME(i) + 3);
		const struct tern_memslot *away = tern_memslots_find_gfn(&v, AWAY(i) + 3);
		bool ok = home && away && home != away && home->gfn == HOME(i) &&
			  away->gfn == AWAY(i) && home->id / 2 == i && away->id / 2 == i &&
			  tern_memslots_find_id(&v, home->id) == home &&
			  HOME(i) + 3 - home->gfn < home->pages;
		const struct tern_memslot *by_host[4];
		ok = ok && tern_memslots_find_hva(&v, home->host, by_host, 4) == 1 &&
		     by_host[0] == home;
		tern_memslots_read_end(&v);
		if (!ok)
			atomic_fetch_add(&r->inconsistent, 1);
		atomic_fetch_add_explicit(&r->lookups, 1, memory_order_relaxed);
	}
	return NULL;
}

static void readers_see_whole_updates(void **state)
{
	(void)state;
	struct race r = { .m = tern_memslots_new(2 * PAIRS + 64) };
	atomic_init(&r.stop, false);
	atomic_init(&r.lookups, 0);
	atomic_init(&r.inconsistent, 0);
	for (unsigned i = 0; i < PAIRS; i++) {
		struct tern_memslot a = slot_at(2 * i, HOME(i), 10, 1000 * i);
		struct tern_memslot b = slot_at(2 * i + 1, AWAY(i), 10, 1000 * i + 500);
		assert_int_equal(tern_memslots_add(r.m, &a, NULL), 0);
		assert_int_equal(tern_memslots_add(r.m, &b, NULL), 0);
	}
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
	rng_state = 7;
	for (int step = 0; step < 20000; step++) {
		unsigned i = (unsigned)(rnd() % PAIRS);
		struct tern_memslots_view v;
		tern_memslots_read_begin(r.m, &v);
		uint32_t home = tern_memslots_find_gfn(&v, HOME(i))->id;
		tern_memslots_read_end(&v);
		uint32_t away = home ^ 1;
		tern_memslots_begin(r.m);
		assert_int_equal(tern_memslots_move(r.m, home, 200000, NULL), 0);
		assert_int_equal(tern_memslots_move(r.m, away, HOME(i), NULL), 0);
		assert_int_equal(tern_memslots_move(r.m, home, AWAY(i), NULL), 0);
		/* Churn the trees too: a slot that comes and goes. */
		struct tern_memslot extra = slot_at(2 * PAIRS, 300000 + (rnd() % 1000), 1, 999999);
		assert_int_equal(tern_memslots_add(r.m, &extra, NULL), 0);
		assert_int_equal(tern_memslots_remove(r.m, 2 * PAIRS, NULL), 0);
		tern_memslots_commit(r.m);
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&r.lookups) > 0);
	assert_int_equal(atomic_load(&r.inconsistent), 0);
	assert_int_equal(tern_memslots_check(r.m), 0);
	tern_memslots_free(r.m);
}

/* Inside a transaction, readers still see the state before it. */
static void transactions_publish_at_commit(void **state)
{
	(void)state;
	struct tern_memslots *m = tern_memslots_new(16);
	tern_memslots_begin(m);
	for (uint32_t id = 0; id < 8; id++) {
		struct tern_memslot s = slot_at(id, id * 10, 10, id * 10);
		assert_int_equal(tern_memslots_add(m, &s, NULL), 0);
	}
	/* A failed update inside leaves the others standing. */
	struct tern_memslot clash = slot_at(9, 5, 1, 900);
	assert_int_equal(tern_memslots_add(m, &clash, NULL), -EBUSY);
	struct tern_memslots_view v;
	tern_memslots_read_begin(m, &v);
	assert_int_equal(tern_memslots_count(&v), 0);
	assert_null(tern_memslots_find_gfn(&v, 5));
	tern_memslots_read_end(&v);
	tern_memslots_commit(m);
	tern_memslots_read_begin(m, &v);
	assert_int_equal(tern_memslots_count(&v), 8);
	assert_int_equal(tern_memslots_find_gfn(&v, 75)->id, 7);
	tern_memslots_read_end(&v);
	assert_int_equal(tern_memslots_check(m), 0);
	tern_memslots_free(m);
	assert_null(tern_memslots_new(0));
	assert_null(tern_memslots_new(65537));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(boundaries_and_refusals),
		cmocka_unit_test(host_address_lookups),
		cmocka_unit_test(random_against_model),
		cmocka_unit_test(all_slots),
		cmocka_unit_test(transactions_publish_at_commit),
		cmocka_unit_test(readers_see_whole_updates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
