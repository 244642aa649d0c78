/*
 * Measuring the guest's dirty rate (QMP calc-dirty-rate, query-dirty-rate)
 * through the VM's dirty tracking: track for calc-time seconds, count the
 * pages written, report MB/s, and per vCPU with the dirty ring.
 */
#ifndef VMM_DIRTY_RATE_H
#define VMM_DIRTY_RATE_H

#include <jansson.h>
#include <stdint.h>

#include "loop.h"
#include "tern/error.h"

struct vm;

enum dirty_rate_status { DIRTY_RATE_UNSTARTED, DIRTY_RATE_MEASURING, DIRTY_RATE_MEASURED };

struct dirty_rate {
	struct vm *vm;
	struct loop *loop;
	enum dirty_rate_status status;
	int64_t start_time; /* seconds since the epoch */
	unsigned calc_time; /* seconds */
	int64_t rate;       /* MB/s */
	uint64_t pages;
	uint64_t *vcpu_start, *vcpu_rate; /* ring: harvested entries, MB/s */
	int timer_fd;
	int64_t timer_handle;
	int started_tracking;
};

void dirty_rate_init(struct dirty_rate *r, struct vm *vm, struct loop *loop);
void dirty_rate_destroy(struct dirty_rate *r);
/* Begin a measurement of calc_time seconds (1 .. 60). */
int dirty_rate_start(struct dirty_rate *r, unsigned calc_time, struct tern_error *err);
/* query-dirty-rate's reply. */
json_t *dirty_rate_info(const struct dirty_rate *r);

#endif
