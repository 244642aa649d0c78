/*
 * Guest memory as a sorted list of host-mapped ranges; see
 * include/tern/virtqueue.h.  A VM has a handful of ranges (RAM below and
 * above the PCI hole, a few regions), so a binary search is the whole
 * lookup; nothing here copies.
 */
#include <errno.h>
#include <inttypes.h>

#include "tern/virtqueue.h"

int tern_guest_mem_check(const struct tern_guest_mem *m, struct tern_error *err)
{
	if (m == NULL || (m->count != 0 && m->ranges == NULL))
		return tern_errorf(err, -EINVAL, "guest memory has no range list");
	for (size_t i = 0; i < m->count; i++) {
		const struct tern_guest_range *r = &m->ranges[i];
		if (r->len == 0 || r->host == NULL)
			return tern_errorf(err, -EINVAL, "guest memory range %zu is empty or unmapped",
					   i);
		if (r->gpa > UINT64_MAX - (r->len - 1))
			return tern_errorf(err, -EINVAL, "guest memory range %zu (0x%" PRIx64
					   "+0x%" PRIx64 ") wraps past 2^64", i, r->gpa, r->len);
		const struct tern_guest_range *p = &m->ranges[i - (i != 0)];
		if (i != 0 && r->gpa <= p->gpa + (p->len - 1))
			return tern_errorf(err, -EINVAL, "guest memory range %zu (0x%" PRIx64
					   ") is out of order or overlaps the one before; sort "
					   "the ranges by address", i, r->gpa);
	}
	return 0;
}

/* The range holding gpa, or NULL. */
static const struct tern_guest_range *find(const struct tern_guest_mem *m, uint64_t gpa)
{
	size_t lo = 0, hi = m->count;
	while (lo < hi) { /* the first range starting above gpa */
		size_t mid = lo + (hi - lo) / 2;
		if (m->ranges[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct tern_guest_range *r = &m->ranges[lo - 1];
	return gpa - r->gpa < r->len ? r : NULL;
}

uint64_t tern_guest_mem_span(const struct tern_guest_mem *m, uint64_t gpa, uint64_t len,
			     void **host)
{
	const struct tern_guest_range *r = len != 0 ? find(m, gpa) : NULL;
	if (r == NULL)
		return 0;
	uint64_t off = gpa - r->gpa, room = r->len - off;
	*host = (uint8_t *)r->host + off;
	return len < room ? len : room;
}

void *tern_guest_mem_map(const struct tern_guest_mem *m, uint64_t gpa, uint64_t len)
{
	void *host;
	return tern_guest_mem_span(m, gpa, len, &host) == len && len != 0 ? host : NULL;
}
