/* Port I/O dispatch: ranges of ports to device callbacks.  Unclaimed
 * ports read as all ones and ignore writes, as on a PC. */
#ifndef VMM_IOBUS_H
#define VMM_IOBUS_H

#include <stdint.h>

#define IOBUS_MAX_RANGES 16

struct io_range {
	uint16_t base, len;
	uint32_t (*read)(void *opaque, uint16_t offset, unsigned size);
	void (*write)(void *opaque, uint16_t offset, unsigned size, uint32_t value);
	void *opaque;
};

struct io_bus {
	unsigned count;
	struct io_range range[IOBUS_MAX_RANGES];
};

int iobus_register(struct io_bus *bus, const struct io_range *r);
/* Handle one access of `size` bytes; `data` is in KVM's run page. */
void iobus_access(const struct io_bus *bus, uint16_t port, uint8_t *data, unsigned size,
		  int is_write);

#endif
