/*
 * Block digests: for every page the migration has sent, a 64-bit digest of
 * each of its 64-byte blocks, as the destination now holds them.  When a
 * dirty page is not in the XBZRLE page cache (the cache holds whole pages
 * and is far smaller than guest RAM), the digests still say which blocks
 * changed, so only those are sent.  They cost 1/8 of a page rather than a
 * whole one, so a budget that caches N pages keeps digests of 8 N; pages
 * beyond the budget simply go whole.
 *
 * A digest mixes each 8-byte word with keys drawn at random for each set
 * of digests (so no guest can aim at a collision) and sums the words: a
 * change to one word always changes the digest, and any other change
 * escapes it with a probability of about 2^-64.
 */
#ifndef TERN_DIGESTS_H
#define TERN_DIGESTS_H

#include <stddef.h>
#include <stdint.h>

#define TERN_DIGEST_PAGE 4096
#define TERN_DIGEST_BLOCK 64
#define TERN_DIGEST_BLOCKS (TERN_DIGEST_PAGE / TERN_DIGEST_BLOCK) /* 64: a u64 mask */

struct tern_digests;

/* Digests for pages 0 .. pages - 1, in at most max_bytes (allocated as
 * pages are recorded, 2 MiB of guest RAM at a time).  NULL on no memory. */
struct tern_digests *tern_digests_new(uint64_t pages, size_t max_bytes);
void tern_digests_free(struct tern_digests *d);

/* The peer now holds `content` for `page` (a no-op beyond the budget). */
void tern_digests_record(struct tern_digests *d, uint64_t page, const uint8_t *content);
/* The peer's copy is unknown or zero: forget it. */
void tern_digests_drop(struct tern_digests *d, uint64_t page);
/* Which blocks of `content` differ from what the peer holds: 0 with the
 * mask (bit i: block i), or -1 when nothing is recorded for the page.  On
 * 0, the record becomes `content` (the caller sends the changed blocks). */
int tern_digests_update(struct tern_digests *d, uint64_t page, const uint8_t *content,
			uint64_t *changed);
/* Memory in use. */
size_t tern_digests_bytes(const struct tern_digests *d);

#endif
