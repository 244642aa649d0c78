/*
 * PCI: a host bridge with configuration mechanism #1 (ports 0xCF8 and
 * 0xCFC-0xCFF), bus 0 only, and type-0 endpoints with memory BARs and a
 * capability list.  See docs/bus.md.
 *
 * A device fills its config space with pci_device_init, pci_set_bar and
 * pci_add_capability, then pci_register puts it on the bus.  The guest
 * sizes and programs BARs as on hardware; while the command register's
 * memory bit is on, each BAR's range is in the MMIO space at the address
 * the guest gave it.  The built-in guest has no PCI enumeration, so
 * pci_host_assign_bars does what firmware would: it places every BAR in
 * the PCI hole below 4 GiB and turns memory decoding on.
 *
 * Threads: config accesses come from vCPU threads and run under the
 * host's lock, capability hooks and BAR moves included.  Devices set
 * their config space before pci_register, or later from their hooks.
 */
#ifndef VMM_PCI_H
#define VMM_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "bus/bus.h"
#include "machine/vm_state.h"
#include "tern/error.h"

#define PCI_CONFIG_ADDRESS_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
#define PCI_CONFIG_ENABLE 0x80000000u
#define PCI_CONFIG_SPACE 256
#define PCI_DEVFNS 256 /* bus 0: 32 slots of 8 functions */
#define PCI_DEVFN(slot, fn) (((slot) << 3) | (fn))
#define PCI_BARS 6
#define PCI_MAX_CAPS 16

/* Type-0 header (PCI Local Bus 3.0, 6.1). */
#define PCI_REG_VENDOR 0x00
#define PCI_REG_DEVICE 0x02
#define PCI_REG_COMMAND 0x04
#define PCI_REG_STATUS 0x06
#define PCI_REG_REVISION 0x08
#define PCI_REG_CLASS 0x09 /* prog-if, subclass, base class */
#define PCI_REG_CACHE_LINE 0x0c
#define PCI_REG_LATENCY 0x0d
#define PCI_REG_HEADER_TYPE 0x0e
#define PCI_REG_BAR0 0x10
#define PCI_REG_SUBSYS_VENDOR 0x2c
#define PCI_REG_SUBSYS 0x2e
#define PCI_REG_ROM 0x30
#define PCI_REG_CAP_PTR 0x34
#define PCI_REG_INT_LINE 0x3c
#define PCI_REG_INT_PIN 0x3d
#define PCI_CAP_START 0x40

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_PARITY 0x0040
#define PCI_COMMAND_SERR 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_HEADER_MULTIFUNCTION 0x80

/* Memory BAR bits: bit 0 clear (memory), type in 2:1, prefetchable 3. */
#define PCI_BAR_64 0x4
#define PCI_BAR_PREFETCH 0x8
#define PCI_BAR_FLAG_BITS 0xfULL

#define PCI_CAP_ID_VENDOR 0x09 /* virtio's capabilities */
#define PCI_CAP_ID_MSIX 0x11

/* The host bridge at 00.0: the ids of QEMU's q35 host bridge (Intel's
 * 82G33 MCH, 8086:29c0), whose drivers guests already have. */
#define PCI_HOST_VENDOR 0x8086
#define PCI_HOST_DEVICE 0x29c0
#define PCI_CLASS_HOST_BRIDGE 0x060000

/* The PCI hole: guest-physical addresses below 4 GiB for BARs, from the
 * end of low RAM to the IOAPIC (0xfec00000; above it the IOAPIC, HPET,
 * LAPIC and KVM's TSS pages), less what is reserved in it. */
#define PCI_HOLE_BASE 0xc0000000ULL
#define PCI_HOLE_END 0xfec00000ULL

/* First fit over what is taken (allocations and reservations): small
 * BARs fill the gaps that large ones' alignment leaves. */
struct pci_hole {
	uint64_t base, end;
	struct pci_hole_range {
		uint64_t base, end;
	} *used;
	size_t nused, cap;
};

void pci_hole_init(struct pci_hole *h, uint64_t base, uint64_t end);
void pci_hole_destroy(struct pci_hole *h);
/* Keep [base, base + len) out of allocations; -ENOMEM. */
int pci_hole_reserve(struct pci_hole *h, uint64_t base, uint64_t len);
/* The lowest free size bytes aligned to size, a power of two (as a BAR
 * must be); -EINVAL (size), -ENOSPC (no room), -ENOMEM. */
int pci_hole_alloc(struct pci_hole *h, uint64_t size, uint64_t *gpa);

struct pci_device;

/* Hooks of a capability, called under the host's lock for guest
 * accesses that touch it (`at` is the config-space offset).  read gets
 * the stored value and returns what the guest sees; write runs after
 * the write-mask applied the guest's value to config space. */
struct pci_cap_ops {
	uint32_t (*read)(void *opaque, struct pci_device *d, unsigned at, unsigned size,
			 uint32_t value);
	void (*write)(void *opaque, struct pci_device *d, unsigned at, unsigned size,
		      uint32_t value);
};

struct pci_cap {
	uint8_t offset, len;
	const struct pci_cap_ops *ops;
	void *opaque;
};

struct pci_bar {
	uint64_t size;  /* a power of two, at least 16; 0: unused */
	unsigned flags; /* PCI_BAR_64, PCI_BAR_PREFETCH */
	bus_read_fn *read;
	bus_write_fn *write;
	void *opaque;
	int mapped;         /* its range is in the MMIO space ... */
	uint64_t mapped_at; /* ... here */
	int conflict;       /* the guest put it over another range: not mapped */
};

struct pci_device_info {
	const char *name;
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint32_t class_code; /* base class << 16 | subclass << 8 | prog-if */
	uint8_t revision;
	uint8_t int_pin; /* 0: none, 1-4: INTA#-INTD# */
};

struct pci_host;

struct pci_device {
	const char *name;
	struct pci_host *host; /* NULL until registered */
	int devfn;
	uint8_t config[PCI_CONFIG_SPACE];
	uint8_t wmask[PCI_CONFIG_SPACE]; /* bits the guest may write */
	struct pci_bar bar[PCI_BARS];
	struct pci_cap cap[PCI_MAX_CAPS];
	unsigned ncaps;
	unsigned cap_next; /* where the next capability goes */
};

struct pci_host {
	pthread_mutex_t lock;
	struct bus_space *mmio;
	uint32_t address; /* CONFIG_ADDRESS */
	struct pci_device *dev[PCI_DEVFNS];
	struct pci_device bridge;
	struct pci_hole hole;
	int ready;
};

/* ----------------------------------------------------------- devices */

/* A blank type-0 header with these ids; the guest may write command,
 * cache line, latency timer and interrupt line. */
void pci_device_init(struct pci_device *d, const struct pci_device_info *info);
/* BAR `index`: size a power of two >= 16; a 64-bit BAR takes index + 1
 * too.  The callbacks get offsets from the BAR's base.  -EINVAL, -EBUSY. */
int pci_set_bar(struct pci_device *d, unsigned index, uint64_t size, unsigned flags,
		bus_read_fn *read, bus_write_fn *write, void *opaque, struct tern_error *err);
/* Append a capability of `len` bytes (id and next pointer included,
 * dword aligned) to the list; returns its offset, or -ENOSPC.  Its bytes
 * after the header start zero and read-only: set them and their write
 * mask with the functions below. */
int pci_add_capability(struct pci_device *d, uint8_t id, unsigned len,
		       const struct pci_cap_ops *ops, void *opaque, struct tern_error *err);

/* Config space as the device sets it (no write mask), little-endian. */
uint32_t pci_config_get(const struct pci_device *d, unsigned at, unsigned size);
void pci_config_set(struct pci_device *d, unsigned at, unsigned size, uint32_t value);
void pci_config_set_wmask(struct pci_device *d, unsigned at, unsigned size, uint32_t mask);

/* What a BAR is programmed to (0: nothing). */
uint64_t pci_bar_address(const struct pci_device *d, unsigned index);

/* Guest accesses (the host calls these under its lock). */
uint32_t pci_config_read(struct pci_device *d, unsigned at, unsigned size);
void pci_config_write(struct pci_device *d, unsigned at, unsigned size, uint32_t value);
/* Bring the MMIO space in line with the command register and BARs. */
void pci_update_mappings(struct pci_device *d);

/* -------------------------------------------------------------- host */

/* The host bridge at 00.0, its ports in pio; BARs go into mmio. */
int pci_host_init(struct pci_host *h, struct bus_space *pio, struct bus_space *mmio,
		  struct tern_error *err);
void pci_host_destroy(struct pci_host *h);
/* Put d at devfn on bus 0 (-1: function 0 of the first free slot);
 * returns the devfn, or -EBUSY, -EINVAL, -ENOSPC. */
int pci_register(struct pci_host *h, struct pci_device *d, int devfn, struct tern_error *err);
/* Firmware's part: place every BAR not yet placed in the hole, largest
 * first (power-of-two sizes then leave no gaps), and enable memory
 * decoding of each device that has BARs. */
int pci_host_assign_bars(struct pci_host *h, struct tern_error *err);

/* ------------------------------------------------------------ state */

/* pci_state.c: the host's CONFIG_ADDRESS latch, and each function's
 * configuration space, in the VM's state registry. */
extern const struct vm_state_type pci_host_state_type;
extern const struct vm_state_type pci_device_state_type;
/* Register d's configuration space as "pci/DEVFN" (after pci_register). */
int pci_register_state(struct pci_device *d, struct vm_state_registry *reg,
		       struct tern_error *err);

#endif
