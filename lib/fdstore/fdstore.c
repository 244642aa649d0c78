/* The fd store: dense entries indexed by a compact open-addressing table;
 * see fdstore.h. */
#include "layout.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIN_INDEX_BITS 4
#define MIN_CAPACITY 8

/* The slot naming entry pos, whose hash is given. */
static size_t slot_of(const struct tern_fdstore *s, uint32_t hash, uint32_t pos)
{
	size_t mask = fdstore_mask(s);
	size_t i = fdstore_home(s, hash);
	while ((s->index[i] & FDSTORE_POS_MASK) != pos + 1)
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

/* Cache-line aligned memory.  A table of 2 MiB or more is mapped fresh, on
 * a huge-page boundary, and asks for huge pages before its first touch: a
 * million fds' random lookups would otherwise miss the TLB each time, and
 * malloc's recycled heap comes already faulted in small pages. */
static size_t huge_round(size_t bytes)
{
	return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

static void *table_alloc(size_t bytes)
{
	if (bytes < HUGE_PAGE)
		return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	bytes = huge_round(bytes);
	size_t span = bytes + HUGE_PAGE;
	uint8_t *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	uint8_t *p = (uint8_t *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (p > map)
		munmap(map, (size_t)(p - map));
	if (map + span > p + bytes)
		munmap(p + bytes, (size_t)(map + span - (p + bytes)));
	madvise(p, bytes, MADV_HUGEPAGE); /* advice: without it, small pages */
	return p;
}

/* Free what table_alloc(bytes) gave (or NULL). */
static void table_free(void *p, size_t bytes)
{
	if (bytes < HUGE_PAGE)
		free(p);
	else if (p != NULL)
		munmap(p, huge_round(bytes));
}

static size_t index_bytes(unsigned bits)
{
	return sizeof(uint32_t) << bits;
}

/* Build an index of 1 << bits slots over the entries. */
static int reindex(struct tern_fdstore *s, unsigned bits)
{
	size_t bytes = index_bytes(bits);
	uint32_t *index = table_alloc(bytes);
	if (index == NULL)
		return -ENOMEM;
	memset(index, 0, bytes);
	table_free(s->index, index_bytes(s->bits));
	s->index = index;
	s->bits = bits;
	size_t mask = fdstore_mask(s);
	for (uint32_t pos = 0; pos < s->count; pos++) {
		uint32_t hash = s->entry[pos].hash;
		size_t i = fdstore_home(s, hash);
		while (index[i] != 0)
			i = (i + 1) & mask;
		index[i] = fdstore_tag(hash) | (pos + 1);
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
		struct fdstore_entry *entry = table_alloc(cap * sizeof *entry);
		if (entry == NULL)
			return -ENOMEM;
		if (s->count != 0)
			memcpy(entry, s->entry, (size_t)s->count * sizeof *entry);
		table_free(s->entry, (size_t)s->capacity * sizeof *entry);
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
	table_free(s->entry, (size_t)s->capacity * sizeof *s->entry);
	table_free(s->index, index_bytes(s->bits));
	free(s);
}

int tern_fdstore_add(struct tern_fdstore *s, const char *name, uint32_t id, int fd,
		     struct tern_error *err)
{
	if (fd < 0)
		return tern_errorf(err, -EINVAL, "fd store: %s/%u: fd %d is not a descriptor",
				   name != NULL ? name : "(null)", id, fd);
	if (s->count >= TERN_FDSTORE_MAX_ENTRIES)
		return tern_errorf(err, -ENOSPC, "fd store: full (%u entries)", s->count);
	/* Room first: growing the index moves every slot. */
	if (reserve(s, (uint64_t)s->count + 1) < 0)
		return tern_errorf(err, -ENOMEM, "fd store: cannot grow past %u entries", s->count);
	struct fdstore_entry key;
	long slot = fdstore_locate(s, name, id, &key);
	if (slot < 0)
		return tern_errorf(err, -EINVAL, "fd store: a name must be 1 to %d bytes",
				   TERN_FDSTORE_NAME_MAX - 1);
	if (s->index[slot] != 0)
		return tern_errorf(err, -EEXIST, "fd store: %s/%u is already there (fd %d)", name,
				   id, s->entry[(s->index[slot] & FDSTORE_POS_MASK) - 1].fd);
	uint32_t pos = s->count++;
	key.fd = fd;
	s->entry[pos] = key;
	s->index[slot] = fdstore_tag(key.hash) | (pos + 1);
	return 0;
}

/* The key's entry, or NULL. */
static struct fdstore_entry *entry_of(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	long slot = fdstore_locate(s, name, id, NULL);
	uint32_t v = slot >= 0 ? s->index[slot] : 0;
	return v != 0 ? &s->entry[(v & FDSTORE_POS_MASK) - 1] : NULL;
}

int tern_fdstore_find(const struct tern_fdstore *s, const char *name, uint32_t id)
{
	return fdstore_wide ? fdstore_find_wide(s, name, id) : fdstore_find_narrow(s, name, id);
}

int tern_fdstore_update(struct tern_fdstore *s, const char *name, uint32_t id, int fd)
{
	struct fdstore_entry *e = fd >= 0 ? entry_of(s, name, id) : NULL;
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
	long found = fdstore_locate(s, name, id, NULL);
	if (found < 0 || s->index[found] == 0)
		return -ENOENT;
	size_t hole = (size_t)found;
	uint32_t pos = (s->index[hole] & FDSTORE_POS_MASK) - 1;
	int fd = s->entry[pos].fd;
	/* Backward-shift deletion: no tombstones, so probes stay short. */
	size_t mask = fdstore_mask(s);
	for (size_t at = (hole + 1) & mask; s->index[at] != 0; at = (at + 1) & mask) {
		uint32_t hash = s->entry[(s->index[at] & FDSTORE_POS_MASK) - 1].hash;
		if (stays(fdstore_home(s, hash), hole, at))
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
		s->index[i] = fdstore_tag(s->entry[pos].hash) | (pos + 1);
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
		const struct fdstore_entry *e = &s->entry[pos];
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
	memset(s->index, 0, index_bytes(s->bits));
}

/* ------------------------------------------------------------ vmstate */

/* Key and value descriptions read straight out of an entry. */
static const struct tern_vmstate_field key_fields[] = {
	TERN_VMS_FIELD_STRING(struct fdstore_entry, name, 0),
	TERN_VMS_FIELD_U32(struct fdstore_entry, id, 0),
	TERN_VMS_FIELD_END,
};

static int key_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct fdstore_entry *e = obj;
	if (e->name[0] == '\0')
		return tern_errorf(err, -EBADMSG, "fd store: an entry with an empty name");
	return 0;
}

static const struct tern_vmstate_desc key_desc = {
	.name = "fd-key",
	.size = sizeof(struct fdstore_entry),
	.version = 1,
	.min_version = 1,
	.fields = key_fields,
	.post_load = key_post_load,
};

static const struct tern_vmstate_field value_fields[] = {
	TERN_VMS_FIELD_I32(struct fdstore_entry, fd, 0),
	TERN_VMS_FIELD_END,
};

static int value_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	const struct fdstore_entry *e = obj;
	if (e->fd < 0)
		return tern_errorf(err, -EBADMSG, "fd store: fd %d is not a descriptor", e->fd);
	return 0;
}

static const struct tern_vmstate_desc value_desc = {
	.name = "fd",
	.size = sizeof(struct fdstore_entry),
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
	const struct fdstore_entry *k = key, *v = value;
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
