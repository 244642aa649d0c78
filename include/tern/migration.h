/*
 * Live migration: the RAM precopy engine (source) and the loader
 * (destination), speaking the stream of docs/migration-stream.md.
 *
 * The engine knows nothing of KVM.  It reads guest memory and dirty pages
 * through the operations below, which the VMM implements with KVM and
 * tests implement with plain memory.
 *
 * Source: setup (HELLO, dirty tracking on), the bulk stage (every page
 * once: holes and zero pages as zero records, others raw; nothing enters
 * the XBZRLE cache), iterations (sync dirty pages, send them: zero, XBZRLE
 * against the cached copy, or raw and into the cache) until what remains
 * fits the downtime limit at the measured bandwidth, then switchover (stop
 * the vCPUs, last sync, last pages, CPU and device state, END) and, on a
 * two-way channel, the READY/GO handshake.  A failure or a cancel before
 * the destination is READY resumes the guest here, and so does a
 * destination that leaves the stopped guest waiting longer than the
 * downtime limit + 1 s (then no GO is ever sent).  A failed file: stream
 * removes the file it created (tern_channel_abandon).
 */
#ifndef TERN_MIGRATION_H
#define TERN_MIGRATION_H

#include <pthread.h>
#include <stdint.h>

#include "tern/channel.h"
#include "tern/dirty.h"
#include "tern/error.h"
#include "tern/stream.h"

/* QEMU's MigrationStatus names, in order. */
enum tern_mig_status {
	TERN_MIG_NONE,
	TERN_MIG_SETUP,
	TERN_MIG_ACTIVE,
	TERN_MIG_DEVICE,     /* the vCPUs are stopped, the last state goes out */
	TERN_MIG_COMPLETED,
	TERN_MIG_FAILED,
	TERN_MIG_CANCELLING,
	TERN_MIG_CANCELLED,
};

const char *tern_mig_status_name(enum tern_mig_status s);

struct tern_mig_params {
	uint64_t downtime_limit_ms;  /* default 300 */
	uint64_t max_bandwidth;      /* bytes per second; 0: unlimited (the default) */
	uint64_t xbzrle_cache_size;  /* bytes; default 64 MiB (and as much again for
				      * block digests) */
	int xbzrle;                  /* capability, default off */
	int auto_converge;           /* capability, default off */
	unsigned throttle_initial;   /* percent, default 20 */
	unsigned throttle_increment; /* percent, default 10 */
	unsigned throttle_max;       /* percent, default 99 */
};

void tern_mig_params_default(struct tern_mig_params *p);

/* query-migrate's figures. */
struct tern_mig_stats {
	enum tern_mig_status status;
	uint64_t total_time_ms, downtime_ms, expected_downtime_ms, setup_time_ms;
	uint64_t transferred;    /* bytes on the channel */
	/* ... of which before the guest stopped for the switchover, and while
	 * it was (on the destination: up to the source's last SYNC, and
	 * after it) */
	uint64_t precopy_bytes, downtime_bytes;
	uint64_t remaining;      /* bytes of RAM still dirty */
	uint64_t total;          /* bytes of RAM */
	uint64_t duplicate;      /* zero pages */
	uint64_t normal;         /* pages sent whole */
	uint64_t normal_bytes;
	uint64_t dirty_pages_rate; /* pages per second, last iteration */
	uint64_t dirty_sync_count;
	uint64_t pages_per_second;
	uint64_t iterations;
	uint64_t skipped;        /* dirty pages found unchanged, not sent */
	uint64_t bulk_deferred;  /* written before the bulk stage reached them: sent later */
	double mbps;
	uint64_t xbzrle_cache_size, xbzrle_bytes, xbzrle_pages, xbzrle_cache_miss,
		xbzrle_overflow;
	double xbzrle_cache_miss_rate, xbzrle_encoding_rate;
	/* Pages missing from the XBZRLE cache sent as their changed blocks. */
	uint64_t delta_pages, delta_bytes, digest_bytes;
	unsigned throttle_percent;
	/* Where the source's downtime went, in us: stopping the vCPUs, the last
	 * dirty sync, the last pages, the device state and END, and the wait
	 * for the destination's READY (its last reads, its load) and GO. */
	uint64_t stop_us, sync_us, pages_us, state_us, handshake_us;
	char error[TERN_ERROR_MAX];
};

/* A run of guest RAM: a memslot, its host mapping and its dirty set. */
struct tern_mig_region {
	uint64_t gpa, size;
	uint8_t *host;
	struct tern_dirty *dirty;
};

#define TERN_MIG_MAX_REGIONS 32768

struct tern_mig_source_ops {
	/* Guest RAM, in ascending address order. */
	size_t (*regions)(void *opaque, struct tern_mig_region *out, size_t max);
	/* Optional: the first offset >= offset of region r that may hold data
	 * (memory never written reads as zero and need not be read). */
	uint64_t (*next_data)(void *opaque, size_t r, uint64_t offset);
	int (*dirty_start)(void *opaque, struct tern_error *err);
	int (*dirty_sync)(void *opaque, struct tern_error *err);
	void (*dirty_stop)(void *opaque);
	int (*stop)(void *opaque, struct tern_error *err); /* pause the vCPUs */
	void (*resume)(void *opaque);                      /* run them again */
	/* Optional: sections to send right after HELLO, before any page (the
	 * machine's shape, so that a destination of another shape refuses
	 * before the RAM is sent rather than after). */
	int (*save_setup)(void *opaque, struct tern_stream_writer *w, struct tern_error *err);
	/* Append the CPU and device state sections. */
	int (*save_state)(void *opaque, struct tern_stream_writer *w, struct tern_error *err);
	/* Optional: the destination runs the guest now (before the status
	 * says completed); the guest here stays stopped. */
	void (*moved)(void *opaque);
	/* Optional: slow the guest down to percent (0: not at all). */
	void (*throttle)(void *opaque, unsigned percent);
	/* Optional: the status changed (QMP's MIGRATION event). */
	void (*event)(void *opaque, enum tern_mig_status status);
};

struct tern_migration {
	struct tern_mig_params params;
	const struct tern_mig_source_ops *ops;
	void *opaque;
	struct tern_channel *ch;
	pthread_mutex_t lock; /* guards stats and params */
	struct tern_mig_stats stats;
	int cancel;
};

void tern_migration_init(struct tern_migration *m, const struct tern_mig_params *p,
			 const struct tern_mig_source_ops *ops, void *opaque,
			 struct tern_channel *ch);
void tern_migration_destroy(struct tern_migration *m);
/* Run the whole migration (blocking; a thread of its own).  0 when it
 * completed, else a negative errno; the stats say why. */
int tern_migration_run(struct tern_migration *m);
/* Any thread. */
void tern_migration_cancel(struct tern_migration *m);
void tern_migration_get_stats(struct tern_migration *m, struct tern_mig_stats *out);
void tern_migration_get_params(struct tern_migration *m, struct tern_mig_params *out);
/* Any thread, while it runs: the downtime limit and the bandwidth limit
 * take effect at once (the capabilities and the cache size do not). */
void tern_migration_set_params(struct tern_migration *m, const struct tern_mig_params *p);

/* ------------------------------------------------------------ destination */

struct tern_mig_dest_ops {
	size_t (*regions)(void *opaque, struct tern_mig_region *out, size_t max);
	/* Optional: pages in [host, host + len) are about to be written for the
	 * first time; allocate them in one go (a page at a time is slow). */
	void (*populate)(void *opaque, uint8_t *host, size_t len);
	/* A state section arrived: check it and keep it (not applied yet). */
	int (*load_section)(void *opaque, const char *name, const uint8_t *data, size_t len,
			    struct tern_error *err);
	/* END arrived: every section needed is in; apply them to the (still
	 * stopped) guest.  Refusing here means the guest never runs. */
	int (*finish)(void *opaque, struct tern_error *err);
	/* Run the guest. */
	void (*run)(void *opaque);
	void (*event)(void *opaque, enum tern_mig_status status);
};

struct tern_incoming {
	const struct tern_mig_dest_ops *ops;
	void *opaque;
	struct tern_channel *ch;
	int go_timeout_ms; /* how long to wait for GO after READY; default 30 s */
	pthread_mutex_t lock;
	struct tern_mig_stats stats;
};

void tern_incoming_init(struct tern_incoming *in, const struct tern_mig_dest_ops *ops,
			void *opaque, struct tern_channel *ch);
void tern_incoming_destroy(struct tern_incoming *in);
/* Receive and load the stream; 0 once the guest runs, else a negative errno
 * with a message (the guest has not run). */
int tern_incoming_run(struct tern_incoming *in, struct tern_error *err);
void tern_incoming_get_stats(struct tern_incoming *in, struct tern_mig_stats *out);

#endif
