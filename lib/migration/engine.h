/*
 * The precopy engine's insides, shared by its files: precopy.c runs the
 * stages, send.c decides how each page goes out.
 */
#ifndef TERN_MIGRATION_ENGINE_H
#define TERN_MIGRATION_ENGINE_H

#include <stdint.h>

#include "tern/migration.h"

#define PAGE TERN_STREAM_PAGE

struct engine {
	struct tern_migration *m;
	const struct tern_mig_source_ops *ops;
	void *o;
	struct tern_stream_writer w;
	struct tern_mig_region *reg;
	size_t nreg;
	struct tern_pagecache *cache;
	int bulk; /* the bulk stage: nothing goes into the cache */
	uint64_t *batch;
	uint8_t snap[PAGE] __attribute__((aligned(64)));
	uint8_t enc[PAGE];
	uint64_t zrun_gfn, zrun_len; /* zero pages waiting to go as one run */
	uint64_t start_ms, since_stats, published_ms;
	uint64_t tracking_since_us;
	/* counters, published to m->stats now and then */
	uint64_t duplicate, normal, xbzrle_pages, xbzrle_bytes, miss, overflow, skipped;
	uint64_t xbzrle_in, pages_sent, delta_pages, delta_bytes;
	uint64_t deferred; /* bulk stage: pages left for the first iteration */
	struct tern_digests *digests; /* with the cache: what the peer holds, by block */
	unsigned throttle;
	int stopped; /* the vCPUs are paused by us */
	int switched; /* the switchover began: at_switchover bytes had gone */
	uint64_t at_switchover;
	struct tern_stream_reader replies; /* two-way channels: what the destination says */
	int have_replies;
	char refused[TERN_ERROR_MAX];      /* why the destination gave up, if it said */
	/* Once the guest is stopped: how long the destination may leave us
	 * waiting (for READY, or to take in the stream), the downtime limit
	 * that came from, and whether we gave up on it. */
	int answer_ms;
	uint64_t answer_limit_ms;
	int gave_up;
};

/* What the destination may take beyond the downtime limit once the guest
 * stops: to take in what the socket buffers still hold (a few MiB), apply
 * the vCPU and device state, and say READY (docs/migration.md). */
#define ENGINE_ANSWER_GRACE_MS 1000

/* send.c */
int engine_send_page(struct engine *e, uint64_t gfn, const uint8_t *host);
/* Zero pages gather into one run until something else is sent. */
int engine_zero_pages(struct engine *e, uint64_t gfn, uint64_t n);
int engine_flush_zeros(struct engine *e);

/* precopy.c: called for every page sent (statistics, the peer's replies). */
int engine_tick(struct engine *e);

/* peer.c */
/* Has the destination given up mid-stream (0 or -EPROTO, e->refused saying
 * why)?  Looked at now and then rather than writing into a dead connection
 * until it fills; waits up to timeout_ms. */
int engine_peer_check(struct engine *e, int timeout_ms);
/* After END on a two-way channel: READY within e->answer_ms, then GO.
 * Anything else: not done (and the destination will not run the guest). */
int engine_handshake(struct engine *e, struct tern_error *err);
/* The destination left the stopped guest waiting too long (`what`): no GO
 * will ever go, and err says so; -ETIMEDOUT. */
int engine_give_up(struct engine *e, const char *what, struct tern_error *err);

#endif
