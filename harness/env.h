/* Where things are and what this machine can do, for tests and benchmarks. */
#ifndef HARNESS_ENV_H
#define HARNESS_ENV_H

#include <stddef.h>
#include <stdint.h>

/* The build directory ($TERN_BUILD, default "build"), and files in it. */
const char *harness_build_dir(void);
const char *harness_tern(void);
const char *harness_tern_img(void);
const char *harness_guest_elf(void);
/* Nonzero when /dev/kvm can be opened; otherwise `why` says why not. */
int harness_kvm_usable(char *why, size_t why_len);
/* Nonzero when `program` is on PATH. */
int harness_have(const char *program);
/* A fresh directory under $TMPDIR; harness_rmtree() removes it. */
char *harness_tmpdir(void);
void harness_rmtree(const char *dir);
/* The checksum of the last "verify ok" line in guest output, or -1. */
int harness_guest_checksum(const char *output, uint64_t *sum);

#endif
