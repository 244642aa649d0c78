/* The memory workloads: which page to write next, rate limiting, and the
 * main loop that interleaves writing with serial commands and reports. */
#include "run.h"

#include "console.h"
#include "io.h"
#include "timer.h"

#define BATCH 64

static uint64_t next_random(struct run *r)
{
	r->rng += 0x9e3779b97f4a7c15ULL;
	return mix64(r->rng);
}

/* Uniform in [0, n) without division. */
static uint64_t below(uint64_t random, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)random * n) >> 64);
}

static uint64_t next_page(struct run *r)
{
	switch (r->p.workload) {
	case WORKLOAD_SEQUENTIAL: {
		uint64_t page = r->cursor++;
		if (r->cursor == r->pages)
			r->cursor = 0;
		return page;
	}
	case WORKLOAD_HOTCOLD: {
		uint64_t x = next_random(r);
		uint64_t cold = r->pages - r->hot_pages;
		if (cold == 0 || below(x >> 32 | x << 32, 100) < r->p.hot_share)
			return below(x, r->hot_pages);
		return r->hot_pages + below(x, cold);
	}
	case WORKLOAD_RANDOM:
	case WORKLOAD_SPARSE:
	case WORKLOAD_IDLE:
		break;
	}
	return below(next_random(r), r->pages);
}

void write_page(struct run *r, uint64_t page)
{
	uint32_t v = ++r->version[page];
	pattern_write(&r->pattern, (uint64_t *)(r->ws + page * PAGE_SIZE), page, v);
}

static uint64_t elapsed_ms(const struct run *r, uint64_t now)
{
	return (now - r->start_tsc) * 1000 / tsc_hz();
}

void print_status(const struct run *r)
{
	uint64_t now = rdtsc();
	uint64_t ms = elapsed_ms(r, now);
	uint64_t rate = ms ? r->writes * 1000 / ms : 0;
	console_printf("tern-guest: status workload=%s writes=%llu elapsed_ms=%llu rate=%llu\n",
		       workload_name(r->p.workload), (unsigned long long)r->writes,
		       (unsigned long long)ms, (unsigned long long)rate);
}

/* How many writes the rate limit allows by `now`; split into whole seconds
 * and a remainder so that the products cannot overflow. */
static uint64_t allowed_writes(const struct run *r, uint64_t now)
{
	uint64_t hz = tsc_hz(), elapsed = now - r->start_tsc;
	return elapsed / hz * r->p.rate + elapsed % hz * r->p.rate / hz + 1;
}

/* A guest whose memory holds data (an idle VM is rarely an empty one):
 * every page once, whole, before the workload starts. */
void fill_working_set(struct run *r)
{
	uint64_t t0 = rdtsc();
	for (uint64_t page = 0; page < r->pages; page++) {
		write_page(r, page);
		if ((page & 0xffff) == 0xffff)
			poll_commands(r); /* still answers while filling a large set */
	}
	console_printf("tern-guest: filled pages=%llu ms=%llu\n", (unsigned long long)r->pages,
		       (unsigned long long)((rdtsc() - t0) * 1000 / tsc_hz()));
}

void run_workload(struct run *r)
{
	const uint64_t hz = tsc_hz();
	const uint64_t poll_every = hz / 1000;
	uint64_t now = rdtsc();
	r->start_tsc = now;
	uint64_t next_poll = now + poll_every;
	uint64_t end = r->p.seconds ? now + r->p.seconds * hz : UINT64_MAX;
	uint64_t report_every = (uint64_t)r->p.report_seconds * hz;
	uint64_t next_report = report_every ? now + report_every : UINT64_MAX;

	while (!r->stop_requested && now < end &&
	       !(r->p.writes && r->writes >= r->p.writes)) {
		if (r->p.workload == WORKLOAD_IDLE) {
			sleep_tick();
		} else {
			uint64_t batch = BATCH;
			if (r->p.writes && r->p.writes - r->writes < batch)
				batch = r->p.writes - r->writes;
			if (r->p.rate) {
				uint64_t allowed = allowed_writes(r, now);
				/* Ahead of the rate: sleep a tick and catch up in a burst,
				 * rather than spin a host CPU away. */
				if (allowed <= r->writes)
					batch = 0;
				else if (allowed - r->writes < batch)
					batch = allowed - r->writes;
			}
			if (batch == 0)
				sleep_tick();
			for (uint64_t i = 0; i < batch; i++)
				write_page(r, next_page(r));
			r->writes += batch;
		}
		now = rdtsc();
		if (now >= next_poll) {
			poll_commands(r);
			now = rdtsc();
			next_poll = now + poll_every;
		}
		if (now >= next_report) {
			print_status(r);
			next_report += report_every;
		}
	}
	r->end_tsc = now;
}
