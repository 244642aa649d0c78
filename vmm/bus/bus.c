/* Address spaces of device ranges; see bus.h. */
#include "bus/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern/buf.h"

/* Inclusive ends, so a range may end at 2^64 - 1. */
static uint64_t last_of(const struct bus_range *r)
{
	return r->base + r->len - 1;
}

static uint64_t ones(unsigned size)
{
	return size >= 8 ? UINT64_MAX : (1ULL << (size * 8)) - 1;
}

int bus_init(struct bus_space *s, const char *name, uint64_t limit)
{
	memset(s, 0, sizeof *s);
	s->name = name;
	s->limit = limit;
	/* Writers first: a BAR move must not wait behind a stream of exits. */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int rc = pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return -rc;
}

void bus_destroy(struct bus_space *s)
{
	if (s->name == NULL)
		return; /* never initialised */
	pthread_rwlock_destroy(&s->lock);
	free(s->range);
	memset(s, 0, sizeof *s);
}

/* How many ranges start at or below addr (under the lock). */
static size_t upper_bound(const struct bus_space *s, uint64_t addr)
{
	size_t lo = 0, hi = s->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->range[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus_space *s, const struct bus_range *r, struct tern_error *err)
{
	const char *what = r->name != NULL ? r->name : "a device";
	if (r->len == 0 || last_of(r) < r->base || (s->limit != 0 && last_of(r) >= s->limit))
		return tern_errorf(err, -EINVAL, "%s: 0x%llx+0x%llx is not a range of %s", what,
				   (unsigned long long)r->base, (unsigned long long)r->len, s->name);
	pthread_rwlock_wrlock(&s->lock);
	int rc = 0;
	size_t pos = upper_bound(s, r->base);
	const struct bus_range *clash = NULL;
	if (pos > 0 && last_of(&s->range[pos - 1]) >= r->base)
		clash = &s->range[pos - 1];
	else if (pos < s->count && s->range[pos].base <= last_of(r))
		clash = &s->range[pos];
	if (clash != NULL) {
		rc = tern_errorf(err, -EBUSY, "%s at 0x%llx+0x%llx overlaps %s at 0x%llx+0x%llx in %s",
				 what, (unsigned long long)r->base, (unsigned long long)r->len,
				 clash->name != NULL ? clash->name : "a device",
				 (unsigned long long)clash->base, (unsigned long long)clash->len,
				 s->name);
		goto out;
	}
	if (tern_array_grow(&s->range, &s->cap, s->count, sizeof *s->range, 16) < 0) {
		rc = tern_errorf(err, -ENOMEM, "out of memory for %s ranges", s->name);
		goto out;
	}
	memmove(&s->range[pos + 1], &s->range[pos], (s->count - pos) * sizeof *s->range);
	s->range[pos] = *r;
	s->count++;
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int bus_unregister(struct bus_space *s, uint64_t base)
{
	pthread_rwlock_wrlock(&s->lock);
	int rc = -ENOENT;
	size_t pos = upper_bound(s, base);
	if (pos > 0 && s->range[pos - 1].base == base) {
		memmove(&s->range[pos - 1], &s->range[pos], (s->count - pos) * sizeof *s->range);
		s->count--;
		rc = 0;
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* The range holding all of [addr, addr + size), copied out. */
static int lookup(struct bus_space *s, uint64_t addr, uint64_t size, struct bus_range *out)
{
	uint64_t last = addr + size - 1;
	if (last < addr)
		return -ENOENT;
	pthread_rwlock_rdlock(&s->lock);
	size_t pos = upper_bound(s, addr);
	int rc = -ENOENT;
	if (pos > 0 && last_of(&s->range[pos - 1]) >= last) {
		*out = s->range[pos - 1];
		rc = 0;
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

int bus_find(struct bus_space *s, uint64_t addr, struct bus_range *out)
{
	return lookup(s, addr, 1, out);
}

size_t bus_count(struct bus_space *s)
{
	pthread_rwlock_rdlock(&s->lock);
	size_t n = s->count;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

static int size_ok(unsigned size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

int bus_read(struct bus_space *s, uint64_t addr, unsigned size, uint64_t *value)
{
	struct bus_range r;
	*value = size_ok(size) ? ones(size) : UINT64_MAX;
	if (!size_ok(size) || lookup(s, addr, size, &r) < 0)
		return 0;
	if (r.read != NULL)
		*value = r.read(r.opaque, addr - r.base, size) & ones(size);
	return 1;
}

int bus_write(struct bus_space *s, uint64_t addr, unsigned size, uint64_t value)
{
	struct bus_range r;
	if (!size_ok(size) || lookup(s, addr, size, &r) < 0)
		return 0;
	if (r.write != NULL)
		r.write(r.opaque, addr - r.base, size, value & ones(size));
	return 1;
}

/* The host is x86-64: little-endian like the guest, so bytes copy as is. */
void bus_access(struct bus_space *s, uint64_t addr, uint8_t *data, unsigned size, int is_write)
{
	uint64_t v = 0;
	if (size > BUS_MAX_ACCESS) { /* no such access on x86: float high, drop */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write) {
		memcpy(&v, data, size);
		bus_write(s, addr, size, v);
	} else {
		bus_read(s, addr, size, &v);
		memcpy(data, &v, size);
	}
}
