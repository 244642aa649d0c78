/* Port I/O dispatch; see iobus.h. */
#include "bus/iobus.h"

#include <errno.h>
#include <string.h>

int iobus_register(struct io_bus *bus, const struct io_range *r)
{
	if (bus->count == IOBUS_MAX_RANGES)
		return -ENOSPC;
	for (unsigned i = 0; i < bus->count; i++) {
		const struct io_range *o = &bus->range[i];
		if (r->base < o->base + o->len && o->base < r->base + r->len)
			return -EBUSY;
	}
	bus->range[bus->count++] = *r;
	return 0;
}

void iobus_access(const struct io_bus *bus, uint16_t port, uint8_t *data, unsigned size,
		  int is_write)
{
	for (unsigned i = 0; i < bus->count; i++) {
		const struct io_range *r = &bus->range[i];
		if (port < r->base || port - r->base >= r->len)
			continue;
		uint16_t offset = (uint16_t)(port - r->base);
		if (is_write) {
			uint32_t v = 0;
			memcpy(&v, data, size);
			if (r->write != NULL)
				r->write(r->opaque, offset, size, v);
		} else {
			uint32_t v = r->read != NULL ? r->read(r->opaque, offset, size) : 0xffffffffu;
			memcpy(data, &v, size);
		}
		return;
	}
	if (!is_write)
		memset(data, 0xff, size);
}
