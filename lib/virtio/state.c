/*
 * What a queue carries across a live migration or live update, and its
 * vmstate description.  The rings are guest memory and travel with it;
 * in-flight requests do not (the device drains them before saving).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>

#include "vq.h"

/* Shapes no started queue can have; size limits of this device apart. */
static int check_state(const struct tern_vq_state *s, struct tern_error *err)
{
	if (!s->started)
		return 0;
	if (s->size == 0 || (s->size & (s->size - 1)) != 0 || s->size > TERN_VQ_MAX_SIZE)
		return tern_errorf(err, -EINVAL, "virtqueue state: size %u is not a power of two "
				   "up to 32768", s->size);
	if (s->desc % 16 != 0 || s->avail % 2 != 0 || s->used % 4 != 0)
		return tern_errorf(err, -EINVAL, "virtqueue state: misaligned ring addresses");
	if (!s->broken && s->last_avail_idx != s->used_idx)
		return tern_errorf(err, -EINVAL, "virtqueue state: %u requests were in flight "
				   "(last avail %u, used %u); the source must complete them "
				   "before saving", (uint16_t)(s->last_avail_idx - s->used_idx),
				   s->last_avail_idx, s->used_idx);
	return 0;
}

int tern_vq_get_state(const struct tern_vq *vq, struct tern_vq_state *s, struct tern_error *err)
{
	memset(s, 0, sizeof *s);
	if (!vq->started)
		return 0;
	if (vq->inflight != 0)
		return tern_errorf(err, -EBUSY, "virtqueue: %" PRIu32 " requests in flight; "
				   "complete them before saving the queue", vq->inflight);
	if (!vq->broken && vq->used_next != vq->used_pub)
		return tern_errorf(err, -EBUSY, "virtqueue: used elements pushed but not "
				   "flushed; flush before saving the queue");
	*s = (struct tern_vq_state){
		.features = vq->features,
		.desc = vq->desc_gpa,
		.avail = vq->avail_gpa,
		.used = vq->used_gpa,
		.size = vq->size,
		.last_avail_idx = vq->last_avail,
		.used_idx = vq->used_pub,
		.started = true,
		.broken = vq->broken,
		.notify = vq->notify,
	};
	return 0;
}

int tern_vq_set_state(struct tern_vq *vq, const struct tern_vq_state *s, struct tern_error *err)
{
	tern_vq_reset(vq);
	int r = check_state(s, err);
	if (r < 0 || !s->started)
		return r;
	struct tern_vq_config c = {
		.size = s->size, .desc = s->desc, .avail = s->avail, .used = s->used,
		.features = s->features,
	};
	r = tern_vq_start(vq, &c, err);
	if (r < 0) {
		tern_error_prefix(err, "resuming a virtqueue");
		return r;
	}
	vq->last_avail = vq->avail_seen = s->last_avail_idx;
	vq->used_next = vq->used_pub = s->used_idx;
	vq->notify = s->notify;
	/* Whether the source's last flush notified is not known: notify at the
	 * first flush (a spurious notification is allowed, a lost one hangs). */
	vq->signalled_valid = false;
	if (s->broken)
		vq_break(vq, "the queue was broken when its state was saved");
	return 0;
}

static int state_post_load(void *obj, uint32_t version, struct tern_error *err)
{
	(void)version;
	return check_state(obj, err);
}

#define F(n, t) { .name = #n, .type = TERN_VMS_##t, .offset = offsetof(struct tern_vq_state, n) }

static const struct tern_vmstate_field vq_state_fields[] = {
	F(features, U64), F(desc, U64), F(avail, U64), F(used, U64), F(size, U16),
	F(last_avail_idx, U16), F(used_idx, U16), F(started, BOOL), F(broken, BOOL),
	F(notify, BOOL),
	{ 0 },
};

const struct tern_vmstate_desc tern_vq_state_desc = {
	.name = "virtqueue",
	.size = sizeof(struct tern_vq_state),
	.version = 1,
	.min_version = 1,
	.fields = vq_state_fields,
	.post_load = state_post_load,
};
