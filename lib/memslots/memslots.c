/*
 * The guest memory map; see include/tern/memslots.h.
 *
 * Two copies (sets) of the map, each an id table, a guest-frame tree and a
 * host-address tree over shared, immutable slot records.  Readers use the
 * set `active` names; writers change the other one, log what they did,
 * and at commit publish it, wait for readers to leave the old set
 * (left-right, Ramalhete and Correia: readers arrive at one of two
 * counters, and the writer drains both in turn), then replay the log on
 * the old set and free the records no set holds any more.
 *
 * Names used here (and in idtable.h, rangetree.h):
 *
 *  slot      a memslot: a struct tern_memslot record (id, guest frames,
 *            host range, backing fd).  Records are immutable once in a
 *            set; a change makes a new record and retires the old one.
 *  id        a slot's number, 0 .. max_slots-1 (the VMM gives KVM the same).
 *  gfn       guest frame number: a guest-physical address divided by
 *            TERN_MEMSLOT_PAGE_SIZE (4 KiB), below TERN_MEMSLOT_GFN_LIMIT.
 *  frame, pages  a 4 KiB unit of guest memory; `pages` is a slot's length
 *            in frames, so it holds gfn .. gfn+pages-1.
 *  host, hva the host virtual address of a slot's first frame; its host
 *            range is [host, host + pages * 4 KiB).  Aliases (two slots
 *            over the same host memory) may overlap there, never in gfns.
 *  set       one whole copy of the map: by_id (idtable), by_gfn and by_hva
 *            (rangetrees), last_hit (the slot the last gfn lookup found),
 *            count.  Readers enter set[active]; writers change the
 *            spare, set[active ^ 1].
 *  tie       a rangetree key's second half, after the range's start: 0 in
 *            by_gfn (starts are unique), the slot id in by_hva (two aliases
 *            may start at one address).
 *  op, log   one change (add, remove, replace: `old` record out, `now` in)
 *            made to the spare set; the log lists them until publish
 *            replays them on the other set.
 *  publish   make the spare active, wait until no reader is left in the
 *            old one, replay the log there and free the `old` records.
 *  indicator which of the two reader counters (readers[]) newly arriving
 *            readers increment; a view remembers the one it used.
 *  view      a reader's handle between read_begin and read_end: the set it
 *            reads and its counter.
 *  begin, commit  a transaction of the writer (recursive lock, `depth`);
 *            the outermost commit publishes.
 *  stale     spare_stale: a replay ran out of memory, so the spare set no
 *            longer matches; the next change rebuilds it from the active one.
 */
#include "tern/memslots.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idtable.h"
#include "rangetree.h"

struct tern_memslot_set {
	struct idtable by_id;
	struct rangetree by_gfn; /* key (gfn, 0), disjoint ranges */
	struct rangetree by_hva; /* key (host, id), ranges may overlap */
	/* The last slot a gfn lookup found: always a member of this set (the
	 * writer clears it before changing the set, when no reader is here). */
	_Atomic(const struct tern_memslot *) last_hit;
	uint32_t count;
};

enum op_kind { OP_ADD, OP_REMOVE, OP_REPLACE };

struct op {
	enum op_kind kind;
	struct tern_memslot *old; /* REMOVE, REPLACE */
	struct tern_memslot *now; /* ADD, REPLACE */
};

struct reader_count {
	_Alignas(64) atomic_long n;
};

struct tern_memslots {
	struct tern_memslot_set set[2];
	atomic_uint active;    /* the set readers use */
	atomic_uint indicator; /* the counter readers arrive at */
	struct reader_count readers[2];

	pthread_mutex_t writer; /* recursive: transactions nest */
	unsigned depth;
	uint32_t max_slots;
	bool spare_stale; /* a replay failed: rebuild the spare set first */
	rangetree_find_fn *find; /* the guest-frame lookup this CPU runs best */
	struct op *log;
	size_t log_len, log_cap;
};

/* ---------------------------------------------------------------- sets */

static void set_init(struct tern_memslot_set *s)
{
	idtable_init(&s->by_id);
	rangetree_init(&s->by_gfn);
	rangetree_init(&s->by_hva);
	atomic_init(&s->last_hit, NULL);
	s->count = 0;
}

static void set_free(struct tern_memslot_set *s)
{
	idtable_free(&s->by_id);
	rangetree_free(&s->by_gfn);
	rangetree_free(&s->by_hva);
	set_init(s);
}

static uint64_t host_start(const struct tern_memslot *slot)
{
	return (uint64_t)(uintptr_t)slot->host;
}

static uint64_t host_end(const struct tern_memslot *slot)
{
	return host_start(slot) + slot->pages * TERN_MEMSLOT_PAGE_SIZE;
}

static int set_insert(struct tern_memslot_set *s, struct tern_memslot *slot)
{
	int rc = rangetree_insert(&s->by_gfn, slot->gfn, 0, slot->gfn + slot->pages, slot);
	if (rc < 0)
		return rc;
	rc = rangetree_insert(&s->by_hva, host_start(slot), slot->id, host_end(slot), slot);
	if (rc == 0) {
		rc = idtable_add(&s->by_id, slot->id, slot);
		if (rc == 0) {
			s->count++;
			return 0;
		}
		rangetree_remove(&s->by_hva, host_start(slot), slot->id);
	}
	rangetree_remove(&s->by_gfn, slot->gfn, 0);
	return rc;
}

static void set_remove(struct tern_memslot_set *s, const struct tern_memslot *slot)
{
	rangetree_remove(&s->by_gfn, slot->gfn, 0);
	rangetree_remove(&s->by_hva, host_start(slot), slot->id);
	idtable_remove(&s->by_id, slot->id);
	s->count--;
}

/* Swap `old` for `now` (same id and host range; the guest frame may
 * differ).  Only a move can fail (-ENOMEM), and then nothing changed. */
static int set_replace(struct tern_memslot_set *s, struct tern_memslot *old,
		       struct tern_memslot *now)
{
	if (old->gfn != now->gfn) {
		int rc = rangetree_insert(&s->by_gfn, now->gfn, 0, now->gfn + now->pages, now);
		if (rc < 0)
			return rc;
		rangetree_remove(&s->by_gfn, old->gfn, 0);
	} else {
		rangetree_replace(&s->by_gfn, now->gfn, 0, now);
	}
	rangetree_replace(&s->by_hva, host_start(now), now->id, now);
	idtable_replace(&s->by_id, now->id, now);
	return 0;
}

static int apply(struct tern_memslot_set *s, const struct op *op)
{
	atomic_store_explicit(&s->last_hit, NULL, memory_order_relaxed);
	switch (op->kind) {
	case OP_ADD:
		return set_insert(s, op->now);
	case OP_REMOVE:
		set_remove(s, op->old);
		return 0;
	case OP_REPLACE:
		return set_replace(s, op->old, op->now);
	}
	return -EINVAL;
}

/* Rebuild `to` as a copy of `from` (after a failed replay). */
static int set_copy(struct tern_memslot_set *to, const struct tern_memslot_set *from)
{
	set_free(to);
	struct rt_iter it;
	for (struct tern_memslot *slot = rangetree_first(&from->by_gfn, &it); slot;
	     slot = rangetree_next(&it)) {
		int rc = set_insert(to, slot);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- map */

struct tern_memslots *tern_memslots_new(uint32_t max_slots)
{
	if (max_slots == 0 || max_slots > 65536)
		return NULL;
	struct tern_memslots *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	set_init(&m->set[0]);
	set_init(&m->set[1]);
	atomic_init(&m->active, 0);
	atomic_init(&m->indicator, 0);
	atomic_init(&m->readers[0].n, 0);
	atomic_init(&m->readers[1].n, 0);
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&m->writer, &attr);
	pthread_mutexattr_destroy(&attr);
	m->max_slots = max_slots;
	m->find = rangetree_find_best();
	return m;
}

void tern_memslots_free(struct tern_memslots *m)
{
	if (m == NULL)
		return;
	/* Every record is in the active set (and in the spare unless stale). */
	struct tern_memslot_set *live = &m->set[atomic_load(&m->active)];
	struct rt_iter it;
	struct tern_memslot *slot = rangetree_first(&live->by_gfn, &it);
	while (slot) {
		struct tern_memslot *next = rangetree_next(&it);
		free(slot);
		slot = next;
	}
	set_free(&m->set[0]);
	set_free(&m->set[1]);
	free(m->log);
	pthread_mutex_destroy(&m->writer);
	free(m);
}

uint32_t tern_memslots_max(const struct tern_memslots *m)
{
	return m->max_slots;
}

static struct tern_memslot_set *spare(struct tern_memslots *m)
{
	return &m->set[atomic_load(&m->active) ^ 1];
}

static void wait_for_readers(struct tern_memslots *m, unsigned which)
{
	for (unsigned spins = 0; atomic_load(&m->readers[which].n) != 0; spins++)
		if (spins > 64)
			sched_yield();
}

/* Publish the spare set and bring the old one up to date. */
static void publish(struct tern_memslots *m)
{
	unsigned now_active = atomic_load(&m->active) ^ 1;
	atomic_store(&m->active, now_active);
	unsigned prev = atomic_load(&m->indicator);
	wait_for_readers(m, prev ^ 1);
	atomic_store(&m->indicator, prev ^ 1);
	wait_for_readers(m, prev);
	/* No reader is in the old set now, and none can enter it. */
	struct tern_memslot_set *old = &m->set[now_active ^ 1];
	for (size_t i = 0; i < m->log_len && !m->spare_stale; i++)
		if (apply(old, &m->log[i]) < 0)
			m->spare_stale = true;
	for (size_t i = 0; i < m->log_len; i++)
		free(m->log[i].old);
	m->log_len = 0;
}

void tern_memslots_begin(struct tern_memslots *m)
{
	pthread_mutex_lock(&m->writer);
	m->depth++;
}

void tern_memslots_commit(struct tern_memslots *m)
{
	if (--m->depth == 0 && m->log_len > 0)
		publish(m);
	pthread_mutex_unlock(&m->writer);
}

/* Apply op to the spare set and log it for the other; on failure nothing
 * changed. */
static int record(struct tern_memslots *m, const struct op *op, struct tern_error *err)
{
	if (m->spare_stale) {
		if (set_copy(spare(m), &m->set[atomic_load(&m->active)]) < 0)
			return tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
		m->spare_stale = false;
	}
	if (m->log_len == m->log_cap) {
		size_t cap = m->log_cap ? 2 * m->log_cap : 16;
		struct op *log = realloc(m->log, cap * sizeof *log);
		if (log == NULL)
			return tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
		m->log = log;
		m->log_cap = cap;
	}
	if (apply(spare(m), op) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
	m->log[m->log_len++] = *op;
	return 0;
}

/* A slot other than `ignore` whose guest range meets [gfn, gfn + pages). */
static const struct tern_memslot *overlap(const struct tern_memslot_set *s, uint64_t gfn,
					  uint64_t pages, uint32_t ignore)
{
	struct rt_entry e;
	if (!rangetree_floor(&s->by_gfn, gfn + pages - 1, UINT32_MAX, &e))
		return NULL;
	const struct tern_memslot *slot = e.value;
	if (slot->id == ignore) {
		if (slot->gfn == 0 || !rangetree_floor(&s->by_gfn, slot->gfn - 1, UINT32_MAX, &e))
			return NULL;
		slot = e.value;
	}
	return slot->gfn + slot->pages > gfn ? slot : NULL;
}

static int check_range(const struct tern_memslot_set *s, uint32_t id, uint64_t gfn,
		       uint64_t pages, struct tern_error *err)
{
	if (pages == 0 || gfn >= TERN_MEMSLOT_GFN_LIMIT || pages > TERN_MEMSLOT_GFN_LIMIT - gfn)
		return tern_errorf(err, -EINVAL,
				   "memslot %u: guest frames 0x%llx + 0x%llx are outside 0 .. 2^40",
				   id, (unsigned long long)gfn, (unsigned long long)pages);
	const struct tern_memslot *other = overlap(s, gfn, pages, id);
	if (other)
		return tern_errorf(err, -EBUSY,
				   "memslot %u at guest frames 0x%llx..0x%llx overlaps memslot %u "
				   "(0x%llx..0x%llx)",
				   id, (unsigned long long)gfn, (unsigned long long)(gfn + pages - 1),
				   other->id, (unsigned long long)other->gfn,
				   (unsigned long long)(other->gfn + other->pages - 1));
	return 0;
}

static int check_flags(uint32_t id, uint32_t flags, struct tern_error *err)
{
	if (flags & ~TERN_MEMSLOT_FLAGS)
		return tern_errorf(err, -EINVAL, "memslot %u: unknown flags 0x%x", id,
				   flags & ~TERN_MEMSLOT_FLAGS);
	return 0;
}

int tern_memslots_add(struct tern_memslots *m, const struct tern_memslot *slot,
		      struct tern_error *err)
{
	tern_memslots_begin(m);
	const struct tern_memslot_set *s = spare(m);
	int rc = 0;
	if (slot->id >= m->max_slots)
		rc = tern_errorf(err, -EINVAL, "memslot id %u is beyond the limit (ids 0..%u)",
				 slot->id, m->max_slots - 1);
	else if (idtable_get(&s->by_id, slot->id))
		rc = tern_errorf(err, -EEXIST, "memslot %u already exists", slot->id);
	else if (host_start(slot) % TERN_MEMSLOT_PAGE_SIZE != 0 || slot->host == NULL ||
		 slot->pages > (UINT64_MAX - host_start(slot)) / TERN_MEMSLOT_PAGE_SIZE)
		rc = tern_errorf(err, -EINVAL,
				 "memslot %u: host address %p is not a page-aligned range", slot->id,
				 (void *)slot->host);
	if (rc == 0)
		rc = check_flags(slot->id, slot->flags, err);
	if (rc == 0)
		rc = check_range(s, slot->id, slot->gfn, slot->pages, err);
	struct tern_memslot *copy = NULL;
	if (rc == 0) {
		copy = malloc(sizeof *copy);
		if (copy == NULL)
			rc = tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
	}
	if (rc == 0) {
		*copy = *slot;
		rc = record(m, &(struct op){ .kind = OP_ADD, .now = copy }, err);
		if (rc < 0)
			free(copy);
	}
	tern_memslots_commit(m);
	return rc;
}

static struct tern_memslot *existing(struct tern_memslots *m, uint32_t id, struct tern_error *err,
				     int *rc)
{
	struct tern_memslot *slot = idtable_get(&spare(m)->by_id, id);
	*rc = slot ? 0 : tern_errorf(err, -ENOENT, "no memslot %u", id);
	return slot;
}

int tern_memslots_remove(struct tern_memslots *m, uint32_t id, struct tern_error *err)
{
	tern_memslots_begin(m);
	int rc;
	struct tern_memslot *slot = existing(m, id, err, &rc);
	if (slot)
		rc = record(m, &(struct op){ .kind = OP_REMOVE, .old = slot }, err);
	tern_memslots_commit(m);
	return rc;
}

/* Replace slot `id` by a changed copy: move (gfn) or new flags. */
static int change(struct tern_memslots *m, uint32_t id, uint64_t gfn, uint32_t flags,
		  struct tern_error *err)
{
	tern_memslots_begin(m);
	int rc;
	struct tern_memslot *old = existing(m, id, err, &rc);
	if (old && gfn != old->gfn)
		rc = check_range(spare(m), id, gfn, old->pages, err);
	if (rc == 0)
		rc = check_flags(id, flags, err);
	struct tern_memslot *now = NULL;
	if (rc == 0) {
		now = malloc(sizeof *now);
		if (now == NULL)
			rc = tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
	}
	if (rc == 0) {
		*now = *old;
		now->gfn = gfn;
		now->flags = flags;
		rc = record(m, &(struct op){ .kind = OP_REPLACE, .old = old, .now = now }, err);
		if (rc < 0)
			free(now);
	}
	tern_memslots_commit(m);
	return rc;
}

int tern_memslots_move(struct tern_memslots *m, uint32_t id, uint64_t gfn, struct tern_error *err)
{
	tern_memslots_begin(m);
	int rc;
	const struct tern_memslot *slot = existing(m, id, err, &rc);
	if (slot)
		rc = change(m, id, gfn, slot->flags, err);
	tern_memslots_commit(m);
	return rc;
}

int tern_memslots_set_flags(struct tern_memslots *m, uint32_t id, uint32_t flags,
			    struct tern_error *err)
{
	tern_memslots_begin(m);
	int rc;
	const struct tern_memslot *slot = existing(m, id, err, &rc);
	if (slot)
		rc = change(m, id, slot->gfn, flags, err);
	tern_memslots_commit(m);
	return rc;
}

/* ---------------------------------------------------------------- readers */

void tern_memslots_read_begin(struct tern_memslots *m, struct tern_memslots_view *v)
{
	unsigned which = atomic_load(&m->indicator);
	atomic_fetch_add(&m->readers[which].n, 1);
	v->set = &m->set[atomic_load(&m->active)];
	v->map = m;
	v->indicator = which;
}

void tern_memslots_read_end(struct tern_memslots_view *v)
{
	atomic_fetch_sub_explicit(&v->map->readers[v->indicator].n, 1, memory_order_release);
	v->set = NULL;
}

uint32_t tern_memslots_count(const struct tern_memslots_view *v)
{
	return v->set->count;
}

const struct tern_memslot *tern_memslots_find_id(const struct tern_memslots_view *v, uint32_t id)
{
	return idtable_get(&v->set->by_id, id);
}

const struct tern_memslot *tern_memslots_find_gfn(const struct tern_memslots_view *v, uint64_t gfn)
{
	struct tern_memslot_set *s = (struct tern_memslot_set *)v->set;
	const struct tern_memslot *last = atomic_load_explicit(&s->last_hit, memory_order_relaxed);
	if (last && gfn - last->gfn < last->pages)
		return last;
	const struct tern_memslot *slot = v->map->find(&s->by_gfn, gfn);
	if (slot && slot != last)
		atomic_store_explicit(&s->last_hit, slot, memory_order_relaxed);
	return slot;
}

size_t tern_memslots_find_hva(const struct tern_memslots_view *v, const void *addr,
			      const struct tern_memslot **out, size_t max)
{
	return rangetree_stab(&v->set->by_hva, (uint64_t)(uintptr_t)addr, (void **)out, max);
}

const struct tern_memslot *tern_memslots_first(const struct tern_memslots_view *v,
					       struct tern_memslots_iter *it)
{
	struct rt_iter rit;
	const struct tern_memslot *slot = rangetree_first(&v->set->by_gfn, &rit);
	it->leaf = rit.leaf;
	it->index = rit.index;
	return slot;
}

const struct tern_memslot *tern_memslots_next(struct tern_memslots_iter *it)
{
	struct rt_iter rit = { it->leaf, it->index };
	const struct tern_memslot *slot = rangetree_next(&rit);
	it->leaf = rit.leaf;
	it->index = rit.index;
	return slot;
}

/* ---------------------------------------------------------------- checks */

static int check_set(const struct tern_memslot_set *s)
{
	if (rangetree_check(&s->by_gfn) < 0 || rangetree_check(&s->by_hva) < 0 ||
	    s->by_gfn.size != s->count || s->by_hva.size != s->count || s->by_id.count != s->count)
		return -EUCLEAN;
	struct rt_iter it;
	const struct tern_memslot *prev = NULL;
	for (const struct tern_memslot *slot = rangetree_first(&s->by_gfn, &it); slot;
	     slot = rangetree_next(&it)) {
		if (prev && prev->gfn + prev->pages > slot->gfn)
			return -EUCLEAN;
		if (idtable_get(&s->by_id, slot->id) != slot)
			return -EUCLEAN;
		prev = slot;
	}
	return 0;
}

int tern_memslots_check(struct tern_memslots *m)
{
	tern_memslots_begin(m);
	const struct tern_memslot_set *live = &m->set[atomic_load(&m->active)];
	int rc = check_set(live);
	if (rc == 0 && !m->spare_stale && m->log_len == 0) {
		const struct tern_memslot_set *other = spare(m);
		rc = check_set(other);
		struct rt_iter a, b;
		const struct tern_memslot *x = rangetree_first(&live->by_gfn, &a);
		const struct tern_memslot *y = rangetree_first(&other->by_gfn, &b);
		for (; rc == 0 && (x || y); x = rangetree_next(&a), y = rangetree_next(&b))
			if (x != y)
				rc = -EUCLEAN;
	}
	tern_memslots_commit(m);
	return rc;
}
