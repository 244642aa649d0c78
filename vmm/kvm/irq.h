/*
 * Interrupts and doorbells through KVM: irqfds (an eventfd that raises a
 * GSI), ioeventfds (a guest write that signals an eventfd without
 * leaving the kernel) and the GSI routing table (which irqchip pin or
 * MSI message each GSI is).
 *
 * The irqfd and ioeventfd helpers take the VM's fd rather than struct
 * kvm: they are stateless ioctls, and some callers keep only the fd (the
 * ioeventfd bank registers from a thread of its own).  All return 0 or
 * a negative errno; err (may be NULL) says what failed.
 */
#ifndef VMM_IRQ_H
#define VMM_IRQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

struct kvm;

/* KVM signals GSI gsi whenever fd is signalled.  resample_fd >= 0 makes
 * it level-triggered: the line stays up until the guest's EOI, which
 * lowers it and signals resample_fd (the device then raises it again if
 * still pending); -1 for edge (MSI, or a pulse). */
int kvm_irqfd_assign(int vm_fd, int fd, uint32_t gsi, int resample_fd, struct tern_error *err);
int kvm_irqfd_deassign(int vm_fd, int fd, uint32_t gsi, struct tern_error *err);

struct kvm_ioevent {
	uint64_t addr;  /* guest-physical, or a port with pio */
	uint32_t len;   /* 1, 2, 4, 8 (0: any length, MMIO, KVM_CAP_IOEVENTFD_ANY_LENGTH) */
	int fd;         /* the eventfd */
	int pio;        /* port I/O rather than MMIO */
	int datamatch;  /* signal only for writes of `data` */
	uint64_t data;
};

/* Deassign takes the same description the assign had. */
int kvm_ioeventfd_assign(int vm_fd, const struct kvm_ioevent *e, struct tern_error *err);
int kvm_ioeventfd_deassign(int vm_fd, const struct kvm_ioevent *e, struct tern_error *err);

/*
 * The GSI routing table.  It starts as KVM's own default for an
 * in-kernel irqchip (GSIs 0-15: PIC and IOAPIC pins, 16-23: IOAPIC
 * pins), so a commit without MSI routes changes nothing.  MSI routes get
 * GSIs from 24 up.  Changes are kept here until gsi_routes_commit hands
 * the whole table to KVM (KVM_SET_GSI_ROUTING replaces it at once).
 * Thread-safe (an MSI-X table write on a vCPU thread may update a route).
 */
#define GSI_IRQCHIP_PINS 24

struct gsi_routes {
	int vm_fd;
	pthread_mutex_t lock;
	int ready;
	uint32_t gsi_count; /* GSIs KVM allows */
	struct kvm_irq_routing_entry *entry;
	size_t count, cap;
	uint64_t *msi_used; /* a bit per GSI */
	int changed;        /* since the last commit */
};

int gsi_routes_init(struct gsi_routes *r, struct kvm *kvm, struct tern_error *err);
void gsi_routes_destroy(struct gsi_routes *r);
/* A route to the MSI message (addr, data); returns its GSI, or -ENOSPC. */
int gsi_route_add_msi(struct gsi_routes *r, uint64_t addr, uint32_t data, struct tern_error *err);
/* -ENOENT when gsi is no MSI route. */
int gsi_route_update_msi(struct gsi_routes *r, uint32_t gsi, uint64_t addr, uint32_t data);
int gsi_route_remove_msi(struct gsi_routes *r, uint32_t gsi);
size_t gsi_routes_count(struct gsi_routes *r);
/* Give KVM the table (a no-op when nothing changed). */
int gsi_routes_commit(struct gsi_routes *r, struct tern_error *err);

#endif
