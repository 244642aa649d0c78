/* The device kinds tern has, and building them; see devices.h. */
#include "devices/devices.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/ioeventfd_bank.h"
#include "devices/virtio_blk.h"

/* Every kind of device tern can add: a new device is one line here. */
static const struct device_kind *const kinds[] = {
	&ioeventfd_bank_kind,
	&virtio_blk_kind,
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

const struct device_kind *device_kind_of(const char *spec, struct tern_error *err)
{
	size_t n = strcspn(spec, ",");
	for (size_t i = 0; i < NKINDS; i++)
		if (strlen(kinds[i]->name) == n && strncmp(spec, kinds[i]->name, n) == 0)
			return kinds[i];
	char known[256];
	device_usage(known, sizeof known);
	tern_errorf(err, -EINVAL, "--device '%.*s': tern has no such device (it has: %s)",
		    (int)n, spec, known);
	return NULL;
}

void device_usage(char *out, size_t len)
{
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < NKINDS && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%s,%s", i ? "; " : "", kinds[i]->name,
				       kinds[i]->usage);
}

int devices_create(const struct device_env *env, const char *const *specs, unsigned nspecs,
		   struct device *out, unsigned *n, struct tern_error *err)
{
	*n = 0;
	if (nspecs > VM_MAX_DEVICES)
		return tern_errorf(err, -E2BIG, "%u devices: tern takes up to %d", nspecs,
				   VM_MAX_DEVICES);
	for (unsigned i = 0; i < nspecs; i++) {
		const char *spec = specs[i];
		if (strlen(spec) >= DEVICE_SPEC_MAX)
			return tern_errorf(err, -ENAMETOOLONG, "--device '%.32s...': too long", spec);
		const struct device_kind *k = device_kind_of(spec, err);
		if (k == NULL)
			return -EINVAL;
		const char *options = spec + strlen(k->name);
		options += *options == ',';
		void *dev = NULL;
		int rc = k->create(env, options, &dev, err);
		if (rc < 0) {
			tern_error_prefix(err, "--device %s", spec);
			return rc;
		}
		struct device *d = &out[(*n)++];
		d->kind = k;
		d->dev = dev;
		snprintf(d->spec, sizeof d->spec, "%s", spec);
	}
	return 0;
}

void devices_resumed(struct device *d, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (d[i].kind->resumed != NULL)
			d[i].kind->resumed(d[i].dev);
}

void devices_destroy(struct device *d, unsigned n)
{
	for (unsigned i = n; i-- > 0;)
		d[i].kind->destroy(d[i].dev);
}

struct device *devices_find(struct device *d, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(d[i].kind->name, name) == 0)
			return &d[i];
	return NULL;
}
