/* Skip a test, saying why, where /dev/kvm cannot be used. */
#ifndef TESTS_KVM_SKIP_H
#define TESTS_KVM_SKIP_H

#include "../harness/env.h"

#define SKIP_WITHOUT_KVM()                                                         \
	do {                                                                       \
		char why_[256];                                                    \
		if (!harness_kvm_usable(why_, sizeof why_)) {                      \
			print_message("    skipped: needs KVM, but %s\n", why_);  \
			skip();                                                    \
		}                                                                  \
	} while (0)

#endif
