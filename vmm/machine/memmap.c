/* The VM's guest memory map in step with KVM; see memmap.h. */
#include "machine/memmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpr/kept_fds.h"
#include "machine/vm.h"

#define PAGE 4096ULL

static uint32_t kvm_flags(uint32_t flags)
{
	return (flags & TERN_MEMSLOT_READONLY ? KVM_MEM_READONLY : 0) |
	       (flags & TERN_MEMSLOT_DIRTY_LOG ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

static int kvm_add(struct vm *vm, const struct tern_memslot *s, struct tern_error *err)
{
	return kvm_set_memslot(&vm->kvm, s->id, s->gfn * PAGE, s->pages * PAGE, s->host,
			       kvm_flags(s->flags), err);
}

static int kvm_delete(struct vm *vm, const struct tern_memslot *s)
{
	return kvm_set_memslot(&vm->kvm, s->id, s->gfn * PAGE, 0, s->host, 0, NULL);
}

int memmap_init(struct vm *vm, struct tern_fdstore *store, struct tern_error *err)
{
	struct vm_memmap *mm = &vm->memmap;
	mm->store = store;
	mm->map = tern_memslots_new(vm->kvm.max_memslots);
	if (mm->map == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory for the memslot map");
	mm->ram_slots = vm->ram.slots;
	int rc = 0;
	tern_memslots_begin(mm->map);
	for (unsigned i = 0; i < vm->ram.slots && rc == 0; i++) {
		const struct ram_slot *r = &vm->ram.slot[i];
		struct tern_memslot s = { .id = r->id, .gfn = r->gpa / PAGE, .pages = r->size / PAGE,
					  .host = vm->ram.host + r->offset, .fd = vm->ram.memfd,
					  .fd_offset = r->offset };
		rc = tern_memslots_add(mm->map, &s, err);
		if (rc == 0)
			rc = kvm_add(vm, &s, err);
	}
	tern_memslots_commit(mm->map);
	return rc;
}

static void unmap_region(struct hot_region *h)
{
	munmap(h->host, h->size);
	close(h->memfd);
}

void memmap_destroy(struct vm *vm)
{
	struct vm_memmap *mm = &vm->memmap;
	for (unsigned i = 0; i < mm->nhot; i++)
		unmap_region(&mm->hot[i]);
	free(mm->hot);
	tern_memslots_free(mm->map);
	memset(mm, 0, sizeof *mm);
}

static struct hot_region *find_hot(struct vm_memmap *mm, uint32_t slot)
{
	for (unsigned i = 0; i < mm->nhot; i++)
		if (mm->hot[i].slot == slot)
			return &mm->hot[i];
	return NULL;
}

/* A slot the user added (RAM's slots stay as the VM was built). */
static struct hot_region *runtime_slot(struct vm *vm, uint32_t slot, struct tern_error *err)
{
	struct hot_region *h = find_hot(&vm->memmap, slot);
	if (h == NULL)
		tern_errorf(err, -ENOENT,
			    slot < vm->memmap.ram_slots
				    ? "memslot %u is guest RAM: only regions added with memslot-add "
				      "can be changed"
				    : "no memslot %u was added with memslot-add",
			    slot);
	return h;
}

/* The current record of a slot (copied out of a read section). */
static int slot_record(struct vm *vm, uint32_t id, struct tern_memslot *out)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(vm->memmap.map, &v);
	const struct tern_memslot *s = tern_memslots_find_id(&v, id);
	if (s)
		*out = *s;
	tern_memslots_read_end(&v);
	return s ? 0 : -ENOENT;
}

static int free_slot_id(struct vm *vm, uint32_t *id, struct tern_error *err)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(vm->memmap.map, &v);
	uint32_t max = tern_memslots_max(vm->memmap.map), found = max;
	for (uint32_t i = vm->memmap.ram_slots; i < max && found == max; i++)
		if (tern_memslots_find_id(&v, i) == NULL)
			found = i;
	tern_memslots_read_end(&v);
	if (found == max)
		return tern_errorf(err, -ENOSPC, "all %u memslots KVM offers are in use", max);
	*id = found;
	return 0;
}

static int check_range(uint64_t gpa, uint64_t size, struct tern_error *err)
{
	if (gpa % PAGE || size % PAGE || size == 0)
		return tern_errorf(err, -EINVAL, "addr and size must be non-zero multiples of 4 KiB");
	if (gpa >= TERN_MEMSLOT_GFN_LIMIT * PAGE || size > TERN_MEMSLOT_GFN_LIMIT * PAGE - gpa)
		return tern_errorf(err, -EINVAL, "0x%llx + 0x%llx is beyond the 2^52 guest-physical "
				   "address limit", (unsigned long long)gpa,
				   (unsigned long long)size);
	return 0;
}

static int reserve_hot(struct vm_memmap *mm, struct tern_error *err)
{
	if (mm->nhot < mm->hot_cap)
		return 0;
	unsigned cap = mm->hot_cap ? 2 * mm->hot_cap : 8;
	struct hot_region *hot = realloc(mm->hot, cap * sizeof *hot);
	if (hot == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	mm->hot = hot;
	mm->hot_cap = cap;
	return 0;
}

/* Map memfd (size bytes) at gpa as slot id, in tern's map and KVM's.  On
 * failure nothing is mapped and the memfd is the caller's again. */
static int attach_region(struct vm *vm, uint32_t id, uint64_t gpa, uint64_t size, uint32_t flags,
			 int memfd, struct tern_error *err)
{
	struct vm_memmap *mm = &vm->memmap;
	int rc = reserve_hot(mm, err);
	if (rc < 0)
		return rc;
	void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (host == MAP_FAILED)
		return tern_errorf(err, -errno, "mapping %llu bytes: %s", (unsigned long long)size,
				   strerror(errno));
	struct tern_memslot s = { .id = id, .flags = flags, .gfn = gpa / PAGE,
				  .pages = size / PAGE, .host = host, .fd = memfd };
	rc = tern_memslots_add(mm->map, &s, err);
	if (rc == 0) {
		rc = kvm_add(vm, &s, err);
		if (rc < 0)
			tern_memslots_remove(mm->map, id, NULL);
	}
	if (rc < 0) {
		munmap(host, size);
		return rc;
	}
	mm->hot[mm->nhot++] = (struct hot_region){ .slot = id, .memfd = memfd, .host = host,
						   .size = size };
	return 0;
}

/* Undo attach_region for slot: out of KVM and the map, unmapped; returns
 * its memfd (the caller closes or keeps it), or -ENOENT. */
static int detach_region(struct vm *vm, uint32_t slot, struct tern_error *err)
{
	struct vm_memmap *mm = &vm->memmap;
	struct hot_region *h = runtime_slot(vm, slot, err);
	struct tern_memslot s;
	if (h == NULL || slot_record(vm, slot, &s) < 0)
		return -ENOENT;
	int rc = kvm_delete(vm, &s);
	if (rc < 0)
		return tern_errorf(err, rc, "KVM refused to delete memslot %u", slot);
	/* Readers have left the slot when this returns: unmapping is safe. */
	tern_memslots_remove(mm->map, slot, NULL);
	munmap(h->host, h->size);
	int memfd = h->memfd;
	*h = mm->hot[--mm->nhot];
	return memfd;
}

int memmap_add_region(struct vm *vm, uint64_t gpa, uint64_t size, int readonly, uint32_t *slot,
		      struct tern_error *err)
{
	int rc = check_range(gpa, size, err);
	if (rc < 0)
		return rc;
	if (readonly && !vm->kvm.has_readonly_mem)
		return tern_errorf(err, -ENOTSUP, "this KVM has no read-only memslots");
	uint32_t id = 0;
	if ((rc = free_slot_id(vm, &id, err)) < 0)
		return rc;
	int fd = memfd_create("tern-memslot", MFD_CLOEXEC);
	if (fd < 0)
		return tern_errorf(err, -errno, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0)
		rc = tern_errorf(err, -errno, "sizing a %llu-byte memfd: %s",
				 (unsigned long long)size, strerror(errno));
	if (rc == 0)
		rc = attach_region(vm, id, gpa, size, readonly ? TERN_MEMSLOT_READONLY : 0, fd, err);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	/* A live update carries it. */
	if (kept_fd_add(vm->memmap.store, KEPT_MEMSLOT_REGION, id, fd) < 0) {
		detach_region(vm, id, NULL);
		close(fd);
		return tern_errorf(err, -ENOMEM, "out of memory keeping the region's memfd");
	}
	*slot = id;
	return 0;
}

int memmap_remove_region(struct vm *vm, uint32_t slot, struct tern_error *err)
{
	int memfd = detach_region(vm, slot, err);
	if (memfd < 0)
		return memfd;
	kept_fd_forget(vm->memmap.store, KEPT_MEMSLOT_REGION, slot);
	close(memfd);
	return 0;
}

int memmap_move_region(struct vm *vm, uint32_t slot, uint64_t gpa, struct tern_error *err)
{
	struct tern_memslot s;
	if (runtime_slot(vm, slot, err) == NULL || slot_record(vm, slot, &s) < 0)
		return -ENOENT;
	if (gpa % PAGE)
		return tern_errorf(err, -EINVAL, "addr must be a multiple of 4 KiB");
	int rc = tern_memslots_move(vm->memmap.map, slot, gpa / PAGE, err);
	if (rc < 0)
		return rc;
	/* KVM moves a slot in place when only its address changes. */
	rc = kvm_set_memslot(&vm->kvm, slot, gpa, s.pages * PAGE, s.host, kvm_flags(s.flags), err);
	if (rc < 0)
		tern_memslots_move(vm->memmap.map, slot, s.gfn, NULL);
	return rc;
}

int memmap_set_readonly(struct vm *vm, uint32_t slot, int readonly, struct tern_error *err)
{
	struct tern_memslot s;
	if (runtime_slot(vm, slot, err) == NULL || slot_record(vm, slot, &s) < 0)
		return -ENOENT;
	uint32_t flags = readonly ? s.flags | TERN_MEMSLOT_READONLY : s.flags & ~TERN_MEMSLOT_READONLY;
	if (flags == s.flags)
		return 0;
	if (readonly && !vm->kvm.has_readonly_mem)
		return tern_errorf(err, -ENOTSUP, "this KVM has no read-only memslots");
	/* KVM changes no flag but dirty logging in place: delete and re-add
	 * with the vCPUs held out, so the guest never finds the range empty. */
	int held = vm_quiesce(vm);
	int rc = kvm_delete(vm, &s);
	if (rc == 0) {
		struct tern_memslot now = s;
		now.flags = flags;
		rc = kvm_add(vm, &now, err);
		if (rc < 0)
			kvm_add(vm, &s, NULL); /* put it back as it was */
	} else {
		tern_errorf(err, rc, "KVM refused to change memslot %u", slot);
	}
	if (rc == 0)
		rc = tern_memslots_set_flags(vm->memmap.map, slot, flags, err);
	vm_unquiesce(vm, held);
	return rc;
}

int memmap_access(struct vm *vm, uint64_t gpa, void *buf, size_t len, int write)
{
	struct tern_memslots_view v;
	tern_memslots_read_begin(vm->memmap.map, &v);
	int rc = 0;
	uint8_t *at = buf;
	while (len > 0) {
		const struct tern_memslot *s = tern_memslots_find_gfn(&v, gpa / PAGE);
		if (s == NULL) {
			rc = -EFAULT;
			break;
		}
		uint64_t offset = gpa - s->gfn * PAGE;
		size_t n = s->pages * PAGE - offset < len ? (size_t)(s->pages * PAGE - offset) : len;
		if (write)
			memcpy(s->host + offset, at, n);
		else
			memcpy(at, s->host + offset, n);
		at += n;
		gpa += n;
		len -= n;
	}
	tern_memslots_read_end(&v);
	return rc;
}

/* ------------------------------------------------------ across a live update */

#define REGION_FLAGS_KNOWN TERN_MEMSLOT_READONLY

/* One region as saved. */
struct region_record {
	uint32_t slot, flags;
	uint64_t gpa, size;
};

struct regions_state {
	uint32_t count;
	struct region_record *region;
};

static const struct tern_vmstate_field region_fields[] = {
	TERN_VMS_FIELD_U32(struct region_record, slot, 0),
	TERN_VMS_FIELD_U32(struct region_record, flags, 0),
	TERN_VMS_FIELD_U64(struct region_record, gpa, 0),
	TERN_VMS_FIELD_U64(struct region_record, size, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc region_desc = {
	.name = "memory-region",
	.size = sizeof(struct region_record),
	.version = 1,
	.min_version = 1,
	.fields = region_fields,
};

static const struct tern_vmstate_field regions_fields[] = {
	TERN_VMS_FIELD_VARRAY_PTR_STRUCT_AS("regions", struct regions_state, region, count,
					    &region_desc, MEMMAP_REGIONS_MAX, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc regions_desc = {
	.name = "memory-regions",
	.size = sizeof(struct regions_state),
	.version = 1,
	.min_version = 1,
	.fields = regions_fields,
};

static int regions_save(void *holder, void *obj, struct tern_error *err)
{
	struct vm *vm = holder;
	struct vm_memmap *mm = &vm->memmap;
	struct regions_state *st = obj;
	st->region = calloc(mm->nhot ? mm->nhot : 1, sizeof *st->region);
	if (st->region == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < mm->nhot; i++) {
		struct tern_memslot s;
		if (slot_record(vm, mm->hot[i].slot, &s) < 0)
			return tern_errorf(err, -ENOENT, "memslot %u vanished", mm->hot[i].slot);
		st->region[st->count++] = (struct region_record){
			.slot = s.id,
			.flags = s.flags & REGION_FLAGS_KNOWN,
			.gpa = s.gfn * PAGE,
			.size = s.pages * PAGE,
		};
	}
	return 0;
}

static void regions_release(void *obj)
{
	struct regions_state *st = obj;
	free(st->region);
}

struct saved_region {
	uint32_t slot, flags;
	uint64_t gpa, size;
	int memfd;
};

static int count_regions(void *ctx, const char *name, uint32_t id, int fd)
{
	(void)id;
	(void)fd;
	if (strcmp(name, KEPT_MEMSLOT_REGION) == 0)
		++*(uint32_t *)ctx;
	return 0;
}

/* One entry, checked against this VM and the kept memfds. */
static int check_region(struct vm *vm, const struct saved_region *r, struct tern_error *err)
{
	int rc = check_range(r->gpa, r->size, err);
	if (rc < 0)
		return rc;
	if (r->slot < vm->memmap.ram_slots || r->slot >= tern_memslots_max(vm->memmap.map))
		return tern_errorf(err, -EINVAL, "memslot %u is not one a region can have", r->slot);
	if (r->flags & ~(uint32_t)REGION_FLAGS_KNOWN)
		return tern_errorf(err, -EINVAL, "memslot %u: flags 0x%x", r->slot, r->flags);
	if ((r->flags & TERN_MEMSLOT_READONLY) && !vm->kvm.has_readonly_mem)
		return tern_errorf(err, -ENOTSUP, "memslot %u is read-only and this KVM has no "
				   "read-only memslots", r->slot);
	if (r->memfd < 0)
		return tern_errorf(err, -EBADF, "no memfd was kept for memslot %u", r->slot);
	struct stat st;
	if (fstat(r->memfd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != r->size)
		return tern_errorf(err, -EINVAL, "the memfd kept for memslot %u is not %llu bytes",
				   r->slot, (unsigned long long)r->size);
	return 0;
}

static int regions_load(void *holder, const void *obj, struct tern_error *err)
{
	struct vm *vm = holder;
	const struct regions_state *st = obj;
	struct vm_memmap *mm = &vm->memmap;
	uint32_t count = st->count, kept = 0;
	if (mm->nhot != 0)
		return tern_errorf(err, -EINVAL, "memory regions: loaded twice");
	if (mm->store != NULL)
		tern_fdstore_walk(mm->store, count_regions, &kept);
	if (count != kept)
		return tern_errorf(err, -EINVAL, "memory regions: %u described, %u memfds kept",
				   count, kept);
	struct saved_region *r = calloc(count ? count : 1, sizeof *r);
	if (r == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	int rc = 0;
	for (uint32_t i = 0; i < count && rc == 0; i++) {
		r[i] = (struct saved_region){ st->region[i].slot, st->region[i].flags,
					      st->region[i].gpa, st->region[i].size, -1 };
		r[i].memfd = kept_fd_find(mm->store, KEPT_MEMSLOT_REGION, r[i].slot);
		rc = check_region(vm, &r[i], err);
		for (uint32_t j = 0; j < i && rc == 0; j++)
			if (r[j].slot == r[i].slot)
				rc = tern_errorf(err, -EINVAL, "memslot %u appears twice", r[i].slot);
	}
	/* Overlaps, with guest RAM or each other, the map refuses. */
	uint32_t added = 0;
	while (rc == 0 && added < count) {
		const struct saved_region *a = &r[added];
		rc = attach_region(vm, a->slot, a->gpa, a->size, a->flags, a->memfd, err);
		added += rc == 0;
	}
	if (rc < 0) {
		while (added-- > 0)
			detach_region(vm, r[added].slot, NULL); /* the memfds stay kept */
		tern_error_prefix(err, "memory regions");
	}
	free(r);
	return rc;
}

/* Migration does not carry runtime regions (their memory is not in the
 * stream): it refuses while there are any, rather than lose them. */
static const char *regions_blocked(void *holder, enum vm_carrier carrier)
{
	(void)carrier;
	const struct vm *vm = holder;
	return vm->memmap.nhot == 0 ? NULL
				    : "memory regions added at run time (memslot-add) go only "
				      "through a live update; remove them first (memslot-del)";
}

VM_STATE_TYPE(memmap_regions_type) = {
	.name = MEMMAP_REGIONS_SECTION,
	.desc = &regions_desc,
	.carry = VM_CARRY_LIVE_UPDATE,
	.save = regions_save,
	.load = regions_load,
	.release = regions_release,
	.blocked = regions_blocked,
};

int memmap_register_state(struct vm *vm, struct tern_error *err)
{
	return vm_state_register(&vm->states, &memmap_regions_type, -1, vm, err);
}
