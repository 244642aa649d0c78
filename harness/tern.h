/* Running the tern binary from tests and benchmarks. */
#ifndef HARNESS_TERN_H
#define HARNESS_TERN_H

#include "proc.h"

/* Spawn build/tern with the arguments after `want_stdin`, NULL-terminated. */
int tern_spawn(struct proc *p, int want_stdin, ...);
/* Same, from an array that ends with NULL. */
int tern_spawnv(struct proc *p, int want_stdin, const char *const *args);

#endif
