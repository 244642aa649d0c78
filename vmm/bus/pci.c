/* The PCI host bridge, configuration mechanism #1 and the PCI hole; see
 * pci.h. */
#include "bus/pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern/buf.h"

/* ------------------------------------------------------------ the hole */

void pci_hole_init(struct pci_hole *h, uint64_t base, uint64_t end)
{
	memset(h, 0, sizeof *h);
	h->base = base;
	h->end = end;
}

void pci_hole_destroy(struct pci_hole *h)
{
	free(h->used);
	memset(h, 0, sizeof *h);
}

static int take(struct pci_hole *h, uint64_t base, uint64_t end)
{
	if (tern_array_grow(&h->used, &h->cap, h->nused, sizeof *h->used, 16) < 0)
		return -ENOMEM;
	h->used[h->nused++] = (struct pci_hole_range){ base, end };
	return 0;
}

int pci_hole_reserve(struct pci_hole *h, uint64_t base, uint64_t len)
{
	return take(h, base, base + len);
}

static int fits(const struct pci_hole *h, uint64_t at, uint64_t size)
{
	if (at < h->base || at + size < at || at + size > h->end)
		return 0;
	for (size_t i = 0; i < h->nused; i++)
		if (at < h->used[i].end && h->used[i].base < at + size)
			return 0;
	return 1;
}

/* The lowest free place starts at the hole's base or at the end of
 * something taken (aligned up): try each.  O(n^2) for the few BARs a
 * machine has. */
int pci_hole_alloc(struct pci_hole *h, uint64_t size, uint64_t *gpa)
{
	if (size == 0 || (size & (size - 1)) != 0)
		return -EINVAL;
	uint64_t best = UINT64_MAX;
	for (size_t i = 0; i <= h->nused; i++) {
		uint64_t from = i < h->nused ? h->used[i].end : h->base;
		uint64_t at = (from + size - 1) & ~(size - 1);
		if (at >= from && at < best && fits(h, at, size))
			best = at;
	}
	if (best == UINT64_MAX)
		return -ENOSPC;
	int rc = take(h, best, best + size);
	if (rc == 0)
		*gpa = best;
	return rc;
}

/* ------------------------------------------------ configuration mechanism #1 */

static struct pci_device *addressed(struct pci_host *h, unsigned *reg)
{
	uint32_t a = h->address;
	if (!(a & PCI_CONFIG_ENABLE) || ((a >> 16) & 0xff) != 0)
		return NULL; /* disabled, or a bus behind no bridge */
	*reg = a & 0xfc;
	return h->dev[(a >> 8) & 0xff];
}

/* CONFIG_ADDRESS takes only dword accesses; others are not for it (and
 * are nothing here: 0xcf9's reset control is not modelled). */
static uint64_t address_read(void *opaque, uint64_t offset, unsigned size)
{
	struct pci_host *h = opaque;
	if (offset != 0 || size != 4)
		return UINT64_MAX;
	pthread_mutex_lock(&h->lock);
	uint32_t a = h->address;
	pthread_mutex_unlock(&h->lock);
	return a;
}

static void address_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct pci_host *h = opaque;
	if (offset != 0 || size != 4)
		return;
	pthread_mutex_lock(&h->lock);
	/* Bits 30:24 and 1:0 are reserved and read as zero. */
	h->address = (uint32_t)value & 0x80fffffcu;
	pthread_mutex_unlock(&h->lock);
}

static uint64_t data_read(void *opaque, uint64_t offset, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned reg;
	uint64_t v = UINT64_MAX; /* nobody there: vendor 0xffff */
	pthread_mutex_lock(&h->lock);
	struct pci_device *d = addressed(h, &reg);
	if (d != NULL)
		v = pci_config_read(d, reg + (unsigned)offset, size);
	pthread_mutex_unlock(&h->lock);
	return v;
}

static void data_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct pci_host *h = opaque;
	unsigned reg;
	pthread_mutex_lock(&h->lock);
	struct pci_device *d = addressed(h, &reg);
	if (d != NULL)
		pci_config_write(d, reg + (unsigned)offset, size, (uint32_t)value);
	pthread_mutex_unlock(&h->lock);
}

/* -------------------------------------------------------------- the host */

int pci_host_init(struct pci_host *h, struct bus_space *pio, struct bus_space *mmio,
		  struct tern_error *err)
{
	memset(h, 0, sizeof *h);
	pthread_mutex_init(&h->lock, NULL);
	h->ready = 1;
	h->mmio = mmio;
	pci_hole_init(&h->hole, PCI_HOLE_BASE, PCI_HOLE_END);
	static const struct pci_device_info bridge = {
		.name = "host bridge",
		.vendor = PCI_HOST_VENDOR,
		.device = PCI_HOST_DEVICE,
		.subsys_vendor = 0x1af4, /* QEMU's (Red Hat's), as its q35 has */
		.subsys = 0x1100,
		.class_code = PCI_CLASS_HOST_BRIDGE,
	};
	pci_device_init(&h->bridge, &bridge);
	int rc = pci_register(h, &h->bridge, PCI_DEVFN(0, 0), err);
	if (rc < 0)
		return rc;
	const struct bus_range ports[] = {
		{ .base = PCI_CONFIG_ADDRESS_PORT, .len = 4, .read = address_read,
		  .write = address_write, .opaque = h, .name = "PCI config address" },
		{ .base = PCI_CONFIG_DATA_PORT, .len = 4, .read = data_read, .write = data_write,
		  .opaque = h, .name = "PCI config data" },
	};
	for (unsigned i = 0; i < sizeof ports / sizeof ports[0]; i++)
		if ((rc = bus_register(pio, &ports[i], err)) < 0)
			return rc;
	return 0;
}

void pci_host_destroy(struct pci_host *h)
{
	if (!h->ready)
		return;
	pthread_mutex_destroy(&h->lock);
	pci_hole_destroy(&h->hole);
	h->ready = 0;
}

int pci_register(struct pci_host *h, struct pci_device *d, int devfn, struct tern_error *err)
{
	const char *name = d->name ? d->name : "PCI device";
	pthread_mutex_lock(&h->lock);
	int rc = 0;
	if (devfn < 0) { /* function 0 of the first free slot */
		for (int slot = 0; slot < 32 && devfn < 0; slot++)
			if (h->dev[PCI_DEVFN(slot, 0)] == NULL)
				devfn = PCI_DEVFN(slot, 0);
		if (devfn < 0) {
			rc = tern_errorf(err, -ENOSPC, "%s: every slot on PCI bus 0 is taken", name);
			goto out;
		}
	}
	if (devfn >= PCI_DEVFNS) {
		rc = tern_errorf(err, -EINVAL, "%s: devfn %d is past bus 0's 256", name, devfn);
		goto out;
	}
	if (h->dev[devfn] != NULL) {
		rc = tern_errorf(err, -EBUSY, "%s: PCI 00:%02x.%d is %s already", name, devfn >> 3,
				 devfn & 7, h->dev[devfn]->name ? h->dev[devfn]->name : "taken");
		goto out;
	}
	struct pci_device *fn0 = h->dev[devfn & ~7];
	if ((devfn & 7) != 0) {
		/* Guests look past function 0 only when it says multi-function. */
		if (fn0 == NULL) {
			rc = tern_errorf(err, -EINVAL, "%s: PCI 00:%02x.%d needs function 0 of its "
					 "slot first", name, devfn >> 3, devfn & 7);
			goto out;
		}
		fn0->config[PCI_REG_HEADER_TYPE] |= PCI_HEADER_MULTIFUNCTION;
	}
	d->host = h;
	d->devfn = devfn;
	h->dev[devfn] = d;
	pci_update_mappings(d);
	rc = devfn;
out:
	pthread_mutex_unlock(&h->lock);
	return rc;
}

struct unplaced {
	struct pci_device *d;
	unsigned index;
};

static int larger_first(const void *a, const void *b)
{
	const struct unplaced *x = a, *y = b;
	uint64_t sx = x->d->bar[x->index].size, sy = y->d->bar[y->index].size;
	if (sx != sy)
		return sx > sy ? -1 : 1;
	/* Then in bus order, so the layout is the same every time. */
	if (x->d->devfn != y->d->devfn)
		return x->d->devfn - y->d->devfn;
	return (int)x->index - (int)y->index;
}

int pci_host_assign_bars(struct pci_host *h, struct tern_error *err)
{
	pthread_mutex_lock(&h->lock);
	struct unplaced *todo = calloc(PCI_DEVFNS * PCI_BARS, sizeof *todo);
	size_t n = 0;
	int rc = 0;
	if (todo == NULL) {
		rc = tern_errorf(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned f = 0; f < PCI_DEVFNS; f++)
		for (unsigned i = 0; h->dev[f] != NULL && i < PCI_BARS; i++)
			if (h->dev[f]->bar[i].size != 0 && pci_bar_address(h->dev[f], i) == 0)
				todo[n++] = (struct unplaced){ h->dev[f], i };
	qsort(todo, n, sizeof *todo, larger_first);
	for (size_t k = 0; k < n; k++) {
		struct pci_device *d = todo[k].d;
		unsigned i = todo[k].index, at = PCI_REG_BAR0 + 4 * i;
		uint64_t size = d->bar[i].size, gpa;
		if ((rc = pci_hole_alloc(&h->hole, size, &gpa)) < 0) {
			rc = tern_errorf(err, rc, "%s: no room for BAR %u (0x%llx bytes) in "
					 "the PCI hole 0x%llx-0x%llx", d->name ? d->name : "PCI device",
					 i, (unsigned long long)size, (unsigned long long)h->hole.base,
					 (unsigned long long)h->hole.end);
			goto out;
		}
		pci_config_set(d, at, 4, (uint32_t)gpa | d->bar[i].flags);
		if (d->bar[i].flags & PCI_BAR_64)
			pci_config_set(d, at + 4, 4, (uint32_t)(gpa >> 32));
	}
	for (unsigned f = 0; f < PCI_DEVFNS; f++) {
		struct pci_device *d = h->dev[f];
		int any = 0;
		for (unsigned i = 0; d != NULL && i < PCI_BARS; i++)
			any |= d->bar[i].size != 0;
		if (!any)
			continue;
		pci_config_set(d, PCI_REG_COMMAND, 2,
			       pci_config_get(d, PCI_REG_COMMAND, 2) | PCI_COMMAND_MEMORY);
		pci_update_mappings(d);
		for (unsigned i = 0; i < PCI_BARS && rc == 0; i++)
			if (d->bar[i].conflict)
				rc = tern_errorf(err, -EBUSY, "%s: BAR %u at 0x%llx overlaps another "
						 "MMIO range (reserve it in the PCI hole)",
						 d->name ? d->name : "PCI device", i,
						 (unsigned long long)pci_bar_address(d, i));
	}
out:
	free(todo);
	pthread_mutex_unlock(&h->lock);
	return rc;
}
