/*
 * The machine's shape at the head of a migration stream: the source sends
 * its vCPU count right after HELLO, before any page, and a destination of
 * another shape refuses it there, saying what to change.  No KVM needed:
 * only the shape of a struct vm is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../harness/memio.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"
#include "tern/stream.h"

/* The shape's section in the stream a source with `vcpus` vCPUs begins
 * with (HELLO, then the shape): a copy to free, its length in *len. */
static uint8_t *shape_section(unsigned vcpus, size_t *len)
{
	struct memio stream;
	struct vm *vm = calloc(1, sizeof *vm);
	assert_non_null(vm);
	vm->vcpus = vcpus;
	memio_init(&stream);
	struct tern_stream_writer w;
	assert_int_equal(tern_stream_writer_init(&w, &stream.io), 0);
	struct tern_stream_hello h = { .version = TERN_STREAM_VERSION, .page_size = 4096,
				       .ranges = 1 };
	h.range[0] = (struct tern_range){ 0, 64 << 20 };
	assert_int_equal(tern_stream_hello(&w, &h), 0);
	struct tern_error err = { .msg = "" };
	assert_int_equal(vm_state_register(&vm->states, &machine_shape_type, -1, vm, &err), 0);
	assert_int_equal(vm_state_save_stream(&vm->states, VM_CARRY_MIGRATION, VM_STATE_PART_EARLY,
					      &w, &err), 0);
	assert_int_equal(tern_stream_flush(&w), 0);
	tern_stream_writer_destroy(&w);
	vm_state_registry_free(&vm->states);
	free(vm);

	/* HELLO first, the shape next: nothing in between. */
	struct memio in;
	memio_init_reader(&in, stream.data, stream.len);
	struct tern_stream_reader r;
	assert_int_equal(tern_stream_reader_init(&r, &in.io), 0);
	struct tern_record rec;
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_HELLO);
	assert_int_equal(tern_stream_read(&r, &rec, &err), 0);
	assert_int_equal(rec.type, TERN_REC_SECTION);
	assert_string_equal(rec.name, "machine");
	*len = rec.len;
	uint8_t *section = malloc(rec.len);
	assert_non_null(section);
	memcpy(section, rec.data, rec.len);
	tern_stream_reader_destroy(&r);
	memio_free(&stream);
	return section;
}

/* What a destination with `vcpus` vCPUs says of the section: 0, or the
 * error with its message in msg. */
static int load_into(unsigned vcpus, const uint8_t *section, size_t len, int copies,
		     char *msg, size_t msg_len)
{
	struct vm *vm = calloc(1, sizeof *vm);
	assert_non_null(vm);
	vm->vcpus = vcpus;
	struct tern_error err = { .msg = "" };
	assert_int_equal(vm_state_register(&vm->states, &machine_shape_type, -1, vm, &err), 0);
	struct vm_state_in in;
	assert_int_equal(vm_state_in_init(&in, &vm->states, VM_CARRY_MIGRATION), 0);
	int rc = 0;
	for (int i = 0; i < copies && rc == 0; i++)
		rc = vm_state_load_section(&in, "machine", section, len, &err);
	snprintf(msg, msg_len, "%s", err.msg);
	vm_state_in_free(&in);
	vm_state_registry_free(&vm->states);
	free(vm);
	return rc;
}

static void the_same_shape_is_taken(void **state)
{
	(void)state;
	for (unsigned vcpus = 1; vcpus <= 8; vcpus *= 2) {
		size_t len;
		char msg[256];
		uint8_t *section = shape_section(vcpus, &len);
		assert_int_equal(load_into(vcpus, section, len, 1, msg, sizeof msg), 0);
		free(section);
	}
}

static void another_vcpu_count_is_refused_saying_so(void **state)
{
	(void)state;
	size_t len;
	char msg[256];
	uint8_t *section = shape_section(1, &len);
	assert_true(load_into(2, section, len, 1, msg, sizeof msg) < 0);
	assert_non_null(strstr(msg, "the source has 1 vCPU, this guest 2"));
	assert_non_null(strstr(msg, "--vcpus"));
	free(section);

	section = shape_section(4, &len);
	assert_true(load_into(1, section, len, 1, msg, sizeof msg) < 0);
	assert_non_null(strstr(msg, "the source has 4 vCPUs, this guest 1"));
	free(section);
}

static void damaged_or_repeated_shapes_are_refused(void **state)
{
	(void)state;
	size_t len;
	char msg[256];
	uint8_t *section = shape_section(2, &len);
	assert_true(load_into(2, section, len, 2, msg, sizeof msg) < 0);
	assert_non_null(strstr(msg, "arrived twice"));
	for (size_t cut = 0; cut < len; cut++)
		assert_true(load_into(2, section, cut, 1, msg, sizeof msg) < 0);
	/* Every single flipped bit: refused (a flip in the count says
	 * another shape). */
	for (size_t bit = 0; bit < 8 * len; bit++) {
		uint8_t *bad = malloc(len);
		assert_non_null(bad);
		memcpy(bad, section, len);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_true(load_into(2, bad, len, 1, msg, sizeof msg) < 0);
		free(bad);
	}
	free(section);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_same_shape_is_taken),
		cmocka_unit_test(another_vcpu_count_is_refused_saying_so),
		cmocka_unit_test(damaged_or_repeated_shapes_are_refused),
	};
	return cmocka_run_group_tests_name("vm_shape", tests, NULL, NULL);
}
