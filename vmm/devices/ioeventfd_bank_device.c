/* The ioeventfd bank as a --device kind: ioeventfd-bank,count=N. */
#include "devices/ioeventfd_bank.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/vm.h"

static int parse_options(const char *options, uint32_t *count, struct tern_error *err)
{
	char *end;
	if (strncmp(options, "count=", 6) != 0 || options[6] < '0' || options[6] > '9')
		return tern_errorf(err, -EINVAL, "ioeventfd-bank takes count=N (1..%u)",
				   IOEVENTFD_BANK_MAX);
	errno = 0;
	unsigned long n = strtoul(options + 6, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > IOEVENTFD_BANK_MAX)
		return tern_errorf(err, -EINVAL, "ioeventfd-bank: count must be 1..%u",
				   IOEVENTFD_BANK_MAX);
	*count = (uint32_t)n;
	return 0;
}

struct bank_device {
	struct ioeventfd_bank bank; /* first: the device is its bank */
	struct vm *vm;
};

static int bank_create(const struct device_env *env, const char *options, void **dev,
		       struct tern_error *err)
{
	uint32_t count = 0;
	int rc = parse_options(options, &count, err);
	if (rc < 0)
		return rc;
	struct bank_device *d = calloc(1, sizeof *d);
	if (d == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	struct ioeventfd_bank *b = &d->bank;
	d->vm = env->vm;
	*dev = d;
	rc = ioeventfd_bank_create(b, count, env->fds, err);
	if (rc == 0) /* a second bank would overlap the first: the bus refuses it */
		rc = ioeventfd_bank_map(b, &env->vm->mmio, err);
	if (rc == 0)
		rc = vm_state_register(&env->vm->states, &ioeventfd_bank_type, -1, b, err);
	/* After a live update the guest resumes first (see ioeventfd_bank.h). */
	if (rc == 0 && !env->live_update)
		rc = ioeventfd_bank_register(b, env->vm->kvm.vm_fd, 0, err);
	if (rc == 0 && ioeventfd_bank_attach(b, env->loop) < 0)
		rc = tern_errorf(err, -ENOMEM, "out of memory");
	return rc;
}

static void bank_resumed(void *dev)
{
	struct bank_device *d = dev;
	struct tern_error err;
	if (ioeventfd_bank_register(&d->bank, d->vm->kvm.vm_fd, 1, &err) < 0)
		fprintf(stderr, "tern: %s (doorbells go through the VMM)\n", err.msg);
}

static json_t *bank_query(void *dev)
{
	struct ioeventfd_bank *b = dev;
	ioeventfd_bank_drain(b);
	json_t *rung = json_array();
	uint64_t total = 0;
	for (uint32_t i = 0; i < b->count; i++) {
		if (b->rings[i] == 0)
			continue;
		total += b->rings[i];
		json_array_append_new(rung, json_pack("{s:I,s:I}", "index", (json_int_t)i, "rings",
						      (json_int_t)b->rings[i]));
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:o}", "count", (json_int_t)b->count, "base",
			 (json_int_t)b->base, "kvm-registered",
			 (json_int_t)ioeventfd_bank_registered(b), "rings", (json_int_t)total,
			 "doorbells", rung);
}

static void bank_destroy(void *dev)
{
	struct bank_device *d = dev;
	if (d->bank.count > 0)
		bus_unregister(&d->vm->mmio, d->bank.base);
	ioeventfd_bank_destroy(&d->bank);
	free(d);
}

const struct device_kind ioeventfd_bank_kind = {
	.name = "ioeventfd-bank",
	.usage = "count=N",
	.create = bank_create,
	.resumed = bank_resumed,
	.query = bank_query,
	.destroy = bank_destroy,
};
