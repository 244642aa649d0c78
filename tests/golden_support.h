/* What the golden-file tests share (tests/golden_support.c). */
#ifndef TESTS_GOLDEN_SUPPORT_H
#define TESTS_GOLDEN_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/ioeventfd_bank.h"
#include "devices/uart.h"
#include "kvm/kvm_state.h"
#include "kvm/vcpu_state.h"
#include "machine/vm.h"
#include "machine/vm_shape.h"
#include "machine/vm_state.h"

/* The golden directory: $TERN_GOLDEN_DIR, or tests/golden from the
 * repository root (where tests/run runs the programs); name's path there,
 * in buf. */
const char *golden_path(const char *name, char *buf, size_t len);
/* A whole file, NUL-terminated (text files read as strings); its length
 * in *len.  golden_slurp reads a golden file, which must not be empty. */
uint8_t *golden_slurp_path(const char *path, size_t *len);
uint8_t *golden_slurp(const char *name, size_t *len);

#define GOLDEN_BANK_DOORBELLS 4
/* The doorbells the guests of the bank files rang: 0, 2, 2, 3. */
extern const uint64_t golden_bank_rings[GOLDEN_BANK_DOORBELLS];

/* A struct vm with the shape a destination of `vcpus` vCPUs (and a bank
 * of `bank` doorbells) has, its registry built as vm_create and the
 * runner build theirs for a migration (vm.c: register_state; run.c:
 * add_bank).  None of the holders is real: only the shape, which is
 * checked as it arrives (VM_STATE_EARLY), is ever handed one; nothing
 * here calls vm_state_apply. */
struct golden_fake_machine {
	struct vm *vm;
	struct ioeventfd_bank bank;
};

/* The registry types it is built of.  A test program passes GOLDEN_TYPES:
 * this file is linked into every test program, and naming the types here
 * would link their objects (and all they need) into every one of them. */
struct golden_types {
	const struct vm_state_type *machine, *kvm, *vcpu, *uart, *bank;
};
#define GOLDEN_TYPES                                                                   \
	(&(const struct golden_types){ &machine_shape_type, &kvm_state_type,           \
				       &vcpu_state_type, &uart_state_type,             \
				       &ioeventfd_bank_type })

void golden_fake_machine_init(struct golden_fake_machine *f, const struct golden_types *t,
			      unsigned vcpus, unsigned bank);
void golden_fake_machine_free(struct golden_fake_machine *f);

/* The bank's section, given to a bank that is only its ring counts (its
 * load hook touches nothing else): the rings the source's guest rang; a
 * bank of another size refuses them, saying what differs. */
void golden_bank_section_has_the_rings(const struct golden_types *t, const char *file,
				       const uint8_t *data, size_t len);

#endif
