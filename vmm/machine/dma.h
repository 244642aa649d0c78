/*
 * The one path for device accesses to guest memory (DMA).  KVM's dirty
 * log and dirty ring see only the guest's own writes; a page the VMM
 * writes must be marked in tern's dirty sets (dirty_tracker_mark) while
 * tracking is on, or a migration would never send it again.  So devices
 * (and every other writer of guest memory in the VMM) write only through
 * dma_write, or dma_map / dma_unmap, which mark what was written.
 *
 * Any thread.  A range must lie wholly in guest memory, writes in
 * writable memory: otherwise -EFAULT and nothing is copied.  Marking
 * follows the copy, so a migration that sees the mark reads the new
 * bytes.
 */
#ifndef VMM_DMA_H
#define VMM_DMA_H

#include <stddef.h>
#include <stdint.h>

#include "tern/memslots.h"

struct vm;

int dma_write(struct vm *vm, uint64_t gpa, const void *data, size_t len);
int dma_read(struct vm *vm, uint64_t gpa, void *data, size_t len);

/*
 * Zero-copy: the host address of [gpa, gpa + len), which must lie in one
 * memslot (-EFAULT otherwise; a caller splits at slot ends).  The slot
 * cannot go away until dma_unmap, which memslot changes wait for, so keep
 * mappings short (one request).  dma_unmap with is_write marks the range
 * dirty; a mapping made with is_write 0 must not be written.
 */
struct dma_mapping {
	struct vm *vm;
	uint64_t gpa;
	size_t len;
	void *host;
	int writable;
	struct tern_memslots_view view;
};

int dma_map(struct vm *vm, uint64_t gpa, size_t len, int is_write, struct dma_mapping *m);
void dma_unmap(struct dma_mapping *m, int is_write);

#endif
