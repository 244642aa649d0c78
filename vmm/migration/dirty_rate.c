/* Dirty-rate measurement; see dirty_rate.h. */
#include "migration/dirty_rate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "machine/vm.h"

#define MIB (1024.0 * 1024.0)
#define PAGE 4096.0

void dirty_rate_init(struct dirty_rate *r, struct vm *vm, struct loop *loop)
{
	memset(r, 0, sizeof *r);
	r->vm = vm;
	r->loop = loop;
	r->timer_fd = -1;
	r->timer_handle = -1;
}

static void end_timer(struct dirty_rate *r)
{
	if (r->timer_fd >= 0) {
		loop_remove(r->loop, r->timer_handle);
		close(r->timer_fd);
	}
	r->timer_fd = -1;
	r->timer_handle = -1;
}

void dirty_rate_destroy(struct dirty_rate *r)
{
	end_timer(r);
	free(r->vcpu_start);
	free(r->vcpu_rate);
	r->vcpu_start = r->vcpu_rate = NULL;
}

static uint64_t mb_per_s(uint64_t pages, unsigned seconds)
{
	return (uint64_t)((double)pages * PAGE / MIB / seconds);
}

static void on_done(void *opaque, int fd, short revents)
{
	(void)fd;
	(void)revents;
	struct dirty_rate *r = opaque;
	struct dirty_tracker *t = &r->vm->dirty;
	end_timer(r);
	dirty_tracker_sync(t, NULL);
	r->pages = dirty_tracker_count(t);
	r->rate = (int64_t)mb_per_s(r->pages, r->calc_time);
	for (unsigned i = 0; r->vcpu_rate != NULL && i < r->vm->vcpus; i++)
		r->vcpu_rate[i] = mb_per_s(r->vm->vcpu[i].ring_harvested - r->vcpu_start[i],
					   r->calc_time);
	if (r->started_tracking)
		dirty_tracker_stop(t);
	r->started_tracking = 0;
	r->status = DIRTY_RATE_MEASURED;
}

int dirty_rate_start(struct dirty_rate *r, unsigned calc_time, struct tern_error *err)
{
	struct dirty_tracker *t = &r->vm->dirty;
	if (r->status == DIRTY_RATE_MEASURING)
		return tern_errorf(err, -EBUSY, "the dirty rate is already being measured");
	if (t->active)
		return tern_errorf(err, -EBUSY, "dirty tracking is in use (by a migration or "
				   "x-dirty-tracking); measure when it has stopped");
	int rc = dirty_tracker_start(t, err);
	if (rc < 0)
		return rc;
	r->started_tracking = 1;
	r->timer_fd = loop_timer_fd(calc_time * 1000);
	if (r->timer_fd < 0 ||
	    (r->timer_handle = loop_add(r->loop, r->timer_fd, POLLIN, on_done, r)) < 0) {
		dirty_tracker_stop(t);
		r->started_tracking = 0;
		end_timer(r);
		return tern_errorf(err, -ENOMEM, "cannot set a timer for the measurement");
	}
	free(r->vcpu_start);
	free(r->vcpu_rate);
	r->vcpu_start = r->vcpu_rate = NULL;
	if (t->mode == DIRTY_MODE_RING) {
		r->vcpu_start = calloc(r->vm->vcpus, sizeof *r->vcpu_start);
		r->vcpu_rate = calloc(r->vm->vcpus, sizeof *r->vcpu_rate);
		for (unsigned i = 0; r->vcpu_start != NULL && i < r->vm->vcpus; i++)
			r->vcpu_start[i] = r->vm->vcpu[i].ring_harvested;
	}
	r->calc_time = calc_time;
	r->start_time = (int64_t)time(NULL);
	r->status = DIRTY_RATE_MEASURING;
	return 0;
}

json_t *dirty_rate_info(const struct dirty_rate *r)
{
	static const char *const status[] = { "unstarted", "measuring", "measured" };
	json_t *info = json_pack("{s:s,s:I,s:I,s:i,s:s}", "status", status[r->status],
				 "start-time", (json_int_t)r->start_time, "calc-time",
				 (json_int_t)r->calc_time, "sample-pages", 0, "mode",
				 dirty_mode_name(r->vm->dirty.mode));
	if (r->status != DIRTY_RATE_MEASURED)
		return info;
	json_object_set_new(info, "dirty-rate", json_integer(r->rate));
	if (r->vcpu_rate != NULL) {
		json_t *list = json_array();
		for (unsigned i = 0; i < r->vm->vcpus; i++)
			json_array_append_new(list, json_pack("{s:i,s:I}", "id", (int)i, "dirty-rate",
							      (json_int_t)r->vcpu_rate[i]));
		json_object_set_new(info, "vcpu-dirty-rate", list);
	}
	return info;
}
