/* How each page goes out: zero, whole, XBZRLE delta, changed blocks. */
#include <string.h>

#include "engine.h"
#include "tern/digests.h"
#include "tern/pagecache.h"
#include "tern/xbzrle.h"
#include "tern/zero.h"

int engine_flush_zeros(struct engine *e)
{
	int rc = 0;
	if (e->zrun_len)
		rc = tern_stream_zero_run(&e->w, e->zrun_gfn, e->zrun_len);
	e->zrun_len = 0;
	return rc;
}

int engine_zero_pages(struct engine *e, uint64_t gfn, uint64_t n)
{
	e->duplicate += n;
	if (e->zrun_len && e->zrun_gfn + e->zrun_len == gfn) {
		e->zrun_len += n;
		return 0;
	}
	int rc = engine_flush_zeros(e);
	e->zrun_gfn = gfn;
	e->zrun_len = n;
	return rc;
}

/* A dirty page missing from the cache goes as its changed blocks only while
 * they are fewer than this many bytes; beyond, whole. */
#define BLOCKS_MAX_BYTES (PAGE / 2)

/*
 * With deltas on, a page the cache missed: its changed blocks if the
 * digests know what the destination holds and few changed, else whole.
 * `snap` is what is sent; it goes into the cache either way.
 */
static int send_uncached(struct engine *e, uint64_t gfn, const uint8_t *snap)
{
	e->miss++;
	uint8_t *slot = tern_pagecache_put(e->cache, gfn);
	if (slot != NULL)
		memcpy(slot, snap, PAGE);
	uint64_t changed;
	if (tern_digests_update(e->digests, gfn, snap, &changed) == 0) {
		size_t bytes = (size_t)__builtin_popcountll(changed) * TERN_STREAM_BLOCK;
		if (changed == 0) { /* the peer already has exactly this */
			e->skipped++;
			return 0;
		}
		if (bytes < BLOCKS_MAX_BYTES) {
			e->delta_pages++;
			e->delta_bytes += bytes;
			return tern_stream_blocks(&e->w, gfn, changed, snap);
		}
	} else {
		tern_digests_record(e->digests, gfn, snap);
	}
	e->normal++;
	return tern_stream_raw(&e->w, gfn, snap);
}

/* With deltas on: XBZRLE against the cached copy, or send_uncached. */
static int send_delta(struct engine *e, uint64_t gfn, const uint8_t *host)
{
	/* Encode from a snapshot: the guest may write the page meanwhile, and
	 * the cache and digests must hold exactly what was sent. */
	memcpy(e->snap, host, PAGE);
	if (e->bulk) { /* seed 004: nothing enters the cache in the bulk stage */
		tern_digests_record(e->digests, gfn, e->snap);
		e->normal++;
		return tern_stream_raw(&e->w, gfn, e->snap);
	}
	uint8_t *cached = tern_pagecache_get(e->cache, gfn);
	if (cached == NULL)
		return send_uncached(e, gfn, e->snap);
	int n = tern_xbzrle_encode(cached, e->snap, PAGE, e->enc, sizeof e->enc);
	if (n == 0) {
		e->skipped++;
		return 0;
	}
	memcpy(cached, e->snap, PAGE);
	tern_digests_record(e->digests, gfn, e->snap);
	if (n > 0) {
		e->xbzrle_pages++;
		e->xbzrle_bytes += (uint64_t)n;
		e->xbzrle_in += PAGE;
		return tern_stream_xbzrle(&e->w, gfn, e->enc, (size_t)n);
	}
	e->overflow++;
	e->normal++;
	return tern_stream_raw(&e->w, gfn, e->snap);
}

/* One page, as the rules of the stage say. */
int engine_send_page(struct engine *e, uint64_t gfn, const uint8_t *host)
{
	int rc = engine_tick(e);
	if (rc < 0)
		return rc;
	if (tern_is_zero(host, PAGE)) {
		if (e->cache != NULL) { /* the peer has zeros now */
			tern_pagecache_drop(e->cache, gfn);
			tern_digests_drop(e->digests, gfn);
		}
		return engine_zero_pages(e, gfn, 1);
	}
	if ((rc = engine_flush_zeros(e)) < 0)
		return rc;
	if (e->cache != NULL)
		return send_delta(e, gfn, host);
	e->normal++;
	return tern_stream_raw(&e->w, gfn, host);
}
