/* `tern run`: boot a guest and serve it until it ends. */
#ifndef VMM_RUN_H
#define VMM_RUN_H

#include "cli.h"

/* Exit statuses of tern itself (the guest's own status passes through). */
#define TERN_EXIT_START_FAILED 125
#define TERN_EXIT_GUEST_CRASHED 126

int run_main(const struct run_options *o);

#endif
