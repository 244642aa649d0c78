/* Running command lines (qemu-img, tern-img) from tests and benchmarks. */
#ifndef HARNESS_SHELL_H
#define HARNESS_SHELL_H

/* Run `sh -c <formatted command>`; its stdout and stderr go into *out (if
 * non-NULL, malloc'd, NUL-terminated).  Returns the exit status, or -1 when
 * the command could not run or died of a signal. */
int harness_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
