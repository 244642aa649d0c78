/* The fd store's memory layout, shared by its table code (fdstore.c) and
 * its key probing (locate.c); not part of libtern's interface. */
#ifndef TERN_FDSTORE_LAYOUT_H
#define TERN_FDSTORE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/fdstore.h"

/* One cache line per entry, the whole key inline and zero-padded, so a key
 * compares as whole vectors.  Entries are dense, in insertion order until a
 * removal moves the last entry into the hole: a new process that finds its
 * fds in the order it creates its devices reads them in a stream. */
struct fdstore_entry {
	_Alignas(64) char name[TERN_FDSTORE_NAME_MAX];
	uint32_t id;
	int32_t fd;
	uint32_t hash;
	uint32_t unused;
};
_Static_assert(sizeof(struct fdstore_entry) == 64, "an entry is one cache line");
_Static_assert(TERN_FDSTORE_NAME_MAX == 48, "a name is three 16-byte vectors");

/* An index slot: 0 is empty, else the entry's position + 1 in the low
 * bits and 8 bits of its hash above them, which spare most probes past a
 * foreign slot a visit to its entry.  Four bytes a slot keep the index of
 * 100,000 fds in 1 MiB, within a core's L2. */
#define FDSTORE_POS_BITS 24
#define FDSTORE_POS_MASK ((1u << FDSTORE_POS_BITS) - 1)
_Static_assert(TERN_FDSTORE_MAX_ENTRIES <= FDSTORE_POS_MASK - 1, "positions + 1 fit a slot");

struct tern_fdstore {
	struct fdstore_entry *entry; /* count used of capacity */
	uint32_t count, capacity;
	uint32_t *index; /* 1 << bits slots, at most half used */
	unsigned bits;
};

static inline uint32_t fdstore_tag(uint32_t hash)
{
	return (hash & 0xff) << FDSTORE_POS_BITS;
}

static inline size_t fdstore_home(const struct tern_fdstore *s, uint32_t hash)
{
	return hash >> (32 - s->bits);
}

static inline size_t fdstore_mask(const struct tern_fdstore *s)
{
	return ((size_t)1 << s->bits) - 1;
}

/*
 * The slot naming (name, id)'s entry, or the empty slot that ends its
 * probe; -EINVAL for a name that is not 1 .. NAME_MAX - 1 bytes.  When key
 * is not NULL it receives the key as an entry holds it: the name
 * zero-padded, the id, the hash; fd and unused zero.
 *
 * Two kernels give the same answers and the same hashes: 512-bit vectors
 * (one load, one compare per entry) where the CPU has AVX-512BW, else SSE2,
 * which every x86-64 has (tern_fdstore_use_kernel switches).
 */
extern bool fdstore_wide;
long fdstore_locate_wide(const struct tern_fdstore *s, const char *name, uint32_t id,
			 struct fdstore_entry *key);
long fdstore_locate_narrow(const struct tern_fdstore *s, const char *name, uint32_t id,
			   struct fdstore_entry *key);

/* The fd of (name, id), or -ENOENT: tern_fdstore_find. */
int fdstore_find_wide(const struct tern_fdstore *s, const char *name, uint32_t id);
int fdstore_find_narrow(const struct tern_fdstore *s, const char *name, uint32_t id);

static inline long fdstore_locate(const struct tern_fdstore *s, const char *name, uint32_t id,
				  struct fdstore_entry *key)
{
	return fdstore_wide ? fdstore_locate_wide(s, name, id, key)
			    : fdstore_locate_narrow(s, name, id, key);
}

#endif
