/*
 * A fake guest for the migration engine's tests: two regions of plain
 * memory (low RAM and some above 4 GiB), a dirty log, a writer thread
 * standing in for the vCPUs, and the source and destination callbacks the
 * engine drives.  Allocation failures abort: this is test scaffolding.
 */
#ifndef HARNESS_FAKE_GUEST_H
#define HARNESS_FAKE_GUEST_H

#include <pthread.h>
#include <stdint.h>

#include "tern/dirty.h"
#include "tern/migration.h"

#define PAGE 4096
#define LOW_SIZE (8u << 20)
#define HIGH_GPA (4ULL << 30)
#define HIGH_SIZE (4u << 20)

enum write_kind { WRITE_NONE, WRITE_SPARSE, WRITE_FULL };

struct fake {
	struct tern_mig_region reg[2];
	struct tern_dirty *log[2]; /* written since the last sync */
	pthread_mutex_t lock;      /* one write, or a sync, at a time */
	int tracking, stopped, resumed, quit;
	unsigned throttle, max_throttle, throttle_calls, unthrottled;
	enum write_kind kind;
	unsigned ws_pages;         /* the writer's working set, from page 256 of low RAM */
	uint64_t writes, seed;
	pthread_t writer;
	int have_writer;
	/* sync-driven writes: at sync n (1-based) rewrite pages [0, per_sync) */
	unsigned syncs, sync_writes_until, per_sync;
	/* destination side */
	uint64_t cpu_state;
	int have_cpu, finished, ran;
	unsigned finish_delay_ms;  /* a slow destination: loading the state takes this long */
	enum tern_mig_status last_event;
};

/* Zeroed regions, or (with_content) some pages of data, a hole, more up high. */
void fake_init(struct fake *f, int with_content);
void fake_destroy(struct fake *f);
/* A thread writing `kind` into the working set until writer_stop. */
void writer_start(struct fake *f, enum write_kind kind);
void writer_stop(struct fake *f);

extern const struct tern_mig_source_ops fake_source_ops;
extern const struct tern_mig_dest_ops fake_dest_ops;

#endif
