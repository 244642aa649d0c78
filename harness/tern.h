/* Running the tern binary from tests and benchmarks. */
#ifndef HARNESS_TERN_H
#define HARNESS_TERN_H

#include "proc.h"

/* Spawn build/tern with the arguments after `want_stdin`, NULL-terminated. */
int tern_spawn(struct proc *p, int want_stdin, ...);
/* Same, from an array that ends with NULL. */
int tern_spawnv(struct proc *p, int want_stdin, const char *const *args);

/* A `tern run` with a QMP socket, in a fresh directory of its own. */
struct tern_vm {
	char *dir;
	char qmp_path[256];
	const char *netns; /* run inside this network namespace (ip netns exec) */
	struct proc proc;
};

/* Make the directory (and the QMP path) without starting anything, so a
 * test can place other sockets in it first.  (netns may be set after, or
 * on a zeroed tern_vm that tern_vm_start prepares itself.) */
int tern_vm_prepare(struct tern_vm *vm);
/* Start `tern run --qmp unix:DIR/qmp.sock ARGS...` (ARGS NULL-terminated),
 * preparing the directory unless tern_vm_prepare() already did. */
int tern_vm_start(struct tern_vm *vm, ...);
/* Same, from an array that ends with NULL. */
int tern_vm_startv(struct tern_vm *vm, const char *const *args);
/* DIR/name, for other sockets and files the test wants next to it. */
const char *tern_vm_path(const struct tern_vm *vm, const char *name, char *buf, size_t len);
/* Kill tern if it still runs and remove the directory. */
void tern_vm_end(struct tern_vm *vm);

#endif
