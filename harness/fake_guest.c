/* The fake guest; see fake_guest.h. */
#include "fake_guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern/stream.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void fake_init(struct fake *f, int with_content)
{
	memset(f, 0, sizeof *f);
	pthread_mutex_init(&f->lock, NULL);
	const uint64_t gpa[2] = { 0, HIGH_GPA }, size[2] = { LOW_SIZE, HIGH_SIZE };
	for (int r = 0; r < 2; r++) {
		f->reg[r].gpa = gpa[r];
		f->reg[r].size = size[r];
		f->reg[r].host = aligned_alloc(PAGE, size[r]);
		if (f->reg[r].host == NULL)
			abort();
		memset(f->reg[r].host, 0, size[r]);
		f->reg[r].dirty = tern_dirty_new(size[r] / PAGE);
		f->log[r] = tern_dirty_new(size[r] / PAGE);
		if (f->reg[r].dirty == NULL || f->log[r] == NULL)
			abort();
	}
	f->seed = 0x9e3779b97f4a7c15ull;
	if (with_content) {
		/* Some pages with data, a hole, more data up high. */
		for (uint64_t p = 0; p < 1024; p += 1 + p % 3)
			for (int i = 0; i < PAGE; i += 8)
				*(uint64_t *)(f->reg[0].host + p * PAGE + i) = rnd(&f->seed);
		for (uint64_t p = 0; p < HIGH_SIZE / PAGE; p += 7)
			memset(f->reg[1].host + p * PAGE, (int)(p | 1), PAGE);
	}
	f->ws_pages = 512;
	f->cpu_state = 0x1122334455667788ull;
}

void fake_destroy(struct fake *f)
{
	for (int r = 0; r < 2; r++) {
		free(f->reg[r].host);
		tern_dirty_free(f->reg[r].dirty);
		tern_dirty_free(f->log[r]);
	}
	pthread_mutex_destroy(&f->lock);
}

/* Like a vCPU: write, and the write shows in the dirty log. */
static void guest_write(struct fake *f, int r, uint64_t page, enum write_kind kind)
{
	uint8_t *p = f->reg[r].host + page * PAGE;
	if (kind == WRITE_SPARSE)
		memset(p + (rnd(&f->seed) % (PAGE / 64)) * 64, (int)(rnd(&f->seed) | 1), 64);
	else
		for (int i = 0; i < PAGE; i += 8)
			*(uint64_t *)(p + i) = rnd(&f->seed);
	if (f->tracking)
		tern_dirty_insert(f->log[r], page);
	f->writes++;
}

static void *writer_main(void *arg)
{
	struct fake *f = arg;
	for (;;) {
		pthread_mutex_lock(&f->lock);
		if (f->quit) {
			pthread_mutex_unlock(&f->lock);
			return NULL;
		}
		/* A throttled guest of this kind stops writing at 50%. */
		int run = !f->stopped && f->throttle < 50;
		for (int i = 0; run && i < 32; i++)
			guest_write(f, i & 1, (256 + rnd(&f->seed) % f->ws_pages) % (f->reg[i & 1].size / PAGE),
				    f->kind);
		pthread_mutex_unlock(&f->lock);
		struct timespec nap = { 0, 200000 };
		nanosleep(&nap, NULL);
	}
}

void writer_start(struct fake *f, enum write_kind kind)
{
	f->kind = kind;
	if (pthread_create(&f->writer, NULL, writer_main, f) != 0)
		abort();
	f->have_writer = 1;
}

void writer_stop(struct fake *f)
{
	if (!f->have_writer)
		return;
	pthread_mutex_lock(&f->lock);
	f->quit = 1;
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->writer, NULL);
	f->have_writer = 0;
}

static size_t fake_regions(void *o, struct tern_mig_region *out, size_t max)
{
	struct fake *f = o;
	if (max < 2)
		abort();
	memcpy(out, f->reg, sizeof f->reg);
	return 2;
}

/* Like SEEK_DATA: skip whole zero pages. */
static uint64_t fake_next_data(void *o, size_t r, uint64_t offset)
{
	struct fake *f = o;
	const uint8_t *h = f->reg[r].host;
	for (uint64_t off = offset & ~(uint64_t)(PAGE - 1); off < f->reg[r].size; off += PAGE)
		for (int i = 0; i < PAGE; i++)
			if (h[off + (uint64_t)i] != 0)
				return off;
	return f->reg[r].size;
}

static int fake_dirty_start(void *o, struct tern_error *err)
{
	(void)err;
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->tracking = 1;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_dirty_sync(void *o, struct tern_error *err)
{
	(void)err;
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	/* Like the writer, a guest throttled to 50% stops writing. */
	if (++f->syncs <= f->sync_writes_until && f->throttle < 50)
		for (unsigned p = 0; p < f->per_sync; p++)
			guest_write(f, 0, p, WRITE_SPARSE);
	for (int r = 0; r < 2; r++) {
		struct tern_dirty_cursor c = { 0 };
		uint64_t pages[256];
		size_t n;
		while ((n = tern_dirty_compact(f->log[r], &c, pages, 256, TERN_DIRTY_TAKE)) > 0)
			for (size_t i = 0; i < n; i++)
				tern_dirty_insert(f->reg[r].dirty, pages[i]);
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_dirty_stop(void *o)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->tracking = 0;
	pthread_mutex_unlock(&f->lock);
}

static int fake_stop(void *o, struct tern_error *err)
{
	(void)err;
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->stopped = 1;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_resume(void *o)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->stopped = 0;
	f->resumed++;
	pthread_mutex_unlock(&f->lock);
}

static int fake_save_state(void *o, struct tern_stream_writer *w, struct tern_error *err)
{
	struct fake *f = o;
	int rc = tern_stream_section(w, "cpu/0", (const uint8_t *)&f->cpu_state, sizeof f->cpu_state);
	return rc < 0 ? tern_errorf(err, rc, "writing cpu/0") : 0;
}

static void fake_throttle(void *o, unsigned percent)
{
	struct fake *f = o;
	pthread_mutex_lock(&f->lock);
	f->throttle = percent;
	if (percent > f->max_throttle)
		f->max_throttle = percent;
	if (percent == 0)
		f->unthrottled++;
	else
		f->throttle_calls++;
	pthread_mutex_unlock(&f->lock);
}

static void fake_event(void *o, enum tern_mig_status s)
{
	((struct fake *)o)->last_event = s;
}

const struct tern_mig_source_ops fake_source_ops = {
	.regions = fake_regions,
	.next_data = fake_next_data,
	.dirty_start = fake_dirty_start,
	.dirty_sync = fake_dirty_sync,
	.dirty_stop = fake_dirty_stop,
	.stop = fake_stop,
	.resume = fake_resume,
	.save_state = fake_save_state,
	.throttle = fake_throttle,
	.event = fake_event,
};

static int fake_load_section(void *o, const char *name, const uint8_t *data, size_t len,
			     struct tern_error *err)
{
	struct fake *f = o;
	if (strcmp(name, "cpu/0") != 0 || len != sizeof f->cpu_state)
		return tern_errorf(err, -EINVAL, "unexpected section %s", name);
	memcpy(&f->cpu_state, data, len);
	f->have_cpu = 1;
	return 0;
}

static int fake_finish(void *o, struct tern_error *err)
{
	struct fake *f = o;
	if (!f->have_cpu)
		return tern_errorf(err, -EINVAL, "no cpu/0 section");
	struct timespec nap = { f->finish_delay_ms / 1000, (long)(f->finish_delay_ms % 1000) * 1000000 };
	nanosleep(&nap, NULL);
	f->finished = 1;
	return 0;
}

static void fake_run(void *o)
{
	((struct fake *)o)->ran = 1;
}

const struct tern_mig_dest_ops fake_dest_ops = {
	.regions = fake_regions,
	.load_section = fake_load_section,
	.finish = fake_finish,
	.run = fake_run,
	.event = fake_event,
};
