/* The machine's state as stream sections; see vm_state.h. */
#include "machine/vm_state.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/vm.h"

struct sink {
	vm_state_sink fn;
	void *ctx;
};

static int put_section(const struct sink *w, const char *name,
		       const struct tern_vmstate_desc *d, const void *obj, struct tern_error *err)
{
	struct tern_buf b = { 0 };
	int rc = tern_vmstate_save(d, obj, &b);
	if (rc == 0)
		rc = w->fn(w->ctx, name, b.data, b.len);
	tern_buf_free(&b);
	if (rc < 0)
		return tern_errorf(err, rc, "sending state %s: %s", name, strerror(-rc));
	return 0;
}

static int stream_sink(void *ctx, const char *name, const uint8_t *data, size_t len)
{
	return tern_stream_section(ctx, name, data, len);
}

/* What a destination must match before it takes any RAM (guest RAM's
 * ranges are in HELLO). */
struct machine_shape {
	uint32_t vcpus;
};

static const struct tern_vmstate_field machine_shape_fields[] = {
	{ .name = "vcpus", .type = TERN_VMS_U32, .offset = offsetof(struct machine_shape, vcpus) },
	{ 0 },
};

static const struct tern_vmstate_desc machine_shape_desc = {
	.name = "machine",
	.size = sizeof(struct machine_shape),
	.version = 1,
	.min_version = 1,
	.fields = machine_shape_fields,
};

int vm_state_save_shape(struct vm *vm, struct tern_stream_writer *w, struct tern_error *err)
{
	const struct sink sink = { stream_sink, w };
	const struct machine_shape shape = { .vcpus = vm->vcpus };
	return put_section(&sink, "machine", &machine_shape_desc, &shape, err);
}

int vm_state_save(struct vm *vm, struct tern_stream_writer *w, struct tern_error *err)
{
	return vm_state_save_to(vm, stream_sink, w, err);
}

int vm_state_save_to(struct vm *vm, vm_state_sink fn, void *ctx, struct tern_error *err)
{
	const struct sink sink = { fn, ctx }, *w = &sink;
	struct kvm_vm_state kvm;
	int rc = kvm_vm_state_get(&vm->kvm, &kvm, err);
	if (rc < 0 || (rc = put_section(w, "kvm", &kvm_vm_state_desc, &kvm, err)) < 0)
		return rc;
	struct vcpu_state *cpu = malloc(sizeof *cpu);
	if (cpu == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->vcpus && rc == 0; i++) {
		char name[32];
		snprintf(name, sizeof name, "cpu/%u", i);
		rc = vcpu_state_get(&vm->vcpu[i], cpu, err);
		if (rc == 0)
			rc = put_section(w, name, &vcpu_state_desc, cpu, err);
	}
	free(cpu);
	if (rc < 0)
		return rc;
	struct uart_state *uart = malloc(sizeof *uart);
	if (uart == NULL)
		return tern_errorf(err, -ENOMEM, "out of memory");
	uart_get_state(&vm->uart, uart);
	rc = put_section(w, "uart", &uart_state_desc, uart, err);
	free(uart);
	return rc;
}

int vm_state_in_init(struct vm_state_in *in, unsigned vcpus)
{
	memset(in, 0, sizeof *in);
	in->vcpus = vcpus;
	in->cpu = calloc(vcpus, sizeof *in->cpu);
	in->have_cpu = calloc(vcpus, 1);
	if (in->cpu == NULL || in->have_cpu == NULL) {
		vm_state_in_free(in);
		return -ENOMEM;
	}
	return 0;
}

void vm_state_in_free(struct vm_state_in *in)
{
	free(in->cpu);
	free(in->have_cpu);
	in->cpu = NULL;
	in->have_cpu = NULL;
}

/* "cpu/N" with N a vCPU this VM has, written the one way it is saved. */
static long cpu_index(const char *name, unsigned vcpus)
{
	if (strncmp(name, "cpu/", 4) != 0 || name[4] < '0' || name[4] > '9' ||
	    (name[4] == '0' && name[5] != '\0'))
		return -1;
	char *end;
	unsigned long n = strtoul(name + 4, &end, 10);
	return *end == '\0' && n < vcpus ? (long)n : -1;
}

static int load(const char *name, const struct tern_vmstate_desc *d, void *obj, int *have,
		const uint8_t *data, size_t len, struct tern_error *err)
{
	if (*have)
		return tern_errorf(err, -EINVAL, "state %s arrived twice", name);
	int rc = tern_vmstate_load(d, obj, data, len, err);
	if (rc < 0) {
		tern_error_prefix(err, "state %s", name);
		return rc;
	}
	*have = 1;
	return 0;
}

/* The source's shape against this guest's: refused at once, before the
 * RAM, rather than after all of it when a vCPU's state is missing. */
static int load_shape(struct vm_state_in *in, const uint8_t *data, size_t len,
		      struct tern_error *err)
{
	struct machine_shape shape;
	int rc = load("machine", &machine_shape_desc, &shape, &in->have_shape, data, len, err);
	if (rc < 0)
		return rc;
	if (shape.vcpus != in->vcpus)
		return tern_errorf(err, -EINVAL, "the source has %u vCPU%s, this guest %u: start "
				   "the destination with the source's --vcpus", shape.vcpus,
				   shape.vcpus == 1 ? "" : "s", in->vcpus);
	return 0;
}

int vm_state_load_section(struct vm_state_in *in, const char *name, const uint8_t *data,
			  size_t len, struct tern_error *err)
{
	if (strcmp(name, "machine") == 0)
		return load_shape(in, data, len, err);
	if (strcmp(name, "kvm") == 0)
		return load(name, &kvm_vm_state_desc, &in->kvm, &in->have_kvm, data, len, err);
	if (strcmp(name, "uart") == 0)
		return load(name, &uart_state_desc, &in->uart, &in->have_uart, data, len, err);
	long cpu = cpu_index(name, in->vcpus);
	if (cpu >= 0) {
		int have = in->have_cpu[cpu];
		int rc = load(name, &vcpu_state_desc, &in->cpu[cpu], &have, data, len, err);
		in->have_cpu[cpu] = (unsigned char)have;
		return rc;
	}
	if (strncmp(name, "cpu/", 4) == 0)
		return tern_errorf(err, -EINVAL, "state %s: this guest has %u vCPUs; start the "
				   "destination with the source's --vcpus", name, in->vcpus);
	return tern_errorf(err, -EINVAL, "state '%s' is not one tern knows", name);
}

int vm_state_apply(struct vm *vm, const struct vm_state_in *in, struct tern_error *err)
{
	if (!in->have_kvm)
		return tern_errorf(err, -EINVAL, "the stream ended without the kvm state");
	if (!in->have_uart)
		return tern_errorf(err, -EINVAL, "the stream ended without the uart state");
	for (unsigned i = 0; i < in->vcpus; i++)
		if (!in->have_cpu[i])
			return tern_errorf(err, -EINVAL, "the stream ended without the state of vCPU "
					   "%u: the source has fewer vCPUs than this guest", i);
	int rc = kvm_vm_state_put(&vm->kvm, &in->kvm, err);
	for (unsigned i = 0; i < vm->vcpus && rc == 0; i++)
		rc = vcpu_state_put(&vm->vcpu[i], &in->cpu[i], err);
	if (rc == 0)
		rc = kvm_clock_put(&vm->kvm, in->kvm.clock_ns, err);
	if (rc == 0)
		uart_put_state(&vm->uart, &in->uart);
	return rc;
}
