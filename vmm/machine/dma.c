/* Device accesses to guest memory; see dma.h. */
#include "machine/dma.h"

#include <errno.h>
#include <string.h>

#include "machine/vm.h"

#define PAGE TERN_MEMSLOT_PAGE_SIZE

/* The slot holding gpa and how many bytes of len lie in it from gpa on. */
static const struct tern_memslot *slot_at(const struct tern_memslots_view *v, uint64_t gpa,
					  size_t len, size_t *n)
{
	const struct tern_memslot *s = tern_memslots_find_gfn(v, gpa / PAGE);
	if (s == NULL)
		return NULL;
	uint64_t left = s->pages * PAGE - (gpa - s->gfn * PAGE);
	*n = left < len ? (size_t)left : len;
	return s;
}

/* Every byte in some slot (writable ones for a write)? */
static int whole(const struct tern_memslots_view *v, uint64_t gpa, size_t len, int write)
{
	if (len == 0)
		return 1;
	if (gpa + len - 1 < gpa)
		return 0;
	while (len > 0) {
		size_t n;
		const struct tern_memslot *s = slot_at(v, gpa, len, &n);
		if (s == NULL || (write && (s->flags & TERN_MEMSLOT_READONLY)))
			return 0;
		gpa += n;
		len -= n;
	}
	return 1;
}

/* Checked whole first: a refused access copies nothing, and a write is
 * never left half done and unmarked. */
static int copy(struct vm *vm, uint64_t gpa, void *buf, size_t len, int write)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(vm->memmap.map, &v);
	int rc = whole(&v, gpa, len, write) ? 0 : -EFAULT;
	uint64_t at = gpa;
	uint8_t *p = buf;
	for (size_t left = len; rc == 0 && left > 0;) {
		size_t n;
		const struct tern_memslot *s = slot_at(&v, at, left, &n);
		uint8_t *host = s->host + (at - s->gfn * PAGE);
		if (write)
			memcpy(host, p, n);
		else
			memcpy(p, host, n);
		p += n;
		at += n;
		left -= n;
	}
	tern_memslots_read_end(&v);
	if (rc == 0 && write)
		dirty_tracker_mark(&vm->dirty, gpa, len);
	return rc;
}

int dma_write(struct vm *vm, uint64_t gpa, const void *data, size_t len)
{
	return copy(vm, gpa, (void *)data, len, 1);
}

int dma_read(struct vm *vm, uint64_t gpa, void *data, size_t len)
{
	return copy(vm, gpa, data, len, 0);
}

int dma_map(struct vm *vm, uint64_t gpa, size_t len, int is_write, struct dma_mapping *m)
{
	memset(m, 0, sizeof *m);
	if (len == 0 || gpa + len - 1 < gpa)
		return -EFAULT;
	tern_memslots_read_begin(vm->memmap.map, &m->view);
	size_t n;
	const struct tern_memslot *s = slot_at(&m->view, gpa, len, &n);
	if (s == NULL || n < len || (is_write && (s->flags & TERN_MEMSLOT_READONLY))) {
		tern_memslots_read_end(&m->view);
		return -EFAULT;
	}
	m->vm = vm;
	m->gpa = gpa;
	m->len = len;
	m->writable = is_write;
	m->host = s->host + (gpa - s->gfn * PAGE);
	return 0;
}

void dma_unmap(struct dma_mapping *m, int is_write)
{
	if (m->vm == NULL)
		return;
	tern_memslots_read_end(&m->view);
	/* Marked after the device's writes, like dma_write. */
	if (is_write && m->writable)
		dirty_tracker_mark(&m->vm->dirty, m->gpa, m->len);
	m->vm = NULL;
	m->host = NULL;
}
