/*
 * What the golden-file tests share: where the files are and reading them
 * whole; the rings the guests of the bank files rang, and the check that
 * a bank section carries them; a machine of a destination's shape to
 * decode sections into.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden_support.h"

/* ---------------------------------------------------------------- the files */

const char *golden_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("TERN_GOLDEN_DIR");
	snprintf(buf, len, "%s/%s", dir != NULL && dir[0] != '\0' ? dir : "tests/golden", name);
	return buf;
}

uint8_t *golden_slurp_path(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	if (in == NULL)
		fail_msg("%s: %s (run from the repository root, or set TERN_GOLDEN_DIR)", path,
			 strerror(errno));
	assert_int_equal(fseek(in, 0, SEEK_END), 0);
	long n = ftell(in);
	assert_true(n >= 0);
	rewind(in);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, in), (size_t)n);
	buf[n] = '\0'; /* text files read as strings */
	fclose(in);
	*len = (size_t)n;
	return buf;
}

uint8_t *golden_slurp(const char *name, size_t *len)
{
	char path[512];
	uint8_t *buf = golden_slurp_path(golden_path(name, path, sizeof path), len);
	assert_true(*len > 0);
	return buf;
}

/* ---------------------------------------------------------------- the bank files */

const uint64_t golden_bank_rings[GOLDEN_BANK_DOORBELLS] = { 1, 0, 2, 1 };

void golden_bank_section_has_the_rings(const struct golden_types *t, const char *file,
				       const uint8_t *data, size_t len)
{
	uint64_t rings[GOLDEN_BANK_DOORBELLS] = { 0 };
	struct ioeventfd_bank b = { .count = GOLDEN_BANK_DOORBELLS, .base = IOEVENTFD_BANK_BASE,
				    .rings = rings };
	struct tern_error err = { .msg = "" };
	if (vm_state_load_one(t->bank, &b, data, len, &err) < 0)
		fail_msg("%s: ioeventfd-bank: %s", file, err.msg);
	for (unsigned i = 0; i < GOLDEN_BANK_DOORBELLS; i++)
		if (rings[i] != golden_bank_rings[i])
			fail_msg("%s: doorbell %u rang %llu times, its guest rang it %llu times", file,
				 i, (unsigned long long)rings[i],
				 (unsigned long long)golden_bank_rings[i]);
	/* A bank of another size refuses them, saying what differs. */
	b.count = GOLDEN_BANK_DOORBELLS - 1;
	assert_true(vm_state_load_one(t->bank, &b, data, len, &err) < 0);
	assert_non_null(strstr(err.msg, "4 doorbells at 0xe0000000, this bank has 3"));
}

/* ---------------------------------------------------------------- a machine to decode into */

void golden_fake_machine_init(struct golden_fake_machine *f, const struct golden_types *t,
			      unsigned vcpus, unsigned bank)
{
	memset(f, 0, sizeof *f);
	f->vm = calloc(1, sizeof *f->vm);
	assert_non_null(f->vm);
	struct vm *vm = f->vm;
	vm->vcpus = vcpus;
	vm->vcpu = calloc(vcpus, sizeof *vm->vcpu);
	assert_non_null(vm->vcpu);
	struct tern_error err = { .msg = "" };
	struct vm_state_registry *reg = &vm->states;
	assert_int_equal(vm_state_register(reg, t->machine, -1, vm, &err), 0);
	assert_int_equal(vm_state_register(reg, t->kvm, -1, &vm->kvm, &err), 0);
	for (unsigned i = 0; i < vcpus; i++)
		assert_int_equal(vm_state_register(reg, t->vcpu, (int)i, &vm->vcpu[i], &err), 0);
	assert_int_equal(vm_state_register(reg, t->uart, -1, &vm->uart, &err), 0);
	if (bank) {
		f->bank.count = bank;
		f->bank.base = IOEVENTFD_BANK_BASE;
		assert_int_equal(vm_state_register(reg, t->bank, -1, &f->bank, &err), 0);
	}
}

void golden_fake_machine_free(struct golden_fake_machine *f)
{
	vm_state_registry_free(&f->vm->states);
	free(f->vm->vcpu);
	free(f->vm);
	f->vm = NULL;
}
