/*
 * The fd store: every file descriptor that must outlive the process that
 * opened it (guest RAM memfds, sockets, eventfds), keyed by a name and an
 * id.  A live update (CPR) saves the store with vmstate, keeps or passes
 * the fds themselves, and the new process finds each one again by key.
 *
 * Entries (one cache line each, the name inline) are dense in insertion
 * order, found through an open-addressing index of 4-byte slots: a lookup
 * hashes the key (the name as one 64-byte vector with AVX-512, else three
 * of 16), reads one slot and usually one entry.  A new process
 * that looks up its fds in the order it creates its devices reads the
 * entries as a stream.  Find is O(1) expected; add and remove are O(1)
 * amortized.  The store records fd numbers only: it never opens, closes
 * or checks them (tern_fdstore_close_all aside), so one store may describe
 * another process's fds.
 *
 * Not thread-safe: callers serialize (tern uses it from its main thread).
 */
#ifndef TERN_FDSTORE_H
#define TERN_FDSTORE_H

#include <stdint.h>

#include "tern/error.h"
#include "tern/vmstate.h"

/* A name is 1 .. TERN_FDSTORE_NAME_MAX - 1 bytes, with no NUL. */
#define TERN_FDSTORE_NAME_MAX 48
/* The most entries a saved store may claim. */
#define TERN_FDSTORE_MAX_ENTRIES ((1u << 24) - 2)

struct tern_fdstore;

struct tern_fdstore *tern_fdstore_new(void);
/* Frees the store, leaving its fds open. */
void tern_fdstore_free(struct tern_fdstore *s);

/* 0; -EEXIST when (name, id) is taken; -EINVAL for fd < 0 or a bad name. */
int tern_fdstore_add(struct tern_fdstore *s, const char *name, uint32_t id, int fd,
		     struct tern_error *err);
/* The fd, or -ENOENT. */
int tern_fdstore_find(const struct tern_fdstore *s, const char *name, uint32_t id);
/* Forget (name, id); returns its fd (left open), or -ENOENT. */
int tern_fdstore_remove(struct tern_fdstore *s, const char *name, uint32_t id);
/* Replace the fd of an existing key (as after receiving it); returns the old one or -ENOENT. */
int tern_fdstore_update(struct tern_fdstore *s, const char *name, uint32_t id, int fd);
uint32_t tern_fdstore_count(const struct tern_fdstore *s);

/* Call fn for every entry (in insertion order, but for removals, which move
 * the last entry into the gap), stopping at the first nonzero
 * return, which is returned.  fn must not add or remove entries. */
typedef int (*tern_fdstore_fn)(void *ctx, const char *name, uint32_t id, int fd);
int tern_fdstore_walk(const struct tern_fdstore *s, tern_fdstore_fn fn, void *ctx);

/* Close every fd in the store and empty it. */
void tern_fdstore_close_all(struct tern_fdstore *s);

/* The lookup kernel ("avx512", "sse2"), chosen at start from what the CPU
 * offers; tern_fdstore_use_kernel() forces one (tests, benchmarks): 0,
 * -ENOTSUP when this CPU cannot run it, -ENOENT for an unknown name.  Both
 * hash alike, so a store may switch kernels with entries in it.  Not to be
 * called while another thread uses a store. */
const char *tern_fdstore_kernel(void);
int tern_fdstore_use_kernel(const char *name);

/*
 * vmstate: a field of type TERN_VMS_HASH with .hash = &tern_fdstore_hash
 * saves a `struct tern_fdstore *` as a table of (name, id) -> fd.  A
 * loaded store holds the saving process's fd numbers: the loader decides
 * what they mean here (the same numbers after exec, or a map from the
 * numbers sent alongside fds over a socket).
 */
extern const struct tern_vmstate_hash tern_fdstore_hash;

#endif
