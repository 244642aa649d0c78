/*
 * cpr-transfer's first message: the guest RAM's memfd and shape, sent while
 * the guest still runs, so the new tern maps the RAM and registers its
 * memslots (KVM's cost grows with RAM size) before the stop, not in it.
 */
#ifndef VMM_CPR_RAM_H
#define VMM_CPR_RAM_H

#include <stdint.h>

#include "tern/error.h"

struct cpr_ram_offer {
	uint64_t memory;   /* bytes of guest RAM */
	uint32_t memslots; /* how many memslots it is split into */
	int memfd;
};

/* Old tern: send the offer; 0 or -errno. */
int cpr_ram_send(int sock, const struct cpr_ram_offer *offer);
/* New tern: receive and check an offer (the memfd is ours on success). */
int cpr_ram_receive(int sock, struct cpr_ram_offer *offer, int timeout_ms,
		    struct tern_error *err);

#endif
