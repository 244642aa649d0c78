/* The fd store: open addressing over cache-line entries; see fdstore.h. */
#include "tern/fdstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_BITS 4
#define MAX_BITS 26 /* room for TERN_FDSTORE_MAX_ENTRIES at the load limit */

/* One cache line: the whole key is here, so a hit reads one line.  The
 * name is zero-padded, so names compare as whole 8-byte words. */
struct entry {
	char name[TERN_FDSTORE_NAME_MAX];
	uint32_t tag; /* 0: empty; else the key's hash, low bit set */
	uint32_t id;
	int32_t fd;
	uint32_t unused;
};
_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");
_Static_assert(TERN_FDSTORE_NAME_MAX % 8 == 0, "names are whole words");

#define NAME_WORDS (TERN_FDSTORE_NAME_MAX / 8)

struct tern_fdstore {
	struct entry *slot;
	unsigned bits;
	uint32_t count;
};

/* A key made ready for probing: the name zero-padded into words (as in an
 * entry), how many words hold it and its NUL, and its tag. */
struct query {
	uint64_t w[NAME_WORDS];
	unsigned words;
	uint32_t id;
	uint32_t tag;
};

static inline uint64_t load64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* Two multiply lanes, so the chain is half as long as the name. */
static uint32_t query_tag(const struct query *q)
{
	uint64_t a = 0x9e3779b97f4a7c15ULL ^ q->id, b = 0xc2b2ae3d27d4eb4fULL ^ q->words;
	unsigned i = 0;
	for (; i + 2 <= q->words; i += 2) {
		a = (a ^ q->w[i]) * 0xff51afd7ed558ccdULL;
		b = (b ^ q->w[i + 1]) * 0xc4ceb9fe1a85ec53ULL;
	}
	if (i < q->words)
		a = (a ^ q->w[i]) * 0xff51afd7ed558ccdULL;
	uint64_t h = a ^ (b >> 29 | b << 35);
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return (uint32_t)h | 1;
}

/* Valid names are 1 .. NAME_MAX - 1 bytes; 0 if made, else -EINVAL. */
static int make_query(const char *name, uint32_t id, struct query *q)
{
	if (name == NULL)
		return -EINVAL;
	size_t len = strnlen(name, TERN_FDSTORE_NAME_MAX);
	if (len == 0 || len == TERN_FDSTORE_NAME_MAX)
		return -EINVAL;
	/* Word by word from registers: a memcpy's odd-sized stores would stall
	 * the word loads that follow. */
	size_t full = len / 8, i = 0;
	for (; i < full; i++)
		q->w[i] = load64(name + 8 * i);
	uint64_t tail = 0;
	for (size_t b = len % 8; b-- > 0;)
		tail = tail << 8 | (uint8_t)name[8 * full + b];
	q->w[i++] = tail;
	for (; i < NAME_WORDS; i++)
		q->w[i] = 0;
	q->words = (unsigned)(full + 1);
	q->id = id;
	q->tag = query_tag(q);
	return 0;
}

static inline int name_matches(const struct entry *e, const struct query *q)
{
	uint64_t diff = 0;
	for (unsigned i = 0; i < q->words; i++)
		diff |= load64(e->name + 8 * i) ^ q->w[i];
	return diff == 0;
}

static inline size_t home_of(const struct tern_fdstore *s, uint32_t tag)
{
	return tag >> (32 - s->bits);
}

static inline size_t mask_of(const struct tern_fdstore *s)
{
	return ((size_t)1 << s->bits) - 1;
}

static struct entry *new_slots(unsigned bits)
{
	size_t bytes = sizeof(struct entry) << bits;
	struct entry *slot = aligned_alloc(64, bytes);
	if (slot != NULL)
		memset(slot, 0, bytes);
	return slot;
}

/* The fewest bits whose table holds n entries under the load limit (7/10). */
static unsigned bits_for(uint64_t n)
{
	unsigned bits = MIN_BITS;
	while (bits < MAX_BITS && n * 10 > ((uint64_t)7 << bits))
		bits++;
	return bits;
}

static struct tern_fdstore *store_with_bits(unsigned bits)
{
	struct tern_fdstore *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->bits = bits;
	s->slot = new_slots(bits);
	if (s->slot == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

struct tern_fdstore *tern_fdstore_new(void)
{
	return store_with_bits(MIN_BITS);
}

void tern_fdstore_free(struct tern_fdstore *s)
{
	if (s == NULL)
		return;
	free(s->slot);
	free(s);
}

/* The slot holding the key, or the empty slot ending its probe sequence. */
static size_t probe(const struct tern_fdstore *s, const struct query *q)
{
	size_t mask = mask_of(s);
	for (size_t i = home_of(s, q->tag);; i = (i + 1) & mask) {
		const struct entry *e = &s->slot[i];
		if (e->tag == 0)
			return i;
		if (e->tag == q->tag && e->id == q->id && name_matches(e, q))
			return i;
	}
}

static int grow(struct tern_fdstore *s)
{
	if (s->bits == MAX_BITS)
		return -ENOSPC;
	struct entry *old = s->slot;
	size_t old_n = (size_t)1 << s->bits;
	struct entry *slot = new_slots(s->bits + 1);
	if (slot == NULL)
		return -ENOMEM;
	s->slot = slot;
	s->bits++;
	size_t mask = mask_of(s);
	for (size_t i = 0; i < old_n; i++) {
		if (old[i].tag == 0)
			continue;
		size_t j = home_of(s, old[i].tag);
		while (slot[j].tag != 0)
			j = (j + 1) & mask;
		slot[j] = old[i];
	}
	free(old);
	return 0;
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
	if ((uint64_t)(s->count + 1) * 10 > ((uint64_t)7 << s->bits)) {
		int rc = grow(s);
		if (rc < 0)
			return tern_errorf(err, rc, "fd store: cannot grow past %u entries", s->count);
	}
	struct entry *e = &s->slot[probe(s, &q)];
	if (e->tag != 0)
		return tern_errorf(err, -EEXIST, "fd store: %s/%u is already there (fd %d)", name,
				   id, e->fd);
	memcpy(e->name, q.w, sizeof e->name);
	e->tag = q.tag;
	e->id = id;
	e->fd = fd;
	e->unused = 0;
	s->count++;
	return 0;
}

int tern_fdstore_find(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	struct query q;
	if (make_query(name, id, &q) < 0)
		return -ENOENT;
	const struct entry *e = &s->slot[probe(s, &q)];
	return e->tag != 0 ? e->fd : -ENOENT;
}

int tern_fdstore_update(struct tern_fdstore *s, const char *name, uint32_t id, int fd)
{
	struct query q;
	if (fd < 0 || make_query(name, id, &q) < 0)
		return -ENOENT;
	struct entry *e = &s->slot[probe(s, &q)];
	if (e->tag == 0)
		return -ENOENT;
	int old = e->fd;
	e->fd = fd;
	return old;
}

/* Is home h cyclically within (hole, at]?  Then the entry at `at` may not
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
	if (s->slot[hole].tag == 0)
		return -ENOENT;
	int fd = s->slot[hole].fd;
	/* Backward-shift deletion: no tombstones, so probes stay short. */
	size_t mask = mask_of(s);
	for (size_t at = (hole + 1) & mask; s->slot[at].tag != 0; at = (at + 1) & mask) {
		if (stays(home_of(s, s->slot[at].tag), hole, at))
			continue;
		s->slot[hole] = s->slot[at];
		hole = at;
	}
	s->slot[hole].tag = 0;
	s->count--;
	return fd;
}

uint32_t tern_fdstore_count(const struct tern_fdstore *s)
{
	return s->count;
}

int tern_fdstore_walk(const struct tern_fdstore *s, tern_fdstore_fn fn, void *ctx)
{
	size_t n = (size_t)1 << s->bits;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &s->slot[i];
		if (e->tag == 0)
			continue;
		int rc = fn(ctx, e->name, e->id, e->fd);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void tern_fdstore_close_all(struct tern_fdstore *s)
{
	size_t n = (size_t)1 << s->bits;
	for (size_t i = 0; i < n; i++) {
		if (s->slot[i].tag != 0)
			close(s->slot[i].fd);
		s->slot[i].tag = 0;
	}
	s->count = 0;
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
	size_t n = (size_t)1 << s->bits;
	for (size_t i = 0; i < n; i++) {
		if (s->slot[i].tag == 0)
			continue;
		int rc = fn(ctx, &s->slot[i], &s->slot[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void *hash_create(uint32_t expected)
{
	return store_with_bits(bits_for(expected));
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
