/* The RAM precopy engine (source side); see include/tern/migration.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "tern/digests.h"
#include "tern/pagecache.h"

#define BATCH 65536          /* dirty pages taken at a time */
#define CHUNK_PAGES 512      /* bulk stage: pages between hole lookups */
#define STATS_EVERY 4096     /* pages between stats updates, at most */
#define STATS_MS 50          /* and time */
/* Block digests may use as much memory as the XBZRLE cache, and at least
 * this (it covers 512 MiB of guest RAM). */
#define DIGESTS_MIN_BYTES (64u << 20)

static const char *const status_names[] = {
	[TERN_MIG_NONE] = "none",           [TERN_MIG_SETUP] = "setup",
	[TERN_MIG_ACTIVE] = "active",       [TERN_MIG_DEVICE] = "device",
	[TERN_MIG_COMPLETED] = "completed", [TERN_MIG_FAILED] = "failed",
	[TERN_MIG_CANCELLING] = "cancelling", [TERN_MIG_CANCELLED] = "cancelled",
};

const char *tern_mig_status_name(enum tern_mig_status s)
{
	return status_names[s];
}

void tern_mig_params_default(struct tern_mig_params *p)
{
	*p = (struct tern_mig_params){
		.downtime_limit_ms = 300,
		.max_bandwidth = 0,
		.xbzrle_cache_size = 64ULL << 20,
		.throttle_initial = 20,
		.throttle_increment = 10,
		.throttle_max = 99,
	};
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static void set_status(struct engine *e, enum tern_mig_status s)
{
	pthread_mutex_lock(&e->m->lock);
	e->m->stats.status = s;
	pthread_mutex_unlock(&e->m->lock);
	if (e->ops->event)
		e->ops->event(e->o, s);
}

static int cancelled(struct engine *e)
{
	return __atomic_load_n(&e->m->cancel, __ATOMIC_ACQUIRE);
}

/* Copy the counters into the stats QMP reads. */
static void publish(struct engine *e)
{
	struct tern_mig_stats *s = &e->m->stats;
	pthread_mutex_lock(&e->m->lock);
	s->transferred = e->w.bytes;
	s->precopy_bytes = e->switched ? e->at_switchover : e->w.bytes;
	s->downtime_bytes = e->switched ? e->w.bytes - e->at_switchover : 0;
	if (e->bulk) /* every page goes once: what has not gone yet remains */
		s->remaining = s->total - (e->duplicate + e->normal + e->deferred) * PAGE;
	s->duplicate = e->duplicate;
	s->normal = e->normal;
	s->normal_bytes = e->normal * PAGE;
	s->xbzrle_pages = e->xbzrle_pages;
	s->xbzrle_bytes = e->xbzrle_bytes;
	s->xbzrle_cache_miss = e->miss;
	s->xbzrle_overflow = e->overflow;
	s->skipped = e->skipped;
	uint64_t lookups = e->miss + e->xbzrle_pages + e->overflow + e->skipped;
	s->xbzrle_cache_miss_rate = lookups ? (double)e->miss / (double)lookups : 0;
	s->xbzrle_encoding_rate = e->xbzrle_bytes ? (double)e->xbzrle_in / (double)e->xbzrle_bytes : 0;
	s->throttle_percent = e->throttle;
	s->delta_pages = e->delta_pages;
	s->bulk_deferred = e->deferred;
	s->delta_bytes = e->delta_bytes;
	s->digest_bytes = e->digests ? tern_digests_bytes(e->digests) : 0;
	s->total_time_ms = now_ms() - e->start_ms;
	pthread_mutex_unlock(&e->m->lock);
	e->since_stats = 0;
	e->published_ms = now_ms();
}

/* Every page: fresh figures for query-migrate every 50 ms or so, even on a
 * slow link, and a look at whether the destination gave up. */
int engine_tick(struct engine *e)
{
	e->pages_sent++;
	if ((++e->since_stats & 63) != 0 ||
	    (e->since_stats < STATS_EVERY && now_ms() - e->published_ms < STATS_MS))
		return 0;
	publish(e);
	return engine_peer_check(e, 0);
}

static int sync_dirty(struct engine *e, struct tern_error *err)
{
	int rc = e->ops->dirty_sync(e->o, err);
	if (rc == 0) {
		pthread_mutex_lock(&e->m->lock);
		e->m->stats.dirty_sync_count++;
		pthread_mutex_unlock(&e->m->lock);
	}
	return rc;
}

/* Bulk stage: how often to look at which pages the guest has written. */
#define BULK_SYNC_MS 50

/*
 * Every page once; holes (never-written memory) without reading them.  The
 * dirty pages are synced now and then on the way: a page written since the
 * migration began, not yet sent, is left for the first iteration (it is
 * dirty anyway, and would go twice).
 */
static int bulk_stage(struct engine *e, struct tern_error *err)
{
	e->bulk = 1;
	uint64_t last_sync = now_ms();
	for (size_t r = 0; r < e->nreg; r++) {
		const struct tern_mig_region *g = &e->reg[r];
		uint64_t first = g->gpa / PAGE, pages = g->size / PAGE, p = 0;
		while (p < pages) {
			if (cancelled(e))
				return -ECANCELED;
			if (e->ops->next_data != NULL) {
				uint64_t data = e->ops->next_data(e->o, r, p * PAGE);
				uint64_t q = data >= g->size ? pages : data / PAGE;
				if (q > p) {
					int rc = engine_zero_pages(e, first + p, q - p);
					if (rc < 0)
						return rc;
					p = q;
					continue;
				}
			}
			if (now_ms() - last_sync >= BULK_SYNC_MS) {
				int rc = sync_dirty(e, err);
				if (rc < 0)
					return rc;
				last_sync = now_ms();
			}
			uint64_t end = p + CHUNK_PAGES < pages ? p + CHUNK_PAGES : pages;
			for (; p < end; p++) {
				if (tern_dirty_test(g->dirty, p)) {
					e->deferred++;
					continue;
				}
				int rc = engine_send_page(e, first + p, g->host + p * PAGE);
				if (rc < 0)
					return tern_errorf(err, rc, "the bulk stage: %s", strerror(-rc));
			}
		}
	}
	e->bulk = 0;
	int rc = engine_flush_zeros(e);
	if (rc == 0)
		rc = tern_stream_sync(&e->w, 0);
	return rc < 0 ? tern_errorf(err, rc, "the bulk stage: %s", strerror(-rc)) : 0;
}

static uint64_t pending_pages(struct engine *e)
{
	uint64_t n = 0;
	for (size_t r = 0; r < e->nreg; r++)
		n += tern_dirty_count(e->reg[r].dirty);
	return n;
}

/* Send (and clear) every dirty page. */
static int send_dirty(struct engine *e, unsigned flags)
{
	for (size_t r = 0; r < e->nreg; r++) {
		const struct tern_mig_region *g = &e->reg[r];
		struct tern_dirty_cursor c = { 0 };
		uint64_t first = g->gpa / PAGE;
		while (c.page < tern_dirty_pages(g->dirty)) {
			if (cancelled(e))
				return -ECANCELED;
			size_t n = tern_dirty_compact(g->dirty, &c, e->batch, BATCH, flags);
			for (size_t i = 0; i < n; i++) {
				int rc = engine_send_page(e, first + e->batch[i], g->host + e->batch[i] * PAGE);
				if (rc < 0)
					return rc;
			}
			if (n == 0)
				break;
		}
	}
	return engine_flush_zeros(e);
}

static int fail(struct engine *e, int rc, struct tern_error *err)
{
	pthread_mutex_lock(&e->m->lock);
	memcpy(e->m->stats.error, err->msg, sizeof err->msg);
	pthread_mutex_unlock(&e->m->lock);
	return rc;
}

/* The guest is stopped: the last pages, the state, END and the handshake,
 * each part's time kept for query-migrate. */
static int stopped(struct engine *e, struct tern_error *err)
{
	struct tern_mig_stats *s = &e->m->stats;
	/* The limit protects the link from a running migration; once the
	 * guest waits, the rest goes at full speed (as QEMU does). */
	tern_channel_set_limit(e->m->ch, 0);
	uint64_t t = now_us();
	int rc = sync_dirty(e, err);
	if (rc < 0)
		return rc;
	uint64_t t_sync = now_us();
	if ((rc = send_dirty(e, TERN_DIRTY_TAKE)) < 0)
		return tern_errorf(err, rc, "sending the last pages: %s", strerror(-rc));
	uint64_t t_pages = now_us();
	if ((rc = e->ops->save_state(e->o, &e->w, err)) < 0)
		return rc;
	if ((rc = tern_stream_end(&e->w)) < 0)
		return tern_errorf(err, rc, "sending the end of the stream: %s", strerror(-rc));
	uint64_t t_state = now_us();
	if (e->m->ch->two_way && (rc = engine_handshake(e, err)) < 0)
		return rc;
	uint64_t t_end = now_us();
	pthread_mutex_lock(&e->m->lock);
	s->sync_us = t_sync - t;
	s->pages_us = t_pages - t_sync;
	s->state_us = t_state - t_pages;
	s->handshake_us = t_end - t_state;
	pthread_mutex_unlock(&e->m->lock);
	return 0;
}

static int switchover(struct engine *e, struct tern_error *err)
{
	set_status(e, TERN_MIG_DEVICE);
	e->switched = 1;
	e->at_switchover = e->w.bytes;
	uint64_t t_stop = now_ms(), t_stop_us = now_us();
	int rc = e->ops->stop(e->o, err);
	if (rc < 0)
		return rc;
	e->stopped = 1;
	uint64_t stop_us = now_us() - t_stop_us;
	/* A destination that stops answering (or taking the stream in) must
	 * not keep the guest stopped for long: the wait for any progress is
	 * bounded by the downtime limit and a grace. */
	struct tern_mig_params p;
	tern_migration_get_params(e->m, &p);
	e->answer_limit_ms = p.downtime_limit_ms;
	uint64_t answer = p.downtime_limit_ms + ENGINE_ANSWER_GRACE_MS;
	e->answer_ms = answer > INT_MAX ? INT_MAX : (int)answer;
	tern_channel_set_stall(e->m->ch, e->answer_ms);
	rc = stopped(e, err);
	tern_channel_set_stall(e->m->ch, 0);
	if (rc < 0 && e->m->ch->stalled && !e->gave_up)
		rc = engine_give_up(e, "it took in nothing of the last of the stream", err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->m->lock);
	e->m->stats.downtime_ms = now_ms() - t_stop;
	e->m->stats.stop_us = stop_us;
	e->m->stats.remaining = 0;
	pthread_mutex_unlock(&e->m->lock);
	return 0;
}

/*
 * The link's bandwidth in bytes per millisecond: an average of periods
 * that sent enough to tell (a few pages say nothing), never above the
 * limit, and a guess until something was measured.
 */
#define MEASURE_MIN_BYTES (256u << 10)
#define BANDWIDTH_GUESS 1e6 /* 1 GB/s */

static double measure(double prev, uint64_t bytes, uint64_t us)
{
	if (bytes < MEASURE_MIN_BYTES || us == 0)
		return prev;
	double sample = (double)bytes * 1000.0 / (double)us;
	return prev > 0 ? 0.5 * prev + 0.5 * sample : sample;
}

static double usable_bandwidth(const struct engine *e, double measured)
{
	double bw = measured > 0 ? measured : BANDWIDTH_GUESS;
	uint64_t limit = __atomic_load_n(&e->m->ch->limit, __ATOMIC_RELAXED);
	if (limit && bw > (double)limit / 1000.0)
		bw = (double)limit / 1000.0;
	return bw;
}

/* Switch over at once when what is left takes less than this to send. */
#define SETTLE_FLOOR_MS 2.0
/* Rounds beyond the one that first fits the limit. */
#define SETTLE_ROUNDS_MAX 8

/*
 * Iterate until what is left fits the downtime limit, and then while more
 * rounds still shrink it fast: the downtime is what is left then.
 */
static int iterate(struct engine *e, struct tern_error *err)
{
	/* The first iteration's dirty pages were written since tracking began. */
	uint64_t last_sync = e->tracking_since_us, last_bytes = e->w.bytes,
		 last_pages = e->pages_sent;
	double measured = measure(0, e->w.bytes, now_us() - e->tracking_since_us);
	unsigned slow_syncs = 0, settle_rounds = 0;
	for (uint64_t it = 1;; it++) {
		if (cancelled(e))
			return -ECANCELED;
		struct tern_mig_params p;
		tern_migration_get_params(e->m, &p); /* QMP may change them meanwhile */
		int rc = sync_dirty(e, err);
		if (rc < 0)
			return rc;
		if (e->cache != NULL) /* ages the entries for replacement */
			tern_pagecache_next_generation(e->cache);
		uint64_t t = now_us(), pending = pending_pages(e);
		uint64_t period = t - last_sync ? t - last_sync : 1;
		uint64_t sent_bytes = e->w.bytes - last_bytes, sent_pages = e->pages_sent - last_pages;
		if (it > 1)
			measured = measure(measured, sent_bytes, period);
		double bytes_per_ms = usable_bandwidth(e, measured);
		/* What the pending pages will cost on the wire, going by the
		 * last iteration (XBZRLE and zero pages cost less than a page). */
		double per_page = sent_pages ? (double)sent_bytes / (double)sent_pages : PAGE;
		if (per_page < 64)
			per_page = 64;
		double expected_ms = (double)pending * per_page / bytes_per_ms;
		pthread_mutex_lock(&e->m->lock);
		struct tern_mig_stats *s = &e->m->stats;
		s->iterations = it;
		s->remaining = pending * PAGE;
		s->expected_downtime_ms = (uint64_t)expected_ms;
		s->dirty_pages_rate = pending * 1000000 / period;
		s->mbps = bytes_per_ms * 8.0 / 1000.0;
		s->pages_per_second = sent_pages * 1000000 / period;
		pthread_mutex_unlock(&e->m->lock);
		publish(e);
		if (pending == 0)
			return 0;
		if (expected_ms <= (double)p.downtime_limit_ms) {
			/* It would fit the limit.  But if sending it live takes
			 * well under the time in which it was dirtied, another
			 * round leaves far less for the guest to wait on. */
			if (expected_ms <= SETTLE_FLOOR_MS || settle_rounds >= SETTLE_ROUNDS_MAX ||
			    expected_ms * 1000.0 > (double)period / 2)
				return 0;
			settle_rounds++;
		}
		/* Auto-converge: the guest dirties more than half of what the
		 * link carries, twice running: slow it down, more each time. */
		if (p.auto_converge && it > 1) {
			slow_syncs = (double)pending * per_page > 0.5 * (double)sent_bytes ? slow_syncs + 1 : 0;
			if (slow_syncs >= 2) {
				unsigned next = e->throttle ? e->throttle + p.throttle_increment
							    : p.throttle_initial;
				e->throttle = next > p.throttle_max ? p.throttle_max : next;
				if (e->ops->throttle)
					e->ops->throttle(e->o, e->throttle);
				slow_syncs = 0;
			}
		}
		last_sync = t;
		last_bytes = e->w.bytes;
		last_pages = e->pages_sent;
		if ((rc = send_dirty(e, TERN_DIRTY_TAKE)) < 0)
			return tern_errorf(err, rc, "sending dirty pages: %s", strerror(-rc));
		if ((rc = tern_stream_sync(&e->w, it)) < 0)
			return tern_errorf(err, rc, "writing the stream: %s", strerror(-rc));
	}
}

static int setup(struct engine *e, struct tern_error *err)
{
	struct tern_mig_params params;
	tern_migration_get_params(e->m, &params);
	const struct tern_mig_params *p = &params;
	e->reg = calloc(TERN_MIG_MAX_REGIONS, sizeof *e->reg);
	e->batch = malloc(BATCH * sizeof *e->batch);
	if (e->reg == NULL || e->batch == NULL || tern_stream_writer_init(&e->w, &e->m->ch->io) < 0 ||
	    tern_stream_reader_init_control(&e->replies, &e->m->ch->io) < 0)
		return tern_errorf(err, -ENOMEM, "out of memory");
	e->have_replies = 1;
	e->nreg = e->ops->regions(e->o, e->reg, TERN_MIG_MAX_REGIONS);
	if (p->xbzrle) {
		e->cache = tern_pagecache_new(p->xbzrle_cache_size, PAGE, TERN_PAGECACHE_WAYS,
					      TERN_PAGECACHE_LIFETIME);
		if (e->cache == NULL)
			return tern_errorf(err, -EINVAL, "xbzrle-cache-size %llu: too small (at least "
					   "%d pages) or no memory",
					   (unsigned long long)p->xbzrle_cache_size, TERN_PAGECACHE_WAYS);
	}
	if (e->cache != NULL) {
		uint64_t last = 0;
		for (size_t r = 0; r < e->nreg; r++)
			last = (e->reg[r].gpa + e->reg[r].size) / PAGE;
		e->digests = tern_digests_new(last, p->xbzrle_cache_size > DIGESTS_MIN_BYTES
							 ? p->xbzrle_cache_size
							 : DIGESTS_MIN_BYTES);
		if (e->digests == NULL)
			return tern_errorf(err, -ENOMEM, "out of memory");
	}
	/* HELLO lists RAM as contiguous ranges (memslots merged). */
	struct tern_stream_hello h = {
		.version = TERN_STREAM_VERSION,
		.page_size = PAGE,
		.flags = p->xbzrle ? TERN_STREAM_XBZRLE_FLAG : 0,
	};
	uint64_t total = 0;
	for (size_t r = 0; r < e->nreg; r++) {
		struct tern_range *last = h.ranges ? &h.range[h.ranges - 1] : NULL;
		total += e->reg[r].size;
		if (last && last->gpa + last->size == e->reg[r].gpa) {
			last->size += e->reg[r].size;
		} else if (h.ranges < TERN_STREAM_MAX_RANGES) {
			h.range[h.ranges++] = (struct tern_range){ e->reg[r].gpa, e->reg[r].size };
		} else {
			return tern_errorf(err, -E2BIG, "guest RAM has more than %d separate ranges",
					   TERN_STREAM_MAX_RANGES);
		}
	}
	pthread_mutex_lock(&e->m->lock);
	e->m->stats.total = total;
	e->m->stats.remaining = total;
	e->m->stats.expected_downtime_ms = p->downtime_limit_ms; /* until measured */
	e->m->stats.xbzrle_cache_size = e->cache ? tern_pagecache_bytes(e->cache) : 0;
	pthread_mutex_unlock(&e->m->lock);
	tern_channel_set_limit(e->m->ch, p->max_bandwidth);
	int rc = tern_stream_hello(&e->w, &h);
	if (rc < 0)
		return tern_errorf(err, rc, "writing the stream: %s", strerror(-rc));
	if (e->ops->save_setup != NULL && (rc = e->ops->save_setup(e->o, &e->w, err)) < 0)
		return rc;
	e->tracking_since_us = now_us();
	return e->ops->dirty_start(e->o, err);
}

int tern_migration_run(struct tern_migration *m)
{
	struct engine *e = calloc(1, sizeof *e);
	struct tern_error err = { .msg = "" };
	if (e == NULL)
		return -ENOMEM;
	e->m = m;
	e->ops = m->ops;
	e->o = m->opaque;
	e->start_ms = now_ms();
	set_status(e, TERN_MIG_SETUP);
	int rc = setup(e, &err);
	pthread_mutex_lock(&m->lock);
	m->stats.setup_time_ms = now_ms() - e->start_ms;
	pthread_mutex_unlock(&m->lock);
	if (rc == 0) {
		set_status(e, TERN_MIG_ACTIVE);
		rc = bulk_stage(e, &err);
	}
	if (rc == 0)
		rc = iterate(e, &err);
	if (rc == 0)
		rc = switchover(e, &err);
	/* Done, failed or cancelled: the guest runs here unless it has
	 * moved (at once: no GO went, so the destination cannot run it),
	 * and runs at full speed again. */
	if (rc < 0 && e->stopped)
		e->ops->resume(e->o);
	if (rc == -ECANCELED || (rc < 0 && cancelled(e)))
		tern_errorf(&err, -ECANCELED, "cancelled");
	else if (rc < 0 && engine_peer_check(e, 1000) < 0) /* the real reason, if it said */
		tern_errorf(&err, rc, "%s", e->refused);
	if (rc < 0) /* a partial file is no saved guest */
		tern_channel_abandon(e->m->ch, &err);
	if (e->throttle && e->ops->throttle)
		e->ops->throttle(e->o, 0);
	e->throttle = 0;
	if (e->reg != NULL)
		e->ops->dirty_stop(e->o);
	publish(e);
	if (rc == 0) { /* as QEMU: a finished migration's rate is its average, less setup */
		pthread_mutex_lock(&e->m->lock);
		struct tern_mig_stats *s = &e->m->stats;
		uint64_t ms = s->total_time_ms > s->setup_time_ms ? s->total_time_ms - s->setup_time_ms
								  : 0;
		s->mbps = ms ? (double)s->transferred * 8.0 / 1000.0 / (double)ms : 0;
		pthread_mutex_unlock(&e->m->lock);
	}
	if (rc < 0)
		fail(e, rc, &err);
	else if (e->ops->moved != NULL)
		e->ops->moved(e->o);
	set_status(e, rc == 0 ? TERN_MIG_COMPLETED : cancelled(e) ? TERN_MIG_CANCELLED : TERN_MIG_FAILED);
	tern_pagecache_free(e->cache);
	tern_digests_free(e->digests);
	tern_stream_writer_destroy(&e->w);
	if (e->have_replies)
		tern_stream_reader_destroy(&e->replies);
	free(e->reg);
	free(e->batch);
	free(e);
	return rc;
}

void tern_migration_init(struct tern_migration *m, const struct tern_mig_params *p,
			 const struct tern_mig_source_ops *ops, void *opaque,
			 struct tern_channel *ch)
{
	memset(m, 0, sizeof *m);
	m->params = *p;
	m->ops = ops;
	m->opaque = opaque;
	m->ch = ch;
	pthread_mutex_init(&m->lock, NULL);
}

void tern_migration_destroy(struct tern_migration *m)
{
	pthread_mutex_destroy(&m->lock);
}

void tern_migration_cancel(struct tern_migration *m)
{
	__atomic_store_n(&m->cancel, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&m->lock);
	if (m->stats.status == TERN_MIG_SETUP || m->stats.status == TERN_MIG_ACTIVE ||
	    m->stats.status == TERN_MIG_DEVICE)
		m->stats.status = TERN_MIG_CANCELLING;
	pthread_mutex_unlock(&m->lock);
	/* The channel may be published by another thread just now. */
	struct tern_channel *ch = __atomic_load_n(&m->ch, __ATOMIC_SEQ_CST);
	if (ch != NULL)
		tern_channel_cancel(ch);
}

void tern_migration_get_params(struct tern_migration *m, struct tern_mig_params *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->params;
	pthread_mutex_unlock(&m->lock);
}

void tern_migration_set_params(struct tern_migration *m, const struct tern_mig_params *p)
{
	pthread_mutex_lock(&m->lock);
	m->params.downtime_limit_ms = p->downtime_limit_ms;
	m->params.max_bandwidth = p->max_bandwidth;
	pthread_mutex_unlock(&m->lock);
	if (m->ch != NULL)
		tern_channel_set_limit(m->ch, p->max_bandwidth);
}

void tern_migration_get_stats(struct tern_migration *m, struct tern_mig_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	pthread_mutex_unlock(&m->lock);
}
