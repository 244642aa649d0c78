/*
 * virtio-pci, modern transport (virtio 1.x, "Virtio Over PCI Bus"): a PCI
 * function 1af4:(0x1040 + device id), revision 1, whose vendor
 * capabilities (common, notify, ISR, device config) and MSI-X table and
 * PBA all live in one 64-bit memory BAR (BAR 4, as QEMU has it).  No
 * legacy I/O BAR and no PCI-config-access capability (type 5) yet.
 *
 * The device behind it (virtio-blk) gives its features, queue count and
 * config space through struct virtio_pci_ops.  Interrupts leave through
 * one hook, `raise`, so the transport runs without KVM: the VMM binds it
 * to irqfds on MSI routes, tests count calls.
 *
 * Locks: `lock` serializes register accesses (vCPU threads); `msix_lock`
 * is a leaf taken by virtio_pci_notify from any thread (I/O thread
 * completions), so a reset that drains requests under `lock` cannot
 * deadlock with a completion raising an interrupt.
 */
#ifndef VMM_VIRTIO_PCI_H
#define VMM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/pci.h"
#include "tern/virtqueue.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_BAR 4
#define VIRTIO_PCI_BAR_SIZE 0x8000u
/* Where each structure sits in the BAR (4 KiB apart, as QEMU does). */
#define VIRTIO_PCI_COMMON_OFF 0x0000u
#define VIRTIO_PCI_ISR_OFF 0x1000u
#define VIRTIO_PCI_DEVICE_OFF 0x2000u
#define VIRTIO_PCI_NOTIFY_OFF 0x3000u
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000u
#define VIRTIO_PCI_MSIX_PBA_OFF 0x5000u
#define VIRTIO_PCI_NOTIFY_MULT 4u
#define VIRTIO_PCI_COMMON_LEN 0x38u

/* Capability cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4

/* device_status bits */
#define VIRTIO_S_ACKNOWLEDGE 1
#define VIRTIO_S_DRIVER 2
#define VIRTIO_S_DRIVER_OK 4
#define VIRTIO_S_FEATURES_OK 8
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

#define VIRTIO_NO_VECTOR 0xffff
#define VIRTIO_PCI_MAX_QUEUES 8
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_PCI_MAX_QUEUES + 1)

struct virtio_pci;

struct virtio_pci_ops {
	/* Device config space reads/writes (offset within it). */
	uint64_t (*config_read)(void *dev, unsigned off, unsigned size);
	void (*config_write)(void *dev, unsigned off, unsigned size, uint64_t value);
	/* The driver wrote queue q's notify address (the MMIO fallback of
	 * the ioeventfd). */
	void (*kick)(void *dev, unsigned q);
	/* device_status 0: finish or drop every request in flight, so that
	 * the transport can reset the queues. */
	void (*quiesce)(void *dev);
	/* Queue q was enabled and started (the I/O thread may pop it). */
	void (*queue_started)(void *dev, unsigned q);
};

struct virtio_pci_queue {
	uint16_t size, msix_vector, enable;
	uint64_t desc, avail, used;
	struct tern_vq *vq;
};

struct msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl; /* ctrl bit 0: masked */
};

struct virtio_pci {
	struct pci_device pci;
	const struct virtio_pci_ops *ops;
	void *dev;
	pthread_mutex_t lock;      /* registers */
	pthread_mutex_t msix_lock; /* MSI-X table, ISR, pending bits */
	pthread_mutex_t *vq_lock;  /* the device's lock around pop/push (start/reset take it) */
	uint64_t host_features, driver_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, queue_sel, num_queues, queue_max;
	uint8_t status, config_gen, isr;
	unsigned config_len;
	struct virtio_pci_queue q[VIRTIO_PCI_MAX_QUEUES];
	struct msix_entry msix[VIRTIO_PCI_MAX_VECTORS];
	uint64_t pba;
	int msix_cap; /* config-space offset of the MSI-X capability */
	/* Deliver an interrupt: an MSI-X message (vector < VIRTIO_PCI_MAX_VECTORS,
	 * unmasked, MSI-X enabled), or INTx when vector is VIRTIO_NO_VECTOR
	 * (ISR says why).  Called with msix_lock held: must not block. */
	void (*raise)(void *opaque, unsigned vector, uint64_t addr, uint32_t data);
	void *raise_opaque;
	/* Optional: queue q's notify address (BAR offset) starts (on) or stops
	 * taking kicks; the VMM binds an ioeventfd there so that kicks do not
	 * leave KVM.  Called under `lock`. */
	void (*doorbell)(void *opaque, unsigned q, uint64_t bar_offset, bool on);
	void *doorbell_opaque;
};

/* Build the function: ids for virtio device `device_id`, the BAR and
 * its capabilities.  queue_max: each queue's largest size (power of 2). */
int virtio_pci_init(struct virtio_pci *vp, uint16_t device_id, uint32_t class_code,
		    uint64_t host_features, unsigned num_queues, unsigned queue_max,
		    unsigned config_len, const struct tern_guest_mem *mem,
		    const struct virtio_pci_ops *ops, void *dev, pthread_mutex_t *vq_lock,
		    struct tern_error *err);
void virtio_pci_destroy(struct virtio_pci *vp);

/* Used buffers on queue q: interrupt the driver (its vector, or INTx). */
void virtio_pci_notify(struct virtio_pci *vp, unsigned q);
/* The device config changed (or the device needs a reset). */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* A queue broke (the driver violated the ring protocol): DEVICE_NEEDS_RESET
 * and a config interrupt. */
void virtio_pci_needs_reset(struct virtio_pci *vp);
bool virtio_pci_driver_ok(struct virtio_pci *vp);

/* ------------------------------------------------------------ state
 * (virtio_pci_state.c).  Save with the device quiesced: no request in
 * flight.  Load checks the shape against this device, restores the
 * registers and queues, and pops each enabled queue once. */
struct virtio_pci_qstate {
	uint16_t size, msix_vector, enable;
	uint64_t desc, avail, used;
	struct tern_vq_state vq;
};

struct virtio_pci_state {
	uint64_t host_features, driver_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, queue_sel;
	uint8_t status, config_gen, isr;
	uint64_t pba;
	uint32_t msix[4 * VIRTIO_PCI_MAX_VECTORS];
	uint32_t num_queues;
	struct virtio_pci_qstate q[VIRTIO_PCI_MAX_QUEUES];
};

extern const struct tern_vmstate_desc virtio_pci_state_desc;
int virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *s, struct tern_error *err);
int virtio_pci_load(struct virtio_pci *vp, const struct virtio_pci_state *s, struct tern_error *err);

#endif
