/* The fd store: dense entries indexed by a compact open-addressing table;
 * see fdstore.h. */
#include "tern/fdstore.h"

#include <emmintrin.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef __SSE2__
#error "the fd store compares names with SSE2 (every x86-64 has it)"
#endif

#define MIN_INDEX_BITS 4
#define MIN_CAPACITY 8

/* One cache line per entry, the whole key inline and zero-padded, so names
 * compare as three whole 16-byte vectors.  Entries are dense, in insertion order
 * until a removal moves the last entry into the hole: a new process that
 * finds its fds in the order it creates its devices reads them in a stream. */
struct entry {
	_Alignas(16) char name[TERN_FDSTORE_NAME_MAX];
	uint32_t id;
	int32_t fd;
	uint32_t hash;
	uint32_t unused;
};
_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");
_Static_assert(TERN_FDSTORE_NAME_MAX == 48, "a name is three vectors");

/* An index slot: 0 is empty, else the entry's position + 1 in the low
 * bits and 8 bits of its hash above them, which spare most probes past a
 * foreign slot a visit to its entry.  Four bytes a slot keep the index of
 * 100,000 fds in 1 MiB, within a core's L2. */
#define POS_BITS 24
#define POS_MASK ((1u << POS_BITS) - 1)
_Static_assert(TERN_FDSTORE_MAX_ENTRIES <= POS_MASK - 1, "positions + 1 fit a slot");

struct tern_fdstore {
	struct entry *entry; /* count used of capacity */
	uint32_t count, capacity;
	uint32_t *index; /* 1 << bits slots, at most half used */
	unsigned bits;
};

/* A key made ready for probing: the name zero-padded to NAME_MAX bytes in
 * three vectors, as in an entry, its id and its hash. */
struct query {
	__m128i v[3];
	uint32_t id;
	uint32_t hash;
};

/*
 * Each 16 bytes of padded name, keyed, multiply their 32-bit halves lane
 * by lane and add into an accumulator with the bytes themselves (so a
 * product of zero loses nothing); one 64-bit multiply with the id spreads
 * the sum over the high bits that choose the home slot.  All in vector
 * registers, about twenty instructions.
 */
static inline uint32_t query_hash(const struct query *q)
{
	static const uint64_t key[6] = { 0xa0761d6478bd642fULL, 0xe7037ed1a0b428dbULL,
					 0x8ebc6af09c88c6e3ULL, 0x589965cc75374cc3ULL,
					 0x1d8e4e27c47d124fULL, 0xeb44accab455d165ULL };
	__m128i acc = _mm_setzero_si128();
	__m128i id = _mm_cvtsi32_si128((int)q->id);
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {
		__m128i keyed = _mm_xor_si128(q->v[i], _mm_loadu_si128((const __m128i *)key + i));
		if (i == 0)
			keyed = _mm_xor_si128(keyed, id);
		__m128i high_halves = _mm_shuffle_epi32(keyed, _MM_SHUFFLE(2, 3, 0, 1));
		acc = _mm_add_epi64(acc, _mm_mul_epu32(keyed, high_halves));
		acc = _mm_add_epi64(acc, _mm_shuffle_epi32(q->v[i], _MM_SHUFFLE(1, 0, 3, 2)));
	}
	uint64_t low = (uint64_t)_mm_cvtsi128_si64(acc);
	uint64_t high = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
	uint64_t h = (low ^ (high << 32 | high >> 32)) * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)(h >> 32);
}

/*
 * The NAME_MAX bytes at name, which may run past the string's NUL (and its
 * object) but never past its page, so the read cannot fault: the way
 * strlen reads, the bytes after the NUL are masked off unseen.  Address
 * sanitizing would call this read out of bounds; it is not.
 */
__attribute__((no_sanitize_address)) static inline void
load_within_page(const char *name, __m128i v[3])
{
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
		v[i] = _mm_loadu_si128((const __m128i *)(name + 16 * i));
}

/* A name that ends near its page's end, copied where it may be read whole. */
static __attribute__((noinline, cold)) const char *padded_copy(const char *name,
								char out[TERN_FDSTORE_NAME_MAX])
{
	size_t len = strnlen(name, TERN_FDSTORE_NAME_MAX);
	memcpy(out, name, len);
	memset(out + len, 0, TERN_FDSTORE_NAME_MAX - len);
	return out;
}

/* Valid names are 1 .. NAME_MAX - 1 bytes; 0 if made, else -EINVAL. */
static inline __attribute__((always_inline)) int make_query(const char *name, uint32_t id,
							      struct query *q)
{
	if (name == NULL)
		return -EINVAL;
	char padded[TERN_FDSTORE_NAME_MAX];
	if (((uintptr_t)name & 4095) > 4096 - TERN_FDSTORE_NAME_MAX)
		name = padded_copy(name, padded);
	load_within_page(name, q->v);
	const __m128i zero = _mm_setzero_si128();
	uint64_t nul = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q->v[0], zero)) |
		       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q->v[1], zero)) << 16 |
		       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(q->v[2], zero)) << 32;
	if ((nul & 1) != 0 || nul == 0) /* empty, or no NUL within NAME_MAX */
		return -EINVAL;
	/* Keep the bytes before the first NUL, under a mask of len 0xff bytes. */
#define FF8 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
	static const uint8_t ones_then_zeros[2 * TERN_FDSTORE_NAME_MAX] = { FF8, FF8, FF8,
									  FF8, FF8, FF8 };
#undef FF8
	const uint8_t *mask = ones_then_zeros + TERN_FDSTORE_NAME_MAX - __builtin_ctzll(nul);
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
		q->v[i] = _mm_and_si128(q->v[i], _mm_loadu_si128((const __m128i *)mask + i));
	q->id = id;
	q->hash = query_hash(q);
	return 0;
}

static inline int entry_matches(const struct entry *e, const struct query *q)
{
	const __m128i *name = (const __m128i *)e->name;
	__m128i same = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(_mm_load_si128(name), q->v[0]),
						   _mm_cmpeq_epi8(_mm_load_si128(name + 1), q->v[1])),
				     _mm_cmpeq_epi8(_mm_load_si128(name + 2), q->v[2]));
	return _mm_movemask_epi8(same) == 0xffff && e->id == q->id;
}

static inline uint32_t tag_of(uint32_t hash)
{
	return (hash & 0xff) << POS_BITS;
}

static inline size_t home_of(const struct tern_fdstore *s, uint32_t hash)
{
	return hash >> (32 - s->bits);
}

static inline size_t mask_of(const struct tern_fdstore *s)
{
	return ((size_t)1 << s->bits) - 1;
}

/* The slot naming the key's entry, or the empty slot that ends its probe. */
static inline __attribute__((always_inline)) size_t probe(const struct tern_fdstore *s,
							 const struct query *q)
{
	size_t mask = mask_of(s);
	uint32_t tag = tag_of(q->hash);
	for (size_t i = home_of(s, q->hash);; i = (i + 1) & mask) {
		uint32_t v = s->index[i];
		if (v == 0)
			return i;
		if ((v & ~POS_MASK) == tag && entry_matches(&s->entry[(v & POS_MASK) - 1], q))
			return i;
	}
}

/* The slot naming entry pos, whose hash is given. */
static size_t slot_of(const struct tern_fdstore *s, uint32_t hash, uint32_t pos)
{
	size_t mask = mask_of(s);
	size_t i = home_of(s, hash);
	while ((s->index[i] & POS_MASK) != pos + 1)
		i = (i + 1) & mask;
	return i;
}

/* The fewest index bits that hold n entries under the load limit (1/2:
 * slots are small, and short probes are worth more than the space). */
static unsigned bits_for(uint64_t n)
{
	unsigned bits = MIN_INDEX_BITS;
	while (n * 2 > ((uint64_t)1 << bits))
		bits++;
	return bits;
}

#define HUGE_PAGE ((size_t)2 << 20)

/* Cache-line aligned memory; a table of 2 MiB or more asks for huge pages,
 * as a million fds' random lookups would otherwise miss the TLB each time. */
static void *table_alloc(size_t bytes)
{
	if (bytes < HUGE_PAGE)
		return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	bytes = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	void *p = aligned_alloc(HUGE_PAGE, bytes);
	if (p != NULL)
		madvise(p, bytes, MADV_HUGEPAGE); /* advice: without it, small pages */
	return p;
}

/* Build an index of 1 << bits slots over the entries. */
static int reindex(struct tern_fdstore *s, unsigned bits)
{
	size_t bytes = sizeof(uint32_t) << bits;
	uint32_t *index = table_alloc(bytes);
	if (index == NULL)
		return -ENOMEM;
	memset(index, 0, bytes);
	free(s->index);
	s->index = index;
	s->bits = bits;
	size_t mask = mask_of(s);
	for (uint32_t pos = 0; pos < s->count; pos++) {
		uint32_t hash = s->entry[pos].hash;
		size_t i = home_of(s, hash);
		while (index[i] != 0)
			i = (i + 1) & mask;
		index[i] = tag_of(hash) | (pos + 1);
	}
	return 0;
}

static int reserve(struct tern_fdstore *s, uint64_t n)
{
	if (n > s->capacity) {
		uint64_t cap = s->capacity != 0 ? s->capacity : MIN_CAPACITY;
		while (cap < n)
			cap *= 2;
		if (cap > TERN_FDSTORE_MAX_ENTRIES)
			cap = TERN_FDSTORE_MAX_ENTRIES;
		struct entry *entry = table_alloc(cap * sizeof *entry);
		if (entry == NULL)
			return -ENOMEM;
		if (s->count != 0)
			memcpy(entry, s->entry, (size_t)s->count * sizeof *entry);
		free(s->entry);
		s->entry = entry;
		s->capacity = (uint32_t)cap;
	}
	if (s->index != NULL && n * 2 <= ((uint64_t)1 << s->bits))
		return 0; /* the common case of an add: room in the index */
	return reindex(s, bits_for(n));
}

static struct tern_fdstore *store_for(uint64_t expected)
{
	struct tern_fdstore *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	if (reserve(s, expected != 0 ? expected : 1) < 0) {
		tern_fdstore_free(s);
		return NULL;
	}
	return s;
}

struct tern_fdstore *tern_fdstore_new(void)
{
	return store_for(0);
}

void tern_fdstore_free(struct tern_fdstore *s)
{
	if (s == NULL)
		return;
	free(s->entry);
	free(s->index);
	free(s);
}

int tern_fdstore_add(struct tern_fdstore *s, const char *name, uint32_t id, int fd,
		     struct tern_error *err)
{
	struct query q;
	if (make_query(name, id, &q) < 0)
		return tern_errorf(err, -EINVAL, "fd store: a name must be 1 to %d bytes",
				   TERN_FDSTORE_NAME_MAX - 1);
	if (fd < 0)
		return tern_errorf(err, -EINVAL, "fd store: %s/%u: fd %d is not a descriptor", name,
				   id, fd);
	if (s->count >= TERN_FDSTORE_MAX_ENTRIES)
		return tern_errorf(err, -ENOSPC, "fd store: full (%u entries)", s->count);
	if (reserve(s, (uint64_t)s->count + 1) < 0)
		return tern_errorf(err, -ENOMEM, "fd store: cannot grow past %u entries", s->count);
	size_t slot = probe(s, &q);
	if (s->index[slot] != 0)
		return tern_errorf(err, -EEXIST, "fd store: %s/%u is already there (fd %d)", name,
				   id, s->entry[(s->index[slot] & POS_MASK) - 1].fd);
	uint32_t pos = s->count++;
	struct entry *e = &s->entry[pos];
	_Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
		_mm_store_si128((__m128i *)e->name + i, q.v[i]);
	e->id = id;
	e->fd = fd;
	e->hash = q.hash;
	e->unused = 0;
	s->index[slot] = tag_of(q.hash) | (pos + 1);
	return 0;
}

/* The key's entry, or NULL. */
static inline __attribute__((always_inline)) struct entry *lookup(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	struct query q;
	if (make_query(name, id, &q) < 0)
		return NULL;
	uint32_t v = s->index[probe(s, &q)];
	return v != 0 ? &s->entry[(v & POS_MASK) - 1] : NULL;
}

int tern_fdstore_find(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	const struct entry *e = lookup(s, name, id);
	return e != NULL ? e->fd : -ENOENT;
}

int tern_fdstore_update(struct tern_fdstore *s, const char *name, uint32_t id, int fd)
{
	struct entry *e = fd >= 0 ? lookup(s, name, id) : NULL;
	if (e == NULL)
		return -ENOENT;
	int old = e->fd;
	e->fd = fd;
	return old;
}

/* Is home h cyclically within (hole, at]?  Then the slot at `at` may not
 * move back to the hole without leaving its probe path. */
static int stays(size_t h, size_t hole, size_t at)
{
	return hole <= at ? (h > hole && h <= at) : (h > hole || h <= at);
}

int tern_fdstore_remove(struct tern_fdstore *s, const char *name, uint32_t id)
{
	struct query q;
	if (make_query(name, id, &q) < 0)
		return -ENOENT;
	size_t hole = probe(s, &q);
	if (s->index[hole] == 0)
		return -ENOENT;
	uint32_t pos = (s->index[hole] & POS_MASK) - 1;
	int fd = s->entry[pos].fd;
	/* Backward-shift deletion: no tombstones, so probes stay short. */
	size_t mask = mask_of(s);
	for (size_t at = (hole + 1) & mask; s->index[at] != 0; at = (at + 1) & mask) {
		uint32_t hash = s->entry[(s->index[at] & POS_MASK) - 1].hash;
		if (stays(home_of(s, hash), hole, at))
			continue;
		s->index[hole] = s->index[at];
		hole = at;
	}
	s->index[hole] = 0;
	/* Keep the entries dense: the last one moves into the gap. */
	uint32_t last = --s->count;
	if (pos != last) {
		s->entry[pos] = s->entry[last];
		size_t i = slot_of(s, s->entry[pos].hash, last);
		s->index[i] = tag_of(s->entry[pos].hash) | (pos + 1);
	}
	return fd;
}

uint32_t tern_fdstore_count(const struct tern_fdstore *s)
{
	return s->count;
}

int tern_fdstore_walk(const struct tern_fdstore *s, tern_fdstore_fn fn, void *ctx)
{
	for (uint32_t pos = 0; pos < s->count; pos++) {
		const struct entry *e = &s->entry[pos];
		int rc = fn(ctx, e->name, e->id, e->fd);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void tern_fdstore_close_all(struct tern_fdstore *s)
{
	for (uint32_t pos = 0; pos < s->count; pos++)
		close(s->entry[pos].fd);
	s->count = 0;
	memset(s->index, 0, sizeof *s->index << s->bits);
}

/* ------------------------------------------------------------ vmstate */

/* Key and value descriptions read straight out of an entry. */
static const struct tern_vmstate_field key_fields[] = {
	{ .name = "name", .type = TERN_VMS_STRING, .offset = offsetof(struct entry, name),
	  .size = TERN_FDSTORE_NAME_MAX },
	{ .name = "id", .type = TERN_VMS_U32, .offset = offsetof(struct entry, id) },
	{ 0 },
};

static int key_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct entry *e = obj;
	if (e->name[0] == '\0')
		return tern_errorf(err, -EBADMSG, "fd store: an entry with an empty name");
	return 0;
}

static const struct tern_vmstate_desc key_desc = {
	.name = "fd-key",
	.size = sizeof(struct entry),
	.version = 1,
	.min_version = 1,
	.fields = key_fields,
	.post_load = key_post_load,
};

static const struct tern_vmstate_field value_fields[] = {
	{ .name = "fd", .type = TERN_VMS_I32, .offset = offsetof(struct entry, fd) },
	{ 0 },
};

static int value_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct entry *e = obj;
	if (e->fd < 0)
		return tern_errorf(err, -EBADMSG, "fd store: fd %d is not a descriptor", e->fd);
	return 0;
}

static const struct tern_vmstate_desc value_desc = {
	.name = "fd",
	.size = sizeof(struct entry),
	.version = 1,
	.min_version = 1,
	.fields = value_fields,
	.post_load = value_post_load,
};

static uint32_t hash_count(const void *table)
{
	return tern_fdstore_count(table);
}

static int hash_walk(const void *table, int (*fn)(void *ctx, const void *key, const void *value),
		     void *ctx)
{
	const struct tern_fdstore *s = table;
	for (uint32_t pos = 0; pos < s->count; pos++) {
		int rc = fn(ctx, &s->entry[pos], &s->entry[pos]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void *hash_create(uint32_t expected)
{
	return store_for(expected);
}

static int hash_insert(void *table, const void *key, const void *value)
{
	const struct entry *k = key, *v = value;
	return tern_fdstore_add(table, k->name, k->id, v->fd, NULL);
}

static void hash_destroy(void *table)
{
	tern_fdstore_free(table);
}

const struct tern_vmstate_hash tern_fdstore_hash = {
	.key = &key_desc,
	.value = &value_desc,
	.max_entries = TERN_FDSTORE_MAX_ENTRIES,
	.count = hash_count,
	.walk = hash_walk,
	.create = hash_create,
	.insert = hash_insert,
	.destroy = hash_destroy,
};
