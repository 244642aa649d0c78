/*
 * virtio-blk-pci as a --device kind (and what --drive becomes):
 *   virtio-blk-pci,file=PATH[,format=raw|qcow2][,cache=writeback|none]
 *                  [,readonly=on|off][,id=NAME]
 * Guest RAM as the queue's guest memory, dirty marks into the VM's
 * tracker (as dma.c does), MSI-X vectors as MSI routes with an irqfd each.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cpr/kept_fds.h"
#include "devices/devices.h"
#include "devices/virtio_blk.h"
#include "kvm/irq.h"
#include "machine/vm.h"

struct msi_vec {
	int efd, gsi; /* gsi -1: no route yet */
	uint64_t addr;
	uint32_t data;
};

struct vblk_device {
	struct virtio_blk vb; /* first */
	struct vm *vm;
	struct tern_block *blk;
	struct tern_guest_range ranges[16];
	struct tern_guest_mem mem;
	struct msi_vec vec[VIRTIO_PCI_MAX_VECTORS];
	char id[VBLK_ID_BYTES + 1];
	uint64_t doorbell_at; /* the ioeventfd's address, 0: none */
	struct tern_fdstore *fds;
	int kept_fd;   /* the image, in the fd store: a live update reopens nothing */
	unsigned instance;
};

/* The image's open file description lives through a live update, and its
 * OFD locks with it: the new tern takes the same fd, so the old side's
 * lock is its own. */
#define KEPT_VBLK_IMAGE "virtio-blk/image" 

struct drive_opts {
	char file[DEVICE_SPEC_MAX];
	char id[VBLK_ID_BYTES + 1];
	enum tern_block_format format;
	enum tern_block_cache cache;
	bool readonly;
};

static int word(const char *v, size_t n, const char *a, const char *b)
{
	if (strlen(a) == n && strncmp(v, a, n) == 0)
		return 0;
	if (strlen(b) == n && strncmp(v, b, n) == 0)
		return 1;
	return -1;
}

static int virtio_blk_parse(const char *options, struct drive_opts *o, struct tern_error *err)
{
	memset(o, 0, sizeof *o);
	o->format = TERN_BLOCK_FORMAT_AUTO;
	for (const char *p = options; *p != '\0';) {
		size_t n = strcspn(p, ","), k = strcspn(p, "=");
		if (k >= n)
			return tern_errorf(err, -EINVAL, "'%.*s': expected KEY=VALUE", (int)n, p);
		const char *v = p + k + 1;
		size_t vn = n - k - 1;
		int w = 0;
		if (k == 4 && strncmp(p, "file", 4) == 0) {
			if (vn == 0 || vn >= sizeof o->file)
				return tern_errorf(err, -EINVAL, "file=: empty or too long");
			memcpy(o->file, v, vn);
		} else if (k == 6 && strncmp(p, "format", 6) == 0) {
			if ((w = word(v, vn, "raw", "qcow2")) < 0)
				return tern_errorf(err, -EINVAL, "format=%.*s: raw or qcow2", (int)vn, v);
			o->format = w ? TERN_BLOCK_FORMAT_QCOW2 : TERN_BLOCK_FORMAT_RAW;
		} else if (k == 5 && strncmp(p, "cache", 5) == 0) {
			if ((w = word(v, vn, "writeback", "none")) < 0)
				return tern_errorf(err, -EINVAL, "cache=%.*s: writeback or none", (int)vn, v);
			o->cache = w ? TERN_BLOCK_CACHE_NONE : TERN_BLOCK_CACHE_WRITEBACK;
		} else if (k == 8 && strncmp(p, "readonly", 8) == 0) {
			if ((w = word(v, vn, "off", "on")) < 0)
				return tern_errorf(err, -EINVAL, "readonly=%.*s: on or off", (int)vn, v);
			o->readonly = w == 1;
		} else if (k == 2 && strncmp(p, "id", 2) == 0) {
			if (vn == 0 || vn > VBLK_ID_BYTES)
				return tern_errorf(err, -EINVAL, "id=: 1 to %d characters", VBLK_ID_BYTES);
			memcpy(o->id, v, vn);
		} else if (k == 2 && strncmp(p, "if", 2) == 0) {
			if (vn != 6 || strncmp(v, "virtio", 6) != 0)
				return tern_errorf(err, -EINVAL, "if=%.*s: only if=virtio", (int)vn, v);
		} else {
			return tern_errorf(err, -EINVAL,
					   "'%.*s': unknown option (file, format, cache, readonly, id)",
					   (int)k, p);
		}
		p += n + (p[n] == ',');
	}
	if (o->file[0] == '\0')
		return tern_errorf(err, -EINVAL, "file=PATH is missing");
	return 0;
}

static void mark_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vm *vm = ctx;
	dirty_tracker_mark(&vm->dirty, gpa, len);
}

/* Under the transport's msix_lock: one route and irqfd per vector, made
 * when it first fires and updated when the guest changed the message. */
static void raise_msi(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	struct vblk_device *d = opaque;
	if (vector >= VIRTIO_PCI_MAX_VECTORS)
		return; /* INTx: endpoints have no IOAPIC pin yet (docs/bus.md) */
	struct msi_vec *v = &d->vec[vector];
	struct tern_error err = {0};
	if (v->gsi < 0) {
		int gsi = gsi_route_add_msi(&d->vm->irq, addr, data, &err);
		if (gsi < 0 || gsi_routes_commit(&d->vm->irq, &err) < 0 ||
		    kvm_irqfd_assign(d->vm->kvm.vm_fd, v->efd, (uint32_t)gsi, -1, &err) < 0) {
			fprintf(stderr, "tern: virtio-blk: MSI-X vector %u: %s\n", vector, err.msg);
			return;
		}
		v->gsi = gsi;
	} else if (v->addr != addr || v->data != data) {
		gsi_route_update_msi(&d->vm->irq, (uint32_t)v->gsi, addr, data);
		gsi_routes_commit(&d->vm->irq, &err);
	}
	v->addr = addr;
	v->data = data;
	uint64_t one = 1;
	if (write(v->efd, &one, sizeof one) < 0) {
		/* counter saturated: an interrupt is pending anyway */
	}
}

/* An ioeventfd on the queue's notify address, where the BAR is now: the
 * guest's kick signals the I/O thread's eventfd inside KVM.  Where that
 * fails (or the BAR is not placed), the MMIO write reaches bar_write. */
static void doorbell(void *opaque, unsigned q, uint64_t bar_offset, bool on)
{
	(void)q; /* one queue */
	struct vblk_device *d = opaque;
	struct kvm_ioevent ev = {.len = 2, .fd = d->vb.kick_fd};
	if (!on) {
		if (d->doorbell_at != 0) {
			ev.addr = d->doorbell_at;
			kvm_ioeventfd_deassign(d->vm->kvm.vm_fd, &ev, NULL);
			d->doorbell_at = 0;
		}
		return;
	}
	uint64_t bar = pci_bar_address(&d->vb.vp.pci, VIRTIO_PCI_BAR);
	if (bar == 0 || d->doorbell_at != 0)
		return;
	ev.addr = bar + bar_offset;
	struct tern_error err = {0};
	if (kvm_ioeventfd_assign(d->vm->kvm.vm_fd, &ev, &err) < 0) {
		fprintf(stderr, "tern: virtio-blk: %s (kicks go through the VMM)\n", err.msg);
		return;
	}
	d->doorbell_at = ev.addr;
}

/* The device's state is its transport's (the rest derives from the
 * image); a struct of its own so that device fields can follow. */
struct vblk_state {
	struct virtio_pci_state transport;
};
static const struct tern_vmstate_field vblk_fields[] = {
	TERN_VMS_FIELD_STRUCT(struct vblk_state, transport, &virtio_pci_state_desc, 0),
	TERN_VMS_FIELD_END,
};
static const struct tern_vmstate_desc vblk_desc = {
	.name = "virtio-blk",
	.size = sizeof(struct vblk_state),
	.version = 1,
	.min_version = 1,
	.fields = vblk_fields,
};
static int vblk_quiesce(void *holder, struct tern_error *err)
{
	struct vblk_device *d = holder;
	virtio_blk_quiesce(&d->vb);
	return tern_block_flush(d->blk, err);
}
static int vblk_save(void *holder, void *obj, struct tern_error *err)
{
	struct vblk_device *d = holder;
	struct vblk_state *s = obj;
	return virtio_pci_save(&d->vb.vp, &s->transport, err);
}
static int vblk_load(void *holder, const void *obj, struct tern_error *err)
{
	struct vblk_device *d = holder;
	const struct vblk_state *s = obj;
	return virtio_pci_load(&d->vb.vp, &s->transport, err);
}
/* Flush too: a live update's new tern reads the image's metadata afresh. */
VM_STATE_TYPE(virtio_blk_state_type) = {
	.name = "virtio-blk",
	.desc = &vblk_desc,
	.carry = VM_CARRY_ALL,
	.flags = VM_STATE_NUMBERED,
	.quiesce = vblk_quiesce,
	.save = vblk_save,
	.load = vblk_load,
};

static void vblk_destroy(void *dev);

static int vblk_create(const struct device_env *env, const char *options, void **dev,
		       struct tern_error *err)
{
	struct drive_opts o;
	int rc = virtio_blk_parse(options, &o, err);
	if (rc < 0)
		return rc;
	struct vblk_device *d = calloc(1, sizeof *d);
	if (d == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	d->vm = env->vm;
	d->fds = env->fds;
	/* The VM's next free number (not a static: a cpr-exec that keeps the
	 * address space builds the devices again in this process). */
	for (char name[32];; d->instance++) {
		snprintf(name, sizeof name, "virtio-blk/%u", d->instance);
		if (vm_state_find(&env->vm->states, name) == NULL)
			break;
	}
	d->kept_fd = kept_fd_find(env->fds, KEPT_VBLK_IMAGE, d->instance);
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		d->vec[i].efd = d->vec[i].gsi = -1;
	struct tern_block_opts bo = {
		.path = o.file, .writable = !o.readonly, .format = o.format, .cache = o.cache,
		.from_fd = d->kept_fd >= 0, .fd = d->kept_fd,
	};
	if ((rc = tern_block_open(&bo, &d->blk, err)) < 0) {
		free(d);
		return rc;
	}
	if (d->kept_fd < 0 && env->fds != NULL) {
		/* A duplicate shares the file description, and so the lock. */
		d->kept_fd = fcntl(d->blk->fd, F_DUPFD_CLOEXEC, 0);
		if (d->kept_fd < 0 || kept_fd_add(env->fds, KEPT_VBLK_IMAGE, d->instance, d->kept_fd) < 0) {
			rc = tern_errorf(err, -ENOMEM, "virtio-blk: cannot keep the image fd");
			if (d->kept_fd >= 0)
				close(d->kept_fd);
			tern_block_close(d->blk, NULL);
			free(d);
			return rc;
		}
	}
	struct guest_ram *ram = &env->vm->ram;
	if (ram->slots > 16) {
		tern_block_close(d->blk, NULL);
		free(d);
		return tern_errorf(err, -E2BIG, "virtio-blk: more than 16 RAM slots");
	}
	for (unsigned i = 0; i < ram->slots; i++)
		d->ranges[i] = (struct tern_guest_range){
			.gpa = ram->slot[i].gpa, .len = ram->slot[i].size,
			.host = ram->host + ram->slot[i].offset,
		};
	d->mem = (struct tern_guest_mem){
		.ranges = d->ranges, .count = ram->slots, .mark_dirty = mark_dirty, .ctx = env->vm,
	};
	if ((rc = tern_guest_mem_check(&d->mem, err)) < 0)
		goto fail_blk;
	snprintf(d->id, sizeof d->id, "%s", o.id);
	struct virtio_blk_opts vo = {
		.blk = d->blk, .id = o.id[0] ? o.id : NULL, .readonly = o.readonly, .mem = &d->mem,
	};
	if ((rc = virtio_blk_init(&d->vb, &vo, err)) < 0)
		goto fail_blk;
	*dev = d; /* from here vblk_destroy undoes everything */
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++)
		if ((d->vec[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return tern_errorf(err, -errno, "eventfd: %s", strerror(errno));
	d->vb.vp.raise = raise_msi;
	d->vb.vp.raise_opaque = d;
	d->vb.vp.doorbell = doorbell;
	d->vb.vp.doorbell_opaque = d;
	if ((rc = pci_register(&env->vm->pci, &d->vb.vp.pci, -1, err)) < 0 ||
	    (rc = pci_register_state(&d->vb.vp.pci, &env->vm->states, err)) < 0 ||
	    (rc = vm_state_register(&env->vm->states, &virtio_blk_state_type, (int)d->instance, d, err)) < 0)
		return rc;
	/* vm_create placed the BARs there were; firmware would place ours. */
	if ((rc = pci_host_assign_bars(&env->vm->pci, err)) < 0)
		return rc;
	return 0;
fail_blk:
	tern_block_close(d->blk, NULL);
	if (d->kept_fd >= 0 && d->fds != NULL) {
		kept_fd_forget(d->fds, KEPT_VBLK_IMAGE, d->instance);
		close(d->kept_fd);
	}
	free(d);
	return rc;
}

static void vblk_destroy(void *dev)
{
	struct vblk_device *d = dev;
	if (d == NULL)
		return;
	doorbell(d, 0, 0, false); /* while its eventfd is open: KVM matches by fd */
	virtio_blk_destroy(&d->vb);
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_VECTORS; i++) {
		if (d->vec[i].gsi >= 0)
			kvm_irqfd_deassign(d->vm->kvm.vm_fd, d->vec[i].efd, (uint32_t)d->vec[i].gsi, NULL);
		if (d->vec[i].efd >= 0)
			close(d->vec[i].efd);
	}
	tern_block_close(d->blk, NULL);
	if (d->kept_fd >= 0 && d->fds != NULL) {
		kept_fd_forget(d->fds, KEPT_VBLK_IMAGE, d->instance);
		close(d->kept_fd);
	}
	free(d);
}

const struct device_kind virtio_blk_kind = {
	.name = "virtio-blk-pci",
	.usage = "file=PATH[,format=raw|qcow2][,cache=writeback|none][,readonly=on|off][,id=NAME]",
	.create = vblk_create,
	.destroy = vblk_destroy,
};
