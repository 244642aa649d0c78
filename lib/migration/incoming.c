/* The migration loader (destination side); see include/tern/migration.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern/migration.h"
#include "tern/copy.h"
#include "tern/xbzrle.h"

#define PAGE TERN_STREAM_PAGE
#define GO_TIMEOUT_MS 30000
#define LINGER_MS 3000
#define POPULATE_PAGES 512 /* 2 MiB */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loader {
	struct tern_incoming *in;
	struct tern_mig_region *reg;
	size_t nreg;
	uint64_t **touched; /* per region: pages written during this migration */
	uint64_t **populated; /* per region: POPULATE_CHUNK chunks made present */
	uint64_t duplicate, normal, xbzrle_pages, xbzrle_bytes, delta_pages, delta_bytes;
	/* Received up to the last SYNC: the source sends none once the guest
	 * is stopped, so what follows is what went in the downtime. */
	uint64_t at_last_sync;
	int ended; /* END came: until then everything counts as precopy */
};

static void set_status(struct tern_incoming *in, enum tern_mig_status s)
{
	pthread_mutex_lock(&in->lock);
	in->stats.status = s;
	pthread_mutex_unlock(&in->lock);
	if (in->ops->event)
		in->ops->event(in->opaque, s);
}

/* The region holding gfn (regions are in address order). */
static long region_of(const struct loader *l, uint64_t gfn)
{
	size_t lo = 0, hi = l->nreg;
	uint64_t gpa = gfn * PAGE;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct tern_mig_region *g = &l->reg[mid];
		if (gpa < g->gpa)
			hi = mid;
		else if (gpa - g->gpa >= g->size)
			lo = mid + 1;
		else
			return (long)mid;
	}
	return -1;
}

/* The HELLO must describe exactly this guest's RAM. */
static int check_layout(struct loader *l, const struct tern_stream_hello *h,
			struct tern_error *err)
{
	struct tern_range mine[TERN_STREAM_MAX_RANGES];
	uint32_t n = 0;
	for (size_t r = 0; r < l->nreg; r++) {
		if (n && mine[n - 1].gpa + mine[n - 1].size == l->reg[r].gpa)
			mine[n - 1].size += l->reg[r].size;
		else if (n < TERN_STREAM_MAX_RANGES)
			mine[n++] = (struct tern_range){ l->reg[r].gpa, l->reg[r].size };
	}
	if (n != h->ranges)
		return tern_errorf(err, -EINVAL, "the source's RAM has %u ranges, this guest's %u: "
				   "start the destination with the same --memory", h->ranges, n);
	for (uint32_t i = 0; i < n; i++)
		if (mine[i].gpa != h->range[i].gpa || mine[i].size != h->range[i].size)
			return tern_errorf(err, -EINVAL, "the source's RAM range %u is %llu MiB at "
					   "0x%llx, this guest's %llu MiB at 0x%llx: start the "
					   "destination with the same --memory", i,
					   (unsigned long long)(h->range[i].size >> 20),
					   (unsigned long long)h->range[i].gpa,
					   (unsigned long long)(mine[i].size >> 20),
					   (unsigned long long)mine[i].gpa);
	return 0;
}

static uint8_t *page_at(struct loader *l, uint64_t gfn, size_t *r, uint64_t *index)
{
	long g = region_of(l, gfn);
	if (g < 0)
		return NULL;
	*r = (size_t)g;
	*index = gfn - l->reg[g].gpa / PAGE;
	return l->reg[g].host + *index * PAGE;
}

/* A page is about to be written: the first in its chunk brings the whole
 * chunk in at once. */
static void touch(struct loader *l, size_t r, uint64_t index)
{
	l->touched[r][index / 64] |= 1ULL << (index % 64);
	uint64_t chunk = index / POPULATE_PAGES;
	if (l->in->ops->populate == NULL || (l->populated[r][chunk / 64] >> (chunk % 64)) & 1)
		return;
	l->populated[r][chunk / 64] |= 1ULL << (chunk % 64);
	const struct tern_mig_region *g = &l->reg[r];
	uint64_t off = chunk * POPULATE_PAGES * PAGE;
	uint64_t len = g->size - off < POPULATE_PAGES * PAGE ? g->size - off : POPULATE_PAGES * PAGE;
	l->in->ops->populate(l->in->opaque, g->host + off, len);
}

static int was_touched(const struct loader *l, size_t r, uint64_t index)
{
	return (l->touched[r][index / 64] >> (index % 64)) & 1;
}

static int apply(struct loader *l, const struct tern_record *rec, struct tern_error *err)
{
	size_t r;
	uint64_t index;
	switch (rec->type) {
	case TERN_REC_ZERO:
	case TERN_REC_ZERO_RUN:
		/* Fresh guest RAM is zero already; only pages this migration
		 * wrote need clearing (writing zeros would allocate memory). */
		for (uint64_t i = 0; i < rec->count; i++) {
			uint8_t *p = page_at(l, rec->gfn + i, &r, &index);
			if (p == NULL)
				return tern_errorf(err, -EINVAL, "page 0x%llx is not guest RAM",
						   (unsigned long long)(rec->gfn + i));
			if (was_touched(l, r, index))
				memset(p, 0, PAGE);
		}
		l->duplicate += rec->count;
		return 0;
	case TERN_REC_RAW: {
		uint8_t *p = page_at(l, rec->gfn, &r, &index);
		if (p == NULL)
			return tern_errorf(err, -EINVAL, "page 0x%llx is not guest RAM",
					   (unsigned long long)rec->gfn);
		touch(l, r, index);
		tern_copy_stream(p, rec->data, PAGE); /* not read again before the guest runs */
		l->normal++;
		return 0;
	}
	case TERN_REC_XBZRLE: {
		uint8_t *p = page_at(l, rec->gfn, &r, &index);
		if (p == NULL)
			return tern_errorf(err, -EINVAL, "page 0x%llx is not guest RAM",
					   (unsigned long long)rec->gfn);
		/* Decoded onto a copy first: a bad delta must not leave a
		 * half-updated page behind (the guest never runs on it anyway,
		 * but what is reported should be what was checked). */
		uint8_t copy[PAGE];
		memcpy(copy, p, PAGE);
		if (tern_xbzrle_decode(rec->data, rec->len, copy, PAGE) < 0)
			return tern_errorf(err, -EBADMSG, "page 0x%llx: malformed XBZRLE delta",
					   (unsigned long long)rec->gfn);
		memcpy(p, copy, PAGE);
		touch(l, r, index);
		l->xbzrle_pages++;
		l->xbzrle_bytes += rec->len;
		return 0;
	}
	case TERN_REC_BLOCKS: {
		uint8_t *p = page_at(l, rec->gfn, &r, &index);
		if (p == NULL)
			return tern_errorf(err, -EINVAL, "page 0x%llx is not guest RAM",
					   (unsigned long long)rec->gfn);
		touch(l, r, index);
		const uint8_t *from = rec->data;
		for (uint64_t m = rec->mask; m != 0; m &= m - 1) {
			memcpy(p + (size_t)__builtin_ctzll(m) * TERN_STREAM_BLOCK, from,
			       TERN_STREAM_BLOCK);
			from += TERN_STREAM_BLOCK;
		}
		l->delta_pages++;
		l->delta_bytes += rec->len;
		return 0;
	}
	case TERN_REC_SECTION:
		return l->in->ops->load_section(l->in->opaque, rec->name, rec->data, rec->len, err);
	default:
		return 0;
	}
}

static void publish(struct loader *l, const struct tern_stream_reader *r, uint64_t start)
{
	struct tern_mig_stats *s = &l->in->stats;
	pthread_mutex_lock(&l->in->lock);
	s->transferred = r->bytes;
	s->precopy_bytes = l->ended ? l->at_last_sync : r->bytes;
	s->downtime_bytes = l->ended ? r->bytes - l->at_last_sync : 0;
	s->duplicate = l->duplicate;
	s->normal = l->normal;
	s->normal_bytes = l->normal * PAGE;
	s->xbzrle_pages = l->xbzrle_pages;
	s->xbzrle_bytes = l->xbzrle_bytes;
	s->delta_pages = l->delta_pages;
	s->delta_bytes = l->delta_bytes;
	s->total_time_ms = now_ms() - start;
	pthread_mutex_unlock(&l->in->lock);
}

/* After the stream: READY, then run only on GO (two-way channels). */
static int handshake(struct tern_incoming *in, struct tern_error *err)
{
	struct tern_stream_writer w;
	struct tern_stream_reader r;
	int rc = tern_stream_writer_init(&w, &in->ch->io);
	if (rc < 0)
		return tern_errorf(err, rc, "out of memory");
	if ((rc = tern_stream_reader_init_control(&r, &in->ch->io)) < 0) {
		tern_stream_writer_destroy(&w);
		return tern_errorf(err, rc, "out of memory");
	}
	struct tern_record rec;
	if ((rc = tern_stream_control(&w, TERN_REC_READY, NULL)) == -EPIPE || rc == -ECONNRESET)
		tern_errorf(err, rc, "the source closed the connection before READY reached it (it "
			    "gave up, or failed); the guest stays stopped here");
	else if (rc < 0)
		tern_errorf(err, rc, "telling the source we are ready: %s", strerror(-rc));
	else if (tern_channel_wait_readable(in->ch, in->go_timeout_ms) <= 0)
		rc = tern_errorf(err, -ETIMEDOUT, "the source did not say GO within %d s; the guest "
				 "stays stopped here", in->go_timeout_ms / 1000);
	else if ((rc = tern_stream_read(&r, &rec, err)) == -EPIPE)
		tern_errorf(err, rc, "the source closed the connection instead of saying GO (it "
			    "gave up, or failed); the guest stays stopped here");
	else if (rc < 0)
		tern_error_prefix(err, "waiting for GO; the guest stays stopped here");
	else if (rec.type != TERN_REC_GO)
		rc = tern_errorf(err, -EPROTO, "the source answered 0x%02x, not GO", rec.type);
	tern_stream_reader_destroy(&r);
	tern_stream_writer_destroy(&w);
	return rc;
}

/*
 * END was read.  Nothing may follow it: on a socket what follows is the
 * source's control stream (GO, checked by the handshake); a file must end
 * right there; a pipe is checked for what is in it already, since its
 * writer may keep it open (an fd:N the source does not close).
 */
static int nothing_after_end(struct tern_incoming *in, struct tern_stream_reader *r,
			     struct tern_error *err)
{
	if (in->ch->two_way)
		return 0;
	if (!in->ch->is_file && tern_channel_wait_readable(in->ch, 0) <= 0)
		return 0;
	return tern_stream_expect_eof(r, err);
}

/* Tell a two-way source why not (best effort). */
static void refuse(struct tern_incoming *in, const struct tern_error *err)
{
	if (!in->ch->two_way)
		return;
	struct tern_stream_writer w;
	if (tern_stream_writer_init(&w, &in->ch->io) == 0) {
		tern_stream_control(&w, TERN_REC_FAILED, err->msg);
		tern_stream_writer_destroy(&w);
	}
	tern_channel_linger(in->ch, LINGER_MS);
}

int tern_incoming_run(struct tern_incoming *in, struct tern_error *err)
{
	uint64_t start = now_ms();
	struct loader l = { .in = in };
	struct tern_stream_reader r;
	int rc = tern_stream_reader_init(&r, &in->ch->io);
	r.file = in->ch->is_file;
	l.reg = calloc(TERN_MIG_MAX_REGIONS, sizeof *l.reg);
	if (rc < 0 || l.reg == NULL) {
		free(l.reg);
		return tern_errorf(err, -ENOMEM, "out of memory");
	}
	l.nreg = in->ops->regions(in->opaque, l.reg, TERN_MIG_MAX_REGIONS);
	l.touched = calloc(l.nreg ? l.nreg : 1, sizeof *l.touched);
	l.populated = calloc(l.nreg ? l.nreg : 1, sizeof *l.populated);
	uint64_t total = 0;
	for (size_t i = 0; l.touched != NULL && l.populated != NULL && i < l.nreg; i++) {
		uint64_t pages = l.reg[i].size / PAGE;
		l.touched[i] = calloc((pages + 63) / 64, sizeof(uint64_t));
		l.populated[i] = calloc((pages / POPULATE_PAGES + 64) / 64, sizeof(uint64_t));
		total += l.reg[i].size;
		if (l.touched[i] == NULL || l.populated[i] == NULL)
			rc = -ENOMEM;
	}
	if (l.touched == NULL || l.populated == NULL || rc < 0)
		rc = tern_errorf(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&in->lock);
	in->stats.total = total;
	pthread_mutex_unlock(&in->lock);
	set_status(in, TERN_MIG_ACTIVE);
	struct tern_record rec;
	uint64_t since = 0;
	while (rc == 0) {
		if ((rc = tern_stream_read(&r, &rec, err)) < 0)
			break;
		if (rec.type == TERN_REC_HELLO)
			rc = check_layout(&l, &r.hello, err);
		else
			rc = apply(&l, &rec, err);
		if (rec.type == TERN_REC_SYNC)
			l.at_last_sync = r.bytes;
		if (++since == 4096) {
			publish(&l, &r, start);
			since = 0;
		}
		if (rec.type == TERN_REC_END) {
			l.ended = 1;
			if (rc == 0)
				rc = nothing_after_end(in, &r, err);
			break;
		}
	}
	publish(&l, &r, start);
	tern_copy_fence(); /* the streamed pages are in memory before anyone looks */
	if (rc == 0)
		rc = in->ops->finish(in->opaque, err);
	if (rc == 0 && in->ch->two_way)
		rc = handshake(in, err);
	else if (rc < 0)
		refuse(in, err);
	if (rc == 0) {
		in->ops->run(in->opaque);
		set_status(in, TERN_MIG_COMPLETED);
	} else {
		pthread_mutex_lock(&in->lock);
		memcpy(in->stats.error, err->msg, sizeof err->msg);
		pthread_mutex_unlock(&in->lock);
		set_status(in, TERN_MIG_FAILED);
	}
	for (size_t i = 0; i < l.nreg; i++) {
		if (l.touched != NULL)
			free(l.touched[i]);
		if (l.populated != NULL)
			free(l.populated[i]);
	}
	free(l.touched);
	free(l.populated);
	free(l.reg);
	tern_stream_reader_destroy(&r);
	return rc;
}

void tern_incoming_init(struct tern_incoming *in, const struct tern_mig_dest_ops *ops,
			void *opaque, struct tern_channel *ch)
{
	memset(in, 0, sizeof *in);
	in->ops = ops;
	in->opaque = opaque;
	in->ch = ch;
	in->go_timeout_ms = GO_TIMEOUT_MS;
	pthread_mutex_init(&in->lock, NULL);
}

void tern_incoming_destroy(struct tern_incoming *in)
{
	pthread_mutex_destroy(&in->lock);
}

void tern_incoming_get_stats(struct tern_incoming *in, struct tern_mig_stats *out)
{
	pthread_mutex_lock(&in->lock);
	*out = in->stats;
	pthread_mutex_unlock(&in->lock);
}
