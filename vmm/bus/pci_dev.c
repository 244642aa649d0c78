/* A PCI endpoint's config space: header, BARs, capabilities; see pci.h. */
#include "bus/pci.h"

#include <errno.h>
#include <string.h>

uint32_t pci_config_get(const struct pci_device *d, unsigned at, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size && at + i < PCI_CONFIG_SPACE; i++)
		v |= (uint32_t)d->config[at + i] << (8 * i);
	return v;
}

void pci_config_set(struct pci_device *d, unsigned at, unsigned size, uint32_t value)
{
	for (unsigned i = 0; i < size && at + i < PCI_CONFIG_SPACE; i++)
		d->config[at + i] = (uint8_t)(value >> (8 * i));
}

void pci_config_set_wmask(struct pci_device *d, unsigned at, unsigned size, uint32_t mask)
{
	for (unsigned i = 0; i < size && at + i < PCI_CONFIG_SPACE; i++)
		d->wmask[at + i] = (uint8_t)(mask >> (8 * i));
}

void pci_device_init(struct pci_device *d, const struct pci_device_info *info)
{
	memset(d, 0, sizeof *d);
	d->name = info->name;
	d->devfn = -1;
	d->cap_next = PCI_CAP_START;
	pci_config_set(d, PCI_REG_VENDOR, 2, info->vendor);
	pci_config_set(d, PCI_REG_DEVICE, 2, info->device);
	pci_config_set(d, PCI_REG_REVISION, 1, info->revision);
	pci_config_set(d, PCI_REG_CLASS, 3, info->class_code);
	pci_config_set(d, PCI_REG_HEADER_TYPE, 1, 0);
	pci_config_set(d, PCI_REG_SUBSYS_VENDOR, 2, info->subsys_vendor);
	pci_config_set(d, PCI_REG_SUBSYS, 2, info->subsys);
	pci_config_set(d, PCI_REG_INT_PIN, 1, info->int_pin);
	/* Status bits are read-only here: no device reports errors. */
	pci_config_set_wmask(d, PCI_REG_COMMAND, 2,
			     PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				     PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	pci_config_set_wmask(d, PCI_REG_CACHE_LINE, 1, 0xff);
	pci_config_set_wmask(d, PCI_REG_LATENCY, 1, 0xff);
	pci_config_set_wmask(d, PCI_REG_INT_LINE, 1, 0xff);
	/* No expansion ROM: its register reads 0 whatever is written. */
}

int pci_set_bar(struct pci_device *d, unsigned index, uint64_t size, unsigned flags,
		bus_read_fn *read, bus_write_fn *write, void *opaque, struct tern_error *err)
{
	const char *name = d->name ? d->name : "PCI device";
	int wide = (flags & PCI_BAR_64) != 0;
	if (index >= PCI_BARS || (wide && index + 1 >= PCI_BARS))
		return tern_errorf(err, -EINVAL, "%s: no BAR %u%s", name, index,
				   wide ? " for a 64-bit BAR" : "");
	if (size < 16 || (size & (size - 1)) != 0 || (!wide && size > (1ULL << 31)) ||
	    (flags & ~(unsigned)(PCI_BAR_64 | PCI_BAR_PREFETCH)) != 0)
		return tern_errorf(err, -EINVAL, "%s: BAR %u of 0x%llx bytes: the size must be a "
				   "power of two, 16 bytes to %s", name, index,
				   (unsigned long long)size, wide ? "2^63" : "2 GiB");
	/* A 64-bit BAR's upper half is taken (size 0, flags marked). */
	if (d->bar[index].size != 0 || d->bar[index].flags != 0 ||
	    (wide && (d->bar[index + 1].size != 0 || d->bar[index + 1].flags != 0)))
		return tern_errorf(err, -EBUSY, "%s: BAR %u is in use", name, index);
	struct pci_bar *b = &d->bar[index];
	*b = (struct pci_bar){ .size = size, .flags = flags, .read = read, .write = write,
			       .opaque = opaque };
	/* Writable address bits: above the size; reading back after writing
	 * all ones gives the size (the sizing protocol). */
	uint64_t mask = ~(size - 1) & ~PCI_BAR_FLAG_BITS;
	unsigned at = PCI_REG_BAR0 + 4 * index;
	pci_config_set(d, at, 4, flags);
	pci_config_set_wmask(d, at, 4, (uint32_t)mask);
	if (wide) {
		d->bar[index + 1].flags = PCI_BAR_64; /* marks the upper half */
		pci_config_set(d, at + 4, 4, 0);
		pci_config_set_wmask(d, at + 4, 4, (uint32_t)(mask >> 32));
	}
	return 0;
}

int pci_add_capability(struct pci_device *d, uint8_t id, unsigned len,
		       const struct pci_cap_ops *ops, void *opaque, struct tern_error *err)
{
	const char *name = d->name ? d->name : "PCI device";
	unsigned at = d->cap_next, room = (len + 3) & ~3u;
	if (len < 2 || d->ncaps == PCI_MAX_CAPS || at + room > PCI_CONFIG_SPACE)
		return tern_errorf(err, -ENOSPC, "%s: no room in config space for a capability "
				   "of %u bytes", name, len);
	pci_config_set(d, at, 1, id);
	pci_config_set(d, at + 1, 1, 0);
	if (d->ncaps == 0) {
		pci_config_set(d, PCI_REG_CAP_PTR, 1, at);
		pci_config_set(d, PCI_REG_STATUS, 2,
			       pci_config_get(d, PCI_REG_STATUS, 2) | PCI_STATUS_CAP_LIST);
	} else {
		pci_config_set(d, d->cap[d->ncaps - 1].offset + 1u, 1, at);
	}
	d->cap[d->ncaps++] = (struct pci_cap){ .offset = (uint8_t)at, .len = (uint8_t)len,
					       .ops = ops, .opaque = opaque };
	d->cap_next = at + room;
	return (int)at;
}

uint64_t pci_bar_address(const struct pci_device *d, unsigned index)
{
	const struct pci_bar *b = &d->bar[index];
	if (b->size == 0)
		return 0;
	unsigned at = PCI_REG_BAR0 + 4 * index;
	uint64_t a = pci_config_get(d, at, 4) & ~PCI_BAR_FLAG_BITS;
	if (b->flags & PCI_BAR_64)
		a |= (uint64_t)pci_config_get(d, at + 4, 4) << 32;
	return a;
}

/* Where BAR i decodes now, or 0.  As QEMU does, a BAR whose last byte is
 * the top of its 32- or 64-bit space holds the sizing pattern, not an
 * address. */
static uint64_t decode_address(const struct pci_device *d, unsigned i)
{
	const struct pci_bar *b = &d->bar[i];
	if (!(pci_config_get(d, PCI_REG_COMMAND, 2) & PCI_COMMAND_MEMORY))
		return 0;
	uint64_t a = pci_bar_address(d, i), last = a + b->size - 1;
	if (a == 0 || last < a || last == UINT64_MAX ||
	    (!(b->flags & PCI_BAR_64) && last >= UINT32_MAX))
		return 0;
	return a;
}

void pci_update_mappings(struct pci_device *d)
{
	if (d->host == NULL)
		return;
	struct bus_space *mmio = d->host->mmio;
	for (unsigned i = 0; i < PCI_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (b->size == 0)
			continue;
		uint64_t want = decode_address(d, i);
		if (b->mapped && b->mapped_at != want) {
			bus_unregister(mmio, b->mapped_at);
			b->mapped = 0;
		}
		if (want == 0 || b->mapped)
			continue;
		const struct bus_range r = { .base = want, .len = b->size, .read = b->read,
					     .write = b->write, .opaque = b->opaque,
					     .name = d->name };
		/* Over another range the BAR stays dark until moved: real
		 * hardware's decoding would be undefined there. */
		b->conflict = bus_register(mmio, &r, NULL) < 0;
		b->mapped = !b->conflict;
		b->mapped_at = b->mapped ? want : 0;
	}
}

static struct pci_cap *cap_at(struct pci_device *d, unsigned at)
{
	for (unsigned i = 0; i < d->ncaps; i++)
		if (at >= d->cap[i].offset && at < d->cap[i].offset + (d->cap[i].len + 3u) / 4 * 4)
			return &d->cap[i];
	return NULL;
}

/* Accesses stay within one dword (mechanism #1), so within one capability. */
uint32_t pci_config_read(struct pci_device *d, unsigned at, unsigned size)
{
	uint32_t v = pci_config_get(d, at, size);
	struct pci_cap *c = cap_at(d, at);
	if (c != NULL && c->ops != NULL && c->ops->read != NULL)
		v = c->ops->read(c->opaque, d, at, size, v);
	return v;
}

static int overlaps(unsigned at, unsigned size, unsigned start, unsigned end)
{
	return at < end && start < at + size;
}

void pci_config_write(struct pci_device *d, unsigned at, unsigned size, uint32_t value)
{
	for (unsigned i = 0; i < size && at + i < PCI_CONFIG_SPACE; i++) {
		uint8_t m = d->wmask[at + i], b = (uint8_t)(value >> (8 * i));
		d->config[at + i] = (uint8_t)((d->config[at + i] & ~m) | (b & m));
	}
	if (overlaps(at, size, PCI_REG_COMMAND, PCI_REG_COMMAND + 2) ||
	    overlaps(at, size, PCI_REG_BAR0, PCI_REG_BAR0 + 4 * PCI_BARS))
		pci_update_mappings(d);
	struct pci_cap *c = cap_at(d, at);
	if (c != NULL && c->ops != NULL && c->ops->write != NULL)
		c->ops->write(c->opaque, d, at, size, value);
}
