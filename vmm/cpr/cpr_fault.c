/* A point where tests make a new tern fail right after it has taken in a
 * cpr-exec's state: built plain into tern, and with CPR_FAULT_CRASH or
 * CPR_FAULT_HANG into build/tern-cpr-crash and build/tern-cpr-hang. */
#include <signal.h>
#include <unistd.h>

#include "cpr/cpr_internal.h"

void cpr_fault_point(void)
{
#if defined(CPR_FAULT_CRASH)
	raise(SIGSEGV);
#elif defined(CPR_FAULT_HANG)
	for (;;)
		pause();
#endif
}
