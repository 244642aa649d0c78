/*
 * The PCI host bridge driven as a guest drives it, through ports 0xcf8
 * and 0xcfc of a port space: absent devices, the host bridge's ids, BAR
 * sizing of 32- and 64-bit BARs, BARs that move in the MMIO space with
 * the guest's programming and the command register, the capability list,
 * and the firmware-style assignment into the PCI hole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus/pci.h"

struct machine {
	struct bus_space pio, mmio;
	struct pci_host pci;
};

static int setup(void **state)
{
	static struct machine m;
	memset(&m, 0, sizeof m);
	if (bus_init(&m.pio, "port I/O", 0x10000) < 0 || bus_init(&m.mmio, "MMIO", 0) < 0 ||
	    pci_host_init(&m.pci, &m.pio, &m.mmio, NULL) < 0)
		return -1;
	*state = &m;
	return 0;
}

static int teardown(void **state)
{
	struct machine *m = *state;
	pci_host_destroy(&m->pci);
	bus_destroy(&m->mmio);
	bus_destroy(&m->pio);
	return 0;
}

static uint32_t address(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
	return PCI_CONFIG_ENABLE | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_read(struct machine *m, unsigned slot, unsigned reg, unsigned size)
{
	uint64_t v;
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(0, slot, 0, reg));
	bus_read(&m->pio, PCI_CONFIG_DATA_PORT + (reg & 3), size, &v);
	return (uint32_t)v;
}

static void cfg_write(struct machine *m, unsigned slot, unsigned reg, unsigned size, uint32_t v)
{
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(0, slot, 0, reg));
	bus_write(&m->pio, PCI_CONFIG_DATA_PORT + (reg & 3), size, v);
}

static void absent_devices_read_ffff(void **state)
{
	struct machine *m = *state;
	assert_int_equal(cfg_read(m, 5, PCI_REG_VENDOR, 2), 0xffff);
	assert_int_equal(cfg_read(m, 31, PCI_REG_VENDOR, 4), 0xffffffff);
	/* Another bus, and the enable bit clear: nothing there either. */
	uint64_t v;
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(1, 0, 0, 0));
	bus_read(&m->pio, PCI_CONFIG_DATA_PORT, 2, &v);
	assert_int_equal(v, 0xffff);
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(0, 0, 0, 0) & ~PCI_CONFIG_ENABLE);
	bus_read(&m->pio, PCI_CONFIG_DATA_PORT, 4, &v);
	assert_int_equal(v, 0xffffffff);
	/* Writes to nobody go nowhere. */
	cfg_write(m, 5, PCI_REG_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(cfg_read(m, 5, PCI_REG_COMMAND, 2), 0xffff);
}

static void host_bridge_ids(void **state)
{
	struct machine *m = *state;
	assert_int_equal(cfg_read(m, 0, PCI_REG_VENDOR, 4), 0x29c08086);
	assert_int_equal(cfg_read(m, 0, PCI_REG_VENDOR, 2), PCI_HOST_VENDOR);
	assert_int_equal(cfg_read(m, 0, PCI_REG_DEVICE, 2), PCI_HOST_DEVICE);
	assert_int_equal(cfg_read(m, 0, PCI_REG_DEVICE + 1, 1), 0x29);
	assert_int_equal(cfg_read(m, 0, PCI_REG_REVISION, 4) >> 8, PCI_CLASS_HOST_BRIDGE);
	assert_int_equal(cfg_read(m, 0, PCI_REG_HEADER_TYPE, 1), 0);
	assert_int_equal(cfg_read(m, 0, PCI_REG_SUBSYS_VENDOR, 2), 0x1af4);
	/* Read-only ids stay; the latency timer is the guest's. */
	cfg_write(m, 0, PCI_REG_VENDOR, 4, 0);
	assert_int_equal(cfg_read(m, 0, PCI_REG_VENDOR, 4), 0x29c08086);
	cfg_write(m, 0, PCI_REG_LATENCY, 1, 0x40);
	assert_int_equal(cfg_read(m, 0, PCI_REG_LATENCY, 1), 0x40);
	/* CONFIG_ADDRESS: dword only, reserved bits read zero. */
	uint64_t v;
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, 0xffffffff);
	bus_read(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, &v);
	assert_int_equal(v, 0x80fffffc);
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT + 1, 1, 0);
	bus_read(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, &v);
	assert_int_equal(v, 0x80fffffc);
}

struct bar_dev {
	struct pci_device pci;
	uint64_t last_offset;
	unsigned reads;
};

static uint64_t bar_read(void *opaque, uint64_t offset, unsigned size)
{
	(void)size;
	struct bar_dev *d = opaque;
	d->last_offset = offset;
	d->reads++;
	return 0x5a5a5a5a;
}

static const struct pci_device_info endpoint = {
	.name = "test endpoint", .vendor = 0x1af4, .device = 0x1042,
	.subsys_vendor = 0x1af4, .subsys = 0x0002, .class_code = 0x010000, .revision = 1,
};

/* BAR0: 4 KiB 32-bit; BAR2: 16 KiB 64-bit prefetchable; BAR4: 8 GiB 64-bit. */
static void make_endpoint(struct machine *m, struct bar_dev *d, int slot)
{
	memset(d, 0, sizeof *d);
	pci_device_init(&d->pci, &endpoint);
	assert_int_equal(pci_set_bar(&d->pci, 0, 0x1000, 0, bar_read, NULL, d, NULL), 0);
	assert_int_equal(pci_set_bar(&d->pci, 2, 0x4000, PCI_BAR_64 | PCI_BAR_PREFETCH, bar_read,
				     NULL, d, NULL), 0);
	assert_int_equal(pci_set_bar(&d->pci, 4, 8ULL << 30, PCI_BAR_64, bar_read, NULL, d, NULL),
			 0);
	assert_int_equal(pci_register(&m->pci, &d->pci, PCI_DEVFN(slot, 0), NULL),
			 PCI_DEVFN(slot, 0));
}

static void bar_sizing(void **state)
{
	struct machine *m = *state;
	struct bar_dev d;
	make_endpoint(m, &d, 3);
	assert_int_equal(cfg_read(m, 3, PCI_REG_VENDOR, 4), 0x10421af4);
	/* Unprogrammed: flags only. */
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0, 4), 0);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 8, 4), PCI_BAR_64 | PCI_BAR_PREFETCH);
	for (unsigned i = 0; i < PCI_BARS; i++)
		cfg_write(m, 3, PCI_REG_BAR0 + 4 * i, 4, 0xffffffff);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0, 4), 0xfffff000);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 4, 4), 0); /* unused BAR1 */
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 8, 4), 0xffffc000 | 0xc);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 12, 4), 0xffffffff);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 16, 4), 0x4);
	assert_int_equal(cfg_read(m, 3, PCI_REG_BAR0 + 20, 4), 0xfffffffe);
	/* No ROM: its register reads 0 after all ones. */
	cfg_write(m, 3, PCI_REG_ROM, 4, 0xffffffff);
	assert_int_equal(cfg_read(m, 3, PCI_REG_ROM, 4), 0);
	/* The sizing pattern is no address, even with decoding on. */
	cfg_write(m, 3, PCI_REG_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(bus_count(&m->mmio), 0);
	cfg_write(m, 3, PCI_REG_COMMAND, 2, 0);
	/* Bad BARs are refused. */
	struct pci_device bad;
	pci_device_init(&bad, &endpoint);
	assert_int_equal(pci_set_bar(&bad, 0, 0x1800, 0, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(pci_set_bar(&bad, 5, 0x1000, PCI_BAR_64, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(pci_set_bar(&bad, 0, 0x1000, PCI_BAR_64, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(pci_set_bar(&bad, 1, 0x1000, 0, NULL, NULL, NULL, NULL), -EBUSY);
}

static void bars_follow_programming(void **state)
{
	struct machine *m = *state;
	struct bar_dev d;
	make_endpoint(m, &d, 4);
	struct bus_range r;
	cfg_write(m, 4, PCI_REG_BAR0, 4, 0xc0001000);
	cfg_write(m, 4, PCI_REG_BAR0 + 8, 4, 0x00000000);
	cfg_write(m, 4, PCI_REG_BAR0 + 12, 4, 0x1); /* 4 GiB */
	cfg_write(m, 4, PCI_REG_BAR0 + 16, 4, 0);
	cfg_write(m, 4, PCI_REG_BAR0 + 20, 4, 0x4); /* 16 GiB */
	assert_int_equal(bus_find(&m->mmio, 0xc0001000, &r), -ENOENT); /* decoding off */
	cfg_write(m, 4, PCI_REG_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(cfg_read(m, 4, PCI_REG_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(bus_count(&m->mmio), 3);
	assert_int_equal(bus_find(&m->mmio, 0xc0001ffc, &r), 0);
	assert_int_equal(r.len, 0x1000);
	assert_int_equal(bus_find(&m->mmio, 0x100003fffULL, &r), 0);
	assert_int_equal(bus_find(&m->mmio, 0x400000000ULL + (8ULL << 30) - 1, &r), 0);
	uint64_t v;
	assert_int_equal(bus_read(&m->mmio, 0xc0001010, 4, &v), 1);
	assert_int_equal(v, 0x5a5a5a5a);
	assert_int_equal(d.last_offset, 0x10);
	/* Moved: the old address is free, the new one answers. */
	cfg_write(m, 4, PCI_REG_BAR0, 4, 0xc0100000);
	assert_int_equal(pci_bar_address(&d.pci, 0), 0xc0100000);
	assert_int_equal(bus_find(&m->mmio, 0xc0001000, &r), -ENOENT);
	assert_int_equal(bus_read(&m->mmio, 0xc0100008, 4, &v), 1);
	assert_int_equal(d.last_offset, 8);
	assert_int_equal(bus_count(&m->mmio), 3);
	/* Decoding off: every BAR leaves the MMIO space; on again: back. */
	cfg_write(m, 4, PCI_REG_COMMAND, 2, 0);
	assert_int_equal(bus_count(&m->mmio), 0);
	assert_int_equal(bus_read(&m->mmio, 0xc0100008, 4, &v), 0);
	assert_int_equal(v, 0xffffffff);
	cfg_write(m, 4, PCI_REG_COMMAND, 1, PCI_COMMAND_MEMORY); /* a byte write */
	assert_int_equal(bus_count(&m->mmio), 3);
	/* Over another BAR: left dark, mapped once moved clear. */
	cfg_write(m, 4, PCI_REG_BAR0 + 8, 4, 0xc0100000);
	cfg_write(m, 4, PCI_REG_BAR0 + 12, 4, 0);
	assert_true(d.pci.bar[2].conflict);
	assert_int_equal(bus_count(&m->mmio), 2);
	cfg_write(m, 4, PCI_REG_BAR0 + 8, 4, 0xc0200000);
	assert_false(d.pci.bar[2].conflict);
	assert_int_equal(bus_find(&m->mmio, 0xc0203000, &r), 0);
	/* A 32-bit BAR whose last byte would be 0xffffffff is not mapped. */
	cfg_write(m, 4, PCI_REG_BAR0, 4, 0xfffff000);
	assert_int_equal(bus_find(&m->mmio, 0xfffff000, &r), -ENOENT);
	cfg_write(m, 4, PCI_REG_COMMAND, 2, 0);
}

/* A programmed function's config space goes through its state type into a
 * fresh machine: its BARs decode where the guest put them; a function of
 * other ids refuses the state; the latch comes along too. */
static void state_carries_the_programming(void **state)
{
	struct machine *m = *state;
	struct bar_dev d;
	make_endpoint(m, &d, 6);
	cfg_write(m, 6, PCI_REG_BAR0, 4, 0xc0004000);
	cfg_write(m, 6, PCI_REG_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(0, 6, 0, PCI_REG_BAR0));
	struct tern_buf dev = { 0 }, host = { 0 };
	struct tern_error err = { .msg = "" };
	assert_int_equal(vm_state_save_one(&pci_device_state_type, &d.pci, &dev, &err), 0);
	assert_int_equal(vm_state_save_one(&pci_host_state_type, &m->pci, &host, &err), 0);

	static struct machine fresh;
	struct machine *to = &fresh;
	memset(to, 0, sizeof *to);
	assert_int_equal(bus_init(&to->pio, "port I/O", 0x10000), 0);
	assert_int_equal(bus_init(&to->mmio, "MMIO", 0), 0);
	assert_int_equal(pci_host_init(&to->pci, &to->pio, &to->mmio, NULL), 0);
	struct bar_dev e;
	make_endpoint(to, &e, 6);
	assert_int_equal(bus_count(&to->mmio), 0);
	assert_int_equal(vm_state_load_one(&pci_device_state_type, &e.pci, dev.data, dev.len, &err),
			 0);
	assert_int_equal(vm_state_load_one(&pci_host_state_type, &to->pci, host.data, host.len,
					   &err), 0);
	uint64_t latch; /* before any config access moves it */
	bus_read(&to->pio, PCI_CONFIG_ADDRESS_PORT, 4, &latch);
	assert_int_equal(latch, address(0, 6, 0, PCI_REG_BAR0));
	struct bus_range r;
	assert_int_equal(bus_find(&to->mmio, 0xc0004000, &r), 0);
	assert_int_equal(cfg_read(to, 6, PCI_REG_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

	struct bar_dev other;
	memset(&other, 0, sizeof other);
	struct pci_device_info ids = endpoint;
	ids.device = 0x1041;
	pci_device_init(&other.pci, &ids);
	other.pci.host = &to->pci;
	assert_int_equal(vm_state_load_one(&pci_device_state_type, &other.pci, dev.data, dev.len,
					   &err), -EINVAL);
	assert_non_null(strstr(err.msg, "ids"));
	cfg_write(to, 6, PCI_REG_COMMAND, 2, 0);
	cfg_write(m, 6, PCI_REG_COMMAND, 2, 0);
	void *fresh_state = to;
	teardown(&fresh_state);
	tern_buf_free(&dev);
	tern_buf_free(&host);
}

struct cap_dev {
	struct pci_device pci;
	unsigned writes, last_at;
	uint32_t last_value;
};

static uint32_t cap_read(void *opaque, struct pci_device *d, unsigned at, unsigned size,
			 uint32_t value)
{
	(void)opaque;
	(void)size;
	/* A live field: byte 3 of the vendor capability counts reads. */
	static uint32_t n;
	unsigned cap = pci_config_get(d, PCI_REG_CAP_PTR, 1);
	cap = pci_config_get(d, cap + 1, 1);
	return at == cap ? (value & 0x00ffffff) | (++n << 24) : value;
}

static void cap_write(void *opaque, struct pci_device *d, unsigned at, unsigned size,
		      uint32_t value)
{
	(void)d;
	(void)size;
	struct cap_dev *c = opaque;
	c->writes++;
	c->last_at = at;
	c->last_value = value;
}

static void capability_list(void **state)
{
	struct machine *m = *state;
	static const struct pci_cap_ops msix_ops = { .write = cap_write };
	static const struct pci_cap_ops vendor_ops = { .read = cap_read };
	struct cap_dev c = { 0 };
	pci_device_init(&c.pci, &endpoint);
	assert_int_equal(cfg_read(m, 6, PCI_REG_VENDOR, 2), 0xffff);
	int msix = pci_add_capability(&c.pci, PCI_CAP_ID_MSIX, 12, &msix_ops, &c, NULL);
	int vendor = pci_add_capability(&c.pci, PCI_CAP_ID_VENDOR, 14, &vendor_ops, &c, NULL);
	assert_int_equal(msix, PCI_CAP_START);
	assert_int_equal(vendor, PCI_CAP_START + 12);
	pci_config_set(&c.pci, vendor + 2, 1, 14); /* its length byte, as virtio's have */
	/* MSI-X message control: enable and mask bits are the guest's. */
	pci_config_set_wmask(&c.pci, msix + 2, 2, 0xc000);
	pci_config_set(&c.pci, msix + 2, 2, 3); /* table size 4 */
	assert_int_equal(pci_register(&m->pci, &c.pci, -1, NULL), PCI_DEVFN(1, 0));
	unsigned slot = 1;
	assert_true(cfg_read(m, slot, PCI_REG_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* Walk the list as a guest does. */
	unsigned ids[4], n = 0;
	for (unsigned at = cfg_read(m, slot, PCI_REG_CAP_PTR, 1); at != 0 && n < 4;
	     at = cfg_read(m, slot, at + 1, 1)) {
		assert_true(at >= PCI_CAP_START && at % 4 == 0);
		ids[n++] = cfg_read(m, slot, at, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[1], PCI_CAP_ID_VENDOR);
	/* Hooks: a write through the mask, then to the device. */
	cfg_write(m, slot, msix + 2, 2, 0xffff);
	assert_int_equal(cfg_read(m, slot, msix + 2, 2), 0xc003);
	assert_int_equal(c.writes, 1);
	assert_int_equal(c.last_at, msix + 2);
	assert_int_equal(c.last_value, 0xffff);
	cfg_write(m, slot, msix, 1, 0x99); /* the id is read-only */
	assert_int_equal(cfg_read(m, slot, msix, 1), PCI_CAP_ID_MSIX);
	uint32_t a = cfg_read(m, slot, vendor, 4), b = cfg_read(m, slot, vendor, 4);
	assert_int_equal(a & 0xffffff, 0x0e0000 | PCI_CAP_ID_VENDOR);
	assert_int_equal((b >> 24) - (a >> 24), 1);
	/* Room runs out. */
	struct pci_device full;
	pci_device_init(&full, &endpoint);
	assert_true(pci_add_capability(&full, PCI_CAP_ID_VENDOR, 180, NULL, NULL, NULL) > 0);
	assert_int_equal(pci_add_capability(&full, PCI_CAP_ID_VENDOR, 20, NULL, NULL, NULL),
			 -ENOSPC);
}

static void functions_and_slots(void **state)
{
	struct machine *m = *state;
	static struct pci_device f0, f1, f2, lone;
	pci_device_init(&f0, &endpoint);
	pci_device_init(&f1, &endpoint);
	pci_device_init(&f2, &endpoint);
	pci_device_init(&lone, &endpoint);
	assert_int_equal(pci_register(&m->pci, &lone, PCI_DEVFN(9, 1), NULL), -EINVAL);
	assert_int_equal(pci_register(&m->pci, &f0, PCI_DEVFN(9, 0), NULL), PCI_DEVFN(9, 0));
	assert_int_equal(cfg_read(m, 9, PCI_REG_HEADER_TYPE, 1), 0);
	assert_int_equal(pci_register(&m->pci, &f1, PCI_DEVFN(9, 1), NULL), PCI_DEVFN(9, 1));
	assert_int_equal(cfg_read(m, 9, PCI_REG_HEADER_TYPE, 1), PCI_HEADER_MULTIFUNCTION);
	assert_int_equal(pci_register(&m->pci, &f2, PCI_DEVFN(9, 1), NULL), -EBUSY);
	assert_int_equal(pci_register(&m->pci, &f2, PCI_DEVFNS, NULL), -EINVAL);
	uint64_t v;
	bus_write(&m->pio, PCI_CONFIG_ADDRESS_PORT, 4, address(0, 9, 1, 0));
	bus_read(&m->pio, PCI_CONFIG_DATA_PORT, 2, &v);
	assert_int_equal(v, 0x1af4);
}

static void hole_allocator(void **state)
{
	(void)state;
	struct pci_hole h;
	pci_hole_init(&h, PCI_HOLE_BASE, PCI_HOLE_END);
	assert_int_equal(pci_hole_reserve(&h, 0xc0004000, 0x1000), 0);
	uint64_t a, b, c;
	assert_int_equal(pci_hole_alloc(&h, 0x4000, &a), 0);
	assert_int_equal(a, 0xc0000000);
	assert_int_equal(pci_hole_alloc(&h, 0x1000, &b), 0);
	assert_int_equal(b, 0xc0005000); /* around the reservation */
	assert_int_equal(pci_hole_alloc(&h, 0x10000, &c), 0);
	assert_int_equal(c, 0xc0010000); /* aligned to its size */
	assert_int_equal(pci_hole_alloc(&h, 0x1000, &c), 0);
	assert_int_equal(c, 0xc0006000); /* first fit: the gap below the last */
	assert_int_equal(pci_hole_alloc(&h, 0x3000, &c), -EINVAL);
	assert_int_equal(pci_hole_alloc(&h, 1ULL << 30, &c), -ENOSPC); /* no aligned GiB left */
	pci_hole_destroy(&h);
}

static void firmware_assignment(void **state)
{
	struct machine *m = *state;
	/* What the VM reserves for the ioeventfd bank. */
	assert_int_equal(pci_hole_reserve(&m->pci.hole, 0xe0000000, 2u << 20), 0);
	static struct bar_dev a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	pci_device_init(&a.pci, &endpoint);
	pci_device_init(&b.pci, &endpoint);
	assert_int_equal(pci_set_bar(&a.pci, 0, 0x1000, 0, bar_read, NULL, &a, NULL), 0);
	assert_int_equal(pci_set_bar(&a.pci, 2, 128u << 20, PCI_BAR_64, bar_read, NULL, &a, NULL), 0);
	assert_int_equal(pci_set_bar(&b.pci, 0, 512u << 20, 0, bar_read, NULL, &b, NULL), 0);
	assert_int_equal(pci_set_bar(&b.pci, 1, 0x4000, 0, bar_read, NULL, &b, NULL), 0);
	assert_true(pci_register(&m->pci, &a.pci, -1, NULL) > 0);
	assert_true(pci_register(&m->pci, &b.pci, -1, NULL) > 0);
	assert_int_equal(pci_host_assign_bars(&m->pci, NULL), 0);
	/* Largest first: b's 512 MiB at the hole's start, a's 128 MiB past
	 * the reservation at its alignment, the small ones in the gap. */
	assert_int_equal(pci_bar_address(&b.pci, 0), 0xc0000000);
	assert_int_equal(pci_bar_address(&a.pci, 2), 0xe8000000);
	assert_int_equal(pci_bar_address(&b.pci, 1), 0xe0200000);
	assert_int_equal(pci_bar_address(&a.pci, 0), 0xe0204000);
	assert_true(cfg_read(m, a.pci.devfn >> 3, PCI_REG_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(bus_count(&m->mmio), 4);
	uint64_t v;
	assert_int_equal(bus_read(&m->mmio, 0xe8000040, 4, &v), 1);
	assert_int_equal(a.last_offset, 0x40);
	/* Nothing left to place: a second pass changes nothing. */
	assert_int_equal(pci_host_assign_bars(&m->pci, NULL), 0);
	assert_int_equal(pci_bar_address(&b.pci, 0), 0xc0000000);
	/* No room for another 1 GiB BAR. */
	static struct bar_dev c;
	pci_device_init(&c.pci, &endpoint);
	assert_int_equal(pci_set_bar(&c.pci, 0, 1u << 30, 0, bar_read, NULL, &c, NULL), 0);
	assert_true(pci_register(&m->pci, &c.pci, -1, NULL) > 0);
	struct tern_error err;
	assert_int_equal(pci_host_assign_bars(&m->pci, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "PCI hole"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(absent_devices_read_ffff, setup, teardown),
		cmocka_unit_test_setup_teardown(host_bridge_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(bars_follow_programming, setup, teardown),
		cmocka_unit_test_setup_teardown(capability_list, setup, teardown),
		cmocka_unit_test_setup_teardown(state_carries_the_programming, setup, teardown),
		cmocka_unit_test_setup_teardown(functions_and_slots, setup, teardown),
		cmocka_unit_test(hole_allocator),
		cmocka_unit_test_setup_teardown(firmware_assignment, setup, teardown),
	};
	return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
