/*
 * PCI's state in the registry: the host bridge's CONFIG_ADDRESS latch
 * ("pci-host"), and each function's configuration space ("pci/DEVFN"):
 * the command register and the BARs the guest programmed, so that after a
 * migration or live update every BAR decodes where the guest put it.
 * What a device keeps behind its BARs or capabilities is its own state.
 */
#include "bus/pci.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

struct pci_host_state {
	uint32_t address;
};

static const struct tern_vmstate_field pci_host_fields[] = {
	TERN_VMS_FIELD_U32(struct pci_host_state, address, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc pci_host_desc = {
	.name = "pci-host",
	.size = sizeof(struct pci_host_state),
	.version = 1,
	.min_version = 1,
	.fields = pci_host_fields,
};

static int host_save(void *holder, void *obj, struct tern_error *err)
{
	(void)err;
	struct pci_host *h = holder;
	struct pci_host_state *st = obj;
	pthread_mutex_lock(&h->lock);
	st->address = h->address;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int host_load(void *holder, const void *obj, struct tern_error *err)
{
	(void)err;
	struct pci_host *h = holder;
	const struct pci_host_state *st = obj;
	pthread_mutex_lock(&h->lock);
	h->address = st->address & 0x80fffffcu; /* as a guest's write would leave it */
	pthread_mutex_unlock(&h->lock);
	return 0;
}

VM_STATE_TYPE(pci_host_state_type) = {
	.name = "pci-host",
	.desc = &pci_host_desc,
	.carry = VM_CARRY_ALL,
	/* Terns before PCI had none, so their guests never touched it: a
	 * stream from one leaves it as it was made. */
	.flags = VM_STATE_OPTIONAL,
	.save = host_save,
	.load = host_load,
};

struct pci_config_state {
	uint8_t config[PCI_CONFIG_SPACE];
};

static const struct tern_vmstate_field pci_config_fields[] = {
	TERN_VMS_FIELD_BUFFER(struct pci_config_state, config, 0),
	TERN_VMS_FIELD_END,
};

static const struct tern_vmstate_desc pci_config_desc = {
	.name = "pci-config",
	.size = sizeof(struct pci_config_state),
	.version = 1,
	.min_version = 1,
	.fields = pci_config_fields,
};

static int config_save(void *holder, void *obj, struct tern_error *err)
{
	(void)err;
	struct pci_device *d = holder;
	struct pci_config_state *st = obj;
	pthread_mutex_lock(&d->host->lock);
	memcpy(st->config, d->config, sizeof st->config);
	pthread_mutex_unlock(&d->host->lock);
	return 0;
}

/* Only what the guest may write comes from the stream; the rest is what
 * this tern's device is, and must be what the source's was. */
static int config_load(void *holder, const void *obj, struct tern_error *err)
{
	struct pci_device *d = holder;
	const struct pci_config_state *st = obj;
	if (memcmp(st->config, d->config, PCI_REG_COMMAND) != 0 ||
	    memcmp(st->config + PCI_REG_REVISION, d->config + PCI_REG_REVISION, 4) != 0)
		return tern_errorf(err, -EINVAL, "PCI %02x.%u (%s): the source's device has ids "
				   "%02x%02x:%02x%02x, this one %02x%02x:%02x%02x", d->devfn >> 3,
				   d->devfn & 7, d->name, st->config[1], st->config[0],
				   st->config[3], st->config[2], d->config[1], d->config[0],
				   d->config[3], d->config[2]);
	pthread_mutex_lock(&d->host->lock);
	for (unsigned i = 0; i < PCI_CONFIG_SPACE; i++)
		d->config[i] = (uint8_t)((d->config[i] & ~d->wmask[i]) | (st->config[i] & d->wmask[i]));
	pci_update_mappings(d); /* as after a guest's own config write */
	pthread_mutex_unlock(&d->host->lock);
	return 0;
}

VM_STATE_TYPE(pci_device_state_type) = {
	.name = "pci",
	.desc = &pci_config_desc,
	.carry = VM_CARRY_ALL,
	.flags = VM_STATE_OPTIONAL | VM_STATE_NUMBERED, /* optional as pci-host; "pci/DEVFN" */
	.save = config_save,
	.load = config_load,
};

int pci_register_state(struct pci_device *d, struct vm_state_registry *reg,
		       struct tern_error *err)
{
	return vm_state_register(reg, &pci_device_state_type, d->devfn, d, err);
}
