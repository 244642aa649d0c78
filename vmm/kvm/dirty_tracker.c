/* Dirty-page tracking through KVM; see dirty_tracker.h. */
#include "kvm/dirty_tracker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "machine/vm.h"

#define PAGE 4096ULL
/* KVM_CLEAR_DIRTY_LOG covers at most this many pages per call, so that
 * KVM's mmu lock is never held for long (the point of manual protect). */
#define CLEAR_CHUNK_PAGES (1u << 18)

const char *dirty_mode_name(enum dirty_mode mode)
{
	return mode == DIRTY_MODE_RING ? "dirty-ring" : "dirty-bitmap";
}

static int enable_cap(struct vm *vm, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };
	return ioctl(vm->kvm.vm_fd, KVM_ENABLE_CAP, &c) < 0 ? -errno : 0;
}

int dirty_tracker_init(struct dirty_tracker *t, struct vm *vm, enum dirty_mode mode,
		       uint32_t ring_entries, struct tern_error *err)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->lock, NULL);
	t->vm = vm;
	t->mode = mode;
	if (mode == DIRTY_MODE_LOG) {
		int caps = kvm_check_extension(&vm->kvm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
		uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
		if (((uint64_t)caps & want) == want && enable_cap(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, want) == 0)
			t->manual_protect = 1;
		return 0;
	}
	if (ring_entries < DIRTY_RING_MIN_ENTRIES || (ring_entries & (ring_entries - 1)) != 0)
		return tern_errorf(err, -EINVAL, "--dirty-ring-size %u: must be a power of two, at "
				   "least %u", ring_entries, DIRTY_RING_MIN_ENTRIES);
	uint64_t bytes = (uint64_t)ring_entries * sizeof(struct kvm_dirty_gfn);
	uint32_t cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int max = kvm_check_extension(&vm->kvm, cap);
	if (max <= 0) {
		cap = KVM_CAP_DIRTY_LOG_RING;
		max = kvm_check_extension(&vm->kvm, cap);
	}
	if (max <= 0)
		return tern_errorf(err, -ENOTSUP, "this KVM has no dirty ring; use "
				   "--dirty-tracking log");
	if (bytes > (uint64_t)max)
		return tern_errorf(err, -EINVAL, "--dirty-ring-size %u: KVM allows at most %llu "
				   "entries", ring_entries,
				   (unsigned long long)((uint64_t)max / sizeof(struct kvm_dirty_gfn)));
	int rc = enable_cap(vm, cap, bytes);
	if (rc < 0)
		return tern_errorf(err, rc, "enabling the KVM dirty ring (%u entries): %s",
				   ring_entries, strerror(-rc));
	t->ring_entries = ring_entries;
	return 0;
}

int dirty_tracker_attach_slots(struct dirty_tracker *t, struct tern_error *err)
{
	/* Built aside and taken whole, so that a failure leaves none (as after
	 * a live update, where the guest already runs when this is called). */
	const struct guest_ram *ram = &t->vm->ram;
	struct tern_dirty **set = calloc(ram->slots, sizeof *set);
	uint64_t largest = 0, *bitmap = NULL;
	unsigned made = 0;
	while (set != NULL && made < ram->slots) {
		uint64_t pages = ram->slot[made].size / PAGE;
		if ((set[made] = tern_dirty_new(pages)) == NULL)
			break;
		largest = pages > largest ? pages : largest;
		made++;
	}
	if (set != NULL && made == ram->slots && t->mode == DIRTY_MODE_LOG)
		bitmap = calloc((size_t)((largest + 63) / 64), sizeof *bitmap);
	if (set == NULL || made < ram->slots || (t->mode == DIRTY_MODE_LOG && bitmap == NULL)) {
		for (unsigned i = 0; i < made; i++)
			tern_dirty_free(set[i]);
		free(set);
		return tern_errorf(err, -ENOMEM, "out of memory for dirty tracking");
	}
	pthread_mutex_lock(&t->lock);
	t->set = set;
	t->bitmap = bitmap;
	t->slots = ram->slots;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void dirty_tracker_destroy(struct dirty_tracker *t)
{
	for (unsigned i = 0; i < t->slots; i++)
		tern_dirty_free(t->set[i]);
	free(t->set);
	free(t->bitmap);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof *t);
}

static int set_slot_flags(struct dirty_tracker *t, uint32_t flags, struct tern_error *err)
{
	struct vm *vm = t->vm;
	for (unsigned i = 0; i < vm->ram.slots; i++) {
		const struct ram_slot *s = &vm->ram.slot[i];
		int rc = kvm_set_memslot(&vm->kvm, s->id, s->gpa, s->size, vm->ram.host + s->offset,
					 flags, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Write-protect (and mark clean in KVM) the pages set in bits[], which
 * covers the whole slot, in chunks. */
static int clear_log(struct dirty_tracker *t, unsigned slot, uint64_t pages, uint64_t *bits)
{
	for (uint64_t first = 0; first < pages; first += CLEAR_CHUNK_PAGES) {
		uint64_t n = pages - first < CLEAR_CHUNK_PAGES ? pages - first : CLEAR_CHUNK_PAGES;
		uint64_t *chunk = bits + first / 64;
		int any = 0;
		for (uint64_t w = 0; w < (n + 63) / 64 && !any; w++)
			any = chunk[w] != 0;
		if (!any)
			continue;
		struct kvm_clear_dirty_log c = {
			.slot = slot,
			.num_pages = (uint32_t)n,
			.first_page = first,
			.dirty_bitmap = chunk,
		};
		if (ioctl(t->vm->kvm.vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
			return -errno;
	}
	return 0;
}

int dirty_tracker_start(struct dirty_tracker *t, struct tern_error *err)
{
	pthread_mutex_lock(&t->lock);
	int rc = 0;
	if (t->active)
		goto out;
	if (t->set == NULL) {
		rc = tern_errorf(err, -ENOMEM, "dirty-page tracking is unavailable: its sets could "
				 "not be made (see tern's log)");
		goto out;
	}
	if ((rc = set_slot_flags(t, KVM_MEM_LOG_DIRTY_PAGES, err)) < 0)
		goto out;
	if (t->mode == DIRTY_MODE_LOG && t->manual_protect) {
		/* Initially all set: write-protect everything now, a chunk at a
		 * time, so that only later writes count. */
		for (unsigned i = 0; i < t->slots; i++) {
			uint64_t pages = tern_dirty_pages(t->set[i]);
			memset(t->bitmap, 0xff, (size_t)((pages + 63) / 64) * sizeof *t->bitmap);
			if ((rc = clear_log(t, i, pages, t->bitmap)) < 0) {
				tern_errorf(err, rc, "KVM_CLEAR_DIRTY_LOG: %s", strerror(-rc));
				goto out;
			}
		}
	}
	for (unsigned i = 0; i < t->slots; i++)
		tern_dirty_clear_all(t->set[i]);
	t->harvested = 0;
	t->active = 1;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static int sync_log(struct dirty_tracker *t, struct tern_error *err)
{
	for (unsigned i = 0; i < t->slots; i++) {
		uint64_t pages = tern_dirty_pages(t->set[i]);
		struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = t->bitmap };
		if (ioctl(t->vm->kvm.vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return tern_errorf(err, -errno, "KVM_GET_DIRTY_LOG slot %u: %s", i,
					   strerror(errno));
		tern_dirty_or_bitmap(t->set[i], 0, t->bitmap, (size_t)((pages + 63) / 64));
		/* Harvested first, protected after: a write in between is seen
		 * when the page is read, since it is dirty already. */
		if (t->manual_protect) {
			int rc = clear_log(t, i, pages, t->bitmap);
			if (rc < 0)
				return tern_errorf(err, rc, "KVM_CLEAR_DIRTY_LOG slot %u: %s", i,
						   strerror(-rc));
		}
	}
	return 0;
}

int dirty_tracker_sync(struct dirty_tracker *t, struct tern_error *err)
{
	pthread_mutex_lock(&t->lock);
	int rc = 0;
	if (t->active) {
		if (t->mode == DIRTY_MODE_LOG) {
			rc = sync_log(t, err);
		} else {
			for (unsigned i = 0; i < t->vm->vcpus; i++)
				dirty_ring_harvest(t, &t->vm->vcpu[i]);
			dirty_ring_reset(t);
		}
		t->syncs++;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void dirty_tracker_stop(struct dirty_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->active) {
		if (t->mode == DIRTY_MODE_RING) {
			for (unsigned i = 0; i < t->vm->vcpus; i++)
				dirty_ring_harvest(t, &t->vm->vcpu[i]);
			dirty_ring_reset(t);
		}
		set_slot_flags(t, 0, NULL);
		t->active = 0;
	}
	pthread_mutex_unlock(&t->lock);
}

void dirty_tracker_mark(struct dirty_tracker *t, uint64_t gpa, uint64_t len)
{
	if (!__atomic_load_n(&t->active, __ATOMIC_ACQUIRE) || len == 0)
		return;
	const struct guest_ram *ram = &t->vm->ram;
	for (uint64_t page = gpa / PAGE; page <= (gpa + len - 1) / PAGE; page++) {
		int s = ram_slot_of(ram, page * PAGE);
		if (s >= 0)
			tern_dirty_insert(t->set[s], page - ram->slot[s].gpa / PAGE);
	}
}

uint64_t dirty_tracker_count(struct dirty_tracker *t)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < t->slots; i++)
		n += tern_dirty_count(t->set[i]);
	return n;
}

/* ------------------------------------------------------------ the ring */

int dirty_ring_map(struct dirty_tracker *t, struct vcpu *v, struct tern_error *err)
{
	if (t->mode != DIRTY_MODE_RING)
		return 0;
	pthread_mutex_init(&v->ring_lock, NULL);
	size_t bytes = (size_t)t->ring_entries * sizeof(struct kvm_dirty_gfn);
	void *ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
			  (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * 4096);
	if (ring == MAP_FAILED)
		return tern_errorf(err, -errno, "mapping vCPU %u's dirty ring: %s", v->index,
				   strerror(errno));
	v->ring = ring;
	return 0;
}

uint64_t dirty_ring_harvest(struct dirty_tracker *t, struct vcpu *v)
{
	if (v->ring == NULL)
		return 0;
	uint64_t n = 0;
	pthread_mutex_lock(&v->ring_lock);
	for (;;) {
		struct kvm_dirty_gfn *e = &v->ring[v->ring_next % t->ring_entries];
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		uint32_t slot = e->slot & 0xffff; /* address space 0 only */
		if (slot < t->slots)
			tern_dirty_insert(t->set[slot], e->offset);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		v->ring_next++;
		n++;
	}
	v->ring_harvested += n;
	pthread_mutex_unlock(&v->ring_lock);
	__atomic_fetch_add(&t->harvested, n, __ATOMIC_RELAXED);
	return n;
}

void dirty_ring_reset(struct dirty_tracker *t)
{
	ioctl(t->vm->kvm.vm_fd, KVM_RESET_DIRTY_RINGS, 0);
}
