/* irqfd, ioeventfd and GSI routing; see irq.h. */
#include "kvm/irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm/kvm.h"
#include "tern/buf.h"

/* ---------------------------------------------------------------- irqfd */

int kvm_irqfd_assign(int vm_fd, int fd, uint32_t gsi, int resample_fd, struct tern_error *err)
{
	struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi };
	if (resample_fd >= 0) {
		f.flags = KVM_IRQFD_FLAG_RESAMPLE;
		f.resamplefd = (uint32_t)resample_fd;
	}
	if (ioctl(vm_fd, KVM_IRQFD, &f) < 0)
		return tern_errorf(err, -errno, "KVM_IRQFD (fd %d to GSI %u%s): %s", fd, gsi,
				   resample_fd >= 0 ? ", resampled" : "", strerror(errno));
	return 0;
}

int kvm_irqfd_deassign(int vm_fd, int fd, uint32_t gsi, struct tern_error *err)
{
	struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
	if (ioctl(vm_fd, KVM_IRQFD, &f) < 0)
		return tern_errorf(err, -errno, "KVM_IRQFD deassign (fd %d from GSI %u): %s", fd,
				   gsi, strerror(errno));
	return 0;
}

/* ------------------------------------------------------------ ioeventfd */

static int ioeventfd(int vm_fd, const struct kvm_ioevent *e, uint32_t extra, struct tern_error *err)
{
	struct kvm_ioeventfd k = {
		.datamatch = e->datamatch ? e->data : 0,
		.addr = e->addr,
		.len = e->len,
		.fd = e->fd,
		.flags = extra | (e->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (e->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0),
	};
	if (ioctl(vm_fd, KVM_IOEVENTFD, &k) < 0)
		return tern_errorf(err, -errno, "KVM_IOEVENTFD%s at %s 0x%llx (%u bytes): %s",
				   extra ? " deassign" : "", e->pio ? "port" : "address",
				   (unsigned long long)e->addr, e->len, strerror(errno));
	return 0;
}

int kvm_ioeventfd_assign(int vm_fd, const struct kvm_ioevent *e, struct tern_error *err)
{
	return ioeventfd(vm_fd, e, 0, err);
}

int kvm_ioeventfd_deassign(int vm_fd, const struct kvm_ioevent *e, struct tern_error *err)
{
	return ioeventfd(vm_fd, e, KVM_IOEVENTFD_FLAG_DEASSIGN, err);
}

/* ---------------------------------------------------------- GSI routing */

static int add_entry(struct gsi_routes *r, const struct kvm_irq_routing_entry *e)
{
	if (tern_array_grow(&r->entry, &r->cap, r->count, sizeof *r->entry, 64) < 0)
		return -ENOMEM;
	r->entry[r->count++] = *e;
	r->changed = 1;
	return 0;
}

static int add_irqchip(struct gsi_routes *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry e = { .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP };
	e.u.irqchip.irqchip = chip;
	e.u.irqchip.pin = pin;
	return add_entry(r, &e);
}

int gsi_routes_init(struct gsi_routes *r, struct kvm *kvm, struct tern_error *err)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	r->ready = 1;
	r->vm_fd = kvm->vm_fd;
	int n = kvm_check_extension(kvm, KVM_CAP_IRQ_ROUTING);
	r->gsi_count = n > GSI_IRQCHIP_PINS ? (uint32_t)n : GSI_IRQCHIP_PINS;
	r->msi_used = calloc((r->gsi_count + 63) / 64, sizeof *r->msi_used);
	int rc = r->msi_used == NULL ? -ENOMEM : 0;
	/* KVM's default table for PIC + IOAPIC, so committing keeps it. */
	for (uint32_t gsi = 0; gsi < GSI_IRQCHIP_PINS && rc == 0; gsi++) {
		rc = add_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi);
		if (rc == 0 && gsi < 16)
			rc = add_irqchip(r, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					 gsi % 8);
	}
	r->changed = 0;
	return rc < 0 ? tern_errorf(err, rc, "out of memory for GSI routes") : 0;
}

void gsi_routes_destroy(struct gsi_routes *r)
{
	if (!r->ready)
		return;
	free(r->entry);
	free(r->msi_used);
	pthread_mutex_destroy(&r->lock);
	memset(r, 0, sizeof *r);
}

static void set_msi(struct kvm_irq_routing_entry *e, uint64_t addr, uint32_t data)
{
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
}

int gsi_route_add_msi(struct gsi_routes *r, uint64_t addr, uint32_t data, struct tern_error *err)
{
	pthread_mutex_lock(&r->lock);
	int rc = -ENOSPC;
	for (uint32_t gsi = GSI_IRQCHIP_PINS; gsi < r->gsi_count; gsi++) {
		if (r->msi_used[gsi / 64] & (1ULL << (gsi % 64)))
			continue;
		struct kvm_irq_routing_entry e = { .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI };
		set_msi(&e, addr, data);
		rc = add_entry(r, &e);
		if (rc == 0) {
			r->msi_used[gsi / 64] |= 1ULL << (gsi % 64);
			rc = (int)gsi;
		}
		break;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == -ENOSPC)
		return tern_errorf(err, rc, "every GSI KVM offers (%u) is routed", r->gsi_count);
	if (rc < 0)
		return tern_errorf(err, rc, "out of memory for GSI routes");
	return rc;
}

/* The MSI entry of gsi (under the lock), or NULL. */
static struct kvm_irq_routing_entry *find_msi(struct gsi_routes *r, uint32_t gsi)
{
	if (gsi < GSI_IRQCHIP_PINS || gsi >= r->gsi_count ||
	    !(r->msi_used[gsi / 64] & (1ULL << (gsi % 64))))
		return NULL;
	for (size_t i = 0; i < r->count; i++)
		if (r->entry[i].gsi == gsi && r->entry[i].type == KVM_IRQ_ROUTING_MSI)
			return &r->entry[i];
	return NULL;
}

int gsi_route_update_msi(struct gsi_routes *r, uint32_t gsi, uint64_t addr, uint32_t data)
{
	pthread_mutex_lock(&r->lock);
	struct kvm_irq_routing_entry *e = find_msi(r, gsi);
	if (e != NULL) {
		set_msi(e, addr, data);
		r->changed = 1;
	}
	pthread_mutex_unlock(&r->lock);
	return e != NULL ? 0 : -ENOENT;
}

int gsi_route_remove_msi(struct gsi_routes *r, uint32_t gsi)
{
	pthread_mutex_lock(&r->lock);
	struct kvm_irq_routing_entry *e = find_msi(r, gsi);
	if (e != NULL) {
		*e = r->entry[--r->count]; /* order means nothing to KVM */
		r->msi_used[gsi / 64] &= ~(1ULL << (gsi % 64));
		r->changed = 1;
	}
	pthread_mutex_unlock(&r->lock);
	return e != NULL ? 0 : -ENOENT;
}

size_t gsi_routes_count(struct gsi_routes *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int gsi_routes_commit(struct gsi_routes *r, struct tern_error *err)
{
	pthread_mutex_lock(&r->lock);
	int rc = 0;
	if (!r->changed)
		goto out;
	struct kvm_irq_routing *t = calloc(1, sizeof *t + r->count * sizeof t->entries[0]);
	if (t == NULL) {
		rc = tern_errorf(err, -ENOMEM, "out of memory for GSI routes");
		goto out;
	}
	t->nr = (uint32_t)r->count;
	memcpy(t->entries, r->entry, r->count * sizeof t->entries[0]);
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		rc = tern_errorf(err, -errno, "KVM_SET_GSI_ROUTING (%zu routes): %s", r->count,
				 strerror(errno));
	else
		r->changed = 0;
	free(t);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}
